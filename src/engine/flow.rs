//! The 4-tuple that names a TCP flow, from our side: the key of every
//! per-worker table (request socks, connections, TIME_WAIT) and the input
//! of the keyed hashes (ISN, timestamp offset, SYN cookie, TFO cookie).
//!
//! Addresses are IPv6 addresses; an IPv4 flow's are IPv4-mapped
//! (`::ffff:a.b.c.d`), as a Linux dual-stack socket sees IPv4 peers.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `::ffff:0:0/96`, the IPv4-mapped prefix (RFC 4291 2.5.5.2).
const V4_MAPPED: u128 = 0xffff << 32;

/// The IPv4-mapped form of an IPv4 address.
#[inline(always)]
pub const fn v4_mapped(a: u32) -> u128 {
    V4_MAPPED | a as u128
}

/// Both ends of a flow, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub local: u128,
    pub peer: u128,
    pub local_port: u16,
    pub peer_port: u16,
}

/// Two words into the tables' hasher, not four fields: every per-segment
/// table lookup hashes a key. Each address folds to one 64-bit word (an
/// IPv4-mapped one to `0xffff_aaaa_aaaa`), and the two words to one.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let fold = |a: u128| a as u64 ^ (a >> 64) as u64;
        state.write_u64(fold(self.local).rotate_left(32) ^ fold(self.peer));
        state.write_u32((u32::from(self.local_port) << 16) | u32::from(self.peer_port));
    }
}

impl FlowKey {
    /// An IPv4 flow (addresses as host-order words).
    #[inline(always)]
    pub const fn v4(local: u32, peer: u32, local_port: u16, peer_port: u16) -> FlowKey {
        FlowKey { local: v4_mapped(local), peer: v4_mapped(peer), local_port, peer_port }
    }

    pub fn v6(local: Ipv6Addr, peer: Ipv6Addr, local_port: u16, peer_port: u16) -> FlowKey {
        FlowKey { local: u128::from(local), peer: u128::from(peer), local_port, peer_port }
    }

    /// An IPv4 flow: our address is IPv4-mapped, which it only is for a
    /// segment that came over IPv4 (our IPv6 addresses are never mapped
    /// ones, and a v4-mapped IPv6 source gets no socket: see
    /// `TcpEngine::conn_request`).
    #[inline(always)]
    pub fn is_v4(&self) -> bool {
        (self.local >> 32) as u64 == 0xffff
    }

    /// The IPv4 address words of an IPv4 flow (the low 32 bits of each).
    #[inline(always)]
    pub fn local_v4(&self) -> u32 {
        self.local as u32
    }
    #[inline(always)]
    pub fn peer_v4(&self) -> u32 {
        self.peer as u32
    }

    pub fn local_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.local_v4())
    }
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.peer_v4())
    }

    pub fn local_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.local)
    }
    pub fn peer_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.peer)
    }

    /// Our end as a socket address: IPv4 for an IPv4 flow.
    pub fn local_addr(&self) -> SocketAddr {
        sock_addr(self.is_v4(), self.local, self.local_port)
    }

    /// The peer as a socket address: IPv4 for an IPv4 flow.
    pub fn peer_addr(&self) -> SocketAddr {
        sock_addr(self.is_v4(), self.peer, self.peer_port)
    }

    /// The address pair's bytes as they sit in the IPv6 header of the
    /// peer's packet: saddr (the peer) then daddr (us).
    pub fn addr_pair_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(&self.peer.to_be_bytes());
        b[16..].copy_from_slice(&self.local.to_be_bytes());
        b
    }
}

fn sock_addr(v4: bool, a: u128, port: u16) -> SocketAddr {
    if v4 {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a as u32), port))
    } else {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(a), port, 0, 0))
    }
}

/// An address as the flow key holds it (IPv4 mapped).
pub fn key_addr(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => v4_mapped(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_flows_are_v4_mapped() {
        let k = FlowKey::v4(0xc612_0001, 0xc612_0002, 80, 40000);
        assert!(k.is_v4());
        assert_eq!(k.local_ip6(), "::ffff:198.18.0.1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(k.peer_addr(), "198.18.0.2:40000".parse::<SocketAddr>().unwrap());
        let k6 = FlowKey::v6("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap(), 80, 40000);
        assert!(!k6.is_v4());
        assert_eq!(k6.peer_addr(), "[2001:2::2]:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(key_addr("2001:2::2".parse().unwrap()), k6.peer);
        // A v4-mapped peer of one of our IPv6 addresses is an IPv6 flow.
        let mixed = FlowKey { local: k6.local, ..k };
        assert!(!mixed.is_v4());
    }

    #[test]
    fn the_pair_bytes_are_saddr_then_daddr() {
        let k6 = FlowKey::v6("2001:2::1".parse().unwrap(), "2001:2::2".parse().unwrap(), 80, 40000);
        let b = k6.addr_pair_bytes();
        assert_eq!(b[15], 2);
        assert_eq!(b[31], 1);
        assert_eq!(&b[..2], &[0x20, 0x01]);
    }
}
