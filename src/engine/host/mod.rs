//! Host behaviour: what a Linux host answers before any socket is involved.
//!
//! ARP for our addresses, ICMP echo, ICMP port/protocol unreachable (rate
//! limited as Linux does), RST for TCP segments nobody takes, and silent
//! drops for bad checksums and impossible segments. Every answer was checked
//! against Linux 6.18 (tests/oracle/closed_port.sh): field values below say
//! "Linux" where they copy it.

pub mod icmp_limit;
pub mod neighbor;

use icmp_limit::IcmpRateLimiter;
use neighbor::NeighborTable;
use crate::engine::time::Instant;
use crate::engine::tx::{TxFrame, TxSink};
use crate::stats::{Counter, Counters};
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmp::{Icmpv4Packet, Icmpv4Type};
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{TcpFlags, TcpRepr, TcpSegment};
use crate::wire::udp::UdpPacket;
use crate::wire::{ethernet, icmp, ipv4, tcp};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// TTL of everything we originate (Linux: net.ipv4.ip_default_ttl).
pub const DEFAULT_TTL: u8 = 64;
/// Linux quotes the offending datagram so that the ICMP error fits in 576 bytes.
pub const ICMP_ERROR_MAX: usize = 576;
/// ICMP errors carry precedence "internetwork control" (Linux: IPTOS_PREC_INTERNETCONTROL).
const IPTOS_PREC_INTERNETCONTROL: u8 = 0xc0;
const IPTOS_TOS_MASK: u8 = 0x1e;

/// What the NIC already verified about a received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CsumStatus {
    /// Not checked: verify in software.
    #[default]
    Unknown,
    Good,
    Bad,
}

impl CsumStatus {
    /// The NIC's verdict, or `verify` (software) when it gave none.
    pub fn ok_or_else(self, verify: impl FnOnce() -> bool) -> bool {
        match self {
            CsumStatus::Good => true,
            CsumStatus::Bad => false,
            CsumStatus::Unknown => verify(),
        }
    }
}

/// Per-frame facts from the port.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxMeta {
    pub ip_csum: CsumStatus,
    pub l4_csum: CsumStatus,
    /// The NIC's RSS hash of the flow, when it computed one.
    pub rss_hash: Option<u32>,
}

/// The host's identity on one port.
#[derive(Clone, Debug)]
pub struct HostConfig {
    pub mac: EthernetAddress,
    pub addrs: Vec<Ipv4Addr>,
}

/// A TCP segment addressed to us, with its IPv4 context, as the host hands
/// it to the TCP layer.
pub struct TcpInput<'a> {
    pub eth_src: EthernetAddress,
    pub ip: Ipv4Packet<&'a [u8]>,
    pub seg: TcpSegment<&'a [u8]>,
    pub meta: RxMeta,
}

/// The TCP layer above the host. `None` means "no socket took it": the host
/// answers as Linux does for a closed port.
pub trait TcpLayer {
    fn segment(&mut self, now: Instant, input: &TcpInput<'_>, host: &mut HostTx<'_>, tx: &mut impl TxSink) -> Taken;
}

/// Whether a TCP socket took a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    Yes,
    NoSocket,
}

/// No sockets at all: every port is closed.
pub struct NoSockets;

impl TcpLayer for NoSockets {
    fn segment(&mut self, _: Instant, _: &TcpInput<'_>, _: &mut HostTx<'_>, _: &mut impl TxSink) -> Taken {
        Taken::NoSocket
    }
}

/// What a TCP layer may use of the host to answer: identity, counters,
/// neighbours and the IP ident counter.
pub struct HostTx<'h> {
    pub mac: EthernetAddress,
    pub counters: &'h Counters,
    pub neighbors: &'h mut NeighborTable,
}

pub struct Host {
    cfg: HostConfig,
    counters: Arc<Counters>,
    neighbors: NeighborTable,
    icmp_limit: IcmpRateLimiter,
    /// IPv4 ident for datagrams without DF (Linux hashes; a counter is enough
    /// without fragmentation).
    ip_ident: u16,
}

impl Host {
    pub fn new(cfg: HostConfig, counters: Arc<Counters>) -> Host {
        Host { cfg, counters, neighbors: NeighborTable::default(), icmp_limit: IcmpRateLimiter::new(), ip_ident: 1 }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn neighbors(&self) -> &NeighborTable {
        &self.neighbors
    }

    /// What the TCP layer may use outside of a received frame (timers).
    pub fn tx_context(&mut self) -> HostTx<'_> {
        HostTx { mac: self.cfg.mac, counters: &self.counters, neighbors: &mut self.neighbors }
    }

    fn is_ours(&self, ip: Ipv4Addr) -> bool {
        self.cfg.addrs.contains(&ip)
    }

    /// Handle one received frame; answers go to `tx`.
    pub fn rx(&mut self, now: Instant, frame: &[u8], meta: RxMeta, tcp: &mut impl TcpLayer, tx: &mut impl TxSink) {
        let c = &*self.counters;
        c.inc(Counter::RxFrames);
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            c.inc(Counter::RxMalformed);
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.cfg.mac && !dst.is_broadcast() {
            c.inc(Counter::RxOtherHost);
            return;
        }
        match eth.ethertype() {
            EtherType::Arp => self.arp(now, &eth, tx),
            EtherType::Ipv4 => self.ipv4(now, &eth, meta, tcp, tx),
            _ => c.inc(Counter::RxUnknownEthertype),
        }
    }

    fn arp(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, tx: &mut impl TxSink) {
        let c = &*self.counters;
        let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
            c.inc(Counter::ArpIgnored);
            return;
        };
        let sender_ip = arp.sender_protocol_addr();
        let sender_mac = arp.sender_hardware_addr();
        // Someone claims one of our addresses (a conflict, or a gratuitous ARP
        // for it): Linux's arp_process neither answers (ip_route_input rejects
        // a local source) nor should we learn our own address as a neighbour.
        if self.is_ours(sender_ip) {
            c.inc(Counter::ArpIgnored);
            return;
        }
        // RFC 826: update the sender's entry whether or not the request is for us.
        if !sender_ip.is_unspecified() {
            self.neighbors.learn(now, sender_ip, sender_mac);
        }
        let request = ArpRepr::parse(&arp);
        let reply = self.cfg.addrs.iter().find_map(|ip| request.reply_to(self.cfg.mac, *ip));
        let Some(reply) = reply else {
            c.inc(Counter::ArpIgnored);
            return;
        };
        let mac = self.cfg.mac;
        let sent = tx.emit(ethernet::HEADER_LEN + reply.buffer_len(), |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, sender_mac, mac, EtherType::Arp);
            let len = reply.emit(rest).unwrap_or(0);
            TxFrame::done(ethernet::HEADER_LEN + len)
        });
        if sent {
            c.inc(Counter::ArpReplies);
            c.inc(Counter::TxFrames);
        }
    }

    fn ipv4(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        meta: RxMeta,
        tcp: &mut impl TcpLayer,
        tx: &mut impl TxSink,
    ) {
        let c = &*self.counters;
        c.inc(Counter::IpInReceives);
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            c.inc(Counter::IpInHdrErrors);
            return;
        };
        let csum_ok = meta.ip_csum.ok_or_else(|| ip.verify_checksum());
        if !csum_ok {
            c.inc(Counter::IpInCsumErrors);
            c.inc(Counter::IpInHdrErrors);
            return;
        }
        if !self.is_ours(ip.dst_addr()) {
            c.inc(Counter::IpInAddrErrors);
            return;
        }
        if ip.is_fragment() {
            c.inc(Counter::IpReasmFails);
            return;
        }
        if ip.has_options() {
            c.inc(Counter::IpInOptionsDropped);
            return;
        }
        let src = ip.src_addr();
        if src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            c.inc(Counter::IpInAddrErrors);
            return;
        }
        self.neighbors.learn(now, src, eth.src_addr());
        match ip.protocol() {
            IpProtocol::Icmp => self.icmp(eth, &ip, tx),
            IpProtocol::Udp => self.udp(now, eth, &ip, meta, tx),
            IpProtocol::Tcp => self.tcp(now, eth, ip, meta, tcp, tx),
            IpProtocol::Unknown(_) => {
                c.inc(Counter::IpInUnknownProtos);
                // RFC 1122 3.2.2.1: protocol unreachable, code 2.
                self.icmp_unreachable(now, eth, &ip, 2, tx);
            }
        }
    }

    fn icmp(&mut self, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, tx: &mut impl TxSink) {
        let c = &*self.counters;
        c.inc(Counter::IcmpInMsgs);
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            c.inc(Counter::IcmpInErrors);
            return;
        };
        if !icmp.verify_checksum() {
            c.inc(Counter::IcmpInErrors);
            return;
        }
        if icmp.msg_type() != Icmpv4Type::EchoRequest {
            return;
        }
        c.inc(Counter::IcmpInEchos);
        let icmp_len = ip.payload().len();
        let ip_len = ipv4::HEADER_LEN + icmp_len;
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let request = ip.payload();
        // Linux: the echo reply copies the TOS, has no DF and TTL 64.
        let ip_repr = Ipv4Repr {
            src_addr: ip.dst_addr(),
            dst_addr: ip.src_addr(),
            protocol: IpProtocol::Icmp,
            payload_len: icmp_len as u16,
            ttl: DEFAULT_TTL,
            ident: {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                self.ip_ident
            },
            dont_frag: false,
            tos: tos_of(ip),
        };
        let sent = tx.emit(ethernet::HEADER_LEN + ip_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv4);
            let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
            let _ = ip_repr.emit(l3);
            let reply = &mut l4[..icmp_len];
            reply.copy_from_slice(request);
            let mut m = Icmpv4Packet::new_unchecked(reply);
            let code = m.msg_code();
            m.echo_request_to_reply();
            // Linux's icmp_echo copies the request's code into the reply (nmap's
            // OS detection probes with code 9 to see this); RFC 792 says 0.
            if code != 0 {
                m.set_msg_code(code);
                m.fill_checksum();
            }
            TxFrame::done(ethernet::HEADER_LEN + ip_len)
        });
        if sent {
            c.inc(Counter::IcmpOutMsgs);
            c.inc(Counter::IcmpOutEchoReps);
            c.inc(Counter::TxFrames);
        }
    }

    fn udp(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, meta: RxMeta, tx: &mut impl TxSink) {
        let c = &*self.counters;
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            c.inc(Counter::RxMalformed);
            return;
        };
        let csum_ok = meta.l4_csum.ok_or_else(|| udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        if !csum_ok {
            c.inc(Counter::UdpInCsumErrors);
            return;
        }
        // No UDP sockets: every port is closed (Linux: __udp4_lib_rcv -> NoPorts + ICMP).
        c.inc(Counter::UdpNoPorts);
        self.icmp_unreachable(now, eth, ip, 3, tx);
    }

    fn tcp(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: Ipv4Packet<&[u8]>,
        meta: RxMeta,
        tcp: &mut impl TcpLayer,
        tx: &mut impl TxSink,
    ) {
        let c = &*self.counters;
        c.inc(Counter::TcpInSegs);
        let Ok(seg) = TcpSegment::new_checked(ip.payload()) else {
            c.inc(Counter::TcpInErrs);
            return;
        };
        let csum_ok = meta.l4_csum.ok_or_else(|| seg.verify_checksum(ip.src_addr(), ip.dst_addr()));
        if !csum_ok {
            // Linux counts both (tcp_v4_rcv: csum_error -> InCsumErrors, InErrs).
            c.inc(Counter::TcpInCsumErrors);
            c.inc(Counter::TcpInErrs);
            return;
        }
        let flags = seg.flags();
        // SYN with FIN or RST cannot come from a real TCP. Linux answers SYN|FIN
        // on a closed port with RST|ACK; we drop both silently, as FreeBSD's
        // drop_synfin does, so scanners learn nothing (see tests/oracle).
        if flags.contains(TcpFlags::SYN) && flags.intersects(TcpFlags::FIN | TcpFlags::RST) {
            c.inc(Counter::TcpInErrs);
            return;
        }
        let input = TcpInput { eth_src: eth.src_addr(), ip, seg, meta };
        let mut host = HostTx { mac: self.cfg.mac, counters: c, neighbors: &mut self.neighbors };
        if tcp.segment(now, &input, &mut host, tx) == Taken::Yes {
            return;
        }
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            c.inc(Counter::TcpSynNoListener);
        }
        send_reset(&input, self.cfg.mac, c, tx);
    }

    /// ICMP destination unreachable quoting the offending datagram, rate limited.
    fn icmp_unreachable(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        code: u8,
        tx: &mut impl TxSink,
    ) {
        let c = &*self.counters;
        let peer = ip.src_addr();
        if !self.icmp_limit.allow(now, peer) {
            c.inc(Counter::IcmpOutRateLimited);
            return;
        }
        let original = &eth.payload()[..usize::from(ip.total_len())];
        let quote_len = original.len().min(ICMP_ERROR_MAX - ipv4::HEADER_LEN - icmp::HEADER_LEN);
        let icmp_len = icmp::HEADER_LEN + quote_len;
        let ip_len = ipv4::HEADER_LEN + icmp_len;
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let ip_repr = Ipv4Repr {
            src_addr: ip.dst_addr(),
            dst_addr: peer,
            protocol: IpProtocol::Icmp,
            payload_len: icmp_len as u16,
            ttl: DEFAULT_TTL,
            ident: {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                self.ip_ident
            },
            dont_frag: false,
            tos: IPTOS_PREC_INTERNETCONTROL | (tos_of(ip) & IPTOS_TOS_MASK),
        };
        let sent = tx.emit(ethernet::HEADER_LEN + ip_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv4);
            let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
            let _ = ip_repr.emit(l3);
            let mut m = Icmpv4Packet::new_unchecked(&mut l4[..icmp_len]);
            m.set_msg_type(Icmpv4Type::DestUnreachable);
            m.set_msg_code(code);
            m.set_echo_ident(0); // the "unused" word of RFC 792
            m.set_echo_seq_no(0);
            m.data_mut().copy_from_slice(&original[..quote_len]);
            m.fill_checksum();
            TxFrame::done(ethernet::HEADER_LEN + ip_len)
        });
        if sent {
            c.inc(Counter::IcmpOutMsgs);
            c.inc(Counter::IcmpOutDestUnreachs);
            c.inc(Counter::TxFrames);
        }
    }
}

fn write_eth(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType) {
    let _ = ethernet::emit_header(buf, dst, src, ethertype);
}

/// The TOS byte of a received datagram (DSCP << 2 | ECN).
fn tos_of(ip: &Ipv4Packet<&[u8]>) -> u8 {
    (ip.dscp() << 2) | ip.ecn()
}

/// Answer a segment nobody takes, exactly as Linux's tcp_v4_send_reset:
/// never to an RST; if it carried ACK, RST with seq = its ack; otherwise
/// RST|ACK with seq 0 and ack = seq + SYN + FIN + payload. Window 0, no
/// options, TOS reflected, TTL 64, DF, IP ident 0.
pub fn send_reset(input: &TcpInput<'_>, mac: EthernetAddress, c: &Counters, tx: &mut impl TxSink) {
    let seg = &input.seg;
    let flags = seg.flags();
    if flags.contains(TcpFlags::RST) {
        return;
    }
    let (seq, ack, out_flags) = if flags.contains(TcpFlags::ACK) {
        (seg.ack_number(), 0, TcpFlags::RST)
    } else {
        let len = seg.payload().len() as u32
            + flags.contains(TcpFlags::SYN) as u32
            + flags.contains(TcpFlags::FIN) as u32;
        (0, seg.seq_number().wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
    };
    let (src, dst) = (input.ip.dst_addr(), input.ip.src_addr());
    let ip_repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Tcp,
        payload_len: tcp::HEADER_LEN as u16,
        ttl: DEFAULT_TTL,
        ident: 0,
        dont_frag: true,
        tos: tos_of(&input.ip),
    };
    let tcp_repr = TcpRepr {
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        seq_number: seq,
        ack_number: ack,
        flags: out_flags,
        window_len: 0,
    };
    let peer_mac = input.eth_src;
    const LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN;
    let sent = tx.emit(LEN, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        write_eth(l2, peer_mac, mac, EtherType::Ipv4);
        let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
        let _ = ip_repr.emit(l3);
        let l4 = &mut l4[..tcp::HEADER_LEN];
        let _ = tcp_repr.emit_header(l4, 0);
        TcpSegment::new_unchecked(l4).fill_checksum(src, dst);
        TxFrame::done(LEN)
    });
    if sent {
        c.inc(Counter::TcpOutSegs);
        c.inc(Counter::TcpOutRsts);
        c.inc(Counter::TxFrames);
    }
}

#[cfg(test)]
mod tests;
