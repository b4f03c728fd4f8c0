//! What differs between a flood over IPv4 and one over IPv6: address
//! arithmetic, the benchmarking range, the IP header and the checksum's
//! pseudo-header, and how a received frame is read. The generator, the
//! templates and the DPDK loop are written once over [`Family`] and
//! monomorphised, so the IPv4 path costs what it did before IPv6 existed.

use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Repr, NextHeader};
use std::fmt::{Debug, Display};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A socket address of one family (`SocketAddrV4` or `SocketAddrV6`).
pub trait Sock: Copy + Eq + Debug + Display + Send + Sync + 'static {
    type Ip: Family<Sock = Self>;
    fn from_parts(ip: Self::Ip, port: u16) -> Self;
    fn ip(&self) -> &Self::Ip;
    fn port(&self) -> u16;
    fn to_socket_addr(self) -> SocketAddr;
}

impl Sock for SocketAddrV4 {
    type Ip = Ipv4Addr;
    #[inline]
    fn from_parts(ip: Ipv4Addr, port: u16) -> Self {
        SocketAddrV4::new(ip, port)
    }
    #[inline]
    fn ip(&self) -> &Ipv4Addr {
        SocketAddrV4::ip(self)
    }
    #[inline]
    fn port(&self) -> u16 {
        SocketAddrV4::port(self)
    }
    fn to_socket_addr(self) -> SocketAddr {
        SocketAddr::V4(self)
    }
}

impl Sock for SocketAddrV6 {
    type Ip = Ipv6Addr;
    /// Flow label and scope 0: global addresses on one link.
    #[inline]
    fn from_parts(ip: Ipv6Addr, port: u16) -> Self {
        SocketAddrV6::new(ip, port, 0, 0)
    }
    #[inline]
    fn ip(&self) -> &Ipv6Addr {
        SocketAddrV6::ip(self)
    }
    #[inline]
    fn port(&self) -> u16 {
        SocketAddrV6::port(self)
    }
    fn to_socket_addr(self) -> SocketAddr {
        SocketAddr::V6(self)
    }
}

/// An address family a flood can be sent in (`Ipv4Addr` or `Ipv6Addr`).
pub trait Family: Copy + Eq + Debug + Display + Send + Sync + 'static {
    type Sock: Sock<Ip = Self>;
    /// Bits in an address.
    const BITS: u8;
    /// The benchmarking range, as printed.
    const BENCH_RANGE: &'static str;
    const ETHERTYPE: EtherType;
    /// The fixed IP header.
    const IP_HEADER_LEN: usize;
    /// Where the source address sits in the IP header.
    const IP_SRC: usize;
    /// An IP header checksum to keep (IPv4's; IPv6 has none).
    const IP_CSUM: bool;
    /// The MSS of our SYN on a 1500-byte MTU: 1500 minus the IP and TCP headers.
    const MSS: u16;
    /// Our default `--src` for this family.
    const DEFAULT_SRC: &'static str;
    /// Bytes of a flood SYN: Ethernet, IP and TCP with Linux's 20 bytes of options.
    const SYN_FRAME_LEN: usize = ETH + Self::IP_HEADER_LEN + crate::wire::tcp::HEADER_LEN + 20;

    fn from_ip(a: IpAddr) -> Option<Self>;
    fn to_ip(self) -> IpAddr;
    fn to_bits(self) -> u128;
    /// The address of `b`'s low [`Self::BITS`] bits.
    fn from_bits(b: u128) -> Self;
    /// True inside the benchmarking range (198.18.0.0/15, 2001:2::/48).
    fn in_bench_range(self) -> bool;
    /// `self + i`, wrapping.
    fn add(self, i: u32) -> Self;
    /// `self - base` when it fits in 32 bits.
    fn offset(self, base: Self) -> Option<u32>;
    /// Writes the address in network order at the start of `buf`.
    fn put(self, buf: &mut [u8]);
    /// The 16-bit words of the address summed (RFC 1071), unfolded.
    fn word_sum(self) -> u32;
    /// The pseudo-header's sum for a TCP segment of `len` bytes.
    fn pseudo_sum(src: Self, dst: Self, len: u16) -> u32;
    /// Writes the IP header of a TCP packet with `payload_len` bytes of TCP.
    fn emit_ip(buf: &mut [u8], src: Self, dst: Self, payload_len: u16, ident: u16) -> bool;
}

impl Family for Ipv4Addr {
    type Sock = SocketAddrV4;
    const BITS: u8 = 32;
    const BENCH_RANGE: &'static str = "198.18.0.0/15";
    const ETHERTYPE: EtherType = EtherType::Ipv4;
    const IP_HEADER_LEN: usize = ipv4::HEADER_LEN;
    const IP_SRC: usize = 12;
    const IP_CSUM: bool = true;
    const MSS: u16 = 1460;
    const DEFAULT_SRC: &'static str = "198.18.1.0/24";

    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
    fn to_bits(self) -> u128 {
        u128::from(u32::from(self))
    }
    fn from_bits(b: u128) -> Self {
        Ipv4Addr::from(b as u32)
    }
    fn in_bench_range(self) -> bool {
        in_bench_range(self)
    }
    #[inline]
    fn add(self, i: u32) -> Self {
        Ipv4Addr::from(u32::from(self).wrapping_add(i))
    }
    #[inline]
    fn offset(self, base: Self) -> Option<u32> {
        Some(u32::from(self).wrapping_sub(u32::from(base)))
    }
    #[inline]
    fn put(self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.octets());
    }
    #[inline]
    fn word_sum(self) -> u32 {
        let a = u32::from(self);
        (a >> 16) + (a & 0xffff)
    }
    fn pseudo_sum(src: Self, dst: Self, len: u16) -> u32 {
        checksum::pseudo_header_ipv4(src.octets(), dst.octets(), 6, len)
    }
    fn emit_ip(buf: &mut [u8], src: Self, dst: Self, payload_len: u16, ident: u16) -> bool {
        let ip = Ipv4Repr { src_addr: src, dst_addr: dst, protocol: IpProtocol::Tcp, payload_len, ttl: 64, ident, dont_frag: true, tos: 0 };
        ip.emit(buf).is_ok()
    }
}

/// RFC 2544's benchmarking range, the only IPv4 addresses dlisten floods.
pub const BENCH_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
pub const BENCH_PREFIX: u8 = 15;

/// True when `a` is in 198.18.0.0/15.
pub fn in_bench_range(a: Ipv4Addr) -> bool {
    u32::from(a) >> (32 - BENCH_PREFIX) == u32::from(BENCH_NET) >> (32 - BENCH_PREFIX)
}

/// 2001:2::/48 (RFC 5180), as its top 48 bits.
const BENCH6_NET: u128 = 0x2001_0002_0000 << 80;

impl Family for Ipv6Addr {
    type Sock = SocketAddrV6;
    const BITS: u8 = 128;
    const BENCH_RANGE: &'static str = "2001:2::/48";
    const ETHERTYPE: EtherType = EtherType::Ipv6;
    const IP_HEADER_LEN: usize = ipv6::HEADER_LEN;
    const IP_SRC: usize = 8;
    const IP_CSUM: bool = false;
    const MSS: u16 = 1440;
    /// 255 sources: each one is a neighbour entry on the target (Linux's
    /// gc_thresh3 is 1024 by default).
    const DEFAULT_SRC: &'static str = "2001:2:0:1::/120";

    fn from_ip(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
    fn to_bits(self) -> u128 {
        u128::from(self)
    }
    fn from_bits(b: u128) -> Self {
        Ipv6Addr::from(b)
    }
    fn in_bench_range(self) -> bool {
        u128::from(self) >> 80 == BENCH6_NET >> 80
    }
    #[inline]
    fn add(self, i: u32) -> Self {
        Ipv6Addr::from(u128::from(self).wrapping_add(u128::from(i)))
    }
    #[inline]
    fn offset(self, base: Self) -> Option<u32> {
        u32::try_from(u128::from(self).wrapping_sub(u128::from(base))).ok()
    }
    #[inline]
    fn put(self, buf: &mut [u8]) {
        buf[..16].copy_from_slice(&self.octets());
    }
    #[inline]
    fn word_sum(self) -> u32 {
        let a = u128::from(self);
        (0..8).map(|i| ((a >> (16 * i)) & 0xffff) as u32).sum()
    }
    fn pseudo_sum(src: Self, dst: Self, len: u16) -> u32 {
        ipv6::pseudo_header(&src, &dst, 6, u32::from(len))
    }
    /// Hop limit 64, traffic class and flow label 0 (a Linux client's
    /// defaults, `auto_flowlabels` aside), no extension headers.
    fn emit_ip(buf: &mut [u8], src: Self, dst: Self, payload_len: u16, _ident: u16) -> bool {
        let ip = Ipv6Repr { src_addr: src, dst_addr: dst, next_header: NextHeader::Tcp, payload_len, hop_limit: 64, traffic_class: 0, flow_label: 0 };
        ip.emit(buf).is_ok()
    }
}

/// Fills the TCP checksum of `seg` (the whole segment) sent from `src` to `dst`.
pub fn fill_tcp_checksum<A: Family>(seg: &mut [u8], src: A, dst: A) {
    seg[16..18].fill(0);
    let ph = A::pseudo_sum(src, dst, seg.len() as u16);
    let csum = !checksum::fold(checksum::combine(ph, checksum::sum(seg)));
    seg[16..18].copy_from_slice(&csum.to_be_bytes());
}

/// The frame offset of the IP header.
pub const ETH: usize = ethernet::HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_arithmetic() {
        let a: Ipv6Addr = "2001:2:0:1::ffff:ffff".parse().unwrap();
        assert_eq!(a.add(1), "2001:2:0:1:0:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(a.add(1).offset(a), Some(1));
        assert_eq!(a.offset(a.add(1)), None, "below the base");
        let b: Ipv6Addr = "2001:2:0:2::".parse().unwrap();
        assert_eq!(b.offset(a), None, "more than 32 bits apart");
        let v4 = Ipv4Addr::new(198, 18, 255, 255);
        assert_eq!(v4.add(1), Ipv4Addr::new(198, 19, 0, 0));
        assert_eq!(Ipv6Addr::from_bits(a.to_bits()), a);
    }

    #[test]
    fn bench_range_is_2001_2_slash_48() {
        for (a, inside) in [("2001:2::", true), ("2001:2:0:ffff:ffff:ffff:ffff:ffff", true), ("2001:2:1::", false), ("2001:db8::1", false), ("::1", false)] {
            assert_eq!(a.parse::<Ipv6Addr>().unwrap().in_bench_range(), inside, "{a}");
        }
    }

    #[test]
    fn word_sums_are_the_checksum_of_the_address() {
        let a: Ipv6Addr = "2001:2:0:1:ffff:8000:1234:fffe".parse().unwrap();
        assert_eq!(checksum::fold(a.word_sum()), checksum::fold(checksum::sum(&a.octets())));
        let v4 = Ipv4Addr::new(198, 18, 255, 254);
        assert_eq!(checksum::fold(v4.word_sum()), checksum::fold(checksum::sum(&v4.octets())));
    }
}
