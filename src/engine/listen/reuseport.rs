//! SO_REUSEPORT groups as the workers see them: an immutable, published
//! member list plus, per worker, the SO_INCOMING_CPU steering table.

use super::listener::Listener;
use std::sync::Arc;

/// Linux's `reciprocal_scale`: maps a 32-bit hash onto `[0, n)` without a
/// division.
#[inline]
pub fn reciprocal_scale(hash: u32, n: u32) -> u32 {
    ((hash as u64 * n as u64) >> 32) as u32
}

/// One (address, port) entry of the listening hash: a reuseport group, or a
/// single listener without SO_REUSEPORT (a group of one that nobody joins).
pub struct ReuseportGroup {
    pub id: u64,
    /// Whether members may join (the first member had SO_REUSEPORT).
    pub reuseport: bool,
    /// Linux's `reuse->socks[]`, in its order: a new member is appended, a
    /// leaving member is replaced by the last one (`__reuseport_detach_sock`).
    members: Vec<Arc<Listener>>,
    /// Per worker: `None` when no member has SO_INCOMING_CPU == this worker,
    /// else `next_affine[i]` = the first member at or after `i` (cyclically)
    /// that is affine to this worker.
    affine: Vec<Option<Box<[u16]>>>,
}

impl ReuseportGroup {
    pub fn new(id: u64, reuseport: bool, members: Vec<Arc<Listener>>, workers: u16) -> Self {
        let n = members.len();
        let affine = (0..workers)
            .map(|w| {
                let is_affine = |j: usize| members[j].incoming_cpu() == Some(w);
                if !(0..n).any(is_affine) {
                    return None;
                }
                // Scan twice backwards so every index sees the next affine
                // member, wrapping around the end.
                let mut next = vec![0u16; n];
                let mut last = 0u16;
                for k in (0..2 * n).rev() {
                    let j = k % n;
                    if is_affine(j) {
                        last = j as u16;
                    }
                    if k < n {
                        next[k] = last;
                    }
                }
                Some(next.into_boxed_slice())
            })
            .collect();
        ReuseportGroup { id, reuseport, members, affine }
    }

    pub fn members(&self) -> &[Arc<Listener>] {
        &self.members
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Linux's `reuseport_select_sock_by_hash` as seen from `worker`: start
    /// at `reciprocal_scale(hash, n)`; when some member is affine to this
    /// worker (SO_INCOMING_CPU), walk on to the first affine member;
    /// otherwise the hashed member.
    pub fn select_by_hash(&self, worker: u16, hash: u32) -> Option<&Arc<Listener>> {
        self.members.get(self.select_index(worker, hash)?)
    }

    /// The index in `members()` that [`Self::select_by_hash`] picks.
    #[inline]
    pub fn select_index(&self, worker: u16, hash: u32) -> Option<usize> {
        let n = u32::try_from(self.members.len()).ok().filter(|&n| n > 0)?;
        let i = reciprocal_scale(hash, n) as usize;
        let j = match self.affine.get(worker as usize) {
            Some(Some(next)) => next.get(i).map_or(i, |&j| j as usize),
            _ => i,
        };
        Some(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn member(id: u64, cpu: Option<u16>) -> Arc<Listener> {
        let l = Listener::new(id, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16, true);
        l.set_incoming_cpu(cpu);
        Arc::new(l)
    }

    #[test]
    fn reciprocal_scale_is_linux() {
        assert_eq!(reciprocal_scale(0, 4), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 4), 3);
        assert_eq!(reciprocal_scale(0x4000_0000, 4), 1);
        assert_eq!(reciprocal_scale(0x7fff_ffff, 2), 0);
        assert_eq!(reciprocal_scale(0x8000_0000, 2), 1);
        assert_eq!(reciprocal_scale(12345, 0), 0);
    }

    #[test]
    fn hash_spreads_evenly() {
        let g = ReuseportGroup::new(1, true, (0..4).map(|i| member(i, None)).collect(), 2);
        let mut hits = [0u32; 4];
        for k in 0..40_000u32 {
            // A multiplicative spread of the key stands in for Toeplitz.
            let id = g.select_by_hash(0, k.wrapping_mul(0x9e37_79b9)).unwrap().id;
            hits[id as usize] += 1;
        }
        for h in hits {
            assert!((9_000..11_000).contains(&h), "{hits:?}");
        }
    }

    #[test]
    fn incoming_cpu_walks_to_the_first_affine_member() {
        // Members 0..4; member 1 is affine to worker 0, member 3 to worker 1.
        let g = ReuseportGroup::new(
            1,
            true,
            vec![member(0, None), member(1, Some(0)), member(2, None), member(3, Some(1))],
            3,
        );
        let at = |i: u32| i * 0x4000_0000; // hashes landing on index i
        for i in 0..4 {
            assert_eq!(g.select_by_hash(0, at(i)).unwrap().id, 1);
            assert_eq!(g.select_by_hash(1, at(i)).unwrap().id, 3);
            // Worker 2 has no affine member: plain hash.
            assert_eq!(g.select_by_hash(2, at(i)).unwrap().id, i as u64);
        }
        // Out-of-range worker: plain hash, no panic.
        assert_eq!(g.select_by_hash(9, at(2)).unwrap().id, 2);
    }

    #[test]
    fn walk_wraps_around_and_picks_nearest() {
        let g = ReuseportGroup::new(
            1,
            true,
            vec![member(0, Some(0)), member(1, None), member(2, Some(0)), member(3, None)],
            1,
        );
        let at = |i: u32| i * 0x4000_0000;
        let picks: Vec<u64> = (0..4).map(|i| g.select_by_hash(0, at(i)).unwrap().id).collect();
        assert_eq!(picks, vec![0, 2, 2, 0]);
    }

    #[test]
    fn empty_group_selects_nothing() {
        let g = ReuseportGroup::new(1, true, vec![], 1);
        assert!(g.select_by_hash(0, 7).is_none());
    }
}
