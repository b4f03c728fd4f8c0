//! One module per subcommand, each turning its flags into the library's
//! configuration for it; `Cli::run` runs it.

mod config_file;
mod flood;
mod serve;
mod stats;

pub use config_file::ConfigFileError;
pub use flood::{FloodArgs, FloodArgsError};
pub use serve::{ServeArgs, ServeArgsError};
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
    FloodArgs(#[from] FloodArgsError),
    #[error(transparent)]
    Flood(#[from] FloodError),
}

impl Cli {
    /// Run the chosen subcommand to its end.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Serve(a) => {
                let check = a.check_only();
                let cfg = ServeConfig::try_from(*a)?;
                if check {
                    println!("dlisten: configuration ok");
                    return Ok(());
                }
                Ok(crate::serve::run(cfg)?)
            }
            Command::Stats(a) => Ok(stats::run(a)?),
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

    #[test]
    fn a_subcommand_is_required() {
        assert!(Cli::try_parse_from(["dlisten"]).is_err());
        assert!(Cli::try_parse_from(["dlisten", "listen"]).is_err());
    }
}
