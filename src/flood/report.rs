//! What a flood prints: a line per second of rates, a summary of
//! `  name value` lines (the format of `serve`'s counters, so scripts parse
//! both alike), percentile tables and `.hgrm` files.

use super::family::Family;
use super::gen::{Generator, SendWindow, Stats};
use super::runtime::FloodRuntime;
use super::Mode;
use crate::telemetry::latency::write_hgrm;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Once-per-second rates.
pub struct Progress {
    next: Duration,
    last_at: Duration,
    last: Stats,
    last_runtime: FloodRuntime,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress { next: Duration::from_secs(1), last_at: Duration::ZERO, last: Stats::default(), last_runtime: FloodRuntime::default() }
    }

    /// A progress line when a second has passed since the last one: the
    /// second's rates and the generator's own runtime over it.
    pub fn tick<A: Family>(&mut self, elapsed: Duration, g: &Generator<A>, runtime: &FloodRuntime) -> Option<String> {
        if elapsed < self.next {
            return None;
        }
        let dt = (elapsed - self.last_at).as_secs_f64().max(1e-9);
        let s = &g.stats;
        let rate = |now: u64, then: u64| (now - then) as f64 / dt;
        let line = format!(
            "flood: {:>4.0}s syn/s {:.0} synack/s {:.0} rst/s {:.0} handshakes/s {:.0} in-flight {} | {}",
            elapsed.as_secs_f64(),
            rate(s.syn_sent + s.legit_attempts, self.last.syn_sent + self.last.legit_attempts),
            rate(s.synack, self.last.synack),
            rate(s.rst + s.legit_rst, self.last.rst + self.last.legit_rst),
            rate(s.legit_established, self.last.legit_established),
            g.in_flight(),
            runtime.since(&self.last_runtime).brief()
        );
        self.last = s.clone();
        self.last_runtime = runtime.clone();
        self.last_at = elapsed;
        self.next = elapsed + Duration::from_secs(1);
        Some(line)
    }
}

/// The end of a run.
pub struct Summary {
    pub mode: Mode,
    /// The whole run, drain included.
    pub elapsed: Duration,
    /// First SYN to last SYN: what the rates are over.
    pub window: SendWindow,
    pub stats: Stats,
    pub flood_latency: Histogram<u64>,
    pub connect_latency: Histogram<u64>,
    pub tx_frames: u64,
    pub rx_frames: u64,
    pub no_mbuf: u64,
    /// Frames built but never taken by the TX ring.
    pub tx_dropped: u64,
    /// The generator's own cycles over the run.
    pub runtime: FloodRuntime,
    pub port_line: String,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Summary {
    pub fn new<A: Family>(mode: Mode, elapsed: Duration, g: &Generator<A>, tx_frames: u64, rx_frames: u64, no_mbuf: u64) -> Summary {
        Summary {
            mode,
            elapsed,
            window: g.window,
            stats: g.stats.clone(),
            flood_latency: g.flood_latency.clone(),
            connect_latency: g.connect_latency.clone(),
            tx_frames,
            rx_frames,
            no_mbuf,
            tx_dropped: 0,
            runtime: FloodRuntime::default(),
            port_line: String::new(),
        }
    }

    /// `  name value` lines, rates and percentages included.
    pub fn format(&self) -> String {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64();
        let window = self.window.len_ns() as f64 / 1e9;
        // Replies are counted up to the end of the drain, rates over the
        // sending window only.
        let rate = |n: u64| self.window.rate(n).map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
        let mut o = String::new();
        let _ = writeln!(o, "flood summary ({:?} mode, sending {window:.2} s of a {secs:.2} s run):", self.mode);
        let mut line = |name: &str, v: String| {
            let _ = writeln!(o, "  {name:<28} {v}");
        };
        if self.mode != Mode::Handshake {
            line("SynSent", s.syn_sent.to_string());
            line("SynAckReceived", s.synack.to_string());
            line("RstReceived", s.rst.to_string());
            line("Unanswered", s.unanswered.to_string());
            line("DuplicateSynAck", s.dup_synack.to_string());
            line("SynAckPercent", format!("{:.2}", pct(s.synack, s.syn_sent)));
            line("SynPerSec", rate(s.syn_sent));
            line("SynAckPerSec", rate(s.synack));
        }
        if self.mode != Mode::Syn {
            line("HandshakesAttempted", s.legit_attempts.to_string());
            line("HandshakesCompleted", s.legit_established.to_string());
            line("HandshakesRefused", s.legit_rst.to_string());
            line("SynRetransmits", s.legit_syn_retrans.to_string());
            line("HandshakesTimedOut", s.legit_timeouts.to_string());
            line("HandshakesUnfinished", s.legit_unfinished.to_string());
            line("Responses", s.legit_responses.to_string());
            line("ResponseTimeouts", s.legit_response_timeouts.to_string());
            line("HandshakePercent", format!("{:.2}", pct(s.legit_established, s.legit_attempts)));
            line("HandshakesPerSec", rate(s.legit_established));
        }
        line("BadAck", s.bad_ack.to_string());
        line("Stray", s.stray.to_string());
        line("TxFrames", self.tx_frames.to_string());
        line("RxFrames", self.rx_frames.to_string());
        line("TxNoMbuf", self.no_mbuf.to_string());
        line("TxDropped", self.tx_dropped.to_string());
        if !self.port_line.is_empty() {
            let _ = writeln!(o, "{}", self.port_line);
        }
        if self.runtime.tsc_hz > 0 {
            o.push_str(&self.runtime.table());
        }
        o
    }

    /// The summary as one JSON object: the counters, the window, the rates,
    /// the latency percentiles (ns) and the runtime.
    pub fn to_json(&self) -> serde_json::Value {
        let s = &self.stats;
        let latency = |h: &Histogram<u64>| {
            serde_json::json!({
                "count": h.len(),
                "p50_ns": h.value_at_quantile(0.5),
                "p90_ns": h.value_at_quantile(0.9),
                "p99_ns": h.value_at_quantile(0.99),
                "p999_ns": h.value_at_quantile(0.999),
                "max_ns": h.max(),
            })
        };
        serde_json::json!({
            "mode": format!("{:?}", self.mode).to_lowercase(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "window_s": self.window.len_ns() as f64 / 1e9,
            "counters": {
                "SynSent": s.syn_sent,
                "SynAckReceived": s.synack,
                "RstReceived": s.rst,
                "Unanswered": s.unanswered,
                "DuplicateSynAck": s.dup_synack,
                "BadAck": s.bad_ack,
                "HandshakesAttempted": s.legit_attempts,
                "HandshakesCompleted": s.legit_established,
                "HandshakesRefused": s.legit_rst,
                "SynRetransmits": s.legit_syn_retrans,
                "HandshakesTimedOut": s.legit_timeouts,
                "HandshakesUnfinished": s.legit_unfinished,
                "Responses": s.legit_responses,
                "ResponseTimeouts": s.legit_response_timeouts,
                "Stray": s.stray,
                "TxFrames": self.tx_frames,
                "RxFrames": self.rx_frames,
                "TxNoMbuf": self.no_mbuf,
                "TxDropped": self.tx_dropped,
            },
            "rates": {
                "SynPerSec": self.window.rate(s.syn_sent),
                "SynAckPerSec": self.window.rate(s.synack),
                "HandshakesPerSec": self.window.rate(s.legit_established),
            },
            "latency": {
                "flood_syn_synack": latency(&self.flood_latency),
                "connect": latency(&self.connect_latency),
            },
            "runtime": self.runtime.to_json(),
        })
    }

    /// The percentile table (µs), one row per histogram with samples.
    pub fn latency_table(&self) -> String {
        let mut o = String::new();
        let rows: Vec<(&str, &Histogram<u64>)> = [("syn->synack (flood)", &self.flood_latency), ("connect (syn->synack)", &self.connect_latency)]
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .collect();
        if rows.is_empty() {
            return o;
        }
        let _ = writeln!(o, "{:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}", "Latency (us)", "Count", "p50", "p90", "p99", "p99.9", "Max");
        for (name, h) in rows {
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let _ = writeln!(
                o,
                "{:<24} {:>10} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                name,
                h.len(),
                us(0.5),
                us(0.9),
                us(0.99),
                us(0.999),
                h.max() as f64 / 1000.0
            );
        }
        o
    }

    /// `flood-syn-synack.hgrm` and `connect.hgrm` in `dir`; the paths written.
    pub fn write_hgrms(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for (stem, h) in [("flood-syn-synack", &self.flood_latency), ("connect", &self.connect_latency)] {
            if h.is_empty() {
                continue;
            }
            let path = dir.join(format!("{stem}.hgrm"));
            let mut f = std::fs::File::create(&path)?;
            write_hgrm(h, &mut f)?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flood::gen::GenConfig;

    fn generator() -> Generator<std::net::Ipv4Addr> {
        Generator::new(GenConfig {
            dst: "198.18.0.1:80".parse().unwrap(),
            flood: None,
            legit: None,
            flood_count: None,
            legit_count: None,
            concurrency: 1,
            request: Vec::new(),
            timeout_ns: 1,
            syn_retries: 6,
            syn_rto_ns: 1_000_000_000,
            salt: 0,
        })
    }

    #[test]
    fn summary_lines_and_tables() {
        let mut g = generator();
        g.stats.syn_sent = 200;
        g.stats.synack = 199;
        g.stats.unanswered = 1;
        for v in 1..=100u64 {
            g.flood_latency.record(v * 1000).unwrap();
        }
        g.window = SendWindow { first_ns: Some(0), last_ns: 2_000_000_000 };
        let s = Summary::new(Mode::Syn, Duration::from_secs(3), &g, 200, 199, 0);
        let text = s.format();
        assert!(text.contains("  SynAckPercent                99.50\n"), "{text}");
        assert!(text.contains("  SynPerSec                    100\n"), "{text}");
        assert!(text.contains("sending 2.00 s of a 3.00 s run"), "{text}");
        assert!(!text.contains("Handshakes"), "{text}");
        let j = s.to_json();
        assert_eq!(j["counters"]["SynAckReceived"], 199);
        assert_eq!(j["rates"]["SynPerSec"], 100.0);
        assert_eq!(j["window_s"], 2.0);
        assert_eq!(j["latency"]["flood_syn_synack"]["count"], 100);
        assert!(j["latency"]["connect"]["count"] == 0);
        let table = s.latency_table();
        assert!(table.starts_with("Latency (us)"), "{table}");
        assert!(table.contains("syn->synack (flood)"), "{table}");
        assert!(!table.contains("connect"), "{table}");
        let dir = std::env::temp_dir().join(format!("dlflood-hgrm-{}", std::process::id()));
        let written = s.write_hgrms(&dir).unwrap();
        assert_eq!(written, vec![dir.join("flood-syn-synack.hgrm")]);
        let hgrm = std::fs::read_to_string(&written[0]).unwrap();
        assert!(hgrm.contains("Total count    =          100"), "{hgrm}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run that sent 4 M SYNs in one second and then drained for one more:
    /// the rates are over the sending second, not the two.
    #[test]
    fn rates_are_over_the_sending_window_not_the_drain() {
        let mut g = generator();
        g.stats.syn_sent = 4_000_000;
        g.stats.synack = 3_999_000;
        g.stats.legit_established = 1_000;
        // First SYN at 0.5 s, last at 1.5 s; the run (drain included) 2.5 s.
        g.window = SendWindow { first_ns: Some(500_000_000), last_ns: 1_500_000_000 };
        let s = Summary::new(Mode::Mixed, Duration::from_millis(2500), &g, 0, 0, 0);
        let text = s.format();
        assert!(text.contains("  SynPerSec                    4000000\n"), "{text}");
        assert!(text.contains("  SynAckPerSec                 3999000\n"), "{text}");
        assert!(text.contains("  HandshakesPerSec             1000\n"), "{text}");
        // Nothing sent: no rate rather than a division by zero.
        let empty = Summary::new(Mode::Syn, Duration::from_secs(1), &generator(), 0, 0, 0).format();
        assert!(empty.contains("  SynPerSec                    -\n"), "{empty}");
    }

    #[test]
    fn progress_once_a_second() {
        let mut g = generator();
        let mut p = Progress::new();
        let mut rt = FloodRuntime::new(1_000_000_000);
        assert!(p.tick(Duration::from_millis(999), &g, &rt).is_none());
        g.stats.syn_sent = 500;
        let line = p.tick(Duration::from_millis(1000), &g, &rt).unwrap();
        assert!(line.contains("syn/s 500 "), "{line}");
        assert!(p.tick(Duration::from_millis(1500), &g, &rt).is_none());
        g.stats.syn_sent = 1500;
        // The second's runtime, not the run's: half busy, 1000 frames in 0.5 s busy.
        rt.stage(crate::flood::runtime::FloodStage::Tx, 1000, 10);
        rt.busy_cycles = 500_000_000;
        rt.idle_cycles = 500_000_000;
        let line = p.tick(Duration::from_millis(2000), &g, &rt).unwrap();
        assert!(line.contains("syn/s 1000 "), "{line}");
        assert!(line.ends_with("| busy 50.0% capacity 0.00 Mpps 0 clk/tx"), "{line}");
    }
}
