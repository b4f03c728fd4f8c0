//! The neighbour table: IPv4 address → Ethernet address, learned from ARP and
//! from the source of every IPv4 frame addressed to us (like a host that
//! trusts its on-link peers). Used for frames the engine sends without a
//! frame in hand (timer-driven retransmissions).

use crate::engine::time::Instant;
use crate::wire::ethernet::EthernetAddress;
use ahash::AHashMap as HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Entries older than this are forgotten (Linux: base_reachable_time 30 s, gc ~60 s).
pub const NEIGH_TTL: Duration = Duration::from_secs(60);
/// A bounded table: on overflow the oldest half is dropped.
const MAX_NEIGHBOURS: usize = 16384;

#[derive(Default)]
pub struct NeighborTable {
    entries: HashMap<Ipv4Addr, (EthernetAddress, Instant)>,
}

impl NeighborTable {
    pub fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress) {
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

    pub fn lookup(&self, now: Instant, ip: Ipv4Addr) -> Option<EthernetAddress> {
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
