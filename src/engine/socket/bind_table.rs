//! The bind table (Linux's bhash): who owns which local port, and the
//! conflict rules of `inet_csk_bind_conflict` / `inet_csk_find_open_port`.
//!
//! Control plane only (sharded by port, one `Mutex` per shard). There is a
//! single owner uid here, so Linux's uid checks always pass; there are no
//! TIME_WAIT owners (connections live in the workers' tables) and no
//! SO_BINDTODEVICE.
//!
//! We always run the exact conflict walk over a port's owners, the one
//! Linux's `fastreuse`/`fastreuseport` bucket flags are a cache of, so the
//! answers do not depend on that cache (e.g. on SO_REUSEPORT being cleared
//! after bind, which Linux's FASTREUSEPORT_ANY fast path does not notice).

use crate::engine::errno::Errno;
use crate::sync::lock;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};

/// A socket's identity in the bind table.
pub type SockId = u64;

/// What the conflict rules need to know of a port owner, kept current by
/// the socket layer (options can change after bind; listen sets `listening`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindOwner {
    pub sock: SockId,
    /// Bound address (0.0.0.0 or `::` is the wildcard), with its family.
    pub addr: BoundAddr,
    /// SO_REUSEADDR (`sk_reuse`).
    pub reuseaddr: bool,
    /// SO_REUSEPORT (`sk_reuseport`).
    pub reuseport: bool,
    /// `sk_state == TCP_LISTEN`.
    pub listening: bool,
}

/// A socket's bound address as the conflict rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundAddr {
    /// An AF_INET socket's `inet_rcv_saddr`.
    V4(Ipv4Addr),
    /// An AF_INET6 socket's `sk_v6_rcv_saddr` (IPv4-mapped when it was bound
    /// to an IPv4 address) and its IPV6_V6ONLY.
    V6 { addr: Ipv6Addr, v6only: bool },
}

/// Linux's `LOOPBACK4_IPV6` (127.0.0.6): the `inet_rcv_saddr` an AF_INET6
/// socket bound to a real IPv6 address gets, so that it never matches an
/// IPv4 address.
const LOOPBACK4_IPV6: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

impl BoundAddr {
    /// `inet_rcv_saddr`: the IPv4 side of the address.
    fn rcv_saddr(&self) -> Ipv4Addr {
        match *self {
            BoundAddr::V4(a) => a,
            BoundAddr::V6 { addr, .. } if addr.is_unspecified() => Ipv4Addr::UNSPECIFIED,
            BoundAddr::V6 { addr, .. } => addr.to_ipv4_mapped().unwrap_or(LOOPBACK4_IPV6),
        }
    }

    fn v6only(&self) -> bool {
        matches!(self, BoundAddr::V6 { v6only: true, .. })
    }
}

/// `ipv6_addr_type`, as far as the conflict rules look at it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AddrType {
    Any,
    Mapped,
    Other,
}

fn addr_type(a: &Ipv6Addr) -> AddrType {
    if a.is_unspecified() {
        AddrType::Any
    } else if a.to_ipv4_mapped().is_some() {
        AddrType::Mapped
    } else {
        AddrType::Other
    }
}

/// `ipv4_rcv_saddr_equal`.
fn ipv4_rcv_saddr_equal(a: Ipv4Addr, b: Ipv4Addr, b_v6only: bool, match_wildcard: bool) -> bool {
    !b_v6only && (a == b || (match_wildcard && (a.is_unspecified() || b.is_unspecified())))
}

/// `inet_rcv_saddr_equal(sk, sk2, match_wildcard)`, with the IPv6 rules of
/// `ipv6_rcv_saddr_equal` when `sk` is AF_INET6 (an AF_INET `sk2` counts
/// as IPv4-mapped there).
pub fn rcv_saddr_equal(sk: &BoundAddr, sk2: &BoundAddr, match_wildcard: bool) -> bool {
    let BoundAddr::V6 { addr: a6, v6only: a_v6only } = *sk else {
        return ipv4_rcv_saddr_equal(sk.rcv_saddr(), sk2.rcv_saddr(), sk2.v6only(), match_wildcard);
    };
    let b6 = match sk2 {
        BoundAddr::V6 { addr, .. } => Some(*addr),
        BoundAddr::V4(_) => None,
    };
    let (t1, t2) = (addr_type(&a6), b6.as_ref().map_or(AddrType::Mapped, addr_type));
    let b_v6only = sk2.v6only();
    if t1 == AddrType::Mapped && t2 == AddrType::Mapped {
        return ipv4_rcv_saddr_equal(sk.rcv_saddr(), sk2.rcv_saddr(), b_v6only, match_wildcard);
    }
    if t1 == AddrType::Any && t2 == AddrType::Any {
        return true;
    }
    if t2 == AddrType::Any && match_wildcard && !(b_v6only && t1 == AddrType::Mapped) {
        return true;
    }
    if t1 == AddrType::Any && match_wildcard && !(a_v6only && t2 == AddrType::Mapped) {
        return true;
    }
    b6 == Some(a6)
}

/// `inet_rcv_saddr_equal(sk, sk2, match_wildcard = true)`: the same address,
/// or either one is a wildcard that covers the other.
pub fn addrs_overlap(a: BoundAddr, b: BoundAddr) -> bool {
    rcv_saddr_equal(&a, &b, true)
}

/// Linux's `inet_bind_conflict` for two owners of one port, with the address
/// overlap check of `inet_csk_bind_conflict`:
///
/// - `relax` / `reuseport_ok` are true for an explicit port (bind, listen)
///   and false while searching an ephemeral port.
/// - Both SO_REUSEADDR and `sk2` not listening: no conflict when relaxed.
/// - Otherwise no conflict only if both have SO_REUSEPORT and reuseport is
///   allowed (same uid: always, here).
pub fn bind_conflict(sk: &BindOwner, sk2: &BindOwner, relax: bool, reuseport_ok: bool) -> bool {
    if sk.sock == sk2.sock || !addrs_overlap(sk.addr, sk2.addr) {
        return false;
    }
    if sk.reuseaddr && sk2.reuseaddr && !sk2.listening {
        // Linux: `if (!relax || (!reuseport_ok && both reuseport ...)) return true`.
        !relax || (!reuseport_ok && sk.reuseport && sk2.reuseport)
    } else {
        !reuseport_ok || !sk.reuseport || !sk2.reuseport
    }
}

const SHARDS: usize = 64;

type Shard = HashMap<u16, Vec<BindOwner>>;

/// One port space (TCP or UDP).
pub struct BindTable {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for BindTable {
    fn default() -> Self {
        Self::new()
    }
}

impl BindTable {
    pub fn new() -> Self {
        BindTable { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, port: u16) -> MutexGuard<'_, Shard> {
        lock(&self.shards[port as usize % SHARDS])
    }

    /// `inet_csk_get_port` with an explicit port: check `sk` against the
    /// port's other owners (relaxed: SO_REUSEADDR and SO_REUSEPORT apply) and
    /// record it, or update its record when it already owns the port (the
    /// re-check listen() does). EADDRINUSE on conflict, leaving the table
    /// unchanged.
    pub fn get_port(&self, sk: BindOwner, port: u16) -> Result<(), Errno> {
        let mut shard = self.shard(port);
        let owners = shard.entry(port).or_default();
        if owners.iter().any(|o| bind_conflict(&sk, o, true, true)) {
            if owners.is_empty() {
                shard.remove(&port);
            }
            return Err(Errno::Eaddrinuse);
        }
        match owners.iter_mut().find(|o| o.sock == sk.sock) {
            Some(o) => *o = sk,
            None => owners.push(sk),
        }
        Ok(())
    }

    /// Linux's `inet_csk_find_open_port` (6.x): pick and record a free port
    /// in `range` (inclusive) for `sk`. `rand_below(n)` returns a uniform
    /// value in `[0, n)` (Linux: `get_random_u32_below`).
    ///
    /// Linux scans from a random start, first the ports whose parity differs
    /// from `low` (connect() favours `low`'s parity, bind takes the other so
    /// the two do not collide), then the other parity; a socket with
    /// SO_REUSEADDR first tries the lower half of the range, then the upper.
    /// Candidates are checked without relaxing: any overlapping owner makes
    /// a port busy. EADDRINUSE when every port is taken.
    pub fn find_open_port(
        &self,
        sk: BindOwner,
        range: (u16, u16),
        rand_below: &mut dyn FnMut(u32) -> u32,
    ) -> Result<u16, Errno> {
        let mut attempt_half: u8 = if sk.reuseaddr { 1 } else { 0 };
        loop {
            let mut low = u32::from(range.0);
            let mut high = u32::from(range.1) + 1; // [low, high)
            if high < low + 4 {
                attempt_half = 0;
            }
            if attempt_half != 0 {
                let half = low + (((high - low) >> 2) << 1);
                if attempt_half == 1 {
                    high = half;
                } else {
                    low = half;
                }
            }
            let mut remaining = high.saturating_sub(low);
            if remaining > 1 {
                remaining &= !1;
            }
            let mut offset = if remaining == 0 { 0 } else { rand_below(remaining) % remaining };
            offset |= 1;
            loop {
                // One parity scan.
                let mut port = low + offset;
                let mut i = 0;
                while i < remaining {
                    if port >= high {
                        port -= remaining;
                    }
                    if let Ok(p) = u16::try_from(port) {
                        if self.try_claim(sk, p) {
                            return Ok(p);
                        }
                    }
                    i += 2;
                    port += 2;
                }
                offset = offset.wrapping_sub(1);
                if offset & 1 != 0 {
                    break;
                }
            }
            if attempt_half == 1 {
                attempt_half = 2;
                continue;
            }
            return Err(Errno::Eaddrinuse);
        }
    }

    /// Record `sk` on `port` if no owner conflicts, unrelaxed.
    fn try_claim(&self, sk: BindOwner, port: u16) -> bool {
        let mut shard = self.shard(port);
        let owners = shard.entry(port).or_default();
        if owners.iter().any(|o| bind_conflict(&sk, o, false, false)) {
            return false;
        }
        owners.push(sk);
        true
    }

    /// Change a recorded owner (an option or the listening state changed).
    pub fn update(&self, port: u16, sock: SockId, f: impl FnOnce(&mut BindOwner)) {
        let mut shard = self.shard(port);
        if let Some(o) = shard.get_mut(&port).and_then(|v| v.iter_mut().find(|o| o.sock == sock)) {
            f(o);
        }
    }

    /// `inet_put_port`: `sock` releases `port`.
    pub fn remove(&self, port: u16, sock: SockId) {
        let mut shard = self.shard(port);
        if let Some(owners) = shard.get_mut(&port) {
            owners.retain(|o| o.sock != sock);
            if owners.is_empty() {
                shard.remove(&port);
            }
        }
    }

    /// The owners of `port`.
    pub fn owners(&self, port: u16) -> Vec<BindOwner> {
        self.shard(port).get(&port).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: BoundAddr = BoundAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const B: BoundAddr = BoundAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    const ANY: BoundAddr = BoundAddr::V4(Ipv4Addr::UNSPECIFIED);

    fn o(sock: SockId, addr: BoundAddr, reuseaddr: bool, reuseport: bool, listening: bool) -> BindOwner {
        BindOwner { sock, addr, reuseaddr, reuseport, listening }
    }

    fn v6(addr: &str, v6only: bool) -> BoundAddr {
        BoundAddr::V6 { addr: addr.parse().unwrap(), v6only }
    }

    /// `inet_rcv_saddr_equal` across families, both ways round, with the
    /// wildcard matched: what decides a v4/v6 bind conflict.
    #[test]
    fn dual_stack_overlap_rules() {
        let any6 = v6("::", false);
        let any6_only = v6("::", true);
        let a6 = v6("2001:2::1", true);
        let a_mapped = v6("::ffff:198.18.0.1", false);
        let any_mapped = v6("::ffff:0.0.0.0", false);
        let cases = [
            (any6, ANY, true),            // [::] without V6ONLY covers 0.0.0.0
            (any6_only, ANY, false),      // with V6ONLY it does not
            (any6, A, true),              // nor a specific IPv4 address
            (any6_only, A, false),
            (any6_only, any6, true),      // two `::` always overlap
            (a6, ANY, false),             // a real IPv6 address never meets IPv4
            (a6, any6, true),
            (a6, any6_only, true),
            (a6, v6("2001:2::2", true), false),
            (a_mapped, A, true),          // a mapped address is its IPv4 twin
            (a_mapped, B, false),
            (a_mapped, ANY, true),
            (a_mapped, any6, true),
            (a_mapped, any6_only, false),
            (any_mapped, A, true),        // ::ffff:0.0.0.0 is the IPv4 wildcard
            (any_mapped, a6, false),
        ];
        for (x, y, want) in cases {
            assert_eq!(addrs_overlap(x, y), want, "{x:?} vs {y:?}");
            assert_eq!(addrs_overlap(y, x), want, "{y:?} vs {x:?}");
        }
        // Without the wildcard (reuseport grouping): only equal addresses.
        assert!(!rcv_saddr_equal(&any6, &A, false));
        assert!(rcv_saddr_equal(&a_mapped, &A, false));
        assert!(rcv_saddr_equal(&any6, &any6_only, false));
    }

    #[test]
    fn overlap_rules() {
        assert!(addrs_overlap(A, A));
        assert!(addrs_overlap(A, ANY));
        assert!(addrs_overlap(ANY, B));
        assert!(!addrs_overlap(A, B));
    }

    /// The SO_REUSEADDR x SO_REUSEPORT x listening matrix, explicit port.
    #[test]
    fn reuse_matrix() {
        // (sk reuseaddr, sk reuseport, sk2 reuseaddr, sk2 reuseport, sk2 listening) -> conflict
        let cases = [
            ((false, false, false, false, false), true),
            ((true, false, true, false, false), false), // both REUSEADDR, sk2 not listening
            ((true, false, true, false, true), true),   // sk2 listening: REUSEADDR does not help
            ((true, false, false, false, false), true), // only one REUSEADDR
            ((false, true, false, true, false), false), // both REUSEPORT
            ((false, true, false, true, true), false),  // both REUSEPORT, sk2 listening
            ((false, true, false, false, false), true), // only one REUSEPORT
            ((true, true, true, false, true), true),    // sk2 listening without REUSEPORT
            ((true, true, true, true, true), false),
        ];
        for ((ra, rp, ra2, rp2, l2), conflict) in cases {
            let sk = o(1, A, ra, rp, false);
            let sk2 = o(2, A, ra2, rp2, l2);
            assert_eq!(bind_conflict(&sk, &sk2, true, true), conflict, "{:?}", (ra, rp, ra2, rp2, l2));
        }
    }

    #[test]
    fn unrelaxed_check_sees_every_overlap_as_busy() {
        let sk = o(1, A, true, true, false);
        assert!(bind_conflict(&sk, &o(2, A, true, true, false), false, false));
        assert!(bind_conflict(&sk, &o(2, ANY, true, true, true), false, false));
        assert!(!bind_conflict(&sk, &o(2, B, false, false, true), false, false));
        assert!(!bind_conflict(&sk, &sk, false, false));
    }

    #[test]
    fn distinct_addresses_share_a_port_wildcard_does_not() {
        let t = BindTable::new();
        t.get_port(o(1, A, false, false, false), 80).unwrap();
        t.get_port(o(2, B, false, false, false), 80).unwrap();
        assert_eq!(t.get_port(o(3, ANY, false, false, false), 80), Err(Errno::Eaddrinuse));
        t.remove(80, 1);
        t.remove(80, 2);
        t.get_port(o(3, ANY, false, false, false), 80).unwrap();
        assert_eq!(t.get_port(o(4, A, false, false, false), 80), Err(Errno::Eaddrinuse));
    }

    #[test]
    fn wildcard_and_specific_with_reuseport_coexist() {
        let t = BindTable::new();
        t.get_port(o(1, ANY, false, true, true), 80).unwrap();
        t.get_port(o(2, A, false, true, false), 80).unwrap();
        assert_eq!(t.owners(80).len(), 2);
    }

    #[test]
    fn relisten_check_updates_in_place() {
        let t = BindTable::new();
        t.get_port(o(1, A, true, false, false), 80).unwrap();
        t.get_port(o(2, A, true, false, false), 80).unwrap();
        // 1 listens: 2 is not listening and both have REUSEADDR: fine.
        t.get_port(o(1, A, true, false, true), 80).unwrap();
        // 2 listens: 1 is listening now: conflict, table unchanged.
        assert_eq!(t.get_port(o(2, A, true, false, true), 80), Err(Errno::Eaddrinuse));
        assert_eq!(t.owners(80), vec![o(1, A, true, false, true), o(2, A, true, false, false)]);
    }

    /// A deterministic "RNG" returning a fixed fraction of n.
    fn fixed(v: u32) -> impl FnMut(u32) -> u32 {
        move |n| v % n
    }

    #[test]
    fn ephemeral_port_parity_and_start() {
        let t = BindTable::new();
        // Range [32768, 60999]: remaining 28232, offset 10 | 1 = 11.
        let p = t.find_open_port(o(1, ANY, false, false, false), (32768, 60999), &mut fixed(10)).unwrap();
        assert_eq!(p, 32768 + 11);
        // Bind prefers the parity opposite to `low` (odd here).
        let p2 = t.find_open_port(o(2, ANY, false, false, false), (32768, 60999), &mut fixed(10)).unwrap();
        assert_eq!(p2, 32768 + 13);
    }

    #[test]
    fn ephemeral_port_other_parity_then_exhaustion() {
        let t = BindTable::new();
        let range = (1000, 1003); // 4 ports, 2 odd
        let mut got: Vec<u16> =
            (0..4).map(|i| t.find_open_port(o(i, ANY, false, false, false), range, &mut fixed(0)).unwrap()).collect();
        // Odd ports first, then even.
        assert!(got[0] % 2 == 1 && got[1] % 2 == 1 && got[2] % 2 == 0 && got[3] % 2 == 0, "{got:?}");
        got.sort();
        assert_eq!(got, vec![1000, 1001, 1002, 1003]);
        assert_eq!(t.find_open_port(o(9, ANY, true, true, false), range, &mut fixed(0)), Err(Errno::Eaddrinuse));
        // Another address does not overlap a specific one.
        let t2 = BindTable::new();
        t2.get_port(o(1, A, false, false, false), 1001).unwrap();
        assert_eq!(t2.find_open_port(o(2, B, false, false, false), (1001, 1001), &mut fixed(0)), Ok(1001));
    }

    #[test]
    fn ephemeral_with_reuseaddr_tries_lower_half_first() {
        let t = BindTable::new();
        // [32768, 61000): half = 32768 + ((28232 >> 2) << 1) = 46884.
        for i in 0..50 {
            let p =
                t.find_open_port(o(i, ANY, true, false, false), (32768, 60999), &mut fixed(i as u32 * 997)).unwrap();
            assert!(p < 46884, "{p}");
        }
        let t = BindTable::new();
        // A two-port lower half filled: the upper half is used.
        let range = (2000, 2007); // [2000, 2008): half = 2004
        for i in 0..4 {
            let p = t.find_open_port(o(i, ANY, true, false, false), range, &mut fixed(0)).unwrap();
            assert!(p < 2004);
        }
        let p = t.find_open_port(o(9, ANY, true, false, false), range, &mut fixed(0)).unwrap();
        assert!(p >= 2004);
    }

    #[test]
    fn ephemeral_search_skips_reusable_ports() {
        // Unrelaxed: even a port whose owners all have REUSEADDR/REUSEPORT is busy.
        let t = BindTable::new();
        t.get_port(o(1, ANY, true, true, false), 1001).unwrap();
        let p = t.find_open_port(o(2, ANY, true, true, false), (1000, 1001), &mut fixed(0)).unwrap();
        assert_eq!(p, 1000);
    }
}
