//! The frames we send, parsed and checked as the receiving peer would:
//! every length and checksum verified with the wire module.

use super::frame::OUR_MAC;
use crate::engine::time::Instant;
use crate::wire::arp::{self, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmp::Icmpv4Packet;
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{TcpFlags, TcpSegment};
use crate::wire::tcp_options::{self, SynOptions};
use crate::wire::udp::UdpPacket;
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, NextHeader};
use std::net::SocketAddrV4;

/// A frame we sent, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Arp { eth_dst: EthernetAddress, arp: ArpRepr },
    /// `options`: the IP header's options (echoed ones; empty mostly).
    Ipv4 { eth_dst: EthernetAddress, ip: Ipv4Repr, options: Vec<u8>, l4: Vec<u8> },
    /// No extension headers: we send none.
    Ipv6 { eth_dst: EthernetAddress, ip: Ipv6Repr, l4: Vec<u8> },
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
    Ipv6(crate::wire::Error),
    /// Bytes after the IPv6 payload length: we never pad.
    Ipv6Trailing(usize),
    /// A multicast IPv6 destination in a frame not to its multicast MAC.
    Ipv6MulticastMac(EthernetAddress),
    Ipv6Protocol(NextHeader),
}

/// IPv4 options whose every length stays inside the block (RFC 791:
/// single-byte EOL and NOP, else type, length >= 2, data).
fn options_framed(opts: &[u8]) -> bool {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return true,
            1 => i += 1,
            _ => match opts.get(i + 1) {
                Some(&len) if len >= 2 && i + usize::from(len) <= opts.len() => i += usize::from(len),
                _ => return false,
            },
        }
    }
    true
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
            // Options only as an echo makes them: framed right. Not what a
            // receiver's ip_options_compile accepts: Linux's echo
            // (__ip_options_echo) copies a request's timestamp option with
            // its overflow count and odd length, which the next host may
            // refuse (a full option at overflow 15, a last slot that does
            // not fit).
            if ip.has_options() && !options_framed(ip.options()) {
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
            Ok(Sent::Ipv4 { eth_dst, ip: Ipv4Repr::parse(&ip), options: ip.options().to_vec(), l4: l4.to_vec() })
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).map_err(BadFrame::Ipv6)?;
            if eth.payload().len() != ip.total_len() {
                return Err(BadFrame::Ipv6Trailing(eth.payload().len()));
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if dst.is_multicast() && eth_dst != ipv6::multicast_mac(&dst) {
                return Err(BadFrame::Ipv6MulticastMac(eth_dst));
            }
            let l4 = ip.payload();
            let nh = ip.next_header();
            match nh {
                NextHeader::Tcp => {
                    TcpSegment::new_checked(l4).map_err(BadFrame::Tcp)?;
                    if !ipv6::verify_upper_layer(&src, &dst, u8::from(nh), l4) {
                        return Err(BadFrame::TcpChecksum);
                    }
                }
                NextHeader::Udp => {
                    let u = UdpPacket::new_checked(l4).map_err(BadFrame::Udp)?;
                    if u.checksum() == 0 || !ipv6::verify_upper_layer(&src, &dst, u8::from(nh), l4) {
                        return Err(BadFrame::UdpChecksum);
                    }
                }
                NextHeader::Icmpv6 => {
                    crate::wire::icmpv6::Icmpv6Packet::new_checked(l4).map_err(BadFrame::Icmp)?;
                    if !ipv6::verify_upper_layer(&src, &dst, u8::from(nh), l4) {
                        return Err(BadFrame::IcmpChecksum);
                    }
                }
                other => return Err(BadFrame::Ipv6Protocol(other)),
            }
            Ok(Sent::Ipv6 { eth_dst, ip: Ipv6Repr::parse(&ip), l4: l4.to_vec() })
        }
        other => Err(BadFrame::Ethertype(other)),
    }
}

/// A TCP segment we sent, parsed.
#[derive(Clone, Debug)]
pub struct SentTcp {
    /// When it was sent (the rig's clock).
    pub at: Instant,
    pub eth_dst: EthernetAddress,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: Vec<u8>,
    /// The options read as a SYN's.
    pub syn: SynOptions,
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    pub tos: u8,
    /// The IPv4 header's options.
    pub ip_options: Vec<u8>,
}

impl SentTcp {
    pub fn ts(&self) -> Option<(u32, u32)> {
        tcp_options::timestamps(&self.options)
    }
}

/// Parse a TCP frame we sent at `at`, verifying its lengths and its IPv4
/// and TCP checksums.
pub fn parse_sent_tcp(at: Instant, frame: &[u8]) -> Result<SentTcp, String> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e:?}"))?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Err(format!("ethertype {:?}", eth.ethertype()));
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("ipv4: {e:?}"))?;
    if !ip.verify_checksum() {
        return Err("bad IPv4 checksum".into());
    }
    if usize::from(ip.total_len()) + ethernet::HEADER_LEN != frame.len() {
        return Err("frame length differs from IP total length".into());
    }
    if ip.protocol() != IpProtocol::Tcp {
        return Err(format!("protocol {:?}", ip.protocol()));
    }
    let seg = TcpSegment::new_checked(ip.payload()).map_err(|e| format!("tcp: {e:?}"))?;
    if !seg.verify_checksum(ip.src_addr(), ip.dst_addr()) {
        return Err("bad TCP checksum".into());
    }
    Ok(SentTcp {
        at,
        eth_dst: eth.dst_addr(),
        src: SocketAddrV4::new(ip.src_addr(), seg.src_port()),
        dst: SocketAddrV4::new(ip.dst_addr(), seg.dst_port()),
        flags: seg.flags(),
        seq: seg.seq_number(),
        ack: seg.ack_number(),
        window: seg.window_len(),
        options: seg.options().to_vec(),
        syn: SynOptions::parse(seg.options()),
        payload_len: seg.payload().len(),
        ttl: ip.ttl(),
        ident: ip.ident(),
        df: ip.dont_frag(),
        tos: (ip.dscp() << 2) | ip.ecn(),
        ip_options: ip.options().to_vec(),
    })
}

/// Of the frames we sent, every one an IPv4 TCP segment (panics on another): how many have `flag` set, and their
/// payloads in order (what an application test reads off the wire).
pub fn tcp_flag_count_and_payload(frames: Vec<Vec<u8>>, flag: TcpFlags) -> (usize, Vec<u8>) {
    let mut count = 0;
    let mut payload = Vec::new();
    for f in frames {
        let eth = EthernetFrame::new_checked(&f[..]).expect("an Ethernet frame");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("an IPv4 packet");
        let seg = TcpSegment::new_checked(ip.payload()).expect("a TCP segment");
        count += usize::from(seg.flags().contains(flag));
        payload.extend_from_slice(seg.payload());
    }
    (count, payload)
}
