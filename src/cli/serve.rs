//! `dlisten serve`: its flags, and the [`ServeConfig`] they make.

use super::config_file::{self, ConfigFileError};
use super::{eal_argv, DEFAULT_NAME};
use crate::app::{AppKind, HttpConfig, HttpConfigError};
// EAL's `--file-prefix` names the control socket too.
use crate::dpdk::runtime_dir::file_prefix;
use crate::engine::keys::fastopen::TfoKeys;
use crate::engine::keys::SipKey;
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::ConnTable;
use crate::worker::apps::ConnLimits;
use crate::serve::{read_key_file, KeyFileReadError, ListenSpec, ServeConfig};
use crate::telemetry::control::default_socket_path;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// `dlisten serve`'s command line: its flags, and which of them the command
/// line itself gave, so that they override `--config`'s file.
pub struct ServeArgs {
    flags: ServeFlags,
    /// (flag id, raw values) of every flag given on the command line.
    command_line: Vec<(String, Vec<OsString>)>,
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = ServeFlags::from_arg_matches(m)?;
        let command_line = m
            .ids()
            .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| (id.to_string(), m.get_raw(id.as_str()).into_iter().flatten().map(OsStr::to_os_string).collect()))
            .collect();
        Ok(ServeArgs { flags, command_line })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for ServeArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ServeFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ServeFlags::augment_args_for_update(cmd)
    }
}

/// The serve flags. Each has a key of the same name (without `--`) in the
/// `--config` file: see [`super::config_file`].
#[derive(Args)]
struct ServeFlags {
    /// Read the flags from a TOML file first: a key per flag without the
    /// dashes (`workers = 4`, `listen = ["198.18.0.1:80"]`, `eal = ["-l", "2-5"]`).
    /// A flag given on the command line (or EAL arguments after `--`)
    /// replaces the file's value.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the flags and the --config file, say so, and exit without
    /// starting (like `nginx -t`).
    #[arg(long)]
    check: bool,
    /// An address this server owns, IPv4 (answers ARP and ICMP for it) or
    /// IPv6 (answers neighbour discovery and ICMPv6 for it). Repeatable, both
    /// kinds mixed; at least one, here or in the --config file.
    #[arg(long = "addr", value_name = "IP")]
    addrs: Vec<IpAddr>,
    /// DPDK port id (default: the first port EAL found).
    #[arg(long)]
    port: Option<u16>,
    /// Worker threads, one per RX/TX queue pair.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    workers: u16,
    /// Cores to pin workers to, e.g. `2,3` (default: cores 0..workers).
    #[arg(long, value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// RX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    rx_desc: u16,
    /// TX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    tx_desc: u16,
    /// Mbufs per worker's mempool.
    #[arg(long, default_value_t = 8191)]
    mbufs: u32,
    /// Sleep this many microseconds when a worker found nothing to do for a
    /// while (0 = pure busy polling, the DPDK norm; tests on shared cores use ~20).
    #[arg(long, default_value_t = 0)]
    idle_sleep_us: u64,
    /// A TCP address to listen on, e.g. `198.18.0.1:80`, `0.0.0.0:80`,
    /// `[2001:2::1]:80` or `[::]:80` (IPv4 too unless --bindv6only 1). Repeatable.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listens: Vec<SocketAddr>,
    /// listen()'s backlog for every --listen (clamped to --somaxconn as Linux does;
    /// a negative value becomes somaxconn).
    #[arg(long, default_value_t = 4096, allow_hyphen_values = true)]
    backlog: i32,
    /// TCP_FASTOPEN queue length set on every listener (0 = not set).
    #[arg(long, default_value_t = 0)]
    fastopen_qlen: u32,
    /// TCP_DEFER_ACCEPT on every listener, in seconds: a handshake completes
    /// only when the client sends data (or the deferral ends); 0 = not set.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    defer_accept: u32,
    /// The application: `http` (a fixed 200 response to every request),
    /// `echo`, `discard`, or `hold` (never accepts: the accept queue fills).
    #[arg(long, value_enum, default_value_t = AppArg::Http)]
    app: AppArg,
    /// The body `--app http` answers with.
    #[arg(long, default_value = "hello from dlisten\n")]
    http_body: String,
    /// Seconds a client has to send a whole request head, from the
    /// connection's start or the next request's first byte; then the
    /// connection is closed (DlHttpHeaderTimeouts; nginx's
    /// client_header_timeout). 0 = none.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    http_header_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request
    /// (DlHttpIdleTimeouts; nginx's keepalive_timeout). 0 = none.
    #[arg(long, default_value_t = 75, value_name = "SECS")]
    http_keepalive_timeout: u64,
    /// Seconds a request body may stall between two reads
    /// (DlHttpBodyTimeouts; nginx's client_body_timeout). 0 = none.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    http_body_timeout: u64,
    /// Connections one client address may hold per worker; beyond, accepted
    /// connections are reset (DlConnPerSourceRefused). 0 = no cap. Per-core
    /// serving only (--app-threads 0), like the http timeouts.
    #[arg(long, default_value_t = 0, value_name = "N")]
    max_conns_per_source: u32,
    /// SIGTERM drains: /health turns unhealthy, the listeners close (new
    /// SYNs get RST), idle keep-alive connections close, the others get
    /// `Connection: close` on their next response and have this many
    /// seconds to finish. SIGINT stops at once. Per-core serving only.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    drain_timeout: u64,
    /// 0: serve per core inside the workers (one SO_REUSEPORT member per
    /// worker, shared nothing); N: N application threads share each
    /// listener's accept queue.
    #[arg(long, default_value_t = 0)]
    app_threads: usize,
    /// Established connections per worker; beyond, handshakes are refused
    /// with RST (DlConnLimitRefused). Default: the connection table's limit
    /// (2^24), so memory, not a count, decides.
    #[arg(long, default_value_t = ConnTable::CAPACITY)]
    max_conns: usize,
    /// Connection buffer memory in use per worker, in MiB (tcp_mem's hard
    /// limit: rings are charged as they fill, not reserved; pressure at 2/3
    /// shrinks receive windows). At the limit, handshakes are refused with
    /// RST (DlConnMemRefused) and a warning is logged.
    #[arg(long, default_value_t = 1024)]
    conn_mem_mb: u64,
    /// The most receive-buffer autotuning may grow one connection's buffer
    /// (and window) to, in KiB (Linux tcp_rmem[2]: 6144). Connections start
    /// at 64 KiB; 64 or less turns autotuning off. Window scale 7 offers
    /// at most 8 MiB.
    #[arg(long, value_name = "KB", default_value_t = 6144, value_parser = clap::value_parser!(u32).range(..=65_535))]
    rmem_max_kb: u32,
    /// The most send-buffer autotuning may grow one connection's send
    /// buffer to, in KiB (Linux tcp_wmem[2]: 4096). Connections start at
    /// 64 KiB; 64 or less turns it off.
    #[arg(long, value_name = "KB", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(..=65_535))]
    wmem_max_kb: u32,
    /// Write one JSON object per application-visible event to FILE.
    #[arg(long, value_name = "FILE")]
    event_log: Option<PathBuf>,
    /// Write the latency histograms as HdrHistogram .hgrm files into DIR at exit.
    #[arg(long, value_name = "DIR")]
    hgrm_dir: Option<PathBuf>,
    /// The control socket `dlisten stats` reads (default: /run/dlisten/<EAL --file-prefix or "dlisten">.sock).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// net.core.somaxconn
    #[arg(long, default_value_t = Sysctls::DEFAULT.somaxconn)]
    somaxconn: u32,
    /// net.ipv4.tcp_max_syn_backlog
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_max_syn_backlog)]
    max_syn_backlog: u32,
    /// net.ipv4.tcp_syncookies: 0 off, 1 when the SYN queue overflows, 2 always.
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_syncookies, value_parser = clap::value_parser!(u8).range(0..=2))]
    syncookies: u8,
    /// net.ipv4.tcp_synack_retries
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_synack_retries)]
    synack_retries: u8,
    /// net.ipv4.tcp_abort_on_overflow: 1 = RST when the accept queue is full.
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_abort_on_overflow as u8, value_parser = clap::value_parser!(u8).range(0..=1))]
    abort_on_overflow: u8,
    /// net.ipv4.tcp_fastopen bits (2 = server enable, 0x200 = no cookie needed,
    /// 0x400 = every listener without TCP_FASTOPEN).
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_fastopen, value_parser = parse_u32_auto)]
    fastopen: u32,
    /// net.ipv4.ip_local_port_range, e.g. `32768-60999` (for bind to port 0).
    #[arg(long, default_value_t = PortRange::from(Sysctls::DEFAULT.ip_local_port_range), value_parser = parse_port_range)]
    local_port_range: PortRange,
    /// net.ipv4.tcp_migrate_req: 1 = migrate requests when a reuseport member closes.
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_migrate_req as u8, value_parser = clap::value_parser!(u8).range(0..=1))]
    migrate_req: u8,
    /// net.ipv6.bindv6only: 1 = a `[::]` listener takes IPv6 connections
    /// only (IPV6_V6ONLY); 0 = IPv4 ones too, as v4-mapped peers.
    #[arg(long, default_value_t = Sysctls::DEFAULT.bindv6only as u8, value_parser = clap::value_parser!(u8).range(0..=1))]
    bindv6only: u8,
    /// net.ipv4.tcp_retries2: retransmissions before an established connection gives up.
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_retries2)]
    retries2: u8,
    /// net.ipv4.tcp_timestamps (0 or 1).
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_timestamps as u8, value_parser = clap::value_parser!(u8).range(0..=1))]
    timestamps: u8,
    /// The SYN cookie key as 32 hex digits (default: random). For servers
    /// that answer each other's handshakes, --key-file.
    #[arg(long, value_parser = parse_sip_key)]
    syncookie_key: Option<SipKey>,
    /// Rotate the SYN cookie key every N seconds (0 = never; ignored with
    /// --syncookie-key, which servers share). Cookies made with the previous
    /// key stay valid while they can still be young.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    syncookie_rotate: u64,
    /// The TFO key in Linux's net.ipv4.tcp_fastopen_key format
    /// (`00112233-44556677-8899aabb-ccddeeff`; default: random).
    #[arg(long, value_parser = parse_tfo_key)]
    tfo_key: Option<TfoKeys>,
    /// The key file every server of a fleet shares (TOML: `syncookie`,
    /// `syncookie_previous`, `timestamp`, `fastopen`, `fastopen_previous`):
    /// servers accept each other's SYN cookies and TFO cookies. Read again
    /// when it changes.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["syncookie_key", "tfo_key"])]
    key_file: Option<PathBuf>,
    /// Print summed counters every N seconds.
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Serve Prometheus metrics (`/metrics`) and a health check (`/health`)
    /// over HTTP on this kernel-socket address of the management network,
    /// e.g. `127.0.0.1:9810` (not through the DPDK port).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// EAL arguments, after `--`.
    #[arg(last = true, value_name = "EAL_ARGS")]
    eal: Vec<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AppArg {
    Http,
    Echo,
    Discard,
    Hold,
}

/// A `serve` command line that parsed but does not make a configuration.
#[derive(Debug, Error)]
pub enum ServeArgsError {
    #[error("--http-body: {0}")]
    HttpBody(HttpConfigError),
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The file's and the command line's flags together did not parse
    /// (each alone did).
    #[error("--config {}: {message}", .path.display())]
    Merge { path: PathBuf, message: String },
    #[error("no address to own: pass --addr 198.18.0.1 (one or more) or put `addr = [\"198.18.0.1\"]` in the --config file")]
    NoAddress,
    #[error("--addr {0}: not an address a host owns on a link (multicast, unspecified or loopback)")]
    NotUnicast6(std::net::Ipv6Addr),
    /// Most drivers fill the RX ring from the pool at start; a burst in
    /// hand and a burst of answers need theirs too.
    #[error("--mbufs {mbufs} is too few for --rx-desc {rx_desc}: the RX ring alone holds {rx_desc}; give at least {need}")]
    TooFewMbufs { mbufs: u32, rx_desc: u16, need: u32 },
    #[error("--cores names {given} core(s) for --workers {workers}: one per worker")]
    TooFewCores { given: usize, workers: u16 },
    #[error("--max-conns-per-source is for per-core serving: drop it or --app-threads")]
    PerSourceWithAppThreads,
    #[error(transparent)]
    KeyFile(#[from] KeyFileReadError),
}

impl TryFrom<ServeArgs> for ServeConfig {
    type Error = ServeArgsError;

    fn try_from(a: ServeArgs) -> Result<ServeConfig, ServeArgsError> {
        ServeConfig::try_from(a.merged()?)
    }
}

impl ServeArgs {
    /// `--check`: only make the configuration.
    pub fn check_only(&self) -> bool {
        self.flags.check
    }

    /// The flags with `--config`'s file under them: a flag the command line
    /// gave keeps its command-line value (a repeatable one its whole list),
    /// every other flag takes the file's value, else its default.
    fn merged(self) -> Result<ServeFlags, ServeArgsError> {
        let Some(path) = self.flags.config.clone() else { return Ok(self.flags) };
        let cmd = serve_command();
        let file = config_file::read(&path, &cmd)?;
        let argv = merge_argv(&cmd, &file, &self.command_line, &[]);
        let merge_error = |e: clap::Error| ServeArgsError::Merge { path: path.clone(), message: config_file::clap_message(&e) };
        let matches = cmd.try_get_matches_from(argv).map_err(merge_error)?;
        ServeFlags::from_arg_matches(&matches).map_err(merge_error)
    }
}

/// The serve flags as a clap command, for the `--config` file and reloads.
pub(super) fn serve_command() -> clap::Command {
    ServeFlags::augment_args(clap::Command::new("serve"))
}

/// One argv for `cmd`: the file's flags, over them the command line's (a
/// repeatable flag its whole list), over both `sets` (long name, value).
pub(super) fn merge_argv(
    cmd: &clap::Command,
    file: &[config_file::FileFlag],
    command_line: &[(String, Vec<OsString>)],
    sets: &[(String, String)],
) -> Vec<OsString> {
    let given = |id: &str| command_line.iter().any(|(g, _)| g == id);
    let long_of = |id: &str| cmd.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_long());
    let is_set = |id: &str| long_of(id).is_some_and(|l| sets.iter().any(|(k, _)| k == l));
    let mut argv: Vec<OsString> = vec!["serve".into()];
    let mut eal: Vec<OsString> = Vec::new();
    for f in file.iter().filter(|f| !given(&f.id) && !is_set(&f.id)) {
        if f.id == config_file::EAL_ID {
            eal.extend(f.values.iter().map(OsString::from));
        } else {
            argv.extend(f.values.iter().map(|v| config_file::flag_token(&f.long, v.as_ref())));
        }
    }
    for (id, values) in command_line.iter().filter(|(id, _)| !is_set(id)) {
        if id == config_file::EAL_ID {
            eal.extend(values.iter().cloned());
        } else if let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id.as_str()) {
            let Some(long) = arg.get_long() else { continue };
            if arg.get_action().takes_values() {
                argv.extend(values.iter().map(|v| config_file::flag_token(long, v)));
            } else {
                // A switch (`--check`): its raw value is clap's "true".
                argv.push(format!("--{long}").into());
            }
        }
        // Other ids are clap's argument groups, whose flags come on their own.
    }
    for (long, value) in sets {
        argv.push(config_file::flag_token(long, OsStr::new(value)));
    }
    argv.push("--".into());
    argv.extend(eal);
    argv
}

/// Every flag's raw values, defaults included, by key (`eal` for EAL's).
pub(super) type Effective = std::collections::BTreeMap<String, Vec<OsString>>;

/// A merged argv made into a configuration, with its [`Effective`] flags
/// to compare two configurations key by key.
pub(super) fn resolve(cmd: &clap::Command, argv: Vec<OsString>) -> Result<(ServeConfig, Effective), String> {
    let m = cmd.clone().try_get_matches_from(argv).map_err(|e| config_file::clap_message(&e))?;
    let flags = ServeFlags::from_arg_matches(&m).map_err(|e| config_file::clap_message(&e))?;
    let effective = cmd
        .get_arguments()
        .filter_map(|a| {
            let id = a.get_id().as_str();
            let key = if id == config_file::EAL_ID { id } else { a.get_long()? };
            let raw = m.get_raw(id).into_iter().flatten().map(OsStr::to_os_string).collect();
            Some((key.to_string(), raw))
        })
        .collect();
    Ok((ServeConfig::try_from(flags).map_err(|e| e.to_string())?, effective))
}

impl ServeArgs {
    /// The command line as given, and its `--config` file: what SIGHUP and
    /// `dlisten set` make the configuration anew from.
    pub(super) fn sources(&self) -> (Vec<(String, Vec<OsString>)>, Option<PathBuf>) {
        (self.command_line.clone(), self.flags.config.clone())
    }
}

impl TryFrom<ServeFlags> for ServeConfig {
    type Error = ServeArgsError;

    fn try_from(a: ServeFlags) -> Result<ServeConfig, ServeArgsError> {
        if a.addrs.is_empty() {
            return Err(ServeArgsError::NoAddress);
        }
        if let Some(IpAddr::V6(bad)) = a.addrs.iter().find(|a| matches!(a, IpAddr::V6(v6) if v6.is_multicast() || v6.is_unspecified() || v6.is_loopback())) {
            return Err(ServeArgsError::NotUnicast6(*bad));
        }
        // The cap is kept by each worker's apps; application threads have none.
        if a.max_conns_per_source > 0 && a.app_threads > 0 {
            return Err(ServeArgsError::PerSourceWithAppThreads);
        }
        let need = u32::from(a.rx_desc) + 2 * crate::dpdk::BURST as u32;
        if a.mbufs < need {
            return Err(ServeArgsError::TooFewMbufs { mbufs: a.mbufs, rx_desc: a.rx_desc, need });
        }
        if let Some(cores) = &a.cores {
            if cores.len() < usize::from(a.workers) {
                return Err(ServeArgsError::TooFewCores { given: cores.len(), workers: a.workers });
            }
        }
        let control_socket = a
            .control_socket
            .clone()
            .unwrap_or_else(|| default_socket_path(&file_prefix(&a.eal).unwrap_or_else(|| DEFAULT_NAME.into())));
        Ok(ServeConfig {
            listens: a
                .listens
                .iter()
                .map(|&addr| ListenSpec {
                    addr,
                    backlog: a.backlog,
                    fastopen_qlen: a.fastopen_qlen,
                    defer_accept: a.defer_accept.min(i32::MAX as u32) as i32,
                })
                .collect(),
            sysctls: a.sysctls(),
            app: a.app_kind()?,
            addrs: a.addrs.iter().filter_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            }).collect(),
            addrs6: a.addrs.iter().filter_map(|a| match a {
                IpAddr::V6(v6) => Some(*v6),
                IpAddr::V4(_) => None,
            }).collect(),
            port: a.port,
            workers: a.workers,
            cores: a.cores,
            rx_desc: a.rx_desc,
            tx_desc: a.tx_desc,
            mbufs_per_worker: a.mbufs,
            idle_sleep: Duration::from_micros(a.idle_sleep_us),
            stats_interval: a.stats_interval.map(Duration::from_secs),
            eal_args: eal_argv(a.eal),
            app_threads: a.app_threads,
            max_conns: a.max_conns,
            conn_mem: a.conn_mem_mb << 20,
            rcv_buf_max: a.rmem_max_kb << 10,
            snd_buf_max: a.wmem_max_kb << 10,
            event_log: a.event_log,
            hgrm_dir: a.hgrm_dir,
            control_socket,
            syncookie_rotate: (a.syncookie_rotate > 0).then(|| Duration::from_secs(a.syncookie_rotate)),
            syncookie_key: a.syncookie_key,
            tfo_key: a.tfo_key,
            key_file: match a.key_file {
                Some(path) => Some((path.clone(), read_key_file(&path)?)),
                None => None,
            },
            metrics: a.metrics,
            conn_limits: ConnLimits {
                header_timeout: Duration::from_secs(a.http_header_timeout),
                keepalive_timeout: Duration::from_secs(a.http_keepalive_timeout),
                body_timeout: Duration::from_secs(a.http_body_timeout),
                max_conns_per_source: a.max_conns_per_source,
            },
            drain_timeout: Duration::from_secs(a.drain_timeout),
            config_path: a.config,
        })
    }
}

impl ServeFlags {
    /// The sysctl flags; the ones without a flag keep Linux's defaults.
    fn sysctls(&self) -> Sysctls {
        Sysctls {
            somaxconn: self.somaxconn,
            tcp_max_syn_backlog: self.max_syn_backlog,
            tcp_syncookies: self.syncookies,
            tcp_synack_retries: self.synack_retries,
            tcp_abort_on_overflow: self.abort_on_overflow == 1,
            tcp_fastopen: self.fastopen,
            ip_local_port_range: (self.local_port_range.0, self.local_port_range.1),
            tcp_migrate_req: self.migrate_req == 1,
            tcp_timestamps: self.timestamps == 1,
            tcp_retries2: self.retries2,
            bindv6only: self.bindv6only == 1,
            ..Sysctls::DEFAULT
        }
    }

    fn app_kind(&self) -> Result<AppKind, ServeArgsError> {
        Ok(match self.app {
            AppArg::Http => AppKind::Http(HttpConfig::new(self.http_body.as_bytes(), "text/plain").map_err(ServeArgsError::HttpBody)?),
            AppArg::Echo => AppKind::Echo,
            AppArg::Discard => AppKind::Discard,
            AppArg::Hold => AppKind::Hold,
        })
    }
}

/// Decimal, or hexadecimal after `0x` (as the tcp_fastopen bits are written).
fn parse_u32_auto(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

/// `LOW-HIGH`, as `net.ipv4.ip_local_port_range` is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PortRange(u16, u16);

impl From<(u16, u16)> for PortRange {
    fn from((low, high): (u16, u16)) -> Self {
        PortRange(low, high)
    }
}

// The flag's default is shown, and parsed, in this form.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("{s}: expected LOW-HIGH"))?;
    let (a, b): (u16, u16) = (a.trim().parse().map_err(|e| format!("{a}: {e}"))?, b.trim().parse().map_err(|e| format!("{b}: {e}"))?);
    if a == 0 || a > b {
        return Err(format!("{s}: need 1 <= LOW <= HIGH"));
    }
    Ok(PortRange(a, b))
}

fn parse_sip_key(s: &str) -> Result<SipKey, String> {
    SipKey::from_hex(s).map_err(|e| e.to_string())
}

fn parse_tfo_key(s: &str) -> Result<TfoKeys, String> {
    TfoKeys::parse_linux(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn serve_config(argv: &[&str]) -> ServeConfig {
        let cli = Cli::try_parse_from(["dlisten", "serve"].iter().chain(argv)).unwrap();
        let Command::Serve(a) = cli.command else { panic!("not serve") };
        ServeConfig::try_from(*a).unwrap()
    }

    fn serve_try_config(argv: &[&str]) -> Result<ServeConfig, ServeArgsError> {
        let cli = Cli::try_parse_from(["dlisten", "serve"].iter().chain(argv)).unwrap();
        let Command::Serve(a) = cli.command else { panic!("not serve") };
        ServeConfig::try_from(*a)
    }

    #[test]
    fn slow_client_limits_and_drain_timeout() {
        let cfg = serve_config(&["--addr", "198.18.0.1"]);
        assert_eq!(cfg.conn_limits, ConnLimits::default());
        assert_eq!(cfg.drain_timeout, Duration::from_secs(30));
        let cfg = serve_config(&[
            "--addr", "198.18.0.1", "--http-header-timeout", "2", "--http-keepalive-timeout", "0",
            "--http-body-timeout", "7", "--max-conns-per-source", "20", "--drain-timeout", "5",
        ]);
        let want = ConnLimits {
            header_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::ZERO,
            body_timeout: Duration::from_secs(7),
            max_conns_per_source: 20,
        };
        assert_eq!((cfg.conn_limits, cfg.drain_timeout), (want, Duration::from_secs(5)));
        let err = serve_try_config(&["--addr", "198.18.0.1", "--max-conns-per-source", "2", "--app-threads", "2"]);
        assert!(matches!(err, Err(ServeArgsError::PerSourceWithAppThreads)), "{err:?}");
    }

    /// A config file with `text`, removed on drop.
    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(name: &str, text: &str) -> TempConfig {
            let path = std::env::temp_dir().join(format!("dlisten-test-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempConfig(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn serve_error(argv: &[&str]) -> clap::error::ErrorKind {
        match Cli::try_parse_from(["dlisten", "serve", "--addr", "198.18.0.1"].iter().chain(argv)) {
            Ok(_) => panic!("{argv:?} parsed"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn defaults_are_linux_sysctls_and_the_dlisten_socket() {
        let cfg = serve_config(&["--addr", "198.18.0.1", "--listen", "198.18.0.1:80", "--", "--no-huge", "--no-pci"]);
        assert_eq!(cfg.addrs, [Ipv4Addr::new(198, 18, 0, 1)]);
        assert_eq!(cfg.sysctls, Sysctls::DEFAULT);
        assert_eq!(cfg.eal_args, ["dlisten", "--no-huge", "--no-pci"]);
        assert_eq!(cfg.control_socket, PathBuf::from("/run/dlisten/dlisten.sock"));
        assert_eq!(cfg.listens.len(), 1);
        assert_eq!((cfg.listens[0].backlog, cfg.listens[0].fastopen_qlen, cfg.listens[0].defer_accept), (4096, 0, 0));
        assert!(matches!(cfg.app, AppKind::Http(_)));
        assert_eq!((cfg.workers, cfg.app_threads, cfg.conn_mem), (1, 0, 1024 << 20));
        assert_eq!(cfg.rcv_buf_max, 6 << 20, "Linux's tcp_rmem[2]");
        assert_eq!(cfg.snd_buf_max, 4 << 20, "Linux's tcp_wmem[2]");
        let small = serve_config(&["--addr", "198.18.0.1", "--listen", "198.18.0.1:80", "--rmem-max-kb", "256"]);
        assert_eq!(small.rcv_buf_max, 256 << 10);
        assert_eq!(cfg.syncookie_rotate, Some(Duration::from_secs(3600)));
        assert_eq!((cfg.idle_sleep, cfg.stats_interval), (Duration::ZERO, None));
    }

    #[test]
    fn addr_takes_ipv4_and_ipv6_mixed() {
        let cfg = serve_config(&["--addr", "198.18.0.1", "--addr", "2001:2::1", "--addr", "2001:2::2", "--addr", "198.18.0.2"]);
        assert_eq!(cfg.addrs, [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)]);
        assert_eq!(cfg.addrs6, ["2001:2::1".parse::<Ipv6Addr>().unwrap(), "2001:2::2".parse().unwrap()]);
        // IPv6 alone is an address to own.
        let cfg = serve_config(&["--addr", "2001:2::1"]);
        assert!(cfg.addrs.is_empty());
        assert_eq!(cfg.addrs6.len(), 1);
        assert_eq!(serve_error(&["--addr", "2001:2::zz"]), clap::error::ErrorKind::ValueValidation);
        for bad in ["ff02::1", "::", "::1"] {
            let e = serve_try_config(&["--addr", "2001:2::1", "--addr", bad]).err();
            assert!(matches!(e, Some(ServeArgsError::NotUnicast6(a)) if a == bad.parse::<Ipv6Addr>().unwrap()), "{bad}: {e:?}");
        }
    }

    #[test]
    fn flags_reach_the_config() {
        let cfg = serve_config(&[
            "--addr", "198.18.0.1", "--addr", "198.18.0.2", "--listen", "0.0.0.0:80", "--listen", "198.18.0.1:443",
            "--backlog", "-1", "--fastopen-qlen", "16", "--defer-accept", "5", "--app", "echo", "--somaxconn", "128", "--syncookies", "2",
            "--abort-on-overflow", "1", "--fastopen", "0x602", "--local-port-range", "1024-2047", "--timestamps", "0",
            "--syncookie-rotate", "0", "--idle-sleep-us", "20", "--stats-interval", "5", "--cores", "2,3",
            "--", "--file-prefix=e2e",
        ]);
        assert_eq!(cfg.addrs.len(), 2);
        assert_eq!(cfg.listens.iter().map(|l| (l.addr.port(), l.backlog, l.fastopen_qlen)).collect::<Vec<_>>(), [(80, -1, 16), (443, -1, 16)]);
        assert!(cfg.listens.iter().all(|l| l.defer_accept == 5));
        assert!(matches!(cfg.app, AppKind::Echo));
        let s = cfg.sysctls;
        assert_eq!((s.somaxconn, s.tcp_syncookies, s.tcp_fastopen, s.ip_local_port_range), (128, 2, 0x602, (1024, 2047)));
        assert!(s.tcp_abort_on_overflow && !s.tcp_timestamps && !s.tcp_migrate_req);
        assert_eq!(s.tcp_sack, Sysctls::DEFAULT.tcp_sack);
        assert_eq!(cfg.syncookie_rotate, None);
        assert_eq!(cfg.idle_sleep, Duration::from_micros(20));
        assert_eq!(cfg.stats_interval, Some(Duration::from_secs(5)));
        assert_eq!(cfg.cores, Some(vec![2, 3]));
        assert_eq!(cfg.control_socket, PathBuf::from("/run/dlisten/e2e.sock"));
    }

    #[test]
    fn bad_values_are_errors() {
        use clap::error::ErrorKind::*;
        assert_eq!(serve_error(&["--local-port-range", "0-10"]), ValueValidation);
        assert_eq!(serve_error(&["--local-port-range", "20-10"]), ValueValidation);
        assert_eq!(serve_error(&["--local-port-range", "1024"]), ValueValidation);
        assert_eq!(serve_error(&["--syncookies", "3"]), ValueValidation);
        assert_eq!(serve_error(&["--fastopen", "0xzz"]), ValueValidation);
        assert_eq!(serve_error(&["--syncookie-key", "00112233"]), ValueValidation);
        assert_eq!(serve_error(&["--tfo-key", "nothex"]), ValueValidation);
        assert_eq!(serve_error(&["--workers", "0"]), ValueValidation);
        assert_eq!(serve_error(&["--listen", "198.18.0.1"]), ValueValidation);
        let few = serve_try_config(&["--addr", "198.18.0.1", "--rx-desc", "512", "--mbufs", "575"]).unwrap_err().to_string();
        assert_eq!(few, "--mbufs 575 is too few for --rx-desc 512: the RX ring alone holds 512; give at least 576");
        assert!(serve_try_config(&["--addr", "198.18.0.1", "--rx-desc", "512", "--mbufs", "576"]).is_ok());
        let no_addr = serve_try_config(&["--listen", "198.18.0.1:80"]);
        assert!(matches!(no_addr, Err(ServeArgsError::NoAddress)), "--addr is required: {no_addr:?}");
    }

    #[test]
    fn keys_parse_as_linux_writes_them() {
        let cfg = serve_config(&[
            "--addr", "198.18.0.1", "--syncookie-key", "00112233445566778899aabbccddeeff",
            "--tfo-key", "00112233-44556677-8899aabb-ccddeeff",
        ]);
        assert_eq!(cfg.syncookie_key, Some(SipKey::from_hex("00112233445566778899aabbccddeeff").unwrap()));
        assert!(cfg.tfo_key.is_some());
    }

    #[test]
    fn key_file_from_the_command_line_or_the_config_file() {
        let keys = TempConfig::new(
            "fleet-keys",
            "syncookie = \"00112233445566778899aabbccddeeff\"\ntimestamp = \"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"\n",
        );
        let cfg = serve_config(&["--addr", "198.18.0.1", "--key-file", keys.arg()]);
        let (path, k) = cfg.key_file.expect("key file");
        assert_eq!(path, PathBuf::from(keys.arg()));
        assert_eq!(k.syncookie, SipKey::from_hex("00112233445566778899aabbccddeeff").unwrap());
        let conf = TempConfig::new("fleet-conf", &format!("addr = [\"198.18.0.1\"]\nkey-file = {:?}\n", keys.arg()));
        let cfg = serve_config(&["--config", conf.arg()]);
        assert_eq!(cfg.key_file.map(|(_, k)| k.timestamp), Some(SipKey::from_hex("0f1e2d3c4b5a69788796a5b4c3d2e1f0").unwrap()));
        // One source of keys: not with the single-key flags.
        assert_eq!(
            serve_error(&["--key-file", keys.arg(), "--syncookie-key", "00112233445566778899aabbccddeeff"]),
            clap::error::ErrorKind::ArgumentConflict
        );
        // A bad file is an error naming it and the line.
        let bad = TempConfig::new("fleet-bad", "syncookie = \"0011\"\n");
        let err = serve_try_config(&["--addr", "198.18.0.1", "--key-file", bad.arg()]).unwrap_err().to_string();
        assert!(err.starts_with(&format!("--key-file {}: line 1: syncookie: ", bad.arg())), "{err}");
        let missing = serve_try_config(&["--addr", "198.18.0.1", "--key-file", "/nonexistent/dlisten-keys.toml"]);
        assert!(matches!(missing, Err(ServeArgsError::KeyFile(KeyFileReadError::Read { .. }))), "{missing:?}");
    }

    #[test]
    fn port_range_default_round_trips() {
        let shown = PortRange::from(Sysctls::DEFAULT.ip_local_port_range).to_string();
        assert_eq!(shown, "32768-60999");
        assert_eq!(parse_port_range(&shown), Ok(PortRange(32768, 60999)));
        assert_eq!(parse_port_range(" 1 - 2 "), Ok(PortRange(1, 2)));
    }

    #[test]
    fn fastopen_bits_in_decimal_or_hex() {
        assert_eq!(parse_u32_auto("1026"), Ok(1026));
        assert_eq!(parse_u32_auto("0x402"), Ok(0x402));
        assert!(parse_u32_auto("-1").is_err());
    }

    #[test]
    fn file_prefix_in_both_spellings() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(file_prefix(&args(&["--no-huge", "--file-prefix", "a"])), Some("a".into()));
        assert_eq!(file_prefix(&args(&["--file-prefix=b"])), Some("b".into()));
        assert_eq!(file_prefix(&args(&["--file-prefix"])), None);
        assert_eq!(file_prefix(&args(&[])), None);
    }

    const FILE: &str = r#"
# every kind of value
addr = ["198.18.0.1", "198.18.0.2"]
listen = ["198.18.0.1:80", "198.18.0.2:443"]
workers = 4
cores = [2, 3, 4, 5]
backlog = -1
fastopen = 0x602
local-port-range = "1024-2047"
app = "echo"
http-body = "from the file\n"
metrics = "127.0.0.1:9810"
stats-interval = 10
eal = ["--no-huge", "--file-prefix", "fromfile"]
"#;

    #[test]
    fn config_file_values_reach_the_config() {
        let f = TempConfig::new("values", FILE);
        let cfg = serve_config(&["--config", f.arg()]);
        assert_eq!(cfg.addrs, [Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2)]);
        assert_eq!(cfg.listens.iter().map(|l| (l.addr.port(), l.backlog)).collect::<Vec<_>>(), [(80, -1), (443, -1)]);
        assert_eq!((cfg.workers, cfg.cores.as_deref()), (4, Some(&[2, 3, 4, 5][..])));
        assert_eq!((cfg.sysctls.tcp_fastopen, cfg.sysctls.ip_local_port_range), (0x602, (1024, 2047)));
        assert!(matches!(cfg.app, AppKind::Echo));
        assert_eq!(cfg.metrics, Some("127.0.0.1:9810".parse().unwrap()));
        assert_eq!(cfg.stats_interval, Some(Duration::from_secs(10)));
        assert_eq!(cfg.eal_args, ["dlisten", "--no-huge", "--file-prefix", "fromfile"]);
        assert_eq!(cfg.control_socket, PathBuf::from("/run/dlisten/fromfile.sock"));
        // Keys not in the file keep the flags' defaults.
        assert_eq!((cfg.rx_desc, cfg.sysctls.somaxconn), (1024, Sysctls::DEFAULT.somaxconn));
    }

    #[test]
    fn the_command_line_overrides_the_config_file() {
        let f = TempConfig::new("override", FILE);
        let cfg = serve_config(&[
            "--workers", "2", "--config", f.arg(), "--listen", "198.18.0.1:8080", "--backlog", "16", "--", "--file-prefix=cli",
        ]);
        assert_eq!(cfg.workers, 2);
        // A repeatable flag replaces the file's whole list.
        assert_eq!(cfg.listens.iter().map(|l| (l.addr.port(), l.backlog)).collect::<Vec<_>>(), [(8080, 16)]);
        assert_eq!(cfg.eal_args, ["dlisten", "--file-prefix=cli"]);
        // What the command line did not give still comes from the file.
        assert_eq!(cfg.addrs.len(), 2);
        assert_eq!(cfg.sysctls.tcp_fastopen, 0x602);
        // A command-line value equal to the default still wins over the file.
        let cfg = serve_config(&["--config", f.arg(), "--workers", "1", "--app", "http", "--check"]);
        assert_eq!(cfg.workers, 1);
        assert!(matches!(cfg.app, AppKind::Http(_)));
    }

    fn file_error(name: &str, text: &str) -> String {
        let f = TempConfig::new(name, text);
        match serve_try_config(&["--config", f.arg()]) {
            Err(e @ ServeArgsError::ConfigFile(_)) => e.to_string().replacen(f.arg(), "FILE", 1),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn config_file_errors_name_the_key_and_the_line() {
        let head = "addr = [\"198.18.0.1\"]\n# a comment\n";
        assert_eq!(
            file_error("unknown", &format!("{head}workers = 2\nworkerz = 3\n")),
            "FILE:4: unknown key `workerz` (the keys are the `dlisten serve` flags without the dashes, and `eal`)"
        );
        assert_eq!(
            file_error("range", &format!("{head}workers = 0\n")),
            "FILE:3: workers: invalid value '0' for '--workers <WORKERS>': 0 is not in 1..=128"
        );
        // The line of the bad element of an array.
        let e = file_error("listen", &format!("{head}listen = [\n  \"198.18.0.1:80\",\n  \"198.18.0.1\",\n]\n"));
        assert!(e.starts_with("FILE:5: listen: invalid value '198.18.0.1' for '--listen <ADDR:PORT>'"), "{e}");
        let e = file_error("type", &format!("{head}\nsyncookies = \"three\"\n"));
        assert!(e.starts_with("FILE:4: syncookies: invalid value 'three'"), "{e}");
        assert_eq!(file_error("array", &format!("{head}backlog = [1, 2]\n")), "FILE:3: backlog: takes one value, not an array");
        assert!(file_error("eal", "eal = \"-l 2-5\"\n").starts_with("FILE:1: eal: takes an array of strings"));
        assert!(file_error("table", "[sysctl]\nsomaxconn = 1\n").starts_with("FILE:1: unknown key `sysctl`"));
        assert_eq!(file_error("nested", "config = \"other.toml\"\n"), "FILE:1: `config` is a command-line flag only");
        assert_eq!(file_error("check", "\ncheck = true\n"), "FILE:2: `check` is a command-line flag only");
        let e = file_error("syntax", &format!("{head}workers = \n"));
        assert!(e.starts_with("FILE:3: "), "{e}");
        assert_eq!(file_error("duplicate", &format!("{head}workers = 1\nworkers = 2\n")), "FILE:4: duplicate key: `workers`");
        let missing = serve_try_config(&["--config", "/nonexistent/dlisten.toml"]).unwrap_err().to_string();
        assert!(missing.starts_with("--config /nonexistent/dlisten.toml: "), "{missing}");
    }

    #[test]
    fn every_flag_is_a_config_key() {
        let cmd = ServeFlags::augment_args(clap::Command::new("serve"));
        for arg in cmd.get_arguments() {
            let key = match arg.get_long() {
                Some("config" | "check") => continue,
                Some(long) => long.to_string(),
                None => arg.get_id().to_string(),
            };
            let value = match arg.get_id().as_str() {
                "addrs" => "\"198.18.0.1\"".to_string(),
                "eal" => "[\"--no-huge\"]".to_string(),
                _ => match arg.get_default_values().first() {
                    Some(d) => format!("{:?}", d.to_str().unwrap()),
                    None => continue, // no default to write: covered by FILE above
                },
            };
            let head = if key == "addr" { "" } else { "addr = [\"198.18.0.1\"]\n" };
            let f = TempConfig::new(&format!("key-{key}"), &format!("{head}{key} = {value}\n"));
            let r = serve_try_config(&["--config", f.arg()]);
            assert!(r.is_ok(), "{key} = {value}: {r:?}");
        }
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dlisten.toml");
        let cfg = serve_config(&["--config", path]);
        assert!(!cfg.addrs.is_empty() && !cfg.listens.is_empty());
        assert!(cfg.metrics.is_some(), "the example serves metrics");
        assert_eq!(cfg.control_socket, PathBuf::from("/run/dlisten/dlisten.sock"));
    }
}
