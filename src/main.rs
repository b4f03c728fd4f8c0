//! The `dlisten` command line; see [`dlisten::cli`].

use clap::Parser;
use dlisten::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlisten: {e}");
            ExitCode::FAILURE
        }
    }
}
