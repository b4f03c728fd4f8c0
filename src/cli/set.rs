//! `dlisten set KEY VALUE`: change one setting of a running serve.

use super::DEFAULT_NAME;
use crate::telemetry::control::{self, ControlError};
use clap::Args;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Args)]
pub struct SetArgs {
    /// The server's control socket (default: /run/dlisten/<NAME>.sock).
    #[arg(long, visible_alias = "socket", value_name = "PATH", conflicts_with = "name")]
    control_socket: Option<PathBuf>,
    /// The server's name: EAL's --file-prefix, or `dlisten`.
    #[arg(long, default_value = DEFAULT_NAME)]
    name: String,
    /// A `dlisten serve` flag without its dashes: somaxconn, max-syn-backlog,
    /// syncookies, synack-retries, abort-on-overflow, fastopen,
    /// local-port-range, migrate-req, retries2, timestamps, backlog,
    /// syncookie-key, tfo-key, http-body.
    key: String,
    /// Its new value, as the flag takes it.
    #[arg(allow_hyphen_values = true)]
    value: String,
}

#[derive(Debug, Error)]
pub enum SetError {
    /// The server would not take the key or its value (exit status 2).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Control(ControlError),
}

pub(super) fn run(a: SetArgs) -> Result<(), SetError> {
    let path = a.control_socket.unwrap_or_else(|| control::default_socket_path(&a.name));
    match control::query(&path, &control::set_command(&a.key, &a.value)) {
        Ok(answer) => {
            println!("dlisten: {}", answer.trim_end());
            Ok(())
        }
        Err(ControlError::Server { message, .. }) => Err(SetError::Refused(message)),
        Err(e) => Err(SetError::Control(e)),
    }
}
