//! IPv6 fixed headers (RFC 8200), the upper-layer checksum over the IPv6
//! pseudo-header (RFC 8200 §8.1), and the multicast addresses a host on
//! Ethernet needs (solicited-node, RFC 4291 §2.7.1; their MAC, RFC 2464 §7).
//!
//! The view covers the whole packet; [`Ipv6Packet::payload`] is cut at the
//! payload length, so Ethernet padding is not part of it. Extension
//! headers are walked by [`super::ipv6_ext`].

use super::checksum;
use super::ethernet::EthernetAddress;
use super::field::{read_u16, read_u32, write_u16, write_u32, Field};
use super::{Error, Result};
use std::net::Ipv6Addr;

/// Next-header values (IANA "Assigned Internet Protocol Numbers") that an
/// IPv6 host looks at; anything else is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHeader {
    HopByHop,
    Tcp,
    Udp,
    Routing,
    Fragment,
    Icmpv6,
    NoNextHeader,
    DestOptions,
    Unknown(u8),
}

impl From<u8> for NextHeader {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            0 => NextHeader::HopByHop,
            6 => NextHeader::Tcp,
            17 => NextHeader::Udp,
            43 => NextHeader::Routing,
            44 => NextHeader::Fragment,
            58 => NextHeader::Icmpv6,
            59 => NextHeader::NoNextHeader,
            60 => NextHeader::DestOptions,
            other => NextHeader::Unknown(other),
        }
    }
}

impl From<NextHeader> for u8 {
    #[inline]
    fn from(v: NextHeader) -> u8 {
        match v {
            NextHeader::HopByHop => 0,
            NextHeader::Tcp => 6,
            NextHeader::Udp => 17,
            NextHeader::Routing => 43,
            NextHeader::Fragment => 44,
            NextHeader::Icmpv6 => 58,
            NextHeader::NoNextHeader => 59,
            NextHeader::DestOptions => 60,
            NextHeader::Unknown(other) => other,
        }
    }
}

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Offset of the next-header byte in the fixed header (Linux's `nhoff` for
/// the first header).
pub const NEXT_HEADER_OFFSET: usize = field::NEXT_HEADER;
/// Offset of the payload length field (the pointer of some parameter problems).
pub const PAYLOAD_LEN_OFFSET: usize = field::PAYLOAD_LEN.start;
/// RFC 8200 §5: every link carries at least 1280-byte packets.
pub const MIN_MTU: usize = 1280;

/// ff02::1, all nodes on the link.
pub const LINK_LOCAL_ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Zero-copy view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks, in this order: 40 bytes present (`Truncated`), version 6
    /// (`BadVersion`), payload within the buffer (`Truncated`). A longer
    /// buffer is fine (Ethernet padding). A zero payload length is a
    /// zero-length payload: jumbograms (RFC 2675) cannot arrive in a frame.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        if len < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn addr_at(&self, f: Field) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[f]);
        Ipv6Addr::from(a)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class byte (DSCP << 2 | ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Header plus payload length: the packet without link-layer padding.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    #[inline]
    pub fn next_header(&self) -> NextHeader {
        NextHeader::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        self.addr_at(field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.addr_at(field::DST_ADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// Header and payload, cut at the payload length (what extension-header
    /// offsets and ICMPv6 pointers count from).
    #[inline]
    pub fn packet(&self) -> &'a [u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }

    /// Everything after the fixed header, cut at the payload length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version, traffic class and flow label together (one word).
    #[inline]
    pub fn set_ver_tc_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
        let v = (u32::from(version & 0x0f) << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, v)
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v)
    }

    #[inline]
    pub fn set_next_header(&mut self, v: NextHeader) {
        self.buffer.as_mut()[field::NEXT_HEADER] = u8::from(v);
    }

    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Mutable payload (cut at the payload length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// What we put in the IPv6 headers we send: no extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    pub next_header: NextHeader,
    /// Length of what follows the fixed header.
    pub payload_len: u16,
    pub hop_limit: u8,
    /// DSCP << 2 | ECN, as Linux's IPV6_TCLASS.
    pub traffic_class: u8,
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header of a checked packet (extension headers are
    /// part of the payload here).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        }
    }

    /// Length [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_ver_tc_flow(6, self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        Ok(HEADER_LEN)
    }
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): source,
/// destination, the 32-bit upper-layer length, three zero bytes and the
/// next header (the upper-layer protocol, not an extension header).
#[inline]
pub fn pseudo_header(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let s = checksum::combine(checksum::sum(&src.octets()), checksum::sum(&dst.octets()));
    let s = checksum::combine(s, (len >> 16) + (len & 0xffff));
    checksum::combine(s, u32::from(next_header))
}

/// True if `data` (an upper-layer message with its checksum field) sums to
/// zero with the pseudo-header: TCP, UDP and ICMPv6 over IPv6.
#[inline]
pub fn verify_upper_layer(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> bool {
    let Ok(len) = u32::try_from(data.len()) else { return false };
    let ph = pseudo_header(src, dst, next_header, len);
    checksum::fold(checksum::combine(ph, checksum::sum(data))) == 0xffff
}

/// Computes the upper-layer checksum of `data` and writes it at
/// `data[at..at + 2]` (the field is taken as zero). For UDP a computed zero
/// is sent as 0xffff (RFC 8200 §8.1: a zero UDP checksum over IPv6 means
/// none, which receivers drop); TCP and ICMPv6 keep it.
pub fn fill_upper_layer(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: NextHeader, data: &mut [u8], at: usize) -> Result<()> {
    if data.len() < at + 2 {
        return Err(Error::BufferTooSmall);
    }
    let len = u32::try_from(data.len()).map_err(|_| Error::BadLength)?;
    data[at..at + 2].copy_from_slice(&[0, 0]);
    let ph = pseudo_header(src, dst, u8::from(next_header), len);
    let mut csum = !checksum::fold(checksum::combine(ph, checksum::sum(data)));
    if csum == 0 && next_header == NextHeader::Udp {
        csum = 0xffff;
    }
    data[at..at + 2].copy_from_slice(&csum.to_be_bytes());
    Ok(())
}

/// The solicited-node multicast address of `addr`: ff02::1:ff00:0/104
/// with the low 24 bits of `addr` (RFC 4291 §2.7.1).
#[inline]
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15]])
}

/// Linux's `ipv6_addr_is_solict_mult`: inside ff02::1:ff00:0/104.
#[inline]
pub fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The scope of a multicast address (its low nibble of the second octet:
/// 1 interface-local, 2 link-local, 5 site-local, 0xe global; RFC 4291 §2.7).
#[inline]
pub fn multicast_scope(addr: &Ipv6Addr) -> u8 {
    addr.octets()[1] & 0x0f
}

/// Link-local unicast fe80::/10.
#[inline]
pub fn is_link_local(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[0] == 0xfe && o[1] & 0xc0 == 0x80
}

/// The Ethernet destination of an IPv6 multicast address: 33:33 and its
/// low 32 bits (RFC 2464 §7), e.g. 33:33:ff:xx:xx:xx for a solicited-node one.
#[inline]
pub fn multicast_mac(addr: &Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

    // IPv6, tclass 0xb8 (EF), flow 0x12345, payload 4, UDP, hop limit 64,
    // 2001:2::1 -> 2001:2::2, then 4 payload bytes and 2 bytes of padding.
    static PACKET: [u8; 46] = [
        0x6b, 0x81, 0x23, 0x45, // version 6, tclass 0xb8, flow label 0x12345
        0x00, 0x04, 0x11, 0x40, // payload length 4, next header UDP, hop limit 64
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // source
        0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // destination
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0x00, 0x00, // link-layer padding
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: NextHeader::Udp,
            payload_len: 4,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.total_len(), 44);
        assert_eq!(p.next_header(), NextHeader::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!((p.src_addr(), p.dst_addr()), (SRC, DST));
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(p.packet().len(), 44);
        assert_eq!(Ipv6Repr::parse(&p), repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 46];
        assert_eq!(repr().emit(&mut buf), Ok(40));
        assert_eq!(&buf[..40], &PACKET[..40]);
        assert_eq!(&buf[40..], &[0xa5; 6]);
        Ipv6Packet::new_unchecked(&mut buf[..]).payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(&buf[..44], &PACKET[..44]);
        assert_eq!(repr().emit(&mut [0u8; 39]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn rejects() {
        let check = |b: &[u8]| Ipv6Packet::new_checked(b).err();
        assert_eq!(check(&PACKET[..39]), Some(Error::Truncated));
        let mut b = PACKET;
        b[0] = 0x4b;
        assert_eq!(check(&b), Some(Error::BadVersion));
        let mut b = PACKET;
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(check(&b), Some(Error::Truncated));
        b[4..6].copy_from_slice(&6u16.to_be_bytes());
        assert_eq!(check(&b), None);
        assert_eq!(check(&PACKET[..43]), Some(Error::Truncated));
    }

    #[test]
    fn next_headers() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(NextHeader::from(v)), v);
        }
        assert_eq!(NextHeader::from(58), NextHeader::Icmpv6);
        assert_eq!(NextHeader::from(60), NextHeader::DestOptions);
        assert_eq!(NextHeader::from(132), NextHeader::Unknown(132));
    }

    #[test]
    fn checksum_vector() {
        // UDP 2001:2::1:1000 -> 2001:2::2:53, payload "ab": the sum of
        // the pseudo-header and the datagram, by RFC 1071 word by word.
        let mut udp = [0x03, 0xe8, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, b'a', b'b'];
        fill_upper_layer(&SRC, &DST, NextHeader::Udp, &mut udp, 6).unwrap();
        let mut words: u32 = 0;
        for a in [SRC, DST] {
            for w in a.segments() {
                words += u32::from(w);
            }
        }
        words += 10 + 17;
        for c in udp.chunks(2) {
            words += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while words > 0xffff {
            words = (words >> 16) + (words & 0xffff);
        }
        assert_eq!(words, 0xffff);
        assert!(verify_upper_layer(&SRC, &DST, 17, &udp));
        assert!(!verify_upper_layer(&DST, &Ipv6Addr::LOCALHOST, 17, &udp));
        assert!(!verify_upper_layer(&SRC, &DST, 6, &udp));
        assert_eq!(fill_upper_layer(&SRC, &DST, NextHeader::Udp, &mut udp[..7], 6), Err(Error::BufferTooSmall));
    }

    #[test]
    fn multicast_addresses() {
        let a = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0x0a0b, 0x0c0d);
        let sn = solicited_node(&a);
        assert_eq!(sn, "ff02::1:ff0b:c0d".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node(&sn));
        assert!(!is_solicited_node(&LINK_LOCAL_ALL_NODES));
        assert!(!is_solicited_node(&a));
        assert_eq!(multicast_mac(&sn), EthernetAddress([0x33, 0x33, 0xff, 0x0b, 0x0c, 0x0d]));
        assert_eq!(multicast_mac(&LINK_LOCAL_ALL_NODES), EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(multicast_scope(&sn), 2);
        assert_eq!(multicast_scope(&"ff0e::1".parse().unwrap()), 0xe);
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(is_link_local(&"febf::1".parse().unwrap()));
        assert!(!is_link_local(&"fec0::1".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.traffic_class(), p.flow_label(), p.payload_len(), p.total_len());
                let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload(), p.packet());
                let _ = Ipv6Repr::parse(&p);
            }
        }

        #[test]
        fn emit_parse_roundtrip(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), nh in any::<u8>(),
                                len in 0u16..1000, hop in any::<u8>(), tc in any::<u8>(), flow in 0u32..0x10_0000) {
            let r = Ipv6Repr { src_addr: src.into(), dst_addr: dst.into(), next_header: nh.into(),
                               payload_len: len, hop_limit: hop, traffic_class: tc, flow_label: flow };
            let mut buf = [0u8; 1040];
            r.emit(&mut buf).unwrap();
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&p), r);
        }

        #[test]
        fn filled_checksums_verify(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
                                   mut data in proptest::collection::vec(any::<u8>(), 8..300)) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            for nh in [NextHeader::Tcp, NextHeader::Udp, NextHeader::Icmpv6] {
                let at = if nh == NextHeader::Tcp { 16 } else if nh == NextHeader::Udp { 6 } else { 2 };
                if data.len() < at + 2 { continue; }
                fill_upper_layer(&src, &dst, nh, &mut data, at).unwrap();
                prop_assert!(verify_upper_layer(&src, &dst, u8::from(nh), &data));
            }
        }
    }
}
