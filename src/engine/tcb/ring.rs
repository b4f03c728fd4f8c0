//! Ring storage that follows its contents: grown on demand, released when
//! it drains (Linux's socket memory also follows its queues: an skb is
//! freed when it is read or acknowledged, and an idle socket holds none).

/// Smallest allocation a ring starts with, and what a connection may
/// always take even when the worker's memory is at its limit (see
/// [`ring_size`]).
pub const MIN_RING: usize = 4096;

/// The size a ring of `cur` bytes should have to hold `need` bytes: the
/// next power of two (at least [`MIN_RING`]), at most `max`, and growing by
/// at most `room` bytes (what the worker's memory pool grants). When the
/// grant is too small for that, the largest power of two that fits is
/// taken (the caller stores less); `forced` allows [`MIN_RING`] whatever
/// the grant, as Linux forces the first skb of an empty queue
/// (`sk_forced_mem_schedule`), so every connection can make progress.
/// Never smaller than `cur`.
pub fn ring_size(cur: usize, need: usize, max: usize, room: u32, forced: bool) -> usize {
    if need <= cur {
        return cur;
    }
    let want = need.next_power_of_two().max(MIN_RING).min(max).max(need.min(max));
    let room = room as usize;
    if want - cur <= room {
        return want;
    }
    let floor = if forced { MIN_RING.min(max) } else { 0 };
    let mut size = MIN_RING.min(max);
    // The largest power of two within the grant.
    while size * 2 <= max && (size * 2).saturating_sub(cur) <= room {
        size *= 2;
    }
    let fits = size > cur && size - cur <= room;
    match (fits, floor > cur) {
        (true, _) => size.max(floor),
        (false, true) => floor,
        (false, false) => cur,
    }
}

/// A copy of `old` (a ring whose first byte is at `head`) in `size` bytes,
/// the content rotated to start at 0. `size` is at least `old.len()`.
pub fn resized(old: &[u8], head: usize, size: usize) -> Box<[u8]> {
    let mut buf = vec![0; size];
    let (a, b) = old.split_at(head.min(old.len()));
    buf[..b.len()].copy_from_slice(b);
    buf[b.len()..b.len() + a.len()].copy_from_slice(a);
    buf.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_rotates_and_caps() {
        let old = [3u8, 4, 1, 2];
        let g = resized(&old, 2, ring_size(4, 5, 10_000, u32::MAX, false));
        assert_eq!(g.len(), MIN_RING);
        assert_eq!(&g[..4], &[1, 2, 3, 4]);
        assert_eq!(ring_size(0, 70_000, 65_536 + 127, u32::MAX, false), 65_536 + 127);
        assert_eq!(ring_size(0, 5000, 65_536, u32::MAX, false), 8192);
        assert_eq!(ring_size(8192, 5000, 65_536, 0, false), 8192);
    }

    #[test]
    fn growth_stays_within_the_grant() {
        // 20 000 bytes wanted (32 KiB ring), 10 000 granted: 8 KiB.
        assert_eq!(ring_size(0, 20_000, 65_536, 10_000, false), 8192);
        // From 4 KiB with 5 000 granted: 8 KiB (4 096 more).
        assert_eq!(ring_size(4096, 20_000, 65_536, 5_000, false), 8192);
        // Nothing granted: no growth, unless forced to the first ring.
        assert_eq!(ring_size(0, 100, 65_536, 0, false), 0);
        assert_eq!(ring_size(0, 100, 65_536, 0, true), MIN_RING);
        assert_eq!(ring_size(4096, 8000, 65_536, 0, true), 4096);
        // A small buffer cap bounds the forced ring too.
        assert_eq!(ring_size(0, 100, 1000, 0, true), 1000);
    }
}
