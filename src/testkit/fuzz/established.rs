//! A peer script against one established connection's control block
//! ([`Tcb`]), on a virtual clock.
//!
//! The first bytes pick the connection (timestamps, SACK, window scales,
//! buffer sizes, MSS, a TFO child with data in its SYN, the memory pool);
//! the rest decode into steps: the peer sends data (new, retransmitted,
//! out of order, overlapping), pure ACKs (old ones too), window changes,
//! FIN, RST (exact, in window, anywhere), a SYN; our segments on the way
//! to the peer are delivered, dropped or duplicated in any order; the
//! application reads, writes, shuts down, closes or aborts; the clock
//! advances and the timers run; and now and then a wild segment with
//! arbitrary numbers.
//!
//! The peer is honest except in wild segments: its data is a known byte
//! pattern by stream offset, it acknowledges only what it received, and
//! its timestamps grow. After every step the harness checks
//! [`Tcb::check_invariants`], the memory grants, and (until a wild
//! segment) the end-to-end accounting: the application reads exactly the
//! peer's bytes in order, every byte we send is the application's byte at
//! that offset, the send queue holds exactly the unacknowledged bytes, and
//! nothing is acknowledged or delivered that was not sent.

use crate::engine::errno::Errno;
use crate::engine::tcb::ring::MIN_RING;
use crate::engine::tcb::seq::before;
use crate::engine::tcb::{Payload, PassiveOpen, SegIn, SegOut, State, Tcb, TcbConfig, TcpFlags};
use crate::engine::time::{Duration, Instant};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::OnceLock;

/// The peer's stream and ours stop growing here (bounds a run's memory).
const MAX_STREAM: u32 = 1 << 22;
/// Our segments in flight to the peer; the oldest is lost beyond this.
const MAX_IN_FLIGHT: usize = 64;
/// Steps per input (bounds a run's time).
const MAX_STEPS: usize = 2048;
/// The largest read (a reused buffer: zeroing big ones per read was a
/// sixth of a run).
const READ_MAX: usize = 16 * 1024;
/// The largest write.
const WRITE_MAX: usize = 20_000;
/// The largest wild segment's payload.
const WILD_MAX: usize = 255 * 8;

/// Byte `off` of the peer's stream.
fn peer_byte(off: u32) -> u8 {
    (off.wrapping_mul(0x9e37_79b1) >> 24) as u8 ^ off as u8
}

/// Byte `off` of what our application writes.
fn our_byte(off: u32) -> u8 {
    (off.wrapping_mul(0x85eb_ca6b) >> 24) as u8 ^ (off >> 8) as u8
}

/// Both streams, computed once per process: the peer's segments, our
/// writes and the checks of what arrives are slices of these (generating
/// and comparing byte by byte was two fifths of a run, and under
/// libFuzzer every byte compared was a call to its comparison hook).
struct Streams {
    peer: Box<[u8]>,
    ours: Box<[u8]>,
}

fn streams() -> &'static Streams {
    static STREAMS: OnceLock<Streams> = OnceLock::new();
    STREAMS.get_or_init(|| Streams {
        peer: (0..MAX_STREAM).map(peer_byte).collect(),
        ours: (0..MAX_STREAM + WRITE_MAX as u32).map(our_byte).collect(),
    })
}

/// The peer's stream at `[off, off + len)`.
fn peer_bytes(off: u32, len: u32) -> &'static [u8] {
    if len == 0 {
        return &[];
    }
    &streams().peer[off as usize..(off + len) as usize]
}

/// Panics unless `got` is the stream `want` at offset `off` (`want` is
/// `None` past the table's end): where the first wrong byte is, if any.
fn check_stream(got: &[u8], want: Option<&[u8]>, off: u32, what: &str) {
    if got.is_empty() || want == Some(got) {
        return;
    }
    let at = want.map_or(0, |want| got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0));
    panic!("byte {} of {what} corrupted (or past its end)", off + at as u32);
}

/// The input, read as numbers; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One of our segments on its way to the peer.
#[derive(Clone, Debug)]
struct Sent {
    seg: SegOut,
    /// Offset of its first byte in our stream (before any SYN-ACK it
    /// stands for, that is, `seq - (iss + 1)`).
    off: u32,
}

/// Sorted, merged `[start, end)` ranges of stream offsets.
#[derive(Default, Debug)]
struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    fn insert(&mut self, start: u32, end: u32) {
        if start >= end {
            return;
        }
        self.0.push((start, end));
        self.0.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.0.len());
        for &(s, e) in &self.0 {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.0 = merged;
    }
    /// End of the range starting at 0 (0 when there is none).
    fn contiguous(&self) -> u32 {
        match self.0.first() {
            Some(&(0, e)) => e,
            _ => 0,
        }
    }
}

/// Everything the script knows besides the `Tcb`.
struct World {
    now: Instant,
    iss: u32,
    irs: u32,
    ts: bool,
    sack: bool,
    mss: u32,

    // The peer's sending side (offsets in its stream; 0 = first byte after its SYN).
    /// Highest offset sent so far.
    peer_sent: u32,
    /// Where the peer's FIN is, once it decided to send one.
    peer_fin: Option<u32>,
    peer_window: u16,
    peer_ts: u32,
    /// TFO: the peer has our SYN-ACK (until then it can only repeat its SYN).
    peer_has_synack: bool,
    initial_data: u32,

    // The peer's receiving side (offsets in our stream).
    peer_got: Ranges,
    /// The peer received our FIN.
    peer_got_fin: bool,
    /// The latest TSval of ours the peer saw (what it echoes).
    peer_ts_recent: u32,
    /// The most the peer ever acknowledged (our offset, FIN counted).
    peer_acked_max: u32,

    // Our application.
    written: u32,
    delivered: u32,
    discarded: u32,
    app_closed: bool,
    shut_wr: bool,
    eof_seen: bool,

    // Our side of the wire.
    in_flight: VecDeque<Sent>,
    last_tsval: Option<u32>,

    // The worker's memory pool.
    pool_max: u64,
    pool_used: u64,
    pressure: bool,

    /// A wild segment was sent: end-to-end accounting no longer holds.
    tainted: bool,
    /// Reused for reads (allocated at the first).
    read_buf: Vec<u8>,
    /// Reused for what a call sends.
    out: Out,
}

/// The segments one call sends, their payloads in one reused buffer.
#[derive(Default)]
struct Out {
    segs: Vec<(SegOut, Range<usize>)>,
    bytes: Vec<u8>,
}

fn pick<T: Copy>(table: &[T], b: u8) -> T {
    table[usize::from(b) % table.len()]
}

pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let (mut tcb, mut w) = open(&mut input);
    check(&tcb, &w, "open");
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let op = input.u8();
        step(&mut tcb, &mut w, op, &mut input);
        check(&tcb, &w, "step");
    }
    finish(&mut tcb, &mut w);
}

/// The connection the first bytes describe.
fn open(input: &mut Input<'_>) -> (Tcb, World) {
    let f = input.u8();
    let scales = input.u8();
    let bufs = input.u8();
    let mss = input.u8();
    let tfo_len = input.u8();
    let peer_window = input.u16();
    let iss = input.u32();
    let irs = input.u32();
    let ts_base = input.u32();
    let ts_offset = input.u32();
    let sizes = [1u32, 100, 1000, 4096, 16_384, 65_535, 262_144, 1 << 20];
    let (ts, sack, wscale, nodelay, tfo) = (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 8 != 0, f & 16 != 0);
    let now = Instant::from_secs(1000);
    let initial = if tfo { peer_bytes(0, u32::from(tfo_len)) } else { &[] };
    let pool_max = if f & 128 != 0 { 16 * 1024 } else { 64 << 20 };
    let snd_wscale = scales % 15;
    let p = PassiveOpen {
        now,
        iss,
        irs,
        peer_mss: pick(&[48, 100, 536, 1200, 1460, 9000, 65_535], mss),
        our_mss: pick(&[536, 1460, 8960], mss >> 4),
        snd_wscale: wscale.then_some(snd_wscale),
        rcv_wscale: (scales >> 4) % 15,
        sack_ok: sack,
        ts: ts.then_some((ts_base, ts_offset)),
        peer_window: u32::from(peer_window),
        initial_data: initial,
        syn_ack_pending: tfo,
        rtt_sample: (f & 64 != 0).then_some(Duration::from_millis(u64::from(mss))),
        rcv_buf_cap: pick(&sizes, bufs),
        snd_buf_cap: pick(&sizes, bufs >> 3),
        // Autotuning on for some inputs (0 keeps the buffers fixed).
        rcv_buf_max: pick(&[0, 1 << 20, 6 << 20], bufs >> 6),
        snd_buf_max: pick(&[0, 1 << 20, 4 << 20], bufs >> 6),
        mem_room: pool_max as u32,
        config: TcbConfig { nodelay, ..TcbConfig::default() },
    };
    let tcb = Tcb::new_passive(p);
    let w = World {
        now,
        iss,
        irs,
        ts,
        sack,
        mss: u32::from(tcb.mss()),
        peer_sent: initial.len() as u32,
        peer_fin: None,
        peer_window,
        peer_ts: ts_base,
        // The listen path sent the first SYN-ACK; whether it arrived is a step.
        peer_has_synack: !tfo || f & 32 != 0,
        initial_data: initial.len() as u32,
        peer_got: Ranges::default(),
        peer_got_fin: false,
        peer_ts_recent: 0,
        peer_acked_max: 0,
        written: 0,
        delivered: 0,
        discarded: 0,
        app_closed: false,
        shut_wr: false,
        eof_seen: false,
        in_flight: VecDeque::new(),
        last_tsval: None,
        pool_max,
        pool_used: u64::from(tcb.mem()),
        pressure: false,
        tainted: false,
        read_buf: Vec::new(),
        out: Out::default(),
    };
    (tcb, w)
}

/// Grant the `Tcb` what the pool has left, run `f`, charge what it grew.
fn with_mem<R>(tcb: &mut Tcb, w: &mut World, f: impl FnOnce(&mut Tcb, &mut Out) -> R) -> R {
    let room = w.pool_max.saturating_sub(w.pool_used).min(u64::from(u32::MAX)) as u32;
    tcb.set_mem(room, w.pressure);
    let held = u64::from(tcb.mem());
    let mut out = std::mem::take(&mut w.out);
    let r = f(tcb, &mut out);
    let now_held = u64::from(tcb.mem());
    // A ring may always start at MIN_RING (Linux forces the first skb), one
    // per direction; beyond that a call grows only by what was granted.
    let allowance = u64::from(room) + 2 * MIN_RING as u64;
    assert!(now_held <= held + allowance, "grew from {held} to {now_held} bytes with {room} granted");
    w.pool_used = (w.pool_used + now_held).saturating_sub(held);
    for (seg, bytes) in out.segs.drain(..) {
        emitted(w, seg, &out.bytes[bytes]);
    }
    out.bytes.clear();
    w.out = out;
    r
}

/// A segment we sent: check it, and put it on the wire to the peer.
fn emitted(w: &mut World, seg: SegOut, payload: &[u8]) {
    assert_eq!(payload.len() as u32, seg.payload_len, "payload length");
    assert!(seg.flags.contains(TcpFlags::ACK), "every segment carries ACK");
    if w.ts {
        let (tsval, _) = seg.ts.expect("timestamps negotiated: every segment carries them");
        if let Some(last) = w.last_tsval {
            assert!(!before(tsval, last), "our TSval went back from {last} to {tsval}");
        }
        w.last_tsval = Some(tsval);
    } else {
        assert!(seg.ts.is_none(), "timestamps not negotiated");
    }
    if !w.sack {
        assert_eq!(seg.sack_len, 0, "SACK blocks without SACK-permitted");
    }
    let off = seg.seq.wrapping_sub(w.iss.wrapping_add(1));
    if seg.flags.syn() {
        assert_eq!(seg.seq, w.iss, "a SYN-ACK is at our ISS");
        assert_eq!(seg.payload_len, 0);
    } else if !w.tainted {
        // After our FIN, a pure ACK is at the FIN's sequence number + 1; a
        // zero-window probe is at snd_una - 1 (Linux tcp_xmit_probe_skb).
        let fin = u32::from(w.shut_wr || w.app_closed);
        let probe = seg.payload_len == 0 && !seg.flags.fin() && off == u32::MAX;
        assert!(probe || off <= w.written + fin, "segment at offset {off} past the {} bytes written", w.written);
        let end = off + seg.payload_len;
        assert!(seg.payload_len == 0 || end <= w.written, "segment {off}..{end} past the {} bytes written", w.written);
        check_stream(payload, streams().ours.get(off as usize..end as usize), off, "our stream");
        if seg.flags.fin() {
            assert!(w.shut_wr || w.app_closed, "FIN before shutdown or close");
            assert_eq!(end, w.written, "FIN not after the last byte");
        }
        // The ACK never covers what the peer did not send.
        let acked = seg.ack.wrapping_sub(w.irs.wrapping_add(1));
        let limit = w.peer_sent + u32::from(w.peer_fin.is_some());
        assert!(acked <= limit, "we acknowledged offset {acked} of the peer's {limit}");
    }
    if seg.flags.rst() {
        // The connection is gone for us; the peer need not see it.
        return;
    }
    if w.in_flight.len() == MAX_IN_FLIGHT {
        w.in_flight.pop_front();
    }
    w.in_flight.push_back(Sent { seg, off });
}

/// The peer receives one of our segments.
fn peer_receives(w: &mut World, s: &Sent) {
    if s.seg.flags.syn() {
        w.peer_has_synack = true;
    } else if !w.peer_has_synack {
        // Still in SYN_SENT: only a SYN-ACK means anything to the peer.
        return;
    }
    if let Some((tsval, _)) = s.seg.ts {
        w.peer_ts_recent = tsval;
    }
    if s.seg.flags.syn() {
        return;
    }
    let end = s.off.wrapping_add(s.seg.payload_len);
    if s.off <= w.written && end <= w.written {
        w.peer_got.insert(s.off, end);
        if s.seg.flags.fin() && w.peer_got.contiguous() >= end {
            w.peer_got_fin = true;
        }
    }
}

/// What the peer acknowledges of our stream now (FIN counted).
fn peer_ack_off(w: &World) -> u32 {
    let c = w.peer_got.contiguous();
    c + u32::from(w.peer_got_fin && c == w.written)
}

fn out_fn(out: &mut Out) -> impl FnMut(SegOut, Payload<'_>) + '_ {
    move |s, p| {
        let start = out.bytes.len();
        out.bytes.extend_from_slice(p.0);
        out.bytes.extend_from_slice(p.1);
        out.segs.push((s, start..out.bytes.len()));
    }
}

/// The peer's segment at its stream offset `off` with `len` bytes.
fn peer_segment(tcb: &mut Tcb, w: &mut World, off: u32, len: u32, flags: TcpFlags, ack_off: Option<u32>, sack: bool) {
    let payload = peer_bytes(off, len);
    let mut blocks = [(0u32, 0u32); 4];
    let mut n = 0;
    if sack && w.sack {
        for &(s, e) in w.peer_got.0.iter().filter(|r| r.0 > 0).take(3) {
            let base = w.iss.wrapping_add(1);
            blocks[n] = (base.wrapping_add(s), base.wrapping_add(e));
            n += 1;
        }
    }
    let seg = SegIn {
        seq: w.irs.wrapping_add(1).wrapping_add(off),
        ack: ack_off.map(|a| w.iss.wrapping_add(1).wrapping_add(a)),
        flags: if ack_off.is_some() { flags | TcpFlags::ACK } else { flags },
        window: w.peer_window,
        ts: w.ts.then_some((w.peer_ts, w.peer_ts_recent)),
        sack: &blocks[..n],
        payload,
    };
    if let Some(a) = ack_off {
        w.peer_acked_max = w.peer_acked_max.max(a);
    }
    w.peer_sent = w.peer_sent.max(off + len);
    let now = w.now;
    with_mem(tcb, w, |t, out| t.on_segment(now, &seg, &mut out_fn(out)));
}

/// The peer's next sequence number as an offset (its FIN counted).
fn peer_nxt(w: &World) -> u32 {
    match w.peer_fin {
        Some(f) => f + 1,
        None => w.peer_sent,
    }
}

/// An ACK the peer may honestly send: the latest, or one it sent before.
fn honest_ack(w: &World, b: u8) -> u32 {
    let now = peer_ack_off(w);
    if b & 3 == 0 && now > 0 {
        // Reordered: an older cumulative ACK.
        now - u32::from(b >> 2) % now.clamp(1, 64 * 1024)
    } else {
        now
    }
}

fn step(tcb: &mut Tcb, w: &mut World, op: u8, input: &mut Input<'_>) {
    let now = w.now;
    match op % 16 {
        // The peer sends data.
        0..=3 => {
            let sel = input.u8();
            let len = u32::from(input.u16()) % (4 * w.mss + 1);
            let flags = input.u8();
            if !w.peer_has_synack {
                return peer_syn(tcb, w);
            }
            let nxt = w.peer_sent;
            let start = match sel & 3 {
                0 | 1 => nxt,
                // A retransmission from somewhere behind.
                2 => nxt.saturating_sub(u32::from(sel >> 2) * w.mss.max(1) / 4),
                // Out of order: a hole before it.
                _ => nxt + u32::from(sel >> 2) * 97,
            };
            let mut end = (start + len).min(MAX_STREAM);
            if let Some(f) = w.peer_fin {
                end = end.min(f);
            }
            let start = start.min(end);
            let mut fl = TcpFlags::empty();
            if flags & 1 != 0 {
                fl |= TcpFlags::PSH;
            }
            if flags & 2 != 0 && (w.peer_fin.is_none() || w.peer_fin == Some(end)) && end >= w.peer_sent {
                w.peer_fin = Some(end);
                fl |= TcpFlags::FIN;
            }
            if flags & 4 != 0 {
                w.peer_window = input.u16();
            }
            let ack = honest_ack(w, flags >> 3);
            peer_segment(tcb, w, start, end - start, fl, Some(ack), flags & 8 != 0);
        }
        // A pure ACK, perhaps with a new window.
        4 | 5 => {
            let b = input.u8();
            if b & 1 != 0 {
                w.peer_window = input.u16();
            }
            if !w.peer_has_synack {
                return peer_syn(tcb, w);
            }
            let nxt = peer_nxt(w);
            let ack = honest_ack(w, b >> 1);
            let fin = if w.peer_fin.is_some() && b & 0x80 != 0 {
                // The FIN again, alone.
                TcpFlags::FIN
            } else {
                TcpFlags::empty()
            };
            let off = if fin.fin() { nxt - 1 } else { nxt };
            peer_segment(tcb, w, off, 0, fin, Some(ack), b & 2 != 0);
        }
        // Our segments on the wire: deliver, drop, duplicate.
        6 | 7 => {
            let b = input.u8();
            if w.in_flight.is_empty() {
                return;
            }
            let i = usize::from(b >> 2) % w.in_flight.len();
            match b & 3 {
                0 | 1 => {
                    if let Some(s) = w.in_flight.remove(i) {
                        peer_receives(w, &s);
                    }
                }
                2 => {
                    w.in_flight.remove(i);
                }
                _ => {
                    let s = w.in_flight[i].clone();
                    peer_receives(w, &s);
                }
            }
        }
        // Deliver everything in order (a good network for a while).
        8 => {
            while let Some(s) = w.in_flight.pop_front() {
                peer_receives(w, &s);
            }
        }
        // The application reads.
        9 => {
            let n = pick(&[1usize, 7, 536, 1460, 4096, READ_MAX], input.u8());
            if w.app_closed {
                return;
            }
            let mut buf = std::mem::take(&mut w.read_buf);
            buf.resize(READ_MAX, 0);
            let r = with_mem(tcb, w, |t, _| t.read(&mut buf[..n]));
            match r {
                Ok(0) if n > 0 => {
                    assert!(tcb.fin_received(), "EOF without the peer's FIN");
                    w.eof_seen = true;
                }
                Ok(k) => {
                    assert!(!w.eof_seen, "data after EOF");
                    if !w.tainted {
                        let (off, end) = (w.delivered as usize, w.delivered as usize + k);
                        check_stream(&buf[..k], streams().peer.get(off..end), w.delivered, "the peer's stream");
                    }
                    w.delivered += k as u32;
                }
                Err(Errno::Eagain) => assert_eq!(tcb.recv_queue_len(), 0, "EAGAIN with data queued"),
                Err(_) => {}
            }
            w.read_buf = buf;
            with_mem(tcb, w, |t, out| t.poll_transmit(now, &mut out_fn(out)));
        }
        // The application writes.
        10 => {
            let n = pick(&[1usize, 10, 100, 1000, 1460, 3000, 8000, WRITE_MAX], input.u8());
            if w.app_closed || w.written >= MAX_STREAM {
                return;
            }
            let data = &streams().ours[w.written as usize..w.written as usize + n];
            let r = with_mem(tcb, w, |t, _| t.write(data));
            if let Ok(k) = r {
                assert!(k <= data.len());
                w.written += k as u32;
            }
            with_mem(tcb, w, |t, out| t.poll_transmit(now, &mut out_fn(out)));
        }
        // shutdown(SHUT_WR), close(), abort().
        11 => {
            let b = input.u8();
            if w.app_closed {
                return;
            }
            match b % 4 {
                0 | 1 => {
                    w.shut_wr = true;
                    let _ = with_mem(tcb, w, |t, _| t.shutdown_write());
                    with_mem(tcb, w, |t, out| t.poll_transmit(now, &mut out_fn(out)));
                }
                2 => {
                    let queued = tcb.recv_queue_len();
                    w.app_closed = true;
                    with_mem(tcb, w, |t, out| t.close(now, &mut out_fn(out)));
                    w.discarded += queued - tcb.recv_queue_len();
                }
                _ => {
                    let queued = tcb.recv_queue_len();
                    w.app_closed = true;
                    with_mem(tcb, w, |t, out| t.abort(now, &mut out_fn(out)));
                    w.discarded += queued - tcb.recv_queue_len();
                }
            }
        }
        // The clock moves; the timers run.
        12 | 13 => {
            let b = input.u8();
            let ms = match b & 3 {
                0 => u64::from(b >> 2),
                1 => 40 + u64::from(b >> 2) * 10,
                2 => 200 * u64::from(b >> 2),
                _ => 1000 * u64::from(b >> 2) * 4,
            };
            w.now += Duration::from_millis(ms);
            // The peer's clock: 1 kHz like Linux's.
            w.peer_ts = w.peer_ts.wrapping_add(ms as u32);
            run_timers(tcb, w);
        }
        // Memory pressure on or off, the pool's limit.
        14 => {
            let b = input.u8();
            w.pressure = b & 1 != 0;
            if b & 2 != 0 {
                w.pool_max = pick(&[0u64, 4096, 16 * 1024, 256 * 1024, 64 << 20], b >> 2);
            }
            if b & 0x80 != 0 {
                tcb.set_nodelay(b & 0x40 != 0);
            }
        }
        // RST, SYN, or a wild segment.
        _ => {
            let b = input.u8();
            match b % 8 {
                0 => peer_syn(tcb, w),
                1 | 2 => {
                    // RST at the peer's next sequence number (it resets).
                    let ack = (b & 8 != 0).then(|| peer_ack_off(w));
                    let nxt = peer_nxt(w);
                    peer_rst(tcb, w, nxt, ack);
                }
                3 => {
                    // RST in the window but not exact: a challenge ACK.
                    let nxt = peer_nxt(w) + 1 + u32::from(input.u16());
                    peer_rst(tcb, w, nxt, None);
                }
                _ => wild(tcb, w, input),
            }
        }
    }
}

fn peer_syn(tcb: &mut Tcb, w: &mut World) {
    // The peer's SYN again (with its TFO data): offset -1 is the SYN.
    let payload = peer_bytes(0, w.initial_data);
    let seg = SegIn {
        seq: w.irs,
        ack: None,
        flags: TcpFlags::SYN,
        window: w.peer_window,
        ts: w.ts.then_some((w.peer_ts, 0)),
        sack: &[],
        payload,
    };
    let now = w.now;
    with_mem(tcb, w, |t, out| t.on_segment(now, &seg, &mut out_fn(out)));
}

fn peer_rst(tcb: &mut Tcb, w: &mut World, off: u32, ack_off: Option<u32>) {
    if let Some(a) = ack_off {
        w.peer_acked_max = w.peer_acked_max.max(a);
    }
    let seg = SegIn {
        seq: w.irs.wrapping_add(1).wrapping_add(off),
        ack: ack_off.map(|a| w.iss.wrapping_add(1).wrapping_add(a)),
        flags: if ack_off.is_some() { TcpFlags::RST | TcpFlags::ACK } else { TcpFlags::RST },
        window: 0,
        ts: w.ts.then_some((w.peer_ts, w.peer_ts_recent)),
        sack: &[],
        payload: &[],
    };
    let now = w.now;
    with_mem(tcb, w, |t, out| t.on_segment(now, &seg, &mut out_fn(out)));
}

/// Arbitrary numbers: the accounting checks stop, the invariants stay.
fn wild(tcb: &mut Tcb, w: &mut World, input: &mut Input<'_>) {
    let seq = input.u32();
    let ack = input.u32();
    let flags = TcpFlags::from_bits_truncate(input.u16());
    let window = input.u16();
    let tsval = input.u32();
    let len = usize::from(input.u8()) * 8;
    let payload = &[0x5a; WILD_MAX][..len];
    let blocks = [(input.u32(), input.u32())];
    let seg = SegIn {
        seq,
        ack: flags.contains(TcpFlags::ACK).then_some(ack),
        flags,
        window,
        ts: (tsval & 1 != 0).then_some((tsval, ack)),
        sack: &blocks[..usize::from(window & 1)],
        payload,
    };
    w.tainted = true;
    let now = w.now;
    with_mem(tcb, w, |t, out| t.on_segment(now, &seg, &mut out_fn(out)));
}

/// The timer wheel's part: fire whatever is due, until nothing is.
fn run_timers(tcb: &mut Tcb, w: &mut World) {
    let now = w.now;
    for _ in 0..64 {
        match tcb.next_timeout() {
            Some(t) if t <= now => {
                with_mem(tcb, w, |t, out| t.on_timeout(now, &mut out_fn(out)));
            }
            _ => return,
        }
    }
    panic!("timers still due after 64 rounds at one instant");
}

/// The checks after every step.
fn check(tcb: &Tcb, w: &World, at: &str) {
    if let Err(v) = tcb.check_invariants() {
        panic!("{at}: {v} (state {:?})", tcb.state());
    }
    if w.tainted {
        return;
    }
    let irs1 = w.irs.wrapping_add(1);
    let rcv_off = tcb.rcv_nxt().wrapping_sub(irs1);
    let fin = u32::from(tcb.fin_received());
    // Every byte the peer's stream had up to rcv_nxt is read, thrown away
    // at close, or queued: none lost, none twice.
    assert_eq!(
        w.delivered + w.discarded + tcb.recv_queue_len() + fin,
        rcv_off,
        "read {} + discarded {} + queued {} + FIN {fin} != rcv_nxt offset {rcv_off}",
        w.delivered,
        w.discarded,
        tcb.recv_queue_len()
    );
    assert!(rcv_off <= peer_nxt(w), "rcv_nxt offset {rcv_off} beyond what the peer sent ({})", peer_nxt(w));
    if tcb.fin_received() {
        assert_eq!(w.peer_fin.map(|f| f + 1), Some(rcv_off), "FIN received where the peer put none");
    }
    // Our side: the send queue is exactly the unacknowledged bytes, and
    // nothing is taken as acknowledged that the peer did not acknowledge.
    let una = tcb.snd_una().wrapping_sub(w.iss.wrapping_add(1));
    let una = if una == u32::MAX { 0 } else { una };
    assert!(una <= w.peer_acked_max, "snd_una offset {una} beyond the peer's ACK {}", w.peer_acked_max);
    if tcb.state() != State::Closed {
        assert_eq!(
            tcb.send_queue_len(),
            w.written - una.min(w.written),
            "send queue vs {} written and {una} acknowledged",
            w.written
        );
    }
}

/// At the end: a connection that is closed and drained holds no memory.
fn finish(tcb: &mut Tcb, w: &mut World) {
    if tcb.state() == State::Closed && !w.app_closed {
        let mut buf = vec![0u8; READ_MAX];
        while with_mem(tcb, w, |t, _| t.read(&mut buf)).is_ok_and(|n| n > 0) {}
    }
    if tcb.state() == State::Closed && tcb.recv_queue_len() == 0 && tcb.ooo_bytes() == 0 {
        assert_eq!(tcb.mem(), 0, "a closed, drained connection still holds {} bytes", tcb.mem());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_tables_are_the_byte_functions() {
        let s = streams();
        for off in [0u32, 1, 255, 65_535, MAX_STREAM - 1] {
            assert_eq!(s.peer[off as usize], peer_byte(off));
            assert_eq!(s.ours[off as usize], our_byte(off));
        }
        assert_eq!(s.ours.len(), MAX_STREAM as usize + WRITE_MAX);
    }

    #[test]
    fn check_stream_accepts_the_stream() {
        check_stream(&streams().peer[100..200], streams().peer.get(100..200), 100, "the peer's stream");
        check_stream(&[], None, u32::MAX, "our stream");
    }

    #[test]
    #[should_panic(expected = "byte 105 of the peer's stream corrupted")]
    fn check_stream_finds_the_corrupted_byte() {
        let mut got = streams().peer[100..200].to_vec();
        got[5] ^= 1;
        check_stream(&got, streams().peer.get(100..200), 100, "the peer's stream");
    }

    #[test]
    #[should_panic(expected = "corrupted (or past its end)")]
    fn check_stream_refuses_bytes_past_the_table() {
        check_stream(&[0], None, MAX_STREAM, "the peer's stream");
    }
}
