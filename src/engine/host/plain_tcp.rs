//! The plain TCP segment: what nearly every frame of a server is, recognised
//! with a few loads at fixed offsets so that it skips the host's general
//! receive path. A frame is plain when that path would hand it to TCP with
//! no other effect than counting it (RxFrames, IpInReceives or
//! Ip6InReceives and Ip6InDelivers, TcpInSegs): Ethernet to our MAC, IPv4
//! without options or fragmentation or IPv6 without extension headers, to
//! one of our addresses from a unicast source, the checksums right
//! (verified by the NIC, else here), and a whole TCP header. Anything else
//! takes [`Host::parse`]. A plain SYN (SYN alone, reserved bits clear, no
//! data) is what the SYN lane takes.

use super::{CsumStatus, Host, IpHeader, RxMeta, TcpInput};
use crate::wire::ethernet::{self, EthernetAddress};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, TcpSegment};
use std::net::{Ipv4Addr, Ipv6Addr};

const ETH: usize = ethernet::HEADER_LEN;
const TCP_AT: usize = ETH + ipv4::HEADER_LEN;
/// Ethernet, IPv4 without options, the fixed TCP header.
const MIN_LEN: usize = TCP_AT + tcp::HEADER_LEN;
const TCP6_AT: usize = ETH + ipv6::HEADER_LEN;
/// Ethernet, IPv6 without extension headers, the fixed TCP header.
const MIN_LEN6: usize = TCP6_AT + tcp::HEADER_LEN;

/// Plain segments taken from a burst, per family, for [`Host::count_plain`].
#[derive(Clone, Copy, Default, Debug)]
pub struct PlainCount {
    /// Taken by [`Host::plain_tcp`].
    pub v4: u64,
    /// Taken by [`Host::plain_tcp6`].
    pub v6: u64,
}

impl Host {
    /// The TCP input of a plain IPv4 segment and whether it is a plain
    /// SYN, or `None` for any other frame. Counts nothing: the caller adds
    /// [`Host::count_plain`] for what it took.
    #[inline]
    pub fn plain_tcp<'a>(&self, frame: &'a [u8], meta: RxMeta) -> Option<(TcpInput<'a>, bool)> {
        if meta.ip_csum == CsumStatus::Bad || meta.l4_csum == CsumStatus::Bad {
            return None;
        }
        let f: &[u8; MIN_LEN] = frame.get(..MIN_LEN)?.try_into().ok()?;
        // Our MAC, IPv4, version 4 with a 20-byte header, no MF and no
        // fragment offset (DF is fine), TCP.
        if f[..6] != self.cfg.mac.0 || f[12..14] != [0x08, 0x00] || f[ETH] != 0x45 {
            return None;
        }
        if f[ETH + 6] & 0x3f != 0 || f[ETH + 7] != 0 || f[ETH + 9] != 6 {
            return None;
        }
        // A TCP header within the IPv4 total length, itself within the frame.
        let total = usize::from(u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]));
        let tcp_len = usize::from(f[TCP_AT + 12] >> 4) * 4;
        if tcp_len < tcp::HEADER_LEN || total < ipv4::HEADER_LEN + tcp_len || frame.len() < ETH + total {
            return None;
        }
        // SYN alone, reserved bits clear, no data.
        let syn = f[TCP_AT + 12] & 0x0f == 0 && f[TCP_AT + 13] == 0x02 && total == ipv4::HEADER_LEN + tcp_len;
        let dst = Ipv4Addr::from([f[ETH + 16], f[ETH + 17], f[ETH + 18], f[ETH + 19]]);
        let src = Ipv4Addr::from([f[ETH + 12], f[ETH + 13], f[ETH + 14], f[ETH + 15]]);
        if !self.is_ours(dst) || src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            return None;
        }
        // What the NIC did not verify is verified here, as the general path
        // would; a failure is left to it (it counts the error).
        let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
        let seg = TcpSegment::new_unchecked(&frame[TCP_AT..ETH + total]);
        if meta.ip_csum == CsumStatus::Unknown && !ip.verify_checksum() {
            return None;
        }
        if meta.l4_csum == CsumStatus::Unknown && !seg.verify_checksum(src, dst) {
            return None;
        }
        let input = TcpInput {
            eth_src: EthernetAddress([f[6], f[7], f[8], f[9], f[10], f[11]]),
            ip: IpHeader::V4(ip),
            seg,
            meta,
        };
        Some((input, syn))
    }

    /// [`Host::plain_tcp`] for an IPv6 frame to our MAC: `ipv6_rcv` with
    /// TCP as the first next header (no extension header to walk), to one
    /// of our addresses, then `tcp_v6_rcv`'s header and checksum checks.
    /// A v4-mapped source is left to the general path (the listen path
    /// drops it as a header error).
    // Its own call: the IPv4 check stays as small as it was.
    #[inline(never)]
    pub fn plain_tcp6<'a>(&self, frame: &'a [u8], meta: RxMeta) -> Option<(TcpInput<'a>, bool)> {
        if meta.l4_csum == CsumStatus::Bad {
            return None;
        }
        let f: &[u8; MIN_LEN6] = frame.get(..MIN_LEN6)?.try_into().ok()?;
        // Our MAC, IPv6, version 6, next header TCP.
        if f[..6] != self.cfg.mac.0 || f[12..14] != [0x86, 0xdd] || f[ETH] >> 4 != 6 || f[ETH + 6] != 6 {
            return None;
        }
        let payload = usize::from(u16::from_be_bytes([f[ETH + 4], f[ETH + 5]]));
        let tcp_len = usize::from(f[TCP6_AT + 12] >> 4) * 4;
        if tcp_len < tcp::HEADER_LEN || payload < tcp_len || frame.len() < TCP6_AT + payload {
            return None;
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&f[at..at + 8]);
            u64::from_be_bytes(b)
        };
        // ip6_rcv_core's source checks (multicast ff00::/8, loopback ::1),
        // a v4-mapped source; the destination one of our unicast addresses.
        let (src_hi, src_lo) = (u64_at(ETH + 8), u64_at(ETH + 16));
        if src_hi >> 56 == 0xff || (src_hi == 0 && (src_lo == 1 || src_lo >> 32 == 0xffff)) {
            return None;
        }
        if !self.v6.is_ours_word(u128::from(u64_at(ETH + 24)) << 64 | u128::from(u64_at(ETH + 32))) {
            return None;
        }
        let tcp_bytes = &frame[TCP6_AT..TCP6_AT + payload];
        if meta.l4_csum == CsumStatus::Unknown && !tcp6_checksum_ok(f, tcp_bytes) {
            return None;
        }
        let ip = Ipv6Packet::new_unchecked(&frame[ETH..TCP6_AT + payload]);
        let seg = TcpSegment::new_unchecked(tcp_bytes);
        let syn = f[TCP6_AT + 12] & 0x0f == 0 && f[TCP6_AT + 13] == 0x02 && payload == tcp_len;
        let input = TcpInput {
            eth_src: EthernetAddress([f[6], f[7], f[8], f[9], f[10], f[11]]),
            ip: IpHeader::V6(ip, ipv6::HEADER_LEN),
            seg,
            meta,
        };
        Some((input, syn))
    }

    /// Count the plain segments taken as the general path would have.
    #[inline]
    pub fn count_plain(&self, n: PlainCount) {
        use crate::stats::Counter;
        let c = &*self.counters;
        if n.v4 != 0 {
            c.add(Counter::RxFrames, n.v4);
            c.add(Counter::IpInReceives, n.v4);
            c.add(Counter::TcpInSegs, n.v4);
        }
        if n.v6 != 0 {
            c.add(Counter::RxFrames, n.v6);
            c.add(Counter::Ip6InReceives, n.v6);
            c.add(Counter::Ip6InDelivers, n.v6);
            c.add(Counter::TcpInSegs, n.v6);
        }
    }
}

/// The TCP checksum over IPv6, when the NIC did not verify it: a call of
/// its own, so the check's common path saves no registers for it.
#[inline(never)]
fn tcp6_checksum_ok(f: &[u8; MIN_LEN6], tcp: &[u8]) -> bool {
    let addr = |at: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&f[at..at + 16]);
        Ipv6Addr::from(b)
    };
    ipv6::verify_upper_layer(&addr(ETH + 8), &addr(ETH + 24), 6, tcp)
}
