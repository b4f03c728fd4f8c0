//! One worker per RX/TX queue pair, each on its own pinned thread.

use super::control_plane::ControlPlane;
use super::eal::Dpdk;
use super::{ServeConfig, ServeError};
use crate::api::Sockets;
use crate::dpdk::Port;
use crate::engine::host::{Host, HostConfig};
use crate::engine::tcp::{TcpConfig, TcpEngine};
use crate::engine::time::Instant as EngineInstant;
use crate::stats::{Counters, Gauges, Runtime};
use crate::telemetry::capture::CaptureHub;
use crate::telemetry::latency::{LatencySender, WorkerLatency};
use crate::wire::ethernet::EthernetAddress;
use crate::worker::apps::PerCoreApps;
use crate::api::worker_side::AttachedConns;
use crate::worker::csum_partial::PartialCsumWatch;
use crate::worker::Worker;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// What every worker is built from.
pub(super) struct WorkerParts<'a> {
    pub cfg: &'a ServeConfig,
    pub control: &'a ControlPlane,
    pub dpdk: &'a Dpdk,
    pub port: &'a Port,
    pub mac: EthernetAddress,
    pub tx_csum_offload: bool,
    /// Set by the first worker that logs partial checksums on the port.
    pub csum_partial_logged: Arc<AtomicBool>,
    pub sockets: &'a Sockets,
    /// One per worker.
    pub counters: &'a [Arc<Counters>],
    /// One per worker.
    pub runtimes: &'a [Arc<Runtime>],
    /// One per worker.
    pub gauges: &'a [Arc<Gauges>],
    pub latency: &'a LatencySender,
    /// Engine time zero.
    pub epoch: Instant,
    pub capture: &'a Arc<CaptureHub>,
}

impl WorkerParts<'_> {
    /// Start every worker, saying which core each is on.
    pub fn spawn_all(&self) -> Result<Vec<JoinHandle<()>>, ServeError> {
        let mut handles = Vec::new();
        for w in 0..self.cfg.workers {
            let spawned = self.worker(w).and_then(|worker| {
                let core = worker.core.map(|c| c.id.to_string()).unwrap_or_else(|| "any".into());
                let handle = std::thread::Builder::new()
                    .name(format!("dl-worker-{w}"))
                    .spawn(move || worker.run())
                    .map_err(|e| ServeError::Thread(format!("worker {w}"), e))?;
                println!("dlisten: worker {w} on core {core}");
                Ok(handle)
            });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // The ones already polling stop before the port goes.
                    self.control.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(handles)
    }

    fn worker(&self, w: u16) -> Result<Worker, ServeError> {
        let (cfg, control) = (self.cfg, self.control);
        let counters = self.counters[w as usize].clone();
        // UTC at the engine's time zero (the workers' epoch), for the IP
        // timestamp option's time of day.
        let utc_now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let utc_ms_at_zero = (utc_now.as_millis() as u64).saturating_sub(self.epoch.elapsed().as_millis() as u64);
        let host = Host::new(HostConfig { mac: self.mac, addrs: cfg.addrs.clone(), utc_ms_at_zero }, counters.clone())
            .with_ipv6(cfg.addrs6.clone());
        let tcp_cfg = TcpConfig {
            mac: self.mac,
            utc_ms_at_zero,
            max_conns: cfg.max_conns,
            max_buffer_bytes: cfg.conn_mem,
            rcv_buf_max: cfg.rcv_buf_max,
            snd_buf_max: cfg.snd_buf_max,
            ..TcpConfig::new(w)
        };
        let tcp = TcpEngine::new(tcp_cfg, control.stack.clone(), control.secrets.clone(), EngineInstant::ZERO)
            .with_counters(counters.clone());
        let apps = cfg.per_core().then(|| {
            PerCoreApps::new(
                cfg.app.clone(),
                control.listening.per_worker[w as usize].clone(),
                control.events.clone(),
                cfg.conn_limits,
                counters.clone(),
                control.drain.clone(),
            )
            .with_live(control.app.clone())
        });
        Ok(Worker {
            id: w,
            eal: self.dpdk.eal.clone(),
            core: self.dpdk.core_for(cfg, w),
            rxq: self.port.rx_queue(w)?,
            txq: Some(self.port.tx_queue(w)?),
            pool: self.dpdk.pools[w as usize].clone(),
            host,
            tcp,
            apps,
            attached: AttachedConns::new(w, self.sockets.worker_queue()),
            latency_out: Some(self.latency.clone()),
            latency: WorkerLatency::default(),
            counters,
            runtime: self.runtimes[w as usize].clone(),
            gauges: self.gauges[w as usize].clone(),
            stop: control.stop.clone(),
            idle_sleep: cfg.idle_sleep,
            tx_csum_offload: self.tx_csum_offload,
            csum_partial: PartialCsumWatch::new(
                self.port.id(),
                self.port.info().iface.as_deref().map(Arc::from),
                self.csum_partial_logged.clone(),
            ),
            epoch: self.epoch,
            capture: self.capture.tap(w),
        })
    }
}
