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
//! An established connection is a [`Conn`]: its TCB (`engine::tcb`, the
//! data path) plus what the listen path knows. Lookup order after the
//! established table: TIME_WAIT entries (a compact table without buffers),
//! then request socks, then listeners. Applications read, write and close
//! through this engine (`read`, `write`, `close`, `flush`) and learn about
//! connections from `drain_ready`.

pub mod output;
pub mod reqsk;
#[cfg(test)]
mod tests;

use crate::engine::keys::fastopen::{self, TfoCookieCheck};
use crate::engine::host::{send_reset, HostTx, TcpInput, TcpLayer, Taken};
use crate::engine::keys::isn;
use crate::engine::listen::{ChildSock, Listener};
use crate::engine::keys::Secrets;
use crate::engine::errno::Errno;
use crate::engine::socket::{ControlCmd, Stack};
use crate::engine::tcb::{self, Events, PassiveOpen, SegIn, SegOut, Tcb, TcbConfig};
use crate::wire::ethernet::EthernetAddress;
use crate::engine::keys::syncookie;
use crate::engine::sysctl::{tfo, Sysctls};
use crate::engine::time::{Duration, Instant};
use crate::engine::timer_wheel::{TimerId, TimerWheel};
use crate::engine::tx::TxSink;
use crate::stats::Metric;
use crate::stats::{Counter, Counters};
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use output::{send_segment, FlowKey, OutSegment, Route, SynAckOptions};
use reqsk::{opt, RequestSock, NO_WSCALE};
use ahash::{AHashMap as HashMap, AHashSet as HashSet};
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
    /// refused with RST (DlConnLimitRefused).
    pub max_conns: usize,
    /// Receive and send buffer per connection (Linux: tcp_rmem/tcp_wmem).
    pub rcv_buf: u32,
    pub snd_buf: u32,
    /// Bytes of connection buffers this worker may hold in all.
    pub max_buffer_bytes: u64,
    /// Our MAC, for segments sent outside a received frame (app writes, timers).
    pub mac: EthernetAddress,
}

impl TcpConfig {
    pub fn new(worker: u16) -> TcpConfig {
        TcpConfig {
            worker,
            mss: 1460,
            rcv_wscale: 7,
            synack_window: 65160,
            max_conns: 1 << 20,
            rcv_buf: 64 * 1024,
            snd_buf: 64 * 1024,
            max_buffer_bytes: 1 << 30,
            mac: EthernetAddress([0; 6]),
        }
    }
}

/// A latency measurement the worker completes: `start` is engine time; the
/// worker stamps the end when the answer reaches the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample {
    pub listener_id: u64,
    pub metric: Metric,
    pub start: Instant,
}

/// What a connection was born from (for counters and latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    RequestSock,
    Cookie,
    FastOpen,
}

/// An established connection: the TCB plus what the listen path knows.
pub struct Conn {
    pub key: FlowKey,
    pub listener_id: u64,
    pub origin: Origin,
    pub tcb: Tcb,
    /// The peer's MAC, from its latest frame.
    pub peer_mac: EthernetAddress,
    /// The TCB's timer in this worker's wheel, and its deadline.
    timer: Option<(TimerId, Instant)>,
    pub syn_at: Instant,
    pub established_at: Instant,
    /// A TFO child whose SYN-ACK is not acknowledged yet (holds a fastopenq slot).
    pub tfo_pending: Option<Arc<Listener>>,
    /// Events not yet handed to the application.
    pending: Events,
    /// Already in the ready list.
    queued: bool,
    /// What the handshake negotiated (for inspection; the TCB has its own copy).
    negotiated: Negotiated,
}

/// Handshake results, packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Negotiated {
    irs: u32,
    /// The connection's MSS before option overhead: the peer's, clamped to ours.
    mss: u16,
    /// `NO_WSCALE` when window scaling is off.
    snd_wscale: u8,
    rcv_wscale: u8,
    sack: bool,
    ecn: bool,
}

impl Conn {
    pub fn mss(&self) -> u16 {
        self.negotiated.mss
    }
    pub fn snd_wscale(&self) -> Option<u8> {
        (self.negotiated.snd_wscale != NO_WSCALE).then_some(self.negotiated.snd_wscale)
    }
    pub fn rcv_wscale(&self) -> u8 {
        self.negotiated.rcv_wscale
    }
    pub fn sack(&self) -> bool {
        self.negotiated.sack
    }
    pub fn ecn(&self) -> bool {
        self.negotiated.ecn
    }
    /// (ts_recent, ts_off) when timestamps are on.
    pub fn ts(&self) -> Option<(u32, u32)> {
        self.tcb.timestamps()
    }
    pub fn snd_nxt(&self) -> u32 {
        self.tcb.snd_nxt()
    }
    pub fn rcv_nxt(&self) -> u32 {
        self.tcb.rcv_nxt()
    }
    /// Payload bytes received in order (a TFO SYN's data included).
    pub fn bytes_received(&self) -> u64 {
        let fin = u32::from(self.tcb.fin_received());
        u64::from(self.tcb.rcv_nxt().wrapping_sub(self.negotiated.irs).wrapping_sub(1).wrapping_sub(fin))
    }
}

/// This worker's established connections: ids for ChildSocks, lookup by flow.
#[derive(Default)]
pub struct ConnTable {
    by_key: HashMap<FlowKey, u32>,
    slots: Vec<(u8, Option<Conn>)>,
    free: Vec<u32>,
}

const CONN_INDEX_BITS: u32 = 24;
const CONN_INDEX_MASK: u32 = (1 << CONN_INDEX_BITS) - 1;

impl ConnTable {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The slot index of a connection id (ids carry a generation above it).
    pub fn index_of(id: u32) -> usize {
        (id & CONN_INDEX_MASK) as usize
    }

    fn insert(&mut self, conn: Conn) -> Option<u32> {
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

    pub fn get(&self, id: u32) -> Option<&Conn> {
        let (gen, conn) = self.slots.get(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_ref()
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Conn> {
        let (gen, conn) = self.slots.get_mut(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_mut()
    }

    fn remove(&mut self, id: u32) -> Option<Conn> {
        let (gen, slot) = self.slots.get_mut(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        let conn = slot.take()?;
        self.by_key.remove(&conn.key);
        self.free.push(id & CONN_INDEX_MASK);
        Some(conn)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, (gen, c))| {
            c.as_ref().map(|c| ((u32::from(*gen) << CONN_INDEX_BITS) | i as u32, c))
        })
    }
}

/// One received segment and where it came from, as the listen path sees it.
#[derive(Clone, Copy)]
struct Rx<'i, 'a> {
    now: Instant,
    key: FlowKey,
    /// The flow hash (the NIC's RSS hash, or ours).
    hash: u32,
    input: &'i TcpInput<'a>,
    route: Route,
}

/// The parameters a connection is built from, from a request sock, a
/// cookie or a TFO SYN.
struct ChildParams<'a> {
    origin: Origin,
    /// The MSS the peer announced (or the cookie's table value).
    peer_mss: u16,
    /// The peer's window in bytes, already scaled.
    peer_window: u32,
    /// TFO data that came with the SYN.
    initial_data: &'a [u8],
    /// A handshake RTT sample when the SYN-ACK was not retransmitted.
    rtt_sample: Option<Duration>,
    iss: u32,
    irs: u32,
    mss: u16,
    snd_wscale: Option<u8>,
    rcv_wscale: u8,
    sack: bool,
    ecn: bool,
    ts: Option<(u32, u32)>,
    syn_at: Instant,
}

/// Why a child could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildError {
    /// The accept queue is full (ListenOverflows): Linux's overflow rules apply.
    AcceptQueueFull,
    /// This worker's connection or buffer cap: refused with RST.
    Limit,
}

/// Timer tokens of this worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    SynAck(FlowKey),
    Conn(u32),
    TimeWait(FlowKey),
}

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
    timer: TimerId,
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
    /// Connections with events for the application.
    ready: Vec<u32>,
    /// Where app-driven paths count (the worker's counters; set with `with_counters`).
    counters: Arc<Counters>,
    /// Buffer bytes promised to connections (rcv + snd caps).
    buffer_bytes: u64,
    /// Handshake latencies of the current burst.
    samples: Vec<LatencySample>,
    /// Connections in TIME_WAIT.
    time_wait: HashMap<FlowKey, TimeWait>,
    /// Events of connections already gone from the table (TIME_WAIT, closed).
    gone_ready: Vec<(u32, Events)>,
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
            ready: Vec::new(),
            counters: Arc::new(Counters::new()),
            buffer_bytes: 0,
            samples: Vec::new(),
            time_wait: HashMap::new(),
            gone_ready: Vec::new(),
        }
    }

    /// Connections in TIME_WAIT.
    pub fn time_wait_len(&self) -> usize {
        self.time_wait.len()
    }

    /// Count app-driven events (writes, closes, timers) in these counters.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> TcpEngine {
        self.counters = counters;
        self
    }

    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Latency samples since the last call (the worker completes and clears them).
    pub fn take_latency_samples(&mut self) -> &mut Vec<LatencySample> {
        &mut self.samples
    }

    fn sample(&mut self, listener_id: u64, metric: Metric, start: Instant) {
        // Bounded: a worker that never collects must not grow without limit.
        if self.samples.len() < 4096 {
            self.samples.push(LatencySample { listener_id, metric, start });
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
                ControlCmd::Reset(child) => self.abort(now, child.conn_id, tx),
                ControlCmd::RotateSyncookieKey(key) => self.secrets.syncookie.rotate(key, syncookie::counter(now)),
            }
        }
        while let Some(t) = self.timers.poll(now) {
            match t {
                Timer::SynAck(key) => self.reqsk_timer(now, key, host, tx),
                Timer::Conn(id) => self.conn_timer(now, id, tx),
                Timer::TimeWait(key) => {
                    if self.time_wait.remove(&key).is_some() {
                        host.counters.inc(Counter::TcpTw);
                    }
                }
            }
        }
    }

    /// Re-read the sysctls (cheap; call every few milliseconds, not per packet).
    pub fn refresh_sysctls(&mut self) {
        self.sysctls = self.stack.sysctls();
    }

    /// Reset and forget an established connection (the application's abort,
    /// or a child whose listener closed): RST|ACK as Linux's tcp_send_active_reset.
    pub fn abort(&mut self, now: Instant, conn_id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(conn_id) else { return };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        conn.tcb.abort(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        self.finish(conn_id);
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
    fn conn_request(&mut self, rx: &Rx<'_, '_>, listener: Arc<Listener>, c: &Counters, tx: &mut impl TxSink) {
        let Rx { now, key, hash, input, route } = *rx;
        // A copy of plain data, not an Arc clone (an atomic RMW) per segment.
        let s = *self.sysctls;
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

        let ts_off = if ts.is_some() { isn::ts_off(self.secrets.ts_off, &key) } else { 0 };
        let ts_now = now.as_millis() as u32;
        let client_isn = seg.seq_number();
        let data = seg.payload();

        if want_cookie {
            let (cookie, _mss) = syncookie::make(&self.secrets.syncookie, &key, client_isn, mss, syncookie::counter(now));
            c.inc(Counter::SyncookiesSent);
            listener.synq_overflow(now);
            let tsval = ts.map(|(tsval, _)| (syncookie::encode_ts(ts_now, wscale, sack, ecn).wrapping_add(ts_off), tsval));
            let opts = self.synack_options(wscale, sack, tsval);
            if self.send_synack(route, key, cookie, client_isn.wrapping_add(1), ecn, &opts, c, tx) {
                self.sample(listener.id, Metric::SynToSynAck, now);
            }
            return;
        }

        let iss = isn::isn(self.secrets.isn, now, &key);
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
                    FastOpenCookie::new(&fastopen::gen(&self.secrets.tfo, &key))
                        .ok()
                        .map(|c| c.with_experimental(exp))
                };
                let no_cookie = s.tcp_fastopen & tfo::SERVER_COOKIE_NOT_REQD != 0;
                let mut accept_data = syn_data && no_cookie;
                match &opts.fastopen {
                    _ if accept_data => {}
                    Some(f) if f.is_empty() => synack_opts.fastopen = fresh(),
                    Some(f) => match fastopen::check(&self.secrets.tfo, &key, f.as_bytes()) {
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
                peer_mss,
                peer_window: u32::from(seg.window_len()),
                initial_data: data,
                rtt_sample: None,
            };
            match self.create_child(now, key, hash, route.peer_mac, &listener, params, c) {
                Ok(id) => {
                    c.inc(Counter::TcpFastOpenPassive);
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.tfo_pending = Some(listener.clone());
                    }
                    let ack = client_isn.wrapping_add(1).wrapping_add(data.len() as u32);
                    if self.send_synack(route, key, iss, ack, ecn, &synack_opts, c, tx) {
                        self.sample(listener.id, Metric::SynToSynAck, now);
                    }
                }
                Err(_) => {
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
        if self.send_synack(route, key, iss, client_isn.wrapping_add(1), ecn, &synack_opts, c, tx) {
            self.sample(listener.id, Metric::SynToSynAck, now);
        }
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
            sack: &[],
            payload: (&[], &[]),
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
    fn check_req(&mut self, rx: &Rx<'_, '_>, c: &Counters, tx: &mut impl TxSink) {
        let Rx { now, key, hash, input, route } = *rx;
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
            peer_mss: req.mss,
            peer_window: u32::from(seg.window_len()) << req.snd_wscale().unwrap_or(0),
            initial_data: &[],
            // Karn: only a SYN-ACK sent once gives an RTT sample.
            rtt_sample: (req.num_retrans == 0).then(|| now.saturating_since(req.syn_at)),
        };
        match self.create_child(now, key, hash, route.peer_mac, &listener, params, c) {
            Ok(id) => {
                self.drop_request(&key);
                if seg.seq_len() > 0 {
                    self.tcb_segment(now, id, input, c, tx);
                }
            }
            Err(ChildError::Limit) => {
                send_reset(input, route.our_mac, c, tx);
                self.drop_request(&key);
            }
            Err(ChildError::AcceptQueueFull) => {
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
            sack: &[],
            payload: (&[], &[]),
        };
        if send_segment(tx, route, key, &seg) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
        }
    }

    /// `syn_recv_sock` + `inet_csk_reqsk_queue_add`: a new connection in this
    /// worker's table, appended to the listener's accept queue.
    #[allow(clippy::too_many_arguments)]
    fn create_child(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        peer_mac: EthernetAddress,
        listener: &Arc<Listener>,
        p: ChildParams<'_>,
        c: &Counters,
    ) -> Result<u32, ChildError> {
        if listener.sk_acceptq_is_full() {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::AcceptQueueFull);
        }
        let buffers = u64::from(self.cfg.rcv_buf) + u64::from(self.cfg.snd_buf);
        if self.conns.len() >= self.cfg.max_conns || self.buffer_bytes + buffers > self.cfg.max_buffer_bytes {
            c.inc(Counter::ConnLimitRefused);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::Limit);
        }
        let s = &self.sysctls;
        let tcb = Tcb::new_passive(PassiveOpen {
            now,
            iss: p.iss,
            irs: p.irs,
            peer_mss: p.peer_mss,
            our_mss: self.cfg.mss,
            snd_wscale: p.snd_wscale,
            rcv_wscale: p.rcv_wscale,
            sack_ok: p.sack,
            ts: p.ts,
            peer_window: p.peer_window,
            initial_data: p.initial_data,
            syn_ack_pending: p.origin == Origin::FastOpen,
            rtt_sample: p.rtt_sample,
            rcv_buf_cap: self.cfg.rcv_buf,
            snd_buf_cap: self.cfg.snd_buf,
            config: TcbConfig {
                synack_retries: s.tcp_synack_retries,
                retries2: s.tcp_retries2,
                fin_timeout: Duration::from_secs(u64::from(s.tcp_fin_timeout)),
                ..TcbConfig::default()
            },
        });
        let conn = Conn {
            key,
            listener_id: listener.id,
            origin: p.origin,
            tcb,
            peer_mac,
            timer: None,
            syn_at: p.syn_at,
            established_at: now,
            tfo_pending: None,
            pending: Events::default(),
            queued: false,
            negotiated: Negotiated {
                irs: p.irs,
                mss: p.mss,
                snd_wscale: p.snd_wscale.unwrap_or(NO_WSCALE),
                rcv_wscale: p.rcv_wscale,
                sack: p.sack,
                ecn: p.ecn,
            },
        };
        let Some(id) = self.conns.insert(conn) else {
            c.inc(Counter::ConnLimitRefused);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::Limit);
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
            return Err(ChildError::AcceptQueueFull);
        }
        self.buffer_bytes += buffers;
        c.inc(Counter::TcpPassiveOpens);
        if p.origin != Origin::Cookie {
            // A cookie keeps no SYN time: only request socks and TFO are timed.
            self.sample(listener.id, Metric::SynToEstablished, p.syn_at);
        }
        if self.proven.len() >= MAX_PROVEN_PEERS {
            self.proven.clear();
        }
        self.proven.insert(key.peer);
        self.rearm(id);
        Ok(id)
    }

    /// Hand a segment to a connection's TCB and send what it answers.
    fn tcb_segment(&mut self, now: Instant, id: u32, input: &TcpInput<'_>, c: &Counters, tx: &mut impl TxSink) {
        let seg = &input.seg;
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.peer_mac = input.eth_src;
        let flags = seg.flags();
        let ts = if conn.tcb.has_timestamps() { crate::wire::tcp_options::timestamps(seg.options()) } else { None };
        let mut sack_buf = [(0u32, 0u32); 4];
        let sack = sack_blocks(seg.options(), &mut sack_buf);
        let seg_in = SegIn {
            seq: seg.seq_number(),
            ack: flags.contains(TcpFlags::ACK).then(|| seg.ack_number()),
            flags,
            window: seg.window_len(),
            ts,
            sack,
            payload: seg.payload(),
        };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let ev = conn.tcb.on_segment(now, &seg_in, &mut |out, payload| emit_tcb_segment(tx, route, key, &out, payload, c));
        if flags.contains(TcpFlags::RST) && ev.contains(Events::RESET) {
            c.inc(Counter::TcpEstabResets);
        }
        if let Some(l) = conn.tfo_pending.as_ref().filter(|_| !conn.tcb.syn_ack_pending()) {
            l.fastopenq_removed();
            conn.tfo_pending = None;
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Record events for the application and free a connection that is gone.
    fn note_events(&mut self, id: u32, ev: Events) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let ev = Events(ev.0 | conn.tcb.take_events().0);
        if ev.is_empty() {
            return;
        }
        conn.pending = Events(conn.pending.0 | ev.0);
        if ev.contains(Events::TIME_WAIT) {
            self.enter_time_wait(id);
            return;
        }
        if !conn.queued {
            conn.queued = true;
            self.ready.push(id);
        }
    }

    /// Trade a connection's TCB for a compact TIME_WAIT entry; the
    /// application sees it closed.
    fn enter_time_wait(&mut self, id: u32) {
        let Some(conn) = self.conns.get(id) else { return };
        let key = conn.key;
        let until = conn.tcb.next_timeout();
        let entry = (conn.tcb.snd_max(), conn.tcb.rcv_nxt(), conn.tcb.timestamps(), conn.peer_mac);
        let events = Events(conn.pending.0 | Events::CLOSED.0);
        self.finish(id);
        self.gone_ready.push((id, events));
        let Some(until) = until else { return };
        if self.time_wait.len() >= self.sysctls.tcp_max_tw_buckets as usize {
            self.counters.inc(Counter::TcpTimeWaitOverflow);
            return;
        }
        let (snd_nxt, rcv_nxt, ts, peer_mac) = entry;
        let timer = self.timers.schedule(until, Timer::TimeWait(key));
        if let Some(old) = self.time_wait.insert(key, TimeWait { snd_nxt, rcv_nxt, ts, peer_mac, timer }) {
            self.timers.cancel(old.timer);
        }
    }

    /// `tcp_timewait_state_process`, simplified: RST ends TIME_WAIT (Linux's
    /// default without RFC 1337 protection), a new SYN beyond the old
    /// sequence space reuses the pair, anything else gets the last ACK again.
    /// Returns true when the segment was consumed here.
    fn time_wait_segment(&mut self, now: Instant, key: FlowKey, input: &TcpInput<'_>, c: &Counters, tx: &mut impl TxSink) -> bool {
        let Some(tw) = self.time_wait.get(&key).copied() else { return false };
        let seg = &input.seg;
        let flags = seg.flags();
        if flags.contains(TcpFlags::RST) {
            self.time_wait.remove(&key);
            self.timers.cancel(tw.timer);
            c.inc(Counter::TcpTwKilled);
            return true;
        }
        let after = |a: u32, b: u32| (a.wrapping_sub(b) as i32) > 0;
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) && after(seg.seq_number(), tw.rcv_nxt) {
            self.time_wait.remove(&key);
            self.timers.cancel(tw.timer);
            return false;
        }
        let route = Route { our_mac: self.cfg.mac, peer_mac: input.eth_src };
        let mut out = OutSegment::bare(tw.snd_nxt, tw.rcv_nxt, TcpFlags::ACK, 0);
        let ts = tw.ts.map(|(recent, off)| ((now.as_millis() as u32).wrapping_add(off), recent));
        out.timestamps = ts;
        if send_segment(tx, route, key, &out) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
        }
        true
    }

    /// Keep the connection's timer at its TCB's next deadline.
    fn rearm(&mut self, id: u32) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let want = conn.tcb.next_timeout();
        match (conn.timer, want) {
            (Some((_, at)), Some(w)) if at == w => {}
            (old, want) => {
                if let Some((t, _)) = old {
                    self.timers.cancel(t);
                }
                conn.timer = want.map(|w| (self.timers.schedule(w, Timer::Conn(id)), w));
            }
        }
    }

    fn conn_timer(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.timer = None;
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let ev = conn.tcb.on_timeout(now, &mut |out, payload| emit_tcb_segment(tx, route, key, &out, payload, c));
        if conn.tcb.error() == Some(Errno::Etimedout) && ev.contains(Events::RESET) {
            c.inc(Counter::TcpAbortOnTimeout);
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Connections with events since the last call, and their events. A
    /// connection reported with `Events::CLOSED` is gone: its id is dead.
    pub fn drain_ready(&mut self, out: &mut Vec<(u32, Events)>) {
        out.append(&mut self.gone_ready);
        for id in std::mem::take(&mut self.ready) {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            conn.queued = false;
            let ev = std::mem::take(&mut conn.pending);
            out.push((id, ev));
            if ev.contains(Events::CLOSED) {
                self.finish(id);
            }
        }
    }

    /// Forget a connection whose TCB is closed (or aborted).
    fn finish(&mut self, id: u32) {
        let Some(conn) = self.conns.remove(id) else { return };
        if let Some((t, _)) = conn.timer {
            self.timers.cancel(t);
        }
        if let Some(l) = &conn.tfo_pending {
            l.fastopenq_removed();
        }
        self.buffer_bytes =
            self.buffer_bytes.saturating_sub(u64::from(self.cfg.rcv_buf) + u64::from(self.cfg.snd_buf));
        self.counters.inc(Counter::ConnsClosed);
    }

    // --- the application's side (per-core apps call these from the worker loop) ---

    /// Read received bytes: `Ok(0)` at EOF, `Err(Eagain)` when none yet.
    pub fn read(&mut self, id: u32, buf: &mut [u8]) -> Result<usize, Errno> {
        self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb.read(buf)
    }

    /// Queue bytes for sending; a short count is backpressure (send buffer full).
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize, Errno> {
        self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb.write(data)
    }

    /// Free space in the send buffer.
    pub fn send_space(&self, id: u32) -> usize {
        self.conns.get(id).map_or(0, |c| (c.tcb.send_buf_cap() - c.tcb.send_queue_len()) as usize)
    }

    /// `shutdown(SHUT_WR)`: FIN after the queued data.
    pub fn shutdown(&mut self, id: u32) -> Result<(), Errno> {
        self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb.shutdown_write()
    }

    /// `close()`: FIN, or RST when unread data remains (Linux tcp_close).
    pub fn close(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let unread = conn.tcb.recv_queue_len() > 0;
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let ev = conn.tcb.close(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        if unread {
            c.inc(Counter::TcpAbortOnClose);
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Send what the TCB may send now (after writes, reads that opened the window, shutdown).
    pub fn flush(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        conn.tcb.poll_transmit(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        self.note_events(id, Events::default());
        self.rearm(id);
    }

    /// `cookie_v4_check`: an ACK for a listener with no request sock. `true`
    /// when it was consumed (a connection made, or dropped on overflow);
    /// `false` to answer with RST.
    #[allow(clippy::too_many_arguments)]
    fn cookie_check(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        listener: &Arc<Listener>,
        input: &TcpInput<'_>,
        c: &Counters,
        tx: &mut impl TxSink,
    ) -> bool {
        // A copy of plain data, not an Arc clone (an atomic RMW) per segment.
        let s = *self.sysctls;
        let seg = &input.seg;
        if s.tcp_syncookies == 0 || listener.synq_no_recent_overflow(now) {
            return false;
        }
        let client_isn = seg.seq_number().wrapping_sub(1);
        let cookie = seg.ack_number().wrapping_sub(1);
        let mss = match syncookie::check(&self.secrets.syncookie, &key, client_isn, cookie, syncookie::counter(now)) {
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
            let ts_off = isn::ts_off(self.secrets.ts_off, &key);
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
            peer_mss: mss,
            peer_window: u32::from(seg.window_len()) << wscale.unwrap_or(0),
            initial_data: &[],
            rtt_sample: None,
        };
        match self.create_child(now, key, hash, input.eth_src, listener, params, c) {
            Ok(id) => {
                if seg.seq_len() > 0 {
                    self.tcb_segment(now, id, input, c, tx);
                }
                true
            }
            // On overflow Linux drops the ACK silently (tcp_get_cookie_sock
            // returns no child): the client retransmits.
            Err(ChildError::AcceptQueueFull) => true,
            // Our own cap: refuse cleanly with RST.
            Err(ChildError::Limit) => false,
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
            self.tcb_segment(now, id, input, c, tx);
            return Taken::Yes;
        }
        if !self.time_wait.is_empty() && self.time_wait_segment(now, key, input, c, tx) {
            return Taken::Yes;
        }
        let hash = input.meta.rss_hash.unwrap_or_else(|| self.flow_hash(&key));
        if self.reqs.contains_key(&key) {
            self.check_req(&Rx { now, key, hash, input, route }, c, tx);
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
            if !flags.contains(TcpFlags::SYN) && self.cookie_check(now, key, hash, &listener, input, c, tx) {
                return Taken::Yes;
            }
            c.inc(Counter::TcpAckNoMatch);
            return Taken::NoSocket;
        }
        if flags.contains(TcpFlags::SYN) {
            self.conn_request(&Rx { now, key, hash, input, route }, listener, c, tx);
        }
        Taken::Yes
    }
}

/// Emit one segment a TCB produced.
fn emit_tcb_segment(
    tx: &mut impl TxSink,
    route: Route,
    key: FlowKey,
    seg: &SegOut,
    payload: tcb::Payload<'_>,
    c: &Counters,
) {
    let flags = seg.flags;
    let out = OutSegment {
        seq: seg.seq,
        ack: seg.ack,
        flags,
        window: seg.window,
        syn_options: None,
        timestamps: seg.ts,
        sack: seg.sack_blocks(),
        payload: (payload.0, payload.1),
    };
    if send_segment(tx, route, key, &out) {
        c.inc(Counter::TcpOutSegs);
        c.inc(Counter::TxFrames);
        if flags.contains(TcpFlags::RST) {
            c.inc(Counter::TcpOutRsts);
        }
    }
}

/// SACK blocks of a segment's options, without allocating.
fn sack_blocks<'b>(options: &[u8], buf: &'b mut [(u32, u32); 4]) -> &'b [(u32, u32)] {
    use crate::wire::tcp_options::{TcpOption, TcpOptionIter};
    let mut n = 0;
    for opt in TcpOptionIter::new(options).flatten() {
        if let TcpOption::Sack(blocks) = opt {
            for b in blocks.as_slice() {
                if n < buf.len() {
                    buf[n] = *b;
                    n += 1;
                }
            }
        }
    }
    &buf[..n]
}
