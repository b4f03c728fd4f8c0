//! The `dlisten` command line; see [`dlisten::cli`].

use clap::Parser;
use dlisten::cli::{usage_error, Cli, EXIT_USAGE};
use std::process::ExitCode;

/// Errors are one line on stderr after `dlisten: `; exit status 2 for bad
/// input (the command line, `--config`), 1 for a failure while running.
fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        // --help and --version: clap's own text and status.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let argv: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
            eprintln!("dlisten: {}", usage_error(&e, &argv));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlisten: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
