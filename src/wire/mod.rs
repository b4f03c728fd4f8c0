//! Wire formats: zero-copy views over packet bytes, and emitters.
//!
//! Every protocol has a view `Foo<T: AsRef<[u8]>>` over a byte buffer: getters
//! need `AsRef<[u8]>`, setters need `AsMut<[u8]>`, field offsets live in a
//! private `mod field` per protocol, and the big-endian reads and writes of
//! those fields are the `field` module's. Nothing here allocates and nothing here is `unsafe`.
//!
//! # Contract
//!
//! A view is built in one of two ways:
//! - `new_checked(buffer)` validates lengths (and versions, header lengths)
//!   once. **Once `new_checked` succeeded, no accessor panics**, whatever the
//!   bytes are: every getter, `payload()`, option iterator and checksum
//!   verification stays inside the validated buffer.
//! - `new_unchecked(buffer)` + `check_len()` is the same thing split in two,
//!   for hot paths that already know the length; accessors on an unchecked
//!   view may panic if the buffer is too short.
//!
//! Setters keep the same contract for the fields they write. Emit helpers
//! take a `&mut [u8]` and return [`Error::BufferTooSmall`] rather than
//! panicking.
//!
//! Unknown protocol numbers, ethertypes, ARP operations, ICMP types and TCP
//! option kinds are values (`Unknown(n)`), never errors: deciding what to do
//! with them is the engine's business.
#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod csum_partial;
pub mod ethernet;
mod field;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv4_options;
pub mod ipv6;
pub mod ipv6_ext;
pub mod ndp;
pub mod tcp;
pub mod tcp_options;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame};
pub use icmp::{Icmpv4Packet, Icmpv4Type, Icmpv4Unreachable};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr, Icmpv6Type};
pub use ipv6::{Ipv6Packet, Ipv6Repr, NextHeader};
pub use ndp::NdiscRepr;
pub use tcp::{TcpFlags, TcpRepr, TcpSegment};
pub use tcp_options::{
    FastOpenCookie, SackBlocks, SynOptions, TcpOption, TcpOptionIter, TcpOptionWriter,
};
pub use udp::UdpPacket;

/// Why a buffer is not a valid packet (or cannot hold one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the fixed header (or the length a header claims).
    #[error("buffer truncated")]
    Truncated,
    /// A length field contradicts the header or the buffer (e.g. IPv4
    /// total length below the header length, UDP length below 8).
    #[error("inconsistent length field")]
    BadLength,
    /// IPv4 header with a version other than 4.
    #[error("bad IP version")]
    BadVersion,
    /// Header length field (IPv4 IHL, TCP data offset) below the minimum or
    /// beyond the buffer.
    #[error("bad header length")]
    BadHeaderLen,
    /// A TCP option with a length byte below 2, beyond the option space, or
    /// wrong for its kind.
    #[error("malformed option")]
    BadOption,
    /// ARP packet whose hardware/protocol layout is not Ethernet/IPv4.
    #[error("unsupported ARP hardware or protocol layout")]
    UnsupportedArpLayout,
    /// An emit helper was handed a buffer too small for what it writes.
    #[error("buffer too small to emit into")]
    BufferTooSmall,
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, Error>;


/// The listener's hot path end to end: parse an Ethernet/IPv4/TCP SYN as
/// Linux sends it, build the SYN-ACK Linux would answer with.
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);
    const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    // 198.18.0.1:40000 -> 198.18.0.2:80 SYN, 74 bytes on the wire.
    static SYN_FRAME: [u8; 74] = [
        // Ethernet: to us, from the peer, IPv4.
        0x02, 0x00, 0x00, 0xc6, 0x12, 0x02, 0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, 0x08, 0x00,
        // IPv4: 20-byte header, total 60, ident 0x1c46, DF, TTL 64, TCP.
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, //
        198, 18, 0, 1, 198, 18, 0, 2,
        // TCP: ports, seq 0x01020304, ack 0, doff 10, SYN, window 64240.
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, //
        0xa0, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00,
        // Options: MSS 1460, SACK_PERM, TS 42/0, NOP, WS 7.
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x2a, //
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// The fixture with its IPv4 and TCP checksums filled in.
    fn syn_frame() -> [u8; 74] {
        let mut f = SYN_FRAME;
        Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
        TcpSegment::new_unchecked(&mut f[34..]).fill_checksum(PEER_IP, OUR_IP);
        f
    }

    #[test]
    fn syn_to_synack() {
        let frame = syn_frame();
        // Parse.
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.ethertype(), EtherType::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum() && !ip.is_fragment());
        assert_eq!(ip.protocol(), IpProtocol::Tcp);
        let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(tcp.flags(), TcpFlags::SYN);
        let syn = SynOptions::parse(tcp.options());
        assert_eq!(
            (syn.mss, syn.wscale, syn.sack_permitted),
            (Some(1460), Some(7), true)
        );
        assert_eq!(syn.timestamps, Some((42, 0)));

        // Build the SYN-ACK into a 0xa5-filled buffer.
        let mut out = [0xa5u8; 80];
        let answer = SynOptions {
            mss: Some(1460),
            wscale: Some(9),
            sack_permitted: true,
            timestamps: Some((0x1111_2222, 42)),
            fastopen: None,
        };
        let opt_len = answer.emit(&mut out[54..]).unwrap();
        let tcp_len = TcpRepr {
            src_port: tcp.dst_port(),
            dst_port: tcp.src_port(),
            seq_number: 0xdead_beef,
            ack_number: tcp.seq_number().wrapping_add(1),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window_len: 65160,
        }
        .emit_header(&mut out[34..], opt_len)
        .unwrap();
        TcpSegment::new_unchecked(&mut out[34..34 + tcp_len]).fill_checksum(OUR_IP, PEER_IP);
        Ipv4Repr {
            src_addr: OUR_IP,
            dst_addr: PEER_IP,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            ttl: 64,
            ident: 0,
            dont_frag: true,
            tos: 0,
        }
        .emit(&mut out[14..])
        .unwrap();
        ethernet::emit_header(&mut out, eth.src_addr(), OUR_MAC, EtherType::Ipv4).unwrap();
        let len = 34 + tcp_len;
        assert_eq!(len, 74);
        assert!(out[len..].iter().all(|&b| b == 0xa5));

        // Read it back.
        let eth = EthernetFrame::new_checked(&out[..len]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (PEER_MAC, OUR_MAC));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(OUR_IP, PEER_IP));
        assert_eq!(format!("{:?}", tcp.flags()), "SYN|ACK");
        assert_eq!(tcp.ack_number(), 0x0102_0305);
        assert_eq!(
            tcp.options(),
            &[2, 4, 5, 0xb4, 4, 2, 8, 10, 0x11, 0x11, 0x22, 0x22, 0, 0, 0, 42, 1, 3, 3, 9]
        );
        assert_eq!(SynOptions::parse(tcp.options()), answer);
    }

    #[test]
    fn padded_ack_has_no_payload() {
        // A bare ACK is 54 bytes; Ethernet pads it to 60 with zeros, which
        // must not become TCP data.
        let mut frame = [0u8; 60];
        ethernet::emit_header(&mut frame, OUR_MAC, PEER_MAC, EtherType::Ipv4).unwrap();
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0x0102_0305,
            ack_number: 0xdead_bef0,
            flags: TcpFlags::ACK,
            window_len: 502,
        };
        repr.emit_header(&mut frame[34..], 0).unwrap();
        TcpSegment::new_unchecked(&mut frame[34..54]).fill_checksum(PEER_IP, OUR_IP);
        let ip = Ipv4Repr {
            src_addr: PEER_IP,
            dst_addr: OUR_IP,
            protocol: IpProtocol::Tcp,
            payload_len: 20,
            ttl: 64,
            ident: 1,
            dont_frag: true,
            tos: 0,
        };
        ip.emit(&mut frame[14..]).unwrap();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.payload().len(), 46);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
        assert!(tcp.payload().is_empty());
        assert!(tcp.verify_checksum(PEER_IP, OUR_IP));
        assert_eq!(TcpRepr::parse(&tcp), repr);
        assert_eq!(tcp_options::timestamps(tcp.options()), None);
    }

    #[test]
    fn errors_display() {
        assert_eq!(Error::Truncated.to_string(), "buffer truncated");
        assert_eq!(Error::BadOption.to_string(), "malformed option");
    }
}
