//! The generator, sans-IO: it decides which segments to send and reads the
//! replies, on a clock it is handed (nanoseconds since the run started).
//! The DPDK loop in [`super`] only moves frames; tests drive it with a
//! fake listener.
//!
//! Two kinds of flows share one generator:
//! - flood flows: a SYN from a fresh tuple, never answered by us (what a
//!   spoofed SYN flood does); a SYN-ACK or RST settles the flow;
//! - legitimate flows: SYN, SYN-ACK -> ACK (with the request, if any), then
//!   RST once the response (or a timeout) is in, keeping up to
//!   `concurrency` in flight. An unanswered SYN is retransmitted as a Linux
//!   client does (`tcp_syn_retries`, RTO from `TCP_TIMEOUT_INIT`, doubling),
//!   so the success rate under a flood is the one a real client would see.

use super::addr::SrcRange;
use super::family::{Family, Sock};
use super::packet::{syn_options, FloodSyn, Reply, Segment};
use crate::wire::tcp::TcpFlags;
use hdrhistogram::Histogram;
use std::collections::VecDeque;

/// Flows tracked at once per kind; a flood flow still unanswered when its
/// slot is needed again counts as unanswered.
pub const MAX_TRACKED: u64 = 1 << 20;

/// Source tuples: addresses x ports, enumerated address-first so
/// consecutive flows spread over the addresses (and RSS queues).
#[derive(Clone, Copy, Debug)]
pub struct TupleSpace<A: Family> {
    pub src: SrcRange<A>,
    pub ports: (u16, u16),
}

impl<A: Family> TupleSpace<A> {
    pub fn len(&self) -> u64 {
        u64::from(self.src.len()) * (u64::from(self.ports.1 - self.ports.0) + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `idx`-th tuple (`idx < len`).
    pub fn tuple(&self, idx: u64) -> A::Sock {
        let n = u64::from(self.src.len().max(1));
        let addr = self.src.nth((idx % n) as u32);
        let port = self.ports.0.wrapping_add((idx / n) as u16);
        A::Sock::from_parts(addr, port)
    }

    pub fn index_of(&self, a: A::Sock) -> Option<u64> {
        let i = self.src.index_of(*a.ip())?;
        if a.port() < self.ports.0 || a.port() > self.ports.1 {
            return None;
        }
        Some(u64::from(a.port() - self.ports.0) * u64::from(self.src.len()) + u64::from(i))
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ns: u64,
}

impl TokenBucket {
    pub fn new(rate: u64, burst: u64) -> TokenBucket {
        TokenBucket { rate: rate as f64, burst: burst.max(1) as f64, tokens: 0.0, last_ns: 0 }
    }

    /// How many of `want` may go now.
    pub fn take(&mut self, now_ns: u64, want: u64) -> u64 {
        let dt = now_ns.saturating_sub(self.last_ns) as f64 / 1e9;
        self.last_ns = now_ns;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        let n = (self.tokens.floor() as u64).min(want);
        self.tokens -= n as f64;
        n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    SynSent,
    /// Legitimate flow: ACK (and request) sent, waiting for the response.
    AwaitResponse,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Attempt number; the tuple is `attempt % space.len()`.
    attempt: u64,
    /// When the first SYN went (connect time counts the retransmissions),
    /// or the request once established.
    sent_ns: u64,
    state: State,
    /// SYN retransmissions so far (legitimate flows).
    retrans: u8,
}

const FREE: Slot = Slot { attempt: 0, sent_ns: 0, state: State::Free, retrans: 0 };

/// The next tuple of a [`TupleSpace`], walked in order without a division
/// per flow: the index, and the address and port it stands for.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    idx: u64,
    addr: u32,
    port: u16,
}

/// One kind of flow: its tuples and its bounded table of flows in flight.
struct Flows<A: Family> {
    space: TupleSpace<A>,
    slots: Vec<Slot>,
    next_attempt: u64,
    /// The tuple of `next_attempt` (flood flows walk the space in order).
    cursor: Cursor,
    salt: u32,
}

impl<A: Family> Flows<A> {
    fn new(space: TupleSpace<A>, salt: u32) -> Flows<A> {
        let len = space.len().clamp(1, MAX_TRACKED) as usize;
        Flows { space, slots: vec![FREE; len], next_attempt: 0, cursor: Cursor::default(), salt }
    }

    #[inline]
    fn slot_of(&self, idx: u64) -> usize {
        let len = self.slots.len() as u64;
        // Without a division in the common cases: every tuple has its own
        // slot, or the table is MAX_TRACKED (a power of two) long.
        let at = if idx < len {
            idx
        } else if len == MAX_TRACKED {
            idx & (MAX_TRACKED - 1)
        } else {
            idx % len
        };
        at as usize
    }

    /// The cursor's tuple, and the cursor moved to the next one.
    #[inline]
    fn advance(&mut self) -> (u64, A::Sock) {
        let c = self.cursor;
        let src = A::Sock::from_parts(self.space.src.addr_at(c.addr), self.space.ports.0.wrapping_add(c.port));
        let mut next = Cursor { idx: c.idx + 1, addr: c.addr + 1, port: c.port };
        if next.addr >= self.space.src.len() {
            next.addr = 0;
            next.port = next.port.wrapping_add(1);
        }
        if next.idx >= self.space.len() {
            next = Cursor::default();
        }
        self.cursor = next;
        (c.idx, src)
    }

    /// Our ISN for a tuple: fixed per tuple so a reply can be checked.
    fn isn(&self, idx: u64) -> u32 {
        (idx as u32).wrapping_mul(0x9e37_79b1) ^ self.salt
    }

    /// The live slot for a reply to `to`, if any.
    fn find(&mut self, to: A::Sock) -> Option<(u64, u32, &mut Slot)> {
        let idx = self.space.index_of(to)?;
        let total = self.space.len();
        let at = self.slot_of(idx);
        let isn = self.isn(idx);
        let slot = &mut self.slots[at];
        (slot.state != State::Free && slot.attempt % total == idx).then_some((idx, isn, slot))
    }
}

/// Everything counted during a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub syn_sent: u64,
    pub synack: u64,
    pub rst: u64,
    /// SYNs whose flow ended without any answer.
    pub unanswered: u64,
    /// SYN-ACKs for a flow already answered (retransmissions).
    pub dup_synack: u64,
    /// SYN-ACKs whose acknowledgment number is not our ISN + 1.
    pub bad_ack: u64,
    pub legit_attempts: u64,
    pub legit_established: u64,
    pub legit_rst: u64,
    /// SYNs sent again (Linux's TCPSynRetrans, the client side).
    pub legit_syn_retrans: u64,
    /// Handshakes given up after `syn_retries` retransmissions (ETIMEDOUT).
    pub legit_timeouts: u64,
    /// Handshakes still waiting for a SYN-ACK when the run ended.
    pub legit_unfinished: u64,
    /// Responses (data or FIN) to the request.
    pub legit_responses: u64,
    pub legit_response_timeouts: u64,
    /// Segments for none of our flows.
    pub stray: u64,
}

/// What the generator was asked to do.
#[derive(Clone, Debug)]
pub struct GenConfig<A: Family> {
    pub dst: A::Sock,
    /// Flood tuples (None: no flood).
    pub flood: Option<TupleSpace<A>>,
    /// Legitimate tuples (None: no handshakes).
    pub legit: Option<TupleSpace<A>>,
    /// SYNs the flood may send in all (None: until stopped).
    pub flood_count: Option<u64>,
    /// Handshakes to attempt in all (None: until stopped).
    pub legit_count: Option<u64>,
    pub concurrency: u64,
    pub request: Vec<u8>,
    /// A request unanswered this long fails.
    pub timeout_ns: u64,
    /// SYN retransmissions before a handshake gives up (Linux's
    /// `tcp_syn_retries`, default 6).
    pub syn_retries: u8,
    /// The first SYN's retransmission timeout (Linux's `TCP_TIMEOUT_INIT`,
    /// 1 s); each retransmission doubles it.
    pub syn_rto_ns: u64,
    pub salt: u32,
}

/// Linux's `tcp_syn_retries` default.
pub const TCP_SYN_RETRIES: u8 = 6;
/// Linux's `TCP_TIMEOUT_INIT`: the RTO before any RTT sample (RFC 6298).
pub const TCP_TIMEOUT_INIT_NS: u64 = 1_000_000_000;
/// Linux's `TCP_RTO_MAX`: the doubling stops at 120 s.
pub const TCP_RTO_MAX_NS: u64 = 120_000_000_000;
/// Linux's `MAX_TCP_SYNCNT`: the most `tcp_syn_retries` may be.
pub const MAX_TCP_SYNCNT: u8 = 127;

/// The RTO after `retrans` retransmissions: doubled each time, at most
/// `TCP_RTO_MAX`.
fn syn_rto(initial_ns: u64, retrans: usize) -> u64 {
    initial_ns.saturating_mul(1u64 << retrans.min(40)).min(TCP_RTO_MAX_NS.max(initial_ns))
}

/// When SYNs were sent: the first and the last (ns since the run started).
/// Rates are counts over this window, not over the run: the drain after the
/// last SYN, which only waits for replies, would dilute them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendWindow {
    pub first_ns: Option<u64>,
    pub last_ns: u64,
}

impl SendWindow {
    #[inline]
    fn sent(&mut self, now_ns: u64) {
        self.first_ns.get_or_insert(now_ns);
        self.last_ns = now_ns;
    }

    /// First SYN to last SYN.
    pub fn len_ns(&self) -> u64 {
        self.first_ns.map_or(0, |f| self.last_ns.saturating_sub(f))
    }

    /// `count` per second of the window; None when nothing (or everything
    /// at one instant) was sent, where no rate is defined.
    pub fn rate(&self, count: u64) -> Option<f64> {
        let ns = self.len_ns();
        (ns > 0).then(|| count as f64 * 1e9 / ns as f64)
    }
}

/// One segment to send, before framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out<A: Family> {
    Syn { src: A::Sock, isn: u32, tsval: u32 },
    /// The handshake's third segment, with the request if there is one.
    Ack { src: A::Sock, seq: u32, ack: u32, tsval: u32, tsecr: u32, with_request: bool },
    Rst { src: A::Sock, seq: u32 },
}

pub struct Generator<A: Family> {
    cfg: GenConfig<A>,
    flood: Option<Flows<A>>,
    legit: Option<Flows<A>>,
    in_flight: u64,
    /// SYN timers of legitimate flows, one queue per retransmission count:
    /// `syn_timers[k]` holds (deadline, attempt) of flows whose k-th
    /// retransmission (k = 0: the first SYN) went last. Every entry of a
    /// queue has the same timeout, `syn_rto(syn_rto_ns, k)`, and entries are pushed
    /// in time order, so each queue is sorted by deadline.
    syn_timers: Vec<VecDeque<(u64, u64)>>,
    /// (deadline, attempt) of requests awaiting their response, sorted.
    response_timers: VecDeque<(u64, u64)>,
    pub window: SendWindow,
    pub stats: Stats,
    /// Flood SYN -> SYN-ACK, ns.
    pub flood_latency: Histogram<u64>,
    /// Legitimate SYN -> SYN-ACK (connect latency), ns.
    pub connect_latency: Histogram<u64>,
}

/// Our TSval: a microsecond clock, as a 1 MHz timestamp clock.
#[inline]
pub fn tsval(now_ns: u64) -> u32 {
    (now_ns / 1000) as u32
}

/// The handshake's third segment, answering the SYN-ACK `r`.
fn third_ack<A: Family>(src: A::Sock, seq: u32, r: &Reply<A>, now_ns: u64, with_request: bool) -> Out<A> {
    Out::Ack { src, seq, ack: r.seq.wrapping_add(1), tsval: tsval(now_ns), tsecr: r.tsval().unwrap_or(0), with_request }
}

/// Our sequence number once the request is sent (where the RST goes).
fn after_request(isn: u32, request: &[u8]) -> u32 {
    isn.wrapping_add(1).wrapping_add(request.len() as u32)
}

impl<A: Family> Generator<A> {
    pub fn new(cfg: GenConfig<A>) -> Generator<A> {
        let flood = cfg.flood.map(|s| Flows::new(s, cfg.salt));
        let legit = cfg.legit.map(|s| Flows::new(s, cfg.salt ^ 0x5a5a_5a5a));
        let levels = usize::from(cfg.syn_retries.min(MAX_TCP_SYNCNT)) + 1;
        Generator {
            cfg,
            flood,
            legit,
            in_flight: 0,
            syn_timers: vec![VecDeque::new(); levels],
            response_timers: VecDeque::new(),
            window: SendWindow::default(),
            stats: Stats::default(),
            flood_latency: crate::telemetry::latency::new_histogram(),
            connect_latency: crate::telemetry::latency::new_histogram(),
        }
    }

    pub fn config(&self) -> &GenConfig<A> {
        &self.cfg
    }

    /// Flood SYNs still allowed by `--count`.
    pub fn flood_left(&self) -> u64 {
        match (&self.flood, self.cfg.flood_count) {
            (None, _) => 0,
            (Some(_), Some(n)) => n.saturating_sub(self.stats.syn_sent),
            (Some(_), None) => u64::MAX,
        }
    }

    /// Handshakes still to start.
    pub fn legit_left(&self) -> u64 {
        match (&self.legit, self.cfg.legit_count) {
            (None, _) => 0,
            (Some(_), Some(n)) => n.saturating_sub(self.stats.legit_attempts),
            (Some(_), None) => u64::MAX,
        }
    }

    /// Legitimate flows in flight.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// True when nothing more is to be sent and nothing is awaited.
    pub fn finished(&self) -> bool {
        self.flood_left() == 0 && self.legit_left() == 0 && self.in_flight == 0
    }

    /// Up to `n` flood SYNs.
    pub fn flood_syns(&mut self, now_ns: u64, n: u64, out: &mut Vec<Out<A>>) {
        let tsval = tsval(now_ns);
        for _ in 0..n {
            let Some(s) = self.next_flood_syn(now_ns) else { break };
            out.push(Out::Syn { src: s.src, isn: s.isn, tsval });
        }
    }

    /// The next flood SYN, if `--count` allows one: the generator's side of
    /// the template path (the caller writes it with [`tsval`]`(now_ns)`).
    #[inline]
    pub fn next_flood_syn(&mut self, now_ns: u64) -> Option<FloodSyn<A>> {
        if self.flood_left() == 0 {
            return None;
        }
        let f = self.flood.as_mut()?;
        let attempt = f.next_attempt;
        f.next_attempt += 1;
        let (idx, src) = f.advance();
        let at = f.slot_of(idx);
        let slot = &mut f.slots[at];
        if slot.state == State::SynSent {
            self.stats.unanswered += 1;
        }
        *slot = Slot { attempt, sent_ns: now_ns, state: State::SynSent, retrans: 0 };
        self.stats.syn_sent += 1;
        self.window.sent(now_ns);
        Some(FloodSyn { src, isn: f.isn(idx), ident: attempt as u16 })
    }

    /// Start handshakes up to the concurrency limit (at most `max` now).
    pub fn open_connections(&mut self, now_ns: u64, max: u64, out: &mut Vec<Out<A>>) {
        let room = self.cfg.concurrency.saturating_sub(self.in_flight).min(self.legit_left()).min(max);
        let Some(f) = &mut self.legit else { return };
        let total = f.space.len();
        for _ in 0..room {
            let attempt = f.next_attempt;
            let idx = attempt % total;
            let at = f.slot_of(idx);
            if f.slots[at].state != State::Free {
                // Every tuple's slot is busy: the tuple space is smaller
                // than the concurrency; wait for one to finish.
                break;
            }
            f.next_attempt += 1;
            f.slots[at] = Slot { attempt, sent_ns: now_ns, state: State::SynSent, retrans: 0 };
            self.syn_timers[0].push_back((now_ns + self.cfg.syn_rto_ns, attempt));
            self.in_flight += 1;
            self.stats.legit_attempts += 1;
            self.window.sent(now_ns);
            out.push(Out::Syn { src: f.space.tuple(idx), isn: f.isn(idx), tsval: tsval(now_ns) });
        }
    }

    /// A TCP segment from the target.
    pub fn on_reply(&mut self, now_ns: u64, r: &Reply<A>, out: &mut Vec<Out<A>>) {
        if r.from != self.cfg.dst {
            self.stats.stray += 1;
            return;
        }
        if !self.on_flood_reply(now_ns, r) {
            self.on_legit_reply(now_ns, r, out);
        }
    }

    /// A reply to one of the flood's tuples settles its flow. False when the
    /// segment is not for a flood tuple.
    fn on_flood_reply(&mut self, now_ns: u64, r: &Reply<A>) -> bool {
        let Some(f) = &mut self.flood else { return false };
        let Some((_, isn, slot)) = f.find(r.to) else {
            if f.space.index_of(r.to).is_none() {
                return false;
            }
            // A flow already settled: a retransmitted SYN-ACK.
            if r.flags.contains(TcpFlags::SYN) {
                self.stats.dup_synack += 1;
            }
            return true;
        };
        let is_synack = r.flags.contains(TcpFlags::SYN | TcpFlags::ACK);
        if is_synack && r.ack != isn.wrapping_add(1) {
            self.stats.bad_ack += 1;
        } else if slot.state == State::SynSent {
            if is_synack {
                self.stats.synack += 1;
                let _ = self.flood_latency.record(now_ns.saturating_sub(slot.sent_ns).max(1));
                slot.state = State::Free;
            } else if r.flags.contains(TcpFlags::RST) {
                self.stats.rst += 1;
                slot.state = State::Free;
            }
        }
        true
    }

    /// A reply to a legitimate flow moves its handshake (or request) on.
    fn on_legit_reply(&mut self, now_ns: u64, r: &Reply<A>, out: &mut Vec<Out<A>>) {
        let Some(f) = &mut self.legit else {
            self.stats.stray += 1;
            return;
        };
        let Some((_, isn, slot)) = f.find(r.to) else {
            if f.space.index_of(r.to).is_some() && r.flags.contains(TcpFlags::SYN) {
                self.stats.dup_synack += 1;
            } else {
                self.stats.stray += 1;
            }
            return;
        };
        let src = r.to;
        match slot.state {
            State::SynSent if r.flags.contains(TcpFlags::RST) => {
                self.stats.legit_rst += 1;
                slot.state = State::Free;
                self.in_flight -= 1;
            }
            State::SynSent if r.flags.contains(TcpFlags::SYN | TcpFlags::ACK) => {
                if r.ack != isn.wrapping_add(1) {
                    self.stats.bad_ack += 1;
                    return;
                }
                self.stats.legit_established += 1;
                let _ = self.connect_latency.record(now_ns.saturating_sub(slot.sent_ns).max(1));
                let seq = isn.wrapping_add(1);
                let with_request = !self.cfg.request.is_empty();
                out.push(third_ack(src, seq, r, now_ns, with_request));
                if with_request {
                    slot.state = State::AwaitResponse;
                    slot.sent_ns = now_ns;
                    self.response_timers.push_back((now_ns + self.cfg.timeout_ns, slot.attempt));
                } else {
                    // No request: close at once, as a port scanner or a
                    // health check does.
                    out.push(Out::Rst { src, seq });
                    slot.state = State::Free;
                    self.in_flight -= 1;
                }
            }
            State::AwaitResponse => {
                if r.payload_len > 0 || r.flags.intersects(TcpFlags::FIN | TcpFlags::RST) {
                    if !r.flags.contains(TcpFlags::RST) {
                        self.stats.legit_responses += 1;
                        out.push(Out::Rst { src, seq: after_request(isn, &self.cfg.request) });
                    }
                    slot.state = State::Free;
                    self.in_flight -= 1;
                }
            }
            _ => self.stats.dup_synack += u64::from(r.flags.contains(TcpFlags::SYN)),
        }
    }

    /// Legitimate flows' timers: SYNs retransmitted or given up, requests
    /// failed.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Out<A>>) {
        if self.legit.is_none() {
            return;
        }
        for level in 0..self.syn_timers.len() {
            while let Some(&(deadline, attempt)) = self.syn_timers[level].front() {
                if deadline > now_ns {
                    break;
                }
                self.syn_timers[level].pop_front();
                self.syn_timer(now_ns, level, attempt, out);
            }
        }
        while let Some(&(deadline, attempt)) = self.response_timers.front() {
            if deadline > now_ns {
                break;
            }
            self.response_timers.pop_front();
            self.response_timer(attempt, out);
        }
    }

    /// The retransmission timer of a SYN sent `level` times before: Linux's
    /// tcp_retransmit_timer for a SYN_SENT socket sends the SYN again (same
    /// ISN, fresh timestamp) with the RTO doubled, until `tcp_syn_retries`
    /// retransmissions went unanswered for a whole RTO (tcp_write_timeout):
    /// then the connect fails with ETIMEDOUT.
    fn syn_timer(&mut self, now_ns: u64, level: usize, attempt: u64, out: &mut Vec<Out<A>>) {
        let Some(f) = &mut self.legit else { return };
        let idx = attempt % f.space.len();
        let at = f.slot_of(idx);
        let slot = &mut f.slots[at];
        if slot.attempt != attempt || slot.state != State::SynSent || usize::from(slot.retrans) != level {
            return;
        }
        if level + 1 >= self.syn_timers.len() {
            self.stats.legit_timeouts += 1;
            slot.state = State::Free;
            self.in_flight -= 1;
            return;
        }
        slot.retrans += 1;
        self.stats.legit_syn_retrans += 1;
        self.syn_timers[level + 1].push_back((now_ns + syn_rto(self.cfg.syn_rto_ns, level + 1), attempt));
        out.push(Out::Syn { src: f.space.tuple(idx), isn: f.isn(idx), tsval: tsval(now_ns) });
    }

    /// A request unanswered for the timeout: reset it.
    fn response_timer(&mut self, attempt: u64, out: &mut Vec<Out<A>>) {
        let Some(f) = &mut self.legit else { return };
        let idx = attempt % f.space.len();
        let at = f.slot_of(idx);
        let (src, isn) = (f.space.tuple(idx), f.isn(idx));
        let slot = &mut f.slots[at];
        if slot.attempt != attempt || slot.state != State::AwaitResponse {
            return;
        }
        self.stats.legit_response_timeouts += 1;
        out.push(Out::Rst { src, seq: after_request(isn, &self.cfg.request) });
        slot.state = State::Free;
        self.in_flight -= 1;
    }

    /// At the end: flood SYNs still unanswered, and legitimate flows still
    /// open (handshakes unfinished, requests failed as timeouts; RSTs for
    /// the established ones in `out`).
    // Out of line, generic as it is: bench/flood_callgrind.sh leaves this
    // one-off sweep of the flow table out of its counts by its name.
    #[inline(never)]
    pub fn finish(&mut self, out: &mut Vec<Out<A>>) {
        if let Some(f) = &mut self.flood {
            for s in f.slots.iter_mut().filter(|s| s.state == State::SynSent) {
                s.state = State::Free;
                self.stats.unanswered += 1;
            }
        }
        if let Some(f) = &mut self.legit {
            let total = f.space.len();
            for i in 0..f.slots.len() {
                let s = f.slots[i];
                match s.state {
                    State::SynSent => self.stats.legit_unfinished += 1,
                    State::AwaitResponse => {
                        self.stats.legit_response_timeouts += 1;
                        let idx = s.attempt % total;
                        out.push(Out::Rst { src: f.space.tuple(idx), seq: after_request(f.isn(idx), &self.cfg.request) });
                    }
                    State::Free => continue,
                }
                f.slots[i].state = State::Free;
            }
        }
        self.in_flight = 0;
        self.syn_timers.iter_mut().for_each(VecDeque::clear);
        self.response_timers.clear();
    }

    /// The segment to frame for `o`.
    pub fn segment(&self, o: &Out<A>, ident: u16) -> Segment<'_, A> {
        let dst = self.cfg.dst;
        match *o {
            Out::Syn { src, isn, tsval } => Segment {
                src,
                dst,
                seq: isn,
                ack: 0,
                flags: TcpFlags::SYN,
                syn: Some(syn_options::<A>(tsval)),
                timestamps: None,
                payload: &[],
                ident,
            },
            Out::Ack { src, seq, ack, tsval, tsecr, with_request } => Segment {
                src,
                dst,
                seq,
                ack,
                flags: if with_request { TcpFlags::ACK | TcpFlags::PSH } else { TcpFlags::ACK },
                syn: None,
                timestamps: Some((tsval, tsecr)),
                payload: if with_request { &self.cfg.request } else { &[] },
                ident,
            },
            Out::Rst { src, seq } => Segment {
                src,
                dst,
                seq,
                ack: 0,
                flags: TcpFlags::RST,
                syn: None,
                timestamps: None,
                payload: &[],
                ident,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);

    fn space(ports: (u16, u16)) -> TupleSpace<Ipv4Addr> {
        TupleSpace { src: SrcRange::parse("198.18.1.0/30").unwrap(), ports }
    }

    fn cfg() -> GenConfig<Ipv4Addr> {
        GenConfig {
            dst: DST,
            flood: None,
            legit: None,
            flood_count: None,
            legit_count: None,
            concurrency: 4,
            request: Vec::new(),
            timeout_ns: 1_000_000_000,
            syn_retries: TCP_SYN_RETRIES,
            syn_rto_ns: TCP_TIMEOUT_INIT_NS,
            salt: 77,
        }
    }

    /// Timestamps with TSval 9 (NOP, NOP, TS).
    const TS9: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0];

    /// What a listener answers to a SYN: a SYN-ACK acking ISN + 1.
    fn synack(o: &Out<Ipv4Addr>, server_isn: u32) -> Reply<'static, Ipv4Addr> {
        let Out::Syn { src, isn, .. } = *o else { panic!("not a SYN: {o:?}") };
        Reply { to: src, from: DST, seq: server_isn, ack: isn.wrapping_add(1), flags: TcpFlags::SYN | TcpFlags::ACK, payload_len: 0, options: &TS9 }
    }

    #[test]
    fn tuple_space_round_trips() {
        let s = space((1000, 1009));
        assert_eq!(s.len(), 20);
        let mut seen = std::collections::HashSet::new();
        for i in 0..s.len() {
            let t = s.tuple(i);
            assert_eq!(s.index_of(t), Some(i));
            assert!(seen.insert(t));
        }
        assert_eq!(s.tuple(0), "198.18.1.1:1000".parse().unwrap());
        assert_eq!(s.tuple(1), "198.18.1.2:1000".parse().unwrap());
        assert_eq!(s.index_of("198.18.1.1:999".parse().unwrap()), None);
        assert_eq!(s.index_of("198.18.2.1:1000".parse().unwrap()), None);
    }

    #[test]
    fn flood_walks_the_tuple_space_in_order_and_wraps() {
        for (ports, n) in [((2000, 2002), 30), ((5, 5), 9)] {
            let sp = space(ports);
            let mut g = Generator::new(GenConfig { flood: Some(sp), ..cfg() });
            for attempt in 0..n {
                let s = g.next_flood_syn(0).unwrap();
                let idx = attempt % sp.len();
                assert_eq!(s.src, sp.tuple(idx), "attempt {attempt}");
                assert_eq!(s.ident, attempt as u16);
            }
        }
    }

    #[test]
    fn token_bucket_paces() {
        let mut b = TokenBucket::new(1000, 10);
        assert_eq!(b.take(0, 100), 0);
        assert_eq!(b.take(5_000_000, 100), 5);
        // Saved-up tokens stop at the burst size.
        assert_eq!(b.take(1_000_000_000, 100), 10);
        let mut sent = 0;
        for ms in 1..=1000u64 {
            sent += b.take(1_000_000_000 + ms * 1_000_000, 100);
        }
        assert!((999..=1001).contains(&sent), "{sent}");
    }

    #[test]
    fn flood_counts_synacks_rsts_and_unanswered() {
        let mut g = Generator::new(GenConfig { flood: Some(space((2000, 2099))), flood_count: Some(10), ..cfg() });
        let mut out = Vec::new();
        g.flood_syns(0, 100, &mut out);
        assert_eq!(out.len(), 10, "bounded by the count");
        assert_eq!(g.flood_left(), 0);
        let mut replies = Vec::new();
        for (i, o) in out.iter().enumerate().take(7) {
            replies.push(synack(o, i as u32));
        }
        let Out::Syn { src, isn, .. } = out[7] else { panic!() };
        replies.push(Reply { flags: TcpFlags::RST | TcpFlags::ACK, ack: isn.wrapping_add(1), seq: 0, to: src, from: DST, payload_len: 0, options: &[] });
        let mut wrong = synack(&out[8], 1);
        wrong.ack ^= 1;
        replies.push(wrong);
        // A retransmitted SYN-ACK is counted apart.
        replies.push(synack(&out[0], 0));
        // From someone else.
        replies.push(Reply { from: "198.18.0.9:80".parse().unwrap(), ..synack(&out[9], 0) });
        let mut sent = Vec::new();
        for r in &replies {
            g.on_reply(2_000, r, &mut sent);
        }
        assert!(sent.is_empty(), "a flood never answers");
        g.finish(&mut sent);
        let s = &g.stats;
        assert_eq!((s.syn_sent, s.synack, s.rst, s.bad_ack, s.dup_synack, s.stray), (10, 7, 1, 1, 1, 1));
        assert_eq!(s.unanswered, 2, "the wrong-ack one and the one never answered");
        assert_eq!(g.flood_latency.len(), 7);
        assert_eq!(g.flood_latency.max(), g.flood_latency.highest_equivalent(2_000));
    }

    #[test]
    fn flood_wraps_its_tuples_and_counts_overwritten_flows() {
        let mut g = Generator::new(GenConfig { flood: Some(space((2000, 2003))), flood_count: Some(12), ..cfg() });
        let mut out = Vec::new();
        g.flood_syns(0, 12, &mut out);
        assert_eq!(out.len(), 12);
        // Flow 8 reuses flow 0's tuple and ISN.
        assert_eq!(out[0], out[8]);
        assert!(matches!(out[0], Out::Syn { src, .. } if src == "198.18.1.1:2000".parse().unwrap()));
        assert_eq!(g.stats.unanswered, 4, "8 tuples: the first 4 flows were overwritten unanswered");
        for o in &out[4..] {
            let r = synack(o, 1);
            g.on_reply(10, &r, &mut Vec::new());
        }
        g.finish(&mut Vec::new());
        assert_eq!((g.stats.synack, g.stats.unanswered), (8, 4));
    }

    #[test]
    fn handshake_acks_then_resets_and_keeps_concurrency() {
        // No SYN retransmissions: an unanswered SYN fails after one RTO.
        let mut g = Generator::new(GenConfig { legit: Some(space((3000, 3099))), legit_count: Some(6), syn_retries: 0, ..cfg() });
        let mut out = Vec::new();
        g.open_connections(0, u64::MAX, &mut out);
        assert_eq!(out.len(), 4, "concurrency 4");
        assert_eq!(g.in_flight(), 4);
        let syns = std::mem::take(&mut out);
        g.on_reply(500, &synack(&syns[0], 1000), &mut out);
        let Out::Syn { src, isn, .. } = syns[0] else { panic!() };
        assert_eq!(
            out,
            vec![
                Out::Ack { src, seq: isn.wrapping_add(1), ack: 1001, tsval: 0, tsecr: 9, with_request: false },
                Out::Rst { src, seq: isn.wrapping_add(1) }
            ]
        );
        let seg = g.segment(&out[0], 1);
        assert_eq!((seg.flags, seg.timestamps, seg.payload.len()), (TcpFlags::ACK, Some((0, 9)), 0));
        assert_eq!(g.in_flight(), 3);
        // Refused.
        let Out::Syn { src, isn, .. } = syns[1] else { panic!() };
        g.on_reply(600, &Reply { to: src, from: DST, seq: 0, ack: isn.wrapping_add(1), flags: TcpFlags::RST | TcpFlags::ACK, payload_len: 0, options: &[] }, &mut out);
        assert_eq!(g.in_flight(), 2);
        out.clear();
        g.open_connections(700, u64::MAX, &mut out);
        assert_eq!(out.len(), 2, "refilled to 4, then the count (6) is reached");
        assert_eq!(g.legit_left(), 0);
        // The rest time out after 1 s.
        out.clear();
        g.expire(999_999_999, &mut out);
        assert_eq!(g.in_flight(), 4);
        g.expire(1_000_000_700, &mut out);
        assert_eq!(g.in_flight(), 0);
        assert!(out.is_empty(), "tcp_syn_retries 0: no retransmission");
        assert!(g.finished());
        let s = &g.stats;
        assert_eq!((s.legit_attempts, s.legit_established, s.legit_rst, s.legit_timeouts), (6, 1, 1, 4));
        assert_eq!(g.connect_latency.len(), 1);
    }

    #[test]
    fn handshake_with_a_request_waits_for_the_response() {
        let mut g = Generator::new(GenConfig {
            legit: Some(space((3000, 3099))),
            legit_count: Some(2),
            request: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            ..cfg()
        });
        let mut out = Vec::new();
        g.open_connections(0, u64::MAX, &mut out);
        let syns = std::mem::take(&mut out);
        for s in &syns {
            g.on_reply(10, &synack(s, 500), &mut out);
        }
        assert_eq!(out.len(), 2, "two ACKs carrying the request, no RST yet");
        let seg = g.segment(&out[0], 1);
        assert_eq!(seg.payload.len(), 18);
        assert_eq!(seg.flags, TcpFlags::ACK | TcpFlags::PSH);
        out.clear();
        let Out::Syn { src, isn, .. } = syns[0] else { panic!() };
        g.on_reply(20, &Reply { to: src, from: DST, seq: 501, ack: isn.wrapping_add(19), flags: TcpFlags::ACK | TcpFlags::PSH, payload_len: 100, options: &[] }, &mut out);
        assert_eq!(out, vec![Out::Rst { src, seq: isn.wrapping_add(19) }]);
        out.clear();
        g.expire(2_000_000_000, &mut out);
        assert_eq!(out.len(), 1, "the second one is reset after its response timeout");
        let s = &g.stats;
        assert_eq!((s.legit_established, s.legit_responses, s.legit_response_timeouts), (2, 1, 1));
        assert!(g.finished());
    }

    #[test]
    fn finish_settles_everything() {
        let mut g = Generator::new(GenConfig {
            flood: Some(space((2000, 2049))),
            legit: Some(space((3000, 3049))),
            flood_count: Some(5),
            ..cfg()
        });
        let mut out = Vec::new();
        g.flood_syns(0, 5, &mut out);
        g.open_connections(0, 3, &mut out);
        assert_eq!(out.len(), 8);
        g.finish(&mut out);
        assert_eq!((g.stats.unanswered, g.stats.legit_unfinished, g.stats.legit_timeouts, g.in_flight()), (5, 3, 0, 0));
    }

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn send_window_is_first_to_last_syn() {
        let mut g = Generator::new(GenConfig { flood: Some(space((2000, 2099))), legit: Some(space((3000, 3009))), ..cfg() });
        assert_eq!(g.window.rate(10), None, "nothing sent: no rate");
        let mut out = Vec::new();
        g.flood_syns(SEC, 10, &mut out);
        assert_eq!(g.window.rate(10), None, "one instant: no rate");
        g.open_connections(2 * SEC, 1, &mut out);
        g.flood_syns(3 * SEC, 10, &mut out);
        // Replies and timers later do not move the window.
        g.flood_syns(4 * SEC, 0, &mut out);
        g.expire(9 * SEC, &mut out);
        assert_eq!(g.window, SendWindow { first_ns: Some(SEC), last_ns: 3 * SEC });
        assert_eq!(g.window.rate(20), Some(10.0));
    }

    /// Linux's schedule with tcp_syn_retries 6: SYNs at 0, 1, 3, 7, 15, 31
    /// and 63 s, ETIMEDOUT at 127 s.
    #[test]
    fn unanswered_syn_is_retransmitted_at_1_s_then_doubling() {
        let mut g = Generator::new(GenConfig { legit: Some(space((3000, 3099))), legit_count: Some(1), ..cfg() });
        let mut out = Vec::new();
        g.open_connections(0, 1, &mut out);
        let Out::Syn { src, isn, .. } = out[0] else { panic!() };
        let mut sent_at = vec![0];
        for ms in (1..=130_000u64).step_by(1) {
            out.clear();
            g.expire(ms * 1_000_000, &mut out);
            for o in &out {
                assert_eq!(*o, Out::Syn { src, isn, tsval: tsval(ms * 1_000_000) }, "same tuple and ISN, fresh TSval");
                sent_at.push(ms / 1000);
            }
            if g.in_flight() == 0 {
                assert_eq!(ms, 127_000, "gave up a whole RTO after the last retransmission");
                break;
            }
        }
        assert_eq!(sent_at, [0, 1, 3, 7, 15, 31, 63]);
        let s = &g.stats;
        assert_eq!((s.legit_syn_retrans, s.legit_timeouts, s.legit_established), (6, 1, 0));
        assert!(g.finished());
    }

    #[test]
    fn the_rto_stops_doubling_at_120_s() {
        let rtos: Vec<u64> = (0..9).map(|k| syn_rto(SEC, k) / SEC).collect();
        assert_eq!(rtos, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
        assert_eq!(syn_rto(SEC, 127), 120 * SEC);
    }

    #[test]
    fn connect_time_counts_the_retransmissions() {
        let mut g = Generator::new(GenConfig { legit: Some(space((3000, 3099))), legit_count: Some(2), ..cfg() });
        let mut out = Vec::new();
        g.open_connections(0, 2, &mut out);
        let syns = std::mem::take(&mut out);
        // The first is answered at once; the second's SYN and first
        // retransmission are lost, its second retransmission (at 3 s) answered.
        g.on_reply(50_000, &synack(&syns[0], 7), &mut out);
        g.expire(SEC, &mut out);
        g.expire(3 * SEC, &mut out);
        let retrans: Vec<_> = out.iter().filter(|o| matches!(o, Out::Syn { .. })).collect();
        assert_eq!(retrans.len(), 1 + 1, "the second flow at 1 s and 3 s (the first one is done)");
        g.on_reply(3 * SEC + 50_000, &synack(&syns[1], 9), &mut out);
        // A late SYN-ACK to a retransmitted SYN of a flow already done.
        g.on_reply(3 * SEC + 60_000, &synack(&syns[1], 9), &mut out);
        g.expire(200 * SEC, &mut out);
        let s = &g.stats;
        assert_eq!((s.legit_established, s.legit_syn_retrans, s.legit_timeouts, s.dup_synack), (2, 2, 0, 1));
        assert_eq!(g.connect_latency.len(), 2);
        assert_eq!(g.connect_latency.max(), g.connect_latency.highest_equivalent(3 * SEC + 50_000));
        assert_eq!(g.connect_latency.min(), g.connect_latency.lowest_equivalent(50_000));
    }

    #[test]
    fn a_refused_or_answered_flow_stops_its_retransmissions() {
        let mut g = Generator::new(GenConfig { legit: Some(space((3000, 3099))), legit_count: Some(2), ..cfg() });
        let mut out = Vec::new();
        g.open_connections(0, 2, &mut out);
        let syns = std::mem::take(&mut out);
        g.expire(SEC, &mut out);
        assert_eq!(out.len(), 2);
        let Out::Syn { src, isn, .. } = syns[0] else { panic!() };
        g.on_reply(SEC + 10, &Reply { to: src, from: DST, seq: 0, ack: isn.wrapping_add(1), flags: TcpFlags::RST | TcpFlags::ACK, payload_len: 0, options: &[] }, &mut out);
        g.on_reply(SEC + 10, &synack(&syns[1], 3), &mut out);
        out.clear();
        g.expire(300 * SEC, &mut out);
        assert!(out.is_empty(), "{out:?}");
        let s = &g.stats;
        assert_eq!((s.legit_rst, s.legit_established, s.legit_syn_retrans, s.legit_timeouts), (1, 1, 2, 0));
    }

    /// A whole handshake over IPv6, through the framing and the parse: the
    /// generator's SYN, the target's SYN-ACK read back from a frame, the
    /// third ACK with the request, the response, the RST.
    #[test]
    fn a_handshake_over_ipv6_through_frames() {
        use super::super::packet::{build_segment, parse_v6, Link, Rx};
        use crate::wire::ethernet::EthernetAddress;
        use std::net::{Ipv6Addr, SocketAddrV6};
        let dst: SocketAddrV6 = "[2001:2::1]:80".parse().unwrap();
        let src = SrcRange::<Ipv6Addr>::parse("2001:2:0:1::/120").unwrap();
        let mut g = Generator::new(GenConfig {
            dst,
            flood: None,
            legit: Some(TupleSpace { src, ports: (3000, 3009) }),
            flood_count: None,
            legit_count: Some(1),
            concurrency: 1,
            request: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            timeout_ns: SEC,
            syn_retries: 0,
            syn_rto_ns: SEC,
            salt: 5,
        });
        let us = Link { our_mac: EthernetAddress([2, 0, 0, 0, 0, 2]), peer_mac: EthernetAddress([2, 0, 0, 0, 0, 1]) };
        let them = Link { our_mac: us.peer_mac, peer_mac: us.our_mac };
        let mut out = Vec::new();
        g.open_connections(0, 1, &mut out);
        let [Out::Syn { src: from, isn, .. }] = out[..] else { panic!("{out:?}") };
        assert_eq!(from, "[2001:2:0:1::1]:3000".parse().unwrap());
        let mut buf = [0u8; 256];
        let n = build_segment(&mut buf, &us, &g.segment(&out[0], 1));
        let Rx::Tcp(syn) = parse_v6(&buf[..n]) else { panic!("not a SYN") };
        assert_eq!((syn.from, syn.to, syn.seq, syn.flags), (from, dst, isn, TcpFlags::SYN));
        // The target answers.
        let reply = Segment { src: dst, dst: from, seq: 900, ack: isn.wrapping_add(1), flags: TcpFlags::SYN | TcpFlags::ACK, ..g.segment(&out[0], 0) };
        let n = build_segment(&mut buf, &them, &reply);
        let Rx::Tcp(r) = parse_v6(&buf[..n]) else { panic!("not a SYN-ACK") };
        out.clear();
        g.on_reply(1_000, &r, &mut out);
        assert_eq!(g.stats.legit_established, 1);
        let [ack @ Out::Ack { with_request: true, .. }] = out[..] else { panic!("{out:?}") };
        let n = build_segment(&mut buf, &us, &g.segment(&ack, 2));
        let Rx::Tcp(a) = parse_v6(&buf[..n]) else { panic!("not an ACK") };
        assert_eq!((a.seq, a.ack, a.payload_len, a.flags), (isn.wrapping_add(1), 901, 18, TcpFlags::ACK | TcpFlags::PSH));
        out.clear();
        let response = Reply { to: from, from: dst, seq: 901, ack: isn.wrapping_add(19), flags: TcpFlags::ACK | TcpFlags::PSH, payload_len: 10, options: &[] };
        g.on_reply(2_000, &response, &mut out);
        assert_eq!(out, vec![Out::Rst { src: from, seq: isn.wrapping_add(19) }]);
        assert_eq!(g.stats.legit_responses, 1);
        assert!(g.finished());
        // A reply from another address is stray.
        let other: SocketAddrV6 = "[2001:2::2]:80".parse().unwrap();
        g.on_reply(3_000, &Reply { from: other, ..response }, &mut out);
        assert_eq!(g.stats.stray, 1);
    }
}
