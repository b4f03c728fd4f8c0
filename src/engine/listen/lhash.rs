//! The listening hash (Linux's lhash2): (address, port) -> listener or
//! reuseport group, read by workers without locks.
//!
//! Written by the control plane under per-shard locks (shard = port), and
//! published RCU-style: each shard is an immutable table behind an
//! `ArcSwap`; a change copies the shard, edits the copy and swaps it in. A
//! worker's `load()` never blocks and sees either the old or the new table,
//! never a mix; a snapshot it holds stays valid and unchanged.
//!
//! Lookup order is Linux's `__inet_lookup_listener`: the bucket of the exact
//! destination address first, then the wildcard one, so an exact-address
//! listener beats a wildcard one.

use super::listener::{Family, Listener};
use super::reuseport::ReuseportGroup;
use crate::engine::errno::Errno;
use crate::sync::lock;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shards (by port) of the listening hash.
const SHARDS: usize = 64;

/// A cheap hasher for our (addr, port) keys: keys come from our own
/// listen() calls, not from the network, so no keyed hash is needed.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = (self.0 ^ k ^ (k >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// One reuseport group's place in the hash. Linux's lhash2 bucket is
/// (address, port); within a bucket a group is also told apart by family
/// and IPV6_V6ONLY, as `inet_reuseport_add_sock` joins only sockets that
/// agree on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub port: u16,
    /// The bound address in IPv6 form ([`ipv6_form`]).
    pub addr: Ipv6Addr,
    pub family: Family,
    pub v6only: bool,
}

impl GroupKey {
    pub fn of(l: &Listener) -> GroupKey {
        GroupKey { port: l.local.port(), addr: l.addr_v6_form(), family: l.family(), v6only: l.v6only }
    }

    /// The address as bound: V4 for AF_INET, V6 (maybe mapped) for AF_INET6.
    pub fn ip(&self) -> IpAddr {
        match self.family {
            Family::Inet => IpAddr::V4(self.addr.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
            Family::Inet6 => IpAddr::V6(self.addr),
        }
    }

    /// Whether a SYN to an IPv4 address reaches this group: AF_INET
    /// groups, and AF_INET6 ones without IPV6_V6ONLY bound to `::` or to
    /// an IPv4-mapped address (`compute_score`'s `!ipv6_only_sock`).
    pub fn takes_ipv4(&self) -> bool {
        match self.family {
            Family::Inet => true,
            Family::Inet6 => !self.v6only && (self.addr.is_unspecified() || self.addr.to_ipv4_mapped().is_some()),
        }
    }

    /// Whether a SYN to an IPv6 address reaches this group: AF_INET6 groups
    /// not bound to an IPv4-mapped address (`inet6`'s `compute_score`).
    pub fn takes_ipv6(&self) -> bool {
        self.family == Family::Inet6 && (self.addr.is_unspecified() || self.addr.to_ipv4_mapped().is_none())
    }

    /// The wildcard bucket: 0.0.0.0 or `::`.
    pub fn is_wildcard(&self) -> bool {
        self.addr.is_unspecified() || self.addr == Ipv4Addr::UNSPECIFIED.to_ipv6_mapped()
    }

    /// The IPv4 address of an IPv4-reachable group (0 for a wildcard).
    pub fn ipv4(&self) -> u32 {
        self.addr.to_ipv4_mapped().map_or(0, u32::from)
    }
}

fn shard_of(port: u16) -> usize {
    port as usize % SHARDS
}

/// One shard's published table.
#[derive(Default, Clone)]
pub struct ShardTable {
    map: HashMap<GroupKey, Arc<ReuseportGroup>, BuildHasherDefault<KeyHasher>>,
}

/// Linux's `compute_score` order among the groups a SYN can reach in one
/// bucket: for an IPv4 SYN an AF_INET socket scores one more than a
/// dual-stack one; otherwise the first hashed wins (group ids grow).
fn rank(k: &GroupKey, g: &ReuseportGroup) -> (Family, u64) {
    (k.family, g.id)
}

impl ShardTable {
    /// The group at exactly `key`.
    pub fn group(&self, key: &GroupKey) -> Option<&Arc<ReuseportGroup>> {
        self.map.get(key)
    }

    /// The best group in the bucket (`addr`, `port`) for a SYN of `ipv6`-ness.
    fn best_in_bucket(&self, addr: Ipv6Addr, port: u16, ipv6: bool) -> Option<&Arc<ReuseportGroup>> {
        self.map
            .iter()
            .filter(|(k, _)| k.port == port && k.addr == addr && if ipv6 { k.takes_ipv6() } else { k.takes_ipv4() })
            .min_by_key(|(k, g)| rank(k, g))
            .map(|(_, g)| g)
    }

    /// Linux's `__inet_lookup_listener` / `inet6_lookup_listener`: the
    /// bucket of the exact destination address first, then the wildcard's
    /// (0.0.0.0's and `::`'s for IPv4, `::`'s for IPv6); then the
    /// reuseport pick.
    pub fn lookup(&self, worker: u16, daddr: IpAddr, dport: u16, flow_hash: u32) -> Option<&Arc<Listener>> {
        let group = match daddr {
            IpAddr::V4(a) => self
                .best_in_bucket(a.to_ipv6_mapped(), dport, false)
                .or_else(|| self.best_in_bucket(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), dport, false))
                .or_else(|| self.best_in_bucket(Ipv6Addr::UNSPECIFIED, dport, false)),
            IpAddr::V6(a) => self
                .best_in_bucket(a, dport, true)
                .or_else(|| self.best_in_bucket(Ipv6Addr::UNSPECIFIED, dport, true)),
        }?;
        group.select_by_hash(worker, flow_hash)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Arc<ReuseportGroup>> {
        self.map.values()
    }
}

struct Shard {
    write: Mutex<()>,
    table: ArcSwap<ShardTable>,
}

/// The listening hash.
pub struct Lhash {
    workers: u16,
    shards: Box<[Shard]>,
    next_group: AtomicU64,
    /// Bumped after every published change, so a worker's
    /// [`super::view::ListenView`] knows when to copy the hash again.
    generation: AtomicU64,
}

impl Lhash {
    /// A hash whose per-worker steering tables cover `workers` workers.
    pub fn new(workers: u16) -> Self {
        Lhash {
            workers,
            shards: (0..SHARDS)
                .map(|_| Shard { write: Mutex::new(()), table: ArcSwap::from_pointee(ShardTable::default()) })
                .collect(),
            next_group: AtomicU64::new(1),
            generation: AtomicU64::new(1),
        }
    }

    /// The published table holding `port`: hold it to do several lookups
    /// against one consistent view.
    pub fn snapshot(&self, port: u16) -> Arc<ShardTable> {
        self.shards[shard_of(port)].table.load_full()
    }

    /// The listener that gets a SYN to `daddr:dport` with `flow_hash`, as seen
    /// by `worker`. Lock-free.
    pub fn lookup(&self, worker: u16, daddr: impl Into<IpAddr>, dport: u16, flow_hash: u32) -> Option<Arc<Listener>> {
        let table = self.shards[shard_of(dport)].table.load();
        table.lookup(worker, daddr.into(), dport, flow_hash).cloned()
    }

    /// Edit one shard under its lock and publish the result.
    fn update<R>(&self, port: u16, f: impl FnOnce(&mut ShardTable) -> R) -> R {
        let shard = &self.shards[shard_of(port)];
        let _w = lock(&shard.write);
        let mut table = ShardTable::clone(&shard.table.load());
        let r = f(&mut table);
        shard.table.store(Arc::new(table));
        // Release: a worker that sees the new generation sees the new table.
        self.generation.fetch_add(1, Ordering::Release);
        r
    }

    /// Changes published so far (see `generation`).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every group with its key: what a worker's view copies.
    pub fn groups(&self) -> Vec<(GroupKey, Arc<ReuseportGroup>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let table = shard.table.load();
            for (k, g) in &table.map {
                out.push((*k, g.clone()));
            }
        }
        out
    }

    /// `inet_hash` for a listener: join the reuseport group bound to the same
    /// exact address and port, family and IPV6_V6ONLY (Linux's
    /// `inet_reuseport_add_sock` requires all of them and
    /// `inet_rcv_saddr_equal(sk, sk2, false)`: a wildcard and a specific
    /// listener never share a group), or start a new entry. Returns the group
    /// id, also stored in the listener.
    pub fn insert(&self, listener: Arc<Listener>) -> Result<u64, Errno> {
        let k = GroupKey::of(&listener);
        self.update(k.port, |t| {
            let (id, reuseport, mut members) = match t.map.get(&k) {
                Some(g) if g.reuseport && listener.reuseport => (g.id, true, g.members().to_vec()),
                // bind conflicts keep a non-reuseport listener alone on its
                // address; refuse rather than shadow it.
                Some(_) => return Err(Errno::Eaddrinuse),
                None => (self.next_group.fetch_add(1, Ordering::Relaxed), listener.reuseport, Vec::new()),
            };
            listener.set_group_id(id);
            members.push(listener);
            t.map.insert(k, Arc::new(ReuseportGroup::new(id, reuseport, members, self.workers)));
            Ok(id)
        })
    }

    /// `inet_unhash` + reuseport detach: the listener leaves its group (the
    /// last member takes its slot). Returns what is left of the group.
    pub fn remove(&self, listener: &Arc<Listener>) -> Option<Arc<ReuseportGroup>> {
        let k = GroupKey::of(listener);
        self.update(k.port, |t| {
            let g = t.map.get(&k)?;
            let mut members = g.members().to_vec();
            let pos = members.iter().position(|m| Arc::ptr_eq(m, listener))?;
            members.swap_remove(pos);
            if members.is_empty() {
                t.map.remove(&k);
                return None;
            }
            let rest = Arc::new(ReuseportGroup::new(g.id, g.reuseport, members, self.workers));
            t.map.insert(k, rest.clone());
            Some(rest)
        })
    }

    /// Rebuild the steering tables of the listener's group (its
    /// SO_INCOMING_CPU changed: Linux's `reuseport_update_incoming_cpu`).
    pub fn refresh(&self, listener: &Arc<Listener>) {
        let k = GroupKey::of(listener);
        self.update(k.port, |t| {
            if let Some(g) = t.map.get(&k) {
                let g = ReuseportGroup::new(g.id, g.reuseport, g.members().to_vec(), self.workers);
                t.map.insert(k, Arc::new(g));
            }
        });
    }

    /// Linux's `reuseport_migrate_sock` selection for a request or child of
    /// a closed listener: another member of the same group, picked by the
    /// flow hash, or `None` (no group, or the group is gone). The caller
    /// checks `tcp_migrate_req` and counts TCPMigrateReqSuccess/Failure.
    pub fn migrate_target(&self, worker: u16, closed: &Listener, flow_hash: u32) -> Option<Arc<Listener>> {
        if !closed.reuseport {
            return None;
        }
        let table = self.shards[shard_of(closed.local.port())].table.load();
        let g = table.group(&GroupKey::of(closed))?;
        if g.id != closed.group_id() {
            return None;
        }
        g.select_by_hash(worker, flow_hash).filter(|m| m.id != closed.id).cloned()
    }

    /// Every hashed listener, with the size of its group.
    pub fn listeners(&self) -> Vec<(Arc<Listener>, usize)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let table = shard.table.load();
            for g in table.groups() {
                out.extend(g.members().iter().map(|m| (m.clone(), g.len())));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    fn any_key(port: u16) -> GroupKey {
        GroupKey { port, addr: Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), family: Family::Inet, v6only: false }
    }

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn listener(id: u64, addr: Ipv4Addr, port: u16, reuseport: bool) -> Arc<Listener> {
        Arc::new(Listener::new(id, SocketAddrV4::new(addr, port), 128, reuseport))
    }

    #[test]
    fn exact_address_beats_wildcard() {
        let h = Lhash::new(2);
        h.insert(listener(1, Ipv4Addr::UNSPECIFIED, 80, false)).unwrap();
        h.insert(listener(2, A, 80, false)).unwrap();
        assert_eq!(h.lookup(0, A, 80, 7).unwrap().id, 2);
        assert_eq!(h.lookup(0, B, 80, 7).unwrap().id, 1);
        assert!(h.lookup(0, A, 81, 7).is_none());
    }

    #[test]
    fn wildcard_and_specific_reuseport_are_separate_groups() {
        let h = Lhash::new(1);
        let g1 = h.insert(listener(1, Ipv4Addr::UNSPECIFIED, 80, true)).unwrap();
        let g2 = h.insert(listener(2, A, 80, true)).unwrap();
        let g3 = h.insert(listener(3, A, 80, true)).unwrap();
        assert_ne!(g1, g2);
        assert_eq!(g2, g3);
        // SYNs to A only ever reach the specific group.
        for k in 0..100u32 {
            assert_ne!(h.lookup(0, A, 80, k.wrapping_mul(0x9e37_79b9)).unwrap().id, 1);
        }
    }

    #[test]
    fn reuseport_spreads_over_members() {
        let h = Lhash::new(1);
        for id in 0..3 {
            h.insert(listener(id, Ipv4Addr::UNSPECIFIED, 443, true)).unwrap();
        }
        let mut hits = [0u32; 3];
        for k in 0..30_000u32 {
            hits[h.lookup(0, A, 443, k.wrapping_mul(0x9e37_79b9)).unwrap().id as usize] += 1;
        }
        for c in hits {
            assert!((9_000..11_000).contains(&c), "{hits:?}");
        }
    }

    #[test]
    fn incoming_cpu_preference_per_worker() {
        let h = Lhash::new(2);
        let ls: Vec<_> = (0..2).map(|id| listener(id, Ipv4Addr::UNSPECIFIED, 80, true)).collect();
        ls[0].set_incoming_cpu(Some(1));
        ls[1].set_incoming_cpu(Some(0));
        for l in &ls {
            h.insert(l.clone()).unwrap();
        }
        for k in 0..64u32 {
            let hash = k.wrapping_mul(0x9e37_79b9);
            assert_eq!(h.lookup(0, A, 80, hash).unwrap().id, 1);
            assert_eq!(h.lookup(1, A, 80, hash).unwrap().id, 0);
        }
        // Dropping the affinity and republishing: plain hash again.
        ls[1].set_incoming_cpu(None);
        h.refresh(&ls[1]);
        let ids: std::collections::HashSet<u64> =
            (0..64u32).map(|k| h.lookup(0, A, 80, k.wrapping_mul(0x9e37_79b9)).unwrap().id).collect();
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn non_reuseport_entry_refuses_a_second_listener() {
        let h = Lhash::new(1);
        h.insert(listener(1, A, 80, false)).unwrap();
        assert_eq!(h.insert(listener(2, A, 80, true)), Err(Errno::Eaddrinuse));
    }

    #[test]
    fn old_snapshot_stays_whole_while_new_one_is_published() {
        let h = Lhash::new(1);
        let l1 = listener(1, Ipv4Addr::UNSPECIFIED, 8080, true);
        h.insert(l1.clone()).unwrap();
        let old = h.snapshot(8080);
        let l2 = listener(2, Ipv4Addr::UNSPECIFIED, 8080, true);
        h.insert(l2.clone()).unwrap();
        h.remove(&l1);
        // The reader's snapshot still has exactly the old group.
        let g = old.group(&any_key(8080)).unwrap();
        assert_eq!(g.members().iter().map(|m| m.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(old.lookup(0, A.into(), 8080, 99).unwrap().id, 1);
        // New readers see only l2.
        assert_eq!(h.lookup(0, A, 8080, 99).unwrap().id, 2);
        h.remove(&l2);
        assert!(h.lookup(0, A, 8080, 99).is_none());
        assert_eq!(old.lookup(0, A.into(), 8080, 99).unwrap().id, 1);
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_group() {
        // A writer toggles between {1,2} and {1,2,3}; readers must always see
        // one of the two member lists, in Linux order.
        let h = Arc::new(Lhash::new(1));
        let ls: Vec<_> = (1..=3).map(|id| listener(id, Ipv4Addr::UNSPECIFIED, 9000, true)).collect();
        h.insert(ls[0].clone()).unwrap();
        h.insert(ls[1].clone()).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Snapshots each reader took, so the writer keeps toggling until
        // both have read while it wrote (on a loaded machine a reader may
        // start only after a fixed number of toggles is over).
        let reads: Arc<[std::sync::atomic::AtomicU64; 2]> = Arc::new(Default::default());
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (h, stop, reads) = (h.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let snap = h.snapshot(9000);
                        let g = snap.group(&any_key(9000)).unwrap();
                        let ids: Vec<u64> = g.members().iter().map(|m| m.id).collect();
                        assert!(ids == [1, 2] || ids == [1, 2, 3], "{ids:?}");
                        reads[r].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut toggles = 0u32;
        while toggles < 2_000 || reads.iter().any(|n| n.load(Ordering::Relaxed) < 100) {
            assert!(std::time::Instant::now() < deadline, "readers did not run");
            h.insert(ls[2].clone()).unwrap();
            h.remove(&ls[2]);
            toggles += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("a reader saw a torn group");
        }
    }

    #[test]
    fn migrate_target_stays_in_the_group() {
        let h = Lhash::new(1);
        let a = listener(1, Ipv4Addr::UNSPECIFIED, 80, true);
        let b = listener(2, Ipv4Addr::UNSPECIFIED, 80, true);
        h.insert(a.clone()).unwrap();
        h.insert(b.clone()).unwrap();
        h.remove(&a);
        for k in 0..16u32 {
            assert_eq!(h.migrate_target(0, &a, k * 0x1000_0000).unwrap().id, 2);
        }
        h.remove(&b);
        assert!(h.migrate_target(0, &a, 1).is_none());
        // A new group on the same port is another group: no migration there.
        let c = listener(3, Ipv4Addr::UNSPECIFIED, 80, true);
        h.insert(c).unwrap();
        assert!(h.migrate_target(0, &a, 1).is_none());
    }
}
