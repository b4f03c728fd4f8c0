//! Live changes to a running server: `dlisten set` and SIGHUP (the
//! `--config` file read again) change the http app's body and a
//! listener's backlog while curl (the kernel's TCP, in a namespace the
//! test makes) keeps fetching; a key that cannot change live is refused
//! by name with exit status 2, and changes nothing.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn fetch(ns: &Netns) -> String {
    let url = format!("http://{SERVER_IP}/");
    let out = ns.run(&["curl", "-sS", "--max-time", "5", "-H", "Connection: close", &url]);
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `dlisten set KEY VALUE` against `server`: (status, stdout, stderr).
fn set(server: &Server, key: &str, value: &str) -> (Option<i32>, String, String) {
    let out = Command::new(dlisten_bin())
        .args(["set", "--control-socket", &server.control_socket(), key, value])
        .output()
        .expect("run dlisten set");
    (out.status.code(), stdout(&out), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Wait (bounded) until the server has printed a line containing `needle`.
fn wait_for_output(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = server.output();
        if let Some(line) = out.lines().find(|l| l.contains(needle)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "no {needle:?} in the output:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(body: &str, extra: &str) -> String {
    format!("listen = [\"{SERVER_IP}:80\"]\napp = \"http\"\nhttp-body = {body:?}\n{extra}")
}

#[test]
fn set_and_sighup_change_a_running_server() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("rld");
    let dir = std::env::temp_dir().join(unique("dlrld"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dlisten.toml");
    std::fs::write(&file, config("one\n", "")).unwrap();
    let file_arg = file.display().to_string();
    let mut server = Server::start(&ns, ServerOpts { queues: 2, serve_args: &["--config", &file_arg] });
    assert_eq!(fetch(&ns), "one\n");

    // One key over the control socket.
    let (code, out, err) = set(&server, "http-body", "two\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "dlisten: changed http-body \"one\\n\" -> \"two\\n\"\n");
    for _ in 0..4 {
        assert_eq!(fetch(&ns), "two\n", "every worker serves the new body");
    }

    // A backlog: listen() on a listening socket adjusts it (ss's Send-Q).
    let (code, _, err) = set(&server, "backlog", "16");
    assert_eq!(code, Some(0), "{err}");
    let stats = Command::new(dlisten_bin()).args(["stats", "--socket", &server.control_socket()]).output().unwrap();
    let stats = stdout(&stats);
    let rows: Vec<&str> = stats.lines().filter(|l| l.starts_with("LISTEN")).collect();
    assert_eq!(rows.len(), 2, "a reuseport member per worker:\n{stats}");
    assert!(rows.iter().all(|r| r.split_whitespace().nth(2) == Some("16")), "{stats}");

    // A sysctl: with syncookies=2 every SYN is answered with a cookie, and
    // curl still gets its page (the workers took it between bursts).
    let sent = || -> u64 {
        let out = Command::new(dlisten_bin()).args(["stats", "--json", "--socket", &server.control_socket()]).output().unwrap();
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stats --json");
        v["counters"]["TcpExtSyncookiesSent"].as_u64().unwrap()
    };
    assert_eq!(sent(), 0);
    let (code, out, err) = set(&server, "syncookies", "2");
    assert_eq!((code, out.as_str()), (Some(0), "dlisten: changed syncookies \"1\" -> \"2\"\n"), "{err}");
    assert_eq!(fetch(&ns), "two\n");
    assert_eq!(sent(), 1, "the SYN got a cookie");
    let (code, _, err) = set(&server, "syncookies", "1");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(fetch(&ns), "two\n");
    assert_eq!(sent(), 1, "back to cookies only when the queue overflows");

    // Refused: a key fixed at start, an unknown key, a bad value. Exit 2, one line, nothing changed.
    for (key, value, says) in [
        ("workers", "4", "dlisten: workers cannot change while serving: restart dlisten for that; what can: somaxconn,"),
        ("listen", "198.18.0.1:81", "dlisten: listen cannot change while serving"),
        ("wrokers", "4", "dlisten: unknown key \"wrokers\""),
        ("syncookies", "7", "7 is not in 0..=2"),
    ] {
        let (code, out, err) = set(&server, key, value);
        assert_eq!(code, Some(2), "{key}: {err}");
        assert_eq!((out.as_str(), err.lines().count()), ("", 1), "{key}: {err}");
        assert!(err.contains(says), "{key}: {err}");
    }
    assert_eq!(fetch(&ns), "two\n");

    // SIGHUP: the file again (its body now), the sets undone.
    std::fs::write(&file, config("three\n", "")).unwrap();
    server.signal("HUP");
    let line = wait_for_output(&server, "dlisten: SIGHUP: reloaded");
    assert!(line.contains("http-body \"two\\n\" -> \"three\\n\"") && line.contains("backlog \"16\" -> \"4096\""), "{line}");
    assert_eq!(fetch(&ns), "three\n");

    // A file that changes what cannot change: refused by name, nothing applied.
    // (The harness's --workers is on the command line, which wins over the file.)
    std::fs::write(&file, config("four\n", "rx-desc = 512\n")).unwrap();
    server.signal("HUP");
    let line = wait_for_output(&server, "cannot change while serving");
    assert!(line.starts_with("dlisten: SIGHUP: --config ") && line.contains("rx-desc (\"1024\" -> \"512\")"), "{line}");
    assert!(line.ends_with("(nothing changed)"), "{line}");
    assert_eq!(fetch(&ns), "three\n");

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= 8, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
