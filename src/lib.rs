//! dlisten: a user-space TCP listener on DPDK.
//!
//! The folder layout is the architecture:
//! - [`wire`]: packet formats, pure and zero-copy (no alloc, no unsafe).
//! - [`engine`]: the sans-IO protocol engine (host behaviour, listen path,
//!   connections), driven by packets and a clock it is handed.
//! - [`dpdk`]: the only FFI; every `unsafe` block lives there.
//! - [`worker`]: the per-core run-to-completion loop tying a port queue to an engine.
//! - [`telemetry`]: counters with Linux's MIB names.
//! - [`sync`]: the lock-free ring behind the accept queues, model-checked with
//!   loom; the only `unsafe` outside [`dpdk`].

pub mod api;
pub mod app;
/// The `dlisten` command line: flags, defaults, and the configuration they make.
pub mod cli;
pub mod dpdk;
pub mod engine;
pub mod flood;
pub mod serve;
pub mod stats;
pub mod sync;
pub mod telemetry;
pub mod testkit;
pub mod wire;
pub mod worker;
