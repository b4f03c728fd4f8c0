//! The running server: brought up on the control plane and EAL, served until
//! the stop flag is set, then shut down in order into the exit [`Report`].

use super::control_plane::ControlPlane;
use super::eal::Dpdk;
use super::link::LinkWatch;
use super::listen::Listening;
use super::live::{Live, Reconfigure};
use super::periodic::{Periodic, TICK};
use super::report::{Hgrms, Report};
use super::stats::ServeStats;
use super::workers::WorkerParts;
use super::{ServeConfig, ServeError};
use crate::api::app_threads::{self, AppThreads};
use crate::api::Sockets;
use crate::dpdk::{tsc, tsc_hz, MulticastRx, Port, PortConfig};
use crate::engine::host::ipv6::Ipv6Identity;
use crate::engine::socket::Stack;
use crate::stats::{Counter, CounterSnapshot, Counters, Gauges, Runtime};
use super::telemetry::TelemetryView;
use crate::telemetry::capture::{CaptureHub, CaptureInterface};
use crate::telemetry::control::ControlServer;
use crate::telemetry::event_log::{AppEvent, EventLog};
use crate::telemetry::format_ss_lnt;
use crate::telemetry::latency::{LatencyHub, LatencySender};
use crate::telemetry::prometheus::ListenerLabel;
use crate::telemetry::{Health, MetricsServer};
use crate::wire::ethernet::EthernetAddress;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// Declared in teardown order, which [`Running::shutdown`] follows.
pub(super) struct Running {
    /// `--app-threads N`: they use the listeners, so they go first.
    app_threads: Vec<JoinHandle<()>>,
    listening: Listening,
    /// They poll the port's queues: joined before it stops.
    workers: Vec<JoinHandle<()>>,
    control_socket: ControlServer,
    metrics: Option<MetricsServer>,
    /// What `/health` says: set once serving, cleared first at shutdown.
    health: Health,
    /// Its queues hold mbufs of the mempools in [`Dpdk`], which outlives it.
    port: Port,
    port_id: u16,
    stats: Arc<ServeStats>,
    event_log: Option<EventLog>,
    stop: Arc<AtomicBool>,
    /// SIGTERM: drain first, then stop.
    term: Arc<AtomicBool>,
    /// Tells the per-core apps, or the application threads, to drain.
    drain: Arc<AtomicBool>,
    drain_timeout: std::time::Duration,
    /// Who drains: the workers (per core) or this many application threads.
    drainers: u64,
    drained: bool,
    periodic: Periodic,
    link: LinkWatch,
    hgrm_dir: Option<PathBuf>,
    /// SIGHUP: read the `--config` file again.
    hup: Arc<AtomicBool>,
    live: Option<Arc<Live>>,
    config_path: Option<PathBuf>,
}

impl Running {
    /// Start the port, the workers, the application threads and the control
    /// socket, and say so.
    pub fn start(
        cfg: &ServeConfig,
        control: ControlPlane,
        dpdk: &Dpdk,
        reconfigure: Option<Box<dyn Reconfigure>>,
    ) -> Result<Running, ServeError> {
        let port = start_port(cfg, dpdk)?;
        let tx_csum_offload = port.info().tx_csum_offload;
        let mac = EthernetAddress(port.mac_addr()?);
        print_port(cfg, dpdk.port_id, &port, mac);
        let (hub, latency) = latency_hub(&control.stack);
        let sockets = Arc::new(Sockets::new(control.stack.clone()));
        let epoch = Instant::now();
        let counters: Vec<Arc<Counters>> = (0..cfg.workers).map(|_| Arc::new(Counters::new())).collect();
        let tsc_hz = tsc_hz(&dpdk.eal);
        let runtimes: Vec<Arc<Runtime>> = (0..cfg.workers).map(|_| Arc::new(Runtime::new(tsc_hz))).collect();
        let gauges: Vec<Arc<Gauges>> = (0..cfg.workers).map(|_| Arc::new(Gauges::new())).collect();
        let capture = CaptureHub::new(usize::from(cfg.workers), tsc, tsc_hz, capture_interface(cfg, dpdk.port_id, &port, mac));
        let parts = WorkerParts {
            cfg,
            control: &control,
            dpdk,
            port: &port,
            mac,
            tx_csum_offload,
            csum_partial_logged: Arc::new(AtomicBool::new(false)),
            sockets: &sockets,
            counters: &counters,
            runtimes: &runtimes,
            gauges: &gauges,
            latency: &latency,
            epoch,
            capture: &capture,
        };
        let workers = parts.spawn_all()?;
        print!("{}", format_ss_lnt(&control.stack.listeners()));
        if let Some(s) = &control.events {
            for l in &cfg.listens {
                s.send(AppEvent::Listening { addr: l.addr });
            }
        }
        let app_threads = match spawn_app_threads(cfg, &control, sockets, latency, epoch) {
            Ok(threads) => threads,
            Err(e) => {
                control.stop.store(true, Ordering::Relaxed);
                join(workers);
                return Err(ServeError::Thread("application".into(), e));
            }
        };
        let operator_cookie_key = Arc::new(AtomicBool::new(cfg.syncookie_key.is_some()));
        let live = reconfigure.map(|maker| {
            let fds = control.listening.fds.clone();
            Arc::new(Live::new(maker, control.stack.clone(), fds, control.app.clone(), operator_cookie_key.clone()))
        });
        let health = Health::new();
        let main_counters = Arc::new(Counters::new());
        let link = LinkWatch::new(dpdk.port_id, LinkWatch::read(&port).ok().map(|l| l.up), main_counters.clone());
        let stats = Arc::new(ServeStats {
            started: epoch,
            counters,
            runtimes,
            gauges,
            stack: control.stack.clone(),
            main: main_counters,
            hub,
            listener_labels: listener_labels(&control.stack),
            health: health.clone(),
            capture,
            live: live.clone(),
            app_threads: app_threads.counters,
        });
        // Both threads start here, on the main thread after EAL init: they
        // inherit its affinity (EAL's main lcore) rather than a worker's.
        let ControlPlane { stop, term, drain, hup, listening, event_log, metrics, control_socket, .. } = control;
        // From here a failure must stop the workers first: they poll the
        // port, which goes when this returns.
        let abort = |e: ServeError, workers: Vec<JoinHandle<()>>| {
            stop.store(true, Ordering::Relaxed);
            join(workers);
            e
        };
        let control_socket = match control_socket.start(stats.clone()) {
            Ok(c) => c,
            Err(e) => return Err(abort(ServeError::ControlSocket(cfg.control_socket.clone(), e), workers)),
        };
        let metrics = match (metrics, cfg.metrics) {
            (Some(listener), Some(addr)) => {
                let server = match listener.start(stats.clone(), health.clone()) {
                    Ok(server) => server,
                    Err(e) => return Err(abort(ServeError::Metrics(addr, e), workers)),
                };
                println!("dlisten: metrics on http://{}/metrics and /health", server.local_addr());
                Some(server)
            }
            _ => None,
        };
        let telemetry = Arc::new(TelemetryView::new(health.clone()));
        match crate::dpdk::telemetry::register(super::telemetry::COMMANDS) {
            Ok(()) => crate::dpdk::telemetry::set_source(Some(telemetry.clone())),
            Err(e) => eprintln!("dlisten: DPDK telemetry: {e}; serving without the /dlisten commands"),
        }
        let periodic = Periodic::new(cfg, operator_cookie_key).with_telemetry(telemetry, &stats);
        health.set_serving(true);
        print_ready(cfg);
        let drainers = if cfg.per_core() { u64::from(cfg.workers) } else { stats.app_threads.len() as u64 };
        Ok(Running {
            app_threads: app_threads.handles,
            listening,
            workers,
            control_socket,
            metrics,
            health,
            port,
            port_id: dpdk.port_id,
            stats,
            event_log,
            stop,
            term,
            drain,
            drain_timeout: cfg.drain_timeout,
            drainers,
            drained: false,
            periodic,
            hup,
            live,
            config_path: cfg.config_path.clone(),
            link,
            hgrm_dir: cfg.hgrm_dir.clone(),
        })
    }

    /// Until SIGINT or SIGTERM: watch the link, rotate the SYN cookie key,
    /// print periodic stats. After SIGTERM, drain; then tell the workers to stop.
    pub fn run_until_stopped(&mut self) {
        while !self.stop.load(Ordering::Relaxed) && !self.term.load(Ordering::Relaxed) {
            std::thread::sleep(TICK);
            if self.hup.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            self.link.poll(&self.port);
            self.periodic.tick(&self.stats);
        }
        if !self.stop.load(Ordering::Relaxed) {
            self.drain();
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// SIGHUP: the `--config` file again; one line says what changed.
    fn reload(&self) {
        let Some(path) = &self.config_path else {
            return eprintln!("dlisten: SIGHUP: no --config file to read again (nothing changed)");
        };
        match self.live.as_ref().map(|l| l.reload()) {
            Some(Ok(what)) => println!("dlisten: SIGHUP: reloaded {}: {what}", path.display()),
            Some(Err(e)) => eprintln!("dlisten: SIGHUP: {e} (nothing changed)"),
            None => eprintln!("dlisten: SIGHUP: this server cannot reload (nothing changed)"),
        }
    }

    /// Stop taking connections and let the open ones finish, for up to
    /// --drain-timeout or until SIGINT.
    fn drain(&mut self) {
        // First, so that load balancers looking at /health stop sending.
        self.health.set_serving(false);
        println!("dlisten: draining for up to {} s", self.drain_timeout.as_secs());
        self.listening.close(&self.stats.stack);
        self.drain.store(true, Ordering::Relaxed);
        self.drained = true;
        let until = Instant::now() + self.drain_timeout;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < until {
            let drainers = self.stats.counters.iter().chain(&self.stats.app_threads).map(|c| c.snapshot()).collect::<Vec<_>>();
            let total = CounterSnapshot::sum(drainers.iter());
            if total.get(Counter::DrainWorkers) == self.drainers && total.get(Counter::DrainFinished) >= total.get(Counter::DrainConns) {
                break;
            }
            std::thread::sleep(DRAIN_POLL);
            self.periodic.tick(&self.stats);
        }
    }

    /// Stop everything in order and take the final numbers.
    pub fn shutdown(self) -> Report {
        // First, so that load balancers looking at /health stop sending.
        self.health.set_serving(false);
        println!("dlisten: stopping");
        crate::dpdk::telemetry::set_source(None);
        let Running {
            app_threads, mut listening, workers, control_socket, metrics, mut port, port_id, stats, event_log, hgrm_dir, drained, ..
        } = self;
        join(app_threads);
        let stack: &Stack = &stats.stack;
        let listening_at_stop = format_ss_lnt(&stack.listeners());
        listening.close(stack);
        join(workers);
        drop(control_socket);
        drop(metrics);
        let port_stats = port.stats().unwrap_or_default();
        let port_stop_error = port.stop().err();
        drop(port);
        let per_worker: Vec<CounterSnapshot> = stats.counters.iter().map(|c| c.snapshot()).collect();
        let control = stats.control_counters();
        let drain = drained.then(|| {
            // The application threads' count is in the control counters.
            let total = CounterSnapshot::sum(per_worker.iter().chain(std::iter::once(&control)));
            let finished = total.get(Counter::DrainFinished);
            (finished, total.get(Counter::DrainConns).saturating_sub(finished))
        });
        let runtime = stats.runtimes.iter().map(|r| r.snapshot()).collect();
        let (latency_table, hgrms) = {
            let hub = stats.drained_hub();
            (hub.percentile_table(), hgrm_dir.as_deref().map(|dir| Hgrms::render(&hub, dir)))
        };
        let event_log_error = event_log.and_then(|log| log.close().err());
        Report {
            listening: listening_at_stop,
            port_id,
            port_stop_error,
            per_worker,
            control,
            port: port_stats,
            latency_table,
            runtime,
            hgrms,
            event_log_error,
            drain,
        }
    }
}

/// How often the drain looks whether every connection finished.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(10);

fn join(threads: Vec<JoinHandle<()>>) {
    for t in threads {
        let _ = t.join();
    }
}

/// One RX/TX queue pair per worker, each RX queue on that worker's mempool.
fn start_port(cfg: &ServeConfig, dpdk: &Dpdk) -> Result<Port, ServeError> {
    let port_cfg = PortConfig {
        rx_queues: cfg.workers,
        tx_queues: cfg.workers,
        rx_desc: cfg.rx_desc,
        tx_desc: cfg.tx_desc,
        mempools: dpdk.pools.to_vec(),
        want_rss: true,
        want_csum_offload: true,
        promiscuous: false,
        mtu: None,
    };
    let mut port = Port::new(&dpdk.eal, dpdk.port_id, &port_cfg)?;
    port.start()?;
    accept_ipv6_groups(cfg, &port);
    Ok(port)
}

/// Our IPv6 addresses' multicast groups (all nodes, solicited-node) must
/// reach us, or no neighbour solicitation does. A port that cannot be told
/// still serves IPv4: say so and go on.
fn accept_ipv6_groups(cfg: &ServeConfig, port: &Port) {
    if cfg.addrs6.is_empty() {
        return;
    }
    let id = Ipv6Identity::new(cfg.addrs6.clone());
    let macs: Vec<[u8; 6]> = id.multicast_macs().iter().map(|m| m.0).collect();
    match port.accept_multicast(&macs) {
        Ok(MulticastRx::Filter) => {}
        Ok(MulticastRx::AllMulticast) => println!("dlisten: port has no multicast filter: all-multicast on for IPv6 neighbour discovery"),
        Err(e) => eprintln!("dlisten: warning: IPv6 neighbour solicitations may not arrive: {e}"),
    }
}

fn print_port(cfg: &ServeConfig, port_id: u16, port: &Port, mac: EthernetAddress) {
    let info = port.info();
    println!(
        "dlisten: port {port_id} driver {}{} mac {mac} queues {} rss {} rx-csum-offload {} tx-csum-offload {}",
        info.driver,
        info.iface.as_deref().map(|i| format!(" iface {i}")).unwrap_or_default(),
        cfg.workers,
        on_off(info.rss_enabled),
        on_off(info.rx_csum_offload),
        on_off(info.tx_csum_offload)
    );
    // As the link watch reads it, so that its first change is a change.
    match LinkWatch::read(port) {
        Ok(link) => println!(
            "dlisten: link {}{}",
            if link.up { "up" } else { "down" },
            link.speed_mbps.map(|s| format!(" {s} Mbps")).unwrap_or_default()
        ),
        Err(e) => println!("dlisten: link status unknown: {e}"),
    }
    let addrs = cfg.addrs.iter().map(|a| a.to_string()).chain(cfg.addrs6.iter().map(|a| a.to_string()));
    println!("dlisten: addresses {}", addrs.collect::<Vec<_>>().join(" "));
}

/// How a capture names the port: its kernel interface when it has one.
fn capture_interface(cfg: &ServeConfig, port_id: u16, port: &Port, mac: EthernetAddress) -> CaptureInterface {
    let info = port.info();
    CaptureInterface {
        name: info.iface.clone().unwrap_or_else(|| format!("dpdk{port_id}")),
        description: format!("dlisten port {port_id} driver {} queues {} mac {mac}", info.driver, cfg.workers),
        mac: mac.0,
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The hub the workers send their histograms to, with a label per listener.
fn latency_hub(stack: &Stack) -> (Arc<Mutex<LatencyHub>>, LatencySender) {
    let (mut hub, sender) = LatencyHub::new();
    for info in stack.listeners() {
        let label = match info.incoming_cpu {
            Some(cpu) => format!("{} cpu{cpu}", info.local),
            None => info.local.to_string(),
        };
        hub.set_listener_label(info.id, label);
    }
    (Arc::new(Mutex::new(hub)), sender)
}

/// Each listener's labels in the metrics, by id.
fn listener_labels(stack: &Stack) -> HashMap<u64, ListenerLabel> {
    stack.listeners().iter().map(|l| (l.id, ListenerLabel { listener: l.local.to_string(), cpu: l.incoming_cpu })).collect()
}

/// `--app-threads N`: N threads share each listener's accept queue. None
/// per core, and none for `hold`, which never accepts.
fn spawn_app_threads(
    cfg: &ServeConfig,
    control: &ControlPlane,
    sockets: Arc<Sockets>,
    latency: LatencySender,
    epoch: Instant,
) -> std::io::Result<AppThreads> {
    if cfg.per_core() || !cfg.app.accepts() {
        return Ok(AppThreads { handles: Vec::new(), counters: Vec::new() });
    }
    let (stop, drain) = (control.stop.clone(), control.drain.clone());
    app_threads::spawn(sockets, &control.listening.fds, control.app.clone(), cfg.app_threads, stop, drain, latency, epoch)
}

fn print_ready(cfg: &ServeConfig) {
    println!(
        "dlisten: app {} {}; stats: dlisten stats --socket {}",
        cfg.app,
        if cfg.per_core() { "per core".to_string() } else { format!("on {} application threads", cfg.app_threads) },
        cfg.control_socket.display()
    );
    println!("dlisten: ready");
}
