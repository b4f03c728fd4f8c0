//! Built-in applications run per core, inside the worker loop: the worker
//! accepts from its own reuseport member (SO_INCOMING_CPU = this worker),
//! so a connection's handshake, its data and its application all stay on
//! the core that owns it. Shared nothing, no locks, no cross-core traffic.

use crate::app::session::Session;
use crate::app::AppKind;
use crate::engine::errno::Errno;
use crate::engine::listen::{ChildSock, Listener};
use crate::engine::tcb::Events;
use crate::engine::tcp::{ConnTable, TcpEngine};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::telemetry::event_log::{AppEvent, EventSender};
use crate::stats::Metric;
use crate::telemetry::latency::WorkerLatency;
use std::net::SocketAddrV4;
use std::sync::Arc;

/// Bytes read from a connection per read call.
const READ_CHUNK: usize = 16 * 1024;

/// One accepted connection's application state (kept small: a worker
/// may hold a million idle ones).
struct AppConn {
    conn_id: u32,
    /// Index of the listener in `PerCoreApps::listeners`.
    listener: u16,
    peer: SocketAddrV4,
    session: Session,
    /// The peer's FIN was read.
    eof: bool,
    /// close() was called: nothing more to do but wait for CLOSED.
    closed: bool,
}

/// One worker's application side.
pub struct PerCoreApps {
    kind: AppKind,
    /// This worker's listeners (its reuseport members).
    listeners: Vec<Arc<Listener>>,
    /// Application state by connection slot.
    conns: Vec<Option<AppConn>>,
    scratch: Vec<u8>,
    events: Option<EventSender>,
    /// Requests answered in this run, waiting for the response time.
    answered: Vec<u64>,
}

impl PerCoreApps {
    pub fn new(kind: AppKind, listeners: Vec<Arc<Listener>>, events: Option<EventSender>) -> PerCoreApps {
        PerCoreApps {
            kind,
            listeners,
            conns: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            events,
            answered: Vec::new(),
        }
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
        if !self.answered.is_empty() {
            let spent = clock().saturating_since(now).as_nanos() as u64;
            for listener_id in self.answered.drain(..) {
                latency.record(listener_id, Metric::RequestToResponse, spent.max(1));
            }
        }
    }

    fn accept(&mut self, now: Instant, child: ChildSock, listener: usize, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        let Some(service) = self.kind.new_service() else { return };
        self.log(|| AppEvent::Accept { listener: child.local, peer: child.peer, worker: child.worker });
        let idx = ConnTable::index_of(child.conn_id);
        if self.conns.len() <= idx {
            self.conns.resize_with(idx + 1, || None);
        }
        let listener = listener.min(usize::from(u16::MAX)) as u16;
        self.conns[idx] =
            Some(AppConn { conn_id: child.conn_id, listener, peer: child.peer, session: Session::new(service), eof: false, closed: false });
        // Data (or even FIN) may have arrived before accept.
        self.on_events(now, child.conn_id, Events::READABLE, tcp, tx);
    }

    fn on_events(&mut self, now: Instant, id: u32, ev: Events, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        let idx = ConnTable::index_of(id);
        let Some(Some(conn)) = self.conns.get_mut(idx) else { return };
        if conn.conn_id != id {
            return;
        }
        let peer = conn.peer;
        let listener_id = self.listeners.get(usize::from(conn.listener)).map_or(0, |l| l.id);
        if ev.contains(Events::RESET) {
            if let Some(s) = &self.events {
                s.send(AppEvent::Reset { peer });
            }
        }
        if ev.contains(Events::CLOSED) || ev.contains(Events::RESET) {
            self.conns[idx] = None;
            return;
        }
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
                            let data = &self.scratch[..n];
                            if let Some(s) = &self.events {
                                s.send(AppEvent::Data { peer, bytes: data[..n.min(64)].to_vec(), len: n });
                            }
                            match conn.session.received(data) {
                                // Timed once this run's responses are handed to TCP.
                                Ok(requests) => {
                                    self.answered.extend(std::iter::repeat(listener_id).take(requests as usize))
                                }
                                Err(_) => {
                                    tcp.abort(now, id, tx);
                                    self.conns[idx] = None;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker may hold a million idle connections: their app state stays small.
    #[test]
    fn app_state_per_connection_is_small() {
        let size = std::mem::size_of::<Option<AppConn>>();
        println!("size_of::<Option<AppConn>>() = {size}");
        assert!(size <= 96, "{size} bytes");
    }
}
