//! `dlisten stats`: ask a running serve over its control socket.

use super::DEFAULT_NAME;
use crate::telemetry::control::{self, ControlError};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Args)]
pub struct StatsArgs {
    /// The control socket (default: /run/dlisten/<NAME>.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "name")]
    socket: Option<PathBuf>,
    /// The server's name: EAL's --file-prefix, or `dlisten`.
    #[arg(long, default_value = DEFAULT_NAME)]
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

#[derive(Debug, Error)]
pub enum StatsError {
    #[error("--watch needs a positive number of seconds")]
    Watch,
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// `--watch SECS` as an interval (None: ask once).
fn watch_interval(watch: Option<f64>) -> Result<Option<Duration>, StatsError> {
    match watch.map(Duration::try_from_secs_f64) {
        None => Ok(None),
        Some(Ok(d)) if !d.is_zero() => Ok(Some(d)),
        Some(_) => Err(StatsError::Watch),
    }
}

/// Query the control socket, once or every --watch seconds.
pub(super) fn run(a: StatsArgs) -> Result<(), StatsError> {
    let path = a.socket.unwrap_or_else(|| control::default_socket_path(&a.name));
    let command = if a.json { "json" } else { "stats" };
    let every = watch_interval(a.watch)?;
    let mut answered = 0u64;
    loop {
        print!("{}", control::query(&path, command)?);
        answered += 1;
        let Some(every) = every else { return Ok(()) };
        if a.count.is_some_and(|n| answered >= n) {
            return Ok(());
        }
        std::thread::sleep(every);
        if !a.json {
            println!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn watch_must_be_positive() {
        assert_eq!(watch_interval(None).unwrap(), None);
        assert_eq!(watch_interval(Some(0.5)).unwrap(), Some(Duration::from_millis(500)));
        assert!(matches!(watch_interval(Some(0.0)), Err(StatsError::Watch)));
        assert!(matches!(watch_interval(Some(-1.0)), Err(StatsError::Watch)));
        assert!(matches!(watch_interval(Some(f64::NAN)), Err(StatsError::Watch)));
    }

    #[test]
    fn flags_parse_and_conflict() {
        let cli = Cli::try_parse_from(["dlisten", "stats"]).unwrap();
        let Command::Stats(a) = cli.command else { panic!("not stats") };
        assert_eq!((a.name.as_str(), a.socket, a.json), (DEFAULT_NAME, None, false));
        assert!(Cli::try_parse_from(["dlisten", "stats", "--socket", "/x", "--name", "y"]).is_err());
        assert!(Cli::try_parse_from(["dlisten", "stats", "--count", "2"]).is_err(), "--count needs --watch");
        assert!(Cli::try_parse_from(["dlisten", "stats", "--watch", "x"]).is_err());
    }
}
