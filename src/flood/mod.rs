//! `dlisten flood`: a DPDK SYN-flood and handshake load generator.
pub mod addr;
pub mod family;
pub mod gen;
pub mod packet;
pub mod report;
pub mod runtime;

use crate::dpdk::{self, DpdkError, Eal, MbufBatch, Mempool, Port, PortConfig, RxQueue, TxQueue, BURST};
use crate::wire::ethernet::EthernetAddress;
use addr::{AddrError, SrcRange};
use family::{Family, Sock};
use gen::{GenConfig, Generator, Out, TokenBucket, TupleSpace};
use packet::{Link, ParseReply, Rx, SynTemplate};
use runtime::{FloodRuntime, FloodStage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FloodError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("no {proto} from {addr} within {wait:?}: is the target up on this link? (or pass --dst-mac)")]
    NeighTimeout { proto: &'static str, addr: IpAddr, wait: Duration },
    #[error("--request is {0} bytes; at most {max} fit in one segment", max = packet::MAX_REQUEST)]
    RequestTooLong(usize),
    #[error("mixed mode needs at least 2 source ports (one for the legitimate load, the rest for the flood)")]
    MixedNeedsTwoPorts,
    #[error("cannot install the SIGINT/SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SYNs only, never answered by us.
    Syn,
    /// Complete handshakes, `concurrency` in flight.
    Handshake,
    /// A SYN flood and a legitimate handshake load at the same time.
    Mixed,
}

/// Everything `flood` needs, validated by [`run`].
#[derive(Clone, Debug)]
pub struct FloodConfig {
    pub mode: Mode,
    /// The target, IPv4 or IPv6: the flood's family.
    pub dst: SocketAddr,
    /// `--src` as written (for messages) and parsed, of `dst`'s family.
    pub src_text: String,
    pub sports: (u16, u16),
    /// Flood SYNs per second (None: as fast as the TX ring takes them).
    pub rate: Option<u64>,
    /// syn/mixed: flood SYNs in all; handshake: handshakes in all.
    pub count: Option<u64>,
    pub duration: Duration,
    pub concurrency: u64,
    pub request: Vec<u8>,
    /// A request unanswered this long has failed; also how long the end of
    /// a run waits for replies.
    pub timeout: Duration,
    /// SYN retransmissions of a legitimate handshake before it fails
    /// (Linux's `tcp_syn_retries`).
    pub syn_retries: u8,
    pub hgrm_dir: Option<PathBuf>,
    /// Write the summary as JSON to this file.
    pub json: Option<PathBuf>,
    pub dst_mac: Option<EthernetAddress>,
    pub port: Option<u16>,
    /// Sleep when idle (0 = busy poll).
    pub idle_sleep: Duration,
    /// argv for EAL, `argv[0]` included.
    pub eal_args: Vec<String>,
}

/// How long to ask for the target's MAC (ARP or neighbour solicitation).
const NEIGH_WAIT: Duration = Duration::from_secs(5);
const NEIGH_RETRY: Duration = Duration::from_millis(500);

/// The generator's view of `cfg`: which tuples flood and which handshake.
pub fn gen_config<A: Family>(cfg: &FloodConfig, dst: A::Sock) -> Result<GenConfig<A>, FloodError> {
    addr::check_dst(dst)?;
    let src = addr::parse_src::<A>(&cfg.src_text, cfg.dst)?;
    addr::check_all(dst, &cfg.src_text, &src)?;
    if cfg.request.len() > packet::MAX_REQUEST {
        return Err(FloodError::RequestTooLong(cfg.request.len()));
    }
    let (lo, hi) = cfg.sports;
    let whole = TupleSpace { src, ports: (lo, hi) };
    let (flood, legit) = match cfg.mode {
        Mode::Syn => (Some(whole), None),
        Mode::Handshake => (None, Some(whole)),
        Mode::Mixed => {
            if hi == lo {
                return Err(FloodError::MixedNeedsTwoPorts);
            }
            // The first eighth of the ports (at least one) for the
            // legitimate load, so its replies are told apart by port.
            let legit_ports = ((u32::from(hi - lo) + 1) / 8).max(1) as u16;
            (
                Some(TupleSpace { src, ports: (lo + legit_ports, hi) }),
                Some(TupleSpace { src, ports: (lo, lo + legit_ports - 1) }),
            )
        }
    };
    let salt = u32::from_le_bytes(crate::engine::keys::Secrets::random().map(|s| {
        let b = s.isn.to_bytes();
        [b[0], b[1], b[2], b[3]]
    }).unwrap_or([0x5e, 0xed, 0, 1]));
    Ok(GenConfig {
        dst,
        flood,
        legit,
        flood_count: if cfg.mode == Mode::Handshake { None } else { cfg.count },
        legit_count: if cfg.mode == Mode::Handshake { cfg.count } else { None },
        concurrency: cfg.concurrency.max(1),
        request: cfg.request.clone(),
        timeout_ns: cfg.timeout.as_nanos() as u64,
        syn_retries: cfg.syn_retries,
        syn_rto_ns: gen::TCP_TIMEOUT_INIT_NS,
        salt,
    })
}

/// The data path: one RX and one TX queue, frames built in mbufs.
struct Io {
    rxq: RxQueue,
    txq: TxQueue,
    pool: Arc<Mempool>,
    /// Built but not yet taken by the TX ring (kept, not dropped: backpressure).
    pending: MbufBatch,
    our_mac: EthernetAddress,
    ident: u16,
    tx_frames: u64,
    /// Frames built but dropped: the TX ring stayed full.
    tx_dropped: u64,
    no_mbuf: u64,
}

impl Io {
    /// Build one frame with `build` (given a buffer of `len` bytes).
    fn push(&mut self, len: usize, build: impl FnOnce(&mut [u8]) -> usize) {
        if self.pending.is_full() {
            self.flush();
            if self.pending.is_full() {
                // The ring is full even after a retry: give it a moment.
                std::thread::yield_now();
                self.flush();
            }
        }
        let Some(mut m) = self.pool.alloc() else {
            self.no_mbuf += 1;
            return;
        };
        let Some(buf) = m.append(len) else {
            self.no_mbuf += 1;
            return;
        };
        let n = build(buf);
        if n == 0 || !m.set_len(n) {
            return;
        }
        match self.pending.push(m) {
            Ok(()) => self.tx_frames += 1,
            // Counted, so that a lost handshake segment is never silent.
            Err(_) => self.tx_dropped += 1,
        }
    }

    /// Hand what is built to the TX queue; returns the frames it took.
    fn flush(&mut self) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        self.txq.try_tx_burst(&mut self.pending)
    }

    /// Frame the generator's segments (handshakes, RSTs, retransmissions)
    /// with the general builder. Returns how many.
    fn build_all<A: Family>(&mut self, g: &Generator<A>, link: &Link, out: &mut Vec<Out<A>>) -> usize {
        let n = out.len();
        for o in out.drain(..) {
            self.ident = self.ident.wrapping_add(1);
            let seg = g.segment(&o, self.ident);
            let len = packet::segment_len(&seg);
            self.push(len, |buf| packet::build_segment(buf, link, &seg));
        }
        n
    }

    fn send_all<A: Family>(&mut self, g: &Generator<A>, link: &Link, out: &mut Vec<Out<A>>) {
        self.build_all(g, link, out);
        self.flush();
    }

    /// Up to `want` flood SYNs from the template into the TX batch's free
    /// slots, their mbufs taken from the pool with one call. Returns how many.
    fn build_flood<A: Family>(&mut self, g: &mut Generator<A>, tmpl: &SynTemplate<A>, now_ns: u64, want: u64) -> usize {
        let n = want.min(g.flood_left()).min(self.pending.room() as u64) as usize;
        if n == 0 {
            return 0;
        }
        let tsval = gen::tsval(now_ns);
        let ok = self.pool.alloc_frames(&mut self.pending, n, A::SYN_FRAME_LEN as u16, |_, buf| {
            // n <= flood_left: there is a SYN for every buffer.
            if let Some(s) = g.next_flood_syn(now_ns) {
                tmpl.write(buf, &s, tsval);
            }
        });
        if !ok {
            self.no_mbuf += n as u64;
            return 0;
        }
        self.tx_frames += n as u64;
        n
    }

    /// At the end: give the TX ring a bounded while to take what is left.
    fn flush_pending(&mut self) {
        for _ in 0..100 {
            if self.pending.is_empty() {
                break;
            }
            self.flush();
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn send_arp(&mut self, eth_dst: EthernetAddress, arp: &crate::wire::arp::ArpRepr) {
        let mac = self.our_mac;
        self.push(42, |buf| packet::build_arp(buf, eth_dst, mac, arp));
        self.flush();
    }

    fn send_ndisc(&mut self, m: &packet::NdiscOut) {
        let mac = self.our_mac;
        self.push(packet::NEIGH_FRAME_MAX, |buf| packet::build_ndisc(buf, mac, m));
        self.flush();
    }
}

/// Answer neighbour requests for our source addresses (ARP requests,
/// neighbour solicitations: a listener resolves them before it answers a
/// SYN); learn the target's MAC from its replies and requests. Returns the
/// target's MAC when this frame told it.
fn handle_neigh<A: Family>(io: &mut Io, src: &SrcRange<A>, dst: A, rx: &Rx<'_, A>) -> Option<EthernetAddress> {
    if rx.neigh_request_for().is_some_and(|a| src.contains_ip(a)) {
        match rx {
            Rx::Arp(arp) => {
                if let Some(reply) = arp.reply_to(io.our_mac, arp.target_protocol_addr) {
                    io.send_arp(arp.sender_hardware_addr, &reply);
                }
            }
            Rx::Ndisc(ns) => {
                if let Some(na) = ns.advert_for(io.our_mac) {
                    io.send_ndisc(&na);
                }
            }
            _ => {}
        }
    }
    rx.neigh_sender().and_then(|(ip, mac)| (ip == dst.to_ip()).then_some(mac))
}

/// Ask for the target's MAC from our first source address.
fn resolve<A: ParseReply>(io: &mut Io, src: &SrcRange<A>, dst: A, stop: &AtomicBool) -> Result<EthernetAddress, FloodError> {
    let started = Instant::now();
    let mut last_ask: Option<Instant> = None;
    let mut rx = MbufBatch::new();
    while started.elapsed() < NEIGH_WAIT && !stop.load(Ordering::Relaxed) {
        if last_ask.map_or(true, |t| t.elapsed() >= NEIGH_RETRY) {
            last_ask = Some(Instant::now());
            match (src.first().to_ip(), dst.to_ip()) {
                (IpAddr::V4(ours), IpAddr::V4(target)) => {
                    let req = packet::arp_request(io.our_mac, ours, target);
                    io.send_arp(EthernetAddress::BROADCAST, &req);
                }
                (IpAddr::V6(ours), IpAddr::V6(target)) => io.send_ndisc(&packet::neighbour_solicit(io.our_mac, ours, target)),
                // One family by construction.
                _ => {}
            }
        }
        if io.rxq.rx_burst(&mut rx) == 0 {
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let mut found = None;
        for m in rx.drain() {
            let r = packet::parse::<A>(m.data());
            if matches!(r, Rx::Arp(_) | Rx::Ndisc(_)) {
                found = found.or(handle_neigh(io, src, dst, &r));
            }
        }
        if let Some(mac) = found {
            return Ok(mac);
        }
    }
    let proto = if A::BITS == 32 { "ARP reply" } else { "neighbour advertisement" };
    Err(FloodError::NeighTimeout { proto, addr: dst.to_ip(), wait: NEIGH_WAIT })
}

/// How long to wait for the port's link (a memif client until its server
/// connects) before sending anyway.
const LINK_WAIT: Duration = Duration::from_secs(5);

/// Wait for the link to come up, so that the sending window starts with
/// the first SYN the port can take rather than with frames queued before
/// there is a peer.
fn wait_for_link(port: &Port, stop: &AtomicBool) {
    let started = Instant::now();
    while started.elapsed() < LINK_WAIT && !stop.load(Ordering::Relaxed) {
        match port.link() {
            Ok(l) if !l.up => std::thread::sleep(Duration::from_millis(10)),
            // Up, or a driver that cannot tell: go.
            _ => return,
        }
    }
    eprintln!("flood: the link is still down after {LINK_WAIT:?}; sending anyway");
}

/// Checks `cfg` as [`run`] does before it starts anything: addresses
/// (family, benchmarking range), ports, the request.
pub fn validate(cfg: &FloodConfig) -> Result<(), FloodError> {
    match cfg.dst {
        SocketAddr::V4(d) => gen_config::<Ipv4Addr>(cfg, d).map(drop),
        SocketAddr::V6(d) => gen_config::<Ipv6Addr>(cfg, Sock::from_parts(*d.ip(), d.port())).map(drop),
    }
}

pub fn run(cfg: FloodConfig) -> Result<report::Summary, FloodError> {
    match cfg.dst {
        SocketAddr::V4(d) => run_in::<Ipv4Addr>(&cfg, d),
        // Scope and flow label dropped: replies are matched on address and port.
        SocketAddr::V6(d) => run_in::<Ipv6Addr>(&cfg, Sock::from_parts(*d.ip(), d.port())),
    }
}

/// A flood in family `A`.
fn run_in<A: ParseReply>(cfg: &FloodConfig, dst: A::Sock) -> Result<report::Summary, FloodError> {
    // Validate before touching EAL.
    let gcfg = gen_config::<A>(cfg, dst)?;
    let src = addr::parse_src::<A>(&cfg.src_text, cfg.dst)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(FloodError::Signal)?;
    }
    let eal = Eal::init(&cfg.eal_args)?;
    println!("flood: {}", dpdk::version());
    let port_id = eal.choose_port(cfg.port)?;
    let pool = Arc::new(Mempool::new(&eal, &format!("fl_pool{port_id}"), 16383, 256, dpdk::DEFAULT_DATA_ROOM, eal.socket_id())?);
    // Checksums are computed in software: every virtual device has them.
    let port_cfg = PortConfig { want_rss: false, want_csum_offload: false, ..PortConfig::new(pool.clone()) };
    let mut port = Port::new(&eal, port_id, &port_cfg)?;
    port.start()?;
    let our_mac = EthernetAddress(port.mac_addr()?);
    println!("flood: port {port_id} driver {} mac {our_mac}", port.info().driver);
    wait_for_link(&port, &stop);
    let mut io = Io {
        rxq: port.rx_queue(0)?,
        txq: port.tx_queue(0)?,
        pool: pool.clone(),
        pending: MbufBatch::new(),
        our_mac,
        ident: 0,
        tx_frames: 0,
        tx_dropped: 0,
        no_mbuf: 0,
    };
    let tsc_hz = dpdk::tsc_hz(&eal);
    let result = drive(cfg, dst, gcfg, &src, &mut io, &stop, tsc_hz);
    drop(io);
    let stats = port.stats().unwrap_or_default();
    if let Err(e) = port.stop() {
        eprintln!("flood: stopping port {port_id}: {e}");
    }
    drop(port);
    drop(pool);
    drop(eal);
    let mut summary = result?;
    summary.port_line = format!(
        "port {port_id} ipackets {} opackets {} imissed {} oerrors {} rx_nombuf {}",
        stats.ipackets, stats.opackets, stats.imissed, stats.oerrors, stats.rx_nombuf
    );
    Ok(summary)
}

/// Counts each stage's cycles: one TSC read at the end of every stage.
struct StageClock<'r> {
    runtime: &'r mut FloodRuntime,
    last: u64,
}

impl StageClock<'_> {
    #[inline]
    fn mark(&mut self, stage: FloodStage, packets: usize) {
        let now = dpdk::tsc();
        self.runtime.stage(stage, packets as u64, now - self.last);
        self.last = now;
    }
}

/// The target's MAC (ARP or neighbour discovery), then the load until
/// count, duration or a signal, then a bounded drain.
fn drive<A: ParseReply>(
    cfg: &FloodConfig,
    dst: A::Sock,
    gcfg: GenConfig<A>,
    src: &SrcRange<A>,
    io: &mut Io,
    stop: &AtomicBool,
    tsc_hz: u64,
) -> Result<report::Summary, FloodError> {
    let peer_mac = match cfg.dst_mac {
        Some(m) => m,
        None => {
            let m = resolve(io, src, *dst.ip(), stop)?;
            println!("flood: {} is at {m}", dst.ip());
            m
        }
    };
    let link = Link { our_mac: io.our_mac, peer_mac };
    let template = SynTemplate::<A>::new(&link, dst);
    let mut g = Generator::new(gcfg);
    // Up to 1 ms of tokens (at least 4 bursts): a loop iteration longer than
    // one burst's worth of time must not lose its tokens, or the rate undershoots.
    let mut bucket = cfg.rate.map(|r| TokenBucket::new(r, (r / 1000).max(4 * BURST as u64)));
    let mut out = Vec::with_capacity(2 * BURST);
    let mut rx = MbufBatch::new();
    let mut runtime = FloodRuntime::new(tsc_hz);
    // The loop's clock is the TSC it reads for its stages anyway (no
    // clock_gettime per iteration); Instant only for the run's length.
    let started = Instant::now();
    let tsc0 = dpdk::tsc();
    let ns_per_cycle = 1e9 / tsc_hz.max(1) as f64;
    let duration_ns = cfg.duration.as_nanos() as u64;
    let timeout_ns = cfg.timeout.as_nanos() as u64;
    let mut progress = report::Progress::new();
    let mut sending = true;
    let mut drain_until: Option<u64> = None;
    let mut idle = 0u32;
    let mut rx_frames = 0u64;
    loop {
        let start = dpdk::tsc();
        let now = (start.wrapping_sub(tsc0) as f64 * ns_per_cycle) as u64;
        if sending && done_sending(cfg, &g, now >= duration_ns, stop) {
            sending = false;
            drain_until = Some(now + timeout_ns);
        }
        if drain_until.is_some_and(|t| drained(&g, now, t, timeout_ns, stop)) {
            break;
        }
        let mut clock = StageClock { runtime: &mut runtime, last: start };
        let n = io.rxq.rx_burst(&mut rx);
        clock.mark(FloodStage::Rx, n);
        if n > 0 {
            rx_frames += n as u64;
            check_replies(io, &mut rx, &mut g, src, *dst.ip(), now, &mut out);
            clock.mark(FloodStage::Check, n);
        }
        g.expire(now, &mut out);
        let mut built = io.build_all(&g, &link, &mut out);
        // New work only into the TX batch's free room (backpressure: what
        // the ring did not take waits there, nothing more is made).
        if sending && io.pending.room() >= BURST / 2 {
            built += new_work(cfg, &mut g, io, &template, &link, bucket.as_mut(), now, &mut out);
        }
        clock.mark(FloodStage::Build, built);
        let sent = io.flush();
        clock.mark(FloodStage::Tx, sent);
        let end = clock.last;
        let busy = n > 0 || built > 0 || sent > 0;
        if busy {
            runtime.busy_cycles += end - start;
            idle = 0;
        } else {
            idle = idle.saturating_add(1);
            if !cfg.idle_sleep.is_zero() && idle > 1024 {
                std::thread::sleep(cfg.idle_sleep);
            }
            // The empty iteration and any sleep after it.
            runtime.idle_cycles += dpdk::tsc() - start;
        }
        if let Some(line) = progress.tick(Duration::from_nanos(now), &g, &runtime) {
            println!("{line}");
        }
    }
    g.finish(&mut out);
    io.send_all(&g, &link, &mut out);
    io.flush_pending();
    // What the ring never took is freed with the batch: counted, not lost silently.
    io.tx_dropped += io.pending.len() as u64;
    let mut summary = report::Summary::new(cfg.mode, started.elapsed(), &g, io.tx_frames, rx_frames, io.no_mbuf);
    summary.runtime = runtime;
    summary.tx_dropped = io.tx_dropped;
    Ok(summary)
}

/// Stop sending at the count, the duration, or a signal; then drain.
fn done_sending<A: Family>(cfg: &FloodConfig, g: &Generator<A>, duration_over: bool, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
        || duration_over
        || g.flood_left() == 0 && g.legit_left() == 0
        || cfg.mode == Mode::Mixed && g.flood_left() == 0
}

/// The drain ends at its deadline, once every flow settled, or half a
/// timeout early after a signal.
fn drained<A: Family>(g: &Generator<A>, now: u64, until: u64, timeout_ns: u64, stop: &AtomicBool) -> bool {
    let flood_settled = g.stats.synack + g.stats.rst + g.stats.unanswered + g.stats.bad_ack >= g.stats.syn_sent;
    now >= until || g.in_flight() == 0 && flood_settled || stop.load(Ordering::Relaxed) && now + timeout_ns / 2 >= until
}

/// The replies of one RX burst to the generator, neighbour requests answered.
fn check_replies<A: ParseReply>(io: &mut Io, rx: &mut MbufBatch, g: &mut Generator<A>, src: &SrcRange<A>, dst: A, now: u64, out: &mut Vec<Out<A>>) {
    for m in rx.drain() {
        match packet::parse::<A>(m.data()) {
            Rx::Tcp(r) => g.on_reply(now, &r, out),
            neigh @ (Rx::Arp(_) | Rx::Ndisc(_)) => {
                handle_neigh(io, src, dst, &neigh);
            }
            Rx::Other => {}
        }
    }
}

/// New handshakes up to the concurrency, and flood SYNs as the rate allows
/// (from the template). Returns the frames built.
#[allow(clippy::too_many_arguments)]
fn new_work<A: Family>(
    cfg: &FloodConfig,
    g: &mut Generator<A>,
    io: &mut Io,
    template: &SynTemplate<A>,
    link: &Link,
    bucket: Option<&mut TokenBucket>,
    now: u64,
    out: &mut Vec<Out<A>>,
) -> usize {
    let mut built = 0;
    if cfg.mode != Mode::Syn {
        g.open_connections(now, io.pending.room() as u64, out);
        built += io.build_all(g, link, out);
    }
    // Tokens only for the room there is: what cannot be built now is not taken.
    let room = io.pending.room() as u64;
    let want = match bucket {
        Some(b) => b.take(now, room),
        None => room,
    };
    built + io.build_flood(g, template, now, want)
}
