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
