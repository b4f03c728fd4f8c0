//! The `dlisten` command line.

use clap::{Args, Parser, Subcommand};
use dlisten::engine::keys::fastopen::TfoKeys;
use dlisten::engine::keys::SipKey;
use dlisten::engine::sysctl::Sysctls;
use dlisten::app::{AppKind, HttpConfig};
use dlisten::serve::{self, ListenSpec, ServeConfig};
use dlisten::telemetry::control::default_socket_path;
use std::path::PathBuf;
use std::net::SocketAddrV4;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "dlisten", version, about = "A user-space TCP listener on DPDK: Linux's listen path, per core and lock-free")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Own one or more IPv4 addresses on a DPDK port and serve them.
    /// EAL arguments go after `--`, e.g. `-- --no-huge -m 512 --no-pci --vdev net_tap0`.
    Serve(Box<ServeArgs>),
    /// Ask a running serve for its live statistics over its control socket.
    Stats(StatsArgs),
    /// SYN flood and handshake load generator on a DPDK port (198.18.0.0/15 only).
    /// EAL arguments go after `--`.
    Flood(Box<FloodArgs>),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FloodModeArg {
    Syn,
    Handshake,
    Mixed,
}

#[derive(Args)]
struct FloodArgs {
    /// syn: SYNs only; handshake: full handshakes; mixed: both at once.
    #[arg(long, value_enum, default_value_t = FloodModeArg::Syn)]
    mode: FloodModeArg,
    /// The target, inside 198.18.0.0/15.
    #[arg(long, value_name = "IPV4:PORT")]
    dst: SocketAddrV4,
    /// The target's MAC (default: resolved by ARP).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: Option<dlisten::wire::ethernet::EthernetAddress>,
    /// Source addresses, a prefix inside 198.18.0.0/15 (we answer ARP for them).
    #[arg(long, default_value = "198.18.1.0/24")]
    src: String,
    /// Source ports, LOW-HIGH.
    #[arg(long, default_value = "1024-65535", value_parser = parse_flood_ports)]
    sport: (u16, u16),
    /// Flood SYNs per second (default: as fast as the port takes them).
    #[arg(long, value_name = "PPS")]
    rate: Option<u64>,
    /// syn/mixed: flood SYNs to send; handshake: handshakes to attempt.
    #[arg(long)]
    count: Option<u64>,
    /// Stop sending after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Legitimate handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Data sent with the handshake's ACK (escapes \r \n understood); the
    /// connection is reset once the response arrives.
    #[arg(long)]
    request: Option<String>,
    /// A SYN or request unanswered this many milliseconds has failed.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Write the latency histograms as HdrHistogram .hgrm files into DIR.
    #[arg(long, value_name = "DIR")]
    hgrm_dir: Option<PathBuf>,
    /// DPDK port id (default: the first port EAL found).
    #[arg(long)]
    port: Option<u16>,
    /// Sleep this many microseconds when idle (0 = busy poll).
    #[arg(long, default_value_t = 0)]
    idle_sleep_us: u64,
    /// EAL arguments, after `--`.
    #[arg(last = true, value_name = "EAL_ARGS")]
    eal: Vec<String>,
}

fn parse_mac(s: &str) -> Result<dlisten::wire::ethernet::EthernetAddress, String> {
    let bytes: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<Result<_, _>>().map_err(|e| format!("{s}: {e}"))?;
    let arr: [u8; 6] = bytes.try_into().map_err(|_| format!("{s}: expected six hex bytes aa:bb:cc:dd:ee:ff"))?;
    Ok(dlisten::wire::ethernet::EthernetAddress(arr))
}

fn parse_flood_ports(s: &str) -> Result<(u16, u16), String> {
    dlisten::flood::addr::parse_port_range(s).map_err(|e| e.to_string())
}

/// `\r`, `\n`, `\t` and `\\` in a command-line request.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some(other) => {
                out.push(b'\\');
                let mut b = [0; 4];
                out.extend_from_slice(other.encode_utf8(&mut b).as_bytes());
            }
            None => out.push(b'\\'),
        }
    }
    out
}

/// `dlisten flood`: run the generator, print the summary, tables and .hgrm files.
fn run_flood(a: FloodArgs) -> ExitCode {
    use dlisten::flood::{self, FloodConfig, Mode};
    let Ok(duration) = Duration::try_from_secs_f64(a.duration) else {
        eprintln!("dlisten: --duration needs a non-negative number of seconds");
        return ExitCode::FAILURE;
    };
    let mut eal_args = vec!["dlisten".to_string()];
    eal_args.extend(a.eal);
    let cfg = FloodConfig {
        mode: match a.mode {
            FloodModeArg::Syn => Mode::Syn,
            FloodModeArg::Handshake => Mode::Handshake,
            FloodModeArg::Mixed => Mode::Mixed,
        },
        dst: a.dst,
        src_text: a.src,
        sports: a.sport,
        rate: a.rate.filter(|&r| r > 0),
        count: a.count,
        duration,
        concurrency: a.concurrency,
        request: a.request.as_deref().map(unescape).unwrap_or_default(),
        timeout: Duration::from_millis(a.timeout_ms.max(1)),
        hgrm_dir: a.hgrm_dir.clone(),
        dst_mac: a.dst_mac,
        port: a.port,
        idle_sleep: Duration::from_micros(a.idle_sleep_us),
        eal_args,
    };
    match flood::run(cfg) {
        Ok(summary) => {
            print!("{}", summary.format());
            println!("latency (microseconds):");
            print!("{}", summary.latency_table());
            if let Some(dir) = &a.hgrm_dir {
                match summary.write_hgrms(dir) {
                    Ok(paths) => paths.iter().for_each(|p| println!("flood: wrote {}", p.display())),
                    Err(e) => eprintln!("dlisten: {}: {e}", dir.display()),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dlisten: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct StatsArgs {
    /// The control socket (default: /run/dlisten/<NAME>.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "name")]
    socket: Option<std::path::PathBuf>,
    /// The server's name: EAL's --file-prefix, or `dlisten`.
    #[arg(long, default_value = "dlisten")]
    name: String,
    /// Print one JSON object (counters, workers, listeners, latency) instead of text.
    #[arg(long)]
    json: bool,
    /// Ask again every SECS seconds (rates then cover the last interval).
    #[arg(long, value_name = "SECS")]
    watch: Option<f64>,
    /// With --watch: stop after N answers.
    #[arg(long, value_name = "N", requires = "watch")]
    count: Option<u64>,
}

#[derive(Args)]
struct ServeArgs {
    /// An IPv4 address this server owns (answers ARP and ICMP for it). Repeatable.
    #[arg(long = "addr", required = true, value_name = "IPV4")]
    addrs: Vec<Ipv4Addr>,
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
    /// A TCP address to listen on, e.g. `198.18.0.1:80` or `0.0.0.0:80`. Repeatable.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listens: Vec<SocketAddrV4>,
    /// listen()'s backlog for every --listen (clamped to --somaxconn as Linux does;
    /// a negative value becomes somaxconn).
    #[arg(long, default_value_t = 4096, allow_hyphen_values = true)]
    backlog: i32,
    /// TCP_FASTOPEN queue length set on every listener (0 = not set).
    #[arg(long, default_value_t = 0)]
    fastopen_qlen: u32,
    /// The application: `http` (a fixed 200 response to every request),
    /// `echo`, `discard`, or `hold` (never accepts: the accept queue fills).
    #[arg(long, value_enum, default_value_t = AppArg::Http)]
    app: AppArg,
    /// The body `--app http` answers with.
    #[arg(long, default_value = "hello from dlisten\n")]
    http_body: String,
    /// 0: serve per core inside the workers (one SO_REUSEPORT member per
    /// worker, shared nothing); N: N application threads share each
    /// listener's accept queue.
    #[arg(long, default_value_t = 0)]
    app_threads: usize,
    /// Established connections per worker; beyond, handshakes are refused with RST.
    #[arg(long, default_value_t = 65536)]
    max_conns: usize,
    /// Connection buffer memory per worker, in MiB (64 KiB receive + 64 KiB send per connection).
    #[arg(long, default_value_t = 1024)]
    conn_mem_mb: u64,
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
    /// net.ipv4.tcp_retries2: retransmissions before an established connection gives up.
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_retries2)]
    retries2: u8,
    /// net.ipv4.tcp_timestamps (0 or 1).
    #[arg(long, default_value_t = Sysctls::DEFAULT.tcp_timestamps as u8, value_parser = clap::value_parser!(u8).range(0..=1))]
    timestamps: u8,
    /// The SYN cookie key as 32 hex digits: servers sharing it accept each
    /// other's cookies (default: random).
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
    /// Print summed counters every N seconds.
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
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

/// EAL's `--file-prefix NAME` (or `--file-prefix=NAME`), which names the control socket too.
fn file_prefix(eal: &[String]) -> Option<String> {
    let mut it = eal.iter();
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--file-prefix=") {
            return Some(v.to_string());
        }
    }
    None
}

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

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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

/// `dlisten stats`: query the control socket, once or every --watch seconds.
fn run_stats(a: StatsArgs) -> ExitCode {
    use dlisten::telemetry::control;
    let path = a.socket.unwrap_or_else(|| control::default_socket_path(&a.name));
    let command = if a.json { "json" } else { "stats" };
    let every = match a.watch.map(Duration::try_from_secs_f64) {
        None => None,
        Some(Ok(d)) if !d.is_zero() => Some(d),
        Some(_) => {
            eprintln!("dlisten: --watch needs a positive number of seconds");
            return ExitCode::FAILURE;
        }
    };
    let mut answered = 0u64;
    loop {
        match control::query(&path, command) {
            Ok(answer) => print!("{answer}"),
            Err(e) => {
                eprintln!("dlisten: {e}");
                return ExitCode::FAILURE;
            }
        }
        answered += 1;
        let Some(every) = every else { return ExitCode::SUCCESS };
        if a.count.is_some_and(|n| answered >= n) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(every);
        if !a.json {
            println!();
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Stats(a) => run_stats(a),
        Command::Flood(a) => run_flood(*a),
        Command::Serve(a) => {
            let control_socket = a
                .control_socket
                .clone()
                .unwrap_or_else(|| default_socket_path(&file_prefix(&a.eal).unwrap_or_else(|| "dlisten".into())));
            let mut eal_args = vec!["dlisten".to_string()];
            eal_args.extend(a.eal);
            let cfg = ServeConfig {
                addrs: a.addrs,
                port: a.port,
                workers: a.workers,
                cores: a.cores,
                rx_desc: a.rx_desc,
                tx_desc: a.tx_desc,
                mbufs_per_worker: a.mbufs,
                idle_sleep: Duration::from_micros(a.idle_sleep_us),
                stats_interval: a.stats_interval.map(Duration::from_secs),
                eal_args,
                listens: a
                    .listens
                    .iter()
                    .map(|&addr| ListenSpec { addr, backlog: a.backlog, fastopen_qlen: a.fastopen_qlen })
                    .collect(),
                sysctls: Sysctls {
                    somaxconn: a.somaxconn,
                    tcp_max_syn_backlog: a.max_syn_backlog,
                    tcp_syncookies: a.syncookies,
                    tcp_synack_retries: a.synack_retries,
                    tcp_abort_on_overflow: a.abort_on_overflow == 1,
                    tcp_fastopen: a.fastopen,
                    ip_local_port_range: (a.local_port_range.0, a.local_port_range.1),
                    tcp_migrate_req: a.migrate_req == 1,
                    tcp_timestamps: a.timestamps == 1,
                    tcp_retries2: a.retries2,
                    ..Sysctls::DEFAULT
                },
                app: match a.app {
                    AppArg::Http => match HttpConfig::new(a.http_body.as_bytes(), "text/plain") {
                        Ok(c) => AppKind::Http(c),
                        Err(e) => {
                            eprintln!("dlisten: --http-body: {e}");
                            return ExitCode::FAILURE;
                        }
                    },
                    AppArg::Echo => AppKind::Echo,
                    AppArg::Discard => AppKind::Discard,
                    AppArg::Hold => AppKind::Hold,
                },
                app_threads: a.app_threads,
                max_conns: a.max_conns,
                conn_mem: a.conn_mem_mb << 20,
                event_log: a.event_log,
                hgrm_dir: a.hgrm_dir,
                control_socket,
                syncookie_rotate: (a.syncookie_rotate > 0).then(|| Duration::from_secs(a.syncookie_rotate)),
                syncookie_key: a.syncookie_key,
                tfo_key: a.tfo_key,
            };
            match serve::run(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dlisten: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
