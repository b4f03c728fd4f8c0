//! Lock-free building blocks shared across threads, written once and
//! model-checked with loom.
//!
//! This is the one place outside [`crate::dpdk`] with `unsafe`: a bounded
//! ring has to hand values through slots that several threads touch, which
//! safe Rust cannot express without a lock. Every `unsafe` block carries a
//! `// SAFETY:` comment.
//!
//! - [`primitive`]: std atomics normally, loom's under `cfg(loom)`, so the
//!   same code runs in production and under the model checker.
//! - [`mpmc_ring::MpmcRing`]: Dmitry Vyukov's bounded MPMC queue.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod mpmc_ring;
pub mod primitive;

pub use mpmc_ring::MpmcRing;
