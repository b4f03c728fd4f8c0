//! IPv4 headers (RFC 791).

use super::checksum;
use super::field::{read_u16, write_u16, Field};
use super::{Error, Result};
use std::net::Ipv4Addr;

/// IP protocol numbers we look at; anything else is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Zero-copy view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks, in this order: 20 bytes present (`Truncated`), version 4
    /// (`BadVersion`), IHL >= 5 (`BadHeaderLen`), header within the buffer
    /// (`Truncated`), total length >= header length (`BadLength`), total
    /// length within the buffer (`Truncated`). A buffer longer than the
    /// total length is fine: Ethernet pads short frames to 60 bytes.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::BadLength);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn raw_at(&self, f: Field) -> [u8; 4] {
        let b = &self.buffer.as_ref()[f];
        [b[0], b[1], b[2], b[3]]
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The IHL field, in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        self.ihl() * 4
    }

    #[inline]
    pub fn has_options(&self) -> bool {
        self.ihl() > 5
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// Any fragment, first or not (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_addr_raw())
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_addr_raw())
    }

    /// Source address as network-order bytes.
    #[inline]
    pub fn src_addr_raw(&self) -> [u8; 4] {
        self.raw_at(field::SRC_ADDR)
    }

    /// Destination address as network-order bytes.
    #[inline]
    pub fn dst_addr_raw(&self) -> [u8; 4] {
        self.raw_at(field::DST_ADDR)
    }

    /// Source address as a host-order integer (`u32::from(Ipv4Addr)`).
    #[inline]
    pub fn src_addr_u32(&self) -> u32 {
        u32::from_be_bytes(self.src_addr_raw())
    }

    /// Destination address as a host-order integer.
    #[inline]
    pub fn dst_addr_u32(&self) -> u32 {
        u32::from_be_bytes(self.dst_addr_raw())
    }

    /// True if the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::fold(checksum::sum(header)) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// Options bytes between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload, cut at the total length: link-layer padding is not part
    /// of it.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version (high nibble).
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (v & 0x03);
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v)
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, v)
    }

    /// Sets the DF bit and clears MF and the fragment offset: we never
    /// fragment.
    #[inline]
    pub fn set_dont_frag_unfragmented(&mut self, df: bool) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, if df { FLAG_DF } else { 0 })
    }

    /// Sets flags and offset (offset in bytes, a multiple of 8).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), field::FLG_OFF, v)
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = u8::from(v);
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.set_src_addr_raw(a.octets())
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.set_dst_addr_raw(a.octets())
    }

    #[inline]
    pub fn set_src_addr_raw(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a);
    }

    #[inline]
    pub fn set_dst_addr_raw(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a);
    }

    /// Computes and writes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let csum = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(csum);
    }

    /// Mutable payload (cut at the total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// What we put in the IPv4 headers we send: no options, never fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Length of what follows the header.
    pub payload_len: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    /// The TOS byte (DSCP << 2 | ECN), as Linux's IP_TOS.
    pub tos: u8,
}

impl Ipv4Repr {
    /// Reads the fields of a checked packet. Options are skipped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() - u16::from(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            tos: (packet.dscp() << 2) | packet.ecn(),
        }
    }

    /// Length [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header with its checksum at the start of `buf`.
    /// Fails with `BufferTooSmall` if `buf` is shorter than 20 bytes, or
    /// `BadLength` if the payload would not fit the 16-bit total length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let total_len = self
            .payload_len
            .checked_add(HEADER_LEN as u16)
            .ok_or(Error::BadLength)?;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.buffer[field::VER_IHL] = 0x45;
        p.buffer[field::DSCP_ECN] = self.tos;
        p.set_total_len(total_len);
        p.set_ident(self.ident);
        p.set_dont_frag_unfragmented(self.dont_frag);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    // IPv4, 20-byte header, total 24, DF, TTL 64, TCP, 198.18.0.1 -> 198.18.0.2,
    // then 4 payload bytes and 2 bytes of Ethernet padding.
    static PACKET: [u8; 26] = [
        0x45, 0x00, // version 4, IHL 5; DSCP 0, ECN 0
        0x00, 0x18, // total length 24
        0x12, 0x34, // ident
        0x40, 0x00, // DF, offset 0
        0x40, 0x06, // TTL 64, protocol TCP
        0x9c, 0x84, // header checksum
        198, 18, 0, 1, // source
        198, 18, 0, 2, // destination
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0x00, 0x00, // link-layer padding
    ];

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: SRC,
            dst_addr: DST,
            protocol: IpProtocol::Tcp,
            payload_len: 4,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            tos: 0,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert!(!p.has_options());
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::Tcp);
        assert_eq!(p.checksum(), 0x9c84);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert_eq!(p.src_addr_raw(), [198, 18, 0, 1]);
        assert_eq!(p.dst_addr_u32(), u32::from(DST));
        assert!(p.options().is_empty());
        // Padding is not payload.
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p), repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 26];
        assert_eq!(repr().emit(&mut buf), Ok(20));
        assert_eq!(&buf[..20], &PACKET[..20]);
        assert_eq!(&buf[20..], &[0xa5; 6]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(&buf[..24], &PACKET[..24]);
        assert_eq!(repr().emit(&mut [0u8; 19]), Err(Error::BufferTooSmall));
        let huge = Ipv4Repr {
            payload_len: u16::MAX - 19,
            ..repr()
        };
        assert_eq!(huge.emit(&mut [0u8; 20]), Err(Error::BadLength));
    }

    #[test]
    fn setters() {
        let mut buf = PACKET;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_dscp(46);
        p.set_ecn(2);
        assert_eq!((p.dscp(), p.ecn()), (46, 2));
        p.set_frag(false, true, 1480);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        p.set_frag(false, false, 8);
        assert!(p.is_fragment());
        p.set_dont_frag_unfragmented(true);
        assert!(!p.is_fragment());
        p.set_protocol(IpProtocol::Unknown(253));
        assert_eq!(p.protocol(), IpProtocol::Unknown(253));
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.set_version(6);
        p.set_header_len(24);
        assert_eq!((p.version(), p.header_len()), (6, 24));
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: one word of options (NOP NOP NOP EOL).
        let mut buf = [0u8; 28];
        buf[..12].copy_from_slice(&PACKET[..12]);
        buf[0] = 0x46;
        buf[2..4].copy_from_slice(&28u16.to_be_bytes());
        buf[12..20].copy_from_slice(&PACKET[12..20]);
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        buf[24..28].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.has_options());
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(Ipv4Repr::parse(&p).payload_len, 4);
    }

    #[test]
    fn rejects() {
        let check = |b: &[u8]| Ipv4Packet::new_checked(b).err();
        assert_eq!(check(&PACKET[..19]), Some(Error::Truncated));
        let mut b = PACKET;
        b[0] = 0x65;
        assert_eq!(check(&b), Some(Error::BadVersion));
        b[0] = 0x44;
        assert_eq!(check(&b), Some(Error::BadHeaderLen));
        b[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert_eq!(check(&b), Some(Error::Truncated));
        let mut b = PACKET;
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(check(&b), Some(Error::BadLength));
        b[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(check(&b), Some(Error::Truncated));
        b[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap().payload(),
            &[] as &[u8]
        );
    }

    #[test]
    fn protocols() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(1), IpProtocol::Icmp);
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.header_len(), p.has_options(), p.dscp(), p.ecn());
                let _ = (p.total_len(), p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset());
                let _ = (p.is_fragment(), p.ttl(), p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
                let _ = (p.verify_checksum(), p.options(), p.payload(), Ipv4Repr::parse(&p));
            }
        }

        #[test]
        fn emit_parse_roundtrip(src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(),
                                len in 0u16..1000, ttl in any::<u8>(), ident in any::<u16>(),
                                df in any::<bool>(), tos in any::<u8>()) {
            let r = Ipv4Repr { src_addr: src.into(), dst_addr: dst.into(), protocol: proto.into(),
                               payload_len: len, ttl, ident, dont_frag: df, tos };
            let mut buf = [0u8; 1020];
            r.emit(&mut buf).unwrap();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Ipv4Repr::parse(&p), r);
        }
    }
}
