//! Where a worker's cycles go, as VPP's `show runtime` reports its nodes:
//! per stage of the loop, the calls, the packets handled and the TSC
//! cycles spent; and for the whole loop, the cycles spent busy (a poll
//! that found work) and idle (a poll that found none).
//!
//! The figure to tune by is clocks per packet per stage; the one to size a
//! server by is capacity, packets per busy second, which does not depend
//! on whether the load generator kept the worker busy.
//!
//! Like [`super::Counters`], one worker writes (relaxed load + store, no
//! read-modify-write) and readers sum snapshots. The worker reads the TSC
//! once per stage per burst, not per packet, so the accounting costs a few
//! cycles per packet at most.

use crossbeam::utils::CachePadded;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! stages {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// A stage of the worker's loop.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Stage { $( $(#[$doc])* $variant, )* }

        impl Stage {
            /// Every stage, in loop order.
            pub const ALL: &'static [Stage] = &[ $( Stage::$variant, )* ];
            pub const COUNT: usize = Self::ALL.len();

            /// The name `dlisten stats` prints.
            pub const fn name(self) -> &'static str {
                match self { $( Stage::$variant => $name, )* }
            }
        }
    };
}

stages! {
    /// Polling the RX queue and reading the mbufs' metadata.
    Rx => "rx",
    /// Ethernet, ARP, IPv4, ICMP and the TCP header: checks, checksums,
    /// host answers.
    Parse => "parse",
    /// The flow's connection, TIME_WAIT entry, request sock or listener.
    Lookup => "lookup",
    /// What the listen path and the connections do with a segment: request
    /// socks, cookies, TFO, handshakes completed, established data.
    Tcp => "tcp",
    /// Building the SYN-ACKs the listen path decided on.
    Build => "build",
    /// Handing frames to the TX queue.
    Tx => "tx",
    /// Timers, control-plane commands, sysctls, latency hand-off.
    Timers => "timers",
    /// The per-core applications and the application-thread queues.
    Apps => "apps",
}

const PER_STAGE: usize = 3;
const CALLS: usize = 0;
const PACKETS: usize = 1;
const CYCLES: usize = 2;
const BUSY: usize = Stage::COUNT * PER_STAGE;
const IDLE: usize = BUSY + 1;
const CELLS: usize = IDLE + 1;

/// One worker's runtime accounting. Single writer, many readers.
pub struct Runtime {
    cells: CachePadded<[AtomicU64; CELLS]>,
    tsc_hz: u64,
}

impl Runtime {
    /// `tsc_hz`: the TSC's frequency, to turn cycles into seconds.
    pub fn new(tsc_hz: u64) -> Runtime {
        Runtime { cells: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))), tsc_hz }
    }

    #[inline]
    fn add(&self, cell: usize, n: u64) {
        let c = &self.cells[cell];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// A call of `stage` that handled `packets` in `cycles`. Only the owning worker calls this.
    #[inline]
    pub fn stage(&self, stage: Stage, packets: u64, cycles: u64) {
        let base = stage as usize * PER_STAGE;
        self.add(base + CALLS, 1);
        self.add(base + PACKETS, packets);
        self.add(base + CYCLES, cycles);
    }

    /// Cycles of a loop iteration that found work.
    #[inline]
    pub fn busy(&self, cycles: u64) {
        self.add(BUSY, cycles);
    }

    /// Cycles of a loop iteration that found nothing to do.
    #[inline]
    pub fn idle(&self, cycles: u64) {
        self.add(IDLE, cycles);
    }

    pub fn snapshot(&self) -> RuntimeSnapshot {
        let get = |i: usize| self.cells[i].load(Ordering::Relaxed);
        RuntimeSnapshot {
            stages: std::array::from_fn(|s| StageTotals {
                calls: get(s * PER_STAGE + CALLS),
                packets: get(s * PER_STAGE + PACKETS),
                cycles: get(s * PER_STAGE + CYCLES),
            }),
            busy_cycles: get(BUSY),
            idle_cycles: get(IDLE),
            tsc_hz: self.tsc_hz,
        }
    }
}

/// One stage's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTotals {
    pub calls: u64,
    pub packets: u64,
    pub cycles: u64,
}

impl StageTotals {
    /// Clocks per packet (per call when the stage handled no packets).
    pub fn clocks_per_packet(&self) -> f64 {
        let per = if self.packets > 0 { self.packets } else { self.calls };
        ratio(self.cycles, per)
    }

    /// Packets per call: the vector size VPP reports.
    pub fn packets_per_call(&self) -> f64 {
        ratio(self.packets, self.calls)
    }

    /// The header of a per-stage table, as `dlisten stats` and the
    /// generator print it.
    pub fn write_header(out: &mut String) {
        let _ = writeln!(out, "  {:<8} {:>12} {:>14} {:>11} {:>10}", "stage", "calls", "packets", "clocks/pkt", "pkts/call");
    }

    /// This stage's row of that table.
    pub fn write_row(&self, out: &mut String, name: &str) {
        let _ = writeln!(
            out,
            "  {:<8} {:>12} {:>14} {:>11.1} {:>10.1}",
            name,
            self.calls,
            self.packets,
            self.clocks_per_packet(),
            self.packets_per_call()
        );
    }

    fn since(&self, earlier: &StageTotals) -> StageTotals {
        StageTotals {
            calls: self.calls.wrapping_sub(earlier.calls),
            packets: self.packets.wrapping_sub(earlier.packets),
            cycles: self.cycles.wrapping_sub(earlier.cycles),
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A copy of one worker's (or a sum of workers') runtime accounting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeSnapshot {
    pub stages: [StageTotals; Stage::COUNT],
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub tsc_hz: u64,
}

impl RuntimeSnapshot {
    pub fn stage(&self, s: Stage) -> &StageTotals {
        &self.stages[s as usize]
    }

    /// Workers summed (their TSCs tick at the same rate).
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a RuntimeSnapshot>) -> RuntimeSnapshot {
        let mut total = RuntimeSnapshot::default();
        for p in parts {
            for (t, s) in total.stages.iter_mut().zip(p.stages.iter()) {
                t.calls += s.calls;
                t.packets += s.packets;
                t.cycles += s.cycles;
            }
            total.busy_cycles += p.busy_cycles;
            total.idle_cycles += p.idle_cycles;
            total.tsc_hz = p.tsc_hz;
        }
        total
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &RuntimeSnapshot) -> RuntimeSnapshot {
        RuntimeSnapshot {
            stages: std::array::from_fn(|i| self.stages[i].since(&earlier.stages[i])),
            busy_cycles: self.busy_cycles.wrapping_sub(earlier.busy_cycles),
            idle_cycles: self.idle_cycles.wrapping_sub(earlier.idle_cycles),
            tsc_hz: self.tsc_hz,
        }
    }

    /// Share of the loop's cycles that found work, in percent.
    pub fn busy_percent(&self) -> f64 {
        100.0 * ratio(self.busy_cycles, self.busy_cycles + self.idle_cycles)
    }

    /// Packets received per busy second: what this worker could take if it
    /// were never idle.
    pub fn capacity_pps(&self) -> f64 {
        let busy_secs = ratio(self.busy_cycles, self.tsc_hz);
        if busy_secs == 0.0 {
            0.0
        } else {
            self.stage(Stage::Rx).packets as f64 / busy_secs
        }
    }

    /// Cycles of every stage per received packet: the loop's cost of a packet.
    pub fn clocks_per_rx_packet(&self) -> f64 {
        let cycles: u64 = self.stages.iter().map(|s| s.cycles).sum();
        ratio(cycles, self.stage(Stage::Rx).packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_busy_idle_add_up() {
        let r = Runtime::new(1_000_000_000);
        r.stage(Stage::Rx, 32, 640);
        r.stage(Stage::Rx, 0, 60);
        r.stage(Stage::Parse, 32, 1600);
        r.stage(Stage::Timers, 0, 300);
        r.busy(3_000);
        r.idle(1_000);
        let s = r.snapshot();
        let rx = s.stage(Stage::Rx);
        assert_eq!((rx.calls, rx.packets, rx.cycles), (2, 32, 700));
        assert_eq!(rx.clocks_per_packet(), 700.0 / 32.0);
        assert_eq!(rx.packets_per_call(), 16.0);
        // A stage without packets reports clocks per call.
        assert_eq!(s.stage(Stage::Timers).clocks_per_packet(), 300.0);
        assert_eq!(s.stage(Stage::Apps).clocks_per_packet(), 0.0);
        assert_eq!(s.busy_percent(), 75.0);
        // 32 packets in 3 µs busy.
        assert!((s.capacity_pps() - 32.0 / 3e-6).abs() < 1.0);
        assert_eq!(s.clocks_per_rx_packet(), (700.0 + 1600.0 + 300.0) / 32.0);
    }

    #[test]
    fn since_is_the_interval() {
        let r = Runtime::new(2_000);
        r.stage(Stage::Tcp, 10, 100);
        r.busy(100);
        let a = r.snapshot();
        r.stage(Stage::Tcp, 5, 80);
        r.idle(400);
        let d = r.snapshot().since(&a);
        assert_eq!(*d.stage(Stage::Tcp), StageTotals { calls: 1, packets: 5, cycles: 80 });
        assert_eq!((d.busy_cycles, d.idle_cycles, d.tsc_hz), (0, 400, 2_000));
        assert_eq!(d.busy_percent(), 0.0);
        assert_eq!(d.capacity_pps(), 0.0);
    }

    #[test]
    fn stage_names_are_unique() {
        let mut names: Vec<_> = Stage::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Stage::COUNT);
    }
}
