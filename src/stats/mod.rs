//! What dlisten counts and times, at the bottom of the crate so every layer
//! can count: counters with Linux's `nstat` names, kept per worker and
//! summed on read, and the names of the latency metrics. Pure: no I/O, no
//! threads; `telemetry` is where these leave the process.
#![forbid(unsafe_code)]

pub mod counters;
pub mod metric;

pub use counters::{Counter, CounterSnapshot, Counters};
pub use metric::Metric;
