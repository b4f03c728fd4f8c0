//! `dlisten serve`: bring up EAL and one port, start one pinned worker per
//! queue, open the listening sockets, serve the chosen application, run
//! until SIGINT/SIGTERM, then stop workers, the port and EAL, and print the
//! final counters and latency tables.

use crate::api::{app_threads, Sockets};
use crate::app::AppKind;
use crate::dpdk::{self, DpdkError, Eal, Mempool, Port, PortConfig};
use crate::engine::errno::Errno;
use crate::engine::host::{Host, HostConfig};
use crate::engine::listen::Listener;
use crate::engine::keys::Secrets;
use crate::engine::socket::{Fd, SockType, Stack, StackConfig};
use crate::telemetry::format_ss_lnt;
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::{TcpConfig, TcpEngine};
use crate::engine::time::Instant as EngineInstant;
use crate::telemetry::control::{format_stats, ControlServer, StatsSnapshot, StatsSource};
use crate::telemetry::event_log::{AppEvent, EventLog, EventSender};
use crate::stats::Metric;
use crate::telemetry::latency::{LatencyHub, WorkerLatency};
use crate::stats::{CounterSnapshot, Counters};
use crate::wire::ethernet::EthernetAddress;
use crate::worker::apps::PerCoreApps;
use crate::api::worker_side::AttachedConns;
use crate::worker::Worker;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    #[error("no address to own: pass --addr 198.18.0.1 (one or more)")]
    NoAddress,
    #[error("cannot install the SIGINT/SIGTERM handler: {0}")]
    Signal(std::io::Error),
    #[error("{call} {addr}: {errno}")]
    Socket { call: &'static str, addr: SocketAddrV4, errno: Errno },
    #[error(transparent)]
    Random(#[from] crate::engine::keys::RandomError),
    #[error("event log {0}: {1}")]
    EventLog(PathBuf, std::io::Error),
    #[error("control socket {0}: {1}")]
    ControlSocket(PathBuf, std::io::Error),
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
    pub app: AppKind,
    /// 0: serve per core inside the workers (a reuseport member per worker);
    /// N: N application threads share each listener's accept queue.
    pub app_threads: usize,
    /// Rotate the SYN cookie key this often (not with an operator-set key).
    pub syncookie_rotate: Option<Duration>,
    /// Operator-set SYN cookie key (so several servers share cookies).
    pub syncookie_key: Option<crate::engine::keys::SipKey>,
    /// Operator-set TFO key.
    pub tfo_key: Option<crate::engine::keys::fastopen::TfoKeys>,
    /// Per-worker caps on connections and connection buffer memory.
    pub max_conns: usize,
    pub conn_mem: u64,
    pub event_log: Option<PathBuf>,
    /// Write `<metric>.hgrm` files here at exit.
    pub hgrm_dir: Option<PathBuf>,
    pub control_socket: PathBuf,
}

/// Open one listening socket as an application would: socket, options, bind, listen.
fn open_listener(stack: &Stack, l: &ListenSpec, incoming_cpu: Option<u16>) -> Result<Fd, ServeError> {
    let err = |call, errno| ServeError::Socket { call, addr: l.addr, errno };
    let fd = stack.socket(SockType::Stream).map_err(|e| err("socket", e))?;
    stack.set_reuseaddr(fd, true).map_err(|e| err("setsockopt(SO_REUSEADDR)", e))?;
    if incoming_cpu.is_some() {
        stack.set_reuseport(fd, true).map_err(|e| err("setsockopt(SO_REUSEPORT)", e))?;
        stack.set_incoming_cpu(fd, incoming_cpu).map_err(|e| err("setsockopt(SO_INCOMING_CPU)", e))?;
    }
    if l.fastopen_qlen > 0 {
        stack.set_fastopen(fd, l.fastopen_qlen).map_err(|e| err("setsockopt(TCP_FASTOPEN)", e))?;
    }
    stack.bind(fd, l.addr).map_err(|e| err("bind", e))?;
    stack.listen(fd, l.backlog).map_err(|e| err("listen", e))?;
    Ok(fd)
}

/// What `dlisten stats` and the periodic line read from a running server.
struct ServeStats {
    started: Instant,
    counters: Vec<Arc<Counters>>,
    stack: Arc<Stack>,
    hub: Arc<Mutex<LatencyHub>>,
}

impl StatsSource for ServeStats {
    fn snapshot(&self) -> StatsSnapshot {
        let (latency_table, latency) = {
            let mut hub = self.hub.lock().unwrap_or_else(|e| e.into_inner());
            hub.drain();
            (hub.percentile_table(), hub.rows())
        };
        StatsSnapshot {
            uptime: self.started.elapsed(),
            per_worker: self.counters.iter().map(|c| c.snapshot()).collect(),
            control: self.stack.counters(),
            listeners: self.stack.listeners(),
            latency_table,
            latency,
        }
    }
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
        sysctls: cfg.sysctls,
        seed: u64::from_le_bytes(Secrets::random()?.isn.to_bytes()[..8].try_into().unwrap_or([7; 8])),
    }));
    // Socket errors (EADDRINUSE, EADDRNOTAVAIL) before touching the NIC.
    // Per-core serving: one reuseport member per worker, affine to it.
    let per_core = cfg.app_threads == 0;
    let mut listen_fds = Vec::new();
    let mut worker_listeners: Vec<Vec<Arc<Listener>>> = vec![Vec::new(); cfg.workers as usize];
    for l in &cfg.listens {
        if per_core {
            for w in 0..cfg.workers {
                let fd = open_listener(&stack, l, Some(w))?;
                if let Ok(listener) = stack.listener(fd) {
                    worker_listeners[w as usize].push(listener);
                }
                listen_fds.push(fd);
            }
        } else {
            listen_fds.push(open_listener(&stack, l, None)?);
        }
    }
    let mut secrets = Secrets::random()?;
    if let Some(k) = cfg.syncookie_key {
        secrets.syncookie = crate::engine::keys::syncookie::SyncookieKeys::new(k);
    }
    if let Some(k) = &cfg.tfo_key {
        secrets.tfo = *k;
    }
    let event_log = match &cfg.event_log {
        Some(path) => Some(EventLog::open(path).map_err(|e| ServeError::EventLog(path.clone(), e))?),
        None => None,
    };
    let events: Option<EventSender> = event_log.as_ref().map(|(_, s)| s.clone());

    let eal = Eal::init(&cfg.eal_args)?;
    println!("dlisten: {}", dpdk::version());
    let port_id = eal.choose_port(cfg.port)?;

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
        mempools: pools.to_vec(),
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
        on_off(info.rss_enabled),
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
    println!("dlisten: addresses {}", cfg.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "));

    let (hub, latency_sender) = LatencyHub::new();
    let hub = Arc::new(Mutex::new(hub));
    {
        let mut h = hub.lock().unwrap_or_else(|e| e.into_inner());
        for info in stack.listeners() {
            let label = match info.incoming_cpu {
                Some(cpu) => format!("{} cpu{cpu}", info.local),
                None => info.local.to_string(),
            };
            h.set_listener_label(info.id, label);
        }
    }
    let sockets = Arc::new(Sockets::new(stack.clone()));
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
        let tcp_cfg = TcpConfig {
            mac,
            max_conns: cfg.max_conns,
            max_buffer_bytes: cfg.conn_mem,
            ..TcpConfig::new(w)
        };
        let tcp = TcpEngine::new(tcp_cfg, stack.clone(), secrets.clone(), EngineInstant::ZERO).with_counters(counters.clone());
        let apps = per_core.then(|| PerCoreApps::new(cfg.app.clone(), worker_listeners[w as usize].clone(), events.clone()));
        let worker = Worker {
            id: w,
            eal: eal.clone(),
            core,
            rxq: port.rx_queue(w)?,
            txq: Some(port.tx_queue(w)?),
            pool: pools[w as usize].clone(),
            host,
            tcp,
            apps,
            attached: AttachedConns::new(w, sockets.worker_queue()),
            latency_out: Some(latency_sender.clone()),
            latency: WorkerLatency::default(),
            counters,
            stop: stop.clone(),
            idle_sleep: cfg.idle_sleep,
            tx_csum_offload: info.tx_csum_offload,
            epoch,
        };
        println!("dlisten: worker {w} on core {}", core.map(|c| c.id.to_string()).unwrap_or_else(|| "any".into()));
        handles.push(
            std::thread::Builder::new().name(format!("dl-worker-{w}")).spawn(move || worker.run()).expect("spawn worker thread"),
        );
    }
    print!("{}", format_ss_lnt(&stack.listeners()));
    if let Some(s) = &events {
        for l in &cfg.listens {
            s.send(AppEvent::Listening { addr: l.addr });
        }
    }
    // `hold` never accepts, whichever mode.
    let app_handles = if per_core || !cfg.app.accepts() {
        Vec::new()
    } else {
        app_threads::spawn(
            sockets.clone(),
            &listen_fds,
            cfg.app.clone(),
            cfg.app_threads,
            stop.clone(),
            latency_sender.clone(),
            epoch,
        )
    };
    let stats_source = Arc::new(ServeStats { started: epoch, counters: all_counters.clone(), stack: stack.clone(), hub: hub.clone() });
    let control = ControlServer::start(&cfg.control_socket, stats_source.clone())
        .map_err(|e| ServeError::ControlSocket(cfg.control_socket.clone(), e))?;
    println!(
        "dlisten: app {} {}; stats: dlisten stats --socket {}",
        cfg.app,
        if per_core { "per core".to_string() } else { format!("on {} application threads", cfg.app_threads) },
        cfg.control_socket.display()
    );
    println!("dlisten: ready");

    let mut last_stats = Instant::now();
    let mut previous: Option<StatsSnapshot> = None;
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
                let snap = stats_source.snapshot();
                print!("{}", format_stats(&snap, previous.as_ref()));
                previous = Some(snap);
            }
        }
    }
    println!("dlisten: stopping");
    for h in app_handles {
        let _ = h.join();
    }
    print!("{}", format_ss_lnt(&stack.listeners()));
    for fd in listen_fds {
        let _ = stack.close(fd);
    }
    for h in handles {
        let _ = h.join();
    }
    drop(control);
    let stats = port.stats().unwrap_or_default();
    if let Err(e) = port.stop() {
        eprintln!("dlisten: stopping port {port_id}: {e}");
    }
    drop(port);

    let snapshots: Vec<CounterSnapshot> = all_counters.iter().map(|c| c.snapshot()).collect();
    print_report(&snapshots, &stack.counters());
    println!(
        "port {port_id} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}",
        stats.ipackets, stats.opackets, stats.imissed, stats.ierrors, stats.oerrors, stats.rx_nombuf
    );
    let mut hub = hub.lock().unwrap_or_else(|e| e.into_inner());
    hub.drain();
    println!("latency (microseconds):");
    print!("{}", hub.percentile_table());
    if let Some(dir) = &cfg.hgrm_dir {
        write_hgrms(&hub, dir);
    }
    if let Some((log, _)) = event_log {
        if let Err(e) = log.close() {
            eprintln!("dlisten: event log: {e}");
        }
    }
    drop(pools);
    drop(eal);
    Ok(())
}

fn write_hgrms(hub: &LatencyHub, dir: &std::path::Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("dlisten: {}: {e}", dir.display());
        return;
    }
    for m in Metric::ALL {
        let path = dir.join(format!("{}.hgrm", m.file_stem()));
        let written = std::fs::File::create(&path).and_then(|mut f| hub.write_hgrm(m, None, &mut f));
        match written {
            Ok(()) => println!("dlisten: wrote {}", path.display()),
            Err(e) => eprintln!("dlisten: {}: {e}", path.display()),
        }
    }
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
    use crate::stats::Counter;
    for (w, s) in per_worker.iter().enumerate() {
        println!(
            "worker {w} rx_frames {} tx_frames {} tx_drops {} passive_opens {}",
            s.get(Counter::RxFrames),
            s.get(Counter::TxFrames),
            s.get(Counter::TxDrops),
            s.get(Counter::TcpPassiveOpens)
        );
    }
    println!("counters:");
    let total = CounterSnapshot::sum(per_worker.iter().chain(std::iter::once(control)));
    for (name, v) in total.nonzero() {
        println!("  {name:<32} {v}");
    }
}
