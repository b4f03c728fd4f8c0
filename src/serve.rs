//! `dlisten serve`: bring up EAL and one port, start one pinned worker per
//! queue, run until SIGINT/SIGTERM, then stop workers, the port and EAL, and
//! print the final counters.

use crate::dpdk::{self, DpdkError, Eal, Mempool, Port, PortConfig};
use crate::engine::errno::Errno;
use crate::engine::host::{Host, HostConfig};
use crate::engine::secrets::Secrets;
use crate::engine::socket::{format_ss_lnt, Fd, SockType, Stack, StackConfig};
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::{TcpConfig, TcpEngine};
use crate::engine::time::Instant as EngineInstant;
use crate::telemetry::{CounterSnapshot, Counters};
use crate::wire::ethernet::EthernetAddress;
use crate::worker::Worker;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("DPDK port {0} does not exist (ports found: {1:?}); pass --port with one of them, or a --vdev / PCI device to EAL")]
    NoSuchPort(u16, Vec<u16>),
    #[error("no address to own: pass --addr 198.18.0.1 (one or more)")]
    NoAddress,
    #[error("cannot install the SIGINT/SIGTERM handler: {0}")]
    Signal(std::io::Error),
    #[error("{call} {addr}: {errno}")]
    Socket { call: &'static str, addr: SocketAddrV4, errno: Errno },
    #[error("no DPDK port, and dlisten is not running as root: DPDK needs root (or CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_IPC_LOCK) to create tap devices, map hugepages and open NICs")]
    NotRoot,
    #[error(transparent)]
    Random(#[from] crate::engine::secrets::RandomError),
}

/// What the application does with accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Accept, then reset at once: handshakes complete, nothing is served.
    Reset,
    /// Never accept: the accept queue fills (how operators see backlog behaviour).
    Hold,
}

/// One `--listen`.
#[derive(Clone, Copy, Debug)]
pub struct ListenSpec {
    pub addr: SocketAddrV4,
    pub backlog: i32,
    /// TCP_FASTOPEN queue length (0 = not set).
    pub fastopen_qlen: u32,
}

/// Everything `serve` needs, already validated by the CLI.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addrs: Vec<Ipv4Addr>,
    pub port: Option<u16>,
    pub workers: u16,
    pub cores: Option<Vec<usize>>,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mbufs_per_worker: u32,
    pub idle_sleep: Duration,
    pub stats_interval: Option<Duration>,
    /// argv for EAL, argv[0] included.
    pub eal_args: Vec<String>,
    pub listens: Vec<ListenSpec>,
    pub sysctls: Sysctls,
    pub app: App,
    /// Rotate the SYN cookie key this often (not with an operator-set key).
    pub syncookie_rotate: Option<Duration>,
    /// Operator-set SYN cookie key (so several servers share cookies).
    pub syncookie_key: Option<crate::engine::secrets::SipKey>,
    /// Operator-set TFO key.
    pub tfo_key: Option<crate::engine::fastopen::TfoKeys>,
}

/// Create the listening sockets as an application would: socket, bind, listen.
fn open_listeners(stack: &Stack, listens: &[ListenSpec]) -> Result<Vec<Fd>, ServeError> {
    let mut fds = Vec::new();
    for l in listens {
        let err = |call, errno| ServeError::Socket { call, addr: l.addr, errno };
        let fd = stack.socket(SockType::Stream).map_err(|e| err("socket", e))?;
        stack.set_reuseaddr(fd, true).map_err(|e| err("setsockopt(SO_REUSEADDR)", e))?;
        if l.fastopen_qlen > 0 {
            stack.set_fastopen(fd, l.fastopen_qlen).map_err(|e| err("setsockopt(TCP_FASTOPEN)", e))?;
        }
        stack.bind(fd, l.addr).map_err(|e| err("bind", e))?;
        stack.listen(fd, l.backlog).map_err(|e| err("listen", e))?;
        fds.push(fd);
    }
    Ok(fds)
}

pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    if cfg.addrs.is_empty() {
        return Err(ServeError::NoAddress);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(ServeError::Signal)?;
    }

    // Before EAL init: EAL pins this thread to the main lcore, and the core
    // list is read from this thread's affinity mask.
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let stack = Arc::new(Stack::new(StackConfig {
        workers: cfg.workers,
        local_addrs: cfg.addrs.clone(),
        sysctls: cfg.sysctls.clone(),
        seed: u64::from_le_bytes(Secrets::random()?.isn.to_bytes()[..8].try_into().unwrap_or([7; 8])),
    }));
    // Socket errors (EADDRINUSE, EADDRNOTAVAIL) before touching the NIC.
    let listen_fds = open_listeners(&stack, &cfg.listens)?;
    let mut secrets = Secrets::random()?;
    if let Some(k) = cfg.syncookie_key {
        secrets.syncookie = crate::engine::syncookie::SyncookieKeys::new(k);
    }
    if let Some(k) = &cfg.tfo_key {
        secrets.tfo = k.clone();
    }
    let eal = Eal::init(&cfg.eal_args)?;
    println!("dlisten: {}", dpdk::version());
    let ports = eal.ports();
    let port_id = match cfg.port {
        Some(p) if ports.contains(&p) => p,
        Some(p) => return Err(ServeError::NoSuchPort(p, ports)),
        None => match ports.first() {
            Some(p) => *p,
            None if !running_as_root() => return Err(ServeError::NotRoot),
            None => return Err(DpdkError::NoPorts.into()),
        },
    };

    let socket = eal.socket_id();
    let pools: Vec<Arc<Mempool>> = (0..cfg.workers)
        .map(|w| {
            Mempool::new(&eal, &format!("dl_rx{port_id}_{w}"), cfg.mbufs_per_worker, 256, dpdk::DEFAULT_DATA_ROOM, socket)
                .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let port_cfg = PortConfig {
        rx_queues: cfg.workers,
        tx_queues: cfg.workers,
        rx_desc: cfg.rx_desc,
        tx_desc: cfg.tx_desc,
        mempools: pools.iter().map(|p| p.clone()).collect(),
        want_rss: true,
        want_csum_offload: true,
        promiscuous: false,
        mtu: None,
    };
    let mut port = Port::new(&eal, port_id, &port_cfg)?;
    port.start()?;
    let info = port.info().clone();
    let mac = EthernetAddress(port.mac_addr()?);
    println!(
        "dlisten: port {port_id} driver {} mac {mac} queues {} rss {} rx-csum-offload {} tx-csum-offload {}",
        info.driver,
        cfg.workers,
        if info.rss_enabled { "on" } else { "off" },
        on_off(info.rx_csum_offload),
        on_off(info.tx_csum_offload)
    );
    match port.link() {
        Ok(link) => println!(
            "dlisten: link {}{}",
            if link.up { "up" } else { "down" },
            link.speed_mbps.map(|s| format!(" {s} Mbps")).unwrap_or_default()
        ),
        Err(e) => println!("dlisten: link status unknown: {e}"),
    }
    println!(
        "dlisten: addresses {}",
        cfg.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")
    );

    let epoch = Instant::now();
    let all_counters: Vec<Arc<Counters>> = (0..cfg.workers).map(|_| Arc::new(Counters::new())).collect();
    let mut handles = Vec::new();
    for w in 0..cfg.workers {
        let core = match &cfg.cores {
            Some(list) => list.get(w as usize).and_then(|c| core_ids.iter().find(|id| id.id == *c).copied()),
            None => core_ids.get(w as usize % core_ids.len().max(1)).copied(),
        };
        let counters = all_counters[w as usize].clone();
        let host = Host::new(HostConfig { mac, addrs: cfg.addrs.clone() }, counters.clone());
        let tcp = TcpEngine::new(TcpConfig { mac, ..TcpConfig::new(w) }, stack.clone(), secrets.clone(), EngineInstant::ZERO)
            .with_counters(counters.clone());
        let worker = Worker {
            id: w,
            eal: eal.clone(),
            core,
            rxq: port.rx_queue(w)?,
            txq: port.tx_queue(w)?,
            pool: pools[w as usize].clone(),
            host,
            tcp,
            counters,
            stop: stop.clone(),
            idle_sleep: cfg.idle_sleep,
            tx_csum_offload: info.tx_csum_offload,
            epoch,
        };
        println!("dlisten: worker {w} on core {}", core.map(|c| c.id.to_string()).unwrap_or_else(|| "any".into()));
        handles.push(std::thread::Builder::new().name(format!("dl-worker-{w}")).spawn(move || worker.run()).expect("spawn worker thread"));
    }
    print!("{}", format_ss_lnt(&stack.listeners()));
    let acceptors: Vec<_> = listen_fds
        .iter()
        .map(|&fd| {
            let (stack, stop, app) = (stack.clone(), stop.clone(), cfg.app);
            std::thread::Builder::new()
                .name("dl-accept".into())
                .spawn(move || accept_loop(&stack, fd, app, &stop))
                .expect("spawn acceptor thread")
        })
        .collect();
    println!("dlisten: ready");

    let mut last_stats = Instant::now();
    let mut last_rotation = Instant::now();
    let rotate_every = if cfg.syncookie_key.is_some() { None } else { cfg.syncookie_rotate };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(every) = rotate_every {
            if last_rotation.elapsed() >= every {
                last_rotation = Instant::now();
                match Secrets::random() {
                    Ok(fresh) => stack.rotate_syncookie_key(fresh.syncookie.current()),
                    Err(e) => eprintln!("dlisten: syncookie key rotation skipped: {e}"),
                }
            }
        }
        if let Some(every) = cfg.stats_interval {
            if last_stats.elapsed() >= every {
                last_stats = Instant::now();
                let total = CounterSnapshot::sum(all_counters.iter().map(|c| c.snapshot()).collect::<Vec<_>>().iter());
                let line: Vec<String> = total.nonzero().map(|(n, v)| format!("{n}={v}")).collect();
                println!("dlisten: stats {}", line.join(" "));
            }
        }
    }
    println!("dlisten: stopping");
    for h in acceptors {
        let _ = h.join();
    }
    print!("{}", format_ss_lnt(&stack.listeners()));
    for fd in listen_fds {
        let _ = stack.close(fd);
    }
    for h in handles {
        let _ = h.join();
    }
    let stats = port.stats().unwrap_or_default();
    if let Err(e) = port.stop() {
        eprintln!("dlisten: stopping port {port_id}: {e}");
    }
    drop(port);

    let snapshots: Vec<CounterSnapshot> = all_counters.iter().map(|c| c.snapshot()).collect();
    let control = stack.counters();
    print_report(&snapshots, &control);
    println!(
        "port {port_id} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
        stats.ipackets, stats.opackets, stats.imissed, stats.ierrors, stats.oerrors, stats.rx_nombuf
    );
    drop(pools);
    drop(eal);
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The final report: one line per worker, then the summed counters (nstat style).
pub fn print_report(per_worker: &[CounterSnapshot], control: &CounterSnapshot) {
    use crate::telemetry::Counter;
    for (w, s) in per_worker.iter().enumerate() {
        println!(
            "worker {w} rx_frames {} tx_frames {} tx_drops {}",
            s.get(Counter::RxFrames),
            s.get(Counter::TxFrames),
            s.get(Counter::TxDrops)
        );
    }
    println!("counters:");
    let total = CounterSnapshot::sum(per_worker.iter().chain(std::iter::once(control)));
    for (name, v) in total.nonzero() {
        println!("  {name:<32} {v}");
    }
}

/// The application side for now: accept (blocking, without spinning) and
/// reset, or never accept.
fn accept_loop(stack: &Stack, fd: Fd, app: App, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match app {
            App::Hold => std::thread::sleep(Duration::from_millis(50)),
            App::Reset => match stack.accept_blocking(fd, Some(Duration::from_millis(50))) {
                Ok(child) => stack.abort(child),
                Err(Errno::Eagain) => {}
                Err(_) => return,
            },
        }
    }
}

/// The effective uid is the owner of /proc/self (no libc call needed).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(true)
}
