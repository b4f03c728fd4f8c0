//! Host behaviour: what a Linux host answers before any socket is involved.
//!
//! ARP for our addresses, ICMP echo, ICMP port/protocol unreachable (rate
//! limited as Linux does), RST for TCP segments nobody takes, and silent
//! drops for bad checksums and impossible segments; IPv6 beside it
//! ([`ipv6`], [`ndisc`]). Every answer was checked
//! against Linux 6.18 (tests/oracle/closed_port.sh): field values below say
//! "Linux" where they copy it.

mod arp;
mod icmp;
pub mod icmp_limit;
pub mod ipv6;
mod ndisc;
pub mod neighbor;
mod plain_tcp;
mod reset;

pub use plain_tcp::PlainCount;
pub use reset::send_reset;

use icmp_limit::IcmpRateLimiter;
use neighbor::NeighborTable;
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Counters};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use crate::wire;
use crate::wire::ipv4::{IpProtocol, Ipv4Packet, HEADER_LEN as IP_HEADER_LEN};
use crate::wire::ipv4_options;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::tcp::{TcpFlags, TcpSegment, HEADER_LEN as TCP_HEADER_LEN};
use crate::wire::udp::UdpPacket;
use crate::wire::ethernet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// TTL of everything we originate (Linux: net.ipv4.ip_default_ttl).
pub const DEFAULT_TTL: u8 = 64;
/// Linux quotes the offending datagram so that the ICMP error fits in 576 bytes.
pub const ICMP_ERROR_MAX: usize = 576;

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
    /// UTC in milliseconds at engine time zero (the IP timestamp option
    /// carries the time of day; the engine reads no clock).
    pub utc_ms_at_zero: u64,
}

impl HostConfig {
    /// Milliseconds since midnight UTC at `now` (RFC 791's timestamp).
    pub fn utc_ms_since_midnight(&self, now: Instant) -> u32 {
        ((self.utc_ms_at_zero + now.as_millis()) % 86_400_000) as u32
    }
}

/// A TCP segment addressed to us, with its IP context, as the host hands
/// it to the TCP layer.
pub struct TcpInput<'a> {
    pub eth_src: EthernetAddress,
    pub ip: IpHeader<'a>,
    pub seg: TcpSegment<&'a [u8]>,
    pub meta: RxMeta,
}

/// The IP header a TCP segment came in: what the TCP layer reads of it
/// (addresses, ECN, and IPv4's options, which a reply echoes).
#[derive(Clone, Debug)]
pub enum IpHeader<'a> {
    V4(Ipv4Packet<&'a [u8]>),
    /// The IPv6 header and the offset of the TCP header in the packet
    /// (after any extension headers).
    V6(Ipv6Packet<&'a [u8]>, usize),
}

impl<'a> IpHeader<'a> {
    /// IPv4 with options (IPv6 extension headers are never echoed).
    #[inline(always)]
    pub fn has_options(&self) -> bool {
        match self {
            IpHeader::V4(ip) => ip.has_options(),
            IpHeader::V6(..) => false,
        }
    }

    /// The ECN field (IPv4 TOS or IPv6 traffic class, low two bits).
    #[inline(always)]
    pub fn ecn(&self) -> u8 {
        match self {
            IpHeader::V4(ip) => ip.ecn(),
            IpHeader::V6(ip, _) => ip.traffic_class() & 0x03,
        }
    }

    /// The IPv4 header, for an IPv4 segment.
    #[inline(always)]
    pub fn v4(&self) -> Option<&Ipv4Packet<&'a [u8]>> {
        match self {
            IpHeader::V4(ip) => Some(ip),
            IpHeader::V6(..) => None,
        }
    }

    pub fn is_v6(&self) -> bool {
        matches!(self, IpHeader::V6(..))
    }

    /// The peer's address (the packet's source).
    pub fn src_addr(&self) -> std::net::IpAddr {
        match self {
            IpHeader::V4(ip) => ip.src_addr().into(),
            IpHeader::V6(ip, _) => ip.src_addr().into(),
        }
    }

    /// The bytes of the IP packet (header onwards).
    pub fn into_inner(self) -> &'a [u8] {
        match self {
            IpHeader::V4(ip) => ip.into_inner(),
            IpHeader::V6(ip, _) => ip.into_inner(),
        }
    }
}

/// The TCP layer above the host. `None` means "no socket took it": the host
/// answers as Linux does for a closed port.
pub trait TcpLayer {
    fn segment(&mut self, now: Instant, input: &TcpInput<'_>, host: &mut HostTx<'_>, tx: &mut impl TxSink) -> Taken;

    /// Send what the layer decided but has not built yet (the SYN-ACKs of a burst).
    fn flush(&mut self, _counters: &Counters, _tx: &mut impl TxSink) {}
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
    v6: ipv6::Ipv6Identity,
    neighbors6: NeighborTable<Ipv6Addr>,
}

impl Host {
    pub fn new(cfg: HostConfig, counters: Arc<Counters>) -> Host {
        Host {
            cfg,
            counters,
            neighbors: NeighborTable::default(),
            icmp_limit: IcmpRateLimiter::new(),
            ip_ident: 1,
            v6: ipv6::Ipv6Identity::default(),
            neighbors6: NeighborTable::default(),
        }
    }

    /// Our IPv6 addresses (none: IPv6 frames are counted and dropped).
    pub fn with_ipv6(mut self, addrs: Vec<Ipv6Addr>) -> Host {
        self.v6 = ipv6::Ipv6Identity::new(addrs);
        self
    }

    pub fn ipv6_identity(&self) -> &ipv6::Ipv6Identity {
        &self.v6
    }

    pub fn neighbors6(&self) -> &NeighborTable<Ipv6Addr> {
        &self.neighbors6
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

    /// Handle one received frame; answers go to `tx`. The whole receive
    /// path for one frame: [`Host::parse`], the TCP layer, and the closed
    /// port's RST when no socket took the segment.
    pub fn rx(&mut self, now: Instant, frame: &[u8], meta: RxMeta, tcp: &mut impl TcpLayer, tx: &mut impl TxSink) {
        let Some(input) = self.parse(now, frame, meta, tx) else { return };
        let mut host = HostTx { mac: self.cfg.mac, counters: &self.counters, neighbors: &mut self.neighbors };
        if tcp.segment(now, &input, &mut host, tx) == Taken::NoSocket {
            self.no_socket(now, &input, tx);
        }
        tcp.flush(&self.counters, tx);
    }

    /// The host's part of receiving a frame: Ethernet, ARP, IPv4, ICMP, UDP
    /// and the TCP header's checks. What the host answers goes to `tx`; a
    /// TCP segment for us is returned for the TCP layer.
    pub fn parse<'a>(&mut self, now: Instant, frame: &'a [u8], meta: RxMeta, tx: &mut impl TxSink) -> Option<TcpInput<'a>> {
        let c = &*self.counters;
        c.inc(Counter::RxFrames);
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            c.inc(Counter::RxMalformed);
            return None;
        };
        let dst = eth.dst_addr();
        if dst != self.cfg.mac && !dst.is_broadcast() && !self.v6.multicast_macs().contains(&dst) {
            c.inc(Counter::RxOtherHost);
            return None;
        }
        match eth.ethertype() {
            EtherType::Arp => {
                self.arp(now, &eth, tx);
                None
            }
            EtherType::Ipv4 => self.ipv4(now, eth, meta, tx),
            EtherType::Ipv6 if !self.v6.addrs.is_empty() => self.ipv6(now, &eth, meta, tx),
            _ => {
                c.inc(Counter::RxUnknownEthertype);
                None
            }
        }
    }

    /// A TCP segment no socket took: Linux's closed port (`tcp_v4_send_reset`,
    /// `tcp_v6_send_reset`).
    pub fn no_socket(&self, now: Instant, input: &TcpInput<'_>, tx: &mut impl TxSink) {
        let c = &*self.counters;
        let flags = input.seg.flags();
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            c.inc(Counter::TcpSynNoListener);
        }
        send_reset(input, self.cfg.mac, self.cfg.utc_ms_since_midnight(now), c, tx);
    }

    /// `ip_rcv` and the protocol demux.
    fn ipv4<'a>(&mut self, now: Instant, eth: EthernetFrame<&'a [u8]>, meta: RxMeta, tx: &mut impl TxSink) -> Option<TcpInput<'a>> {
        let c = &*self.counters;
        c.inc(Counter::IpInReceives);
        let ip = match Ipv4Packet::new_checked(eth.payload()) {
            Ok(ip) => ip,
            Err(e) => {
                // ip_rcv_core: a whole header whose total length runs past
                // the frame is a truncated packet, any other fault a header error.
                c.inc(if ip_truncated(eth.payload(), e) { Counter::IpInTruncatedPkts } else { Counter::IpInHdrErrors });
                return None;
            }
        };
        let csum_ok = meta.ip_csum.ok_or_else(|| ip.verify_checksum());
        if !csum_ok {
            c.inc(Counter::IpInCsumErrors);
            c.inc(Counter::IpInHdrErrors);
            return None;
        }
        if !self.is_ours(ip.dst_addr()) {
            c.inc(Counter::IpInAddrErrors);
            return None;
        }
        let src = ip.src_addr();
        if src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            c.inc(Counter::IpInMartianSrc);
            return None;
        }
        if ip.has_options() && !self.ip_options(now, &eth, &ip, tx) {
            return None;
        }
        let c = &*self.counters;
        if ip.is_fragment() {
            c.inc(Counter::IpReasmFails);
            return None;
        }
        match ip.protocol() {
            IpProtocol::Icmp => self.icmp(now, &eth, &ip, tx),
            IpProtocol::Udp => self.udp(now, &eth, &ip, meta, tx),
            IpProtocol::Tcp => return self.tcp(&eth, ip, meta),
            IpProtocol::Unknown(_) => {
                c.inc(Counter::IpInUnknownProtos);
                // RFC 1122 3.2.2.1: protocol unreachable, code 2.
                self.icmp_unreachable(now, &eth, &ip, 2, tx);
            }
        }
        None
    }

    /// `ip_rcv_options`: malformed options get a parameter problem and
    /// count as header errors; a source route is dropped while
    /// `accept_source_route` is 0 (Linux's default, and ours: there is no
    /// forwarding here). Record route, timestamp, router alert and the
    /// rest go on to delivery. True when the datagram goes on.
    // Off the TCP receive path's inlined code (the SYN path stays small).
    #[inline(never)]
    fn ip_options(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, tx: &mut impl TxSink) -> bool {
        let addrs = &self.cfg.addrs;
        match ipv4_options::compile(ip.options(), |a| addrs.contains(&Ipv4Addr::from(a)), false) {
            Err(e) => {
                self.counters.inc(Counter::IpInHdrErrors);
                self.icmp_param_problem(now, eth, ip, e.pointer, tx);
                false
            }
            Ok(o) if o.srr.is_some() => {
                self.counters.inc(Counter::IpInOptionsDropped);
                false
            }
            Ok(_) => true,
        }
    }

    // Off the TCP receive path's inlined code (the SYN path stays small).
    #[inline(never)]
    fn udp(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, meta: RxMeta, tx: &mut impl TxSink) {
        let c = &*self.counters;
        // __udp4_lib_rcv: every drop counts InErrors, a bad checksum InCsumErrors too.
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            c.inc(Counter::RxMalformed);
            c.inc(Counter::UdpInErrors);
            return;
        };
        let csum_ok = meta.l4_csum.ok_or_else(|| udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        if !csum_ok {
            c.inc(Counter::UdpInCsumErrors);
            c.inc(Counter::UdpInErrors);
            return;
        }
        // No UDP sockets: every port is closed (Linux: __udp4_lib_rcv -> NoPorts + ICMP).
        c.inc(Counter::UdpNoPorts);
        self.icmp_unreachable(now, eth, ip, 3, tx);
    }

    /// The TCP header's checks (`tcp_v4_rcv` before the socket lookup).
    fn tcp<'a>(&self, eth: &EthernetFrame<&'a [u8]>, ip: Ipv4Packet<&'a [u8]>, meta: RxMeta) -> Option<TcpInput<'a>> {
        let c = &*self.counters;
        c.inc(Counter::TcpInSegs);
        let Ok(seg) = TcpSegment::new_checked(ip.payload()) else {
            // tcp_v4_rcv: a data offset below 5 is a bad packet (InErrs); a
            // segment shorter than 20 bytes or than its header is discarded
            // without a count.
            let p = ip.payload();
            if p.len() >= TCP_HEADER_LEN && usize::from(TcpSegment::new_unchecked(p).header_len()) < TCP_HEADER_LEN {
                c.inc(Counter::TcpInErrs);
            }
            return None;
        };
        let csum_ok = meta.l4_csum.ok_or_else(|| seg.verify_checksum(ip.src_addr(), ip.dst_addr()));
        if !csum_ok {
            // Linux counts both (tcp_v4_rcv: csum_error -> InCsumErrors, InErrs).
            c.inc(Counter::TcpInCsumErrors);
            c.inc(Counter::TcpInErrs);
            return None;
        }
        // SYN|FIN and SYN|RST go on to the socket lookup as in Linux: a
        // closed port answers SYN|FIN with RST|ACK (tcp_v4_send_reset), a
        // listener discards it (tcp_rcv_state_process, TCP_LISTEN).
        Some(TcpInput { eth_src: eth.src_addr(), ip: IpHeader::V4(ip), seg, meta })
    }
}

/// Whether `new_checked` failed only because the total length runs past
/// the buffer (the header itself is whole and sane).
fn ip_truncated(buf: &[u8], e: wire::Error) -> bool {
    if e != wire::Error::Truncated || buf.len() < IP_HEADER_LEN {
        return false;
    }
    let ip = Ipv4Packet::new_unchecked(buf);
    let header_len = usize::from(ip.header_len());
    ip.version() == 4 && header_len >= IP_HEADER_LEN && buf.len() >= header_len && usize::from(ip.total_len()) >= header_len
}

fn write_eth(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ethertype: EtherType) {
    let _ = ethernet::emit_header(buf, dst, src, ethertype);
}

#[cfg(test)]
mod tests;
