//! TCP segment headers (RFC 9293 §3.1). Options are in [`super::tcp_options`].
//!
//! The view covers the IP payload (already cut at the IP total length), so
//! `payload()` is the segment's data.

use super::checksum;
use super::field::{read_u16, read_u32, write_u16, write_u32, Field};
use super::{Error, Result};
use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};
use std::net::Ipv4Addr;

/// The TCP control bits, as a set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x001);
    pub const SYN: TcpFlags = TcpFlags(0x002);
    pub const RST: TcpFlags = TcpFlags(0x004);
    pub const PSH: TcpFlags = TcpFlags(0x008);
    pub const ACK: TcpFlags = TcpFlags(0x010);
    pub const URG: TcpFlags = TcpFlags(0x020);
    pub const ECE: TcpFlags = TcpFlags(0x040);
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// Accurate ECN (RFC 9768), formerly the ECN nonce bit NS (RFC 3540).
    pub const AE: TcpFlags = TcpFlags(0x100);

    /// Every bit this type knows; the 3 reserved bits are dropped.
    const ALL: u16 = 0x1ff;
    const NAMES: [(TcpFlags, &'static str); 9] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
        (Self::AE, "AE"),
    ];

    #[inline]
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The flags in `bits` (low 9 bits of header bytes 12-13).
    #[inline]
    pub const fn from_bits_truncate(bits: u16) -> TcpFlags {
        TcpFlags(bits & Self::ALL)
    }

    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }

    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// All of `other` is set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Any of `other` is set.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    #[inline]
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    #[inline]
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl Not for TcpFlags {
    type Output = TcpFlags;
    #[inline]
    fn not(self) -> TcpFlags {
        TcpFlags(!self.0 & Self::ALL)
    }
}

/// Prints "SYN|ACK", or "(empty)".
impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(empty)");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (4 bits), reserved (3 bits), then the 9 control bits.
    pub const FLAGS: Field = 12..14;
    pub const DATA_OFF: usize = 12;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Offset of the checksum field (RFC 9293 3.1).
pub const CHECKSUM_AT: usize = field::CHECKSUM.start;
/// Longest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry (Linux MAX_TCP_OPTION_SPACE).
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

const PROTO_TCP: u8 = 6;

/// Zero-copy view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSegment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// Wraps a buffer without checking it: the fast path when the caller
    /// runs [`check_len`](Self::check_len) itself.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TcpSegment<T> {
        TcpSegment { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpSegment<T>> {
        let segment = Self::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// `Truncated` if shorter than 20 bytes; `BadHeaderLen` if the data
    /// offset is below 5 or the header it claims runs past the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::BadHeaderLen);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(read_u16(self.buffer.as_ref(), field::FLAGS))
    }

    /// The raw window field (not scaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Data length: buffer length minus header length.
    #[inline]
    pub fn payload_len(&self) -> usize {
        self.buffer.as_ref().len() - usize::from(self.header_len())
    }

    /// Sequence space the segment occupies: data, plus one for SYN and one
    /// for FIN (RFC 9293 §3.4 SEG.LEN).
    #[inline]
    pub fn seq_len(&self) -> usize {
        let flags = self.flags();
        self.payload_len()
            + usize::from(flags.contains(TcpFlags::SYN))
            + usize::from(flags.contains(TcpFlags::FIN))
    }

    /// True if the checksum over the pseudo-header and the whole segment is
    /// correct.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        // A segment longer than 65535 bytes cannot come from IPv4.
        let Ok(len) = u16::try_from(data.len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_ipv4(src.octets(), dst.octets(), PROTO_TCP, len);
        checksum::fold(checksum::combine(ph, checksum::sum(data))) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpSegment<&'a T> {
    /// The option bytes (between the fixed header and the data).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, v)
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, v)
    }

    /// Sets the data offset from a length in bytes (a multiple of 4,
    /// 20..=60); the reserved bits and AE are kept.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((len / 4) & 0x0f) << 4);
    }

    /// Sets the control bits; the data offset is kept and the reserved bits
    /// are cleared.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let data_off = u16::from(self.buffer.as_ref()[field::DATA_OFF] & 0xf0) << 8;
        write_u16(self.buffer.as_mut(), field::FLAGS, data_off | flags.bits())
    }

    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, v)
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v)
    }

    /// Mutable option bytes (sized by the current data offset).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Mutable data after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over the pseudo-header and the
    /// whole buffer (header, options, data). The buffer must be exactly
    /// the segment and at most 65535 bytes.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let len = data.len() as u16;
        let ph = checksum::pseudo_header_ipv4(src.octets(), dst.octets(), PROTO_TCP, len);
        let csum = !checksum::fold(checksum::combine(ph, checksum::sum(data)));
        self.set_checksum(csum);
    }
}

/// The fixed fields of a segment we send. Options and data are written by
/// the caller into the bytes after the header; the checksum comes last
/// with [`TcpSegment::fill_checksum`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window_len: u16,
}

impl TcpRepr {
    /// Reads the fixed fields of a checked segment.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(segment: &TcpSegment<T>) -> TcpRepr {
        TcpRepr {
            src_port: segment.src_port(),
            dst_port: segment.dst_port(),
            seq_number: segment.seq_number(),
            ack_number: segment.ack_number(),
            flags: segment.flags(),
            window_len: segment.window_len(),
        }
    }

    /// Writes the 20-byte fixed header at the start of `buf` with a data
    /// offset covering `options_len` bytes of options (a multiple of 4, at
    /// most 40: else `BadHeaderLen`), urgent pointer and checksum zero.
    /// Returns the header length.
    #[inline]
    pub fn emit_header(&self, buf: &mut [u8], options_len: usize) -> Result<usize> {
        if options_len % 4 != 0 || options_len > MAX_OPTIONS_LEN {
            return Err(Error::BadHeaderLen);
        }
        let header_len = HEADER_LEN + options_len;
        if buf.len() < header_len {
            return Err(Error::BufferTooSmall);
        }
        let mut s = TcpSegment::new_unchecked(&mut buf[..HEADER_LEN]);
        s.set_src_port(self.src_port);
        s.set_dst_port(self.dst_port);
        s.set_seq_number(self.seq_number);
        s.set_ack_number(self.ack_number);
        s.buffer[field::DATA_OFF] = ((header_len / 4) as u8) << 4;
        s.set_flags(self.flags);
        s.set_window_len(self.window_len);
        s.set_checksum(0);
        s.set_urgent_at(0);
        Ok(header_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    // SYN 198.18.0.1:40000 -> 198.18.0.2:80, as Linux 6.x sends it:
    // MSS 1460, SACK_PERM, TS, NOP, WS 7.
    static SYN: [u8; 40] = [
        0x9c, 0x40, // source port 40000
        0x00, 0x50, // destination port 80
        0x01, 0x02, 0x03, 0x04, // sequence number
        0x00, 0x00, 0x00, 0x00, // acknowledgment number
        0xa0, 0x02, // data offset 10 (40 bytes), SYN
        0xfa, 0xf0, // window 64240
        0x20, 0x27, // checksum
        0x00, 0x00, // urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x00, // TS 42, 0
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ];

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0x0102_0304,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 64240,
        }
    }

    #[test]
    fn deconstruct() {
        let s = TcpSegment::new_checked(&SYN[..]).unwrap();
        assert_eq!(s.src_port(), 40000);
        assert_eq!(s.dst_port(), 80);
        assert_eq!(s.seq_number(), 0x0102_0304);
        assert_eq!(s.ack_number(), 0);
        assert_eq!(s.header_len(), 40);
        assert_eq!(s.flags(), TcpFlags::SYN);
        assert_eq!(s.window_len(), 64240);
        assert_eq!(s.checksum(), 0x2027);
        assert_eq!(s.urgent_at(), 0);
        assert_eq!(s.options(), &SYN[20..]);
        assert!(s.payload().is_empty());
        assert_eq!((s.payload_len(), s.seq_len()), (0, 1));
        assert!(s.verify_checksum(SRC, DST));
        assert!(!s.verify_checksum(SRC, Ipv4Addr::new(198, 18, 0, 3)));
        assert_eq!(TcpRepr::parse(&s), syn_repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 42];
        assert_eq!(syn_repr().emit_header(&mut buf, 20), Ok(40));
        assert_eq!(&buf[..16], &SYN[..16]);
        assert_eq!(&buf[40..], &[0xa5, 0xa5]);
        buf[20..40].copy_from_slice(&SYN[20..]);
        let mut s = TcpSegment::new_checked(&mut buf[..40]).unwrap();
        s.fill_checksum(SRC, DST);
        assert_eq!(&buf[..40], &SYN[..]);
        assert_eq!(
            syn_repr().emit_header(&mut [0u8; 39], 20),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            syn_repr().emit_header(&mut buf, 3),
            Err(Error::BadHeaderLen)
        );
        assert_eq!(
            syn_repr().emit_header(&mut [0u8; 64], 44),
            Err(Error::BadHeaderLen)
        );
    }

    #[test]
    fn setters() {
        let mut buf = SYN;
        let mut s = TcpSegment::new_checked(&mut buf[..]).unwrap();
        s.set_flags(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
        assert_eq!(s.header_len(), 40);
        assert_eq!(s.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
        s.set_header_len(24);
        assert_eq!(s.header_len(), 24);
        assert_eq!(s.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
        s.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        s.payload_mut()[0] = 0x55;
        s.set_src_port(1);
        s.set_dst_port(2);
        s.set_seq_number(3);
        s.set_ack_number(4);
        s.set_window_len(5);
        s.set_urgent_at(6);
        s.fill_checksum(SRC, DST);
        let s = TcpSegment::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (s.src_port(), s.dst_port(), s.seq_number(), s.ack_number()),
            (1, 2, 3, 4)
        );
        assert_eq!((s.window_len(), s.urgent_at()), (5, 6));
        assert_eq!(s.options(), &[1, 1, 1, 0]);
        assert_eq!(s.payload().len(), 16);
        assert_eq!(s.payload()[0], 0x55);
        assert_eq!(s.seq_len(), 17);
        assert!(s.verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            TcpSegment::new_checked(&SYN[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            TcpSegment::new_checked(&SYN[..39]).err(),
            Some(Error::BadHeaderLen)
        );
        let mut b = SYN;
        b[12] = 0x40; // data offset 4
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(Error::BadHeaderLen)
        );
        b[12] = 0xf0; // 60 bytes in a 40-byte buffer
        assert_eq!(
            TcpSegment::new_checked(&b[..]).err(),
            Some(Error::BadHeaderLen)
        );
        b[12] = 0x50;
        let s = TcpSegment::new_checked(&b[..]).unwrap();
        assert!(s.options().is_empty());
        assert_eq!(s.payload().len(), 20);
    }

    #[test]
    fn flags() {
        let sa = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(format!("{sa:?}"), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::empty()), "(empty)");
        assert_eq!(
            format!("{}", TcpFlags::from_bits_truncate(0xfff)),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR|AE"
        );
        assert!(sa.contains(TcpFlags::SYN));
        assert!(!sa.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(sa.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert_eq!(sa & TcpFlags::ACK, TcpFlags::ACK);
        assert_eq!((!sa).bits(), 0x1ff & !0x12);
        let mut f = TcpFlags::RST;
        f |= TcpFlags::ACK;
        f.insert(TcpFlags::PSH);
        f.remove(TcpFlags::RST);
        assert_eq!(f, TcpFlags::ACK | TcpFlags::PSH);
        // Reserved bits are not flags.
        let mut b = SYN;
        b[12] = 0xae;
        let s = TcpSegment::new_checked(&b[..]).unwrap();
        assert_eq!(s.flags(), TcpFlags::SYN);
        assert_eq!(s.header_len(), 40);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(s) = TcpSegment::new_checked(&data[..]) {
                let _ = (s.src_port(), s.dst_port(), s.seq_number(), s.ack_number(), s.header_len());
                let _ = (s.flags(), s.window_len(), s.checksum(), s.urgent_at(), s.options(), s.payload());
                let _ = (s.payload_len(), s.seq_len(), s.verify_checksum(SRC, DST), TcpRepr::parse(&s));
                let _ = format!("{:?}", s.flags());
                let mut copy = data.clone();
                let mut m = TcpSegment::new_unchecked(&mut copy[..]);
                m.fill_checksum(SRC, DST);
                prop_assert!(m.verify_checksum(SRC, DST));
            }
        }

        #[test]
        fn emit_parse_roundtrip(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(),
                                bits in any::<u16>(), win in any::<u16>(), words in 0usize..=10) {
            let r = TcpRepr { src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack,
                              flags: TcpFlags::from_bits_truncate(bits), window_len: win };
            let mut buf = [0u8; 60];
            let len = r.emit_header(&mut buf, words * 4).unwrap();
            let s = TcpSegment::new_checked(&buf[..len]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&s), r);
            prop_assert_eq!(usize::from(s.header_len()), len);
        }
    }
}
