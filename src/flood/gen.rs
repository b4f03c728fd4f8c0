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
//!   `concurrency` in flight.

use super::addr::SrcRange;
use super::packet::{linux_syn_options, Reply, Segment};
use crate::wire::tcp::TcpFlags;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::net::SocketAddrV4;

/// Flows tracked at once per kind; a flood flow still unanswered when its
/// slot is needed again counts as unanswered.
pub const MAX_TRACKED: u64 = 1 << 20;

/// Source tuples: addresses x ports, enumerated address-first so
/// consecutive flows spread over the addresses (and RSS queues).
#[derive(Clone, Copy, Debug)]
pub struct TupleSpace {
    pub src: SrcRange,
    pub ports: (u16, u16),
}

impl TupleSpace {
    pub fn len(&self) -> u64 {
        u64::from(self.src.len()) * (u64::from(self.ports.1 - self.ports.0) + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `idx`-th tuple (`idx < len`).
    pub fn tuple(&self, idx: u64) -> SocketAddrV4 {
        let n = u64::from(self.src.len().max(1));
        let addr = self.src.nth((idx % n) as u32);
        let port = self.ports.0.wrapping_add((idx / n) as u16);
        SocketAddrV4::new(addr, port)
    }

    pub fn index_of(&self, a: SocketAddrV4) -> Option<u64> {
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
    sent_ns: u64,
    state: State,
}

/// One kind of flow: its tuples and its bounded table of flows in flight.
struct Flows {
    space: TupleSpace,
    slots: Vec<Slot>,
    next_attempt: u64,
    salt: u32,
}

impl Flows {
    fn new(space: TupleSpace, salt: u32) -> Flows {
        let len = space.len().clamp(1, MAX_TRACKED) as usize;
        Flows { space, slots: vec![Slot { attempt: 0, sent_ns: 0, state: State::Free }; len], next_attempt: 0, salt }
    }

    fn slot_of(&self, idx: u64) -> usize {
        (idx % self.slots.len() as u64) as usize
    }

    /// Our ISN for a tuple: fixed per tuple so a reply can be checked.
    fn isn(&self, idx: u64) -> u32 {
        (idx as u32).wrapping_mul(0x9e37_79b1) ^ self.salt
    }

    /// The live slot for a reply to `to`, if any.
    fn find(&mut self, to: SocketAddrV4) -> Option<(u64, u32, &mut Slot)> {
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
    pub legit_timeouts: u64,
    /// Responses (data or FIN) to the request.
    pub legit_responses: u64,
    pub legit_response_timeouts: u64,
    /// Segments for none of our flows.
    pub stray: u64,
}

/// What the generator was asked to do.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub dst: SocketAddrV4,
    /// Flood tuples (None: no flood).
    pub flood: Option<TupleSpace>,
    /// Legitimate tuples (None: no handshakes).
    pub legit: Option<TupleSpace>,
    /// SYNs the flood may send in all (None: until stopped).
    pub flood_count: Option<u64>,
    /// Handshakes to attempt in all (None: until stopped).
    pub legit_count: Option<u64>,
    pub concurrency: u64,
    pub request: Vec<u8>,
    /// A SYN (and a request) unanswered this long fails.
    pub timeout_ns: u64,
    pub salt: u32,
}

/// One segment to send, before framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Syn { src: SocketAddrV4, isn: u32, tsval: u32 },
    /// The handshake's third segment, with the request if there is one.
    Ack { src: SocketAddrV4, seq: u32, ack: u32, tsval: u32, tsecr: u32, with_request: bool },
    Rst { src: SocketAddrV4, seq: u32 },
}

pub struct Generator {
    cfg: GenConfig,
    flood: Option<Flows>,
    legit: Option<Flows>,
    in_flight: u64,
    /// (deadline, attempt) of legitimate flows, in send order.
    deadlines: VecDeque<(u64, u64)>,
    pub stats: Stats,
    /// Flood SYN -> SYN-ACK, ns.
    pub flood_latency: Histogram<u64>,
    /// Legitimate SYN -> SYN-ACK (connect latency), ns.
    pub connect_latency: Histogram<u64>,
}

/// Our TSval: a microsecond clock, as a 1 MHz timestamp clock.
fn tsval(now_ns: u64) -> u32 {
    (now_ns / 1000) as u32
}

/// The handshake's third segment, answering the SYN-ACK `r`.
fn third_ack(src: SocketAddrV4, seq: u32, r: &Reply, now_ns: u64, with_request: bool) -> Out {
    Out::Ack { src, seq, ack: r.seq.wrapping_add(1), tsval: tsval(now_ns), tsecr: r.tsval.unwrap_or(0), with_request }
}

/// Our sequence number once the request is sent (where the RST goes).
fn after_request(isn: u32, request: &[u8]) -> u32 {
    isn.wrapping_add(1).wrapping_add(request.len() as u32)
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Generator {
        let flood = cfg.flood.map(|s| Flows::new(s, cfg.salt));
        let legit = cfg.legit.map(|s| Flows::new(s, cfg.salt ^ 0x5a5a_5a5a));
        Generator {
            cfg,
            flood,
            legit,
            in_flight: 0,
            deadlines: VecDeque::new(),
            stats: Stats::default(),
            flood_latency: crate::telemetry::latency::new_histogram(),
            connect_latency: crate::telemetry::latency::new_histogram(),
        }
    }

    pub fn config(&self) -> &GenConfig {
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
    pub fn flood_syns(&mut self, now_ns: u64, n: u64, out: &mut Vec<Out>) {
        let n = n.min(self.flood_left());
        let Some(f) = &mut self.flood else { return };
        let total = f.space.len();
        for _ in 0..n {
            let attempt = f.next_attempt;
            f.next_attempt += 1;
            let idx = attempt % total;
            let at = f.slot_of(idx);
            if f.slots[at].state == State::SynSent {
                self.stats.unanswered += 1;
            }
            f.slots[at] = Slot { attempt, sent_ns: now_ns, state: State::SynSent };
            out.push(Out::Syn { src: f.space.tuple(idx), isn: f.isn(idx), tsval: tsval(now_ns) });
            self.stats.syn_sent += 1;
        }
    }

    /// Start handshakes up to the concurrency limit (at most `max` now).
    pub fn open_connections(&mut self, now_ns: u64, max: u64, out: &mut Vec<Out>) {
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
            f.slots[at] = Slot { attempt, sent_ns: now_ns, state: State::SynSent };
            self.deadlines.push_back((now_ns + self.cfg.timeout_ns, attempt));
            self.in_flight += 1;
            self.stats.legit_attempts += 1;
            out.push(Out::Syn { src: f.space.tuple(idx), isn: f.isn(idx), tsval: tsval(now_ns) });
        }
    }

    /// A TCP segment from the target.
    pub fn on_reply(&mut self, now_ns: u64, r: &Reply, out: &mut Vec<Out>) {
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
    fn on_flood_reply(&mut self, now_ns: u64, r: &Reply) -> bool {
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
    fn on_legit_reply(&mut self, now_ns: u64, r: &Reply, out: &mut Vec<Out>) {
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
                    self.deadlines.push_back((now_ns + self.cfg.timeout_ns, slot.attempt));
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

    /// Fail legitimate flows whose deadline passed.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<Out>) {
        let Some(f) = &mut self.legit else { return };
        let total = f.space.len();
        while let Some(&(deadline, attempt)) = self.deadlines.front() {
            if deadline > now_ns {
                break;
            }
            self.deadlines.pop_front();
            let idx = attempt % total;
            let at = f.slot_of(idx);
            let (src, isn) = (f.space.tuple(idx), f.isn(idx));
            let slot = &mut f.slots[at];
            if slot.attempt != attempt {
                continue;
            }
            match slot.state {
                State::SynSent if now_ns >= slot.sent_ns + self.cfg.timeout_ns => {
                    self.stats.legit_timeouts += 1;
                    slot.state = State::Free;
                    self.in_flight -= 1;
                }
                State::AwaitResponse if now_ns >= slot.sent_ns + self.cfg.timeout_ns => {
                    self.stats.legit_response_timeouts += 1;
                    out.push(Out::Rst { src, seq: after_request(isn, &self.cfg.request) });
                    slot.state = State::Free;
                    self.in_flight -= 1;
                }
                _ => {}
            }
        }
    }

    /// At the end: flood SYNs still unanswered, and legitimate flows still
    /// open (failed as timeouts; RSTs for the established ones in `out`).
    pub fn finish(&mut self, out: &mut Vec<Out>) {
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
                    State::SynSent => self.stats.legit_timeouts += 1,
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
        self.deadlines.clear();
    }

    /// The segment to frame for `o`.
    pub fn segment(&self, o: &Out, ident: u16) -> Segment<'_> {
        let dst = self.cfg.dst;
        match *o {
            Out::Syn { src, isn, tsval } => Segment {
                src,
                dst,
                seq: isn,
                ack: 0,
                flags: TcpFlags::SYN,
                syn: Some(linux_syn_options(tsval)),
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
    use std::net::Ipv4Addr;

    const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);

    fn space(ports: (u16, u16)) -> TupleSpace {
        TupleSpace { src: SrcRange::parse("198.18.1.0/30").unwrap(), ports }
    }

    fn cfg() -> GenConfig {
        GenConfig {
            dst: DST,
            flood: None,
            legit: None,
            flood_count: None,
            legit_count: None,
            concurrency: 4,
            request: Vec::new(),
            timeout_ns: 1_000_000_000,
            salt: 77,
        }
    }

    /// What a listener answers to a SYN: a SYN-ACK acking ISN + 1.
    fn synack(o: &Out, server_isn: u32) -> Reply {
        let Out::Syn { src, isn, .. } = *o else { panic!("not a SYN: {o:?}") };
        Reply { to: src, from: DST, seq: server_isn, ack: isn.wrapping_add(1), flags: TcpFlags::SYN | TcpFlags::ACK, payload_len: 0, tsval: Some(9) }
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
        replies.push(Reply { flags: TcpFlags::RST | TcpFlags::ACK, ack: isn.wrapping_add(1), seq: 0, to: src, from: DST, payload_len: 0, tsval: None });
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
        let mut g = Generator::new(GenConfig { legit: Some(space((3000, 3099))), legit_count: Some(6), ..cfg() });
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
        g.on_reply(600, &Reply { to: src, from: DST, seq: 0, ack: isn.wrapping_add(1), flags: TcpFlags::RST | TcpFlags::ACK, payload_len: 0, tsval: None }, &mut out);
        assert_eq!(g.in_flight(), 2);
        out.clear();
        g.open_connections(700, u64::MAX, &mut out);
        assert_eq!(out.len(), 2, "refilled to 4, then the count (6) is reached");
        assert_eq!(g.legit_left(), 0);
        // The rest time out after 1 s.
        g.expire(999_999_999, &mut out);
        assert_eq!(g.in_flight(), 4);
        g.expire(1_000_000_700, &mut out);
        assert_eq!(g.in_flight(), 0);
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
        g.on_reply(20, &Reply { to: src, from: DST, seq: 501, ack: isn.wrapping_add(19), flags: TcpFlags::ACK | TcpFlags::PSH, payload_len: 100, tsval: None }, &mut out);
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
        assert_eq!((g.stats.unanswered, g.stats.legit_timeouts, g.in_flight()), (5, 3, 0));
    }
}
