//! Deterministic packet-script tests of the worker's listen path.
//!
//! A [`Bench`] holds a [`Stack`], one `Host` + [`TcpEngine`] per worker with
//! keys from a fixed seed, a virtual clock and a [`VecSink`]. Tests build
//! client segments with [`Seg`] (Ethernet/IPv4/TCP from 198.18.0.x to
//! 198.18.0.1:80), feed them at the bench's current time, move the clock
//! with [`Bench::advance`] (1 ms steps: the timer wheel's tick) and read
//! back what the engine sent as parsed [`Out`] segments. Every frame the
//! engine emits is re-parsed with its IPv4 and TCP checksums verified.

mod cookies;
mod fastopen;
mod fuzz;
mod handshake;
mod queues;
mod reuseport;
mod timers;

use crate::engine::flow::FlowKey;
use crate::engine::host::{Host, HostConfig, RxMeta};
use crate::engine::listen::Listener;
use crate::engine::keys::Secrets;
use crate::engine::socket::{Fd, SockType, Stack, StackConfig};
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::{TcpConfig, TcpEngine};
use crate::engine::time::{Duration, Instant};
use crate::engine::tx::VecSink;
use crate::stats::{Counter, Counters};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::tcp_options::{self, FastOpenCookie, SynOptions};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const PORT: u16 = 80;
pub const CLIENT_PORT: u16 = 40000;
/// The client's ISN in most scripts.
pub const CISN: u32 = 1000;
/// Where the virtual clock starts: 1000 s, inside SYN-cookie minute 16.
pub const START: Instant = Instant::from_secs(1000);
pub const SEED: [u8; 32] = *b"dlisten listen-path test seed!!!";

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The keys every bench's engines use (tests recompute cookies and offsets).
pub fn secrets() -> Secrets {
    Secrets::from_seed(SEED)
}

/// Our TSval offset towards `peer` (Linux's `secure_tcp_ts_off`).
pub fn ts_off(peer: Ipv4Addr) -> u32 {
    crate::engine::keys::isn::ts_off(secrets().ts_off, &flow_from(peer, CLIENT_PORT))
}

/// The flow of a client at `peer:port` talking to our listener, from our side.
pub fn flow_from(peer: Ipv4Addr, port: u16) -> FlowKey {
    FlowKey { local: u32::from(SERVER), peer: u32::from(peer), local_port: PORT, peer_port: port }
}

/// The flow of the default client.
pub fn client_flow() -> FlowKey {
    flow_from(CLIENT, CLIENT_PORT)
}

/// The options of a Linux client's SYN: `<mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>`.
pub fn linux_syn_opts() -> SynOptions {
    SynOptions { mss: Some(1460), wscale: Some(7), sack_permitted: true, timestamps: Some((100, 0)), fastopen: None }
}

/// Option bytes in Linux's SYN layout.
pub fn syn_opt_bytes(o: &SynOptions) -> Vec<u8> {
    let mut buf = vec![0u8; o.buffer_len()];
    let n = o.emit(&mut buf).expect("options fit");
    buf.truncate(n);
    buf
}

/// `nop,nop,TS val v ecr e`.
pub fn ts_opt_bytes(val: u32, ecr: u32) -> Vec<u8> {
    let mut v = vec![1, 1, 8, 10];
    v.extend_from_slice(&val.to_be_bytes());
    v.extend_from_slice(&ecr.to_be_bytes());
    v
}

/// A segment from a client to us.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    /// ECN bits of the IP header.
    pub ip_ecn: u8,
    /// The NIC's RSS hash (steers reuseport selection); `None`: software hash.
    pub rss_hash: Option<u32>,
    /// The worker whose queue receives it.
    pub worker: usize,
}

impl Seg {
    pub fn new(flags: TcpFlags, seq: u32, ack: u32) -> Seg {
        Seg {
            src: SocketAddrV4::new(CLIENT, CLIENT_PORT),
            dst: SocketAddrV4::new(SERVER, PORT),
            seq,
            ack,
            flags,
            window: 64240,
            options: Vec::new(),
            payload: Vec::new(),
            ip_ecn: 0,
            rss_hash: None,
            worker: 0,
        }
    }

    /// `S seq:seq(0) win 64240 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>`.
    pub fn syn(seq: u32) -> Seg {
        Seg::new(TcpFlags::SYN, seq, 0).opts(&linux_syn_opts())
    }

    /// `. seq:seq(0) ack ack`, no options.
    pub fn ack(seq: u32, ack: u32) -> Seg {
        Seg::new(TcpFlags::ACK, seq, ack)
    }

    /// `R seq:seq(0)`.
    pub fn rst(seq: u32) -> Seg {
        Seg::new(TcpFlags::RST, seq, 0)
    }

    pub fn opts(mut self, o: &SynOptions) -> Seg {
        self.options = syn_opt_bytes(o);
        self
    }

    pub fn raw_opts(mut self, bytes: &[u8]) -> Seg {
        self.options = bytes.to_vec();
        self
    }

    pub fn ts(mut self, val: u32, ecr: u32) -> Seg {
        self.options = ts_opt_bytes(val, ecr);
        self
    }

    pub fn data(mut self, bytes: &[u8]) -> Seg {
        self.payload = bytes.to_vec();
        self
    }

    pub fn with_flags(mut self, f: TcpFlags) -> Seg {
        self.flags |= f;
        self
    }

    pub fn from(mut self, ip: Ipv4Addr, port: u16) -> Seg {
        self.src = SocketAddrV4::new(ip, port);
        self
    }

    pub fn port(mut self, port: u16) -> Seg {
        self.src = SocketAddrV4::new(*self.src.ip(), port);
        self
    }

    pub fn dport(mut self, port: u16) -> Seg {
        self.dst = SocketAddrV4::new(*self.dst.ip(), port);
        self
    }

    pub fn hash(mut self, h: u32) -> Seg {
        self.rss_hash = Some(h);
        self
    }

    /// The Ethernet frame, checksums filled.
    pub fn frame(&self) -> Vec<u8> {
        let opts_len = (self.options.len() + 3) & !3;
        let tcp_len = tcp::HEADER_LEN + opts_len + self.payload.len();
        let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len;
        let mut buf = vec![0u8; len];
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        ethernet::emit_header(l2, SERVER_MAC, CLIENT_MAC, EtherType::Ipv4).expect("eth");
        let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
        l4[tcp::HEADER_LEN..tcp::HEADER_LEN + self.options.len()].copy_from_slice(&self.options);
        // EOL padding (zeros) up to the 4-byte boundary.
        l4[tcp::HEADER_LEN + opts_len..].copy_from_slice(&self.payload);
        let repr = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            seq_number: self.seq,
            ack_number: self.ack,
            flags: self.flags,
            window_len: self.window,
        };
        repr.emit_header(l4, opts_len).expect("tcp header");
        TcpSegment::new_unchecked(&mut *l4).fill_checksum(*self.src.ip(), *self.dst.ip());
        let ip = Ipv4Repr {
            src_addr: *self.src.ip(),
            dst_addr: *self.dst.ip(),
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            tos: self.ip_ecn & 3,
        };
        ip.emit(l3).expect("ip header");
        buf
    }
}

/// A segment the engine sent, parsed.
#[derive(Clone, Debug)]
pub struct Out {
    /// Virtual time it was sent.
    pub at: Instant,
    pub eth_dst: EthernetAddress,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: Vec<u8>,
    /// The options read as a SYN's.
    pub syn: SynOptions,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    pub tos: u8,
}

impl Out {
    pub fn ts(&self) -> Option<(u32, u32)> {
        tcp_options::timestamps(&self.options)
    }
}

/// Parse one emitted frame, verifying the IPv4 and TCP checksums.
pub fn parse_frame(at: Instant, frame: &[u8]) -> Result<Out, String> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e:?}"))?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Err(format!("ethertype {:?}", eth.ethertype()));
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("ipv4: {e:?}"))?;
    if !ip.verify_checksum() {
        return Err("bad IPv4 checksum".into());
    }
    if usize::from(ip.total_len()) + ethernet::HEADER_LEN != frame.len() {
        return Err("frame length differs from IP total length".into());
    }
    if ip.protocol() != IpProtocol::Tcp {
        return Err(format!("protocol {:?}", ip.protocol()));
    }
    let seg = TcpSegment::new_checked(ip.payload()).map_err(|e| format!("tcp: {e:?}"))?;
    if !seg.verify_checksum(ip.src_addr(), ip.dst_addr()) {
        return Err("bad TCP checksum".into());
    }
    Ok(Out {
        at,
        eth_dst: eth.dst_addr(),
        src: SocketAddrV4::new(ip.src_addr(), seg.src_port()),
        dst: SocketAddrV4::new(ip.dst_addr(), seg.dst_port()),
        flags: seg.flags(),
        seq: seg.seq_number(),
        ack: seg.ack_number(),
        window: seg.window_len(),
        options: seg.options().to_vec(),
        syn: SynOptions::parse(seg.options()),
        payload_len: seg.payload().len(),
        ttl: ip.ttl(),
        ident: ip.ident(),
        df: ip.dont_frag(),
        tos: (ip.dscp() << 2) | ip.ecn(),
    })
}

pub struct Worker {
    pub host: Host,
    pub engine: TcpEngine,
    pub counters: Arc<Counters>,
}

/// A stack with its workers on a virtual clock.
pub struct Bench {
    pub stack: Arc<Stack>,
    pub workers: Vec<Worker>,
    pub now: Instant,
    sink: VecSink,
    out: Vec<Out>,
}

impl Bench {
    pub fn new(workers: u16, sysctls: Sysctls) -> Bench {
        let stack = Arc::new(Stack::new(StackConfig {
            workers,
            local_addrs: vec![SERVER],
            sysctls,
            seed: 7,
        }));
        let workers = (0..workers)
            .map(|w| {
                let counters = Arc::new(Counters::new());
                let host = Host::new(HostConfig { mac: SERVER_MAC, addrs: vec![SERVER] }, counters.clone());
                let engine = TcpEngine::new(TcpConfig::new(w), stack.clone(), secrets(), START);
                Worker { host, engine, counters }
            })
            .collect();
        Bench { stack, workers, now: START, sink: VecSink::default(), out: Vec::new() }
    }

    /// One worker, Linux's default sysctls.
    pub fn linux() -> Bench {
        Bench::new(1, Sysctls::default())
    }

    /// One worker with these sysctl changes.
    pub fn with(f: impl FnOnce(&mut Sysctls)) -> Bench {
        let mut s = Sysctls::default();
        f(&mut s);
        Bench::new(1, s)
    }

    /// Rebuild every worker's engine with a changed per-worker configuration.
    pub fn tcp_config(&mut self, f: impl Fn(&mut TcpConfig)) {
        for (w, worker) in self.workers.iter_mut().enumerate() {
            let mut cfg = TcpConfig::new(w as u16);
            f(&mut cfg);
            worker.engine = TcpEngine::new(cfg, self.stack.clone(), secrets(), self.now);
        }
    }

    /// Change sysctls at run time (like writing /proc/sys).
    pub fn set_sysctls(&mut self, f: impl FnOnce(&mut Sysctls)) {
        let mut s = *self.stack.sysctls();
        f(&mut s);
        self.stack.set_sysctls(s);
        for w in &mut self.workers {
            w.engine.refresh_sysctls();
        }
    }

    /// socket + bind 0.0.0.0:80 + listen(backlog).
    pub fn listen(&mut self, backlog: i32) -> Fd {
        self.listen_with(backlog, |_, _| {})
    }

    /// socket + options + bind 0.0.0.0:80 + listen(backlog).
    pub fn listen_with(&mut self, backlog: i32, setup: impl FnOnce(&Stack, Fd)) -> Fd {
        let fd = self.stack.socket(SockType::Stream).expect("socket");
        setup(&self.stack, fd);
        self.stack.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).expect("bind");
        self.stack.listen(fd, backlog).expect("listen");
        fd
    }

    pub fn listener(&self, fd: Fd) -> Arc<Listener> {
        self.stack.listener(fd).expect("a listening socket")
    }

    /// Hand `seg` to its worker now; returns what was sent in answer.
    pub fn send(&mut self, seg: Seg) -> Vec<Out> {
        self.rx_frame(seg.worker, &seg.frame(), seg.rss_hash);
        self.take_out()
    }

    /// Hand a raw frame to `worker`.
    pub fn rx_frame(&mut self, worker: usize, frame: &[u8], rss_hash: Option<u32>) {
        let meta = RxMeta { rss_hash, ..RxMeta::default() };
        let w = &mut self.workers[worker];
        w.host.rx(self.now, frame, meta, &mut w.engine, &mut self.sink);
        self.collect();
    }

    fn collect(&mut self) {
        for f in self.sink.take() {
            match parse_frame(self.now, &f) {
                Ok(o) => self.out.push(o),
                Err(e) => panic!("the engine emitted a bad frame ({e}): {f:02x?}"),
            }
        }
    }

    /// Move the clock by `d` in 1 ms ticks, polling every worker each tick.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = (self.now + ms(1)).min(end);
            self.poll();
        }
    }

    /// Advance to `START + d`.
    pub fn advance_to(&mut self, since_start: Duration) {
        let t = START + since_start;
        assert!(t >= self.now, "the clock does not go back");
        self.advance(t - self.now);
    }

    /// Poll every worker at the current time (timers, control commands).
    pub fn poll(&mut self) {
        for w in &mut self.workers {
            w.engine.poll(self.now, &mut w.host.tx_context(), &mut self.sink);
        }
        self.collect();
    }

    /// Everything sent since the last call.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// Worker counters summed, plus the stack's (control-plane) counters.
    pub fn counter(&self, c: Counter) -> u64 {
        self.workers.iter().map(|w| w.counters.get(c)).sum::<u64>() + self.stack.counters().get(c)
    }

    /// Request socks over all workers.
    pub fn request_socks(&self) -> usize {
        self.workers.iter().map(|w| w.engine.request_socks()).sum()
    }

    /// SYN from `port`, expecting exactly one SYN-ACK back; returns it.
    pub fn syn_synack(&mut self, seg: Seg) -> Out {
        let out = self.send(seg);
        assert_eq!(out.len(), 1, "one SYN-ACK expected: {out:?}");
        assert_eq!(out[0].flags & (TcpFlags::SYN | TcpFlags::ACK), TcpFlags::SYN | TcpFlags::ACK, "{out:?}");
        out[0].clone()
    }

    /// A full handshake from `CLIENT:port` (Linux options), ACK with timestamps.
    /// Returns our ISN.
    pub fn handshake(&mut self, ip: Ipv4Addr, port: u16) -> u32 {
        let sa = self.syn_synack(Seg::syn(CISN).from(ip, port));
        let (tsval, _) = sa.ts().expect("timestamps");
        let out = self.send(Seg::ack(CISN + 1, sa.seq.wrapping_add(1)).ts(101, tsval).from(ip, port));
        assert!(out.is_empty(), "nothing answers the final ACK: {out:?}");
        sa.seq
    }
}

/// A TFO cookie as our keys mint it for `peer`.
pub fn tfo_cookie(peer: Ipv4Addr) -> FastOpenCookie {
    let bytes = crate::engine::keys::fastopen::gen(&secrets().tfo, &flow_from(peer, CLIENT_PORT));
    FastOpenCookie::new(&bytes).expect("8-byte cookie")
}
