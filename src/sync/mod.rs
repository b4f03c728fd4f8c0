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
//! - [`lock`] / [`unpoison`]: taking a lock whether or not it is poisoned.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod mpmc_ring;
pub mod primitive;

pub use mpmc_ring::MpmcRing;

use std::sync::{LockResult, Mutex, MutexGuard, PoisonError};

/// Lock `mutex` even if a thread panicked while holding it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    unpoison(mutex.lock())
}

/// The guard of any lock call (`Mutex::lock`, `RwLock::read`/`write`, loom's
/// `Mutex::lock`), poisoned or not: a panic elsewhere must not take the
/// listen path down with it.
pub fn unpoison<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}
