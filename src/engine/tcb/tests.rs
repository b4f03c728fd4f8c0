//! Deterministic tests on a virtual clock: single-`Tcb` cases with crafted
//! segments, and a `Pair` of `Tcb`s wired back to back over a lossy,
//! reordering link (the shape of quinn-proto's tests/util.rs).

use super::*;

const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------
// Single-Tcb helpers

/// Server: iss 1000, irs 5000 (rcv_nxt 5001), timestamps (peer's last
/// TSval 100, our offset 0), SACK, window scale 7 both ways.
fn params(now: Instant) -> PassiveOpen<'static> {
    PassiveOpen {
        now,
        iss: 1000,
        irs: 5000,
        peer_mss: 1460,
        our_mss: 1460,
        snd_wscale: Some(7),
        rcv_wscale: 7,
        sack_ok: true,
        ts: Some((100, 0)),
        peer_window: 64 * 1024,
        initial_data: &[],
        syn_ack_pending: false,
        rtt_sample: None,
        rcv_buf_cap: 64 * 1024,
        // Autotuning off (at most rcv_buf_cap): the window stays what these cases expect.
        rcv_buf_max: 0,
        snd_buf_max: 0,
        snd_buf_cap: 64 * 1024,
        mem_room: u32::MAX,
        config: TcbConfig::default(),
    }
}

fn server() -> Tcb {
    Tcb::new_passive(params(Instant::from_secs(10)))
}

fn seg<'a>(seq: u32, ack: u32, flags: TcpFlags, payload: &'a [u8]) -> SegIn<'a> {
    SegIn {
        seq,
        ack: Some(ack),
        flags: flags | TcpFlags::ACK,
        window: 512,
        ts: Some((200, 10_000)),
        sack: &[],
        payload,
    }
}

type Sent = Vec<(SegOut, Vec<u8>)>;

fn collect(sent: &mut Sent) -> impl FnMut(SegOut, Payload<'_>) + '_ {
    move |s, p| {
        let mut v = p.0.to_vec();
        v.extend_from_slice(p.1);
        assert_eq!(v.len() as u32, s.payload_len);
        sent.push((s, v));
    }
}

fn input(t: &mut Tcb, now: Instant, s: &SegIn<'_>) -> (Events, Sent) {
    let mut sent = Vec::new();
    let ev = t.on_segment(now, s, &mut collect(&mut sent));
    (ev, sent)
}

#[test]
fn control_block_fits_in_208_bytes() {
    let size = std::mem::size_of::<Tcb>();
    println!("size_of::<Tcb>() = {size}");
    assert!(size <= 208, "Tcb is {size} bytes");
}

#[test]
fn new_passive_is_established_with_linux_defaults() {
    let t = server();
    assert_eq!(t.state(), State::Established);
    // MSS less the 12-byte timestamp option; IW10.
    assert_eq!(t.mss(), 1448);
    assert_eq!(t.cwnd(), 10 * 1448);
    assert_eq!(t.rto(), Duration::from_secs(1));
    assert_eq!(t.next_timeout(), None);
}

#[test]
fn tfo_data_is_readable_and_syn_ack_retransmitted() {
    let now = Instant::from_secs(1);
    let mut p = params(now);
    p.initial_data = b"GET / HTTP/1.0\r\n\r\n";
    p.syn_ack_pending = true;
    let mut t = Tcb::new_passive(p);
    assert!(t.take_events().contains(Events::READABLE));
    let mut buf = [0u8; 64];
    assert_eq!(t.read(&mut buf), Ok(18));
    assert_eq!(t.rcv_nxt(), 5001 + 18);
    // The SYN-ACK is retransmitted after the initial 1 s RTO.
    assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(1)));
    let mut sent = Vec::new();
    t.on_timeout(now + Duration::from_secs(1), &mut collect(&mut sent));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].0.flags.syn() && sent[0].0.seq == 1000 && sent[0].0.ack == 5001 + 18);
    // The final ACK completes it.
    let (_, _) = input(
        &mut t,
        now + Duration::from_secs(2),
        &seg(5019, 1001, TcpFlags::default(), &[]),
    );
    assert!(!t.syn_ack_pending());
    assert_eq!(t.snd_una(), 1001);
    assert_eq!(t.next_timeout(), None);
}

#[test]
fn rst_exact_resets_in_window_gets_challenge_ack() {
    let now = Instant::from_secs(10);
    let mut t = server();
    // Out of window: silently dropped.
    let (_, sent) = input(
        &mut t,
        now,
        &seg(5001 + 1_000_000, 1001, TcpFlags::RST, &[]),
    );
    assert!(sent.is_empty());
    // In window, not exact: challenge ACK, connection stays.
    let (ev, sent) = input(&mut t, now, &seg(5001 + 100, 1001, TcpFlags::RST, &[]));
    assert!(ev.is_empty());
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0.seq, sent[0].0.ack, sent[0].0.flags),
        (1001, 5001, TcpFlags::ACK)
    );
    assert_eq!(t.state(), State::Established);
    // SYN in a synchronized state: challenge ACK too (RFC 5961 4).
    let (_, sent) = input(&mut t, now, &seg(5001 + 7, 1001, TcpFlags::SYN, &[]));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.ack, 5001);
    assert_eq!(t.state(), State::Established);
    // Exact: reset.
    let (ev, sent) = input(&mut t, now, &seg(5001, 1001, TcpFlags::RST, &[]));
    assert!(sent.is_empty());
    assert!(ev.contains(Events::RESET) && ev.contains(Events::CLOSED));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.read(&mut [0u8; 4]), Err(Errno::Econnreset));
    assert_eq!(t.write(b"x"), Err(Errno::Econnreset));
}

#[test]
fn challenge_acks_are_rate_limited() {
    let now = Instant::from_secs(10);
    let mut p = params(now);
    p.config.challenge_ack_limit = 3;
    let mut t = Tcb::new_passive(p);
    let mut n = 0;
    for _ in 0..10 {
        n += input(&mut t, now, &seg(5001 + 100, 1001, TcpFlags::RST, &[]))
            .1
            .len();
    }
    assert_eq!(n, 3);
    // A second later the budget is back.
    let (_, sent) = input(
        &mut t,
        now + Duration::from_secs(1),
        &seg(5001 + 100, 1001, TcpFlags::RST, &[]),
    );
    assert_eq!(sent.len(), 1);
}

#[test]
fn paws_rejects_old_timestamp_with_dup_ack() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let mut s = seg(5001, 1001, TcpFlags::PSH, b"hello");
    s.ts = Some((300, 10_000));
    let (ev, _) = input(&mut t, now, &s);
    assert!(ev.contains(Events::READABLE));
    assert_eq!(t.rcv_nxt(), 5006);
    // TSval 250 < ts_recent 300: rejected, answered with a duplicate ACK.
    let mut old = seg(5006, 1001, TcpFlags::PSH, b"world");
    old.ts = Some((250, 10_000));
    let (ev, sent) = input(&mut t, now, &old);
    assert!(ev.is_empty());
    assert_eq!(t.rcv_nxt(), 5006);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.ack, sent[0].0.payload_len), (5006, 0));
    assert_eq!(sent[0].0.ts, Some((now.as_millis() as u32, 300)));
    // A RST is not subject to PAWS (RFC 7323 5.3 R1 says "non-RST").
    let mut rst = seg(5006, 1001, TcpFlags::RST, &[]);
    rst.ts = Some((1, 0));
    input(&mut t, now, &rst);
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn close_with_unread_data_sends_rst() {
    let now = Instant::from_secs(10);
    let mut t = server();
    input(&mut t, now, &seg(5001, 1001, TcpFlags::PSH, b"unread"));
    let mut sent = Vec::new();
    let ev = t.close(now, &mut collect(&mut sent));
    assert!(ev.contains(Events::CLOSED));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!((sent[0].0.seq, sent[0].0.ack), (1001, 5007));
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn abort_sends_rst() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let mut sent = Vec::new();
    assert!(t
        .abort(now, &mut collect(&mut sent))
        .contains(Events::CLOSED));
    assert!(sent[0].0.flags.rst());
}

#[test]
fn orphan_receiving_new_data_is_reset() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let mut sent = Vec::new();
    t.close(now, &mut collect(&mut sent));
    assert_eq!(t.state(), State::FinWait1);
    assert!(sent[0].0.flags.fin());
    let (ev, sent) = input(&mut t, now, &seg(5001, 1002, TcpFlags::PSH, b"late"));
    assert!(ev.contains(Events::CLOSED));
    assert!(sent[0].0.flags.rst());
}

#[test]
fn fin_and_ack_of_our_fin_together_go_straight_to_time_wait() {
    // The fourth close order: our FIN, then the peer's FIN carrying the ACK
    // of ours (FIN_WAIT_1 -> TIME_WAIT without FIN_WAIT_2 or CLOSING).
    let now = Instant::from_secs(10);
    let mut t = server();
    t.shutdown_write().unwrap();
    let mut sent = Vec::new();
    t.poll_transmit(now, &mut collect(&mut sent));
    assert_eq!(
        (sent[0].0.seq, sent[0].0.flags),
        (1001, TcpFlags::FIN | TcpFlags::ACK)
    );
    assert_eq!(t.write(b"x"), Err(Errno::Epipe));
    let (ev, sent) = input(&mut t, now + MS, &seg(5001, 1002, TcpFlags::FIN, &[]));
    assert!(ev.contains(Events::TIME_WAIT) && ev.contains(Events::PEER_CLOSED));
    assert_eq!(t.state(), State::TimeWait);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.ack, 5002);
    assert_eq!(t.read(&mut [0u8; 8]), Ok(0));
    // A retransmitted FIN in TIME_WAIT is ACKed again and restarts the timer.
    let later = now + Duration::from_secs(30);
    let (_, sent) = input(&mut t, later, &seg(5001, 1002, TcpFlags::FIN, &[]));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.ack, 5002);
    assert_eq!(t.next_timeout(), Some(later + Duration::from_secs(60)));
    let ev = t.on_timeout(later + Duration::from_secs(60), &mut |_, _| {});
    assert!(ev.contains(Events::CLOSED));
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let now = Instant::from_secs(10);
    let mut t = server();
    t.close(now, &mut |_, _| {});
    input(&mut t, now + MS, &seg(5001, 1002, TcpFlags::default(), &[]));
    assert_eq!(t.state(), State::FinWait2);
    assert_eq!(t.next_timeout(), Some(now + MS + Duration::from_secs(60)));
    assert!(t
        .on_timeout(now + Duration::from_secs(61), &mut |_, _| {})
        .contains(Events::CLOSED));
}

#[test]
fn out_of_window_pure_acks_are_answered_at_most_every_500ms() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let old = seg(4000, 1001, TcpFlags::default(), &[]);
    assert_eq!(input(&mut t, now, &old).1.len(), 1);
    assert_eq!(input(&mut t, now + 499 * MS, &old).1.len(), 0);
    assert_eq!(input(&mut t, now + 500 * MS, &old).1.len(), 1);
    // Segments with data are always answered (they are not ACK loops).
    assert_eq!(
        input(
            &mut t,
            now + 501 * MS,
            &seg(4000, 1001, TcpFlags::PSH, b"x")
        )
        .1
        .len(),
        1
    );
}

#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let (ev, sent) = input(&mut t, now, &seg(5001, 9999, TcpFlags::PSH, b"data"));
    assert!(ev.is_empty());
    assert_eq!(t.rcv_nxt(), 5001);
    assert_eq!(sent.len(), 1);
}

#[test]
fn out_of_order_gets_immediate_dup_ack_with_sack() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let (_, sent) = input(
        &mut t,
        now,
        &seg(5001 + 100, 1001, TcpFlags::PSH, &[7u8; 50]),
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.ack, 5001);
    assert_eq!(sent[0].0.sack_blocks(), &[(5101, 5151)]);
    assert_eq!(t.ooo_bytes(), 50);
    let (ev, sent) = input(&mut t, now, &seg(5001, 1001, TcpFlags::PSH, &[1u8; 100]));
    assert!(ev.contains(Events::READABLE));
    assert_eq!(sent[0].0.ack, 5151);
    assert!(sent[0].0.sack_blocks().is_empty());
    let mut buf = [0u8; 200];
    assert_eq!(t.read(&mut buf), Ok(150));
    assert_eq!(&buf[95..105], &[1, 1, 1, 1, 1, 7, 7, 7, 7, 7]);
}

#[test]
fn receive_window_never_shrinks_and_avoids_silly_windows() {
    let now = Instant::from_secs(10);
    let mut p = params(now);
    p.rcv_buf_cap = 4096;
    p.snd_wscale = None;
    let mut t = Tcb::new_passive(p);
    let mut edge = 5001 + 4096;
    let mut seq = 5001;
    // Fill the buffer without reading: the right edge stays put.
    while seq < 5001 + 4096 {
        let (_, sent) = input(
            &mut t,
            now,
            &seg(
                seq,
                1001,
                TcpFlags::PSH,
                &[0u8; 1000][..(5001 + 4096 - seq).min(1000) as usize],
            ),
        );
        seq = t.rcv_nxt();
        for (s, _) in &sent {
            let e = s.ack + s.window as u32;
            assert!(!before(e, edge));
            edge = e;
        }
    }
    let mut sent = Vec::new();
    t.poll_transmit(now, &mut collect(&mut sent));
    // Reading 100 bytes is a silly increase: no ACK, window stays closed.
    t.read(&mut [0u8; 100]).unwrap();
    t.poll_transmit(now, &mut collect(&mut sent));
    assert!(sent.is_empty());
    // Reading half the buffer opens it: an immediate window update.
    t.read(&mut [0u8; 2000]).unwrap();
    t.poll_transmit(now, &mut collect(&mut sent));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.window, 2100);
}

// ---------------------------------------------------------------------------
// The Pair harness

#[derive(Clone, Debug)]
struct Pkt {
    seg: SegOut,
    payload: Vec<u8>,
}

impl Pkt {
    fn seg_in(&self) -> SegIn<'_> {
        SegIn {
            seq: self.seg.seq,
            ack: self
                .seg
                .flags
                .contains(TcpFlags::ACK)
                .then_some(self.seg.ack),
            flags: self.seg.flags,
            window: self.seg.window,
            ts: self.seg.ts,
            sack: self.seg.sack_blocks(),
            payload: &self.payload,
        }
    }
}

type LinkHook = Box<dyn FnMut(usize, &Pkt) -> Option<Duration>>;

const SERVER: usize = 0;
const CLIENT: usize = 1;

struct Side {
    tcb: Tcb,
    to_write: Vec<u8>,
    written: usize,
    shutdown_after_write: bool,
    reading: bool,
    received: Vec<u8>,
    events: Events,
    /// Every segment this side sent, with its time.
    log: Vec<(Instant, SegOut)>,
}

struct Pair {
    now: Instant,
    sides: [Side; 2],
    latency: Duration,
    /// (delivery time, order, destination, packet)
    wire: Vec<(Instant, u64, usize, Pkt)>,
    order: u64,
    /// Per packet from a side: `None` drops it, `Some(extra)` delays it.
    link: LinkHook,
}

impl Pair {
    fn new(rcv_cap: u32, snd_cap: u32) -> Pair {
        Pair::tuned(rcv_cap, 0, snd_cap)
    }

    /// Both sides with receive buffers of `rcv_cap` that autotuning may
    /// grow to `rcv_max` (at most `rcv_cap`: off).
    fn tuned(rcv_cap: u32, rcv_max: u32, snd_cap: u32) -> Pair {
        Pair::build(rcv_cap, rcv_max, snd_cap, true)
    }

    /// `sack`: SACK negotiated (both send and use SACK blocks); without
    /// it, NewReno alone recovers.
    fn build(rcv_cap: u32, rcv_max: u32, snd_cap: u32, sack: bool) -> Pair {
        Pair::build_full(rcv_cap, rcv_max, snd_cap, 0, sack)
    }

    /// With send buffers of `snd_cap` that autotuning may grow to `snd_max`.
    fn build_full(rcv_cap: u32, rcv_max: u32, snd_cap: u32, snd_max: u32, sack: bool) -> Pair {
        let now = Instant::from_secs(100);
        let mk = |iss, irs, off| {
            Tcb::new_passive(PassiveOpen {
                now,
                iss,
                irs,
                peer_mss: 1460,
                our_mss: 1460,
                snd_wscale: Some(7),
                rcv_wscale: 7,
                sack_ok: sack,
                ts: Some((off + 7, off)),
                // The peer's SYN-ACK / SYN window: its buffer, unscaled.
                peer_window: rcv_cap.min(65535),
                initial_data: &[],
                syn_ack_pending: false,
                rtt_sample: None,
                rcv_buf_cap: rcv_cap,
                rcv_buf_max: rcv_max,
                snd_buf_max: snd_max,
                snd_buf_cap: snd_cap,
                mem_room: u32::MAX,
                config: TcbConfig::default(),
            })
        };
        let side = |tcb| Side {
            tcb,
            to_write: Vec::new(),
            written: 0,
            shutdown_after_write: false,
            reading: true,
            received: Vec::new(),
            events: Events::default(),
            log: Vec::new(),
        };
        // Mirrored: each one's ts_recent is the other's clock.
        let server = mk(0xffff_f000, 77_000, 0x1000_0000);
        let client = mk(77_000, 0xffff_f000, 0x1000_0000);
        Pair {
            now,
            sides: [side(server), side(client)],
            latency: Duration::from_millis(10),
            wire: Vec::new(),
            order: 0,
            link: Box::new(|_, _| Some(Duration::ZERO)),
        }
    }

    fn queue(&mut self, from: usize, pkts: Vec<Pkt>) {
        for p in pkts {
            self.sides[from].log.push((self.now, p.seg));
            if let Some(extra) = (self.link)(from, &p) {
                self.order += 1;
                self.wire
                    .push((self.now + self.latency + extra, self.order, 1 - from, p));
            }
        }
    }

    fn sink(buf: &mut Vec<Pkt>) -> impl FnMut(SegOut, Payload<'_>) + '_ {
        move |seg, p| {
            let mut payload = p.0.to_vec();
            payload.extend_from_slice(p.1);
            buf.push(Pkt { seg, payload });
        }
    }

    fn pump_app(&mut self, i: usize) {
        let now = self.now;
        let s = &mut self.sides[i];
        while s.written < s.to_write.len() {
            match s.tcb.write(&s.to_write[s.written..]) {
                Ok(n) => s.written += n,
                Err(_) => break,
            }
        }
        if s.shutdown_after_write && s.written == s.to_write.len() {
            s.shutdown_after_write = false;
            let _ = s.tcb.shutdown_write();
        }
        if s.reading {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = s.tcb.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.received.extend_from_slice(&buf[..n]);
            }
        }
        let mut out = Vec::new();
        s.tcb.poll_transmit(now, &mut Self::sink(&mut out));
        s.events.0 |= s.tcb.take_events().0;
        self.queue(i, out);
    }

    /// Advance to the next packet delivery or timer; false when idle.
    fn step(&mut self, deadline: Instant) -> bool {
        self.pump_app(SERVER);
        self.pump_app(CLIENT);
        let next_pkt = self.wire.iter().map(|w| w.0).min();
        let next_timer = self.sides.iter().filter_map(|s| s.tcb.next_timeout()).min();
        let Some(next) = [next_pkt, next_timer].into_iter().flatten().min() else {
            return false;
        };
        if next > deadline {
            self.now = deadline;
            return false;
        }
        self.now = self.now.max(next);
        self.wire.sort_by_key(|w| (w.0, w.1));
        while self.wire.first().is_some_and(|w| w.0 <= self.now) {
            let (_, _, to, pkt) = self.wire.remove(0);
            let mut out = Vec::new();
            let ev =
                self.sides[to]
                    .tcb
                    .on_segment(self.now, &pkt.seg_in(), &mut Self::sink(&mut out));
            self.sides[to].events.0 |= ev.0;
            self.queue(to, out);
            self.pump_app(to);
        }
        for i in 0..2 {
            if self.sides[i]
                .tcb
                .next_timeout()
                .is_some_and(|t| t <= self.now)
            {
                let mut out = Vec::new();
                let now = self.now;
                let ev = self.sides[i].tcb.on_timeout(now, &mut Self::sink(&mut out));
                self.sides[i].events.0 |= ev.0;
                self.queue(i, out);
            }
        }
        true
    }

    fn drive_until(&mut self, deadline: Instant) {
        let mut steps = 0;
        while self.now < deadline && self.step(deadline) {
            steps += 1;
            assert!(steps < 1_000_000, "no progress");
        }
    }

    fn drive(&mut self) {
        self.drive_until(self.now + Duration::from_secs(3600));
    }

    fn write(&mut self, i: usize, data: &[u8]) {
        self.sides[i].to_write.extend_from_slice(data);
    }

    /// Data segments (with payload) `from` sent at `seq`.
    fn sends_of(&self, from: usize, seq: u32) -> Vec<Instant> {
        self.sides[from]
            .log
            .iter()
            .filter(|(_, s)| s.seq == seq && s.payload_len > 0)
            .map(|(t, _)| *t)
            .collect()
    }
}

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

#[test]
fn bulk_transfer_one_megabyte_both_ways() {
    let mut p = Pair::new(256 * 1024, 128 * 1024);
    let a = pattern(1 << 20, 1);
    let b = pattern(1 << 20, 2);
    p.write(SERVER, &a);
    p.write(CLIENT, &b);
    p.drive();
    assert!(
        p.sides[CLIENT].received == a,
        "server->client data corrupted"
    );
    assert!(
        p.sides[SERVER].received == b,
        "client->server data corrupted"
    );
    for s in &p.sides {
        assert_eq!(s.tcb.snd_una(), s.tcb.snd_max());
        assert_eq!(s.tcb.send_queue_len(), 0);
        assert_eq!(s.tcb.state(), State::Established);
        // The sequence space wrapped on the server side (iss 0xffff_f000).
        assert!(s.tcb.cwnd() > 10 * 1448);
    }
    assert!(p.sides[SERVER].tcb.snd_una() < 0x1000_0000);
    // Everything was read and acknowledged: no ring is left on either side.
    for s in &p.sides {
        assert_eq!(s.tcb.mem(), 0);
    }
    // RTT from timestamps: 20 ms round trip.
    let srtt = p.sides[SERVER].tcb.srtt();
    assert!(
        srtt >= Duration::from_millis(20) && srtt < Duration::from_millis(30),
        "{srtt:?}"
    );
}

#[test]
fn lost_segment_is_fast_retransmitted() {
    let mut p = Pair::new(256 * 1024, 256 * 1024);
    let iss = 0xffff_f000u32;
    let lost_seq = iss.wrapping_add(1 + 4 * 1448);
    let mut dropped = false;
    p.link = Box::new(move |from, pkt| {
        if from == SERVER && pkt.seg.seq == lost_seq && pkt.seg.payload_len > 0 && !dropped {
            dropped = true;
            return None;
        }
        Some(Duration::ZERO)
    });
    let data = pattern(100 * 1448, 3);
    p.write(SERVER, &data);
    p.drive();
    assert!(p.sides[CLIENT].received == data);
    let sends = p.sends_of(SERVER, lost_seq);
    assert_eq!(sends.len(), 2, "{sends:?}");
    // Retransmitted after three duplicate ACKs, one RTT later, well before the 1 s RTO.
    assert!(
        sends[1] - sends[0] < Duration::from_millis(50),
        "{:?}",
        sends[1] - sends[0]
    );
    // The client sent duplicate ACKs carrying a SACK block.
    assert!(p.sides[CLIENT]
        .log
        .iter()
        .any(|(_, s)| s.ack == lost_seq && s.sack_len > 0));
    // NewReno halved the window.
    assert!(p.sides[SERVER].tcb.ssthresh() < u32::MAX);
}

#[test]
fn lossy_reordering_link_delivers_intact() {
    for seed in 1..=24u64 {
        let mut p = Pair::new(64 * 1024, 64 * 1024);
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        p.link = Box::new(move |_, _| {
            // xorshift: ~5% loss, ~10% delayed by up to 15 ms.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 100 {
                0..=4 => None,
                5..=14 => Some(Duration::from_millis(x % 16)),
                _ => Some(Duration::ZERO),
            }
        });
        let a = pattern(300 * 1024, 9);
        let b = pattern(200 * 1024, 10);
        p.write(SERVER, &a);
        p.write(CLIENT, &b);
        p.sides[SERVER].shutdown_after_write = true;
        p.sides[CLIENT].shutdown_after_write = true;
        p.drive();
        assert!(p.sides[CLIENT].received == a, "seed {seed}: server->client");
        assert!(p.sides[SERVER].received == b, "seed {seed}: client->server");
        for s in &p.sides {
            assert_eq!(s.tcb.state(), State::Closed, "seed {seed}");
            assert_eq!(s.tcb.error(), None, "seed {seed}");
        }
    }
}

#[test]
fn reset_connection_still_returns_queued_data() {
    let now = Instant::from_secs(10);
    let mut t = server();
    input(&mut t, now, &seg(5001, 1001, TcpFlags::PSH, b"last words"));
    input(&mut t, now, &seg(5011, 1001, TcpFlags::RST, &[]));
    assert_eq!(t.state(), State::Closed);
    let mut buf = [0u8; 32];
    assert_eq!(t.read(&mut buf), Ok(10));
    assert_eq!(t.read(&mut buf), Err(Errno::Econnreset));
}

#[test]
fn lost_tail_is_retransmitted_on_rto() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    let iss = 0xffff_f000u32;
    let tail_seq = iss.wrapping_add(1 + 2 * 1448);
    let mut dropped = false;
    p.link = Box::new(move |from, pkt| {
        if from == SERVER && pkt.seg.seq == tail_seq && !dropped {
            dropped = true;
            return None;
        }
        Some(Duration::ZERO)
    });
    let data = pattern(2 * 1448 + 100, 4);
    p.write(SERVER, &data);
    p.drive();
    assert!(p.sides[CLIENT].received == data);
    let sends = p.sends_of(SERVER, tail_seq);
    assert_eq!(sends.len(), 2);
    // Nagle held the short tail until the first ACK (20 ms), which also
    // gave an RTT sample: RTO = 20 ms + max(200 ms, 4 * 10 ms).
    assert_eq!(sends[1] - sends[0], Duration::from_millis(220));
}

#[test]
fn reordering_uses_ooo_queue_and_dup_acks() {
    let mut p = Pair::new(256 * 1024, 256 * 1024);
    let iss = 0xffff_f000u32;
    let late_seq = iss.wrapping_add(1 + 1448);
    let mut delayed = false;
    p.link = Box::new(move |from, pkt| {
        if from == SERVER && pkt.seg.seq == late_seq && !delayed {
            delayed = true;
            return Some(Duration::from_millis(3));
        }
        Some(Duration::ZERO)
    });
    let data = pattern(4 * 1448, 5);
    p.write(SERVER, &data);
    p.drive();
    assert!(p.sides[CLIENT].received == data);
    // Two later segments overtook it: two immediate duplicate ACKs with SACK,
    // not enough for a fast retransmit (RFC 6675 IsLost wants more than
    // 2 segments SACKed above it).
    let dups = p.sides[CLIENT]
        .log
        .iter()
        .filter(|(_, s)| s.ack == late_seq && s.sack_len > 0)
        .count();
    assert!(dups >= 2, "{dups}");
    assert_eq!(p.sends_of(SERVER, late_seq).len(), 1);
}

#[test]
fn zero_window_is_probed_then_reopened() {
    let mut p = Pair::new(8 * 1024, 64 * 1024);
    p.sides[CLIENT].reading = false;
    let data = pattern(40 * 1024, 6);
    p.write(SERVER, &data);
    p.drive_until(p.now + Duration::from_secs(5));
    // Full: the buffer plus at most the window-rounding slack (2^7 - 1).
    let queued = p.sides[CLIENT].tcb.recv_queue_len();
    assert!((8 * 1024..8 * 1024 + 128).contains(&queued), "{queued}");
    // Probes: bare ACKs at SND.UNA - 1, with growing gaps.
    let una = p.sides[SERVER].tcb.snd_una();
    let probes: Vec<Instant> = p.sides[SERVER]
        .log
        .iter()
        .filter(|(_, s)| s.seq == una.wrapping_sub(1) && s.payload_len == 0)
        .map(|(t, _)| *t)
        .collect();
    assert!(probes.len() >= 2, "{probes:?}");
    assert!(probes[2] - probes[1] > probes[1] - probes[0]);
    assert_eq!(p.sides[SERVER].tcb.state(), State::Established);
    p.sides[CLIENT].reading = true;
    p.drive();
    assert!(p.sides[CLIENT].received == data);
}

#[test]
fn delayed_ack_is_40ms_after_quickack_mode() {
    let mut p = Pair::new(256 * 1024, 256 * 1024);
    // Leave quick-ACK mode with a bulk transfer first.
    p.write(SERVER, &pattern(64 * 1448, 7));
    p.drive();
    let log_start = p.sides[CLIENT].log.len();
    let t0 = p.now;
    p.write(SERVER, b"ping");
    p.drive();
    let acks = &p.sides[CLIENT].log[log_start..];
    assert_eq!(acks.len(), 1);
    // Sent at t0, arrives at t0 + 10 ms, ACKed 40 ms later.
    assert_eq!(acks[0].0 - t0, Duration::from_millis(50));
    // During the bulk phase the receiver ACKed about every second segment.
    let data_segs = p.sides[SERVER]
        .log
        .iter()
        .filter(|(_, s)| s.payload_len > 0)
        .count();
    let client_acks = log_start;
    assert!(
        client_acks * 2 <= data_segs + 20,
        "{client_acks} ACKs for {data_segs} segments"
    );
    assert!(
        client_acks * 3 >= data_segs,
        "{client_acks} ACKs for {data_segs} segments"
    );
}

#[test]
fn nagle_holds_small_segments_until_acked() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    p.write(SERVER, b"a");
    p.pump_app(SERVER);
    p.write(SERVER, b"b");
    p.pump_app(SERVER);
    p.write(SERVER, b"c");
    p.pump_app(SERVER);
    assert_eq!(p.sides[SERVER].log.len(), 1);
    p.drive();
    assert_eq!(p.sides[CLIENT].received, b"abc");
    let data_segs = p.sides[SERVER]
        .log
        .iter()
        .filter(|(_, s)| s.payload_len > 0)
        .count();
    assert_eq!(data_segs, 2);

    let mut q = Pair::new(64 * 1024, 64 * 1024);
    q.sides[SERVER].tcb.set_nodelay(true);
    for b in [b"a", b"b", b"c"] {
        q.write(SERVER, b);
        q.pump_app(SERVER);
    }
    assert_eq!(q.sides[SERVER].log.len(), 3);
}

#[test]
fn passive_close() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    p.write(CLIENT, b"request");
    p.sides[CLIENT].shutdown_after_write = true;
    p.drive_until(p.now + Duration::from_secs(1));
    assert_eq!(p.sides[SERVER].tcb.state(), State::CloseWait);
    assert!(p.sides[SERVER].events.contains(Events::PEER_CLOSED));
    assert_eq!(p.sides[CLIENT].tcb.state(), State::FinWait2);
    p.write(SERVER, b"response");
    p.sides[SERVER].shutdown_after_write = true;
    p.drive_until(p.now + Duration::from_secs(1));
    assert_eq!(p.sides[SERVER].tcb.state(), State::Closed);
    assert!(p.sides[SERVER].events.contains(Events::CLOSED));
    assert_eq!(p.sides[CLIENT].tcb.state(), State::TimeWait);
    assert_eq!(p.sides[CLIENT].received, b"response");
    assert_eq!(p.sides[SERVER].received, b"request");
    let tw_start = p.now;
    p.drive();
    assert_eq!(p.sides[CLIENT].tcb.state(), State::Closed);
    assert!(p.now - tw_start <= Duration::from_secs(60));
    assert!(p.now - tw_start > Duration::from_secs(59));
}

#[test]
fn active_close_goes_through_time_wait() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    p.write(SERVER, b"bye");
    p.sides[SERVER].shutdown_after_write = true;
    p.drive_until(p.now + Duration::from_secs(1));
    assert_eq!(p.sides[SERVER].tcb.state(), State::FinWait2);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::CloseWait);
    assert_eq!(p.sides[CLIENT].tcb.read(&mut [0u8; 4]), Ok(0));
    p.sides[CLIENT].shutdown_after_write = true;
    p.drive_until(p.now + Duration::from_secs(1));
    assert_eq!(p.sides[SERVER].tcb.state(), State::TimeWait);
    assert!(p.sides[SERVER].events.contains(Events::TIME_WAIT));
    assert_eq!(p.sides[CLIENT].tcb.state(), State::Closed);
    p.drive();
    assert_eq!(p.sides[SERVER].tcb.state(), State::Closed);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    p.sides[SERVER].shutdown_after_write = true;
    p.sides[CLIENT].shutdown_after_write = true;
    p.pump_app(SERVER);
    p.pump_app(CLIENT);
    assert_eq!(p.sides[SERVER].tcb.state(), State::FinWait1);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::FinWait1);
    p.drive_until(p.now + Duration::from_millis(15));
    assert_eq!(p.sides[SERVER].tcb.state(), State::Closing);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::Closing);
    p.drive_until(p.now + Duration::from_secs(1));
    assert_eq!(p.sides[SERVER].tcb.state(), State::TimeWait);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::TimeWait);
    p.drive();
    assert_eq!(p.sides[SERVER].tcb.state(), State::Closed);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::Closed);
}

#[test]
fn lost_fin_is_retransmitted() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    let mut dropped = false;
    p.link = Box::new(move |from, pkt| {
        if from == SERVER && pkt.seg.flags.fin() && !dropped {
            dropped = true;
            return None;
        }
        Some(Duration::ZERO)
    });
    p.sides[SERVER].shutdown_after_write = true;
    p.drive_until(p.now + Duration::from_secs(2));
    assert_eq!(p.sides[SERVER].tcb.state(), State::FinWait2);
    assert_eq!(p.sides[CLIENT].tcb.state(), State::CloseWait);
}

#[test]
fn retries_exhausted_resets_with_etimedout() {
    let mut p = Pair::new(64 * 1024, 64 * 1024);
    p.link = Box::new(|from, _| {
        if from == SERVER {
            None
        } else {
            Some(Duration::ZERO)
        }
    });
    p.write(SERVER, b"into the void");
    let t0 = p.now;
    p.drive();
    let s = &p.sides[SERVER];
    assert_eq!(s.tcb.state(), State::Closed);
    assert_eq!(s.tcb.error(), Some(Errno::Etimedout));
    assert!(s.events.contains(Events::RESET));
    // Linux gives up by time (retransmits_timed_out): 924.6 s after the
    // first retransmission, what 15 would take from a 200 ms RTO. With no
    // RTT sample the RTO starts at 1 s: retransmissions at 1, 3, 7, ...,
    // 127 s, then every 120 s; at 847 s (846 s in) one more, and at 967 s
    // (966 s >= 924.6 s) it is over: 1 original + 13 retransmissions.
    let sends: Vec<Instant> = s
        .log
        .iter()
        .filter(|(_, x)| x.payload_len > 0)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(sends.len(), 14);
    assert_eq!(sends[1] - sends[0], Duration::from_secs(1));
    assert_eq!(sends[2] - sends[1], Duration::from_secs(2));
    assert_eq!(sends[8] - sends[7], Duration::from_secs(120));
    assert_eq!(p.now - t0, Duration::from_secs(967));
    assert_eq!(p.sides[SERVER].tcb.write(b"x"), Err(Errno::Etimedout));
}

#[test]
fn at_the_rto_floor_the_time_rule_allows_one_retransmission_more() {
    // As the live kernel on a veth with tcp_retries2=3: RTO 216 ms, three
    // retransmissions, ETIMEDOUT at the fourth expiry (2.8 s + 14 * 16 ms
    // after the first >= 3.0 s). At exactly 200 ms the fourth expiry is
    // 2.8 s in, short of 3.0 s: one retransmission more, then the end.
    for (rtt_ms, retransmissions) in [(16u64, 3usize), (0, 4)] {
        let now = Instant::from_secs(10);
        let mut pp = params(now);
        pp.config.retries2 = 3;
        let mut t = Tcb::new_passive(pp);
        // An RTO of 200 ms + rtt: SRTT = rtt, RTTVAR = rtt / 2 (4 * RTTVAR
        // is below the 200 ms floor).
        t.rtt.on_sample(Duration::from_micros(if rtt_ms == 0 { 1 } else { rtt_ms * 1000 }));
        t.write(b"into the void").unwrap();
        let mut sent = Vec::new();
        t.poll_transmit(now, &mut collect(&mut sent));
        assert_eq!(sent.len(), 1);
        let mut retx = 0;
        while t.state() != State::Closed {
            let now = t.next_timeout().expect("a timer while data is unacknowledged");
            let mut sent = Vec::new();
            t.on_timeout(now, &mut collect(&mut sent));
            retx += sent.iter().filter(|(x, _)| x.payload_len > 0).count();
            assert!(retx <= 10, "never gave up");
        }
        assert_eq!(retx, retransmissions, "rtt {rtt_ms} ms");
        assert_eq!(t.error(), Some(Errno::Etimedout));
    }
}

#[test]
fn an_old_echoed_timestamp_is_not_a_round_trip() {
    // A peer may echo an old TS.Recent (RFC 7323 updates it only for a
    // segment at or below Last.ACK.sent). Read as an RTT, a 10 s old echo
    // once grew SRTT to seconds; the timed segment gives the real 20 ms.
    let mut t = server();
    let t0 = Instant::from_secs(10);
    t.write(&[7u8; 1000]).unwrap();
    let mut sent = Vec::new();
    t.poll_transmit(t0, &mut collect(&mut sent));
    assert_eq!(sent.len(), 1);
    let mut ack = seg(5001, 1001 + 1000, TcpFlags::empty(), &[]);
    ack.ts = Some((300, 1));
    input(&mut t, t0 + Duration::from_millis(20), &ack);
    assert_eq!(t.snd_una(), 2001);
    assert_eq!(t.srtt(), Duration::from_millis(20));
}

#[test]
fn a_vanished_peer_is_given_up_by_time_however_large_the_rto() {
    // SRTT of 20 s (a slow path, or a bad sample): the RTO is 60 s and
    // backs off to 120 s, but the clock from the first retransmission
    // stops it as Linux does: 25.4 s for tcp_retries2=6.
    let now = Instant::from_secs(10);
    let mut pp = params(now);
    pp.config.retries2 = 6;
    let mut t = Tcb::new_passive(pp);
    t.rtt.on_sample(Duration::from_secs(20));
    assert_eq!(t.rto(), Duration::from_secs(60));
    t.write(b"gone").unwrap();
    t.poll_transmit(now, &mut collect(&mut Vec::new()));
    let mut at = now;
    let mut retx = 0;
    while t.state() != State::Closed {
        at = t.next_timeout().unwrap();
        let mut sent = Vec::new();
        t.on_timeout(at, &mut collect(&mut sent));
        retx += sent.iter().filter(|(x, _)| x.payload_len > 0).count();
    }
    // One retransmission at 60 s; at 180 s, 120 s in, it is over
    // (counting six would have taken 60 + 120 * 6 = 780 s).
    assert_eq!(retx, 1);
    assert_eq!(at - now, Duration::from_secs(180));
}

#[test]
fn unanswered_zero_window_probes_give_up() {
    let mut p = Pair::new(4 * 1024, 64 * 1024);
    p.sides[CLIENT].reading = false;
    p.write(SERVER, &pattern(16 * 1024, 8));
    p.drive_until(p.now + Duration::from_secs(1));
    // The client vanishes.
    p.link = Box::new(|from, _| {
        if from == CLIENT {
            None
        } else {
            Some(Duration::ZERO)
        }
    });
    p.drive_until(p.now + Duration::from_secs(100_000));
    assert_eq!(p.sides[SERVER].tcb.state(), State::Closed);
    assert_eq!(p.sides[SERVER].tcb.error(), Some(Errno::Etimedout));
}

// ---------------------------------------------------------------------------
// No panics on arbitrary input

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Seg {
            seq_off: i32,
            ack_off: i32,
            flags: u8,
            window: u16,
            ts: Option<(u32, u32)>,
            len: u16,
            sack: Vec<(u32, u32)>,
        },
        Write(u16),
        Read(u16),
        Shutdown,
        Close,
        Abort,
        Advance(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (
                prop_oneof![-70_000i32..70_000, any::<i32>()],
                prop_oneof![-70_000i32..70_000, any::<i32>()],
                any::<u8>(),
                any::<u16>(),
                proptest::option::of((prop_oneof![90u32..400, any::<u32>()], any::<u32>())),
                0u16..3000,
                // Below 2^20: a block relative to SND.UNA (often valid), else as is.
                proptest::collection::vec((prop_oneof![0u32..40_000, any::<u32>()], any::<u32>()), 0..4),
            )
                .prop_map(|(seq_off, ack_off, flags, window, ts, len, sack)| Op::Seg { seq_off, ack_off, flags, window, ts, len, sack }),
            2 => (0u16..5000).prop_map(Op::Write),
            1 => (0u16..5000).prop_map(Op::Read),
            1 => (0u32..200_000).prop_map(Op::Advance),
            1 => Just(Op::Shutdown),
            1 => Just(Op::Close),
            1 => Just(Op::Abort),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn arbitrary_segments_never_break_invariants(
            ops in proptest::collection::vec(op(), 1..80),
            small in any::<bool>(),
            ts_on in any::<bool>(),
            tuned in any::<bool>(),
        ) {
            let mut now = Instant::from_secs(10);
            let mut p = params(now);
            if tuned {
                p.rcv_buf_max = 1 << 20;
            }
            if small {
                p.rcv_buf_cap = 3000;
                p.snd_buf_cap = 2000;
            }
            if !ts_on {
                p.ts = None;
            }
            let mut t = Tcb::new_passive(p);
            let payload = vec![0x5au8; 5000];
            let mut edge: Option<u32> = None;
            let mut check = |s: SegOut, pl: Payload<'_>| {
                assert_eq!(pl.len() as u32, s.payload_len);
                assert!(s.payload_len <= 1460);
                if !s.flags.rst() && !s.flags.syn() {
                    let e = s.ack.wrapping_add((s.window as u32) << 7);
                    if let Some(old) = edge {
                        // Only the rounding to the scale unit (2^7) may take
                        // back bytes, when the ring has no room for them.
                        assert!(!before(e.wrapping_add(127), old), "window right edge shrank");
                    }
                    edge = Some(e);
                }
            };
            for op in ops {
                match op {
                    Op::Seg { seq_off, ack_off, flags, window, ts, len, sack } => {
                        let una = t.snd_una();
                        let sack: Vec<(u32, u32)> = sack
                            .iter()
                            .map(|&(a, b)| if a < 1 << 20 { (una.wrapping_add(a), una.wrapping_add(a + b % 20_000)) } else { (a, b) })
                            .collect();
                        let seg = SegIn {
                            seq: t.rcv_nxt().wrapping_add(seq_off as u32),
                            ack: (flags & 0x10 != 0).then(|| t.snd_una().wrapping_add(ack_off as u32)),
                            flags: TcpFlags::from_bits_truncate(u16::from(flags)),
                            window,
                            ts,
                            sack: &sack,
                            payload: &payload[..len as usize],
                        };
                        t.on_segment(now, &seg, &mut check);
                    }
                    Op::Write(n) => { let _ = t.write(&payload[..n as usize]); }
                    Op::Read(n) => { let _ = t.read(&mut vec![0u8; n as usize]); }
                    Op::Shutdown => { let _ = t.shutdown_write(); }
                    Op::Close => { t.close(now, &mut check); }
                    Op::Abort => { t.abort(now, &mut check); }
                    Op::Advance(ms) => {
                        now += Duration::from_millis(ms as u64);
                        if t.next_timeout().is_some_and(|d| d <= now) {
                            t.on_timeout(now, &mut check);
                        }
                    }
                }
                t.poll_transmit(now, &mut check);
                prop_assert!(!after(t.snd_una(), t.snd_nxt()));
                prop_assert!(!after(t.snd_nxt(), t.snd_max()));
                prop_assert!(t.send_queue_len() <= t.send_buf_cap());
                prop_assert!(t.recv_queue_len() + t.ooo_bytes() <= t.recv_buf_cap());
                if let Some(d) = t.next_timeout() {
                    prop_assert!(d >= now || t.state() != State::Closed);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Buffer memory: rings follow their contents; the pool's grant and pressure

#[test]
fn rings_are_released_when_drained_and_come_back_with_data() {
    let now = Instant::from_secs(10);
    let mut t = server();
    assert_eq!(t.mem(), 0, "a new connection holds no buffer");
    input(&mut t, now, &seg(5001, 1001, TcpFlags::PSH, &[b'q'; 100]));
    assert_eq!(t.mem(), 4096);
    let mut buf = [0u8; 64];
    assert_eq!(t.read(&mut buf), Ok(64));
    assert_eq!(t.mem(), 4096, "36 bytes unread");
    assert_eq!(t.read(&mut buf), Ok(36));
    assert_eq!(t.mem(), 0, "read to empty: released");
    t.set_nodelay(true);
    assert_eq!(t.write(&[b'r'; 3000]), Ok(3000));
    assert_eq!(t.mem(), 4096);
    let mut sent = Vec::new();
    t.poll_transmit(now, &mut collect(&mut sent));
    let acked: u32 = sent.iter().map(|s| s.0.payload_len).sum();
    assert_eq!(acked, 3000);
    input(&mut t, now + 10 * MS, &seg(5101, 1001 + 1000, TcpFlags::default(), &[]));
    assert_eq!(t.mem(), 4096, "2000 bytes still unacknowledged");
    input(&mut t, now + 20 * MS, &seg(5101, 1001 + 3000, TcpFlags::default(), &[]));
    assert_eq!(t.mem(), 0, "all acknowledged: released");
    // Data arrives again: a ring again, the bytes intact.
    input(&mut t, now + 30 * MS, &seg(5101, 4001, TcpFlags::PSH, b"again"));
    assert_eq!(t.read(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"again");
    assert_eq!(t.mem(), 0);
}

#[test]
fn at_the_hard_limit_data_is_cut_at_the_first_ring_and_progress_continues() {
    let now = Instant::from_secs(10);
    let mut t = server();
    let mut seq = 5001u32;
    for _ in 0..2 {
        t.set_mem(0, true);
        // 3 x 1448 bytes: the empty buffer takes its first 4 KiB ring
        // regardless; the rest is cut (the peer resends it).
        for _ in 0..3 {
            input(&mut t, now, &seg(seq, 1001, TcpFlags::default(), &[7; 1448]));
            seq = t.rcv_nxt();
        }
        assert_eq!(t.mem(), 4096);
        assert_eq!(t.recv_queue_len(), 4096);
        let mut buf = [0u8; 8192];
        assert_eq!(t.read(&mut buf), Ok(4096));
        assert_eq!(t.mem(), 0);
    }
    assert_eq!(t.rcv_nxt(), 5001 + 2 * 4096);
    // Writing with no grant: the first ring, then no more until acknowledged.
    t.set_mem(0, true);
    assert_eq!(t.write(&[1; 10_000]), Ok(4096));
    assert_eq!(t.write(&[1; 10]), Err(Errno::Eagain));
    // With room the ring grows again.
    t.set_mem(1 << 20, false);
    assert_eq!(t.write(&[1; 10_000]), Ok(10_000));
}

#[test]
fn under_memory_pressure_the_offered_window_shrinks_to_four_segments() {
    let run = |pressure: bool| {
        let now = Instant::from_secs(10);
        let mut t = server();
        t.set_mem(u32::MAX, pressure);
        let mut seq = 5001u32;
        let mut last_window = 0u32;
        let mut buf = [0u8; 4096];
        for i in 0..50u32 {
            let (_, sent) = input(&mut t, now + MS * i, &seg(seq, 1001, TcpFlags::PSH, &[3; 1448]));
            seq = seq.wrapping_add(1448);
            while t.read(&mut buf).is_ok_and(|n| n > 0) {}
            let mut more = Vec::new();
            t.poll_transmit(now + MS * i, &mut collect(&mut more));
            if let Some(s) = sent.iter().chain(more.iter()).last() {
                last_window = (s.0.window as u32) << 7;
            }
        }
        assert_eq!(t.rcv_nxt(), seq, "every segment was taken");
        last_window
    };
    let normal = run(false);
    let pressed = run(true);
    assert!(normal >= 60_000, "{normal}");
    // Linux tcp_adjust_rcv_ssthresh: 4 * advmss (5840), in 128-byte units.
    assert!((2 * 1460..=4 * 1460 + 127).contains(&pressed), "{pressed}");
}

// ---------------------------------------------------------------------------
// Receive-buffer autotuning (Linux tcp_rcv_space_adjust)

/// The largest window `from` advertised, in bytes (scale 7 both ways).
fn max_window(p: &Pair, from: usize) -> u32 {
    p.sides[from]
        .log
        .iter()
        .filter(|(_, s)| !s.flags.syn())
        .map(|(_, s)| u32::from(s.window) << 7)
        .max()
        .unwrap_or(0)
}

/// Time for the client to upload `n` bytes to the server (10 ms each way),
/// and the pair afterwards.
fn upload(rcv_max: u32, n: usize) -> (Duration, Pair) {
    let mut p = Pair::tuned(64 * 1024, rcv_max, 16 << 20);
    let data = pattern(n, 21);
    let t0 = p.now;
    p.write(CLIENT, &data);
    let mut steps = 0;
    while p.sides[SERVER].received.len() < n && p.step(t0 + Duration::from_secs(600)) {
        steps += 1;
        assert!(steps < 1_000_000, "no progress");
    }
    let took = p.now - t0;
    assert!(p.sides[SERVER].received == data, "data lost or corrupted");
    (took, p)
}

#[test]
fn receive_window_grows_across_rtts_when_the_application_reads() {
    let max = 4 << 20;
    let (tuned, p) = upload(max, 8 << 20);
    let server = &p.sides[SERVER].tcb;
    // The window grew from 64 KiB to megabytes, and no further than the cap.
    let top = max_window(&p, SERVER);
    assert!(top > 2 << 20, "largest window {top}");
    assert!(top <= max, "largest window {top} above the cap {max}");
    assert!(server.recv_buf_cap() <= max + 127, "{}", server.recv_buf_cap());
    // The window grew over several RTTs, not at once: the first 20 ms
    // (one RTT) offered no more than the initial 64 KiB.
    let start = p.sides[SERVER].log[0].0;
    let early = p.sides[SERVER]
        .log
        .iter()
        .filter(|(t, _)| *t < start + Duration::from_millis(20))
        .map(|(_, s)| u32::from(s.window) << 7)
        .max()
        .unwrap_or(0);
    assert!(early <= 64 * 1024, "{early}");
    // A fixed 64 KiB window moves at most 64 KiB per 20 ms RTT: the same
    // upload takes several times as long.
    let (fixed, q) = upload(0, 8 << 20);
    assert!(max_window(&q, SERVER) <= 64 * 1024);
    println!("8 MiB upload: autotuned {tuned:?} (largest window {top}), fixed 64 KiB {fixed:?}");
    assert!(tuned * 4 < fixed, "autotuned {tuned:?}, fixed {fixed:?}");
}

#[test]
fn receive_window_stays_small_when_the_application_does_not_read() {
    let mut p = Pair::tuned(64 * 1024, 4 << 20, 16 << 20);
    p.sides[SERVER].reading = false;
    let data = pattern(2 << 20, 22);
    p.write(CLIENT, &data);
    let t0 = p.now;
    p.drive_until(t0 + Duration::from_secs(5));
    let server = &p.sides[SERVER].tcb;
    // Filled (the window's rounding to the scale unit may add a few bytes) and stopped.
    let queued = server.recv_queue_len();
    assert!((64 * 1024..64 * 1024 + 128).contains(&queued), "{queued}");
    assert!(max_window(&p, SERVER) <= 64 * 1024);
    assert!(server.recv_buf_cap() <= 64 * 1024 + 127);
    // Reading again: everything arrives, and then the window may grow.
    p.sides[SERVER].reading = true;
    p.drive_until(t0 + Duration::from_secs(120));
    assert!(p.sides[SERVER].received == data);
}

#[test]
fn receive_window_does_not_grow_under_memory_pressure() {
    let mut p = Pair::tuned(64 * 1024, 4 << 20, 16 << 20);
    // Linux tcp_adjust_rcv_ssthresh: 4 segments of advmss under pressure.
    p.sides[SERVER].tcb.set_mem(u32::MAX, true);
    let data = pattern(1 << 20, 23);
    p.write(CLIENT, &data);
    p.drive_until(p.now + Duration::from_secs(60));
    assert!(p.sides[SERVER].received == data);
    // Once the window offered before the pressure is used up (it may not
    // shrink), at most 4 segments, rounded up to the scale unit (128).
    let start = p.sides[SERVER].log[0].0;
    let top = p.sides[SERVER]
        .log
        .iter()
        .filter(|(t, _)| *t > start + Duration::from_millis(100))
        .map(|(_, s)| u32::from(s.window) << 7)
        .max()
        .unwrap_or(0);
    assert!(top > 0 && top <= 4 * 1460 + 127, "window {top} under pressure");
    assert!(p.sides[SERVER].tcb.recv_buf_cap() <= 64 * 1024 + 127);
}

#[test]
fn receive_autotuning_survives_loss_and_reordering() {
    for seed in 1..=6u64 {
        let mut p = Pair::tuned(64 * 1024, 2 << 20, 4 << 20);
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        p.link = Box::new(move |_, _| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 200 {
                0..=1 => None,
                2..=9 => Some(Duration::from_millis(x % 8)),
                _ => Some(Duration::ZERO),
            }
        });
        let data = pattern(4 << 20, 24);
        p.write(CLIENT, &data);
        p.sides[CLIENT].shutdown_after_write = true;
        p.drive();
        assert!(p.sides[SERVER].received == data, "seed {seed}");
        assert!(p.sides[SERVER].tcb.recv_buf_cap() <= (2 << 20) + 127, "seed {seed}");
    }
}

// ---------------------------------------------------------------------------
// SACK loss recovery (RFC 6675) against NewReno alone

/// Data segments `from` sent that were sent before (retransmissions).
fn retransmissions(p: &Pair, from: usize) -> usize {
    retransmission_times(p, from).len()
}

fn retransmission_times(p: &Pair, from: usize) -> Vec<Instant> {
    let mut high: Option<u32> = None;
    let mut n = Vec::new();
    for (t, s) in &p.sides[from].log {
        if s.payload_len == 0 {
            continue;
        }
        let end = s.seq.wrapping_add(s.payload_len);
        match high {
            Some(h) if before(s.seq, h) => n.push(*t),
            _ => {}
        }
        if high.is_none_or(|h| after(end, h)) {
            high = Some(end);
        }
    }
    n
}

/// Server to client, `n` bytes, segments dropped where `drop(i)` for the
/// i-th data segment first sent (retransmissions pass). Returns the time
/// taken, the retransmission count and the time from the first
/// retransmission to the last.
fn transfer_dropping(sack: bool, n: usize, drop: fn(u32) -> bool) -> (Duration, usize, Duration) {
    let mut p = Pair::build(256 * 1024, 0, 256 * 1024, sack);
    let mut high = 0xffff_f001u32;
    let mut i = 0u32;
    p.link = Box::new(move |from, pkt| {
        if from == SERVER && pkt.seg.payload_len > 0 && !before(pkt.seg.seq, high) {
            high = pkt.seg.seq.wrapping_add(pkt.seg.payload_len);
            i += 1;
            if drop(i) {
                return None;
            }
        }
        Some(Duration::ZERO)
    });
    let data = pattern(n, 31);
    let t0 = p.now;
    p.write(SERVER, &data);
    while p.sides[CLIENT].received.len() < n && p.step(t0 + Duration::from_secs(600)) {}
    assert!(p.sides[CLIENT].received == data, "sack {sack}: data lost or corrupted");
    let r = retransmission_times(&p, SERVER);
    let span = match (r.first(), r.last()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    };
    (p.now - t0, r.len(), span)
}

#[test]
fn sack_recovers_several_losses_in_one_window_in_one_rtt() {
    // Segments 21, 24 and 27 of the first flights lost (cwnd 20+ by then).
    let drop = |i| i == 21 || i == 24 || i == 27;
    let (t_sack, r_sack, span_sack) = transfer_dropping(true, 80 * 1448, drop);
    let (t_reno, r_reno, span_reno) = transfer_dropping(false, 80 * 1448, drop);
    println!(
        "3 losses in a window: SACK {t_sack:?}, {r_sack} retransmissions over {span_sack:?}; NewReno {t_reno:?}, {r_reno} over {span_reno:?}"
    );
    // Exactly the three lost segments are resent. NewReno learns of one
    // hole per partial ACK (one 20 ms RTT each: 2 RTTs from the first
    // retransmission to the third); SACK sees the holes as the flight's
    // ACKs come, and resends them as the pipe lets it: at least one RTT sooner.
    assert_eq!(r_sack, 3);
    assert!(r_sack <= r_reno);
    assert!(span_reno >= Duration::from_millis(40), "{span_reno:?}");
    assert!(span_sack + Duration::from_millis(20) <= span_reno, "SACK {span_sack:?}, NewReno {span_reno:?}");
    assert!(t_sack < t_reno, "SACK {t_sack:?}, NewReno {t_reno:?}");
}

/// Over 12 seeds of a link losing 2 % and reordering 5 % (delays up to
/// 7 ms on 10 ms), 1 MiB one way and 256 KiB the other, with SACK and
/// without: (retransmissions, time to the last segment) summed, SACK first.
fn lossy_reordering_totals(buf: u32) -> ((usize, Duration), (usize, Duration)) {
    let (mut r_sack, mut r_reno) = (0, 0);
    let (mut t_sack, mut t_reno) = (Duration::ZERO, Duration::ZERO);
    for seed in 1..=12u64 {
        for sack in [true, false] {
            let mut p = Pair::build(buf, 0, buf, sack);
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            p.link = Box::new(move |_, _| {
                // xorshift: 2% loss, 5% delayed by up to 7 ms (reordering).
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 100 {
                    0..=1 => None,
                    2..=6 => Some(Duration::from_millis(x % 8)),
                    _ => Some(Duration::ZERO),
                }
            });
            let a = pattern(1 << 20, 32);
            let b = pattern(256 * 1024, 33);
            let t0 = p.now;
            p.write(SERVER, &a);
            p.write(CLIENT, &b);
            p.sides[SERVER].shutdown_after_write = true;
            p.sides[CLIENT].shutdown_after_write = true;
            p.drive();
            assert!(p.sides[CLIENT].received == a, "seed {seed} sack {sack}: server->client");
            assert!(p.sides[SERVER].received == b, "seed {seed} sack {sack}: client->server");
            for s in &p.sides {
                assert_eq!(s.tcb.state(), State::Closed, "seed {seed} sack {sack}");
                assert_eq!(s.tcb.error(), None, "seed {seed} sack {sack}");
            }
            let r = retransmissions(&p, SERVER) + retransmissions(&p, CLIENT);
            // When the last data reached the client.
            let done = p.sides[SERVER].log.iter().map(|(t, _)| *t).max().unwrap_or(t0) - t0;
            if sack {
                r_sack += r;
                t_sack += done;
            } else {
                r_reno += r;
                t_reno += done;
            }
        }
    }
    ((r_sack, t_sack), (r_reno, t_reno))
}

#[test]
fn sack_retransmits_no_more_and_recovers_faster_than_newreno_on_a_lossy_reordering_link() {
    for buf in [256 * 1024, 64 * 1024] {
        let ((r_sack, t_sack), (r_reno, t_reno)) = lossy_reordering_totals(buf);
        println!("12 seeds, {buf} B buffers: SACK {r_sack} retransmissions in {t_sack:?}, NewReno {r_reno} in {t_reno:?}");
        assert!(r_sack <= r_reno, "{buf} B: SACK {r_sack}, NewReno {r_reno}");
        assert!(t_sack < t_reno, "{buf} B: SACK {t_sack:?}, NewReno {t_reno:?}");
    }
}

// ---------------------------------------------------------------------------
// Send-buffer autotuning (Linux tcp_sndbuf_expand)

/// Server to client, `n` bytes over a 20 ms RTT, the server's send buffer
/// 64 KiB growing to `snd_max`: the time taken, and the pair.
fn download(snd_max: u32, n: usize, pressure: bool) -> (Duration, Pair) {
    let mut p = Pair::build_full(64 * 1024, 8 << 20, 64 * 1024, snd_max, true);
    if pressure {
        p.sides[SERVER].tcb.set_mem(u32::MAX, true);
    }
    let data = pattern(n, 41);
    let t0 = p.now;
    p.write(SERVER, &data);
    while p.sides[CLIENT].received.len() < n && p.step(t0 + Duration::from_secs(600)) {}
    assert!(p.sides[CLIENT].received == data, "data lost or corrupted");
    (p.now - t0, p)
}

#[test]
fn send_buffer_grows_with_cwnd_when_the_application_fills_it() {
    let max = 2 << 20;
    let (tuned, p) = download(max, 8 << 20, false);
    let cap = p.sides[SERVER].tcb.send_buf_cap();
    // Twice the congestion window, up to the cap.
    assert!(cap > 1 << 20 && cap <= max, "send buffer {cap}");
    let (fixed, q) = download(0, 8 << 20, false);
    assert_eq!(q.sides[SERVER].tcb.send_buf_cap(), 64 * 1024);
    println!("8 MiB download: send buffer autotuned to {cap}: {tuned:?}; fixed 64 KiB: {fixed:?}");
    assert!(tuned * 4 < fixed, "autotuned {tuned:?}, fixed {fixed:?}");
    // Under memory pressure it stays.
    let (_, r) = download(max, 1 << 20, true);
    assert_eq!(r.sides[SERVER].tcb.send_buf_cap(), 64 * 1024);
}

#[test]
fn send_buffer_does_not_grow_when_the_application_never_fills_it() {
    let mut p = Pair::build_full(64 * 1024, 8 << 20, 64 * 1024, 4 << 20, true);
    // 200 requests of 10 KiB, each written when the previous one was read.
    for i in 0..200u8 {
        let chunk = pattern(10 * 1024, i);
        p.write(SERVER, &chunk);
        let want = p.sides[CLIENT].received.len() + chunk.len();
        while p.sides[CLIENT].received.len() < want && p.step(p.now + Duration::from_secs(60)) {}
    }
    assert_eq!(p.sides[SERVER].tcb.send_buf_cap(), 64 * 1024);
}
