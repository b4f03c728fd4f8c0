//! What `serve` is asked to do.

use crate::app::AppKind;
use crate::engine::keys::fastopen::TfoKeys;
use crate::engine::keys::{FleetKeys, KeyFileError, SipKey};
use crate::engine::sysctl::Sysctls;
use crate::worker::apps::ConnLimits;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// One `--listen`.
#[derive(Clone, Copy, Debug)]
pub struct ListenSpec {
    pub addr: SocketAddr,
    pub backlog: i32,
    /// TCP_FASTOPEN queue length (0 = not set).
    pub fastopen_qlen: u32,
    /// TCP_DEFER_ACCEPT in seconds (0 = not set).
    pub defer_accept: i32,
}

/// Everything `serve` needs, already validated by the CLI.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub addrs: Vec<Ipv4Addr>,
    /// IPv6 addresses (host behaviour only: no TCP listening over IPv6 yet).
    pub addrs6: Vec<Ipv6Addr>,
    pub port: Option<u16>,
    pub workers: u16,
    pub cores: Option<Vec<usize>>,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mbufs_per_worker: u32,
    pub idle_sleep: Duration,
    pub stats_interval: Option<Duration>,
    /// argv for EAL, `argv[0]` included.
    pub eal_args: Vec<String>,
    pub listens: Vec<ListenSpec>,
    pub sysctls: Sysctls,
    pub app: AppKind,
    /// 0: serve per core inside the workers (a reuseport member per worker);
    /// N: N application threads share each listener's accept queue.
    pub app_threads: usize,
    /// Rotate the SYN cookie key this often (not with an operator-set key).
    pub syncookie_rotate: Option<Duration>,
    /// Operator-set SYN cookie key.
    pub syncookie_key: Option<SipKey>,
    /// Operator-set TFO key.
    pub tfo_key: Option<TfoKeys>,
    /// A fleet's key file and the keys read from it at start (read again
    /// when it changes).
    pub key_file: Option<(PathBuf, FleetKeys)>,
    /// Per-worker caps on connections and connection buffer memory.
    pub max_conns: usize,
    pub conn_mem: u64,
    /// What receive-buffer autotuning may grow a connection's buffer to.
    pub rcv_buf_max: u32,
    /// What send-buffer autotuning may grow a connection's buffer to.
    pub snd_buf_max: u32,
    pub event_log: Option<PathBuf>,
    /// Write `<metric>.hgrm` files here at exit.
    pub hgrm_dir: Option<PathBuf>,
    pub control_socket: PathBuf,
    /// Serve Prometheus metrics and `/health` over HTTP on this kernel socket.
    pub metrics: Option<SocketAddr>,
    /// Slow-client timeouts and the per-source cap (per-core serving).
    pub conn_limits: ConnLimits,
    /// SIGTERM: how long established connections may take to finish.
    pub drain_timeout: Duration,
    /// `--config`: what SIGHUP reads again.
    pub config_path: Option<PathBuf>,
}

impl ServeConfig {
    /// Per-core serving: one reuseport member per worker, served inside it.
    pub fn per_core(&self) -> bool {
        self.app_threads == 0
    }
}

/// Why `--key-file` gave no keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileReadError {
    #[error("--key-file {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("--key-file {}: {source}", .path.display())]
    Keys { path: PathBuf, source: KeyFileError },
}

/// Read a fleet's key file.
pub fn read_key_file(path: &std::path::Path) -> Result<FleetKeys, KeyFileReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileReadError::Read { path: path.into(), source })?;
    FleetKeys::parse(&text).map_err(|source| KeyFileReadError::Keys { path: path.into(), source })
}
