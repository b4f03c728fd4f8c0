//! Telemetry: counters named after Linux's MIB counters, kept per worker and
//! summed on read; latency histograms merged across workers; live stats over
//! a control socket; the JSON event log.
//!
//! Wiring into serve (for the integrator):
//! - `let (mut hub, lat_tx) = LatencyHub::new();` each worker owns a
//!   `WorkerLatency`, calls `record(listener_id, metric, nanos)` on the hot
//!   path and `lat_tx.send(lat.take())` every ~500 ms; the control thread calls
//!   `hub.drain()` before each report and names listeners with
//!   `hub.set_listener_label(info.id, info.local.to_string())`.
//! - serve implements `StatsSource` (uptime, worker counter snapshots,
//!   `stack.counters()`, `stack.listeners()`, `hub.percentile_table()`,
//!   `hub.rows()`), starts `ControlServer::start(&path, source)` with
//!   `default_socket_path(name)` or `--control-socket`, and prints
//!   `format_stats(&now, Some(&prev))` every `--stats-interval`.
//! - At shutdown, `hub.histograms()` + `hub.write_hgrm(..)` export `.hgrm` files.
//! - `--event-log FILE`: `EventLog::open(path)`, clone the `EventSender` into
//!   workers and apps, `log.close()` after they stop.

pub mod control;
pub mod counters;
pub mod event_log;
pub mod latency;

pub use control::{default_socket_path, format_stats, ControlServer, StatsSnapshot, StatsSource};
pub use counters::{Counter, CounterSnapshot, Counters};
pub use event_log::{AppEvent, EventLog, EventSender};
pub use latency::{LatencyHub, LatencySender, LatencySnapshot, Metric, WorkerLatency};
