//! The frames a flood sends (SYN, ACK with optional data, RST, ARP,
//! neighbour discovery) and the classification of what comes back, over
//! IPv4 and IPv6 alike ([`Family`]). Pure: built into and read from byte
//! slices, so the DPDK loop only moves buffers.

use super::family::{self, Family, Sock, ETH};
use crate::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, NextHeader};
use crate::wire::ndp::{self, NaFlags, NdiscRepr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::tcp_options::SynOptions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// Linux's default receive window in a SYN (64240 = 44 * 1460).
pub const SYN_WINDOW: u16 = 64240;
/// Window in our ACKs (with window scale 7: about 64 KiB... times 128).
pub const ACK_WINDOW: u16 = 502;
/// Largest frame we build: headers plus a request of at most this many bytes.
pub const MAX_REQUEST: usize = 1400;

const IP: usize = ipv4::HEADER_LEN;

/// Link-layer and L3 endpoints of one direction (us -> target).
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub our_mac: EthernetAddress,
    pub peer_mac: EthernetAddress,
}

/// One TCP segment to send from `src` to `dst`.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a, A: Family> {
    pub src: A::Sock,
    pub dst: A::Sock,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// SYN options (None on other segments).
    pub syn: Option<SynOptions>,
    /// TSval/TSecr on a non-SYN segment (`01 01 08 0a`).
    pub timestamps: Option<(u32, u32)>,
    pub payload: &'a [u8],
    /// The IPv4 identification (IPv6 has none).
    pub ident: u16,
}

/// A Linux SYN's options over IPv4: MSS 1460, SACK-permitted, timestamps, window scale 7.
pub fn linux_syn_options(tsval: u32) -> SynOptions {
    syn_options::<Ipv4Addr>(tsval)
}

/// A Linux SYN's options in family `A`: the MSS of a 1500-byte MTU (1460
/// over IPv4, 1440 over IPv6), SACK-permitted, timestamps, window scale 7.
pub fn syn_options<A: Family>(tsval: u32) -> SynOptions {
    SynOptions { mss: Some(A::MSS), wscale: Some(7), sack_permitted: true, timestamps: Some((tsval, 0)), fastopen: None }
}

/// Bytes [`build_segment`] needs for `s`.
pub fn segment_len<A: Family>(s: &Segment<'_, A>) -> usize {
    ETH + A::IP_HEADER_LEN + tcp::HEADER_LEN + options_len(s) + s.payload.len()
}

fn options_len<A: Family>(s: &Segment<'_, A>) -> usize {
    match (&s.syn, s.timestamps) {
        (Some(o), _) => o.buffer_len(),
        (None, Some(_)) => 12,
        (None, None) => 0,
    }
}

/// Writes Ethernet + IP + TCP (checksums filled) at the start of `buf`;
/// returns the frame length, or 0 if `buf` is too short.
pub fn build_segment<A: Family>(buf: &mut [u8], link: &Link, s: &Segment<'_, A>) -> usize {
    let ip_len = A::IP_HEADER_LEN;
    let opt_len = options_len(s);
    let tcp_len = tcp::HEADER_LEN + opt_len + s.payload.len();
    let total = ETH + ip_len + tcp_len;
    if buf.len() < total || tcp_len > usize::from(u16::MAX) - IP {
        return 0;
    }
    let buf = &mut buf[..total];
    if ethernet::emit_header(buf, link.peer_mac, link.our_mac, A::ETHERTYPE).is_err() {
        return 0;
    }
    if !A::emit_ip(&mut buf[ETH..], *s.src.ip(), *s.dst.ip(), tcp_len as u16, s.ident) {
        return 0;
    }
    let seg = &mut buf[ETH + ip_len..];
    let repr = TcpRepr {
        src_port: s.src.port(),
        dst_port: s.dst.port(),
        seq_number: s.seq,
        ack_number: s.ack,
        flags: s.flags,
        window_len: if s.syn.is_some() { SYN_WINDOW } else { ACK_WINDOW },
    };
    let Ok(hdr) = repr.emit_header(seg, opt_len) else { return 0 };
    let opts = &mut seg[tcp::HEADER_LEN..hdr];
    match (&s.syn, s.timestamps) {
        (Some(o), _) => {
            if o.emit(opts).is_err() {
                return 0;
            }
        }
        (None, Some((tsval, tsecr))) => {
            opts[..4].copy_from_slice(&[1, 1, 8, 10]);
            opts[4..8].copy_from_slice(&tsval.to_be_bytes());
            opts[8..12].copy_from_slice(&tsecr.to_be_bytes());
        }
        (None, None) => {}
    }
    seg[hdr..].copy_from_slice(s.payload);
    family::fill_tcp_checksum(seg, *s.src.ip(), *s.dst.ip());
    total
}

/// Bytes of a flood SYN over IPv4: Ethernet, IPv4 and TCP with Linux's 20 bytes of options.
pub const SYN_FRAME_LEN: usize = <Ipv4Addr as Family>::SYN_FRAME_LEN;
/// Bytes of a flood SYN over IPv6.
pub const SYN6_FRAME_LEN: usize = <Ipv6Addr as Family>::SYN_FRAME_LEN;

/// The fields of a flood SYN that change from one to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodSyn<A: Family> {
    pub src: A::Sock,
    pub isn: u32,
    /// The IPv4 identification (unused over IPv6).
    pub ident: u16,
}

// Where those fields sit in an IPv4 SYN frame (the IPv4 header's own).
const IP_IDENT: usize = ETH + 4;
const IP_CSUM: usize = ETH + 10;

/// A flood SYN built once, as dperf and VPP build their packets: per SYN
/// only the source address and port, the ISN, the TSval and the TCP
/// checksum are written (over IPv4 also the IP ident and header checksum),
/// the checksums from sums of the constant bytes precomputed here (RFC 1071:
/// a sum is a sum of its parts). One template for every source: the address
/// is a few words of each sum, fewer cycles than looking up a template per
/// source.
#[derive(Clone, Debug)]
pub struct SynTemplate<A: Family> {
    frame: [u8; SYN6_FRAME_LEN],
    /// Partial sum of the IPv4 header without ident, source and checksum.
    ip_sum: u32,
    /// Partial sum of the pseudo-header and the segment without source
    /// address and port, sequence number, TSval and checksum.
    tcp_sum: u32,
    _family: std::marker::PhantomData<A>,
}

impl<A: Family> SynTemplate<A> {
    const TCP: usize = ETH + A::IP_HEADER_LEN;
    const SRC: usize = ETH + A::IP_SRC;
    /// TSval: after MSS (4 bytes), SACK-permitted (2) and the timestamp kind and length (2).
    const TSVAL: usize = Self::TCP + tcp::HEADER_LEN + 8;

    pub fn new(link: &Link, dst: A::Sock) -> SynTemplate<A> {
        let unspecified = A::from_bits(0);
        let seg = Segment::<A> {
            src: A::Sock::from_parts(unspecified, 0),
            dst,
            seq: 0,
            ack: 0,
            flags: TcpFlags::SYN,
            syn: Some(syn_options::<A>(0)),
            timestamps: None,
            payload: &[],
            ident: 0,
        };
        let mut frame = [0u8; SYN6_FRAME_LEN];
        let n = build_segment(&mut frame, link, &seg);
        debug_assert_eq!(n, A::SYN_FRAME_LEN);
        let len = A::SYN_FRAME_LEN;
        let ip_sum = if A::IP_CSUM {
            frame[IP_CSUM..IP_CSUM + 2].fill(0);
            checksum::sum(&frame[ETH..Self::TCP])
        } else {
            0
        };
        frame[Self::TCP + 16..Self::TCP + 18].fill(0);
        let tcp_len = (len - Self::TCP) as u16;
        let pseudo = A::pseudo_sum(unspecified, *dst.ip(), tcp_len);
        let tcp_sum = checksum::combine(pseudo, checksum::sum(&frame[Self::TCP..len]));
        SynTemplate { frame, ip_sum, tcp_sum, _family: std::marker::PhantomData }
    }

    /// Write the SYN `s` with timestamp `tsval` into `buf` (at least
    /// `A::SYN_FRAME_LEN` bytes; false and nothing written if shorter).
    #[inline]
    pub fn write(&self, buf: &mut [u8], s: &FloodSyn<A>, tsval: u32) -> bool {
        let Some(buf) = buf.get_mut(..A::SYN_FRAME_LEN) else { return false };
        buf.copy_from_slice(&self.frame[..A::SYN_FRAME_LEN]);
        let src = *s.src.ip();
        let port = s.src.port();
        src.put(&mut buf[Self::SRC..]);
        buf[Self::TCP..Self::TCP + 2].copy_from_slice(&port.to_be_bytes());
        buf[Self::TCP + 4..Self::TCP + 8].copy_from_slice(&s.isn.to_be_bytes());
        buf[Self::TSVAL..Self::TSVAL + 4].copy_from_slice(&tsval.to_be_bytes());
        let addr = src.word_sum();
        if A::IP_CSUM {
            buf[IP_IDENT..IP_IDENT + 2].copy_from_slice(&s.ident.to_be_bytes());
            let ip = self.ip_sum + addr + u32::from(s.ident);
            buf[IP_CSUM..IP_CSUM + 2].copy_from_slice(&(!checksum::fold(ip)).to_be_bytes());
        }
        let tcp = self.tcp_sum + addr + u32::from(port) + (s.isn >> 16) + (s.isn & 0xffff) + (tsval >> 16) + (tsval & 0xffff);
        buf[Self::TCP + 16..Self::TCP + 18].copy_from_slice(&(!checksum::fold(tcp)).to_be_bytes());
        true
    }
}

/// An ARP request or reply frame (42 bytes); 0 if `buf` is too short.
pub fn build_arp(buf: &mut [u8], eth_dst: EthernetAddress, our_mac: EthernetAddress, arp: &ArpRepr) -> usize {
    let total = ETH + arp.buffer_len();
    if buf.len() < total || ethernet::emit_header(buf, eth_dst, our_mac, EtherType::Arp).is_err() {
        return 0;
    }
    match arp.emit(&mut buf[ETH..]) {
        Ok(_) => total,
        Err(_) => 0,
    }
}

/// "Who has `target`? Tell `ours`."
pub fn arp_request(our_mac: EthernetAddress, ours: Ipv4Addr, target: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Request,
        sender_hardware_addr: our_mac,
        sender_protocol_addr: ours,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    }
}

/// A neighbour discovery message to send: Ethernet and IPv6 endpoints and the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdiscOut {
    pub eth_dst: EthernetAddress,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub repr: NdiscRepr,
}

/// The longest neighbour frame we send (an NS with its source link-layer option).
pub const NEIGH_FRAME_MAX: usize = ETH + ipv6::HEADER_LEN + ndp::ND_MSG_LEN + ndp::LLADDR_OPT_LEN;

/// Ethernet + IPv6 (hop limit 255, RFC 4861 §6.1.2) + the message; 0 if
/// `buf` is too short.
pub fn build_ndisc(buf: &mut [u8], our_mac: EthernetAddress, m: &NdiscOut) -> usize {
    let len = m.repr.buffer_len();
    let total = ETH + ipv6::HEADER_LEN + len;
    if buf.len() < total || ethernet::emit_header(buf, m.eth_dst, our_mac, EtherType::Ipv6).is_err() {
        return 0;
    }
    let ip = Ipv6Repr { src_addr: m.src, dst_addr: m.dst, next_header: NextHeader::Icmpv6, payload_len: len as u16, hop_limit: ndp::HOP_LIMIT, traffic_class: 0, flow_label: 0 };
    if ip.emit(&mut buf[ETH..]).is_err() || m.repr.emit(&mut buf[ETH + ipv6::HEADER_LEN..total], &m.src, &m.dst).is_err() {
        return 0;
    }
    total
}

/// "Who has `target`? Tell `ours`", over IPv6: a neighbour solicitation to
/// the target's solicited-node group (Linux's `ndisc_send_ns`).
pub fn neighbour_solicit(our_mac: EthernetAddress, ours: Ipv6Addr, target: Ipv6Addr) -> NdiscOut {
    let group = ipv6::solicited_node(&target);
    NdiscOut {
        eth_dst: ipv6::multicast_mac(&group),
        src: ours,
        dst: group,
        repr: NdiscRepr::NeighborSolicit { target, source_lladdr: Some(our_mac), nonce: None },
    }
}

/// A neighbour message received, with the addresses it came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ndisc {
    pub eth_src: EthernetAddress,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub repr: NdiscRepr,
}

impl Ndisc {
    /// The advertisement answering this solicitation for one of our
    /// addresses, as Linux's `ndisc_recv_ns` sends it: to the solicitor,
    /// solicited and override set, our MAC as the target link-layer
    /// address; to all nodes, unsolicited, for duplicate address detection.
    pub fn advert_for(&self, our_mac: EthernetAddress) -> Option<NdiscOut> {
        let NdiscRepr::NeighborSolicit { target, source_lladdr, .. } = self.repr else { return None };
        let dad = self.src.is_unspecified();
        let (eth_dst, dst) = if dad {
            (ipv6::multicast_mac(&ipv6::LINK_LOCAL_ALL_NODES), ipv6::LINK_LOCAL_ALL_NODES)
        } else {
            (source_lladdr.unwrap_or(self.eth_src), self.src)
        };
        let flags = NaFlags { router: false, solicited: !dad, override_: true };
        Some(NdiscOut { eth_dst, src: target, dst, repr: NdiscRepr::NeighborAdvert { flags, target, target_lladdr: Some(our_mac) } })
    }
}

impl<A: Family> Rx<'_, A> {
    /// The address a neighbour request (ARP request, neighbour
    /// solicitation) asks for.
    pub fn neigh_request_for(&self) -> Option<IpAddr> {
        match self {
            Rx::Arp(a) if a.operation == ArpOperation::Request => Some(IpAddr::V4(a.target_protocol_addr)),
            Rx::Ndisc(Ndisc { repr: NdiscRepr::NeighborSolicit { target, .. }, .. }) => Some(IpAddr::V6(*target)),
            _ => None,
        }
    }

    /// Who a neighbour message says is at which MAC: an ARP sender, a
    /// solicitor with its source link-layer address, an advertised target.
    pub fn neigh_sender(&self) -> Option<(IpAddr, EthernetAddress)> {
        match self {
            Rx::Arp(a) => Some((IpAddr::V4(a.sender_protocol_addr), a.sender_hardware_addr)),
            Rx::Ndisc(n) => match n.repr {
                NdiscRepr::NeighborSolicit { source_lladdr: Some(mac), .. } if !n.src.is_unspecified() => Some((IpAddr::V6(n.src), mac)),
                NdiscRepr::NeighborAdvert { target, target_lladdr, .. } => Some((IpAddr::V6(target), target_lladdr.unwrap_or(n.eth_src))),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A TCP segment from the target, as far as the generator cares: the
/// fixed header fields, and the options left unparsed (only a legitimate
/// flow's SYN-ACK needs its TSval, a flood's reply is only counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a, A: Family> {
    /// Our address and port it is for.
    pub to: A::Sock,
    pub from: A::Sock,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub payload_len: usize,
    /// The TCP options, as received.
    pub options: &'a [u8],
}

impl<A: Family> Reply<'_, A> {
    /// TSval of the segment, if it carries timestamps.
    pub fn tsval(&self) -> Option<u32> {
        if self.flags.contains(TcpFlags::SYN) {
            SynOptions::parse(self.options).timestamps.map(|t| t.0)
        } else {
            crate::wire::tcp_options::timestamps(self.options).map(|t| t.0)
        }
    }
}

/// What arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx<'a, A: Family> {
    Arp(ArpRepr),
    /// Neighbour discovery (IPv6 only).
    Ndisc(Ndisc),
    Tcp(Reply<'a, A>),
    /// Anything else, or malformed (never a panic).
    Other,
}

/// Classify a received frame. Lengths are checked, TCP checksums are not:
/// the generator counts replies, it does not validate the target (and
/// reads only frames of its own link).
#[inline]
pub fn parse<A: ParseReply>(frame: &[u8]) -> Rx<'_, A> {
    A::parse(frame)
}

/// The reply parser of a family ([`parse_v4`], [`parse_v6`]).
pub trait ParseReply: Family {
    fn parse(frame: &[u8]) -> Rx<'_, Self>;
}

impl ParseReply for Ipv4Addr {
    #[inline]
    fn parse(frame: &[u8]) -> Rx<'_, Self> {
        parse_v4(frame)
    }
}

impl ParseReply for Ipv6Addr {
    fn parse(frame: &[u8]) -> Rx<'_, Self> {
        parse_v6(frame)
    }
}

/// [`parse`] over IPv4: TCP and ARP.
pub fn parse_v4(frame: &[u8]) -> Rx<'_, Ipv4Addr> {
    if let Some(r) = parse_plain_tcp(frame) {
        return Rx::Tcp(r);
    }
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return Rx::Other };
    match eth.ethertype() {
        EtherType::Arp => match ArpPacket::new_checked(eth.payload()) {
            Ok(p) if p.check_layout().is_ok() => Rx::Arp(ArpRepr::parse(&p)),
            _ => Rx::Other,
        },
        EtherType::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Rx::Other };
            if ip.protocol() != IpProtocol::Tcp || ip.is_fragment() {
                return Rx::Other;
            }
            let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return Rx::Other };
            let flags = seg.flags();
            Rx::Tcp(Reply {
                to: SocketAddrV4::new(ip.dst_addr(), seg.dst_port()),
                from: SocketAddrV4::new(ip.src_addr(), seg.src_port()),
                seq: seg.seq_number(),
                ack: seg.ack_number(),
                flags,
                payload_len: seg.payload_len(),
                options: seg.options(),
            })
        }
        _ => Rx::Other,
    }
}

/// [`parse`] over IPv6: TCP right after the fixed header (Linux puts no
/// extension header on its replies; anything else is `Other`), and
/// neighbour discovery validated as Linux's `ndisc_rcv` does, checksum
/// included.
pub fn parse_v6(frame: &[u8]) -> Rx<'_, Ipv6Addr> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return Rx::Other };
    if eth.ethertype() != EtherType::Ipv6 {
        return Rx::Other;
    }
    let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else { return Rx::Other };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.next_header() {
        NextHeader::Tcp => {
            let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return Rx::Other };
            Rx::Tcp(Reply {
                to: SocketAddrV6::new(dst, seg.dst_port(), 0, 0),
                from: SocketAddrV6::new(src, seg.src_port(), 0, 0),
                seq: seg.seq_number(),
                ack: seg.ack_number(),
                flags: seg.flags(),
                payload_len: seg.payload_len(),
                options: seg.options(),
            })
        }
        NextHeader::Icmpv6 => {
            let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else { return Rx::Other };
            if !icmp.verify_checksum(&src, &dst) {
                return Rx::Other;
            }
            match NdiscRepr::parse(&icmp, ip.hop_limit(), &src, &dst) {
                Ok(repr) => Rx::Ndisc(Ndisc { eth_src: eth.src_addr(), src, dst, repr }),
                Err(_) => Rx::Other,
            }
        }
        _ => Rx::Other,
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What nearly every reply is, read at fixed offsets: an unfragmented IPv4
/// packet without IP options carrying TCP. None for anything else (the
/// general parse then decides), never a panic: every offset is checked
/// against the lengths first.
#[inline]
fn parse_plain_tcp(frame: &[u8]) -> Option<Reply<'_, Ipv4Addr>> {
    if frame.len() < ETH + IP + tcp::HEADER_LEN || be16(frame, 12) != 0x0800 {
        return None;
    }
    let ip = &frame[ETH..];
    let total = usize::from(be16(ip, 2));
    // Version 4, IHL 5; TCP; no MF flag, offset 0.
    if ip[0] != 0x45 || ip[9] != 6 || be16(ip, 6) & 0x3fff != 0 || total < IP + tcp::HEADER_LEN || total > ip.len() {
        return None;
    }
    let seg = &ip[IP..total];
    let doff = usize::from(seg[12] >> 4) * 4;
    if doff < tcp::HEADER_LEN || doff > seg.len() {
        return None;
    }
    Some(Reply {
        to: SocketAddrV4::new(Ipv4Addr::from(be32(ip, 16)), be16(seg, 2)),
        from: SocketAddrV4::new(Ipv4Addr::from(be32(ip, 12)), be16(seg, 0)),
        seq: be32(seg, 4),
        ack: be32(seg, 8),
        flags: TcpFlags::from_bits_truncate(be16(seg, 12)),
        payload_len: seg.len() - doff,
        options: &seg[tcp::HEADER_LEN..doff],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Instant;
    use crate::testkit::check::parse_sent_tcp;
    use crate::testkit::frame::{write_tcp_frame, TcpHeader};

    const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
    const THEM: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);

    fn syn() -> Segment<'static, Ipv4Addr> {
        Segment {
            src: "198.18.1.1:40000".parse().unwrap(),
            dst: "198.18.0.1:80".parse().unwrap(),
            seq: 0x0102_0304,
            ack: 0,
            flags: TcpFlags::SYN,
            syn: Some(linux_syn_options(42)),
            timestamps: None,
            payload: &[],
            ident: 7,
        }
    }

    #[test]
    fn syn_is_a_linux_syn_with_valid_checksums() {
        let mut buf = [0xa5u8; 128];
        let link = Link { our_mac: US, peer_mac: THEM };
        let s = syn();
        let n = build_segment(&mut buf, &link, &s);
        assert_eq!(n, 14 + 20 + 40);
        assert_eq!(n, segment_len(&s));
        // Read as the server's NIC would: lengths and both checksums checked.
        let seg = parse_sent_tcp(Instant::ZERO, &buf[..n]).expect("a valid TCP frame");
        assert_eq!(seg.eth_dst, THEM);
        assert!(seg.df);
        assert_eq!((seg.src, seg.dst), (s.src, s.dst));
        assert_eq!(seg.window, SYN_WINDOW);
        // The exact option bytes of a Linux 6.x SYN.
        assert_eq!(seg.options, [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 42, 0, 0, 0, 0, 1, 3, 3, 7]);
    }

    #[test]
    fn a_synack_from_the_target_is_a_reply() {
        let opts = SynOptions { timestamps: Some((77, 42)), ..linux_syn_options(77) };
        let mut opt_bytes = [0u8; 40];
        let n = opts.emit(&mut opt_bytes).unwrap();
        let h = TcpHeader {
            eth_dst: US,
            eth_src: THEM,
            src: "198.18.0.1:80".parse().unwrap(),
            dst: "198.18.1.1:40000".parse().unwrap(),
            seq: 5000,
            ack: 0x0102_0305,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            ..TcpHeader::default()
        };
        let mut buf = [0u8; 128];
        let len = write_tcp_frame(&mut buf, &h, &opt_bytes[..n], &[]);
        let want = Reply { to: h.dst, from: h.src, seq: 5000, ack: 0x0102_0305, flags: h.flags, payload_len: 0, options: &opt_bytes[..n] };
        assert_eq!(parse_v4(&buf[..len]), Rx::Tcp(want));
        assert_eq!(want.tsval(), Some(77));
    }

    #[test]
    fn ack_with_request_and_timestamps() {
        let mut buf = [0xa5u8; 256];
        let link = Link { our_mac: US, peer_mac: THEM };
        let s = Segment {
            flags: TcpFlags::ACK | TcpFlags::PSH,
            syn: None,
            timestamps: Some((5, 6)),
            payload: b"GET / HTTP/1.1\r\n\r\n",
            ack: 99,
            ..syn()
        };
        let n = build_segment(&mut buf, &link, &s);
        assert_eq!(n, 14 + 20 + 32 + 18);
        let Rx::Tcp(r) = parse_v4(&buf[..n]) else { panic!("not tcp") };
        assert_eq!(r.payload_len, 18);
        assert_eq!(r.tsval(), Some(5));
        assert_eq!((r.seq, r.ack), (0x0102_0304, 99));
        assert_eq!(r.to, s.dst);
        assert_eq!(r.from, s.src);
        assert_eq!(build_segment(&mut buf[..60], &link, &s), 0, "too short a buffer builds nothing");
    }

    #[test]
    fn arp_request_round_trips() {
        let mut buf = [0u8; 64];
        let req = arp_request(US, "198.18.1.1".parse().unwrap(), "198.18.0.1".parse().unwrap());
        let n = build_arp(&mut buf, EthernetAddress::BROADCAST, US, &req);
        assert_eq!(n, 42);
        assert_eq!(parse_v4(&buf[..n]), Rx::Arp(req));
    }

    #[test]
    fn syn_template_is_byte_for_byte_the_general_builder() {
        let link = Link { our_mac: US, peer_mac: THEM };
        let dst: SocketAddrV4 = "198.18.0.1:80".parse().unwrap();
        let t = SynTemplate::<Ipv4Addr>::new(&link, dst);
        // Fields and sums from zero to all ones, and pseudo-random ones.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut cases = vec![(0u32, 0u16, 0u32, 0u16, 0u32), (u32::MAX, u16::MAX, u32::MAX, u16::MAX, u32::MAX)];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((0xc612_0000 | (x as u32 & 0x1_ffff), (x >> 17) as u16, (x >> 24) as u32, (x >> 40) as u16, (x >> 8) as u32));
        }
        for (addr, port, isn, ident, tsval) in cases {
            let s = FloodSyn { src: SocketAddrV4::new(Ipv4Addr::from(addr), port), isn, ident };
            let mut fast = [0xa5u8; 80];
            assert!(t.write(&mut fast, &s, tsval));
            let mut general = [0xa5u8; 80];
            let seg = Segment { src: s.src, dst, seq: isn, ident, syn: Some(linux_syn_options(tsval)), ..syn() };
            assert_eq!(build_segment(&mut general, &link, &seg), SYN_FRAME_LEN);
            assert_eq!(fast, general, "{s:?} tsval {tsval}");
        }
        let mut short = [0u8; SYN_FRAME_LEN - 1];
        assert!(!t.write(&mut short, &FloodSyn { src: "198.18.1.1:1".parse().unwrap(), isn: 1, ident: 1 }, 1));
    }

    /// The general parse, without the fixed-offset fast path.
    fn parse_general(frame: &[u8]) -> Rx<'_, Ipv4Addr> {
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return Rx::Other };
        if eth.ethertype() != EtherType::Ipv4 {
            return parse_v4(frame);
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Rx::Other };
        if ip.protocol() != IpProtocol::Tcp || ip.is_fragment() {
            return Rx::Other;
        }
        let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return Rx::Other };
        Rx::Tcp(Reply {
            to: SocketAddrV4::new(ip.dst_addr(), seg.dst_port()),
            from: SocketAddrV4::new(ip.src_addr(), seg.src_port()),
            seq: seg.seq_number(),
            ack: seg.ack_number(),
            flags: seg.flags(),
            payload_len: seg.payload_len(),
            options: seg.options(),
        })
    }

    #[test]
    fn the_fast_path_reads_what_the_general_parse_reads() {
        let link = Link { our_mac: US, peer_mac: THEM };
        let mut frames = Vec::new();
        for s in [syn(), Segment { flags: TcpFlags::ACK | TcpFlags::PSH, syn: None, timestamps: Some((5, 6)), payload: b"data", ..syn() }] {
            let mut buf = vec![0u8; 128];
            let n = build_segment(&mut buf, &link, &s);
            buf.truncate(n);
            // Ethernet padding after the IP packet.
            let mut padded = buf.clone();
            padded.resize(n + 6, 0);
            // A fragment, and UDP: not TCP replies.
            let mut frag = buf.clone();
            frag[ETH + 6] |= 0x20;
            let mut udp = buf.clone();
            udp[ETH + 9] = 17;
            // A bad data offset, and a total length past the frame.
            let mut doff = buf.clone();
            doff[ETH + IP + 12] = 0xf0;
            let mut long = buf.clone();
            long[ETH + 3] = long[ETH + 3].wrapping_add(20);
            frames.extend([buf, padded, frag, udp, doff, long]);
        }
        for f in &frames {
            for cut in 0..=f.len() {
                assert_eq!(parse_v4(&f[..cut]), parse_general(&f[..cut]), "{:02x?}", &f[..cut]);
            }
        }
        assert!(matches!(parse_v4(&frames[0]), Rx::Tcp(r) if r.flags == TcpFlags::SYN && r.options.len() == 20));
        assert!(matches!(parse_v4(&frames[1]), Rx::Tcp(r) if r.payload_len == 0), "padding is not data");
        assert!(matches!(parse_v4(&frames[7]), Rx::Tcp(r) if r.payload_len == 4));
        assert_eq!(parse_v4(&frames[2]), Rx::Other);
    }

    #[test]
    fn garbage_is_other() {
        assert_eq!(parse_v4(&[]), Rx::Other);
        assert_eq!(parse_v4(&[0u8; 20]), Rx::Other);
        let mut buf = [0u8; 74];
        let n = build_segment(&mut buf, &Link { our_mac: US, peer_mac: THEM }, &syn());
        for cut in 0..n {
            let _ = parse_v4(&buf[..cut]);
        }
    }

    // IPv6.

    const DST6: &str = "[2001:2::1]:80";

    fn syn6() -> Segment<'static, Ipv6Addr> {
        Segment {
            src: "[2001:2:0:1::1]:40000".parse().unwrap(),
            dst: DST6.parse().unwrap(),
            seq: 0x0102_0304,
            ack: 0,
            flags: TcpFlags::SYN,
            syn: Some(syn_options::<Ipv6Addr>(42)),
            timestamps: None,
            payload: &[],
            ident: 0,
        }
    }

    /// The frame read back with the wire views: Ethernet, the IPv6 header's
    /// fields, the TCP checksum over the pseudo-header; the segment bytes.
    fn read_v6(frame: &[u8]) -> (Ipv6Repr, &[u8]) {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr(), eth.ethertype()), (THEM, US, EtherType::Ipv6));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let repr = Ipv6Repr::parse(&ip);
        assert_eq!(ip.total_len(), eth.payload().len(), "no trailing bytes");
        assert!(ipv6::verify_upper_layer(&repr.src_addr, &repr.dst_addr, 6, ip.payload()), "TCP checksum over IPv6");
        (repr, ip.payload())
    }

    #[test]
    fn v6_syn_is_a_linux_syn_with_valid_checksums() {
        let mut buf = [0xa5u8; 128];
        let link = Link { our_mac: US, peer_mac: THEM };
        let s = syn6();
        let n = build_segment(&mut buf, &link, &s);
        assert_eq!(n, 14 + 40 + 40);
        assert_eq!((n, n), (segment_len(&s), SYN6_FRAME_LEN));
        let (ip, seg) = read_v6(&buf[..n]);
        let want = Ipv6Repr {
            src_addr: *s.src.ip(),
            dst_addr: *s.dst.ip(),
            next_header: NextHeader::Tcp,
            payload_len: 40,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        assert_eq!(ip, want);
        let tcp = TcpSegment::new_checked(seg).unwrap();
        assert_eq!((tcp.src_port(), tcp.dst_port(), tcp.seq_number(), tcp.flags()), (40000, 80, 0x0102_0304, TcpFlags::SYN));
        assert_eq!(tcp.window_len(), SYN_WINDOW);
        // A Linux SYN over IPv6 on a 1500-byte MTU: MSS 1440, then as over IPv4.
        assert_eq!(tcp.options(), [2, 4, 5, 0xa0, 4, 2, 8, 10, 0, 0, 0, 42, 0, 0, 0, 0, 1, 3, 3, 7]);
    }

    #[test]
    fn v6_ack_with_request_and_a_synack_parse_back() {
        let link = Link { our_mac: US, peer_mac: THEM };
        let s = Segment { flags: TcpFlags::ACK | TcpFlags::PSH, syn: None, timestamps: Some((5, 6)), payload: b"GET / HTTP/1.1\r\n\r\n", ack: 99, ..syn6() };
        let mut buf = [0u8; 256];
        let n = build_segment(&mut buf, &link, &s);
        assert_eq!(n, 14 + 40 + 32 + 18);
        let (ip, _) = read_v6(&buf[..n]);
        assert_eq!(ip.payload_len, 32 + 18);
        let Rx::Tcp(r) = parse_v6(&buf[..n]) else { panic!("not tcp") };
        assert_eq!((r.to, r.from, r.seq, r.ack, r.payload_len, r.tsval()), (s.dst, s.src, 0x0102_0304, 99, 18, Some(5)));
        // The target's SYN-ACK, as our parse sees it.
        let back = Link { our_mac: THEM, peer_mac: US };
        let synack = Segment {
            src: s.dst,
            dst: s.src,
            seq: 7,
            ack: 0x0102_0305,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            syn: Some(SynOptions { timestamps: Some((77, 42)), ..syn_options::<Ipv6Addr>(77) }),
            ..syn6()
        };
        let n = build_segment(&mut buf, &back, &synack);
        // Ethernet padding after the packet is not data.
        let Rx::Tcp(r) = parse_v6(&buf[..n + 4]) else { panic!("not tcp") };
        assert_eq!((r.to, r.from, r.seq, r.ack, r.flags, r.payload_len), (s.src, s.dst, 7, 0x0102_0305, synack.flags, 0));
        assert_eq!(r.tsval(), Some(77));
        assert_eq!(parse_v4(&buf[..n]), Rx::Other, "an IPv6 frame is not an IPv4 reply");
        assert_eq!(parse_v6(&buf[..n - 1]), Rx::Other, "truncated");
        let mut other = buf;
        other[ETH + 6] = 17;
        assert_eq!(parse_v6(&other[..n]), Rx::Other, "UDP");
    }

    const OURS6: &str = "2001:2:0:1::5";

    /// The target's neighbour solicitation for `target` from `src`.
    fn ns_frame(src: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
        let group = ipv6::solicited_node(&target);
        let m = NdiscOut {
            eth_dst: ipv6::multicast_mac(&group),
            src,
            dst: group,
            repr: NdiscRepr::NeighborSolicit { target, source_lladdr: (!src.is_unspecified()).then_some(THEM), nonce: None },
        };
        let mut buf = vec![0u8; NEIGH_FRAME_MAX];
        let n = build_ndisc(&mut buf, THEM, &m);
        assert_eq!(n, ETH + 40 + m.repr.buffer_len());
        buf.truncate(n);
        buf[ETH + 7] = hop_limit;
        buf
    }

    #[test]
    fn a_neighbour_solicitation_for_our_source_gets_an_advertisement() {
        let target_ip: Ipv6Addr = "2001:2::1".parse().unwrap();
        let ours: Ipv6Addr = OURS6.parse().unwrap();
        let ns = ns_frame(target_ip, ours, 255);
        let Rx::Ndisc(n) = parse_v6(&ns) else { panic!("not neighbour discovery: {:?}", parse_v6(&ns)) };
        let rx = Rx::<Ipv6Addr>::Ndisc(n);
        assert_eq!(rx.neigh_request_for(), Some(IpAddr::V6(ours)));
        assert_eq!(rx.neigh_sender(), Some((IpAddr::V6(target_ip), THEM)), "the solicitor's MAC is learned too");
        let na = n.advert_for(US).unwrap();
        assert_eq!((na.eth_dst, na.src, na.dst), (THEM, ours, target_ip));
        let mut buf = [0u8; NEIGH_FRAME_MAX];
        let len = build_ndisc(&mut buf, US, &na);
        assert_eq!(len, ETH + 40 + ndp::na_len(true));
        // Read back as the target reads it: hop limit 255, checksum, flags.
        let ip = Ipv6Packet::new_checked(&buf[ETH..len]).unwrap();
        assert_eq!((ip.hop_limit(), ip.next_header()), (255, NextHeader::Icmpv6));
        let Rx::Ndisc(adv) = parse_v6(&buf[..len]) else { panic!("not an advertisement") };
        let flags = NaFlags { router: false, solicited: true, override_: true };
        assert_eq!(adv.repr, NdiscRepr::NeighborAdvert { flags, target: ours, target_lladdr: Some(US) });
        assert_eq!(Rx::<Ipv6Addr>::Ndisc(adv).neigh_sender(), Some((IpAddr::V6(ours), US)));
        // Duplicate address detection: answered to all nodes, unsolicited.
        let Rx::Ndisc(dad) = parse_v6(&ns_frame(Ipv6Addr::UNSPECIFIED, ours, 255)) else { panic!("DAD") };
        let na = dad.advert_for(US).unwrap();
        assert_eq!(na.dst, ipv6::LINK_LOCAL_ALL_NODES);
        assert!(matches!(na.repr, NdiscRepr::NeighborAdvert { flags: NaFlags { solicited: false, .. }, .. }));
        assert_eq!(Rx::<Ipv6Addr>::Ndisc(dad).neigh_sender(), None, "DAD tells no address");
        // Not from the link (hop limit below 255): dropped, as Linux's ndisc_rcv does.
        assert_eq!(parse_v6(&ns_frame(target_ip, ours, 64)), Rx::Other);
        // A corrupted checksum: dropped.
        let mut bad = ns_frame(target_ip, ours, 255);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(parse_v6(&bad), Rx::Other);
    }

    #[test]
    fn our_neighbour_solicitation_goes_to_the_solicited_node_group() {
        let ours: Ipv6Addr = OURS6.parse().unwrap();
        let target: Ipv6Addr = "2001:2::1".parse().unwrap();
        let m = neighbour_solicit(US, ours, target);
        let mut buf = [0u8; NEIGH_FRAME_MAX];
        let n = build_ndisc(&mut buf, US, &m);
        assert_eq!(n, NEIGH_FRAME_MAX);
        assert_eq!(&buf[..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
        let Rx::Ndisc(ns) = parse_v6(&buf[..n]) else { panic!("not neighbour discovery") };
        assert_eq!((ns.src, ns.dst, ns.eth_src), (ours, "ff02::1:ff00:1".parse().unwrap(), US));
        assert_eq!(ns.repr, NdiscRepr::NeighborSolicit { target, source_lladdr: Some(US), nonce: None });
        assert_eq!(build_ndisc(&mut buf[..n - 1], US, &m), 0, "too short a buffer builds nothing");
    }

    use proptest::prelude::*;

    proptest! {
        /// The IPv6 template writes what the general builder writes, for
        /// any source inside 2001:2::/48, and the checksum verifies.
        #[test]
        fn v6_syn_template_is_byte_for_byte_the_general_builder(low in any::<u128>(), port in any::<u16>(), isn in any::<u32>(), tsval in any::<u32>()) {
            let link = Link { our_mac: US, peer_mac: THEM };
            let dst: SocketAddrV6 = DST6.parse().unwrap();
            let t = SynTemplate::<Ipv6Addr>::new(&link, dst);
            let addr = Ipv6Addr::from((0x2001_0002_0000u128 << 80) | (low >> 48));
            let s = FloodSyn::<Ipv6Addr> { src: SocketAddrV6::new(addr, port, 0, 0), isn, ident: 0 };
            let mut fast = [0xa5u8; 100];
            prop_assert!(t.write(&mut fast, &s, tsval));
            let mut general = [0xa5u8; 100];
            let seg = Segment { src: s.src, dst, seq: isn, syn: Some(syn_options::<Ipv6Addr>(tsval)), ..syn6() };
            prop_assert_eq!(build_segment(&mut general, &link, &seg), SYN6_FRAME_LEN);
            prop_assert_eq!(&fast[..], &general[..]);
            let (ip, _) = read_v6(&fast[..SYN6_FRAME_LEN]);
            prop_assert_eq!(ip.src_addr, addr);
            prop_assert!(!t.write(&mut fast[..SYN6_FRAME_LEN - 1], &s, tsval));
        }

        /// Whatever arrives, the IPv6 parse returns, and a valid frame cut
        /// short is never read as a reply.
        #[test]
        fn v6_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..160), cut in 0usize..SYN6_FRAME_LEN) {
            let _ = parse_v6(&data);
            let mut frame = data.clone();
            if frame.len() >= ETH + 40 {
                frame[12..14].copy_from_slice(&[0x86, 0xdd]);
                frame[ETH] = 0x60;
                let _ = parse_v6(&frame);
            }
            let mut buf = [0u8; SYN6_FRAME_LEN];
            build_segment(&mut buf, &Link { our_mac: US, peer_mac: THEM }, &syn6());
            prop_assert_eq!(parse_v6(&buf[..cut]), Rx::Other);
            prop_assert!(matches!(parse_v6(&buf), Rx::Tcp(_)));
        }
    }
}
