//! Wrapping 32-bit sequence-number comparisons, as Linux's `before()`,
//! `after()` and `between()` (include/net/tcp.h).
//!
//! RFC 9293 3.4: "all arithmetic dealing with sequence numbers must be
//! performed modulo 2**32". A number is "before" another when the signed
//! 32-bit difference is negative.

/// `seq1` comes strictly before `seq2` (Linux `before()`).
#[inline]
pub fn before(seq1: u32, seq2: u32) -> bool {
    (seq1.wrapping_sub(seq2) as i32) < 0
}

/// `seq2` comes strictly before `seq1` (Linux `after()`).
#[inline]
pub fn after(seq1: u32, seq2: u32) -> bool {
    before(seq2, seq1)
}

/// `low <= seq <= high` modulo 2**32 (Linux `between()`).
#[inline]
pub fn between(seq: u32, low: u32, high: u32) -> bool {
    high.wrapping_sub(low) >= seq.wrapping_sub(low)
}

/// The later of two sequence numbers.
#[inline]
pub fn seq_max(a: u32, b: u32) -> u32 {
    if after(a, b) {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around() {
        assert!(before(0xffff_fff0, 0x10));
        assert!(after(0x10, 0xffff_fff0));
        assert!(!before(5, 5));
        assert!(!after(5, 5));
        assert!(between(0, 0xffff_ffff, 1));
        assert!(between(7, 7, 7));
        assert!(!between(8, 7, 7));
        assert_eq!(seq_max(0xffff_fff0, 0x10), 0x10);
    }
}
