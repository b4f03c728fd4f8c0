//! Built-in applications run per core, inside the worker loop: the worker
//! accepts from its own reuseport member (SO_INCOMING_CPU = this worker),
//! so a connection's handshake, its data and its application all stay on
//! the core that owns it. Shared nothing, no locks, no cross-core traffic.

use crate::app::session::{Phase, Session};
use crate::app::{AppKind, LiveApp};
use crate::engine::errno::Errno;
use crate::engine::listen::{ChildSock, Listener};
use crate::engine::tcb::Events;
use crate::engine::tcp::{ConnTable, TcpEngine};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::telemetry::event_log::{AppEvent, EventSender};
use crate::stats::{Counter, Counters, Metric};
use crate::telemetry::latency::WorkerLatency;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from a connection per read call.
const READ_CHUNK: usize = 16 * 1024;

/// Limits on slow and greedy clients. A zero timeout or cap is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request head must arrive whole within this (nginx: client_header_timeout).
    pub header_timeout: Duration,
    /// A keep-alive connection may wait this long for its next request
    /// (nginx: keepalive_timeout).
    pub keepalive_timeout: Duration,
    /// A request body may stall this long between two reads (nginx: client_body_timeout).
    pub body_timeout: Duration,
    /// Connections one client address may hold on a worker.
    pub max_conns_per_source: u32,
}

impl Default for ConnLimits {
    /// nginx's defaults: 60 s, 75 s, 60 s; no per-source cap.
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            max_conns_per_source: 0,
        }
    }
}

impl ConnLimits {
    fn timeout(&self, phase: Phase) -> Option<Duration> {
        let t = match phase {
            Phase::Busy => return None,
            Phase::Header => self.header_timeout,
            Phase::Idle => self.keepalive_timeout,
            Phase::Body => self.body_timeout,
        };
        (!t.is_zero()).then_some(t)
    }
}

/// A peer's address packed into 19 bytes (a `SocketAddr` takes 32).
#[derive(Clone, Copy)]
struct PeerAddr {
    ip: [u8; 16],
    port: u16,
    v4: bool,
}

impl PeerAddr {
    fn new(a: SocketAddr) -> PeerAddr {
        match a {
            SocketAddr::V4(a) => PeerAddr { ip: a.ip().to_ipv6_mapped().octets(), port: a.port(), v4: true },
            SocketAddr::V6(a) => PeerAddr { ip: a.ip().octets(), port: a.port(), v4: false },
        }
    }

    fn ip(&self) -> IpAddr {
        let v6 = std::net::Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.v4 => IpAddr::V4(v4),
            _ => IpAddr::V6(v6),
        }
    }

    fn get(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }
}

/// One accepted connection's application state (kept small: a worker
/// may hold a million idle ones).
struct AppConn {
    conn_id: u32,
    /// Index of the listener in `PerCoreApps::listeners`.
    listener: u16,
    peer: PeerAddr,
    session: Session,
    /// The peer's FIN was read.
    eof: bool,
    /// close() was called: nothing more to do but wait for CLOSED.
    closed: bool,
    /// The phase `deadline` was set for.
    phase: Phase,
    /// When the phase's timeout expires (meaningless while `Busy`).
    deadline: Instant,
    /// The key of this connection's live entry in `PerCoreApps::timers`
    /// (`Instant::ZERO`: none).
    timer: Instant,
}

/// One worker's application side.
pub struct PerCoreApps {
    kind: AppKind,
    /// Where a changed `kind` comes from, and its generation last seen.
    live: Option<(Arc<LiveApp>, u64)>,
    /// This worker's listeners (its reuseport members).
    listeners: Vec<Arc<Listener>>,
    /// Application state by connection slot.
    conns: Vec<Option<AppConn>>,
    scratch: Vec<u8>,
    events: Option<EventSender>,
    /// Requests answered in this run, waiting for the response time.
    answered: Vec<u64>,
    limits: ConnLimits,
    counters: Arc<Counters>,
    /// Deadlines, earliest first, with the connection id. Entries are not
    /// removed when a deadline moves: a popped entry whose key is not its
    /// connection's `timer` is stale, and a later deadline is re-armed when
    /// the early entry pops (as Linux's keepalive timer re-arms itself).
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    /// Open connections by client address, while a per-source cap is set.
    per_source: HashMap<IpAddr, u32>,
    /// Set by the server at SIGTERM.
    drain: Arc<AtomicBool>,
    draining: bool,
}

impl PerCoreApps {
    pub fn new(
        kind: AppKind,
        listeners: Vec<Arc<Listener>>,
        events: Option<EventSender>,
        limits: ConnLimits,
        counters: Arc<Counters>,
        drain: Arc<AtomicBool>,
    ) -> PerCoreApps {
        PerCoreApps {
            kind,
            live: None,
            listeners,
            conns: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            events,
            answered: Vec::new(),
            limits,
            counters,
            timers: BinaryHeap::new(),
            per_source: HashMap::new(),
            drain,
            draining: false,
        }
    }

    /// Take changes of the application's settings from `live`, between bursts.
    pub fn with_live(mut self, live: Arc<LiveApp>) -> Self {
        self.live = Some((live, 0));
        self
    }

    fn log(&self, ev: impl FnOnce() -> AppEvent) {
        if let Some(s) = &self.events {
            s.send(ev());
        }
    }

    /// Accept what is waiting, then serve every connection with events.
    /// `now` is when the current burst arrived; `clock` reads the time now
    /// (request->response is measured from one to the other).
    pub fn run(
        &mut self,
        now: Instant,
        clock: &dyn Fn() -> Instant,
        ready: &[(u32, Events)],
        tcp: &mut TcpEngine,
        latency: &mut WorkerLatency,
        tx: &mut impl TxSink,
    ) {
        if !self.draining && self.drain.load(Ordering::Relaxed) {
            self.begin_drain(now, tcp, tx);
        }
        if let Some((live, seen)) = &mut self.live {
            live.refresh(seen, &mut self.kind);
        }
        if !matches!(self.kind, AppKind::Hold) {
            for i in 0..self.listeners.len() {
                while let Some(child) = self.listeners[i].acceptq_remove() {
                    // The real clock: the wait is often shorter than a burst.
                    let waited = clock().saturating_since(child.established_at).as_nanos() as u64;
                    latency.record(self.listeners[i].id, Metric::EstablishedToAccepted, waited);
                    self.accept(now, child, i, tcp, tx);
                }
            }
        }
        for &(id, ev) in ready {
            self.on_events(now, id, ev, tcp, tx);
        }
        self.expire(now, tcp, tx);
        if !self.answered.is_empty() {
            let spent = clock().saturating_since(now).as_nanos() as u64;
            for listener_id in self.answered.drain(..) {
                latency.record(listener_id, Metric::RequestToResponse, spent.max(1));
            }
        }
    }

    fn accept(&mut self, now: Instant, child: ChildSock, listener: usize, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        let Some(service) = self.kind.new_service() else { return };
        let cap = self.limits.max_conns_per_source;
        if cap > 0 {
            let open = self.per_source.entry(child.peer.ip()).or_insert(0);
            if *open >= cap {
                // Like nginx's limit_conn, refused after the handshake; a
                // reset rather than a response, as there is no request yet.
                self.counters.inc(Counter::ConnPerSourceRefused);
                tcp.abort(now, child.conn_id, tx);
                return;
            }
            *open += 1;
        }
        let mut session = Session::new(service);
        if self.draining {
            // Accepted after the drain began: it closes after its first response.
            self.counters.inc(Counter::DrainConns);
            session.drain();
        }
        self.log(|| AppEvent::Accept { listener: child.local, peer: child.peer, worker: child.worker });
        let idx = ConnTable::index_of(child.conn_id);
        if self.conns.len() <= idx {
            self.conns.resize_with(idx + 1, || None);
        }
        let listener = listener.min(usize::from(u16::MAX)) as u16;
        self.conns[idx] =
            Some(AppConn {
                conn_id: child.conn_id,
                listener,
                peer: PeerAddr::new(child.peer),
                session,
                eof: false,
                closed: false,
                phase: Phase::Busy,
                deadline: Instant::ZERO,
                timer: Instant::ZERO,
            });
        // Data (or even FIN) may have arrived before accept.
        self.on_events(now, child.conn_id, Events::READABLE, tcp, tx);
    }

    fn on_events(&mut self, now: Instant, id: u32, ev: Events, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        let idx = ConnTable::index_of(id);
        let Some(Some(conn)) = self.conns.get_mut(idx) else { return };
        if conn.conn_id != id {
            return;
        }
        let peer = conn.peer.get();
        let listener_id = self.listeners.get(usize::from(conn.listener)).map_or(0, |l| l.id);
        if ev.contains(Events::RESET) {
            if let Some(s) = &self.events {
                s.send(AppEvent::Reset { peer });
            }
        }
        if ev.contains(Events::CLOSED) || ev.contains(Events::RESET) {
            self.remove(idx);
            return;
        }
        let mut received = false;
        let mut served = false;
        // Read, serve, write until nothing moves. Backpressure: while earlier
        // output waits for send-buffer space nothing more is read, so received
        // data stays in the TCB and its window closes; a WRITABLE event
        // resumes the loop.
        loop {
            let mut moved = false;
            // After the service decided to close, input is still read (and
            // dropped by the session) so that the close is a FIN, not the RST
            // Linux sends when unread data remains.
            if !conn.closed && !conn.eof && conn.session.output().is_empty() {
                loop {
                    match tcp.read(id, &mut self.scratch) {
                        Ok(0) => {
                            conn.eof = true;
                            if let Some(s) = &self.events {
                                s.send(AppEvent::Eof { peer });
                            }
                            conn.session.eof();
                            break;
                        }
                        Ok(n) => {
                            moved = true;
                            received = true;
                            let data = &self.scratch[..n];
                            if let Some(s) = &self.events {
                                s.send(AppEvent::Data { peer, bytes: data[..n.min(64)].to_vec(), len: n });
                            }
                            match conn.session.received(data) {
                                // Timed once this run's responses are handed to TCP.
                                Ok(requests) => {
                                    served |= requests > 0;
                                    self.answered.extend(std::iter::repeat(listener_id).take(requests as usize))
                                }
                                Err(_) => {
                                    tcp.abort(now, id, tx);
                                    self.remove(idx);
                                    return;
                                }
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            if !conn.session.output().is_empty() {
                match tcp.write(id, conn.session.output()) {
                    Ok(n) => {
                        moved |= n > 0;
                        conn.session.wrote(n);
                    }
                    Err(Errno::Eagain) => {}
                    // The connection cannot send any more (reset, shut down).
                    Err(_) => conn.session.drop_output(),
                }
            }
            if !moved || !conn.session.output().is_empty() || conn.closed {
                break;
            }
        }
        if conn.session.should_close() && !conn.closed {
            conn.closed = true;
            self.log(|| AppEvent::Close { peer });
            tcp.close(now, id, tx);
        } else {
            tcp.flush(now, id, tx);
            if !conn.closed {
                rearm(conn, &self.limits, &mut self.timers, now, received, served);
            }
        }
    }

    /// Close (FIN) the connections whose timeout expired.
    fn expire(&mut self, now: Instant, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        while let Some(&Reverse((key, id))) = self.timers.peek() {
            if key > now {
                break;
            }
            self.timers.pop();
            let idx = ConnTable::index_of(id);
            let Some(Some(conn)) = self.conns.get_mut(idx) else { continue };
            if conn.conn_id != id || conn.timer != key {
                continue;
            }
            conn.timer = Instant::ZERO;
            if conn.closed || self.limits.timeout(conn.phase).is_none() {
                continue;
            }
            if conn.deadline > now {
                conn.timer = conn.deadline;
                self.timers.push(Reverse((conn.deadline, id)));
                continue;
            }
            self.counters.inc(match conn.phase {
                Phase::Header => Counter::HttpHeaderTimeouts,
                Phase::Idle => Counter::HttpIdleTimeouts,
                _ => Counter::HttpBodyTimeouts,
            });
            conn.closed = true;
            conn.session.drop_output();
            let peer = conn.peer.get();
            self.log(|| AppEvent::Close { peer });
            tcp.close(now, id, tx);
        }
    }

    /// SIGTERM: count what is open, close what sits between requests, and
    /// have the rest close after their next response. A connection finishes
    /// when it is gone (CLOSED or reset), not at our FIN: a closed
    /// connection's send buffer may still hold the end of a response.
    fn begin_drain(&mut self, now: Instant, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        self.draining = true;
        self.counters.inc(Counter::DrainWorkers);
        for conn in self.conns.iter_mut().flatten() {
            self.counters.inc(Counter::DrainConns);
            if conn.closed {
                continue;
            }
            conn.session.drain();
            if conn.session.between_requests() {
                conn.closed = true;
                tcp.close(now, conn.conn_id, tx);
            }
        }
    }

    /// Forget a connection that is gone.
    fn remove(&mut self, idx: usize) {
        let Some(conn) = self.conns[idx].take() else { return };
        if self.draining {
            self.counters.inc(Counter::DrainFinished);
        }
        if self.limits.max_conns_per_source > 0 {
            let ip = conn.peer.ip();
            if let Some(open) = self.per_source.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    self.per_source.remove(&ip);
                }
            }
        }
    }
}

/// Set the connection's deadline for the phase it is in now: a new phase
/// starts its timeout; the body timeout restarts on every read (nginx's
/// "between two successive read operations"); the header timeout does not,
/// so a head sent a byte at a time still ends at its deadline. A request
/// answered (`served`) starts a new wait even when the phase looks the same
/// as at the last look (idle, then a whole request answered at once, idle
/// again): nginx arms keepalive_timeout anew after every response
/// (`ngx_http_set_keepalive`).
fn rearm(
    conn: &mut AppConn,
    limits: &ConnLimits,
    timers: &mut BinaryHeap<Reverse<(Instant, u32)>>,
    now: Instant,
    received: bool,
    served: bool,
) {
    let phase = conn.session.phase();
    let restart = phase != conn.phase
        || (phase == Phase::Body && received)
        || (served && matches!(phase, Phase::Idle | Phase::Header));
    conn.phase = phase;
    let Some(timeout) = limits.timeout(phase) else { return };
    if !restart {
        return;
    }
    conn.deadline = now + timeout;
    // One live entry, at the earliest deadline: a later deadline is found
    // when that entry pops.
    if conn.timer == Instant::ZERO || conn.deadline < conn.timer {
        conn.timer = conn.deadline;
        timers.push(Reverse((conn.deadline, conn.conn_id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::clients::{self, META_OFFLOAD, SYN_LEN};
    use crate::testkit::frame::OUR_IP;
    use crate::testkit::rig::{Rig, RigConfig, VecSink, FRAME_MAX};
    use crate::wire::tcp::TcpFlags;

    const SECOND: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// The rig's one worker with the per-core http app on OUR_IP:80.
    struct Bed {
        rig: Rig,
        apps: PerCoreApps,
        tx: VecSink,
        ready: Vec<(u32, Events)>,
        latency: WorkerLatency,
        drain: Arc<AtomicBool>,
    }

    /// A client: the SYN-ACK it got, and how many bytes it sent since.
    struct Client {
        synack: Vec<u8>,
        sent: u32,
    }

    impl Bed {
        fn new(limits: ConnLimits) -> Bed {
            let rig = Rig::new(RigConfig::default());
            let fd = rig.listen_on(std::net::SocketAddrV4::new(OUR_IP, clients::PORT), 128, |_, _| {});
            let listener = rig.stack.listener(fd).unwrap();
            let drain = Arc::new(AtomicBool::new(false));
            let counters = rig.workers[0].counters.clone();
            let apps = PerCoreApps::new(AppKind::Http(Default::default()), vec![listener], None, limits, counters, drain.clone());
            Bed { rig, apps, tx: VecSink::default(), ready: Vec::new(), latency: WorkerLatency::default(), drain }
        }

        fn serve(&mut self) {
            let w = &mut self.rig.workers[0];
            w.engine.drain_ready(&mut self.ready);
            let now = self.rig.now;
            self.apps.run(now, &|| now, &self.ready, &mut w.engine, &mut self.latency, &mut self.tx);
            self.ready.clear();
        }

        /// Client `i` (clients 0..50 000 share one address) completes a handshake.
        fn connect(&mut self, i: u32) -> Client {
            let mut syn = [0u8; SYN_LEN];
            let n = clients::syn_frame(i, &mut syn);
            self.rig.rx(0, &syn[..n], META_OFFLOAD, &mut self.tx);
            let synack = self.tx.take().pop().expect("a SYN-ACK");
            let client = Client { synack, sent: 0 };
            self.send(&client, &[], TcpFlags::ACK);
            client
        }

        /// A segment from `client` carrying `payload`, then the app's turn.
        fn send(&mut self, client: &Client, payload: &[u8], flags: TcpFlags) {
            let mut frame = [0u8; FRAME_MAX];
            let n = segment(client, payload, flags, &mut frame);
            self.rig.rx(0, &frame[..n], META_OFFLOAD, &mut self.tx);
            self.serve();
        }

        fn data(&mut self, client: &mut Client, payload: &[u8]) {
            self.send(client, payload, TcpFlags::ACK | TcpFlags::PSH);
            client.sent += payload.len() as u32;
        }

        /// Move the clock in 1 ms ticks, the app taking its turn each tick
        /// as in the worker's housekeeping.
        fn advance(&mut self, d: Duration) {
            let end = self.rig.now + d;
            while self.rig.now < end {
                self.rig.advance(MS, &mut self.tx);
                self.serve();
            }
        }

        /// Frames sent since the last look with `flag` set, and their payloads.
        fn sent_with(&mut self, flag: TcpFlags) -> (usize, Vec<u8>) {
            crate::testkit::check::tcp_flag_count_and_payload(self.tx.take(), flag)
        }

        fn counter(&self, c: Counter) -> u64 {
            self.rig.counter(c)
        }
    }

    /// The client's next segment: it acknowledges only the SYN-ACK (the
    /// server's data stays unacknowledged, which does not matter here).
    fn segment(client: &Client, payload: &[u8], flags: TcpFlags, buf: &mut [u8]) -> usize {
        crate::testkit::clients::segment_frame(&client.synack, client.sent, flags, payload, buf)
    }

    fn limits(header: u64, keepalive: u64, body: u64, per_source: u32) -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(header),
            keepalive_timeout: Duration::from_secs(keepalive),
            body_timeout: Duration::from_secs(body),
            max_conns_per_source: per_source,
        }
    }

    #[test]
    fn a_slow_head_is_closed_at_the_header_timeout() {
        let mut bed = Bed::new(limits(2, 5, 5, 0));
        let mut c = bed.connect(0);
        bed.advance(SECOND);
        // A header line now and then does not extend the header timeout.
        bed.data(&mut c, b"GET / HTTP/1.1\r\n");
        bed.advance(900 * MS);
        bed.data(&mut c, b"X-a: b\r\n");
        bed.tx.take();
        bed.advance(90 * MS);
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 0, "closed before the timeout");
        bed.advance(20 * MS);
        let (fins, payload) = bed.sent_with(TcpFlags::FIN);
        assert_eq!(fins, 1, "not closed at the timeout");
        assert!(payload.is_empty(), "a timed-out head is not answered");
        assert_eq!(bed.counter(Counter::HttpHeaderTimeouts), 1);
        assert_eq!(bed.counter(Counter::HttpIdleTimeouts) + bed.counter(Counter::HttpBodyTimeouts), 0);
    }

    #[test]
    fn the_body_timeout_restarts_on_every_read() {
        let mut bed = Bed::new(limits(5, 5, 2, 0));
        let mut c = bed.connect(0);
        bed.data(&mut c, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab");
        for piece in [b"cd", b"ef"] {
            bed.advance(1900 * MS);
            bed.data(&mut c, piece);
        }
        let (fins, payload) = bed.sent_with(TcpFlags::FIN);
        assert_eq!(fins, 0);
        assert!(payload.starts_with(b"HTTP/1.1 200 OK"), "the body was read in time");
        let mut d = bed.connect(1);
        bed.data(&mut d, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab");
        bed.tx.take();
        bed.advance(2 * SECOND + 10 * MS);
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 1);
        assert_eq!(bed.counter(Counter::HttpBodyTimeouts), 1);
        assert_eq!(bed.counter(Counter::HttpHeaderTimeouts), 0);
    }

    #[test]
    fn a_busy_keep_alive_connection_is_not_closed_at_the_keepalive_timeout() {
        let mut bed = Bed::new(limits(2, 3, 2, 0));
        let mut c = bed.connect(0);
        // A request every second for 8 s: each answer starts a new keep-alive wait.
        for _ in 0..8 {
            bed.data(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            bed.advance(SECOND);
        }
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 0);
        assert_eq!(bed.counter(Counter::HttpIdleTimeouts) + bed.counter(Counter::HttpHeaderTimeouts), 0);
        bed.advance(3 * SECOND);
        assert!(bed.sent_with(TcpFlags::FIN).0 >= 1, "idle for 3 s after the last answer");
        assert_eq!(bed.counter(Counter::HttpIdleTimeouts), 1);
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_at_the_keepalive_timeout() {
        let mut bed = Bed::new(limits(2, 3, 2, 0));
        let mut c = bed.connect(0);
        bed.data(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // Past the header timeout: idleness after a request is the keep-alive one.
        bed.advance(2990 * MS);
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 0);
        bed.advance(20 * MS);
        // The FIN may ride on a retransmission of the unacknowledged response.
        assert!(bed.sent_with(TcpFlags::FIN).0 >= 1);
        assert_eq!(bed.counter(Counter::HttpIdleTimeouts), 1);
        assert_eq!(bed.counter(Counter::HttpHeaderTimeouts), 0);
    }

    #[test]
    fn zero_turns_a_timeout_off() {
        let mut bed = Bed::new(limits(0, 0, 0, 0));
        let _c = bed.connect(0);
        bed.advance(3 * SECOND);
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 0);
        assert!(bed.apps.timers.is_empty());
    }

    #[test]
    fn connections_over_the_per_source_cap_are_reset() {
        let mut bed = Bed::new(limits(60, 75, 60, 2));
        let a = bed.connect(0);
        let _b = bed.connect(1);
        assert_eq!(bed.sent_with(TcpFlags::RST).0, 0);
        let _c = bed.connect(2);
        assert_eq!(bed.sent_with(TcpFlags::RST).0, 1, "the third from one address");
        assert_eq!(bed.counter(Counter::ConnPerSourceRefused), 1);
        // Another address has its own count.
        let _d = bed.connect(50_000);
        assert_eq!(bed.sent_with(TcpFlags::RST).0, 0);
        // A connection that is gone frees its place.
        bed.send(&a, &[], TcpFlags::RST);
        let _e = bed.connect(3);
        assert_eq!(bed.sent_with(TcpFlags::RST).0, 0);
        assert_eq!(bed.counter(Counter::ConnPerSourceRefused), 1);
    }

    #[test]
    fn drain_closes_idle_connections_and_the_rest_after_their_response() {
        let mut bed = Bed::new(ConnLimits::default());
        let mut idle = bed.connect(0);
        bed.data(&mut idle, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut busy = bed.connect(1);
        bed.data(&mut busy, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na");
        bed.tx.take();
        bed.drain.store(true, Ordering::Relaxed);
        bed.serve();
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 1, "the idle one is closed at once");
        assert_eq!(bed.counter(Counter::DrainWorkers), 1);
        assert_eq!(bed.counter(Counter::DrainConns), 2);
        bed.data(&mut busy, b"b");
        let (fins, payload) = bed.sent_with(TcpFlags::FIN);
        assert_eq!(fins, 1);
        let text = String::from_utf8_lossy(&payload).to_string();
        assert!(text.starts_with("HTTP/1.1 200 OK") && text.contains("Connection: close\r\n"), "{text}");
        // Finished once the connections are gone, not at our FIN.
        assert_eq!(bed.counter(Counter::DrainFinished), 0);
        bed.send(&idle, &[], TcpFlags::RST);
        assert_eq!(bed.counter(Counter::DrainFinished), 1);
    }

    /// A worker may hold a million idle connections: their app state stays small.
    #[test]
    fn app_state_per_connection_is_small() {
        let size = std::mem::size_of::<Option<AppConn>>();
        println!("size_of::<Option<AppConn>>() = {size}");
        // 112 with IPv4 peers only; an IPv6 peer's address adds 8.
        assert!(size <= 120, "{size} bytes");
    }
}
