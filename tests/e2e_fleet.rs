//! Two servers of a fleet behind one service address: each `dlisten serve`
//! in its own namespace owns 198.18.0.1, and both read the same
//! `--key-file`. Server A answers every SYN with a cookie (`--syncookies 2`);
//! scapy sends the SYN to A, then, as after an ECMP or anycast change, the
//! handshake's ACK and a request to B. B, which never sent a cookie, builds
//! the connection from A's cookie and answers the request, its TSval not
//! behind A's SYN-ACK (a Linux client's PAWS check would drop it). Then a
//! rotation step in the file reaches both running servers, and a broken
//! file changes nothing.

mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const PY: &str = "/usr/bin/python3";

/// argv: phase ("syn" or "ack"), tap, client port, then for "ack" the
/// SYN-ACK's seq and TSval. Prints one JSON line.
const CLIENT: &str = r#"
import json, sys, time
from scapy.all import IP, TCP, Raw, AsyncSniffer, conf, send, sr1
conf.verb = 0
phase, iface, sport = sys.argv[1], sys.argv[2], int(sys.argv[3])
ip = IP(src="198.18.0.2", dst="198.18.0.1")
if phase == "syn":
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5000, 0)), ("NOP", None), ("WScale", 7)]
    sa = sr1(ip / TCP(sport=sport, dport=80, flags="S", seq=1000, options=opts), iface=iface, timeout=5)
    if sa is None:
        print(json.dumps({"error": "no SYN-ACK"}))
        sys.exit(0)
    t = sa[TCP]
    print(json.dumps({"flags": str(t.flags), "seq": t.seq, "ack": t.ack, "ts": list(dict(t.options).get("Timestamp", (0, 0)))}))
else:
    seq, tsval = int(sys.argv[4]), int(sys.argv[5])
    sniff = AsyncSniffer(iface=iface, lfilter=lambda p: TCP in p and p[TCP].sport == 80 and p[TCP].dport == sport)
    sniff.start()
    time.sleep(0.3)
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (5001, tsval))]
    send(ip / TCP(sport=sport, dport=80, flags="A", seq=1001, ack=seq + 1, options=ts), iface=iface)
    req = b"GET / HTTP/1.1\r\nHost: fleet\r\nConnection: close\r\n\r\n"
    send(ip / TCP(sport=sport, dport=80, flags="PA", seq=1001, ack=seq + 1, options=ts) / Raw(req), iface=iface)
    deadline = time.time() + 5
    while time.time() < deadline and not any(Raw in p for p in sniff.results or []):
        time.sleep(0.1)
    got = sniff.stop()
    seen = [{"flags": str(p[TCP].flags), "ts": list(dict(p[TCP].options).get("Timestamp", (0, 0))),
             "data": bytes(p[Raw].load).decode("latin-1") if Raw in p else ""} for p in got]
    print(json.dumps({"seen": seen}))
"#;

fn client(ns: &Netns, args: &[&str]) -> Value {
    let mut argv = vec![PY, "-c", CLIENT];
    argv.extend_from_slice(args);
    let out = ns.run(&argv);
    let text = stdout(&out);
    assert!(out.status.success(), "scapy client failed (python3-scapy: deploy/setup.sh): {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn counters(server: &Server) -> Value {
    let out = std::process::Command::new(dlisten_bin())
        .args(["stats", "--json", "--socket", &server.control_socket()])
        .output()
        .expect("dlisten stats");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(text.trim()).expect("stats JSON");
    v["counters"].clone()
}

fn get(c: &Value, name: &str) -> u64 {
    c[name].as_u64().unwrap_or(0)
}

/// The key file, removed on drop.
struct KeyFile(PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A SYN to A through its namespace, the ACK and a request to B through
/// its own: B's HTTP answer must come, its TSval not behind A's SYN-ACK.
fn handshake_moves(ns_a: &Netns, a: &Server, ns_b: &Netns, b: &Server, port: &str) {
    let sa = client(ns_a, &["syn", &a.tap, port]);
    assert_eq!(sa["flags"], "SA", "A's answer to the SYN: {sa}");
    assert_eq!(sa["ack"], 1001, "{sa}");
    let (seq, tsval) = (sa["seq"].as_u64().unwrap(), sa["ts"][0].as_u64().unwrap());
    assert_ne!(tsval, 0, "{sa}");

    let got = client(ns_b, &["ack", &b.tap, port, &seq.to_string(), &tsval.to_string()]);
    let seen = got["seen"].as_array().unwrap();
    assert!(seen.iter().all(|s| !s["flags"].as_str().unwrap().contains('R')), "B reset the connection: {got}");
    let answer = seen.iter().find(|s| s["data"].as_str().unwrap().starts_with("HTTP/1.1 200")).unwrap_or_else(|| {
        panic!("no HTTP answer from B: {got}\nB:\n{}", b.output());
    });
    // B's TSval follows A's (same UTC-based clock, same offset key), within the test's seconds.
    let ahead = (answer["ts"][0].as_u64().unwrap() as u32).wrapping_sub(tsval as u32) as i32;
    assert!((0..10_000).contains(&ahead), "B's TSval is {ahead} ms from A's SYN-ACK: {got}");
}

/// Wait at most 5 s for `text` in what `server` printed.
fn wait_for(server: &Server, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.output().contains(text) {
        assert!(std::time::Instant::now() < deadline, "no {text:?} within 5 s:\n{}", server.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cookie_made_by_one_server_opens_a_connection_on_another() {
    require_root();
    let _g = serial();
    let keys = KeyFile(std::env::temp_dir().join(format!("{}-fleet-keys.toml", unique("dlfleet"))));
    std::fs::write(
        &keys.0,
        "syncookie = \"6b1e0d5c4a39281706f5e4d3c2b1a098\"\ntimestamp = \"00ffeeddccbbaa998877665544332211\"\n",
    )
    .unwrap();
    let key_arg = keys.0.display().to_string();
    let ns_a = Netns::new("fla");
    let ns_b = Netns::new("flb");
    let a = Server::start(
        &ns_a,
        ServerOpts { queues: 1, serve_args: &["--listen", "198.18.0.1:80", "--syncookies", "2", "--key-file", &key_arg] },
    );
    // B starts later: its engine clock is behind A's.
    std::thread::sleep(Duration::from_millis(1500));
    let b = Server::start(&ns_b, ServerOpts { queues: 1, serve_args: &["--listen", "198.18.0.1:80", "--key-file", &key_arg] });
    handshake_moves(&ns_a, &a, &ns_b, &b, "43123");
    let c = counters(&a);
    assert!(get(&c, "TcpExtSyncookiesSent") >= 1, "A answered with a cookie: {c}");
    let c = counters(&b);
    assert_eq!(get(&c, "TcpExtSyncookiesSent"), 0, "B never sent a cookie: {c}");
    assert_eq!(get(&c, "TcpExtSyncookiesRecv"), 1, "{c}");
    assert_eq!(get(&c, "TcpExtSyncookiesFailed"), 0, "{c}");
    assert!(get(&c, "TcpPassiveOpens") >= 1, "{c}");

    // A rotation step (the new key mints, the old one is still accepted):
    // both servers take the changed file, and handshakes still move.
    std::fs::write(
        &keys.0,
        "syncookie = \"c0ffee00c0ffee00c0ffee00c0ffee00\"\nsyncookie_previous = \"6b1e0d5c4a39281706f5e4d3c2b1a098\"\ntimestamp = \"00ffeeddccbbaa998877665544332211\"\n",
    )
    .unwrap();
    wait_for(&a, "keys from");
    wait_for(&b, "keys from");
    handshake_moves(&ns_a, &a, &ns_b, &b, "43124");
    assert_eq!(get(&counters(&b), "TcpExtSyncookiesRecv"), 2);
    // A file that does not parse is said once and changes nothing.
    std::fs::write(&keys.0, "syncookie = \"0011\"\n").unwrap();
    wait_for(&b, "keeping the keys in use");
    handshake_moves(&ns_a, &a, &ns_b, &b, "43125");
    assert_eq!(get(&counters(&b), "TcpExtSyncookiesRecv"), 3);
    assert_eq!(b.output().matches("keeping the keys in use").count(), 1, "{}", b.output());
}
