//! The client side of the control socket: connecting with errors named for
//! an operator, and one command's whole answer (`dlisten stats`, `set`,
//! `capture`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// How long a client waits for the server's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What `dlisten stats` can run into.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("no dlisten running with control socket {} (is serve running? pass --socket)", .0.display())]
    NotRunning(PathBuf),
    #[error("permission denied on control socket {} (it is 0600: run as the user serve runs as, usually root)", .0.display())]
    PermissionDenied(PathBuf),
    #[error("control socket {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("control socket {}: {message}", .path.display())]
    Server { path: PathBuf, message: String },
}

/// Connect to the server at `path`, with its errors named for an operator.
pub fn connect(path: &Path) -> Result<UnixStream, ControlError> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ControlError::NotRunning(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied(path.to_path_buf()),
        _ => ControlError::Io { path: path.to_path_buf(), source: e },
    })
}

/// Send `command` to the server at `path` and return its whole answer.
pub fn query(path: &Path, command: &str) -> Result<String, ControlError> {
    let io_err = |source: io::Error| ControlError::Io { path: path.to_path_buf(), source };
    let mut stream = connect(path)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io_err)?;
    stream.write_all(format!("{command}\n").as_bytes()).map_err(io_err)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io_err)?;
    if let Some(message) = answer.strip_prefix("error: ") {
        return Err(ControlError::Server { path: path.to_path_buf(), message: message.trim_end().to_string() });
    }
    Ok(answer)
}
