//! Growing a ring buffer on demand.

/// Smallest allocation a ring starts with.
const MIN_RING: usize = 4096;

/// A larger copy of `old` (a ring whose first byte is at `head`) with at
/// least `need` bytes, at most `max`, the content rotated to start at 0.
pub fn grown(old: &[u8], head: usize, need: usize, max: usize) -> Box<[u8]> {
    let size = need.next_power_of_two().max(MIN_RING).min(max).max(need.min(max));
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
        let g = grown(&old, 2, 5, 10_000);
        assert_eq!(g.len(), MIN_RING);
        assert_eq!(&g[..4], &[1, 2, 3, 4]);
        assert_eq!(grown(&[], 0, 70_000, 65_536 + 127).len(), 65_536 + 127);
        assert_eq!(grown(&[], 0, 5000, 65_536).len(), 8192);
    }
}
