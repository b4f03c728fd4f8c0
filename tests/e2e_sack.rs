//! Loss recovery end to end: dlisten's echo app on one end of a veth pair
//! whose both ends lose 1 % of their packets and reorder some (`tc netem`,
//! inside the test's namespaces), a Linux client on the other. 64 MiB go up
//! and come back down intact (SHA-256 compared), through SACK recovery in
//! both directions (Linux's for the upload, dlisten's for the download).
//! Throughput next to the kernel's on the same link: `bench/sack_netem.sh`.

mod common;
use common::*;

/// netem on `dev` in `ns`: 1 ms delay, 1 % loss, a quarter of the packets
/// sent at once (so they overtake the delayed ones: reordering).
fn lossy(ns: &Netns, dev: &str) {
    ns.ok(&["tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "1ms", "reorder", "25%", "50%", "loss", "1%"]);
}

#[test]
fn echo_of_64_mib_through_loss_and_reordering_arrives_intact() {
    require_root();
    let _serial = serial();
    let link = VethPair::new("sk");
    link.client_tx_offload(false);
    lossy(&link.client, &link.client_if);
    lossy(&link.server, &link.server_if);
    let listen = format!("{SERVER_IP}:7");
    // qdisc_bypass=0: dlisten's frames go through the veth's qdisc, so
    // netem applies to the download too.
    let mut server = VethServer::start_on(
        &link,
        "net_af_packet0,qdisc_bypass=0",
        &unique("dlsack"),
        &["--listen", &listen, "--app", "echo"],
    );
    let script = format!(
        r#"
import socket, threading, hashlib, sys, time
n = 64 << 20
chunk = bytes((i * 2654435761 >> 13) & 0xff for i in range(1 << 20))
sent_hash = hashlib.sha256()
got_hash = hashlib.sha256()
got = 0
s = socket.create_connection(("{SERVER_IP}", 7), timeout=20)
def rd():
    global got
    while got < n:
        b = s.recv(1 << 20)
        if not b: break
        got_hash.update(b)
        got += len(b)
t = threading.Thread(target=rd); t.start()
t0 = time.monotonic()
for i in range(n >> 20):
    c = chunk[i:] + chunk[:i]
    sent_hash.update(c)
    s.sendall(c)
t.join(50)
dt = time.monotonic() - t0
s.close()
ok = got == n and got_hash.digest() == sent_hash.digest()
print(got, "intact" if ok else "corrupt", "%.1f MiB/s" % (n / dt / (1 << 20)))
sys.exit(0 if ok else 1)
"#
    );
    let py = link.client.run(&["timeout", "55", "python3", "-c", &script]);
    let out = stdout(&py);
    assert!(py.status.success(), "{out}{}\n{}", String::from_utf8_lossy(&py.stderr), server.output());
    println!("{}", out.trim());
    assert!(out.starts_with(&format!("{} intact", 64 << 20)), "{out}");
    let report = server.stop();
    assert_eq!(counter(&report, "TcpInCsumErrors"), 0, "{report}");
}
