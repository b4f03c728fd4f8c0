//! End-to-end harness: network namespaces the test creates, `dlisten serve` on
//! `net_tap` inside them, and real Linux peers (ping, nc, curl, hping3, scapy).
//!
//! Rules kept here: only addresses in 198.18.0.0/15; everything created is
//! removed on drop (namespaces take their tap and veth devices with them);
//! only processes we spawned are signalled, by PID.
#![allow(dead_code)]

mod veth;
#[allow(unused_imports)] // not every test binary uses them
pub use veth::{VethPair, VethServer};

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The dlisten side of the tap link.
pub const SERVER_IP: &str = "198.18.0.1";
/// The kernel side of the tap link.
pub const CLIENT_IP: &str = "198.18.0.2";

static SERIAL: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

/// End-to-end tests run one at a time: busy-polling workers and the kernel
/// peers share two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    dlisten::sync::lock(&SERIAL)
}

pub fn require_root() {
    // SAFETY-free check: `id -u` rather than libc in tests.
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(uid, "0", "end-to-end tests need root (network namespaces, tap devices): run deploy/test.sh as root");
    assert!(std::path::Path::new("/dev/net/tun").exists(), "/dev/net/tun is missing: run deploy/setup.sh");
}

/// A short unique tag for names (namespace, tap, EAL file prefix).
pub fn unique(tag: &str) -> String {
    format!("{tag}{}x{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed))
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(&format!("dl{tag}"));
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        // Keep IPv6 chatter (router solicitations, MLD) off the tap.
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.ok(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    pub fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Run to completion and return the output, whatever the exit status.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.cmd(argv).output().unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"))
    }

    /// Run and require success.
    pub fn ok(&self, argv: &[&str]) -> Output {
        run_ok(&mut self.cmd(argv))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn dlisten_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dlisten"))
}

/// `dlisten serve` on a tap device inside `ns`, with the kernel side of the tap
/// configured as CLIENT_IP/24. Stopped with SIGINT on drop.
pub struct Server {
    pub child: Child,
    pub tap: String,
    /// EAL --file-prefix; the control socket is /run/dlisten/<prefix>.sock.
    pub prefix: String,
    pub ns_name: String,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    stopped: bool,
}

pub struct ServerOpts<'a> {
    pub queues: u16,
    pub serve_args: &'a [&'a str],
}

impl Default for ServerOpts<'_> {
    fn default() -> Self {
        ServerOpts { queues: 1, serve_args: &[] }
    }
}

impl Server {
    pub fn start(ns: &Netns, opts: ServerOpts) -> Server {
        Server::start_prefixed(ns, opts, &unique("dle2e"), false)
    }

    /// With EAL `--file-prefix prefix`; `shared_config`: without
    /// `--no-shconf`, so EAL keeps its runtime files in /var/run/dpdk/<prefix>/
    /// as in production.
    pub fn start_prefixed(ns: &Netns, opts: ServerOpts, prefix: &str, shared_config: bool) -> Server {
        let tap = unique("dlt");
        let prefix = prefix.to_string();
        let vdev = format!("net_tap0,iface={tap}");
        let workers = opts.queues.to_string();
        let mut argv: Vec<String> = vec![
            dlisten_bin().display().to_string(),
            "serve".into(),
            "--addr".into(),
            SERVER_IP.into(),
            "--workers".into(),
            workers,
            "--idle-sleep-us".into(),
            "20".into(),
        ];
        argv.extend(opts.serve_args.iter().map(|s| s.to_string()));
        argv.extend(["--", "--no-huge", "-m", "512", "--no-pci"].iter().map(|s| s.to_string()));
        if !shared_config {
            argv.push("--no-shconf".into());
        }
        argv.extend(
            ["--file-prefix", &prefix, "--vdev", &vdev, "--log-level", "lib.eal:error"].iter().map(|s| s.to_string()),
        );
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let Captured { child, output, readers, ready } = spawn_captured(ns.cmd(&argv_ref).env("RUST_BACKTRACE", "1"));
        let ready_rx = ready;
        let mut server = Server { child, tap, prefix, ns_name: ns.name.clone(), output, readers, stopped: false };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!("dlisten did not become ready in 30 s; output:\n{}", server.output());
        }
        ns.ok(&["ip", "addr", "add", &format!("{CLIENT_IP}/24"), "dev", &server.tap]);
        ns.ok(&["ip", "link", "set", &server.tap, "up"]);
        server
    }

    pub fn control_socket(&self) -> String {
        format!("/run/dlisten/{}.sock", self.prefix)
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGINT, then wait (at most 15 s) and return everything it printed.
    pub fn stop(&mut self) -> String {
        self.stop_with("INT", Duration::from_secs(15))
    }

    /// Send `signal` (a `kill -s` name: "TERM") without waiting.
    pub fn signal(&self, signal: &str) {
        run_ok(Command::new("kill").args(["-s", signal, &self.child.id().to_string()]));
    }

    /// Send `signal` (unless it is empty: already sent), then wait at most
    /// `within` for a clean exit and return everything it printed.
    pub fn stop_with(&mut self, signal: &str, within: Duration) -> String {
        if !self.stopped {
            self.stopped = true;
            if !signal.is_empty() {
                self.signal(signal);
            }
            let deadline = Instant::now() + within;
            loop {
                match self.child.try_wait() {
                    Ok(Some(status)) => {
                        for r in self.readers.drain(..) {
                            let _ = r.join();
                        }
                        let out = self.output();
                        assert!(status.success(), "dlisten exited with {status}; output:\n{out}");
                        return out;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                    _ => {
                        let _ = self.child.kill();
                        let _ = self.child.wait();
                        panic!("dlisten did not stop within {within:?} of SIG{signal}; output:\n{}", self.output());
                    }
                }
            }
        }
        self.output()
    }
}

impl Server {
    /// SIGKILL, as a crash or the OOM killer would end it: nothing of ours
    /// runs. Returns what it printed.
    pub fn kill9(&mut self) -> String {
        self.stopped = true;
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let status = self.child.wait().expect("wait for dlisten");
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        assert!(!status.success(), "dlisten survived SIGKILL: {status}");
        self.output()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A spawned process whose stdout and stderr are collected into one string.
pub struct Captured {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
    pub readers: Vec<std::thread::JoinHandle<()>>,
    /// Gets a message when a line says "dlisten: ready".
    pub ready: std::sync::mpsc::Receiver<()>,
}

pub fn spawn_captured(cmd: &mut Command) -> Captured {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn dlisten");
    let output = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let mut readers = Vec::new();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>,
    ] {
        let output = output.clone();
        let ready_tx = ready_tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if line.contains("dlisten: ready") {
                    let _ = ready_tx.send(());
                }
                let mut o = output.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        }));
    }
    Captured { child, output, readers, ready }
}

/// A command's standard output as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Parse a `name value` counter from dlisten's final report ("  TcpOutRsts 3").
/// A name the report does not show is 0 only when it is one of dlisten's
/// counters (the report leaves zeros out); any other name is a typo in
/// the test and fails it rather than reading as 0.
pub fn counter(report: &str, name: &str) -> u64 {
    let found = report
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next()?.parse::<u64>().ok()).flatten()
        })
        .next_back();
    found.unwrap_or_else(|| {
        assert!(
            dlisten::stats::Counter::ALL.iter().any(|c| c.name() == name),
            "no counter named {name:?}: not in the report and not a dlisten counter\n{report}"
        );
        0
    })
}

/// Per-worker received-frame counts from the final report ("worker 1 rx_frames 42 ...").
pub fn worker_rx_frames(report: &str) -> Vec<(u32, u64)> {
    report
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 4 && f[0] == "worker" && f[2] == "rx_frames" {
                Some((f[1].parse().ok()?, f[3].parse().ok()?))
            } else {
                None
            }
        })
        .collect()
}
