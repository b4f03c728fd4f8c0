//! UDP headers (RFC 768). The listener only needs them to answer port
//! unreachable and to count; the view is complete nonetheless.
//!
//! The view covers the IP payload (already cut at the IP total length).

use super::checksum;
use super::field::{read_u16, write_u16, Field};
use super::{Error, Result};
use std::net::Ipv4Addr;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

const PROTO_UDP: u8 = 17;

/// Zero-copy view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if shorter than 8 bytes or than the length field,
    /// `BadLength` if the length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len < field_len {
            return Err(Error::Truncated);
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

    /// The length field: header plus data.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if the length field says there is no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// True if the checksum is correct or absent (0: RFC 768 "all zero
    /// transmitted checksum value means that the transmitter generated no
    /// checksum").
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header_ipv4(src.octets(), dst.octets(), PROTO_UDP, len);
        checksum::fold(checksum::combine(ph, checksum::sum(data))) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// Data after the header, cut at the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    #[inline]
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v)
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    /// Mutable data after the header, cut at the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes and writes the checksum over the `len()` bytes; a computed
    /// 0 is sent as 0xffff (RFC 768).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let ph = checksum::pseudo_header_ipv4(src.octets(), dst.octets(), PROTO_UDP, len);
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let csum = !checksum::fold(checksum::combine(ph, checksum::sum(data)));
        self.set_checksum(if csum == 0 { 0xffff } else { csum });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    // 198.18.0.1:1000 -> 198.18.0.2:53, 4 data bytes, then 2 trailing bytes
    // beyond the UDP length.
    static DATAGRAM: [u8; 14] = [
        0x03, 0xe8, // source port 1000
        0x00, 0x35, // destination port 53
        0x00, 0x0c, // length 12
        0xc4, 0x91, // checksum
        0xaa, 0x00, 0x00, 0xff, // data
        0x12, 0x34, // beyond the length
    ];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 1000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xc491);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(198, 18, 0, 3)));
        assert_eq!(p.payload(), &[0xaa, 0x00, 0x00, 0xff]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 14];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(1000);
        p.set_dst_port(53);
        p.set_len(12);
        p.payload_mut().copy_from_slice(&[0xaa, 0x00, 0x00, 0xff]);
        p.fill_checksum(SRC, DST);
        assert_eq!(&buf[..12], &DATAGRAM[..12]);
        assert_eq!(&buf[12..], &[0xa5, 0xa5]);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut buf = DATAGRAM;
        buf[6..8].copy_from_slice(&[0, 0]);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn rejects() {
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..7]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            UdpPacket::new_checked(&DATAGRAM[..11]).err(),
            Some(Error::Truncated)
        );
        let mut b = DATAGRAM;
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&b[..]).err(), Some(Error::BadLength));
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.is_empty() && p.payload().is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.is_empty(), p.checksum());
                let _ = (p.verify_checksum(SRC, DST), p.payload());
                let mut copy = data.clone();
                let mut q = UdpPacket::new_unchecked(&mut copy[..]);
                q.fill_checksum(SRC, DST);
                prop_assert!(q.verify_checksum(SRC, DST));
            }
        }
    }
}
