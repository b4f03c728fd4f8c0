//! A bounded lock-free MPMC ring: Dmitry Vyukov's bounded MPMC queue
//! (<https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue>).
//!
//! Every slot carries a sequence number that says whose turn it is. For the
//! slot at index `pos % capacity`:
//! - `seq == pos`: free for the producer that claims position `pos`;
//! - `seq == pos + 1`: holds the value pushed at `pos`, for the consumer that
//!   claims position `pos`;
//! - the consumer hands the slot to the next lap with `seq = pos + capacity`.
//!
//! A producer claims a position with one CAS on `tail`, a consumer with one
//! CAS on `head`; the slot's `seq` store (Release) publishes the value or the
//! free slot, the `seq` load (Acquire) of the other side receives it. No
//! thread ever waits for another: a slot claimed but not yet written reads as
//! empty to consumers, a slot claimed but not yet released by a slow
//! consumer reads as full to producers.
//!
//! Positions are `usize` and wrap only after 2^64 operations on 64-bit
//! targets (centuries at a billion per second), so the capacity need not be
//! a power of two: `pos % capacity` is the index.

use super::primitive::{AtomicUsize, Ordering, UnsafeCell};
use crossbeam::utils::CachePadded;
use std::mem::MaybeUninit;

struct Slot<T> {
    /// Whose turn it is (see the module doc).
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// Bounded multi-producer multi-consumer FIFO ring.
pub struct MpmcRing<T> {
    slots: Box<[Slot<T>]>,
    /// Next position to pop (Vyukov's `dequeue_pos`).
    head: CachePadded<AtomicUsize>,
    /// Next position to push (Vyukov's `enqueue_pos`).
    tail: CachePadded<AtomicUsize>,
}

// SAFETY: the ring moves values of `T` between threads (so `T: Send`) and
// never hands out references to them: a value is only touched by the one
// thread whose CAS claimed its position, between that CAS and the slot's
// `seq` store, so sharing `&MpmcRing<T>` is sound for any `T: Send`.
unsafe impl<T: Send> Sync for MpmcRing<T> {}
// SAFETY: owning the ring owns the queued values; sending it sends them.
unsafe impl<T: Send> Send for MpmcRing<T> {}

impl<T> MpmcRing<T> {
    /// A ring with room for `capacity` values, at least two: with a single
    /// slot, "full with the value of `pos`" (`seq == pos + 1`) and "free for
    /// `pos + 1`" (`seq == pos + capacity`) would be the same number.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2);
        let slots = (0..capacity)
            .map(|i| Slot { seq: AtomicUsize::new(i), value: UnsafeCell::new(MaybeUninit::uninit()) })
            .collect();
        MpmcRing { slots, head: CachePadded::new(AtomicUsize::new(0)), tail: CachePadded::new(AtomicUsize::new(0)) }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, pos: usize) -> &Slot<T> {
        &self.slots[pos % self.slots.len()]
    }

    /// Append `value`, or give it back if the ring is full.
    pub fn push(&self, value: T) -> Result<(), T> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as isize;
            if diff == 0 {
                // Free for position `pos`: claim it.
                match self.tail.compare_exchange(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        slot.value.with_mut(|p| {
                            // SAFETY: our CAS made us the only owner of
                            // position `pos`; its consumer cannot read the
                            // slot before the `seq` store below, and the
                            // previous lap's consumer released it (`seq ==
                            // pos` was loaded with Acquire).
                            unsafe { p.write(MaybeUninit::new(value)) }
                        });
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The slot still holds the value pushed one lap ago.
                return Err(value);
            } else {
                // Another producer took `pos` already.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Take the oldest value, if any.
    pub fn pop(&self) -> Option<T> {
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as isize;
            if diff == 0 {
                // Holds the value pushed at `pos`: claim it.
                match self.head.compare_exchange(pos, pos.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        let value = slot.value.with_mut(|p| {
                            // SAFETY: `seq == pos + 1` (Acquire) means the
                            // producer of `pos` wrote the value and released
                            // it; our CAS made us its only consumer, and no
                            // producer reuses the slot before the `seq` store
                            // below. The value is moved out exactly once.
                            unsafe { p.read().assume_init() }
                        });
                        slot.seq.store(pos.wrapping_add(self.slots.len()), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // Not yet pushed (or pushed but not yet written).
                return None;
            } else {
                // Another consumer took `pos` already.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Values in the ring; approximate while other threads push or pop.
    pub fn len(&self) -> usize {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        let diff = tail.wrapping_sub(head) as isize;
        if diff <= 0 {
            0
        } else {
            (diff as usize).min(self.slots.len())
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for MpmcRing<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread is inside push or pop, so this takes
        // exactly the values still queued and drops them.
        while self.pop().is_some() {}
    }
}

impl<T> std::fmt::Debug for MpmcRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpmcRing").field("capacity", &self.capacity()).field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn fifo_full_and_empty() {
        let r = MpmcRing::new(3);
        assert_eq!(r.capacity(), 3);
        assert_eq!(r.pop(), None);
        for i in 0..3 {
            assert_eq!(r.push(i), Ok(()));
        }
        assert_eq!(r.push(9), Err(9));
        assert_eq!(r.len(), 3);
        assert_eq!(r.pop(), Some(0));
        assert_eq!(r.push(3), Ok(()));
        let got: Vec<_> = std::iter::from_fn(|| r.pop()).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert!(r.is_empty());
    }

    #[test]
    fn capacity_is_at_least_two() {
        for cap in [0, 1] {
            let r = MpmcRing::new(cap);
            assert_eq!(r.capacity(), 2);
            assert_eq!(r.push(1), Ok(()));
            assert_eq!(r.push(2), Ok(()));
            assert_eq!(r.push(3), Err(3));
            assert_eq!((r.pop(), r.pop(), r.pop()), (Some(1), Some(2), None));
        }
    }

    #[test]
    fn many_laps_of_a_ring_that_is_not_a_power_of_two() {
        let r = MpmcRing::new(5);
        for lap in 0..100u32 {
            for i in 0..5 {
                r.push(lap * 5 + i).unwrap();
            }
            for i in 0..5 {
                assert_eq!(r.pop(), Some(lap * 5 + i));
            }
        }
    }

    #[test]
    fn drop_releases_what_is_left() {
        let token = Arc::new(());
        {
            let r = MpmcRing::new(4);
            for _ in 0..3 {
                r.push(token.clone()).unwrap();
            }
            drop(r.pop());
            assert_eq!(Arc::strong_count(&token), 3);
        }
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<MpmcRing<Box<u32>>>();
    }

    /// Producers and consumers on real threads, exact counts: every pushed
    /// item is popped exactly once, and each consumer sees each producer's
    /// items in push order.
    #[test]
    fn stress_exact_counts_and_per_producer_fifo() {
        const PRODUCERS: u64 = 3;
        const CONSUMERS: usize = 2;
        const PER: u64 = 50_000;
        let r = Arc::new(MpmcRing::<u64>::new(7));
        let done = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut v = p * PER + i;
                        while let Err(back) = r.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (r, done) = (r.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match r.pop() {
                            Some(v) => got.push(v),
                            None if done.load(std::sync::atomic::Ordering::Acquire) => {
                                got.extend(std::iter::from_fn(|| r.pop()));
                                return got;
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let mut all = Vec::new();
        for c in consumers {
            let got = c.join().unwrap();
            let mut last = vec![None; PRODUCERS as usize];
            for &v in &got {
                let p = (v / PER) as usize;
                assert!(last[p].map_or(true, |l| l < v), "producer {p} out of order");
                last[p] = Some(v);
            }
            all.extend(got);
        }
        all.sort_unstable();
        assert_eq!(all, (0..PRODUCERS * PER).collect::<Vec<_>>());
        assert!(r.is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u32),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![any::<u32>().prop_map(Op::Push), Just(Op::Pop)]
    }

    proptest! {
        /// The ring against a `VecDeque` bounded to the same capacity.
        #[test]
        fn matches_vecdeque_oracle(cap in 0usize..9, ops in proptest::collection::vec(op(), 0..300)) {
            let r = MpmcRing::new(cap);
            let cap = cap.max(2);
            let mut oracle = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        if oracle.len() < cap {
                            prop_assert_eq!(r.push(v), Ok(()));
                            oracle.push_back(v);
                        } else {
                            prop_assert_eq!(r.push(v), Err(v));
                        }
                    }
                    Op::Pop => prop_assert_eq!(r.pop(), oracle.pop_front()),
                }
                prop_assert_eq!(r.len(), oracle.len());
            }
        }
    }
}

/// Model checks: `RUSTFLAGS="--cfg loom" cargo test --release --lib mpmc_ring`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::primitive::{model, Arc};
    use loom::thread;

    /// Two producers, one consumer, capacity 2: every item is popped exactly
    /// once and each producer's items come out in push order.
    #[test]
    fn mpmc_ring_two_producers_one_consumer() {
        model(|| {
            let r = Arc::new(MpmcRing::new(2));
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let r = r.clone();
                    thread::spawn(move || {
                        // Capacity 2 and two producers of two items: a push
                        // may find the ring full; count what went in.
                        let mut pushed = Vec::new();
                        for i in 0..2 {
                            let v = p * 10 + i;
                            if r.push(v).is_ok() {
                                pushed.push(v);
                            }
                        }
                        pushed
                    })
                })
                .collect();
            let mut got = Vec::new();
            for _ in 0..2 {
                if let Some(v) = r.pop() {
                    got.push(v);
                }
            }
            let mut pushed: Vec<u32> = producers.into_iter().flat_map(|p| p.join().unwrap()).collect();
            got.extend(std::iter::from_fn(|| r.pop()));
            for p in 0..2 {
                let mine: Vec<_> = got.iter().filter(|&&v| v / 10 == p).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "producer {p} reordered: {got:?}");
            }
            pushed.sort_unstable();
            got.sort_unstable();
            assert_eq!(pushed, got);
            assert!(r.is_empty());
        });
    }

    /// One producer, two consumers: no item is lost or popped twice.
    #[test]
    fn mpmc_ring_one_producer_two_consumers() {
        model(|| {
            let r = Arc::new(MpmcRing::new(2));
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let r = r.clone();
                    thread::spawn(move || r.pop())
                })
                .collect();
            let mut pushed = Vec::new();
            for v in 0..3u32 {
                if r.push(v).is_ok() {
                    pushed.push(v);
                }
            }
            let mut got: Vec<u32> = consumers.into_iter().filter_map(|c| c.join().unwrap()).collect();
            got.extend(std::iter::from_fn(|| r.pop()));
            got.sort_unstable();
            assert_eq!(pushed, got);
        });
    }

    /// A push on a full ring fails and gives the item back, even while a
    /// consumer frees a slot concurrently; nothing is lost or duplicated.
    #[test]
    fn mpmc_ring_push_on_full_gives_the_item_back() {
        model(|| {
            let r = Arc::new(MpmcRing::new(2));
            r.push(1u32).unwrap();
            r.push(2u32).unwrap();
            let r2 = r.clone();
            let consumer = thread::spawn(move || r2.pop());
            let third = r.push(3);
            let first = consumer.join().unwrap();
            assert_eq!(first, Some(1));
            assert_eq!(r.pop(), Some(2));
            match third {
                Ok(()) => assert_eq!(r.pop(), Some(3)),
                Err(v) => {
                    assert_eq!(v, 3);
                    assert_eq!(r.pop(), None);
                }
            }
        });
    }

    /// Values left in the ring are dropped with it.
    #[test]
    fn mpmc_ring_drop_releases_values() {
        model(|| {
            let token = Arc::new(());
            let r = Arc::new(MpmcRing::new(2));
            let (r2, t2) = (r.clone(), token.clone());
            let producer = thread::spawn(move || r2.push(t2).is_ok());
            assert!(producer.join().unwrap());
            drop(r);
            assert_eq!(Arc::strong_count(&token), 1);
        });
    }
}
