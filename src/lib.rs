//! dlisten: a user-space TCP listener on DPDK.
//!
//! The folder layout is the architecture, bottom up:
//! - [`wire`]: packet formats, pure and zero-copy (no alloc, no unsafe).
//! - [`stats`]: what is counted and timed: counters with Linux's MIB names,
//!   the latency metric names, the cycles per stage of a worker's loop.
//! - [`sync`]: the lock-free ring behind the accept queues and the wait
//!   queue of blocking accepts, model-checked with loom.
//! - [`engine`]: the sans-IO protocol engine (host behaviour, listen path,
//!   connections), driven by packets and a clock it is handed.
//! - [`app`]: the built-in services (http, echo, discard, hold) as pure
//!   state machines over bytes.
//! - [`dpdk`]: the DPDK binding: EAL, ports, queues, mempools, mbufs, the TSC.
//! - [`testkit`]: frames, checks and an engine rig for tests, benches and
//!   fuzz targets.
//! - [`telemetry`]: how counters, latencies and cycles leave the process
//!   (control socket, event log, text tables).
//! - [`api`]: sockets for application threads: blocking accept, connections,
//!   a poller, and the worker's half of them.
//! - [`worker`]: the per-core run-to-completion loop tying a port queue to an engine.
//! - [`flood`]: `dlisten flood`, the SYN and handshake load generator.
//! - [`serve`]: `dlisten serve`, everything above brought up on one port.
//! - [`cli`]: the `dlisten` command line: flags, defaults, and the
//!   configuration they make.
//!
//! `unsafe` is denied everywhere but in the two modules that need it; every
//! `unsafe` block there has a `// SAFETY:` comment.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
// FFI: DPDK's C API (and the C shim over its `static inline` fast path).
#[allow(unsafe_code)]
pub mod dpdk;
pub mod engine;
pub mod flood;
pub mod serve;
pub mod stats;
// The lock-free ring hands values through slots that several threads touch.
#[allow(unsafe_code)]
pub mod sync;
pub mod telemetry;
pub mod testkit;
pub mod wire;
pub mod worker;
