//! The send buffer: a ring holding the bytes from `snd_una`
//! (unacknowledged) to the end of what the application wrote. Writes beyond
//! the capacity are partial: that is the backpressure the application sees.
//! The ring grows on demand up to the capacity, so an idle or quiet
//! connection holds almost nothing (Linux's memory also follows its queues).

use super::ring::grown;

#[derive(Debug)]
pub struct SendBuf {
    /// The ring as allocated so far (grows up to `cap`).
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

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> u32 {
        self.cap() - self.len
    }

    /// Append as much of `data` as fits; returns how much.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free() as usize);
        if n == 0 {
            return 0;
        }
        let need = self.len as usize + n;
        if need > self.buf.len() {
            self.buf = grown(&self.buf, self.head as usize, need, self.cap as usize);
            self.head = 0;
        }
        let cap = self.buf.len();
        let start = (self.head as usize + self.len as usize) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n as u32;
        n
    }

    /// Forget the first `n` bytes (acknowledged by the peer).
    pub fn consume(&mut self, n: u32) {
        let n = n.min(self.len);
        if self.buf.is_empty() {
            return;
        }
        self.head = ((self.head as usize + n as usize) % self.buf.len()) as u32;
        self.len -= n;
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

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_write_and_wrap() {
        let mut b = SendBuf::new(8);
        assert_eq!(b.write(b"0123456789"), 8);
        b.consume(5);
        assert_eq!(b.write(b"abcdefg"), 5);
        let (x, y) = b.slices(1, 7);
        assert_eq!(x, b"67");
        assert_eq!(y, b"abcde");
        assert_eq!(b.slices(6, 100), (&b"de"[..], &b""[..]));
    }
}
