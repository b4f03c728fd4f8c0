//! Telemetry: counters named after Linux's MIB counters, kept per worker and
//! summed on read; latency histograms merged across workers; live stats over
//! a control socket; the JSON event log.

pub mod control;
pub mod counters;
pub mod event_log;
pub mod latency;

pub use control::{default_socket_path, format_stats, ControlServer, StatsSnapshot, StatsSource};
pub use counters::{Counter, CounterSnapshot, Counters};
pub use event_log::{AppEvent, EventLog, EventSender};
pub use latency::{LatencyHub, LatencySender, LatencySnapshot, Metric, WorkerLatency};
