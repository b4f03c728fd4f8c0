//! The worker's TCP layer: the listen path of Linux, per core.
//!
//! For every TCP segment the host hands up, in Linux's order
//! (`tcp_v4_rcv`): an established connection of this worker, else a request
//! sock of this worker (`tcp_check_req`), else a listener from the
//! listening hash (`tcp_v4_do_rcv` in LISTEN: `tcp_conn_request` for a SYN,
//! `cookie_v4_check` for an ACK). Request socks and connections live in this
//! worker's tables only (RSS keeps a flow on one queue); the listener's queue
//! lengths are the only shared state, and they are atomics.
//!
//! Established connections are kept minimal here: the handshake, the accept
//! queue and RST are what the listen path needs. The data path is the TCB's.

pub mod output;
pub mod reqsk;
#[cfg(test)]
mod tests;

use crate::engine::fastopen::{self, TfoCookieCheck};
use crate::engine::host::{send_reset, HostTx, TcpInput, TcpLayer, Taken};
use crate::engine::isn;
use crate::engine::listen::{ChildSock, Listener};
use crate::engine::secrets::Secrets;
use crate::engine::socket::{ControlCmd, Stack};
use crate::engine::syncookie;
use crate::engine::sysctl::{tfo, Sysctls};
use crate::engine::time::{Duration, Instant};
use crate::engine::timer_wheel::TimerWheel;
use crate::engine::tx::TxSink;
use crate::telemetry::{Counter, Counters};
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use output::{send_segment, FlowKey, OutSegment, Route, SynAckOptions};
use reqsk::{opt, RequestSock, NO_WSCALE};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddrV4;
use std::sync::Arc;

/// First SYN-ACK retransmission timeout (Linux TCP_TIMEOUT_INIT).
pub const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// Cap of the SYN-ACK backoff (Linux TCP_RTO_MAX).
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// MSS assumed when a SYN carries none (RFC 9293 3.7.1, Linux TCP_MSS_DEFAULT).
pub const TCP_MSS_DEFAULT: u16 = 536;
/// Linux's `tcp_invalid_ratelimit`: at most one answer to out-of-window
/// segments per request every 500 ms.
pub const TCP_INVALID_RATELIMIT: Duration = Duration::from_millis(500);
/// Proven peers remembered (Linux keeps RTT metrics per destination).
const MAX_PROVEN_PEERS: usize = 65536;

/// Per-worker TCP settings.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    pub worker: u16,
    /// Our MSS (MTU 1500 - 40), announced in every SYN-ACK.
    pub mss: u16,
    /// Our window scale (Linux picks 7 for its default tcp_rmem).
    pub rcv_wscale: u8,
    /// Window in the SYN-ACK (never scaled). Linux sends 65160 (45 x 1448).
    pub synack_window: u16,
    /// Established connections this worker may hold; beyond, handshakes are
    /// refused as an overflow.
    pub max_conns: usize,
}

impl TcpConfig {
    pub fn new(worker: u16) -> TcpConfig {
        TcpConfig { worker, mss: 1460, rcv_wscale: 7, synack_window: 65160, max_conns: 1 << 20 }
    }
}

/// What a connection was born from (for counters and latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    RequestSock,
    Cookie,
    FastOpen,
}

/// An established connection as the listen path knows it.
#[derive(Clone, Debug)]
pub struct Established {
    pub key: FlowKey,
    pub listener_id: u64,
    pub origin: Origin,
    /// Our next sequence number and the peer's.
    pub snd_nxt: u32,
    pub rcv_nxt: u32,
    pub mss: u16,
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: u8,
    pub sack: bool,
    pub ecn: bool,
    /// (ts_recent, ts_off) when timestamps are on.
    pub ts: Option<(u32, u32)>,
    pub syn_at: Instant,
    pub established_at: Instant,
    /// A TFO child whose SYN-ACK is not acknowledged yet (holds a fastopenq slot).
    pub tfo_pending: Option<Arc<Listener>>,
    /// Bytes received in order (a TFO SYN's data included).
    pub bytes_received: u64,
}

/// This worker's established connections: ids for ChildSocks, lookup by flow.
#[derive(Default)]
pub struct ConnTable {
    by_key: HashMap<FlowKey, u32>,
    slots: Vec<(u8, Option<Established>)>,
    free: Vec<u32>,
}

const CONN_INDEX_BITS: u32 = 24;

impl ConnTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn insert(&mut self, conn: Established) -> Option<u32> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < (1 << CONN_INDEX_BITS) => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let slot = &mut self.slots[idx as usize];
        slot.0 = slot.0.wrapping_add(1);
        let id = (u32::from(slot.0) << CONN_INDEX_BITS) | idx;
        self.by_key.insert(conn.key, id);
        slot.1 = Some(conn);
        Some(id)
    }

    pub fn id_of(&self, key: &FlowKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    pub fn get(&self, id: u32) -> Option<&Established> {
        let (gen, conn) = self.slots.get((id & ((1 << CONN_INDEX_BITS) - 1)) as usize)?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_ref()
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Established> {
        let (gen, conn) = self.slots.get_mut((id & ((1 << CONN_INDEX_BITS) - 1)) as usize)?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_mut()
    }

    fn remove(&mut self, id: u32) -> Option<Established> {
        let idx = id & ((1 << CONN_INDEX_BITS) - 1);
        let (gen, slot) = self.slots.get_mut(idx as usize)?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        let conn = slot.take()?;
        self.by_key.remove(&conn.key);
        self.free.push(idx);
        Some(conn)
    }
}

/// The parameters a connection is built from, from a request sock, a
/// cookie or a TFO SYN.
struct ChildParams {
    origin: Origin,
    iss: u32,
    irs: u32,
    mss: u16,
    snd_wscale: Option<u8>,
    rcv_wscale: u8,
    sack: bool,
    ecn: bool,
    ts: Option<(u32, u32)>,
    syn_at: Instant,
    /// Sequence space the peer already used beyond its SYN (TFO data).
    data_len: u32,
}

/// Timer tokens of this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    SynAck(FlowKey),
}

pub struct TcpEngine {
    cfg: TcpConfig,
    stack: Arc<Stack>,
    secrets: Secrets,
    sysctls: Arc<Sysctls>,
    reqs: HashMap<FlowKey, RequestSock>,
    conns: ConnTable,
    timers: TimerWheel<Timer>,
    /// Peers that completed a handshake: they keep the last quarter of
    /// tcp_max_syn_backlog when cookies are off (`tcp_peer_is_proven`).
    proven: HashSet<u32>,
    /// Last out-of-window answer per request (`last_oow_ack_time`), by flow.
    oow_last: HashMap<FlowKey, Instant>,
    /// Seed for a software flow hash when the NIC gives none.
    hash_seed: u64,
}

impl TcpEngine {
    pub fn new(cfg: TcpConfig, stack: Arc<Stack>, secrets: Secrets, now: Instant) -> TcpEngine {
        let sysctls = stack.sysctls();
        let hash_seed = u64::from(secrets.isn.to_bytes()[0]) << 56 | 0x9e37_79b9_7f4a_7c15;
        TcpEngine {
            cfg,
            stack,
            secrets,
            sysctls,
            reqs: HashMap::new(),
            conns: ConnTable::default(),
            timers: TimerWheel::new(now, 1024),
            proven: HashSet::new(),
            oow_last: HashMap::new(),
            hash_seed,
        }
    }

    pub fn request_socks(&self) -> usize {
        self.reqs.len()
    }

    pub fn connections(&self) -> &ConnTable {
        &self.conns
    }

    pub fn secrets_mut(&mut self) -> &mut Secrets {
        &mut self.secrets
    }

    /// Flow hash for reuseport selection when the NIC gave none (Linux's
    /// `inet_ehashfn` is keyed too, so peers cannot aim at one member).
    fn flow_hash(&self, key: &FlowKey) -> u32 {
        let mut x = (u64::from(key.peer) << 32 | u64::from(key.local)) ^ self.hash_seed;
        x ^= u64::from(key.peer_port) << 16 | u64::from(key.local_port);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as u32
    }

    /// Timers and control-plane commands; call every loop iteration.
    pub fn poll(&mut self, now: Instant, host: &mut HostTx<'_>, tx: &mut impl TxSink) {
        while let Some(cmd) = self.stack.pop_command(self.cfg.worker) {
            match cmd {
                ControlCmd::Reset(child) => self.abort(now, child.conn_id, host, tx),
            }
        }
        while let Some(t) = self.timers.poll(now) {
            match t {
                Timer::SynAck(key) => self.reqsk_timer(now, key, host, tx),
            }
        }
    }

    /// Re-read the sysctls (cheap; call every few milliseconds, not per packet).
    pub fn refresh_sysctls(&mut self) {
        self.sysctls = self.stack.sysctls();
    }

    /// Reset and forget an established connection (the application's abort,
    /// or a child whose listener closed). RST|ACK as Linux's
    /// tcp_send_active_reset.
    pub fn abort(&mut self, now: Instant, conn_id: u32, host: &mut HostTx<'_>, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.remove(conn_id) else { return };
        if let Some(l) = &conn.tfo_pending {
            l.fastopenq_removed();
        }
        let Some(peer_mac) = host.neighbors.lookup(now, conn.key.peer_ip()) else { return };
        let route = Route { our_mac: host.mac, peer_mac };
        let seg = OutSegment {
            seq: conn.snd_nxt,
            ack: conn.rcv_nxt,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            syn_options: None,
            timestamps: None,
            payload: &[],
        };
        if send_segment(tx, route, conn.key, &seg) {
            host.counters.inc(Counter::TcpOutSegs);
            host.counters.inc(Counter::TcpOutRsts);
            host.counters.inc(Counter::TxFrames);
        }
    }

    fn synack_options(&self, req_wscale: Option<u8>, sack: bool, ts: Option<(u32, u32)>) -> SynAckOptions {
        SynAckOptions {
            mss: self.cfg.mss,
            wscale: req_wscale.map(|_| self.cfg.rcv_wscale),
            sack,
            timestamps: ts,
            fastopen: None,
        }
    }

    /// `tcp_conn_request`: a SYN for a listener.
    fn conn_request(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        listener: Arc<Listener>,
        input: &TcpInput<'_>,
        route: Route,
        c: &Counters,
        tx: &mut impl TxSink,
    ) {
        let s = self.sysctls.clone();
        let seg = &input.seg;
        let flags = seg.flags();

        let mut want_cookie = false;
        if s.tcp_syncookies == 2 || listener.reqsk_queue_is_full() {
            // tcp_syn_flood_action
            if s.tcp_syncookies != 0 {
                want_cookie = true;
                c.inc(Counter::TcpReqQFullDoCookies);
            } else {
                c.inc(Counter::TcpReqQFullDrop);
                c.inc(Counter::ListenDrops);
                return;
            }
        }
        if listener.sk_acceptq_is_full() {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return;
        }

        let opts = SynOptions::parse(seg.options());
        let mut ts = if s.tcp_timestamps { opts.timestamps } else { None };
        let mut sack = s.tcp_sack && opts.sack_permitted;
        let mut wscale = if s.tcp_window_scaling { opts.wscale } else { None };
        // tcp_ecn_create_request: ECE and CWR in the SYN, a non-ECT IP header.
        let mut ecn = s.tcp_ecn != 0
            && flags.contains(TcpFlags::ECE | TcpFlags::CWR)
            && input.ip.ecn() == 0;
        if want_cookie && ts.is_none() {
            // Without timestamps a cookie cannot carry them (tcp_clear_options).
            sack = false;
            wscale = None;
            ecn = false;
            ts = None;
        }
        let peer_mss = opts.mss.unwrap_or(TCP_MSS_DEFAULT);
        let mss = peer_mss.min(self.cfg.mss);

        if !want_cookie && s.tcp_syncookies == 0 {
            // "Kill the following clause, if you dislike this way": without
            // cookies the last quarter of the SYN backlog is for proven peers.
            let max = s.tcp_max_syn_backlog;
            if max.saturating_sub(listener.reqsk_queue_len()) < (max >> 2) && !self.proven.contains(&key.peer) {
                c.inc(Counter::ListenDrops);
                return;
            }
        }

        let ts_off = if ts.is_some() { isn::ts_off(self.secrets.ts_off, key.local, key.peer) } else { 0 };
        let ts_now = now.as_millis() as u32;
        let client_isn = seg.seq_number();
        let data = seg.payload();

        if want_cookie {
            let (cookie, _mss) = syncookie::make(
                &self.secrets.syncookie,
                key.peer,
                key.local,
                key.peer_port,
                key.local_port,
                client_isn,
                mss,
                syncookie::counter(now),
            );
            c.inc(Counter::SyncookiesSent);
            listener.synq_overflow(now);
            let tsval = ts.map(|(tsval, _)| (syncookie::encode_ts(ts_now, wscale, sack, ecn).wrapping_add(ts_off), tsval));
            let opts = self.synack_options(wscale, sack, tsval);
            self.send_synack(route, key, cookie, client_isn.wrapping_add(1), ecn, &opts, c, tx);
            return;
        }

        let iss = isn::isn(self.secrets.isn, now, key.local, key.local_port, key.peer, key.peer_port);
        let tsval = ts.map(|(peer_tsval, _)| (ts_now.wrapping_add(ts_off), peer_tsval));
        let mut synack_opts = self.synack_options(wscale, sack, tsval);

        // tcp_try_fastopen
        let mut fastopen_child = false;
        if opts.fastopen.as_ref().is_some_and(|f| f.is_empty()) {
            c.inc(Counter::TcpFastOpenCookieReqd);
        }
        let syn_data = !data.is_empty();
        if s.tcp_fastopen & tfo::SERVER_ENABLE != 0 && (syn_data || opts.fastopen.is_some()) {
            let max = listener.fastopen_max_qlen();
            if max == 0 {
                // TFO not enabled on this listener: plain handshake, no cookie.
            } else if listener.fastopen_qlen() >= max {
                c.inc(Counter::TcpFastOpenListenOverflow);
            } else {
                let exp = opts.fastopen.as_ref().is_some_and(|f| f.is_experimental());
                let fresh = || {
                    FastOpenCookie::new(&fastopen::gen(&self.secrets.tfo, key.peer, key.local))
                        .ok()
                        .map(|c| c.with_experimental(exp))
                };
                let no_cookie = s.tcp_fastopen & tfo::SERVER_COOKIE_NOT_REQD != 0;
                let mut accept_data = syn_data && no_cookie;
                match &opts.fastopen {
                    _ if accept_data => {}
                    Some(f) if f.is_empty() => synack_opts.fastopen = fresh(),
                    Some(f) => match fastopen::check(&self.secrets.tfo, key.peer, key.local, f.as_bytes()) {
                        TfoCookieCheck::Valid => accept_data = syn_data,
                        TfoCookieCheck::ValidBackup => {
                            accept_data = syn_data;
                            synack_opts.fastopen = fresh();
                        }
                        TfoCookieCheck::Invalid => {
                            c.inc(Counter::TcpFastOpenPassiveFail);
                            synack_opts.fastopen = fresh();
                        }
                    },
                    None => {}
                }
                if accept_data {
                    if listener.fastopenq_try_add() {
                        fastopen_child = true;
                    } else {
                        c.inc(Counter::TcpFastOpenListenOverflow);
                    }
                }
            }
        }

        if fastopen_child {
            // The child exists at once, with the SYN's data; the SYN-ACK acknowledges it.
            let params = ChildParams {
                origin: Origin::FastOpen,
                iss,
                irs: client_isn,
                mss,
                snd_wscale: wscale,
                rcv_wscale: self.cfg.rcv_wscale,
                sack,
                ecn,
                ts: ts.map(|(tsval, _)| (tsval, ts_off)),
                syn_at: now,
                data_len: data.len() as u32,
            };
            match self.create_child(now, key, hash, &listener, params, c) {
                Ok(id) => {
                    c.inc(Counter::TcpFastOpenPassive);
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.tfo_pending = Some(listener.clone());
                    }
                    let ack = client_isn.wrapping_add(1).wrapping_add(data.len() as u32);
                    self.send_synack(route, key, iss, ack, ecn, &synack_opts, c, tx);
                }
                Err(()) => {
                    listener.fastopenq_removed();
                    c.inc(Counter::TcpFastOpenPassiveFail);
                }
            }
            return;
        }

        // A request sock and its SYN-ACK timer (inet_csk_reqsk_queue_hash_add).
        let timer = self.timers.schedule(now + TCP_TIMEOUT_INIT, Timer::SynAck(key));
        let mut opt_bits = 0;
        if sack {
            opt_bits |= opt::SACK;
        }
        if ts.is_some() {
            opt_bits |= opt::TSTAMP;
        }
        if ecn {
            opt_bits |= opt::ECN;
        }
        let req = RequestSock {
            listener: listener.clone(),
            syn_at: now,
            timer,
            snt_isn: iss,
            rcv_isn: client_isn,
            ts_recent: ts.map_or(0, |(tsval, _)| tsval),
            ts_off,
            mss,
            peer_window: seg.window_len(),
            snd_wscale: wscale.unwrap_or(NO_WSCALE),
            rcv_wscale: self.cfg.rcv_wscale,
            opts: opt_bits,
            num_timeout: 0,
            num_retrans: 0,
        };
        self.reqs.insert(key, req);
        listener.reqsk_queue_added();
        self.send_synack(route, key, iss, client_isn.wrapping_add(1), ecn, &synack_opts, c, tx);
    }

    #[allow(clippy::too_many_arguments)]
    fn send_synack(
        &self,
        route: Route,
        key: FlowKey,
        iss: u32,
        ack: u32,
        ecn: bool,
        opts: &SynAckOptions,
        c: &Counters,
        tx: &mut impl TxSink,
    ) -> bool {
        let wire_opts = opts.to_wire();
        let mut flags = TcpFlags::SYN | TcpFlags::ACK;
        if ecn {
            flags |= TcpFlags::ECE;
        }
        let seg = OutSegment {
            seq: iss,
            ack,
            flags,
            window: self.cfg.synack_window,
            syn_options: Some(&wire_opts),
            timestamps: None,
            payload: &[],
        };
        let sent = send_segment(tx, route, key, &seg);
        if sent {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
        }
        sent
    }

    /// Resend a request's SYN-ACK (`inet_rtx_syn_ack`).
    fn rtx_synack(&mut self, now: Instant, key: FlowKey, route: Route, c: &Counters, tx: &mut impl TxSink) {
        let Some(req) = self.reqs.get_mut(&key) else { return };
        req.num_retrans = req.num_retrans.saturating_add(1);
        let ts = req.has(opt::TSTAMP).then(|| ((now.as_millis() as u32).wrapping_add(req.ts_off), req.ts_recent));
        let opts = SynAckOptions {
            mss: self.cfg.mss,
            wscale: req.snd_wscale().map(|_| req.rcv_wscale),
            sack: req.has(opt::SACK),
            timestamps: ts,
            fastopen: None,
        };
        let (iss, ack, ecn) = (req.snt_isn, req.rcv_isn.wrapping_add(1), req.has(opt::ECN));
        if self.send_synack(route, key, iss, ack, ecn, &opts, c, tx) {
            c.inc(Counter::TcpSynRetrans);
        }
    }

    /// `reqsk_timer_handler`: retransmit the SYN-ACK with Linux's pruning
    /// of old requests when the queue is more than half full, or let the
    /// request die after tcp_synack_retries.
    fn reqsk_timer(&mut self, now: Instant, key: FlowKey, host: &mut HostTx<'_>, tx: &mut impl TxSink) {
        let c = host.counters;
        let Some(req) = self.reqs.get(&key) else { return };
        let mut listener = req.listener.clone();
        if listener.is_closed() {
            match self.migrate(&listener, &key, c) {
                Some(to) => {
                    self.move_request(&key, &to);
                    listener = to;
                }
                None => {
                    self.drop_request(&key);
                    return;
                }
            }
        }
        let Some(req) = self.reqs.get_mut(&key) else { return };

        let mut max_retries = u32::from(self.sysctls.tcp_synack_retries);
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
        // syn_ack_recalc
        let defer = listener.defer_accept_retrans();
        let num_timeout = u32::from(req.num_timeout);
        let acked = req.has(opt::ACKED);
        let (expire, resend) = if defer == 0 {
            (num_timeout >= max_retries, true)
        } else {
            (
                num_timeout >= max_retries && (!acked || num_timeout >= defer),
                !acked || num_timeout + 1 >= defer,
            )
        };
        if expire {
            c.inc(Counter::TcpReqTimeouts);
            self.drop_request(&key);
            return;
        }
        if req.num_timeout == 0 {
            listener.reqsk_queue_aged();
        }
        req.num_timeout = req.num_timeout.saturating_add(1);
        let timeout = TCP_TIMEOUT_INIT.saturating_mul(1 << req.num_timeout.min(8)).min(TCP_RTO_MAX);
        req.timer = self.timers.schedule(now + timeout, Timer::SynAck(key));
        if resend {
            if let Some(peer_mac) = host.neighbors.lookup(now, key.peer_ip()) {
                let route = Route { our_mac: host.mac, peer_mac };
                self.rtx_synack(now, key, route, c, tx);
            }
        }
    }

    /// Remove a request sock and give back its queue slot.
    fn drop_request(&mut self, key: &FlowKey) -> Option<RequestSock> {
        let req = self.reqs.remove(key)?;
        self.timers.cancel(req.timer);
        self.oow_last.remove(key);
        req.listener.reqsk_queue_removed(req.is_young());
        Some(req)
    }

    /// Move a migrated request's queue slot to its new listener (Linux:
    /// `reqsk_queue_migrated` on the new queue, the old request dropped from
    /// the old one), so both listeners' qlen/young stay exact.
    fn move_request(&mut self, key: &FlowKey, to: &Arc<Listener>) {
        let Some(req) = self.reqs.get_mut(key) else { return };
        let young = req.is_young();
        req.listener.reqsk_queue_removed(young);
        to.reqsk_queue_added();
        if !young {
            to.reqsk_queue_aged();
        }
        req.listener = to.clone();
    }

    /// A request or child of a closed listener: another member of its
    /// reuseport group, or none (`reuseport_migrate_sock`).
    fn migrate(&mut self, closed: &Listener, key: &FlowKey, c: &Counters) -> Option<Arc<Listener>> {
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

    /// `tcp_check_req`: a segment for a request sock.
    fn check_req(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        input: &TcpInput<'_>,
        route: Route,
        c: &Counters,
        tx: &mut impl TxSink,
    ) {
        let seg = &input.seg;
        let flags = seg.flags();
        let flg = flags & (TcpFlags::RST | TcpFlags::SYN | TcpFlags::ACK);
        let Some(req) = self.reqs.get(&key) else { return };
        let seq = seg.seq_number();
        let rcv_nxt = req.rcv_isn.wrapping_add(1);
        let seg_ts = if req.has(opt::TSTAMP) { crate::wire::tcp_options::timestamps(seg.options()) } else { None };
        // PAWS (RFC 7323 5): a TSval older than the SYN's is a stale duplicate.
        let paws_reject = !flags.contains(TcpFlags::RST)
            && seg_ts.is_some_and(|(tsval, _)| (tsval.wrapping_sub(req.ts_recent) as i32) < 0);

        // A retransmitted SYN: resend the SYN-ACK (rate limited).
        if seq == req.rcv_isn && flg == TcpFlags::SYN && !paws_reject {
            if self.oow_allowed(now, key) {
                self.rtx_synack(now, key, route, c, tx);
            }
            return;
        }
        // An ACK that does not acknowledge our SYN-ACK: RST (Linux returns
        // the listener, whose LISTEN state answers an ACK with a reset).
        if flags.contains(TcpFlags::ACK) && seg.ack_number() != req.snt_isn.wrapping_add(1) {
            c.inc(Counter::TcpAckNoMatch);
            send_reset(input, route.our_mac, c, tx);
            return;
        }
        let end_seq = seq.wrapping_add(seg.seq_len() as u32);
        let window = u32::from(self.cfg.synack_window);
        if paws_reject || !in_window(seq, end_seq, rcv_nxt, rcv_nxt.wrapping_add(window)) {
            // tcp_oow_rate_limited: "Data packets without SYNs are not
            // likely part of an ACK loop": only bare ACKs and SYNs are limited.
            let data_no_syn = end_seq != seq && !flags.contains(TcpFlags::SYN);
            if !flags.contains(TcpFlags::RST) && (data_no_syn || self.oow_allowed(now, key)) {
                self.send_req_ack(now, key, route, c, tx);
            }
            return;
        }
        if flg.intersects(TcpFlags::RST | TcpFlags::SYN) {
            // embryonic_reset
            c.inc(Counter::TcpAttemptFails);
            if !flags.contains(TcpFlags::RST) {
                send_reset(input, route.our_mac, c, tx);
            }
            if self.drop_request(&key).is_some() {
                c.inc(Counter::EmbryonicRsts);
            }
            return;
        }
        if !flags.contains(TcpFlags::ACK) {
            return;
        }
        let Some(req) = self.reqs.get_mut(&key) else { return };
        if let Some((tsval, _)) = seg_ts {
            req.ts_recent = tsval;
        }
        // TCP_DEFER_ACCEPT: a bare ACK does not complete the handshake yet.
        let defer = req.listener.defer_accept_retrans();
        if u32::from(req.num_timeout) < defer && end_seq == rcv_nxt {
            req.opts |= opt::ACKED;
            c.inc(Counter::TcpDeferAcceptDrop);
            return;
        }
        let mut listener = req.listener.clone();
        if listener.is_closed() {
            match self.migrate(&listener, &key, c) {
                Some(to) => {
                    self.move_request(&key, &to);
                    listener = to;
                }
                None => {
                    send_reset(input, route.our_mac, c, tx);
                    self.drop_request(&key);
                    return;
                }
            }
        }
        let Some(req) = self.reqs.get(&key) else { return };
        let params = ChildParams {
            origin: Origin::RequestSock,
            iss: req.snt_isn,
            irs: req.rcv_isn,
            mss: req.mss,
            snd_wscale: req.snd_wscale(),
            rcv_wscale: req.rcv_wscale,
            sack: req.has(opt::SACK),
            ecn: req.has(opt::ECN),
            ts: req.has(opt::TSTAMP).then_some((req.ts_recent, req.ts_off)),
            syn_at: req.syn_at,
            data_len: 0,
        };
        match self.create_child(now, key, hash, &listener, params, c) {
            Ok(id) => {
                self.drop_request(&key);
                self.deliver(id, seg.payload().len() as u32, flags.contains(TcpFlags::FIN));
            }
            Err(()) => {
                // listen_overflow
                if self.sysctls.tcp_abort_on_overflow {
                    send_reset(input, route.our_mac, c, tx);
                    if self.drop_request(&key).is_some() {
                        c.inc(Counter::EmbryonicRsts);
                    }
                } else if let Some(req) = self.reqs.get_mut(&key) {
                    req.opts |= opt::ACKED;
                }
            }
        }
    }

    /// `tcp_oow_rate_limited` for a request.
    fn oow_allowed(&mut self, now: Instant, key: FlowKey) -> bool {
        match self.oow_last.get(&key) {
            Some(last) if now.saturating_since(*last) < TCP_INVALID_RATELIMIT => false,
            _ => {
                self.oow_last.insert(key, now);
                true
            }
        }
    }

    /// `tcp_v4_reqsk_send_ack`: an ACK from a request sock (out-of-window segment).
    fn send_req_ack(&self, now: Instant, key: FlowKey, route: Route, c: &Counters, tx: &mut impl TxSink) {
        let Some(req) = self.reqs.get(&key) else { return };
        let ts = req.has(opt::TSTAMP).then(|| ((now.as_millis() as u32).wrapping_add(req.ts_off), req.ts_recent));
        let wscale = if req.snd_wscale().is_some() { req.rcv_wscale } else { 0 };
        let seg = OutSegment {
            seq: req.snt_isn.wrapping_add(1),
            ack: req.rcv_isn.wrapping_add(1),
            flags: TcpFlags::ACK,
            window: (u32::from(self.cfg.synack_window) >> wscale) as u16,
            syn_options: None,
            timestamps: ts,
            payload: &[],
        };
        if send_segment(tx, route, key, &seg) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
        }
    }

    /// `syn_recv_sock` + `inet_csk_reqsk_queue_add`: a new connection in this
    /// worker's table, appended to the listener's accept queue. `Err` when
    /// the accept queue is full (ListenOverflows, ListenDrops counted).
    fn create_child(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        listener: &Arc<Listener>,
        p: ChildParams,
        c: &Counters,
    ) -> Result<u32, ()> {
        if listener.sk_acceptq_is_full() || self.conns.len() >= self.cfg.max_conns {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(());
        }
        let conn = Established {
            key,
            listener_id: listener.id,
            origin: p.origin,
            snd_nxt: p.iss.wrapping_add(1),
            rcv_nxt: p.irs.wrapping_add(1).wrapping_add(p.data_len),
            mss: p.mss,
            snd_wscale: p.snd_wscale,
            rcv_wscale: p.rcv_wscale,
            sack: p.sack,
            ecn: p.ecn,
            ts: p.ts,
            syn_at: p.syn_at,
            established_at: now,
            tfo_pending: None,
            bytes_received: u64::from(p.data_len),
        };
        let Some(id) = self.conns.insert(conn) else {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(());
        };
        let child = ChildSock {
            worker: self.cfg.worker,
            conn_id: id,
            local: SocketAddrV4::new(key.local_ip(), key.local_port),
            peer: SocketAddrV4::new(key.peer_ip(), key.peer_port),
            established_at: now,
            flow_hash: hash,
        };
        if listener.acceptq_add(child).is_err() {
            self.conns.remove(id);
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(());
        }
        c.inc(Counter::TcpPassiveOpens);
        if self.proven.len() >= MAX_PROVEN_PEERS {
            self.proven.clear();
        }
        self.proven.insert(key.peer);
        Ok(id)
    }

    /// In-order bytes (and FIN) that arrived with the completing ACK.
    fn deliver(&mut self, id: u32, len: u32, fin: bool) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.rcv_nxt = conn.rcv_nxt.wrapping_add(len).wrapping_add(u32::from(fin));
            conn.bytes_received += u64::from(len);
        }
    }

    /// `cookie_v4_check`: an ACK for a listener with no request sock. `true`
    /// when it was consumed (a connection made, or dropped on overflow);
    /// `false` to answer with RST.
    fn cookie_check(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        listener: &Arc<Listener>,
        input: &TcpInput<'_>,
        c: &Counters,
    ) -> bool {
        let s = self.sysctls.clone();
        let seg = &input.seg;
        if s.tcp_syncookies == 0 || listener.synq_no_recent_overflow(now) {
            return false;
        }
        let client_isn = seg.seq_number().wrapping_sub(1);
        let cookie = seg.ack_number().wrapping_sub(1);
        let mss = match syncookie::check(
            &self.secrets.syncookie,
            key.peer,
            key.local,
            key.peer_port,
            key.local_port,
            client_isn,
            cookie,
            syncookie::counter(now),
        ) {
            Ok(mss) => mss,
            Err(_) => {
                c.inc(Counter::SyncookiesFailed);
                return false;
            }
        };
        c.inc(Counter::SyncookiesRecv);
        let seg_ts = crate::wire::tcp_options::timestamps(seg.options());
        let (mut wscale, mut sack, mut ecn, mut ts) = (None, false, false, None);
        if let Some((tsval, tsecr)) = seg_ts {
            let ts_off = isn::ts_off(self.secrets.ts_off, key.local, key.peer);
            let Some(o) = syncookie::decode_ts(tsecr.wrapping_sub(ts_off), &s) else {
                return false;
            };
            wscale = o.wscale;
            sack = o.sack;
            ecn = o.ecn;
            ts = Some((tsval, ts_off));
        }
        let params = ChildParams {
            origin: Origin::Cookie,
            iss: cookie,
            irs: client_isn,
            mss,
            snd_wscale: wscale,
            rcv_wscale: self.cfg.rcv_wscale,
            sack,
            ecn,
            ts,
            syn_at: now,
            data_len: 0,
        };
        if let Ok(id) = self.create_child(now, key, hash, listener, params, c) {
            let flags = seg.flags();
            self.deliver(id, seg.payload().len() as u32, flags.contains(TcpFlags::FIN));
        }
        // On overflow Linux drops the ACK silently (tcp_get_cookie_sock
        // returns no child): the client retransmits.
        true
    }

    /// A segment for an established connection of this worker. The data
    /// path belongs to the TCB; here: RST, the TFO handshake's end, and
    /// in-order sequence tracking with ACKs so peers do not retransmit.
    fn established(
        &mut self,
        now: Instant,
        id: u32,
        input: &TcpInput<'_>,
        route: Route,
        c: &Counters,
        tx: &mut impl TxSink,
    ) {
        let seg = &input.seg;
        let flags = seg.flags();
        let Some(conn) = self.conns.get_mut(id) else { return };
        if flags.contains(TcpFlags::RST) {
            if seg.seq_number() == conn.rcv_nxt {
                if let Some(l) = conn.tfo_pending.take() {
                    l.fastopenq_removed();
                }
                self.conns.remove(id);
            }
            return;
        }
        if flags.contains(TcpFlags::ACK) && seg.ack_number() == conn.snd_nxt {
            if let Some(l) = conn.tfo_pending.take() {
                l.fastopenq_removed();
            }
        }
        let len = seg.payload().len() as u32 + u32::from(flags.contains(TcpFlags::FIN));
        if len == 0 && !flags.contains(TcpFlags::SYN) {
            return;
        }
        if seg.seq_number() == conn.rcv_nxt {
            conn.rcv_nxt = conn.rcv_nxt.wrapping_add(len);
            conn.bytes_received += seg.payload().len() as u64;
        }
        let wscale = conn.snd_wscale.map_or(0, |_| conn.rcv_wscale);
        let ts = conn.ts.map(|(recent, off)| ((now.as_millis() as u32).wrapping_add(off), recent));
        let out = OutSegment {
            seq: conn.snd_nxt,
            ack: conn.rcv_nxt,
            flags: TcpFlags::ACK,
            window: (u32::from(self.cfg.synack_window) >> wscale) as u16,
            syn_options: None,
            timestamps: ts,
            payload: &[],
        };
        let key = conn.key;
        if send_segment(tx, route, key, &out) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
        }
    }
}

/// `tcp_in_window`: does [seq, end_seq) fall in [s_win, e_win)?
fn in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    let after = |a: u32, b: u32| (a.wrapping_sub(b) as i32) > 0;
    let before = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
    if seq == s_win {
        return true;
    }
    if after(end_seq, s_win) && before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

impl TcpLayer for TcpEngine {
    fn segment(&mut self, now: Instant, input: &TcpInput<'_>, host: &mut HostTx<'_>, tx: &mut impl TxSink) -> Taken {
        let ip = &input.ip;
        let seg = &input.seg;
        let key = FlowKey {
            local: ip.dst_addr_u32(),
            peer: ip.src_addr_u32(),
            local_port: seg.dst_port(),
            peer_port: seg.src_port(),
        };
        let route = Route { our_mac: host.mac, peer_mac: input.eth_src };
        let c = host.counters;
        if let Some(id) = self.conns.id_of(&key) {
            self.established(now, id, input, route, c, tx);
            return Taken::Yes;
        }
        let hash = input.meta.rss_hash.unwrap_or_else(|| self.flow_hash(&key));
        if self.reqs.contains_key(&key) {
            self.check_req(now, key, hash, input, route, c, tx);
            return Taken::Yes;
        }
        let Some(listener) = self.stack.lookup(self.cfg.worker, ip.dst_addr(), seg.dst_port(), hash) else {
            return Taken::NoSocket;
        };
        let flags = seg.flags();
        // tcp_rcv_state_process, TCP_LISTEN:
        if flags.contains(TcpFlags::RST) {
            return Taken::Yes;
        }
        if flags.contains(TcpFlags::ACK) {
            if !flags.contains(TcpFlags::SYN) && self.cookie_check(now, key, hash, &listener, input, c) {
                return Taken::Yes;
            }
            c.inc(Counter::TcpAckNoMatch);
            return Taken::NoSocket;
        }
        if flags.contains(TcpFlags::SYN) {
            self.conn_request(now, key, hash, listener, input, route, c, tx);
        }
        Taken::Yes
    }
}
