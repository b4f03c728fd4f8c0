//! `dlisten flood`: its flags, the [`FloodConfig`] they make, and the printed summary.

use super::{eal_argv, CliError};
use crate::flood::{self, FloodConfig, Mode};
use crate::wire::ethernet::EthernetAddress;
use clap::Args;
use crate::flood::family::Family;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FloodModeArg {
    Syn,
    Handshake,
    Mixed,
}

#[derive(Args)]
pub struct FloodArgs {
    /// syn: SYNs only; handshake: full handshakes; mixed: both at once.
    #[arg(long, value_enum, default_value_t = FloodModeArg::Syn)]
    mode: FloodModeArg,
    /// The target: 198.18.0.1:80 inside 198.18.0.0/15, or [2001:2::1]:80
    /// inside 2001:2::/48 (the flood is then IPv6).
    #[arg(long, value_name = "ADDR:PORT")]
    dst: SocketAddr,
    /// The target's MAC (default: resolved by ARP).
    #[arg(long, value_parser = parse_mac)]
    dst_mac: Option<EthernetAddress>,
    /// Source addresses, a prefix of --dst's family inside 198.18.0.0/15 or
    /// 2001:2::/48 (we answer ARP and neighbour solicitations for them)
    /// [default: 198.18.1.0/24, or 2001:2:0:1::/120 for an IPv6 --dst].
    #[arg(long, value_name = "PREFIX")]
    src: Option<String>,
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
    /// A request unanswered this many milliseconds has failed; the run's
    /// end waits this long for replies.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// SYN retransmissions (1 s, then doubling) before a legitimate
    /// handshake fails, as Linux's net.ipv4.tcp_syn_retries.
    #[arg(long, default_value_t = flood::gen::TCP_SYN_RETRIES,
          value_parser = clap::value_parser!(u8).range(0..=i64::from(flood::gen::MAX_TCP_SYNCNT)))]
    syn_retries: u8,
    /// Write the latency histograms as HdrHistogram .hgrm files into DIR.
    #[arg(long, value_name = "DIR")]
    hgrm_dir: Option<PathBuf>,
    /// Write the summary (counters, rates, latency, the generator's
    /// runtime) as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
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

/// A `flood` command line that parsed but does not make a configuration.
#[derive(Debug, Error)]
pub enum FloodArgsError {
    #[error("--duration needs a non-negative number of seconds")]
    Duration,
    /// Addresses, ports or request refused before anything starts.
    #[error(transparent)]
    Invalid(#[from] flood::FloodError),
}

impl TryFrom<FloodArgs> for FloodConfig {
    type Error = FloodArgsError;

    fn try_from(a: FloodArgs) -> Result<FloodConfig, FloodArgsError> {
        let duration = Duration::try_from_secs_f64(a.duration).map_err(|_| FloodArgsError::Duration)?;
        Ok(FloodConfig {
            mode: match a.mode {
                FloodModeArg::Syn => Mode::Syn,
                FloodModeArg::Handshake => Mode::Handshake,
                FloodModeArg::Mixed => Mode::Mixed,
            },
            dst: a.dst,
            src_text: a.src.unwrap_or_else(|| default_src(a.dst).to_string()),
            sports: a.sport,
            rate: a.rate.filter(|&r| r > 0),
            count: a.count,
            duration,
            concurrency: a.concurrency,
            request: a.request.as_deref().map(unescape).unwrap_or_default(),
            timeout: Duration::from_millis(a.timeout_ms.max(1)),
            syn_retries: a.syn_retries,
            hgrm_dir: a.hgrm_dir,
            json: a.json,
            dst_mac: a.dst_mac,
            port: a.port,
            idle_sleep: Duration::from_micros(a.idle_sleep_us),
            eal_args: eal_argv(a.eal),
        })
    }
}

/// `dlisten flood`: run the generator, print the summary, tables and .hgrm files.
pub(super) fn run(a: FloodArgs) -> Result<(), CliError> {
    let cfg = FloodConfig::try_from(a)?;
    flood::validate(&cfg).map_err(FloodArgsError::Invalid)?;
    let hgrm_dir = cfg.hgrm_dir.clone();
    let json = cfg.json.clone();
    let summary = flood::run(cfg)?;
    print!("{}", summary.format());
    println!("latency (microseconds):");
    print!("{}", summary.latency_table());
    if let Some(dir) = &hgrm_dir {
        write_hgrms(&summary, dir);
    }
    if let Some(path) = &json {
        // Like the histograms, extra: the run itself succeeded.
        match std::fs::write(path, summary.to_json().to_string() + "\n") {
            Ok(()) => println!("flood: wrote {}", path.display()),
            Err(e) => eprintln!("dlisten: {}: {e}", path.display()),
        }
    }
    Ok(())
}

/// The histograms are extra: failing to write them does not fail the run.
fn write_hgrms(summary: &flood::report::Summary, dir: &Path) {
    match summary.write_hgrms(dir) {
        Ok(paths) => paths.iter().for_each(|p| println!("flood: wrote {}", p.display())),
        Err(e) => eprintln!("dlisten: {}: {e}", dir.display()),
    }
}

/// `--src` when none is given: a prefix of `--dst`'s family.
fn default_src(dst: SocketAddr) -> &'static str {
    match dst {
        SocketAddr::V4(_) => Ipv4Addr::DEFAULT_SRC,
        SocketAddr::V6(_) => Ipv6Addr::DEFAULT_SRC,
    }
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    let bytes: Vec<u8> = s.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<Result<_, _>>().map_err(|e| format!("{s}: {e}"))?;
    let arr: [u8; 6] = bytes.try_into().map_err(|_| format!("{s}: expected six hex bytes aa:bb:cc:dd:ee:ff"))?;
    Ok(EthernetAddress(arr))
}

fn parse_flood_ports(s: &str) -> Result<(u16, u16), String> {
    flood::addr::parse_port_range(s).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn flood_args(argv: &[&str]) -> Result<FloodArgs, clap::Error> {
        let cli = Cli::try_parse_from(["dlisten", "flood", "--dst", "198.18.0.1:80"].iter().chain(argv))?;
        let Command::Flood(a) = cli.command else { panic!("not flood") };
        Ok(*a)
    }

    #[test]
    fn defaults_and_flags_reach_the_config() {
        let cfg = FloodConfig::try_from(flood_args(&["--", "--no-huge"]).unwrap()).unwrap();
        assert_eq!(cfg.mode, Mode::Syn);
        assert_eq!((cfg.src_text.as_str(), cfg.sports), ("198.18.1.0/24", (1024, 65535)));
        assert_eq!((cfg.rate, cfg.count, cfg.duration), (None, None, Duration::from_secs(10)));
        assert_eq!(cfg.timeout, Duration::from_secs(1));
        assert_eq!(cfg.syn_retries, 6);
        assert_eq!(cfg.eal_args, ["dlisten", "--no-huge"]);
        assert!(cfg.request.is_empty());

        let a = flood_args(&[
            "--mode", "mixed", "--rate", "0", "--timeout-ms", "0", "--request", r"GET / HTTP/1.0\r\n\r\n",
            "--dst-mac", "02:00:00:00:00:01", "--sport", "2000", "--duration", "0.5", "--syn-retries", "2",
        ]);
        let cfg = FloodConfig::try_from(a.unwrap()).unwrap();
        assert_eq!(cfg.mode, Mode::Mixed);
        assert_eq!(cfg.rate, None, "--rate 0 is unlimited");
        assert_eq!(cfg.timeout, Duration::from_millis(1));
        assert_eq!(cfg.request, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(cfg.dst_mac, Some(EthernetAddress([2, 0, 0, 0, 0, 1])));
        assert_eq!(cfg.sports, (2000, 2000));
        assert_eq!(cfg.duration, Duration::from_millis(500));
        assert_eq!(cfg.syn_retries, 2);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(flood_args(&["--dst-mac", "02:00:00:00:00"]).is_err());
        assert!(flood_args(&["--dst-mac", "zz:00:00:00:00:01"]).is_err());
        assert!(flood_args(&["--sport", "0-10"]).is_err());
        assert!(flood_args(&["--mode", "udp"]).is_err());
        assert!(flood_args(&["--syn-retries", "128"]).is_err(), "Linux's MAX_TCP_SYNCNT is 127");
        let negative = flood_args(&["--duration=-1"]).unwrap();
        assert!(matches!(FloodConfig::try_from(negative), Err(FloodArgsError::Duration)));
        assert!(Cli::try_parse_from(["dlisten", "flood"]).is_err(), "--dst is required");
    }

    fn flood_args_to(dst: &str, argv: &[&str]) -> Result<FloodConfig, String> {
        let cli = Cli::try_parse_from(["dlisten", "flood", "--dst", dst].iter().chain(argv)).map_err(|e| e.to_string())?;
        let Command::Flood(a) = cli.command else { panic!("not flood") };
        let cfg = FloodConfig::try_from(*a).map_err(|e| e.to_string())?;
        flood::validate(&cfg).map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn an_ipv6_dst_makes_an_ipv6_flood_with_its_own_default_source() {
        let cfg = flood_args_to("[2001:2::1]:80", &[]).unwrap();
        assert_eq!(cfg.dst, "[2001:2::1]:80".parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(cfg.src_text, "2001:2:0:1::/120");
        let cfg = flood_args_to("[2001:2::1]:8080", &["--src", "2001:2:0:1::/64", "--mode", "handshake"]).unwrap();
        assert_eq!((cfg.src_text.as_str(), cfg.dst.port(), cfg.mode), ("2001:2:0:1::/64", 8080, Mode::Handshake));
        assert_eq!(flood_args_to("[2001:2::1]:80", &["--src", "2001:2:0:1::7"]).unwrap().src_text, "2001:2:0:1::7");
        assert_eq!(flood_args_to("198.18.0.1:80", &[]).unwrap().src_text, "198.18.1.0/24");
        assert!(flood_args_to("2001:2::1:80", &[]).is_err(), "an IPv6 --dst needs its brackets");
    }

    #[test]
    fn addresses_outside_the_benchmarking_ranges_are_refused() {
        for (dst, src, says) in [
            ("[2001:db8::1]:80", None, "[2001:db8::1]:80 is outside 2001:2::/48"),
            ("[::1]:80", None, "outside 2001:2::/48"),
            ("[2001:2::1]:80", Some("2001:db8::/64"), "2001:db8::/64 is outside 2001:2::/48"),
            ("[2001:2::1]:80", Some("2001:2::/47"), "2001:2::/47 is outside 2001:2::/48"),
            ("[2001:2::1]:80", Some("2001:2::/120"), "--dst 2001:2::1 lies inside --src 2001:2::/120"),
            ("[2001:2::1]:80", Some("198.18.1.0/24"), "--src 198.18.1.0/24 and --dst [2001:2::1]:80 are of different address families"),
            ("198.18.0.1:80", Some("2001:2:0:1::/64"), "are of different address families"),
            ("192.0.2.1:80", None, "192.0.2.1:80 is outside 198.18.0.0/15"),
            ("198.18.0.1:80", Some("10.0.0.0/8"), "10.0.0.0/8 is outside 198.18.0.0/15"),
            ("[2001:2::1]:80", Some("2001:2::zz/64"), "not an address prefix"),
        ] {
            let argv: Vec<&str> = src.map(|s| vec!["--src", s]).unwrap_or_default();
            let e = flood_args_to(dst, &argv).expect_err(dst);
            assert!(e.contains(says), "{dst} from {src:?}: {e:?} does not say {says:?}");
        }
        let e = FloodArgsError::Invalid(flood::FloodError::Addr(flood::addr::AddrError::OutsideBenchRange6("x".into())));
        assert_eq!(crate::cli::CliError::from(e).exit_code(), crate::cli::EXIT_USAGE, "bad input: status 2");
    }

    #[test]
    fn unescape_knows_four_escapes_and_keeps_the_rest() {
        assert_eq!(unescape(r"a\r\n\tb\\"), b"a\r\n\tb\\");
        assert_eq!(unescape(r"\x"), br"\x");
        assert_eq!(unescape("end\\"), b"end\\");
        assert_eq!(unescape("é"), "é".as_bytes());
    }
}
