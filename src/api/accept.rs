//! Blocking accept: the application thread parks until a worker queues a
//! child, the listener closes, or the timeout expires.
//!
//! The engine's accept queue only registers waiters and wakes them
//! ([`AcceptQueue::register_waiter`]); parking and the deadline are here, so
//! that nothing in the engine sleeps or reads a clock.

use super::Sockets;
use crate::engine::errno::Errno;
use crate::engine::listen::{AcceptQueue, ChildSock};
use crate::engine::socket::Fd;
use crate::sync::primitive::thread;
use std::time::{Duration, Instant};

/// Why [`pop_blocking`] returned without an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PopError {
    /// The timeout expired with the queue still empty.
    TimedOut,
    /// The queue was closed (its listener left the LISTEN state).
    Closed,
}

impl Sockets {
    /// Blocking `accept`: parks the thread (no spinning) until a worker
    /// queues a child. EAGAIN when `timeout` expires (like SO_RCVTIMEO),
    /// EINVAL when the listener is closed meanwhile; otherwise the answers
    /// of the non-blocking `Stack::accept`.
    pub fn accept_blocking(&self, fd: Fd, timeout: Option<Duration>) -> Result<ChildSock, Errno> {
        let listener = self.stack().accept_listener(fd)?;
        pop_blocking(listener.accept_queue(), timeout).map_err(|e| match e {
            PopError::TimedOut => Errno::Eagain,
            PopError::Closed => Errno::Einval,
        })
    }
}

/// Take the oldest entry of `queue`, parking until one is pushed, the queue
/// is closed, or `timeout` (if any) expires.
pub(crate) fn pop_blocking<T>(queue: &AcceptQueue<T>, timeout: Option<Duration>) -> Result<T, PopError> {
    if let Some(item) = queue.pop() {
        return Ok(item);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let _waiter = queue.register_waiter();
    loop {
        // Registered before this check: a push, grow or close that it
        // misses unparks us (crate::sync::wait_queue), and park then returns.
        if let Some(item) = queue.pop() {
            return Ok(item);
        }
        if queue.is_closed() {
            return Err(PopError::Closed);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(PopError::TimedOut);
                }
                thread::park_timeout(d - now);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::engine::socket::{SockType, Stack, StackConfig};
    use crate::engine::sysctl::Sysctls;
    use crate::engine::time::Instant as EngineInstant;
    use crate::sync::yield_until;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Arc;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn sockets() -> Sockets {
        let config = StackConfig { workers: 2, local_addrs: vec![A], local_addrs6: Vec::new(), sysctls: Sysctls::default(), seed: 42 };
        Sockets::new(Arc::new(Stack::new(config)))
    }

    fn listener_on(st: &Stack, port: u16, backlog: i32) -> Fd {
        let fd = st.socket(SockType::Stream).unwrap();
        st.bind(fd, SocketAddrV4::new(A, port)).unwrap();
        st.listen(fd, backlog).unwrap();
        fd
    }

    fn child(worker: u16, conn_id: u32) -> ChildSock {
        ChildSock {
            worker,
            conn_id,
            local: SocketAddrV4::new(A, 80).into(),
            peer: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 1), 40_000).into(),
            established_at: EngineInstant::from_millis(1),
            flow_hash: 0,
        }
    }

    #[test]
    fn accept_blocking_answers_eagain_when_the_timeout_expires() {
        let sockets = sockets();
        let st = sockets.stack();
        let fd = listener_on(st, 80, 4);
        st.lookup(1, A, 80, 3).unwrap().acceptq_add(child(1, 9)).unwrap();
        assert_eq!(st.accept(fd).unwrap(), child(1, 9));
        assert_eq!(st.accept(fd), Err(Errno::Eagain));
        assert_eq!(sockets.accept_blocking(fd, Some(Duration::from_millis(5))), Err(Errno::Eagain));
        // The non-blocking answers for sockets that cannot accept.
        let unlistened = st.socket(SockType::Stream).unwrap();
        assert_eq!(sockets.accept_blocking(unlistened, None), Err(Errno::Einval));
        assert_eq!(sockets.accept_blocking(Fd(77), None), Err(Errno::Ebadf));
    }

    #[test]
    fn blocking_accept_wakes_on_a_worker_push_and_on_close() {
        let sockets = Arc::new(sockets());
        let st = sockets.stack().clone();
        let fd = listener_on(&st, 80, 4);
        let listener = st.listener(fd).unwrap();
        let acceptor = {
            let sockets = sockets.clone();
            std::thread::spawn(move || sockets.accept_blocking(fd, Some(Duration::from_secs(20))))
        };
        yield_until("a blocked acceptor", || listener.accept_queue().waiters() == 1);
        st.lookup(0, A, 80, 0).unwrap().acceptq_add(child(0, 5)).unwrap();
        assert_eq!(acceptor.join().unwrap().unwrap().conn_id, 5);

        let acceptor = {
            let sockets = sockets.clone();
            std::thread::spawn(move || sockets.accept_blocking(fd, None))
        };
        yield_until("a blocked acceptor", || listener.accept_queue().waiters() == 1);
        st.close(fd).unwrap();
        assert_eq!(acceptor.join().unwrap(), Err(Errno::Einval));
        assert_eq!(listener.accept_queue().waiters(), 0);
    }

    #[test]
    fn closed_queue_answers_closed_after_what_it_had() {
        let q = AcceptQueue::new(4);
        q.push(1, 4).unwrap();
        q.close();
        assert_eq!(pop_blocking(&q, None), Ok(1));
        assert_eq!(pop_blocking(&q, None), Err(PopError::Closed));
    }

    #[test]
    fn pop_blocking_times_out_when_empty() {
        let q: AcceptQueue<u32> = AcceptQueue::new(1);
        assert_eq!(pop_blocking(&q, Some(Duration::from_millis(10))), Err(PopError::TimedOut));
        assert_eq!(q.waiters(), 0);
    }

    #[test]
    fn pop_blocking_is_woken_by_a_push() {
        let q = Arc::new(AcceptQueue::new(8));
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || pop_blocking(&q, Some(Duration::from_secs(20))))
            })
            .collect();
        yield_until("two blocked acceptors", || q.waiters() == 2);
        q.push(1u32, 8).unwrap();
        q.push(2u32, 8).unwrap();
        let mut got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn close_wakes_blocked_acceptors() {
        let q: Arc<AcceptQueue<u32>> = Arc::new(AcceptQueue::new(8));
        let q2 = q.clone();
        let c = std::thread::spawn(move || pop_blocking(&q2, None));
        yield_until("a blocked acceptor", || q.waiters() == 1);
        q.close();
        assert_eq!(c.join().unwrap(), Err(PopError::Closed));
    }
}

/// Model checks of the blocking accept: a waiter that parks is always
/// woken (loom reports a thread parked for good as a deadlock).
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib api::accept::`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::primitive::{model, Arc};
    use loom::thread;

    /// An acceptor blocks while a worker queues a child: it returns with it.
    #[test]
    fn blocking_accept_loom_woken_by_a_push() {
        model(|| {
            let q = Arc::new(AcceptQueue::new(1));
            let q2 = q.clone();
            let acceptor = thread::spawn(move || pop_blocking(&q2, None));
            q.push(7u32, 1).unwrap();
            assert_eq!(acceptor.join().unwrap(), Ok(7));
            assert_eq!(q.waiters(), 0);
            assert_eq!(q.len(), 0);
        });
    }

    /// An acceptor blocks while the listener closes: it returns `Closed`.
    #[test]
    fn blocking_accept_loom_woken_by_close() {
        model(|| {
            let q: Arc<AcceptQueue<u32>> = Arc::new(AcceptQueue::new(1));
            let q2 = q.clone();
            let acceptor = thread::spawn(move || pop_blocking(&q2, None));
            q.close();
            assert_eq!(acceptor.join().unwrap(), Err(PopError::Closed));
            assert_eq!(q.waiters(), 0);
        });
    }

    /// Two acceptors block, a worker queues two children: each acceptor
    /// returns with one (a wakeup that reaches a leaving acceptor does not
    /// strand the other).
    #[test]
    fn blocking_accept_loom_two_acceptors_two_pushes() {
        model(|| {
            let q = Arc::new(AcceptQueue::new(1));
            let acceptors: Vec<_> = (0..2)
                .map(|_| {
                    let q = q.clone();
                    thread::spawn(move || pop_blocking(&q, None))
                })
                .collect();
            q.push(1u32, 1).unwrap();
            q.push(2u32, 1).unwrap();
            let mut got: Vec<u32> = acceptors.into_iter().map(|a| a.join().unwrap().unwrap()).collect();
            got.sort_unstable();
            assert_eq!(got, vec![1, 2]);
        });
    }

    /// An acceptor blocks while a worker queues a child and listen() grows
    /// the queue: the acceptor returns with the child, although its check
    /// can straddle the grow (which is why grow wakes acceptors too).
    #[test]
    fn blocking_accept_loom_grow_races_push() {
        model(|| {
            let q = Arc::new(AcceptQueue::new(1));
            let q2 = q.clone();
            let acceptor = thread::spawn(move || pop_blocking(&q2, None));
            let q3 = q.clone();
            let worker = thread::spawn(move || q3.push(1u32, 1));
            q.grow(3);
            assert_eq!(worker.join().unwrap(), Ok(()));
            assert_eq!(acceptor.join().unwrap(), Ok(1));
            assert_eq!(q.len(), 0);
        });
    }
}
