//! The receive buffer: one ring allocated at connection creation, holding
//! in-order unread bytes followed by the receive window. Out-of-order
//! segments are written straight to their place in the window, and only
//! their sequence ranges are remembered (at most [`MAX_OOO_RANGES`]), so the
//! out-of-order queue is bounded by bytes (the free space) and by ranges,
//! and costs no allocation.

use super::ring::grown;
use super::seq::{after, before, seq_max};

/// Out-of-order ranges kept; a segment that would need another is dropped
/// (the peer retransmits it). Four is what one SACK option can carry.
pub const MAX_OOO_RANGES: usize = 4;

#[derive(Debug)]
pub struct RecvBuf {
    /// The ring as allocated so far; it grows on demand up to `ring`.
    buf: Box<[u8]>,
    /// Window-rounding slack beyond `cap` (less than 2^14: the largest scale unit).
    slack: u16,
    /// The buffer size windows are offered from (the ring has some slack).
    cap: u32,
    /// Index of the first unread byte.
    head: u32,
    /// In-order unread bytes.
    len: u32,
    /// Out-of-order `[start, end)` sequence ranges, disjoint, not adjacent
    /// to each other, all after `rcv_nxt`.
    ooo: [(u32, u32); MAX_OOO_RANGES],
    ooo_n: u8,
    /// Index in `ooo` of the range the latest segment went to: RFC 2018
    /// wants it reported first.
    ooo_recent: u8,
}

impl RecvBuf {
    /// `cap` bytes of buffer plus `slack` bytes that only a window rounded
    /// up to the window-scale unit can reach (see `Tcb::select_window`).
    pub fn new(cap: u32, slack: u32) -> RecvBuf {
        RecvBuf {
            cap,
            buf: Box::default(),
            slack: slack.min(u32::from(u16::MAX)) as u16,
            head: 0,
            len: 0,
            ooo: [(0, 0); MAX_OOO_RANGES],
            ooo_n: 0,
            ooo_recent: 0,
        }
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Ring size, slack included: the most bytes ever held.
    pub fn ring_len(&self) -> u32 {
        self.cap + u32::from(self.slack)
    }

    /// In-order bytes the application has not read.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Space after the unread bytes: the largest window we can offer.
    pub fn free(&self) -> u32 {
        self.cap.saturating_sub(self.len)
    }

    /// Room left in the ring, slack included: what `store` accepts.
    pub fn room(&self) -> u32 {
        self.ring_len() - self.len
    }

    pub fn has_ooo(&self) -> bool {
        self.ooo_n > 0
    }

    /// Bytes held in out-of-order ranges.
    pub fn ooo_bytes(&self) -> u32 {
        self.ranges().iter().map(|r| r.1.wrapping_sub(r.0)).sum()
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ooo[..self.ooo_n as usize]
    }

    /// Copy out up to `dst.len()` in-order bytes.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = (self.len as usize).min(dst.len());
        let cap = self.buf.len();
        let head = self.head as usize;
        let first = n.min(cap - head);
        dst[..first].copy_from_slice(&self.buf[head..head + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = ((head + n) % cap.max(1)) as u32;
        self.len -= n as u32;
        n
    }

    /// Drop all unread bytes (the application is gone).
    pub fn discard(&mut self) {
        self.len = 0;
        self.ooo_n = 0;
    }

    /// Store `data`, which starts at `seq`, given `rcv_nxt`. The caller has
    /// trimmed it to `[rcv_nxt, rcv_nxt + room())`. Returns the new
    /// `rcv_nxt` (advanced over this segment and any out-of-order ranges it
    /// joins), or `None` if it is out of order and no range was free.
    pub fn store(&mut self, rcv_nxt: u32, seq: u32, data: &[u8]) -> Option<u32> {
        let off = seq.wrapping_sub(rcv_nxt);
        if off as u64 + data.len() as u64 > self.room() as u64 || data.is_empty() {
            return Some(rcv_nxt);
        }
        let end = seq.wrapping_add(data.len() as u32);
        if off != 0 && !self.ooo_insert(seq, end) {
            return None;
        }
        self.write_at(off, data);
        if off != 0 {
            return Some(rcv_nxt);
        }
        // In order: advance, then swallow every range now reached.
        let mut nxt = end;
        while let Some(i) = self.ranges().iter().position(|r| !after(r.0, nxt)) {
            nxt = seq_max(nxt, self.ooo[i].1);
            self.ooo_remove(i);
        }
        self.len += nxt.wrapping_sub(rcv_nxt);
        Some(nxt)
    }

    fn write_at(&mut self, off: u32, data: &[u8]) {
        let need = self.len as usize + off as usize + data.len();
        if need > self.buf.len() {
            // Rotating to the front keeps every offset from `head` valid,
            // out-of-order ranges included.
            self.buf = grown(&self.buf, self.head as usize, need, self.ring_len() as usize);
            self.head = 0;
        }
        let cap = self.buf.len();
        let start = (self.head as usize + self.len as usize + off as usize) % cap;
        let first = data.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Add `[start, end)` to the ranges, merging with any it touches.
    fn ooo_insert(&mut self, mut start: u32, mut end: u32) -> bool {
        // Merge every overlapping or adjacent range into the new one.
        let mut i = 0;
        while i < self.ooo_n as usize {
            let (s, e) = self.ooo[i];
            if !after(s, end) && !before(e, start) {
                if before(s, start) {
                    start = s;
                }
                if after(e, end) {
                    end = e;
                }
                self.ooo_remove(i);
            } else {
                i += 1;
            }
        }
        if self.ooo_n as usize == MAX_OOO_RANGES {
            return false;
        }
        self.ooo[self.ooo_n as usize] = (start, end);
        self.ooo_recent = self.ooo_n;
        self.ooo_n += 1;
        true
    }

    fn ooo_remove(&mut self, i: usize) {
        let n = self.ooo_n as usize;
        self.ooo.copy_within(i + 1..n, i);
        self.ooo_n -= 1;
        self.ooo_recent = 0;
    }

    /// Up to `max` SACK blocks (RFC 2018 4: the block holding the most
    /// recently received segment first, then the others).
    pub fn sack_blocks(&self, max: usize, out: &mut [(u32, u32); MAX_OOO_RANGES]) -> u8 {
        let n = (self.ooo_n as usize).min(max).min(MAX_OOO_RANGES);
        if n == 0 {
            return 0;
        }
        let recent = (self.ooo_recent as usize).min(self.ooo_n as usize - 1);
        out[0] = self.ooo[recent];
        let mut k = 1;
        for (i, r) in self.ranges().iter().enumerate() {
            if k == n {
                break;
            }
            if i != recent {
                out[k] = *r;
                k += 1;
            }
        }
        n as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_wrap() {
        let mut b = RecvBuf::new(8, 0);
        assert_eq!(b.store(100, 100, b"abcdef"), Some(106));
        let mut out = [0u8; 4];
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // 6 free now; the write wraps around the ring end.
        assert_eq!(b.store(106, 106, b"ghijkl"), Some(112));
        let mut out = [0u8; 16];
        assert_eq!(b.read(&mut out), 8);
        assert_eq!(&out[..8], b"efghijkl");
    }

    #[test]
    fn out_of_order_fills_in() {
        let mut b = RecvBuf::new(64, 0);
        assert_eq!(b.store(0, 10, b"klm"), Some(0));
        assert_eq!(b.store(0, 4, b"efg"), Some(0));
        assert_eq!(b.ranges().len(), 2);
        let mut s = [(0, 0); MAX_OOO_RANGES];
        assert_eq!(b.sack_blocks(3, &mut s), 2);
        assert_eq!(s[0], (4, 7));
        assert_eq!(b.store(0, 7, b"hij"), Some(0));
        assert_eq!(b.ranges(), &[(4, 13)]);
        assert_eq!(b.store(0, 0, b"abcd"), Some(13));
        assert!(!b.has_ooo());
        let mut out = [0u8; 13];
        b.read(&mut out);
        assert_eq!(&out, b"abcdefghijklm");
    }

    #[test]
    fn bounded_ranges() {
        let mut b = RecvBuf::new(64, 0);
        for i in 0..MAX_OOO_RANGES as u32 {
            assert_eq!(b.store(0, 2 + 4 * i, b"x"), Some(0));
        }
        assert_eq!(b.store(0, 40, b"y"), None);
        assert_eq!(b.ranges().len(), MAX_OOO_RANGES);
    }
}
