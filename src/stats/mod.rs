//! What dlisten counts and times, at the bottom of the crate so every layer
//! can count: counters with Linux's `nstat` names, kept per worker and
//! summed on read, the names of the latency metrics, and the cycles each
//! stage of a worker's loop spends. Pure: no I/O, no
//! threads; `telemetry` is where these leave the process.
#![forbid(unsafe_code)]

pub mod counters;
pub mod gauges;
pub mod metric;
pub mod runtime;

pub use counters::{Counter, CounterSnapshot, Counters};
pub use gauges::{Gauge, GaugeSnapshot, Gauges};
pub use metric::Metric;
pub use runtime::{Runtime, RuntimeSnapshot, Stage};
