//! The accept queue: a bounded lock-free MPMC ring between the workers (many
//! producers, one per core) and the application's acceptors (one or many).
//!
//! Admission follows Linux exactly: `sk_acceptq_is_full()` is
//! `sk_ack_backlog > sk_max_ack_backlog`, checked *before* the add, so up to
//! `max_ack_backlog + 1` children can be queued. Here the check and the add
//! are one CAS on `ack_backlog` (Linux does them under the listener lock), so
//! the bound is exact even with many workers racing.
//!
//! Capacity: the ring is [`MpmcRing`] (Vyukov's bounded MPMC ring, in
//! `crate::sync` so it can hold the `unsafe` this module forbids), sized
//! `max_ack_backlog + 1` at listen(). Because `ack_backlog` is reserved
//! before a push and released after a pop, the ring never holds more than
//! `max_ack_backlog + 1` entries, so a push finds it full only in one
//! transient case: with several acceptors, a slow one still owns the slot a
//! lap behind while a faster one already released its reservation. That
//! push is refused like an overflow (the reservation is given back), which is
//! what Linux would do a moment earlier. A later listen() with a larger
//! backlog grows the ring by republishing a bigger one
//! ([`AcceptQueue::grow`]); it never shrinks. We chose this over sizing every
//! ring for the clamp (`somaxconn + 1` = 4097 slots of 40 bytes, 160 KiB per
//! listener, times every reuseport member) because most listeners keep small
//! backlogs and re-listen is rare. A fixed-size ring cannot be resized in
//! place (positions map to `pos % capacity`), so grow publishes a bigger
//! ring and retires the old one until acceptors have drained it. The ring
//! has at least two slots (Vyukov's scheme needs them), so `listen(fd, 0)`
//! gets two slots for its one admitted child.
//!
//! Publication of a new ring (the old one is retired, not copied: see
//! [`AcceptQueue::grow`]) and `close` both need to know when no producer
//! still uses the old state. Producers announce themselves in one of two
//! in-flight counters chosen by an epoch bit (a two-slot SRCU): the control
//! plane flips the epoch and waits for the old slot to drain, which is bounded
//! by the few instructions of one push, even under a SYN flood.
//!
//! Blocking accept is not here (the engine never sleeps or reads a clock):
//! an acceptor registers on the queue's [`WaitQueue`] with
//! [`AcceptQueue::register_waiter`], and every push, grow and close wakes
//! the registered ones; `crate::api::accept` parks and keeps the deadline.
//!
//! Model checking: the admission counter, the epoch/in-flight protocol,
//! `closed`, the ring and the wait queue use `crate::sync::primitive`, so
//! `--cfg loom` checks them (tests in `loom_tests` below, and the blocking
//! accept in `crate::api::accept`); the ring publication ([`ArcCell`],
//! arc-swap) is modelled as a mutex-protected `Arc`.

use crate::sync::primitive::{fence, spin_wait, Arc, ArcCell, AtomicBool, AtomicU32, AtomicUsize, Mutex, Ordering};
use crate::sync::{unpoison, MpmcRing, WaitQueue, Waiter};
use crossbeam::utils::CachePadded;

/// Bounded MPMC accept queue with Linux's backlog+1 admission.
pub struct AcceptQueue<T> {
    /// The current ring; replaced (never shrunk) by [`AcceptQueue::grow`].
    ring: ArcCell<MpmcRing<T>>,
    /// Rings replaced by [`AcceptQueue::grow`] that still held children,
    /// oldest first; acceptors drain them before `ring`.
    old: ArcCell<Vec<Arc<MpmcRing<T>>>>,
    /// `sk_ack_backlog`: children reserved or queued.
    ack_backlog: CachePadded<AtomicU32>,
    /// Producers inside a push, per epoch slot.
    in_flight: [CachePadded<AtomicUsize>; 2],
    epoch: AtomicUsize,
    /// Set once by close(); producers then refuse, acceptors wake up.
    closed: AtomicBool,
    /// Acceptors blocked in accept, woken by every push, grow and close.
    waiters: WaitQueue,
    /// Serialises grow and close (control plane only); modelled by loom.
    control: Mutex<()>,
}

impl<T> AcceptQueue<T> {
    /// A queue that can hold `max_ack_backlog + 1` entries.
    pub fn new(max_ack_backlog: u32) -> Self {
        AcceptQueue {
            ring: ArcCell::new(Arc::new(MpmcRing::new(Self::capacity_for(max_ack_backlog)))),
            old: ArcCell::new(Arc::new(Vec::new())),
            ack_backlog: CachePadded::new(AtomicU32::new(0)),
            in_flight: [CachePadded::new(AtomicUsize::new(0)), CachePadded::new(AtomicUsize::new(0))],
            epoch: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            waiters: WaitQueue::new(),
            control: Mutex::new(()),
        }
    }

    fn capacity_for(max_ack_backlog: u32) -> usize {
        // backlog + 1: Linux's full check runs before the add.
        max_ack_backlog as usize + 1
    }

    /// `sk_ack_backlog`: children queued (or being queued) and not yet accepted.
    pub fn len(&self) -> u32 {
        self.ack_backlog.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the current ring.
    pub fn capacity(&self) -> usize {
        self.ring.with(|r| r.capacity())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Queue `item` unless the queue is full (`ack_backlog > max_ack_backlog`,
    /// Linux's `sk_acceptq_is_full`) or closed. On refusal the item comes back.
    pub fn push(&self, item: T, max_ack_backlog: u32) -> Result<(), T> {
        // Reserve: the full check and sk_acceptq_added() as one step.
        let reserved = self.ack_backlog.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            if n > max_ack_backlog {
                None
            } else {
                Some(n + 1)
            }
        });
        if reserved.is_err() {
            return Err(item);
        }
        let slot = self.epoch.load(Ordering::SeqCst) & 1;
        self.in_flight[slot].fetch_add(1, Ordering::SeqCst);
        // Checked after announcing ourselves: close() sets `closed` (or grow
        // publishes a ring) then waits for announced producers, so either we
        // see it or close sees us. The store-then-load on both sides needs
        // the SeqCst fences (Dekker); loom checks it only with fences.
        fence(Ordering::SeqCst);
        let result = if self.closed.load(Ordering::SeqCst) { Err(item) } else { self.ring.with(|r| r.push(item)) };
        self.in_flight[slot].fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(()) => {
                self.waiters.wake_all();
                Ok(())
            }
            Err(item) => {
                self.release();
                Err(item)
            }
        }
    }

    /// Take the oldest child, if any (non-blocking accept).
    pub fn pop(&self) -> Option<T> {
        // Children queued before a grow are accepted first.
        let from_retired =
            self.old.with(|retired| (!retired.is_empty()).then(|| retired.iter().find_map(|r| r.pop())));
        match from_retired {
            Some(Some(item)) => {
                self.release();
                return Some(item);
            }
            Some(None) => self.prune_retired(),
            None => {}
        }
        let item = self.ring.with(|r| r.pop())?;
        self.release();
        Some(item)
    }

    /// `sk_acceptq_removed`.
    fn release(&self) {
        let _ = self.ack_backlog.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Have the calling thread unparked by every later push, grow and close,
    /// until the returned guard is dropped. A blocking acceptor registers,
    /// then tries [`AcceptQueue::pop`] and [`AcceptQueue::is_closed`], then
    /// parks (`crate::sync::wait_queue` says why no wakeup is lost).
    pub fn register_waiter(&self) -> Waiter<'_> {
        self.waiters.register()
    }

    /// Acceptors registered with [`AcceptQueue::register_waiter`].
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Wait until every producer that may have seen the previous state
    /// (ring or `closed`) has finished its push.
    fn synchronize(&self) {
        let old = self.epoch.fetch_add(1, Ordering::SeqCst) & 1;
        fence(Ordering::SeqCst);
        let mut spins = 0u32;
        while self.in_flight[old].load(Ordering::SeqCst) != 0 {
            spin_wait(&mut spins);
        }
    }

    /// Make room for `max_ack_backlog + 1` entries (listen() again with a
    /// larger backlog). Call before publishing the larger `max_ack_backlog`.
    pub fn grow(&self, max_ack_backlog: u32) {
        let _c = unpoison(self.control.lock());
        let cap = Self::capacity_for(max_ack_backlog);
        let cur = self.ring.load_full();
        if cur.capacity() >= cap {
            return;
        }
        // Retire `cur` instead of moving its children into the new ring:
        // producers push to the new ring as soon as it is published, so a
        // move would queue children added before the grow behind children
        // added during it. Acceptors drain retired rings, oldest first,
        // before the current one. Retired rings from an earlier grow are
        // sealed (no producer can reach them), so an empty one stays empty
        // and is dropped here.
        let mut retired: Vec<Arc<MpmcRing<T>>> =
            self.old.with(|old| old.iter().filter(|r| !r.is_empty()).cloned().collect());
        retired.push(cur);
        self.old.store(Arc::new(retired));
        self.ring.store(Arc::new(MpmcRing::new(cap)));
        // After this no producer still pushes to `cur`: it is sealed.
        self.synchronize();
        // An acceptor that checked while the rings moved may have read `old`
        // before `cur` joined it and `ring` after `cur` left it, missing the
        // children in `cur` whose pushes came before it registered (found by
        // loom): have it look again.
        self.waiters.wake_all();
    }

    /// Forget retired rings once acceptors emptied them. Only when no grow
    /// runs (`control` is free): then every retired ring is sealed, and one
    /// found empty stays empty.
    fn prune_retired(&self) {
        if let Ok(_c) = self.control.try_lock() {
            if self.old.with(|old| old.iter().all(|r| r.is_empty())) {
                self.old.store(Arc::new(Vec::new()));
            }
        }
    }

    /// Refuse further pushes and wake every sleeping acceptor. After this
    /// returns no producer can still add: what [`AcceptQueue::pop`] returns
    /// from now on is all that is left (Linux: inet_csk_listen_stop).
    pub fn close(&self) {
        let _c = unpoison(self.control.lock());
        self.closed.store(true, Ordering::SeqCst);
        self.synchronize();
        self.waiters.wake_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn backlog_plus_one_rule() {
        // listen(fd, 2): the third child is still admitted (2 > 2 is false
        // before it), the fourth is refused.
        let q = AcceptQueue::new(2);
        assert_eq!(q.capacity(), 3);
        assert!(q.push(1, 2).is_ok());
        assert!(q.push(2, 2).is_ok());
        assert!(q.push(3, 2).is_ok());
        assert_eq!(q.push(4, 2), Err(4));
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.len(), 2);
        assert!(q.push(5, 2).is_ok());
        assert_eq!((q.pop(), q.pop(), q.pop(), q.pop()), (Some(2), Some(3), Some(5), None));
    }

    #[test]
    fn backlog_zero_admits_one() {
        let q = AcceptQueue::new(0);
        assert!(q.push(7, 0).is_ok());
        assert_eq!(q.push(8, 0), Err(8));
    }

    #[test]
    fn lowering_the_backlog_applies_to_the_next_push() {
        let q = AcceptQueue::new(4);
        for i in 0..4 {
            q.push(i, 4).unwrap();
        }
        // listen() again with backlog 1: 4 > 1, full until drained below.
        assert_eq!(q.push(9, 1), Err(9));
        q.pop();
        q.pop();
        q.pop();
        assert!(q.push(9, 1).is_ok());
    }

    #[test]
    fn grow_keeps_children_and_order() {
        let q = AcceptQueue::new(1);
        q.push(1, 1).unwrap();
        q.push(2, 1).unwrap();
        q.grow(5);
        assert_eq!(q.capacity(), 6);
        for i in 3..=6 {
            q.push(i, 5).unwrap();
        }
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
        q.grow(2); // never shrinks
        assert_eq!(q.capacity(), 6);
    }

    #[test]
    fn two_grows_before_any_accept_keep_order() {
        let q = AcceptQueue::new(1);
        q.push(1, 1).unwrap();
        q.push(2, 1).unwrap();
        q.grow(3);
        q.push(3, 3).unwrap();
        q.push(4, 3).unwrap();
        q.grow(7);
        q.push(5, 7).unwrap();
        assert_eq!(q.capacity(), 8);
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(q.len(), 0);
        // Drained retired rings are forgotten.
        assert!(q.old.load_full().is_empty());
    }

    #[test]
    fn closed_queue_refuses_and_keeps_what_it_had() {
        let q = AcceptQueue::new(4);
        q.push(1, 4).unwrap();
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.push(2, 4), Err(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop(), Some(1));
    }

    /// Push, grow and close unpark a registered thread; leaving unregisters.
    #[test]
    fn registered_waiters_are_woken_until_they_leave() {
        let q = AcceptQueue::new(4);
        assert_eq!(q.waiters(), 0);
        let waiter = q.register_waiter();
        assert_eq!(q.waiters(), 1);
        // Each wake leaves the token, so the park after it returns at once.
        let woken = || {
            let start = Instant::now();
            std::thread::park_timeout(Duration::from_secs(20));
            assert!(start.elapsed() < Duration::from_secs(10), "not unparked");
        };
        q.push(1u32, 4).unwrap();
        woken();
        q.grow(8);
        woken();
        q.close();
        woken();
        drop(waiter);
        assert_eq!(q.waiters(), 0);
    }

    /// Several producers and consumers, exact counts: every pushed item is
    /// popped exactly once, refusals are exactly the overflow, and the queue
    /// never holds more than backlog + 1, while a grow runs in the middle.
    #[test]
    fn stress_exact_counts() {
        const PRODUCERS: u64 = 3;
        const PER: u64 = 20_000;
        let backlog = Arc::new(AtomicU32::new(7));
        let q = Arc::new(AcceptQueue::<u64>::new(7));
        let done = Arc::new(AtomicBool::new(false));
        let tried = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (q, backlog, tried) = (q.clone(), backlog.clone(), tried.clone());
                std::thread::spawn(move || {
                    let mut pushed = Vec::new();
                    for i in 0..PER {
                        tried.fetch_add(1, Ordering::Relaxed);
                        let v = p * PER + i;
                        let max = backlog.load(Ordering::Acquire);
                        if q.push(v, max).is_ok() {
                            pushed.push(v);
                        }
                        assert!(q.len() <= 64 + 1);
                    }
                    pushed
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let (q, done) = (q.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match q.pop() {
                            Some(v) => got.push(v),
                            None if done.load(Ordering::Acquire) => {
                                while let Some(v) = q.pop() {
                                    got.push(v);
                                }
                                return got;
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        crate::sync::yield_until("a third of the pushes", || tried.load(Ordering::Relaxed) >= PER);
        q.grow(64);
        backlog.store(64, Ordering::Release);
        let mut pushed: Vec<u64> = producers.into_iter().flat_map(|p| p.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        let mut got: Vec<u64> = consumers.into_iter().flat_map(|c| c.join().unwrap()).collect();
        pushed.sort_unstable();
        got.sort_unstable();
        assert_eq!(pushed, got);
        assert_eq!(q.len(), 0);
        assert!(!pushed.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Pop,
        Relisten(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => (0u32..10).prop_map(Op::Relisten),
        ]
    }

    proptest! {
        /// The ring against a VecDeque oracle with Linux's admission rule.
        #[test]
        fn matches_vecdeque_oracle(initial in 0u32..10, ops in proptest::collection::vec(op(), 0..200)) {
            let q = AcceptQueue::new(initial);
            let mut max = initial;
            let mut oracle = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        // Linux's sk_acceptq_is_full: len > max refuses.
                        let expect_ok = oracle.len() as u32 <= max;
                        let r = q.push(v, max);
                        prop_assert_eq!(r.is_ok(), expect_ok);
                        if expect_ok { oracle.push_back(v); } else { prop_assert_eq!(r, Err(v)); }
                    }
                    Op::Pop => prop_assert_eq!(q.pop(), oracle.pop_front()),
                    Op::Relisten(b) => { q.grow(b); max = b; }
                }
                prop_assert_eq!(q.len() as usize, oracle.len());
                prop_assert!(q.capacity() > max as usize);
            }
        }
    }
}

/// Model checks of the admission protocol:
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib accept_queue`.
/// One control-plane thread at a time, as in production.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::primitive::{model, Arc as LoomArc};
    use loom::thread;

    /// listen(fd, 0): two workers race to add a child; exactly one is
    /// admitted (backlog + 1 = 1), the other gets its child back, and
    /// `ack_backlog` counts exactly what is queued.
    #[test]
    fn accept_queue_loom_two_workers_backlog_zero() {
        model(|| {
            let q = LoomArc::new(AcceptQueue::new(0));
            let workers: Vec<_> = (1..=2u32)
                .map(|v| {
                    let q = q.clone();
                    thread::spawn(move || q.push(v, 0).is_ok().then_some(v))
                })
                .collect();
            let admitted: Vec<u32> = workers.into_iter().filter_map(|w| w.join().unwrap()).collect();
            assert_eq!(admitted.len(), 1);
            assert_eq!(q.len(), 1);
            assert_eq!(q.pop(), Some(admitted[0]));
            assert_eq!(q.len(), 0);
            assert_eq!(q.pop(), None);
        });
    }

    /// Two workers add while an acceptor takes: never more than backlog + 1
    /// queued, nothing lost or duplicated, `ack_backlog` back to what is left.
    #[test]
    fn accept_queue_loom_workers_and_acceptor_race() {
        model(|| {
            let q = LoomArc::new(AcceptQueue::new(0));
            let workers: Vec<_> = (1..=2u32)
                .map(|v| {
                    let q = q.clone();
                    thread::spawn(move || q.push(v, 0).is_ok().then_some(v))
                })
                .collect();
            let first = q.pop();
            assert!(q.len() <= 1);
            let mut admitted: Vec<u32> = workers.into_iter().filter_map(|w| w.join().unwrap()).collect();
            let mut got: Vec<u32> = first.into_iter().collect();
            assert_eq!(q.len() as usize, admitted.len() - got.len());
            got.extend(std::iter::from_fn(|| q.pop()));
            admitted.sort_unstable();
            got.sort_unstable();
            assert_eq!(admitted, got);
            assert_eq!(q.len(), 0);
        });
    }

    /// close() racing a worker's add: after close returns, a child is in the
    /// queue if and only if its add succeeded, and every later add is refused
    /// (Linux: inet_csk_listen_stop sees every queued child).
    #[test]
    fn accept_queue_loom_close_races_push() {
        model(|| {
            let q = LoomArc::new(AcceptQueue::new(1));
            let q2 = q.clone();
            let worker = thread::spawn(move || q2.push(7u32, 1).is_ok());
            q.close();
            let left = q.pop();
            let pushed = worker.join().unwrap();
            assert_eq!(left.is_some(), pushed);
            assert_eq!(q.push(8, 1), Err(8));
            assert_eq!(q.pop(), None);
            assert_eq!(q.len(), 0);
        });
    }

    /// grow() racing a worker's add: the children queued before, during and
    /// after the grow are all accepted, in order.
    #[test]
    fn accept_queue_loom_grow_races_push() {
        model(|| {
            let q = LoomArc::new(AcceptQueue::new(1));
            q.push(1u32, 1).unwrap();
            let q2 = q.clone();
            let worker = thread::spawn(move || q2.push(2u32, 1));
            q.grow(3);
            assert_eq!(worker.join().unwrap(), Ok(()));
            q.push(3, 3).unwrap();
            let got: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
            assert_eq!(got, vec![1, 2, 3]);
            assert_eq!(q.capacity(), 4);
            assert_eq!(q.len(), 0);
        });
    }
}
