//! `dlisten capture` against a running server: curl (the kernel's TCP in a
//! namespace the test makes) fetches from the http app over net_tap while a
//! capture runs, and tcpdump reads the pcapng back: the handshake, the
//! request and the response are there, the filter kept the rest out, and
//! `--direction` / `--count` hold.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BODY: &str = "captured body\n";

/// `dlisten capture ARGS -w FILE`, returned once it says it is capturing;
/// its stderr lines keep coming on the receiver.
fn start_capture(server: &Server, args: &[&str], file: &Path) -> (Child, mpsc::Receiver<String>) {
    let socket = server.control_socket();
    let mut child = Command::new(dlisten_bin())
        .args(["capture", "--control-socket", &socket])
        .args(args)
        .arg("-w")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dlisten capture");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.starts_with("dlisten: capturing on dlt") => (child, rx),
        other => {
            let _ = child.kill();
            panic!("capture did not start: {other:?}");
        }
    }
}

/// Wait (bounded) for the capture to exit by itself; its summary line.
fn finish(mut child: Child, lines: &mpsc::Receiver<String>) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("dlisten capture did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(status.success(), "dlisten capture: {status}: {rest:?}");
    rest.into_iter().find(|l| l.contains("frames captured")).unwrap_or_else(|| panic!("no summary"))
}

fn tcpdump(file: &Path, extra: &[&str]) -> String {
    let out = run_ok(Command::new("tcpdump").args(["-nn", "-r"]).arg(file).args(extra));
    stdout(&out)
}

fn curl(ns: &Netns) {
    let url = format!("http://{SERVER_IP}/");
    let out = ns.run(&["curl", "-sS", "--max-time", "5", "-H", "Connection: close", &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), BODY, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn capture_a_curl_and_read_it_back_with_tcpdump() {
    require_root();
    let _serial = serial();
    let ns = Netns::new("cap");
    let dir = std::env::temp_dir().join(unique("dlcap"));
    std::fs::create_dir_all(&dir).unwrap();
    let listen = format!("{SERVER_IP}:80");
    let mut server =
        Server::start(&ns, ServerOpts { queues: 2, serve_args: &["--listen", &listen, "--app", "http", "--http-body", BODY] });
    // ARP settled before the capture, so that it sees TCP only.
    curl(&ns);

    // Both directions, host and port: ended by SIGINT, as an operator would.
    let file = dir.join("both.pcapng");
    let (child, lines) = start_capture(&server, &["--host", SERVER_IP, "--port", "80", "--duration", "30"], &file);
    for _ in 0..3 {
        curl(&ns);
    }
    ns.ok(&["ping", "-c", "2", "-i", "0.2", "-W", "2", SERVER_IP]);
    std::thread::sleep(Duration::from_millis(300));
    run_ok(Command::new("kill").args(["-s", "INT", &child.id().to_string()]));
    let summary = finish(child, &lines);
    assert!(summary.contains("0 dropped") && summary.ends_with("stopped by client"), "{summary}");

    let text = tcpdump(&file, &[]);
    let client = format!("{CLIENT_IP}.");
    let to_server = format!("> {SERVER_IP}.80:");
    let from_server = format!("{SERVER_IP}.80 > {client}");
    let lines_with = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    // The client port of each line with `flags` going `way` (a loaded
    // machine may retransmit: count connections, not lines).
    let ports = |way: &str, flags: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.contains(way) && l.contains(flags))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with(&client)).map(|w| w.trim_end_matches(':').to_string()))
            .collect()
    };
    let syn = ports(&to_server, "Flags [S],");
    assert_eq!(syn.len(), 3, "three handshakes:\n{text}");
    assert_eq!(ports(&from_server, "Flags [S.],"), syn, "a SYN-ACK for each SYN:\n{text}");
    assert_eq!(ports(&to_server, "Flags [.],"), syn, "an ACK from each client:\n{text}");
    assert_eq!(lines_with("ICMP"), 0, "--port 80 keeps the pings out:\n{text}");
    assert!(lines_with(": HTTP: GET / HTTP/1.1") >= 3 || lines_with("HTTP") >= 3, "{text}");
    let ascii = tcpdump(&file, &["-A"]);
    assert!(ascii.matches(BODY.trim_end()).count() >= 3, "the response bodies:\n{ascii}");
    let frames: usize = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(text.lines().count(), frames, "{summary}\n{text}");

    // Received frames only, stopped by --count.
    let file = dir.join("rx.pcapng");
    let (child, lines) = start_capture(&server, &["--direction", "rx", "--port", "80", "--count", "3"], &file);
    curl(&ns);
    let summary = finish(child, &lines);
    assert!(summary.starts_with("dlisten: 3 frames captured (rx 3, tx 0)") && summary.ends_with("stopped by count"), "{summary}");
    let text = tcpdump(&file, &[]);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains(&to_server)), "only what the server received:\n{text}");
    assert!(text.lines().next().unwrap().contains("Flags [S],"), "{text}");

    // A second capture while one runs is refused, plainly.
    let file2 = dir.join("busy.pcapng");
    let (child, lines) = start_capture(&server, &["--duration", "5"], &file);
    let busy = Command::new(dlisten_bin())
        .args(["capture", "--control-socket", &server.control_socket(), "-w"])
        .arg(&file2)
        .output()
        .unwrap();
    assert_eq!(busy.status.code(), Some(1));
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("a capture is already running"), "{err}");
    run_ok(Command::new("kill").args(["-s", "INT", &child.id().to_string()]));
    finish(child, &lines);

    let report = server.stop();
    assert!(counter(&report, "TcpPassiveOpens") >= 5, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
