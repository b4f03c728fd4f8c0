//! Built-in services on application threads: the shared-accept-ring mode.
//! One acceptor thread per listener takes children from the listener's
//! accept queue (fed by every worker) and hands them round-robin to N
//! application threads; each serves many connections through a [`Poller`].

use super::{Connection, Poller, Sockets};
use crate::app::session::Session;
use crate::app::LiveApp;
use crate::engine::errno::Errno;
use crate::engine::listen::ChildSock;
use crate::engine::socket::Fd;
use crate::engine::time::Instant as EngineInstant;
use crate::stats::Metric;
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
    session: Session,
    listener_id: u64,
    eof: bool,
}

/// Start `threads` application threads and one acceptor per listener.
/// They stop when `stop` is set. When a thread cannot be started, those
/// already running are stopped and joined and the error comes back.
/// `latency` gets the accept-queue wait (established -> accepted), measured
/// on the engine clock that started at `epoch`.
pub fn spawn(
    sockets: Arc<Sockets>,
    listeners: &[Fd],
    kind: Arc<LiveApp>,
    threads: usize,
    stop: Arc<AtomicBool>,
    latency: LatencySender,
    epoch: std::time::Instant,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
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
        let (sockets, kind, stop, latency) = (sockets.clone(), kind.clone(), stop.clone(), latency.clone());
        let spawned = std::thread::Builder::new().name(format!("dl-app-{i}")).spawn(move || {
            let poller = Poller::new();
            let _ = ptx.send(poller.clone());
            app_thread(&sockets, &poller, rx, kind, &stop, &latency)
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
    Ok(handles)
}

fn app_thread(
    sockets: &Sockets,
    poller: &Poller,
    inbox: Receiver<(ChildSock, u64)>,
    live: Arc<LiveApp>,
    stop: &AtomicBool,
    latency: &LatencySender,
) {
    let mut conns: HashMap<u64, ThreadConn> = HashMap::new();
    let mut times = WorkerLatency::default();
    let mut last_sent = std::time::Instant::now();
    let mut next_token = NEW_CONNECTIONS + 1;
    let mut ready = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let (mut kind, mut seen) = (live.get(), 0);
    while !stop.load(Ordering::Relaxed) {
        live.refresh(&mut seen, &mut kind);
        if last_sent.elapsed() >= Duration::from_millis(500) {
            last_sent = std::time::Instant::now();
            latency.send(times.take());
        }
        ready.clear();
        poller.wait(&mut ready, Some(Duration::from_millis(50)));
        for &token in &ready {
            if token == NEW_CONNECTIONS {
                while let Ok((child, listener_id)) = inbox.try_recv() {
                    let Some(service) = kind.new_service() else { continue };
                    let token = next_token;
                    next_token += 1;
                    let conn = Connection::attach(sockets, child, poller, token);
                    conns.insert(
                        token,
                        ThreadConn { conn: Some(conn), session: Session::new(service), listener_id, eof: false },
                    );
                }
                continue;
            }
            let Some(tc) = conns.get_mut(&token) else { continue };
            let started = std::time::Instant::now();
            let (done, requests) = serve(tc, &mut buf);
            let spent = started.elapsed().as_nanos() as u64;
            for _ in 0..requests {
                times.record(tc.listener_id, Metric::RequestToResponse, spent.max(1));
            }
            if done {
                conns.remove(&token);
            }
        }
    }
    latency.send(times.take());
    for (_, tc) in conns.drain() {
        if let Some(c) = tc.conn {
            c.close();
        }
    }
}

/// Move bytes through the session. Returns whether the connection is done,
/// and how many requests were answered (handed to the connection).
fn serve(tc: &mut ThreadConn, buf: &mut [u8]) -> (bool, u64) {
    let mut requests = 0;
    let Some(conn) = tc.conn.as_mut() else { return (true, 0) };
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
            c.close();
        }
        return (true, requests);
    }
    (conn.is_gone(), requests)
}
