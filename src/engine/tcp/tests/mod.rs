//! Deterministic packet-script tests of the worker's listen path.
//!
//! A [`Bench`] is the test kit's [`Rig`] (a [`Stack`], one `Host` +
//! `TcpEngine` per worker with keys from a fixed seed, a virtual clock)
//! with a [`VecSink`]. Tests build client segments with [`Seg`]
//! (Ethernet/IPv4/TCP from 198.18.0.x to 198.18.0.1:80), feed them at the
//! bench's current time, move the clock with [`Bench::advance`] (1 ms
//! steps: the timer wheel's tick) and read back what the engine sent as
//! parsed [`Out`] segments. Every frame the engine emits is re-parsed with
//! its IPv4 and TCP checksums verified.

mod cookies;
mod defer;
mod fastopen;
mod burst;
mod fuzz;
mod handshake;
mod ipv6;
mod memory;
mod queues;
mod reuseport;
mod live;
mod timers;

use crate::engine::flow::FlowKey;
use crate::engine::host::{CsumStatus, RxMeta};
use crate::engine::keys::Secrets;
use crate::engine::listen::Listener;
use crate::engine::socket::{Fd, Stack};
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::TcpConfig;
use crate::engine::time::Duration;
use crate::stats::Counter;
use crate::testkit::check::{parse_sent_tcp, SentTcp};
use crate::testkit::frame::{self, write_tcp_frame, TcpHeader, OUR_IP, PEER_IP, PEER_MAC};
use crate::testkit::rig::{self, Rig, RigConfig, VecSink};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

pub const SERVER: Ipv4Addr = OUR_IP;
pub const CLIENT: Ipv4Addr = PEER_IP;
pub const CLIENT_MAC: EthernetAddress = PEER_MAC;
pub const PORT: u16 = 80;
pub const CLIENT_PORT: u16 = 40000;
/// The client's ISN in most scripts.
pub const CISN: u32 = 1000;
pub use rig::START;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The keys every bench's engines use (tests recompute cookies and offsets).
pub fn secrets() -> Secrets {
    rig::secrets()
}

/// Our TSval offset towards `peer` (Linux's `secure_tcp_ts_off`).
pub fn ts_off(peer: Ipv4Addr) -> u32 {
    crate::engine::keys::isn::ts_off(secrets().ts_off, &flow_from(peer, CLIENT_PORT))
}

/// The flow of a client at `peer:port` talking to our listener, from our side.
pub fn flow_from(peer: Ipv4Addr, port: u16) -> FlowKey {
    FlowKey::v4(u32::from(SERVER), u32::from(peer), PORT, port)
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
    /// IPv4 options (a multiple of 4 bytes).
    pub ip_options: Vec<u8>,
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
            ip_options: Vec::new(),
        }
    }

    pub fn ip_options(mut self, bytes: &[u8]) -> Seg {
        self.ip_options = bytes.to_vec();
        self
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
        let h = TcpHeader {
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            tos: self.ip_ecn & 3,
            ..TcpHeader::default()
        };
        let mut buf = vec![0u8; frame::tcp_frame_len(self.options.len(), self.payload.len())];
        let n = write_tcp_frame(&mut buf, &h, &self.options, &self.payload);
        assert_eq!(n, buf.len(), "the segment fits a frame");
        if !self.ip_options.is_empty() {
            let k = self.ip_options.len();
            buf.resize(n + k, 0);
            let opts = &self.ip_options;
            crate::wire::ipv4_options::insert_into_frame(&mut buf, n, 14, k, |o| o.copy_from_slice(opts), true);
        }
        buf
    }
}

/// A segment the engine sent, parsed.
pub type Out = SentTcp;

/// The rig, what it sent, parsed, and a sink.
pub struct Bench {
    rig: Rig,
    sink: VecSink,
    out: Vec<Out>,
}

impl Deref for Bench {
    type Target = Rig;
    fn deref(&self) -> &Rig {
        &self.rig
    }
}

impl DerefMut for Bench {
    fn deref_mut(&mut self) -> &mut Rig {
        &mut self.rig
    }
}

impl Bench {
    pub fn new(workers: u16, sysctls: Sysctls) -> Bench {
        let rig = Rig::new(RigConfig { workers, sysctls, ..RigConfig::default() });
        Bench { rig, sink: VecSink::default(), out: Vec::new() }
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
        self.rig.set_tcp_config(f);
    }

    /// socket + bind 0.0.0.0:80 + listen(backlog).
    pub fn listen(&mut self, backlog: i32) -> Fd {
        self.listen_with(backlog, |_, _| {})
    }

    /// socket + options + bind 0.0.0.0:80 + listen(backlog).
    pub fn listen_with(&mut self, backlog: i32, setup: impl FnOnce(&Stack, Fd)) -> Fd {
        self.rig.listen_on(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), backlog, setup)
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
        self.rx_frame_meta(worker, frame, meta);
    }

    /// Hand a frame to `worker` with what the NIC says of it.
    pub fn rx_frame_meta(&mut self, worker: usize, frame: &[u8], meta: RxMeta) {
        self.rig.rx(worker, frame, meta, &mut self.sink);
        self.collect();
    }

    /// Hand frames to worker 0 as one burst, through the staged pipeline,
    /// with what the NIC says of every frame.
    pub fn rx_burst_meta(&mut self, frames: &[Vec<u8>], meta: RxMeta) {
        let input: Vec<(&[u8], RxMeta)> = frames.iter().map(|f| (&f[..], meta)).collect();
        let now = self.rig.now;
        let w = &mut self.rig.workers[0];
        crate::engine::burst::receive(&mut w.host, &mut w.engine, now, &input, &mut self.sink, &mut crate::engine::burst::NoClock);
        self.collect();
    }

    fn collect(&mut self) {
        for f in self.sink.take() {
            match parse_sent_tcp(self.rig.now, &f) {
                Ok(o) => self.out.push(o),
                Err(e) => panic!("the engine emitted a bad frame ({e}): {f:02x?}"),
            }
        }
    }

    /// Move the clock by `d` in 1 ms ticks, polling every worker each tick
    /// (what is sent is stamped with its tick).
    pub fn advance(&mut self, d: Duration) {
        let end = self.rig.now + d;
        while self.rig.now < end {
            self.rig.advance(ms(1).min(end - self.rig.now), &mut self.sink);
            self.collect();
        }
    }

    /// Advance to `START + d`.
    pub fn advance_to(&mut self, since_start: Duration) {
        let t = START + since_start;
        assert!(t >= self.now, "the clock does not go back");
        self.advance(t - self.now);
    }

    /// Everything sent since the last call.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// The application on worker 0 writes `data` on connection `id`; the
    /// engine sends what it may. Returns the write's result and what went out.
    pub fn app_write(&mut self, id: u32, data: &[u8]) -> (Result<usize, crate::engine::errno::Errno>, Vec<Out>) {
        let now = self.rig.now;
        let w = &mut self.rig.workers[0];
        let r = w.engine.write(id, data);
        w.engine.flush(now, id, &mut self.sink);
        self.collect();
        (r, self.take_out())
    }

    /// The application on worker 0 closes connection `id`; connections
    /// that are gone leave the table. Returns what went out.
    pub fn app_close(&mut self, id: u32) -> Vec<Out> {
        let now = self.rig.now;
        let w = &mut self.rig.workers[0];
        w.engine.close(now, id, &mut self.sink);
        w.engine.drain_ready(&mut Vec::new());
        self.collect();
        self.take_out()
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
