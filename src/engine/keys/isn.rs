//! Initial sequence numbers (RFC 6528) and per address pair timestamp
//! offsets, as Linux's net/core/secure_seq.c computes them.
//!
//! RFC 6528 §3: `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`
//! where M is a timer ticking about every 4 µs. Linux uses
//! `M = ktime_get_real_ns() >> 6` (a tick every 64 ns, wrapping every
//! ~275 s) and `F = siphash(saddr, daddr, sport << 16 | dport)`; we do the
//! same on engine time, with AES-128 as F ([`IsnGen`]: one block cipher
//! call, where SipHash-2-4 cost a tenth of a queued SYN's instructions).
//! Used for request socks on the SYN queue path; the cookie path takes its
//! ISN from [`super::syncookie::make`].


use super::block_prf::BlockPrf;
use super::sipkey::SipKey;
use crate::engine::flow::FlowKey;
use crate::engine::time::Instant;

/// RFC 6528's M: engine time in units of 64 ns, truncated to 32 bits.
pub fn isn_clock(now: Instant) -> u32 {
    (now.as_nanos() >> 6) as u32
}

/// RFC 6528's F keyed once: the ISN generator of a worker.
#[derive(Clone, Debug)]
pub struct IsnGen {
    prf: BlockPrf,
}

impl IsnGen {
    pub fn new(key: SipKey) -> IsnGen {
        IsnGen { prf: BlockPrf::new(key) }
    }

    /// The ISN for `flow` at `now`: F over the 4-tuple, plus the 64 ns
    /// clock (Linux's `secure_tcp_seq`).
    /// Over IPv6 (Linux's `secure_tcpv6_seq`) F covers both 16-byte
    /// addresses: a three-block CBC-MAC, its last block tagged 6.
    #[inline]
    pub fn isn(&self, now: Instant, flow: &FlowKey) -> u32 {
        let ports = (u32::from(flow.local_port) << 16) | u32::from(flow.peer_port);
        let f = if flow.is_v4() {
            self.prf.block([flow.local_v4(), flow.peer_v4(), ports, 0])
        } else {
            self.isn6(flow, ports)
        };
        f.wrapping_add(isn_clock(now))
    }

    #[inline(never)]
    fn isn6(&self, flow: &FlowKey, ports: u32) -> u32 {
        self.prf.mac3(flow.local.to_be_bytes(), flow.peer.to_be_bytes(), [ports, 0, 0, 6])
    }
}

/// Linux's `secure_tcp_ts_off(local, remote)`: a per address pair offset
/// added to our TSvals so peers cannot read our clock (and cannot correlate
/// connections to different addresses). Linux only applies it when
/// `tcp_timestamps == 1` (2 means timestamps without offsets); that choice
/// is the caller's.
/// Over IPv6 (`secure_tcpv6_ts_off`) the hash covers both 16-byte addresses.
pub fn ts_off(key: SipKey, flow: &FlowKey) -> u32 {
    if flow.is_v4() {
        return key.hash::<2, 4>(&[(u64::from(flow.local_v4()) << 32) | u64::from(flow.peer_v4())], 0, 0) as u32;
    }
    let (l, p) = (flow.local, flow.peer);
    key.hash::<2, 4>(&[(l >> 64) as u64, l as u64, (p >> 64) as u64, p as u64], 0, 0) as u32
}

/// Address pairs' timestamp offsets, remembered: a flood from one client,
/// or a client's many connections, pays for [`ts_off`]'s SipHash once
/// (kept as Linux computes it: it is paid once per address pair).
/// Direct-mapped by a hash of the pair; an entry is only ever the offset
/// of the pair it names, so a miss is the only cost of a collision.
pub struct TsOffCache {
    key: SipKey,
    /// Added to every offset (see [`TsOffCache::with_base`]).
    base: u32,
    /// IPv4 pairs: (peer, local, offset).
    slots: Box<[(u32, u32, u32)]>,
    /// IPv6 pairs, allocated with the first one (an IPv4-only server
    /// never pays for them).
    slots6: Vec<Slot6>,
}

/// An IPv6 pair and its offset.
#[derive(Clone, Copy, Default)]
struct Slot6 {
    peer: u128,
    local: u128,
    off: u32,
}

const TS_OFF_SLOTS: usize = 4096;
const TS_OFF_SLOTS6: usize = 1024;

impl TsOffCache {
    pub fn new(key: SipKey) -> TsOffCache {
        TsOffCache::with_base(key, 0)
    }

    /// Offsets of `base` plus [`ts_off`]: with `base` the UTC milliseconds
    /// at engine time zero, TSvals are UTC plus the keyed offset, the same
    /// clock on every server of a fleet (so a client whose handshake moved
    /// from one to another does not see the TSval go back, which its PAWS
    /// check, Linux's `tcp_paws_discard`, would drop).
    pub fn with_base(key: SipKey, base: u32) -> TsOffCache {
        // (0, 0) is never a pair we answer: 0.0.0.0 is a martian source.
        TsOffCache { key, base, slots: vec![(0, 0, 0); TS_OFF_SLOTS].into_boxed_slice(), slots6: Vec::new() }
    }

    /// [`ts_off`] of `flow`'s address pair.
    #[inline]
    pub fn get(&mut self, flow: &FlowKey) -> u32 {
        if !flow.is_v4() {
            return self.get6(flow);
        }
        let (peer, local) = (flow.peer_v4(), flow.local_v4());
        let i = (peer ^ local.rotate_left(16)).wrapping_mul(0x9e37_79b1) >> 20;
        let slot = &mut self.slots[i as usize % TS_OFF_SLOTS];
        if slot.0 == peer && slot.1 == local {
            return slot.2.wrapping_add(self.base);
        }
        let off = ts_off(self.key, flow);
        *slot = (peer, local, off);
        off.wrapping_add(self.base)
    }

    #[inline(never)]
    fn get6(&mut self, flow: &FlowKey) -> u32 {
        // The interface ids' low words: what differs between peers of a
        // prefix (and a collision is only a miss).
        let i = (flow.peer as u32 ^ (flow.local as u32).rotate_left(16)).wrapping_mul(0x9e37_79b1) >> 22;
        match self.slots6.get(i as usize % TS_OFF_SLOTS6) {
            Some(slot) if slot.peer == flow.peer && slot.local == flow.local => slot.off.wrapping_add(self.base),
            _ => self.fill6(flow, i as usize % TS_OFF_SLOTS6),
        }
    }

    /// A miss: the offset computed and kept in slot `i`.
    #[cold]
    #[inline(never)]
    fn fill6(&mut self, flow: &FlowKey, i: usize) -> u32 {
        if self.slots6.is_empty() {
            // (::, ::) is never a pair we answer: :: is no one's address.
            self.slots6 = vec![Slot6::default(); TS_OFF_SLOTS6];
        }
        let off = ts_off(self.key, flow);
        self.slots6[i] = Slot6 { peer: flow.peer, local: flow.local, off };
        off.wrapping_add(self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Duration;
    use proptest::prelude::*;

    fn isn(key: SipKey, now: Instant, flow: &FlowKey) -> u32 {
        IsnGen::new(key).isn(now, flow)
    }

    const KEY: SipKey = SipKey::from_bytes(*b"dlisten-isn-key!");
    const L: u32 = 0xC612_0001; // 198.18.0.1
    const R: u32 = 0xC613_0002; // 198.19.0.2

    /// The flow from `laddr:lport` (us) to `raddr:rport` (the peer).
    fn flow(laddr: u32, lport: u16, raddr: u32, rport: u16) -> FlowKey {
        FlowKey::v4(laddr, raddr, lport, rport)
    }

    /// RFC 9293 sequence comparison: `a` is before `b`.
    fn seq_lt(a: u32, b: u32) -> bool {
        (a.wrapping_sub(b) as i32) < 0
    }

    #[test]
    fn the_cache_gives_what_ts_off_computes() {
        let mut cache = TsOffCache::new(KEY);
        for peer in (0..20_000u32).map(|i| R + (i % 7000)) {
            let f = flow(L, 80, peer, 40000 + (peer % 100) as u16);
            assert_eq!(cache.get(&f), ts_off(KEY, &f));
        }
    }

    #[test]
    fn the_cache_gives_what_ts_off_computes_over_ipv6() {
        let mut cache = TsOffCache::new(KEY);
        let ours: std::net::Ipv6Addr = "2001:2::1".parse().unwrap();
        for i in 0..6000u128 {
            let peer = std::net::Ipv6Addr::from(0x2001_0002_0000_0001_0000_0000_0000_0000u128 + (i % 2500) * 0x1_0001);
            let f = FlowKey::v6(ours, peer, 80, 40000 + (i % 100) as u16);
            assert_eq!(cache.get(&f), ts_off(KEY, &f));
        }
    }

    #[test]
    fn the_base_is_added_to_every_offset() {
        let mut cache = TsOffCache::with_base(KEY, u32::MAX - 5);
        let f = flow(L, 80, R, 40000);
        for _ in 0..2 {
            assert_eq!(cache.get(&f), ts_off(KEY, &f).wrapping_add(u32::MAX - 5));
        }
    }

    #[test]
    fn clock_ticks_every_64ns() {
        assert_eq!(isn_clock(Instant::from_nanos(63)), 0);
        assert_eq!(isn_clock(Instant::from_nanos(64)), 1);
        assert_eq!(isn_clock(Instant::from_secs(1)), 15_625_000);
    }

    #[test]
    fn deterministic_for_a_fixed_key() {
        let t = Instant::from_secs(12);
        assert_eq!(isn(KEY, t, &flow(L, 80, R, 40000)), isn(KEY, t, &flow(L, 80, R, 40000)));
        assert_eq!(ts_off(KEY, &flow(L, 0, R, 0)), ts_off(KEY, &flow(L, 0, R, 0)));
        let other = SipKey::from_bytes([3; 16]);
        assert_ne!(isn(KEY, t, &flow(L, 80, R, 40000)), isn(other, t, &flow(L, 80, R, 40000)));
        assert_ne!(ts_off(KEY, &flow(L, 0, R, 0)), ts_off(other, &flow(L, 0, R, 0)));
    }

    #[test]
    fn differs_across_tuples() {
        let t = Instant::from_secs(5);
        let base = isn(KEY, t, &flow(L, 80, R, 40000));
        assert_ne!(base, isn(KEY, t, &flow(L, 80, R, 40001)));
        assert_ne!(base, isn(KEY, t, &flow(L, 81, R, 40000)));
        assert_ne!(base, isn(KEY, t, &flow(L + 1, 80, R, 40000)));
        assert_ne!(base, isn(KEY, t, &flow(L, 80, R + 1, 40000)));
        // Swapping the roles of the two ends is another connection.
        assert_ne!(base, isn(KEY, t, &flow(R, 40000, L, 80)));
        assert_ne!(ts_off(KEY, &flow(L, 0, R, 0)), ts_off(KEY, &flow(R, 0, L, 0)));
        // Many client ports: no two ISNs collide at the same instant.
        let mut seen: Vec<u32> = (1024..5024).map(|p| isn(KEY, t, &flow(L, 80, R, p))).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4000);
    }

    #[test]
    fn advances_with_the_clock_for_one_tuple() {
        let t0 = Instant::from_secs(1000);
        let a = isn(KEY, t0, &flow(L, 80, R, 40000));
        let b = isn(KEY, t0 + Duration::from_millis(1), &flow(L, 80, R, 40000));
        assert_eq!(b.wrapping_sub(a), 1_000_000 / 64);
    }

    proptest! {
        #[test]
        fn monotonic_in_time(start in 0u64..1 << 60, step in 64u64..(1u64 << 37),
                             lport: u16, rport: u16, raddr: u32) {
            // Within half the 32-bit space of 64 ns ticks (~137 s), a later
            // SYN on the same tuple always gets a later ISN, so an old
            // duplicate cannot fall in the new connection's window.
            let t0 = Instant::from_nanos(start);
            let t1 = Instant::from_nanos(start + step);
            let a = isn(KEY, t0, &flow(L, lport, raddr, rport));
            let b = isn(KEY, t1, &flow(L, lport, raddr, rport));
            prop_assert!(seq_lt(a, b));
            prop_assert_eq!(b.wrapping_sub(a), isn_clock(t1).wrapping_sub(isn_clock(t0)));
        }
    }
}
