//! The worker's TCP layer: the listen path of Linux, per core.
//!
//! For every TCP segment the host hands up, in Linux's order
//! (`tcp_v4_rcv`): an established connection of this worker, else a
//! TIME_WAIT entry, else a request sock of this worker (`tcp_check_req`),
//! else a listener from the listening hash (`tcp_v4_do_rcv` in LISTEN:
//! `tcp_conn_request` for a SYN, `cookie_v4_check` for an ACK). Request
//! socks and connections live in this worker's tables only (RSS keeps a
//! flow on one queue); the listener's queue lengths are the only shared
//! state, and they are atomics.
//!
//! The files follow Linux's:
//! - this file: the engine and the `tcp_v4_rcv` demux (tcp_ipv4.c);
//! - [`conn_request`]: `tcp_conn_request`, with the cookie and TFO
//!   decisions (tcp_input.c, tcp_fastopen.c);
//! - [`minisocks`]: `tcp_check_req` and TIME_WAIT (tcp_minisocks.c);
//! - [`cookie_check`]: `cookie_v4_check` (syncookies.c);
//! - [`reqsk`]: request socks and their SYN-ACK timer (inet_connection_sock.c);
//! - [`child`]: the connection a handshake makes (`tcp_v4_syn_recv_sock`);
//! - [`conn`], [`established`]: connections, their TCBs, and the
//!   application's read/write/close;
//! - [`output`]: the segments we build.

mod child;
pub mod conn;
mod conn_request;
mod cookie_check;
mod established;
pub mod mem;
mod minisocks;
pub mod output;
pub mod reqsk;
mod synack;
mod syn_lane;
mod synack_timers;
#[cfg(test)]
mod tests;

pub use conn::{Conn, ConnTable, Origin};
pub use mem::{MemWarning, TcpMem, TcpMemLimits};
pub use minisocks::TimeWait;

use crate::engine::flow::FlowKey;
use crate::engine::host::{HostTx, IpHeader, TcpInput, TcpLayer, Taken};
use crate::engine::keys::{isn, Secrets};
use crate::engine::listen::{ListenView, Listener, ListenerAt};
use crate::engine::socket::{ControlCmd, Stack};
use crate::engine::sysctl::Sysctls;
use crate::engine::time::{Duration, Instant};
use crate::engine::timer_wheel::TimerWheel;
use crate::engine::tx::{TxSink, WithIpOptions};
use crate::stats::{Counter, Counters, Metric};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::tcp::TcpFlags;
use ahash::{AHashMap as HashMap, AHashSet as HashSet};
use output::Route;
use reqsk::RequestSock;
use cookie_check::ts_off_cache;
use synack::{EchoIp, PendingSynAck, SynAckQueue};
use std::sync::Arc;

/// First SYN-ACK retransmission timeout (Linux TCP_TIMEOUT_INIT).
pub const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// Cap of the SYN-ACK backoff (Linux TCP_RTO_MAX).
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// MSS assumed when a SYN carries none (RFC 9293 3.7.1, Linux TCP_MSS_DEFAULT).
pub const TCP_MSS_DEFAULT: u16 = 536;
/// Linux's `tcp_invalid_ratelimit`: at most one answer to out-of-window
/// segments per request every 500 ms.
pub const TCP_INVALID_RATELIMIT: Duration = Duration::from_millis(500);
/// Proven peers remembered (Linux keeps RTT metrics per destination).
const MAX_PROVEN_PEERS: usize = 65536;

/// Per-worker TCP settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    pub worker: u16,
    /// Our MSS (MTU 1500 - 40), announced in every SYN-ACK.
    pub mss: u16,
    /// Our window scale (Linux picks 7 for its default tcp_rmem).
    pub rcv_wscale: u8,
    /// Receive space a request is offered (Linux's `tcp_full_space` of a
    /// listener with the default tcp_rmem 131072 at the default scaling
    /// ratio of one half): the SYN-ACK's window is it rounded down to MSS
    /// segments, see [`TcpConfig::synack_window`].
    pub rcv_space: u32,
    /// Established connections this worker may hold; beyond, handshakes are
    /// refused with RST (DlConnLimitRefused). By default the table's own
    /// limit: memory, not a count, is what refuses connections.
    pub max_conns: usize,
    /// Receive buffer a connection starts with, and send buffer per
    /// connection (Linux: tcp_rmem[1], tcp_wmem).
    pub rcv_buf: u32,
    pub snd_buf: u32,
    /// What receive-buffer autotuning may grow a connection's buffer to
    /// (Linux `tcp_rmem[2]`, 6 MiB; window scale 7 offers up to 8 MiB).
    /// At most `rcv_buf` turns autotuning off.
    pub rcv_buf_max: u32,
    /// What send-buffer autotuning may grow a connection's buffer to
    /// (Linux `tcp_wmem[2]`, 4 MiB). At most `snd_buf` turns it off.
    pub snd_buf_max: u32,
    /// Bytes of connection buffers this worker may hold in use at once
    /// (`tcp_mem`'s hard limit; see [`mem`]). Beyond, handshakes are
    /// refused with RST (DlConnMemRefused).
    pub max_buffer_bytes: u64,
    /// Our MAC, for segments sent outside a received frame (app writes, timers).
    pub mac: EthernetAddress,
    /// UTC in milliseconds at engine time zero (the IP timestamp option
    /// carries the time of day; the engine itself reads no clock).
    pub utc_ms_at_zero: u64,
}

impl TcpConfig {
    pub fn new(worker: u16) -> TcpConfig {
        TcpConfig {
            worker,
            mss: 1460,
            rcv_wscale: 7,
            rcv_space: 65536,
            max_conns: ConnTable::CAPACITY,
            rcv_buf: 64 * 1024,
            snd_buf: 64 * 1024,
            rcv_buf_max: 6 << 20,
            snd_buf_max: 4 << 20,
            max_buffer_bytes: 1 << 30,
            mac: EthernetAddress([0; 6]),
            utc_ms_at_zero: 0,
        }
    }

    /// The window of a SYN-ACK, never scaled (`tcp_openreq_init_rwin`):
    /// the receive space rounded down to segments of our MSS less the
    /// timestamp option when timestamps are on, at most 65535. Linux sends
    /// 65160 (45 x 1448) with timestamps, 64240 (44 x 1460) without.
    pub fn synack_window(&self, timestamps: bool) -> u16 {
        self.synack_window_mss(self.mss, timestamps)
    }

    /// [`TcpConfig::synack_window`] for `key`'s family: over IPv6, 64260
    /// (45 x 1428) with timestamps, 64800 (45 x 1440) without.
    #[inline]
    pub fn synack_window_of(&self, key: &FlowKey, timestamps: bool) -> u16 {
        self.synack_window_mss(self.mss_of(key), timestamps)
    }

    /// Our MSS towards `key`'s peer: the IPv6 header is 20 bytes longer
    /// than IPv4's, so 1440 on a 1500-byte MTU (Linux's advmss of the route).
    #[inline(always)]
    pub fn mss_of(&self, key: &FlowKey) -> u16 {
        if key.is_v4() { self.mss } else { self.mss.saturating_sub(20) }
    }

    fn synack_window_mss(&self, mss: u16, timestamps: bool) -> u16 {
        let mss = u32::from(mss).saturating_sub(if timestamps { 12 } else { 0 }).max(1);
        let space = self.rcv_space.min(u32::from(u16::MAX) << 14);
        let space = if space > mss { space - space % mss } else { space };
        space.min(u32::from(u16::MAX)) as u16
    }

    /// Milliseconds since midnight UTC at `now` (RFC 791's timestamp).
    pub fn utc_ms_since_midnight(&self, now: Instant) -> u32 {
        ((self.utc_ms_at_zero + now.as_millis()) % 86_400_000) as u32
    }
}


/// A latency measurement the worker completes: `start` is engine time; the
/// worker stamps the end when the answer reaches the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample {
    pub listener_id: u64,
    pub metric: Metric,
    pub start: Instant,
}

/// One received segment and where it came from, as the listen path sees it.
#[derive(Clone, Copy)]
struct Rx<'i, 'a> {
    now: Instant,
    key: FlowKey,
    /// The flow hash (the NIC's RSS hash, or ours).
    hash: u32,
    input: &'i TcpInput<'a>,
    route: Route,
}

/// Timer tokens of this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Conn(u32),
    TimeWait(FlowKey),
}

pub struct TcpEngine {
    cfg: TcpConfig,
    stack: Arc<Stack>,
    secrets: Secrets,
    sysctls: Arc<Sysctls>,
    /// [`Stack::sysctls_generation`] when `sysctls` was read.
    sysctls_seen: u64,
    reqs: HashMap<FlowKey, RequestSock>,
    conns: ConnTable,
    timers: TimerWheel<Timer>,
    /// Request socks' SYN-ACK timers.
    synack_timers: synack_timers::SynAckTimers,
    /// Peers that completed a handshake: they keep the last quarter of
    /// tcp_max_syn_backlog when cookies are off (`tcp_peer_is_proven`).
    proven: HashSet<u128>,
    /// Seed for a software flow hash when the NIC gives none.
    hash_seed: u64,
    /// Connections with events for the application.
    ready: Vec<u32>,
    /// Where app-driven paths count (the worker's counters; set with `with_counters`).
    counters: Arc<Counters>,
    /// Buffer bytes in use by connections (`tcp_memory_allocated`).
    mem: TcpMem,
    /// Handshake latencies of the current burst.
    samples: Vec<LatencySample>,
    /// Connections in TIME_WAIT.
    time_wait: HashMap<FlowKey, TimeWait>,
    /// Events of connections already gone from the table (TIME_WAIT, closed).
    gone_ready: Vec<(u32, crate::engine::tcb::Events)>,
    /// This worker's copy of the listening hash (taken out while the
    /// listen path borrows a listener from it).
    view: Option<Box<ListenView>>,
    /// Timestamp offsets of recent address pairs.
    ts_offs: isn::TsOffCache,
    /// The ISN function, keyed with `secrets.isn`.
    isn: isn::IsnGen,
    /// SYN-ACKs decided but not built yet (the build stage of a burst).
    synacks: SynAckQueue,
    templates: synack::SynAckTemplates,
}

impl TcpEngine {
    pub fn new(cfg: TcpConfig, stack: Arc<Stack>, secrets: Secrets, now: Instant) -> TcpEngine {
        let sysctls_seen = stack.sysctls_generation();
        let sysctls = stack.sysctls();
        let syn_backlog = sysctls.tcp_max_syn_backlog.min(1 << 16) as usize;
        let index_capacity = cfg.max_conns.min(1 << 16);
        let hash_seed = u64::from(secrets.isn.to_bytes()[0]) << 56 | 0x9e37_79b9_7f4a_7c15;
        let templates = synack::SynAckTemplates::new(&cfg);
        let ts_offs = ts_off_cache(&secrets, &cfg);
        let isn = isn::IsnGen::new(secrets.isn);
        let mem = TcpMem::new(TcpMemLimits::from_max(cfg.max_buffer_bytes));
        TcpEngine {
            mem,
            cfg,
            stack,
            secrets,
            sysctls,
            sysctls_seen,
            // Sized for the SYN backlog up front, as Linux sizes its ehash at
            // boot: a SYN flood does not pay for rehashing the table.
            reqs: HashMap::with_capacity(syn_backlog),
            // The flow index sized for 64 Ki connections up front (1 MiB),
            // as Linux sizes its established hash at boot: no rehash while
            // a worker fills up to there.
            conns: ConnTable::with_index_capacity(index_capacity),
            timers: TimerWheel::new(now, 1024),
            synack_timers: synack_timers::SynAckTimers::default(),
            proven: HashSet::new(),
            hash_seed,
            ready: Vec::new(),
            counters: Arc::new(Counters::new()),
            samples: Vec::new(),
            time_wait: HashMap::new(),
            gone_ready: Vec::new(),
            view: Some(Box::default()),
            ts_offs,
            isn,
            synacks: SynAckQueue::default(),
            templates,
        }
    }

    /// Connections in TIME_WAIT.
    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    /// Count app-driven events (writes, closes, timers) in these counters.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> TcpEngine {
        self.counters = counters;
        self
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Latency samples since the last call (the worker completes and clears them).
    pub fn take_latency_samples(&mut self) -> &mut Vec<LatencySample> {
        &mut self.samples
    }

    #[inline]
    fn sample(&mut self, listener_id: u64, metric: Metric, start: Instant) {
        // Bounded: a worker that never collects must not grow without limit.
        if self.samples.len() < 4096 {
            self.samples.push(LatencySample { listener_id, metric, start });
        }
    }

    pub fn request_socks(&self) -> usize {
        self.reqs.len()
    }

    pub fn connections(&self) -> &ConnTable {
        &self.conns
    }

    /// This worker's buffer memory in use.
    pub fn mem(&self) -> &TcpMem {
        &self.mem
    }

    /// The rate-limited warning to log when connections were refused for
    /// lack of buffer memory (call from housekeeping).
    pub fn take_mem_warning(&mut self, now: Instant) -> Option<MemWarning> {
        self.mem.take_warning(now)
    }

    /// Change the keys (tests, key rotation). The timestamp offsets are
    /// recomputed with whatever key results.
    pub fn with_secrets(&mut self, f: impl FnOnce(&mut Secrets)) {
        f(&mut self.secrets);
        self.ts_offs = ts_off_cache(&self.secrets, &self.cfg);
        self.isn = isn::IsnGen::new(self.secrets.isn);
    }

    /// Flow hash for reuseport selection when the NIC gave none (Linux's
    /// `inet_ehashfn` is keyed too, so peers cannot aim at one member).
    #[inline]
    fn flow_hash(&self, key: &FlowKey) -> u32 {
        let fold = |a: u128| a as u64 ^ (a >> 64) as u64;
        let mut x = (fold(key.peer) << 32 ^ fold(key.local)) ^ self.hash_seed;
        x ^= u64::from(key.peer_port) << 16 | u64::from(key.local_port);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as u32
    }

    /// Timers and control-plane commands; call every loop iteration.
    pub fn poll(&mut self, now: Instant, host: &mut HostTx<'_>, tx: &mut impl TxSink) {
        while let Some(cmd) = self.stack.pop_command(self.cfg.worker) {
            match cmd {
                ControlCmd::Reset(child) => self.abort(now, child.conn_id, tx),
                ControlCmd::RotateSyncookieKey(key) => {
                    let counter = self.cookie_counter(now);
                    self.secrets.syncookie.rotate(key, counter);
                }
                ControlCmd::SetFleetKeys(keys) => self.with_secrets(|s| keys.apply(s)),
                ControlCmd::SetTfoKeys(keys) => self.secrets.tfo = keys,
            }
        }
        while let Some((key, generation)) = self.synack_timers.pop_due(now) {
            if self.reqs.get(&key).is_some_and(|r| r.timer == generation) {
                self.reqsk_timer(now, key, host);
            }
        }
        while let Some(t) = self.timers.poll(now) {
            match t {
                Timer::Conn(id) => self.conn_timer(now, id, tx),
                Timer::TimeWait(key) => {
                    if self.time_wait.remove(&key).is_some() {
                        host.counters.inc(Counter::TcpTw);
                    }
                }
            }
        }
        self.build_synacks(host.counters, tx);
    }

    /// SYN-ACKs decided and not built yet.
    pub fn pending_synacks(&self) -> usize {
        self.synacks.len()
    }

    /// The build stage: the SYN-ACKs decided since the last call, each
    /// sample taken once the port has the frame.
    #[inline]
    pub fn build_synacks(&mut self, c: &Counters, tx: &mut impl TxSink) {
        if self.synacks.is_empty() {
            return;
        }
        // Taken out and put back, so its capacity is reused: no allocation per burst.
        let mut pending = self.synacks.take();
        for p in pending.drain(..) {
            // Ip6OutRequests is counted by the templates.
            let sent = if p.ip_options == EchoIp::No {
                self.templates.send(&self.cfg, &p, c, tx)
            } else {
                self.send_synack_with_ip_options(&p, c, tx)
            };
            if !sent {
                continue;
            }
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
            if p.retransmit {
                c.inc(Counter::TcpSynRetrans);
            }
            if let Some((listener_id, at)) = p.sample {
                self.sample(listener_id, Metric::SynToSynAck, at);
            }
        }
        self.synacks.put_back(pending);
    }

    /// A SYN-ACK that echoes the SYN's IP options (`ip_build_and_send_pkt`
    /// with the request's `ireq_opt`): built as usual, then the options put
    /// in with our address and the time filled in.
    #[cold]
    #[inline(never)]
    fn send_synack_with_ip_options(&mut self, p: &PendingSynAck, c: &Counters, tx: &mut impl TxSink) -> bool {
        // IPv4 only: IPv6 extension headers are never echoed.
        let Some((echo, at)) = self.synacks.ip_echo_for(p) else { return self.templates.send(&self.cfg, p, c, tx) };
        let (ours, time) = (p.key.local_v4().to_be_bytes(), self.cfg.utc_ms_since_midnight(at));
        // The general builder (the templates' bytes exactly), then the options.
        synack::send_general(&self.cfg, p, &mut WithIpOptions::new(tx, &echo, ours, time))
    }

    /// No SYN-ACK IP options are kept (for tests of their lifetime).
    pub fn ip_echo_is_empty(&self) -> bool {
        self.synacks.ip_echo_is_empty()
    }

    /// Forget the IP options a request's SYN-ACKs echo (the request is gone).
    pub(super) fn forget_ip_echo(&mut self, key: &FlowKey, req: &RequestSock) {
        if req.has(reqsk::opt::IP_OPTIONS) {
            self.synacks.forget_ip_echo(key);
        }
    }

    /// Re-read the sysctls (cheap; call every few milliseconds, not per packet).
    pub fn refresh_sysctls(&mut self) {
        self.sysctls_seen = self.stack.sysctls_generation();
        self.sysctls = self.stack.sysctls();
    }

    /// The TFO keys this worker makes and checks cookies with.
    pub fn tfo_keys(&self) -> crate::engine::keys::fastopen::TfoKeys {
        self.secrets.tfo
    }

    /// Re-read the sysctls if they changed since the last read: one load
    /// of the stack's generation when they did not. Between bursts.
    pub fn refresh_sysctls_if_changed(&mut self) -> bool {
        if self.stack.sysctls_generation() == self.sysctls_seen {
            return false;
        }
        self.refresh_sysctls();
        true
    }

    /// The lookup stage (Linux's `__inet_lookup_skb`): the flow's
    /// connection, else its TIME_WAIT entry, else its request sock, else
    /// the listener. Reads the tables, changes nothing.
    #[inline(always)]
    pub fn lookup(&mut self, input: &TcpInput<'_>) -> Found {
        let seg = &input.seg;
        let key = match &input.ip {
            IpHeader::V4(ip) => FlowKey::v4(ip.dst_addr_u32(), ip.src_addr_u32(), seg.dst_port(), seg.src_port()),
            IpHeader::V6(ip, _) => FlowKey::v6(ip.dst_addr(), ip.src_addr(), seg.dst_port(), seg.src_port()),
        };
        let place = if let Some(id) = self.conns.id_of(&key) {
            Place::Conn(id)
        } else if !self.time_wait.is_empty() && self.time_wait.contains_key(&key) {
            Place::TimeWait
        } else {
            self.find_listening(&key, input)
        };
        Found { key, place, stale: false }
    }

    /// A request sock of this worker, else a listener from the listening hash.
    #[inline(always)]
    fn find_listening(&mut self, key: &FlowKey, input: &TcpInput<'_>) -> Place {
        let hash = input.meta.rss_hash.unwrap_or_else(|| self.flow_hash(key));
        if self.reqs.contains_key(key) {
            return Place::Request(hash);
        }
        let Some(view) = self.view.as_mut() else { return Place::Nothing };
        view.refresh(self.stack.lhash());
        match listen_lookup(view, self.cfg.worker, key, hash) {
            Some(at) => Place::Listener(hash, at),
            None => Place::Nothing,
        }
    }

    /// The TCP stage (`tcp_v4_rcv` after the lookup): the segment to where
    /// its flow was found. `NoSocket` leaves the answer to the host.
    #[inline]
    pub fn deliver(&mut self, now: Instant, input: &TcpInput<'_>, found: &Found, host: &mut HostTx<'_>, tx: &mut impl TxSink) -> Taken {
        let fresh;
        let found = if found.stale {
            fresh = self.lookup(input);
            &fresh
        } else {
            found
        };
        let (key, c) = (found.key, host.counters);
        let place = match found.place {
            Place::Conn(id) => {
                self.tcb_segment(now, id, input, c, tx);
                return Taken::Yes;
            }
            Place::TimeWait if self.time_wait_segment(now, key, input, c, tx) => return Taken::Yes,
            // A new SYN took the pair over from TIME_WAIT.
            Place::TimeWait => self.find_listening(&key, input),
            other => other,
        };
        let route = Route { our_mac: host.mac, peer_mac: input.eth_src };
        match place {
            Place::Request(hash) => {
                self.check_req(&Rx { now, key, hash, input, route }, c, tx);
                Taken::Yes
            }
            Place::Listener(hash, at) => {
                // Out of `self` while the listen path runs, so it can borrow
                // the listener without an Arc clone.
                let Some(view) = self.view.take() else { return Taken::NoSocket };
                let taken = match view.get(at) {
                    Some(l) => self.listen_segment(&Rx { now, key, hash, input, route }, l, c, tx),
                    None => Taken::NoSocket,
                };
                self.view = Some(view);
                taken
            }
            Place::Conn(_) | Place::TimeWait | Place::Nothing => Taken::NoSocket,
        }
    }

    /// `tcp_rcv_state_process` in TCP_LISTEN: RST ignored, an ACK may carry
    /// a cookie (else it is answered with RST), a SYN asks for a connection.
    #[inline]
    fn listen_segment(&mut self, rx: &Rx<'_, '_>, listener: &Arc<Listener>, c: &Counters, tx: &mut impl TxSink) -> Taken {
        let flags = rx.input.seg.flags();
        if flags.contains(TcpFlags::RST) {
            return Taken::Yes;
        }
        if flags.contains(TcpFlags::ACK) {
            if !flags.contains(TcpFlags::SYN) && self.cookie_check(rx.now, rx.key, rx.hash, listener, rx.input, c, tx) {
                return Taken::Yes;
            }
            c.inc(Counter::TcpAckNoMatch);
            return Taken::NoSocket;
        }
        // tcp_rcv_state_process in TCP_LISTEN: SYN|FIN is discarded.
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::FIN) {
            self.conn_request(rx, listener, c);
        }
        Taken::Yes
    }
}

/// The listener for a segment of `key` in `view` (`__inet_lookup_listener`
/// or `inet6_lookup_listener` by the flow's family).
#[inline(always)]
fn listen_lookup(view: &ListenView, worker: u16, key: &FlowKey, hash: u32) -> Option<ListenerAt> {
    if key.is_v4() {
        view.lookup(worker, key.local_v4(), key.local_port, hash)
    } else {
        view.lookup_v6(worker, key.local_ip6(), key.local_port, hash)
    }
}

/// Where a segment's flow lives, as the lookup stage found it.
pub struct Found {
    key: FlowKey,
    place: Place,
    /// An earlier segment of the same burst may have changed the flow's
    /// place (same flow, or a possible one): look again when delivering.
    pub stale: bool,
}

impl Found {
    pub fn key(&self) -> &FlowKey {
        &self.key
    }
}

#[derive(Clone, Copy)]
enum Place {
    Conn(u32),
    TimeWait,
    /// A request sock, and the flow hash.
    Request(u32),
    /// A listener (in this worker's view), and the flow hash that picked it
    /// from its reuseport group.
    Listener(u32, ListenerAt),
    Nothing,
}

impl TcpLayer for TcpEngine {
    #[inline]
    fn flush(&mut self, counters: &Counters, tx: &mut impl TxSink) {
        self.build_synacks(counters, tx);
    }

    /// `tcp_v4_rcv`: established, TIME_WAIT, request sock, listener.
    #[inline]
    fn segment(&mut self, now: Instant, input: &TcpInput<'_>, host: &mut HostTx<'_>, tx: &mut impl TxSink) -> Taken {
        let found = self.lookup(input);
        self.deliver(now, input, &found, host, tx)
    }
}
