//! The edges an operator meets when things go wrong:
//! - after `kill -9`, a new `serve` with the same `--file-prefix` starts
//!   without manual cleanup and names what it removed (the control socket
//!   file, EAL's runtime files); a second serve while one runs is refused
//!   before EAL, and the first keeps serving.

mod common;
use common::*;
use std::path::Path;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn curl_ok(ns: &Netns, server: &Server) {
    let url = format!("http://{SERVER_IP}/");
    let curl = ns.run(&["curl", "-sS", "--max-time", "5", &url]);
    assert!(
        curl.status.success(),
        "curl failed: {}\n{}",
        String::from_utf8_lossy(&curl.stderr),
        server.output()
    );
    assert_eq!(stdout(&curl), "hello from dlisten\n");
}

/// EAL's runtime directory, removed on drop.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_restart_after_kill_9_cleans_up_and_says_what() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("crash");
    let prefix = unique("dlcrash");
    let runtime_dir = RuntimeDir(format!("/var/run/dpdk/{prefix}"));
    let listen = format!("{SERVER_IP}:80");
    let args = ["--listen", listen.as_str(), "--app", "http"];
    let mut first = Server::start_prefixed(&ns, ServerOpts { queues: 1, serve_args: &args }, &prefix, true);
    curl_ok(&ns, &first);
    let socket = first.control_socket();
    let config = format!("{}/config", runtime_dir.0);
    assert!(Path::new(&socket).exists() && Path::new(&config).exists());
    let out = first.kill9();
    assert!(!out.contains("removed stale"), "a clean start has nothing to remove:\n{out}");
    // What the dead process left.
    assert!(Path::new(&socket).exists(), "the control socket file stays after kill -9");
    assert!(Path::new(&config).exists(), "EAL's config file stays after kill -9");

    let mut second = Server::start_prefixed(&ns, ServerOpts { queues: 1, serve_args: &args }, &prefix, true);
    let out = second.output();
    assert_eq!(
        out.lines().filter(|l| l.starts_with(&format!("dlisten: removed stale control socket {socket} "))).count(),
        1,
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("dlisten: removed stale DPDK runtime files in {} ", runtime_dir.0)))
        .unwrap_or_else(|| panic!("no line about EAL's runtime files:\n{out}"));
    assert!(line.split_whitespace().any(|w| w == "config"), "{line}");
    curl_ok(&ns, &second);

    // A third with the same prefix while the second runs: refused in one
    // line before EAL, and the second goes on serving.
    let bin = dlisten_bin().display().to_string();
    let third = ns.run(&[
        &bin, "serve", "--addr", SERVER_IP, "--listen", &listen, "--", "--no-huge", "-m", "512", "--no-pci", "--file-prefix",
        &prefix, "--vdev", "net_tap0,iface=dlcrash3",
    ]);
    let err = String::from_utf8_lossy(&third.stderr).to_string();
    assert_eq!(third.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{socket} is in use by a running dlisten")), "{err}");
    assert!(!stdout(&third).contains("DPDK"), "refused before EAL: {}", stdout(&third));
    curl_ok(&ns, &second);

    let report = second.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= 2, "{report}");
    assert!(!Path::new(&socket).exists(), "a clean stop removes the control socket");
}

#[test]
fn a_live_primary_of_the_same_prefix_is_named() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("crashp");
    let prefix = unique("dlcrashp");
    let _runtime_dir = RuntimeDir(format!("/var/run/dpdk/{prefix}"));
    let listen = format!("{SERVER_IP}:80");
    let args = ["--listen", listen.as_str(), "--app", "http"];
    let mut first = Server::start_prefixed(&ns, ServerOpts { queues: 1, serve_args: &args }, &prefix, true);
    // Another control socket, so that EAL's runtime directory is what collides.
    let bin = dlisten_bin().display().to_string();
    let other_socket = format!("/run/dlisten/{prefix}-other.sock");
    let second = ns.run(&[
        &bin, "serve", "--addr", SERVER_IP, "--listen", &listen, "--control-socket", &other_socket, "--", "--no-huge", "-m",
        "512", "--no-pci", "--file-prefix", &prefix, "--vdev", "net_tap0,iface=dlcrashp2",
    ]);
    let err = String::from_utf8_lossy(&second.stderr).to_string();
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let pid = first.child.id();
    assert!(err.contains(&format!("EAL --file-prefix {prefix} is in use by process {pid}")), "{err}");
    assert!(!Path::new(&other_socket).exists(), "the refused server leaves no socket file");
    curl_ok(&ns, &first);
    first.stop();
}
