//! Sockets for application threads.
//!
//! The control-plane calls (`socket`, `bind`, `listen`, non-blocking
//! `accept`, `close` on listeners) are the [`Stack`]'s. This module adds
//! what an application thread needs besides, all in one place:
//! - [`Sockets::accept_blocking`] ([`accept`]): park until a worker queues
//!   a child, the listener closes, or a timeout expires;
//! - [`Connection`] with `read`/`write`/`shutdown`/`close` and
//!   backpressure, for an accepted connection that lives in some worker's
//!   table, and a [`Poller`] that waits for readiness on many connections
//!   at once without spinning (the thread parks; the worker that owns a
//!   connection unparks it), like epoll;
//! - [`worker_side`]: the worker's half, which serves those connections
//!   from its loop;
//! - [`app_threads`]: the built-in services on application threads.
//!
//! Between an application thread and the worker there are only lock-free
//! queues of byte chunks and atomic flags; the worker never blocks.
//!
//! ```no_run
//! # use dlisten::api::{Connection, Poller, Sockets};
//! # use std::time::Duration;
//! # fn serve(sockets: &Sockets, listener: dlisten::engine::socket::Fd) -> Result<(), dlisten::engine::errno::Errno> {
//! let poller = Poller::new();
//! let child = sockets.accept_blocking(listener, None)?;
//! let mut conn = Connection::attach(sockets, child, &poller, 1);
//! let mut buf = [0u8; 4096];
//! loop {
//!     match conn.read(&mut buf) {
//!         Ok(0) => break,                          // EOF
//!         Ok(n) => { conn.write_all(&buf[..n])?; } // echo, waiting when the send side is full
//!         Err(e) => return Err(e),
//!     }
//! }
//! conn.close();
//! # Ok(()) }
//! ```

use crate::engine::errno::Errno;
use crate::engine::listen::ChildSock;
use crate::engine::socket::Stack;
use crate::sync::lock;
use crossbeam::queue::{ArrayQueue, SegQueue};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

pub mod accept;
pub mod app_threads;
pub mod worker_side;

/// Chunks in flight per direction per connection: the bound that turns a
/// slow reader into a closed TCP window, and a full send side into a
/// waiting writer.
pub const CHUNKS_PER_DIRECTION: usize = 16;
/// Largest chunk an application write is cut into.
pub const MAX_CHUNK: usize = 16 * 1024;

/// Connection state flags shared by the application and the worker.
pub(crate) mod flag {
    /// The peer sent FIN and every byte before it is in the receive queue.
    pub const EOF: u8 = 1 << 0;
    /// The connection was reset (by the peer, or timed out).
    pub const RESET: u8 = 1 << 1;
    /// The worker forgot the connection.
    pub const GONE: u8 = 1 << 2;
    /// The application asked for shutdown(SHUT_WR).
    pub const SHUTDOWN: u8 = 1 << 3;
    /// The application closed.
    pub const CLOSE: u8 = 1 << 4;
    /// The application aborted (RST).
    pub const ABORT: u8 = 1 << 5;
}

/// What a worker and an application thread share for one connection.
pub struct ConnShared {
    pub(crate) rx: ArrayQueue<Box<[u8]>>,
    pub(crate) tx: ArrayQueue<Box<[u8]>>,
    pub(crate) flags: AtomicU8,
    poller: Arc<PollerInner>,
    token: u64,
}

impl ConnShared {
    pub(crate) fn set(&self, f: u8) {
        self.flags.fetch_or(f, Ordering::AcqRel);
    }

    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags.load(Ordering::Acquire) & f != 0
    }

    /// Tell the application thread something changed.
    pub(crate) fn notify(&self) {
        self.poller.ready(self.token);
    }
}

/// Application -> worker messages.
pub enum ApiCmd {
    /// An application thread took this connection: from now on its data
    /// goes through `shared`.
    Attach { conn_id: u32, shared: Arc<ConnShared> },
    /// The application wrote, shut down, closed or aborted: look at it.
    Kick { conn_id: u32 },
}

/// The application side of the stack: the control plane plus one command
/// queue per worker.
pub struct Sockets {
    stack: Arc<Stack>,
    cmds: Arc<[SegQueue<ApiCmd>]>,
}

impl Sockets {
    pub fn new(stack: Arc<Stack>) -> Sockets {
        let cmds = (0..stack.workers()).map(|_| SegQueue::new()).collect::<Vec<_>>().into();
        Sockets { stack, cmds }
    }

    pub fn stack(&self) -> &Arc<Stack> {
        &self.stack
    }

    /// The queue a worker drains every loop.
    pub fn worker_queue(&self) -> Arc<[SegQueue<ApiCmd>]> {
        self.cmds.clone()
    }

    fn send(&self, worker: u16, cmd: ApiCmd) {
        if let Some(q) = self.cmds.get(worker as usize) {
            q.push(cmd);
        }
    }
}

struct PollerInner {
    ready: SegQueue<u64>,
    thread: Mutex<Option<Thread>>,
    sleeping: AtomicBool,
}

impl PollerInner {
    fn ready(&self, token: u64) {
        self.ready.push(token);
        if self.sleeping.load(Ordering::Acquire) {
            if let Some(t) = lock(&self.thread).as_ref() {
                t.unpark();
            }
        }
    }
}

/// Readiness for the connections of one application thread (epoll-like).
/// Tokens are the caller's; a token is reported when its connection may
/// have something to read, room to write, or ended.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<PollerInner>,
}

impl Default for Poller {
    fn default() -> Self {
        Self::new()
    }
}

impl Poller {
    /// A poller for the calling thread (the thread that will `wait`).
    pub fn new() -> Poller {
        Poller {
            inner: Arc::new(PollerInner {
                ready: SegQueue::new(),
                thread: Mutex::new(Some(std::thread::current())),
                sleeping: AtomicBool::new(false),
            }),
        }
    }

    /// Report `token` ready from another thread (e.g. "a new connection is queued for you").
    pub fn notify(&self, token: u64) {
        self.inner.ready(token);
    }

    /// Tokens that became ready, waiting up to `timeout` (None: forever)
    /// for at least one. Parks the thread: no spinning.
    pub fn wait(&self, out: &mut Vec<u64>, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            while let Some(t) = self.inner.ready.pop() {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            if !out.is_empty() {
                return;
            }
            *lock(&self.inner.thread) = Some(std::thread::current());
            self.inner.sleeping.store(true, Ordering::Release);
            // Re-check after announcing we sleep: a notify in between is not lost.
            if !self.inner.ready.is_empty() {
                self.inner.sleeping.store(false, Ordering::Release);
                continue;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        self.inner.sleeping.store(false, Ordering::Release);
                        return;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
            self.inner.sleeping.store(false, Ordering::Release);
        }
    }
}

/// An accepted connection used from an application thread.
pub struct Connection {
    child: ChildSock,
    shared: Arc<ConnShared>,
    cmds: Arc<[SegQueue<ApiCmd>]>,
    /// A chunk partly read.
    partial: Option<(Box<[u8]>, usize)>,
    /// Private poller for the blocking calls when the caller gave none to wait on.
    poller: Poller,
}

impl Connection {
    /// Take over an accepted child; readiness is reported to `poller` as `token`.
    pub fn attach(sockets: &Sockets, child: ChildSock, poller: &Poller, token: u64) -> Connection {
        let shared = Arc::new(ConnShared {
            rx: ArrayQueue::new(CHUNKS_PER_DIRECTION),
            tx: ArrayQueue::new(CHUNKS_PER_DIRECTION),
            flags: AtomicU8::new(0),
            poller: poller.inner.clone(),
            token,
        });
        sockets.send(child.worker, ApiCmd::Attach { conn_id: child.conn_id, shared: shared.clone() });
        Connection { child, shared, cmds: sockets.cmds.clone(), partial: None, poller: poller.clone() }
    }

    /// The peer: IPv4 for an IPv4 connection, IPv6 (an IPv4 peer of a
    /// dual-stack listener v4-mapped) for an IPv6 one.
    pub fn peer(&self) -> SocketAddr {
        self.child.peer
    }

    pub fn local(&self) -> SocketAddr {
        self.child.local
    }

    fn kick(&self) {
        if let Some(q) = self.cmds.get(self.child.worker as usize) {
            q.push(ApiCmd::Kick { conn_id: self.child.conn_id });
        }
    }

    /// Non-blocking read: `Ok(0)` at EOF, `Err(Eagain)` when nothing is
    /// there yet, `Err(Econnreset)` after a reset.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.partial.is_none() {
            let was_full = self.shared.rx.is_full();
            self.partial = self.shared.rx.pop().map(|c| (c, 0));
            if was_full {
                // The worker stopped reading when the queue filled: resume.
                self.kick();
            }
        }
        if let Some((chunk, off)) = &mut self.partial {
            let n = buf.len().min(chunk.len() - *off);
            buf[..n].copy_from_slice(&chunk[*off..*off + n]);
            *off += n;
            if *off == chunk.len() {
                self.partial = None;
            }
            return Ok(n);
        }
        if self.shared.has(flag::RESET) {
            return Err(Errno::Econnreset);
        }
        // EOF is set after the last chunk was queued: re-check the queue.
        if self.shared.has(flag::EOF | flag::GONE) {
            return if self.shared.rx.is_empty() { Ok(0) } else { self.try_read(buf) };
        }
        Err(Errno::Eagain)
    }

    /// Blocking read (parks until data, EOF or reset).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match self.try_read(buf) {
                Err(Errno::Eagain) => self.wait(),
                r => return r,
            }
        }
    }

    /// Non-blocking write: how many bytes were queued (`Err(Eagain)` when
    /// the send side is full: backpressure), `Err(Epipe)` after shutdown.
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, Errno> {
        if self.shared.has(flag::RESET) {
            return Err(Errno::Econnreset);
        }
        if self.shared.has(flag::SHUTDOWN | flag::CLOSE | flag::ABORT | flag::GONE) {
            return Err(Errno::Epipe);
        }
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(MAX_CHUNK);
            if self.shared.tx.push(data[done..done + n].into()).is_err() {
                break;
            }
            done += n;
        }
        if done == 0 && !data.is_empty() {
            return Err(Errno::Eagain);
        }
        self.kick();
        Ok(done)
    }

    /// Write everything, waiting (parked) while the send side is full.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), Errno> {
        while !data.is_empty() {
            match self.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(Errno::Eagain) => self.wait(),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn wait(&self) {
        let mut ready = Vec::new();
        self.poller.wait(&mut ready, Some(Duration::from_millis(100)));
        // Tokens of other connections on a shared poller stay pending for
        // the caller's own wait loop.
        for t in ready {
            if t != self.shared.token {
                self.poller.inner.ready.push(t);
            }
        }
    }

    /// `shutdown(SHUT_WR)`: FIN after the queued data.
    pub fn shutdown(&mut self) {
        self.shared.set(flag::SHUTDOWN);
        self.kick();
    }

    /// `close()`: FIN after the queued data (RST if unread data remains, as Linux).
    /// The handle tells when the worker is done with the connection.
    pub fn close(self) -> Closed {
        self.shared.set(flag::CLOSE);
        self.kick();
        Closed { shared: self.shared }
    }

    /// Reset the connection.
    pub fn abort(self) {
        self.shared.set(flag::ABORT);
        self.kick();
    }

    /// The connection ended (reset, or closed and forgotten by its worker).
    pub fn is_gone(&self) -> bool {
        self.shared.has(flag::GONE | flag::RESET)
    }
}

/// A closed [`Connection`]: its send buffer may still hold the end of a
/// response, so it is only finished once its worker forgot it.
pub struct Closed {
    shared: Arc<ConnShared>,
}

impl Closed {
    /// The worker forgot the connection (CLOSED, or reset).
    pub fn is_gone(&self) -> bool {
        self.shared.has(flag::GONE | flag::RESET)
    }
}
