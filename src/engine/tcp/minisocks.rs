//! Linux's tcp_minisocks.c: a segment for a request sock (`tcp_check_req`)
//! and for a connection in TIME_WAIT (`tcp_timewait_state_process`).

use super::child::{ChildError, ChildParams};
use super::output::{send_counted, OutSegment, Route};
use super::synack::SynAckQueue;
use super::reqsk::{opt, rtx_synack, RequestSock};
use super::{Rx, TcpConfig, TcpEngine, Timer};
use crate::engine::flow::FlowKey;
use crate::engine::host::{send_reset, TcpInput};
use crate::engine::tcb::seq::{after, before, between};
use crate::engine::tcb::Events;
use crate::engine::time::Instant;
use crate::engine::timer_wheel::TimerId;
use crate::engine::tx::{TxSink, WithIpOptions};
use crate::wire::ipv4_options;
use crate::stats::{Counter, Counters};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options;

/// A connection in TIME_WAIT, without its TCB and buffers (Linux's
/// `inet_timewait_sock`): enough to re-ACK a retransmitted FIN, die on RST,
/// and let a new SYN reuse the pair.
#[derive(Clone, Copy, Debug)]
pub struct TimeWait {
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    /// (ts_recent, ts_off) when timestamps are on.
    pub ts: Option<(u32, u32)>,
    pub peer_mac: EthernetAddress,
    pub(super) timer: TimerId,
}

/// What `tcp_check_req` does with a segment, decided on the request alone.
enum ReqVerdict {
    /// Nothing more (answered or dropped already).
    Done,
    /// RST or SYN inside the window: `embryonic_reset`.
    EmbryonicReset,
    /// The ACK completes the handshake; the child's ts_recent (the
    /// segment's TSval when it had one, in order).
    Complete(Option<u32>),
}

/// `tcp_in_window`: does [seq, end_seq) fall in [s_win, e_win)?
fn in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    if seq == s_win {
        return true;
    }
    if after(end_seq, s_win) && before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// `tcp_v4_reqsk_send_ack`: an ACK from a request sock (out-of-window
/// segment), echoing the segment's IP options as `ip_send_unicast_reply` does.
fn send_req_ack(cfg: &TcpConfig, req: &RequestSock, rx: &Rx<'_, '_>, c: &Counters, tx: &mut impl TxSink) {
    let Rx { now, key, route, input, .. } = *rx;
    let wscale = if req.snd_wscale().is_some() { req.rcv_wscale } else { 0 };
    let mut seg = OutSegment::bare(
        req.snt_isn.wrapping_add(1),
        req.rcv_isn.wrapping_add(1),
        TcpFlags::ACK,
        (u32::from(cfg.synack_window_of(&key, req.has(opt::TSTAMP))) >> wscale) as u16,
    );
    seg.timestamps = req.timestamps(now);
    if input.ip.has_options() {
        return send_req_ack_with_options(cfg, rx, &seg, c, tx);
    }
    send_counted(tx, route, key, &seg, c);
}

#[cold]
#[inline(never)]
fn send_req_ack_with_options(cfg: &TcpConfig, rx: &Rx<'_, '_>, seg: &OutSegment, c: &Counters, tx: &mut impl TxSink) {
    let time = cfg.utc_ms_since_midnight(rx.now);
    let echo = rx.input.ip.v4().and_then(|ip| ipv4_options::reply_echo(ip, time).map(|e| (e, ip.dst_addr().octets())));
    match echo {
        Some((echo, ours)) => send_counted(&mut WithIpOptions::new(tx, &echo, ours, time), rx.route, rx.key, seg, c),
        None => send_counted(tx, rx.route, rx.key, seg, c),
    }
}

/// `tcp_check_req` up to the handshake's completion: everything decided by
/// the request alone, answered from it.
fn check_req_segment(
    cfg: &TcpConfig,
    req: &mut RequestSock,
    rx: &Rx<'_, '_>,
    synacks: &mut SynAckQueue,
    c: &Counters,
    tx: &mut impl TxSink,
) -> ReqVerdict {
    let Rx { now, key, input, route, .. } = *rx;
    req.peer_mac = route.peer_mac;
    let seg = &input.seg;
    let flags = seg.flags();
    let flg = flags & (TcpFlags::RST | TcpFlags::SYN | TcpFlags::ACK);
    let seq = seg.seq_number();
    let rcv_nxt = req.rcv_isn.wrapping_add(1);
    let seg_ts = if req.has(opt::TSTAMP) { tcp_options::timestamps(seg.options()) } else { None };
    // PAWS (RFC 7323 5): a TSval older than the SYN's is a stale duplicate.
    let paws_reject =
        !flags.contains(TcpFlags::RST) && seg_ts.is_some_and(|(tsval, _)| before(tsval, req.ts_recent));
    // Linux 6.18: a TSecr that is none of our SYN-ACKs' TSvals is rejected
    // like an out-of-window segment (TSEcrRejected).
    let tsecr_reject =
        seg_ts.is_some_and(|(_, tsecr)| tsecr != 0 && !between(tsecr, req.snt_tsval_first(), req.snt_tsval_last));

    // A retransmitted SYN: resend the SYN-ACK (rate limited).
    if seq == req.rcv_isn && flg == TcpFlags::SYN && !paws_reject {
        if req.oow_allowed(now) {
            rtx_synack(req, now, key, route, synacks);
        }
        return ReqVerdict::Done;
    }
    // An ACK that does not acknowledge our SYN-ACK: RST (Linux returns
    // the listener, whose LISTEN state answers an ACK with a reset).
    if flags.contains(TcpFlags::ACK) && seg.ack_number() != req.snt_isn.wrapping_add(1) {
        c.inc(Counter::TcpAckNoMatch);
        send_reset(input, route.our_mac, cfg.utc_ms_since_midnight(now), c, tx);
        return ReqVerdict::Done;
    }
    let end_seq = seq.wrapping_add(seg.seq_len() as u32);
    let window = u32::from(cfg.synack_window_of(&key, req.has(opt::TSTAMP)));
    if paws_reject || tsecr_reject || !in_window(seq, end_seq, rcv_nxt, rcv_nxt.wrapping_add(window)) {
        if paws_reject {
            c.inc(Counter::PawsEstabRejected);
        } else if tsecr_reject {
            c.inc(Counter::TsEcrRejected);
        }
        // tcp_oow_rate_limited: "Data packets without SYNs are not
        // likely part of an ACK loop": only bare ACKs and SYNs are limited.
        let data_no_syn = end_seq != seq && !flags.contains(TcpFlags::SYN);
        if !flags.contains(TcpFlags::RST) && (data_no_syn || req.oow_allowed(now)) {
            send_req_ack(cfg, req, rx, c, tx);
        }
        return ReqVerdict::Done;
    }
    // RFC 5961 3.2 for a request sock, as Linux 6.18 does: an in-window RST
    // not exactly at rcv_nxt gets a challenge ACK (at most one per
    // tcp_invalid_ratelimit) and the request stays.
    if flags.contains(TcpFlags::RST) && seq != rcv_nxt {
        if req.oow_allowed(now) {
            c.inc(Counter::TcpChallengeAck);
            send_req_ack(cfg, req, rx, c, tx);
        } else {
            c.inc(Counter::TcpAckSkippedChallenge);
        }
        return ReqVerdict::Done;
    }
    if flg.intersects(TcpFlags::RST | TcpFlags::SYN) {
        return ReqVerdict::EmbryonicReset;
    }
    if !flags.contains(TcpFlags::ACK) {
        return ReqVerdict::Done;
    }
    // ts_recent stays the SYN's: the child takes the completing segment's
    // (Linux 6.18; a dropped ACK no longer changes what a retransmitted
    // SYN-ACK echoes).
    // TCP_DEFER_ACCEPT: a bare ACK does not complete the handshake yet.
    if u32::from(req.num_timeout) < req.listener.defer_accept_retrans() && end_seq == rcv_nxt {
        req.opts |= opt::ACKED;
        c.inc(Counter::TcpDeferAcceptDrop);
        return ReqVerdict::Done;
    }
    // The child's ts_recent is this segment's TSval (Linux 6.18 moves it
    // to the child, not the request).
    ReqVerdict::Complete(seg_ts.filter(|_| !after(seq, rcv_nxt)).map(|(tsval, _)| tsval))
}

impl TcpEngine {
    /// `tcp_check_req`: a segment for a request sock.
    pub(super) fn check_req(&mut self, rx: &Rx<'_, '_>, c: &Counters, tx: &mut impl TxSink) {
        let Some(req) = self.reqs.get_mut(&rx.key) else { return };
        match check_req_segment(&self.cfg, req, rx, &mut self.synacks, c, tx) {
            ReqVerdict::Done => {}
            ReqVerdict::EmbryonicReset => {
                c.inc(Counter::TcpAttemptFails);
                if !rx.input.seg.flags().contains(TcpFlags::RST) {
                    send_reset(rx.input, rx.route.our_mac, self.cfg.utc_ms_since_midnight(rx.now), c, tx);
                }
                if self.drop_request(&rx.key) {
                    c.inc(Counter::EmbryonicRsts);
                }
            }
            ReqVerdict::Complete(ts_recent) => self.complete_request(rx, ts_recent, c, tx),
        }
    }

    /// The final ACK: the request leaves the SYN table and becomes a child
    /// in the accept queue, or comes back when the queue is full and
    /// `tcp_abort_on_overflow` is 0 (the client will retransmit).
    fn complete_request(&mut self, rx: &Rx<'_, '_>, ts_recent: Option<u32>, c: &Counters, tx: &mut impl TxSink) {
        let Rx { now, key, hash, input, route } = *rx;
        let utc_ms = self.cfg.utc_ms_since_midnight(now);
        let Some(mut req) = self.reqs.remove(&key) else { return };
        if req.listener.is_closed() {
            match self.migrate(&req.listener, &key, c) {
                Some(to) => req.migrate_to(to),
                None => {
                    send_reset(input, route.our_mac, utc_ms, c, tx);
                    self.forget_ip_echo(&key, &req);
                    self.release_request(req);
                    return;
                }
            }
        }
        let params = ChildParams::from_request(&req, &input.seg, ts_recent, now);
        let result = self.create_child(now, key, hash, route.peer_mac, &req.listener, params, c);
        if !matches!(result, Err(ChildError::AcceptQueueFull)) || self.sysctls.tcp_abort_on_overflow {
            self.forget_ip_echo(&key, &req);
        }
        match result {
            Ok(id) => {
                self.release_request(req);
                if input.seg.seq_len() > 0 {
                    self.tcb_segment(now, id, input, c, tx);
                }
            }
            Err(ChildError::Limit) => {
                send_reset(input, route.our_mac, utc_ms, c, tx);
                self.release_request(req);
            }
            // listen_overflow
            Err(ChildError::AcceptQueueFull) if self.sysctls.tcp_abort_on_overflow => {
                send_reset(input, route.our_mac, utc_ms, c, tx);
                self.release_request(req);
                c.inc(Counter::EmbryonicRsts);
            }
            Err(ChildError::AcceptQueueFull) => {
                req.opts |= opt::ACKED;
                self.reqs.insert(key, req);
            }
        }
    }

    /// Trade a connection's TCB for a compact TIME_WAIT entry; the
    /// application sees it closed.
    pub(super) fn enter_time_wait(&mut self, id: u32) {
        let Some(conn) = self.conns.get(id) else { return };
        let key = conn.key;
        let until = conn.tcb.next_timeout();
        let (snd_nxt, rcv_nxt, ts, peer_mac) = (conn.tcb.snd_max(), conn.tcb.rcv_nxt(), conn.tcb.timestamps(), conn.peer_mac);
        let events = Events(conn.pending.0 | Events::CLOSED.0);
        self.finish(id);
        self.gone_ready.push((id, events));
        let Some(until) = until else { return };
        if self.time_wait.len() >= self.sysctls.tcp_max_tw_buckets as usize {
            self.counters.inc(Counter::TcpTimeWaitOverflow);
            return;
        }
        let timer = self.timers.schedule(until, Timer::TimeWait(key));
        if let Some(old) = self.time_wait.insert(key, TimeWait { snd_nxt, rcv_nxt, ts, peer_mac, timer }) {
            self.timers.cancel(old.timer);
        }
    }

    /// `tcp_timewait_state_process`, simplified: RST ends TIME_WAIT (Linux's
    /// default without RFC 1337 protection), a new SYN beyond the old
    /// sequence space reuses the pair, anything else gets the last ACK again.
    /// Returns true when the segment was consumed here.
    pub(super) fn time_wait_segment(&mut self, now: Instant, key: FlowKey, input: &TcpInput<'_>, c: &Counters, tx: &mut impl TxSink) -> bool {
        let Some(tw) = self.time_wait.get(&key).copied() else { return false };
        let seg = &input.seg;
        let flags = seg.flags();
        if flags.contains(TcpFlags::RST) {
            self.time_wait.remove(&key);
            self.timers.cancel(tw.timer);
            c.inc(Counter::TcpTwKilled);
            return true;
        }
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) && after(seg.seq_number(), tw.rcv_nxt) {
            self.time_wait.remove(&key);
            self.timers.cancel(tw.timer);
            return false;
        }
        let route = Route { our_mac: self.cfg.mac, peer_mac: input.eth_src };
        let mut out = OutSegment::bare(tw.snd_nxt, tw.rcv_nxt, TcpFlags::ACK, 0);
        out.timestamps = tw.ts.map(|(recent, off)| ((now.as_millis() as u32).wrapping_add(off), recent));
        send_counted(tx, route, key, &out, c);
        true
    }
}
