//! Ethernet II frames (IEEE 802.3 with an EtherType). No VLAN tags: an
//! 802.1Q frame shows ethertype 0x8100 as [`EtherType::Unknown`].

use super::field::{read_u16, write_u16, Field, Rest};
use super::{Error, Result};
use core::fmt;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Reads an address from the first 6 bytes of `data` (panics if shorter).
    #[inline]
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&data[..6]);
        EthernetAddress(a)
    }

    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit (I/G, the low bit of the first octet); broadcast included.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// A unicast address: what a NIC may own.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// EtherType values we look at; anything else is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(v: EtherType) -> u16 {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Unknown(other) => other,
        }
    }
}

mod field {
    use super::{Field, Rest};
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// Zero-copy view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; see [`check_len`](Self::check_len).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer cannot hold the 14-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the header (including any trailing padding: the
    /// next layer's length field decides what is payload).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, u16::from(value));
    }

    /// Mutable payload, for building the next layer in place.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }

    /// Turns a received frame into its reply's header in place: the sender
    /// becomes the destination and `our_addr` the source.
    #[inline]
    pub fn swap_for_reply(&mut self, our_addr: EthernetAddress) {
        let peer = self.src_addr();
        self.set_dst_addr(peer);
        self.set_src_addr(our_addr);
    }
}

/// Writes a 14-byte Ethernet header at the start of `buf`.
#[inline]
pub fn emit_header(
    buf: &mut [u8],
    dst: EthernetAddress,
    src: EthernetAddress,
    ethertype: EtherType,
) -> Result<()> {
    if buf.len() < HEADER_LEN {
        return Err(Error::BufferTooSmall);
    }
    let mut frame = EthernetFrame::new_unchecked(buf);
    frame.set_dst_addr(dst);
    frame.set_src_addr(src);
    frame.set_ethertype(ethertype);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Ethernet II: broadcast <- 02:00:00:c6:12:01, IPv4, 4 payload bytes.
    static FRAME: [u8; 18] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
        0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, // source
        0x08, 0x00, // ethertype IPv4
        0xaa, 0x00, 0x00, 0xff, // payload
    ];
    const SRC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0xc6, 0x12, 0x01]);

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert!(frame.dst_addr().is_broadcast());
        assert!(frame.dst_addr().is_multicast());
        assert_eq!(frame.src_addr(), SRC);
        assert!(frame.src_addr().is_unicast());
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        assert_eq!(frame.src_addr().to_string(), "02:00:00:c6:12:01");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 18];
        emit_header(&mut bytes, EthernetAddress::BROADCAST, SRC, EtherType::Ipv4).unwrap();
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0x00, 0x00, 0xff]);
        assert_eq!(bytes, FRAME);
        assert_eq!(
            emit_header(&mut [0u8; 13], SRC, SRC, EtherType::Arp),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME[..13]).err(),
            Some(Error::Truncated)
        );
        let empty = EthernetFrame::new_checked(&FRAME[..14]).unwrap();
        assert!(empty.payload().is_empty());
    }

    #[test]
    fn ethertypes() {
        for v in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0] {
            assert_eq!(u16::from(EtherType::from(v)), v);
        }
        assert_eq!(EtherType::from(0x8100), EtherType::Unknown(0x8100));
        let mut vlan = FRAME;
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&vlan[..]).unwrap().ethertype(),
            EtherType::Unknown(0x8100)
        );
    }

    #[test]
    fn reply_swap() {
        let mut bytes = FRAME;
        bytes[0..6].copy_from_slice(&[0x02, 0, 0, 0xc6, 0x12, 0x02]);
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        let ours = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
        frame.swap_for_reply(ours);
        assert_eq!(frame.dst_addr(), SRC);
        assert_eq!(frame.src_addr(), ours);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = EthernetFrame::new_checked(&data[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype(), frame.payload());
            }
        }
    }
}
