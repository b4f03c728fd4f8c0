//! Header fields at fixed offsets: the byte ranges, and the big-endian
//! numbers in them. Every view reads and writes its fields through these,
//! so the byte order is handled in one place.
//!
//! Each protocol keeps its offsets in a private `mod field` of [`Field`]
//! constants (smoltcp's layout). Reads and writes index the buffer, so they
//! panic only when it is shorter than the field, which `check_len` rules
//! out for a checked view.

/// A byte range inside a header.
pub(super) type Field = core::ops::Range<usize>;
/// The rest of a buffer from an offset.
pub(super) type Rest = core::ops::RangeFrom<usize>;

/// The big-endian `u16` in `buf[f]` (a two-byte field).
#[inline]
pub(super) fn read_u16(buf: &[u8], f: Field) -> u16 {
    let b = &buf[f];
    u16::from_be_bytes([b[0], b[1]])
}

/// The big-endian `u32` in `buf[f]` (a four-byte field).
#[inline]
pub(super) fn read_u32(buf: &[u8], f: Field) -> u32 {
    let b = &buf[f];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Store `v` big-endian in `buf[f]` (a two-byte field).
#[inline]
pub(super) fn write_u16(buf: &mut [u8], f: Field, v: u16) {
    buf[f].copy_from_slice(&v.to_be_bytes());
}

/// Store `v` big-endian in `buf[f]` (a four-byte field).
#[inline]
pub(super) fn write_u32(buf: &mut [u8], f: Field, v: u32) {
    buf[f].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_byte_order_at_the_offset() {
        let mut b = [0u8; 8];
        write_u16(&mut b, 1..3, 0x1234);
        write_u32(&mut b, 4..8, 0xdead_beef);
        assert_eq!(b, [0, 0x12, 0x34, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(read_u16(&b, 1..3), 0x1234);
        assert_eq!(read_u32(&b, 4..8), 0xdead_beef);
    }

    #[test]
    #[should_panic]
    fn a_field_beyond_the_buffer_panics() {
        read_u16(&[0u8; 3], 2..4);
    }
}
