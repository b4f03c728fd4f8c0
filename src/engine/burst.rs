//! The receive path over a burst, in stages (VPP's vectors): every frame of
//! the burst goes through one stage before any goes through the next, so
//! each stage's code and tables stay warm, and the worker can count each
//! stage's cycles with one clock read per stage rather than per packet.
//!
//! parse (the host: Ethernet, ARP, IPv4, ICMP, UDP, the TCP header) ->
//! lookup (connection, TIME_WAIT, request sock, listener) -> tcp (the
//! listen path and the connections) -> build (the SYN-ACKs decided).
//!
//! The result is the one of handing the frames to [`Host::rx`] one by one:
//! a lookup can only be changed by an earlier segment of the same flow, so
//! a segment whose flow may have come earlier in the burst is looked up
//! again when it is delivered.

use crate::engine::host::{Host, PlainCount, RxMeta, TcpInput, Taken};
use crate::engine::flow::FlowKey;
use crate::engine::tcp::{Found, TcpEngine};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::Stage;
use arrayvec::ArrayVec;

/// Frames handled per pass through the stages.
pub const MAX_BURST: usize = 64;
const _: () = assert!(MAX_BURST <= 64, "the plain-SYN mask is one u64");

/// Told when a stage has handled the burst's packets; the worker reads its
/// cycle counter there. The engine itself reads no clock.
pub trait StageClock {
    fn mark(&mut self, stage: Stage, packets: usize);
}

/// For callers that do not count (tests, the rig).
pub struct NoClock;

impl StageClock for NoClock {
    #[inline]
    fn mark(&mut self, _: Stage, _: usize) {}
}

/// Flows seen earlier in the burst, by a 10-bit hash of their key: a hit
/// may be another flow (then the second lookup is only wasted work), a miss
/// is certain.
#[derive(Default)]
struct SeenFlows([u64; 16]);

impl SeenFlows {
    /// Record `key`; true when it (or a key with the same hash) was seen before.
    #[inline]
    fn insert(&mut self, key: &FlowKey) -> bool {
        // The low word is an IPv4 address whole, an IPv6 one's interface id part.
        let fold = |a: u128| a as u32 ^ (a >> 64) as u32;
        let x = fold(key.peer) ^ fold(key.local).rotate_left(13) ^ (u32::from(key.peer_port) << 16 | u32::from(key.local_port));
        let h = (x.wrapping_mul(0x9e37_79b1) >> 22) as usize;
        let (word, bit) = (h / 64, 1u64 << (h % 64));
        let seen = self.0[word] & bit != 0;
        self.0[word] |= bit;
        seen
    }
}

/// Receive a burst of frames: answers go to `tx`, stage ends to `clock`.
pub fn receive(
    host: &mut Host,
    tcp: &mut TcpEngine,
    now: Instant,
    frames: &[(&[u8], RxMeta)],
    tx: &mut impl TxSink,
    clock: &mut impl StageClock,
) {
    for chunk in frames.chunks(MAX_BURST) {
        receive_chunk(host, tcp, now, chunk, tx, clock);
    }
}

fn receive_chunk(
    host: &mut Host,
    tcp: &mut TcpEngine,
    now: Instant,
    frames: &[(&[u8], RxMeta)],
    tx: &mut impl TxSink,
    clock: &mut impl StageClock,
) {
    let mut segs: ArrayVec<TcpInput<'_>, MAX_BURST> = ArrayVec::new();
    // Bit i: segs[i] is a plain SYN (MAX_BURST is 64).
    let (mut plain_syns, mut plain) = (0u64, PlainCount::default());
    for &(frame, meta) in frames {
        if let Some((seg, syn)) = host.plain_tcp(frame, meta) {
            plain_syns |= u64::from(syn) << segs.len();
            plain.v4 += 1;
            segs.push(seg);
        } else if let Some((seg, syn)) = host.plain_tcp6(frame, meta) {
            plain_syns |= u64::from(syn) << segs.len();
            plain.v6 += 1;
            segs.push(seg);
        } else if let Some(seg) = host.parse(now, frame, meta, tx) {
            segs.push(seg);
        }
    }
    host.count_plain(plain);
    clock.mark(Stage::Parse, frames.len());

    let mut found: ArrayVec<Found, MAX_BURST> = ArrayVec::new();
    let mut seen = SeenFlows::default();
    for seg in &segs {
        let mut f = tcp.lookup(seg);
        f.stale = seen.insert(f.key());
        found.push(f);
    }
    clock.mark(Stage::Lookup, segs.len());

    // By reference: moving the burst's lookups would copy them all again.
    for (i, (seg, f)) in segs.iter().zip(found.iter()).enumerate() {
        if plain_syns >> i & 1 != 0 && tcp.syn_lane(now, seg, f, &host.tx_context(), tx) {
            continue;
        }
        let taken = tcp.deliver(now, seg, f, &mut host.tx_context(), tx);
        if taken == Taken::NoSocket {
            host.no_socket(now, seg, tx);
        }
    }
    clock.mark(Stage::Tcp, segs.len());

    let synacks = tcp.pending_synacks();
    tcp.build_synacks(host.counters(), tx);
    clock.mark(Stage::Build, synacks);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(peer_port: u16) -> FlowKey {
        FlowKey::v4(0xc612_0001, 0xc612_0002, 80, peer_port)
    }

    #[test]
    fn a_flow_seen_before_in_the_burst_is_flagged() {
        let mut seen = SeenFlows::default();
        assert!(!seen.insert(&key(1000)));
        assert!(seen.insert(&key(1000)));
        // Distinct flows are mostly not flagged (a 10-bit filter).
        let flagged = (2000..2032).filter(|&p| seen.insert(&key(p))).count();
        assert!(flagged <= 4, "{flagged} of 32 distinct flows flagged");
    }
}
