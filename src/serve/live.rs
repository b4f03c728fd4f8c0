//! Changing a running server's settings without dropping a packet: SIGHUP
//! re-reads the `--config` file, `dlisten set KEY VALUE` changes one key.
//! What the workers read lands between their bursts: the sysctls through
//! the stack's generation number, the keys through their command queues,
//! the http app's settings through [`LiveApp`]'s generation. Listener
//! backlogs change as `listen()` on a listening socket changes them.
//! The rest (addresses, ports, workers, cores, the port, ...) is fixed at
//! start and refused by name.

use super::ServeConfig;
use crate::app::LiveApp;
use crate::engine::socket::{Fd, Stack};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The `serve` flags (and `--config` keys) a running server can change.
pub const LIVE_KEYS: &[&str] = &[
    "somaxconn",
    "max-syn-backlog",
    "syncookies",
    "synack-retries",
    "abort-on-overflow",
    "fastopen",
    "local-port-range",
    "migrate-req",
    "retries2",
    "timestamps",
    "backlog",
    "syncookie-key",
    "tfo-key",
    "http-body",
];

/// Keys whose values are secrets: changes to them are reported, not shown.
const SECRET_KEYS: &[&str] = &["syncookie-key", "tfo-key"];

/// One key that changed, as its flag spells the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub from: String,
    pub to: String,
}

/// A configuration made anew, and what differs from the running one.
#[derive(Clone, Debug)]
pub struct Reconfigured {
    pub config: ServeConfig,
    /// Only [`LIVE_KEYS`]: a maker refuses anything else.
    pub changed: Vec<Change>,
}

/// Makes the configuration anew, as the command line did at start: the
/// CLI implements it (it knows the flags and the `--config` file). Each
/// call that succeeds becomes the running configuration.
pub trait Reconfigure: Send {
    /// SIGHUP: the `--config` file read again, the command line over it.
    fn reload(&mut self) -> Result<Reconfigured, String>;
    /// `dlisten set KEY VALUE`: one key, over everything else.
    fn set(&mut self, key: &str, value: &str) -> Result<Reconfigured, String>;
}

/// What a live change touches, shared by the main thread (SIGHUP) and the
/// control socket's threads (`set`).
pub(super) struct Live {
    maker: Mutex<Box<dyn Reconfigure>>,
    stack: Arc<Stack>,
    /// Every listening socket (their backlogs).
    fds: Vec<Fd>,
    app: Arc<LiveApp>,
    /// Set once the operator gives a SYN cookie key: no more random rotation.
    pub operator_cookie_key: Arc<AtomicBool>,
}

impl Live {
    pub fn new(
        maker: Box<dyn Reconfigure>,
        stack: Arc<Stack>,
        fds: Vec<Fd>,
        app: Arc<LiveApp>,
        operator_cookie_key: Arc<AtomicBool>,
    ) -> Live {
        Live { maker: Mutex::new(maker), stack, fds, app, operator_cookie_key }
    }

    /// SIGHUP. The answer is one line: what changed, or why nothing did.
    pub fn reload(&self) -> Result<String, String> {
        let mut maker = crate::sync::lock(&self.maker);
        let r = maker.reload()?;
        Ok(self.apply(&r))
    }

    pub fn set(&self, key: &str, value: &str) -> Result<String, String> {
        let mut maker = crate::sync::lock(&self.maker);
        let r = maker.set(key, value)?;
        Ok(self.apply(&r))
    }

    /// Hand each changed key to whatever reads it.
    fn apply(&self, r: &Reconfigured) -> String {
        let cfg = &r.config;
        let changed = |k: &str| r.changed.iter().any(|c| c.key == k);
        // Sysctls first: a new backlog is clamped to the new somaxconn.
        if *self.stack.sysctls() != cfg.sysctls {
            self.stack.set_sysctls(cfg.sysctls);
        }
        if changed("backlog") {
            if let Some(l) = cfg.listens.first() {
                for &fd in &self.fds {
                    // listen() on a listening socket only adjusts its backlog.
                    let _ = self.stack.listen(fd, l.backlog);
                }
            }
        }
        if changed("syncookie-key") {
            if let Some(k) = cfg.syncookie_key {
                self.operator_cookie_key.store(true, Ordering::Relaxed);
                self.stack.rotate_syncookie_key(k);
            }
        }
        if changed("tfo-key") {
            if let Some(k) = cfg.tfo_key {
                self.stack.set_tfo_keys(k);
            }
        }
        if changed("http-body") {
            self.app.set(cfg.app.clone());
        }
        describe(&r.changed)
    }
}

/// `somaxconn 4096 -> 1024, tfo-key changed`, or `nothing changed`.
pub fn describe(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "nothing changed".to_string();
    }
    let parts: Vec<String> = changes
        .iter()
        .map(|c| {
            if SECRET_KEYS.contains(&c.key.as_str()) {
                format!("{} changed", c.key)
            } else {
                format!("{} {:?} -> {:?}", c.key, c.from, c.to)
            }
        })
        .collect();
    format!("changed {}", parts.join(", "))
}
