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
//! - [`wait_queue::WaitQueue`]: threads parked until a waker unparks them,
//!   without a lost wakeup and without cost for the waker while nobody waits.
//! - [`lock`] / [`unpoison`]: taking a lock whether or not it is poisoned.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod mpmc_ring;
pub mod primitive;
pub mod wait_queue;

pub use mpmc_ring::MpmcRing;
pub use wait_queue::{WaitQueue, Waiter};

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

/// For tests: yield until `cond` holds (another thread got somewhere),
/// failing after 20 s so that a bug fails the test instead of hanging it.
#[cfg(test)]
pub(crate) fn yield_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}
