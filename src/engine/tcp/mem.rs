//! The worker's connection buffer memory, accounted by use as Linux's
//! `tcp_mem` does (`tcp_memory_allocated`, `__sk_mem_raise_allocated`):
//! a connection is charged for the ring bytes it holds now, not for the
//! buffer sizes it may grow to, so idle connections cost no buffer memory
//! and the limit is reached only when data really piles up.
//!
//! Three thresholds, as `net.ipv4.tcp_mem` (in bytes here, not pages):
//! - above `pressure` the worker is under memory pressure until it falls
//!   below `min` again; meanwhile receive windows shrink to a few segments;
//! - `max` is the hard limit: rings grow no further (a connection with
//!   empty queues may still take one small ring, so it can make progress),
//!   and new connections are refused (DlConnMemRefused, and a log line).

use crate::engine::tcb::ring::MIN_RING;
use crate::engine::time::{Duration, Instant};
use std::fmt;

/// At most one memory warning per this long (Linux uses `net_ratelimit`
/// for "TCP: out of memory -- consider tuning tcp_mem").
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// `net.ipv4.tcp_mem` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpMemLimits {
    /// Below this, memory pressure ends.
    pub min: u64,
    /// Above this, memory pressure begins.
    pub pressure: u64,
    /// The hard limit of bytes in use.
    pub max: u64,
}

impl TcpMemLimits {
    /// Limits from the hard limit, in Linux's proportions (`tcp_init_mem`:
    /// min = 3/4, pressure = 1, max = 3/2 of one unit).
    pub fn from_max(max: u64) -> TcpMemLimits {
        TcpMemLimits { min: max / 2, pressure: max / 3 * 2, max }
    }
}

/// The memory warning a worker logs (rate-limited) when it refused
/// connections for lack of buffer memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemWarning {
    /// Connections refused since the previous warning.
    pub refused: u64,
    pub allocated: u64,
    pub max: u64,
}

impl fmt::Display for MemWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of connection buffer memory: {} of {} KiB in use, {} connection(s) refused (DlConnMemRefused); consider a larger --conn-mem-mb",
            self.allocated >> 10,
            self.max >> 10,
            self.refused
        )
    }
}

/// One worker's buffer memory in use.
#[derive(Debug)]
pub struct TcpMem {
    limits: TcpMemLimits,
    allocated: u64,
    pressure: bool,
    /// Refusals not yet reported in a warning.
    unreported: u64,
    last_warning: Option<Instant>,
}

impl TcpMem {
    pub fn new(limits: TcpMemLimits) -> TcpMem {
        TcpMem { limits, allocated: 0, pressure: false, unreported: 0, last_warning: None }
    }

    pub fn limits(&self) -> TcpMemLimits {
        self.limits
    }

    /// Bytes held by this worker's connections now.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Linux `tcp_under_memory_pressure`.
    pub fn under_pressure(&self) -> bool {
        self.pressure
    }

    /// What one connection may still allocate before the hard limit.
    pub fn room(&self) -> u32 {
        self.limits.max.saturating_sub(self.allocated).min(u64::from(u32::MAX)) as u32
    }

    /// A connection went from holding `before` bytes to `after`.
    pub fn charge(&mut self, before: u32, after: u32) {
        self.allocated = (self.allocated + u64::from(after)).saturating_sub(u64::from(before));
        // Linux: __sk_mem_raise_allocated enters pressure above tcp_mem[1];
        // __sk_mem_reduce_allocated leaves it below tcp_mem[0].
        if self.allocated > self.limits.pressure {
            self.pressure = true;
        } else if self.allocated < self.limits.min {
            self.pressure = false;
        }
    }

    /// Room for one more connection: its first ring fits under the limit.
    pub fn admits_new(&self) -> bool {
        self.allocated + MIN_RING as u64 <= self.limits.max
    }

    /// Remember a refused connection for the next warning.
    pub fn refused(&mut self) {
        self.unreported += 1;
    }

    /// A warning when connections were refused and none was given for a while.
    pub fn take_warning(&mut self, now: Instant) -> Option<MemWarning> {
        if self.unreported == 0 {
            return None;
        }
        if self.last_warning.is_some_and(|t| now.saturating_since(t) < WARN_INTERVAL) {
            return None;
        }
        self.last_warning = Some(now);
        let refused = std::mem::take(&mut self.unreported);
        Some(MemWarning { refused, allocated: self.allocated, max: self.limits.max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_has_hysteresis_and_max_is_the_hard_limit() {
        let mut m = TcpMem::new(TcpMemLimits { min: 1000, pressure: 2000, max: 3000 });
        m.charge(0, 2000);
        assert!(!m.under_pressure(), "at the pressure mark, not above it");
        m.charge(0, 1);
        assert!(m.under_pressure());
        m.charge(1000, 0);
        assert!(m.under_pressure(), "still above min");
        m.charge(2, 0);
        assert_eq!(m.allocated(), 999);
        assert!(!m.under_pressure());
        assert_eq!(m.room(), 2001);
        assert!(!m.admits_new(), "999 + one 4 KiB ring > 3000");
        assert!(TcpMem::new(TcpMemLimits::from_max(1 << 20)).admits_new());
        assert_eq!(TcpMemLimits::from_max(3 << 20), TcpMemLimits { min: 3 << 19, pressure: 2 << 20, max: 3 << 20 });
    }

    #[test]
    fn warnings_are_rate_limited_and_count_every_refusal() {
        let mut m = TcpMem::new(TcpMemLimits::from_max(0));
        let t0 = Instant::from_secs(100);
        assert_eq!(m.take_warning(t0), None);
        m.refused();
        assert_eq!(m.take_warning(t0).map(|w| w.refused), Some(1));
        m.refused();
        m.refused();
        assert_eq!(m.take_warning(t0 + Duration::from_secs(9)), None);
        let w = m.take_warning(t0 + Duration::from_secs(10)).expect("after the interval");
        assert_eq!(w.refused, 2);
        assert!(w.to_string().contains("DlConnMemRefused"), "{w}");
    }
}
