//! The shared listener: what the workers see of a socket in LISTEN.
//!
//! Everything is an atomic or a lock-free queue: workers on every core read
//! and update it without locks; the control plane changes the backlog or the
//! TFO queue length at any time and workers see it at once.

use super::accept_queue::AcceptQueue;
use crate::engine::time::Instant;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// An established connection waiting in (or taken from) an accept queue.
/// The connection itself lives in the owning worker's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildSock {
    /// The worker (core) whose table holds the connection.
    pub worker: u16,
    /// The connection's id in that table.
    pub conn_id: u32,
    /// Our end and the peer: IPv4 for an IPv4 flow, IPv6 for an IPv6 one.
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub established_at: Instant,
    /// The flow hash the worker used (Linux's `sk_hash`): picks the
    /// reuseport member a child migrates to when its listener closes.
    pub flow_hash: u32,
}

/// A socket's address family: what `socket(AF_INET | AF_INET6, ...)` made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

/// `addr` in IPv6 form: an IPv4 address as its IPv4-mapped twin
/// (`::ffff:a.b.c.d`), 0.0.0.0 as `::ffff:0.0.0.0`.
pub fn ipv6_form(addr: IpAddr) -> Ipv6Addr {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// `incoming_cpu` value meaning "not set" (Linux: -1).
const NO_CPU: u32 = u32::MAX;

/// A socket in LISTEN, shared by the control plane and all workers (`Arc`).
pub struct Listener {
    pub id: u64,
    /// Bound address (0.0.0.0 or `::` = wildcard) and port. An AF_INET6
    /// socket's address is always IPv6, IPv4-mapped when it was bound so.
    pub local: SocketAddr,
    /// IPV6_V6ONLY (`sk_ipv6only`) as it was when the listener was hashed:
    /// an AF_INET6 listener without it also takes IPv4 connections.
    pub v6only: bool,
    /// SO_REUSEPORT as it was when the listener entered the listening hash
    /// (Linux fixes group membership at hash time).
    pub reuseport: bool,
    /// `sk_max_ack_backlog`.
    max_ack_backlog: AtomicU32,
    /// The accept queue; its length is `sk_ack_backlog`.
    accept_queue: AcceptQueue<ChildSock>,
    /// Request socks (SYN_RECV) across all workers: Linux's `qlen`.
    qlen: AtomicU32,
    /// Requests whose SYN-ACK was never retransmitted: Linux's `qlen_young`.
    young: AtomicU32,
    /// `fastopenq.max_qlen`: 0 = TFO off for this listener.
    fastopen_max_qlen: AtomicU32,
    /// `fastopenq.qlen`: TFO children not yet past their handshake.
    fastopen_qlen: AtomicU32,
    /// SO_INCOMING_CPU (a worker index), `NO_CPU` when unset.
    incoming_cpu: AtomicU32,
    /// Reuseport group id (0 before the listener is hashed).
    group: AtomicU64,
    /// TCP_DEFER_ACCEPT as Linux stores it: a number of SYN-ACK retransmits.
    defer_accept: AtomicU32,
    /// When this listener last answered with a SYN cookie, in engine
    /// milliseconds + 1 (0 = never): Linux's `tcp_synq_overflow` stamp, which
    /// gates cookie validation to the two minutes after an overflow.
    last_synq_overflow_ms: AtomicU64,
}

fn dec_saturating(a: &AtomicU32) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
}

impl Listener {
    /// An AF_INET listener for a V4 address, an AF_INET6 one (IPV6_V6ONLY
    /// off) for a V6 address.
    pub fn new(id: u64, local: impl Into<SocketAddr>, max_ack_backlog: u32, reuseport: bool) -> Self {
        Listener {
            id,
            local: local.into(),
            v6only: false,
            reuseport,
            max_ack_backlog: AtomicU32::new(max_ack_backlog),
            accept_queue: AcceptQueue::new(max_ack_backlog),
            qlen: AtomicU32::new(0),
            young: AtomicU32::new(0),
            fastopen_max_qlen: AtomicU32::new(0),
            fastopen_qlen: AtomicU32::new(0),
            incoming_cpu: AtomicU32::new(NO_CPU),
            group: AtomicU64::new(0),
            defer_accept: AtomicU32::new(0),
            last_synq_overflow_ms: AtomicU64::new(0),
        }
    }

    /// The same listener with IPV6_V6ONLY set as `v6only` (meaningful only
    /// for AF_INET6).
    pub fn with_v6only(mut self, v6only: bool) -> Self {
        self.v6only = v6only && self.family() == Family::Inet6;
        self
    }

    /// AF_INET for a V4 address, AF_INET6 for a V6 one (mapped included).
    pub fn family(&self) -> Family {
        match self.local {
            SocketAddr::V4(_) => Family::Inet,
            SocketAddr::V6(_) => Family::Inet6,
        }
    }

    /// The bound address in IPv6 form (see [`ipv6_form`]).
    pub fn addr_v6_form(&self) -> Ipv6Addr {
        ipv6_form(self.local.ip())
    }

    /// Whether the bound address is a wildcard (0.0.0.0 or `::`).
    pub fn is_wildcard(&self) -> bool {
        self.local.ip().is_unspecified()
    }

    // --- accept queue (full sockets) ---

    /// `sk_max_ack_backlog`.
    pub fn sk_max_ack_backlog(&self) -> u32 {
        self.max_ack_backlog.load(Ordering::Acquire)
    }

    /// listen() on a LISTEN socket: only the backlog changes. The ring grows
    /// first so that no worker sees the new limit with the old capacity.
    pub fn set_max_ack_backlog(&self, backlog: u32) {
        self.accept_queue.grow(backlog);
        self.max_ack_backlog.store(backlog, Ordering::Release);
    }

    /// `sk_ack_backlog`: children in the accept queue.
    pub fn sk_ack_backlog(&self) -> u32 {
        self.accept_queue.len()
    }

    /// Linux's `sk_acceptq_is_full`: `ack_backlog > max_ack_backlog`, so a
    /// listener with backlog N holds N + 1 children.
    pub fn sk_acceptq_is_full(&self) -> bool {
        self.sk_ack_backlog() > self.sk_max_ack_backlog()
    }

    /// Append an established child (`inet_csk_reqsk_queue_add` +
    /// `sk_acceptq_added`). Refused (the child comes back) when the queue is
    /// full or the listener is closed: check [`Listener::is_closed`] to tell
    /// which (closed: migrate or reset; full: ListenOverflows).
    pub fn acceptq_add(&self, child: ChildSock) -> Result<(), ChildSock> {
        self.accept_queue.push(child, self.sk_max_ack_backlog())
    }

    /// Take the oldest child (non-blocking accept).
    pub fn acceptq_remove(&self) -> Option<ChildSock> {
        self.accept_queue.pop()
    }

    /// The accept queue itself, for a blocking accept (`crate::api`) that
    /// registers as a waiter on it.
    pub(crate) fn accept_queue(&self) -> &AcceptQueue<ChildSock> {
        &self.accept_queue
    }

    /// Slots in the accept ring (memory, not the limit).
    pub fn acceptq_capacity(&self) -> usize {
        self.accept_queue.capacity()
    }

    /// The socket left LISTEN (close): workers that meet its requests must
    /// migrate or reset them.
    pub fn is_closed(&self) -> bool {
        self.accept_queue.is_closed()
    }

    /// Mark closed, refuse new children and wake acceptors. When this returns,
    /// no worker can still add a child.
    pub(crate) fn close(&self) {
        self.accept_queue.close();
    }

    // --- request queue (SYN_RECV) ---

    /// `reqsk_queue_len`: request socks across all workers.
    pub fn reqsk_queue_len(&self) -> u32 {
        self.qlen.load(Ordering::Relaxed)
    }

    /// `reqsk_queue_len_young`.
    pub fn reqsk_queue_len_young(&self) -> u32 {
        self.young.load(Ordering::Relaxed)
    }

    /// `inet_csk_reqsk_queue_is_full`: `qlen > max_ack_backlog`, the rule
    /// since "tcp/dccp: allow a connection when sk_max_ack_backlog is zero"
    /// (Linux 6.14; before it `>=`). With backlog 2 the 4th SYN is the first
    /// one answered with a cookie.
    pub fn reqsk_queue_is_full(&self) -> bool {
        self.reqsk_queue_len() > self.sk_max_ack_backlog()
    }

    /// `reqsk_queue_added`: a new request is young.
    pub fn reqsk_queue_added(&self) {
        self.young.fetch_add(1, Ordering::Relaxed);
        self.qlen.fetch_add(1, Ordering::Relaxed);
    }

    /// `reqsk_queue_removed`: `young` if the request's SYN-ACK was never
    /// retransmitted (Linux: `req->num_timeout == 0`).
    pub fn reqsk_queue_removed(&self, young: bool) {
        if young {
            dec_saturating(&self.young);
        }
        dec_saturating(&self.qlen);
    }

    /// A request's first SYN-ACK retransmit: it is no longer young
    /// (Linux: `if (req->num_timeout++ == 0) atomic_dec(&queue->young)`).
    pub fn reqsk_queue_aged(&self) {
        dec_saturating(&self.young);
    }

    /// `tcp_synq_overflow`: a cookie was just sent.
    pub fn synq_overflow(&self, now: Instant) {
        let stamp = now.as_millis() + 1;
        // Written at most once a second per listener, as Linux does, so a
        // flood does not bounce this cache line between cores.
        let last = self.last_synq_overflow_ms.load(Ordering::Relaxed);
        if last == 0 || stamp.saturating_sub(last) >= 1000 {
            self.last_synq_overflow_ms.store(stamp, Ordering::Relaxed);
        }
    }

    /// `tcp_synq_no_recent_overflow`: no cookie sent in the last
    /// `TCP_SYNCOOKIE_VALID` (2 minutes): ACKs are not even checked as cookies.
    pub fn synq_no_recent_overflow(&self, now: Instant) -> bool {
        const TCP_SYNCOOKIE_VALID_MS: u64 = 2 * 60 * 1000;
        let last = self.last_synq_overflow_ms.load(Ordering::Relaxed);
        last == 0 || (now.as_millis() + 1).saturating_sub(last) > TCP_SYNCOOKIE_VALID_MS + 1000
    }

    // --- TCP Fast Open queue ---

    /// `fastopenq.max_qlen` (0: TFO disabled on this listener).
    pub fn fastopen_max_qlen(&self) -> u32 {
        self.fastopen_max_qlen.load(Ordering::Acquire)
    }

    pub fn set_fastopen_max_qlen(&self, n: u32) {
        self.fastopen_max_qlen.store(n, Ordering::Release);
    }

    /// `fastopenq.qlen`.
    pub fn fastopen_qlen(&self) -> u32 {
        self.fastopen_qlen.load(Ordering::Relaxed)
    }

    /// Reserve a fast-open slot (`tcp_fastopen_queue_check` + `qlen++`):
    /// false when TFO is off here or the queue is full (the caller counts
    /// TCPFastOpenListenOverflow and falls back to the 3-way handshake).
    pub fn fastopenq_try_add(&self) -> bool {
        let max = self.fastopen_max_qlen();
        self.fastopen_qlen
            .fetch_update(
                Ordering::AcqRel,
                Ordering::Relaxed,
                |n| if max == 0 || n >= max { None } else { Some(n + 1) },
            )
            .is_ok()
    }

    /// A TFO child finished its handshake or died.
    pub fn fastopenq_removed(&self) {
        dec_saturating(&self.fastopen_qlen);
    }

    // --- steering and options ---

    /// SO_INCOMING_CPU as a worker index.
    pub fn incoming_cpu(&self) -> Option<u16> {
        match self.incoming_cpu.load(Ordering::Relaxed) {
            NO_CPU => None,
            w => u16::try_from(w).ok(),
        }
    }

    pub(crate) fn set_incoming_cpu(&self, cpu: Option<u16>) {
        self.incoming_cpu.store(cpu.map_or(NO_CPU, u32::from), Ordering::Relaxed);
    }

    /// Reuseport group id (also set for a listener alone in its group).
    pub fn group_id(&self) -> u64 {
        self.group.load(Ordering::Acquire)
    }

    pub(crate) fn set_group_id(&self, id: u64) {
        self.group.store(id, Ordering::Release);
    }

    /// TCP_DEFER_ACCEPT as a number of SYN-ACK retransmits (0 = off).
    pub fn defer_accept_retrans(&self) -> u32 {
        self.defer_accept.load(Ordering::Relaxed)
    }

    pub(crate) fn set_defer_accept_retrans(&self, n: u32) {
        self.defer_accept.store(n, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("id", &self.id)
            .field("local", &self.local)
            .field("ack_backlog", &self.sk_ack_backlog())
            .field("max_ack_backlog", &self.sk_max_ack_backlog())
            .field("qlen", &self.reqsk_queue_len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    pub(crate) fn child(worker: u16, conn_id: u32) -> ChildSock {
        ChildSock {
            worker,
            conn_id,
            local: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80).into(),
            peer: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 40000 + conn_id as u16).into(),
            established_at: Instant::from_millis(5),
            flow_hash: conn_id.wrapping_mul(0x9e37_79b9),
        }
    }

    fn listener(backlog: u32) -> Listener {
        Listener::new(1, SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80), backlog, false)
    }

    #[test]
    fn acceptq_full_is_backlog_plus_one() {
        let l = listener(1);
        assert!(!l.sk_acceptq_is_full());
        l.acceptq_add(child(0, 1)).unwrap();
        assert!(!l.sk_acceptq_is_full()); // 1 > 1 is false
        l.acceptq_add(child(0, 2)).unwrap();
        assert!(l.sk_acceptq_is_full());
        assert_eq!(l.acceptq_add(child(0, 3)), Err(child(0, 3)));
        assert!(!l.is_closed());
        assert_eq!(l.acceptq_remove(), Some(child(0, 1)));
    }

    #[test]
    fn relisten_backlog_is_seen_at_once() {
        let l = listener(0);
        l.acceptq_add(child(0, 1)).unwrap();
        assert!(l.sk_acceptq_is_full());
        l.set_max_ack_backlog(3);
        assert!(!l.sk_acceptq_is_full());
        for i in 2..=4 {
            l.acceptq_add(child(1, i)).unwrap();
        }
        assert_eq!(l.sk_ack_backlog(), 4);
        assert!(l.sk_acceptq_is_full());
    }

    #[test]
    fn request_queue_counts() {
        let l = listener(2);
        assert!(!l.reqsk_queue_is_full());
        l.reqsk_queue_added();
        l.reqsk_queue_added();
        assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (2, 2));
        assert!(!l.reqsk_queue_is_full()); // 2 > 2 is false (Linux 6.14+)
        l.reqsk_queue_added();
        assert!(l.reqsk_queue_is_full()); // 3 > 2
        l.reqsk_queue_removed(true);
        l.reqsk_queue_aged();
        assert_eq!(l.reqsk_queue_len_young(), 1);
        l.reqsk_queue_removed(false);
        l.reqsk_queue_removed(true);
        assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (0, 0));
        // Never wraps below zero.
        l.reqsk_queue_removed(true);
        assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (0, 0));
    }

    #[test]
    fn fastopen_queue_bound() {
        let l = listener(8);
        assert!(!l.fastopenq_try_add()); // max_qlen 0: TFO off
        l.set_fastopen_max_qlen(2);
        assert!(l.fastopenq_try_add());
        assert!(l.fastopenq_try_add());
        assert!(!l.fastopenq_try_add());
        l.fastopenq_removed();
        assert_eq!(l.fastopen_qlen(), 1);
        assert!(l.fastopenq_try_add());
    }

    #[test]
    fn closed_listener_refuses_children() {
        let l = listener(8);
        l.close();
        assert!(l.is_closed());
        assert!(l.acceptq_add(child(0, 1)).is_err());
    }
}
