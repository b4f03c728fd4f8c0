//! IPv6 input of a host, as Linux's `ipv6_rcv` / `ip6_rcv_core`,
//! `ip6_input_finish` and the handlers under them do it for a host that
//! does not forward: the header checks, the extension-header walk, our
//! addresses and multicast groups, ICMPv6 echo (`icmpv6_echo_reply`) and
//! errors (`icmp6_send`, rate limited by `icmpv6_xrlim_allow`), UDP to a
//! closed port (`__udp6_lib_rcv`: port unreachable) and TCP's header checks
//! (`tcp_v6_rcv`). Neighbour discovery is [`super::ndisc`]'s.
//!
//! TCP goes to the TCP layer as over IPv4 ([`TcpInput`] with the IPv6
//! header); a segment no socket takes gets the closed port's answer.
//!
//! Linux sends an automatic flow label (a hash of the flow under a boot-time
//! random key, `auto_flowlabels` = 1); we send 0, "not labelled" (RFC 6437).

use super::{write_eth, Host, IpHeader, TcpInput, DEFAULT_TTL};
use crate::engine::time::Instant;
use crate::engine::tx::{TxFrame, TxSink};
use crate::stats::Counter;
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmpv6::{self, Icmpv6Packet, Icmpv6ParamProblem, Icmpv6Repr, Icmpv6Type, Icmpv6Unreachable};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, NextHeader};
use crate::wire::ipv6_ext::{self, ExtError, UpperLayer};
use crate::wire::tcp::{TcpSegment, HEADER_LEN as TCP_HEADER_LEN};
use crate::wire::udp::UdpPacket;
use std::net::Ipv6Addr;

/// Hop limit of what we originate (Linux: net.ipv6.conf.*.hop_limit).
pub const DEFAULT_HOP_LIMIT: u8 = DEFAULT_TTL;

/// The host's IPv6 identity: addresses and the multicast groups they make
/// it join (all nodes, and the solicited-node group of each address, as
/// `addrconf` joins them).
#[derive(Debug, Default, Clone)]
pub struct Ipv6Identity {
    pub addrs: Vec<Ipv6Addr>,
    /// The same as 128-bit words (two compares each on the plain TCP check).
    words: Vec<u128>,
    groups: Vec<Ipv6Addr>,
    macs: Vec<EthernetAddress>,
}

impl Ipv6Identity {
    pub fn new(addrs: Vec<Ipv6Addr>) -> Ipv6Identity {
        let mut groups = Vec::new();
        if !addrs.is_empty() {
            groups.push(ipv6::LINK_LOCAL_ALL_NODES);
        }
        for a in &addrs {
            let g = ipv6::solicited_node(a);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let macs = groups.iter().map(ipv6::multicast_mac).collect();
        let words = addrs.iter().map(|&a| u128::from(a)).collect();
        Ipv6Identity { addrs, words, groups, macs }
    }

    pub fn is_ours(&self, a: &Ipv6Addr) -> bool {
        self.addrs.contains(a)
    }

    /// [`Ipv6Identity::is_ours`] of an address as a 128-bit word.
    #[inline]
    pub fn is_ours_word(&self, a: u128) -> bool {
        self.words.contains(&a)
    }

    /// A multicast group we are in.
    pub fn in_group(&self, a: &Ipv6Addr) -> bool {
        self.groups.contains(a)
    }

    /// The multicast groups joined.
    pub fn groups(&self) -> &[Ipv6Addr] {
        &self.groups
    }

    /// The Ethernet multicast addresses of our groups: what the port must
    /// accept (33:33:00:00:00:01 and 33:33:ff:xx:xx:xx per address).
    pub fn multicast_macs(&self) -> &[EthernetAddress] {
        &self.macs
    }

    /// Our source address towards `peer` when the packet we answer was
    /// not to one of our unicast addresses: the longest common prefix
    /// (RFC 6724 rule 8, the one that decides between global addresses on
    /// one link).
    pub fn source_for(&self, peer: &Ipv6Addr) -> Option<Ipv6Addr> {
        let common = |a: &Ipv6Addr| (u128::from(*a) ^ u128::from(*peer)).leading_zeros();
        let mut best: Option<(u32, Ipv6Addr)> = None;
        for a in &self.addrs {
            let l = common(a);
            match best {
                Some((b, _)) if b >= l => {}
                _ => best = Some((l, *a)),
            }
        }
        best.map(|(_, a)| a)
    }
}

impl Host {
    /// `ipv6_rcv` for one frame of EtherType 0x86DD.
    // Off the IPv4 receive path's inlined code.
    #[inline(never)]
    pub(super) fn ipv6<'a>(&mut self, now: Instant, eth: &EthernetFrame<&'a [u8]>, meta: super::RxMeta, tx: &mut impl TxSink) -> Option<TcpInput<'a>> {
        let c = &*self.counters;
        c.inc(Counter::Ip6InReceives);
        let buf = eth.payload();
        if buf.len() < ipv6::HEADER_LEN {
            c.inc(Counter::Ip6InHdrErrors);
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(buf);
        if ip.version() != 6 {
            c.inc(Counter::Ip6InHdrErrors);
            return None;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        // ip6_rcv_core: loopback on the wire (RFC 4291 2.5.3), interface-local
        // or reserved-scope multicast from another node, multicast sources (2.7).
        let dst_mc = dst.is_multicast();
        if src.is_loopback()
            || dst.is_loopback()
            || (dst_mc && matches!(ipv6::multicast_scope(&dst), 0 | 1))
            || src.is_multicast()
        {
            c.inc(Counter::Ip6InHdrErrors);
            return None;
        }
        if buf.len() < ip.total_len() {
            c.inc(Counter::Ip6InTruncatedPkts);
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(&buf[..ip.total_len()]);
        let packet = ip.packet();
        let cursor = match ipv6_ext::hop_by_hop(packet, dst_mc) {
            Ok(cur) => cur,
            Err(e) => {
                self.ext_error(now, eth, &ip, e, tx);
                return None;
            }
        };
        // ip6_route_input: ours, a group we are in, or someone else's
        // (forwarding is off: ip6_forward counts an address error).
        if dst_mc {
            c.inc(Counter::Ip6InMcastPkts);
            if !self.v6.in_group(&dst) {
                return None;
            }
        } else if !self.v6.is_ours(&dst) {
            c.inc(Counter::Ip6InAddrErrors);
            return None;
        }
        let upper = match ipv6_ext::walk_from(packet, cursor, dst_mc) {
            Ok(u) => u,
            Err(e) => {
                self.ext_error(now, eth, &ip, e, tx);
                return None;
            }
        };
        if upper.fragment.is_some() {
            c.inc(Counter::Ip6ReasmFails);
            return None;
        }
        let c = &*self.counters;
        match upper.next_header {
            NextHeader::Icmpv6 => {
                c.inc(Counter::Ip6InDelivers);
                self.icmpv6(now, eth, &ip, &upper, tx);
            }
            NextHeader::Udp => {
                c.inc(Counter::Ip6InDelivers);
                self.learn6(now, eth, &ip);
                self.udp6(now, eth, &ip, upper.offset, meta, tx);
            }
            // No learning from TCP, as over IPv4: request socks and
            // connections keep their peer's MAC, and the SYN path pays no
            // table insert.
            NextHeader::Tcp => {
                c.inc(Counter::Ip6InDelivers);
                return self.tcp6(eth, &ip, upper.offset, meta);
            }
            // dst_discard, which returns 0: delivered, to nobody.
            NextHeader::NoNextHeader => c.inc(Counter::Ip6InDelivers),
            _ => {
                // ip6_protocol_deliver_rcu: no handler (hop-by-hop not first included).
                c.inc(Counter::Ip6InUnknownProtos);
                let pointer = upper.nhoff as u32;
                self.icmp6_error(now, eth, &ip, Icmpv6Type::ParamProblem, u8::from(Icmpv6ParamProblem::UnrecognizedNextHeader), pointer, tx);
            }
        }
        None
    }

    /// A unicast echo request or UDP datagram to us teaches its sender's
    /// MAC, for the answer. Neighbour discovery messages update the table
    /// by their own rules instead.
    fn learn6(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>) {
        let src = ip.src_addr();
        if !ip.dst_addr().is_multicast() && !src.is_unspecified() && !self.v6.is_ours(&src) {
            self.neighbors6.learn(now, src, eth.src_addr());
        }
    }

    fn ext_error(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>, e: ExtError, tx: &mut impl TxSink) {
        let c = &*self.counters;
        match e {
            ExtError::Header => c.inc(Counter::Ip6InHdrErrors),
            ExtError::Address => c.inc(Counter::Ip6InAddrErrors),
            ExtError::Truncated => c.inc(Counter::Ip6InTruncatedPkts),
            ExtError::Discard => {}
            ExtError::ParamProblem { code, pointer } => {
                c.inc(Counter::Ip6InHdrErrors);
                self.icmp6_error(now, eth, ip, Icmpv6Type::ParamProblem, u8::from(code), pointer, tx);
            }
        }
    }

    /// `icmpv6_rcv`: checksum, the per-type counters, echo and neighbour discovery.
    fn icmpv6(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>, upper: &UpperLayer, tx: &mut impl TxSink) {
        let c = &*self.counters;
        c.inc(Counter::Icmp6InMsgs);
        let msg = &ip.packet()[upper.offset..];
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if !ipv6::verify_upper_layer(&src, &dst, u8::from(NextHeader::Icmpv6), msg) {
            c.inc(Counter::Icmp6InCsumErrors);
            c.inc(Counter::Icmp6InErrors);
            return;
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(msg) else {
            c.inc(Counter::Icmp6InErrors);
            return;
        };
        let per_type = match icmp.msg_type() {
            Icmpv6Type::EchoRequest => Some(Counter::Icmp6InEchos),
            Icmpv6Type::RouterSolicit => Some(Counter::Icmp6InRouterSolicits),
            Icmpv6Type::RouterAdvert => Some(Counter::Icmp6InRouterAdvertisements),
            Icmpv6Type::NeighborSolicit => Some(Counter::Icmp6InNeighborSolicits),
            Icmpv6Type::NeighborAdvert => Some(Counter::Icmp6InNeighborAdvertisements),
            _ => None,
        };
        if let Some(k) = per_type {
            c.inc(k);
        }
        match icmp.msg_type() {
            Icmpv6Type::EchoRequest => {
                self.learn6(now, eth, ip);
                self.icmp6_echo(eth, ip, msg, tx)
            }
            // ndisc_suppress_frag_ndisc: never from a fragmented packet.
            Icmpv6Type::NeighborSolicit | Icmpv6Type::NeighborAdvert | Icmpv6Type::RouterSolicit | Icmpv6Type::RouterAdvert
                if !upper.fragmented =>
            {
                self.ndisc(now, eth, ip, &icmp, tx)
            }
            // Errors go to the sockets they are about; there are none over IPv6.
            _ => {}
        }
    }

    /// `icmpv6_echo_reply`: the request's data, identifier, sequence and
    /// code, its traffic class, hop limit 64; a request to a multicast group
    /// is answered too (`echo_ignore_multicast` 0), from our best address.
    fn icmp6_echo(&mut self, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>, msg: &[u8], tx: &mut impl TxSink) {
        let (peer, to) = (ip.src_addr(), ip.dst_addr());
        let ours = if self.v6.is_ours(&to) { Some(to) } else { self.v6.source_for(&peer) };
        let Some(ours) = ours else { return };
        if peer.is_unspecified() {
            return;
        }
        let Ok(len) = u16::try_from(msg.len()) else { return };
        let repr = Ipv6Repr {
            src_addr: ours,
            dst_addr: peer,
            next_header: NextHeader::Icmpv6,
            payload_len: len,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: ip.traffic_class(),
            flow_label: 0,
        };
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let frame_len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + msg.len();
        let sent = tx.emit(frame_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv6);
            let (l3, l4) = rest.split_at_mut(ipv6::HEADER_LEN);
            let _ = repr.emit(l3);
            let reply = &mut l4[..msg.len()];
            reply.copy_from_slice(msg);
            let mut m = Icmpv6Packet::new_unchecked(reply);
            m.echo_request_to_reply();
            // Answering a group from a unicast address changes the pseudo-header.
            if ours != to {
                m.fill_checksum(&ours, &peer);
            }
            TxFrame::done(frame_len)
        });
        if sent {
            self.count_sent6(Counter::Icmp6OutEchoReplies);
        }
    }

    /// `__udp6_lib_rcv` without sockets.
    fn udp6(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>, offset: usize, meta: super::RxMeta, tx: &mut impl TxSink) {
        let c = &*self.counters;
        let bytes = &ip.packet()[offset..];
        let Ok(udp) = UdpPacket::new_checked(bytes) else {
            c.inc(Counter::Udp6InErrors);
            return;
        };
        // __udp6_lib_mcast_deliver: no socket in any group, dropped.
        if ip.dst_addr().is_multicast() {
            return;
        }
        // RFC 8200 8.1: a zero checksum is no checksum, refused over IPv6.
        let data = &bytes[..usize::from(udp.len())];
        let csum_ok = udp.checksum() != 0
            && meta.l4_csum.ok_or_else(|| ipv6::verify_upper_layer(&ip.src_addr(), &ip.dst_addr(), u8::from(NextHeader::Udp), data));
        if !csum_ok {
            c.inc(Counter::Udp6InCsumErrors);
            c.inc(Counter::Udp6InErrors);
            return;
        }
        c.inc(Counter::Udp6NoPorts);
        self.icmp6_error(now, eth, ip, Icmpv6Type::DstUnreachable, u8::from(Icmpv6Unreachable::PortUnreachable), 0, tx);
    }

    /// `tcp_v6_rcv` before the socket lookup: the TCP header's checks;
    /// the segment goes to the TCP layer, and a closed port's RST is
    /// [`super::reset`]'s (`tcp_v6_send_reset`).
    fn tcp6<'a>(&mut self, eth: &EthernetFrame<&'a [u8]>, ip: &Ipv6Packet<&'a [u8]>, offset: usize, meta: super::RxMeta) -> Option<TcpInput<'a>> {
        let c = &*self.counters;
        let (peer, ours) = (ip.src_addr(), ip.dst_addr());
        // tcp_v6_rcv: only PACKET_HOST; ipv6_unicast_destination for the reset.
        if ours.is_multicast() || eth.dst_addr() != self.cfg.mac {
            return None;
        }
        c.inc(Counter::TcpInSegs);
        let bytes = &ip.packet()[offset..];
        let Ok(seg) = TcpSegment::new_checked(bytes) else {
            if bytes.len() >= TCP_HEADER_LEN && usize::from(TcpSegment::new_unchecked(bytes).header_len()) < TCP_HEADER_LEN {
                c.inc(Counter::TcpInErrs);
            }
            return None;
        };
        let csum_ok = meta.l4_csum.ok_or_else(|| ipv6::verify_upper_layer(&peer, &ours, u8::from(NextHeader::Tcp), bytes));
        if !csum_ok {
            c.inc(Counter::TcpInCsumErrors);
            c.inc(Counter::TcpInErrs);
            return None;
        }
        Some(TcpInput { eth_src: eth.src_addr(), ip: IpHeader::V6(ip.clone(), offset), seg, meta })
    }

    /// `icmp6_send`: an error about `ip`, quoting as much of it as fits in
    /// 1280 bytes, hop limit 64, traffic class 0. Not about a packet to a
    /// group or not addressed to our MAC (except a parameter problem for an
    /// option whose type says "report even to multicast"), not to an
    /// unspecified or multicast source, never about an ICMPv6 error
    /// (`is_ineligible`), and rate limited (`icmpv6_xrlim_allow`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn icmp6_error(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv6Packet<&[u8]>,
        msg_type: Icmpv6Type,
        code: u8,
        word: u32,
        tx: &mut impl TxSink,
    ) {
        let packet = ip.packet();
        let (peer, to) = (ip.src_addr(), ip.dst_addr());
        if to.is_multicast() || eth.dst_addr() != self.cfg.mac {
            let opt_unrec = msg_type == Icmpv6Type::ParamProblem
                && code == u8::from(Icmpv6ParamProblem::UnrecognizedOption)
                && packet.get(word as usize).is_some_and(|t| t & 0xc0 == 0x80);
            if msg_type != Icmpv6Type::PacketTooBig && !opt_unrec {
                return;
            }
        }
        if peer.is_unspecified() || peer.is_multicast() || is_ineligible(packet) {
            return;
        }
        let ours = if self.v6.is_ours(&to) { Some(to) } else { self.v6.source_for(&peer) };
        let Some(ours) = ours else { return };
        // net.ipv6.icmp.ratemask: every error but packet too big.
        if msg_type != Icmpv6Type::PacketTooBig && !self.icmp_limit.allow_v6(now, peer) {
            self.counters.inc(Counter::Icmp6OutRateLimitHost);
            return;
        }
        let quoted = &packet[..packet.len().min(icmpv6::MAX_QUOTE)];
        let msg = match msg_type {
            Icmpv6Type::ParamProblem => Icmpv6Repr::ParamProblem { code: code.into(), pointer: word, quoted },
            Icmpv6Type::PacketTooBig => Icmpv6Repr::PacketTooBig { mtu: word, quoted },
            _ => Icmpv6Repr::DstUnreachable { code: code.into(), quoted },
        };
        let icmp_len = msg.buffer_len();
        let repr = Ipv6Repr {
            src_addr: ours,
            dst_addr: peer,
            next_header: NextHeader::Icmpv6,
            payload_len: icmp_len as u16,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        };
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let frame_len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp_len;
        let sent = tx.emit(frame_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv6);
            let (l3, l4) = rest.split_at_mut(ipv6::HEADER_LEN);
            let _ = repr.emit(l3);
            let _ = msg.emit(l4, &ours, &peer);
            TxFrame::done(frame_len)
        });
        if sent {
            self.count_sent6(if msg_type == Icmpv6Type::ParamProblem {
                Counter::Icmp6OutParmProblems
            } else {
                Counter::Icmp6OutDestUnreachs
            });
        }
    }

    /// The counters of an ICMPv6 message sent.
    pub(super) fn count_sent6(&self, per_type: Counter) {
        let c = &*self.counters;
        c.inc(Counter::Icmp6OutMsgs);
        c.inc(per_type);
        c.inc(Counter::Ip6OutRequests);
        c.inc(Counter::TxFrames);
    }
}

/// Linux's `is_ineligible`: an ICMPv6 error (or a message whose type cannot
/// be read) is never answered with one.
fn is_ineligible(packet: &[u8]) -> bool {
    let Some((nh, at, frag_off)) = ipv6_ext::skip_ext_headers(packet, ipv6::HEADER_LEN, packet[ipv6::NEXT_HEADER_OFFSET]) else {
        return false;
    };
    if NextHeader::from(nh) != NextHeader::Icmpv6 {
        return false;
    }
    match packet.get(at) {
        // RFC 8200 4.5: a later fragment without the ICMPv6 header is eligible.
        None if frag_off != 0 => false,
        None => true,
        Some(&t) => Icmpv6Type::from(t).is_error(),
    }
}
