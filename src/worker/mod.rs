//! The per-core run-to-completion loop: one worker owns one RX queue and one
//! TX queue of a port, polls a burst, runs every frame through the engine to
//! completion, and sends what the engine produced in batches. It never
//! blocks and takes no lock.

pub mod apps;
pub mod csum_partial;
pub mod sink;

use crate::dpdk::{self, tsc, Eal, MbufBatch, Mempool, RxQueue, TxQueue, BURST};
use crate::engine::burst::{self, StageClock};
use crate::engine::host::{CsumStatus, Host, RxMeta};
use crate::engine::tcp::TcpEngine;
use crate::engine::time::Instant as EngineInstant;
use crate::stats::{Counter, Counters, Gauge, Gauges, Runtime, Stage};
use arrayvec::ArrayVec;
use apps::PerCoreApps;
use csum_partial::PartialCsumWatch;
use sink::MbufSink;
use crate::api::worker_side::AttachedConns;
use crate::telemetry::capture::CaptureTap;
use crate::telemetry::latency::LatencySender;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After this many empty polls in a row, an idle worker may sleep.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 1024;
/// How often timers, control commands and sysctls are looked at.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(1);
/// How often latency histograms are handed to the control thread.
const LATENCY_EVERY: Duration = Duration::from_millis(500);

/// What a worker thread owns.
pub struct Worker {
    pub id: u16,
    pub eal: Eal,
    pub core: Option<core_affinity::CoreId>,
    pub rxq: RxQueue,
    /// Moved into the transmit sink when the loop starts.
    pub txq: Option<TxQueue>,
    pub pool: Arc<Mempool>,
    pub host: Host,
    pub tcp: TcpEngine,
    /// Built-in applications served on this core (None: no per-core app).
    pub apps: Option<PerCoreApps>,
    /// Connections used by application threads.
    pub attached: AttachedConns,
    /// Where this worker's latency histograms go, every half second.
    pub latency_out: Option<LatencySender>,
    pub counters: Arc<Counters>,
    /// Cycles per stage, busy and idle (`dlisten stats` shows them).
    pub runtime: Arc<Runtime>,
    /// What it holds now (connections, TIME_WAIT, mbufs), every half second.
    pub gauges: Arc<Gauges>,
    pub stop: Arc<AtomicBool>,
    /// 0 = pure busy polling (production); tests on shared cores sleep a little when idle.
    pub idle_sleep: Duration,
    /// This worker's latency histograms (handshake, accept wait, request->response).
    pub latency: crate::telemetry::latency::WorkerLatency,
    /// The port computes IPv4/TCP checksums on transmit.
    pub tx_csum_offload: bool,
    /// Counts and names segments lost to the sender's checksum offload.
    pub csum_partial: PartialCsumWatch,
    /// Engine time zero.
    pub epoch: Instant,
    /// `dlisten capture`: one flag load per burst while no capture runs.
    pub capture: CaptureTap,
}

impl Worker {
    /// The loop. Returns when `stop` is set.
    pub fn run(mut self) {
        if let Some(core) = self.core {
            core_affinity::set_for_current(core);
        }
        // Gives this std thread an lcore id, so mempool caches work.
        if let Err(e) = self.eal.register_thread() {
            eprintln!("worker {}: {e} (continuing without a per-lcore mempool cache)", self.id);
        }
        let mut rx = MbufBatch::new();
        let pool = self.pool.clone();
        let Some(txq) = self.txq.take() else { return };
        let mut sink = MbufSink::new(&pool, txq, self.tx_csum_offload).with_capture(self.capture.clone());
        let mut idle_polls = 0u32;
        let mut ready = Vec::new();
        let mut last_housekeeping = Instant::now();
        let mut last_latency = Instant::now();
        let epoch = self.epoch;
        let clock_fn = move || EngineInstant::from_nanos(epoch.elapsed().as_nanos() as u64);
        let runtime = self.runtime.clone();
        while !self.stop.load(Ordering::Relaxed) {
            let start = tsc();
            let mut clock = TscClock::new(&runtime, start);
            let mut busy = false;
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                // Live changes (SIGHUP, `dlisten set`) land between bursts.
                self.tcp.refresh_sysctls_if_changed();
                self.housekeeping(&clock_fn, &mut ready, &mut sink, &mut last_latency);
                clock.mark(Stage::Timers, 0);
                busy = true;
            }
            let n = self.rxq.rx_burst(&mut rx);
            if n == 0 {
                self.flush(&mut sink);
                idle_polls = idle_polls.saturating_add(1);
                if !self.idle_sleep.is_zero() && idle_polls >= IDLE_POLLS_BEFORE_SLEEP {
                    std::thread::sleep(self.idle_sleep);
                }
                if busy {
                    runtime.busy(clock.last - start);
                }
                // The empty poll and any sleep after it.
                runtime.idle(tsc() - clock.last);
                continue;
            }
            idle_polls = 0;
            self.capture.rx(rx.iter().map(|m| (m.data(), m.pkt_len())));
            let now = clock_fn();
            let frames: ArrayVec<(&[u8], RxMeta), BURST> = rx.iter().map(|m| (m.data(), rx_meta(m))).collect();
            clock.mark(Stage::Rx, n);
            self.csum_partial.before(&self.counters);
            burst::receive(&mut self.host, &mut self.tcp, now, &frames, &mut sink, &mut clock);
            self.csum_partial.after(&self.counters, frames.iter().map(|(f, _)| *f));
            drop(frames);
            rx.clear();
            self.serve_apps(now, &clock_fn, &mut ready, &mut sink);
            clock.mark(Stage::Apps, 0);
            self.flush(&mut sink);
            self.record_handshake_latency(&clock_fn);
            clock.mark(Stage::Tx, n);
            runtime.busy(clock.last - start);
        }
        self.send_latency();
        self.eal.unregister_thread();
    }

    /// Every millisecond: timers and control-plane commands, the
    /// applications, the TX queue, and twice a second the latency histograms.
    fn housekeeping(
        &mut self,
        clock: &dyn Fn() -> EngineInstant,
        ready: &mut Vec<(u32, crate::engine::tcb::Events)>,
        sink: &mut MbufSink<'_>,
        last_latency: &mut Instant,
    ) {
        let now = clock();
        self.tcp.poll(now, &mut self.host.tx_context(), sink);
        if let Some(w) = self.tcp.take_mem_warning(now) {
            eprintln!("dlisten: worker {}: {w}", self.id);
        }
        self.serve_apps(now, clock, ready, sink);
        self.flush(sink);
        if last_latency.elapsed() >= LATENCY_EVERY {
            *last_latency = Instant::now();
            self.send_latency();
            self.publish_gauges();
        }
    }

    fn publish_gauges(&self) {
        let g = &self.gauges;
        g.set(Gauge::Connections, self.tcp.connections().len() as u64);
        g.set(Gauge::TimeWait, self.tcp.time_wait_len() as u64);
        g.set(Gauge::RequestSocks, self.tcp.request_socks() as u64);
        g.set(Gauge::ConnMemBytes, self.tcp.mem().allocated());
        g.set(Gauge::MbufsInUse, u64::from(self.pool.in_use_count()));
    }

    /// Hand connection events to whichever application side owns each connection.
    fn serve_apps(
        &mut self,
        now: EngineInstant,
        clock: &dyn Fn() -> EngineInstant,
        ready: &mut Vec<(u32, crate::engine::tcb::Events)>,
        sink: &mut MbufSink<'_>,
    ) {
        self.tcp.drain_ready(ready);
        if let Some(apps) = &mut self.apps {
            apps.run(now, clock, ready, &mut self.tcp, &mut self.latency, sink);
        }
        self.attached.run(now, ready, &mut self.tcp, sink);
        ready.clear();
    }

    /// SYN->SYN-ACK and SYN->established, timed at the moment the answers
    /// were handed to the NIC.
    fn record_handshake_latency(&mut self, clock: &dyn Fn() -> EngineInstant) {
        let samples = self.tcp.take_latency_samples();
        if samples.is_empty() {
            return;
        }
        let sent = clock();
        for s in samples.drain(..) {
            self.latency.record(s.listener_id, s.metric, sent.saturating_since(s.start).as_nanos() as u64);
        }
    }

    fn send_latency(&mut self) {
        let Some(out) = &self.latency_out else { return };
        out.send(self.latency.take());
    }

    fn flush(&mut self, sink: &mut MbufSink<'_>) {
        sink.flush();
        let drops = sink.take_drops();
        if drops > 0 {
            self.counters.add(Counter::TxDrops, drops);
        }
        let no_mbuf = sink.take_no_mbuf();
        if no_mbuf > 0 {
            self.counters.add(Counter::TxNoMbuf, no_mbuf);
        }
    }
}

/// What the port says about a received frame.
fn rx_meta(m: &dpdk::Mbuf) -> RxMeta {
    RxMeta { ip_csum: csum_status(m.rx_ip_csum()), l4_csum: csum_status(m.rx_l4_csum()), rss_hash: m.rss_hash() }
}

/// Counts each stage's cycles: one TSC read at the end of every stage.
/// The worker's stage clock: each stage's cycles since the previous mark,
/// read from the TSC once per stage of a burst, into its [`Runtime`].
pub struct TscClock<'r> {
    runtime: &'r Runtime,
    /// The TSC at the end of the previous stage.
    last: u64,
}

impl<'r> TscClock<'r> {
    /// A clock whose first stage starts at `start` (a TSC reading).
    pub fn new(runtime: &'r Runtime, start: u64) -> TscClock<'r> {
        TscClock { runtime, last: start }
    }
}

impl StageClock for TscClock<'_> {
    #[inline]
    fn mark(&mut self, stage: Stage, packets: usize) {
        let now = tsc();
        self.runtime.stage(stage, packets as u64, now - self.last);
        self.last = now;
    }
}

/// Convert the port's view of a checksum into the engine's.
pub fn csum_status(s: dpdk::CsumStatus) -> CsumStatus {
    match s {
        // None: the device never computed it, but the data is intact (virtual devices).
        dpdk::CsumStatus::Good | dpdk::CsumStatus::None => CsumStatus::Good,
        dpdk::CsumStatus::Bad => CsumStatus::Bad,
        _ => CsumStatus::Unknown,
    }
}
