//! The address space a flood draws from: a source prefix inside the
//! benchmarking range, a source-port range, and the rule that a flood only
//! sends to and from 198.18.0.0/15 (RFC 2544) or 2001:2::/48 (RFC 5180).

use super::family::{Family, Sock};
use std::net::{IpAddr, SocketAddr};
use thiserror::Error;

pub use super::family::{in_bench_range, BENCH_NET, BENCH_PREFIX};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("{0}: not an address prefix (expected e.g. 198.18.1.0/24, 198.18.1.7, 2001:2:0:1::/120 or 2001:2:0:1::7)")]
    BadPrefix(String),
    #[error("{0} is outside 198.18.0.0/15: dlisten flood only sends to and from the benchmarking range (RFC 2544)")]
    OutsideBenchRange(String),
    #[error("{0} is outside 2001:2::/48: dlisten flood only sends to and from the IPv6 benchmarking range (RFC 5180)")]
    OutsideBenchRange6(String),
    #[error("--dst {0} lies inside --src {1}: the target cannot be one of our source addresses")]
    DstInSource(IpAddr, String),
    #[error("--src {src} and --dst {dst} are of different address families: both IPv4 or both IPv6")]
    MixedFamilies { src: String, dst: SocketAddr },
    #[error("{0}: expected LOW-HIGH source ports with 1 <= LOW <= HIGH")]
    BadPortRange(String),
}

/// The error for `what` outside `A`'s benchmarking range.
fn outside_bench_range<A: Family>(what: String) -> AddrError {
    if A::BITS == 128 {
        AddrError::OutsideBenchRange6(what)
    } else {
        AddrError::OutsideBenchRange(what)
    }
}

/// Refuse a target outside the benchmarking range.
pub fn check_dst<S: Sock>(dst: S) -> Result<S, AddrError> {
    if dst.ip().in_bench_range() {
        Ok(dst)
    } else {
        Err(outside_bench_range::<S::Ip>(dst.to_string()))
    }
}

/// Most source addresses one prefix gives: an index is 32 bits.
pub const MAX_SOURCES: u64 = u32::MAX as u64;

/// The source addresses: a prefix's host addresses. IPv4 leaves out the
/// network and broadcast addresses below /31, as a real subnet would; IPv6
/// leaves out the subnet-router anycast address (RFC 4291 §2.6.1) below
/// /127 and takes at most the first 2^32 - 1 hosts of a larger prefix
/// (the low bits vary, which is what RSS hashes on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrcRange<A: Family> {
    first: A,
    len: u32,
}

impl<A: Family> SrcRange<A> {
    /// `198.18.1.0/24` or a single `198.18.1.7` (or `2001:2:0:1::/120`,
    /// `2001:2:0:1::7`); the whole prefix must lie inside the benchmarking
    /// range. An address of the other family is [`AddrError::BadPrefix`].
    pub fn parse(s: &str) -> Result<SrcRange<A>, AddrError> {
        let bad = || AddrError::BadPrefix(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, A::BITS),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let addr = A::from_ip(addr).ok_or_else(bad)?;
        if len > A::BITS {
            return Err(bad());
        }
        let host_bits = u32::from(A::BITS - len);
        let mask = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
        let net = A::from_bits(addr.to_bits() & mask);
        // The last address too: a prefix shorter than the range's spills out.
        let last = A::from_bits(addr.to_bits() | !mask);
        if !net.in_bench_range() || !last.in_bench_range() {
            return Err(outside_bench_range::<A>(s.to_string()));
        }
        let size = if host_bits >= 64 { u64::MAX } else { 1u64 << host_bits };
        let (first, count) = match (A::BITS, size > 2) {
            (32, true) => (net.add(1), size - 2),
            (_, true) => (net.add(1), size - 1),
            (_, false) => (net, size),
        };
        Ok(SrcRange { first, len: count.min(MAX_SOURCES) as u32 })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> A {
        self.first
    }

    /// The `i`-th address (`i < len`).
    pub fn nth(&self, i: u32) -> A {
        self.first.add(i % self.len.max(1))
    }

    /// The `i`-th address for an `i` known to be below `len`.
    #[inline]
    pub fn addr_at(&self, i: u32) -> A {
        self.first.add(i)
    }

    /// Position of `a` in the range, if it is one of ours.
    #[inline]
    pub fn index_of(&self, a: A) -> Option<u32> {
        let off = a.offset(self.first)?;
        (off < self.len).then_some(off)
    }

    pub fn contains(&self, a: A) -> bool {
        self.index_of(a).is_some()
    }

    /// Whether `a`, of either family, is one of ours.
    pub fn contains_ip(&self, a: IpAddr) -> bool {
        A::from_ip(a).is_some_and(|a| self.contains(a))
    }
}

/// `1024-65535`, or a single port.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), AddrError> {
    let bad = || AddrError::BadPortRange(s.to_string());
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// Source range and target checked together.
pub fn check_all<S: Sock>(dst: S, src: &str, src_range: &SrcRange<S::Ip>) -> Result<(), AddrError> {
    check_dst(dst)?;
    if src_range.contains(*dst.ip()) {
        return Err(AddrError::DstInSource(dst.ip().to_ip(), src.to_string()));
    }
    Ok(())
}

/// `--src` parsed in the family of `--dst`: an address of the other
/// family is [`AddrError::MixedFamilies`], not a bad prefix.
pub fn parse_src<A: Family>(src: &str, dst: SocketAddr) -> Result<SrcRange<A>, AddrError> {
    SrcRange::parse(src).map_err(|e| match (e, src.split('/').next().and_then(|a| a.trim().parse::<IpAddr>().ok())) {
        (AddrError::BadPrefix(_), Some(a)) if A::from_ip(a).is_none() => AddrError::MixedFamilies { src: src.to_string(), dst },
        (e, _) => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    type V4 = SrcRange<Ipv4Addr>;
    type V6 = SrcRange<Ipv6Addr>;

    #[test]
    fn bench_range_is_198_18_slash_15() {
        assert!(in_bench_range(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(in_bench_range(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!in_bench_range(Ipv4Addr::new(198, 20, 0, 1)));
        assert!(!in_bench_range(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!in_bench_range(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn prefix_hosts_leave_out_network_and_broadcast() {
        let r = V4::parse("198.18.1.0/24").unwrap();
        assert_eq!(r.len(), 254);
        assert_eq!(r.first(), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(r.nth(253), Ipv4Addr::new(198, 18, 1, 254));
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 1, 10)), Some(9));
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 1, 255)), None);
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 0, 1)), None);
        let one = V4::parse("198.18.1.7").unwrap();
        assert_eq!((one.len(), one.first()), (1, Ipv4Addr::new(198, 18, 1, 7)));
        let pair = V4::parse("198.18.1.6/31").unwrap();
        assert_eq!((pair.len(), pair.first()), (2, Ipv4Addr::new(198, 18, 1, 6)));
    }

    #[test]
    fn addresses_outside_the_bench_range_are_refused() {
        assert!(matches!(V4::parse("10.0.0.0/24"), Err(AddrError::OutsideBenchRange(_))));
        assert!(matches!(V4::parse("198.18.0.0/14"), Err(AddrError::OutsideBenchRange(_))));
        assert!(matches!(V4::parse("198.20.0.1"), Err(AddrError::OutsideBenchRange(_))));
        assert!(V4::parse("198.18.0.0/15").is_ok());
        assert!(matches!(V4::parse("198.18.1.0/33"), Err(AddrError::BadPrefix(_))));
        assert!(matches!(V4::parse("nonsense"), Err(AddrError::BadPrefix(_))));
        let dst: SocketAddrV4 = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(check_dst(dst), Err(AddrError::OutsideBenchRange(_))));
        let dst: SocketAddrV4 = "198.18.1.5:80".parse().unwrap();
        let r = V4::parse("198.18.1.0/24").unwrap();
        assert!(matches!(check_all(dst, "198.18.1.0/24", &r), Err(AddrError::DstInSource(..))));
        let dst: SocketAddrV4 = "198.18.0.1:80".parse().unwrap();
        assert_eq!(check_all(dst, "198.18.1.0/24", &r), Ok(()));
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("1024-65535"), Ok((1024, 65535)));
        assert_eq!(parse_port_range("5000"), Ok((5000, 5000)));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("20-10").is_err());
        assert!(parse_port_range("x").is_err());
    }

    #[test]
    fn v6_prefixes_leave_out_the_subnet_router_anycast_address() {
        let r = V6::parse("2001:2:0:1::/120").unwrap();
        assert_eq!(r.len(), 255);
        assert_eq!(r.first(), "2001:2:0:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.nth(254), "2001:2:0:1::ff".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.index_of("2001:2:0:1::10".parse().unwrap()), Some(15));
        assert_eq!(r.index_of("2001:2:0:1::100".parse().unwrap()), None);
        assert_eq!(r.index_of("2001:2:0:1::".parse().unwrap()), None);
        assert_eq!(r.index_of("2001:2:0:2::1".parse().unwrap()), None);
        // A /64: the first 2^32 - 1 hosts, the low bits varying.
        let big = V6::parse("2001:2:0:1::/64").unwrap();
        assert_eq!(big.len(), u32::MAX);
        assert_eq!(big.addr_at(0x1_0000), "2001:2:0:1::1:1".parse::<Ipv6Addr>().unwrap());
        assert!(big.contains("2001:2:0:1::ffff:ffff".parse().unwrap()));
        assert!(!big.contains("2001:2:0:1:0:1:0:1".parse().unwrap()), "past the first 2^32 - 1");
        let one = V6::parse("2001:2:0:1::7").unwrap();
        assert_eq!((one.len(), one.first()), (1, "2001:2:0:1::7".parse::<Ipv6Addr>().unwrap()));
        let pair = V6::parse("2001:2:0:1::6/127").unwrap();
        assert_eq!(pair.len(), 2);
        assert!(V6::parse("2001:2::/48").is_ok());
    }

    #[test]
    fn v6_addresses_outside_2001_2_slash_48_are_refused() {
        for bad in ["2001:db8::/64", "2001:2::/47", "2001:3::1", "::1", "fe80::1", "2001:2:1::/64"] {
            assert!(matches!(V6::parse(bad), Err(AddrError::OutsideBenchRange6(_))), "{bad}");
        }
        assert!(matches!(V6::parse("2001:2::/129"), Err(AddrError::BadPrefix(_))));
        assert!(matches!(V6::parse("198.18.1.0/24"), Err(AddrError::BadPrefix(_))));
        assert!(matches!(V4::parse("2001:2::1"), Err(AddrError::BadPrefix(_))));
        let dst: SocketAddrV6 = "[2001:db8::1]:80".parse().unwrap();
        let e = check_dst(dst).unwrap_err();
        assert!(e.to_string().contains("outside 2001:2::/48") && e.to_string().contains("RFC 5180"), "{e}");
        let dst: SocketAddrV6 = "[2001:2:0:1::5]:80".parse().unwrap();
        let r = V6::parse("2001:2:0:1::/120").unwrap();
        assert!(matches!(check_all(dst, "2001:2:0:1::/120", &r), Err(AddrError::DstInSource(..))));
        let dst: SocketAddrV6 = "[2001:2::1]:80".parse().unwrap();
        assert_eq!(check_all(dst, "2001:2:0:1::/120", &r), Ok(()));
    }

    #[test]
    fn mixing_families_is_its_own_error() {
        let v6: SocketAddr = "[2001:2::1]:80".parse().unwrap();
        let v4: SocketAddr = "198.18.0.1:80".parse().unwrap();
        assert!(matches!(parse_src::<Ipv6Addr>("198.18.1.0/24", v6), Err(AddrError::MixedFamilies { .. })));
        assert!(matches!(parse_src::<Ipv4Addr>("2001:2:0:1::/64", v4), Err(AddrError::MixedFamilies { .. })));
        assert!(matches!(parse_src::<Ipv4Addr>("nonsense", v4), Err(AddrError::BadPrefix(_))));
        assert!(matches!(parse_src::<Ipv6Addr>("2001:db8::/64", v6), Err(AddrError::OutsideBenchRange6(_))));
        assert!(parse_src::<Ipv6Addr>("2001:2:0:1::/64", v6).is_ok());
    }
}
