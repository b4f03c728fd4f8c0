//! Test support: build the frames a peer sends, and check the frames we send.
//!
//! Builders write every checksum right, so a test that wants a bad one breaks
//! it on purpose after building. Addresses are in 198.18.0.0/15 (RFC 2544
//! benchmarking space) and MACs are locally administered.

use crate::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmp::{self, Icmpv4Packet, Icmpv4Type};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::udp::{self, UdpPacket};
use std::net::Ipv4Addr;

pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0xc6, 0x12, 0x01]);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0xc6, 0x12, 0x02]);
/// A third station on the link.
pub const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0xc6, 0x12, 0x03]);
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// A second address of ours on the same port.
pub const OUR_IP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// An address on the link that is not ours.
pub const OTHER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

/// An Ethernet frame around `payload`.
pub fn eth(dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0; ethernet::HEADER_LEN + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut f[..]);
    frame.set_dst_addr(dst);
    frame.set_src_addr(src);
    frame.set_ethertype(ethertype);
    frame.payload_mut().copy_from_slice(payload);
    f
}

/// An Ethernet/IPv4 ARP packet (28 bytes).
pub fn arp_packet(repr: &ArpRepr) -> Vec<u8> {
    let mut p = vec![0; arp::PACKET_LEN];
    // A 28-byte buffer always holds the packet.
    let _ = repr.emit(&mut p);
    p
}

/// "Who has `target`? Tell PEER_IP", broadcast from the peer.
pub fn arp_request_frame(target: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_hardware_addr: PEER_MAC,
        sender_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    eth(EthernetAddress::BROADCAST, PEER_MAC, EtherType::Arp, &arp_packet(&repr))
}

/// The IPv4 header fields of a datagram from the peer to us.
pub fn ip_to_us(protocol: IpProtocol) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        protocol,
        payload_len: 0,
        ttl: 64,
        ident: 0x1234,
        dont_frag: true,
        tos: 0,
    }
}

/// An IPv4 datagram: `repr` (its `payload_len` is replaced) then `payload`.
pub fn ipv4_packet(repr: &Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr { payload_len: payload.len() as u16, ..*repr };
    let mut p = vec![0; ipv4::HEADER_LEN + payload.len()];
    let _ = repr.emit(&mut p);
    p[ipv4::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// A TCP segment as a peer would send it. Fill with struct update syntax
/// from `TcpSpec::default()`.
#[derive(Clone, Debug)]
pub struct TcpSpec {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Raw option bytes, a multiple of 4 long.
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Default for TcpSpec {
    fn default() -> Self {
        TcpSpec {
            src_port: 40000,
            dst_port: 81,
            seq: 1000,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64240,
            options: Vec::new(),
            payload: Vec::new(),
        }
    }
}

/// The TCP segment of `spec` with its checksum for `src` -> `dst`.
pub fn tcp_segment(src: Ipv4Addr, dst: Ipv4Addr, spec: &TcpSpec) -> Vec<u8> {
    let header_len = tcp::HEADER_LEN + spec.options.len();
    let mut s = vec![0; header_len + spec.payload.len()];
    let repr = TcpRepr {
        src_port: spec.src_port,
        dst_port: spec.dst_port,
        seq_number: spec.seq,
        ack_number: spec.ack,
        flags: spec.flags,
        window_len: spec.window,
    };
    let _ = repr.emit_header(&mut s, spec.options.len());
    s[tcp::HEADER_LEN..header_len].copy_from_slice(&spec.options);
    s[header_len..].copy_from_slice(&spec.payload);
    TcpSegment::new_unchecked(&mut s[..]).fill_checksum(src, dst);
    s
}

/// A UDP datagram with its checksum for `src` -> `dst`.
pub fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0; udp::HEADER_LEN + payload.len()];
    let mut p = UdpPacket::new_unchecked(&mut d[..]);
    p.set_src_port(src_port);
    p.set_dst_port(dst_port);
    p.set_len((udp::HEADER_LEN + payload.len()) as u16);
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum(src, dst);
    d
}

/// An ICMP echo request with its checksum.
pub fn icmp_echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0; icmp::HEADER_LEN + data.len()];
    let mut p = Icmpv4Packet::new_unchecked(&mut m[..]);
    p.set_msg_type(Icmpv4Type::EchoRequest);
    p.set_msg_code(0);
    p.set_echo_ident(ident);
    p.set_echo_seq_no(seq_no);
    p.data_mut().copy_from_slice(data);
    p.fill_checksum();
    m
}

/// A full frame from the peer to us carrying `l4` over IPv4 `ip`.
pub fn ip_frame(ip: &Ipv4Repr, l4: &[u8]) -> Vec<u8> {
    eth(OUR_MAC, PEER_MAC, EtherType::Ipv4, &ipv4_packet(ip, l4))
}

/// A TCP segment from the peer to us, in a frame.
pub fn tcp_frame(spec: &TcpSpec) -> Vec<u8> {
    let ip = ip_to_us(IpProtocol::Tcp);
    ip_frame(&ip, &tcp_segment(ip.src_addr, ip.dst_addr, spec))
}

/// A UDP datagram from the peer to us, in a frame.
pub fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = ip_to_us(IpProtocol::Udp);
    ip_frame(&ip, &udp_datagram(ip.src_addr, ip.dst_addr, 40000, dst_port, payload))
}

/// A ping from the peer to us, in a frame.
pub fn ping_frame(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr { dont_frag: false, ..ip_to_us(IpProtocol::Icmp) };
    ip_frame(&ip, &icmp_echo_request(ident, seq_no, data))
}

/// Recompute the IPv4 header checksum and, when the transport header is
/// readable, the TCP/UDP/ICMP checksum of a frame, in place. Lets mutated
/// frames get past the checksum checks.
pub fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < ethernet::HEADER_LEN {
        return;
    }
    if EthernetFrame::new_unchecked(&frame[..]).ethertype() != EtherType::Ipv4 {
        return;
    }
    let l3 = &mut frame[ethernet::HEADER_LEN..];
    if Ipv4Packet::new_checked(&l3[..]).is_err() {
        return;
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut l3[..]);
    ip.fill_checksum();
    let (src, dst, protocol) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let l4 = ip.payload_mut();
    match protocol {
        IpProtocol::Tcp if TcpSegment::new_checked(&l4[..]).is_ok() => {
            TcpSegment::new_unchecked(l4).fill_checksum(src, dst);
        }
        IpProtocol::Udp if UdpPacket::new_checked(&l4[..]).is_ok() => {
            UdpPacket::new_unchecked(l4).fill_checksum(src, dst);
        }
        IpProtocol::Icmp if Icmpv4Packet::new_checked(&l4[..]).is_ok() => {
            Icmpv4Packet::new_unchecked(l4).fill_checksum();
        }
        _ => {}
    }
}

/// A frame we sent, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Arp { eth_dst: EthernetAddress, arp: ArpRepr },
    Ipv4 { eth_dst: EthernetAddress, ip: Ipv4Repr, l4: Vec<u8> },
}

/// Why a frame we sent is not one a peer would accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadFrame {
    Ethernet(crate::wire::Error),
    NotFromUs(EthernetAddress),
    Ethertype(EtherType),
    Arp(crate::wire::Error),
    ArpLength(usize),
    Ipv4(crate::wire::Error),
    Ipv4Options,
    /// Bytes after the IPv4 total length: we never pad.
    Ipv4Trailing(usize),
    Ipv4Checksum,
    Ipv4Fragment,
    Tcp(crate::wire::Error),
    TcpChecksum,
    Udp(crate::wire::Error),
    UdpChecksum,
    Icmp(crate::wire::Error),
    IcmpChecksum,
    Protocol(IpProtocol),
}

/// Parse a frame we sent and verify every length and checksum with the
/// wire module, as the receiving peer would.
pub fn check_sent(frame: &[u8]) -> Result<Sent, BadFrame> {
    let eth = EthernetFrame::new_checked(frame).map_err(BadFrame::Ethernet)?;
    if eth.src_addr() != OUR_MAC {
        return Err(BadFrame::NotFromUs(eth.src_addr()));
    }
    let eth_dst = eth.dst_addr();
    match eth.ethertype() {
        EtherType::Arp => {
            let p = ArpPacket::new_checked(eth.payload()).map_err(BadFrame::Arp)?;
            if eth.payload().len() != arp::PACKET_LEN {
                return Err(BadFrame::ArpLength(eth.payload().len()));
            }
            Ok(Sent::Arp { eth_dst, arp: ArpRepr::parse(&p) })
        }
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(BadFrame::Ipv4)?;
            if ip.has_options() {
                return Err(BadFrame::Ipv4Options);
            }
            if eth.payload().len() != usize::from(ip.total_len()) {
                return Err(BadFrame::Ipv4Trailing(eth.payload().len()));
            }
            if !ip.verify_checksum() {
                return Err(BadFrame::Ipv4Checksum);
            }
            if ip.is_fragment() {
                return Err(BadFrame::Ipv4Fragment);
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let l4 = ip.payload();
            match ip.protocol() {
                IpProtocol::Tcp => {
                    let s = TcpSegment::new_checked(l4).map_err(BadFrame::Tcp)?;
                    if !s.verify_checksum(src, dst) {
                        return Err(BadFrame::TcpChecksum);
                    }
                }
                IpProtocol::Udp => {
                    let u = UdpPacket::new_checked(l4).map_err(BadFrame::Udp)?;
                    if u.checksum() == 0 || !u.verify_checksum(src, dst) {
                        return Err(BadFrame::UdpChecksum);
                    }
                }
                IpProtocol::Icmp => {
                    let m = Icmpv4Packet::new_checked(l4).map_err(BadFrame::Icmp)?;
                    if !m.verify_checksum() {
                        return Err(BadFrame::IcmpChecksum);
                    }
                }
                other => return Err(BadFrame::Protocol(other)),
            }
            Ok(Sent::Ipv4 { eth_dst, ip: Ipv4Repr::parse(&ip), l4: l4.to_vec() })
        }
        other => Err(BadFrame::Ethertype(other)),
    }
}
