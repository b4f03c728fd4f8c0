//! What `dlisten stats` and the periodic line read from a running server.

use crate::engine::socket::Stack;
use crate::stats::{Counters, Runtime};
use crate::telemetry::control::{StatsSnapshot, StatsSource};
use crate::telemetry::latency::LatencyHub;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub(super) struct ServeStats {
    pub started: Instant,
    /// One per worker.
    pub counters: Vec<Arc<Counters>>,
    /// One per worker.
    pub runtimes: Vec<Arc<Runtime>>,
    pub stack: Arc<Stack>,
    pub hub: Arc<Mutex<LatencyHub>>,
}

impl ServeStats {
    /// The latency hub with what the workers sent so far merged in.
    pub fn drained_hub(&self) -> MutexGuard<'_, LatencyHub> {
        let mut hub = crate::sync::lock(&self.hub);
        hub.drain();
        hub
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
            control: self.stack.counters(),
            listeners: self.stack.listeners(),
            latency_table,
            latency,
            runtime: self.runtimes.iter().map(|r| r.snapshot()).collect(),
        }
    }
}
