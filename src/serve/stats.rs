//! What `dlisten stats` and the periodic line read from a running server.

use super::live::Live;
use crate::engine::socket::Stack;
use crate::stats::{CounterSnapshot, Counters, Gauges, Runtime};
use crate::telemetry::capture::CaptureHub;
use crate::telemetry::control::{StatsSnapshot, StatsSource};
use crate::telemetry::latency::LatencyHub;
use crate::telemetry::prometheus::{LatencyBuckets, LatencyHistogram, ListenerLabel, ListenerQueues};
use crate::telemetry::{Health, MetricsSnapshot, MetricsSource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub(super) struct ServeStats {
    pub started: Instant,
    /// One per worker.
    pub counters: Vec<Arc<Counters>>,
    /// One per worker.
    pub runtimes: Vec<Arc<Runtime>>,
    /// One per worker.
    pub gauges: Vec<Arc<Gauges>>,
    pub stack: Arc<Stack>,
    /// The main thread's own counters (the link's changes).
    pub main: Arc<Counters>,
    pub hub: Arc<Mutex<LatencyHub>>,
    /// Each listener's metric labels by id, taken at start: its latency
    /// histograms outlive it (closed at shutdown) under the same labels.
    pub listener_labels: HashMap<u64, ListenerLabel>,
    pub health: Health,
    /// The workers' taps, for `capture` on the control socket.
    pub capture: Arc<CaptureHub>,
    /// `set KEY VALUE` on the control socket.
    pub live: Option<Arc<Live>>,
    /// One per application thread (`--app-threads N`): the drain's counts.
    pub app_threads: Vec<Arc<Counters>>,
}

impl ServeStats {
    /// The latency hub with what the workers sent so far merged in.
    pub fn drained_hub(&self) -> MutexGuard<'_, LatencyHub> {
        let mut hub = crate::sync::lock(&self.hub);
        hub.drain();
        hub
    }
}

impl ServeStats {
    /// Every counter not a worker's: the socket layer's, the main thread's
    /// and the application threads'.
    pub fn control_counters(&self) -> CounterSnapshot {
        let threads = self.app_threads.iter().map(|c| c.snapshot());
        CounterSnapshot::sum([self.stack.counters(), self.main.snapshot()].into_iter().chain(threads).collect::<Vec<_>>().iter())
    }
}

impl StatsSource for ServeStats {
    fn snapshot(&self) -> StatsSnapshot {
        let (latency_table, latency) = {
            let hub = self.drained_hub();
            (hub.percentile_table(), hub.rows())
        };
        StatsSnapshot {
            uptime: self.started.elapsed(),
            per_worker: self.counters.iter().map(|c| c.snapshot()).collect(),
            control: self.control_counters(),
            listeners: self.stack.listeners(),
            latency_table,
            latency,
            runtime: self.runtimes.iter().map(|r| r.snapshot()).collect(),
            gauges: self.gauges.iter().map(|g| g.snapshot()).collect(),
        }
    }

    fn capture(&self) -> Option<Arc<CaptureHub>> {
        Some(self.capture.clone())
    }

    fn set(&self, key: &str, value: &str) -> Result<String, String> {
        match &self.live {
            Some(live) => live.set(key, value),
            None => Err("this server cannot change settings while serving".into()),
        }
    }
}

impl MetricsSource for ServeStats {
    fn metrics(&self) -> MetricsSnapshot {
        let label = |id: u64, hub: &LatencyHub| {
            self.listener_labels.get(&id).cloned().unwrap_or_else(|| ListenerLabel { listener: hub.listener_label(id), cpu: None })
        };
        let latency = {
            let hub = self.drained_hub();
            // Per listener only: the "all" histograms would count every
            // sample twice in a PromQL sum.
            hub.histograms()
                .filter_map(|(id, metric, h)| {
                    Some(LatencyHistogram { label: label(id?, &hub), metric, buckets: LatencyBuckets::from_histogram(h) })
                })
                .collect()
        };
        MetricsSnapshot {
            uptime: self.started.elapsed(),
            per_worker: self.counters.iter().map(|c| c.snapshot()).collect(),
            control: self.control_counters(),
            runtime: self.runtimes.iter().map(|r| r.snapshot()).collect(),
            listeners: self
                .stack
                .listeners()
                .iter()
                .map(|l| ListenerQueues {
                    label: ListenerLabel { listener: l.local.to_string(), cpu: l.incoming_cpu },
                    accept_queue: l.recv_q,
                    accept_queue_max: l.send_q,
                    syn_queue: l.syn_qlen,
                })
                .collect(),
            latency,
            serving: self.health.is_serving(),
        }
    }
}
