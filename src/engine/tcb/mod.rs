//! The TCP control block of an established connection, passive side.
//!
//! Sans-IO and independent of byte formats: [`Tcb::on_segment`] takes a
//! parsed [`SegIn`], segments to send go out through a sink as [`SegOut`]
//! descriptions plus their payload slices (taken from the send ring, no
//! allocation per segment), and what the application should know comes
//! back as [`Events`].
//!
//! Timers: the `Tcb` keeps its own deadlines (retransmission or persist,
//! delayed ACK, TIME_WAIT / FIN_WAIT_2). The caller keeps ONE timer-wheel
//! entry per connection at [`Tcb::next_timeout`] and calls
//! [`Tcb::on_timeout`] when it fires; re-read `next_timeout` after every
//! call into the `Tcb`.
//!
//! The listen path builds a `Tcb` with [`Tcb::new_passive`] from a
//! completed request sock, a SYN cookie or a TFO SYN. Data carried by the
//! completing ACK is then handed in with `on_segment` like any segment.
//! A `SegOut` with SYN set is a TFO child's SYN-ACK retransmission: the
//! emitter adds the SYN options (MSS, window scale, SACK-permitted) it
//! negotiated. After `read()`, `write()`, `shutdown_write()` the caller
//! calls [`Tcb::poll_transmit`] (a read may have made a window update due).
//!
//! Loss recovery: with SACK negotiated, RFC 6675 over a scoreboard of the
//! peer's SACK blocks (`sack`), with Linux's reordering degree
//! (`tp->reordering`) and timestamp-based undo of a recovery that was only
//! reordering (RFC 3522, Linux `tcp_try_undo_partial`); without SACK,
//! NewReno (RFC 6582). The receive buffer autotunes (`rcv_space`, Linux's
//! `tcp_rcv_space_adjust`), and so does the send buffer (Linux's
//! `tcp_sndbuf_expand`).
//!
//! Not done yet: RACK-TLP (RFC 8985, Linux's default loss detection), D-SACK
//! (neither sent nor used), ECN (ECE/CWR ignored),
//! adaptive ATO and Linux's pingpong mode (the delayed-ACK timeout is a
//! fixed 40 ms), cwnd restart after idle, PAWS's 24-day ts_recent
//! expiry, and a SYN reopening TIME_WAIT (answered with an ACK here).

pub mod invariants;
pub mod rcv_space;
pub mod recv;
pub mod ring;
pub mod rtt;
pub mod sack;
pub mod send;
pub mod seq;
#[cfg(test)]
mod tests;

use crate::engine::errno::Errno;
use crate::engine::time::{Duration, Instant};
use rcv_space::RcvSpace;
use recv::{RecvBuf, MAX_SACK_BLOCKS};
use rtt::{RttEstimator, RTO_MAX, RTO_MIN};
use sack::Scoreboard;
use send::SendBuf;
use seq::{after, before, between, seq_max};

pub use crate::wire::tcp::TcpFlags;

/// A received segment, parsed. `ack` is `Some` exactly when the ACK flag is
/// set; `window` is the raw header field (this `Tcb` scales it).
#[derive(Clone, Copy, Debug, Default)]
pub struct SegIn<'a> {
    pub seq: u32,
    pub ack: Option<u32>,
    pub flags: TcpFlags,
    pub window: u16,
    /// (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// SACK blocks as received.
    pub sack: &'a [(u32, u32)],
    pub payload: &'a [u8],
}

/// A segment to send. Every segment carries ACK. The payload bytes come
/// with it in the sink as a [`Payload`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegOut {
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Header value, already scaled down by our window scale (unscaled on a SYN-ACK).
    pub window: u16,
    /// (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    pub sack_len: u8,
    pub payload_len: u32,
}

impl SegOut {
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len as usize]
    }
}

/// Payload bytes of a [`SegOut`]: two slices of the send ring (the second
/// is non-empty when the range wraps). Copy `.0` then `.1`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Payload<'a>(pub &'a [u8], pub &'a [u8]);

impl Payload<'_> {
    pub fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What changed for the application, as a small bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(pub u8);

impl Events {
    pub const READABLE: Events = Events(0x01);
    pub const WRITABLE: Events = Events(0x02);
    /// The peer's FIN was received in order: read() will reach EOF.
    pub const PEER_CLOSED: Events = Events(0x04);
    /// The connection was reset (by the peer, or it timed out: see [`Tcb::error`]).
    pub const RESET: Events = Events(0x08);
    /// The connection is fully gone; the `Tcb` can be freed.
    pub const CLOSED: Events = Events(0x10);
    pub const TIME_WAIT: Events = Events(0x20);

    pub const fn contains(self, e: Events) -> bool {
        self.0 & e.0 == e.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn insert(&mut self, e: Events) {
        self.0 |= e.0;
    }
}

/// RFC 9293 connection states reachable after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
    Closed,
}

/// Per-connection knobs, with Linux's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcbConfig {
    /// Linux `TCP_TIMEWAIT_LEN`: 60 s.
    pub time_wait: Duration,
    /// `net.ipv4.tcp_fin_timeout`: 60 s, for orphaned FIN_WAIT_2.
    pub fin_timeout: Duration,
    /// `net.ipv4.tcp_retries2`: 15.
    pub retries2: u8,
    /// `net.ipv4.tcp_synack_retries`: 5 (TFO children whose SYN-ACK is unacked).
    pub synack_retries: u8,
    /// TCP_NODELAY (Nagle off). Linux's default is Nagle on.
    pub nodelay: bool,
    /// Challenge ACKs per second (Linux's `tcp_challenge_ack_limit` is 1000/s
    /// per netns; here it is per connection).
    pub challenge_ack_limit: u16,
}

impl Default for TcbConfig {
    fn default() -> Self {
        TcbConfig {
            time_wait: Duration::from_secs(60),
            fin_timeout: Duration::from_secs(60),
            retries2: 15,
            synack_retries: 5,
            nodelay: false,
            challenge_ack_limit: 1000,
        }
    }
}

/// What the listen path knows when a connection is born.
#[derive(Clone, Copy, Debug)]
pub struct PassiveOpen<'a> {
    pub now: Instant,
    pub iss: u32,
    pub irs: u32,
    /// The MSS option the peer sent (536 when absent, RFC 9293 3.7.1).
    pub peer_mss: u16,
    /// The MSS we advertised.
    pub our_mss: u16,
    /// The peer's window scale; `None` when either side did not offer it.
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: u8,
    pub sack_ok: bool,
    /// With timestamps: (ts_recent = the peer's last TSval, our ts_offset).
    pub ts: Option<(u32, u32)>,
    /// The peer's window in bytes, already scaled (a SYN's is never scaled).
    pub peer_window: u32,
    /// Data that came with the SYN (TFO), already acknowledged by our SYN-ACK.
    pub initial_data: &'a [u8],
    /// TFO child: our SYN-ACK is not acknowledged yet; retransmit it on RTO.
    /// The listen path sent the first SYN-ACK at `now`.
    pub syn_ack_pending: bool,
    /// An RTT measured on the handshake, if any.
    pub rtt_sample: Option<Duration>,
    /// The receive buffer a connection starts with (Linux `tcp_rmem[1]`,
    /// here what the first window offers).
    pub rcv_buf_cap: u32,
    /// The most receive-buffer autotuning may grow it to (Linux
    /// `tcp_rmem[2]`), bounded by what the window scale can offer; at most
    /// `rcv_buf_cap` turns autotuning off.
    pub rcv_buf_max: u32,
    pub snd_buf_cap: u32,
    /// The most send-buffer autotuning may grow it to (Linux
    /// `tcp_wmem[2]`); at most `snd_buf_cap` turns it off. Both maxima are
    /// kept in KiB, at most 64 MiB.
    pub snd_buf_max: u32,
    /// Ring bytes granted for the TFO data (see [`Tcb::set_mem`]).
    pub mem_room: u32,
    pub config: TcbConfig,
}

/// Linux `TCP_DELACK_MIN` / `TCP_ATO_MIN`: 40 ms.
pub const DELACK: Duration = Duration::from_millis(40);
/// Linux `net.ipv4.tcp_invalid_ratelimit`: 500 ms.
const OOW_ACK_INTERVAL_MS: u32 = 500;
/// Linux `TCP_MAX_QUICKACKS`.
const MAX_QUICKACKS: u8 = 16;
/// Linux `TCP_INIT_CWND`.
const INIT_CWND: u32 = 10;
/// Linux `TCP_MIN_SND_MSS`.
const MIN_SND_MSS: u16 = 48;
/// Largest buffer we accept: 2^30, the most a window scale of 14 covers.
const MAX_BUF: u32 = 1 << 30;

/// A deadline slot: `u64::MAX` nanoseconds means unarmed (saves 8 bytes
/// per timer over `Option<Instant>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Deadline(u64);

impl Deadline {
    const NONE: Deadline = Deadline(u64::MAX);
    fn at(t: Instant) -> Deadline {
        Deadline(t.as_nanos().min(u64::MAX - 1))
    }
    fn get(self) -> Option<Instant> {
        (self.0 != u64::MAX).then(|| Instant::from_nanos(self.0))
    }
    fn due(self, now: Instant) -> bool {
        self.0 != u64::MAX && self.0 <= now.as_nanos()
    }
}

/// What only some connections need, out of line so the control block
/// stays small: receive autotuning (bulk receivers), the answers to bad
/// segments (rate limits), an out-of-order FIN. Allocated on first use,
/// kept for the connection's life; not charged to the memory pool (it is
/// control state, bounded per connection, like the `Tcb` itself).
#[derive(Debug, Default)]
struct TcbExt {
    /// Receive-buffer autotuning, once the peer sends full-sized segments.
    rcv_space: Option<RcvSpace>,
    /// Start (ms) of the current challenge-ACK second.
    chal_ms: u32,
    /// When (ms, 0 = never) we last answered an out-of-window segment.
    oow_ms: u32,
    /// Sequence number of the peer's FIN when it arrived out of order.
    rcv_fin_seq: u32,
    /// What the peer SACKed (RFC 6675 scoreboard).
    sack: Scoreboard,
    /// RFC 6675 `HighRxt`: retransmitted in this recovery up to here.
    high_rxt: u32,
    /// Reordering seen, in segments (Linux `tp->reordering`): DupThresh
    /// grows to it, so a path that reorders does not look lossy. 0 = the
    /// default, DupThresh.
    reordering: u16,
    /// Our TSval on the first retransmission of this recovery (Linux
    /// `retrans_stamp`), and cwnd and ssthresh before it (`prior_cwnd`,
    /// `prior_ssthresh`), to undo a recovery that was only reordering.
    retrans_ts: u32,
    prior_cwnd: u32,
    prior_ssthresh: u32,
    /// When (engine ms, 0 = none) the first RTO retransmission of the
    /// current series went out (Linux `retrans_stamp`): the clock of the
    /// give-up rule, and a TSecr older than our TSval then (`rto_stamp_ts`)
    /// echoes an original transmission, not the retransmission.
    rto_stamp_ms: u32,
    rto_stamp_ts: u32,
}

// Bits of `Tcb::flags`.
const F_SACK: u16 = 1 << 0;
const F_TS: u16 = 1 << 1;
const F_NODELAY: u16 = 1 << 2;
const F_FIN_QUEUED: u16 = 1 << 3;
const F_FIN_SENT: u16 = 1 << 4;
const F_SYN_PENDING: u16 = 1 << 5;
const F_ACK_NOW: u16 = 1 << 6;
const F_FIN_RCVD: u16 = 1 << 7;
const F_OOO_FIN: u16 = 1 << 8;
const F_ORPHAN: u16 = 1 << 9;
const F_RTT_TIMING: u16 = 1 << 10;
const F_RECOVERY: u16 = 1 << 11;
const F_PROBING: u16 = 1 << 12;
const F_MEM_PRESSURE: u16 = 1 << 13;
/// Window scaling is on (RFC 7323: both ways or neither).
const F_WSCALE: u16 = 1 << 14;
/// The application found the send buffer full (Linux `SOCK_NOSPACE`).
const F_NOSPACE: u16 = 1 << 15;

/// Linux `tcp_adjust_rcv_ssthresh`: under memory pressure the offered
/// window is at most this many advertised MSS.
const PRESSURE_WINDOW_MSS: u32 = 4;

/// The control block. Its rings are allocated as data arrives and
/// released when they drain (see `send` and `recv`); what they may grow by
/// is granted by the worker's memory pool before each call ([`Tcb::set_mem`]).
#[derive(Debug)]
pub struct Tcb {
    snd: SendBuf,
    rcv: RecvBuf,
    /// Retransmission or (with `F_PROBING`) persist timer; in TIME_WAIT
    /// and orphaned FIN_WAIT_2, the state's expiry (our FIN is acknowledged
    /// there, so nothing is left to retransmit: one slot serves both).
    rtx_at: Deadline,
    delack_at: Deadline,
    /// When the Karn-timed segment was sent (without timestamps), in
    /// microseconds of engine time (wrapping; RTTs are far shorter).
    rtt_time_us: u32,
    rtt: RttEstimator,

    /// Oldest unacknowledged sequence number (our ISS while a TFO child's
    /// SYN-ACK is unacknowledged).
    snd_una: u32,
    /// Next sequence number to send (goes back to `snd_una` on RTO).
    snd_nxt: u32,
    /// Highest sequence number sent so far (+1).
    snd_max: u32,
    /// Peer's window in bytes, scaled.
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: u32,
    rcv_nxt: u32,
    /// `rcv_nxt` when we last sent a window (Linux `rcv_wup`; also RFC 7323's Last.ACK.sent).
    rcv_wup: u32,
    /// The window we last advertised, in bytes.
    rcv_wnd: u32,
    /// What receive and send autotuning may grow the buffers to, in KiB
    /// (two u16 keep the control block at its size).
    rcv_max_kb: u16,
    snd_max_kb: u16,
    cwnd: u32,
    ssthresh: u32,
    /// Congestion avoidance byte counter (RFC 5681 3.1, "appropriate byte counting").
    bytes_acked: u32,
    /// RFC 6582 `recover`.
    recover: u32,
    rtt_seq: u32,
    ts_recent: u32,
    ts_offset: u32,
    /// State only some connections need, allocated on first use.
    ext: Option<Box<TcbExt>>,
    /// TIME_WAIT and orphaned FIN_WAIT_2 lengths, in seconds.
    time_wait_s: u16,
    fin_timeout_s: u16,
    /// Ring bytes this connection may still allocate in the current call
    /// (granted by the worker's memory pool).
    mem_room: u32,

    /// Send MSS (payload bytes, timestamp option already taken off).
    mss: u16,
    /// Estimate of the peer's segment size (Linux `icsk_ack.rcv_mss`).
    rcv_mss: u16,
    /// The MSS we advertised (Linux `advmss`), bounding `rcv_mss`.
    adv_mss: u16,
    chal_count: u16,
    chal_limit: u16,
    flags: u16,

    state: State,
    error: Option<Errno>,
    events: Events,
    snd_wscale: u8,
    rcv_wscale: u8,
    /// RTO retransmissions since the last forward progress (Linux `icsk_retransmits`).
    retransmits: u8,
    /// Zero-window probes without answer (Linux `icsk_probes_out`).
    probes: u8,
    dupacks: u8,
    quickack: u8,
    retries2: u8,
    synack_retries: u8,
}

impl Tcb {
    /// A connection whose handshake the listen path completed (or a TFO
    /// child, `syn_ack_pending`). State ESTABLISHED.
    pub fn new_passive(p: PassiveOpen<'_>) -> Tcb {
        let ts_len = if p.ts.is_some() { 12 } else { 0 };
        let mss = p.peer_mss.min(p.our_mss).max(MIN_SND_MSS) - ts_len;
        // RFC 7323 2.2: scaling is used in both directions or neither.
        let (snd_wscale, rcv_wscale) = match p.snd_wscale {
            Some(s) => (s.min(14), p.rcv_wscale.min(14)),
            None => (0, 0),
        };
        let rcv_cap = p.rcv_buf_cap.clamp(1, MAX_BUF);
        let mut flags = 0;
        if p.sack_ok {
            flags |= F_SACK;
        }
        if p.ts.is_some() {
            flags |= F_TS;
        }
        if p.config.nodelay {
            flags |= F_NODELAY;
        }
        if p.snd_wscale.is_some() {
            flags |= F_WSCALE;
        }
        let (ts_recent, ts_offset) = p.ts.unwrap_or((0, 0));
        // Linux tcp_initialize_rcv_mss: min(advmss, TCP_MSS_DEFAULT 536).
        let rcv_mss = p.our_mss.clamp(MIN_SND_MSS, 536);
        let snd_una = if p.syn_ack_pending {
            flags |= F_SYN_PENDING;
            p.iss
        } else {
            p.iss.wrapping_add(1)
        };
        let mut t = Tcb {
            snd: SendBuf::new(p.snd_buf_cap.clamp(1, MAX_BUF)),
            rcv: RecvBuf::new(rcv_cap, (1u32 << rcv_wscale) - 1),
            rtx_at: Deadline::NONE,
            delack_at: Deadline::NONE,
            rtt_time_us: Self::now_us(p.now),
            rtt: RttEstimator::default(),
            snd_una,
            snd_nxt: p.iss.wrapping_add(1),
            snd_max: p.iss.wrapping_add(1),
            snd_wnd: p.peer_window,
            max_snd_wnd: p.peer_window,
            snd_wl1: p.irs,
            rcv_nxt: p.irs.wrapping_add(1),
            rcv_wup: p.irs.wrapping_add(1),
            rcv_wnd: 0,
            rcv_max_kb: kib(p.rcv_buf_max.clamp(rcv_cap, (u32::from(u16::MAX) << rcv_wscale).clamp(rcv_cap, MAX_BUF))),
            snd_max_kb: kib(p.snd_buf_max.clamp(p.snd_buf_cap.clamp(1, MAX_BUF), MAX_BUF)),
            cwnd: INIT_CWND * mss as u32,
            // Linux TCP_INFINITE_SSTHRESH.
            ssthresh: u32::MAX,
            bytes_acked: 0,
            recover: p.iss,
            rtt_seq: 0,
            ts_recent,
            ts_offset,
            ext: None,
            time_wait_s: secs_u16(p.config.time_wait),
            fin_timeout_s: secs_u16(p.config.fin_timeout),
            mem_room: p.mem_room,
            mss,
            rcv_mss,
            adv_mss: p.our_mss.max(MIN_SND_MSS),
            chal_count: 0,
            chal_limit: p.config.challenge_ack_limit,
            flags,
            state: State::Established,
            error: None,
            events: Events::default(),
            snd_wscale,
            rcv_wscale,
            retransmits: 0,
            probes: 0,
            dupacks: 0,
            quickack: 0,
            retries2: p.config.retries2,
            synack_retries: p.config.synack_retries,
        };
        // The window our SYN-ACK offered (never scaled): the right edge we
        // must not shrink from.
        t.rcv_wnd = rcv_cap.min(u16::MAX as u32);
        if let Some(r) = p.rtt_sample {
            t.rtt.on_sample(r);
        }
        if p.syn_ack_pending {
            t.rtx_at = Deadline::at(p.now + t.rto());
        }
        t.accept_syn_data(p.initial_data);
        t.enter_quickack();
        t
    }

    /// TFO: the SYN's data, acknowledged by the SYN-ACK, is readable at once.
    fn accept_syn_data(&mut self, data: &[u8]) {
        let take = data.len().min(self.rcv.free() as usize);
        if take == 0 {
            return;
        }
        if let Some(nxt) = self.rcv.store(self.rcv_nxt, self.rcv_nxt, &data[..take], &mut self.mem_room) {
            let take = nxt.wrapping_sub(self.rcv_nxt);
            self.rcv_nxt = nxt;
            self.rcv_wup = nxt;
            self.rcv_wnd = self.rcv_wnd.saturating_sub(take);
            self.events.insert(Events::READABLE);
        }
    }

    // ----- memory -----

    /// What the worker's memory pool grants before a call: `room` more
    /// bytes of ring, and whether it is under pressure (Linux
    /// `tcp_memory_pressure`: offered windows shrink to a few segments).
    pub fn set_mem(&mut self, room: u32, pressure: bool) {
        self.mem_room = room;
        self.set(F_MEM_PRESSURE, pressure);
    }

    /// Bytes of buffer memory held now (rings and the out-of-order list),
    /// what the pool is charged.
    pub fn mem(&self) -> u32 {
        self.snd.mem() + self.rcv.mem()
    }

    // ----- accessors -----

    pub fn state(&self) -> State {
        self.state
    }
    /// Why the connection died: ECONNRESET (peer RST) or ETIMEDOUT.
    pub fn error(&self) -> Option<Errno> {
        self.error
    }
    pub fn snd_una(&self) -> u32 {
        self.snd_una
    }
    pub fn snd_nxt(&self) -> u32 {
        self.snd_nxt
    }
    pub fn snd_max(&self) -> u32 {
        self.snd_max
    }
    pub fn rcv_nxt(&self) -> u32 {
        self.rcv_nxt
    }
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    /// Send MSS in payload bytes.
    pub fn mss(&self) -> u16 {
        self.mss
    }
    pub fn snd_wnd(&self) -> u32 {
        self.snd_wnd
    }
    /// The current RTO including backoff.
    pub fn rto(&self) -> Duration {
        backoff(self.rtt.rto(), self.retransmits)
    }
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }
    /// Unread in-order bytes (Linux's Recv-Q).
    pub fn recv_queue_len(&self) -> u32 {
        self.rcv.len()
    }
    /// Bytes held out of order.
    pub fn ooo_bytes(&self) -> u32 {
        self.rcv.ooo_bytes()
    }
    /// Unacknowledged plus unsent bytes (Linux's Send-Q).
    pub fn send_queue_len(&self) -> u32 {
        self.snd.len()
    }
    pub fn send_buf_cap(&self) -> u32 {
        self.snd.cap()
    }
    /// Receive ring size (the buffer plus window-rounding slack).
    pub fn recv_buf_cap(&self) -> u32 {
        self.rcv.ring_len()
    }
    /// The peer's window scale, when scaling is on.
    pub fn snd_wscale(&self) -> Option<u8> {
        self.has(F_WSCALE).then_some(self.snd_wscale)
    }
    /// Our window scale (0 when scaling is off).
    pub fn rcv_wscale(&self) -> u8 {
        self.rcv_wscale
    }
    /// SACK was negotiated (RFC 2018).
    pub fn sack(&self) -> bool {
        self.has(F_SACK)
    }
    /// Timestamps were negotiated (RFC 7323).
    pub fn has_timestamps(&self) -> bool {
        self.flags & F_TS != 0
    }

    /// (ts_recent, our ts_offset) when timestamps are on.
    pub fn timestamps(&self) -> Option<(u32, u32)> {
        self.has_timestamps().then_some((self.ts_recent, self.ts_offset))
    }

    /// The peer sent FIN (in order).
    pub fn fin_received(&self) -> bool {
        self.flags & F_FIN_RCVD != 0
    }

    pub fn syn_ack_pending(&self) -> bool {
        self.has(F_SYN_PENDING)
    }
    pub fn set_nodelay(&mut self, on: bool) {
        self.set(F_NODELAY, on);
    }

    /// Events raised since the last call.
    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    /// Payload bytes `[seq, seq + len)` still held in the send ring, for a
    /// caller that copies a [`SegOut`]'s payload later.
    pub fn send_bytes(&self, seq: u32, len: u32) -> Payload<'_> {
        let start = self.data_seq();
        if before(seq, start) {
            return Payload::default();
        }
        let (a, b) = self.snd.slices(seq.wrapping_sub(start), len);
        Payload(a, b)
    }

    /// The earliest deadline at which [`Tcb::on_timeout`] has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        [self.rtx_at, self.delack_at]
            .iter()
            .filter_map(|d| d.get())
            .min()
    }

    // ----- application side -----

    /// Read in-order bytes. `Ok(0)` is EOF (peer FIN, all read); `EAGAIN`
    /// when nothing is there yet.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.rcv.is_empty() {
            // Linux tcp_recvmsg: queued data first, then the error.
            if let Some(e) = self.error {
                return Err(e);
            }
            if self.has(F_FIN_RCVD) || buf.is_empty() {
                return Ok(0);
            }
            if self.state == State::Closed {
                return Err(Errno::Enotconn);
            }
            return Err(Errno::Eagain);
        }
        let cur = self.rcv_window();
        let n = self.rcv.read(buf);
        // Linux tcp_cleanup_rbuf: ACK at once when reading opens the window
        // to at least twice what the peer last saw.
        let new = self.window_to_offer();
        if cur.saturating_mul(2) <= self.rcv.cap() && new >= cur.saturating_mul(2) && new > cur {
            self.set(F_ACK_NOW, true);
        }
        Ok(n)
    }

    /// Queue bytes for sending; partial when the send buffer is full,
    /// `EAGAIN` when it is completely full, `EPIPE` after shutdown.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, Errno> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.has(F_FIN_QUEUED) || !matches!(self.state, State::Established | State::CloseWait) {
            return Err(Errno::Epipe);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.snd.write(data, &mut self.mem_room);
        if n < data.len() && self.snd.free() == 0 {
            self.set(F_NOSPACE, true);
        }
        match n {
            0 => Err(Errno::Eagain),
            n => Ok(n),
        }
    }

    /// shutdown(SHUT_WR): queue our FIN after the buffered data. Call
    /// [`Tcb::poll_transmit`] to send it.
    pub fn shutdown_write(&mut self) -> Result<(), Errno> {
        match self.state {
            State::Established => self.state = State::FinWait1,
            State::CloseWait => self.state = State::LastAck,
            State::Closed => return Err(Errno::Enotconn),
            _ => return Ok(()),
        }
        self.set(F_FIN_QUEUED, true);
        Ok(())
    }

    /// close(): the application lets go of the connection. Linux's
    /// `tcp_close` sends RST instead of FIN when unread data remains (RFC
    /// 2525 2.17); otherwise FIN, and the orphan lives on until closed.
    pub fn close(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) -> Events {
        match self.state {
            State::Closed | State::TimeWait => return self.take_events(),
            _ => {}
        }
        self.set(F_ORPHAN, true);
        if !self.rcv.is_empty() {
            self.rcv.discard();
            self.send_rst(now, out);
            self.set_closed();
            return self.take_events();
        }
        let _ = self.shutdown_write();
        if self.state == State::FinWait2 {
            self.rtx_at = Deadline::at(now + Duration::from_secs(u64::from(self.fin_timeout_s)));
        }
        self.transmit(now, out);
        self.take_events()
    }

    /// Abort: RST and forget (SO_LINGER 0, or the application's abort).
    pub fn abort(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) -> Events {
        if !matches!(self.state, State::Closed | State::TimeWait) {
            self.send_rst(now, out);
        }
        self.set_closed();
        self.take_events()
    }

    // ----- input -----

    /// Process one received segment.
    pub fn on_segment(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) -> Events {
        match self.state {
            State::Closed => return self.take_events(),
            State::TimeWait => {
                self.timewait_segment(now, seg, out);
                return self.take_events();
            }
            _ => {}
        }
        if !self.segment_acceptable(now, seg, out) {
            return self.take_events();
        }

        //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
        //# if the ACK bit is off, drop the segment and return
        let Some(ack) = seg.ack else {
            return self.take_events();
        };
        if !self.process_ack(now, seg, ack, out) {
            return self.take_events();
        }
        if self.state == State::Closed {
            return self.take_events();
        }

        //= https://www.rfc-editor.org/rfc/rfc7323#section-4.3
        //# (2)  If:
        //#
        //#          SEG.TSval >= TS.Recent and SEG.SEQ <= Last.ACK.sent
        //#
        //#      then SEG.TSval is copied to TS.Recent; otherwise, it is ignored.
        if self.has(F_TS) {
            if let Some((tsval, _)) = seg.ts {
                if !after(seg.seq, self.rcv_wup) && !before(tsval, self.ts_recent) {
                    self.ts_recent = tsval;
                }
            }
        }

        if !self.receive_text(now, seg, out) {
            return self.take_events();
        }
        self.transmit(now, out);
        self.take_events()
    }

    /// The checks before ACK processing (RFC 9293 3.10.7.4 first to fourth,
    /// with RFC 7323's PAWS and RFC 5961's RST and SYN rules). False when
    /// the segment was answered or dropped here.
    fn segment_acceptable(&mut self, now: Instant, seg: &SegIn<'_>, out: &mut impl FnMut(SegOut, Payload<'_>)) -> bool {
        let rst = seg.flags.rst();
        let seg_len = seg.payload.len() as u32 + seg.flags.syn() as u32 + seg.flags.fin() as u32;

        //= https://www.rfc-editor.org/rfc/rfc7323#section-5.3
        //# R1)  If there is a Timestamps option in the arriving segment,
        //#      SEG.TSval < TS.Recent, and if TS.Recent is valid (see later
        //#      discussion), then treat the arriving segment as not acceptable:
        //#
        //#      Send an acknowledgement in reply as specified in RFC 793,
        //#      page 69, and drop the segment.
        if self.has(F_TS) && !rst {
            if let Some((tsval, _)) = seg.ts {
                if before(tsval, self.ts_recent) {
                    self.send_oow_ack(now, seg, out);
                    return false;
                }
            }
        }

        if !self.acceptable(seg.seq, seg_len) {
            //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
            //# If an incoming segment is not acceptable, an acknowledgment
            //# should be sent in reply (unless the RST bit is set, if so drop
            //# the segment and return)
            if !rst {
                self.send_oow_ack(now, seg, out);
            }
            return false;
        }

        if rst {
            //= https://www.rfc-editor.org/rfc/rfc5961#section-3.2
            //# 1) If the RST bit is set and the sequence number is outside the
            //#    current receive window, silently drop the segment.
            //#
            //# 2) If the RST bit is set and the sequence number exactly matches
            //#    the next expected sequence number (RCV.NXT), then TCP MUST reset
            //#    the connection.
            //#
            //# 3) If the RST bit is set and the sequence number does not exactly
            //#    match the next expected sequence value, yet is within the
            //#    current receive window, TCP MUST send an acknowledgment
            //#    (challenge ACK)
            if seg.seq == self.rcv_nxt {
                self.on_reset();
            } else {
                self.challenge_ack(now, out);
            }
            return false;
        }

        if seg.flags.syn() {
            //= https://www.rfc-editor.org/rfc/rfc5961#section-4.2
            //# If the SYN bit is set, irrespective of the sequence number, TCP
            //# MUST send an ACK (also referred to as challenge ACK) to the remote
            //# peer
            self.challenge_ack(now, out);
            return false;
        }

        true
    }

    /// The segment text and FIN (RFC 9293 3.10.7.4, seventh and eighth).
    /// False when the connection was reset here.
    fn receive_text(&mut self, now: Instant, seg: &SegIn<'_>, out: &mut impl FnMut(SegOut, Payload<'_>)) -> bool {
        let receiving = matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if !seg.payload.is_empty() {
            if receiving
                && self.has(F_ORPHAN)
                && after(seg.seq.wrapping_add(seg.payload.len() as u32), self.rcv_nxt)
            {
                // Linux (tcp_rcv_state_process, TCPAbortOnData): new data for
                // a socket the application closed is answered with RST.
                self.send_rst(now, out);
                self.set_closed();
                return false;
            }
            if receiving {
                self.queue_data(now, seg);
            } else {
                // RFC 9293: after the peer's FIN, data is ignored.
                self.set(F_ACK_NOW, true);
            }
        }

        if seg.flags.fin() {
            let fin_seq = seg.seq.wrapping_add(seg.payload.len() as u32);
            if receiving && !self.has(F_FIN_RCVD) {
                if after(fin_seq, self.rcv_nxt) {
                    // Out of order: remember it until the hole fills.
                    self.ext_mut().rcv_fin_seq = fin_seq;
                    self.set(F_OOO_FIN, true);
                    self.set(F_ACK_NOW, true);
                } else if fin_seq == self.rcv_nxt {
                    self.on_fin(now);
                }
            } else {
                // A retransmitted FIN: acknowledge it again.
                self.set(F_ACK_NOW, true);
            }
        }
        if self.has(F_OOO_FIN) && self.ext.as_ref().is_some_and(|e| e.rcv_fin_seq == self.rcv_nxt) && !self.has(F_FIN_RCVD) {
            self.on_fin(now);
        }

        true
    }

    /// Send what can be sent now: data within min(cwnd, peer window), FIN,
    /// and a pending ACK or window update.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        if self.state == State::Closed || self.state == State::TimeWait {
            return;
        }
        self.transmit(now, out);
    }

    /// Run the timers that are due.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) -> Events {
        if self.rtx_at.due(now) && matches!(self.state, State::TimeWait | State::FinWait2) {
            // TIME_WAIT expiry, or Linux's tcp_fin_timeout for an orphan
            // stuck in FIN_WAIT_2: the connection goes away silently.
            self.rtx_at = Deadline::NONE;
            self.set_closed();
            return self.take_events();
        }
        if self.state == State::Closed {
            return self.take_events();
        }
        if self.delack_at.due(now) {
            self.delack_at = Deadline::NONE;
            self.send_ack(now, out);
        }
        if self.rtx_at.due(now) {
            self.rtx_at = Deadline::NONE;
            if self.has(F_PROBING) {
                self.probe_timer(now, out);
            } else {
                self.retransmit_timer(now, out);
            }
        }
        self.take_events()
    }

    // ----- internals -----

    fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    fn set(&mut self, f: u16, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    fn now_ms(now: Instant) -> u32 {
        now.as_millis() as u32
    }

    fn now_us(now: Instant) -> u32 {
        (now.as_nanos() / 1000) as u32
    }

    fn ts_val(&self, now: Instant) -> u32 {
        Self::now_ms(now).wrapping_add(self.ts_offset)
    }

    /// Sequence number of the first byte in the send ring.
    fn data_seq(&self) -> u32 {
        self.snd_una.wrapping_add(self.has(F_SYN_PENDING) as u32)
    }

    /// Sequence number of our FIN (valid when queued).
    fn fin_seq(&self) -> u32 {
        self.data_seq().wrapping_add(self.snd.len())
    }

    fn flight(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    /// Linux `tcp_receive_window`: what is left of the last advertised window.
    fn rcv_window(&self) -> u32 {
        let edge = self.rcv_wup.wrapping_add(self.rcv_wnd);
        if after(edge, self.rcv_nxt) {
            edge.wrapping_sub(self.rcv_nxt)
        } else {
            0
        }
    }

    /// The window (bytes) the next segment will offer.
    fn window_to_offer(&self) -> u32 {
        let cur = self.rcv_window();
        let max = (u16::MAX as u32) << self.rcv_wscale;
        let mut new = self.rcv.free().min(max);
        if self.has(F_MEM_PRESSURE) {
            // Linux __tcp_select_window under tcp_memory_pressure:
            // rcv_ssthresh clamped to 4 * advmss (tcp_adjust_rcv_ssthresh).
            new = new.min(PRESSURE_WINDOW_MSS * self.adv_mss as u32);
        }
        if new > cur {
            //= https://www.rfc-editor.org/rfc/rfc1122#section-4.2.3.3
            //# The suggested SWS avoidance algorithm for the receiver is to keep
            //# RCV.NXT+RCV.WND fixed until the reduction satisfies:
            //#      RCV.BUFF - RCV.USER - RCV.WND  >=
            //#             min( Fr * RCV.BUFF, Eff.snd.MSS )
            let step = (self.rcv.cap() / 2).min(self.rcv_mss as u32);
            if new - cur >= step {
                return new;
            }
        }
        //= https://www.rfc-editor.org/rfc/rfc7323#section-2.4
        //# the receiver MUST NOT shrink the window, i.e., move the right
        //# window edge to the left
        cur
    }

    /// Choose the window for an outgoing segment and remember it
    /// (Linux `tcp_select_window`).
    fn select_window(&mut self) -> u16 {
        let win = self.window_to_offer();
        let ws = self.rcv_wscale as u32;
        let mut hdr = win >> ws;
        if (hdr << ws) < self.rcv_window() {
            // Round up rather than shrink, as Linux does (ALIGN to the
            // scale). The receive ring has 2^wscale - 1 bytes of slack for
            // this; never offer beyond the ring, or the edge would creep
            // past what we can store (then, and only then, the edge moves
            // left by less than one scale unit).
            let up = (win + (1 << ws) - 1) >> ws;
            hdr = hdr.max(up.min(self.rcv.room() >> ws));
        }
        let hdr = hdr.min(u16::MAX as u32);
        self.rcv_wnd = hdr << ws;
        self.rcv_wup = self.rcv_nxt;
        hdr as u16
    }

    /// RFC 9293 3.10.7.4 acceptability test, plus Linux's allowance for a
    /// segment exactly at RCV.NXT when the window is zero (so its ACK is
    /// processed; RFC 9293: "special allowance should be made to accept
    /// valid ACKs, URGs, and RSTs").
    fn acceptable(&self, seq: u32, len: u32) -> bool {
        let wnd = self.rcv_window();
        let nxt = self.rcv_nxt;
        //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
        //# Segment Length | Receive Window | Test
        //# 0              | 0              | SEG.SEQ = RCV.NXT
        //# 0              | >0             | RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
        //# >0             | 0              | not acceptable
        //# >0             | >0             | RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
        //#                |                | or RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
        if seq == nxt {
            return true;
        }
        if wnd == 0 {
            return false;
        }
        let last = nxt.wrapping_add(wnd - 1);
        if len == 0 {
            return between(seq, nxt, last);
        }
        between(seq, nxt, last) || between(seq.wrapping_add(len - 1), nxt, last)
    }

    /// ACK processing. Returns false when the segment must be dropped.
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        ack: u32,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) -> bool {
        if after(ack, self.snd_max) {
            //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
            //# If the ACK acks something not yet sent (SEG.ACK > SND.NXT),
            //# then send an ACK, drop the segment, and return.
            self.send_oow_ack(now, seg, out);
            return false;
        }
        //= https://www.rfc-editor.org/rfc/rfc5961#section-5.2
        //# All incoming segments whose ACK value doesn't satisfy the above
        //# condition MUST be discarded and an ACK sent back.
        if before(ack, self.snd_una.wrapping_sub(self.max_snd_wnd)) {
            self.challenge_ack(now, out);
            return false;
        }
        // Linux resets the probe count on every acceptable ACK: a peer that
        // answers zero-window probes is alive.
        self.probes = 0;
        if before(ack, self.snd_una) {
            // An old duplicate: ignore its ACK, keep its data.
            return true;
        }

        let (new_wnd, old_wnd) = self.update_window(seg, ack);
        if self.has(F_SACK) && !self.has(F_SYN_PENDING) {
            self.sack_tag(seg.sack, ack);
        }

        let acked = ack.wrapping_sub(self.snd_una);
        if acked == 0 {
            //= https://www.rfc-editor.org/rfc/rfc5681#section-2
            //# DUPLICATE ACKNOWLEDGMENT: An acknowledgment is considered a
            //# "duplicate" in the following algorithms when (a) the receiver of
            //# the ACK has outstanding data, (b) the incoming acknowledgment
            //# carries no data, (c) the SYN and FIN bits are both off, (d) the
            //# acknowledgment number is equal to the greatest acknowledgment
            //# received on the given connection (TCP.UNA from [RFC793]) and (e)
            //# the advertised window in the incoming acknowledgment equals the
            //# advertised window in the last incoming acknowledgment.
            if self.snd_max != self.snd_una
                && seg.payload.is_empty()
                && !seg.flags.fin()
                && new_wnd == old_wnd
            {
                self.on_dupack(now, out);
            } else {
                self.sack_detect_loss(now, out);
            }
            return true;
        }

        // Forward progress.
        let mut data_acked = acked;
        if self.has(F_SYN_PENDING) {
            // Our SYN-ACK is acknowledged: the TFO child is fully open.
            self.set(F_SYN_PENDING, false);
            self.snd_una = self.snd_una.wrapping_add(1);
            data_acked -= 1;
        }
        let from_ring = data_acked.min(self.snd.len());
        let fin_acked = self.has(F_FIN_SENT) && ack == self.fin_seq().wrapping_add(1);
        self.snd.consume(from_ring);
        self.snd_una = ack;
        if before(self.snd_nxt, self.snd_una) {
            self.snd_nxt = self.snd_una;
        }
        if from_ring > 0 {
            self.events.insert(Events::WRITABLE);
        }

        self.rtt_sample_on_ack(now, seg, ack);
        if self.retransmits != 0 {
            self.end_rto_series();
        }

        let prior_una = ack.wrapping_sub(acked);
        if !self.sack_undo_if_delayed(seg, prior_una) {
            self.on_ack_cc(now, ack, data_acked, out);
        }
        self.dupacks = 0;
        if from_ring > 0 {
            self.snd_buf_expand();
        }
        self.sack_detect_loss(now, out);

        //= https://www.rfc-editor.org/rfc/rfc6298#section-5
        //# (5.2) When all outstanding data has been acknowledged, turn off the
        //#       retransmission timer.
        //#
        //# (5.3) When an ACK is received that acknowledges new data, restart the
        //#       retransmission timer so that it will expire after RTO seconds
        if !self.has(F_PROBING) {
            if self.snd_una == self.snd_max {
                self.rtx_at = Deadline::NONE;
            } else {
                self.rtx_at = Deadline::at(now + self.rto());
            }
        }

        !fin_acked || self.on_fin_acked(now)
    }

    /// Take the peer's window from an acceptable ACK (Linux's
    /// `tcp_may_update_window`, RFC 9293's SND.WL1/SND.WL2 rule). Returns
    /// the segment's window and the previous one.
    fn update_window(&mut self, seg: &SegIn<'_>, ack: u32) -> (u32, u32) {
        let new_wnd = (seg.window as u32) << self.snd_wscale;
        let old_wnd = self.snd_wnd;
        if after(ack, self.snd_una)
            || after(seg.seq, self.snd_wl1)
            || (seg.seq == self.snd_wl1 && new_wnd > self.snd_wnd)
        {
            self.snd_wnd = new_wnd;
            self.snd_wl1 = seg.seq;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
        }
        if self.snd_wnd > 0 && self.has(F_PROBING) {
            // The window opened: Linux tcp_ack_probe clears the backoff.
            self.set(F_PROBING, false);
            self.rtx_at = Deadline::NONE;
            self.end_rto_series();
        }
        (new_wnd, old_wnd)
    }

    /// An RTT sample from an ACK of new data. Linux's `tcp_ack_update_rtt`
    /// first takes the acked segment's own send time (`seq_rtt_us`), and
    /// the echoed timestamp only when the acked data was retransmitted.
    /// We time one segment per round trip, with or without timestamps: a
    /// peer may echo an old TS.Recent (RFC 7323 updates it only for
    /// segments at or below Last.ACK.sent), and such an echo read as an RTT
    /// once grew SRTT to seconds and kept a vanished peer's connection
    /// retrying for many minutes.
    fn rtt_sample_on_ack(&mut self, now: Instant, seg: &SegIn<'_>, ack: u32) {
        if self.has(F_RTT_TIMING) && after(ack, self.rtt_seq) {
            // Karn: the timed segment was never retransmitted (timing is
            // cancelled on retransmission).
            self.set(F_RTT_TIMING, false);
            let us = Self::now_us(now).wrapping_sub(self.rtt_time_us);
            self.rtt.on_sample(Duration::from_micros(u64::from(us)));
        } else if self.retransmits > 0 && self.has(F_TS) {
            //= https://www.rfc-editor.org/rfc/rfc7323#section-4.1
            //# A TSecr value received in a segment MAY be used to update the
            //# averaged RTT measurement only if the segment advances the left
            //# edge of the send window, i.e., SND.UNA is increased.
            let Some((_, tsecr)) = seg.ts else { return };
            let since = self.ext.as_ref().map_or(0, |e| e.rto_stamp_ts);
            // It must echo a retransmission, not the original (Karn).
            let rtt_ms = self.ts_val(now).wrapping_sub(tsecr);
            if tsecr != 0 && (rtt_ms as i32) >= 0 && !before(tsecr, since) {
                self.rtt.on_sample(Duration::from_millis(rtt_ms as u64));
            }
        }
    }

    /// Forward progress ends a series of RTO retransmissions: the backoff
    /// and the give-up clock start again.
    fn end_rto_series(&mut self) {
        self.retransmits = 0;
        if let Some(e) = self.ext.as_mut() {
            e.rto_stamp_ms = 0;
        }
    }

    /// Linux `retransmits_timed_out`: give up when the time since the first
    /// retransmission reaches what `limit` retransmissions take from
    /// `TCP_RTO_MIN` (`tcp_model_timeout`), however large the RTO is.
    fn rto_series_timed_out(&self, now: Instant, limit: u8) -> bool {
        let Some(e) = self.ext.as_ref().filter(|e| e.rto_stamp_ms != 0) else {
            return self.retransmits > limit;
        };
        let since = Self::now_ms(now).wrapping_sub(e.rto_stamp_ms);
        u64::from(since) >= rtt::model_timeout(limit, RTO_MIN).as_millis() as u64
    }

    /// Our FIN is acknowledged: FIN_WAIT_1 -> FIN_WAIT_2, CLOSING ->
    /// TIME_WAIT, LAST_ACK -> closed (then false: the segment is done).
    fn on_fin_acked(&mut self, now: Instant) -> bool {
        // Nothing left to send: forget the FIN so it is never sent again.
        self.set(F_FIN_QUEUED | F_FIN_SENT, false);
        match self.state {
            State::FinWait1 => {
                self.state = State::FinWait2;
                if self.has(F_ORPHAN) {
                    self.rtx_at = Deadline::at(now + Duration::from_secs(u64::from(self.fin_timeout_s)));
                }
            }
            State::Closing => self.enter_time_wait(now),
            State::LastAck => {
                self.set_closed();
                return false;
            }
            _ => {}
        }
        true
    }

    /// NewReno congestion control on an ACK of new data.
    fn on_ack_cc(
        &mut self,
        now: Instant,
        ack: u32,
        acked: u32,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) {
        let mss = self.mss as u32;
        if self.has(F_RECOVERY) {
            if !before(ack, self.recover) {
                //= https://www.rfc-editor.org/rfc/rfc6582#section-3.2
                //# Full acknowledgments:
                //# If this ACK acknowledges all of the data up to and including
                //# recover, then the ACK acknowledges all the intermediate segments
                //# sent between the original transmission of the lost segment and
                //# the receipt of the third duplicate ACK.  Set cwnd to either (1)
                //# min (ssthresh, max(FlightSize, SMSS) + SMSS) or (2) ssthresh
                self.set(F_RECOVERY, false);
                self.cwnd = self.ssthresh.min(self.flight().max(mss) + mss);
            } else if self.has(F_SACK) {
                // RFC 6675: the pipe decides what is sent (see
                // `sack_retransmit`), with one exception: a partial ACK
                // means the new head is lost too (RFC 6582's rule, Linux
                // tcp_mark_head_lost), and it goes out now.
                let ext = self.ext_mut();
                if !after(ext.high_rxt, ack) {
                    ext.high_rxt = ack;
                    self.sack_retransmit_one(now, out);
                }
            } else {
                //= https://www.rfc-editor.org/rfc/rfc6582#section-3.2
                //# Partial acknowledgments:
                //# If this ACK does *not* acknowledge all of the data up to and
                //# including recover, then this is a partial ACK.  In this case,
                //# retransmit the first unacknowledged segment.  Deflate the
                //# congestion window by the amount of new data acknowledged by the
                //# Cumulative Acknowledgment field.  If the partial ACK
                //# acknowledges at least one SMSS of new data, then add back SMSS
                //# bytes to the congestion window.
                self.retransmit_head(now, false, out);
                self.cwnd = self.cwnd.saturating_sub(acked).max(mss);
                if acked >= mss {
                    self.cwnd += mss;
                }
            }
            return;
        }
        if self.cwnd < self.ssthresh {
            // Slow start. Linux tcp_slow_start grows by everything acked
            // (RFC 3465 with no L limit), up to ssthresh.
            self.cwnd = self
                .cwnd
                .saturating_add(acked)
                .min(self.ssthresh.max(self.cwnd));
        } else {
            //= https://www.rfc-editor.org/rfc/rfc5681#section-3.1
            //# Another common formula that a TCP MAY use to update cwnd during
            //# congestion avoidance is given in equation (3):
            //#
            //#    cwnd += SMSS*SMSS/cwnd                     (3)
            // Counted in bytes, as Linux's tcp_cong_avoid_ai: one SMSS per cwnd acked.
            self.bytes_acked = self.bytes_acked.saturating_add(acked);
            if self.bytes_acked >= self.cwnd {
                self.bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
        self.cwnd = self.cwnd.min(MAX_BUF);
    }

    fn on_dupack(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        self.dupacks = self.dupacks.saturating_add(1);
        let mss = self.mss as u32;
        if self.has(F_SACK) {
            // RFC 6675: no window inflation; the pipe counts what left.
            self.sack_detect_loss(now, out);
            return;
        }
        if self.has(F_RECOVERY) {
            //= https://www.rfc-editor.org/rfc/rfc5681#section-3.2
            //# 4.  For each additional duplicate ACK received (after the third),
            //#     cwnd MUST be incremented by SMSS.
            self.cwnd = self.cwnd.saturating_add(mss).min(MAX_BUF);
            return;
        }
        if self.dupacks != 3 || self.has(F_SYN_PENDING) {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc6582#section-3.2
        //# 2)  Three duplicate ACKs:
        //#     When the third duplicate ACK is received, the TCP sender first
        //#     checks the value of recover to see if the Cumulative
        //#     Acknowledgment field covers more than recover.  If so, the value
        //#     of recover is incremented to the value of the highest sequence
        //#     number transmitted by the TCP so far.  The TCP then enters fast
        //#     retransmit
        if !after(self.snd_una, self.recover) {
            return;
        }
        self.recover = self.snd_max;
        //= https://www.rfc-editor.org/rfc/rfc5681#section-3.2
        //# ssthresh = max (FlightSize / 2, 2*SMSS)            (4)
        self.ssthresh = (self.flight() / 2).max(2 * mss);
        self.set(F_RECOVERY, true);
        self.set(F_RTT_TIMING, false);
        self.retransmit_head(now, false, out);
        //# 3.  The lost segment starting at SND.UNA MUST be retransmitted and
        //#     cwnd set to ssthresh plus 3*SMSS.
        self.cwnd = self.ssthresh + 3 * mss;
    }

    /// Send the first unacknowledged segment again, regardless of the peer
    /// window and cwnd (as Linux's `tcp_retransmit_skb` does for the head).
    fn retransmit_head(
        &mut self,
        now: Instant,
        advance_nxt: bool,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) {
        let start = self.data_seq();
        let sent_data = self.snd_max.wrapping_sub(start).min(self.snd.len());
        // Linux __tcp_retransmit_skb: within the peer's window, but the
        // head goes out (one MSS) even when the window is closed.
        let wnd_end = self.snd_una.wrapping_add(self.snd_wnd);
        let avail = if after(wnd_end, start) {
            wnd_end.wrapping_sub(start)
        } else {
            0
        };
        let seg_max = self.seg_payload_max();
        let n = sent_data.min(if avail == 0 {
            seg_max
        } else {
            avail.min(seg_max)
        });
        let fin = self.has(F_FIN_SENT) && start.wrapping_add(n) == self.fin_seq();
        if n == 0 && !fin {
            return;
        }
        let mut f = TcpFlags::ACK;
        if fin {
            f |= TcpFlags::FIN;
        }
        if n > 0 {
            f |= TcpFlags::PSH;
        }
        self.emit(now, start, f, n, out);
        if advance_nxt {
            let end = start.wrapping_add(n + fin as u32);
            if after(end, self.snd_nxt) {
                self.snd_nxt = end;
            }
        }
        if self.rtx_at == Deadline::NONE {
            self.rtx_at = Deadline::at(now + self.rto());
        }
    }

    /// Bytes counted against cwnd: RFC 6675's pipe in SACK recovery; else
    /// what was sent from SND.UNA to SND.NXT less what the peer SACKed
    /// (Linux's `tcp_packets_in_flight`: sacked_out is not in flight).
    fn in_flight(&self) -> u32 {
        let Some(e) = self.ext.as_ref().filter(|e| !e.sack.is_empty()) else {
            return self.flight();
        };
        if self.has(F_RECOVERY) && self.has(F_SACK) {
            let lost = self.sack_lost_end(&e.sack);
            e.sack.pipe(self.snd_una, self.snd_max, seq_max(e.high_rxt, self.snd_una), lost)
        } else {
            e.sack.unsacked_in(self.snd_una, self.snd_nxt)
        }
    }

    /// Take an ACK's SACK blocks into the scoreboard (Linux
    /// `tcp_sacktag_write_queue`); `ack` is the new SND.UNA.
    fn sack_tag(&mut self, blocks: &[(u32, u32)], ack: u32) {
        let (una, snd_max, mss) = (self.snd_una, self.snd_max, self.mss as u32);
        // Below this everything may have been sent twice: a late arrival
        // there proves no reordering.
        let rexmit_below = if self.retransmits > 0 {
            snd_max
        } else if self.has(F_RECOVERY) {
            self.ext.as_ref().map_or(una, |e| seq_max(e.high_rxt, una))
        } else {
            una
        };
        let mut reorder = 0;
        if let Some(e) = self.ext.as_mut() {
            // A cumulative ACK over a hole never retransmitted, below SACKed
            // data: it was late (Linux tcp_clean_rtx_queue's reordering check).
            if let (Some(fack), Some(&(first, _))) = (e.sack.fack(), e.sack.ranges().first()) {
                if after(ack, una) && after(first, una) && !before(una, rexmit_below) {
                    reorder = fack.wrapping_sub(una);
                }
            }
            e.sack.advance(ack);
        }
        if !blocks.is_empty() {
            let (_, r) = self.ext_mut().sack.update(blocks, ack, snd_max, rexmit_below);
            reorder = reorder.max(r);
        }
        if reorder > 0 {
            // Linux tcp_check_sack_reordering: the degree in segments, at most
            // tcp_max_reordering.
            let segs = reorder.div_ceil(mss).min(sack::MAX_REORDERING) as u16;
            let e = self.ext_mut();
            e.reordering = e.reordering.max(segs);
        }
    }

    /// RFC 3522 (Eifel) as Linux's `tcp_try_undo_partial` /
    /// `tcp_packet_delayed`: an ACK of new data in SACK recovery that
    /// echoes a timestamp from before our first retransmission was sent
    /// for the original segments: they were late, not lost. The reordering
    /// degree grows to what this episode showed, cwnd and ssthresh come
    /// back, and recovery ends. True when it did.
    fn sack_undo_if_delayed(&mut self, seg: &SegIn<'_>, prior_una: u32) -> bool {
        if !(self.has(F_RECOVERY) && self.has(F_SACK) && self.has(F_TS)) {
            return false;
        }
        let (Some((_, tsecr)), Some(e)) = (seg.ts, self.ext.as_mut()) else {
            return false;
        };
        if tsecr == 0 || !before(tsecr, e.retrans_ts) {
            return false;
        }
        let fack = e.sack.fack().map_or(self.snd_una, |f| seq_max(f, self.snd_una));
        let segs = fack.wrapping_sub(prior_una).div_ceil(self.mss as u32).min(sack::MAX_REORDERING) as u16;
        e.reordering = e.reordering.max(segs);
        self.cwnd = self.cwnd.max(e.prior_cwnd);
        self.ssthresh = self.ssthresh.max(e.prior_ssthresh);
        self.set(F_RECOVERY, false);
        true
    }

    /// DupThresh, raised to the reordering seen, but never beyond what
    /// the flight can show (one segment less than it: as RFC 5827's early
    /// retransmit lowers it for small flights), or a loss in a flight
    /// smaller than the reordering seen could only end in an RTO.
    fn dup_thresh(&self) -> u32 {
        let r = self.ext.as_ref().map_or(0, |e| u32::from(e.reordering));
        let flight_segs = self.flight().div_ceil(u32::from(self.mss).max(1));
        r.min(flight_segs.saturating_sub(1)).max(sack::DUP_THRESH)
    }

    /// Everything not SACKed below this is taken as lost: RFC 6675's
    /// `IsLost`, and in recovery the head segment too (it was lost when
    /// recovery began, and after a partial ACK the new head is: RFC 6582).
    fn sack_lost_end(&self, sb: &Scoreboard) -> u32 {
        let mss = self.mss as u32;
        let mut lost = sb.lost_below(mss, self.dup_thresh()).unwrap_or(self.snd_una);
        if self.has(F_RECOVERY) {
            let mut head = self.snd_una.wrapping_add(mss);
            if let Some(s) = sb.next_sacked(self.snd_una) {
                head = if before(s, head) { s } else { head };
            }
            if after(head, self.snd_max) {
                head = self.snd_max;
            }
            lost = seq_max(lost, head);
        }
        lost
    }

    /// RFC 6675 section 5: enter loss recovery when DupThresh duplicate
    /// ACKs arrived or the scoreboard says the first unacknowledged byte is
    /// lost, unless this loss belongs to a recovery already done.
    fn sack_detect_loss(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        if !self.has(F_SACK) || self.has(F_RECOVERY) || self.has(F_SYN_PENDING) || self.snd_una == self.snd_max {
            return;
        }
        let mss = self.mss as u32;
        let head_lost = self
            .ext
            .as_ref()
            .and_then(|e| e.sack.lost_below(mss, self.dup_thresh()))
            .is_some_and(|l| after(l, self.snd_una));
        if u32::from(self.dupacks) < self.dup_thresh() && !head_lost {
            return;
        }
        //= https://www.rfc-editor.org/rfc/rfc6675#section-5
        //# (4.1) RecoveryPoint = HighData
        //#
        //#     When the TCP sender receives a cumulative ACK for this data
        //#     octet, the loss recovery phase is terminated.
        if !after(self.snd_una, self.recover) {
            return;
        }
        self.recover = self.snd_max;
        let (una, cwnd, ssthresh, ts) = (self.snd_una, self.cwnd, self.ssthresh, self.ts_val(now));
        let e = self.ext_mut();
        (e.prior_cwnd, e.prior_ssthresh, e.retrans_ts, e.high_rxt) = (cwnd, ssthresh, ts, una);
        //# (4.2) ssthresh = cwnd = (FlightSize / 2)
        self.ssthresh = (self.flight() / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.set(F_RECOVERY, true);
        self.set(F_RTT_TIMING, false);
        //# (4.3) Retransmit the first data segment presumed dropped
        self.sack_retransmit_one(now, out);
    }

    /// RFC 6675 section 5 (C): while cwnd - pipe >= 1 SMSS, send the next
    /// lost segment (NextSeg rule 1; new data, rule 2, is `transmit`'s).
    fn sack_retransmit(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        let mss = self.mss as u32;
        while self.cwnd >= self.in_flight().saturating_add(mss) {
            if !self.sack_retransmit_one(now, out) {
                break;
            }
        }
    }

    /// Retransmit the first lost segment at or after HighRxt; false when
    /// there is none.
    fn sack_retransmit_one(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) -> bool {
        let Some(e) = self.ext.as_ref() else {
            return false;
        };
        let lost = self.sack_lost_end(&e.sack);
        let from = seq_max(e.high_rxt, self.snd_una);
        let Some((seq, run)) = e.sack.next_lost(from, lost) else {
            return false;
        };
        let start = self.data_seq();
        let data_end = start.wrapping_add(self.snd.len());
        let in_data = if after(data_end, seq) { data_end.wrapping_sub(seq) } else { 0 };
        let len = run.min(self.seg_payload_max()).min(in_data);
        let fin = self.has(F_FIN_SENT) && seq.wrapping_add(len) == self.fin_seq() && run > len;
        if len == 0 && !fin {
            return false;
        }
        let mut f = TcpFlags::ACK;
        if len > 0 {
            f |= TcpFlags::PSH;
        }
        if fin {
            f |= TcpFlags::FIN;
        }
        self.emit(now, seq, f, len, out);
        self.ext_mut().high_rxt = seq.wrapping_add(len + fin as u32);
        if self.rtx_at == Deadline::NONE {
            self.rtx_at = Deadline::at(now + self.rto());
        }
        true
    }

    fn retransmit_timer(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        let syn = self.has(F_SYN_PENDING);
        if self.snd_una == self.snd_max && !syn {
            return;
        }
        let limit = if syn {
            self.synack_retries
        } else {
            self.retries2
        };
        // A TFO child's SYN-ACK counts its retries (Linux
        // tcp_fastopen_synack_timer); data gives up by time.
        let timed_out = if syn {
            self.retransmits >= limit
        } else {
            self.retransmits > 0 && self.rto_series_timed_out(now, limit)
        };
        if timed_out {
            // Linux tcp_write_timeout -> tcp_write_err: ETIMEDOUT, no RST sent.
            self.error = Some(Errno::Etimedout);
            self.events.insert(Events::RESET);
            self.set_closed();
            return;
        }
        let mss = self.mss as u32;
        //= https://www.rfc-editor.org/rfc/rfc5681#section-3.1
        //# When a TCP sender detects segment loss using the retransmission timer
        //# and the given segment has not yet been resent by way of the
        //# retransmission timer, the value of ssthresh MUST be set to no more
        //# than the value given in equation (4)
        if self.retransmits == 0 {
            self.ssthresh = (self.flight() / 2).max(2 * mss);
        }
        if let Some(e) = self.ext.as_mut() {
            // Linux tcp_enter_loss: "Timeout in disordered state after
            // receiving substantial DUPACKs suggests that the degree of
            // reordering is over-estimated."
            if e.sack.sacked_bytes() >= sack::DUP_THRESH * mss {
                e.reordering = 0;
            }
        }
        if self.retransmits > 0 {
            // The same head timed out again: the peer may have reneged on
            // what it SACKed (RFC 2018 section 8). Forget the scoreboard,
            // as Linux's tcp_timeout_mark_lost does for a reneging peer.
            if let Some(e) = self.ext.as_mut() {
                e.sack.clear();
            }
        }
        // Loss window: one segment.
        self.cwnd = mss;
        self.bytes_acked = 0;
        self.set(F_RECOVERY, false);
        self.recover = self.snd_max;
        self.dupacks = 0;
        // Karn: never time a retransmitted segment.
        self.set(F_RTT_TIMING, false);
        //= https://www.rfc-editor.org/rfc/rfc6298#section-5
        //# (5.5) The host MUST set RTO <- RTO * 2 ("back off the timer").
        self.retransmits = self.retransmits.saturating_add(1);
        self.rtx_at = Deadline::at(now + self.rto());
        if !syn && self.ext.as_ref().map_or(true, |e| e.rto_stamp_ms == 0) {
            let (ms, ts) = (Self::now_ms(now).max(1), self.ts_val(now));
            let e = self.ext_mut();
            (e.rto_stamp_ms, e.rto_stamp_ts) = (ms, ts);
        }
        if syn {
            // A TFO child's SYN-ACK: the listen path adds the SYN options.
            // snd_una is our ISS while the SYN-ACK is unacknowledged.
            self.emit(now, self.snd_una, TcpFlags::SYN | TcpFlags::ACK, 0, out);
            self.snd_nxt = self.snd_una.wrapping_add(1);
            return;
        }
        // Go back N: everything after the head is resent as cwnd opens.
        self.snd_nxt = self.snd_una;
        self.retransmit_head(now, true, out);
    }

    fn probe_timer(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        self.set(F_PROBING, false);
        if self.snd_wnd > 0 || self.snd_una != self.snd_max {
            self.transmit(now, out);
            return;
        }
        // Linux tcp_probe_timer: give up after tcp_retries2 unanswered probes.
        if self.probes >= self.retries2 {
            self.error = Some(Errno::Etimedout);
            self.events.insert(Events::RESET);
            self.set_closed();
            return;
        }
        // Linux tcp_xmit_probe_skb: a bare ACK with an old sequence number
        // (SND.UNA - 1) the peer must answer with its current window.
        self.emit(now, self.snd_una.wrapping_sub(1), TcpFlags::ACK, 0, out);
        // `probes` counts unanswered probes (reset by any ACK, Linux
        // icsk_probes_out); `retransmits` is the backoff (Linux
        // icsk_backoff), kept until the window opens.
        self.probes = self.probes.saturating_add(1);
        // Linux tcp_probe_timer: the backoff grows up to tcp_retries2.
        if self.retransmits < self.retries2 {
            self.retransmits += 1;
        }
        self.arm_probe(now);
    }

    fn arm_probe(&mut self, now: Instant) {
        // Linux tcp_probe0_when: RTO << backoff, at most TCP_RTO_MAX.
        self.set(F_PROBING, true);
        self.rtx_at = Deadline::at(now + self.rto());
    }

    /// Store in-window payload.
    fn queue_data(&mut self, now: Instant, seg: &SegIn<'_>) {
        let len = seg.payload.len() as u32;
        let end = seg.seq.wrapping_add(len);
        if !after(end, self.rcv_nxt) {
            // Entirely old: a retransmission. Linux acks at once (and would
            // send a D-SACK).
            self.enter_quickack();
            self.set(F_ACK_NOW, true);
            return;
        }
        let (start, skip) = if before(seg.seq, self.rcv_nxt) {
            (self.rcv_nxt, self.rcv_nxt.wrapping_sub(seg.seq))
        } else {
            (seg.seq, 0)
        };
        let limit = self.rcv_nxt.wrapping_add(self.rcv.room());
        if !before(start, limit) {
            // Beyond the buffer (zero window): drop, tell the peer at once.
            self.set(F_ACK_NOW, true);
            return;
        }
        let take_end = if after(end, limit) { limit } else { end };
        let data = &seg.payload[skip as usize..(skip + take_end.wrapping_sub(start)) as usize];
        // Linux tcp_measure_rcv_mss: the largest segment seen, up to advmss.
        if len >= self.rcv_mss as u32 {
            self.rcv_mss = len.min(self.adv_mss as u32) as u16;
        }
        let had_ooo = self.rcv.has_ooo();
        match self.rcv.store(self.rcv_nxt, start, data, &mut self.mem_room) {
            Some(nxt) if nxt != self.rcv_nxt => {
                self.rcv_nxt = nxt;
                self.rcv_rtt_measure(now, seg, len);
                self.events.insert(Events::READABLE);
                if had_ooo {
                    // Linux: a segment filling a hole is ACKed at once.
                    self.set(F_ACK_NOW, true);
                }
                self.ack_policy(now);
            }
            _ => {
                //= https://www.rfc-editor.org/rfc/rfc5681#section-4.2
                //# A TCP receiver SHOULD send an immediate duplicate ACK when an out-
                //# of-order segment arrives.
                // Linux also re-enters quick-ACK mode (tcp_data_queue_ofo).
                self.enter_quickack();
                self.set(F_ACK_NOW, true);
            }
        }
    }

    fn ext_mut(&mut self) -> &mut TcbExt {
        self.ext.get_or_insert_with(Box::default)
    }

    /// The receiver's RTT samples for autotuning, from in-order data.
    /// Autotuning starts with the first full-sized segment (a connection
    /// that only ever gets small requests never needs a larger buffer, and
    /// never allocates its state).
    fn rcv_rtt_measure(&mut self, now: Instant, seg: &SegIn<'_>, len: u32) {
        if self.rcv_buf_max() <= self.rcv.cap() {
            return;
        }
        let now_us = Self::now_us(now);
        let (rcv_nxt, rcv_wnd, rcv_mss, adv_mss) = (self.rcv_nxt, self.rcv_wnd, self.rcv_mss, self.adv_mss);
        let copied_seq = self.copied_seq();
        let ts_now = self.has(F_TS).then(|| self.ts_val(now));
        if !self.ext.as_ref().is_some_and(|e| e.rcv_space.is_some()) {
            if len < u32::from(self.mss) {
                return;
            }
            // Linux tcp_init_buffer_space: the measurement starts here (the
            // segment is not read yet, so it counts in this measurement).
            self.ext_mut().rcv_space = Some(RcvSpace::new(now_us, copied_seq, rcv_wnd, adv_mss));
        }
        let Some(sp) = self.ext.as_mut().and_then(|e| e.rcv_space.as_mut()) else { return };
        if let (Some(ts_now), Some((_, tsecr))) = (ts_now, seg.ts) {
            sp.measure_ts(ts_now, tsecr, len, rcv_mss);
        }
        sp.measure_window(now_us, rcv_nxt, rcv_wnd);
    }

    /// Linux `tcp_rcv_space_adjust` (Linux runs it after each read; here
    /// before each transmission, which follows every read): grow the
    /// receive buffer to what the last RTT's reads ask for, up to
    /// `rcv_buf_max`. Not under memory pressure (Linux `tcp_grow_window`
    /// grows nothing then either).
    fn rcv_space_adjust(&mut self, now: Instant) {
        let copied_seq = self.copied_seq();
        let (adv_mss, grow) = (self.adv_mss, !self.has(F_MEM_PRESSURE));
        let Some(sp) = self.ext.as_mut().and_then(|e| e.rcv_space.as_mut()) else { return };
        if let Some(want) = sp.adjust(Self::now_us(now), copied_seq, adv_mss, grow) {
            let cap = want.min(self.rcv_buf_max());
            if cap > self.rcv.cap() {
                self.rcv.grow_cap(cap);
            }
        }
    }

    fn rcv_buf_max(&self) -> u32 {
        u32::from(self.rcv_max_kb) << 10
    }

    /// Linux `tcp_sndbuf_expand` (from `tcp_new_space`): when the
    /// application found the send buffer full (`SOCK_NOSPACE`) and an ACK
    /// made room while the congestion window is not filled
    /// (`tcp_should_expand_sndbuf`), the buffer grows to twice the
    /// congestion window, up to `tcp_wmem[2]`. Not under memory pressure,
    /// nor in recovery (cwnd was just cut).
    fn snd_buf_expand(&mut self) {
        if !self.has(F_NOSPACE) || self.has(F_MEM_PRESSURE) || self.has(F_RECOVERY) {
            return;
        }
        if self.in_flight() >= self.cwnd {
            return;
        }
        let max = u32::from(self.snd_max_kb) << 10;
        let want = self.cwnd.saturating_mul(2).min(max);
        if want > self.snd.cap() {
            self.snd.grow_cap(want);
            self.set(F_NOSPACE, false);
            self.events.insert(Events::WRITABLE);
        }
    }

    /// The sequence number after the last byte the application read (Linux `copied_seq`).
    fn copied_seq(&self) -> u32 {
        let fin = self.has(F_FIN_RCVD) as u32;
        self.rcv_nxt.wrapping_sub(self.rcv.len() + fin)
    }

    /// Linux `__tcp_ack_snd_check`: ACK now or arm the delayed-ACK timer.
    fn ack_policy(&mut self, now: Instant) {
        let unacked = self.rcv_nxt.wrapping_sub(self.rcv_wup);
        //= https://www.rfc-editor.org/rfc/rfc9293#section-3.8.6.3
        //# an ACK SHOULD be generated for at least every second
        //# full-sized segment or 2*RMSS bytes of new data (where RMSS is the MSS
        //# specified by the TCP endpoint receiving the segments to be
        //# acknowledged, or the default value if not specified)
        // Linux: more than one rcv_mss unacked, or quick-ACK mode.
        if unacked > self.rcv_mss as u32 || self.quickack > 0 {
            self.set(F_ACK_NOW, true);
        } else if self.delack_at == Deadline::NONE {
            //# in no case should the delay for an ACK exceed 500 ms
            self.delack_at = Deadline::at(now + DELACK);
        }
    }

    fn enter_quickack(&mut self) {
        // Linux tcp_incr_quickack: rcv_wnd / (2 * rcv_mss), at most 16.
        let q = self.rcv.cap() / (2 * self.rcv_mss.max(1) as u32);
        self.quickack = q.clamp(1, MAX_QUICKACKS as u32) as u8;
    }

    fn on_fin(&mut self, now: Instant) {
        self.set(F_FIN_RCVD, true);
        self.set(F_OOO_FIN, false);
        // Linux tcp_fin: whatever is out of order is after the FIN; drop it.
        self.rcv.drop_ooo();
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.events.insert(Events::PEER_CLOSED);
        self.set(F_ACK_NOW, true);
        match self.state {
            State::Established => self.state = State::CloseWait,
            //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
            //# FIN-WAIT-1 STATE
            //#   If our FIN has been ACKed (perhaps in this segment), then
            //#   enter TIME-WAIT, start the time-wait timer, turn off the other
            //#   timers; otherwise, enter the CLOSING state.
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rtx_at = Deadline::NONE;
        self.set(F_PROBING, false);
        self.rtx_at = Deadline::at(now + Duration::from_secs(u64::from(self.time_wait_s)));
        self.events.insert(Events::TIME_WAIT);
    }

    fn timewait_segment(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) {
        if self.has(F_TS) && !seg.flags.rst() {
            if let Some((tsval, _)) = seg.ts {
                if before(tsval, self.ts_recent) {
                    self.send_ack(now, out);
                    return;
                }
            }
        }
        if seg.flags.rst() {
            // Linux (tcp_rfc1337 = 0, the default) lets an in-window RST
            // end TIME_WAIT.
            if seg.seq == self.rcv_nxt {
                self.set_closed();
            }
            return;
        }
        if seg.flags.fin() || !seg.payload.is_empty() || seg.flags.syn() {
            //= https://www.rfc-editor.org/rfc/rfc9293#section-3.10.7.4
            //# TIME-WAIT STATE
            //#   The only thing that can arrive in this state is a
            //#   retransmission of the remote FIN.  Acknowledge it, and restart
            //#   the 2 MSL timeout.
            if seg.flags.fin() {
                self.rtx_at = Deadline::at(now + Duration::from_secs(u64::from(self.time_wait_s)));
            }
            self.send_ack(now, out);
        }
    }

    fn on_reset(&mut self) {
        // Linux tcp_reset: EPIPE in CLOSE_WAIT, ECONNRESET otherwise.
        self.error = Some(if self.state == State::CloseWait {
            Errno::Epipe
        } else {
            Errno::Econnreset
        });
        self.events.insert(Events::RESET);
        self.set_closed();
    }

    fn set_closed(&mut self) {
        self.state = State::Closed;
        // Nothing will be sent any more: the send ring goes now (unread
        // data stays readable until the application lets go).
        self.snd.clear();
        self.rtx_at = Deadline::NONE;
        self.delack_at = Deadline::NONE;
        self.set(F_PROBING, false);
        self.events.insert(Events::CLOSED);
    }

    fn challenge_ack(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        let ms = Self::now_ms(now);
        if ms.wrapping_sub(self.ext_mut().chal_ms) >= 1000 {
            self.ext_mut().chal_ms = ms;
            self.chal_count = 0;
        }
        if self.chal_count >= self.chal_limit {
            return;
        }
        self.chal_count += 1;
        self.send_ack(now, out);
    }

    fn send_ack(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        // At the highest sequence number sent: after a go-back-N rewind
        // `snd_nxt` is behind what the peer has seen, and an ACK at it would
        // be out of window there (Linux's snd_nxt never rewinds).
        self.emit(now, self.snd_max, TcpFlags::ACK, 0, out);
    }

    /// The duplicate ACK answering an unacceptable segment. Linux
    /// (`tcp_oow_rate_limited`, `tcp_invalid_ratelimit` = 500 ms) sends at
    /// most one per 500 ms when the segment carries no data, which breaks
    /// ACK loops between two confused ends.
    fn send_oow_ack(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) {
        if seg.payload.is_empty() && !seg.flags.syn() {
            let ms = Self::now_ms(now);
            let ext = self.ext_mut();
            if ext.oow_ms != 0 && ms.wrapping_sub(ext.oow_ms) < OOW_ACK_INTERVAL_MS {
                return;
            }
            ext.oow_ms = ms.max(1);
        }
        self.send_ack(now, out);
    }

    fn send_rst(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        // Linux tcp_send_active_reset: RST|ACK at SND.NXT.
        let seg = SegOut {
            seq: self.snd_max,
            ack: self.rcv_nxt,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            ts: self.has(F_TS).then(|| (self.ts_val(now), self.ts_recent)),
            ..SegOut::default()
        };
        out(seg, Payload::default());
    }

    /// Payload room in one segment: MSS less the SACK option we would carry.
    fn seg_payload_max(&self) -> u32 {
        let n = if self.has(F_SACK) {
            self.rcv.ranges().len().min(self.max_sack())
        } else {
            0
        };
        let opt = if n > 0 { 4 + 8 * n as u32 } else { 0 };
        (self.mss as u32).saturating_sub(opt).max(1)
    }

    fn max_sack(&self) -> usize {
        // 40 option bytes: 3 blocks beside a timestamp option, else 4.
        if self.has(F_TS) {
            3
        } else {
            4
        }
    }

    /// Build one segment and hand it to the sink. Every segment carries
    /// the current ACK and window, so it settles a pending ACK.
    fn emit(
        &mut self,
        now: Instant,
        seq: u32,
        flags: TcpFlags,
        len: u32,
        out: &mut impl FnMut(SegOut, Payload<'_>),
    ) {
        let window = if flags.syn() {
            //= https://www.rfc-editor.org/rfc/rfc7323#section-2.2
            //# The window field in a segment where the SYN bit is set (i.e., a
            //# <SYN> or <SYN,ACK>) MUST NOT be scaled.
            self.rcv.free().min(u16::MAX as u32) as u16
        } else {
            self.select_window()
        };
        let mut seg = SegOut {
            seq,
            ack: self.rcv_nxt,
            flags: flags | TcpFlags::ACK,
            window,
            ts: self.has(F_TS).then(|| (self.ts_val(now), self.ts_recent)),
            payload_len: len,
            ..SegOut::default()
        };
        if self.has(F_SACK) {
            seg.sack_len = self.rcv.sack_blocks(self.max_sack(), &mut seg.sack);
        }
        self.set(F_ACK_NOW, false);
        self.delack_at = Deadline::NONE;
        self.quickack = self.quickack.saturating_sub(1);
        let payload = if len > 0 {
            let start = self.data_seq();
            let (a, b) = self.snd.slices(seq.wrapping_sub(start), len);
            Payload(a, b)
        } else {
            Payload::default()
        };
        out(seg, payload);
    }

    /// Send new data, FIN and a pending ACK.
    fn transmit(&mut self, now: Instant, out: &mut impl FnMut(SegOut, Payload<'_>)) {
        if self.state == State::TimeWait && self.has(F_ACK_NOW) {
            // The ACK of the FIN that moved us to TIME_WAIT.
            self.send_ack(now, out);
        }
        if matches!(self.state, State::Closed | State::TimeWait) {
            return;
        }
        self.rcv_space_adjust(now);
        if self.has(F_RECOVERY) && self.has(F_SACK) {
            self.sack_retransmit(now, out);
        }
        loop {
            let start = self.data_seq();
            if before(self.snd_nxt, start) {
                break;
            }
            // Go-back-N after an RTO: what the peer SACKed is not resent
            // (Linux's retransmit queue skips SACKed skbs).
            if before(self.snd_nxt, self.snd_max) {
                if let Some(end) = self.ext.as_ref().and_then(|e| e.sack.sacked_end(self.snd_nxt)) {
                    self.snd_nxt = end;
                    continue;
                }
            }
            let off = self.snd_nxt.wrapping_sub(start);
            let unsent = self.snd.len().saturating_sub(off);
            let fin_pending = self.has(F_FIN_QUEUED)
                && !after(self.snd_nxt, self.fin_seq())
                && self.snd_nxt.wrapping_add(unsent) == self.fin_seq();
            let wnd_end = self.snd_una.wrapping_add(self.snd_wnd);
            let peer_usable = if after(wnd_end, self.snd_nxt) {
                wnd_end.wrapping_sub(self.snd_nxt)
            } else {
                0
            };
            let usable = peer_usable.min(self.cwnd.saturating_sub(self.in_flight()));
            let seg_max = self.seg_payload_max();
            let mut len = unsent.min(seg_max).min(usable);
            if before(self.snd_nxt, self.snd_max) {
                // Resending after an RTO: stop at the next SACKed range.
                if let Some(s) = self.ext.as_ref().and_then(|e| e.sack.next_sacked(self.snd_nxt)) {
                    len = len.min(s.wrapping_sub(self.snd_nxt));
                }
            }
            // The FIN rides on the last data segment, and needs one unit of window.
            let fin = fin_pending && len == unsent && usable > len;
            if len == 0 && !fin {
                break;
            }
            // Nagle and sender-side SWS avoidance are for new data; a
            // retransmission after an RTO goes as it is (a hole before a
            // SACKed range may be short).
            if len < seg_max && !fin && !before(self.snd_nxt, self.snd_max) {
                let in_flight = self.snd_nxt != self.snd_una;
                if len < unsent {
                    //= https://www.rfc-editor.org/rfc/rfc1122#section-4.2.3.4
                    //# (1)  a maximum-sized segment can be sent, i.e, min(D,U) >=
                    //#      Eff.snd.MSS;
                    //# ...
                    //# (3)  at least a fraction Fs of the maximum window can be sent
                    if in_flight && len < self.max_snd_wnd / 2 {
                        break;
                    }
                } else if in_flight && !self.has(F_NODELAY) {
                    //= https://www.rfc-editor.org/rfc/rfc1122#section-4.2.3.4
                    //# If there is unacknowledged data (i.e., SND.NXT >
                    //# SND.UNA), then the sending TCP buffers all user data
                    //# (regardless of the PSH bit), until the outstanding data has
                    //# been acknowledged or until the TCP can send a full-sized
                    //# segment (Eff.snd.MSS bytes; see Section 4.2.2.6).
                    break;
                }
            }
            let mut f = TcpFlags::ACK;
            if len > 0 && len == unsent {
                f |= TcpFlags::PSH;
            }
            if fin {
                f |= TcpFlags::FIN;
            }
            let seq = self.snd_nxt;
            // Karn timing of new data, one segment per round trip.
            if len > 0 && !self.has(F_RTT_TIMING) && seq == self.snd_max {
                self.set(F_RTT_TIMING, true);
                self.rtt_seq = seq;
                self.rtt_time_us = Self::now_us(now);
            }
            self.emit(now, seq, f, len, out);
            self.snd_nxt = seq.wrapping_add(len + fin as u32);
            if after(self.snd_nxt, self.snd_max) {
                self.snd_max = self.snd_nxt;
            }
            if fin {
                self.set(F_FIN_SENT, true);
            }
            if self.has(F_PROBING) {
                self.set(F_PROBING, false);
                self.rtx_at = Deadline::NONE;
            }
            //= https://www.rfc-editor.org/rfc/rfc6298#section-5
            //# (5.1) Every time a packet containing data is sent (including a
            //#       retransmission), if the timer is not running, start it running
            //#       so that it will expire after RTO seconds
            if self.rtx_at == Deadline::NONE {
                self.rtx_at = Deadline::at(now + self.rto());
            }
        }
        // Persist: the peer's window is closed while we have something to say.
        let data_waiting = self.snd.len() > self.snd_nxt.wrapping_sub(self.data_seq())
            || (self.has(F_FIN_QUEUED) && !self.has(F_FIN_SENT));
        if data_waiting
            && self.snd_wnd == 0
            && self.snd_una == self.snd_max
            && self.rtx_at == Deadline::NONE
        {
            self.arm_probe(now);
        }
        if self.has(F_ACK_NOW) {
            self.send_ack(now, out);
        }
    }
}

/// Bytes in KiB (rounded down, at least 1), at most `u16::MAX`.
fn kib(bytes: u32) -> u16 {
    (bytes >> 10).clamp(1, u32::from(u16::MAX)) as u16
}

/// Whole seconds (rounded up), at most `u16::MAX`.
fn secs_u16(d: Duration) -> u16 {
    d.as_millis().div_ceil(1000).min(u128::from(u16::MAX)) as u16
}

/// `rto << shift`, at most `TCP_RTO_MAX`.
fn backoff(rto: Duration, shift: u8) -> Duration {
    if shift >= 20 {
        return RTO_MAX;
    }
    (rto * (1u32 << shift)).min(RTO_MAX)
}
