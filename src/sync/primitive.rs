//! Synchronisation primitives that become loom's under `cfg(loom)`, as
//! s2n-quic's `sync/primitive.rs` does: code written against this module is
//! model-checked by loom unchanged.

#[cfg(not(loom))]
pub use std::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard,
};

#[cfg(loom)]
pub use loom::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering},
    Arc, Mutex, MutexGuard,
};

/// Thread handles and parking; loom's are scheduled by the model, which
/// reports a thread parked for good (a lost wakeup) as a deadlock.
pub mod thread {
    #[cfg(not(loom))]
    pub use std::thread::{current, park, park_timeout, Thread, ThreadId};

    #[cfg(loom)]
    pub use loom::thread::{current, park, Thread, ThreadId};

    /// loom has no clock: a timed park waits for an unpark, so models block
    /// without a timeout.
    #[cfg(loom)]
    pub fn park_timeout(_timeout: std::time::Duration) {
        park()
    }
}

/// loom's `UnsafeCell` tracks every access and reports a read racing a
/// write; its API is closure-based (`with`/`with_mut`). This wrapper gives
/// std's cell the same API so the ring is written once.
#[cfg(loom)]
pub use loom::cell::UnsafeCell;

#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Run `f` with a shared pointer to the value.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Run `f` with an exclusive pointer to the value.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Back off inside a wait loop. Under loom this must yield, or the model
/// checker would explore the spinning thread forever.
#[inline]
pub fn spin_wait(spins: &mut u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *spins = spins.saturating_add(1);
        if *spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// An `Arc` that can be replaced atomically (RCU-style publication: readers
/// never block, a writer swaps in a new value). arc-swap in production; under
/// loom a mutex around the `Arc`, which gives the model the same
/// acquire/release edge from the writer to every reader that arc-swap gives
/// the hardware (loom cannot see arc-swap's own std atomics).
pub struct ArcCell<T> {
    #[cfg(not(loom))]
    inner: arc_swap::ArcSwap<T>,
    #[cfg(loom)]
    inner: Mutex<Arc<T>>,
}

impl<T> ArcCell<T> {
    pub fn new(value: Arc<T>) -> Self {
        #[cfg(not(loom))]
        let inner = arc_swap::ArcSwap::new(value);
        #[cfg(loom)]
        let inner = Mutex::new(value);
        ArcCell { inner }
    }

    /// Run `f` on the current value (which stays alive while `f` runs).
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(loom))]
        {
            f(&self.inner.load())
        }
        #[cfg(loom)]
        {
            f(&self.load_full())
        }
    }

    /// The current value, with its own reference.
    pub fn load_full(&self) -> Arc<T> {
        #[cfg(not(loom))]
        {
            self.inner.load_full()
        }
        #[cfg(loom)]
        {
            super::unpoison(self.inner.lock()).clone()
        }
    }

    /// Publish `value`; readers that loaded the previous one keep it alive.
    pub fn store(&self, value: Arc<T>) {
        #[cfg(not(loom))]
        self.inner.store(value);
        #[cfg(loom)]
        {
            let old = std::mem::replace(&mut *super::unpoison(self.inner.lock()), value);
            drop(old);
        }
    }
}

/// Run a loom model check with the preemption bound every model in this
/// crate uses.
#[cfg(all(test, loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}
