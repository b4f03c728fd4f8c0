//! What the main thread does while the workers serve: rotate the SYN cookie
//! key and print the periodic stats line, each on its own interval.

use super::stats::ServeStats;
use super::ServeConfig;
use crate::engine::keys::Secrets;
use crate::telemetry::control::{format_stats, StatsSnapshot, StatsSource};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the main thread looks at the stop flag and the intervals below.
pub(super) const TICK: Duration = Duration::from_millis(50);

pub(super) struct Periodic {
    rotate_every: Option<Duration>,
    /// An operator-set key (at start, or live): servers sharing it must keep it.
    operator_key: Arc<AtomicBool>,
    last_rotation: Instant,
    stats_every: Option<Duration>,
    last_stats: Instant,
    /// The last periodic snapshot, for rates over the interval.
    previous: Option<StatsSnapshot>,
}

impl Periodic {
    pub fn new(cfg: &ServeConfig, operator_key: Arc<AtomicBool>) -> Periodic {
        Periodic {
            rotate_every: cfg.syncookie_rotate,
            operator_key,
            last_rotation: Instant::now(),
            stats_every: cfg.stats_interval,
            last_stats: Instant::now(),
            previous: None,
        }
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
