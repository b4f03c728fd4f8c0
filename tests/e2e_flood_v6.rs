//! `dlisten flood` over IPv6 against the Linux kernel: a veth pair between
//! two namespaces, a kernel TCP listener on [2001:2::1]:PORT at one end
//! (python3, the netns's default sysctls: SYN cookies on), the generator
//! on `net_af_packet` at the other. The kernel resolves the generator's
//! source addresses with neighbour solicitations, which the generator
//! answers; its counters (nstat) say what it saw. Only 2001:2::/48
//! addresses, inside namespaces this test creates.

mod common;
use common::*;
use std::time::{Duration, Instant};

const TARGET: &str = "2001:2::1";

/// Accepts, answers a request (if one comes within 0.5 s) with a small
/// HTTP response, closes; stops by itself after 60 s.
const LISTENER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
s.settimeout(0.2)
print("listening", flush=True)
end = time.time() + 60
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    try:
        c.settimeout(0.5)
        if c.recv(2048):
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass
    c.close()
"#;

/// The kernel's end of the veth (`client` in [`VethPair`]) with IPv6 on and
/// 2001:2::1/48, a listener on it; the generator's end has IPv6 off (the
/// namespace default), so its kernel stays quiet on the link.
struct KernelTarget {
    link: VethPair,
    listener: Captured,
    port: u16,
}

impl KernelTarget {
    fn start() -> KernelTarget {
        let link = VethPair::new("fl6");
        let (ns, dev) = (&link.client, &link.client_if);
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"]);
        ns.ok(&["sysctl", "-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=0")]);
        // No duplicate address detection: the address is usable at once.
        ns.ok(&["ip", "-6", "addr", "add", &format!("{TARGET}/48"), "dev", dev, "nodad"]);
        // Checksums filled by the kernel, not left partial for an offload
        // the generator's end does not have.
        link.client_tx_offload(false);
        let port = 20_000 + (std::process::id() % 20_000) as u16;
        let port_s = port.to_string();
        let listener = spawn_captured(&mut link.client.cmd(&["python3", "-c", LISTENER, TARGET, &port_s]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listener.output.lock().unwrap().contains("listening") {
            assert!(Instant::now() < deadline, "the kernel listener did not start:\n{}", listener.output.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
        KernelTarget { link, listener, port }
    }

    /// `dlisten flood --dst [2001:2::1]:PORT` on af_packet over the
    /// generator's end; its whole output.
    fn flood(&self, args: &[&str]) -> String {
        let vdev = format!("net_af_packet0,iface={}", self.link.server_if);
        let prefix = unique("dlfl6");
        let bin = dlisten_bin().display().to_string();
        let dst = format!("[{TARGET}]:{}", self.port);
        let mut argv = vec!["timeout", "40", bin.as_str(), "flood", "--dst", dst.as_str(), "--src", "2001:2:0:1::/120"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--log-level", "lib.eal:error"]);
        argv.extend_from_slice(&["--file-prefix", &prefix, "--vdev", &vdev]);
        let out = self.link.server.run(&argv);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "dlisten flood failed ({}):\n{text}", out.status);
        text
    }

    /// A counter of the kernel's namespace, absolute.
    fn nstat(&self, name: &str) -> u64 {
        let out = self.link.client.ok(&["nstat", "-azs", name]);
        value(&stdout(&out), name).unwrap_or_else(|| panic!("nstat has no {name}:\n{}", stdout(&out)))
    }
}

impl Drop for KernelTarget {
    fn drop(&mut self) {
        let _ = self.listener.child.kill();
        let _ = self.listener.child.wait();
    }
}

/// `name value` from the generator's summary or nstat's table.
fn value(out: &str, name: &str) -> Option<u64> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next()?.parse::<u64>().ok()).flatten()
        })
        .next_back()
}

fn summary(out: &str, name: &str) -> u64 {
    value(out, name).unwrap_or_else(|| panic!("no {name} in the summary:\n{out}"))
}

#[test]
fn v6_handshakes_complete_against_the_kernel() {
    require_root();
    let _serial = serial();
    let target = KernelTarget::start();
    let out = target.flood(&[
        "--mode", "handshake", "--count", "200", "--concurrency", "8", "--duration", "3", "--request", "GET / HTTP/1.0\\r\\n\\r\\n",
    ]);
    assert!(out.contains(&format!("flood: {TARGET} is at ")), "the target's MAC by neighbour discovery:\n{out}");
    let completed = summary(&out, "HandshakesCompleted");
    assert_eq!(summary(&out, "HandshakesAttempted"), 200, "{out}");
    assert!(completed >= 190, "fewer than 95% handshakes over IPv6:\n{out}");
    assert!(summary(&out, "Responses") >= 190, "the kernel's listener answered too few requests:\n{out}");
    // The kernel created a socket for every final ACK: our ACKs (with the
    // request's bytes) and their checksums are right.
    let passive = target.nstat("TcpPassiveOpens");
    assert_eq!(passive, completed, "kernel TcpPassiveOpens vs the generator's completed handshakes:\n{out}");
    assert_eq!(target.nstat("TcpExtListenOverflows"), 0, "{out}");
}

#[test]
fn v6_syn_flood_gets_syn_acks_from_the_kernel() {
    require_root();
    let _serial = serial();
    let target = KernelTarget::start();
    let out = target.flood(&["--mode", "syn", "--count", "2000", "--rate", "4000", "--duration", "3"]);
    assert_eq!(summary(&out, "SynSent"), 2000, "{out}");
    let synacks = summary(&out, "SynAckReceived");
    assert!(synacks >= 1980, "fewer than 99% SYN-ACKs (or cookies) over IPv6:\n{out}");
    assert_eq!(value(&out, "BadAck").unwrap_or(0), 0, "{out}");
    // The kernel took every SYN in (checksums right) and answered from a
    // request sock or a cookie, after resolving our sources by neighbour
    // discovery: its solicitations got our advertisements.
    assert!(target.nstat("TcpInSegs") >= 2000, "{out}");
    assert!(target.nstat("TcpOutSegs") >= synacks, "{out}");
    assert!(target.nstat("Icmp6InNeighborAdvertisements") > 0, "{out}");
    assert_eq!(target.nstat("TcpPassiveOpens"), 0, "a SYN flood opens nothing:\n{out}");
}
