//! `dlisten serve`, as the steps it takes:
//! - the control plane (`control_plane`): keys, the socket layer, the
//!   listeners open, the event log; configuration errors show here, before
//!   the NIC is touched;
//! - EAL and its mempools (`eal`), which outlive everything after;
//! - `Running`: the port started, one pinned worker per queue, the
//!   application threads, the control socket and the metrics endpoint;
//! - serving until SIGINT/SIGTERM, with key rotation and periodic stats;
//! - shutdown in order, into the exit `Report`.

mod config;
mod control_plane;
mod eal;
mod link;
mod listen;
mod live;
mod periodic;
mod telemetry;
mod report;
mod running;
mod stats;
mod workers;

pub use config::{read_key_file, KeyFileReadError, ListenSpec, ServeConfig};
pub use live::{describe, Change, Reconfigure, Reconfigured, LIVE_KEYS};

use crate::dpdk::DpdkError;
use crate::engine::errno::Errno;
use control_plane::ControlPlane;
use eal::Dpdk;
use running::Running;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    Socket { call: &'static str, addr: SocketAddr, errno: Errno },
    #[error("{addr}: listen() succeeded but the socket has no listener: {errno}")]
    NoListener { addr: SocketAddr, errno: Errno },
    #[error(transparent)]
    Random(#[from] crate::engine::keys::RandomError),
    #[error("event log {0}: {1}")]
    EventLog(PathBuf, std::io::Error),
    #[error("control socket {0}: {1}")]
    ControlSocket(PathBuf, std::io::Error),
    #[error("EAL --file-prefix {prefix} is in use by process {pid} (its runtime directory {} is locked): stop it, or pass another --file-prefix", .dir.display())]
    RuntimeDirInUse { dir: PathBuf, prefix: String, pid: i32 },
    #[error("--cores: core {core} is not one this process may run on (its affinity: {})", .allowed.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","))]
    NoSuchCore { core: usize, allowed: Vec<usize> },
    #[error("cannot start the {0} thread: {1}")]
    Thread(String, std::io::Error),
    #[error("--metrics {0}: {1}")]
    Metrics(SocketAddr, std::io::Error),
}

/// Serve until SIGINT or SIGTERM, then print the exit report.
pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    run_reconfigurable(cfg, None)
}

/// [`run`], with SIGHUP and `dlisten set` making the configuration anew
/// through `reconfigure`.
pub fn run_reconfigurable(cfg: ServeConfig, reconfigure: Option<Box<dyn Reconfigure>>) -> Result<(), ServeError> {
    let control = ControlPlane::open(&cfg)?;
    // Declared before `running`, so dropped after it: the port goes before
    // the mempools and EAL.
    let dpdk = Dpdk::init(&cfg)?;
    let mut running = Running::start(&cfg, control, &dpdk, reconfigure)?;
    running.run_until_stopped();
    running.shutdown().print();
    Ok(())
}
