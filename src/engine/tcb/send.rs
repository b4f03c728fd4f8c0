//! The send buffer: a ring holding the bytes from `snd_una`
//! (unacknowledged) to the end of what the application wrote. Writes beyond
//! the capacity are partial: that is the backpressure the application sees.
//! The ring grows on demand up to the capacity, within what the worker's
//! memory pool grants, and is released once everything is acknowledged, so
//! an idle connection holds no send memory (Linux frees an skb when it is
//! acknowledged).

use super::ring::{resized, ring_size};

#[derive(Debug)]
pub struct SendBuf {
    /// The ring as allocated so far (grows up to `cap`; empty when drained).
    buf: Box<[u8]>,
    cap: u32,
    /// Index of the oldest unacknowledged byte.
    head: u32,
    len: u32,
}

impl SendBuf {
    pub fn new(cap: u32) -> SendBuf {
        SendBuf { buf: Box::default(), cap, head: 0, len: 0 }
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Send-buffer autotuning made the buffer larger (never smaller).
    pub fn grow_cap(&mut self, cap: u32) {
        self.cap = self.cap.max(cap);
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> u32 {
        self.cap() - self.len
    }

    /// Bytes of ring allocated (what the memory pool is charged).
    pub fn mem(&self) -> u32 {
        self.buf.len() as u32
    }

    /// Append as much of `data` as fits in the capacity and in what the
    /// ring can grow to within `room` bytes (taken from it); returns how
    /// much. An empty ring may always take its first [`super::ring::MIN_RING`]
    /// bytes (Linux `tcp_stream_alloc_skb` forces the first skb when the
    /// write and retransmit queues are empty).
    pub fn write(&mut self, data: &[u8], room: &mut u32) -> usize {
        let want = data.len().min(self.free() as usize);
        if want == 0 {
            return 0;
        }
        let need = self.len as usize + want;
        if need > self.buf.len() {
            let size = ring_size(self.buf.len(), need, self.cap as usize, *room, self.len == 0);
            if size > self.buf.len() {
                *room = room.saturating_sub((size - self.buf.len()) as u32);
                self.buf = resized(&self.buf, self.head as usize, size);
                self.head = 0;
            }
        }
        let n = want.min(self.buf.len() - self.len as usize);
        if n == 0 {
            return 0;
        }
        let cap = self.buf.len();
        let start = (self.head as usize + self.len as usize) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n as u32;
        n
    }

    /// Forget the first `n` bytes (acknowledged by the peer); the ring is
    /// released when nothing is left.
    pub fn consume(&mut self, n: u32) {
        let n = n.min(self.len);
        if self.buf.is_empty() {
            return;
        }
        self.head = ((self.head as usize + n as usize) % self.buf.len()) as u32;
        self.len -= n;
        if self.len == 0 {
            self.clear();
        }
    }

    /// The bytes at `[off, off + len)` from the oldest unacknowledged one, as
    /// two slices (the second is non-empty when the range wraps the ring).
    /// Out-of-range requests are clipped to what is held.
    pub fn slices(&self, off: u32, len: u32) -> (&[u8], &[u8]) {
        let off = off.min(self.len) as usize;
        let len = (len as usize).min(self.len as usize - off);
        if len == 0 {
            return (&[], &[]);
        }
        let cap = self.buf.len();
        let start = (self.head as usize + off) % cap;
        let first = len.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..len - first])
    }

    /// Drop everything and release the ring.
    pub fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        self.buf = Box::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tcb::ring::MIN_RING;

    #[test]
    fn partial_write_and_wrap() {
        let mut b = SendBuf::new(8);
        let mut room = u32::MAX;
        assert_eq!(b.write(b"0123456789", &mut room), 8);
        b.consume(5);
        assert_eq!(b.write(b"abcdefg", &mut room), 5);
        let (x, y) = b.slices(1, 7);
        assert_eq!(x, b"67");
        assert_eq!(y, b"abcde");
        assert_eq!(b.slices(6, 100), (&b"de"[..], &b""[..]));
    }

    #[test]
    fn released_when_acknowledged() {
        let mut b = SendBuf::new(64 * 1024);
        let mut room = u32::MAX;
        assert_eq!(b.write(&[7; 5000], &mut room), 5000);
        assert_eq!(b.mem(), 8192);
        assert_eq!(room, u32::MAX - 8192);
        b.consume(4999);
        assert_eq!(b.mem(), 8192, "one byte still unacknowledged");
        b.consume(1);
        assert_eq!((b.mem(), b.len()), (0, 0));
        // Data comes back: a ring again, the bytes in order.
        assert_eq!(b.write(b"xyz", &mut room), 3);
        assert_eq!(b.slices(0, 3), (&b"xyz"[..], &b""[..]));
    }

    #[test]
    fn growth_limited_by_the_grant_but_first_ring_forced() {
        let mut b = SendBuf::new(64 * 1024);
        let mut room = 0;
        // Empty: the first ring is granted anyway.
        assert_eq!(b.write(&[1; 10_000], &mut room), MIN_RING);
        assert_eq!(b.mem() as usize, MIN_RING);
        // Not empty and nothing granted: no growth, nothing more taken.
        assert_eq!(b.write(&[1; 10], &mut room), 0);
        // 4 KiB granted: the ring doubles.
        room = 4096;
        assert_eq!(b.write(&[1; 10_000], &mut room), MIN_RING);
        assert_eq!((b.mem(), room), (8192, 0));
    }
}
