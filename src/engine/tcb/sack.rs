//! The sender's SACK scoreboard (RFC 6675; Linux keeps the same marks on
//! its retransmit queue, `tcp_sacktag_write_queue`): which sequence ranges
//! above SND.UNA the peer reported holding, from the SACK blocks of its
//! ACKs (RFC 2018). From it RFC 6675's `IsLost`, `SetPipe` and `NextSeg`
//! follow, which drive SACK-based loss recovery in the `Tcb`.
//!
//! Bounded: at most [`MAX_RANGES`] disjoint ranges; a block that would need
//! another is ignored (the sender then knows less and retransmits a little
//! more, which is safe). SACKed data stays in the send ring until the
//! cumulative ACK covers it: the receiver may renege (RFC 2018 section 8).

use super::seq::{after, before, seq_max};

/// Ranges remembered: many more than one option carries (4), since each
/// ACK reports the most recent blocks and a large window has many holes.
pub const MAX_RANGES: usize = 32;

/// RFC 6675 `DupThresh`, and where Linux's reordering degree starts
/// (`net.ipv4.tcp_reordering`).
pub const DUP_THRESH: u32 = 3;
/// Linux `net.ipv4.tcp_max_reordering`.
pub const MAX_REORDERING: u32 = 300;

#[derive(Clone, Debug, Default)]
pub struct Scoreboard {
    /// SACKed `[start, end)` ranges, sorted, disjoint, not adjacent, all
    /// after SND.UNA.
    r: [(u32, u32); MAX_RANGES],
    n: u8,
}

impl Scoreboard {
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.r[..self.n as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Take the SACK blocks of an acceptable ACK. Blocks at or below
    /// `snd_una` (D-SACK, RFC 2883) or beyond `snd_max` (invalid) are
    /// ignored. Returns whether anything newly SACKed was learnt, and the
    /// reordering it shows: how far (bytes) below the highest SACKed byte
    /// the lowest newly SACKed byte lies that was never retransmitted (at
    /// or above `rexmit_below`): it arrived late, not lost (Linux
    /// `tcp_check_sack_reordering`).
    pub fn update(&mut self, blocks: &[(u32, u32)], snd_una: u32, snd_max: u32, rexmit_below: u32) -> (bool, u32) {
        let mut news = false;
        let mut reorder = 0;
        let fack = self.fack();
        for &(s, e) in blocks {
            if !after(e, s) || !after(e, snd_una) || after(e, snd_max) || before(s, snd_una) {
                continue;
            }
            let first_new = self.first_unsacked(s, e);
            if self.insert(s, e) {
                news = true;
                if let (Some(f), Some(n)) = (fack, first_new) {
                    if before(n, f) && !before(n, rexmit_below) {
                        reorder = reorder.max(f.wrapping_sub(n));
                    }
                }
            }
        }
        (news, reorder)
    }

    /// The highest SACKed sequence number (+1), Linux's "fack".
    pub fn fack(&self) -> Option<u32> {
        self.ranges().last().map(|r| r.1)
    }

    /// The first byte of `[s, e)` not SACKed yet.
    fn first_unsacked(&self, s: u32, e: u32) -> Option<u32> {
        let mut seq = s;
        for &(a, b) in self.ranges() {
            if before(seq, a) {
                break;
            }
            if before(seq, b) {
                seq = b;
            }
        }
        before(seq, e).then_some(seq)
    }

    /// Add `[s, e)`, merging what it touches. True when it covered new bytes.
    fn insert(&mut self, mut s: u32, mut e: u32) -> bool {
        let n = self.n as usize;
        // First range that ends at or after s (could touch or overlap).
        let i = self.r[..n].iter().position(|r| !before(r.1, s)).unwrap_or(n);
        // Ranges [i, j) overlap or touch [s, e).
        let mut j = i;
        while j < n && !after(self.r[j].0, e) {
            j += 1;
        }
        if j == i + 1 && !before(s, self.r[i].0) && !after(e, self.r[i].1) {
            return false;
        }
        if j > i {
            if before(self.r[i].0, s) {
                s = self.r[i].0;
            }
            e = seq_max(e, self.r[j - 1].1);
            self.r.copy_within(j..n, i + 1);
            self.n -= (j - i - 1) as u8;
        } else {
            if n == MAX_RANGES {
                return false;
            }
            self.r.copy_within(i..n, i + 1);
            self.n += 1;
        }
        self.r[i] = (s, e);
        true
    }

    /// SND.UNA moved to `una`: forget what it covers.
    pub fn advance(&mut self, una: u32) {
        let n = self.n as usize;
        let k = self.r[..n].iter().take_while(|r| !after(r.1, una)).count();
        self.r.copy_within(k..n, 0);
        self.n -= k as u8;
        if self.n > 0 && before(self.r[0].0, una) {
            self.r[0].0 = una;
        }
    }

    /// Bytes SACKed.
    pub fn sacked_bytes(&self) -> u32 {
        self.ranges().iter().fold(0u32, |n, r| n.saturating_add(r.1.wrapping_sub(r.0)))
    }

    /// RFC 6675 `IsLost` as a boundary: every byte not SACKed below the
    /// returned sequence number is lost, none above it is. A byte is lost
    /// when more than (DupThresh - 1) * SMSS bytes above it are SACKed; the
    /// boundary is the start of the lowest range still needed for that.
    /// `None` when nothing is lost.
    /// `dup_thresh` is DupThresh, or the reordering degree seen (Linux
    /// `tp->reordering`).
    pub fn lost_below(&self, mss: u32, dup_thresh: u32) -> Option<u32> {
        let need = dup_thresh.saturating_sub(1).max(1).saturating_mul(mss);
        let mut above = 0u32;
        for r in self.ranges().iter().rev() {
            above = above.saturating_add(r.1.wrapping_sub(r.0));
            if above > need {
                return Some(r.0);
            }
        }
        None
    }

    /// Bytes not SACKed in `[from, to)`.
    pub fn unsacked_in(&self, from: u32, to: u32) -> u32 {
        if !after(to, from) {
            return 0;
        }
        let mut n = to.wrapping_sub(from);
        for &(s, e) in self.ranges() {
            let lo = if after(s, from) { s } else { from };
            let hi = if before(e, to) { e } else { to };
            if after(hi, lo) {
                n = n.saturating_sub(hi.wrapping_sub(lo));
            }
        }
        n
    }

    /// RFC 6675 `SetPipe`: bytes in flight, given that what is not SACKed
    /// below `lost` is lost. Not SACKed and not lost counts once; lost but
    /// retransmitted (below `high_rxt`) counts too.
    pub fn pipe(&self, snd_una: u32, snd_max: u32, high_rxt: u32, lost: u32) -> u32 {
        let lost = if after(lost, snd_una) { lost } else { snd_una };
        let rxt_end = if before(high_rxt, lost) { high_rxt } else { lost };
        self.unsacked_in(lost, snd_max) + self.unsacked_in(snd_una, rxt_end)
    }

    /// RFC 6675 `NextSeg` rule (1): the first lost byte at or after `from`
    /// (HighRxt: the ones before were retransmitted), and how many bytes
    /// from it are lost in a row (up to the next SACKed range or `lost`).
    pub fn next_lost(&self, from: u32, lost: u32) -> Option<(u32, u32)> {
        let mut seq = from;
        for &(s, e) in self.ranges() {
            if !before(seq, lost) {
                return None;
            }
            if before(seq, s) {
                let end = if before(s, lost) { s } else { lost };
                return Some((seq, end.wrapping_sub(seq)));
            }
            if before(seq, e) {
                seq = e;
            }
        }
        before(seq, lost).then(|| (seq, lost.wrapping_sub(seq)))
    }

    /// When `seq` lies in a SACKed range, that range's end.
    pub fn sacked_end(&self, seq: u32) -> Option<u32> {
        self.ranges().iter().find(|r| !before(seq, r.0) && before(seq, r.1)).map(|r| r.1)
    }

    /// The start of the first SACKed range after `seq`.
    pub fn next_sacked(&self, seq: u32) -> Option<u32> {
        self.ranges().iter().find(|r| after(r.0, seq)).map(|r| r.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blocks_merge_and_invalid_ones_are_ignored() {
        let mut b = Scoreboard::default();
        assert!(b.update(&[(300, 400), (100, 200)], 50, 1000, 0).0);
        assert_eq!(b.ranges(), &[(100, 200), (300, 400)]);
        assert!(!b.update(&[(120, 180)], 50, 1000, 0).0, "nothing new");
        // The hole [200, 300) arrives late, 200 below the highest SACKed byte.
        assert_eq!(b.update(&[(200, 300)], 50, 1000, 0), (true, 200));
        assert_eq!(b.ranges(), &[(100, 400)]);
        // D-SACK below snd_una, beyond snd_max, inverted: ignored.
        assert!(!b.update(&[(10, 40), (900, 1100), (600, 500)], 50, 1000, 0).0);
        assert_eq!(b.ranges(), &[(100, 400)]);
        b.advance(150);
        assert_eq!(b.ranges(), &[(150, 400)]);
        b.advance(400);
        assert!(b.is_empty());
    }

    #[test]
    fn is_lost_pipe_and_next_seg_follow_rfc6675() {
        let mss = 100;
        let mut b = Scoreboard::default();
        // Flight [0, 1000): holes at [0, 100) and [300, 400), the rest SACKed
        // except the tail [800, 1000).
        b.update(&[(100, 300), (400, 800)], 0, 1000, 0);
        // 400 bytes SACKed above 300 (> 2 MSS): everything below 400 not SACKed is lost.
        assert_eq!(b.lost_below(mss, DUP_THRESH), Some(400));
        // With a reordering degree of 6 segments seen, 600 bytes are SACKed
        // above 0, not more: nothing is lost yet.
        assert_eq!(b.lost_below(mss, 6), Some(100));
        assert_eq!(b.lost_below(mss, 7), None);
        assert_eq!(b.next_lost(0, 400), Some((0, 100)));
        assert_eq!(b.next_lost(100, 400), Some((300, 100)));
        assert_eq!(b.next_lost(400, 400), None);
        // A boundary beyond the last range (the tail taken as lost).
        assert_eq!(b.next_lost(400, 900), Some((800, 100)));
        // Pipe: the tail only (200); after retransmitting the first hole, 300.
        assert_eq!(b.pipe(0, 1000, 0, 400), 200);
        assert_eq!(b.pipe(0, 1000, 100, 400), 300);
        assert_eq!(b.pipe(0, 1000, 400, 400), 400);
        // Only 2 MSS SACKed above a hole: not lost (could be reordering).
        let mut c = Scoreboard::default();
        assert_eq!(c.update(&[(100, 300)], 0, 1000, 0), (true, 0));
        assert_eq!(c.lost_below(mss, DUP_THRESH), None);
        assert_eq!(c.pipe(0, 1000, 0, 0), 800);
        assert_eq!(c.sacked_end(150), Some(300));
        assert_eq!(c.next_sacked(0), Some(100));
        // A retransmitted hole SACKed (below rexmit_below): no reordering.
        assert_eq!(c.update(&[(20, 50)], 0, 1000, 60), (true, 0));
        assert_eq!(c.ranges(), &[(20, 50), (100, 300)]);
    }

    proptest! {
        /// Against a byte map: the ranges are sorted, disjoint and hold
        /// exactly the bytes of the valid blocks.
        #[test]
        fn matches_a_byte_map(blocks in prop::collection::vec((0u32..400, 1u32..60), 0..40), una in 0u32..50) {
            let base = 0xffff_ff00u32; // across the wrap
            let mut b = Scoreboard::default();
            let mut map = [false; 500];
            for &(s, l) in &blocks {
                let (s, e) = (s, (s + l).min(480));
                if e <= s || s < una { continue; }
                // A block that would need a range beyond MAX_RANGES is
                // dropped whole (false); otherwise all its bytes are held.
                if b.update(&[(base.wrapping_add(s), base.wrapping_add(e))], base.wrapping_add(una), base.wrapping_add(480), base).0 {
                    for m in &mut map[s as usize..e as usize] { *m = true; }
                }
            }
            let mut got = [false; 500];
            let r = b.ranges();
            for w in r.windows(2) {
                prop_assert!(before(w[0].1, w[1].0), "sorted, disjoint, not adjacent: {:?}", r);
            }
            for &(s, e) in r {
                for i in s.wrapping_sub(base)..e.wrapping_sub(base) { got[i as usize] = true; }
            }
            prop_assert_eq!(&got[..], &map[..]);
            let total = got.iter().filter(|x| **x).count() as u32;
            prop_assert_eq!(b.sacked_bytes(), total);
            prop_assert_eq!(b.unsacked_in(base.wrapping_add(una), base.wrapping_add(480)), 480 - una - total);
        }
    }
}
