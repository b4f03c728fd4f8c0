//! Host behaviour end to end: dlisten answers the network like a host. A real Linux
//! kernel in a namespace the test creates pings it, is refused on closed TCP
//! and UDP ports, and spreads flows over two worker queues.

mod common;
use common::*;

const PY: &str = "/usr/bin/python3";

#[test]
fn ping_refusal_and_two_workers() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("host");
    let mut server = Server::start(&ns, ServerOpts { queues: 2, ..Default::default() });

    // ICMP echo: the kernel resolves our MAC by ARP, then gets replies.
    let ping = ns.run(&["ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER_IP]);
    let ping_out = String::from_utf8_lossy(&ping.stdout).to_string();
    assert!(ping.status.success(), "ping failed:\n{ping_out}\n{}", server.output());
    assert!(ping_out.contains("3 received"), "{ping_out}");

    // A closed TCP port: nc -z is refused at once (RST|ACK), not timed out.
    let t0 = std::time::Instant::now();
    let nc = ns.run(&["nc", "-z", "-w", "3", SERVER_IP, "80"]);
    assert!(!nc.status.success(), "nc -z to a closed port succeeded");
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "nc took {:?}: no RST?", t0.elapsed());

    // The kernel's own error codes: ECONNREFUSED for TCP (RST) and for UDP
    // (ICMP port unreachable reported on a connected UDP socket). Many source
    // ports, so that flows land on both queues.
    let script = format!(
        r#"
import socket, errno
refused = 0
for i in range(64):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("{SERVER_IP}", 7000 + i)); print("connected?!")
    except ConnectionRefusedError:
        refused += 1
    finally:
        s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.connect(("{SERVER_IP}", 9)); u.send(b"hello")
try:
    u.recv(100); udp = "answered"
except ConnectionRefusedError:
    udp = "refused"
except socket.timeout:
    udp = "timeout"
print("tcp_refused", refused, "udp", udp)
"#
    );
    let py = ns.run(&[PY, "-c", &script]);
    let py_out = String::from_utf8_lossy(&py.stdout).to_string();
    assert!(py.status.success(), "{py_out}\n{}", String::from_utf8_lossy(&py.stderr));
    assert!(py_out.contains("tcp_refused 64 udp refused"), "{py_out}\n{}", server.output());

    let report = server.stop();
    assert!(counter(&report, "TcpOutRsts") >= 65, "{report}");
    assert!(counter(&report, "IcmpOutEchoReps") >= 3, "{report}");
    assert!(counter(&report, "UdpNoPorts") >= 1, "{report}");
    assert!(counter(&report, "DlArpReplies") >= 1, "{report}");
    let per_worker = worker_rx_frames(&report);
    assert_eq!(per_worker.len(), 2, "{report}");
    assert!(per_worker.iter().all(|(_, n)| *n > 0), "a worker got no traffic: {per_worker:?}\n{report}");
}
