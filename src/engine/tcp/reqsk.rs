//! Request socks: half-open connections (SYN_RECV) in a worker's own table,
//! and their SYN-ACK timer (Linux's inet_connection_sock.c:
//! `reqsk_timer_handler`, `inet_rtx_syn_ack`, request migration).
//!
//! RSS sends every packet of a flow to one queue, so no other core ever
//! touches them: no locks. The listener's `qlen`/`young` are the only shared
//! state (atomics).

use super::output::Route;
use super::synack::{EchoIp, PendingSynAck, SynAckQueue};
use super::{TcpEngine, TCP_INVALID_RATELIMIT, TCP_RTO_MAX, TCP_TIMEOUT_INIT};
use crate::engine::flow::FlowKey;
use crate::engine::host::HostTx;
use crate::engine::listen::Listener;
use crate::engine::time::Instant;
use crate::wire::ethernet::EthernetAddress;
use crate::stats::{Counter, Counters};
use std::sync::Arc;

/// Request-sock option bits.
pub mod opt {
    pub const SACK: u8 = 1 << 0;
    pub const TSTAMP: u8 = 1 << 1;
    pub const ECN: u8 = 1 << 2;
    /// The final ACK came while the accept queue was full
    /// (`inet_rsk(req)->acked`): the request waits for a retransmitted ACK.
    pub const ACKED: u8 = 1 << 3;
    /// `last_oow_ack` holds the time of an out-of-window answer.
    pub const OOW_SENT: u8 = 1 << 4;
    /// The SYN had IP options its SYN-ACKs echo (kept beside, by flow).
    pub const IP_OPTIONS: u8 = 1 << 5;
}

/// A half-open connection (Linux's `struct tcp_request_sock`, the parts a
/// listener needs). Kept small: the per-request budget is 64 bytes.
#[derive(Debug)]
pub struct RequestSock {
    pub listener: Arc<Listener>,
    /// When the SYN arrived (SYN→established latency, timestamps clock).
    pub syn_at: Instant,
    /// The generation of its armed SYN-ACK timer (`SynAckTimers`).
    pub timer: u32,
    /// Our ISN (`snt_isn`).
    pub snt_isn: u32,
    /// The client's ISN (`rcv_isn`).
    pub rcv_isn: u32,
    /// Last TSval seen from the client (`ts_recent`).
    pub ts_recent: u32,
    /// Our TSval offset for this address pair (`ts_off`).
    pub ts_off: u32,
    /// The TSval of the latest SYN-ACK (`snt_tsval_last`; the first is
    /// the SYN time's): a final ACK must echo one in between.
    pub snt_tsval_last: u32,
    /// When we last answered an out-of-window segment, in engine
    /// milliseconds (`last_oow_ack_time`; valid with `opt::OOW_SENT`).
    pub last_oow_ack: u32,
    /// MSS we announced (the client's, clamped to ours).
    pub mss: u16,
    /// The client's window from its SYN (never scaled).
    pub peer_window: u16,
    /// The client's window scale, `NO_WSCALE` when it sent none.
    pub snd_wscale: u8,
    /// Our window scale, as announced.
    pub rcv_wscale: u8,
    /// `opt::*` bits.
    pub opts: u8,
    /// SYN-ACK timeouts so far (`num_timeout`).
    pub num_timeout: u8,
    /// SYN-ACK retransmissions so far, timer or SYN driven (`num_retrans`).
    pub num_retrans: u8,
    /// The client's MAC, from its latest segment: where a retransmitted
    /// SYN-ACK goes (the neighbour table is ARP's, as in Linux).
    pub peer_mac: EthernetAddress,
}

pub const NO_WSCALE: u8 = 0xff;

impl RequestSock {
    pub fn has(&self, bit: u8) -> bool {
        self.opts & bit != 0
    }

    /// Still young: its SYN-ACK never timed out.
    pub fn is_young(&self) -> bool {
        self.num_timeout == 0
    }

    pub fn snd_wscale(&self) -> Option<u8> {
        (self.snd_wscale != NO_WSCALE).then_some(self.snd_wscale)
    }

    /// The TSval of the first SYN-ACK (`snt_tsval_first`).
    pub(super) fn snt_tsval_first(&self) -> u32 {
        (self.syn_at.as_millis() as u32).wrapping_add(self.ts_off)
    }

    /// Our TSval now and the client's last, when timestamps are on.
    pub(super) fn timestamps(&self, now: Instant) -> Option<(u32, u32)> {
        self.has(opt::TSTAMP).then(|| ((now.as_millis() as u32).wrapping_add(self.ts_off), self.ts_recent))
    }

    /// `tcp_oow_rate_limited`: may we answer another out-of-window segment?
    /// At most one answer per `tcp_invalid_ratelimit` (500 ms).
    pub(super) fn oow_allowed(&mut self, now: Instant) -> bool {
        let now_ms = now.as_millis() as u32;
        let limit = TCP_INVALID_RATELIMIT.as_millis() as u32;
        if self.has(opt::OOW_SENT) && now_ms.wrapping_sub(self.last_oow_ack) < limit {
            return false;
        }
        self.last_oow_ack = now_ms;
        self.opts |= opt::OOW_SENT;
        true
    }

    /// Hand the request's queue slot to `to`, the member that takes it over
    /// after its listener closed (Linux: `reqsk_queue_migrated` on the new
    /// queue, removed from the old one), so both listeners' qlen/young stay
    /// exact.
    pub(super) fn migrate_to(&mut self, to: Arc<Listener>) {
        let young = self.is_young();
        self.listener.reqsk_queue_removed(young);
        to.reqsk_queue_added();
        if !young {
            to.reqsk_queue_aged();
        }
        self.listener = to;
    }
}

/// Resend a request's SYN-ACK (`inet_rtx_syn_ack`).
pub(super) fn rtx_synack(
    req: &mut RequestSock,
    now: Instant,
    key: FlowKey,
    route: Route,
    synacks: &mut SynAckQueue,
) {
    if req.has(opt::IP_OPTIONS) {
        synacks.retouch_ip_echo(&key, now);
    }
    req.num_retrans = req.num_retrans.saturating_add(1);
    let ts = req.timestamps(now);
    if let Some((tsval, _)) = ts {
        req.snt_tsval_last = tsval;
    }
    synacks.push(PendingSynAck {
        route,
        key,
        iss: req.snt_isn,
        ack: req.rcv_isn.wrapping_add(1),
        ts,
        sack: req.has(opt::SACK),
        wscale: req.snd_wscale().is_some(),
        ecn: req.has(opt::ECN),
        fastopen: None,
        sample: None,
        retransmit: true,
        ip_options: if req.has(opt::IP_OPTIONS) { EchoIp::Request } else { EchoIp::No },
    });
}

/// Linux's `syn_ack_recalc`: (expire the request, resend the SYN-ACK).
/// With TCP_DEFER_ACCEPT an ACKed request is kept, silently, until the
/// deferral's retransmits are used up.
fn syn_ack_recalc(req: &RequestSock, max_retries: u32, defer: u32) -> (bool, bool) {
    let num_timeout = u32::from(req.num_timeout);
    if defer == 0 {
        return (num_timeout >= max_retries, true);
    }
    let acked = req.has(opt::ACKED);
    (num_timeout >= max_retries && (!acked || num_timeout >= defer), !acked || num_timeout + 1 >= defer)
}

/// `reqsk_timer_handler`'s pruning: when the queue is more than half full,
/// old requests get fewer retries so young ones keep room.
fn max_synack_retries(listener: &Listener, synack_retries: u8) -> u32 {
    let mut max_retries = u32::from(synack_retries);
    let qlen = listener.reqsk_queue_len();
    if (qlen << 1) > listener.sk_max_ack_backlog().max(8) {
        let mut young = listener.reqsk_queue_len_young() << 1;
        while max_retries > 2 {
            if qlen < young {
                break;
            }
            max_retries -= 1;
            young <<= 1;
        }
    }
    max_retries
}

impl TcpEngine {
    /// `reqsk_timer_handler`: retransmit the SYN-ACK with Linux's pruning
    /// of old requests when the queue is more than half full, or let the
    /// request die after tcp_synack_retries.
    pub(super) fn reqsk_timer(&mut self, now: Instant, key: FlowKey, host: &mut HostTx<'_>) {
        let c = host.counters;
        if !self.migrate_if_closed(&key, c) {
            self.drop_request(&key);
            return;
        }
        let Some(req) = self.reqs.get_mut(&key) else { return };
        let max_retries = max_synack_retries(&req.listener, self.sysctls.tcp_synack_retries);
        let (expire, resend) = syn_ack_recalc(req, max_retries, req.listener.defer_accept_retrans());
        if expire {
            c.inc(Counter::TcpReqTimeouts);
            self.drop_request(&key);
            return;
        }
        if req.num_timeout == 0 {
            req.listener.reqsk_queue_aged();
        }
        req.num_timeout = req.num_timeout.saturating_add(1);
        let timeout = TCP_TIMEOUT_INIT.saturating_mul(1 << req.num_timeout.min(8)).min(TCP_RTO_MAX);
        req.timer = self.synack_timers.arm(now, req.num_timeout, timeout, key);
        if resend {
            let route = Route { our_mac: host.mac, peer_mac: req.peer_mac };
            rtx_synack(req, now, key, route, &mut self.synacks);
        }
    }

    /// A request whose listener closed moves to another member of its
    /// reuseport group. False when it has nowhere to go.
    fn migrate_if_closed(&mut self, key: &FlowKey, c: &Counters) -> bool {
        let Some(req) = self.reqs.get(key) else { return true };
        if !req.listener.is_closed() {
            return true;
        }
        let Some(to) = self.migrate(&req.listener, key, c) else { return false };
        if let Some(req) = self.reqs.get_mut(key) {
            req.migrate_to(to);
        }
        true
    }

    /// Give back a request's queue slot (its timer entry is skipped when due).
    pub(super) fn release_request(&mut self, req: RequestSock) {
        req.listener.reqsk_queue_removed(req.is_young());
    }

    /// Remove a request sock and give back its queue slot.
    pub(super) fn drop_request(&mut self, key: &FlowKey) -> bool {
        match self.reqs.remove(key) {
            Some(req) => {
                self.forget_ip_echo(key, &req);
                self.release_request(req);
                true
            }
            None => false,
        }
    }

    /// A request or child of a closed listener: another member of its
    /// reuseport group, or none (`reuseport_migrate_sock`).
    pub(super) fn migrate(&self, closed: &Listener, key: &FlowKey, c: &Counters) -> Option<Arc<Listener>> {
        let hash = self.flow_hash(key);
        match self.stack.reqsk_migrate(self.cfg.worker, closed, hash) {
            Some(to) => {
                c.inc(Counter::TcpMigrateReqSuccess);
                Some(to)
            }
            None => {
                if closed.reuseport && self.sysctls.tcp_migrate_req {
                    c.inc(Counter::TcpMigrateReqFailure);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sock_fits_the_budget() {
        let size = std::mem::size_of::<RequestSock>();
        assert!(size <= 64, "RequestSock is {size} bytes");
    }
}
