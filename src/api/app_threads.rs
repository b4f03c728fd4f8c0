//! Built-in services on application threads: the shared-accept-ring mode.
//! One acceptor thread per listener takes children from the listener's
//! accept queue (fed by every worker) and hands them round-robin to N
//! application threads; each serves many connections through a [`Poller`].

use super::{Closed, Connection, Poller, Sockets};
use crate::app::session::Session;
use crate::app::{AppKind, LiveApp};
use crate::engine::errno::Errno;
use crate::engine::listen::ChildSock;
use crate::engine::socket::Fd;
use crate::engine::time::Instant as EngineInstant;
use crate::stats::{Counter, Counters, Metric};
use crate::telemetry::latency::{LatencySender, WorkerLatency};
use crossbeam::channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The token an application thread's poller gets for "new connections queued".
const NEW_CONNECTIONS: u64 = 0;

struct ThreadConn {
    conn: Option<Connection>,
    /// After close: kept until its worker forgot it.
    closed: Option<Closed>,
    session: Session,
    listener_id: u64,
    eof: bool,
}

/// What [`spawn`] started: the threads to join, and each application
/// thread's counters (the thread is their only writer).
pub struct AppThreads {
    pub handles: Vec<JoinHandle<()>>,
    pub counters: Vec<Arc<Counters>>,
}

/// Start `threads` application threads and one acceptor per listener.
/// They stop when `stop` is set; when `drain` is set, each thread drains its
/// connections as the per-core apps do (`PerCoreApps::begin_drain`) and
/// counts them in its counters. When a thread cannot be started, those
/// already running are stopped and joined and the error comes back.
/// `latency` gets the accept-queue wait (established -> accepted), measured
/// on the engine clock that started at `epoch`.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    sockets: Arc<Sockets>,
    listeners: &[Fd],
    kind: Arc<LiveApp>,
    threads: usize,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    latency: LatencySender,
    epoch: std::time::Instant,
) -> std::io::Result<AppThreads> {
    let mut handles = Vec::new();
    let mut all_counters = Vec::new();
    let give_up = |e: std::io::Error, handles: Vec<JoinHandle<()>>| {
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        e
    };
    let mut inboxes: Vec<(Sender<(ChildSock, u64)>, Poller)> = Vec::new();
    for i in 0..threads.max(1) {
        let (tx, rx) = crossbeam::channel::unbounded();
        let (ptx, prx) = crossbeam::channel::bounded(1);
        let counters = Arc::new(Counters::new());
        all_counters.push(counters.clone());
        let (sockets, kind, stop, drain, latency) = (sockets.clone(), kind.clone(), stop.clone(), drain.clone(), latency.clone());
        let spawned = std::thread::Builder::new().name(format!("dl-app-{i}")).spawn(move || {
            let poller = Poller::new();
            let _ = ptx.send(poller.clone());
            let flags = Flags { stop: &stop, drain: &drain };
            app_thread(&sockets, &poller, rx, kind, flags, AppConns::new(counters), &latency)
        });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => return Err(give_up(e, handles)),
        }
        if let Ok(p) = prx.recv() {
            inboxes.push((tx, p));
        }
    }
    let inboxes = Arc::new(inboxes);
    for &fd in listeners {
        let (sockets, stop, inboxes, latency) = (sockets.clone(), stop.clone(), inboxes.clone(), latency.clone());
        let listener_id = sockets.stack().listener(fd).map(|l| l.id).unwrap_or(0);
        let spawned = std::thread::Builder::new()
            .name("dl-acceptor".into())
            .spawn(move || {
                let mut next = 0;
                let mut waits = WorkerLatency::default();
                let mut last_sent = std::time::Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if last_sent.elapsed() >= Duration::from_millis(500) {
                        last_sent = std::time::Instant::now();
                        latency.send(waits.take());
                    }
                    match sockets.accept_blocking(fd, Some(Duration::from_millis(50))) {
                        Ok(child) => {
                            let now = EngineInstant::from_nanos(epoch.elapsed().as_nanos() as u64);
                            let waited = now.saturating_since(child.established_at).as_nanos() as u64;
                            waits.record(listener_id, Metric::EstablishedToAccepted, waited);
                            let (tx, poller) = &inboxes[next % inboxes.len()];
                            next += 1;
                            if tx.send((child, listener_id)).is_ok() {
                                poller.notify(NEW_CONNECTIONS);
                            }
                        }
                        Err(Errno::Eagain) => {}
                        Err(_) => break,
                    }
                }
                latency.send(waits.take());
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => return Err(give_up(e, handles)),
        }
    }
    Ok(AppThreads { handles, counters: all_counters })
}

/// The server's flags an application thread watches.
struct Flags<'a> {
    stop: &'a AtomicBool,
    /// SIGTERM: drain.
    drain: &'a AtomicBool,
}

fn app_thread(
    sockets: &Sockets,
    poller: &Poller,
    inbox: Receiver<(ChildSock, u64)>,
    live: Arc<LiveApp>,
    flags: Flags<'_>,
    mut conns: AppConns,
    latency: &LatencySender,
) {
    let mut times = WorkerLatency::default();
    let mut last_sent = std::time::Instant::now();
    let mut ready = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut kind, mut seen) = (live.get(), 0);
    while !flags.stop.load(Ordering::Relaxed) {
        live.refresh(&mut seen, &mut kind);
        if last_sent.elapsed() >= Duration::from_millis(500) {
            last_sent = std::time::Instant::now();
            latency.send(times.take());
        }
        if !conns.draining && flags.drain.load(Ordering::Relaxed) {
            // Those handed over already are open connections too.
            while let Ok((child, listener_id)) = inbox.try_recv() {
                conns.accept(sockets, poller, child, listener_id, &kind);
            }
            conns.begin_drain(&mut buf, &mut times);
        }
        ready.clear();
        poller.wait(&mut ready, Some(Duration::from_millis(50)));
        for &token in &ready {
            if token == NEW_CONNECTIONS {
                while let Ok((child, listener_id)) = inbox.try_recv() {
                    conns.accept(sockets, poller, child, listener_id, &kind);
                }
                continue;
            }
            conns.ready(token, &mut buf, &mut times);
        }
    }
    latency.send(times.take());
    conns.close_all();
}

/// One application thread's connections, by poller token.
struct AppConns {
    conns: HashMap<u64, ThreadConn>,
    next_token: u64,
    counters: Arc<Counters>,
    draining: bool,
}

impl AppConns {
    fn new(counters: Arc<Counters>) -> AppConns {
        AppConns { conns: HashMap::new(), next_token: NEW_CONNECTIONS + 1, counters, draining: false }
    }

    fn accept(&mut self, sockets: &Sockets, poller: &Poller, child: ChildSock, listener_id: u64, kind: &AppKind) {
        let Some(service) = kind.new_service() else { return };
        let token = self.next_token;
        self.next_token += 1;
        let conn = Connection::attach(sockets, child, poller, token);
        let mut session = Session::new(service);
        if self.draining {
            self.counters.inc(Counter::DrainConns);
            // Its first response closes it.
            session.drain();
        }
        self.conns.insert(token, ThreadConn { conn: Some(conn), closed: None, session, listener_id, eof: false });
    }

    /// The connection of `token` has news: serve it, time what it answered.
    fn ready(&mut self, token: u64, buf: &mut [u8], times: &mut WorkerLatency) {
        let Some(tc) = self.conns.get_mut(&token) else { return };
        let started = std::time::Instant::now();
        let (gone, requests) = serve(tc, buf);
        let spent = started.elapsed().as_nanos() as u64;
        for _ in 0..requests {
            times.record(tc.listener_id, Metric::RequestToResponse, spent.max(1));
        }
        if gone {
            self.remove(token);
        }
    }

    /// SIGTERM, as `PerCoreApps::begin_drain`: count what is open, close
    /// what sits between requests, and have the rest close after their
    /// next response. What already arrived is served first, so that a
    /// request waiting in the queue is answered rather than cut.
    fn begin_drain(&mut self, buf: &mut [u8], times: &mut WorkerLatency) {
        self.draining = true;
        let tokens: Vec<u64> = self.conns.keys().copied().collect();
        for token in tokens {
            self.counters.inc(Counter::DrainConns);
            if let Some(tc) = self.conns.get_mut(&token) {
                tc.session.drain();
            }
            self.ready(token, buf, times);
            let Some(tc) = self.conns.get_mut(&token) else { continue };
            if tc.session.between_requests() {
                if let Some(c) = tc.conn.take() {
                    tc.closed = Some(c.close());
                }
            }
        }
        // Last: once the server sees every thread draining, its
        // connections are counted.
        self.counters.inc(Counter::DrainWorkers);
    }

    /// Forget a connection that is gone.
    fn remove(&mut self, token: u64) {
        if self.conns.remove(&token).is_some() && self.draining {
            self.counters.inc(Counter::DrainFinished);
        }
    }

    /// The server stops: close what is left.
    fn close_all(&mut self) {
        for (_, tc) in self.conns.drain() {
            if let Some(c) = tc.conn {
                c.close();
            }
        }
    }
}

/// Move bytes through the session. Returns whether the connection is gone
/// (a closed one only once its worker forgot it), and how many requests
/// were answered (handed to the connection).
fn serve(tc: &mut ThreadConn, buf: &mut [u8]) -> (bool, u64) {
    let mut requests = 0;
    let Some(conn) = tc.conn.as_mut() else { return (tc.closed.as_ref().map_or(true, Closed::is_gone), 0) };
    // Backpressure: read only while no output waits; loop so that output
    // drained by this call lets reading resume.
    loop {
        let mut read_any = false;
        while !tc.eof && tc.session.output().is_empty() {
            match conn.try_read(buf) {
                Ok(0) => {
                    tc.eof = true;
                    tc.session.eof();
                }
                Ok(n) => {
                    read_any = true;
                    match tc.session.received(&buf[..n]) {
                        Ok(r) => requests += r,
                        Err(_) => {
                            if let Some(c) = tc.conn.take() {
                                c.abort();
                            }
                            return (true, requests);
                        }
                    }
                }
                Err(Errno::Eagain) => break,
                Err(_) => return (true, requests),
            }
        }
        while !tc.session.output().is_empty() {
            match conn.try_write(tc.session.output()) {
                Ok(n) => tc.session.wrote(n),
                Err(Errno::Eagain) => break,
                Err(_) => return (true, requests),
            }
        }
        if !read_any || !tc.session.output().is_empty() || tc.eof {
            break;
        }
    }
    if tc.session.should_close() {
        if let Some(c) = tc.conn.take() {
            let closed = c.close();
            let gone = closed.is_gone();
            tc.closed = Some(closed);
            return (gone, requests);
        }
        return (true, requests);
    }
    (conn.is_gone(), requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::worker_side::AttachedConns;
    use crate::engine::tcb::Events;
    use crate::testkit::clients::{self, META_OFFLOAD, SYN_LEN};
    use crate::testkit::frame::OUR_IP;
    use crate::testkit::rig::{Rig, RigConfig, VecSink, FRAME_MAX};
    use crate::wire::tcp::TcpFlags;
    use std::net::SocketAddrV4;

    /// The rig's one worker with its half of the socket API, and one
    /// application thread's connections driven in turn on this thread.
    struct Bed {
        rig: Rig,
        fd: Fd,
        sockets: Sockets,
        attached: AttachedConns,
        poller: Poller,
        conns: AppConns,
        counters: Arc<Counters>,
        tx: VecSink,
        buf: Vec<u8>,
        times: WorkerLatency,
    }

    /// A client: the SYN-ACK it got, and how many bytes it sent since.
    struct Client {
        synack: Vec<u8>,
        sent: u32,
    }

    impl Bed {
        fn new() -> Bed {
            let rig = Rig::new(RigConfig::default());
            let fd = rig.listen_on(SocketAddrV4::new(OUR_IP, clients::PORT), 128, |_, _| {});
            let sockets = Sockets::new(rig.stack.clone());
            let attached = AttachedConns::new(0, sockets.worker_queue());
            let counters = Arc::new(Counters::new());
            let conns = AppConns::new(counters.clone());
            let (tx, buf, times) = (VecSink::default(), vec![0; 16 * 1024], WorkerLatency::default());
            Bed { rig, fd, sockets, attached, poller: Poller::new(), conns, counters, tx, buf, times }
        }

        /// The worker's turn, the application thread's, the worker's again
        /// (it carries out what the application wrote or closed).
        fn turn(&mut self) {
            self.worker();
            let mut tokens = Vec::new();
            self.poller.wait(&mut tokens, Some(Duration::ZERO));
            for t in tokens {
                self.conns.ready(t, &mut self.buf, &mut self.times);
            }
            self.worker();
        }

        fn worker(&mut self) {
            let mut ready: Vec<(u32, Events)> = Vec::new();
            let w = &mut self.rig.workers[0];
            w.engine.drain_ready(&mut ready);
            self.attached.run(self.rig.now, &ready, &mut w.engine, &mut self.tx);
        }

        /// Client `i` completes a handshake and the application takes it.
        fn connect(&mut self, i: u32) -> Client {
            let mut syn = [0u8; SYN_LEN];
            let n = clients::syn_frame(i, &mut syn);
            self.rig.rx(0, &syn[..n], META_OFFLOAD, &mut self.tx);
            let synack = self.tx.take().pop().expect("a SYN-ACK");
            let client = Client { synack, sent: 0 };
            self.send(&client, &[], TcpFlags::ACK);
            let child = self.rig.stack.accept(self.fd).expect("an accepted child");
            self.conns.accept(&self.sockets, &self.poller, child, 1, &AppKind::Http(Default::default()));
            self.turn();
            client
        }

        fn send(&mut self, client: &Client, payload: &[u8], flags: TcpFlags) {
            let mut frame = [0u8; FRAME_MAX];
            let n = clients::segment_frame(&client.synack, client.sent, flags, payload, &mut frame);
            self.rig.rx(0, &frame[..n], META_OFFLOAD, &mut self.tx);
            self.turn();
        }

        fn data(&mut self, client: &mut Client, payload: &[u8]) {
            self.send(client, payload, TcpFlags::ACK | TcpFlags::PSH);
            client.sent += payload.len() as u32;
        }

        fn drain(&mut self) {
            self.conns.begin_drain(&mut self.buf, &mut self.times);
            self.turn();
        }

        /// Frames sent since the last look with `flag` set, and their payloads.
        fn sent_with(&mut self, flag: TcpFlags) -> (usize, Vec<u8>) {
            crate::testkit::check::tcp_flag_count_and_payload(self.tx.take(), flag)
        }
    }

    #[test]
    fn drain_closes_idle_connections_and_the_rest_after_their_response() {
        let mut bed = Bed::new();
        let mut idle = bed.connect(0);
        bed.data(&mut idle, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(bed.sent_with(TcpFlags::PSH).1.starts_with(b"HTTP/1.1 200 OK"), "served on the application thread");
        let mut busy = bed.connect(1);
        bed.data(&mut busy, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\na");
        bed.tx.take();
        bed.drain();
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 1, "the idle one is closed at once");
        assert_eq!(bed.counters.get(Counter::DrainWorkers), 1);
        assert_eq!(bed.counters.get(Counter::DrainConns), 2);
        bed.data(&mut busy, b"b");
        let (fins, payload) = bed.sent_with(TcpFlags::FIN);
        assert_eq!(fins, 1);
        let text = String::from_utf8_lossy(&payload).to_string();
        assert!(text.starts_with("HTTP/1.1 200 OK") && text.contains("Connection: close\r\n"), "{text}");
        // Finished once the connections are gone, not at our FIN.
        assert_eq!(bed.counters.get(Counter::DrainFinished), 0);
        bed.send(&idle, &[], TcpFlags::RST);
        assert_eq!(bed.counters.get(Counter::DrainFinished), 1);
        bed.send(&busy, &[], TcpFlags::RST);
        assert_eq!(bed.counters.get(Counter::DrainFinished), 2);
        assert!(bed.conns.conns.is_empty(), "a gone connection is forgotten");
    }

    #[test]
    fn a_connection_taken_while_draining_closes_after_its_first_response() {
        let mut bed = Bed::new();
        bed.drain();
        assert_eq!((bed.counters.get(Counter::DrainWorkers), bed.counters.get(Counter::DrainConns)), (1, 0));
        let mut late = bed.connect(0);
        assert_eq!(bed.counters.get(Counter::DrainConns), 1, "counted as open in the drain");
        bed.data(&mut late, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let (fins, payload) = bed.sent_with(TcpFlags::FIN);
        assert_eq!(fins, 1);
        assert!(String::from_utf8_lossy(&payload).contains("Connection: close\r\n"));
        bed.send(&late, &[], TcpFlags::RST);
        assert_eq!(bed.counters.get(Counter::DrainFinished), 1);
    }

    #[test]
    fn without_a_drain_nothing_is_counted() {
        let mut bed = Bed::new();
        let mut c = bed.connect(0);
        bed.data(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(bed.sent_with(TcpFlags::FIN).0, 1);
        bed.send(&c, &[], TcpFlags::RST);
        assert!(bed.conns.conns.is_empty());
        for counter in [Counter::DrainWorkers, Counter::DrainConns, Counter::DrainFinished] {
            assert_eq!(bed.counters.get(counter), 0, "{counter:?}");
        }
    }
}
