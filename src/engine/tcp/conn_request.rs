//! Linux's `tcp_conn_request` (tcp_input.c): a SYN for a listener becomes a
//! request sock and its SYN-ACK, a cookie SYN-ACK, a TFO child with the
//! SYN's data, or a drop. The cookie decision is `tcp_syn_flood_action`,
//! the TFO one `tcp_try_fastopen` (tcp_fastopen.c), each a function here.

use super::child::ChildParams;
use super::conn::Origin;
use super::synack::{EchoIp, PendingSynAck};
use super::reqsk::{opt, RequestSock, NO_WSCALE};
use super::{Rx, TcpEngine, TCP_MSS_DEFAULT, TCP_TIMEOUT_INIT};
use crate::engine::flow::FlowKey;
use crate::engine::host::TcpInput;
use crate::engine::keys::fastopen::{self, TfoCookieCheck};
use crate::engine::keys::syncookie;
use crate::engine::listen::Listener;
use crate::engine::sysctl::{tfo, Sysctls};
use crate::stats::{Counter, Counters};
use crate::wire::ipv4_options::{self, OptionsEcho};
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use std::sync::Arc;

/// What the SYN offered and our sysctls allow (`tcp_parse_options`,
/// `tcp_openreq_init`, `tcp_ecn_create_request`).
pub(super) struct Negotiation {
    /// The client's (TSval, TSecr), when timestamps are on.
    pub(super) ts: Option<(u32, u32)>,
    sack: bool,
    /// The client's window scale, when scaling is on.
    wscale: Option<u8>,
    ecn: bool,
    /// The MSS the client announced (536 without the option).
    peer_mss: u16,
    /// The connection's MSS: the client's, clamped to ours.
    mss: u16,
}

/// What `tcp_try_fastopen` decided.
#[derive(Default)]
struct FastOpen {
    /// Accept the SYN's data now: the child exists before the final ACK.
    child: bool,
    /// The cookie the SYN-ACK carries.
    cookie: Option<FastOpenCookie>,
}

/// `tcp_syn_flood_action` and `inet_csk_reqsk_queue_is_full`: `Some(true)`
/// to answer with a cookie, `Some(false)` to queue a request, `None` when
/// the SYN is dropped (queue full, cookies off).
#[inline]
pub(super) fn syn_flood_action(s: &Sysctls, listener: &Listener, c: &Counters) -> Option<bool> {
    if s.tcp_syncookies != 2 && !listener.reqsk_queue_is_full() {
        return Some(false);
    }
    if s.tcp_syncookies != 0 {
        c.inc(Counter::TcpReqQFullDoCookies);
        return Some(true);
    }
    c.inc(Counter::TcpReqQFullDrop);
    c.inc(Counter::ListenDrops);
    None
}

impl Negotiation {
    #[inline]
    pub(super) fn new(s: &Sysctls, our_mss: u16, opts: &SynOptions, input: &TcpInput<'_>, want_cookie: bool) -> Negotiation {
        let flags = input.seg.flags();
        let mut n = Negotiation {
            ts: if s.tcp_timestamps { opts.timestamps } else { None },
            sack: s.tcp_sack && opts.sack_permitted,
            wscale: if s.tcp_window_scaling { opts.wscale } else { None },
            // tcp_ecn_create_request: ECE and CWR in the SYN, a non-ECT IP header.
            ecn: s.tcp_ecn != 0 && flags.contains(TcpFlags::ECE | TcpFlags::CWR) && input.ip.ecn() == 0,
            peer_mss: opts.mss.unwrap_or(TCP_MSS_DEFAULT),
            mss: 0,
        };
        n.mss = n.peer_mss.min(our_mss);
        if want_cookie && n.ts.is_none() {
            // Without timestamps a cookie cannot carry them (tcp_clear_options).
            n.sack = false;
            n.wscale = None;
            n.ecn = false;
        }
        n
    }

    fn opt_bits(&self) -> u8 {
        let mut bits = 0;
        if self.sack {
            bits |= opt::SACK;
        }
        if self.ts.is_some() {
            bits |= opt::TSTAMP;
        }
        if self.ecn {
            bits |= opt::ECN;
        }
        bits
    }
}

impl TcpEngine {
    /// `tcp_conn_request`: a SYN for a listener.
    pub(super) fn conn_request(&mut self, rx: &Rx<'_, '_>, listener: &Arc<Listener>, c: &Counters) {
        // tcp_v6_conn_request: a v4-mapped source over IPv6 is a header error.
        if !rx.key.is_v4() && rx.key.peer >> 32 == 0xffff {
            c.inc(Counter::Ip6InHdrErrors);
            return;
        }
        // A copy of plain data, not an Arc clone (an atomic RMW) per segment.
        let s = *self.sysctls;
        let Some(want_cookie) = syn_flood_action(&s, listener, c) else { return };
        if listener.sk_acceptq_is_full() {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return;
        }
        let opts = SynOptions::parse(rx.input.seg.options());
        let n = Negotiation::new(&s, self.cfg.mss_of(&rx.key), &opts, rx.input, want_cookie);
        if !want_cookie && s.tcp_syncookies == 0 && !self.backlog_room(&s, listener, rx.key.peer) {
            c.inc(Counter::ListenDrops);
            return;
        }
        let ts_off = if n.ts.is_some() { self.ts_offs.get(&rx.key) } else { 0 };
        if want_cookie {
            self.cookie_synack(rx, listener, &n, ts_off, c);
            return;
        }
        let iss = self.isn.isn(rx.now, &rx.key);
        let syn_data = !rx.input.seg.payload().is_empty();
        let tfo = self.try_fastopen(&s, listener, &rx.key, opts.fastopen.as_ref(), syn_data, c);
        let ip_options = if rx.input.ip.has_options() {
            self.save_ip_options(rx, if tfo.child { EchoIp::Once } else { EchoIp::Request })
        } else {
            EchoIp::No
        };
        let synack = request_synack(rx, listener, &n, iss, ts_off, tfo.cookie, ip_options);
        if tfo.child {
            self.fastopen_child(rx, listener, &n, iss, ts_off, synack, c);
        } else {
            let synack = self.add_request(rx, listener.clone(), &n, iss, ts_off, synack);
            self.synacks.push(synack);
        }
    }

    /// "Kill the following clause, if you dislike this way": without
    /// cookies the last quarter of the SYN backlog is for proven peers
    /// (`tcp_peer_is_proven`).
    pub(super) fn backlog_room(&self, s: &Sysctls, listener: &Listener, peer: u128) -> bool {
        let max = s.tcp_max_syn_backlog;
        max.saturating_sub(listener.reqsk_queue_len()) >= (max >> 2) || self.proven.contains(&peer)
    }

    /// `cookie_v4_init_sequence`: the SYN-ACK carries the connection in its
    /// ISN (and, with timestamps, its options in the TSval); nothing is kept.
    #[inline]
    fn cookie_synack(&mut self, rx: &Rx<'_, '_>, listener: &Listener, n: &Negotiation, ts_off: u32, c: &Counters) {
        let ip_options = if rx.input.ip.has_options() { self.save_ip_options(rx, EchoIp::Once) } else { EchoIp::No };
        let p = self.cookie_synack_of(rx, listener, n, ts_off, c, ip_options);
        self.synacks.push(p);
    }
    /// The cookie SYN-ACK for `rx` (`cookie_v4_init_sequence` and the TSval
    /// that carries the options, `cookie_init_timestamp`).
    #[inline(always)]
    pub(super) fn cookie_synack_of(
        &self,
        rx: &Rx<'_, '_>,
        listener: &Listener,
        n: &Negotiation,
        ts_off: u32,
        c: &Counters,
        ip_options: EchoIp,
    ) -> PendingSynAck {
        let (now, client_isn) = (rx.now, rx.input.seg.seq_number());
        let (cookie, _mss) = syncookie::make(&self.secrets.syncookie, &rx.key, client_isn, n.mss, self.cookie_counter(now));
        c.inc(Counter::SyncookiesSent);
        listener.synq_overflow(now);
        let opts = syncookie::CookieOpts { wscale: n.wscale, sack: n.sack, ecn: n.ecn };
        // A match, not a closure: the closure is a call of its own once the
        // lane's code outgrows the inliner's budget.
        #[allow(clippy::manual_map)]
        let tsval = match n.ts {
            Some((tsval, _)) => Some((self.cookie_tsval(now, ts_off, opts), tsval)),
            None => None,
        };
        PendingSynAck {
            route: rx.route,
            key: rx.key,
            iss: cookie,
            ack: client_isn.wrapping_add(1),
            ts: tsval,
            sack: n.sack,
            wscale: n.wscale.is_some(),
            ecn: n.ecn,
            fastopen: None,
            sample: Some((listener.id, now)),
            retransmit: false,
            ip_options,
        }
    }

    /// `tcp_v4_save_options`: what the SYN-ACK echoes of the SYN's IP
    /// options (record route, timestamp), kept by flow; `kind` when there
    /// is something to echo. A prespecified timestamp slot is ours when it
    /// names the address the SYN was sent to.
    #[cold]
    fn save_ip_options(&mut self, rx: &Rx<'_, '_>, kind: EchoIp) -> EchoIp {
        let Some(ip) = rx.input.ip.v4() else { return EchoIp::No };
        let (opts, ours) = (ip.options(), rx.key.local_v4().to_be_bytes());
        let Ok(o) = ipv4_options::compile(opts, |a| a == ours, false) else { return EchoIp::No };
        let time = self.cfg.utc_ms_since_midnight(rx.now);
        match OptionsEcho::of_received(opts, &o, ours, time, |a| a == ours) {
            Some(echo) => {
                self.synacks.save_ip_echo(rx.key, echo, rx.now);
                kind
            }
            None => EchoIp::No,
        }
    }

    /// `tcp_try_fastopen`: accept the SYN's data at once when its cookie is
    /// valid (or none is required), and pick the cookie the SYN-ACK carries.
    #[inline]
    fn try_fastopen(
        &self,
        s: &Sysctls,
        listener: &Listener,
        key: &FlowKey,
        offered: Option<&FastOpenCookie>,
        syn_data: bool,
        c: &Counters,
    ) -> FastOpen {
        let mut out = FastOpen::default();
        if offered.is_some_and(|f| f.is_empty()) {
            c.inc(Counter::TcpFastOpenCookieReqd);
        }
        if s.tcp_fastopen & tfo::SERVER_ENABLE == 0 || !(syn_data || offered.is_some()) {
            return out;
        }
        let max = listener.fastopen_max_qlen();
        if max == 0 {
            // TFO not enabled on this listener: plain handshake, no cookie.
            return out;
        }
        if listener.fastopen_qlen() >= max {
            c.inc(Counter::TcpFastOpenListenOverflow);
            return out;
        }
        let exp = offered.is_some_and(|f| f.is_experimental());
        let fresh = || FastOpenCookie::new(&fastopen::gen(&self.secrets.tfo, key)).ok().map(|c| c.with_experimental(exp));
        // A valid cookie (or none required) makes the child at once, with
        // or without data: "Data-less SYN with valid cookie is allowed to
        // send data in SYN_RECV state" (tcp_try_fastopen).
        let no_cookie = s.tcp_fastopen & tfo::SERVER_COOKIE_NOT_REQD != 0;
        let mut create_child = no_cookie;
        match offered {
            _ if no_cookie => {}
            Some(f) if f.is_empty() => out.cookie = fresh(),
            Some(f) => match fastopen::check(&self.secrets.tfo, key, f.as_bytes()) {
                TfoCookieCheck::Valid => create_child = true,
                TfoCookieCheck::ValidBackup => {
                    create_child = true;
                    out.cookie = fresh();
                }
                TfoCookieCheck::Invalid => {
                    c.inc(Counter::TcpFastOpenPassiveFail);
                    out.cookie = fresh();
                }
            },
            None => {}
        }
        if create_child {
            if listener.fastopenq_try_add() {
                out.child = true;
            } else {
                c.inc(Counter::TcpFastOpenListenOverflow);
            }
        }
        out
    }

    /// `tcp_fastopen_create_child`: the child exists at once, with the
    /// SYN's data; the SYN-ACK acknowledges it.
    #[allow(clippy::too_many_arguments)]
    fn fastopen_child(
        &mut self,
        rx: &Rx<'_, '_>,
        listener: &Arc<Listener>,
        n: &Negotiation,
        iss: u32,
        ts_off: u32,
        synack: PendingSynAck,
        c: &Counters,
    ) {
        let seg = &rx.input.seg;
        let (now, client_isn, data) = (rx.now, seg.seq_number(), seg.payload());
        let params = ChildParams {
            origin: Origin::FastOpen,
            iss,
            irs: client_isn,
            snd_wscale: n.wscale,
            rcv_wscale: self.cfg.rcv_wscale,
            sack: n.sack,
            ecn: n.ecn,
            ts: n.ts.map(|(tsval, _)| (tsval, ts_off)),
            syn_at: now,
            peer_mss: n.peer_mss,
            peer_window: u32::from(seg.window_len()),
            initial_data: data,
            rtt_sample: None,
        };
        match self.create_child(now, rx.key, rx.hash, rx.route.peer_mac, listener, params, c) {
            Ok(id) => {
                c.inc(Counter::TcpFastOpenPassive);
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.tfo_pending = Some(listener.clone());
                }
                // The SYN-ACK acknowledges the data too.
                let ack = client_isn.wrapping_add(1).wrapping_add(data.len() as u32);
                self.synacks.push(PendingSynAck { ack, ..synack });
            }
            Err(_) => {
                listener.fastopenq_removed();
                c.inc(Counter::TcpFastOpenPassiveFail);
            }
        }
    }

    /// A request sock and its SYN-ACK timer (`inet_csk_reqsk_queue_hash_add`);
    /// gives back its first SYN-ACK.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn add_request(
        &mut self,
        rx: &Rx<'_, '_>,
        listener: Arc<Listener>,
        n: &Negotiation,
        iss: u32,
        ts_off: u32,
        synack: PendingSynAck,
    ) -> PendingSynAck {
        let (now, key, seg) = (rx.now, rx.key, &rx.input.seg);
        let client_isn = seg.seq_number();
        let timer = self.synack_timers.arm(now, 0, TCP_TIMEOUT_INIT, key);
        listener.reqsk_queue_added();
        let req = RequestSock {
            listener,
            syn_at: now,
            timer,
            snt_isn: iss,
            rcv_isn: client_isn,
            ts_recent: n.ts.map_or(0, |(tsval, _)| tsval),
            ts_off,
            snt_tsval_last: synack.ts.map_or(0, |(tsval, _)| tsval),
            last_oow_ack: 0,
            mss: n.mss,
            peer_window: seg.window_len(),
            snd_wscale: n.wscale.unwrap_or(NO_WSCALE),
            rcv_wscale: self.cfg.rcv_wscale,
            opts: n.opt_bits() | if synack.ip_options == EchoIp::Request { opt::IP_OPTIONS } else { 0 },
            num_timeout: 0,
            num_retrans: 0,
            peer_mac: rx.route.peer_mac,
        };
        self.reqs.insert(key, req);
        synack
    }
}

/// The first SYN-ACK of a request sock or a TFO child (`tcp_make_synack`):
/// our ISN, and our clock plus the pair's offset in TSval.
#[inline(always)]
pub(super) fn request_synack(
    rx: &Rx<'_, '_>,
    listener: &Listener,
    n: &Negotiation,
    iss: u32,
    ts_off: u32,
    fastopen: Option<FastOpenCookie>,
    ip_options: EchoIp,
) -> PendingSynAck {
    let tsval = n.ts.map(|(peer_tsval, _)| ((rx.now.as_millis() as u32).wrapping_add(ts_off), peer_tsval));
    PendingSynAck {
        route: rx.route,
        key: rx.key,
        iss,
        ack: rx.input.seg.seq_number().wrapping_add(1),
        ts: tsval,
        sack: n.sack,
        wscale: n.wscale.is_some(),
        ecn: n.ecn,
        fastopen,
        sample: Some((listener.id, rx.now)),
        retransmit: false,
        ip_options,
    }
}
