//! dlisten: a user-space TCP listener on DPDK.
//!
//! The folder layout is the architecture, bottom up:
//! - [`wire`]: packet formats, pure and zero-copy (no alloc, no unsafe).
//! - [`stats`]: counters with Linux's MIB names and the latency metric names.
//! - [`sync`]: the lock-free ring behind the accept queues and the wait
//!   queue of blocking accepts, model-checked with loom.
//! - [`engine`]: the sans-IO protocol engine (host behaviour, listen path,
//!   connections), driven by packets and a clock it is handed.
//! - [`app`]: the built-in services (http, echo, discard, hold) as pure
//!   state machines over bytes.
//! - [`dpdk`]: the DPDK binding: EAL, ports, queues, mempools, mbufs.
//! - [`worker`]: the per-core run-to-completion loop tying a port queue to an engine.
//! - [`api`]: sockets for application threads: blocking accept, connections,
//!   a poller, and the worker's half of them.
//! - [`telemetry`]: how counters and latencies leave the process (control
//!   socket, event log, `ss -lnt`).
//! - [`serve`]: `dlisten serve`, everything above brought up on one port.
//! - [`flood`]: `dlisten flood`, the SYN and handshake load generator.
//!
//! `unsafe` is denied everywhere but in the two modules that need it; every
//! `unsafe` block there has a `// SAFETY:` comment.
#![deny(unsafe_code)]

pub mod api;
pub mod app;
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
pub mod wire;
pub mod worker;
