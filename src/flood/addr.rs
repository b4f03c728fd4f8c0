//! The address space a flood draws from: a source prefix inside the
//! benchmarking range, a source-port range, and the 198.18.0.0/15 rule.

use std::net::{Ipv4Addr, SocketAddrV4};
use thiserror::Error;

/// RFC 2544's benchmarking range, the only addresses dlisten floods.
pub const BENCH_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
pub const BENCH_PREFIX: u8 = 15;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddrError {
    #[error("{0}: not an IPv4 prefix (expected e.g. 198.18.1.0/24 or 198.18.1.7)")]
    BadPrefix(String),
    #[error("{0} is outside 198.18.0.0/15: dlisten flood only sends to and from the benchmarking range (RFC 2544)")]
    OutsideBenchRange(String),
    #[error("--dst {0} lies inside --src {1}: the target cannot be one of our source addresses")]
    DstInSource(Ipv4Addr, String),
    #[error("{0}: expected LOW-HIGH source ports with 1 <= LOW <= HIGH")]
    BadPortRange(String),
}

/// True when `a` is in 198.18.0.0/15.
pub fn in_bench_range(a: Ipv4Addr) -> bool {
    u32::from(a) >> (32 - BENCH_PREFIX) == u32::from(BENCH_NET) >> (32 - BENCH_PREFIX)
}

/// Refuse a target outside the benchmarking range.
pub fn check_dst(dst: SocketAddrV4) -> Result<SocketAddrV4, AddrError> {
    if in_bench_range(*dst.ip()) {
        Ok(dst)
    } else {
        Err(AddrError::OutsideBenchRange(dst.to_string()))
    }
}

/// The source addresses: a prefix's host addresses (network and broadcast
/// left out below /31, as a real subnet would).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrcRange {
    first: u32,
    len: u32,
}

impl SrcRange {
    /// `198.18.1.0/24` or a single `198.18.1.7`; the whole prefix must lie
    /// inside 198.18.0.0/15.
    pub fn parse(s: &str) -> Result<SrcRange, AddrError> {
        let bad = || AddrError::BadPrefix(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.trim().parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        if len < BENCH_PREFIX {
            return Err(AddrError::OutsideBenchRange(s.to_string()));
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let net = u32::from(addr) & mask;
        if !in_bench_range(Ipv4Addr::from(net)) {
            return Err(AddrError::OutsideBenchRange(s.to_string()));
        }
        let size = 1u64 << (32 - len);
        let (first, count) = if size > 2 { (net + 1, size - 2) } else { (net, size) };
        Ok(SrcRange { first, len: count as u32 })
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first)
    }

    /// The `i`-th address (`i < len`).
    pub fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first.wrapping_add(i % self.len.max(1)))
    }

    /// The `i`-th address for an `i` known to be below `len`.
    #[inline]
    pub fn addr_at(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.first.wrapping_add(i))
    }

    /// Position of `a` in the range, if it is one of ours.
    pub fn index_of(&self, a: Ipv4Addr) -> Option<u32> {
        let off = u32::from(a).wrapping_sub(self.first);
        (off < self.len).then_some(off)
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        self.index_of(a).is_some()
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

/// Source range, port range and target checked together.
pub fn check_all(dst: SocketAddrV4, src: &str, src_range: &SrcRange) -> Result<(), AddrError> {
    check_dst(dst)?;
    if src_range.contains(*dst.ip()) {
        return Err(AddrError::DstInSource(*dst.ip(), src.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = SrcRange::parse("198.18.1.0/24").unwrap();
        assert_eq!(r.len(), 254);
        assert_eq!(r.first(), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(r.nth(253), Ipv4Addr::new(198, 18, 1, 254));
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 1, 10)), Some(9));
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 1, 255)), None);
        assert_eq!(r.index_of(Ipv4Addr::new(198, 18, 0, 1)), None);
        let one = SrcRange::parse("198.18.1.7").unwrap();
        assert_eq!((one.len(), one.first()), (1, Ipv4Addr::new(198, 18, 1, 7)));
        let pair = SrcRange::parse("198.18.1.6/31").unwrap();
        assert_eq!((pair.len(), pair.first()), (2, Ipv4Addr::new(198, 18, 1, 6)));
    }

    #[test]
    fn addresses_outside_the_bench_range_are_refused() {
        assert!(matches!(SrcRange::parse("10.0.0.0/24"), Err(AddrError::OutsideBenchRange(_))));
        assert!(matches!(SrcRange::parse("198.18.0.0/14"), Err(AddrError::OutsideBenchRange(_))));
        assert!(matches!(SrcRange::parse("198.20.0.1"), Err(AddrError::OutsideBenchRange(_))));
        assert!(SrcRange::parse("198.18.0.0/15").is_ok());
        assert!(matches!(SrcRange::parse("198.18.1.0/33"), Err(AddrError::BadPrefix(_))));
        assert!(matches!(SrcRange::parse("nonsense"), Err(AddrError::BadPrefix(_))));
        let dst: SocketAddrV4 = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(check_dst(dst), Err(AddrError::OutsideBenchRange(_))));
        let dst: SocketAddrV4 = "198.18.1.5:80".parse().unwrap();
        let r = SrcRange::parse("198.18.1.0/24").unwrap();
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
}
