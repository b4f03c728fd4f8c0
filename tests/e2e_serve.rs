//! Serving applications end to end: real Linux clients use dlisten without noticing it
//! is a user-space stack. curl gets the http response; wrk with
//! `Connection: close` runs a bounded time without socket errors; nc echoes
//! 1 MB intact; under an hping3 SYN flood with a tiny backlog curl still
//! succeeds through SYN cookies; a client that vanishes mid-transfer leaves
//! no connection behind once the retransmission timeouts are over.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn curl_and_wrk_against_http() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("http");
    let listen = format!("{SERVER_IP}:80");
    let mut server = Server::start(
        &ns,
        ServerOpts { queues: 2, serve_args: &["--listen", &listen, "--app", "http", "--http-body", "hello e2e\n"] },
    );
    let url = format!("http://{SERVER_IP}/");
    let curl = ns.run(&["curl", "-sS", "-i", "--max-time", "5", &url]);
    let body = stdout(&curl);
    assert!(curl.status.success(), "curl failed: {body}\n{}", String::from_utf8_lossy(&curl.stderr));
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.ends_with("hello e2e\n"), "{body}");

    // Keep-alive: several requests on one connection.
    let curl = ns.run(&["curl", "-sS", "--max-time", "5", &url, &url, &url]);
    assert_eq!(stdout(&curl), "hello e2e\n".repeat(3));

    // wrk, bounded in time, every request on a new connection.
    let wrk = ns.run(&["wrk", "-t1", "-c8", "-d3s", "--timeout", "2s", "-H", "Connection: close", &url]);
    let out = stdout(&wrk);
    assert!(wrk.status.success(), "{out}");
    assert!(!out.contains("Socket errors"), "wrk saw socket errors:\n{out}\n{}", server.output());
    assert!(!out.contains("Non-2xx"), "{out}");
    let requests: u64 = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 100, "too few requests: {out}");

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= requests, "{report}");
    assert_eq!(counter(&report, "DlConnLimitRefused"), 0, "{report}");
    assert_eq!(counter(&report, "DlConnMemRefused"), 0, "{report}");
    assert!(report.contains("request->response"), "no latency table:\n{report}");
}

#[test]
fn nc_echo_of_one_megabyte_is_intact() {
    echo_one_megabyte(&[]);
}

#[test]
fn nc_echo_of_one_megabyte_is_intact_on_application_threads() {
    echo_one_megabyte(&["--app-threads", "2"]);
}

fn echo_one_megabyte(extra: &[&str]) {
    require_root();
    let _serial = serial();
    let ns = Netns::new("echo");
    let listen = format!("{SERVER_IP}:7");
    let mut args = vec!["--listen", listen.as_str(), "--app", "echo"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &args });
    let dir = std::env::temp_dir().join(unique("dlecho"));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in");
    let output = dir.join("out");
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    let script = format!("timeout 20 nc -N {SERVER_IP} 7 < {} > {}", input.display(), output.display());
    let nc = ns.run(&["sh", "-c", &script]);
    assert!(nc.status.success(), "nc failed: {}\n{}", String::from_utf8_lossy(&nc.stderr), server.output());
    let echoed = std::fs::read(&output).unwrap();
    assert_eq!(echoed.len(), data.len(), "echoed {} of {} bytes", echoed.len(), data.len());
    assert!(echoed == data, "echoed bytes differ");
    let _ = std::fs::remove_dir_all(&dir);
    let report = server.stop();
    assert_eq!(counter(&report, "TcpPassiveOpens"), 1, "{report}");
}

#[test]
fn curl_succeeds_under_a_syn_flood_through_cookies() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("flood");
    let listen = format!("{SERVER_IP}:80");
    let mut server =
        Server::start(&ns, ServerOpts { queues: 2, serve_args: &["--listen", &listen, "--app", "http", "--backlog", "8"] });
    let mut flood = ns
        .cmd(&["hping3", "-q", "-S", "-p", "80", "-a", "198.18.0.3", "-i", "u200", "-c", "6000", SERVER_IP])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hping3");
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("http://{SERVER_IP}/");
    for _ in 0..10 {
        let curl = ns.run(&["curl", "-sS", "--max-time", "5", &url]);
        assert!(curl.status.success(), "curl failed under flood: {}", String::from_utf8_lossy(&curl.stderr));
        assert_eq!(stdout(&curl), "hello from dlisten\n");
    }
    let _ = flood.wait();
    let report = server.stop();
    assert!(counter(&report, "TcpExtSyncookiesSent") > 1000, "{report}");
    assert!(counter(&report, "TcpExtSyncookiesRecv") >= 1, "{report}");
}

#[test]
fn a_vanished_client_leaves_no_connection_behind() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("gone");
    let listen = format!("{SERVER_IP}:7");
    // Few retransmissions, so the connection gives up within seconds.
    let mut server = Server::start(
        &ns,
        ServerOpts { queues: 1, serve_args: &["--listen", &listen, "--app", "echo", "--retries2", "3"] },
    );
    // A client writes without reading, so the server's echo has unacknowledged
    // data in flight; then the client's link vanishes and the client is killed
    // (its kernel can no longer send FIN or RST).
    let script = format!(
        r#"
import socket, time
s = socket.create_connection(("{SERVER_IP}", 7), timeout=3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
for i in range(200):
    try:
        s.send(b"x" * 4096)
    except Exception:
        break
print("sent", flush=True)
time.sleep(30)
"#
    );
    let mut client = ns
        .cmd(&["/usr/bin/python3", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python client");
    std::thread::sleep(Duration::from_secs(2));
    ns.ok(&["ip", "link", "set", &server.tap, "down"]);
    let _ = client.kill();
    let _ = client.wait();
    // tcp_retries2 = 3: about 1 + 2 + 4 + 8 s of backoff (RTO >= 200 ms).
    std::thread::sleep(Duration::from_secs(20));
    let report = server.stop();
    assert_eq!(counter(&report, "TcpPassiveOpens"), 1, "{report}");
    assert_eq!(counter(&report, "DlConnsClosed"), 1, "the connection is still there:\n{report}");
    assert_eq!(counter(&report, "TcpExtTCPAbortOnTimeout"), 1, "{report}");
}

#[test]
fn application_threads_share_the_accept_queue() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("thr");
    let http = format!("{SERVER_IP}:80");
    let mut server = Server::start(
        &ns,
        ServerOpts { queues: 2, serve_args: &["--listen", &http, "--app", "http", "--app-threads", "2"] },
    );
    let url = format!("http://{SERVER_IP}/");
    let curl = ns.run(&["curl", "-sS", "--max-time", "5", &url, &url]);
    assert_eq!(stdout(&curl), "hello from dlisten\n".repeat(2), "{}", server.output());
    let wrk = ns.run(&["wrk", "-t1", "-c8", "-d2s", "--timeout", "2s", &url]);
    let out = stdout(&wrk);
    assert!(!out.contains("Socket errors"), "{out}\n{}", server.output());
    let report = server.stop();
    // One listener (no per-core members): a group of one.
    let ss: Vec<&str> = report.lines().filter(|l| l.starts_with("LISTEN")).collect();
    assert!(ss.iter().all(|l| l.split_whitespace().nth(5) == Some("1")), "{report}");
    assert!(counter(&report, "TcpPassiveOpens") >= 2, "{report}");
    assert!(report.contains("established->accepted"), "{report}");
    assert!(report.contains("request->response"), "{report}");
}

#[test]
fn event_log_and_live_stats() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("evl");
    let listen = format!("{SERVER_IP}:80");
    let dir = std::env::temp_dir().join(unique("dlevl"));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.jsonl");
    let log_arg = log.display().to_string();
    let hgrm = dir.join("hgrm");
    let hgrm_arg = hgrm.display().to_string();
    let mut server = Server::start(
        &ns,
        ServerOpts {
            queues: 1,
            serve_args: &["--listen", &listen, "--app", "http", "--event-log", &log_arg, "--hgrm-dir", &hgrm_arg],
        },
    );
    let url = format!("http://{SERVER_IP}/");
    let curl = ns.run(&["curl", "-sS", "--max-time", "5", "-H", "Connection: close", &url]);
    assert!(curl.status.success());

    // Live statistics from the running server, over its control socket.
    let stats = std::process::Command::new(dlisten_bin())
        .args(["stats", "--json", "--socket", &server.control_socket()])
        .output()
        .expect("dlisten stats");
    let json = stdout(&stats);
    assert!(stats.status.success(), "{json}\n{}", String::from_utf8_lossy(&stats.stderr));
    assert!(json.contains("TcpPassiveOpens"), "{json}");
    // The worker counted its own cycles: the curl's frames went through every receive stage.
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("stats JSON");
    let rt = &v["runtime"][0];
    assert!(rt["tsc_hz"].as_u64().unwrap_or(0) > 0, "{rt}");
    assert!(rt["busy_cycles"].as_u64().unwrap_or(0) > 0, "{rt}");
    assert!(rt["idle_cycles"].as_u64().unwrap_or(0) > 0, "{rt}");
    for (i, stage) in ["rx", "parse", "lookup", "tcp"].iter().enumerate() {
        let st = &rt["stages"][i];
        assert_eq!(st["stage"], *stage, "{rt}");
        assert!(st["packets"].as_u64().unwrap_or(0) >= 3, "curl's handshake went through {stage}: {rt}");
        assert!(st["cycles"].as_u64().unwrap_or(0) > 0, "{rt}");
    }
    let text = std::process::Command::new(dlisten_bin())
        .args(["stats", "--socket", &server.control_socket()])
        .output()
        .expect("dlisten stats");
    assert!(stdout(&text).contains("LISTEN"), "{}", stdout(&text));
    assert!(stdout(&text).contains("runtime worker 0 ("), "{}", stdout(&text));

    let report = server.stop();
    assert!(report.contains("runtime worker 0 (whole run): busy "), "{report}");
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let events: Vec<&str> = lines
        .lines()
        .filter_map(|l| l.split("\"event\":\"").nth(1).and_then(|r| r.split('"').next()))
        .collect();
    for want in ["listening", "accept", "data", "close"] {
        assert!(events.contains(&want), "no {want} event in {lines}\n{report}");
    }
    // "GET " in hex.
    assert!(lines.contains("47455420"), "{lines}");
    for stem in ["syn-synack", "syn-established", "established-accepted", "request-response"] {
        let f = hgrm.join(format!("{stem}.hgrm"));
        let body = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(body.contains("#[Mean"), "{} missing or without footer:\n{body}", f.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
