//! A wait queue: threads parked until a condition they share with a waker
//! holds (Linux's `wait_queue_head`, for application threads).
//!
//! The protocol, for a condition on some shared state `S` (the accept
//! queue's rings and its `closed` flag, which push, grow and close change):
//! - waiter: [`WaitQueue::register`] (the thread goes on the list, then
//!   `waiting` is raised, then a SeqCst fence), check `S`, park; check again
//!   after every return from park; drop the [`Waiter`] when done.
//! - waker: change `S`, then [`WaitQueue::wake_all`] (a SeqCst fence, then
//!   `waiting` is read; only when it is not zero is the list locked and
//!   every thread on it unparked).
//!
//! No wakeup is lost. The two fences order the waiter's "raise `waiting`,
//! then read `S`" against the waker's "write `S`, then read `waiting`" (the
//! store-buffering pattern): the waiter sees the change, or the waker sees
//! the waiter. A waker that sees it finds the thread on the list (it was
//! added before `waiting` was raised) and unparks it; an unpark that comes
//! before the park leaves the thread's token, so that park returns at once.
//! Every waiter is woken, not one: a woken thread that finds nothing
//! (another acceptor was faster) parks again, and no wakeup can go to a
//! thread that is already leaving while another stays asleep.
//!
//! A waker that finds `waiting == 0` pays one fence and one load: workers
//! queue children at line rate and usually nobody is blocked.

use super::primitive::{fence, thread, AtomicUsize, Mutex, Ordering};
use super::unpoison;
use std::marker::PhantomData;

/// Threads waiting for a condition; see the module doc for the protocol.
pub struct WaitQueue {
    /// Threads on `threads`; what a wake reads when nobody waits.
    waiting: AtomicUsize,
    threads: Mutex<Vec<thread::Thread>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub fn new() -> Self {
        WaitQueue { waiting: AtomicUsize::new(0), threads: Mutex::new(Vec::new()) }
    }

    /// Put the calling thread on the queue until the returned [`Waiter`] is
    /// dropped. Check the condition after this, then park.
    pub fn register(&self) -> Waiter<'_> {
        let me = thread::current();
        let id = me.id();
        unpoison(self.threads.lock()).push(me);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // Orders the raise before the caller's check of the condition.
        fence(Ordering::SeqCst);
        Waiter { queue: self, id, _not_send: PhantomData }
    }

    /// Threads registered now.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Unpark every registered thread. Call after changing the condition.
    pub fn wake_all(&self) {
        // Orders the caller's change of the condition before the read of `waiting`.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        for t in unpoison(self.threads.lock()).iter() {
            t.unpark();
        }
    }
}

/// A thread's place on a [`WaitQueue`]; leaving it takes the thread off.
pub struct Waiter<'a> {
    queue: &'a WaitQueue,
    id: thread::ThreadId,
    /// Not `Send`: the thread that registered is the one that parks.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut threads = unpoison(self.queue.threads.lock());
        if let Some(i) = threads.iter().position(|t| t.id() == self.id) {
            threads.swap_remove(i);
        }
        drop(threads);
        self.queue.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
