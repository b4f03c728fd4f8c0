//! ARP for Ethernet/IPv4 (RFC 826). Other hardware or protocol layouts are
//! rejected by `new_checked`: the engine only answers "who has" for its own
//! IPv4 addresses on Ethernet.

use super::ethernet::EthernetAddress;
use super::field::{read_u16, write_u16, Field};
use super::{Error, Result};
use std::net::Ipv4Addr;

/// ARP `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    #[inline]
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    #[inline]
    fn from(v: ArpOperation) -> u16 {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    // Offsets below hold for hlen = 6, plen = 4 only (checked).
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Hardware type Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type IPv4 (an EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// Zero-copy view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and
    /// [`check_layout`](Self::check_layout).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_layout()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than the 8-byte fixed part or than the
    /// Ethernet/IPv4 layout (28 bytes).
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// `Err(UnsupportedArpLayout)` unless htype 1, ptype 0x0800, hlen 6, plen 4.
    #[inline]
    pub fn check_layout(&self) -> Result<()> {
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            Err(Error::UnsupportedArpLayout)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ipv4_at(&self, f: Field) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[f];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    #[inline]
    pub fn sender_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        self.ipv4_at(field::SPA)
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.ipv4_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v)
    }

    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v)
    }

    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    #[inline]
    pub fn set_operation(&mut self, v: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, u16::from(v))
    }

    #[inline]
    pub fn set_sender_hardware_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_sender_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_target_hardware_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }

    #[inline]
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// A parsed Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub sender_hardware_addr: EthernetAddress,
    pub sender_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a packet that passed `new_checked`.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> ArpRepr {
        ArpRepr {
            operation: packet.operation(),
            sender_hardware_addr: packet.sender_hardware_addr(),
            sender_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        }
    }

    /// The reply to a request for `our_ip` owned by `our_mac` (RFC 826:
    /// swap sender and target, fill in our hardware address, op := reply).
    /// `None` if this is not a request for `our_ip`.
    pub fn reply_to(&self, our_mac: EthernetAddress, our_ip: Ipv4Addr) -> Option<ArpRepr> {
        if self.operation != ArpOperation::Request || self.target_protocol_addr != our_ip {
            return None;
        }
        Some(ArpRepr {
            operation: ArpOperation::Reply,
            sender_hardware_addr: our_mac,
            sender_protocol_addr: our_ip,
            target_hardware_addr: self.sender_hardware_addr,
            target_protocol_addr: self.sender_protocol_addr,
        })
    }

    /// Length [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the 28-byte packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < PACKET_LEN {
            return Err(Error::BufferTooSmall);
        }
        let mut p = ArpPacket::new_unchecked(buf);
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(PTYPE_IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_sender_hardware_addr(self.sender_hardware_addr);
        p.set_sender_protocol_addr(self.sender_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
        Ok(PACKET_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);
    const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    // Who has 198.18.0.2? Tell 198.18.0.1.
    static REQUEST: [u8; 28] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // op request
        0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, // sender MAC
        198, 18, 0, 1, // sender IP
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // target MAC (unknown)
        198, 18, 0, 2, // target IP
    ];

    // 198.18.0.2 is at 02:00:00:c6:12:02.
    static REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, //
        0x00, 0x02, // op reply
        0x02, 0x00, 0x00, 0xc6, 0x12, 0x02, // sender MAC (ours)
        198, 18, 0, 2, // sender IP (ours)
        0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, // target MAC (the asker)
        198, 18, 0, 1, // target IP
    ];

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_hardware_addr(), PEER_MAC);
        assert_eq!(p.sender_protocol_addr(), PEER_IP);
        assert_eq!(p.target_hardware_addr(), EthernetAddress([0; 6]));
        assert_eq!(p.target_protocol_addr(), OUR_IP);
    }

    #[test]
    fn construct_reply() {
        let req = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap());
        let reply = req.reply_to(OUR_MAC, OUR_IP).unwrap();
        let mut buf = [0xa5u8; 30];
        assert_eq!(reply.emit(&mut buf), Ok(28));
        assert_eq!(&buf[..28], &REPLY[..]);
        assert_eq!(&buf[28..], &[0xa5, 0xa5]);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()),
            reply
        );
        assert_eq!(reply.emit(&mut [0u8; 27]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn not_for_us() {
        let req = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap());
        assert_eq!(req.reply_to(OUR_MAC, Ipv4Addr::new(198, 18, 0, 3)), None);
        let reply = ArpRepr::parse(&ArpPacket::new_checked(&REPLY[..]).unwrap());
        assert_eq!(reply.reply_to(OUR_MAC, PEER_IP), None);
    }

    #[test]
    fn rejects_other_layouts() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).err(),
            Some(Error::Truncated)
        );
        for (at, v) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = REQUEST;
            b[at] = v;
            assert_eq!(
                ArpPacket::new_checked(&b[..]).err(),
                Some(Error::UnsupportedArpLayout),
                "byte {at}"
            );
        }
        let mut b = REQUEST;
        b[7] = 9;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap().operation(),
            ArpOperation::Unknown(9)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let r = ArpRepr::parse(&p);
                let _ = r.reply_to(OUR_MAC, OUR_IP);
            }
        }
    }
}
