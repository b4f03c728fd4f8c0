//! `dlisten stats` against a control socket served in this process by a fake
//! serve: the binary's text, JSON, --watch/--count and its error message.

use dlisten::engine::socket::ListenerInfo;
use dlisten::stats::{Counter, Counters, Runtime, Stage};
use dlisten::telemetry::{ControlServer, StatsSnapshot, StatsSource};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Fake(AtomicU64);

impl StatsSource for Fake {
    fn snapshot(&self) -> StatsSnapshot {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        let w = Counters::new();
        w.add(Counter::RxFrames, 500 * n);
        w.add(Counter::TcpPassiveOpens, 50 * n);
        StatsSnapshot {
            uptime: Duration::from_secs(n),
            per_worker: vec![w.snapshot()],
            listeners: vec![ListenerInfo {
                id: 1,
                state: "LISTEN",
                recv_q: 0,
                send_q: 4096,
                local: "198.18.0.1:80".parse().unwrap(),
                v6only: false,
                reuseport_group: 0,
                group_size: 1,
                syn_qlen: 0,
                fastopen_max_qlen: 0,
                incoming_cpu: None,
            }],
            runtime: vec![runtime(n)],
            ..Default::default()
        }
    }
}

/// `n` seconds of a worker at 1 GHz, busy a tenth of the time, 500 packets a second.
fn runtime(n: u64) -> dlisten::stats::RuntimeSnapshot {
    let r = Runtime::new(1_000_000_000);
    r.stage(Stage::Rx, 500 * n, 20_000 * n);
    r.busy(100_000_000 * n);
    r.idle(900_000_000 * n);
    r.snapshot()
}

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dlisten-cli-{}-{name}.sock", std::process::id()))
}

fn dlisten(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dlisten")).args(args).output().expect("run dlisten");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn stats_text_json_and_watch() {
    let path = socket_path("ok");
    let server = ControlServer::start(&path, Arc::new(Fake(AtomicU64::new(0)))).unwrap();
    let p = path.to_str().unwrap();

    let (ok, out, err) = dlisten(&["stats", "--socket", p]);
    assert!(ok, "{err}");
    assert!(out.starts_with("uptime 1.0 s"), "{out}");
    assert!(out.contains("worker 0 rx 500.0 frames/s"), "{out}");
    assert!(out.contains("  TcpPassiveOpens                  50\n"), "{out}");
    assert!(out.contains("198.18.0.1:80"), "{out}");
    assert!(out.contains("runtime worker 0 (since start): busy 10.0%, capacity 0.005 Mpps per busy second, 40 clocks per received packet"), "{out}");

    let (ok, out, err) = dlisten(&["stats", "--socket", p, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["counters"]["DlRxFrames"], 1000);
    assert_eq!(v["listeners"][0]["send_q"], 4096);

    let (ok, out, err) = dlisten(&["stats", "--socket", p, "--watch", "0.1", "--count", "3"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("uptime ").count(), 3, "{out}");
    assert!(out.contains("uptime 5.0 s (rates: last 1.0 s)"), "{out}");
    drop(server);
}

#[test]
fn stats_without_a_server_says_so() {
    let path = socket_path("none");
    let (ok, out, err) = dlisten(&["stats", "--socket", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(
        err.trim(),
        format!("dlisten: no dlisten running with control socket {} (is serve running? pass --socket)", path.display())
    );
}
