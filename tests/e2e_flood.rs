//! `dlisten flood` against `dlisten serve`: two DPDK processes on one
//! machine joined by `net_memif` (shared memory; works with `--no-huge`:
//! the only complaint is memif's "Failed to register mp action callback",
//! harmless with `--no-shconf`). No kernel interface is involved, so
//! nothing can leave the machine; addresses are 198.18.x.y all the same.

mod common;
use common::*;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EAL: [&str; 7] = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--log-level", "lib.eal:error"];

/// `dlisten serve` on the server side of a memif socket; SIGINT on stop.
struct MemifServer {
    child: Child,
    socket: String,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl MemifServer {
    fn start(serve_args: &[&str]) -> MemifServer {
        std::fs::create_dir_all("/run/dlisten").unwrap();
        let socket = format!("/run/dlisten/{}.memif", unique("dlfl"));
        let prefix = unique("dlflsrv");
        let vdev = format!("net_memif0,role=server,socket={socket}");
        let control = format!("/run/dlisten/{prefix}.sock");
        let mut cmd = Command::new(dlisten_bin());
        cmd.args(["serve", "--addr", SERVER_IP, "--idle-sleep-us", "20", "--control-socket", &control])
            .args(serve_args)
            .arg("--")
            .args(EAL)
            .args(["--file-prefix", &prefix, "--vdev", &vdev]);
        let Captured { child, output, readers, ready: ready_rx } = spawn_captured(&mut cmd);
        let mut server = MemifServer { child, socket, output, readers };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!("dlisten serve did not become ready; output:\n{}", server.output.lock().unwrap());
        }
        server
    }

    /// `dlisten flood` on the client side; its whole output.
    fn flood(&self, args: &[&str]) -> String {
        self.flood_to(&format!("{SERVER_IP}:80"), "198.18.1.0/24", args)
    }

    /// `dlisten flood` to `dst` from the prefix `src`; its whole output.
    fn flood_to(&self, dst: &str, src: &str, args: &[&str]) -> String {
        let prefix = unique("dlflcli");
        let vdev = format!("net_memif0,role=client,socket={}", self.socket);
        let out = Command::new("timeout")
            .arg("40")
            .arg(dlisten_bin())
            .arg("flood")
            .args(["--dst", dst, "--src", src])
            .args(args)
            .arg("--")
            .args(EAL)
            .args(["--file-prefix", &prefix, "--vdev", &vdev])
            .output()
            .expect("spawn dlisten flood");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "dlisten flood failed ({}):\n{text}", out.status);
        text
    }

    fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        let out = self.output.lock().unwrap().clone();
        out
    }
}

impl Drop for MemifServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn percent(out: &str, name: &str) -> f64 {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next()?.parse::<f64>().ok()).flatten()
        })
        .next_back()
        .unwrap_or(-1.0)
}

#[test]
fn syn_flood_gets_syn_acks_from_cookies() {
    require_root();
    let _serial = serial();
    let server = MemifServer::start(&["--listen", "198.18.0.1:80", "--syncookies", "2"]);
    let dir = std::env::temp_dir().join(unique("dlflhgrm"));
    let json = dir.join("summary.json");
    let out = server.flood(&[
        "--mode", "syn", "--count", "5000", "--rate", "20000", "--duration", "10", "--hgrm-dir", dir.to_str().unwrap(),
        "--json", json.to_str().unwrap(),
    ]);
    let report = server.stop();
    // 5000 SYNs at 20000/s take a quarter of a second, then the drain
    // waits for the last replies: the rate is over the sending window.
    let syn_rate = percent(&out, "SynPerSec");
    assert!((15_000.0..=25_000.0).contains(&syn_rate), "SynPerSec {syn_rate} is not the --rate:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["counters"]["SynSent"], 5000, "{v}");
    assert_eq!(v["counters"]["SynAckReceived"].as_u64(), Some(counter(&out, "SynAckReceived")), "{v}");
    // The generator's own runtime: every SYN went through the tx stage.
    let rt = &v["runtime"];
    assert_eq!(rt["stages"][3]["stage"], "tx", "{v}");
    assert!(rt["stages"][3]["packets"].as_u64().unwrap() >= 5000, "{v}");
    assert!(rt["busy_percent"].as_f64().unwrap() > 0.0 && rt["capacity_pps"].as_f64().unwrap() > 0.0, "{v}");
    assert!(out.contains("runtime (generator): busy "), "{out}");
    assert_eq!(counter(&out, "SynSent"), 5000, "{out}");
    assert!(counter(&out, "SynAckReceived") >= 4950, "fewer than 99% SYN-ACKs:\n{out}\n{report}");
    assert_eq!(counter(&out, "BadAck"), 0, "{out}");
    assert!(out.contains("syn->synack (flood)"), "no latency table:\n{out}");
    assert!(std::fs::read_to_string(dir.join("flood-syn-synack.hgrm")).unwrap().contains("Total count"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(counter(&report, "TcpExtSyncookiesSent") >= counter(&out, "SynAckReceived"), "{report}");
    assert_eq!(counter(&report, "TcpPassiveOpens"), 0, "a SYN flood opens nothing:\n{report}");
}

#[test]
fn handshakes_complete_and_match_passive_opens() {
    require_root();
    let _serial = serial();
    let server = MemifServer::start(&["--listen", "198.18.0.1:80", "--app", "http"]);
    let out = server.flood(&[
        "--mode",
        "handshake",
        "--count",
        "2000",
        "--concurrency",
        "32",
        "--duration",
        "15",
        "--request",
        "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n",
    ]);
    let report = server.stop();
    let completed = counter(&out, "HandshakesCompleted");
    assert_eq!(counter(&out, "HandshakesAttempted"), 2000, "{out}");
    assert!(completed >= 1980, "fewer than 99% handshakes:\n{out}\n{report}");
    assert!(counter(&out, "Responses") >= 1980, "the http app answered too few requests:\n{out}");
    assert_eq!(counter(&report, "TcpPassiveOpens"), completed, "server:\n{report}\nflood:\n{out}");
    assert!(out.contains("connect (syn->synack)"), "{out}");
    // Every attempt ends one way; a retransmitted SYN is still one attempt.
    let ended = ["HandshakesCompleted", "HandshakesRefused", "HandshakesTimedOut", "HandshakesUnfinished"].map(|n| counter(&out, n));
    assert_eq!(ended.iter().sum::<u64>(), 2000, "{out}");
}

/// dlisten against dlisten over IPv6: a dual-stack `[::]:80` listener, the
/// generator's IPv6 handshakes with a request each, then a mixed load that
/// pushes the server into SYN cookies over IPv6.
#[test]
fn ipv6_handshakes_and_cookies_between_generator_and_server() {
    require_root();
    let _serial = serial();
    let server = MemifServer::start(&[
        "--addr", "2001:2::1", "--listen", "[::]:80", "--app", "http", "--backlog", "64", "--max-syn-backlog", "64",
    ]);
    let out = server.flood_to("[2001:2::1]:80", "2001:2:0:1::/120", &[
        "--mode", "handshake", "--count", "1000", "--concurrency", "16", "--duration", "15",
        "--request", "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n",
    ]);
    let completed = counter(&out, "HandshakesCompleted");
    assert_eq!(counter(&out, "HandshakesAttempted"), 1000, "{out}");
    assert!(completed >= 990, "fewer than 99% IPv6 handshakes:\n{out}");
    assert!(counter(&out, "Responses") >= 990, "the http app answered too few IPv6 requests:\n{out}");
    let mixed = server.flood_to("[2001:2::1]:80", "2001:2:0:1::/120", &[
        "--mode", "mixed", "--count", "10000", "--rate", "5000", "--concurrency", "8", "--duration", "10",
    ]);
    let report = server.stop();
    assert!(percent(&mixed, "HandshakePercent") >= 99.0, "legitimate IPv6 load suffered:\n{mixed}\n{report}");
    assert!(counter(&report, "TcpExtSyncookiesSent") > 0, "the IPv6 flood should have pushed the server into cookies:\n{report}");
    assert_eq!(counter(&report, "TcpPassiveOpens"), completed + counter(&mixed, "HandshakesCompleted"), "server:\n{report}");
}

#[test]
fn mixed_load_keeps_legitimate_handshakes_working() {
    require_root();
    let _serial = serial();
    // A small backlog: the flood fills the SYN queue, cookies take over.
    let server = MemifServer::start(&["--listen", "198.18.0.1:80", "--backlog", "64", "--max-syn-backlog", "64"]);
    let out = server.flood(&["--mode", "mixed", "--count", "20000", "--rate", "10000", "--concurrency", "8", "--duration", "10"]);
    let report = server.stop();
    assert!(counter(&out, "HandshakesAttempted") > 100, "{out}");
    assert!(percent(&out, "HandshakePercent") >= 99.0, "legitimate load suffered:\n{out}\n{report}");
    assert!(percent(&out, "SynAckPercent") >= 99.0, "{out}");
    assert!(counter(&report, "TcpExtSyncookiesSent") > 0, "the flood should have pushed the server into cookies:\n{report}");
}

#[test]
fn addresses_outside_the_benchmark_range_are_refused() {
    for (dst, src, says) in [
        ("192.0.2.1:80", "198.18.1.0/24", "198.18.0.0/15"),
        ("198.18.0.1:80", "10.0.0.0/24", "198.18.0.0/15"),
        ("198.18.1.5:80", "198.18.1.0/24", "inside --src"),
        ("[2001:db8::1]:80", "2001:2:0:1::/120", "outside 2001:2::/48"),
        ("[2001:2::1]:80", "2001:db8::/64", "outside 2001:2::/48"),
        ("[2001:2::1]:80", "198.18.1.0/24", "different address families"),
        ("198.18.0.1:80", "2001:2:0:1::/64", "different address families"),
    ] {
        let out = Command::new(dlisten_bin()).args(["flood", "--dst", dst, "--src", src, "--", "--no-pci"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dst} from {src}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{dst} from {src}: {err}");
        assert!(!err.contains("EAL"), "refused before EAL starts: {err}");
    }
}
