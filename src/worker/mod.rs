//! The per-core run-to-completion loop: one worker owns one RX queue and one
//! TX queue of a port, polls a burst, runs every frame through the engine to
//! completion, and sends what the engine produced in batches. It never
//! blocks and takes no lock.

pub mod sink;

use crate::dpdk::{self, Eal, MbufBatch, Mempool, RxQueue, TxQueue};
use crate::engine::host::{CsumStatus, Host, RxMeta};
use crate::engine::tcp::TcpEngine;
use crate::engine::time::Instant as EngineInstant;
use crate::telemetry::{Counter, Counters};
use sink::MbufSink;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After this many empty polls in a row, an idle worker may sleep.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 1024;
/// How often timers, control commands and sysctls are looked at.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(1);

/// What a worker thread owns.
pub struct Worker {
    pub id: u16,
    pub eal: Eal,
    pub core: Option<core_affinity::CoreId>,
    pub rxq: RxQueue,
    pub txq: TxQueue,
    pub pool: Arc<Mempool>,
    pub host: Host,
    pub tcp: TcpEngine,
    pub counters: Arc<Counters>,
    pub stop: Arc<AtomicBool>,
    /// 0 = pure busy polling (production); tests on shared cores sleep a little when idle.
    pub idle_sleep: Duration,
    /// The port computes IPv4/TCP checksums on transmit.
    pub tx_csum_offload: bool,
    /// Engine time zero.
    pub epoch: Instant,
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
        let mut sink = MbufSink::new(&pool, self.tx_csum_offload);
        let mut idle_polls = 0u32;
        let mut ready = Vec::new();
        let mut last_housekeeping = Instant::now();
        let mut sysctl_refresh = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                last_housekeeping = Instant::now();
                let now = EngineInstant::from_nanos(self.epoch.elapsed().as_nanos() as u64);
                sysctl_refresh += 1;
                if sysctl_refresh % 100 == 0 {
                    self.tcp.refresh_sysctls();
                }
                self.tcp.poll(now, &mut self.host.tx_context(), &mut sink);
                self.flush(&mut sink);
            }
            let n = self.rxq.rx_burst(&mut rx);
            if n == 0 {
                self.flush(&mut sink);
                idle_polls = idle_polls.saturating_add(1);
                if !self.idle_sleep.is_zero() && idle_polls >= IDLE_POLLS_BEFORE_SLEEP {
                    std::thread::sleep(self.idle_sleep);
                }
                continue;
            }
            idle_polls = 0;
            let now = EngineInstant::from_nanos(self.epoch.elapsed().as_nanos() as u64);
            for m in rx.drain() {
                let meta = RxMeta {
                    ip_csum: csum_status(m.rx_ip_csum()),
                    l4_csum: csum_status(m.rx_l4_csum()),
                    rss_hash: m.rss_hash(),
                };
                self.host.rx(now, m.data(), meta, &mut self.tcp, &mut sink);
                if sink.pending() >= dpdk::BURST {
                    self.flush(&mut sink);
                }
            }
            self.tcp.drain_ready(&mut ready);
            // No application yet: events are dropped; closed connections are freed by the engine.
            ready.clear();
            self.flush(&mut sink);
        }
        self.eal.unregister_thread();
    }

    fn flush(&mut self, sink: &mut MbufSink<'_>) {
        let dropped = sink.flush(&mut self.txq);
        if dropped > 0 {
            self.counters.add(Counter::TxDrops, dropped as u64);
        }
        self.counters.add(Counter::TxDrops, sink.take_alloc_failures());
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
