//! The neighbour table: IP address → Ethernet address, learned from ARP (or
//! neighbour discovery for IPv6) and from the source of every frame
//! addressed to us (like a host that trusts its on-link peers). Used for
//! frames the engine sends without a frame in hand (timer-driven
//! retransmissions).

use crate::engine::time::Instant;
use crate::wire::ethernet::EthernetAddress;
use ahash::AHashMap as HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Entries older than this are forgotten (Linux: base_reachable_time 30 s, gc ~60 s).
pub const NEIGH_TTL: Duration = Duration::from_secs(60);
/// A bounded table: on overflow the oldest half is dropped.
const MAX_NEIGHBOURS: usize = 16384;

/// An address a neighbour table is keyed by.
pub trait NeighborAddr: Copy + Eq + Hash {
    fn is_unspecified(&self) -> bool;
}

impl NeighborAddr for Ipv4Addr {
    fn is_unspecified(&self) -> bool {
        Ipv4Addr::is_unspecified(self)
    }
}

impl NeighborAddr for Ipv6Addr {
    fn is_unspecified(&self) -> bool {
        Ipv6Addr::is_unspecified(self)
    }
}

pub struct NeighborTable<A = Ipv4Addr> {
    entries: HashMap<A, (EthernetAddress, Instant)>,
}

impl<A> Default for NeighborTable<A> {
    fn default() -> Self {
        NeighborTable { entries: HashMap::default() }
    }
}

impl<A: NeighborAddr> NeighborTable<A> {
    pub fn learn(&mut self, now: Instant, ip: A, mac: EthernetAddress) {
        if mac.is_broadcast() || mac.is_multicast() || ip.is_unspecified() {
            return;
        }
        if self.entries.len() >= MAX_NEIGHBOURS && !self.entries.contains_key(&ip) {
            self.expire(now, NEIGH_TTL / 2);
            // A flood of young sources frees nothing: start over rather than
            // scan the full table again for every new source. Amortised O(1);
            // peers are re-learned from their next frame.
            if self.entries.len() > MAX_NEIGHBOURS * 3 / 4 {
                self.entries.clear();
            }
        }
        self.entries.insert(ip, (mac, now));
    }

    /// Updates an entry only if there is one (Linux's `ndisc_recv_na`:
    /// an advertisement nobody asked for creates nothing). True if it did.
    pub fn update_existing(&mut self, now: Instant, ip: A, mac: EthernetAddress) -> bool {
        if mac.is_multicast() {
            return false;
        }
        match self.entries.get_mut(&ip) {
            Some(e) => {
                *e = (mac, now);
                true
            }
            None => false,
        }
    }

    pub fn lookup(&self, now: Instant, ip: A) -> Option<EthernetAddress> {
        self.entries.get(&ip).filter(|(_, seen)| now.saturating_since(*seen) < NEIGH_TTL).map(|(mac, _)| *mac)
    }

    fn expire(&mut self, now: Instant, age: Duration) {
        self.entries.retain(|_, (_, seen)| now.saturating_since(*seen) < age);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_new_sources_stays_bounded_and_cheap() {
        let mut t = NeighborTable::default();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let now = Instant::from_secs(10);
        for i in 0..(3 * MAX_NEIGHBOURS as u32) {
            t.learn(now, Ipv4Addr::from(0xc612_0000 | (i & 0x1ffff)), mac);
            assert!(t.len() <= MAX_NEIGHBOURS);
        }
        // The latest source is always known.
        assert_eq!(t.lookup(now, Ipv4Addr::from(0xc612_0000 | ((3 * MAX_NEIGHBOURS as u32 - 1) & 0x1ffff))), Some(mac));
    }
}
