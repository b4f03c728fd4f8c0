//! What the main thread does while the workers serve: rotate the SYN cookie
//! key (or read a fleet's key file again when it changes) and print the
//! periodic stats line, each on its own interval.

use super::stats::ServeStats;
use super::{read_key_file, ServeConfig};
use crate::engine::keys::{FleetKeys, Secrets};
use super::telemetry::{TelemetryView, REFRESH};
use std::path::PathBuf;
use std::sync::Arc;
use crate::telemetry::control::{format_stats, StatsSnapshot, StatsSource};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the main thread looks at the stop flag and the intervals below.
pub(super) const TICK: Duration = Duration::from_millis(50);

/// How often the key file is read for changes (a few hundred bytes).
const KEY_FILE_CHECK: Duration = Duration::from_secs(1);

pub(super) struct Periodic {
    rotate_every: Option<Duration>,
    /// An operator-set key (at start, or live): servers sharing it must keep it.
    operator_key: Arc<AtomicBool>,
    last_rotation: Instant,
    /// `--key-file` and the keys last read from it.
    key_file: Option<(PathBuf, FleetKeys)>,
    last_key_check: Instant,
    /// The key file failed to read or parse at the last check.
    key_file_bad: bool,
    stats_every: Option<Duration>,
    last_stats: Instant,
    /// What DPDK's telemetry commands answer from, and when it was last published.
    telemetry: Option<(Arc<TelemetryView>, Instant)>,
    /// The last periodic snapshot, for rates over the interval.
    previous: Option<StatsSnapshot>,
}

impl Periodic {
    pub fn new(cfg: &ServeConfig, operator_key: Arc<AtomicBool>) -> Periodic {
        Periodic {
            // A fleet's key file names the keys: no random rotation.
            rotate_every: if cfg.key_file.is_some() { None } else { cfg.syncookie_rotate },
            operator_key,
            last_rotation: Instant::now(),
            key_file: cfg.key_file.clone(),
            last_key_check: Instant::now(),
            key_file_bad: false,
            stats_every: cfg.stats_interval,
            last_stats: Instant::now(),
            previous: None,
            telemetry: None,
        }
    }

    /// Publish a snapshot for the telemetry commands now and every [`REFRESH`].
    pub fn with_telemetry(mut self, view: Arc<TelemetryView>, stats: &ServeStats) -> Periodic {
        view.publish(stats.snapshot());
        self.telemetry = Some((view, Instant::now()));
        self
    }

    pub fn tick(&mut self, stats: &ServeStats) {
        if let Some(every) = self.rotate_every.filter(|_| !self.operator_key.load(Ordering::Relaxed)) {
            if self.last_rotation.elapsed() >= every {
                self.last_rotation = Instant::now();
                match Secrets::random() {
                    Ok(fresh) => stats.stack.rotate_syncookie_key(fresh.syncookie.current()),
                    Err(e) => eprintln!("dlisten: syncookie key rotation skipped: {e}"),
                }
            }
        }
        if self.key_file.is_some() && self.last_key_check.elapsed() >= KEY_FILE_CHECK {
            self.last_key_check = Instant::now();
            self.reload_keys(stats);
        }
        if let Some((view, last)) = &mut self.telemetry {
            if last.elapsed() >= REFRESH {
                *last = Instant::now();
                view.publish(stats.snapshot());
            }
        }
        if let Some(every) = self.stats_every {
            if self.last_stats.elapsed() >= every {
                self.last_stats = Instant::now();
                let snap = stats.snapshot();
                print!("{}", format_stats(&snap, self.previous.as_ref()));
                self.previous = Some(snap);
            }
        }
    }
}

impl Periodic {
    /// New keys in the key file go to every worker; a file that does not
    /// read or parse leaves the keys in use (the next good version is taken).
    fn reload_keys(&mut self, stats: &ServeStats) {
        let Some((path, keys)) = &mut self.key_file else { return };
        match read_key_file(path) {
            Ok(new) if new == *keys => {}
            Ok(new) => {
                *keys = new;
                stats.stack.set_fleet_keys(new);
                println!("dlisten: keys from {} taken", path.display());
            }
            Err(e) => {
                // Said once until the file reads again, not every second.
                if !self.key_file_bad {
                    eprintln!("dlisten: {e}; keeping the keys in use");
                }
                self.key_file_bad = true;
                return;
            }
        }
        self.key_file_bad = false;
    }
}
