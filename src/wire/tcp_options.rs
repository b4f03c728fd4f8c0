//! TCP options: a strict iterator, the one-pass SYN parser that mirrors
//! Linux's `tcp_parse_options`, and writers (generic, and the exact layout
//! Linux's `tcp_options_write` gives a SYN-ACK).
//!
//! Kinds: RFC 9293 (EOL, NOP, MSS), RFC 7323 (window scale, timestamps),
//! RFC 2018 (SACK), RFC 7413 (TCP Fast Open, kind 34, and the experimental
//! kind 254 with magic 0xF989 that Linux still accepts and answers in kind).

use super::{Error, Result};

/// Option kinds.
pub mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
    pub const FAST_OPEN: u8 = 34;
    /// RFC 6994 experimental kind; Fast Open used it before kind 34.
    pub const EXPERIMENTAL: u8 = 254;
}

/// The 16-bit magic (ExID) of the experimental Fast Open option.
pub const FASTOPEN_MAGIC: u16 = 0xf989;
/// RFC 7323 §2.3: shift counts above 14 are treated as 14 (Linux
/// TCP_MAX_WSCALE, with a rate-limited "Illegal window scaling" warning).
pub const MAX_WSCALE: u8 = 14;
/// Shortest Fast Open cookie Linux accepts (TCP_FASTOPEN_COOKIE_MIN).
pub const FASTOPEN_COOKIE_MIN: usize = 4;
/// Longest Fast Open cookie (TCP_FASTOPEN_COOKIE_MAX, RFC 7413 §4.1.1).
pub const FASTOPEN_COOKIE_MAX: usize = 16;
/// At most 4 SACK blocks fit in 40 option bytes.
pub const MAX_SACK_BLOCKS: usize = 4;

/// Up to four SACK blocks (left edge, right edge), without allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SackBlocks {
    blocks: [(u32, u32); MAX_SACK_BLOCKS],
    len: u8,
}

impl SackBlocks {
    #[inline]
    pub const fn new() -> SackBlocks {
        SackBlocks {
            blocks: [(0, 0); MAX_SACK_BLOCKS],
            len: 0,
        }
    }

    /// Appends a block; `BufferTooSmall` if four are already there.
    #[inline]
    pub fn push(&mut self, left: u32, right: u32) -> Result<()> {
        let slot = self
            .blocks
            .get_mut(usize::from(self.len))
            .ok_or(Error::BufferTooSmall)?;
        *slot = (left, right);
        self.len += 1;
        Ok(())
    }

    #[inline]
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[..usize::from(self.len)]
    }

    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads 8-byte blocks from an option body (length checked by caller).
    fn from_body(body: &[u8]) -> Option<SackBlocks> {
        if body.is_empty() || body.len() % 8 != 0 || body.len() / 8 > MAX_SACK_BLOCKS {
            return None;
        }
        let mut blocks = SackBlocks::new();
        for b in body.chunks_exact(8) {
            let left = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let right = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            blocks.push(left, right).ok()?;
        }
        Some(blocks)
    }
}

impl core::fmt::Debug for SackBlocks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A Fast Open cookie of 0 (a cookie request) or 4..=16 bytes (even),
/// remembering whether it came in (or goes out in) the experimental
/// kind-254 encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FastOpenCookie {
    bytes: [u8; FASTOPEN_COOKIE_MAX],
    len: u8,
    exp: bool,
}

impl FastOpenCookie {
    /// An empty cookie: in a SYN, "please send me a cookie" (RFC 7413 §4.1.2).
    #[inline]
    pub const fn request() -> FastOpenCookie {
        FastOpenCookie {
            bytes: [0; FASTOPEN_COOKIE_MAX],
            len: 0,
            exp: false,
        }
    }

    /// A cookie of `bytes`; `BadOption` unless empty or 4..=16 bytes of even
    /// length (what Linux accepts).
    #[inline]
    pub fn new(bytes: &[u8]) -> Result<FastOpenCookie> {
        let len = bytes.len();
        if !Self::valid_len(len) {
            return Err(Error::BadOption);
        }
        let mut cookie = FastOpenCookie::request();
        cookie.bytes[..len].copy_from_slice(bytes);
        cookie.len = len as u8;
        Ok(cookie)
    }

    #[inline]
    fn valid_len(len: usize) -> bool {
        len == 0 || ((FASTOPEN_COOKIE_MIN..=FASTOPEN_COOKIE_MAX).contains(&len) && len % 2 == 0)
    }

    /// The same cookie in the experimental (kind 254) encoding or not.
    #[inline]
    pub const fn with_experimental(mut self, exp: bool) -> FastOpenCookie {
        self.exp = exp;
        self
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for a cookie request (no cookie bytes).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if carried in the experimental kind-254 option.
    #[inline]
    pub fn is_experimental(&self) -> bool {
        self.exp
    }

    /// Option length on the wire, before padding.
    #[inline]
    fn option_len(&self) -> usize {
        self.len() + if self.exp { 4 } else { 2 }
    }
}

impl core::fmt::Debug for FastOpenCookie {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FastOpenCookie")
            .field("bytes", &self.as_bytes())
            .field("exp", &self.exp)
            .finish()
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Sack(SackBlocks),
    Timestamps {
        tsval: u32,
        tsecr: u32,
    },
    /// Kind 34: the cookie bytes; empty means a cookie request.
    FastOpen(&'a [u8]),
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    /// Bytes this option takes on the wire.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::Nop => 1,
            TcpOption::Mss(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(blocks) => 2 + 8 * blocks.len(),
            TcpOption::Timestamps { .. } => 10,
            TcpOption::FastOpen(cookie) => 2 + cookie.len(),
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }
}

/// Iterates over option bytes, strictly: yields `Err(BadOption)` for a
/// known kind with the wrong length (and goes on), and ends with
/// `Err(BadOption)` when the framing breaks (length byte missing, below 2,
/// or past the end). Stops after `EndOfList`.
#[derive(Debug, Clone)]
pub struct TcpOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    #[inline]
    pub fn new(options: &'a [u8]) -> TcpOptionIter<'a> {
        TcpOptionIter { rest: options }
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after_kind) = self.rest.split_first()?;
        match kind {
            kind::EOL => {
                self.rest = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            kind::NOP => {
                self.rest = after_kind;
                return Some(Ok(TcpOption::Nop));
            }
            _ => {}
        }
        let Some(&len) = after_kind.first() else {
            self.rest = &[];
            return Some(Err(Error::BadOption));
        };
        let len = usize::from(len);
        if len < 2 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(Error::BadOption));
        }
        let (option, rest) = self.rest.split_at(len);
        self.rest = rest;
        let body = &option[2..];
        let parsed = match (kind, body) {
            (kind::MSS, &[a, b]) => TcpOption::Mss(u16::from_be_bytes([a, b])),
            (kind::WINDOW_SCALE, &[shift]) => TcpOption::WindowScale(shift),
            (kind::SACK_PERMITTED, &[]) => TcpOption::SackPermitted,
            (kind::TIMESTAMPS, &[a, b, c, d, e, f, g, h]) => TcpOption::Timestamps {
                tsval: u32::from_be_bytes([a, b, c, d]),
                tsecr: u32::from_be_bytes([e, f, g, h]),
            },
            (kind::SACK, _) => match SackBlocks::from_body(body) {
                Some(blocks) => TcpOption::Sack(blocks),
                None => return Some(Err(Error::BadOption)),
            },
            (kind::FAST_OPEN, _) if FastOpenCookie::valid_len(body.len()) => {
                TcpOption::FastOpen(body)
            }
            (
                kind::MSS
                | kind::WINDOW_SCALE
                | kind::SACK_PERMITTED
                | kind::TIMESTAMPS
                | kind::FAST_OPEN,
                _,
            ) => return Some(Err(Error::BadOption)),
            (kind, data) => TcpOption::Unknown { kind, data },
        };
        Some(Ok(parsed))
    }
}

impl core::iter::FusedIterator for TcpOptionIter<'_> {}

/// What a SYN asks for, read in one pass the way Linux's
/// `tcp_parse_options` reads a SYN arriving on a listener. Also the
/// options a SYN-ACK carries, for [`emit`](Self::emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynOptions {
    /// Peer's MSS; a zero MSS is ignored, as Linux does.
    pub mss: Option<u16>,
    /// Peer's shift count, already clamped to 14.
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// Empty cookie = cookie request.
    pub fastopen: Option<FastOpenCookie>,
}

impl SynOptions {
    /// Reads the options of a SYN. Never fails, because Linux never rejects
    /// a SYN for its options; like `tcp_parse_options` it:
    /// - stops at EOL, at a length byte below 2 ("silly options") or past
    ///   the end ("don't parse partial options"), keeping what it has;
    /// - skips known kinds with the wrong length (MSS != 4, WS != 3,
    ///   TS != 10, SACK_PERM != 2) and unknown kinds;
    /// - ignores MSS 0 and clamps a window scale above 14 to 14;
    /// - lets a later occurrence of an option override an earlier one;
    /// - takes a Fast Open cookie from kind 34 or from kind 254 with magic
    ///   0xF989: odd lengths are ignored, 0 is a cookie request, 4..=16 is a
    ///   cookie, any other even length cancels a cookie seen before
    ///   (Linux sets `foc->len = -1`).
    ///
    /// Sysctls (tcp_timestamps, tcp_sack, tcp_window_scaling) are the
    /// engine's business: it drops what it does not enable.
    #[inline]
    pub fn parse(options: &[u8]) -> SynOptions {
        // Fast path: the layout Linux's own SYN has (`tcp_options_write`),
        // MSS, SACK_PERM + TS, NOP + WS; what most clients and every SYN
        // flood tool on Linux send. Same result as the full walk.
        if let [kind::MSS, 4, m0, m1, kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10, a, b, c, d, e, f, g, h, kind::NOP, kind::WINDOW_SCALE, 3, ws] =
            *options
        {
            let mss = u16::from_be_bytes([m0, m1]);
            return SynOptions {
                mss: if mss != 0 { Some(mss) } else { None },
                wscale: Some(ws.min(MAX_WSCALE)),
                sack_permitted: true,
                timestamps: Some((
                    u32::from_be_bytes([a, b, c, d]),
                    u32::from_be_bytes([e, f, g, h]),
                )),
                fastopen: None,
            };
        }
        Self::parse_walk(options)
    }

    /// The full option walk of [`parse`](Self::parse).
    fn parse_walk(options: &[u8]) -> SynOptions {
        let mut syn = SynOptions::default();
        let mut rest = options;
        while let [kind, after_kind @ ..] = rest {
            match *kind {
                kind::EOL => break,
                kind::NOP => {
                    rest = after_kind;
                    continue;
                }
                _ => {}
            }
            let Some(&size) = after_kind.first() else {
                break;
            };
            let size = usize::from(size);
            if size < 2 || size > rest.len() {
                break;
            }
            let (option, next) = rest.split_at(size);
            rest = next;
            match (*kind, &option[2..]) {
                (kind::MSS, &[a, b]) => {
                    let mss = u16::from_be_bytes([a, b]);
                    if mss != 0 {
                        syn.mss = Some(mss);
                    }
                }
                (kind::WINDOW_SCALE, &[shift]) => syn.wscale = Some(shift.min(MAX_WSCALE)),
                (kind::SACK_PERMITTED, &[]) => syn.sack_permitted = true,
                (kind::TIMESTAMPS, &[a, b, c, d, e, f, g, h]) => {
                    syn.timestamps = Some((
                        u32::from_be_bytes([a, b, c, d]),
                        u32::from_be_bytes([e, f, g, h]),
                    ));
                }
                (kind::FAST_OPEN, cookie) => syn.parse_fastopen(cookie, false),
                (kind::EXPERIMENTAL, &[m0, m1, ref cookie @ ..])
                    if u16::from_be_bytes([m0, m1]) == FASTOPEN_MAGIC =>
                {
                    syn.parse_fastopen(cookie, true)
                }
                _ => {}
            }
        }
        syn
    }

    /// Linux `tcp_parse_fastopen_option` for a SYN.
    #[inline]
    fn parse_fastopen(&mut self, cookie: &[u8], exp: bool) {
        if cookie.len() % 2 != 0 {
            return;
        }
        self.fastopen = FastOpenCookie::new(cookie)
            .ok()
            .map(|c| c.with_experimental(exp));
    }

    /// Bytes [`emit`](Self::emit) writes (a multiple of 4, at most 40).
    #[inline]
    pub fn buffer_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.timestamps.is_some() {
            len += 12; // SACK_PERM, if any, rides in the first word.
        } else if self.sack_permitted {
            len += 4;
        }
        if self.wscale.is_some() {
            len += 4;
        }
        if let Some(cookie) = &self.fastopen {
            len += (cookie.option_len() + 3) & !3;
        }
        len
    }

    /// Writes these options the way Linux's `tcp_options_write` lays out a
    /// SYN or SYN-ACK, in this order and with this padding:
    /// - MSS: `02 04 mss`
    /// - timestamps: `04 02 08 0a tsval tsecr` with SACK-permitted packed in
    ///   front, or `01 01 08 0a tsval tsecr` without;
    /// - SACK-permitted without timestamps: `01 01 04 02`
    /// - window scale: `01 03 03 ws`
    /// - Fast Open: `22 len cookie` (or `fe len f9 89 cookie`), then
    ///   `01 01` when its length is 2 mod 4.
    ///
    /// Returns the length written; `BufferTooSmall` if `buf` is shorter than
    /// [`buffer_len`](Self::buffer_len) (nothing useful is written then).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall);
        };
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            put(&[kind::MSS, 4, hi, lo]);
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            if self.sack_permitted {
                put(&[kind::SACK_PERMITTED, 2, kind::TIMESTAMPS, 10]);
            } else {
                put(&[kind::NOP, kind::NOP, kind::TIMESTAMPS, 10]);
            }
            put(&tsval.to_be_bytes());
            put(&tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]);
        }
        if let Some(ws) = self.wscale {
            put(&[kind::NOP, kind::WINDOW_SCALE, 3, ws]);
        }
        if let Some(cookie) = &self.fastopen {
            let option_len = cookie.option_len() as u8;
            if cookie.is_experimental() {
                let [m0, m1] = FASTOPEN_MAGIC.to_be_bytes();
                put(&[kind::EXPERIMENTAL, option_len, m0, m1]);
            } else {
                put(&[kind::FAST_OPEN, option_len]);
            }
            put(cookie.as_bytes());
            if option_len & 3 == 2 {
                put(&[kind::NOP, kind::NOP]);
            }
        }
        Ok(len)
    }
}

/// Timestamps of a non-SYN segment (the ACK that may complete a cookie
/// handshake), or `None`. Like Linux's `tcp_fast_parse_options`, the
/// common aligned layout `01 01 08 0a tsval tsecr` is read directly;
/// anything else takes the full walk, with the same leniency as
/// [`SynOptions::parse`].
#[inline]
pub fn timestamps(options: &[u8]) -> Option<(u32, u32)> {
    if let [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10, a, b, c, d, e, f, g, h] = *options {
        return Some((
            u32::from_be_bytes([a, b, c, d]),
            u32::from_be_bytes([e, f, g, h]),
        ));
    }
    SynOptions::parse(options).timestamps
}

/// Appends options into a buffer; [`finish`](Self::finish) pads with NOPs
/// to a 4-byte boundary. For the exact Linux SYN-ACK layout use
/// [`SynOptions::emit`].
#[derive(Debug)]
pub struct TcpOptionWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> TcpOptionWriter<'a> {
    #[inline]
    pub fn new(buf: &'a mut [u8]) -> TcpOptionWriter<'a> {
        TcpOptionWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn put(&mut self, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let out = self
            .buf
            .get_mut(self.len..self.len + total)
            .ok_or(Error::BufferTooSmall)?;
        let mut at = 0;
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.len += total;
        Ok(())
    }

    /// Appends any option. `BadOption` for an option that cannot be encoded
    /// (empty SACK, Fast Open cookie of a length Linux would not accept,
    /// unknown option data over 253 bytes); `BufferTooSmall` if it does not
    /// fit. On error nothing is written.
    pub fn push(&mut self, option: &TcpOption<'_>) -> Result<()> {
        match *option {
            TcpOption::EndOfList => self.put(&[&[kind::EOL]]),
            TcpOption::Nop => self.nop(),
            TcpOption::Mss(mss) => self.mss(mss),
            TcpOption::WindowScale(ws) => self.window_scale(ws),
            TcpOption::SackPermitted => self.sack_permitted(),
            TcpOption::Sack(blocks) => self.sack(&blocks),
            TcpOption::Timestamps { tsval, tsecr } => self.timestamps(tsval, tsecr),
            TcpOption::FastOpen(cookie) => self.fast_open(&FastOpenCookie::new(cookie)?),
            TcpOption::Unknown { kind, data } => {
                let len = u8::try_from(data.len() + 2).map_err(|_| Error::BadOption)?;
                self.put(&[&[kind, len], data])
            }
        }
    }

    #[inline]
    pub fn nop(&mut self) -> Result<()> {
        self.put(&[&[kind::NOP]])
    }

    #[inline]
    pub fn mss(&mut self, mss: u16) -> Result<()> {
        self.put(&[&[kind::MSS, 4], &mss.to_be_bytes()])
    }

    #[inline]
    pub fn window_scale(&mut self, shift: u8) -> Result<()> {
        self.put(&[&[kind::WINDOW_SCALE, 3, shift]])
    }

    #[inline]
    pub fn sack_permitted(&mut self) -> Result<()> {
        self.put(&[&[kind::SACK_PERMITTED, 2]])
    }

    #[inline]
    pub fn timestamps(&mut self, tsval: u32, tsecr: u32) -> Result<()> {
        self.put(&[
            &[kind::TIMESTAMPS, 10],
            &tsval.to_be_bytes(),
            &tsecr.to_be_bytes(),
        ])
    }

    /// SACK blocks; `BadOption` if there are none.
    pub fn sack(&mut self, blocks: &SackBlocks) -> Result<()> {
        if blocks.is_empty() {
            return Err(Error::BadOption);
        }
        let len = 2 + 8 * blocks.len();
        let out = self
            .buf
            .get_mut(self.len..self.len + len)
            .ok_or(Error::BufferTooSmall)?;
        out[0] = kind::SACK;
        out[1] = len as u8;
        for (chunk, (left, right)) in out[2..].chunks_exact_mut(8).zip(blocks.as_slice()) {
            chunk[..4].copy_from_slice(&left.to_be_bytes());
            chunk[4..].copy_from_slice(&right.to_be_bytes());
        }
        self.len += len;
        Ok(())
    }

    /// A Fast Open option (kind 34, or 254 + magic if the cookie is
    /// experimental); an empty cookie is a cookie request.
    pub fn fast_open(&mut self, cookie: &FastOpenCookie) -> Result<()> {
        let len = cookie.option_len() as u8;
        if cookie.is_experimental() {
            self.put(&[
                &[kind::EXPERIMENTAL, len],
                &FASTOPEN_MAGIC.to_be_bytes(),
                cookie.as_bytes(),
            ])
        } else {
            self.put(&[&[kind::FAST_OPEN, len], cookie.as_bytes()])
        }
    }

    /// Pads with NOPs to a multiple of 4 and returns the total length (what
    /// the data offset must cover).
    pub fn finish(mut self) -> Result<usize> {
        while self.len % 4 != 0 {
            self.nop()?;
        }
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TSVAL: u32 = 0x0102_0304;
    const TSECR: u32 = 0x0a0b_0c0d;

    fn collect(options: &[u8]) -> Vec<Result<TcpOption<'_>>> {
        TcpOptionIter::new(options).collect()
    }

    // Linux 6.x SYN options: MSS 1460, SACK_PERM + TS packed, NOP, WS 7.
    static LINUX_SYN: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, // TS
        0x01, // NOP
        0x03, 0x03, 0x07, // WS 7
    ];

    #[test]
    fn iterate_linux_syn() {
        assert_eq!(
            collect(&LINUX_SYN),
            vec![
                Ok(TcpOption::Mss(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps {
                    tsval: TSVAL,
                    tsecr: 0
                }),
                Ok(TcpOption::Nop),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
    }

    #[test]
    fn parse_linux_syn() {
        assert_eq!(
            SynOptions::parse(&LINUX_SYN),
            SynOptions {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some((TSVAL, 0)),
                fastopen: None,
            }
        );
        assert_eq!(SynOptions::parse(&[]), SynOptions::default());
    }

    #[test]
    fn iterate_sack_fastopen_unknown_eol() {
        let options = [
            0x05, 0x12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, // SACK, 2 blocks
            0x22, 0x06, 0xc0, 0xc1, 0xc2, 0xc3, // TFO, 4-byte cookie
            0x22, 0x02, // TFO cookie request
            0xfd, 0x03, 0x99, // unknown kind 253
            0x00, // EOL
            0x02, 0x04, 0x05, 0xb4, // after EOL: not read
        ];
        let mut blocks = SackBlocks::new();
        blocks.push(1, 2).unwrap();
        blocks.push(3, 4).unwrap();
        assert_eq!(
            collect(&options),
            vec![
                Ok(TcpOption::Sack(blocks)),
                Ok(TcpOption::FastOpen(&[0xc0, 0xc1, 0xc2, 0xc3])),
                Ok(TcpOption::FastOpen(&[])),
                Ok(TcpOption::Unknown {
                    kind: 0xfd,
                    data: &[0x99]
                }),
                Ok(TcpOption::EndOfList),
            ]
        );
    }

    #[test]
    fn iterate_malformed() {
        // Length byte missing, below 2, past the end: error, then the end.
        assert_eq!(collect(&[0x02]), vec![Err(Error::BadOption)]);
        assert_eq!(
            collect(&[0x02, 0x01, 0x05, 0xb4]),
            vec![Err(Error::BadOption)]
        );
        assert_eq!(collect(&[0x02, 0x00]), vec![Err(Error::BadOption)]);
        assert_eq!(
            collect(&[0x01, 0x08, 0x0a, 0, 0]),
            vec![Ok(TcpOption::Nop), Err(Error::BadOption)]
        );
        // Wrong length for a known kind: error, and the walk goes on.
        assert_eq!(
            collect(&[0x02, 0x03, 0x05, 0x03, 0x03, 0x07]),
            vec![Err(Error::BadOption), Ok(TcpOption::WindowScale(7))]
        );
        for bad in [
            &[0x03, 0x02][..],         // WS without shift
            &[0x04, 0x03, 0x00],       // SACK_PERM with a byte
            &[0x08, 0x02],             // TS empty
            &[0x05, 0x02],             // SACK without blocks
            &[0x05, 0x06, 0, 0, 0, 0], // SACK half block
            &[0x22, 0x03, 0xaa],       // TFO odd cookie
            &[0x22, 0x04, 0xaa, 0xbb], // TFO 2-byte cookie
        ] {
            assert_eq!(collect(bad), vec![Err(Error::BadOption)], "{bad:02x?}");
        }
        let mut five = vec![0x05, 42];
        five.extend_from_slice(&[0; 40]);
        assert_eq!(collect(&five), vec![Err(Error::BadOption)]);
    }

    #[test]
    fn syn_parse_is_lenient_like_linux() {
        // MSS with length 3 is skipped, the walk goes on to WS.
        let o = SynOptions::parse(&[0x02, 0x03, 0x05, 0x01, 0x03, 0x03, 0x07]);
        assert_eq!((o.mss, o.wscale), (None, Some(7)));
        // MSS 0 is ignored.
        assert_eq!(SynOptions::parse(&[0x02, 0x04, 0x00, 0x00]).mss, None);
        // WS > 14 is clamped.
        assert_eq!(SynOptions::parse(&[0x03, 0x03, 0x0f]).wscale, Some(14));
        assert_eq!(SynOptions::parse(&[0x03, 0x03, 0xff]).wscale, Some(14));
        // Later options win.
        assert_eq!(
            SynOptions::parse(&[0x02, 0x04, 0x05, 0xb4, 0x02, 0x04, 0x02, 0x18]).mss,
            Some(536)
        );
        // A silly length stops the walk, keeping what was read.
        let o = SynOptions::parse(&[0x02, 0x04, 0x05, 0xb4, 0x04, 0x01, 0x03, 0x03, 0x07]);
        assert_eq!(
            (o.mss, o.sack_permitted, o.wscale),
            (Some(1460), false, None)
        );
        // A partial option stops it too.
        let o = SynOptions::parse(&[0x04, 0x02, 0x08, 0x0a, 0, 0, 0, 1]);
        assert_eq!((o.sack_permitted, o.timestamps), (true, None));
        // EOL stops it.
        assert_eq!(SynOptions::parse(&[0x00, 0x02, 0x04, 0x05, 0xb4]).mss, None);
        // Timestamps with a wrong length, SACK blocks, unknown kinds: skipped.
        let o = SynOptions::parse(&[
            0x08, 0x06, 0, 0, 0, 1, 0xfd, 0x02, 0x05, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2,
        ]);
        assert_eq!(o, SynOptions::default());
    }

    #[test]
    fn syn_parse_fastopen_like_linux() {
        let tfo = |o: &[u8]| SynOptions::parse(o).fastopen;
        assert_eq!(tfo(&[0x22, 0x02]), Some(FastOpenCookie::request()));
        let cookie8 = [0x22, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            tfo(&cookie8),
            Some(FastOpenCookie::new(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap())
        );
        let mut cookie16 = vec![0x22, 18];
        cookie16.extend(1..=16u8);
        assert_eq!(tfo(&cookie16).map(|c| c.len()), Some(16));
        // 2 or 18 bytes: even but out of range, no cookie.
        assert_eq!(tfo(&[0x22, 0x04, 1, 2]), None);
        let mut cookie18 = vec![0x22, 20];
        cookie18.extend(1..=18u8);
        assert_eq!(tfo(&cookie18), None);
        // ... and it cancels an earlier one (Linux: foc->len = -1).
        let mut both = cookie8.to_vec();
        both.extend_from_slice(&[0x22, 0x04, 1, 2]);
        assert_eq!(tfo(&both), None);
        // Odd lengths are ignored altogether, keeping an earlier cookie.
        let mut odd = cookie8.to_vec();
        odd.extend_from_slice(&[0x22, 0x07, 1, 2, 3, 4, 5]);
        assert_eq!(tfo(&odd).map(|c| c.len()), Some(8));
        // Experimental kind 254 with magic 0xF989.
        let exp = [0xfe, 0x08, 0xf9, 0x89, 0xa1, 0xa2, 0xa3, 0xa4];
        let c = tfo(&exp).unwrap();
        assert!(c.is_experimental());
        assert_eq!(c.as_bytes(), &[0xa1, 0xa2, 0xa3, 0xa4]);
        assert!(tfo(&[0xfe, 0x04, 0xf9, 0x89]).unwrap().is_empty());
        // Other magic: not Fast Open.
        assert_eq!(tfo(&[0xfe, 0x08, 0xf9, 0x88, 0xa1, 0xa2, 0xa3, 0xa4]), None);
        assert_eq!(tfo(&[0xfe, 0x03, 0xf9]), None);
    }

    // Linux SYN-ACK with every option: MSS, SACK_PERM+TS packed, NOP+WS.
    static SYNACK_ALL: [u8; 20] = [
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, 0x08, 0x0a, // SACK_PERM, TS kind and length
        0x01, 0x02, 0x03, 0x04, // TSval
        0x0a, 0x0b, 0x0c, 0x0d, // TSecr
        0x01, 0x03, 0x03, 0x07, // NOP, WS 7
    ];

    // Linux SYN-ACK without timestamps: MSS, NOP NOP SACK_PERM, NOP WS.
    static SYNACK_NO_TS: [u8; 12] = [
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x01, 0x01, 0x04, 0x02, // NOP NOP SACK_PERM
        0x01, 0x03, 0x03, 0x07, // NOP WS 7
    ];

    fn all() -> SynOptions {
        SynOptions {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamps: Some((TSVAL, TSECR)),
            fastopen: None,
        }
    }

    fn emit(o: &SynOptions) -> Vec<u8> {
        let mut buf = [0xa5u8; 44];
        let len = o.emit(&mut buf).unwrap();
        assert_eq!(len, o.buffer_len());
        assert!(buf[len..].iter().all(|&b| b == 0xa5), "wrote past {len}");
        buf[..len].to_vec()
    }

    #[test]
    fn synack_layouts_pinned_to_linux() {
        assert_eq!(emit(&all()), SYNACK_ALL);
        assert_eq!(
            emit(&SynOptions {
                timestamps: None,
                ..all()
            }),
            SYNACK_NO_TS
        );
        // TS without SACK: NOP NOP TS.
        assert_eq!(
            emit(&SynOptions {
                sack_permitted: false,
                ..all()
            }),
            [2, 4, 5, 0xb4, 1, 1, 8, 10, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 3, 3, 7]
        );
        // MSS only (peer sent no options but Linux always sends MSS).
        assert_eq!(
            emit(&SynOptions {
                mss: Some(536),
                ..Default::default()
            }),
            [2, 4, 2, 0x18]
        );
        // WS only.
        assert_eq!(
            emit(&SynOptions {
                wscale: Some(14),
                ..Default::default()
            }),
            [1, 3, 3, 14]
        );
        assert_eq!(emit(&SynOptions::default()), [] as [u8; 0]);
    }

    #[test]
    fn synack_fastopen_layouts() {
        let cookie =
            FastOpenCookie::new(&[0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7]).unwrap();
        // Kind 34, length 10 (2 mod 4): two NOPs after the cookie.
        let o = SynOptions {
            fastopen: Some(cookie),
            ..all()
        };
        let mut expect = SYNACK_ALL.to_vec();
        expect.extend_from_slice(&[
            0x22, 0x0a, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0x01, 0x01,
        ]);
        assert_eq!(emit(&o), expect);
        // Experimental: fe, length 12, magic, cookie; no padding.
        let o = SynOptions {
            fastopen: Some(cookie.with_experimental(true)),
            ..all()
        };
        let mut expect = SYNACK_ALL.to_vec();
        expect.extend_from_slice(&[
            0xfe, 0x0c, 0xf9, 0x89, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ]);
        assert_eq!(emit(&o), expect);
        // 16-byte cookie with every option: exactly 40 bytes.
        let big = FastOpenCookie::new(&[0x5a; 16]).unwrap();
        let o = SynOptions {
            fastopen: Some(big),
            ..all()
        };
        assert_eq!(o.buffer_len(), 40);
        let bytes = emit(&o);
        assert_eq!(&bytes[20..22], &[0x22, 18]);
        assert_eq!(&bytes[38..], &[1, 1]);
        assert_eq!(SynOptions::parse(&bytes), o);
        // Too small a buffer.
        assert_eq!(o.emit(&mut [0u8; 39]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn ack_timestamps() {
        // Aligned fast path.
        let aligned = [1, 1, 8, 10, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d];
        assert_eq!(timestamps(&aligned), Some((TSVAL, TSECR)));
        // Elsewhere: full walk.
        let other = [8, 10, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 1, 1];
        assert_eq!(timestamps(&other), Some((TSVAL, TSECR)));
        assert_eq!(timestamps(&[]), None);
        assert_eq!(timestamps(&[1, 1, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8]), None);
    }

    #[test]
    fn writer() {
        let mut buf = [0xa5u8; 16];
        let mut w = TcpOptionWriter::new(&mut buf);
        w.mss(1460).unwrap();
        w.window_scale(7).unwrap();
        w.sack_permitted().unwrap();
        assert_eq!(w.len(), 9);
        assert_eq!(w.finish(), Ok(12));
        assert_eq!(
            buf,
            [2, 4, 5, 0xb4, 3, 3, 7, 4, 2, 1, 1, 1, 0xa5, 0xa5, 0xa5, 0xa5]
        );

        let mut small = [0u8; 11];
        let mut w = TcpOptionWriter::new(&mut small);
        assert_eq!(w.timestamps(1, 2), Ok(()));
        assert_eq!(w.mss(1), Err(Error::BufferTooSmall));
        assert_eq!(w.len(), 10);
        assert_eq!(w.finish(), Err(Error::BufferTooSmall));

        let mut buf = [0u8; 40];
        let mut w = TcpOptionWriter::new(&mut buf);
        assert_eq!(w.sack(&SackBlocks::new()), Err(Error::BadOption));
        assert_eq!(w.push(&TcpOption::FastOpen(&[1, 2])), Err(Error::BadOption));
        assert_eq!(
            w.push(&TcpOption::Unknown {
                kind: 9,
                data: &[0; 254]
            }),
            Err(Error::BadOption)
        );
        assert!(w.is_empty());
        let mut blocks = SackBlocks::new();
        for i in 0..4 {
            blocks.push(i, i + 1).unwrap();
        }
        assert_eq!(blocks.push(9, 9), Err(Error::BufferTooSmall));
        w.sack(&blocks).unwrap();
        assert_eq!(w.finish(), Ok(36));
        assert_eq!(&buf[..2], &[5, 34]);
        assert_eq!(collect(&buf[..34]), vec![Ok(TcpOption::Sack(blocks))]);
    }

    /// Owned options to generate; converted to `TcpOption` for writing.
    #[derive(Debug, Clone)]
    enum Gen {
        Nop,
        Mss(u16),
        Ws(u8),
        SackPerm,
        Sack(Vec<(u32, u32)>),
        Ts(u32, u32),
        Tfo(Vec<u8>),
        Unknown(u8, Vec<u8>),
    }

    fn gen_option() -> impl Strategy<Value = Gen> {
        prop_oneof![
            Just(Gen::Nop),
            any::<u16>().prop_map(Gen::Mss),
            any::<u8>().prop_map(Gen::Ws),
            Just(Gen::SackPerm),
            proptest::collection::vec(any::<(u32, u32)>(), 1..=4).prop_map(Gen::Sack),
            any::<(u32, u32)>().prop_map(|(a, b)| Gen::Ts(a, b)),
            prop_oneof![Just(0usize), (2usize..=8).prop_map(|n| n * 2)]
                .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n))
                .prop_map(Gen::Tfo),
            (
                any::<u8>().prop_filter("not a known kind", |k| ![0, 1, 2, 3, 4, 5, 8, 34]
                    .contains(k)),
                proptest::collection::vec(any::<u8>(), 0..10)
            )
                .prop_map(|(k, d)| Gen::Unknown(k, d)),
        ]
    }

    fn to_option(g: &Gen) -> TcpOption<'_> {
        match g {
            Gen::Nop => TcpOption::Nop,
            Gen::Mss(v) => TcpOption::Mss(*v),
            Gen::Ws(v) => TcpOption::WindowScale(*v),
            Gen::SackPerm => TcpOption::SackPermitted,
            Gen::Sack(v) => {
                let mut b = SackBlocks::new();
                for (l, r) in v {
                    let _ = b.push(*l, *r);
                }
                TcpOption::Sack(b)
            }
            Gen::Ts(a, b) => TcpOption::Timestamps {
                tsval: *a,
                tsecr: *b,
            },
            Gen::Tfo(c) => TcpOption::FastOpen(c),
            Gen::Unknown(k, d) => TcpOption::Unknown { kind: *k, data: d },
        }
    }

    fn syn_options() -> impl Strategy<Value = SynOptions> {
        let cookie = prop_oneof![Just(0usize), (2usize..=8).prop_map(|n| n * 2)]
            .prop_flat_map(|n| (proptest::collection::vec(any::<u8>(), n), any::<bool>()))
            .prop_map(|(c, exp)| FastOpenCookie::new(&c).unwrap().with_experimental(exp));
        (
            proptest::option::of(1u16..),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of(any::<(u32, u32)>()),
            proptest::option::of(cookie),
        )
            .prop_map(
                |(mss, wscale, sack_permitted, timestamps, fastopen)| SynOptions {
                    mss,
                    wscale,
                    sack_permitted,
                    timestamps,
                    fastopen,
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..48)) {
            let mut steps = 0;
            for item in TcpOptionIter::new(&data) {
                steps += 1;
                if let Ok(option) = item {
                    let _ = option.buffer_len();
                }
            }
            prop_assert!(steps <= data.len());
            let syn = SynOptions::parse(&data);
            prop_assert!(syn.wscale.map_or(true, |w| w <= MAX_WSCALE));
            prop_assert!(syn.mss != Some(0));
            let _ = timestamps(&data);
            // Whatever was parsed can be emitted into 40 bytes and reads back.
            let mut buf = [0u8; 40];
            let len = syn.emit(&mut buf).unwrap();
            prop_assert_eq!(SynOptions::parse(&buf[..len]), syn);
        }

        #[test]
        fn writer_iter_roundtrip(gens in proptest::collection::vec(gen_option(), 0..8)) {
            let mut buf = [0u8; 40];
            let mut w = TcpOptionWriter::new(&mut buf);
            let mut written = Vec::new();
            for g in &gens {
                let option = to_option(g);
                match w.push(&option) {
                    Ok(()) => written.push(option),
                    Err(Error::BufferTooSmall) => break,
                    Err(e) => prop_assert!(false, "{e:?} for {option:?}"),
                }
            }
            let len = w.finish();
            // Padding may not fit after a full 40 bytes minus 1..3.
            let len = match len { Ok(len) => len, Err(_) => return Ok(()) };
            prop_assert_eq!(len % 4, 0);
            let mut read: Vec<TcpOption> = TcpOptionIter::new(&buf[..len]).collect::<Result<_>>().unwrap();
            // finish() appends NOPs only.
            let padding = read.len() - written.len();
            prop_assert!(read[written.len()..].iter().all(|o| *o == TcpOption::Nop));
            read.truncate(read.len() - padding);
            prop_assert_eq!(read, written);
        }

        #[test]
        fn fast_path_equals_walk(mss in any::<u16>(), ws in any::<u8>(), ts in any::<(u32, u32)>(),
                                 flip in proptest::option::of((0usize..20, any::<u8>()))) {
            let mut options = LINUX_SYN;
            options[2..4].copy_from_slice(&mss.to_be_bytes());
            options[8..12].copy_from_slice(&ts.0.to_be_bytes());
            options[12..16].copy_from_slice(&ts.1.to_be_bytes());
            options[19] = ws;
            if let Some((at, v)) = flip {
                options[at] = v;
            }
            prop_assert_eq!(SynOptions::parse(&options), SynOptions::parse_walk(&options));
        }

        #[test]
        fn syn_options_roundtrip(o in syn_options()) {
            let mut buf = [0xa5u8; 40];
            let len = o.emit(&mut buf).unwrap();
            prop_assert_eq!(len, o.buffer_len());
            prop_assert_eq!(len % 4, 0);
            prop_assert_eq!(SynOptions::parse(&buf[..len]), o);
            // The strict iterator accepts Linux's layout too.
            prop_assert!(TcpOptionIter::new(&buf[..len]).all(|r| r.is_ok()));
        }
    }
}
