//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Partial sums are `u32` values that are only meaningful after [`fold`]:
//! they can be added with [`combine`] in any order, provided every byte slice
//! summed with [`sum`] except the last one has an even length (RFC 1071
//! pairs bytes into 16-bit words; an odd slice would shift the next one).
//!
//! A checksum field holds `!fold(sum)`; a received packet is valid when the
//! sum over it (checksum field included) folds to `0xffff`.

/// One's-complement sum of `data`, as a partial sum to [`fold`].
///
/// RFC 1071 §2: the sum is independent of byte order and may be computed
/// over wider words. So we add native-endian 64-bit words with end-around
/// carry (add, adc), fold, and swap the 16-bit result to network order at
/// the end.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let (s, carry) = acc.overflowing_add(word);
        acc = s + u64::from(carry);
    }
    // At most 7 bytes left, none of these adds can carry out of 64 bits
    // once `acc` is folded to 33 bits. An odd last byte is the high half of
    // a zero-padded big-endian word.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    let mut rest = chunks.remainder();
    if let [a, b, c, d, more @ ..] = rest {
        acc += u64::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        rest = more;
    }
    if let [a, b, more @ ..] = rest {
        acc += u64::from(u16::from_ne_bytes([*a, *b]));
        rest = more;
    }
    if let [a] = rest {
        acc += u64::from(u16::from_ne_bytes([*a, 0]));
    }
    // Fold 64 -> 16 bits with end-around carries (2^16 ≡ 1 mod 0xffff).
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    u32::from(u16::from_be(acc as u16))
}

/// Adds two partial sums.
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Folds a partial sum to 16 bits (not complemented).
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum >> 16) + (sum & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// [`fold`] of a sum kept in 64 bits (of 32-bit fields, or of sums).
#[inline]
pub fn fold64(sum: u64) -> u16 {
    let s = (sum >> 32) + (sum & 0xffff_ffff);
    let s = (s >> 16) + (s & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// The checksum field value for `data` alone: `!fold(sum(data))`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1,
/// RFC 768): source, destination, zero, protocol, and the L4 length.
#[inline]
pub fn pseudo_header_ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u16) -> u32 {
    // Whole 32-bit addresses: the same sum modulo 0xffff as their halves.
    let s = u64::from(u32::from_be_bytes(src))
        + u64::from(u32::from_be_bytes(dst))
        + u64::from(protocol)
        + u64::from(len);
    ((s >> 16) + (s & 0xffff)) as u32
}

/// RFC 1624 eqn. 3: the new checksum field after a 16-bit word of the
/// covered data changes from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// [`update_u16`] for an aligned 32-bit field (e.g. an address or a
/// sequence number): both halves change at once.
#[inline]
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + u32::from((new >> 16) as u16)
        + u32::from(new as u16);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: RFC 1071 as written, 16-bit words into a u32.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [hi] => u16::from_be_bytes([*hi, 0]),
                _ => 0,
            };
            acc += u32::from(word);
            acc = (acc >> 16) + (acc & 0xffff);
        }
        acc as u16
    }

    proptest! {
        /// Big-endian 32-bit fields summed as u64 and folded once give the
        /// 16-bit one's-complement sum of their bytes.
        #[test]
        fn fold64_of_32_bit_fields_is_the_16_bit_sum(words in proptest::collection::vec(any::<u32>(), 0..40)) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let sum64: u64 = words.iter().map(|&w| u64::from(w)).sum();
            let want = naive(&bytes);
            let got = fold64(sum64);
            // 0 and 0xffff are the same value in one's complement.
            prop_assert!(got == want || (got, want) == (0xffff, 0) || (got, want) == (0, 0xffff), "{got:#x} {want:#x}");
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_vector() {
        // A classic IPv4 header (Wikipedia's example), checksum b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00,
            0x00, // csum zeroed
            0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        let mut with = hdr;
        with[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(fold(sum(&with)), 0xffff);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12])), 0x1200);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(fold(sum(&[])), 0);
    }

    #[test]
    fn carries_wrap_around() {
        assert_eq!(fold(sum(&[0xff; 64])), 0xffff);
        assert_eq!(fold(combine(0xffff_ffff, 1)), 1);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
    }

    #[test]
    fn pseudo_header_vector() {
        // 198.18.0.1 -> 198.18.0.2, TCP, 40 bytes.
        let ph = pseudo_header_ipv4([198, 18, 0, 1], [198, 18, 0, 2], 6, 40);
        let bytes = [198, 18, 0, 1, 198, 18, 0, 2, 0, 6, 0, 40];
        assert_eq!(fold(ph), naive(&bytes));
    }

    proptest! {
        #[test]
        fn sum_matches_rfc1071(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fold(sum(&data)), naive(&data));
        }

        #[test]
        fn pseudo_header_matches_rfc1071(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), proto in any::<u8>(), len in any::<u16>()) {
            let [l0, l1] = len.to_be_bytes();
            let bytes = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, proto, l0, l1];
            prop_assert_eq!(fold(pseudo_header_ipv4(src, dst, proto, len)), naive(&bytes));
        }

        #[test]
        fn combine_of_even_halves(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(fold(combine(sum(a), sum(b))), fold(sum(&data)));
        }

        #[test]
        fn incremental_u16_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            let words = data.len() / 2;
            let at = idx.index(words) * 2;
            let csum = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_u16(csum, old, new);
            // One's complement has two zeros; compare as verification does.
            prop_assert_eq!(fold(combine(sum(&data), u32::from(updated))), 0xffff);
            // Equal to a full recomputation, up to the two zeros of one's
            // complement (0x0000 vs 0xffff, RFC 1624 §3).
            let full = checksum(&data);
            prop_assert!(updated == full || (updated == 0 && full == 0xffff) || (updated == 0xffff && full == 0));
        }

        #[test]
        fn incremental_u32_equals_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 4..200),
            idx in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let at = idx.index(data.len() / 4) * 4;
            let csum = checksum(&data);
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let updated = update_u32(csum, old, new);
            prop_assert_eq!(fold(combine(sum(&data), u32::from(updated))), 0xffff);
        }
    }
}
