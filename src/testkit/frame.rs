//! The frames a peer sends, built with every checksum right (a test that
//! wants a bad one breaks it on purpose after building). Addresses are in
//! 198.18.0.0/15 (RFC 2544 benchmarking space) and MACs are locally
//! administered.
//!
//! One TCP writer, [`write_tcp_frame`], builds every TCP frame of the
//! tests, benches and fuzz targets: into a caller's buffer without
//! allocating, or into a `Vec` through [`TcpSpec`] / [`tcp_frame`].

use crate::wire::arp::{self, ArpOperation, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmp::{self, Icmpv4Packet, Icmpv4Type};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::udp::{self, UdpPacket};
use std::net::{Ipv4Addr, SocketAddrV4};

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

impl TcpSpec {
    fn fields(&self) -> TcpFields {
        TcpFields {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
        }
    }
}

/// The TCP segment of `spec` with its checksum for `src` -> `dst`.
pub fn tcp_segment(src: Ipv4Addr, dst: Ipv4Addr, spec: &TcpSpec) -> Vec<u8> {
    let mut s = vec![0; tcp::HEADER_LEN + padded(spec.options.len()) + spec.payload.len()];
    let fields = TcpFields { src_port: spec.src_port, dst_port: spec.dst_port, ..spec.fields() };
    let n = write_tcp_segment(&mut s, src, dst, &fields, &spec.options, &spec.payload);
    s.truncate(n);
    s
}

/// Option bytes padded with EOL to a multiple of 4.
const fn padded(options_len: usize) -> usize {
    (options_len + 3) & !3
}

/// The fixed fields of a TCP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFields {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
}

/// Write a TCP segment (header, `options` padded with EOL, `payload`) with
/// its checksum for `src` -> `dst` into `buf`. Returns its length, or 0
/// when `buf` is too short or the options do not fit in a header.
pub fn write_tcp_segment(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    f: &TcpFields,
    options: &[u8],
    payload: &[u8],
) -> usize {
    let opts_len = padded(options.len());
    let header_len = tcp::HEADER_LEN + opts_len;
    let len = header_len + payload.len();
    if opts_len > tcp::MAX_OPTIONS_LEN || buf.len() < len {
        return 0;
    }
    let s = &mut buf[..len];
    let repr = TcpRepr {
        src_port: f.src_port,
        dst_port: f.dst_port,
        seq_number: f.seq,
        ack_number: f.ack,
        flags: f.flags,
        window_len: f.window,
    };
    if repr.emit_header(s, opts_len).is_err() {
        return 0;
    }
    s[tcp::HEADER_LEN..tcp::HEADER_LEN + options.len()].copy_from_slice(options);
    s[tcp::HEADER_LEN + options.len()..header_len].fill(0);
    s[header_len..].copy_from_slice(payload);
    TcpSegment::new_unchecked(&mut *s).fill_checksum(src, dst);
    len
}

/// The link and IP fields around a TCP segment a peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpHeader {
    pub eth_dst: EthernetAddress,
    pub eth_src: EthernetAddress,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub ttl: u8,
    pub ident: u16,
    pub dont_frag: bool,
    /// DSCP << 2 | ECN.
    pub tos: u8,
}

impl Default for TcpHeader {
    /// A SYN from PEER_IP:40000 to OUR_IP:80, as Linux sends it.
    fn default() -> Self {
        TcpHeader {
            eth_dst: OUR_MAC,
            eth_src: PEER_MAC,
            src: SocketAddrV4::new(PEER_IP, 40000),
            dst: SocketAddrV4::new(OUR_IP, 80),
            seq: 1000,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64240,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
            tos: 0,
        }
    }
}

/// Bytes a frame of [`write_tcp_frame`] takes.
pub const fn tcp_frame_len(options_len: usize, payload_len: usize) -> usize {
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN + padded(options_len) + payload_len
}

/// Write an Ethernet/IPv4/TCP frame into `buf`, every checksum right.
/// Returns its length, or 0 when it does not fit.
pub fn write_tcp_frame(buf: &mut [u8], h: &TcpHeader, options: &[u8], payload: &[u8]) -> usize {
    let len = tcp_frame_len(options.len(), payload.len());
    if buf.len() < len {
        return 0;
    }
    let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    if ethernet::emit_header(l2, h.eth_dst, h.eth_src, EtherType::Ipv4).is_err() {
        return 0;
    }
    let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
    let fields = TcpFields {
        src_port: h.src.port(),
        dst_port: h.dst.port(),
        seq: h.seq,
        ack: h.ack,
        flags: h.flags,
        window: h.window,
    };
    let tcp_len = write_tcp_segment(l4, *h.src.ip(), *h.dst.ip(), &fields, options, payload);
    if tcp_len == 0 {
        return 0;
    }
    let ip = Ipv4Repr {
        src_addr: *h.src.ip(),
        dst_addr: *h.dst.ip(),
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len as u16,
        ttl: h.ttl,
        ident: h.ident,
        dont_frag: h.dont_frag,
        tos: h.tos,
    };
    if ip.emit(l3).is_err() {
        return 0;
    }
    len
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

