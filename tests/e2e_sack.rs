//! Loss recovery end to end: dlisten's echo app behind a relay that loses
//! 1 % of the frames and reorders 5 % each way (`tests/common/lossy_relay.py`
//! in a namespace of its own: this kernel has no `sch_netem`), a Linux
//! client on the other side. 64 MiB go up and come back down intact
//! (SHA-256 compared), through SACK recovery in both directions (Linux's
//! for the upload, dlisten's for the download). Throughput next to the
//! kernel's over the same relay: `bench/lossy_echo.sh`.

mod common;
use common::*;
use std::process::{Child, Command};

/// The relay process, killed on drop.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

#[test]
fn echo_of_64_mib_through_loss_and_reordering_arrives_intact() {
    require_root();
    let _serial = serial();
    // client [cif] <-> [ra] relay [rb] <-> [sif] dlisten
    let client = Netns::new("skc");
    let relay = Netns::new("skr");
    let server = Netns::new("sks");
    let (cif, ra, rb, sif) = (unique("skc"), unique("ska"), unique("skb"), unique("sks"));
    run_ok(Command::new("ip").args(["link", "add", &cif, "netns", &client.name, "type", "veth", "peer", "name", &ra, "netns", &relay.name]));
    run_ok(Command::new("ip").args(["link", "add", &rb, "netns", &relay.name, "type", "veth", "peer", "name", &sif, "netns", &server.name]));
    client.ok(&["ip", "addr", "add", &format!("{CLIENT_IP}/24"), "dev", &cif]);
    client.ok(&["ethtool", "-K", &cif, "tx", "off"]);
    for (ns, dev) in [(&client, &cif), (&relay, &ra), (&relay, &rb), (&server, &sif)] {
        ns.ok(&["ip", "link", "set", dev, "up"]);
    }
    let relay_py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/lossy_relay.py");
    let mut relay_proc = Relay(relay.cmd(&["timeout", "90", "python3", relay_py, &ra, &rb, "80", "1", "5", "7"]).spawn().expect("relay"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(relay_proc.0.try_wait().expect("relay").is_none(), "the relay did not start");
    let link = VethPair { client, server, client_if: cif, server_if: sif };
    let listen = format!("{SERVER_IP}:7");
    let mut server = VethServer::start_on(&link, "net_af_packet0", &unique("dlsack"), &["--listen", &listen, "--app", "echo"]);
    let script = format!(
        r#"
import socket, threading, hashlib, sys, time
n = 64 << 20
chunk = bytes((i * 2654435761 >> 13) & 0xff for i in range(1 << 20))
sent_hash, got_hash = hashlib.sha256(), hashlib.sha256()
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
t.join(60)
dt = time.monotonic() - t0
ok = got == n and got_hash.digest() == sent_hash.digest()
print(got, "intact" if ok else "corrupt", "%.1f MiB/s each way" % (n / dt / (1 << 20)))
sys.exit(0 if ok else 1)
"#
    );
    let py = link.client.run(&["timeout", "75", "python3", "-c", &script]);
    let out = stdout(&py);
    assert!(py.status.success(), "{out}{}\n{}", String::from_utf8_lossy(&py.stderr), server.output());
    println!("{}", out.trim());
    assert!(out.starts_with(&format!("{} intact", 64 << 20)), "{out}");
    let report = server.stop();
    assert_eq!(counter(&report, "TcpInCsumErrors"), 0, "{report}");
}
