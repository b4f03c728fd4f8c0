//! A connection made from a completed handshake, a valid cookie or a TFO
//! SYN (Linux's `tcp_v4_syn_recv_sock` and `tcp_create_openreq_child`),
//! appended to the listener's accept queue (`inet_csk_reqsk_queue_add`).

use super::conn::{Conn, Origin};
use super::reqsk::{opt, RequestSock};
use super::{TcpEngine, MAX_PROVEN_PEERS};
use crate::engine::flow::FlowKey;
use crate::engine::listen::{ChildSock, Listener};
use crate::engine::tcb::{Events, PassiveOpen, Tcb, TcbConfig};
use crate::engine::time::{Duration, Instant};
use crate::stats::{Counter, Counters, Metric};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::tcp::TcpSegment;
use std::sync::Arc;

/// The parameters a connection is built from, from a request sock, a
/// cookie or a TFO SYN.
pub(super) struct ChildParams<'a> {
    pub origin: Origin,
    /// The MSS the peer announced (or the cookie's table value).
    pub peer_mss: u16,
    /// The peer's window in bytes, already scaled.
    pub peer_window: u32,
    /// TFO data that came with the SYN.
    pub initial_data: &'a [u8],
    /// A handshake RTT sample when the SYN-ACK was not retransmitted.
    pub rtt_sample: Option<Duration>,
    pub iss: u32,
    pub irs: u32,
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: u8,
    pub sack: bool,
    pub ecn: bool,
    pub ts: Option<(u32, u32)>,
    pub syn_at: Instant,
}

impl ChildParams<'_> {
    /// What a request sock negotiated, completed by its final ACK `seg`.
    pub fn from_request(req: &RequestSock, seg: &TcpSegment<&[u8]>, ts_recent: Option<u32>, now: Instant) -> ChildParams<'static> {
        ChildParams {
            origin: Origin::RequestSock,
            iss: req.snt_isn,
            irs: req.rcv_isn,
            snd_wscale: req.snd_wscale(),
            rcv_wscale: req.rcv_wscale,
            sack: req.has(opt::SACK),
            ecn: req.has(opt::ECN),
            // The completing segment's TSval, else the SYN's.
            ts: req.has(opt::TSTAMP).then(|| (ts_recent.unwrap_or(req.ts_recent), req.ts_off)),
            syn_at: req.syn_at,
            peer_mss: req.mss,
            peer_window: u32::from(seg.window_len()) << req.snd_wscale().unwrap_or(0),
            initial_data: &[],
            // Karn: only a SYN-ACK sent once gives an RTT sample.
            rtt_sample: (req.num_retrans == 0).then(|| now.saturating_since(req.syn_at)),
        }
    }
}

/// Why a child could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChildError {
    /// The accept queue is full (ListenOverflows): Linux's overflow rules apply.
    AcceptQueueFull,
    /// This worker's connection cap or buffer memory: refused with RST.
    Limit,
}

impl TcpEngine {
    /// `syn_recv_sock` + `inet_csk_reqsk_queue_add`: a new connection in this
    /// worker's table, appended to the listener's accept queue.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_child(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        peer_mac: EthernetAddress,
        listener: &Arc<Listener>,
        p: ChildParams<'_>,
        c: &Counters,
    ) -> Result<u32, ChildError> {
        self.child_admitted(listener, c)?;
        let conn = Conn {
            key,
            irs: p.irs,
            origin: p.origin,
            ecn: p.ecn,
            pending: Events::default(),
            queued: false,
            peer_mac,
            timer: None,
            tfo_pending: None,
            tcb: self.passive_tcb(now, &key, &p),
        };
        let Some(id) = self.conns.insert(conn) else {
            c.inc(Counter::ConnLimitRefused);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::Limit);
        };
        let child = ChildSock {
            worker: self.cfg.worker,
            conn_id: id,
            local: child_addr(listener, key.local, key.local_port, key.is_v4()),
            peer: child_addr(listener, key.peer, key.peer_port, key.is_v4()),
            established_at: now,
            flow_hash: hash,
        };
        if listener.acceptq_add(child).is_err() {
            self.conns.remove(id);
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::AcceptQueueFull);
        }
        self.child_established(id, key, listener, &p, c);
        Ok(id)
    }

    /// Room in the accept queue (`sk_acceptq_is_full`), under this
    /// worker's connection cap, and buffer memory for one more connection.
    fn child_admitted(&mut self, listener: &Listener, c: &Counters) -> Result<(), ChildError> {
        if listener.sk_acceptq_is_full() {
            c.inc(Counter::ListenOverflows);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::AcceptQueueFull);
        }
        if self.conns.len() >= self.cfg.max_conns {
            c.inc(Counter::ConnLimitRefused);
            c.inc(Counter::ListenDrops);
            return Err(ChildError::Limit);
        }
        if !self.mem.admits_new() {
            c.inc(Counter::ConnMemRefused);
            c.inc(Counter::ListenDrops);
            self.mem.refused();
            return Err(ChildError::Limit);
        }
        Ok(())
    }

    /// `tcp_create_openreq_child`: the TCB of a passive open.
    fn passive_tcb(&self, now: Instant, key: &FlowKey, p: &ChildParams<'_>) -> Tcb {
        let s = &self.sysctls;
        Tcb::new_passive(PassiveOpen {
            now,
            iss: p.iss,
            irs: p.irs,
            peer_mss: p.peer_mss,
            our_mss: self.cfg.mss_of(key),
            snd_wscale: p.snd_wscale,
            rcv_wscale: p.rcv_wscale,
            sack_ok: p.sack,
            ts: p.ts,
            peer_window: p.peer_window,
            initial_data: p.initial_data,
            syn_ack_pending: p.origin == Origin::FastOpen,
            rtt_sample: p.rtt_sample,
            rcv_buf_cap: self.cfg.rcv_buf,
            rcv_buf_max: self.cfg.rcv_buf_max,
            snd_buf_max: self.cfg.snd_buf_max,
            snd_buf_cap: self.cfg.snd_buf,
            mem_room: self.mem.room(),
            config: TcbConfig {
                synack_retries: s.tcp_synack_retries,
                retries2: s.tcp_retries2,
                fin_timeout: Duration::from_secs(u64::from(s.tcp_fin_timeout)),
                ..TcbConfig::default()
            },
        })
    }

    /// Book-keeping once the child is queued: buffers charged (TFO data), PassiveOpens,
    /// the SYN→established sample, the peer proven, the TCB's timer.
    fn child_established(&mut self, id: u32, key: FlowKey, listener: &Listener, p: &ChildParams<'_>, c: &Counters) {
        if let Some(conn) = self.conns.get(id) {
            self.mem.charge(0, conn.tcb.mem());
        }
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
    }
}

/// An address of a child as accept() returns it: an IPv4 connection of an
/// AF_INET6 listener sees IPv4-mapped addresses (`tcp_v6_syn_recv_sock`'s
/// `ipv6_addr_set_v4mapped`), of an AF_INET one IPv4 addresses.
fn child_addr(listener: &Listener, addr: u128, port: u16, v4: bool) -> std::net::SocketAddr {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    if v4 && listener.local.is_ipv4() {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(addr as u32), port))
    } else {
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(addr), port, 0, 0))
    }
}
