//! ICMP error rate limiting as Linux does it.
//!
//! Linux limits the ICMP types in `icmp_ratemask` (destination unreachable,
//! source quench, time exceeded, parameter problem) twice: per destination
//! with an inet_peer token bucket (`icmp_ratelimit` = 1000 ms a token, burst of
//! `XRLIM_BURST_FACTOR` = 6 tokens) and globally (`icmp_msgs_per_sec` = 1000,
//! `icmp_msgs_burst` = 50). Echo replies are not limited. Measured on Linux
//! 6.18 (tests/oracle/closed_port.sh): 20 rapid UDP probes to closed ports from
//! one peer get 8 answers: the burst of 6 plus one per elapsed second.
//!
//! ICMPv6 errors (`icmpv6_xrlim_allow`) share the global bucket and have
//! their own per-peer buckets, `net.ipv6.icmp.ratelimit` = 100 ms a token
//! (Linux 6.18.y and 7.0: before, 1000 ms shifted by the route's prefix
//! length), for the types in `net.ipv6.icmp.ratemask` (0-1,3-127: every
//! error but packet too big).

use crate::engine::time::Instant;
use ahash::AHashMap as HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Linux's `net.ipv4.icmp_ratelimit` (ms per token).
pub const ICMP_RATELIMIT_MS: u64 = 1000;
/// Linux's `XRLIM_BURST_FACTOR`.
pub const XRLIM_BURST_FACTOR: u64 = 6;
/// Linux's `net.ipv4.icmp_msgs_per_sec`.
pub const ICMP_MSGS_PER_SEC: u64 = 1000;
/// Linux's `net.ipv4.icmp_msgs_burst`.
pub const ICMP_MSGS_BURST: u64 = 50;
/// Linux's `net.ipv6.icmp.ratelimit` (ms per token).
pub const ICMPV6_RATELIMIT_MS: u64 = 100;
/// Peers remembered per worker; the table is cleared when it fills, which
/// only ever makes the limiter more generous, never unbounded in memory.
const MAX_PEERS: usize = 4096;

#[derive(Clone, Copy)]
struct PeerBucket {
    /// Accumulated credit in ms, capped at burst * rate (inet_peer_xrlim_allow).
    credit_ms: u64,
    last: Instant,
}

pub struct IcmpRateLimiter {
    peers: HashMap<Ipv4Addr, PeerBucket>,
    peers6: HashMap<Ipv6Addr, PeerBucket>,
    global_credit: u64,
    global_last: Instant,
}

impl Default for IcmpRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl IcmpRateLimiter {
    pub fn new() -> Self {
        IcmpRateLimiter { peers: HashMap::new(), peers6: HashMap::new(), global_credit: ICMP_MSGS_BURST, global_last: Instant::ZERO }
    }

    /// May we send a rate-limited ICMP error to `peer` now? Consumes a token if so.
    pub fn allow(&mut self, now: Instant, peer: Ipv4Addr) -> bool {
        if !self.global_allow(now) {
            return false;
        }
        let ok = peer_allow(&mut self.peers, now, peer, ICMP_RATELIMIT_MS);
        self.consume_global(ok)
    }

    /// The same for an ICMPv6 error to `peer` (`icmpv6_xrlim_allow`).
    pub fn allow_v6(&mut self, now: Instant, peer: Ipv6Addr) -> bool {
        if !self.global_allow(now) {
            return false;
        }
        let ok = peer_allow(&mut self.peers6, now, peer, ICMPV6_RATELIMIT_MS);
        self.consume_global(ok)
    }

    /// Global bucket first (icmp_global_allow), as Linux checks it before the peer.
    fn global_allow(&mut self, now: Instant) -> bool {
        let elapsed_ms = now.saturating_since(self.global_last).as_millis() as u64;
        if elapsed_ms > 0 {
            let refill = elapsed_ms * ICMP_MSGS_PER_SEC / 1000;
            if refill > 0 {
                self.global_credit = (self.global_credit + refill).min(ICMP_MSGS_BURST);
                self.global_last = now;
            }
        }
        self.global_credit != 0
    }

    fn consume_global(&mut self, peer_ok: bool) -> bool {
        if peer_ok {
            self.global_credit -= 1;
        }
        peer_ok
    }
}

/// `inet_peer_xrlim_allow` with `tmo_ms` per token and a burst of
/// `XRLIM_BURST_FACTOR` tokens; a new peer starts with a full bucket.
fn peer_allow<A: Copy + Eq + std::hash::Hash>(peers: &mut HashMap<A, PeerBucket>, now: Instant, peer: A, tmo_ms: u64) -> bool {
    let cap = XRLIM_BURST_FACTOR * tmo_ms;
    if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
        peers.clear();
    }
    let b = peers.entry(peer).or_insert(PeerBucket { credit_ms: cap, last: now });
    b.credit_ms = (b.credit_ms + now.saturating_since(b.last).as_millis() as u64).min(cap);
    b.last = now;
    if b.credit_ms >= tmo_ms {
        b.credit_ms -= tmo_ms;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn burst_of_six_then_one_per_second() {
        let mut l = IcmpRateLimiter::new();
        let t = Instant::from_secs(100);
        let sent = (0..20).filter(|_| l.allow(t, PEER)).count();
        assert_eq!(sent, 6);
        assert!(!l.allow(t + Duration::from_millis(999), PEER));
        assert!(l.allow(t + Duration::from_millis(1000), PEER));
        assert!(!l.allow(t + Duration::from_millis(1500), PEER));
    }

    #[test]
    fn like_the_kernel_oracle_twenty_probes_over_two_seconds() {
        // 20 probes, 100 ms apart: Linux answered 8 of them.
        let mut l = IcmpRateLimiter::new();
        let t = Instant::from_secs(5);
        let sent = (0..20).filter(|i| l.allow(t + Duration::from_millis(100 * i), PEER)).count();
        assert_eq!(sent, 7);
        let mut l = IcmpRateLimiter::new();
        let sent = (0..20).filter(|i| l.allow(t + Duration::from_millis(150 * i), PEER)).count();
        assert_eq!(sent, 8);
    }

    #[test]
    fn peers_are_independent_but_global_burst_caps_all() {
        let mut l = IcmpRateLimiter::new();
        let t = Instant::from_secs(1);
        let mut sent = 0;
        for i in 0..100u8 {
            if l.allow(t, Ipv4Addr::new(198, 18, 1, i)) {
                sent += 1;
            }
        }
        assert_eq!(sent as u64, ICMP_MSGS_BURST);
        // 1000 per second refills: 10 ms later, 10 more.
        let more = (0..100u8).filter(|i| l.allow(t + Duration::from_millis(10), Ipv4Addr::new(198, 18, 2, *i))).count();
        assert_eq!(more, 10);
    }

    #[test]
    fn icmpv6_peers_get_six_then_one_per_100_ms_and_share_the_global_bucket() {
        let mut l = IcmpRateLimiter::new();
        let t = Instant::from_secs(100);
        let peer6: Ipv6Addr = "2001:2::2".parse().unwrap();
        assert_eq!((0..20).filter(|_| l.allow_v6(t, peer6)).count(), 6);
        assert!(!l.allow_v6(t + Duration::from_millis(99), peer6));
        assert!(l.allow_v6(t + Duration::from_millis(100), peer6));
        // The IPv4 bucket of a peer is its own.
        assert!(l.allow(t + Duration::from_millis(100), PEER));
        // The global bucket (refilled to 50 by then) is shared: 48 left for other peers.
        let t2 = t + Duration::from_millis(100);
        let others = (0..100u16).filter(|i| l.allow_v6(t2, Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, *i))).count();
        assert_eq!(others, 48);
    }
}
