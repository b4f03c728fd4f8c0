//! The worker's half of the application-thread API, run by `crate::worker`
//! every loop: moves bytes between a connection's TCB and its lock-free
//! chunk queues, and carries out the application's shutdown/close/abort.
//! Never blocks.

use super::{flag, ApiCmd, ConnShared};
use crate::engine::errno::Errno;
use crate::engine::tcb::Events;
use crate::engine::tcp::{ConnTable, TcpEngine};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crossbeam::queue::SegQueue;
use std::sync::Arc;

const READ_CHUNK: usize = 16 * 1024;

struct Attached {
    conn_id: u32,
    shared: Arc<ConnShared>,
    /// A chunk the send buffer took only part of.
    pending: Option<(Box<[u8]>, usize)>,
    closed: bool,
    shut: bool,
}

pub struct AttachedConns {
    worker: u16,
    cmds: Arc<[SegQueue<ApiCmd>]>,
    conns: Vec<Option<Attached>>,
    scratch: Vec<u8>,
}

impl AttachedConns {
    pub fn new(worker: u16, cmds: Arc<[SegQueue<ApiCmd>]>) -> AttachedConns {
        AttachedConns { worker, cmds, conns: Vec::new(), scratch: vec![0; READ_CHUNK] }
    }

    /// Application commands, then connection events of attached connections.
    pub fn run(&mut self, now: Instant, ready: &[(u32, Events)], tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        while let Some(cmd) = self.cmds.get(self.worker as usize).and_then(|q| q.pop()) {
            match cmd {
                ApiCmd::Attach { conn_id, shared } => {
                    let idx = ConnTable::index_of(conn_id);
                    if self.conns.len() <= idx {
                        self.conns.resize_with(idx + 1, || None);
                    }
                    if tcp.connections().get(conn_id).is_none() {
                        // Already gone (reset before the application attached).
                        shared.set(flag::GONE | flag::RESET);
                        shared.notify();
                        continue;
                    }
                    self.conns[idx] = Some(Attached { conn_id, shared, pending: None, closed: false, shut: false });
                    self.service(now, conn_id, Events::READABLE, tcp, tx);
                }
                ApiCmd::Kick { conn_id } => self.service(now, conn_id, Events::default(), tcp, tx),
            }
        }
        for &(id, ev) in ready {
            self.service(now, id, ev, tcp, tx);
        }
    }

    fn service(&mut self, now: Instant, id: u32, ev: Events, tcp: &mut TcpEngine, tx: &mut impl TxSink) {
        let idx = ConnTable::index_of(id);
        let Some(Some(a)) = self.conns.get_mut(idx) else { return };
        if a.conn_id != id {
            return;
        }
        let shared = a.shared.clone();
        let mut notify = false;
        if ev.contains(Events::RESET) || ev.contains(Events::CLOSED) {
            let f = if ev.contains(Events::RESET) { flag::RESET | flag::GONE } else { flag::GONE };
            shared.set(f);
            shared.notify();
            self.conns[idx] = None;
            return;
        }
        if shared.has(flag::ABORT) {
            tcp.abort(now, id, tx);
            shared.set(flag::GONE);
            shared.notify();
            self.conns[idx] = None;
            return;
        }
        // Receive: TCB -> chunks, while the application keeps up (a full
        // queue leaves data in the TCB, whose window then closes).
        while !shared.rx.is_full() && !shared.has(flag::EOF) {
            match tcp.read(id, &mut self.scratch) {
                Ok(0) => {
                    shared.set(flag::EOF);
                    notify = true;
                }
                Ok(n) => {
                    let _ = shared.rx.push(self.scratch[..n].into());
                    notify = true;
                }
                Err(_) => break,
            }
        }
        // Send: chunks -> TCB, as far as the send buffer takes them.
        let was_full = shared.tx.is_full();
        loop {
            let (chunk, off) = match a.pending.take() {
                Some(p) => p,
                None => match shared.tx.pop() {
                    Some(c) => (c, 0),
                    None => break,
                },
            };
            match tcp.write(id, &chunk[off..]) {
                Ok(n) if off + n == chunk.len() => {}
                Ok(n) => {
                    a.pending = Some((chunk, off + n));
                    break;
                }
                // The send buffer is full: keep the chunk for WRITABLE.
                Err(Errno::Eagain) => {
                    a.pending = Some((chunk, off));
                    break;
                }
                // The connection can send no more (reset, shut down): drop it.
                Err(_) => break,
            }
        }
        if was_full && !shared.tx.is_full() {
            notify = true;
        }
        let drained = a.pending.is_none() && shared.tx.is_empty();
        if drained && shared.has(flag::CLOSE) && !a.closed {
            a.closed = true;
            tcp.close(now, id, tx);
        } else {
            if drained && shared.has(flag::SHUTDOWN) && !a.shut {
                a.shut = true;
                let _ = tcp.shutdown(id);
            }
            tcp.flush(now, id, tx);
        }
        if notify || ev.contains(Events::WRITABLE) || ev.contains(Events::PEER_CLOSED) {
            shared.notify();
        }
    }
}
