//! A per-worker hierarchical timing wheel on engine time.
//!
//! It carries the listen path's timers: SYN-ACK retransmits (1 s doubling:
//! 1, 2, 4, 8, 16, 32 s), later RTO (200 ms..120 s), delayed ACK (40 ms) and
//! TIME_WAIT (60 s). One worker owns it: no locks.
//!
//! # Resolution and ordering
//!
//! The tick is [`TICK`] = 1 ms. A timer for `at` is due at tick
//! `ceil(at / 1 ms)`, and fires at the first [`TimerWheel::poll`] or
//! [`TimerWheel::advance`] whose `now` reaches that tick: never before `at`,
//! at most one tick after it (plus however late the caller polls). Timers
//! fire in order of their due tick; timers due in the same tick fire in no
//! particular order. A timer scheduled at or before the wheel's current tick
//! is due at once and fires at the next poll.
//!
//! # Structure
//!
//! 8 levels of 64 slots; a slot at level `l` spans `64^l` ticks, so the
//! wheel covers 2^48 ms (~8900 years), more than any [`Instant`]: no timer is
//! ever "too far". A timer sits at the level given by the highest bit where
//! its due tick differs from the current tick (the scheme of tokio's wheel
//! and of Varghese & Lauck's hierarchical wheels); when the current tick
//! reaches a slot of level >= 1, its timers are re-inserted lower (cascade).
//! A timer cascades at most 7 times over its whole life. Finding the next
//! slot is a trailing-zeros count on one 64-bit occupancy word per level.
//!
//! Entries live in a slab (a `Vec`) with a free list and intrusive doubly
//! linked slot lists: schedule and cancel are O(1), and nothing allocates
//! unless more timers are armed at once than ever before (the slab then
//! grows). [`TimerId`]s carry a generation, so cancelling a timer that
//! already fired or was cancelled, even if its slot was reused, is a no-op.

use super::time::{Duration, Instant};
use std::num::NonZeroU32;

/// The wheel's resolution.
pub const TICK: Duration = Duration::from_millis(1);
const TICK_NS: u64 = 1_000_000;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 8;
/// Index of the list of due timers, after the `LEVELS * SLOTS` slot lists.
const DUE: usize = LEVELS * SLOTS;
const NIL: u32 = u32::MAX;

// Every tick an Instant can name fits in the wheel's span.
const _: () = assert!((u64::MAX / TICK_NS) >> (SLOT_BITS as usize * LEVELS) == 0);

/// Handle to a scheduled timer. Generations are never zero, so an
/// `Option<TimerId>` takes no more room than the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: u32,
    generation: NonZeroU32,
}

#[derive(Clone, Copy, Debug)]
struct Entry<T> {
    /// `Some` while the timer is armed.
    token: Option<T>,
    /// Due tick.
    when: u64,
    generation: NonZeroU32,
    prev: u32,
    next: u32,
    /// The list holding the entry (a slot, or [`DUE`]); meaningless when free.
    list: u16,
}

/// A hierarchical timing wheel of `T` tokens (e.g. a request sock index and
/// a timer kind).
#[derive(Clone, Debug)]
pub struct TimerWheel<T: Copy> {
    entries: Vec<Entry<T>>,
    free: u32,
    heads: Vec<u32>,
    occupied: [u64; LEVELS],
    /// The current tick: every slot before it has been processed.
    elapsed: u64,
    len: usize,
}

fn tick_ceil(at: Instant) -> u64 {
    // Capped at the last tick an Instant can reach, so a timer at the end
    // of time still fires (in the last, partial, millisecond).
    at.as_nanos().div_ceil(TICK_NS).min(u64::MAX / TICK_NS)
}

fn tick_floor(now: Instant) -> u64 {
    now.as_nanos() / TICK_NS
}

/// The level for a timer due at `when` while the wheel is at `elapsed`
/// (`when > elapsed`): where the highest differing bit falls.
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

impl<T: Copy> TimerWheel<T> {
    /// An empty wheel at `now`, with room for `capacity` timers before its
    /// slab has to grow.
    pub fn new(now: Instant, capacity: usize) -> TimerWheel<T> {
        TimerWheel {
            entries: Vec::with_capacity(capacity),
            free: NIL,
            heads: vec![NIL; DUE + 1],
            occupied: [0; LEVELS],
            elapsed: tick_floor(now),
            len: 0,
        }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Timers the slab holds without growing.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Arms a timer firing `token` at `at` (rounded up to the next tick).
    ///
    /// # Panics
    /// If more than `u32::MAX - 1` timers are armed at once (hundreds of GB
    /// of slab: not reachable by packet input, which is bounded by the SYN
    /// and accept queues).
    pub fn schedule(&mut self, at: Instant, token: T) -> TimerId {
        let when = tick_ceil(at);
        let index = if self.free != NIL {
            let i = self.free;
            self.free = self.entries[i as usize].next;
            let e = &mut self.entries[i as usize];
            e.token = Some(token);
            e.when = when;
            i
        } else {
            let i = u32::try_from(self.entries.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("timer wheel: more than u32::MAX - 1 armed timers");
            self.entries.push(Entry {
                token: Some(token),
                when,
                generation: NonZeroU32::MIN,
                prev: NIL,
                next: NIL,
                list: 0,
            });
            i
        };
        self.len += 1;
        self.insert(index);
        TimerId {
            index,
            generation: self.entries[index as usize].generation,
        }
    }

    /// Disarms a timer and returns its token; `None` if it already fired or
    /// was cancelled (a stale id is harmless).
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        self.armed(id)?;
        self.unlink(id.index);
        self.release(id.index)
    }

    /// Moves an armed timer to `at`, keeping its id and token. Returns false
    /// (and does nothing) if the timer already fired or was cancelled.
    pub fn reschedule(&mut self, id: TimerId, at: Instant) -> bool {
        if self.armed(id).is_none() {
            return false;
        }
        self.unlink(id.index);
        self.entries[id.index as usize].when = tick_ceil(at);
        self.insert(id.index);
        true
    }

    /// The token of an armed timer.
    pub fn get(&self, id: TimerId) -> Option<T> {
        self.armed(id)
    }

    /// A lower bound of the earliest armed timer's due time: no timer fires
    /// before it. Exact when that timer is less than 64 ticks away; farther
    /// out it is the start of the timer's slot. In the past when timers are
    /// already due. `None` when the wheel is empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_expiration()
            .map(|(_, tick)| Instant::from_nanos(tick.saturating_mul(TICK_NS)))
    }

    /// Pops one timer due at `now`, earliest due tick first. Lets the caller
    /// re-arm timers (a SYN-ACK retransmit) between pops.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        let now_tick = tick_floor(now);
        loop {
            let head = self.heads[DUE];
            if head != NIL {
                self.unlink(head);
                if let Some(token) = self.release(head) {
                    return Some(token);
                }
                continue;
            }
            match self.next_expiration() {
                Some((list, tick)) if tick <= now_tick => {
                    // Every slot before `tick` is empty, so the wheel may
                    // jump there; then spread the slot's timers lower (or
                    // onto the due list when the slot is at level 0).
                    self.elapsed = tick;
                    let mut i = self.heads[list];
                    self.heads[list] = NIL;
                    self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
                    while i != NIL {
                        let next = self.entries[i as usize].next;
                        self.insert(i);
                        i = next;
                    }
                }
                _ => {
                    self.elapsed = self.elapsed.max(now_tick);
                    return None;
                }
            }
        }
    }

    /// Fires every timer due at `now` through `fire`, in due-tick order, and
    /// returns how many fired.
    pub fn advance<F: FnMut(T)>(&mut self, now: Instant, fire: &mut F) -> usize {
        let mut n = 0;
        while let Some(token) = self.poll(now) {
            fire(token);
            n += 1;
        }
        n
    }

    /// The timer is armed and fires in the tick `at` falls in (moving it
    /// there would change nothing).
    pub fn fires_with(&self, id: TimerId, at: Instant) -> bool {
        self.armed(id).is_some() && self.entries[id.index as usize].when == tick_ceil(at)
    }

    fn armed(&self, id: TimerId) -> Option<T> {
        let e = self.entries.get(id.index as usize)?;
        if e.generation == id.generation {
            e.token
        } else {
            None
        }
    }

    /// The first non-empty list and the tick it is due: the due list at the
    /// current tick, else the first occupied slot of the lowest occupied
    /// level (a lower level's slots all come before a higher level's).
    fn next_expiration(&self) -> Option<(usize, u64)> {
        if self.heads[DUE] != NIL {
            return Some((DUE, self.elapsed));
        }
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            // Timers are only ever placed after the current slot of their
            // level (in the current revolution), so the lowest occupied slot
            // is the next one.
            let slot = occupied.trailing_zeros() as usize;
            debug_assert!(slot > ((self.elapsed >> shift) as usize) % SLOTS);
            let level_start = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
            let tick = level_start + ((slot as u64) << shift);
            return Some((level * SLOTS + slot, tick));
        }
        None
    }

    /// Puts an armed, unlinked entry in the list for its due tick.
    fn insert(&mut self, i: u32) {
        let when = self.entries[i as usize].when;
        let list = if when <= self.elapsed {
            DUE
        } else {
            let level = level_for(self.elapsed, when);
            let slot = ((when >> (SLOT_BITS * level as u32)) as usize) % SLOTS;
            self.occupied[level] |= 1 << slot;
            level * SLOTS + slot
        };
        let head = self.heads[list];
        let e = &mut self.entries[i as usize];
        e.list = list as u16;
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            self.entries[head as usize].prev = i;
        }
        self.heads[list] = i;
    }

    fn unlink(&mut self, i: u32) {
        let Entry {
            prev, next, list, ..
        } = self.entries[i as usize];
        let list = usize::from(list);
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[list] = next;
            if next == NIL && list != DUE {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    /// Frees an unlinked armed entry and returns its token (`None` only if
    /// the entry was not armed, which the callers rule out).
    fn release(&mut self, i: u32) -> Option<T> {
        let free = self.free;
        let e = &mut self.entries[i as usize];
        let token = e.token.take();
        e.generation = e.generation.checked_add(1).unwrap_or(NonZeroU32::MIN);
        e.next = free;
        self.free = i;
        if token.is_some() {
            self.len -= 1;
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn drain<T: Copy>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        w.advance(now, &mut |t| out.push(t));
        out
    }

    #[test]
    fn synack_retransmits_fire_in_order_and_never_early() {
        // Linux's SYN-ACK schedule: 1, 2, 4, 8, 16, 32 s after the previous one,
        // so at 1, 3, 7, 15, 31 and 63 s.
        let mut w = TimerWheel::new(Instant::ZERO, 16);
        let mut at = Instant::ZERO;
        for n in 0..6u32 {
            at += Duration::from_secs(1 << n);
            w.schedule(at, n);
        }
        w.schedule(ms(40), 100); // delayed ACK
        w.schedule(ms(60_000), 200); // TIME_WAIT
        assert_eq!(w.len(), 8);
        assert_eq!(drain(&mut w, ms(39)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, ms(40)), vec![100]);
        assert_eq!(drain(&mut w, ms(999)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, ms(1000)), vec![0]);
        assert_eq!(drain(&mut w, ms(2999)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, ms(3000)), vec![1]);
        assert_eq!(drain(&mut w, ms(100_000)), vec![2, 3, 4, 200, 5]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn sub_tick_deadlines_round_up() {
        let mut w = TimerWheel::new(Instant::ZERO, 4);
        w.schedule(Instant::from_nanos(1_500_000), 'a');
        assert_eq!(w.next_deadline(), Some(ms(2)));
        assert_eq!(w.poll(Instant::from_nanos(1_999_999)), None);
        assert_eq!(w.poll(ms(2)), Some('a'));
    }

    #[test]
    fn past_deadlines_fire_at_next_poll() {
        let mut w = TimerWheel::new(ms(500), 4);
        w.schedule(ms(10), 1);
        w.schedule(ms(500), 2);
        assert!(w.next_deadline().unwrap() <= ms(500));
        let mut got = drain(&mut w, ms(500));
        got.sort_unstable();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn cancel_and_stale_ids() {
        let mut w = TimerWheel::new(Instant::ZERO, 4);
        let a = w.schedule(ms(10), 'a');
        let b = w.schedule(ms(20), 'b');
        assert_eq!(w.get(a), Some('a'));
        assert_eq!(w.cancel(a), Some('a'));
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.get(a), None);
        // The slot is reused; the stale id must not touch the new timer.
        let c = w.schedule(ms(30), 'c');
        assert_eq!(c.index, a.index);
        assert_eq!(w.cancel(a), None);
        assert!(!w.reschedule(a, ms(1)));
        assert_eq!(w.len(), 2);
        assert_eq!(drain(&mut w, ms(25)), vec!['b']);
        assert_eq!(w.cancel(b), None, "fired timers cannot be cancelled");
        assert!(w.reschedule(c, ms(26)));
        assert_eq!(drain(&mut w, ms(26)), vec!['c']);
        assert!(w.is_empty());
    }

    #[test]
    fn far_future_timers_cascade_across_revolutions() {
        let mut w = TimerWheel::new(ms(123), 8);
        let far = [
            64u64,
            4096,
            4097,
            262_144 + 7,
            16_777_216 * 3 + 5,
            365 * 86_400_000,
            1 << 44,
        ];
        for (i, &d) in far.iter().enumerate() {
            w.schedule(ms(123 + d), i);
        }
        // The largest Instant the engine can express still fits.
        w.schedule(Instant::from_nanos(u64::MAX), 99);
        for (i, &d) in far.iter().enumerate() {
            assert_eq!(
                drain(&mut w, ms(123 + d - 1)),
                Vec::<usize>::new(),
                "timer {i} early"
            );
            assert!(w.next_deadline().unwrap() <= ms(123 + d));
            assert_eq!(drain(&mut w, ms(123 + d)), vec![i]);
        }
        assert_eq!(
            drain(&mut w, Instant::from_nanos(u64::MAX - 1_000_000)),
            Vec::<usize>::new()
        );
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX)), vec![99]);
    }

    #[test]
    fn many_timers_fire_sorted_and_reuse_the_slab() {
        let mut w = TimerWheel::new(Instant::ZERO, 1024);
        let mut x = 12345u64;
        let mut expect = Vec::new();
        for i in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = (x >> 33) % 200_000; // up to 200 s
            w.schedule(ms(t), (t, i));
            expect.push(t);
        }
        let mut fired = Vec::new();
        let mut now = 0;
        while now <= 200_000 {
            now += 7;
            w.advance(ms(now), &mut |(t, _)| {
                assert!(t <= now);
                fired.push(t)
            });
        }
        expect.sort_unstable();
        assert_eq!(fired, expect);
        // Steady state: re-arming as many timers reuses the slab.
        let cap = w.capacity();
        for i in 0..20_000u32 {
            w.schedule(ms(now + 1 + u64::from(i % 5000)), (0, i));
        }
        assert_eq!(w.capacity(), cap);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Schedule(u64),
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Delays (ns) mix sub-tick, near (level 0-1) and far (levels 2-5) timers.
        let delay = prop_oneof![0u64..3_000_000, 0u64..5_000_000_000, 0u64..1 << 45,];
        prop_oneof![
            4 => delay.clone().prop_map(Op::Schedule),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), delay).prop_map(|(i, d)| Op::Reschedule(i, d)),
            3 => prop_oneof![0u64..2_000_000, 0u64..200_000_000, 0u64..1 << 44].prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn matches_a_btreemap_oracle(start in 0u64..1 << 50, ops in proptest::collection::vec(op(), 1..300)) {
            let mut now = Instant::from_nanos(start);
            let mut w = TimerWheel::new(now, 8);
            // token -> (id, effective due tick = max(due tick, tick when armed))
            let mut oracle: BTreeMap<u64, (TimerId, u64)> = BTreeMap::new();
            let mut ids: Vec<(u64, TimerId)> = Vec::new();
            let mut next_token = 0u64;
            for op in ops {
                match op {
                    Op::Schedule(d) => {
                        let at = now + Duration::from_nanos(d);
                        let id = w.schedule(at, next_token);
                        oracle.insert(next_token, (id, tick_ceil(at).max(w.elapsed)));
                        ids.push((next_token, id));
                        next_token += 1;
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let (token, id) = ids[i % ids.len()];
                        let expected = oracle.remove(&token).map(|_| token);
                        prop_assert_eq!(w.cancel(id), expected);
                    }
                    Op::Reschedule(i, d) if !ids.is_empty() => {
                        let (token, id) = ids[i % ids.len()];
                        let at = now + Duration::from_nanos(d);
                        let live = oracle.contains_key(&token);
                        prop_assert_eq!(w.reschedule(id, at), live);
                        if live {
                            oracle.insert(token, (id, tick_ceil(at).max(w.elapsed)));
                        }
                    }
                    Op::Advance(d) => {
                        now += Duration::from_nanos(d);
                        let now_tick = tick_floor(now);
                        let mut fired = Vec::new();
                        w.advance(now, &mut |t| fired.push(t));
                        // Due-tick order, nothing early, nothing left behind.
                        let ticks: Vec<u64> = fired.iter().map(|t| oracle[t].1).collect();
                        prop_assert!(ticks.windows(2).all(|p| p[0] <= p[1]), "order {:?}", ticks);
                        prop_assert!(ticks.iter().all(|&t| t <= now_tick));
                        let mut expected: Vec<u64> = oracle
                            .iter()
                            .filter(|(_, &(_, t))| t <= now_tick)
                            .map(|(&k, _)| k)
                            .collect();
                        fired.sort_unstable();
                        expected.sort_unstable();
                        prop_assert_eq!(&fired, &expected);
                        for k in expected {
                            oracle.remove(&k);
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(w.len(), oracle.len());
                let earliest = oracle.values().map(|&(_, t)| t).min();
                match (w.next_deadline(), earliest) {
                    (None, None) => {}
                    (Some(d), Some(t)) => prop_assert!(tick_floor(d) <= t),
                    (d, t) => prop_assert!(false, "next_deadline {:?} vs oracle {:?}", d, t),
                }
                for (&token, &(id, _)) in &oracle {
                    prop_assert_eq!(w.get(id), Some(token));
                }
            }
        }
    }
}
