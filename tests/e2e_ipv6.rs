//! IPv6 end to end: a real Linux kernel in a namespace the test creates
//! resolves dlisten's IPv6 address by neighbour discovery, pings it, is
//! refused on a closed TCP port (RST) and a closed UDP port (ICMPv6 port
//! unreachable), and talks HTTP to `--app http` over IPv6 (curl, wrk), also
//! during a bounded SYN flood from scapy. Addresses from 2001:2::/48
//! (RFC 5180) only.

mod common;
use common::*;

const SERVER_IP6: &str = "2001:2::1";
const CLIENT_IP6: &str = "2001:2::2";
const PY: &str = "/usr/bin/python3";

#[test]
fn neighbour_discovery_ping_and_refusals_over_ipv6() {
    require_root();
    let _serial = serial();
    // One worker, then two: every worker answers for our addresses, whichever
    // queue the port hashes a frame to.
    for queues in [1, 2] {
        over_ipv6(queues);
    }
}

/// The namespace keeps IPv6 off; on for the tap only, without a
/// link-local address, router advertisements or duplicate address detection.
fn client_ipv6(ns: &Netns, tap: &str) {
    for (k, v) in [("addr_gen_mode", "1"), ("accept_ra", "0"), ("accept_dad", "0"), ("disable_ipv6", "0")] {
        ns.ok(&["sysctl", "-qw", &format!("net.ipv6.conf.{tap}.{k}={v}")]);
    }
    ns.ok(&["ip", "-6", "addr", "add", &format!("{CLIENT_IP6}/64"), "dev", tap, "nodad"]);
}

fn over_ipv6(queues: u16) {
    let ns = Netns::new("v6");
    let mut server = Server::start(&ns, ServerOpts { queues, serve_args: &["--addr", SERVER_IP6] });
    let tap = server.tap.clone();
    client_ipv6(&ns, &tap);

    // ICMPv6 echo: the kernel solicits our address first.
    let ping = ns.run(&["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", SERVER_IP6]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).to_string();
    assert!(ping.status.success(), "ping -6 failed:\n{ping_out}\n{}", server.output());
    assert!(ping_out.contains("3 received"), "{ping_out}");
    let neigh = stdout(&ns.ok(&["ip", "-6", "neigh", "show", SERVER_IP6, "dev", &tap]));
    assert!(neigh.contains("lladdr"), "the kernel did not learn our MAC: {neigh}");

    // A closed TCP port: refused at once (RST|ACK), not timed out.
    let t0 = std::time::Instant::now();
    let nc = ns.run(&["nc", "-6", "-z", "-w", "3", SERVER_IP6, "80"]);
    assert!(!nc.status.success(), "nc -6 -z to a closed port succeeded");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "nc took {:?}: no RST?", t0.elapsed());

    // The kernel's error codes: ECONNREFUSED for TCP, and for UDP from the
    // ICMPv6 port unreachable on a connected socket.
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET6); s.settimeout(2)
try:
    s.connect(("{SERVER_IP6}", 7000)); tcp = "connected"
except ConnectionRefusedError:
    tcp = "refused"
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.settimeout(2)
u.connect(("{SERVER_IP6}", 9)); u.send(b"hello")
try:
    u.recv(100); udp = "answered"
except ConnectionRefusedError:
    udp = "refused"
except socket.timeout:
    udp = "timeout"
print("tcp", tcp, "udp", udp)
"#
    );
    let py = ns.run(&[PY, "-c", &script]);
    let py_out = String::from_utf8_lossy(&py.stdout).to_string();
    assert!(py.status.success(), "{py_out}\n{}", String::from_utf8_lossy(&py.stderr));
    assert!(py_out.contains("tcp refused udp refused"), "{py_out}\n{}", server.output());

    let report = server.stop();
    assert!(counter(&report, "Icmp6InNeighborSolicits") >= 1, "{report}");
    assert!(counter(&report, "Icmp6OutNeighborAdvertisements") >= 1, "{report}");
    assert!(counter(&report, "Icmp6OutEchoReplies") >= 3, "{report}");
    assert!(counter(&report, "TcpOutRsts") >= 2, "{report}");
    assert!(counter(&report, "Udp6NoPorts") >= 1, "{report}");
    assert!(counter(&report, "Icmp6OutDestUnreachs") >= 1, "{report}");
    assert!(counter(&report, "Ip6InDelivers") >= 7, "{report}");
}

/// `--app http` over IPv6: curl -6 keep-alive (two requests on one
/// connection) and close, nc -6 refused on a closed port, wrk for a bounded
/// 3 s, and curl still answered during a bounded SYN flood from scapy.
#[test]
fn http_over_ipv6() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("v6h");
    let mut server = Server::start(
        &ns,
        ServerOpts { queues: 2, serve_args: &["--addr", SERVER_IP6, "--listen", "[2001:2::1]:80", "--app", "http"] },
    );
    let tap = server.tap.clone();
    client_ipv6(&ns, &tap);
    let url = format!("http://[{SERVER_IP6}]/");

    // Keep-alive: curl reuses the connection for the second URL.
    let curl = ns.run(&["curl", "-6", "-sv", "--max-time", "5", &url, &url]);
    let err = String::from_utf8_lossy(&curl.stderr).to_string();
    assert!(curl.status.success(), "curl -6 failed:\n{err}\n{}", server.output());
    assert_eq!(stdout(&curl), "hello from dlisten\n".repeat(2));
    assert!(err.contains("existing connection"), "no keep-alive:\n{err}");
    assert!(err.contains(&format!("Connected to {SERVER_IP6}")), "{err}");

    // Connection: close.
    let curl = ns.run(&["curl", "-6", "-s", "--max-time", "5", "-H", "Connection: close", &url]);
    assert!(curl.status.success(), "{}", server.output());
    assert_eq!(stdout(&curl), "hello from dlisten\n");

    // A closed port: refused at once.
    let t0 = std::time::Instant::now();
    let nc = ns.run(&["nc", "-6", "-z", "-w", "3", SERVER_IP6, "81"]);
    assert!(!nc.status.success(), "nc -6 -z to a closed port succeeded");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "no RST? {:?}", t0.elapsed());

    // wrk, bounded.
    let wrk = ns.run(&["wrk", "-t1", "-c8", "-d3s", "--timeout", "2s", &url]);
    let wrk_out = stdout(&wrk);
    assert!(wrk.status.success(), "{wrk_out}\n{}", server.output());
    let requests: u64 = wrk_out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(requests >= 100, "wrk over IPv6 made {requests} requests:\n{wrk_out}");
    assert!(!wrk_out.contains("Non-2xx"), "{wrk_out}");

    // A bounded SYN flood (4000 SYNs from random ports) while curl -6 runs.
    let flood = format!(
        r#"
from scapy.all import IPv6, TCP, send, conf, RandShort
conf.verb = 0
send(IPv6(src="{CLIENT_IP6}", dst="{SERVER_IP6}") / TCP(sport=RandShort(), dport=80, flags="S", seq=1), count=4000, iface="{tap}")
print("sent")
"#
    );
    let scapy = ns.cmd(&[PY, "-c", &flood]).stdout(std::process::Stdio::piped()).spawn().expect("scapy");
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..3 {
        let curl = ns.run(&["curl", "-6", "-s", "--max-time", "5", &url]);
        assert!(curl.status.success(), "curl -6 during the flood failed\n{}", server.output());
        assert_eq!(stdout(&curl), "hello from dlisten\n");
    }
    let flood_out = scapy.wait_with_output().expect("scapy");
    assert!(String::from_utf8_lossy(&flood_out.stdout).contains("sent"), "the flood did not run");

    let report = server.stop();
    // Two curl connections, eight of wrk (keep-alive), three during the flood.
    assert!(counter(&report, "TcpPassiveOpens") >= 13, "{report}");
    assert!(counter(&report, "TcpInSegs") >= 4000, "{report}");
    assert!(counter(&report, "TcpOutRsts") >= 1, "{report}");
}

/// A dual-stack `[::]:80` listener accepts an IPv4 and an IPv6 client.
#[test]
fn dual_stack_listener_serves_ipv4_and_ipv6() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("v6d");
    let mut server =
        Server::start(&ns, ServerOpts { queues: 1, serve_args: &["--addr", SERVER_IP6, "--listen", "[::]:80", "--app", "http"] });
    let tap = server.tap.clone();
    client_ipv6(&ns, &tap);
    for url in [format!("http://{SERVER_IP}/"), format!("http://[{SERVER_IP6}]/")] {
        let curl = ns.run(&["curl", "-s", "--max-time", "5", &url]);
        assert!(curl.status.success(), "{url}: {}", server.output());
        assert_eq!(stdout(&curl), "hello from dlisten\n", "{url}");
    }
    let report = server.stop();
    assert_eq!(counter(&report, "TcpPassiveOpens"), 2, "{report}");
}
