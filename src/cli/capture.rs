//! `dlisten capture`: ask a running serve to copy frames into a pcapng file.

use super::DEFAULT_NAME;
use crate::telemetry::capture::{self, CaptureFilter, CaptureRequest, Direction};
use crate::telemetry::control::{self, ControlError};
use clap::Args;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Args)]
pub struct CaptureArgs {
    /// The server's control socket (default: /run/dlisten/<NAME>.sock).
    #[arg(long, visible_alias = "socket", value_name = "PATH", conflicts_with = "name")]
    control_socket: Option<PathBuf>,
    /// The server's name: EAL's --file-prefix, or `dlisten`.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// Only frames to or from this IPv4 address (ARP: sender or target).
    #[arg(long, value_name = "ADDR")]
    host: Option<Ipv4Addr>,
    /// Only TCP or UDP frames with this source or destination port.
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Received frames (rx), transmitted ones (tx), or both.
    #[arg(long, default_value = "both", value_parser = parse_direction)]
    direction: Direction,
    /// Stop after N frames.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=capture::MAX_COUNT))]
    count: u64,
    /// Stop after SECS seconds (at most 3600).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    duration: f64,
    /// Bytes kept of each frame.
    #[arg(long, value_name = "BYTES", default_value_t = capture::MAX_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(capture::MAX_SNAPLEN)))]
    snaplen: u32,
    /// The pcapng file to write (`-`: standard output, e.g. into `tcpdump -r -`).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: PathBuf,
}

fn parse_direction(s: &str) -> Result<Direction, String> {
    s.parse()
}

#[derive(Debug, Error)]
pub enum CaptureArgsError {
    #[error("--duration {0}: expected seconds in (0, 3600]")]
    Duration(f64),
    #[error("-w {}: {source}", .path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("cannot install the SIGINT/SIGTERM handler: {0}")]
    Signal(std::io::Error),
}

#[derive(Debug, Error)]
pub enum CaptureFailed {
    #[error(transparent)]
    Args(#[from] CaptureArgsError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl CaptureArgs {
    fn request(&self) -> Result<CaptureRequest, CaptureArgsError> {
        let duration = Duration::try_from_secs_f64(self.duration)
            .ok()
            .filter(|d| !d.is_zero() && *d <= capture::MAX_DURATION)
            .ok_or(CaptureArgsError::Duration(self.duration))?;
        Ok(CaptureRequest {
            filter: CaptureFilter { host: self.host, port: self.port },
            direction: self.direction,
            count: self.count,
            duration,
            snaplen: self.snaplen,
        })
    }
}

/// Capture until the count, the duration, or SIGINT; say what was written.
pub(super) fn run(a: CaptureArgs) -> Result<(), CaptureFailed> {
    let req = a.request()?;
    let path = a.control_socket.clone().unwrap_or_else(|| control::default_socket_path(&a.name));
    let out: Box<dyn std::io::Write + Send> = if a.write.as_os_str() == "-" {
        Box::new(std::io::stdout())
    } else {
        let file = std::fs::File::create(&a.write).map_err(|source| CaptureArgsError::File { path: a.write.clone(), source })?;
        Box::new(std::io::BufWriter::new(file))
    };
    // Ctrl-C ends the capture early and still gets a complete file.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(CaptureArgsError::Signal)?;
    }
    let snaplen = req.snaplen;
    let mut started = |iface: &str| {
        eprintln!("dlisten: capturing on {iface}, link-type EN10MB (Ethernet), snapshot length {snaplen} bytes");
    };
    let s = capture::capture(&path, &req, out, &stop, &mut started)?;
    // On stderr, as tcpdump does: stdout may be the capture itself.
    eprintln!(
        "dlisten: {} frames captured (rx {}, tx {}) to {}; {} dropped (capture ring full); stopped by {}",
        s.frames,
        s.rx,
        s.tx,
        a.write.display(),
        s.dropped,
        s.stopped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<CaptureArgs, clap::Error> {
        Cli::try_parse_from(argv).map(|c| match c.command {
            Command::Capture(a) => a,
            _ => panic!("not capture"),
        })
    }

    #[test]
    fn flags_become_a_request() {
        let a = parse(&["dlisten", "capture", "-w", "x.pcapng"]).unwrap();
        assert_eq!(a.request().unwrap(), CaptureRequest::default());
        let a = parse(&[
            "dlisten", "capture", "--control-socket", "/tmp/s", "--host", "198.18.0.1", "--port", "80",
            "--direction", "tx", "--count", "5", "--duration", "1.5", "--snaplen", "96", "-w", "-",
        ])
        .unwrap();
        assert_eq!(a.control_socket, Some(PathBuf::from("/tmp/s")));
        let r = a.request().unwrap();
        assert_eq!(r.filter, CaptureFilter { host: Some(Ipv4Addr::new(198, 18, 0, 1)), port: Some(80) });
        assert_eq!((r.direction, r.count, r.duration, r.snaplen), (Direction::Tx, 5, Duration::from_millis(1500), 96));
        assert!(r.check().is_ok());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["dlisten", "capture"]).is_err(), "-w is required");
        assert!(parse(&["dlisten", "capture", "-w", "f", "--count", "0"]).is_err());
        assert!(parse(&["dlisten", "capture", "-w", "f", "--direction", "up"]).is_err());
        assert!(parse(&["dlisten", "capture", "-w", "f", "--host", "::1"]).is_err());
        assert!(parse(&["dlisten", "capture", "-w", "f", "--snaplen", "0"]).is_err());
        assert!(parse(&["dlisten", "capture", "-w", "f", "--socket", "/s", "--name", "n"]).is_err());
        for d in ["0", "-1", "3601", "NaN"] {
            let a = parse(&["dlisten", "capture", "-w", "f", &format!("--duration={d}")]).unwrap();
            assert!(matches!(a.request(), Err(CaptureArgsError::Duration(_))), "{d}");
        }
    }
}
