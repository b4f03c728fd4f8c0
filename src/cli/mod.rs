//! One module per subcommand, each turning its flags into the library's
//! configuration for it; `Cli::run` runs it.

mod capture;
mod config_file;
mod flood;
mod reload;
mod serve;
mod set;
mod stats;

pub use capture::{CaptureArgs, CaptureArgsError, CaptureFailed};
pub use config_file::ConfigFileError;
pub use flood::{FloodArgs, FloodArgsError};
pub use serve::{ServeArgs, ServeArgsError};
pub use set::{SetArgs, SetError};
pub use stats::{StatsArgs, StatsError};

use crate::flood::FloodError;
use crate::serve::{ServeConfig, ServeError};
use clap::{Parser, Subcommand};
use thiserror::Error;

/// The server's name when EAL's `--file-prefix` does not give one; it names
/// the control socket.
const DEFAULT_NAME: &str = "dlisten";

#[derive(Parser)]
#[command(name = "dlisten", version, about = "A user-space TCP listener on DPDK: Linux's listen path, per core and lock-free")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Own one or more IPv4 addresses on a DPDK port and serve them.
    /// EAL arguments go after `--`, e.g. `-- --no-huge -m 512 --no-pci --vdev net_tap0`.
    Serve(Box<ServeArgs>),
    /// Ask a running serve for its live statistics over its control socket.
    Stats(StatsArgs),
    /// Change one setting of a running serve (`dlisten set somaxconn 1024`);
    /// SIGHUP re-reads its --config file.
    Set(SetArgs),
    /// Copy a running serve's frames (received and sent) into a pcapng file
    /// that tcpdump and tshark read: tcpdump cannot see a DPDK port.
    Capture(CaptureArgs),
    /// SYN flood and handshake load generator on a DPDK port (198.18.0.0/15 only).
    /// EAL arguments go after `--`.
    Flood(Box<FloodArgs>),
}

/// Why a subcommand failed; printed after `dlisten: `.
#[derive(Debug, Error)]
pub enum CliError {
    #[error(transparent)]
    ServeArgs(#[from] ServeArgsError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Stats(#[from] StatsError),
    #[error(transparent)]
    Capture(#[from] CaptureFailed),
    #[error(transparent)]
    Set(#[from] SetError),
    #[error(transparent)]
    FloodArgs(#[from] FloodArgsError),
    #[error(transparent)]
    Flood(#[from] FloodError),
}

/// The exit status of a command line or a `--config` file that does not
/// make a configuration (clap's own, like BSD's EX_USAGE in spirit).
pub const EXIT_USAGE: u8 = 2;
/// The exit status of a subcommand that failed while running.
pub const EXIT_FAILURE: u8 = 1;

impl CliError {
    /// [`EXIT_USAGE`] for bad input, [`EXIT_FAILURE`] for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::ServeArgs(_) | CliError::FloodArgs(_) => EXIT_USAGE,
            CliError::Capture(CaptureFailed::Args(CaptureArgsError::Duration(_))) => EXIT_USAGE,
            // The server refused the key or its value.
            CliError::Set(SetError::Refused(_)) => EXIT_USAGE,
            CliError::Serve(_) | CliError::Stats(_) | CliError::Flood(_) | CliError::Capture(_) | CliError::Set(_) => EXIT_FAILURE,
        }
    }
}

/// A command line (`argv`) clap refused, as one line (no usage block):
/// clap's message, and its suggestion when it has one, else the help to read.
pub fn usage_error<S: AsRef<str>>(e: &clap::Error, argv: &[S]) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let cmd = <Cli as clap::CommandFactory>::command();
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).filter(|n| *n != "help").collect();
        return format!("a subcommand is required: {} (see dlisten --help)", names.join(", "));
    }
    let mut line = config_file::clap_message(e);
    for kind in [ContextKind::SuggestedArg, ContextKind::SuggestedSubcommand, ContextKind::SuggestedValue] {
        let suggestion = match e.get(kind) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) if !v.is_empty() => Some(v.join("' or '")),
            _ => None,
        };
        if let Some(s) = suggestion {
            line.push_str(&format!(" (did you mean '{s}'?)"));
            return line;
        }
    }
    // The subcommand's help when argv names one.
    let sub = argv.iter().skip(1).find_map(|a| cmd.get_subcommands().find(|c| c.get_name() == a.as_ref()));
    let help = match sub {
        Some(c) => format!("dlisten {} --help", c.get_name()),
        None => "dlisten --help".to_string(),
    };
    line.push_str(&format!(" (see {help})"));
    line
}

impl Cli {
    /// Run the chosen subcommand to its end.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Serve(a) => {
                let check = a.check_only();
                // Made before `a` is consumed; its errors are the same as
                // the configuration's, which come first.
                let reloader = reload::Reloader::of(&a);
                let cfg = ServeConfig::try_from(*a)?;
                let reloader = reloader?;
                if check {
                    println!("dlisten: configuration ok");
                    return Ok(());
                }
                Ok(crate::serve::run_reconfigurable(cfg, Some(Box::new(reloader)))?)
            }
            Command::Set(a) => Ok(set::run(a)?),
            Command::Stats(a) => Ok(stats::run(a)?),
            Command::Capture(a) => Ok(capture::run(a)?),
            Command::Flood(a) => flood::run(*a),
        }
    }
}

/// argv for EAL: our name, then what followed `--`.
fn eal_argv(after_dashes: Vec<String>) -> Vec<String> {
    let mut argv = vec!["dlisten".to_string()];
    argv.extend(after_dashes);
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn refused(argv: &[&str]) -> String {
        match Cli::try_parse_from(argv) {
            Ok(_) => panic!("{argv:?} parsed"),
            Err(e) => usage_error(&e, argv),
        }
    }

    #[test]
    fn usage_errors_are_one_line_with_a_suggestion_or_the_help_to_read() {
        let e = refused(&["dlisten", "serve", "--wrokers", "2"]);
        assert_eq!(e, "unexpected argument '--wrokers' found (did you mean '--workers'?)");
        let e = refused(&["dlisten", "serve", "--workers", "0"]);
        assert_eq!(e, "invalid value '0' for '--workers <WORKERS>': 0 is not in 1..=128 (see dlisten serve --help)");
        let e = refused(&["dlisten", "srve"]);
        assert!(e.starts_with("unrecognized subcommand 'srve'") && e.ends_with("(did you mean 'serve'?)"), "{e}");
        let e = refused(&["dlisten", "serve", "--app", "htp"]);
        assert!(e.ends_with("(did you mean 'http'?)"), "{e}");
        for argv in [&["dlisten", "serve", "--listen", "198.18.0.1"][..], &["dlisten"], &["dlisten", "flood", "--rate", "x"]] {
            let e = refused(argv);
            assert!(!e.contains('\n') && !e.is_empty(), "{argv:?}: {e}");
        }
    }

    #[test]
    fn a_subcommand_is_required() {
        assert!(Cli::try_parse_from(["dlisten"]).is_err());
        assert!(Cli::try_parse_from(["dlisten", "listen"]).is_err());
    }
}
