//! Telemetry: counters named after Linux's MIB counters, kept per worker and
//! summed on read.

pub mod counters;

pub use counters::{Counter, CounterSnapshot, Counters};
