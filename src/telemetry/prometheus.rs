//! The Prometheus text exposition format (version 0.0.4) of a running
//! server: what `--metrics` serves on `/metrics`.
//!
//! Names:
//! - every counter as `dlisten_<nstat name in snake case>_total`, summed over
//!   the workers and the control plane, with the `nstat` name first in its
//!   HELP: `TcpPassiveOpens` is `dlisten_tcp_passive_opens_total`,
//!   `TcpExtListenOverflows` is `dlisten_tcp_ext_listen_overflows_total`; the
//!   `Dl` of counters Linux lacks is dropped (`DlRxFrames` is
//!   `dlisten_rx_frames_total`);
//! - per worker (`worker` label): frames received and sent, seconds busy and
//!   idle, and per loop stage (`stage` label) seconds and packets, from the
//!   TSC counts `dlisten stats` shows;
//! - per listening socket (`listener` label, its address, and `cpu` for a
//!   per-core reuseport member): accept-queue length and limit, SYN-queue
//!   length;
//! - each latency metric as a histogram in seconds, `dlisten_syn_to_synack_seconds`
//!   and so on, per listener, with buckets from 1 µs to 60 s ([`BUCKETS_NS`]).
//!
//! Histogram buckets come from the HdrHistograms (0.1% resolution): a
//! sample counts in the first bucket at or above the highest value its
//! HdrHistogram bucket stands for, so it is never reported faster than it
//! was; `_sum` is the histogram's mean times its count. Samples of 60 s and
//! more (HdrHistogram clamps them) count in `+Inf` only.

use crate::stats::{Counter, CounterSnapshot, Metric, RuntimeSnapshot, Stage};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

/// `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The histogram buckets' upper bounds in ns: 1-2.5-5 steps from 1 µs (a
/// SYN-ACK from a warm worker) to 60 s (HdrHistogram's ceiling; a request
/// whose SYN-ACK was retransmitted five times takes 63 s).
pub const BUCKETS_NS: [u64; 25] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    15_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

/// Which listening socket a series is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLabel {
    /// Its local address, `198.18.0.1:80`.
    pub listener: String,
    /// `SO_INCOMING_CPU` of a per-core reuseport member.
    pub cpu: Option<u16>,
}

/// One listener's accept and SYN queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerQueues {
    pub label: ListenerLabel,
    /// Accept-queue length (`sk_ack_backlog`).
    pub accept_queue: u32,
    /// Accept-queue limit (`sk_max_ack_backlog`).
    pub accept_queue_max: u32,
    /// Request socks (SYN queue length).
    pub syn_queue: u32,
}

/// A latency histogram as Prometheus counts it: cumulative buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyBuckets {
    /// Samples at or below each bound of [`BUCKETS_NS`].
    pub cumulative: [u64; BUCKETS_NS.len()],
    /// Every sample (the `+Inf` bucket).
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyBuckets {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencyBuckets {
        let mut per_bucket = [0u64; BUCKETS_NS.len()];
        for v in h.iter_recorded() {
            // `value_iterated_to` is the top of the sample's HdrHistogram bucket.
            if let Some(i) = BUCKETS_NS.iter().position(|&le| v.value_iterated_to() <= le) {
                per_bucket[i] += v.count_at_value();
            }
        }
        let mut cumulative = per_bucket;
        for i in 1..cumulative.len() {
            cumulative[i] += cumulative[i - 1];
        }
        LatencyBuckets { cumulative, count: h.len(), sum_seconds: h.mean() * h.len() as f64 / 1e9 }
    }
}

/// One (listener, metric) histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyHistogram {
    pub label: ListenerLabel,
    pub metric: Metric,
    pub buckets: LatencyBuckets,
}

/// What `/metrics` shows, taken at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    pub uptime: Duration,
    /// Each worker's counters, by worker id.
    pub per_worker: Vec<CounterSnapshot>,
    /// The control plane's counters.
    pub control: CounterSnapshot,
    /// Each worker's cycles, by worker id.
    pub runtime: Vec<RuntimeSnapshot>,
    pub listeners: Vec<ListenerQueues>,
    pub latency: Vec<LatencyHistogram>,
    /// What `/health` says: true while serving.
    pub serving: bool,
}

/// Implemented by serve: a fresh snapshot per scrape.
pub trait MetricsSource: Send + Sync {
    fn metrics(&self) -> MetricsSnapshot;
}

/// The metric name of a counter.
pub fn counter_name(c: Counter) -> String {
    let nstat = c.name();
    format!("dlisten_{}_total", snake_case(nstat.strip_prefix("Dl").unwrap_or(nstat)))
}

/// The metric name of a latency histogram: `syn->synack` is `dlisten_syn_to_synack_seconds`.
pub fn latency_name(m: Metric) -> String {
    format!("dlisten_{}_seconds", m.name().replace("->", "_to_"))
}

fn latency_help(m: Metric) -> &'static str {
    match m {
        Metric::SynToSynAck => "syn->synack: from a SYN received to its SYN-ACK handed to the port",
        Metric::SynToEstablished => "syn->established: from a SYN received to the handshake complete",
        Metric::EstablishedToAccepted => "established->accepted: time a connection waited in the accept queue",
        Metric::RequestToResponse => "request->response: from a request's first byte to the response sent (built-in apps)",
    }
}

/// `TcpExtTCPReqQFullDrop` -> `tcp_ext_tcp_req_q_full_drop`: a word starts
/// at an upper-case letter after a lower-case one or a digit, and at the
/// last capital of a run followed by a lower-case letter (`TCPReq`).
pub fn snake_case(camel: &str) -> String {
    let c: Vec<char> = camel.chars().collect();
    let mut out = String::with_capacity(camel.len() + 8);
    for i in 0..c.len() {
        if i > 0 && c[i].is_ascii_uppercase() {
            let after_lower = c[i - 1].is_ascii_lowercase() || c[i - 1].is_ascii_digit();
            let ends_run = c[i - 1].is_ascii_uppercase() && c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if after_lower || ends_run {
                out.push('_');
            }
        }
        out.push(c[i].to_ascii_lowercase());
    }
    out
}

/// The exposition text of `m`.
pub fn format_metrics(m: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(64 * 1024);
    family(&mut out, "dlisten_serving", "gauge", "1 while serving, 0 while starting or stopping (what /health says)");
    let _ = writeln!(out, "dlisten_serving {}", u8::from(m.serving));
    family(&mut out, "dlisten_uptime_seconds", "gauge", "Seconds since serve started");
    let _ = writeln!(out, "dlisten_uptime_seconds {}", m.uptime.as_secs_f64());

    let total = CounterSnapshot::sum(m.per_worker.iter().chain(std::iter::once(&m.control)));
    for &c in Counter::ALL {
        let name = counter_name(c);
        let doc: Vec<&str> = c.doc().iter().map(|l| l.trim()).collect();
        family(&mut out, &name, "counter", &format!("{} (nstat): {}", c.name(), doc.join(" ")));
        let _ = writeln!(out, "{name} {}", total.get(c));
    }

    per_worker(&mut out, m);
    per_listener(&mut out, &m.listeners);
    for metric in Metric::ALL {
        latency(&mut out, metric, m.latency.iter().filter(|h| h.metric == metric));
    }
    out
}

/// Which cycles of a worker's loop a metric reports.
type CyclesOf = fn(&RuntimeSnapshot) -> u64;
/// Which queue of a listener a metric reports.
type QueueOf = fn(&ListenerQueues) -> u32;

fn per_worker(out: &mut String, m: &MetricsSnapshot) {
    let frames = [
        ("dlisten_worker_rx_frames_total", "Frames the worker received from its RX queue", Counter::RxFrames),
        ("dlisten_worker_tx_frames_total", "Frames the worker handed to its TX queue", Counter::TxFrames),
    ];
    for (name, help, c) in frames {
        family(out, name, "counter", help);
        for (w, snap) in m.per_worker.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", snap.get(c));
        }
    }
    let loop_time: [(&str, &str, CyclesOf); 2] = [
        ("dlisten_worker_busy_seconds_total", "Seconds of the worker's loop that found work (TSC)", |r| r.busy_cycles),
        ("dlisten_worker_idle_seconds_total", "Seconds of the worker's loop that found nothing to do, idle sleep included (TSC)", |r| {
            r.idle_cycles
        }),
    ];
    for (name, help, cycles) in loop_time {
        family(out, name, "counter", help);
        for (w, r) in m.runtime.iter().enumerate() {
            let _ = writeln!(out, "{name}{{worker=\"{w}\"}} {}", seconds(cycles(r), r.tsc_hz));
        }
    }
    let name = "dlisten_worker_stage_seconds_total";
    family(out, name, "counter", "Seconds the worker spent in each stage of its loop (TSC)");
    for (w, r) in m.runtime.iter().enumerate() {
        for &s in Stage::ALL {
            let _ = writeln!(out, "{name}{{worker=\"{w}\",stage=\"{}\"}} {}", s.name(), seconds(r.stage(s).cycles, r.tsc_hz));
        }
    }
    let name = "dlisten_worker_stage_packets_total";
    family(out, name, "counter", "Packets each stage of the worker's loop handled");
    for (w, r) in m.runtime.iter().enumerate() {
        for &s in Stage::ALL {
            let _ = writeln!(out, "{name}{{worker=\"{w}\",stage=\"{}\"}} {}", s.name(), r.stage(s).packets);
        }
    }
}

fn seconds(cycles: u64, tsc_hz: u64) -> f64 {
    if tsc_hz == 0 {
        0.0
    } else {
        cycles as f64 / tsc_hz as f64
    }
}

fn per_listener(out: &mut String, listeners: &[ListenerQueues]) {
    let gauges: [(&str, &str, QueueOf); 3] = [
        ("dlisten_listener_accept_queue_length", "Connections waiting in the accept queue (ss -lnt Recv-Q)", |l| l.accept_queue),
        ("dlisten_listener_accept_queue_limit", "The accept queue's limit, backlog clamped to somaxconn (ss -lnt Send-Q)", |l| {
            l.accept_queue_max
        }),
        ("dlisten_listener_syn_queue_length", "Request socks in SYN_RECV (the SYN queue)", |l| l.syn_queue),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        for l in listeners {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(&l.label), value(l));
        }
    }
}

fn latency<'a>(out: &mut String, metric: Metric, hists: impl Iterator<Item = &'a LatencyHistogram>) {
    let name = latency_name(metric);
    family(out, &name, "histogram", latency_help(metric));
    for h in hists {
        let l = labels(&h.label);
        for (le, n) in BUCKETS_NS.iter().zip(h.buckets.cumulative.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{}\"}} {n}", *le as f64 / 1e9);
        }
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.buckets.count);
        let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.buckets.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{l}}} {}", h.buckets.count);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(l: &ListenerLabel) -> String {
    match l.cpu {
        Some(cpu) => format!("listener=\"{}\",cpu=\"{cpu}\"", escape_label(&l.listener)),
        None => format!("listener=\"{}\"", escape_label(&l.listener)),
    }
}

/// HELP text escapes `\` and newlines.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counters, Runtime};
    use crate::telemetry::latency::new_histogram;

    #[test]
    fn counter_names_are_nstat_names_in_snake_case() {
        assert_eq!(counter_name(Counter::TcpPassiveOpens), "dlisten_tcp_passive_opens_total");
        assert_eq!(counter_name(Counter::ListenOverflows), "dlisten_tcp_ext_listen_overflows_total");
        assert_eq!(counter_name(Counter::TcpReqQFullDrop), "dlisten_tcp_ext_tcp_req_q_full_drop_total");
        assert_eq!(counter_name(Counter::TcpChallengeAck), "dlisten_tcp_ext_tcp_challenge_ack_total");
        assert_eq!(counter_name(Counter::TcpTwKilled), "dlisten_tcp_ext_tw_killed_total");
        assert_eq!(counter_name(Counter::RxFrames), "dlisten_rx_frames_total");
        assert_eq!(counter_name(Counter::IcmpInEchos), "dlisten_icmp_in_echos_total");
        let mut names: Vec<String> = Counter::ALL.iter().map(|&c| counter_name(c)).collect();
        for n in &names {
            let valid = n.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            assert!(valid && !n.contains("__"), "{n}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT, "two counters share a metric name");
    }

    #[test]
    fn latency_names() {
        assert_eq!(latency_name(Metric::SynToSynAck), "dlisten_syn_to_synack_seconds");
        assert_eq!(latency_name(Metric::EstablishedToAccepted), "dlisten_established_to_accepted_seconds");
    }

    #[test]
    fn buckets_are_cumulative_and_end_at_the_count() {
        let mut h = new_histogram();
        for ns in [800, 1_000, 3_000, 3_000, 2_000_000, 70_000_000_000] {
            h.saturating_record(ns);
        }
        let b = LatencyBuckets::from_histogram(&h);
        let at = |le_ns: u64| b.cumulative[BUCKETS_NS.iter().position(|&x| x == le_ns).unwrap()];
        assert_eq!(at(1_000), 2, "800 ns and 1 µs");
        assert_eq!(at(2_500), 2);
        assert_eq!(at(5_000), 4);
        assert_eq!(at(2_500_000), 5);
        // 70 s is clamped to HdrHistogram's 60 s, whose bucket reaches past
        // the last bound: it counts in +Inf only.
        assert_eq!(at(60_000_000_000), 5);
        assert_eq!(b.count, 6);
        assert!(b.cumulative.windows(2).all(|w| w[0] <= w[1]));
        let sum = (800 + 1_000 + 3_000 + 3_000 + 2_000_000) as f64 / 1e9 + 60.0;
        assert!((b.sum_seconds - sum).abs() / sum < 0.001, "{} vs {sum}", b.sum_seconds);
    }

    fn snapshot() -> MetricsSnapshot {
        let w0 = Counters::new();
        w0.add(Counter::RxFrames, 10);
        w0.add(Counter::TcpPassiveOpens, 3);
        let w1 = Counters::new();
        w1.add(Counter::RxFrames, 5);
        w1.add(Counter::TxFrames, 4);
        let control = Counters::new();
        control.add(Counter::TcpMigrateReqSuccess, 2);
        let r = Runtime::new(1_000_000_000);
        r.busy(250_000_000);
        r.idle(750_000_000);
        r.stage(Stage::Rx, 32, 1_000);
        let mut h = new_histogram();
        h.saturating_record(4_000);
        let label = ListenerLabel { listener: "198.18.0.1:80".into(), cpu: Some(0) };
        MetricsSnapshot {
            uptime: Duration::from_millis(1500),
            per_worker: vec![w0.snapshot(), w1.snapshot()],
            control: control.snapshot(),
            runtime: vec![r.snapshot(), Runtime::new(1_000_000_000).snapshot()],
            listeners: vec![
                ListenerQueues { label: label.clone(), accept_queue: 7, accept_queue_max: 128, syn_queue: 2 },
                ListenerQueues {
                    label: ListenerLabel { listener: "a\"b\\c".into(), cpu: None },
                    accept_queue: 0,
                    accept_queue_max: 1,
                    syn_queue: 0,
                },
            ],
            latency: vec![LatencyHistogram { label, metric: Metric::SynToSynAck, buckets: LatencyBuckets::from_histogram(&h) }],
            serving: true,
        }
    }

    #[test]
    fn the_exposition_text() {
        let text = format_metrics(&snapshot());
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        has("dlisten_serving 1");
        has("dlisten_uptime_seconds 1.5");
        has("# HELP dlisten_tcp_passive_opens_total TcpPassiveOpens (nstat): Connections that went SYN_RECV -> ESTABLISHED (Tcp PassiveOpens).");
        has("# TYPE dlisten_tcp_passive_opens_total counter");
        has("dlisten_tcp_passive_opens_total 3");
        has("dlisten_rx_frames_total 15");
        has("dlisten_tcp_ext_tcp_migrate_req_success_total 2");
        has("dlisten_tcp_ext_syncookies_sent_total 0");
        has("dlisten_worker_rx_frames_total{worker=\"0\"} 10");
        has("dlisten_worker_rx_frames_total{worker=\"1\"} 5");
        has("dlisten_worker_tx_frames_total{worker=\"1\"} 4");
        has("dlisten_worker_busy_seconds_total{worker=\"0\"} 0.25");
        has("dlisten_worker_idle_seconds_total{worker=\"0\"} 0.75");
        has("dlisten_worker_stage_seconds_total{worker=\"0\",stage=\"rx\"} 0.000001");
        has("dlisten_worker_stage_packets_total{worker=\"0\",stage=\"rx\"} 32");
        has("dlisten_listener_accept_queue_length{listener=\"198.18.0.1:80\",cpu=\"0\"} 7");
        has("dlisten_listener_accept_queue_limit{listener=\"198.18.0.1:80\",cpu=\"0\"} 128");
        has("dlisten_listener_syn_queue_length{listener=\"198.18.0.1:80\",cpu=\"0\"} 2");
        has("dlisten_listener_accept_queue_length{listener=\"a\\\"b\\\\c\"} 0");
        has("# TYPE dlisten_syn_to_synack_seconds histogram");
        has("dlisten_syn_to_synack_seconds_bucket{listener=\"198.18.0.1:80\",cpu=\"0\",le=\"0.0000025\"} 0");
        has("dlisten_syn_to_synack_seconds_bucket{listener=\"198.18.0.1:80\",cpu=\"0\",le=\"0.000005\"} 1");
        has("dlisten_syn_to_synack_seconds_bucket{listener=\"198.18.0.1:80\",cpu=\"0\",le=\"60\"} 1");
        has("dlisten_syn_to_synack_seconds_bucket{listener=\"198.18.0.1:80\",cpu=\"0\",le=\"+Inf\"} 1");
        has("dlisten_syn_to_synack_seconds_count{listener=\"198.18.0.1:80\",cpu=\"0\"} 1");
        // A histogram family without samples still says what it is.
        has("# TYPE dlisten_request_to_response_seconds histogram");
        // Each family's HELP and TYPE come once, before its samples.
        let mut seen = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(seen.insert(l.split(' ').nth(2).unwrap().to_string()), "{l} twice");
        }
        assert_eq!(seen.len(), 2 + Counter::COUNT + 6 + 3 + Metric::ALL.len());
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn not_serving_is_zero() {
        let text = format_metrics(&MetricsSnapshot { serving: false, ..snapshot() });
        assert!(text.contains("\ndlisten_serving 0\n"), "{text}");
    }

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("TcpExtTCPACKSkippedChallenge"), "tcp_ext_tcpack_skipped_challenge");
        assert_eq!(snake_case("IpInReceives"), "ip_in_receives");
        assert_eq!(snake_case("TcpExtTW"), "tcp_ext_tw");
        assert_eq!(snake_case("Ip4Out"), "ip4_out");
    }
}
