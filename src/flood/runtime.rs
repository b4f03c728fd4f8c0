//! Where the generator's cycles go, as `dlisten stats` shows a worker's
//! (see [`crate::stats::runtime`]): per stage of its loop the calls, the
//! packets and the TSC cycles, and for the whole loop the cycles of
//! iterations that did work (busy) and of those that found none (idle:
//! nothing received, nothing to build, a TX ring that took nothing).
//!
//! Capacity is frames handed to the TX queue per busy second: what the
//! generator could offer if the other side never pushed back, so a run
//! tells whether the generator or the target was the limit.

use crate::stats::runtime::StageTotals;
use std::fmt::Write as _;

/// A stage of the generator's loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum FloodStage {
    /// Polling the RX queue.
    Rx,
    /// Reading the replies: which flow, SYN-ACK or RST, the ACK number;
    /// ARP answered.
    Check,
    /// Deciding what to send (timers, new handshakes, flood SYNs) and
    /// writing the frames.
    Build,
    /// Handing frames to the TX queue.
    Tx,
}

impl FloodStage {
    pub const ALL: [FloodStage; 4] = [FloodStage::Rx, FloodStage::Check, FloodStage::Build, FloodStage::Tx];

    pub const fn name(self) -> &'static str {
        match self {
            FloodStage::Rx => "rx",
            FloodStage::Check => "check",
            FloodStage::Build => "build",
            FloodStage::Tx => "tx",
        }
    }
}

/// The generator's accounting: one thread writes and reads it, so plain
/// integers (the server's [`crate::stats::Runtime`] is read by another thread).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FloodRuntime {
    pub stages: [StageTotals; 4],
    pub busy_cycles: u64,
    pub idle_cycles: u64,
    pub tsc_hz: u64,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

impl FloodRuntime {
    pub fn new(tsc_hz: u64) -> FloodRuntime {
        FloodRuntime { tsc_hz, ..FloodRuntime::default() }
    }

    /// A call of `stage` that handled `packets` in `cycles`.
    #[inline]
    pub fn stage(&mut self, stage: FloodStage, packets: u64, cycles: u64) {
        let t = &mut self.stages[stage as usize];
        t.calls += 1;
        t.packets += packets;
        t.cycles += cycles;
    }

    pub fn get(&self, stage: FloodStage) -> &StageTotals {
        &self.stages[stage as usize]
    }

    /// What happened between `earlier` and now.
    pub fn since(&self, earlier: &FloodRuntime) -> FloodRuntime {
        FloodRuntime {
            stages: std::array::from_fn(|i| {
                let (a, b) = (&self.stages[i], &earlier.stages[i]);
                StageTotals { calls: a.calls - b.calls, packets: a.packets - b.packets, cycles: a.cycles - b.cycles }
            }),
            busy_cycles: self.busy_cycles - earlier.busy_cycles,
            idle_cycles: self.idle_cycles - earlier.idle_cycles,
            tsc_hz: self.tsc_hz,
        }
    }

    pub fn busy_percent(&self) -> f64 {
        100.0 * ratio(self.busy_cycles as f64, (self.busy_cycles + self.idle_cycles) as f64)
    }

    /// Frames handed to the TX queue per busy second.
    pub fn capacity_pps(&self) -> f64 {
        let busy_secs = ratio(self.busy_cycles as f64, self.tsc_hz as f64);
        ratio(self.get(FloodStage::Tx).packets as f64, busy_secs)
    }

    /// Cycles of every stage per frame sent: the loop's cost of a frame.
    pub fn clocks_per_tx_packet(&self) -> f64 {
        let cycles: u64 = self.stages.iter().map(|s| s.cycles).sum();
        ratio(cycles as f64, self.get(FloodStage::Tx).packets as f64)
    }

    /// `busy 97.0% capacity 12.10 Mpps 180 clk/tx`, for the per-second lines.
    pub fn brief(&self) -> String {
        format!("busy {:.1}% capacity {:.2} Mpps {:.0} clk/tx", self.busy_percent(), self.capacity_pps() / 1e6, self.clocks_per_tx_packet())
    }

    /// The table `dlisten stats` prints for a worker, for the generator.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "runtime (generator): busy {:.1}%, capacity {:.3} Mpps sent per busy second, {:.0} clocks per sent frame",
            self.busy_percent(),
            self.capacity_pps() / 1e6,
            self.clocks_per_tx_packet()
        );
        StageTotals::write_header(&mut o);
        for s in FloodStage::ALL {
            self.get(s).write_row(&mut o, s.name());
        }
        o
    }

    pub fn to_json(&self) -> serde_json::Value {
        let stages: Vec<_> = FloodStage::ALL
            .iter()
            .map(|&s| {
                let t = self.get(s);
                serde_json::json!({
                    "stage": s.name(),
                    "calls": t.calls,
                    "packets": t.packets,
                    "cycles": t.cycles,
                    "clocks_per_packet": t.clocks_per_packet(),
                })
            })
            .collect();
        serde_json::json!({
            "tsc_hz": self.tsc_hz,
            "busy_cycles": self.busy_cycles,
            "idle_cycles": self.idle_cycles,
            "busy_percent": self.busy_percent(),
            "capacity_pps": self.capacity_pps(),
            "clocks_per_tx_packet": self.clocks_per_tx_packet(),
            "stages": stages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_busy_idle_and_capacity() {
        let mut r = FloodRuntime::new(1_000_000_000);
        r.stage(FloodStage::Rx, 0, 100);
        r.stage(FloodStage::Build, 32, 3_200);
        r.stage(FloodStage::Tx, 32, 1_600);
        r.busy_cycles += 4_900;
        r.idle_cycles += 100;
        let before = r.clone();
        r.stage(FloodStage::Tx, 0, 100);
        r.idle_cycles += 5_000;
        assert_eq!(before.get(FloodStage::Build).clocks_per_packet(), 100.0);
        assert_eq!(before.clocks_per_tx_packet(), 4_900.0 / 32.0);
        assert_eq!(before.busy_percent(), 98.0);
        // 32 frames in 4.9 µs busy: the idle time does not lower it.
        let cap = 32.0 / 4.9e-6;
        assert!((before.capacity_pps() - cap).abs() < 1.0);
        assert!((r.capacity_pps() - cap).abs() < 1.0);
        assert_eq!(r.busy_percent(), 49.0);
        let d = r.since(&before);
        assert_eq!((d.busy_cycles, d.idle_cycles, d.get(FloodStage::Tx).calls), (0, 5_000, 1));
        assert_eq!(d.capacity_pps(), 0.0);
        assert!(before.table().contains("  build               1             32       100.0       32.0\n"), "{}", before.table());
        let j = before.to_json();
        assert_eq!(j["stages"][3]["packets"], 32);
        assert_eq!(j["busy_percent"], 98.0);
        assert!(before.brief().starts_with("busy 98.0% capacity 6.53 Mpps 153 clk/tx"), "{}", before.brief());
    }
}
