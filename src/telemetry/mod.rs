//! Telemetry: how what the workers count and time leaves the process.
//! It stands above the engine; the counters and metric names themselves
//! are in [`crate::stats`], at the bottom.
//!
//! - [`latency`]: per-worker HdrHistograms, recorded without locks and
//!   merged in the control thread every ~500 ms without stopping anyone.
//! - [`control`]: the Unix control socket `dlisten stats` reads (text and
//!   JSON).
//! - [`event_log`]: one JSON line per application-visible event.
//! - [`prometheus`]: the Prometheus text format of everything above.
//! - [`metrics_server`]: `/metrics` and `/health` over HTTP (`--metrics`).
//! - [`text`]: the `ss -lnt` listing.
//! - [`capture`]: `dlisten capture`: frames copied by the workers, as pcapng.

pub mod capture;
pub mod control;
pub mod control_client;
pub mod event_log;
pub mod latency;
pub mod metrics_server;
pub mod prometheus;
pub mod text;

pub use control::{default_socket_path, format_stats, ControlListener, ControlServer, StatsSnapshot, StatsSource};
pub use event_log::{AppEvent, EventLog, EventSender};
pub use latency::{LatencyHub, LatencySender, LatencySnapshot, WorkerLatency};
pub use metrics_server::{Health, MetricsListener, MetricsServer};
pub use prometheus::{format_metrics, MetricsSnapshot, MetricsSource};
pub use text::format_ss_lnt;
