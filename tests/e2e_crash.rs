//! The edges an operator meets when things go wrong:
//! - after `kill -9`, a new `serve` with the same `--file-prefix` starts
//!   without manual cleanup and names what it removed (the control socket
//!   file, EAL's runtime files); a second serve while one runs is refused
//!   before EAL, and the first keeps serving; the same over net_af_xdp,
//!   whose XDP program the dead process left on the interface;
//! - the port's link going down (its interface set down under
//!   net_af_packet) and up again: serve keeps running, says each change in
//!   one line, counts it, and curl gets answers before and after; then the
//!   interface deleted: said the same way, and serve still stops cleanly;
//! - a mempool barely larger than the RX ring under a SYN flood: serve
//!   keeps running, and curl is answered once the flood is over;
//! - values only EAL can judge (a port that does not exist, more mbufs
//!   than its memory): one `dlisten:` line each, exit status 1, no panic.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

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
    assert!(!Path::new(&runtime_dir.0).exists(), "and EAL's runtime files: only a crash leaves any");
}

#[test]
fn a_live_primary_of_the_same_prefix_is_named() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("crashp");
    let prefix = unique("dlcrashp");
    let runtime_dir = RuntimeDir(format!("/var/run/dpdk/{prefix}"));
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
    assert!(Path::new(&format!("{}/config", runtime_dir.0)).exists(), "and leaves the live one's runtime files alone");
    curl_ok(&ns, &first);
    first.stop();
}

/// A veth pair with the client's transmit checksum offload off (AF_PACKET
/// would see partial checksums).
fn veth(tag: &str) -> VethPair {
    let link = VethPair::new(tag);
    link.client_tx_offload(false);
    link
}

#[test]
fn a_link_that_goes_down_and_up_keeps_serving() {
    require_root();
    let _serial = serial();
    let link = veth("cl");
    let listen = format!("{SERVER_IP}:80");
    let mut server = VethServer::start_on(&link, "net_af_packet0", &unique("dlcrl"), &["--listen", &listen, "--app", "http"]);
    let url = format!("http://{SERVER_IP}/");
    let curl = |max_time: &str| link.client.run(&["curl", "-sS", "--max-time", max_time, &url]);
    let got = curl("5");
    assert!(got.status.success(), "before: {}\n{}", String::from_utf8_lossy(&got.stderr), server.output());
    assert_eq!(stdout(&got), "hello from dlisten\n");

    link.server.ok(&["ip", "link", "set", &link.server_if, "down"]);
    server.wait_for("link down");
    assert!(!curl("1").status.success(), "an answer through a link that is down");
    link.server.ok(&["ip", "link", "set", &link.server_if, "up"]);
    server.wait_for("link up");
    assert!(server.alive(), "dlisten died:\n{}", server.output());

    // The veth's carrier and the client's neighbour entry take a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = curl("2");
        if got.status.success() {
            assert_eq!(stdout(&got), "hello from dlisten\n");
            break;
        }
        assert!(Instant::now() < deadline, "no answer after the link came back:\n{}", server.output());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleted: the interface is gone for good; serve says so the same way
    // and still stops cleanly.
    link.server.ok(&["ip", "link", "del", &link.server_if]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.output().matches("link down").count() < 2 {
        assert!(Instant::now() < deadline, "the deletion was not seen:\n{}", server.output());
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = server.stop();
    let lines = |what: &str| report.lines().filter(|l| l.starts_with(&format!("dlisten: port 0 link {what}"))).count();
    assert_eq!((lines("down"), lines("up")), (2, 1), "{report}");
    assert_eq!((counter(&report, "DlLinkDown"), counter(&report, "DlLinkUp")), (2, 1), "{report}");
    assert!(counter(&report, "TcpPassiveOpens") >= 2, "{report}");
    assert!(!report.contains("panicked"), "{report}");
}

#[test]
fn a_tiny_mempool_under_a_syn_flood_keeps_serving() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("tiny");
    let listen = format!("{SERVER_IP}:80");
    // 64 RX descriptors and 128 mbufs: the ring holds half the pool.
    let args = ["--listen", listen.as_str(), "--app", "http", "--rx-desc", "64", "--tx-desc", "64", "--mbufs", "128"];
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &args });
    curl_ok(&ns, &server);
    // Bounded in time: hping3 as fast as it sends, for 2 s.
    ns.run(&["timeout", "2", "hping3", "-q", "-S", "-p", "80", "-a", "198.18.0.3", "--flood", SERVER_IP]);
    assert!(matches!(server.child.try_wait(), Ok(None)), "dlisten died under the flood:\n{}", server.output());
    curl_ok(&ns, &server);
    let report = server.stop();
    assert!(!report.contains("panicked"), "{report}");
    let port = report.lines().find(|l| l.starts_with("port 0 ipackets")).unwrap_or_else(|| panic!("{report}"));
    let rx_nombuf: u64 = port.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{port}"));
    // The pool ran dry, and it was counted: answers not built, or frames
    // the port could not receive.
    assert!(counter(&report, "DlTxNoMbuf") + rx_nombuf > 0, "{report}");
}

#[test]
fn a_restart_after_kill_9_over_af_xdp() {
    require_root();
    let _serial = serial();
    let link = veth("cx");
    let prefix = unique("dlcrx");
    let listen = format!("{SERVER_IP}:80");
    let args = ["--listen", listen.as_str(), "--app", "http"];
    let url = format!("http://{SERVER_IP}/");
    let mut first = VethServer::start_on(&link, "net_af_xdp0", &prefix, &args);
    let got = link.client.run(&["curl", "-sS", "--max-time", "5", &url]);
    assert!(got.status.success(), "{}\n{}", String::from_utf8_lossy(&got.stderr), first.output());
    first.kill9();
    let ip_link = link.server.ok(&["ip", "link", "show", &link.server_if]);
    assert!(stdout(&ip_link).contains("xdp"), "the dead process's XDP program stays: {}", stdout(&ip_link));

    let mut second = VethServer::start_on(&link, "net_af_xdp0", &prefix, &args);
    assert!(second.output().contains("dlisten: removed stale control socket "), "{}", second.output());
    let got = link.client.run(&["curl", "-sS", "--max-time", "5", &url]);
    assert!(got.status.success(), "after the restart: {}\n{}", String::from_utf8_lossy(&got.stderr), second.output());
    assert_eq!(stdout(&got), "hello from dlisten\n");
    let report = second.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= 1, "{report}");
}

#[test]
fn values_eal_refuses_are_one_line_each() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("bad");
    let bin = dlisten_bin().display().to_string();
    let listen = format!("{SERVER_IP}:80");
    for (extra, says) in [
        (&["--port", "5"][..], "dlisten: DPDK port 5 does not exist (ports found: [0])"),
        (&["--mbufs", "4000000"][..], "creation failed: Cannot allocate memory (12); not enough DPDK memory: raise -m"),
    ] {
        let prefix = unique("dlbad");
        let tap = unique("dlbt");
        let vdev = format!("net_tap0,iface={tap}");
        let mut argv = vec![bin.as_str(), "serve", "--addr", SERVER_IP, "--listen", &listen];
        argv.extend_from_slice(extra);
        argv.extend_from_slice(&[
            "--", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--file-prefix", &prefix, "--vdev", &vdev,
            "--log-level", "lib.eal:error",
        ]);
        let out = ns.cmd(&argv).env("RUST_BACKTRACE", "1").output().expect("spawn dlisten");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        // DPDK's drivers log on stderr too; ours is one line.
        let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("dlisten: ")).collect();
        assert_eq!(ours.len(), 1, "{extra:?}: {err}");
        assert!(ours[0].contains(says), "{extra:?}: {:?} does not say {says:?}", ours[0]);
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
        assert!(!Path::new(&format!("/run/dlisten/{prefix}.sock")).exists(), "{extra:?}: the control socket is left behind");
        assert!(!Path::new(&format!("/var/run/dpdk/{prefix}")).exists(), "{extra:?}: EAL's runtime directory is left behind");
    }
}
