//! A worker's own copy of the listening hash: the same groups (shared
//! `Arc`s), indexed by port in a flat table, so a SYN's listener is found
//! with a few loads and no atomic read-modify-write. The copy is taken
//! again whenever the control plane has published a change (one atomic
//! load per lookup tells).
//!
//! Lookup order is Linux's `__inet_lookup_listener`: the exact destination
//! address first, then the wildcard.

use super::lhash::Lhash;
use super::listener::Listener;
use super::reuseport::ReuseportGroup;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The groups bound to one port.
#[derive(Default)]
struct PortEntry {
    /// Groups bound to a specific address.
    exact: Vec<(u32, Arc<ReuseportGroup>)>,
    /// The group bound to 0.0.0.0.
    any: Option<Arc<ReuseportGroup>>,
}

/// Where a listener is in a view: port entry, group (0 = wildcard, k =
/// the k-th exact group), member. Valid for the view it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerAt {
    entry: u32,
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
        let groups = lhash.groups();
        // Up to the highest port listened on (lookups past it miss): a few
        // cache lines for the usual ports, not 256 KiB zeroed per copy.
        let len = groups.iter().map(|(_, port, _)| usize::from(*port) + 1).max().unwrap_or(0);
        let mut by_port = vec![0u32; len].into_boxed_slice();
        let mut entries: Vec<PortEntry> = Vec::new();
        for (addr, port, group) in groups {
            if by_port[usize::from(port)] == 0 {
                entries.push(PortEntry::default());
                by_port[usize::from(port)] = entries.len() as u32;
            }
            let e = &mut entries[by_port[usize::from(port)] as usize - 1];
            if addr.is_unspecified() {
                e.any = Some(group);
            } else {
                e.exact.push((u32::from(addr), group));
            }
        }
        *self = ListenView { generation, by_port, entries };
    }

    /// The listener that gets a SYN to `daddr:dport` with `flow_hash`, as
    /// seen by `worker`.
    #[inline]
    pub fn lookup(&self, worker: u16, daddr: u32, dport: u16, flow_hash: u32) -> Option<ListenerAt> {
        let idx = *self.by_port.get(usize::from(dport))? as usize;
        let entry = self.entries.get(idx.checked_sub(1)?)?;
        let (group, g) = match entry.exact.iter().position(|(a, _)| *a == daddr) {
            Some(k) => (k + 1, &entry.exact[k].1),
            None => (0, entry.any.as_ref()?),
        };
        let member = g.select_index(worker, flow_hash)?;
        Some(ListenerAt { entry: idx as u32 - 1, group: group as u16, member: member as u16 })
    }

    /// The listener at `at`.
    #[inline]
    pub fn get(&self, at: ListenerAt) -> Option<&Arc<Listener>> {
        let entry = self.entries.get(at.entry as usize)?;
        let g = match at.group {
            0 => entry.any.as_ref()?,
            k => &entry.exact.get(usize::from(k) - 1)?.1,
        };
        g.members().get(usize::from(at.member))
    }

    /// The address of a listener on `daddr`, for tests.
    pub fn find(&self, worker: u16, daddr: Ipv4Addr, dport: u16, flow_hash: u32) -> Option<&Arc<Listener>> {
        self.get(self.lookup(worker, u32::from(daddr), dport, flow_hash)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

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
}
