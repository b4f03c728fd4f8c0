//! The SYN-ACK timers of request socks (`reqsk_timer_handler`'s timer).
//!
//! A request's first timeout is TCP_TIMEOUT_INIT and each later one doubles
//! it up to TCP_RTO_MAX, so timers armed with the same timeout fall due in
//! the order they were armed: one FIFO per timeout. Arming is a push;
//! nothing is unlinked when a request completes or is re-armed: its entry
//! is skipped when it comes due, because the request is gone or carries a
//! newer generation (Linux arms and deletes a `timer_list` per request).
//! The entry of a request that completed stays until it would have fired
//! (24 bytes, at most TCP_TIMEOUT_INIT after the SYN for a first timeout).

use crate::engine::flow::FlowKey;
use crate::engine::time::{Duration, Instant};
use std::collections::VecDeque;

/// Timeouts 1, 2, 4, ... 64 s, then TCP_RTO_MAX (120 s) for every later one.
const LEVELS: usize = 8;

#[derive(Clone, Copy)]
struct Armed {
    due: Instant,
    key: FlowKey,
    generation: u32,
}

#[derive(Default)]
pub struct SynAckTimers {
    levels: [VecDeque<Armed>; LEVELS],
    next_generation: u32,
}

impl SynAckTimers {
    /// Arm `key`'s timer for its `num_timeout`-th timeout (0 for the first),
    /// `timeout` from `now`; the generation the request keeps.
    #[inline]
    pub fn arm(&mut self, now: Instant, num_timeout: u8, timeout: Duration, key: FlowKey) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let level = usize::from(num_timeout).min(LEVELS - 1);
        self.levels[level].push_back(Armed { due: now + timeout, key, generation });
        generation
    }

    /// The earliest timer due at `now`, taken out: (key, generation). The
    /// caller fires it only if the request still carries that generation.
    pub fn pop_due(&mut self, now: Instant) -> Option<(FlowKey, u32)> {
        let level = (0..LEVELS)
            .filter_map(|l| self.levels[l].front().filter(|a| a.due <= now).map(|a| (a.due, l)))
            .min()?
            .1;
        self.levels[level].pop_front().map(|a| (a.key, a.generation))
    }

    /// Timers armed and not yet due (live or stale).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.levels.iter().all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey::v4(1, 2, 80, port)
    }

    #[test]
    fn due_timers_come_out_earliest_first_across_timeouts() {
        let mut t = SynAckTimers::default();
        let t0 = Instant::from_secs(10);
        let a = t.arm(t0, 0, Duration::from_secs(1), key(1));
        let b = t.arm(t0, 1, Duration::from_millis(500), key(2));
        let c = t.arm(t0 + Duration::from_millis(100), 0, Duration::from_secs(1), key(3));
        assert_eq!(t.pop_due(t0 + Duration::from_millis(400)), None);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(t.pop_due(later), Some((key(2), b)));
        assert_eq!(t.pop_due(later), Some((key(1), a)));
        assert_eq!(t.pop_due(later), Some((key(3), c)));
        assert_eq!(t.pop_due(later), None);
        assert!(t.is_empty());
    }

    #[test]
    fn generations_tell_a_rearmed_timer_from_its_stale_entry() {
        let mut t = SynAckTimers::default();
        let t0 = Instant::from_secs(1);
        let first = t.arm(t0, 0, Duration::from_secs(1), key(1));
        let second = t.arm(t0 + Duration::from_secs(1), 1, Duration::from_secs(2), key(1));
        assert_ne!(first, second);
        assert_eq!(t.len(), 2);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), Some((key(1), first)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), Some((key(1), second)));
    }
}
