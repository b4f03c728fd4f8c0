//! net_af_xdp end to end: dlisten on one end of a veth pair, real Linux
//! clients (ping, curl, wrk, Python sockets) on the other, each end in a
//! namespace of its own.
//!
//! - with the client's transmit checksum offload off, every client gets its
//!   answers and nothing is counted as a bad checksum;
//! - with it on (a veth's default), the segments arrive with partial
//!   checksums: dlisten counts them (DlRxCsumPartial, TcpInCsumErrors) and
//!   says so in one line naming its interface and `ethtool -K <peer> tx off`;
//!   after that command the same server answers;
//!   net_af_packet gets the same segments and says the same;
//! - a wrong `--vdev` is refused before EAL, in plain words.

mod common;
use common::*;

/// `dlisten serve` on net_af_xdp over the server end.
fn xdp_server(link: &VethPair, serve_args: &[&str]) -> VethServer {
    VethServer::start_on(link, "net_af_xdp0", &unique("dlxdp"), serve_args)
}

#[test]
fn kernel_clients_over_af_xdp() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("xh");
    link.client_tx_offload(false);
    let listen = format!("{SERVER_IP}:80");
    let mut server = xdp_server(&link, &["--listen", &listen, "--app", "http", "--http-body", "hello xdp\n"]);
    assert!(
        server.output().contains(&format!("driver net_af_xdp iface {}", link.server_if)),
        "the port line names the interface:\n{}",
        server.output()
    );

    let ping = link.client.run(&["ping", "-c", "2", "-W", "2", SERVER_IP]);
    assert!(ping.status.success(), "ping: {}\n{}", stdout(&ping), server.output());

    let url = format!("http://{SERVER_IP}/");
    let curl = link.client.run(&["curl", "-sS", "-i", "--max-time", "5", &url]);
    let body = stdout(&curl);
    assert!(curl.status.success(), "curl: {body}{}\n{}", String::from_utf8_lossy(&curl.stderr), server.output());
    assert!(body.starts_with("HTTP/1.1 200 OK") && body.ends_with("hello xdp\n"), "{body}");
    // Keep-alive: three requests on one connection.
    let curl = link.client.run(&["curl", "-sS", "--max-time", "5", &url, &url, &url]);
    assert_eq!(stdout(&curl), "hello xdp\n".repeat(3));

    // wrk, bounded in time, a new connection per request.
    let wrk = link.client.run(&["wrk", "-t1", "-c8", "-d3s", "--timeout", "2s", "-H", "Connection: close", &url]);
    let out = stdout(&wrk);
    assert!(wrk.status.success(), "{out}");
    assert!(!out.contains("Socket errors") && !out.contains("Non-2xx"), "wrk:\n{out}\n{}", server.output());
    let requests: u64 = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests > 100, "too few requests: {out}");

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= requests + 2, "{report}");
    assert_eq!(counter(&report, "TcpInCsumErrors"), 0, "{report}");
    assert_eq!(counter(&report, "DlRxCsumPartial"), 0, "{report}");
    assert!(!report.contains("partial checksums"), "{report}");
}

#[test]
fn echo_of_one_megabyte_over_af_xdp() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("xe");
    link.client_tx_offload(false);
    let listen = format!("{SERVER_IP}:7");
    let mut server = xdp_server(&link, &["--listen", &listen, "--app", "echo"]);
    // A Python client writes 1 MiB while a thread reads the echo back.
    let script = format!(
        r#"
import socket, threading, hashlib, sys
data = bytes((i * 2654435761 >> 13) & 0xff for i in range(1 << 20))
s = socket.create_connection(("{SERVER_IP}", 7), timeout=10)
got = bytearray()
def rd():
    while len(got) < len(data):
        b = s.recv(65536)
        if not b: break
        got.extend(b)
t = threading.Thread(target=rd); t.start()
s.sendall(data); t.join(20); s.close()
ok = bytes(got) == data
print(len(got), "intact" if ok else "corrupt")
sys.exit(0 if ok else 1)
"#
    );
    let py = link.client.run(&["timeout", "30", "python3", "-c", &script]);
    assert!(py.status.success(), "{}{}\n{}", stdout(&py), String::from_utf8_lossy(&py.stderr), server.output());
    assert_eq!(stdout(&py).trim(), "1048576 intact");
    let report = server.stop();
    assert_eq!(counter(&report, "TcpInCsumErrors"), 0, "{report}");
}

#[test]
fn partial_checksums_are_counted_and_named_once() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("xp");
    // The veth default, said explicitly.
    link.client_tx_offload(true);
    let listen = format!("{SERVER_IP}:80");
    let mut server = xdp_server(&link, &["--listen", &listen, "--app", "http", "--http-body", "fixed\n"]);
    let url = format!("http://{SERVER_IP}/");
    // The SYN and its retransmission arrive with partial checksums: no answer.
    let curl = link.client.run(&["curl", "-sS", "--max-time", "2", &url]);
    assert!(!curl.status.success(), "curl got through with offload on: {}", stdout(&curl));
    let curl = link.client.run(&["curl", "-sS", "--max-time", "2", &url]);
    assert!(!curl.status.success(), "{}", stdout(&curl));
    // The fix the line gives, on the same server.
    link.client_tx_offload(false);
    let curl = link.client.run(&["curl", "-sS", "--max-time", "5", &url]);
    assert!(curl.status.success(), "curl after ethtool -K tx off: {}\n{}", String::from_utf8_lossy(&curl.stderr), server.output());
    assert_eq!(stdout(&curl), "fixed\n");

    let report = server.stop();
    let lines: Vec<&str> = report.lines().filter(|l| l.contains("partial checksums")).collect();
    assert_eq!(lines.len(), 1, "one line per port:\n{report}");
    let line = lines[0];
    assert!(line.starts_with(&format!("dlisten: port 0 ({}): TCP segments arrive", link.server_if)), "{line}");
    assert!(line.contains("ethtool -K <peer> tx off"), "{line}");
    let partial = counter(&report, "DlRxCsumPartial");
    // Two curls: at least their two SYNs.
    assert!(partial >= 2, "{report}");
    // Every bad checksum was a partial one, and counted as bad.
    assert_eq!(counter(&report, "TcpInCsumErrors"), partial, "{report}");
    assert!(counter(&report, "TcpPassiveOpens") >= 1, "{report}");
}

#[test]
fn partial_checksums_are_named_on_af_packet_too() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("xa");
    link.client_tx_offload(true);
    let listen = format!("{SERVER_IP}:80");
    let mut server = VethServer::start_on(&link, "net_af_packet0", &unique("dlxdp"), &["--listen", &listen, "--app", "http"]);
    let url = format!("http://{SERVER_IP}/");
    let curl = link.client.run(&["curl", "-sS", "--max-time", "2", &url]);
    assert!(!curl.status.success(), "curl got through with offload on: {}", stdout(&curl));
    let report = server.stop();
    assert_eq!(report.lines().filter(|l| l.contains("partial checksums")).count(), 1, "{report}");
    assert!(report.contains(&format!("dlisten: port 0 ({}): TCP segments arrive", link.server_if)), "{report}");
    let partial = counter(&report, "DlRxCsumPartial");
    assert!(partial >= 1 && counter(&report, "TcpInCsumErrors") == partial, "{report}");
}

#[test]
fn a_wrong_vdev_is_refused_before_eal() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("xv");
    let bin = dlisten_bin().display().to_string();
    let listen = format!("{SERVER_IP}:80");
    let serve = |workers: &str, vdev: &str| {
        let prefix = unique("dlxdpv");
        let argv = [
            bin.as_str(), "serve", "--addr", SERVER_IP, "--listen", &listen, "--workers", workers, "--", "--no-huge", "-m",
            "512", "--no-pci", "--no-shconf", "--file-prefix", &prefix, "--vdev", vdev,
        ];
        let out = link.server.cmd(&argv).output().expect("spawn dlisten");
        assert!(!out.status.success(), "dlisten accepted --vdev {vdev}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = serve("1", "net_af_xdp0");
    assert!(err.contains("net_af_xdp0 needs iface=<interface>"), "{err}");
    let err = serve("1", "net_af_xdp0,iface=dlnosuch0");
    assert!(err.contains("there is no interface dlnosuch0 in this network namespace"), "{err}");
    let err = serve("1", &format!("net_af_xdp0,iface={},queue_count=2", link.server_if));
    assert!(err.contains("has 1 RX queue(s), queues 0..2 do not exist"), "{err}");
    let err = serve("2", &format!("net_af_xdp0,iface={}", link.server_if));
    assert!(err.contains("--workers 2 but --vdev") && err.contains("add queue_count=2"), "{err}");
    let err = serve("1", &format!("net_af_xdp0,iface={},queues=1", link.server_if));
    assert!(err.contains("has no argument \"queues\""), "{err}");
}
