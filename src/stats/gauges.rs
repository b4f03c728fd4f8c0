//! What a worker holds right now, as opposed to what it counted: the
//! figures `ss -s`, `/proc/net/sockstat` and a mempool dump give on Linux
//! and DPDK. A soak reads them to see that everything it took was given back.
//!
//! One worker writes (relaxed stores, every half second) and readers copy.

use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

/// A worker's gauges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Gauge {
    /// Connections in this worker's table (ESTABLISHED through LAST_ACK; `ss -s` estab and closing).
    Connections,
    /// TIME_WAIT entries (sockstat `tw`).
    TimeWait,
    /// Request socks, SYN_RECV (sockstat's part of `inuse` that `ss -s` calls synrecv).
    RequestSocks,
    /// Bytes of connection buffers in use (sockstat `mem`, in bytes rather than pages).
    ConnMemBytes,
    /// mbufs of the worker's mempool not in the pool or its caches: in the
    /// RX ring (refilled at once, so about --rx-desc when idle), the TX ring,
    /// or held by the worker (`rte_mempool_in_use_count`).
    MbufsInUse,
}

impl Gauge {
    pub const ALL: &'static [Gauge] =
        &[Gauge::Connections, Gauge::TimeWait, Gauge::RequestSocks, Gauge::ConnMemBytes, Gauge::MbufsInUse];
    pub const COUNT: usize = Self::ALL.len();

    /// The key `dlisten stats --json` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Gauge::Connections => "connections",
            Gauge::TimeWait => "time_wait",
            Gauge::RequestSocks => "request_socks",
            Gauge::ConnMemBytes => "conn_mem_bytes",
            Gauge::MbufsInUse => "mbufs_in_use",
        }
    }
}

/// One worker's gauges. Single writer, many readers.
#[derive(Default)]
pub struct Gauges {
    cells: CachePadded<[AtomicU64; Gauge::COUNT]>,
}

impl Gauges {
    pub fn new() -> Gauges {
        Gauges::default()
    }

    /// Only the owning worker calls this.
    #[inline]
    pub fn set(&self, g: Gauge, v: u64) {
        self.cells[g as usize].store(v, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> GaugeSnapshot {
        GaugeSnapshot(std::array::from_fn(|i| self.cells[i].load(Ordering::Relaxed)))
    }
}

/// A copy of one worker's gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GaugeSnapshot([u64; Gauge::COUNT]);

impl GaugeSnapshot {
    pub fn get(&self, g: Gauge) -> u64 {
        self.0[g as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_holds_the_last_value_set_not_a_sum() {
        let g = Gauges::new();
        g.set(Gauge::TimeWait, 7);
        g.set(Gauge::TimeWait, 3);
        g.set(Gauge::MbufsInUse, 1024);
        let s = g.snapshot();
        assert_eq!(s.get(Gauge::TimeWait), 3);
        assert_eq!(s.get(Gauge::MbufsInUse), 1024);
        assert_eq!(s.get(Gauge::Connections), 0);
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = Gauge::ALL.iter().map(|g| g.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Gauge::COUNT);
    }
}
