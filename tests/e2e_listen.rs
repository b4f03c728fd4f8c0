//! The listen path end to end: `dlisten serve --listen` completes handshakes with
//! the Linux kernel's TCP client through net_tap; SYN cookies take over with
//! a tiny backlog under an hping3 SYN flood (spoofed sources inside
//! 198.18.0.0/15, bounded in count) while a normal client still connects;
//! with an application that never accepts, the accept queue holds
//! backlog + 1 children and further SYNs overflow.

mod common;
use common::*;

const PY: &str = "/usr/bin/python3";

fn python(ns: &Netns, script: &str) -> String {
    let out = ns.run(&[PY, "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn handshakes_complete_and_cookies_survive_a_flood() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("lis");
    let listen = format!("{SERVER_IP}:80");
    let mut server = Server::start(
        &ns,
        ServerOpts { queues: 2, serve_args: &["--listen", &listen, "--backlog", "4", "--app", "http"] },
    );

    // The kernel's client: connect() succeeds (3-way handshake) and the
    // accepted connection answers an HTTP/1.0 request, then closes.
    let out = python(
        &ns,
        &format!(
            r#"
import socket
ok = answered = 0
for i in range(10):
    s = socket.create_connection(("{SERVER_IP}", 80), timeout=3); ok += 1
    s.settimeout(3)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    answered += data.startswith(b"HTTP/1.1 200 OK")
    s.close()
print("connected", ok, "answered", answered)
"#
        ),
    );
    assert!(out.contains("connected 10 answered 10"), "{out}\n{}", server.output());

    // A SYN flood from a spoofed in-range source fills the SYN queue (backlog 4);
    // meanwhile a normal client connects through cookies.
    let mut flood = ns
        .cmd(&["hping3", "-q", "-S", "-p", "80", "-a", "198.18.0.3", "-i", "u300", "-c", "4000", SERVER_IP])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hping3");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = python(
        &ns,
        &format!(
            r#"
import socket
ok = 0
for i in range(20):
    s = socket.create_connection(("{SERVER_IP}", 80), timeout=3); ok += 1; s.close()
print("under flood connected", ok)
"#
        ),
    );
    let _ = flood.wait();
    assert!(out.contains("under flood connected 20"), "{out}\n{}", server.output());

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= 30, "{report}");
    assert!(counter(&report, "TcpExtSyncookiesSent") > 1000, "{report}");
    assert!(counter(&report, "TcpExtTCPReqQFullDoCookies") > 1000, "{report}");
    assert!(counter(&report, "TcpExtSyncookiesRecv") >= 1, "{report}");
    assert_eq!(counter(&report, "TcpExtSyncookiesFailed"), 0, "{report}");
}

#[test]
fn a_listener_that_never_accepts_holds_backlog_plus_one() {
    hold(&[]);
}

#[test]
fn hold_never_accepts_in_application_thread_mode_either() {
    hold(&["--app-threads", "2"]);
}

fn hold(extra: &[&str]) {
    require_root();
    let _serial = serial();
    let ns = Netns::new("hold");
    let listen = format!("{SERVER_IP}:81");
    let mut args = vec!["--listen", listen.as_str(), "--backlog", "2", "--app", "hold"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&ns, ServerOpts { queues: 1, serve_args: &args });

    // Five clients in parallel: three handshakes complete (backlog 2 + 1),
    // the other SYNs are dropped while the accept queue is full, so those
    // connect() calls time out (the kernel client retransmits its SYN).
    let out = python(
        &ns,
        &format!(
            r#"
import socket
socks, ok, timeouts = [], 0, 0
for i in range(5):
    s = socket.socket(); s.settimeout(1.5)
    try:
        s.connect(("{SERVER_IP}", 81)); ok += 1; socks.append(s)
    except socket.timeout:
        timeouts += 1
print("connected", ok, "timeouts", timeouts)
"#
        ),
    );
    assert!(out.contains("connected 3 timeouts 2"), "{out}\n{}", server.output());
    let report = server.stop();
    // The `ss -lnt` table printed at exit: Recv-Q 3, Send-Q 2.
    let ss_line = report.lines().rfind(|l| l.starts_with("LISTEN") && l.contains(":81")).unwrap_or("");
    let cols: Vec<&str> = ss_line.split_whitespace().collect();
    assert_eq!(cols.get(1..3), Some(&["3", "2"][..]), "{report}");
    assert!(counter(&report, "TcpExtListenOverflows") >= 2, "{report}");
    assert!(counter(&report, "TcpExtListenDrops") >= 2, "{report}");
    assert_eq!(counter(&report, "TcpPassiveOpens"), 3, "{report}");
}
