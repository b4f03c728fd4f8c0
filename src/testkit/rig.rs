//! An engine rig: a [`Stack`] and workers (host + TCP engine + counters)
//! on a virtual clock, with keys from a fixed seed, fed frames by hand. The
//! packet-script tests, the benches, the callgrind driver and the fuzz
//! targets all drive the engine through it.

use super::frame::{OUR_IP, OUR_MAC};
use crate::engine::burst::{self, NoClock};
use crate::engine::host::{Host, HostConfig, RxMeta};
use crate::engine::keys::Secrets;
use crate::engine::socket::{Fd, SockType, Stack, StackConfig};
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::{TcpConfig, TcpEngine};
use crate::engine::time::{Duration, Instant};
use crate::engine::tx::{TxFrame, TxSink};
use crate::stats::{Counter, Counters};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

/// Where the virtual clock starts: 1000 s, inside SYN-cookie minute 16.
pub const START: Instant = Instant::from_secs(1000);
/// The seed of the rig's keys (tests recompute cookies and offsets from it).
pub const SEED: [u8; 32] = *b"dlisten listen-path test seed!!!";
/// Largest frame a sink lends (Ethernet MTU 1500 + header).
pub const FRAME_MAX: usize = 1514;

/// The rig's keys.
pub fn secrets() -> Secrets {
    Secrets::from_seed(SEED)
}

/// How to build a [`Rig`]; fill with struct update syntax from `default()`.
#[derive(Clone, Debug)]
pub struct RigConfig {
    pub workers: u16,
    pub sysctls: Sysctls,
    /// The addresses we own (the host answers for them, bind() accepts them).
    pub addrs: Vec<Ipv4Addr>,
    /// Our IPv6 addresses (none by default).
    pub addrs6: Vec<std::net::Ipv6Addr>,
    /// Seed of the stack's ephemeral-port RNG.
    pub stack_seed: u64,
    pub secrets: Secrets,
    /// Per-worker TCP settings (worker index in, config out).
    pub tcp: fn(u16) -> TcpConfig,
}

impl Default for RigConfig {
    /// One worker, Linux's defaults, OUR_IP.
    fn default() -> Self {
        RigConfig {
            workers: 1,
            sysctls: Sysctls::default(),
            addrs: vec![OUR_IP],
            addrs6: Vec::new(),
            stack_seed: 7,
            secrets: secrets(),
            tcp: TcpConfig::new,
        }
    }
}

/// One worker: what a DPDK worker owns, without the port.
pub struct RigWorker {
    pub host: Host,
    pub engine: TcpEngine,
    pub counters: Arc<Counters>,
}

impl RigWorker {
    /// One received frame, as the worker loop hands it on, answers to `tx`;
    /// then, as the worker does after a burst, the latency samples are taken.
    #[inline]
    pub fn rx(&mut self, now: Instant, frame: &[u8], meta: RxMeta, tx: &mut impl TxSink) {
        self.host.rx(now, frame, meta, &mut self.engine, tx);
        self.engine.take_latency_samples().clear();
    }

    /// A burst of received frames through the worker's staged receive path
    /// ([`burst::receive`]), answers to `tx`; then the latency samples.
    #[inline]
    pub fn rx_burst(&mut self, now: Instant, frames: &[(&[u8], RxMeta)], tx: &mut impl TxSink) {
        burst::receive(&mut self.host, &mut self.engine, now, frames, tx, &mut NoClock);
        self.engine.take_latency_samples().clear();
    }

    /// Timers and control-plane commands at `now`.
    pub fn poll(&mut self, now: Instant, tx: &mut impl TxSink) {
        self.engine.poll(now, &mut self.host.tx_context(), tx);
    }
}

/// A stack with its workers on a virtual clock.
pub struct Rig {
    pub stack: Arc<Stack>,
    pub workers: Vec<RigWorker>,
    pub now: Instant,
    cfg: RigConfig,
}

impl Rig {
    pub fn new(cfg: RigConfig) -> Rig {
        let stack = Arc::new(Stack::new(StackConfig {
            workers: cfg.workers,
            local_addrs: cfg.addrs.clone(),
            local_addrs6: Vec::new(),
            sysctls: cfg.sysctls,
            seed: cfg.stack_seed,
        }));
        let mut rig = Rig { stack, workers: Vec::new(), now: START, cfg };
        rig.workers = (0..rig.cfg.workers).map(|w| rig.worker(w)).collect();
        rig
    }

    fn worker(&self, w: u16) -> RigWorker {
        let counters = Arc::new(Counters::new());
        let host = Host::new(HostConfig { mac: OUR_MAC, addrs: self.cfg.addrs.clone(), utc_ms_at_zero: 0 }, counters.clone())
            .with_ipv6(self.cfg.addrs6.clone());
        let engine = TcpEngine::new((self.cfg.tcp)(w), self.stack.clone(), self.cfg.secrets.clone(), self.now);
        RigWorker { host, engine, counters }
    }

    /// Rebuild every worker's engine with changed per-worker settings.
    pub fn set_tcp_config(&mut self, f: impl Fn(&mut TcpConfig)) {
        for (w, worker) in self.workers.iter_mut().enumerate() {
            let mut cfg = (self.cfg.tcp)(w as u16);
            f(&mut cfg);
            worker.engine = TcpEngine::new(cfg, self.stack.clone(), self.cfg.secrets.clone(), self.now);
        }
    }

    /// Change sysctls at run time (like writing /proc/sys).
    pub fn set_sysctls(&mut self, f: impl FnOnce(&mut Sysctls)) {
        let mut s = *self.stack.sysctls();
        f(&mut s);
        self.stack.set_sysctls(s);
        for w in &mut self.workers {
            assert!(w.engine.refresh_sysctls_if_changed(), "a worker missed a sysctl change");
        }
    }

    /// socket + options + bind `addr` + listen(backlog), as an application does.
    pub fn listen_on(&self, addr: SocketAddrV4, backlog: i32, setup: impl FnOnce(&Stack, Fd)) -> Fd {
        let fd = self.stack.socket(SockType::Stream).expect("socket");
        setup(&self.stack, fd);
        self.stack.bind(fd, addr).expect("bind");
        self.stack.listen(fd, backlog).expect("listen");
        fd
    }

    /// Hand a frame to `worker` at the rig's time.
    pub fn rx(&mut self, worker: usize, frame: &[u8], meta: RxMeta, tx: &mut impl TxSink) {
        self.workers[worker].rx(self.now, frame, meta, tx);
    }

    /// Poll every worker at the current time.
    pub fn poll(&mut self, tx: &mut impl TxSink) {
        for w in &mut self.workers {
            w.poll(self.now, tx);
        }
    }

    /// Move the clock by `d` in 1 ms ticks (the timer wheel's), polling
    /// every worker each tick.
    pub fn advance(&mut self, d: Duration, tx: &mut impl TxSink) {
        self.advance_in_steps(d, Duration::from_millis(1), tx);
    }

    /// Move the clock by `d`, polling every worker each `step` (and at the
    /// end): a worker that polls late, as one does after a long burst.
    /// Timers fire up to `step` late; coarser steps make long runs cheap.
    pub fn advance_in_steps(&mut self, d: Duration, step: Duration, tx: &mut impl TxSink) {
        let end = self.now + d;
        let step = step.max(Duration::from_millis(1));
        while self.now < end {
            self.now = (self.now + step).min(end);
            self.poll(tx);
        }
    }

    /// Worker counters summed, plus the stack's (control-plane) counters.
    pub fn counter(&self, c: Counter) -> u64 {
        self.workers.iter().map(|w| w.counters.get(c)).sum::<u64>() + self.stack.counters().get(c)
    }

    /// Request socks over all workers.
    pub fn request_socks(&self) -> usize {
        self.workers.iter().map(|w| w.engine.request_socks()).sum()
    }

    /// The application's accept() until EAGAIN; returns how many.
    pub fn accept_all(&self, fd: Fd) -> u64 {
        let mut n = 0;
        while self.stack.accept(fd).is_ok() {
            n += 1;
        }
        n
    }
}

/// A sink that keeps every frame.
#[derive(Default, Debug)]
pub struct VecSink {
    pub frames: Vec<Vec<u8>>,
}

impl VecSink {
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.frames)
    }
}

impl TxSink for VecSink {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        // 0xa5 fill shows bytes a builder forgot to write.
        let mut buf = vec![0xa5; max_len];
        let frame = build(&mut buf);
        buf.truncate(frame.len);
        self.frames.push(buf);
        true
    }
}

/// A sink that never allocates: one buffer, rewritten by every frame,
/// keeping only the last frame's length and a count.
pub struct ReuseSink {
    pub buf: Box<[u8; FRAME_MAX]>,
    pub len: usize,
    pub frames: u64,
}

impl Default for ReuseSink {
    fn default() -> Self {
        ReuseSink { buf: Box::new([0u8; FRAME_MAX]), len: 0, frames: 0 }
    }
}

impl ReuseSink {
    /// The last frame sent.
    pub fn last(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A sink that keeps every frame of one burst (up to [`burst::MAX_BURST`]),
/// each in a buffer reused from burst to burst.
pub struct BurstSink {
    bufs: Vec<[u8; FRAME_MAX]>,
    lens: Vec<usize>,
    pub frames: u64,
}

impl Default for BurstSink {
    fn default() -> Self {
        BurstSink { bufs: vec![[0u8; FRAME_MAX]; burst::MAX_BURST], lens: Vec::with_capacity(burst::MAX_BURST), frames: 0 }
    }
}

impl BurstSink {
    /// Forget the frames of the last burst (the buffers stay).
    pub fn clear(&mut self) {
        self.lens.clear();
    }
    /// The frames sent since the last [`BurstSink::clear`].
    pub fn sent(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().zip(&self.lens).map(|(b, &l)| &b[..l])
    }
}

impl TxSink for BurstSink {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        let i = self.lens.len();
        if max_len > FRAME_MAX || i == self.bufs.len() {
            return false;
        }
        let frame = build(&mut self.bufs[i][..max_len]);
        self.lens.push(frame.len.min(max_len));
        self.frames += 1;
        true
    }
}

impl TxSink for ReuseSink {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        if max_len > FRAME_MAX {
            return false;
        }
        let frame = build(&mut self.buf[..max_len]);
        self.len = frame.len.min(max_len);
        self.frames += 1;
        true
    }
}
