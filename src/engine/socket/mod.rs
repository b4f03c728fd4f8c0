//! The socket API of the control plane, with Linux's answers: socket, the
//! listen-path socket options, bind, listen, accept, close, getsockname and
//! an `ss -lnt` listing.
//!
//! A [`Stack`] is shared (`Arc`) by the control plane, the application
//! threads and the workers. Socket calls take the socket's own lock, then
//! the bind table's shard lock, then the listening hash's shard lock (always
//! in that order); workers only read the listening hash and the
//! [`Listener`]s, without locks, and drain their [`ControlCmd`] queue.

pub mod bind_table;

use bind_table::{BindOwner, BindTable, BoundAddr, SockId};
use crate::engine::errno::Errno;
use crate::engine::listen::{ipv6_form, ChildSock, Family, Lhash, Listener};
use crate::engine::sysctl::{tfo, Sysctls};
use crate::stats::{Counter, CounterSnapshot, Counters};
use crate::sync::{lock, unpoison};
use arc_swap::ArcSwap;
use crossbeam::queue::SegQueue;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Most sockets a stack holds at once (then EMFILE).
pub const MAX_SOCKETS: usize = 1 << 16;

/// The socket types. Only `Stream` (TCP) listens; the others exist so that
/// listen() answers EOPNOTSUPP as Linux's `sock_no_listen` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockType {
    Stream,
    Dgram,
    Raw,
}

/// A socket descriptor. The lowest free number is handed out, as Linux does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fd(pub u32);

/// The TCP states a control-plane socket can be in (it never connects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Close,
    Listen,
}

/// Control plane -> worker messages, drained by each worker every loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlCmd {
    /// Send RST on this connection and forget it: its listener closed and
    /// it could not migrate (Linux: `inet_child_forget`).
    Reset(ChildSock),
    /// Start making SYN cookies with this key; cookies of the previous key
    /// stay valid while they can still be young.
    RotateSyncookieKey(crate::engine::keys::SipKey),
    /// Take these keys (a fleet's key file, read again after a change).
    SetFleetKeys(crate::engine::keys::FleetKeys),
    /// New TFO keys (writing `net.ipv4.tcp_fastopen_key`): cookies are made
    /// with the new primary from now on, and checked against it and the
    /// new backup, if one was given.
    SetTfoKeys(crate::engine::keys::fastopen::TfoKeys),
}

/// How to build a [`Stack`].
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Worker (core) count: sizes the command queues and steering tables.
    pub workers: u16,
    /// Local addresses bind() accepts (besides 0.0.0.0).
    pub local_addrs: Vec<Ipv4Addr>,
    /// Local IPv6 addresses bind() accepts (besides `::`).
    pub local_addrs6: Vec<Ipv6Addr>,
    pub sysctls: Sysctls,
    /// Seed of the ephemeral-port RNG (tests pin it; servers use getrandom).
    pub seed: u64,
}

/// One line of the `ss -lnt` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    pub id: u64,
    /// Always LISTEN.
    pub state: &'static str,
    /// Accept-queue length (`sk_ack_backlog`).
    pub recv_q: u32,
    /// `sk_max_ack_backlog`.
    pub send_q: u32,
    /// The bound address: IPv6 (in brackets when shown) for AF_INET6.
    pub local: SocketAddr,
    /// IPV6_V6ONLY of an AF_INET6 listener.
    pub v6only: bool,
    pub reuseport_group: u64,
    /// Members of the reuseport group (1 without SO_REUSEPORT).
    pub group_size: usize,
    /// Request socks (SYN queue length, `qlen`).
    pub syn_qlen: u32,
    pub fastopen_max_qlen: u32,
    pub incoming_cpu: Option<u16>,
}

impl ListenerInfo {
    /// The Local Address:Port column as `ss -lnt` prints it: IPv6 in
    /// brackets, and `*` for `::` without IPV6_V6ONLY (it takes IPv4 too).
    pub fn ss_local(&self) -> String {
        format!("{}:{}", ss_addr(self.local.ip(), self.v6only), self.local.port())
    }

    /// The Peer Address:Port column of a listener (`0.0.0.0:*`, `[::]:*`, `*:*`).
    pub fn ss_peer(&self) -> String {
        let any = match self.local {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        format!("{}:*", ss_addr(any, self.v6only))
    }
}

/// iproute2's address form: `*` for a dual-stack `::`.
fn ss_addr(ip: IpAddr, v6only: bool) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) if a.is_unspecified() && !v6only => "*".into(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// Linux's `secs_to_retrans` for TCP_DEFER_ACCEPT: the number of SYN-ACK
/// retransmits (1 s initial timeout doubling up to 120 s) covering `secs`.
pub fn secs_to_retrans(secs: i32) -> u32 {
    const TIMEOUT_INIT: i32 = 1;
    const RTO_MAX: i32 = 120;
    let mut res = 0u32;
    if secs > 0 {
        let mut timeout = TIMEOUT_INIT;
        let mut period = timeout;
        res = 1;
        while secs > period && res < 255 {
            res += 1;
            timeout = (timeout << 1).min(RTO_MAX);
            period += timeout;
        }
    }
    res
}

struct Sock {
    family: Family,
    /// IPV6_V6ONLY (`sk_ipv6only`): from `net.ipv6.bindv6only` at socket(),
    /// forced on by a bind to a real IPv6 address, as Linux does.
    v6only: bool,
    state: TcpState,
    reuseaddr: bool,
    reuseport: bool,
    incoming_cpu: Option<u16>,
    /// `fastopenq.max_qlen`, kept here until the listener exists.
    fastopen_max_qlen: u32,
    /// TCP_DEFER_ACCEPT in retransmits.
    defer_accept: u32,
    /// Local address once bound (port 0 only for raw sockets); V6 for AF_INET6.
    bound: Option<SocketAddr>,
    listener: Option<Arc<Listener>>,
}

struct SockEntry {
    id: SockId,
    kind: SockType,
    sock: Mutex<Sock>,
}

/// The control plane's view of the TCP/IP stack.
pub struct Stack {
    workers: u16,
    local_addrs: Vec<Ipv4Addr>,
    local_addrs6: Vec<Ipv6Addr>,
    sysctls: ArcSwap<Sysctls>,
    /// Bumped by every [`Stack::set_sysctls`]: a worker compares it between
    /// bursts and reloads only when it moved.
    sysctls_generation: AtomicU64,
    fds: RwLock<Vec<Option<Arc<SockEntry>>>>,
    next_sock: AtomicU64,
    next_listener: AtomicU64,
    /// TCP port space.
    tcp_bhash: BindTable,
    /// UDP port space (datagram sockets bind there).
    udp_bhash: BindTable,
    lhash: Lhash,
    rng: Mutex<u64>,
    /// Control-plane counters (TCPMigrateReq*). `Counters` has a single
    /// writer: writes go through `counters_lock`.
    counters: Counters,
    counters_lock: Mutex<()>,
    /// One command queue per worker. Unbounded: a reset must never be lost.
    commands: Box<[SegQueue<ControlCmd>]>,
}

impl Stack {
    pub fn new(config: StackConfig) -> Stack {
        Stack {
            workers: config.workers,
            local_addrs: config.local_addrs,
            local_addrs6: config.local_addrs6,
            sysctls: ArcSwap::from_pointee(config.sysctls),
            sysctls_generation: AtomicU64::new(0),
            fds: RwLock::new(Vec::new()),
            next_sock: AtomicU64::new(1),
            next_listener: AtomicU64::new(1),
            tcp_bhash: BindTable::new(),
            udp_bhash: BindTable::new(),
            lhash: Lhash::new(config.workers),
            rng: Mutex::new(config.seed),
            counters: Counters::new(),
            counters_lock: Mutex::new(()),
            commands: (0..config.workers).map(|_| SegQueue::new()).collect(),
        }
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    pub fn sysctls(&self) -> Arc<Sysctls> {
        self.sysctls.load_full()
    }

    /// Change the sysctls (like writing /proc/sys); later calls see them,
    /// and workers from their next housekeeping on.
    pub fn set_sysctls(&self, s: Sysctls) {
        self.sysctls.store(Arc::new(s));
        self.sysctls_generation.fetch_add(1, Ordering::Release);
    }

    /// How many times the sysctls changed: read it first, then
    /// [`Stack::sysctls`], and a change in between is seen next time.
    pub fn sysctls_generation(&self) -> u64 {
        self.sysctls_generation.load(Ordering::Acquire)
    }

    /// The listening hash, for workers.
    pub fn lhash(&self) -> &Lhash {
        &self.lhash
    }

    /// The listener a SYN to `daddr:dport` reaches on `worker`. Lock-free.
    pub fn lookup(&self, worker: u16, daddr: impl Into<IpAddr>, dport: u16, flow_hash: u32) -> Option<Arc<Listener>> {
        self.lhash.lookup(worker, daddr, dport, flow_hash)
    }

    /// Control-plane counters (TCPMigrateReqSuccess/Failure from close).
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    fn count(&self, c: Counter) {
        let _g = lock(&self.counters_lock);
        self.counters.inc(c);
    }

    /// Next command for `worker`, if any.
    pub fn pop_command(&self, worker: u16) -> Option<ControlCmd> {
        self.commands.get(worker as usize)?.pop()
    }

    /// Reset an accepted connection (the application's abort): its worker
    /// sends RST and forgets it.
    pub fn abort(&self, child: ChildSock) {
        self.push_command(ControlCmd::Reset(child));
    }

    /// Give every worker a new SYN cookie key.
    pub fn rotate_syncookie_key(&self, key: crate::engine::keys::SipKey) {
        self.push_command(ControlCmd::RotateSyncookieKey(key));
    }

    /// Give every worker the keys of a fleet's key file.
    pub fn set_fleet_keys(&self, keys: crate::engine::keys::FleetKeys) {
        self.push_command(ControlCmd::SetFleetKeys(keys));
    }

    /// Give every worker new TFO keys.
    pub fn set_tfo_keys(&self, keys: crate::engine::keys::fastopen::TfoKeys) {
        self.push_command(ControlCmd::SetTfoKeys(keys));
    }

    /// A command for the worker that owns `child`.
    fn push_command(&self, cmd: ControlCmd) {
        let ControlCmd::Reset(child) = cmd else {
            return self.commands.iter().for_each(|q| q.push(cmd));
        };
        // A child always names one of our workers; one that does not has no
        // table to be reset in.
        if let Some(q) = self.commands.get(child.worker as usize) {
            q.push(cmd);
        }
    }

    /// splitmix64, then Linux's `get_random_u32_below` (multiply-shift).
    fn rand_below(&self, n: u32) -> u32 {
        let mut s = lock(&self.rng);
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((u64::from(z as u32) * u64::from(n)) >> 32) as u32
    }

    fn entry(&self, fd: Fd) -> Result<Arc<SockEntry>, Errno> {
        let fds = unpoison(self.fds.read());
        fds.get(fd.0 as usize).and_then(|e| e.clone()).ok_or(Errno::Ebadf)
    }

    /// `socket(AF_INET, kind, 0)`.
    pub fn socket(&self, kind: SockType) -> Result<Fd, Errno> {
        self.socket_in(Family::Inet, kind)
    }

    /// `socket(AF_INET6, kind, 0)`.
    pub fn socket6(&self, kind: SockType) -> Result<Fd, Errno> {
        self.socket_in(Family::Inet6, kind)
    }

    /// `socket(family, kind, 0)`. An AF_INET6 socket starts with
    /// IPV6_V6ONLY = `net.ipv6.bindv6only` (`inet6_create`).
    pub fn socket_in(&self, family: Family, kind: SockType) -> Result<Fd, Errno> {
        let v6only = family == Family::Inet6 && self.sysctls().bindv6only;
        let entry = Arc::new(SockEntry {
            id: self.next_sock.fetch_add(1, Ordering::Relaxed),
            kind,
            sock: Mutex::new(Sock {
                family,
                v6only,
                state: TcpState::Close,
                reuseaddr: false,
                reuseport: false,
                incoming_cpu: None,
                fastopen_max_qlen: 0,
                defer_accept: 0,
                bound: None,
                listener: None,
            }),
        });
        let mut fds = unpoison(self.fds.write());
        let n = match fds.iter().position(Option::is_none) {
            Some(n) => {
                fds[n] = Some(entry);
                n
            }
            None if fds.len() < MAX_SOCKETS => {
                fds.push(Some(entry));
                fds.len() - 1
            }
            None => return Err(Errno::Emfile),
        };
        u32::try_from(n).map(Fd).map_err(|_| Errno::Emfile)
    }

    fn bhash(&self, kind: SockType) -> Option<&BindTable> {
        match kind {
            SockType::Stream => Some(&self.tcp_bhash),
            SockType::Dgram => Some(&self.udp_bhash),
            SockType::Raw => None,
        }
    }

    /// Keep the bind table's view of a bound socket's options current.
    fn update_owner(&self, e: &SockEntry, s: &Sock) {
        if let (Some(t), Some(a)) = (self.bhash(e.kind), s.bound) {
            t.update(a.port(), e.id, |o| {
                o.reuseaddr = s.reuseaddr;
                o.reuseport = s.reuseport;
            });
        }
    }

    /// SO_REUSEADDR. Read by later conflict checks, as Linux reads `sk_reuse`.
    pub fn set_reuseaddr(&self, fd: Fd, on: bool) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        let mut s = lock(&e.sock);
        s.reuseaddr = on;
        self.update_owner(&e, &s);
        Ok(())
    }

    /// SO_REUSEPORT. Group membership is decided when the socket listens.
    pub fn set_reuseport(&self, fd: Fd, on: bool) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        let mut s = lock(&e.sock);
        s.reuseport = on;
        self.update_owner(&e, &s);
        Ok(())
    }

    /// SO_INCOMING_CPU (a worker index; `None` = -1). On a listener the
    /// reuseport steering tables are republished at once.
    pub fn set_incoming_cpu(&self, fd: Fd, worker: Option<u16>) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        let mut s = lock(&e.sock);
        s.incoming_cpu = worker;
        if let Some(l) = &s.listener {
            l.set_incoming_cpu(worker);
            self.lhash.refresh(l);
        }
        Ok(())
    }

    /// TCP_FASTOPEN: `fastopenq.max_qlen = min(qlen, somaxconn)`, in CLOSE or
    /// LISTEN (Linux's `fastopen_queue_tune`). A TCP option: ENOPROTOOPT on
    /// other socket types.
    pub fn set_fastopen(&self, fd: Fd, qlen: u32) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        if e.kind != SockType::Stream {
            return Err(Errno::Enoprotoopt);
        }
        let max = qlen.min(self.sysctls().somaxconn);
        let mut s = lock(&e.sock);
        s.fastopen_max_qlen = max;
        if let Some(l) = &s.listener {
            l.set_fastopen_max_qlen(max);
        }
        Ok(())
    }

    /// TCP_DEFER_ACCEPT in seconds, stored as Linux does: a retransmit count
    /// ([`secs_to_retrans`]).
    pub fn set_defer_accept(&self, fd: Fd, secs: i32) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        if e.kind != SockType::Stream {
            return Err(Errno::Enoprotoopt);
        }
        let mut s = lock(&e.sock);
        s.defer_accept = secs_to_retrans(secs);
        if let Some(l) = &s.listener {
            l.set_defer_accept_retrans(s.defer_accept);
        }
        Ok(())
    }

    /// IPV6_V6ONLY: AF_INET6 only (ENOPROTOOPT on AF_INET, whose
    /// `ip_setsockopt` does not know the level), and only before bind
    /// (`do_ipv6_setsockopt`: EINVAL once `inet_num` is set).
    pub fn set_v6only(&self, fd: Fd, on: bool) -> Result<(), Errno> {
        let e = self.entry(fd)?;
        let mut s = lock(&e.sock);
        if s.family != Family::Inet6 {
            return Err(Errno::Enoprotoopt);
        }
        if s.bound.is_some_and(|a| a.port() != 0) {
            return Err(Errno::Einval);
        }
        s.v6only = on;
        Ok(())
    }

    /// IPV6_V6ONLY as getsockopt reads it (false for AF_INET).
    pub fn v6only(&self, fd: Fd) -> Result<bool, Errno> {
        let e = self.entry(fd)?;
        let s = lock(&e.sock);
        Ok(s.v6only)
    }

    /// The address the bind table records for `s` bound to `ip`.
    fn bound_addr(s: &Sock, ip: IpAddr) -> BoundAddr {
        match s.family {
            Family::Inet => BoundAddr::V4(match ip {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            }),
            Family::Inet6 => BoundAddr::V6 { addr: ipv6_form(ip), v6only: s.v6only },
        }
    }

    fn owner(e: &SockEntry, s: &Sock, ip: IpAddr, listening: bool) -> BindOwner {
        BindOwner { sock: e.id, addr: Self::bound_addr(s, ip), reuseaddr: s.reuseaddr, reuseport: s.reuseport, listening }
    }

    /// The wildcard of the socket's family, port 0.
    fn unbound(family: Family) -> SocketAddr {
        match family {
            Family::Inet => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into(),
            Family::Inet6 => SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0).into(),
        }
    }

    /// `bind(fd, addr)` (Linux's `__inet_bind` / `__inet6_bind`). Port 0
    /// picks an ephemeral port. Stream sockets bind in the TCP port space,
    /// datagram sockets in the UDP one (same conflict rules), raw sockets
    /// only record the address.
    pub fn bind(&self, fd: Fd, addr: impl Into<SocketAddr>) -> Result<(), Errno> {
        let addr = addr.into();
        let e = self.entry(fd)?;
        let family = lock(&e.sock).family;
        match (family, addr) {
            (Family::Inet, SocketAddr::V4(a)) => self.bind4(&e, a),
            // inet_bind: "if (addr->sin_family != AF_INET) ... -EAFNOSUPPORT".
            (Family::Inet, SocketAddr::V6(_)) => Err(Errno::Eafnosupport),
            // inet6_bind: a sockaddr_in is shorter than SIN6_LEN_RFC2133.
            (Family::Inet6, SocketAddr::V4(_)) => Err(Errno::Einval),
            (Family::Inet6, SocketAddr::V6(a)) => self.bind6(&e, a),
        }
    }

    fn bind4(&self, e: &SockEntry, addr: SocketAddrV4) -> Result<(), Errno> {
        // The address is checked before the socket state, as Linux does.
        if !addr.ip().is_unspecified() && !self.local_addrs.contains(addr.ip()) {
            return Err(Errno::Eaddrnotavail);
        }
        let mut s = lock(&e.sock);
        self.bind_port(e, &mut s, IpAddr::V4(*addr.ip()), addr.port())
    }

    /// `__inet6_bind`: multicast on a stream socket, then the socket state,
    /// then the address (a mapped one as IPv4, refused with IPV6_V6ONLY); a
    /// real IPv6 address turns IPV6_V6ONLY on, back off if the port fails.
    fn bind6(&self, e: &SockEntry, addr: SocketAddrV6) -> Result<(), Errno> {
        let ip = *addr.ip();
        if ip.is_multicast() && e.kind == SockType::Stream {
            return Err(Errno::Einval);
        }
        let mut s = lock(&e.sock);
        if self.bhash(e.kind).is_some() && (s.state != TcpState::Close || s.bound.is_some()) {
            return Err(Errno::Einval);
        }
        let saved_v6only = s.v6only;
        if let Some(v4) = ip.to_ipv4_mapped() {
            if s.v6only {
                return Err(Errno::Einval);
            }
            if !v4.is_unspecified() && !self.local_addrs.contains(&v4) {
                return Err(Errno::Eaddrnotavail);
            }
        } else if !ip.is_unspecified() {
            // Link-local needs an interface (SO_BINDTODEVICE, scope id),
            // which dlisten's sockets do not have.
            if ip.segments()[0] & 0xffc0 == 0xfe80 {
                return Err(Errno::Einval);
            }
            if !ip.is_multicast() && !self.local_addrs6.contains(&ip) {
                return Err(Errno::Eaddrnotavail);
            }
            s.v6only = true;
        }
        let r = self.bind_port(e, &mut s, IpAddr::V6(ip), addr.port());
        if r.is_err() {
            s.v6only = saved_v6only;
        }
        r
    }

    /// The port half of bind: the conflict check (or an ephemeral pick) and
    /// the record.
    fn bind_port(&self, e: &SockEntry, s: &mut Sock, ip: IpAddr, port: u16) -> Result<(), Errno> {
        let Some(table) = self.bhash(e.kind) else {
            // raw_bind: no port, rebinding allowed.
            s.bound = Some(SocketAddr::new(ip, 0));
            return Ok(());
        };
        // "if (sk->sk_state != TCP_CLOSE || inet->inet_num) -> EINVAL"
        if s.state != TcpState::Close || s.bound.is_some() {
            return Err(Errno::Einval);
        }
        let owner = Self::owner(e, s, ip, false);
        let port = if port == 0 {
            let range = self.sysctls().ip_local_port_range;
            table.find_open_port(owner, range, &mut |n| self.rand_below(n))?
        } else {
            table.get_port(owner, port)?;
            port
        };
        s.bound = Some(SocketAddr::new(ip, port));
        Ok(())
    }

    /// `getsockname`: the family's wildcard, port 0, while unbound.
    pub fn getsockname(&self, fd: Fd) -> Result<SocketAddr, Errno> {
        let e = self.entry(fd)?;
        let s = lock(&e.sock);
        Ok(s.bound.unwrap_or(Self::unbound(s.family)))
    }

    /// The socket's TCP state.
    pub fn state(&self, fd: Fd) -> Result<TcpState, Errno> {
        let e = self.entry(fd)?;
        let s = lock(&e.sock);
        Ok(s.state)
    }

    /// The shared listener of a listening socket (EINVAL otherwise).
    pub fn listener(&self, fd: Fd) -> Result<Arc<Listener>, Errno> {
        let e = self.entry(fd)?;
        let s = lock(&e.sock);
        s.listener.clone().ok_or(Errno::Einval)
    }

    /// `listen(fd, backlog)`: `sys_listen` + `inet_listen`.
    pub fn listen(&self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        let sys = self.sysctls();
        let somaxconn = sys.somaxconn;
        // sys_listen: "if ((unsigned int)backlog > somaxconn) backlog = somaxconn;"
        // so a negative backlog becomes somaxconn.
        let backlog = if backlog as u32 > somaxconn { somaxconn } else { backlog as u32 };
        let e = self.entry(fd)?;
        if e.kind != SockType::Stream {
            // inet_dgram_ops / inet_sockraw_ops: sock_no_listen.
            return Err(Errno::Eopnotsupp);
        }
        let mut s = lock(&e.sock);
        // inet_listen: EINVAL unless SOCK_STREAM, SS_UNCONNECTED and in CLOSE
        // or LISTEN; our sockets never connect, so only the state can vary.
        match (s.state, s.listener.clone()) {
            (TcpState::Listen, Some(l)) => {
                // "Really, if the socket is already in listen state we can
                // only allow the backlog to be adjusted."
                l.set_max_ack_backlog(backlog);
                return Ok(());
            }
            (TcpState::Listen, None) => return Err(Errno::Einval),
            (TcpState::Close, _) => {}
        }
        // TFO without setsockopt(TCP_FASTOPEN) (Linux 6.x inet_listen):
        // only when no queue length was set yet.
        let tfo_bits = sys.tcp_fastopen;
        if tfo_bits & tfo::SERVER_WO_SOCKOPT1 != 0 && tfo_bits & tfo::SERVER_ENABLE != 0 && s.fastopen_max_qlen == 0 {
            s.fastopen_max_qlen = backlog.min(somaxconn);
        }
        self.listen_start(&e, &mut s, backlog, &sys)
    }

    /// `inet_csk_listen_start`: get_port (auto-bind or re-check conflicts now
    /// that the socket listens), then hash. On failure the socket stays in
    /// CLOSE and listen() answers EADDRINUSE.
    fn listen_start(&self, e: &SockEntry, s: &mut Sock, backlog: u32, sys: &Sysctls) -> Result<(), Errno> {
        let (local, auto_bound) = match s.bound {
            Some(a) => {
                let owner = Self::owner(e, s, a.ip(), true);
                self.tcp_bhash.get_port(owner, a.port()).map_err(|_| Errno::Eaddrinuse)?;
                (a, false)
            }
            None => {
                let any = Self::unbound(s.family);
                let owner = Self::owner(e, s, any.ip(), true);
                let port = self
                    .tcp_bhash
                    .find_open_port(owner, sys.ip_local_port_range, &mut |n| self.rand_below(n))
                    .map_err(|_| Errno::Eaddrinuse)?;
                (SocketAddr::new(any.ip(), port), true)
            }
        };
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let listener = Arc::new(Listener::new(id, local, backlog, s.reuseport).with_v6only(s.v6only));
        listener.set_fastopen_max_qlen(s.fastopen_max_qlen);
        listener.set_incoming_cpu(s.incoming_cpu);
        listener.set_defer_accept_retrans(s.defer_accept);
        if self.lhash.insert(listener.clone()).is_err() {
            if auto_bound {
                self.tcp_bhash.remove(local.port(), e.id);
            } else {
                self.tcp_bhash.update(local.port(), e.id, |o| o.listening = false);
            }
            return Err(Errno::Eaddrinuse);
        }
        s.bound = Some(local);
        s.state = TcpState::Listen;
        s.listener = Some(listener);
        Ok(())
    }

    /// The listener `accept` takes children from: EOPNOTSUPP for a socket
    /// that cannot accept, EINVAL for one that does not listen. The
    /// blocking accept (`crate::api`) waits on it.
    pub(crate) fn accept_listener(&self, fd: Fd) -> Result<Arc<Listener>, Errno> {
        let e = self.entry(fd)?;
        if e.kind != SockType::Stream {
            return Err(Errno::Eopnotsupp); // sock_no_accept
        }
        let s = lock(&e.sock);
        s.listener.clone().ok_or(Errno::Einval)
    }

    /// Non-blocking `accept`: the oldest child, EAGAIN when none, EINVAL when
    /// the socket does not listen. The blocking form is
    /// `crate::api::Sockets::accept_blocking`.
    pub fn accept(&self, fd: Fd) -> Result<ChildSock, Errno> {
        self.accept_listener(fd)?.acceptq_remove().ok_or(Errno::Eagain)
    }

    /// `close(fd)`. A listener leaves the listening hash; its unaccepted
    /// children migrate to another member of its reuseport group when
    /// `tcp_migrate_req` is on, or are queued to their worker for a reset.
    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        let e = {
            let mut fds = unpoison(self.fds.write());
            fds.get_mut(fd.0 as usize).and_then(Option::take).ok_or(Errno::Ebadf)?
        };
        let mut s = lock(&e.sock);
        if let Some(l) = s.listener.take() {
            self.listen_stop(&l);
        }
        s.state = TcpState::Close;
        if let (Some(t), Some(a)) = (self.bhash(e.kind), s.bound.take()) {
            t.remove(a.port(), e.id);
        }
        Ok(())
    }

    /// Unhash (detach from the reuseport group), then Linux's
    /// `inet_csk_listen_stop`: every queued child goes to
    /// `reuseport_migrate_sock`'s pick or is reset. Requests still in the
    /// workers' SYN tables see `is_closed()` and call
    /// [`Stack::reqsk_migrate`].
    fn listen_stop(&self, l: &Arc<Listener>) {
        let rest = self.lhash.remove(l);
        l.close();
        // Linux keeps a closed member in the group's "closed section" only
        // when migration is on; otherwise it detaches at once and nothing
        // is counted.
        let migrate = l.reuseport && self.sysctls().tcp_migrate_req;
        while let Some(child) = l.acceptq_remove() {
            if !migrate {
                self.push_command(ControlCmd::Reset(child));
                continue;
            }
            // The closing thread has no CPU of its own: steer as the child's
            // worker would.
            let target = rest.as_ref().and_then(|g| g.select_by_hash(child.worker, child.flow_hash));
            // Refused when the target is full or closing too.
            let refused = match target {
                Some(t) => t.acceptq_add(child).err(),
                None => Some(child),
            };
            match refused {
                None => self.count(Counter::TcpMigrateReqSuccess),
                Some(child) => {
                    self.count(Counter::TcpMigrateReqFailure);
                    self.push_command(ControlCmd::Reset(child));
                }
            }
        }
    }

    /// For a worker holding a request sock (or a just-completed child) of a
    /// closed listener: the member to migrate it to (Linux's
    /// `reuseport_migrate_sock`), `None` to reset it. The worker counts
    /// TCPMigrateReqSuccess/Failure (Failure whenever this returns `None`
    /// for a reuseport listener while `tcp_migrate_req` is on).
    pub fn reqsk_migrate(&self, worker: u16, closed: &Listener, flow_hash: u32) -> Option<Arc<Listener>> {
        if !self.sysctls().tcp_migrate_req {
            return None;
        }
        self.lhash.migrate_target(worker, closed, flow_hash)
    }

    /// Every listening socket, for `ss -lnt`, ordered by port then address.
    pub fn listeners(&self) -> Vec<ListenerInfo> {
        let mut v: Vec<ListenerInfo> = self
            .lhash
            .listeners()
            .into_iter()
            .map(|(l, n)| ListenerInfo {
                id: l.id,
                state: "LISTEN",
                recv_q: l.sk_ack_backlog(),
                send_q: l.sk_max_ack_backlog(),
                local: l.local,
                v6only: l.v6only,
                reuseport_group: l.group_id(),
                group_size: n,
                syn_qlen: l.reqsk_queue_len(),
                fastopen_max_qlen: l.fastopen_max_qlen(),
                incoming_cpu: l.incoming_cpu(),
            })
            .collect();
        v.sort_by_key(|i| (i.local.port(), ipv6_form(i.local.ip()), i.id));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::time::Instant;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);

    fn stack_with(sysctls: Sysctls) -> Stack {
        Stack::new(StackConfig { workers: 2, local_addrs: vec![A, B], local_addrs6: vec![A6], sysctls, seed: 42 })
    }

    fn stack() -> Stack {
        stack_with(Sysctls::default())
    }

    fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(ip, port)
    }

    fn child(worker: u16, conn_id: u32, flow_hash: u32) -> ChildSock {
        ChildSock {
            worker,
            conn_id,
            local: sa(A, 80).into(),
            peer: sa(Ipv4Addr::new(198, 18, 1, 1), 40_000).into(),
            established_at: Instant::from_millis(1),
            flow_hash,
        }
    }

    /// socket + options + bind + listen.
    fn listener_on(
        st: &Stack,
        addr: SocketAddrV4,
        reuseaddr: bool,
        reuseport: bool,
        backlog: i32,
    ) -> Result<Fd, Errno> {
        let fd = st.socket(SockType::Stream)?;
        st.set_reuseaddr(fd, reuseaddr)?;
        st.set_reuseport(fd, reuseport)?;
        st.bind(fd, addr)?;
        st.listen(fd, backlog)?;
        Ok(fd)
    }

    #[test]
    fn negative_backlog_becomes_somaxconn() {
        let st = stack();
        let fd = listener_on(&st, sa(A, 80), false, false, -1).unwrap();
        assert_eq!(st.listener(fd).unwrap().sk_max_ack_backlog(), 4096);
    }

    #[test]
    fn backlog_is_clamped_to_somaxconn() {
        let st = stack_with(Sysctls { somaxconn: 128, ..Sysctls::default() });
        let fd = listener_on(&st, sa(A, 80), false, false, 100_000).unwrap();
        assert_eq!(st.listener(fd).unwrap().sk_max_ack_backlog(), 128);
        st.listen(fd, i32::MIN).unwrap();
        assert_eq!(st.listener(fd).unwrap().sk_max_ack_backlog(), 128);
        st.listen(fd, 0).unwrap();
        assert_eq!(st.listener(fd).unwrap().sk_max_ack_backlog(), 0);
    }

    #[test]
    fn listen_on_datagram_and_raw_is_eopnotsupp() {
        let st = stack();
        for kind in [SockType::Dgram, SockType::Raw] {
            let fd = st.socket(kind).unwrap();
            assert_eq!(st.listen(fd, 10), Err(Errno::Eopnotsupp));
            st.bind(fd, sa(A, 5353)).unwrap();
            assert_eq!(st.listen(fd, 10), Err(Errno::Eopnotsupp));
            assert_eq!(st.accept(fd), Err(Errno::Eopnotsupp));
            assert_eq!(st.set_fastopen(fd, 5), Err(Errno::Enoprotoopt));
        }
        assert_eq!(st.listen(Fd(99), 10), Err(Errno::Ebadf));
    }

    #[test]
    fn second_listen_changes_only_the_backlog() {
        let st = stack();
        let fd = listener_on(&st, sa(A, 80), false, false, 1).unwrap();
        let l = st.listener(fd).unwrap();
        l.acceptq_add(child(0, 1, 0)).unwrap();
        l.acceptq_add(child(0, 2, 0)).unwrap();
        assert!(l.sk_acceptq_is_full());
        st.listen(fd, 10).unwrap();
        let l2 = st.listener(fd).unwrap();
        assert!(Arc::ptr_eq(&l, &l2), "same listener, same queue");
        assert_eq!(l2.sk_max_ack_backlog(), 10);
        assert!(!l2.sk_acceptq_is_full());
        assert_eq!(st.getsockname(fd).unwrap(), SocketAddr::from(sa(A, 80)));
        assert_eq!(st.listeners().len(), 1);
        assert_eq!(st.accept(fd).unwrap().conn_id, 1);
        assert_eq!(st.accept(fd).unwrap().conn_id, 2);
    }

    #[test]
    fn listen_conflict_is_eaddrinuse_and_state_returns_to_close() {
        let st = stack();
        // Two SO_REUSEADDR sockets may both bind...
        let a = st.socket(SockType::Stream).unwrap();
        let b = st.socket(SockType::Stream).unwrap();
        for fd in [a, b] {
            st.set_reuseaddr(fd, true).unwrap();
            st.bind(fd, sa(A, 8080)).unwrap();
        }
        // ...but only one may listen.
        st.listen(a, 16).unwrap();
        assert_eq!(st.listen(b, 16), Err(Errno::Eaddrinuse));
        assert_eq!(st.state(b).unwrap(), TcpState::Close);
        assert_eq!(st.accept(b), Err(Errno::Einval));
        // b is still bound; once a is gone, b can listen.
        assert_eq!(st.getsockname(b).unwrap(), SocketAddr::from(sa(A, 8080)));
        st.close(a).unwrap();
        st.listen(b, 16).unwrap();
        assert_eq!(st.state(b).unwrap(), TcpState::Listen);
        assert_eq!(st.lookup(0, A, 8080, 1).unwrap().local, SocketAddr::from(sa(A, 8080)));
    }

    #[test]
    fn bind_conflict_is_eaddrinuse_without_reuse() {
        let st = stack();
        listener_on(&st, sa(ANY, 80), false, false, 8).unwrap();
        let fd = st.socket(SockType::Stream).unwrap();
        assert_eq!(st.bind(fd, sa(A, 80)), Err(Errno::Eaddrinuse));
        // A failed bind leaves the socket unbound: it can bind elsewhere.
        assert_eq!(st.getsockname(fd).unwrap(), SocketAddr::from(sa(ANY, 0)));
        st.bind(fd, sa(A, 81)).unwrap();
    }

    #[test]
    fn listen_without_bind_autobinds_an_ephemeral_port() {
        let st = stack();
        let fd = st.socket(SockType::Stream).unwrap();
        st.listen(fd, 5).unwrap();
        let local = st.getsockname(fd).unwrap();
        assert_eq!(local.ip(), ANY);
        assert!((32768..=60999).contains(&local.port()), "{local}");
        assert_eq!(local.port() % 2, 1, "bind takes the parity opposite to the range start");
        assert_eq!(st.lookup(1, B, local.port(), 0).unwrap().local, local);
        // The port is taken in the TCP port space.
        let other = st.socket(SockType::Stream).unwrap();
        assert_eq!(st.bind(other, sa(A, local.port())), Err(Errno::Eaddrinuse));
    }

    #[test]
    fn bind_port_zero_is_ephemeral_and_exhaustion_is_eaddrinuse() {
        let st = stack_with(Sysctls { ip_local_port_range: (40000, 40001), ..Sysctls::default() });
        let mut ports = Vec::new();
        for _ in 0..2 {
            let fd = st.socket(SockType::Stream).unwrap();
            st.bind(fd, sa(ANY, 0)).unwrap();
            ports.push(st.getsockname(fd).unwrap().port());
        }
        ports.sort();
        assert_eq!(ports, vec![40000, 40001]);
        let fd = st.socket(SockType::Stream).unwrap();
        assert_eq!(st.bind(fd, sa(ANY, 0)), Err(Errno::Eaddrinuse));
        // listen() needing an ephemeral port fails the same way, in CLOSE.
        assert_eq!(st.listen(fd, 1), Err(Errno::Eaddrinuse));
        assert_eq!(st.state(fd).unwrap(), TcpState::Close);
    }

    #[test]
    fn bind_address_and_state_errors() {
        let st = stack();
        let fd = st.socket(SockType::Stream).unwrap();
        assert_eq!(st.bind(fd, sa(Ipv4Addr::new(198, 19, 9, 9), 80)), Err(Errno::Eaddrnotavail));
        st.bind(fd, sa(A, 80)).unwrap();
        assert_eq!(st.bind(fd, sa(A, 81)), Err(Errno::Einval));
        // The address is checked first, as in Linux.
        assert_eq!(st.bind(fd, sa(Ipv4Addr::new(198, 19, 9, 9), 81)), Err(Errno::Eaddrnotavail));
        st.listen(fd, 1).unwrap();
        assert_eq!(st.bind(fd, sa(A, 82)), Err(Errno::Einval));
        assert_eq!(st.bind(Fd(1234), sa(A, 82)), Err(Errno::Ebadf));
    }

    /// Two sockets on the same address and port: who may bind, who may listen.
    #[test]
    fn reuseaddr_reuseport_matrix() {
        // (first: reuseaddr, reuseport, listening), (second: reuseaddr, reuseport)
        // -> (second bind ok, second listen ok)
        let cases = [
            ((false, false, false), (false, false), (false, false)),
            ((true, false, false), (true, false), (true, true)), // first not listening: second may listen
            ((true, false, true), (true, false), (false, false)), // REUSEADDR does not share a listening port
            ((false, true, false), (false, true), (true, true)),
            ((false, true, true), (false, true), (true, true)), // a reuseport group
            ((true, true, true), (true, true), (true, true)),
            ((false, true, true), (false, false), (false, false)),
            ((false, false, true), (false, true), (false, false)),
            ((true, false, false), (false, false), (false, false)),
        ];
        for (i, ((ra, rp, listening), (ra2, rp2), (bind_ok, listen_ok))) in cases.into_iter().enumerate() {
            let st = stack();
            let first = st.socket(SockType::Stream).unwrap();
            st.set_reuseaddr(first, ra).unwrap();
            st.set_reuseport(first, rp).unwrap();
            st.bind(first, sa(A, 80)).unwrap();
            if listening {
                st.listen(first, 8).unwrap();
            }
            let second = st.socket(SockType::Stream).unwrap();
            st.set_reuseaddr(second, ra2).unwrap();
            st.set_reuseport(second, rp2).unwrap();
            let bound = st.bind(second, sa(A, 80));
            assert_eq!(bound.is_ok(), bind_ok, "case {i}: bind {bound:?}");
            if bound.is_ok() {
                let listened = st.listen(second, 8);
                assert_eq!(listened.is_ok(), listen_ok, "case {i}: listen {listened:?}");
            }
        }
    }

    #[test]
    fn wildcard_and_specific_reuseport_listeners_coexist() {
        let st = stack();
        let w = listener_on(&st, sa(ANY, 80), false, true, 8).unwrap();
        let s = listener_on(&st, sa(A, 80), false, true, 8).unwrap();
        let (lw, ls) = (st.listener(w).unwrap(), st.listener(s).unwrap());
        assert_ne!(lw.group_id(), ls.group_id());
        assert_eq!(st.lookup(0, A, 80, 5).unwrap().id, ls.id);
        assert_eq!(st.lookup(0, B, 80, 5).unwrap().id, lw.id);
    }

    #[test]
    fn reuseport_group_spreads_and_incoming_cpu_steers() {
        let st = stack();
        let fds: Vec<Fd> = (0..2).map(|_| listener_on(&st, sa(ANY, 443), false, true, 64).unwrap()).collect();
        let ids: Vec<u64> = fds.iter().map(|&fd| st.listener(fd).unwrap().id).collect();
        let seen: std::collections::HashSet<u64> =
            (0..64u32).map(|k| st.lookup(0, A, 443, k.wrapping_mul(0x9e37_79b9)).unwrap().id).collect();
        assert_eq!(seen.len(), 2);
        // SO_INCOMING_CPU on a listening socket: republished at once.
        st.set_incoming_cpu(fds[0], Some(1)).unwrap();
        st.set_incoming_cpu(fds[1], Some(0)).unwrap();
        for k in 0..64u32 {
            let h = k.wrapping_mul(0x9e37_79b9);
            assert_eq!(st.lookup(0, A, 443, h).unwrap().id, ids[1]);
            assert_eq!(st.lookup(1, A, 443, h).unwrap().id, ids[0]);
        }
        let info = st.listeners();
        assert_eq!(info.len(), 2);
        assert!(info.iter().all(|i| i.group_size == 2));
    }

    #[test]
    fn accept_answers() {
        let st = stack();
        let fd = listener_on(&st, sa(A, 80), false, false, 4).unwrap();
        assert_eq!(st.accept(fd), Err(Errno::Eagain));
        let unlistened = st.socket(SockType::Stream).unwrap();
        assert_eq!(st.accept(unlistened), Err(Errno::Einval));
        assert_eq!(st.accept(Fd(77)), Err(Errno::Ebadf));
        // A worker finds the listener and queues a child; accept takes it.
        let l = st.lookup(1, A, 80, 3).unwrap();
        l.acceptq_add(child(1, 9, 3)).unwrap();
        assert_eq!(st.listeners()[0].recv_q, 1);
        assert_eq!(st.accept(fd).unwrap(), child(1, 9, 3));
        assert_eq!(st.accept(fd), Err(Errno::Eagain));
    }

    fn group_of_two(st: &Stack) -> (Fd, Fd) {
        let a = listener_on(st, sa(ANY, 80), false, true, 8).unwrap();
        let b = listener_on(st, sa(ANY, 80), false, true, 8).unwrap();
        (a, b)
    }

    #[test]
    fn close_migrates_children_with_tcp_migrate_req() {
        let st = stack_with(Sysctls { tcp_migrate_req: true, ..Sysctls::default() });
        let (a, b) = group_of_two(&st);
        let la = st.listener(a).unwrap();
        for i in 0..3 {
            la.acceptq_add(child(i as u16 % 2, i, i.wrapping_mul(0x5555_5555))).unwrap();
        }
        st.close(a).unwrap();
        assert!(la.is_closed());
        assert_eq!(st.counters().get(Counter::TcpMigrateReqSuccess), 3);
        assert_eq!(st.counters().get(Counter::TcpMigrateReqFailure), 0);
        let got: Vec<u32> = std::iter::from_fn(|| st.accept(b).ok()).map(|c| c.conn_id).collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert!(st.pop_command(0).is_none() && st.pop_command(1).is_none());
        // The group now has one member; SYNs reach it.
        assert_eq!(st.lookup(0, A, 80, 1).unwrap().id, st.listener(b).unwrap().id);
        // Requests still in a worker's SYN table migrate lazily.
        assert_eq!(st.reqsk_migrate(0, &la, 12345).unwrap().id, st.listener(b).unwrap().id);
    }

    #[test]
    fn close_overflowing_the_target_resets_the_rest() {
        let st = stack_with(Sysctls { tcp_migrate_req: true, ..Sysctls::default() });
        let a = listener_on(&st, sa(ANY, 80), false, true, 8).unwrap();
        let b = listener_on(&st, sa(ANY, 80), false, true, 0).unwrap(); // holds 1
        let la = st.listener(a).unwrap();
        la.acceptq_add(child(0, 1, 0)).unwrap();
        la.acceptq_add(child(1, 2, 0)).unwrap();
        st.close(a).unwrap();
        assert_eq!(st.counters().get(Counter::TcpMigrateReqSuccess), 1);
        assert_eq!(st.counters().get(Counter::TcpMigrateReqFailure), 1);
        assert_eq!(st.accept(b).unwrap().conn_id, 1);
        assert_eq!(st.pop_command(1), Some(ControlCmd::Reset(child(1, 2, 0))));
    }

    #[test]
    fn close_without_tcp_migrate_req_resets_children_on_their_worker() {
        let st = stack();
        let (a, b) = group_of_two(&st);
        let la = st.listener(a).unwrap();
        la.acceptq_add(child(0, 1, 7)).unwrap();
        la.acceptq_add(child(1, 2, 7)).unwrap();
        la.reqsk_queue_added();
        st.close(a).unwrap();
        assert_eq!(st.pop_command(0), Some(ControlCmd::Reset(child(0, 1, 7))));
        assert_eq!(st.pop_command(1), Some(ControlCmd::Reset(child(1, 2, 7))));
        assert_eq!(st.pop_command(0), None);
        assert_eq!(st.counters().get(Counter::TcpMigrateReqSuccess), 0);
        assert_eq!(st.counters().get(Counter::TcpMigrateReqFailure), 0);
        assert_eq!(st.accept(b), Err(Errno::Eagain));
        // Lazy migration of requests is off too: the worker resets them.
        assert!(st.reqsk_migrate(0, &la, 1).is_none());
        // A worker that completes a handshake late finds the listener closed.
        assert!(la.acceptq_add(child(0, 3, 7)).is_err());
        assert_eq!(st.accept(a), Err(Errno::Ebadf));
    }

    #[test]
    fn closing_the_last_member_with_migration_counts_failures() {
        let st = stack_with(Sysctls { tcp_migrate_req: true, ..Sysctls::default() });
        let a = listener_on(&st, sa(ANY, 80), false, true, 8).unwrap();
        let la = st.listener(a).unwrap();
        la.acceptq_add(child(0, 1, 0)).unwrap();
        st.close(a).unwrap();
        assert_eq!(st.counters().get(Counter::TcpMigrateReqFailure), 1);
        assert_eq!(st.pop_command(0), Some(ControlCmd::Reset(child(0, 1, 0))));
        assert!(st.lookup(0, A, 80, 0).is_none());
        // The port is free again.
        listener_on(&st, sa(A, 80), false, false, 8).unwrap();
    }

    #[test]
    fn tcp_fastopen_queue_length() {
        // Server TFO without the socket option: max_qlen = min(backlog, somaxconn).
        let bits = tfo::SERVER_ENABLE | tfo::SERVER_WO_SOCKOPT1;
        let st = stack_with(Sysctls { tcp_fastopen: bits, ..Sysctls::default() });
        let fd = listener_on(&st, sa(A, 80), false, false, 100).unwrap();
        assert_eq!(st.listener(fd).unwrap().fastopen_max_qlen(), 100);
        // TCP_FASTOPEN set before listen wins, clamped to somaxconn.
        let fd2 = st.socket(SockType::Stream).unwrap();
        st.set_fastopen(fd2, 1_000_000).unwrap();
        st.bind(fd2, sa(A, 81)).unwrap();
        st.listen(fd2, 7).unwrap();
        assert_eq!(st.listener(fd2).unwrap().fastopen_max_qlen(), 4096);
        // And on a listening socket it applies at once.
        st.set_fastopen(fd2, 5).unwrap();
        assert_eq!(st.listener(fd2).unwrap().fastopen_max_qlen(), 5);
        // Linux's default (client only): nothing without the option.
        let st = stack();
        let fd = listener_on(&st, sa(A, 80), false, false, 100).unwrap();
        assert_eq!(st.listener(fd).unwrap().fastopen_max_qlen(), 0);
    }

    #[test]
    fn defer_accept_is_stored_as_retransmits() {
        assert_eq!(secs_to_retrans(0), 0);
        assert_eq!(secs_to_retrans(-5), 0);
        assert_eq!(secs_to_retrans(1), 1);
        assert_eq!(secs_to_retrans(2), 2); // 1 + 2 >= 2
        assert_eq!(secs_to_retrans(3), 2);
        assert_eq!(secs_to_retrans(4), 3); // 1 + 2 + 4
        assert_eq!(secs_to_retrans(30), 5); // 1+2+4+8+16 = 31
        let st = stack();
        let fd = listener_on(&st, sa(A, 80), false, false, 1).unwrap();
        st.set_defer_accept(fd, 30).unwrap();
        assert_eq!(st.listener(fd).unwrap().defer_accept_retrans(), 5);
    }

    #[test]
    fn datagram_sockets_bind_in_their_own_port_space() {
        let st = stack();
        listener_on(&st, sa(ANY, 53), false, false, 1).unwrap();
        let u = st.socket(SockType::Dgram).unwrap();
        st.bind(u, sa(ANY, 53)).unwrap();
        let u2 = st.socket(SockType::Dgram).unwrap();
        assert_eq!(st.bind(u2, sa(A, 53)), Err(Errno::Eaddrinuse));
        st.close(u).unwrap();
        st.bind(u2, sa(A, 53)).unwrap();
        // Raw sockets only record the address.
        let r = st.socket(SockType::Raw).unwrap();
        st.bind(r, sa(A, 53)).unwrap();
        st.bind(r, sa(B, 0)).unwrap();
        assert_eq!(st.getsockname(r).unwrap(), SocketAddr::from(sa(B, 0)));
    }

    #[test]
    fn lowest_free_fd_and_ebadf_after_close() {
        let st = stack();
        let a = st.socket(SockType::Stream).unwrap();
        let b = st.socket(SockType::Stream).unwrap();
        assert_eq!((a, b), (Fd(0), Fd(1)));
        st.close(a).unwrap();
        assert_eq!(st.close(a), Err(Errno::Ebadf));
        assert_eq!(st.getsockname(a), Err(Errno::Ebadf));
        assert_eq!(st.socket(SockType::Dgram).unwrap(), Fd(0));
    }

    #[test]
    fn ss_lnt_listing() {
        let st = stack();
        let fd = listener_on(&st, sa(ANY, 22), false, false, 128).unwrap();
        listener_on(&st, sa(A, 80), false, true, -1).unwrap();
        let l = st.listener(fd).unwrap();
        l.acceptq_add(child(0, 1, 0)).unwrap();
        l.reqsk_queue_added();
        let info = st.listeners();
        assert_eq!(info.len(), 2);
        assert_eq!((info[0].recv_q, info[0].send_q, info[0].syn_qlen), (1, 128, 1));
        assert_eq!(info[1].send_q, 4096);
        assert_eq!(info[0].local, SocketAddr::from(sa(ANY, 22)));
        assert_eq!(info[1].local, SocketAddr::from(sa(A, 80)));
    }

    /// Workers keep completing handshakes while the control plane closes one
    /// member of a reuseport group: every child ends up exactly once either
    /// in the survivor's accept queue, in a worker's reset queue, or refused
    /// by the worker (overflow) — none is lost in the closed listener.
    #[test]
    fn close_races_with_workers_without_losing_children() {
        let st = Arc::new(stack_with(Sysctls { tcp_migrate_req: true, ..Sysctls::default() }));
        let a = listener_on(&st, sa(ANY, 80), false, true, 4096).unwrap();
        let b = listener_on(&st, sa(ANY, 80), false, true, 4096).unwrap();
        const PER: u32 = 3_000;
        let workers: Vec<_> = (0..2u16)
            .map(|w| {
                let st = st.clone();
                std::thread::spawn(move || {
                    let mut refused = Vec::new();
                    for i in 0..PER {
                        let id = u32::from(w) * PER + i;
                        let hash = id.wrapping_mul(0x9e37_79b9);
                        let Some(l) = st.lookup(w, A, 80, hash) else { continue };
                        let c = ChildSock { worker: w, conn_id: id, flow_hash: hash, ..child(w, id, hash) };
                        if let Err(c) = l.acceptq_add(c) {
                            // A closed listener: migrate like Linux's tcp_v4_rcv does.
                            let retry = st.reqsk_migrate(w, &l, hash).map(|t| t.acceptq_add(c));
                            if !matches!(retry, Some(Ok(()))) {
                                refused.push(id);
                            }
                        }
                    }
                    refused
                })
            })
            .collect();
        // Close while the workers are under way.
        crate::sync::yield_until("a queued child", || st.listeners().iter().any(|i| i.recv_q > 0));
        st.close(a).unwrap();
        let mut seen: Vec<u32> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        seen.extend(std::iter::from_fn(|| st.accept(b).ok()).map(|c| c.conn_id));
        for w in 0..2 {
            while let Some(ControlCmd::Reset(c)) = st.pop_command(w) {
                seen.push(c.conn_id);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..2 * PER).collect::<Vec<_>>());
    }

    #[test]
    fn stack_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Stack>();
        check::<Listener>();
    }

    #[test]
    fn syncookie_rotation_reaches_every_worker_and_abort_only_the_owner() {
        let st = stack();
        let key = crate::engine::keys::SipKey::from_bytes([7; 16]);
        st.abort(child(1, 9, 0));
        st.rotate_syncookie_key(key);
        assert_eq!(st.pop_command(0), Some(ControlCmd::RotateSyncookieKey(key)));
        assert_eq!(st.pop_command(0), None);
        assert_eq!(st.pop_command(1), Some(ControlCmd::Reset(child(1, 9, 0))));
        assert_eq!(st.pop_command(1), Some(ControlCmd::RotateSyncookieKey(key)));
    }
}
