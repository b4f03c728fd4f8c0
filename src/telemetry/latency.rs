//! Latency histograms (hdrhistogram), recorded per worker without locks and
//! merged in the control thread without stopping the workers.
//!
//! Each worker owns a [`WorkerLatency`]: one histogram per (listener, metric),
//! 1 ns .. 60 s at 3 significant digits, created on first use and then reused,
//! so `record` does not allocate in steady state. Every ~500 ms the worker
//! calls [`WorkerLatency::take`] (the interval's recorded values, histograms
//! reset) and hands the snapshot to [`LatencySender::send`], a `try_send` on a
//! bounded channel: a full channel drops the snapshot and counts it, it never
//! blocks the worker. The control thread's [`LatencyHub::drain`] merges every
//! snapshot into cumulative histograms per listener and for all listeners.

use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::stats::Metric;

/// Lowest discernible value: 1 ns.
const LOWEST_NS: u64 = 1;
/// Highest trackable value: 60 s (larger values are clamped to it).
const HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits (0.1% value resolution).
const SIGFIG: u8 = 3;
/// Snapshots the hub's channel holds before senders start dropping.
const HUB_CHANNEL_CAPACITY: usize = 1024;
/// HdrHistogram's default `percentileTicksPerHalfDistance`.
const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// A histogram with dlisten's range and precision.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1,
    // high >= 2 * low, sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGFIG).expect("constant histogram bounds are valid")
}

/// One worker's histograms. Single owner, no locks.
pub struct WorkerLatency {
    listeners: HashMap<u64, [Histogram<u64>; 4]>,
}

impl Default for WorkerLatency {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerLatency {
    pub fn new() -> Self {
        WorkerLatency { listeners: HashMap::new() }
    }

    /// Record one sample. Allocates only the first time a listener is seen;
    /// values above 60 s are clamped to 60 s.
    #[inline]
    pub fn record(&mut self, listener_id: u64, m: Metric, nanos: u64) {
        let set = self.listeners.entry(listener_id).or_insert_with(|| std::array::from_fn(|_| new_histogram()));
        set[m.index()].saturating_record(nanos);
    }

    /// The interval's samples (only non-empty histograms, as (value, count)
    /// pairs: a few hundred bytes instead of the 200 KiB of a full histogram),
    /// then reset every histogram. The listener's histograms stay allocated.
    pub fn take(&mut self) -> LatencySnapshot {
        let mut entries = Vec::new();
        for (&listener, set) in self.listeners.iter_mut() {
            for m in Metric::ALL {
                let h = &mut set[m.index()];
                if h.is_empty() {
                    continue;
                }
                // `value_iterated_to` is the highest value equivalent to the
                // bucket, so recording it into a histogram of the same shape
                // lands in the same bucket: the merge is exact.
                let values = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
                entries.push(SnapshotEntry { listener, metric: m, values });
                h.reset();
            }
        }
        LatencySnapshot { entries }
    }
}

/// One (listener, metric)'s samples of an interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub listener: u64,
    pub metric: Metric,
    /// (value in ns, count), values ascending.
    pub values: Vec<(u64, u64)>,
}

/// What [`WorkerLatency::take`] returns: one interval of one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub entries: Vec<SnapshotEntry>,
}

impl LatencySnapshot {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Samples in the snapshot.
    pub fn count(&self) -> u64 {
        self.entries.iter().flat_map(|e| e.values.iter()).map(|(_, n)| n).sum()
    }
}

/// The workers' end of the hub's channel.
#[derive(Clone)]
pub struct LatencySender {
    tx: Sender<LatencySnapshot>,
    dropped: Arc<AtomicU64>,
}

impl LatencySender {
    /// Hand a snapshot to the hub without blocking. Returns false when the
    /// channel was full (or the hub gone): the snapshot is dropped and counted.
    pub fn send(&self, snapshot: LatencySnapshot) -> bool {
        if snapshot.is_empty() {
            return true;
        }
        match self.tx.try_send(snapshot) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Snapshots dropped so far, by every clone of this sender.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Which listener a cumulative histogram covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Listener(u64),
    /// Every listener: sorts after the per-listener rows.
    All,
}

/// One row of the percentile table, values in µs.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    /// The listener's label (its id when it has none), or "all".
    pub listener: String,
    pub metric: Metric,
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Cumulative histograms, fed by the workers' snapshots. Lives in the
/// control thread.
pub struct LatencyHub {
    rx: Receiver<LatencySnapshot>,
    dropped: Arc<AtomicU64>,
    hists: BTreeMap<(Scope, Metric), Histogram<u64>>,
    labels: HashMap<u64, String>,
}

impl LatencyHub {
    pub fn new() -> (LatencyHub, LatencySender) {
        Self::with_capacity(HUB_CHANNEL_CAPACITY)
    }

    /// A hub whose channel holds `capacity` snapshots.
    pub fn with_capacity(capacity: usize) -> (LatencyHub, LatencySender) {
        let (tx, rx) = channel::bounded(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let hub = LatencyHub { rx, dropped: dropped.clone(), hists: BTreeMap::new(), labels: HashMap::new() };
        (hub, LatencySender { tx, dropped })
    }

    /// Merge every snapshot received so far. Returns how many were merged.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Ok(snapshot) = self.rx.try_recv() {
            self.merge(&snapshot);
            n += 1;
        }
        n
    }

    /// Merge one snapshot (what `drain` does for each received one).
    pub fn merge(&mut self, snapshot: &LatencySnapshot) {
        for e in &snapshot.entries {
            for scope in [Scope::Listener(e.listener), Scope::All] {
                let h = self.hists.entry((scope, e.metric)).or_insert_with(new_histogram);
                for &(value, count) in &e.values {
                    h.saturating_record_n(value, count);
                }
            }
        }
    }

    /// Snapshots the workers dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Name a listener in the table (e.g. "198.18.0.1:80").
    pub fn set_listener_label(&mut self, id: u64, label: impl Into<String>) {
        self.labels.insert(id, label.into());
    }

    /// The cumulative histogram of one listener, or of all (`None`).
    pub fn histogram(&self, metric: Metric, listener: Option<u64>) -> Option<&Histogram<u64>> {
        let scope = listener.map_or(Scope::All, Scope::Listener);
        self.hists.get(&(scope, metric))
    }

    /// Every cumulative histogram with samples, as (listener or `None` for
    /// all, metric, histogram): what to export as `.hgrm` files at shutdown.
    pub fn histograms(&self) -> impl Iterator<Item = (Option<u64>, Metric, &Histogram<u64>)> + '_ {
        self.hists.iter().filter(|(_, h)| !h.is_empty()).map(|(&(scope, metric), h)| {
            let listener = match scope {
                Scope::Listener(id) => Some(id),
                Scope::All => None,
            };
            (listener, metric, h)
        })
    }

    /// The label of a listener (its id as `#id` when it has none).
    pub fn listener_label(&self, id: u64) -> String {
        self.label(Scope::Listener(id))
    }

    fn label(&self, scope: Scope) -> String {
        match scope {
            Scope::All => "all".to_string(),
            Scope::Listener(id) => self.labels.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
        }
    }

    /// One row per (listener, metric) with samples, then the "all" rows.
    pub fn rows(&self) -> Vec<LatencyRow> {
        self.hists
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(&(scope, metric), h)| LatencyRow {
                listener: self.label(scope),
                metric,
                count: h.len(),
                p50_us: ns_to_us(h.value_at_quantile(0.5)),
                p90_us: ns_to_us(h.value_at_quantile(0.9)),
                p99_us: ns_to_us(h.value_at_quantile(0.99)),
                p999_us: ns_to_us(h.value_at_quantile(0.999)),
                max_us: ns_to_us(h.max()),
            })
            .collect()
    }

    /// wrk-style table: count, p50, p90, p99, p99.9, max, in µs.
    pub fn percentile_table(&self) -> String {
        format_latency_table(&self.rows())
    }

    /// HdrHistogram's percentile distribution (`outputPercentileDistribution`
    /// with 5 ticks per half distance and values scaled to µs): the `.hgrm`
    /// text HdrHistogram's plotter reads. An unknown (listener, metric)
    /// writes an empty distribution.
    pub fn write_hgrm(&self, metric: Metric, listener: Option<u64>, w: &mut impl Write) -> io::Result<()> {
        match self.histogram(metric, listener) {
            Some(h) => write_hgrm(h, w),
            None => write_hgrm(&new_histogram(), w),
        }
    }
}

fn ns_to_us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// µs with 2 decimals, or 1 once the value needs 6 digits before the point.
fn fmt_us(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// The table [`LatencyHub::percentile_table`] prints; empty when no sample.
pub fn format_latency_table(rows: &[LatencyRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<21} {:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "Latency (us)", "Metric", "Count", "p50", "p90", "p99", "p99.9", "Max"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<21} {:<22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            r.listener,
            r.metric.name(),
            r.count,
            fmt_us(r.p50_us),
            fmt_us(r.p90_us),
            fmt_us(r.p99_us),
            fmt_us(r.p999_us),
            fmt_us(r.max_us)
        );
    }
    out
}

/// HdrHistogram's sub-bucket count for `sigfig`: the power of two at or above
/// 2 * 10^sigfig (hdrhistogram keeps it private; the `.hgrm` footer prints it).
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Write `h` (values in ns) as HdrHistogram's `outputPercentileDistribution`
/// does, scaled to µs (Java: `outputValueUnitScalingRatio = 1000.0`):
///
/// ```text
///        Value     Percentile TotalCount 1/(1-Percentile)
///
///        1.000 0.000000000000          1           1.00
///        ...
///      100.000 1.000000000000        100
/// #[Mean    =       50.500, StdDeviation   =       28.866]
/// #[Max     =      100.000, Total count    =          100]
/// #[Buckets =           26, SubBuckets     =         2048]
/// ```
pub fn write_hgrm(h: &Histogram<u64>, w: &mut impl Write) -> io::Result<()> {
    const SCALE: f64 = 1000.0;
    let digits = usize::from(h.sigfig());
    writeln!(w, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / SCALE;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q))?;
            } else {
                writeln!(w, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, stdev, max) =
        if h.is_empty() { (0.0, 0.0, 0.0) } else { (h.mean() / SCALE, h.stdev() / SCALE, h.max() as f64 / SCALE) };
    writeln!(w, "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]")?;
    writeln!(w, "#[Max     = {max:>12.digits$}, Total count    = {:>12}]", h.len())?;
    writeln!(w, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_bucket_count(h.sigfig()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse a `.hgrm` back: (value, percentile, total count) rows and the
    /// footer's max and total count.
    fn parse_hgrm(text: &str) -> (Vec<(f64, f64, u64)>, f64, u64) {
        let mut rows = Vec::new();
        let (mut max, mut count) = (None, None);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]);
        assert_eq!(lines.next(), Some(""));
        for line in lines {
            if let Some(rest) = line.strip_prefix("#[Max     =") {
                let (m, c) = rest.trim_end_matches(']').split_once(", Total count    =").unwrap();
                max = Some(m.trim().parse().unwrap());
                count = Some(c.trim().parse().unwrap());
            } else if !line.starts_with("#[") {
                let f: Vec<&str> = line.split_whitespace().collect();
                assert!(f.len() == 4 || f.len() == 3, "{line}");
                rows.push((f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap()));
            }
        }
        (rows, max.unwrap(), count.unwrap())
    }

    #[test]
    fn metric_names() {
        let names: Vec<String> = Metric::ALL.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["syn->synack", "syn->established", "established->accepted", "request->response"]);
    }

    #[test]
    fn percentiles_of_known_values() {
        let mut w = WorkerLatency::new();
        // 1..=1000 µs.
        for i in 1..=1000u64 {
            w.record(7, Metric::SynToSynAck, i * 1000);
        }
        let (mut hub, tx) = LatencyHub::new();
        assert!(tx.send(w.take()));
        assert_eq!(hub.drain(), 1);
        hub.set_listener_label(7, "198.18.0.1:80");
        let rows = hub.rows();
        assert_eq!(rows.len(), 2, "one listener row and the all row");
        let r = &rows[0];
        assert_eq!((r.listener.as_str(), r.metric, r.count), ("198.18.0.1:80", Metric::SynToSynAck, 1000));
        // 3 significant digits: within 0.1%.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(r.p50_us, 500.0), "{}", r.p50_us);
        assert!(close(r.p90_us, 900.0), "{}", r.p90_us);
        assert!(close(r.p99_us, 990.0), "{}", r.p99_us);
        assert!(close(r.p999_us, 999.0), "{}", r.p999_us);
        assert!(close(r.max_us, 1000.0), "{}", r.max_us);
        assert_eq!(rows[1].listener, "all");
        assert_eq!(rows[1].count, 1000);

        let table = hub.percentile_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("Latency (us)"));
        let f: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(f[..3], ["198.18.0.1:80", "syn->synack", "1000"]);
        assert_eq!(f[3], "500.22"); // 500 µs falls in a bucket 0.5 µs wide at 3 sigfig
        assert!(lines[2].starts_with("all "));
    }

    #[test]
    fn take_resets_the_interval() {
        let mut w = WorkerLatency::new();
        w.record(1, Metric::SynToEstablished, 5_000);
        let first = w.take();
        assert_eq!(first.count(), 1);
        assert!(w.take().is_empty());
        w.record(1, Metric::SynToEstablished, 7_000);
        assert_eq!(w.take().count(), 1);
    }

    #[test]
    fn merge_of_two_workers_equals_one_histogram_of_all_values() {
        let mut a = WorkerLatency::new();
        let mut b = WorkerLatency::new();
        let mut single = new_histogram();
        let mut x = 12345u64;
        for i in 0..20_000u64 {
            // xorshift: values over 1 ns .. ~70 s (clamped at 60 s).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 70_000_000_000).max(1) >> (x % 30);
            single.saturating_record(v);
            if i % 2 == 0 {
                a.record(3, Metric::RequestToResponse, v);
            } else {
                b.record(3, Metric::RequestToResponse, v);
            }
        }
        let (mut hub, tx) = LatencyHub::new();
        let tx2 = tx.clone();
        std::thread::spawn(move || assert!(tx2.send(b.take()))).join().unwrap();
        tx.send(a.take());
        assert_eq!(hub.drain(), 2);
        for scope in [Some(3), None] {
            let merged = hub.histogram(Metric::RequestToResponse, scope).unwrap();
            assert_eq!(merged.len(), single.len());
            assert_eq!(merged.max(), single.max());
            assert_eq!(merged.min_nz(), single.min_nz());
            let m: Vec<_> = merged.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
            let s: Vec<_> = single.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
            assert_eq!(m, s);
            for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(merged.value_at_quantile(q), single.value_at_quantile(q));
            }
        }
        assert!(hub.histogram(Metric::SynToSynAck, None).is_none());
        let listed: Vec<_> = hub.histograms().map(|(l, m, h)| (l, m, h.len())).collect();
        assert_eq!(listed, [(Some(3), Metric::RequestToResponse, 20_000), (None, Metric::RequestToResponse, 20_000)]);
        assert_eq!(hub.listener_label(3), "#3");
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let (mut hub, tx) = LatencyHub::with_capacity(1);
        let mut w = WorkerLatency::new();
        w.record(1, Metric::SynToSynAck, 10);
        assert!(tx.send(w.take()));
        w.record(1, Metric::SynToSynAck, 10);
        assert!(!tx.send(w.take()));
        assert_eq!(hub.dropped(), 1);
        assert_eq!(tx.dropped(), 1);
        assert_eq!(hub.drain(), 1);
        // Empty snapshots are not sent at all.
        assert!(tx.send(w.take()));
        assert_eq!(hub.drain(), 0);
    }

    #[test]
    fn hgrm_parses_back_with_footer() {
        let mut w = WorkerLatency::new();
        for i in 1..=100u64 {
            w.record(9, Metric::SynToSynAck, i * 1000);
        }
        let (mut hub, tx) = LatencyHub::new();
        tx.send(w.take());
        hub.drain();
        let mut out = Vec::new();
        hub.write_hgrm(Metric::SynToSynAck, Some(9), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (rows, max, count) = parse_hgrm(&text);
        let h = hub.histogram(Metric::SynToSynAck, Some(9)).unwrap();
        assert_eq!(count, 100);
        // 100 µs lies in a bucket 64 ns wide: its highest equivalent value, as Java prints.
        assert_eq!(h.max(), 100_031);
        assert_eq!(max, 100.031);
        let last = rows.last().unwrap();
        assert_eq!((last.0, last.1, last.2), (100.031, 1.0, 100));
        assert_eq!(rows[0], (1.0, 0.0, 1));
        // Percentiles and counts never go down.
        assert!(rows.windows(2).all(|p| p[0].1 <= p[1].1 && p[0].2 <= p[1].2 && p[0].0 <= p[1].0));
        let mean_line =
            format!("#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]", h.mean() / 1000.0, h.stdev() / 1000.0);
        assert!(text.contains(&mean_line), "{text}");
        assert!((h.mean() / 1000.0 - 50.5).abs() < 0.05);
        assert!(text.lines().any(|l| l.starts_with("#[Buckets = ") && l.ends_with("SubBuckets     =         2048]")));
        // Java's percentileFormatString: "%12.3f %2.12f %10d %14.2f".
        let first_row = text.lines().nth(2).unwrap();
        assert_eq!(first_row, "       1.000 0.000000000000          1           1.00");

        // Unknown listener: an empty distribution, still with its footer.
        let mut out = Vec::new();
        hub.write_hgrm(Metric::SynToSynAck, Some(1), &mut out).unwrap();
        let (rows, max, count) = parse_hgrm(&String::from_utf8(out).unwrap());
        assert_eq!((rows.len(), max, count), (0, 0.0, 0));
    }

    #[test]
    fn sub_bucket_count_matches_hdrhistogram() {
        // 3 digits: 2000 -> 2048 (Java's subBucketCount for the same config).
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        // hdrhistogram's len() of counts = (buckets + 1) * sub_bucket_count / 2.
        let h = new_histogram();
        assert_eq!(h.distinct_values() as u64, (u64::from(h.buckets()) + 1) * sub_bucket_count(3) / 2);
    }
}
