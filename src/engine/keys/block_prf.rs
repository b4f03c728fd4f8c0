//! A keyed pseudo-random function of fixed-length inputs: AES-128 in
//! CBC-MAC over two 128-bit blocks (CBC-MAC is a secure PRF for messages
//! of one fixed length), or of one block. With AES-NI a call is two block encryptions of
//! ten rounds each; the key schedule is expanded once, when the key is set.

use super::sipkey::SipKey;
use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes128;
use std::cell::Cell;
use std::fmt;

/// AES-128 with its key expanded.
#[derive(Clone)]
pub struct BlockPrf {
    aes: Aes128,
    /// The last first block of [`BlockPrf::mac3`] and its encryption: the
    /// first block is our own address, one of a few, so a SYN over IPv6
    /// costs two block encryptions as over IPv4.
    first: Cell<([u8; 16], [u8; 16])>,
}

impl BlockPrf {
    pub fn new(key: SipKey) -> BlockPrf {
        let aes = Aes128::new(&GenericArray::from(key.to_bytes()));
        let mut zero = GenericArray::from([0u8; 16]);
        aes.encrypt_block(&mut zero);
        BlockPrf { aes, first: Cell::new(([0; 16], zero.into())) }
    }

    /// The low 32 bits of the encryption of one block (a PRF of one
    /// 128-bit input).
    #[inline]
    pub fn block(&self, a: [u32; 4]) -> u32 {
        let mut x = GenericArray::from(words_to_block(a));
        self.aes.encrypt_block(&mut x);
        u32::from_le_bytes([x[0], x[1], x[2], x[3]])
    }

    /// The low 32 bits of the CBC-MAC of the two blocks `a` then `b`.
    #[inline]
    pub fn mac(&self, a: [u32; 4], b: [u32; 4]) -> u32 {
        let mut x = GenericArray::from(words_to_block(a));
        self.aes.encrypt_block(&mut x);
        let b = words_to_block(b);
        for (x, b) in x.iter_mut().zip(b) {
            *x ^= b;
        }
        self.aes.encrypt_block(&mut x);
        u32::from_le_bytes([x[0], x[1], x[2], x[3]])
    }
}

impl BlockPrf {
    /// The low 32 bits of the CBC-MAC of the three blocks `a`, `b`, `c`
    /// (IPv6: two addresses and a block of the rest). Messages of the
    /// other lengths under the same key are never a prefix of these:
    /// callers tag the last block, and the full tag is never revealed.
    #[inline]
    pub fn mac3(&self, a: [u8; 16], b: [u8; 16], c: [u32; 4]) -> u32 {
        let (last, encrypted) = self.first.get();
        let mut x = if last == a {
            GenericArray::from(encrypted)
        } else {
            let mut x = GenericArray::from(a);
            self.aes.encrypt_block(&mut x);
            self.first.set((a, x.into()));
            x
        };
        for (x, b) in x.iter_mut().zip(b) {
            *x ^= b;
        }
        self.aes.encrypt_block(&mut x);
        for (x, c) in x.iter_mut().zip(words_to_block(c)) {
            *x ^= c;
        }
        self.aes.encrypt_block(&mut x);
        u32::from_le_bytes([x[0], x[1], x[2], x[3]])
    }
}

#[inline(always)]
fn words_to_block(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, w) in out.chunks_exact_mut(4).zip(w) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

impl fmt::Debug for BlockPrf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlockPrf(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fips_197_vector_through_the_first_block() {
        // FIPS-197 appendix C.1: key 000102..0f, plaintext 00112233..ff,
        // ciphertext 69c4e0d86a7b0430d8cdb78070b4c55a. With b = 0 the second
        // block encrypts the first ciphertext again; check it against the
        // cipher directly.
        let key = SipKey::from_bytes(std::array::from_fn(|i| i as u8));
        let prf = BlockPrf::new(key);
        let pt: [u8; 16] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let mut c1 = GenericArray::from(pt);
        prf.aes.encrypt_block(&mut c1);
        assert_eq!(c1.as_slice(), [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]);
        let mut c2 = c1;
        prf.aes.encrypt_block(&mut c2);
        let words = |b: &[u8]| -> [u32; 4] { std::array::from_fn(|i| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())) };
        assert_eq!(prf.mac(words(&pt), [0; 4]), u32::from_le_bytes([c2[0], c2[1], c2[2], c2[3]]));
    }

    /// The remembered first block gives what encrypting it again gives.
    #[test]
    fn mac3_is_the_same_with_its_first_block_remembered_or_not() {
        let prf = BlockPrf::new(SipKey::from_bytes([7; 16]));
        let (a, a2, b) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let fresh = |a, b, c| BlockPrf::new(SipKey::from_bytes([7; 16])).mac3(a, b, c);
        for (first, rest) in [(a, b), (a, a2), (a2, b), (a, b), ([0; 16], b)] {
            assert_eq!(prf.mac3(first, rest, [4, 5, 6, 7]), fresh(first, rest, [4, 5, 6, 7]));
        }
        assert_ne!(prf.mac3(a, b, [4, 5, 6, 7]), prf.mac3(a2, b, [4, 5, 6, 7]));
    }

    #[test]
    fn every_input_word_and_the_key_change_the_mac() {
        let prf = BlockPrf::new(SipKey::from_bytes([7; 16]));
        let base = prf.mac([1, 2, 3, 4], [5, 0, 0, 0]);
        for i in 0..8 {
            let (mut a, mut b) = ([1, 2, 3, 4], [5, 0, 0, 0]);
            if i < 4 { a[i] ^= 1 } else { b[i - 4] ^= 1 }
            assert_ne!(prf.mac(a, b), base, "word {i}");
        }
        assert_ne!(BlockPrf::new(SipKey::from_bytes([8; 16])).mac([1, 2, 3, 4], [5, 0, 0, 0]), base);
    }
}
