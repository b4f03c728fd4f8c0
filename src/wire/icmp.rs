//! ICMPv4 (RFC 792): echo and destination unreachable, which is all a host
//! listener needs to answer.
//!
//! The view covers the whole ICMP message (the IP payload): the checksum is
//! computed over all of it.

use super::checksum;
use super::ipv4::Ipv4Packet;
use super::field::{read_u16, write_u16, Field, Rest};
use super::{Error, Result};

/// ICMPv4 message types we handle; anything else is `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Type {
    EchoReply,
    DestUnreachable,
    EchoRequest,
    TimeExceeded,
    ParamProblem,
    Unknown(u8),
}

impl From<u8> for Icmpv4Type {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Type::EchoReply,
            3 => Icmpv4Type::DestUnreachable,
            8 => Icmpv4Type::EchoRequest,
            11 => Icmpv4Type::TimeExceeded,
            12 => Icmpv4Type::ParamProblem,
            other => Icmpv4Type::Unknown(other),
        }
    }
}

impl From<Icmpv4Type> for u8 {
    #[inline]
    fn from(v: Icmpv4Type) -> u8 {
        match v {
            Icmpv4Type::EchoReply => 0,
            Icmpv4Type::DestUnreachable => 3,
            Icmpv4Type::EchoRequest => 8,
            Icmpv4Type::TimeExceeded => 11,
            Icmpv4Type::ParamProblem => 12,
            Icmpv4Type::Unknown(other) => other,
        }
    }
}

/// Codes of a destination unreachable message (RFC 792).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Unreachable {
    NetUnreachable,
    HostUnreachable,
    /// Code 2: no handler for the IP protocol (e.g. anything but TCP, ICMP).
    ProtoUnreachable,
    /// Code 3: nobody on that UDP port.
    PortUnreachable,
    /// Code 4: fragmentation needed and DF set.
    FragRequired,
    Unknown(u8),
}

impl From<u8> for Icmpv4Unreachable {
    #[inline]
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Unreachable::NetUnreachable,
            1 => Icmpv4Unreachable::HostUnreachable,
            2 => Icmpv4Unreachable::ProtoUnreachable,
            3 => Icmpv4Unreachable::PortUnreachable,
            4 => Icmpv4Unreachable::FragRequired,
            other => Icmpv4Unreachable::Unknown(other),
        }
    }
}

impl From<Icmpv4Unreachable> for u8 {
    #[inline]
    fn from(v: Icmpv4Unreachable) -> u8 {
        match v {
            Icmpv4Unreachable::NetUnreachable => 0,
            Icmpv4Unreachable::HostUnreachable => 1,
            Icmpv4Unreachable::ProtoUnreachable => 2,
            Icmpv4Unreachable::PortUnreachable => 3,
            Icmpv4Unreachable::FragRequired => 4,
            Icmpv4Unreachable::Unknown(other) => other,
        }
    }
}

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ_NO: Field = 6..8;
    /// "Unused" word of destination unreachable (next-hop MTU for code 4).
    pub const UNUSED: Field = 4..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte
/// type-specific word).
pub const HEADER_LEN: usize = field::DATA.start;

/// How many payload bytes of the offending datagram an error quotes
/// (RFC 792: "the internet header plus the first 64 bits").
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// Zero-copy view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if shorter than the 8-byte header.
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
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type::from(self.buffer.as_ref()[field::TYPE])
    }

    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (meaningful for echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (meaningful for echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ_NO)
    }

    /// True if the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    /// Bytes after the 8-byte header: echo data, or the quoted datagram of
    /// an error message.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: Icmpv4Type) {
        self.buffer.as_mut()[field::TYPE] = u8::from(v);
    }

    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v)
    }

    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQ_NO, v)
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes and writes the checksum over the whole message.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let csum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(csum);
    }

    /// Turns an echo request into its reply in place: RFC 792 "the type
    /// code changed to 0", data, identifier and sequence number echoed.
    /// The checksum is updated incrementally (RFC 1624), so a request whose
    /// checksum was wrong stays wrong: verify it first. Returns false and
    /// changes nothing if this is not an echo request.
    #[inline]
    pub fn echo_request_to_reply(&mut self) -> bool {
        if self.msg_type() != Icmpv4Type::EchoRequest {
            return false;
        }
        let old = u16::from_be_bytes([u8::from(Icmpv4Type::EchoRequest), self.msg_code()]);
        let csum = checksum::update_u16(self.checksum(), old, 0);
        self.set_msg_type(Icmpv4Type::EchoReply);
        self.set_msg_code(0);
        self.set_checksum(csum);
        true
    }
}

/// Length of a destination unreachable message quoting `offending`.
#[inline]
pub fn dest_unreachable_len<T: AsRef<[u8]> + ?Sized>(offending: &Ipv4Packet<&T>) -> usize {
    let quoted = offending.payload().len().min(QUOTED_PAYLOAD_LEN);
    HEADER_LEN + usize::from(offending.header_len()) + quoted
}

/// Writes a destination unreachable message (type 3) at the start of `buf`,
/// quoting the offending datagram's IP header and the first 8 bytes of its
/// payload (RFC 792). `offending` must have passed `new_checked`. Returns
/// the message length (the IP payload length to send).
pub fn emit_dest_unreachable<T: AsRef<[u8]> + ?Sized>(
    buf: &mut [u8],
    code: Icmpv4Unreachable,
    offending: &Ipv4Packet<&T>,
) -> Result<usize> {
    let len = dest_unreachable_len(offending);
    if buf.len() < len {
        return Err(Error::BufferTooSmall);
    }
    let header_len = usize::from(offending.header_len());
    let quoted = len - HEADER_LEN - header_len;
    let whole = offending.clone().into_inner().as_ref();
    let mut p = Icmpv4Packet::new_unchecked(&mut buf[..len]);
    p.set_msg_type(Icmpv4Type::DestUnreachable);
    p.set_msg_code(u8::from(code));
    p.buffer[field::UNUSED].copy_from_slice(&[0; 4]);
    p.data_mut().copy_from_slice(&whole[..header_len + quoted]);
    p.fill_checksum();
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::{IpProtocol, Ipv4Repr};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    // Echo request, ident 0x1234, seq 1, data "ping".
    static ECHO_REQUEST: [u8; 12] = [
        0x08, 0x00, // type 8 (echo request), code 0
        0x06, 0xfa, // checksum
        0x12, 0x34, // identifier
        0x00, 0x01, // sequence number
        b'p', b'i', b'n', b'g', // data
    ];

    // The same as an echo reply.
    static ECHO_REPLY: [u8; 12] = [
        0x00, 0x00, // type 0 (echo reply), code 0
        0x0e, 0xfa, // checksum
        0x12, 0x34, 0x00, 0x01, b'p', b'i', b'n', b'g',
    ];

    #[test]
    fn deconstruct_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x06fa);
        assert!(p.verify_checksum());
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"ping");
    }

    #[test]
    fn construct_echo() {
        let mut buf = [0xa5u8; 12];
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(Icmpv4Type::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"ping");
        p.fill_checksum();
        assert_eq!(buf, ECHO_REQUEST);
    }

    #[test]
    fn echo_reply_in_place() {
        let mut buf = ECHO_REQUEST;
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        assert!(p.echo_request_to_reply());
        assert!(p.verify_checksum());
        assert_eq!(buf, ECHO_REPLY);
        // A reply is not turned into anything.
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        assert!(!p.echo_request_to_reply());
        assert_eq!(buf, ECHO_REPLY);
    }

    #[test]
    fn dest_unreachable() {
        // A UDP datagram 198.18.0.1:1000 -> 198.18.0.2:53 with 12 payload
        // bytes; we quote its header and the first 8 bytes (the UDP header).
        let mut dgram = [0u8; 40];
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(198, 18, 0, 1),
            dst_addr: Ipv4Addr::new(198, 18, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: 20,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            tos: 0,
        };
        ip.emit(&mut dgram).unwrap();
        dgram[20..28].copy_from_slice(&[0x03, 0xe8, 0x00, 0x35, 0x00, 0x14, 0x00, 0x00]);
        dgram[28..40].copy_from_slice(&[0x77; 12]);
        let offending = Ipv4Packet::new_checked(&dgram[..]).unwrap();
        let mut buf = [0xa5u8; 40];
        let len = emit_dest_unreachable(&mut buf, Icmpv4Unreachable::PortUnreachable, &offending)
            .unwrap();
        assert_eq!(len, 8 + 20 + 8);
        assert_eq!(&buf[..8], &[0x03, 0x03, buf[2], buf[3], 0, 0, 0, 0]);
        assert_eq!(&buf[8..36], &dgram[..28]);
        assert_eq!(&buf[36..], &[0xa5; 4]);
        let p = Icmpv4Packet::new_checked(&buf[..len]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), Icmpv4Type::DestUnreachable);
        assert_eq!(
            Icmpv4Unreachable::from(p.msg_code()),
            Icmpv4Unreachable::PortUnreachable
        );
        assert_eq!(
            emit_dest_unreachable(
                &mut [0u8; 35],
                Icmpv4Unreachable::ProtoUnreachable,
                &offending
            ),
            Err(Error::BufferTooSmall)
        );
        // A short payload is quoted whole.
        let mut short = dgram;
        short[2..4].copy_from_slice(&23u16.to_be_bytes());
        let offending = Ipv4Packet::new_checked(&short[..]).unwrap();
        let len = emit_dest_unreachable(&mut buf, Icmpv4Unreachable::ProtoUnreachable, &offending)
            .unwrap();
        assert_eq!(len, 8 + 20 + 3);
        assert_eq!(buf[1], 2);
    }

    #[test]
    fn truncated_and_unknown() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ECHO_REQUEST[..7]).err(),
            Some(Error::Truncated)
        );
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..8]).unwrap();
        assert!(p.data().is_empty());
        assert!(!p.verify_checksum());
        for v in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Type::from(v)), v);
            assert_eq!(u8::from(Icmpv4Unreachable::from(v)), v);
        }
        assert_eq!(Icmpv4Type::from(11), Icmpv4Type::TimeExceeded);
        assert_eq!(Icmpv4Type::from(5), Icmpv4Type::Unknown(5));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no());
                let _ = (p.verify_checksum(), p.data());
                let mut copy = data.clone();
                let was_ok = p.verify_checksum();
                let mut q = Icmpv4Packet::new_unchecked(&mut copy[..]);
                if q.echo_request_to_reply() && was_ok {
                    prop_assert!(q.verify_checksum());
                }
            }
            if let Ok(ip) = Ipv4Packet::new_checked(&data[..]) {
                let mut buf = [0u8; 128];
                let len = emit_dest_unreachable(&mut buf, Icmpv4Unreachable::PortUnreachable, &ip).unwrap();
                prop_assert!(Icmpv4Packet::new_checked(&buf[..len]).unwrap().verify_checksum());
            }
        }
    }
}
