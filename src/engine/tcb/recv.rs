//! The receive buffer: a ring holding in-order unread bytes followed by
//! the receive window. Out-of-order segments are written straight to their
//! place in the window, and only their sequence ranges are remembered (at
//! most [`MAX_OOO_RANGES`], most recently extended first: the order SACK
//! blocks are reported in), so the out-of-order queue is bounded by bytes
//! (the free space) and by ranges. The ring grows as data arrives, within
//! what the worker's memory pool grants, and is released when the
//! application has read everything (Linux frees an skb once it is read):
//! an idle connection holds no receive memory, and the range list exists
//! only while something is out of order.

use super::ring::{resized, ring_size};
use super::seq::{after, before, seq_max};

/// Out-of-order ranges kept; a segment that would need another is dropped
/// (the peer retransmits it). Linux keeps any number (an rbtree of skbs);
/// a large window with a lossy path has many holes at once.
pub const MAX_OOO_RANGES: usize = 32;

/// SACK blocks one option carries (Linux `TCP_NUM_SACKS`).
pub const MAX_SACK_BLOCKS: usize = 4;

/// Out-of-order `[start, end)` sequence ranges, disjoint, not adjacent
/// to each other, all after `rcv_nxt`, the most recently extended first
/// (RFC 2018 section 4: the first SACK block reports the latest segment,
/// then the most recently reported others; Linux `tcp_sack_new_ofo_skb`).
#[derive(Debug, Default)]
struct OooRanges {
    r: [(u32, u32); MAX_OOO_RANGES],
    n: u8,
}

/// Bytes one out-of-order range list costs while it exists.
const OOO_MEM: u32 = std::mem::size_of::<OooRanges>() as u32;

#[derive(Debug)]
pub struct RecvBuf {
    /// The ring as allocated so far; it grows on demand up to `ring_len()`
    /// and is empty when nothing is held.
    buf: Box<[u8]>,
    /// Present while segments are held out of order.
    ooo: Option<Box<OooRanges>>,
    /// The buffer size windows are offered from (the ring has some slack).
    cap: u32,
    /// Index of the first unread byte.
    head: u32,
    /// In-order unread bytes.
    len: u32,
    /// Window-rounding slack beyond `cap` (less than 2^14: the largest scale unit).
    slack: u16,
    /// The size the ring had when it last drained, in 4 KiB units (at most
    /// 1 MiB): the next data takes that much at once instead of growing
    /// through every power of two again, burst after burst of an upload.
    last_units: u8,
}

impl RecvBuf {
    /// `cap` bytes of buffer plus `slack` bytes that only a window rounded
    /// up to the window-scale unit can reach (see `Tcb::select_window`).
    pub fn new(cap: u32, slack: u32) -> RecvBuf {
        RecvBuf {
            cap,
            buf: Box::default(),
            ooo: None,
            slack: slack.min(u32::from(u16::MAX)) as u16,
            head: 0,
            len: 0,
            last_units: 0,
        }
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Receive autotuning made the buffer larger: windows are offered from
    /// `cap` now, and the ring may grow to it (as data arrives).
    pub fn grow_cap(&mut self, cap: u32) {
        self.cap = self.cap.max(cap);
    }

    /// Ring size, slack included: the most bytes ever held.
    pub fn ring_len(&self) -> u32 {
        self.cap + u32::from(self.slack)
    }

    /// Bytes allocated (ring and range list): what the memory pool is charged.
    pub fn mem(&self) -> u32 {
        self.buf.len() as u32 + if self.ooo.is_some() { OOO_MEM } else { 0 }
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
        self.ooo.is_some()
    }

    /// Bytes held in out-of-order ranges.
    pub fn ooo_bytes(&self) -> u32 {
        self.ranges().iter().map(|r| r.1.wrapping_sub(r.0)).sum()
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        match &self.ooo {
            Some(o) => &o.r[..o.n as usize],
            None => &[],
        }
    }

    /// Copy out up to `dst.len()` in-order bytes. The ring is released
    /// when nothing is left in it.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = (self.len as usize).min(dst.len());
        if n == 0 {
            return 0;
        }
        let cap = self.buf.len();
        let head = self.head as usize;
        let first = n.min(cap - head);
        dst[..first].copy_from_slice(&self.buf[head..head + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = ((head + n) % cap.max(1)) as u32;
        self.len -= n as u32;
        if self.len == 0 && self.ooo.is_none() {
            self.release();
        }
        n
    }

    /// Drop all unread bytes (the application is gone) and release the ring.
    pub fn discard(&mut self) {
        self.len = 0;
        self.ooo = None;
        self.release();
    }

    fn release(&mut self) {
        if !self.buf.is_empty() {
            self.last_units = (self.buf.len() >> 12).min(usize::from(u8::MAX)) as u8;
        }
        self.buf = Box::default();
        self.head = 0;
    }

    /// Store `data`, which starts at `seq`, given `rcv_nxt`. The caller has
    /// trimmed it to `[rcv_nxt, rcv_nxt + room())`. The ring grows by at
    /// most `mem_room` bytes (taken from it); in-order data beyond what it
    /// can then hold is cut off, out-of-order data that does not fit is
    /// dropped. In-order data into an empty buffer always gets the first
    /// ring (Linux `tcp_data_queue` forces the memory of a segment that
    /// finds the receive queue empty). Returns the new `rcv_nxt` (advanced
    /// over what was stored and any out-of-order ranges it joins), or
    /// `None` when nothing could be kept (no range free, or no memory).
    pub fn store(&mut self, rcv_nxt: u32, seq: u32, data: &[u8], mem_room: &mut u32) -> Option<u32> {
        let off = seq.wrapping_sub(rcv_nxt);
        if off as u64 + data.len() as u64 > self.room() as u64 || data.is_empty() {
            return Some(rcv_nxt);
        }
        let need = self.len as usize + off as usize + data.len();
        if need > self.buf.len() {
            let forced = off == 0 && self.len == 0 && self.ooo.is_none();
            // A drained ring comes back at the size it had (within the window).
            let want = if self.buf.is_empty() { need.max((usize::from(self.last_units) << 12).min(self.ring_len() as usize)) } else { need };
            let size = ring_size(self.buf.len(), want, self.ring_len() as usize, *mem_room, forced);
            if size > self.buf.len() {
                *mem_room = mem_room.saturating_sub((size - self.buf.len()) as u32);
                // Rotating to the front keeps every offset from `head`
                // valid, out-of-order ranges included.
                self.buf = resized(&self.buf, self.head as usize, size);
                self.head = 0;
            }
        }
        let fits = self.buf.len().saturating_sub(self.len as usize + off as usize);
        let data = if off == 0 { &data[..data.len().min(fits)] } else { data };
        if data.is_empty() || data.len() > fits {
            self.release_if_unused();
            return None;
        }
        let end = seq.wrapping_add(data.len() as u32);
        if off != 0 {
            if !self.ooo_insert(seq, end, mem_room) {
                self.release_if_unused();
                return None;
            }
            self.write_at(off, data);
            return Some(rcv_nxt);
        }
        self.write_at(off, data);
        // In order: advance, then swallow every range now reached.
        let mut nxt = end;
        while let Some(i) = self.ranges().iter().position(|r| !after(r.0, nxt)) {
            nxt = seq_max(nxt, self.ranges()[i].1);
            self.ooo_remove(i);
        }
        self.len += nxt.wrapping_sub(rcv_nxt);
        Some(nxt)
    }

    /// Forget what is held out of order (the in-order bytes stay).
    pub fn drop_ooo(&mut self) {
        self.ooo = None;
        self.release_if_unused();
    }

    /// A ring grown for a segment that was then not kept, holding nothing
    /// else: let it go (an empty buffer holds no memory).
    fn release_if_unused(&mut self) {
        if self.len == 0 && self.ooo.is_none() {
            self.release();
        }
    }

    fn write_at(&mut self, off: u32, data: &[u8]) {
        let cap = self.buf.len();
        let start = (self.head as usize + self.len as usize + off as usize) % cap;
        let first = data.len().min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Add `[start, end)` to the ranges, merging with any it touches.
    fn ooo_insert(&mut self, mut start: u32, mut end: u32, mem_room: &mut u32) -> bool {
        if self.ooo.is_none() {
            if *mem_room < OOO_MEM {
                return false;
            }
            *mem_room -= OOO_MEM;
        }
        let o = self.ooo.get_or_insert_with(Box::default);
        let touches = |r: &(u32, u32), start, end| !after(r.0, end) && !before(r.1, start);
        if o.n as usize == MAX_OOO_RANGES && !o.r.iter().any(|r| touches(r, start, end)) {
            return false;
        }
        // Merge every overlapping or adjacent range into the new one
        // (Linux tcp_sack_extend / tcp_sack_maybe_coalesce), then put it first.
        let mut i = 0;
        while i < o.n as usize {
            let (s, e) = o.r[i];
            if touches(&(s, e), start, end) {
                if before(s, start) {
                    start = s;
                }
                if after(e, end) {
                    end = e;
                }
                o.r.copy_within(i + 1..o.n as usize, i);
                o.n -= 1;
            } else {
                i += 1;
            }
        }
        o.r.copy_within(0..o.n as usize, 1);
        o.r[0] = (start, end);
        o.n += 1;
        true
    }

    fn ooo_remove(&mut self, i: usize) {
        let Some(o) = self.ooo.as_mut() else { return };
        let n = o.n as usize;
        o.r.copy_within(i + 1..n, i);
        o.n -= 1;
        if o.n == 0 {
            self.ooo = None;
        }
    }

    /// Up to `max` SACK blocks (RFC 2018 4: the block holding the most
    /// recently received segment first, then the most recent others).
    pub fn sack_blocks(&self, max: usize, out: &mut [(u32, u32); MAX_SACK_BLOCKS]) -> u8 {
        let r = self.ranges();
        let n = r.len().min(max).min(MAX_SACK_BLOCKS);
        out[..n].copy_from_slice(&r[..n]);
        n as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tcb::ring::MIN_RING;

    impl RecvBuf {
        fn store_all(&mut self, rcv_nxt: u32, seq: u32, data: &[u8]) -> Option<u32> {
            let mut room = u32::MAX;
            self.store(rcv_nxt, seq, data, &mut room)
        }
    }

    #[test]
    fn in_order_and_wrap() {
        let mut b = RecvBuf::new(8, 0);
        assert_eq!(b.store_all(100, 100, b"abcdef"), Some(106));
        let mut out = [0u8; 4];
        assert_eq!(b.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // 6 free now; the write wraps around the ring end.
        assert_eq!(b.store_all(106, 106, b"ghijkl"), Some(112));
        let mut out = [0u8; 16];
        assert_eq!(b.read(&mut out), 8);
        assert_eq!(&out[..8], b"efghijkl");
    }

    /// An upload drains the ring after every burst: the next burst's data
    /// takes the drained size at once (one allocation, no copies through
    /// 4, 8, 16, 32 KiB), unless the memory grant is smaller.
    #[test]
    fn a_drained_ring_comes_back_at_its_size() {
        let mut b = RecvBuf::new(64 * 1024, 0);
        let seg = [7u8; 1448];
        let mut nxt = 0u32;
        for _ in 0..32 {
            nxt = b.store_all(nxt, nxt, &seg).expect("stored");
        }
        assert_eq!(b.mem(), 64 * 1024);
        let mut out = vec![0u8; 64 * 1024];
        assert_eq!(b.read(&mut out), 32 * 1448);
        assert_eq!(b.mem(), 0, "drained: nothing held");
        nxt = b.store_all(nxt, nxt, &seg).expect("stored");
        assert_eq!(b.mem(), 64 * 1024, "back at the drained size");
        b.read(&mut out);
        let mut room = 8192;
        assert_eq!(b.store(nxt, nxt, &seg, &mut room), Some(nxt + 1448));
        assert_eq!(b.mem(), 8192, "within the grant");
    }

    #[test]
    fn out_of_order_fills_in() {
        let mut b = RecvBuf::new(64, 0);
        assert_eq!(b.store_all(0, 10, b"klm"), Some(0));
        assert_eq!(b.store_all(0, 4, b"efg"), Some(0));
        assert_eq!(b.ranges().len(), 2);
        let mut s = [(0, 0); MAX_SACK_BLOCKS];
        assert_eq!(b.sack_blocks(3, &mut s), 2);
        assert_eq!(s[0], (4, 7));
        assert_eq!(b.store_all(0, 20, b"u"), Some(0));
        assert_eq!(b.sack_blocks(3, &mut s), 3);
        assert_eq!(&s[..3], &[(20, 21), (4, 7), (10, 13)], "most recent first");
        assert_eq!(b.store_all(0, 7, b"hij"), Some(0));
        assert_eq!(b.ranges(), &[(4, 13), (20, 21)]);
        assert_eq!(b.store_all(0, 13, b"nopqrst"), Some(0));
        assert_eq!(b.ranges(), &[(4, 21)]);
        assert_eq!(b.store_all(0, 0, b"abcd"), Some(21));
        assert!(!b.has_ooo());
        let mut out = [0u8; 21];
        b.read(&mut out);
        assert_eq!(&out, b"abcdefghijklmnopqrstu");
    }

    #[test]
    fn bounded_ranges() {
        let mut b = RecvBuf::new(256, 0);
        for i in 0..MAX_OOO_RANGES as u32 {
            assert_eq!(b.store_all(0, 2 + 4 * i, b"x"), Some(0));
        }
        assert_eq!(b.store_all(0, 200, b"y"), None);
        assert_eq!(b.ranges().len(), MAX_OOO_RANGES);
        // Extending a range still works when the list is full.
        assert_eq!(b.store_all(0, 3, b"z"), Some(0));
        assert_eq!(b.ranges()[0], (2, 4));
    }

    #[test]
    fn released_when_read_and_kept_while_out_of_order() {
        let mut b = RecvBuf::new(64 * 1024, 127);
        let mut room = u32::MAX;
        assert_eq!(b.store(0, 0, b"abc", &mut room), Some(3));
        assert_eq!(b.mem() as usize, MIN_RING);
        assert_eq!(b.store(3, 10, b"k", &mut room), Some(3));
        assert_eq!(b.mem(), MIN_RING as u32 + OOO_MEM);
        let mut out = [0u8; 8];
        assert_eq!(b.read(&mut out), 3);
        assert_eq!(b.mem(), MIN_RING as u32 + OOO_MEM, "the out-of-order byte lives in the ring");
        assert_eq!(b.store(3, 3, b"defghij", &mut room), Some(11));
        assert_eq!(b.mem() as usize, MIN_RING, "the range list went with the hole");
        assert_eq!(b.read(&mut out), 8);
        assert_eq!(&out, b"defghijk");
        assert_eq!((b.mem(), b.len()), (0, 0));
        assert_eq!(room, u32::MAX - MIN_RING as u32 - OOO_MEM, "the ring was kept while the hole was open");
    }

    #[test]
    fn memory_grant_limits_what_is_stored() {
        let mut b = RecvBuf::new(64 * 1024, 0);
        let mut room = 0;
        // Empty: the first in-order segment gets its ring regardless.
        assert_eq!(b.store(0, 0, &[1; 1000], &mut room), Some(1000));
        // In order beyond the ring: cut at the ring's end.
        assert_eq!(b.store(1000, 1000, &[2; 5000], &mut room), Some(MIN_RING as u32));
        // Out of order with no memory for the range list: dropped.
        let mut c = RecvBuf::new(64 * 1024, 0);
        assert_eq!(c.store(0, 100, b"x", &mut 0), None);
        assert_eq!(c.mem(), 0);
        // Full ring, nothing granted: nothing stored.
        assert_eq!(b.store(4096, 4096, b"y", &mut room), None);
    }
}
