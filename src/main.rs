//! The `dlisten` command line.

use clap::{Args, Parser, Subcommand};
use dlisten::serve::{self, ServeConfig};
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
    Serve(ServeArgs),
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
    /// Print summed counters every N seconds.
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// EAL arguments, after `--`.
    #[arg(last = true, value_name = "EAL_ARGS")]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(a) => {
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
