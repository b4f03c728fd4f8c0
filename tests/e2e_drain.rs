//! Slow clients and graceful shutdown, end to end.
//! - slowhttptest (slowloris: heads that never end) from one address, with
//!   more connections than that address may hold: the extra ones are reset,
//!   the slow ones are closed at the header timeout, and curl from another
//!   address is served all along;
//! - SIGTERM during a slow download: /health turns unhealthy at once, new
//!   connections are refused, the download completes intact, and the exit
//!   report says it finished;
//! - SIGTERM during a download longer than --drain-timeout: the server stops
//!   at the timeout and the report says the connection was cut;
//! - both SIGTERM cases again with the app on an application thread
//!   (`--app-threads 1`) instead of per core.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A second client address on the kernel side, which slowhttptest does not use.
const CURL_IP: &str = "198.18.0.3";
const METRICS: &str = "127.0.0.1:9464";

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The largest value of `column` in slowhttptest's per-second CSV
/// (`-g -o prefix` writes prefix.csv: "Seconds,Closed,Pending,Connected,...").
fn slowhttptest_max(csv: &str, column: &str) -> Option<u64> {
    let mut lines = csv.lines();
    let at = lines.next()?.split(',').position(|c| c.trim().eq_ignore_ascii_case(column))?;
    lines.filter_map(|l| l.split(',').nth(at)?.trim().parse().ok()).max()
}

#[test]
fn slowloris_is_timed_out_and_capped_while_curl_is_served() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("slow");
    let listen = format!("{SERVER_IP}:80");
    let mut server = Server::start(
        &ns,
        ServerOpts {
            queues: 1,
            serve_args: &[
                "--listen",
                &listen,
                "--app",
                "http",
                "--http-header-timeout",
                "2",
                "--http-keepalive-timeout",
                "3",
                "--max-conns-per-source",
                "20",
            ],
        },
    );
    ns.ok(&["ip", "addr", "add", &format!("{CURL_IP}/24"), "dev", &server.tap]);
    let url = format!("http://{SERVER_IP}/");
    let dir = std::env::temp_dir().join(unique("dlslow"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("slowloris").display().to_string();
    // 60 connections at 30 a second, a header line every second, for 8 s:
    // three times what one address may hold, each head slower than the
    // header timeout allows.
    let slow = ns
        .cmd(&["slowhttptest", "-H", "-c", "60", "-r", "30", "-i", "1", "-x", "4", "-l", "8", "-p", "2", "-g", "-o", &prefix, "-u", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn slowhttptest");
    let started = Instant::now();
    let slow = std::thread::spawn(move || {
        let out = slow.wait_with_output().expect("slowhttptest");
        (out, started.elapsed())
    });
    // From 1 s on, while the address holds its 20 slow connections.
    std::thread::sleep(Duration::from_secs(1));
    let mut served = 0;
    for _ in 0..5 {
        let curl = ns.run(&["curl", "-sS", "--interface", CURL_IP, "--max-time", "3", &url]);
        assert!(curl.status.success(), "curl during slowloris: {}\n{}", String::from_utf8_lossy(&curl.stderr), server.output());
        assert_eq!(stdout(&curl), "hello from dlisten\n");
        served += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let (slow, slow_ran) = slow.join().expect("slowhttptest waiter");
    let slow_out = format!("{}{}", stdout(&slow), String::from_utf8_lossy(&slow.stderr));
    let report = server.stop();
    assert_eq!(served, 5);
    let refused = counter(&report, "DlConnPerSourceRefused");
    let timed_out = counter(&report, "DlHttpHeaderTimeouts");
    assert!(refused > 0, "no connection over the per-source cap was refused:\n{report}\n{slow_out}");
    // Every slow connection that got in (the address's 20) was closed at
    // the header timeout.
    assert!(timed_out >= 20, "too few header timeouts ({timed_out}):\n{report}\n{slow_out}");
    let csv = std::fs::read_to_string(format!("{prefix}.csv")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    // slowhttptest's own view: its connections were closed by the server,
    // so it ended before its 8 s (it stops when none is left open).
    let closed = slowhttptest_max(&csv, "closed").unwrap_or(0);
    println!("refused {refused}, header timeouts {timed_out}, slowhttptest closed {closed}, ran {slow_ran:?}");
    assert!(closed >= 20, "slowhttptest saw {closed} closed:\n{csv}\n{slow_out}\n{report}");
    assert!(slow_ran >= Duration::from_secs(2), "closed before the header timeout: {slow_ran:?}\n{report}");
    assert!(slow_ran < Duration::from_millis(7500), "slowhttptest ran {slow_ran:?}: connections left open\n{slow_out}\n{report}");
    // Only the slow ones: curl's requests were answered, not timed out.
    assert_eq!(counter(&report, "DlHttpBodyTimeouts"), 0, "{report}");
}

#[test]
fn sigterm_lets_a_slow_download_finish() {
    slow_download_finishes("drain", &[]);
}

#[test]
fn sigterm_lets_a_slow_download_finish_on_app_threads() {
    slow_download_finishes("drainth", &["--app-threads", "1"]);
}

/// `extra`: more `dlisten serve` flags (how the app is run).
fn slow_download_finishes(ns_name: &str, extra: &[&str]) {
    require_root();
    let _serial = serial();
    let ns = Netns::new(ns_name);
    // A small receive buffer on the client, so the download is held back
    // by its window: the server still has most of it when SIGTERM comes.
    ns.ok(&["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4096 4096"]);
    let listen = format!("{SERVER_IP}:80");
    let body: String = (0..100_000u32).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    let mut args = vec!["--listen", &listen, "--app", "http", "--http-body", &body, "--metrics", METRICS, "--drain-timeout", "20"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&ns, ServerOpts { queues: 2, serve_args: &args });
    let url = format!("http://{SERVER_IP}/");
    let health = format!("http://{METRICS}/health");
    let code = |ns: &Netns| stdout(&ns.run(&["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", &health]));
    assert_eq!(code(&ns), "200");
    let dir = std::env::temp_dir().join(unique("dldrain"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body");
    let file_arg = file.display().to_string();
    // 100 kB at 25 kB/s: about 4 s.
    let download = ns
        .cmd(&["curl", "-sS", "--limit-rate", "25k", "--max-time", "30", "-o", &file_arg, &url])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    std::thread::sleep(Duration::from_secs(1));
    let term_at = Instant::now();
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(code(&ns), "503", "/health still healthy while draining:\n{}", server.output());
    let refused = ns.run(&["curl", "-sS", "--max-time", "3", &url]);
    // curl's exit status 7: failed to connect (the SYN got RST).
    assert_eq!(refused.status.code(), Some(7), "a new connection was not refused: {}", String::from_utf8_lossy(&refused.stderr));
    let download = download.wait_with_output().expect("curl");
    assert!(download.status.success(), "download failed: {}", String::from_utf8_lossy(&download.stderr));
    let got = std::fs::read(&file).unwrap();
    assert!(got == body.as_bytes(), "download damaged: {} bytes of {}", got.len(), body.len());
    let report = server.stop_with("", Duration::from_secs(25));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(term_at.elapsed() < Duration::from_secs(15), "the drain did not end when the download did:\n{report}");
    assert!(report.contains("dlisten: draining for up to 20 s"), "{report}");
    assert!(report.contains("drain: 1 connections finished, 0 cut"), "{report}");
}

#[test]
fn a_download_longer_than_the_drain_timeout_is_cut() {
    long_download_is_cut("cut", &[]);
}

#[test]
fn a_download_longer_than_the_drain_timeout_is_cut_on_app_threads() {
    long_download_is_cut("cutth", &["--app-threads", "1"]);
}

fn long_download_is_cut(ns_name: &str, extra: &[&str]) {
    require_root();
    let _serial = serial();
    let ns = Netns::new(ns_name);
    ns.ok(&["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4096 4096"]);
    let listen = format!("{SERVER_IP}:80");
    let body = "x".repeat(100_000);
    let mut args = vec!["--listen", &listen, "--app", "http", "--http-body", &body, "--drain-timeout", "1"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &args });
    let url = format!("http://{SERVER_IP}/");
    // 100 kB at 10 kB/s would take 10 s, far past the drain's 1 s; curl
    // gives up at 6 s, as the server is gone without a word.
    let download = ns
        .cmd(&["curl", "-sS", "--limit-rate", "10k", "--max-time", "6", "-o", "/dev/null", &url])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    std::thread::sleep(Duration::from_secs(1));
    let term_at = Instant::now();
    server.signal("TERM");
    let report = server.stop_with("", Duration::from_secs(10));
    let stopped_in = term_at.elapsed();
    let download = download.wait_with_output().expect("curl");
    assert!(stopped_in < Duration::from_secs(4), "the drain outlived its timeout ({stopped_in:?}):\n{report}");
    assert!(report.contains("drain: 0 connections finished, 1 cut"), "{report}");
    assert!(!download.status.success(), "the download was not cut");
}
