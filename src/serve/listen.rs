//! Opening the listening sockets, as an application would, before the NIC is touched.

use super::{ListenSpec, ServeConfig, ServeError};
use crate::engine::listen::Listener;
use crate::engine::listen::Family;
use crate::engine::socket::{Fd, SockType, Stack};
use std::sync::Arc;

/// Every `--listen`, open.
pub(super) struct Listening {
    /// Closed at shutdown, once the application threads are gone.
    pub fds: Vec<Fd>,
    /// Per-core serving: each worker's reuseport members (empty otherwise).
    pub per_worker: Vec<Vec<Arc<Listener>>>,
}

impl Listening {
    /// Socket errors (EADDRINUSE, EADDRNOTAVAIL) come out here, before EAL.
    pub fn open(stack: &Stack, cfg: &ServeConfig) -> Result<Listening, ServeError> {
        let mut fds = Vec::new();
        let mut per_worker: Vec<Vec<Arc<Listener>>> = vec![Vec::new(); cfg.workers as usize];
        for l in &cfg.listens {
            if !cfg.per_core() {
                fds.push(open_listener(stack, l, None)?);
                continue;
            }
            for w in 0..cfg.workers {
                let fd = open_listener(stack, l, Some(w))?;
                let listener = stack.listener(fd).map_err(|errno| ServeError::NoListener { addr: l.addr, errno })?;
                per_worker[w as usize].push(listener);
                fds.push(fd);
            }
        }
        Ok(Listening { fds, per_worker })
    }

    /// Close every listener (again: nothing). Their SYNs then get RST as
    /// a closed port's do, and what waits in their accept queues is reset.
    pub fn close(&mut self, stack: &Stack) {
        for fd in self.fds.drain(..) {
            let _ = stack.close(fd);
        }
    }
}

/// Open one listening socket as an application would: socket, options, bind, listen.
fn open_listener(stack: &Stack, l: &ListenSpec, incoming_cpu: Option<u16>) -> Result<Fd, ServeError> {
    let err = |call, errno| ServeError::Socket { call, addr: l.addr, errno };
    let family = if l.addr.is_ipv6() { Family::Inet6 } else { Family::Inet };
    let fd = stack.socket_in(family, SockType::Stream).map_err(|e| err("socket", e))?;
    stack.set_reuseaddr(fd, true).map_err(|e| err("setsockopt(SO_REUSEADDR)", e))?;
    if incoming_cpu.is_some() {
        stack.set_reuseport(fd, true).map_err(|e| err("setsockopt(SO_REUSEPORT)", e))?;
        stack.set_incoming_cpu(fd, incoming_cpu).map_err(|e| err("setsockopt(SO_INCOMING_CPU)", e))?;
    }
    if l.fastopen_qlen > 0 {
        stack.set_fastopen(fd, l.fastopen_qlen).map_err(|e| err("setsockopt(TCP_FASTOPEN)", e))?;
    }
    if l.defer_accept > 0 {
        stack.set_defer_accept(fd, l.defer_accept).map_err(|e| err("setsockopt(TCP_DEFER_ACCEPT)", e))?;
    }
    stack.bind(fd, l.addr).map_err(|e| err("bind", e))?;
    stack.listen(fd, l.backlog).map_err(|e| err("listen", e))?;
    Ok(fd)
}
