//! A worker's own copy of the listening hash: the same groups (shared
//! `Arc`s), indexed by port in a flat table, so a SYN's listener is found
//! with a few loads and no atomic read-modify-write. The copy is taken
//! again whenever the control plane has published a change (one atomic
//! load per lookup tells).
//!
//! Lookup order is Linux's `__inet_lookup_listener`: the exact destination
//! address first, then the wildcard.

use super::lhash::{GroupKey, Lhash};
use super::listener::Listener;
use super::reuseport::ReuseportGroup;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// The groups bound to one port, in the order a SYN tries them.
#[derive(Default)]
struct PortEntry {
    /// Groups an IPv4 SYN reaches by its exact address, AF_INET ones before
    /// dual-stack ones bound to the IPv4-mapped address (Linux's
    /// `compute_score` gives AF_INET one more).
    exact4: Vec<(u32, Arc<ReuseportGroup>)>,
    /// Wildcard groups an IPv4 SYN reaches: 0.0.0.0's, then `::`'s without
    /// IPV6_V6ONLY.
    any4: Vec<Arc<ReuseportGroup>>,
    /// Groups bound to a specific IPv6 address.
    exact6: Vec<(Ipv6Addr, Arc<ReuseportGroup>)>,
    /// `::` groups, first hashed first.
    any6: Vec<Arc<ReuseportGroup>>,
}

/// Which of a port entry's lists a group is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Exact4,
    Any4,
    Exact6,
    Any6,
}

/// Where a listener is in a view: port entry, list, group in the list,
/// member. Valid for the view it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerAt {
    entry: u32,
    list: List,
    group: u16,
    member: u16,
}

/// A worker's copy of the listening hash.
#[derive(Default)]
pub struct ListenView {
    /// The hash's generation this copy was taken at (0: never).
    generation: u64,
    /// Port -> index + 1 into `entries` (0: no listener on that port), up
    /// to the highest listening port.
    by_port: Box<[u32]>,
    entries: Vec<PortEntry>,
}

impl ListenView {
    /// Copy `lhash` again if it changed since this view was taken.
    #[inline]
    pub fn refresh(&mut self, lhash: &Lhash) {
        let generation = lhash.generation();
        if generation != self.generation {
            self.rebuild(lhash, generation);
        }
    }

    fn rebuild(&mut self, lhash: &Lhash, generation: u64) {
        let mut groups = lhash.groups();
        // Within a list the first match wins: AF_INET before AF_INET6, then
        // the first hashed (`compute_score`, then bucket order).
        groups.sort_by_key(|(k, g)| (k.port, k.family, g.id));
        // Up to the highest port listened on (lookups past it miss): a few
        // cache lines for the usual ports, not 256 KiB zeroed per copy.
        let len = groups.iter().map(|(k, _)| usize::from(k.port) + 1).max().unwrap_or(0);
        let mut by_port = vec![0u32; len].into_boxed_slice();
        let mut entries: Vec<PortEntry> = Vec::new();
        for (k, group) in groups {
            let port = usize::from(k.port);
            if by_port[port] == 0 {
                entries.push(PortEntry::default());
                by_port[port] = entries.len() as u32;
            }
            let e = &mut entries[by_port[port] as usize - 1];
            add(e, &k, group);
        }
        *self = ListenView { generation, by_port, entries };
    }

    #[inline]
    fn entry(&self, dport: u16) -> Option<(usize, &PortEntry)> {
        let idx = (*self.by_port.get(usize::from(dport))? as usize).checked_sub(1)?;
        Some((idx, self.entries.get(idx)?))
    }

    /// The listener that gets an IPv4 SYN to `daddr:dport` with
    /// `flow_hash`, as seen by `worker`.
    #[inline]
    pub fn lookup(&self, worker: u16, daddr: u32, dport: u16, flow_hash: u32) -> Option<ListenerAt> {
        let (idx, entry) = self.entry(dport)?;
        let (list, k, g) = match entry.exact4.iter().position(|(a, _)| *a == daddr) {
            Some(k) => (List::Exact4, k, &entry.exact4[k].1),
            None => (List::Any4, 0, entry.any4.first()?),
        };
        let member = g.select_index(worker, flow_hash)?;
        Some(ListenerAt { entry: idx as u32, list, group: k as u16, member: member as u16 })
    }

    /// The listener that gets an IPv6 SYN to `daddr:dport` with
    /// `flow_hash`, as seen by `worker` (`inet6_lookup_listener`).
    #[inline]
    pub fn lookup_v6(&self, worker: u16, daddr: Ipv6Addr, dport: u16, flow_hash: u32) -> Option<ListenerAt> {
        let (idx, entry) = self.entry(dport)?;
        let (list, k, g) = match entry.exact6.iter().position(|(a, _)| *a == daddr) {
            Some(k) => (List::Exact6, k, &entry.exact6[k].1),
            None => (List::Any6, 0, entry.any6.first()?),
        };
        let member = g.select_index(worker, flow_hash)?;
        Some(ListenerAt { entry: idx as u32, list, group: k as u16, member: member as u16 })
    }

    /// The listener at `at`.
    #[inline]
    pub fn get(&self, at: ListenerAt) -> Option<&Arc<Listener>> {
        let entry = self.entries.get(at.entry as usize)?;
        let k = usize::from(at.group);
        let g = match at.list {
            List::Exact4 => &entry.exact4.get(k)?.1,
            List::Any4 => entry.any4.get(k)?,
            List::Exact6 => &entry.exact6.get(k)?.1,
            List::Any6 => entry.any6.get(k)?,
        };
        g.members().get(usize::from(at.member))
    }

    /// The listener a SYN to `daddr` reaches, for tests.
    pub fn find(&self, worker: u16, daddr: impl Into<IpAddr>, dport: u16, flow_hash: u32) -> Option<&Arc<Listener>> {
        let at = match daddr.into() {
            IpAddr::V4(a) => self.lookup(worker, u32::from(a), dport, flow_hash)?,
            IpAddr::V6(a) => self.lookup_v6(worker, a, dport, flow_hash)?,
        };
        self.get(at)
    }
}

/// File a group in the lists of its port entry that can reach it.
fn add(e: &mut PortEntry, k: &GroupKey, group: Arc<ReuseportGroup>) {
    if k.takes_ipv4() {
        if k.is_wildcard() {
            e.any4.push(group.clone());
        } else {
            e.exact4.push((k.ipv4(), group.clone()));
        }
    }
    if k.takes_ipv6() {
        if k.addr.is_unspecified() {
            e.any6.push(group);
        } else {
            e.exact6.push((k.addr, group));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn listener(id: u64, addr: Ipv4Addr, port: u16, reuseport: bool) -> Arc<Listener> {
        Arc::new(Listener::new(id, SocketAddrV4::new(addr, port), 128, reuseport))
    }

    #[test]
    fn the_view_finds_what_the_hash_finds_and_follows_changes() {
        let h = Lhash::new(2);
        let mut v = ListenView::default();
        v.refresh(&h);
        assert!(v.find(0, A, 80, 7).is_none());
        h.insert(listener(1, Ipv4Addr::UNSPECIFIED, 80, true)).unwrap();
        h.insert(listener(2, Ipv4Addr::UNSPECIFIED, 80, true)).unwrap();
        let exact = listener(3, A, 80, false);
        h.insert(exact.clone()).unwrap();
        v.refresh(&h);
        for k in 0..1000u32 {
            let hash = k.wrapping_mul(0x9e37_79b9);
            for addr in [A, B] {
                let want = h.lookup(1, addr, 80, hash).map(|l| l.id);
                assert_eq!(v.find(1, addr, 80, hash).map(|l| l.id), want, "{addr} {hash}");
            }
        }
        assert_eq!(v.find(0, A, 80, 1).unwrap().id, 3, "exact beats wildcard");
        assert!(v.find(0, A, 81, 1).is_none());
        h.remove(&exact);
        v.refresh(&h);
        assert_ne!(v.find(0, A, 80, 1).unwrap().id, 3, "the view follows a removal");
    }

    /// Dual-stack: an AF_INET listener beats a `::` one for IPv4 SYNs
    /// whatever the hash order; `::` with IPV6_V6ONLY takes no IPv4; a
    /// mapped bind takes only IPv4; IPv6 SYNs reach only AF_INET6 groups.
    #[test]
    fn dual_stack_lookups_follow_the_hash() {
        use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
        let v6 = |id, a: &str, port, reuseport, v6only| {
            let addr = SocketAddrV6::new(a.parse::<Ipv6Addr>().unwrap(), port, 0, 0);
            Arc::new(Listener::new(id, addr, 128, reuseport).with_v6only(v6only))
        };
        let h = Lhash::new(2);
        h.insert(v6(1, "::", 80, true, false)).unwrap();
        h.insert(listener(2, Ipv4Addr::UNSPECIFIED, 80, true)).unwrap();
        h.insert(v6(3, "::", 81, false, true)).unwrap();
        h.insert(v6(4, "::ffff:198.18.0.1", 82, false, false)).unwrap();
        h.insert(v6(5, "2001:2::1", 83, false, true)).unwrap();
        h.insert(v6(6, "::", 83, false, false)).unwrap();
        let mut v = ListenView::default();
        v.refresh(&h);
        let a6: IpAddr = "2001:2::1".parse().unwrap();
        let b6: IpAddr = "2001:2::2".parse().unwrap();
        let want = [
            ((IpAddr::V4(A), 80), Some(2)),
            ((a6, 80), Some(1)),
            ((IpAddr::V4(A), 81), None),
            ((a6, 81), Some(3)),
            ((IpAddr::V4(A), 82), Some(4)),
            ((IpAddr::V4(B), 82), None),
            ((a6, 82), None),
            ((a6, 83), Some(5)),
            ((b6, 83), Some(6)),
            ((IpAddr::V4(B), 83), Some(6)),
        ];
        for ((addr, port), id) in want {
            for hash in [0u32, 7, 0x9e37_79b9] {
                assert_eq!(v.find(0, addr, port, hash).map(|l| l.id), id, "view {addr} {port}");
                assert_eq!(h.lookup(0, addr, port, hash).map(|l| l.id), id, "hash {addr} {port}");
            }
        }
    }
}
