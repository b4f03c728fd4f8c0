//! The SipHash key type every keyed hash of the listen path uses, and the
//! parsers for operator-supplied keys (hex, and Linux's
//! `net.ipv4.tcp_fastopen_key` format).

use std::fmt;
use thiserror::Error;


/// Length of one SipHash key in bytes (128 bits).
pub const SIP_KEY_LEN: usize = 16;

/// A 128-bit SipHash key.
///
/// `Debug` does not print the key bytes, so a key never ends up in a log by
/// accident.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SipKey {
    /// The key as SipHash reads it: `k0 = le64(bytes[0..8])`, `k1 = le64(bytes[8..16])`
    /// (the layout of Linux's `siphash_key_t` filled from bytes).
    k0: u64,
    k1: u64,
}

impl SipKey {
    pub const fn from_bytes(bytes: [u8; SIP_KEY_LEN]) -> SipKey {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            lo[i] = bytes[i];
            hi[i] = bytes[8 + i];
            i += 1;
        }
        SipKey {
            k0: u64::from_le_bytes(lo),
            k1: u64::from_le_bytes(hi),
        }
    }

    pub fn to_bytes(self) -> [u8; SIP_KEY_LEN] {
        let mut out = [0u8; SIP_KEY_LEN];
        out[..8].copy_from_slice(&self.k0.to_le_bytes());
        out[8..].copy_from_slice(&self.k1.to_le_bytes());
        out
    }

    /// Parses 32 hex digits (see [`parse_hex_key`]).
    pub fn from_hex(s: &str) -> Result<SipKey, KeyParseError> {
        parse_hex_key::<SIP_KEY_LEN>(s).map(SipKey::from_bytes)
    }

    /// The two 64-bit SipHash key words.
    pub const fn words(self) -> (u64, u64) {
        (self.k0, self.k1)
    }

    /// SipHash-`C`-`D` of whole 64-bit words followed by `tail_len` (< 8)
    /// more bytes in `tail` (little-endian): the same value the streaming
    /// hasher gives for those bytes written as `u64`s and a last short
    /// integer, without its buffering. Linux keeps such fixed-width forms
    /// for the same reason (`siphash_2u64`, `siphash_3u32`): the listen path
    /// hashes a few fixed words per SYN.
    #[inline(always)]
    pub fn hash<const C: usize, const D: usize>(self, words: &[u64], tail: u64, tail_len: usize) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        for &m in words {
            v[3] ^= m;
            for _ in 0..C {
                sip_round(&mut v);
            }
            v[0] ^= m;
        }
        let len = (words.len() * 8 + tail_len) as u64;
        let last = tail | (len << 56);
        v[3] ^= last;
        for _ in 0..C {
            sip_round(&mut v);
        }
        v[0] ^= last;
        v[2] ^= 0xff;
        for _ in 0..D {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// A SipHash-2-4 hasher keyed with this key (Linux's `siphash()`).
    pub fn sip24(self) -> siphasher::sip::SipHasher24 {
        siphasher::sip::SipHasher24::new_with_keys(self.k0, self.k1)
    }

    /// A SipHash-1-3 hasher keyed with this key (cheaper; the SYN-cookie hash).
    pub fn sip13(self) -> siphasher::sip::SipHasher13 {
        siphasher::sip::SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

impl fmt::Debug for SipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SipKey(<redacted>)")
    }
}

/// Why an operator-supplied key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum KeyParseError {
    #[error("key must be {expected} hex digits, got {found}")]
    WrongLength { expected: usize, found: usize },
    #[error("invalid hex digit {found:?} at position {pos}")]
    InvalidDigit { pos: usize, found: char },
    #[error("expected a Linux tcp_fastopen_key (xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx[,backup])")]
    BadLinuxFormat,
}

/// Parses an operator-supplied key of `N` bytes written as `2 * N` hex
/// digits, most significant nibble first, byte 0 first (`"000102…0f"` is
/// `[0, 1, 2, …, 15]`). Surrounding whitespace is ignored; upper and lower
/// case are accepted; nothing else is.
pub fn parse_hex_key<const N: usize>(s: &str) -> Result<[u8; N], KeyParseError> {
    let s = s.trim();
    let digits = s.chars().count();
    if digits != 2 * N {
        return Err(KeyParseError::WrongLength {
            expected: 2 * N,
            found: digits,
        });
    }
    let mut out = [0u8; N];
    for (pos, c) in s.chars().enumerate() {
        let nibble = c
            .to_digit(16)
            .ok_or(KeyParseError::InvalidDigit { pos, found: c })? as u8;
        out[pos / 2] |= if pos % 2 == 0 { nibble << 4 } else { nibble };
    }
    Ok(out)
}

/// Parses one key in the format of Linux's `net.ipv4.tcp_fastopen_key`:
/// four 32-bit hex words `%x-%x-%x-%x`. Linux stores each word little-endian
/// (`cpu_to_le32`) and reads the 16 bytes as its siphash key, so the same
/// string gives the same key, hence the same TFO cookies, as a Linux server.
pub fn parse_linux_tfo_key(s: &str) -> Result<SipKey, KeyParseError> {
    let mut bytes = [0u8; SIP_KEY_LEN];
    let mut words = s.trim().split('-');
    for chunk in bytes.chunks_exact_mut(4) {
        let word = words.next().ok_or(KeyParseError::BadLinuxFormat)?;
        if word.is_empty() || word.len() > 8 {
            return Err(KeyParseError::BadLinuxFormat);
        }
        let w = u32::from_str_radix(word, 16).map_err(|_| KeyParseError::BadLinuxFormat)?;
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    if words.next().is_some() {
        return Err(KeyParseError::BadLinuxFormat);
    }
    Ok(SipKey::from_bytes(bytes))
}

/// Formats a key the way Linux prints `net.ipv4.tcp_fastopen_key` (`%08x-%08x-%08x-%08x`).
pub fn format_linux_tfo_key(key: SipKey) -> String {
    let b = key.to_bytes();
    let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    format!("{:08x}-{:08x}-{:08x}-{:08x}", w(0), w(4), w(8), w(12))
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The fixed-width form gives the streaming hasher's values.
    #[test]
    fn fixed_width_siphash_matches_the_crate() {
        use std::hash::Hasher as _;
        let key = SipKey::from_bytes(*b"0123456789abcdef");
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..200 {
            x = x.rotate_left(7).wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
            let (a, b, c) = (x, x.rotate_left(29) ^ 0x55, (x >> 17) as u32);
            let mut h = key.sip13();
            h.write_u64(a);
            h.write_u64(b);
            h.write_u32(c);
            assert_eq!(key.hash::<1, 3>(&[a, b], u64::from(c), 4), h.finish());
            let mut h = key.sip24();
            h.write_u64(a);
            h.write_u32(c);
            assert_eq!(key.hash::<2, 4>(&[a], u64::from(c), 4), h.finish());
            let mut h = key.sip24();
            h.write_u64(b);
            assert_eq!(key.hash::<2, 4>(&[b], 0, 0), h.finish());
        }
    }

    #[test]
    fn hex_key_parses_in_byte_order() {
        let k = parse_hex_key::<16>(" 000102030405060708090a0B0c0d0e0F\n").unwrap();
        assert_eq!(k, core::array::from_fn(|i| i as u8));
        let sk = SipKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(sk.to_bytes(), k);
        assert_eq!(sk.words(), (0x0706050403020100, 0x0f0e0d0c0b0a0908));
    }

    #[test]
    fn hex_key_errors_are_typed() {
        assert_eq!(
            parse_hex_key::<16>("0011"),
            Err(KeyParseError::WrongLength {
                expected: 32,
                found: 4
            })
        );
        assert_eq!(
            parse_hex_key::<2>("00g1"),
            Err(KeyParseError::InvalidDigit { pos: 2, found: 'g' })
        );
        // Multi-byte characters count as one digit each and are refused.
        assert_eq!(
            parse_hex_key::<1>("é0"),
            Err(KeyParseError::InvalidDigit {
                pos: 0, found: 'é'
            })
        );
        assert_eq!(
            parse_hex_key::<1>("+1"),
            Err(KeyParseError::InvalidDigit { pos: 0, found: '+' })
        );
    }

    #[test]
    fn linux_tfo_key_format_roundtrips_with_le_words() {
        let k = parse_linux_tfo_key("00112233-44556677-8899aabb-ccddeeff").unwrap();
        // Linux: key[i] = cpu_to_le32(user_key[i]).
        assert_eq!(
            k.to_bytes(),
            [
                0x33, 0x22, 0x11, 0x00, 0x77, 0x66, 0x55, 0x44, 0xbb, 0xaa, 0x99, 0x88, 0xff, 0xee,
                0xdd, 0xcc
            ]
        );
        assert_eq!(
            format_linux_tfo_key(k),
            "00112233-44556677-8899aabb-ccddeeff"
        );
        // sscanf("%x") accepts short words.
        let short = parse_linux_tfo_key("1-2-3-4").unwrap();
        assert_eq!(
            format_linux_tfo_key(short),
            "00000001-00000002-00000003-00000004"
        );
        for bad in [
            "",
            "1-2-3",
            "1-2-3-4-5",
            "1--3-4",
            "123456789-2-3-4",
            "x-2-3-4",
        ] {
            assert_eq!(
                parse_linux_tfo_key(bad),
                Err(KeyParseError::BadLinuxFormat),
                "{bad}"
            );
        }
    }
}
