//! DPDK's own telemetry client reads dlisten: `dpdk-telemetry.py -f PREFIX`
//! (Debian's dpdk-dev) against a running server, commands on stdin, one JSON
//! answer per line. The `/dlisten/...` commands answer with what real curl
//! clients did, next to EAL's `/ethdev/stats,0` for the same port; with
//! `--no-shconf` as the tests run EAL, the socket is still
//! /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TELEMETRY: &str = "/usr/bin/dpdk-telemetry.py";

/// Run the commands through dpdk-telemetry.py; one parsed answer per command.
fn telemetry(prefix: &str, commands: &[&str]) -> Vec<Value> {
    let mut child = Command::new(TELEMETRY)
        .args(["-f", prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (dpdk-dev: deploy/setup.sh)");
    let mut input = commands.join("\n");
    input.push('\n');
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "dpdk-telemetry.py: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(answers.len(), commands.len(), "{text}");
    answers
}

#[test]
fn dpdk_telemetry_reads_dlisten_counters_workers_listeners_and_latency() {
    require_root();
    let _g = serial();
    let ns = Netns::new("tel");
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &["--listen", "198.18.0.1:80", "--app", "http"] });
    let url = format!("http://{SERVER_IP}/");
    for _ in 0..3 {
        let curl = ns.run(&["curl", "-sS", "--max-time", "5", "-H", "Connection: close", &url]);
        assert!(curl.status.success(), "{}", String::from_utf8_lossy(&curl.stderr));
    }
    // The main thread publishes every 500 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answers = loop {
        let a = telemetry(&server.prefix, &["/dlisten/counters", "/dlisten/info", "/dlisten/workers", "/dlisten/worker,0", "/dlisten/listeners", "/ethdev/stats,0", "/dlisten/worker,7", "/dlisten/latency"]);
        let synack_samples = a[7]["/dlisten/latency"]
            .as_object()
            .into_iter()
            .flat_map(|rows| rows.values())
            .filter(|r| r["metric"] == "syn->synack" && r["listener"] != "all")
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum::<u64>();
        let done = a[0]["/dlisten/counters"]["TcpPassiveOpens"].as_u64() >= Some(3) && synack_samples >= 3;
        if done || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let counters = &answers[0]["/dlisten/counters"];
    assert_eq!(counters["TcpPassiveOpens"], 3, "{counters}");
    assert!(counters["DlRxFrames"].as_u64().unwrap() >= 9, "{counters}");
    let info = &answers[1]["/dlisten/info"];
    assert_eq!((info["workers"].as_u64(), info["listeners"].as_u64(), info["serving"].as_u64()), (Some(1), Some(1), Some(1)), "{info}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let w0 = &answers[2]["/dlisten/workers"]["0"];
    assert_eq!(w0["passive_opens"], 3, "{w0}");
    assert!(w0["busy_cycles"].as_u64().unwrap() > 0, "{w0}");
    assert_eq!(answers[3]["/dlisten/worker"]["TcpPassiveOpens"], 3, "{}", answers[3]);
    let l = &answers[4]["/dlisten/listeners"]["0"];
    assert_eq!((l["local"].as_str(), l["state"].as_str(), l["send_q"].as_u64()), (Some("198.18.0.1:80"), Some("LISTEN"), Some(4096)), "{l}");
    // EAL's own command on the same socket: the port saw the frames dlisten counted.
    let eth = &answers[5]["/ethdev/stats"];
    assert!(eth["ipackets"].as_u64().unwrap() >= counters["DlRxFrames"].as_u64().unwrap(), "{eth} vs {counters}");
    // The three handshakes' SYN -> SYN-ACK latencies, in ns.
    let rows: Vec<&Value> = answers[7]["/dlisten/latency"].as_object().expect("latency rows").values().collect();
    let synack = rows.iter().find(|r| r["metric"] == "syn->synack" && r["listener"] != "all").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(synack["count"], 3, "{synack}");
    let (p50, max) = (synack["p50_ns"].as_u64().unwrap(), synack["max_ns"].as_u64().unwrap());
    assert!(p50 > 0 && p50 <= max && max < 1_000_000_000, "{synack}");
    // A worker that does not exist: null.
    assert!(answers[6]["/dlisten/worker"].is_null(), "{}", answers[6]);
    // The commands are listed with their help.
    let help = telemetry(&server.prefix, &["/help,/dlisten/worker"]);
    assert!(help[0]["/help"]["/dlisten/worker"].as_str().unwrap().contains("worker id"), "{}", help[0]);
    server.stop();
}
