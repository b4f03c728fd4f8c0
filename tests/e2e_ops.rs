//! What an operator runs against: a server started from a `--config` file
//! (with a command-line flag overriding one of its keys) serves `/metrics`
//! and `/health` on a kernel socket of its namespace while real curl
//! clients use it; Python's `prometheus_client` parser (Debian's
//! python3-prometheus-client) reads every scrape, and the counters,
//! gauges and histograms it finds must say what the clients did.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;

const PY: &str = "/usr/bin/python3";
/// Inside the server's namespace: its own loopback.
const METRICS: &str = "127.0.0.1:9810";

/// Fetch a URL (argv[1]) or read stdin (no argument), parse it with the
/// prometheus_client text parser, print the families as JSON.
const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
if len(sys.argv) > 1:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        ctype, body = r.headers.get("Content-Type"), r.read().decode()
else:
    ctype, body = None, sys.stdin.read()
families = [
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(body)
]
print(json.dumps({"content_type": ctype, "families": families}))
"#;

fn parsed(out: std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the prometheus_client parser failed (is python3-prometheus-client installed? deploy/setup.sh):\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // A sample outside its family's names reads as an untyped family of its own.
    for f in m["families"].as_array().unwrap() {
        assert_ne!(f["type"], "untyped", "a sample outside its family: {f}");
    }
    m
}

/// Scrape `/metrics` from inside `ns` and parse it.
fn scrape(ns: &Netns) -> Value {
    parsed(ns.run(&[PY, "-c", PARSE, &format!("http://{METRICS}/metrics")]))
}

fn family<'a>(m: &'a Value, name: &str) -> &'a Value {
    m["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {m}"))
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(m: &Value, fam: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    family(m, fam)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {}", family(m, fam)))
}

/// Every histogram's buckets are cumulative and end at its count; returns
/// each histogram's count by (family, labels without le).
fn check_histograms(m: &Value) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for f in m["families"].as_array().unwrap().iter().filter(|f| f["type"] == "histogram") {
        let name = f["name"].as_str().unwrap();
        // (labels without le) -> [(le, value)]
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut totals: BTreeMap<String, f64> = BTreeMap::new();
        for s in f["samples"].as_array().unwrap() {
            let mut labels = s["labels"].as_object().unwrap().clone();
            let le = labels.remove("le");
            let key = Value::Object(labels).to_string();
            let v = s["value"].as_f64().unwrap();
            match (s["name"].as_str().unwrap().strip_prefix(name), le) {
                (Some("_bucket"), Some(le)) => {
                    let le: f64 = if le == "+Inf" { f64::INFINITY } else { le.as_str().unwrap().parse().unwrap() };
                    series.entry(key).or_default().push((le, v));
                }
                (Some("_count"), None) => {
                    totals.insert(key, v);
                }
                (Some("_sum"), None) => assert!(v >= 0.0, "{name}: {s}"),
                other => panic!("{name}: unexpected sample {s} ({other:?})"),
            }
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{name}{labels}: buckets not cumulative: {buckets:?}");
            let inf = buckets.last().unwrap();
            assert!(inf.0.is_infinite(), "{name}{labels}: no +Inf bucket");
            assert_eq!(Some(&inf.1), totals.get(&labels), "{name}{labels}: +Inf bucket is not the count");
            counts.insert((name.to_string(), labels), inf.1);
        }
    }
    counts
}

fn http_code(ns: &Netns, path: &str) -> String {
    let url = format!("http://{METRICS}{path}");
    String::from_utf8_lossy(&ns.run(&["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", &url]).stdout)
        .to_string()
}

#[test]
fn metrics_from_a_server_started_from_a_config_file() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("ops");
    let dir = std::env::temp_dir().join(unique("dlops"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dlisten.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"{SERVER_IP}:80\"]\napp = \"http\"\nhttp-body = \"from the config file\\n\"\n\
             # the command line's --workers 1 (from the harness) wins\nworkers = 2\nmetrics = \"{METRICS}\"\n"
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &["--config", &config_arg] });
    assert!(server.output().contains(&format!("dlisten: metrics on http://{METRICS}/metrics")), "{}", server.output());

    assert_eq!(http_code(&ns, "/health"), "200");
    assert_eq!(http_code(&ns, "/nope"), "404");
    let before = scrape(&ns);
    let opens_before = sample(&before, "dlisten_tcp_passive_opens", "dlisten_tcp_passive_opens_total", &[]);

    const REQUESTS: usize = 5;
    let url = format!("http://{SERVER_IP}/");
    for _ in 0..REQUESTS {
        let curl = ns.run(&["curl", "-sS", "--max-time", "5", "-H", "Connection: close", &url]);
        assert_eq!(String::from_utf8_lossy(&curl.stdout), "from the config file\n", "{}", String::from_utf8_lossy(&curl.stderr));
    }

    // Workers hand their latency samples over every ~500 ms: scrape until
    // the clients' requests are in (bounded: 10 s).
    let count = |counts: &BTreeMap<(String, String), f64>, fam: &str| {
        counts.iter().filter(|((f, _), _)| f == fam).map(|(_, n)| n).sum::<f64>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (m, counts) = loop {
        let m = scrape(&ns);
        let counts = check_histograms(&m);
        if count(&counts, "dlisten_request_to_response_seconds") >= REQUESTS as f64 || std::time::Instant::now() > deadline {
            break (m, counts);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(m["content_type"].as_str().unwrap_or_default().starts_with("text/plain; version=0.0.4"), "{}", m["content_type"]);
    // Counters, by their nstat names.
    let opens = sample(&m, "dlisten_tcp_passive_opens", "dlisten_tcp_passive_opens_total", &[]);
    assert!(opens >= opens_before + REQUESTS as f64, "passive opens {opens_before} -> {opens}");
    let fam = family(&m, "dlisten_tcp_passive_opens");
    assert_eq!(fam["type"], "counter");
    assert!(fam["help"].as_str().unwrap().starts_with("TcpPassiveOpens (nstat): "), "{fam}");
    assert!(sample(&m, "dlisten_tcp_in_segs", "dlisten_tcp_in_segs_total", &[]) >= 3.0 * REQUESTS as f64);
    assert_eq!(sample(&m, "dlisten_serving", "dlisten_serving", &[]), 1.0);

    // Per worker: one worker, since the command line overrode the file's 2.
    let rx = &family(&m, "dlisten_worker_rx_frames")["samples"];
    assert_eq!(rx.as_array().unwrap().len(), 1, "{rx}");
    assert!(sample(&m, "dlisten_worker_rx_frames", "dlisten_worker_rx_frames_total", &[("worker", "0")]) >= 3.0 * REQUESTS as f64);
    assert!(sample(&m, "dlisten_worker_tx_frames", "dlisten_worker_tx_frames_total", &[("worker", "0")]) >= 2.0 * REQUESTS as f64);
    let busy = sample(&m, "dlisten_worker_busy_seconds", "dlisten_worker_busy_seconds_total", &[("worker", "0")]);
    let idle = sample(&m, "dlisten_worker_idle_seconds", "dlisten_worker_idle_seconds_total", &[("worker", "0")]);
    assert!(busy > 0.0 && idle > 0.0, "busy {busy} idle {idle}");
    let rx_packets = sample(&m, "dlisten_worker_stage_packets", "dlisten_worker_stage_packets_total", &[("worker", "0"), ("stage", "rx")]);
    assert!(rx_packets >= 3.0 * REQUESTS as f64, "{rx_packets}");

    // Per listener: the per-core reuseport member of worker 0, nothing queued now.
    let listener = [("listener", "198.18.0.1:80"), ("cpu", "0")];
    assert_eq!(sample(&m, "dlisten_listener_accept_queue_length", "dlisten_listener_accept_queue_length", &listener), 0.0);
    assert_eq!(sample(&m, "dlisten_listener_syn_queue_length", "dlisten_listener_syn_queue_length", &listener), 0.0);
    assert_eq!(sample(&m, "dlisten_listener_accept_queue_limit", "dlisten_listener_accept_queue_limit", &listener), 4096.0);
    assert_eq!(family(&m, "dlisten_listener_accept_queue_length")["type"], "gauge");

    // Latency histograms: cumulative, and they saw the clients.
    for fam in ["dlisten_syn_to_established_seconds", "dlisten_request_to_response_seconds", "dlisten_established_to_accepted_seconds"] {
        assert!(count(&counts, fam) >= REQUESTS as f64, "{fam}: {counts:?}");
    }
    for (_, labels) in counts.keys() {
        assert!(labels.contains("\"listener\":\"198.18.0.1:80\""), "{labels}");
    }
    check_histograms(&before);

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") as f64 >= opens, "{report}");
    // Gone with the server.
    assert_eq!(http_code(&ns, "/health"), "000");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exposition text of a snapshot with two workers, two listeners (one
/// with a label that needs escaping) and a histogram, read back by the
/// prometheus_client parser without a server.
#[test]
fn the_exposition_text_parses_with_prometheus_client() {
    use dlisten::stats::{Counter, Counters, Metric, Runtime, Stage};
    use dlisten::telemetry::latency::new_histogram;
    use dlisten::telemetry::prometheus::{LatencyBuckets, LatencyHistogram, ListenerLabel, ListenerQueues};
    use dlisten::telemetry::{format_metrics, MetricsSnapshot};
    use std::io::Write;

    let w = [Counters::new(), Counters::new()];
    w[0].add(Counter::TcpPassiveOpens, 7);
    w[1].add(Counter::TcpPassiveOpens, 5);
    w[1].add(Counter::SyncookiesSent, 100);
    let r = Runtime::new(2_000_000_000);
    r.busy(1_000_000_000);
    r.stage(Stage::Tcp, 10, 5_000);
    let mut h = new_histogram();
    for ns in [700, 12_000, 12_000, 3_000_000, 90_000_000_000] {
        h.saturating_record(ns);
    }
    let odd = ListenerLabel { listener: "odd \"name\" \\ here\n".into(), cpu: None };
    let snap = MetricsSnapshot {
        uptime: std::time::Duration::from_secs(3),
        per_worker: w.iter().map(|c| c.snapshot()).collect(),
        control: Counters::new().snapshot(),
        runtime: vec![r.snapshot(), Runtime::new(2_000_000_000).snapshot()],
        listeners: vec![
            ListenerQueues { label: ListenerLabel { listener: "198.18.0.1:80".into(), cpu: Some(1) }, accept_queue: 3, accept_queue_max: 8, syn_queue: 1 },
            ListenerQueues { label: odd.clone(), accept_queue: 0, accept_queue_max: 1, syn_queue: 0 },
        ],
        latency: vec![LatencyHistogram { label: odd, metric: Metric::SynToSynAck, buckets: LatencyBuckets::from_histogram(&h) }],
        serving: true,
    };
    let mut child = std::process::Command::new(PY)
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    child.stdin.take().unwrap().write_all(format_metrics(&snap).as_bytes()).unwrap();
    let m = parsed(child.wait_with_output().unwrap());

    assert_eq!(sample(&m, "dlisten_tcp_passive_opens", "dlisten_tcp_passive_opens_total", &[]), 12.0);
    assert_eq!(sample(&m, "dlisten_tcp_ext_syncookies_sent", "dlisten_tcp_ext_syncookies_sent_total", &[]), 100.0);
    let counters = m["families"].as_array().unwrap().iter().filter(|f| f["type"] == "counter").count();
    assert_eq!(counters, Counter::COUNT + 6, "every counter and the six per-worker families");
    assert_eq!(sample(&m, "dlisten_worker_busy_seconds", "dlisten_worker_busy_seconds_total", &[("worker", "0")]), 0.5);
    assert_eq!(sample(&m, "dlisten_listener_accept_queue_length", "dlisten_listener_accept_queue_length", &[("cpu", "1")]), 3.0);
    // The escaped label comes back as it was.
    let odd = [("listener", "odd \"name\" \\ here\n")];
    assert_eq!(sample(&m, "dlisten_listener_accept_queue_limit", "dlisten_listener_accept_queue_limit", &odd), 1.0);
    let counts = check_histograms(&m);
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [5.0]);
    assert_eq!(sample(&m, "dlisten_syn_to_synack_seconds", "dlisten_syn_to_synack_seconds_bucket", &[("le", "0.000001")]), 1.0);
    assert_eq!(sample(&m, "dlisten_syn_to_synack_seconds", "dlisten_syn_to_synack_seconds_bucket", &[("le", "0.000025")]), 3.0);
    assert_eq!(sample(&m, "dlisten_syn_to_synack_seconds", "dlisten_syn_to_synack_seconds_bucket", &[("le", "60")]), 4.0);
}

/// `serve --check` reads the shipped example config (as the systemd unit
/// does) and exits; a bad key stops it with the file's line.
#[test]
fn serve_check_reads_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dlisten.toml");
    let ok = std::process::Command::new(dlisten_bin()).args(["serve", "--config", example, "--check"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "dlisten: configuration ok\n");

    let dir = std::env::temp_dir().join(unique("dlcheck"));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "addr = [\"198.18.0.1\"]\n\nsyncookies = 3\n").unwrap();
    let out = std::process::Command::new(dlisten_bin())
        .args(["serve", "--config", bad.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.starts_with(&format!("dlisten: {}:3: syncookies: invalid value '3'", bad.display())), "{stderr}");
    // The command line fixes what the file got wrong.
    let fixed = std::process::Command::new(dlisten_bin())
        .args(["serve", "--config", bad.to_str().unwrap(), "--syncookies", "2", "--check"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!fixed.status.success(), "a bad key is an error even when the command line overrides it");
}
