//! Live statistics over a Unix control socket, and `dlisten stats`'s client.
//!
//! Protocol: the client connects, sends one line (`stats` or `json`), reads
//! the answer until the server closes. `stats` is the text report
//! ([`format_stats`]) the periodic line and the final report print; `json`
//! is one JSON object (counters by name, per-worker counters, listeners,
//! latency percentiles). The socket is 0600: stats are for the operator.

use crate::engine::socket::ListenerInfo;
use crate::stats::{RuntimeSnapshot, Stage};
use crate::telemetry::text::{format_runtime, format_ss_lnt};
use crate::stats::{Counter, CounterSnapshot, Gauge, GaugeSnapshot};
use crate::telemetry::capture::{self, CaptureHub};
use crate::telemetry::latency::LatencyRow;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
pub use super::control_client::{connect, query, ControlError};

/// Where `serve` puts its control socket unless told otherwise.
pub const CONTROL_DIR: &str = "/run/dlisten";
/// A command line longer than this is refused.
/// (`set http-body` carries a body.)
const COMMAND_MAX: u64 = 64 * 1024;
/// A client that sends nothing for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// `/run/dlisten/<name>.sock` (`name` is `dlisten` by default, or EAL's `--file-prefix`).
pub fn default_socket_path(name: &str) -> PathBuf {
    Path::new(CONTROL_DIR).join(format!("{name}.sock"))
}

/// What the control socket reports, taken at one moment.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Time since serve started.
    pub uptime: Duration,
    /// Each worker's counters, by worker id.
    pub per_worker: Vec<CounterSnapshot>,
    /// The control plane's counters (socket calls, migrations).
    pub control: CounterSnapshot,
    pub listeners: Vec<ListenerInfo>,
    /// [`LatencyHub::percentile_table`](crate::telemetry::LatencyHub::percentile_table).
    pub latency_table: String,
    /// [`LatencyHub::rows`](crate::telemetry::LatencyHub::rows), for the JSON answer.
    pub latency: Vec<LatencyRow>,
    /// Each worker's cycles per stage, busy and idle, by worker id.
    pub runtime: Vec<RuntimeSnapshot>,
    /// Each worker's gauges (what it holds now), by worker id.
    pub gauges: Vec<GaugeSnapshot>,
}

impl StatsSnapshot {
    /// Every worker's and the control plane's counters summed.
    pub fn total(&self) -> CounterSnapshot {
        CounterSnapshot::sum(self.per_worker.iter().chain(std::iter::once(&self.control)))
    }
}

/// Implemented by serve: a fresh snapshot per request.
pub trait StatsSource: Send + Sync {
    fn snapshot(&self) -> StatsSnapshot;

    /// The workers' capture taps (`capture` commands), when there are workers.
    fn capture(&self) -> Option<Arc<CaptureHub>> {
        None
    }

    /// `set KEY VALUE`: change one setting while serving; what changed.
    fn set(&self, key: &str, _value: &str) -> Result<String, String> {
        Err(format!("{key}: this server cannot change settings while serving"))
    }
}

/// Per-second rate of `c` on worker `w` between `prev` (or start) and `now`.
fn rate(now: &StatsSnapshot, prev: Option<&StatsSnapshot>, w: usize, c: Counter) -> f64 {
    let (prev_value, prev_uptime) = match prev {
        Some(p) => (p.per_worker.get(w).map_or(0, |s| s.get(c)), p.uptime),
        None => (0, Duration::ZERO),
    };
    let secs = now.uptime.saturating_sub(prev_uptime).as_secs_f64();
    let now_value = now.per_worker.get(w).map_or(0, |s| s.get(c));
    if secs <= 0.0 {
        return 0.0;
    }
    now_value.saturating_sub(prev_value) as f64 / secs
}

/// The text report: uptime, per-worker rates since `previous` (since start
/// without it), the non-zero counters nstat-style, `ss -lnt`, latencies.
pub fn format_stats(now: &StatsSnapshot, previous: Option<&StatsSnapshot>) -> String {
    let mut out = String::new();
    let since = match previous {
        Some(p) => format!("last {:.1} s", now.uptime.saturating_sub(p.uptime).as_secs_f64()),
        None => "since start".to_string(),
    };
    let _ = writeln!(out, "uptime {:.1} s (rates: {since})", now.uptime.as_secs_f64());
    for w in 0..now.per_worker.len() {
        let _ = writeln!(
            out,
            "worker {w} rx {:.1} frames/s tx {:.1} frames/s passive-opens {:.1}/s",
            rate(now, previous, w, Counter::RxFrames),
            rate(now, previous, w, Counter::TxFrames),
            rate(now, previous, w, Counter::TcpPassiveOpens),
        );
    }
    let _ = writeln!(out, "counters:");
    for (name, v) in now.total().nonzero() {
        let _ = writeln!(out, "  {name:<32} {v}");
    }
    out.push_str(&format_ss_lnt(&now.listeners));
    out.push_str(&now.latency_table);
    let runtime: Vec<RuntimeSnapshot> = match previous {
        Some(p) if p.runtime.len() == now.runtime.len() => {
            now.runtime.iter().zip(&p.runtime).map(|(n, p)| n.since(p)).collect()
        }
        _ => now.runtime.clone(),
    };
    out.push_str(&format_runtime(&runtime, &since));
    out
}

/// The `json` answer.
pub fn stats_json(s: &StatsSnapshot) -> Value {
    let total = s.total();
    let counters: Map<String, Value> =
        Counter::ALL.iter().map(|c| (c.name().to_string(), json!(total.get(*c)))).collect();
    let workers: Vec<Value> = s
        .per_worker
        .iter()
        .enumerate()
        .map(|(w, c)| {
            let mut v = json!({
                "worker": w,
                "rx_frames": c.get(Counter::RxFrames),
                "tx_frames": c.get(Counter::TxFrames),
                "tx_drops": c.get(Counter::TxDrops),
                "tx_no_mbuf": c.get(Counter::TxNoMbuf),
                "passive_opens": c.get(Counter::TcpPassiveOpens),
            });
            if let (Some(g), Some(obj)) = (s.gauges.get(w), v.as_object_mut()) {
                for &k in Gauge::ALL {
                    obj.insert(k.name().to_string(), json!(g.get(k)));
                }
            }
            v
        })
        .collect();
    let listeners: Vec<Value> = s
        .listeners
        .iter()
        .map(|l| {
            json!({
                "state": l.state,
                "recv_q": l.recv_q,
                "send_q": l.send_q,
                "local": l.local.to_string(),
                "reuseport_group": l.reuseport_group,
                "members": l.group_size,
                "syn_qlen": l.syn_qlen,
                "fastopen_max_qlen": l.fastopen_max_qlen,
            })
        })
        .collect();
    let latency: Vec<Value> = s
        .latency
        .iter()
        .map(|r| {
            json!({
                "listener": r.listener,
                "metric": r.metric.name(),
                "count": r.count,
                "p50_us": r.p50_us,
                "p90_us": r.p90_us,
                "p99_us": r.p99_us,
                "p99.9_us": r.p999_us,
                "max_us": r.max_us,
            })
        })
        .collect();
    json!({
        "uptime_s": s.uptime.as_secs_f64(),
        "counters": counters,
        "workers": workers,
        "listeners": listeners,
        "latency": latency,
        "runtime": s.runtime.iter().enumerate().map(|(w, r)| runtime_json(w, r)).collect::<Vec<_>>(),
    })
}

/// One worker's runtime accounting since start.
fn runtime_json(worker: usize, r: &RuntimeSnapshot) -> Value {
    let stages: Vec<Value> = Stage::ALL
        .iter()
        .map(|&st| {
            let t = r.stage(st);
            json!({
                "stage": st.name(),
                "calls": t.calls,
                "packets": t.packets,
                "cycles": t.cycles,
                "clocks_per_packet": t.clocks_per_packet(),
            })
        })
        .collect();
    json!({
        "worker": worker,
        "tsc_hz": r.tsc_hz,
        "busy_cycles": r.busy_cycles,
        "idle_cycles": r.idle_cycles,
        "busy_percent": r.busy_percent(),
        "capacity_pps": r.capacity_pps(),
        "clocks_per_rx_packet": r.clocks_per_rx_packet(),
        "stages": stages,
    })
}

/// The control socket bound but not yet served: `serve` binds it before
/// EAL, so that a second server with the same name is refused before it
/// touches the NIC. Dropped unserved, it removes its socket file.
pub struct ControlListener {
    path: PathBuf,
    listener: Option<UnixListener>,
    replaced_stale: bool,
}

impl ControlListener {
    /// Bind `path` (creating its directory; replacing a stale socket file,
    /// refusing a live one or a file that is not a socket), chmod 0600.
    pub fn bind(path: &Path) -> io::Result<ControlListener> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let replaced_stale = remove_stale_socket(path)?;
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlListener { path: path.to_path_buf(), listener: Some(listener), replaced_stale })
    }

    /// A socket file nobody answered on was there and has been removed: a
    /// server that died without cleaning up (`kill -9`) left it.
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serve until the returned server is dropped.
    pub fn start(mut self, state: Arc<dyn StatsSource>) -> io::Result<ControlServer> {
        let Some(listener) = self.listener.take() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "control socket already served"));
        };
        let path = std::mem::take(&mut self.path);
        let stop = Arc::new(AtomicBool::new(false));
        let spawned = {
            let stop = stop.clone();
            std::thread::Builder::new().name("dl-control".into()).spawn(move || accept_loop(listener, state, &stop))
        };
        match spawned {
            Ok(acceptor) => Ok(ControlServer { path, stop, acceptor: Some(acceptor) }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

impl Drop for ControlListener {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The control socket's server: an accept thread, one short thread per client.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// [`ControlListener::bind`] then [`ControlListener::start`].
    pub fn start(path: &Path, state: Arc<dyn StatsSource>) -> io::Result<ControlServer> {
        ControlListener::bind(path)?.start(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept() with a connection of our own.
        let _ = UnixStream::connect(&self.path);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A socket file nobody answers on (ECONNREFUSED) is left over from a dead
/// server: remove it, and say so (true).
fn remove_stale_socket(path: &Path) -> io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; not replacing it", path.display()),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running dlisten (pass another --control-socket)", path.display()),
        ));
    }
    std::fs::remove_file(path)?;
    Ok(true)
}

fn accept_loop(listener: UnixListener, state: Arc<dyn StatsSource>, stop: &AtomicBool) {
    // The last snapshot a `stats` request saw: rates are since then.
    let last: Arc<Mutex<Option<StatsSnapshot>>> = Arc::new(Mutex::new(None));
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: do not spin on them.
                eprintln!("dlisten: control socket: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let (state, last) = (state.clone(), last.clone());
        let spawned = std::thread::Builder::new().name("dl-control-client".into()).spawn(move || {
            let _ = serve_client(stream, state.as_ref(), &last);
        });
        if let Err(e) = spawned {
            eprintln!("dlisten: control socket: cannot spawn a client thread: {e}");
        }
    }
}

fn serve_client(stream: UnixStream, state: &dyn StatsSource, last: &Mutex<Option<StatsSnapshot>>) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new((&stream).take(COMMAND_MAX)).read_line(&mut line)?;
    let answer = match line.trim() {
        "stats" => {
            let now = state.snapshot();
            let mut last = crate::sync::lock(last);
            let text = format_stats(&now, last.as_ref());
            *last = Some(now);
            text
        }
        "json" => {
            let mut s = stats_json(&state.snapshot()).to_string();
            s.push('\n');
            s
        }
        cmd if cmd.starts_with("set ") => match parse_set(&cmd["set ".len()..]) {
            Ok((key, value)) => match state.set(&key, &value) {
                Ok(what) => format!("{what}\n"),
                Err(e) => format!("error: {e}\n"),
            },
            Err(e) => format!("error: {e}\n"),
        },
        cmd if cmd == "capture" || cmd.starts_with("capture ") => {
            // Runs for the capture's length: writes are bounded by the
            // timeout, the capture by its count and duration.
            stream.set_read_timeout(None)?;
            return match state.capture() {
                Some(hub) => capture::serve(&stream, &hub, &cmd["capture".len()..]),
                None => (&stream).write_all(b"error: this server has no workers to capture from\n"),
            };
        }
        other => format!("error: unknown command {other:?} (commands: stats, json, capture)\n"),
    };
    (&stream).write_all(answer.as_bytes())?;
    (&stream).flush()
}

/// `KEY "VALUE"`: the value is a JSON string, so that any text (a body
/// with newlines) fits on the command's one line.
fn parse_set(rest: &str) -> Result<(String, String), String> {
    let (key, value) = rest.trim().split_once(' ').ok_or("set: expected KEY VALUE")?;
    let value: String = serde_json::from_str(value.trim()).map_err(|e| format!("set {key}: the value is not a JSON string: {e}"))?;
    Ok((key.to_string(), value))
}

/// The control socket line that sets `key` to `value`.
pub fn set_command(key: &str, value: &str) -> String {
    format!("set {key} {}", Value::String(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metric;
    use crate::telemetry::latency::{LatencyHub, WorkerLatency};
    use crate::stats::{Counters, Runtime};
    use std::sync::atomic::AtomicU64;

    /// A fake serve: two workers whose counters grow by a known amount per
    /// snapshot, one second of uptime per snapshot.
    struct Fake {
        calls: AtomicU64,
        latency_table: String,
        latency: Vec<LatencyRow>,
    }

    impl StatsSource for Fake {
        fn snapshot(&self) -> StatsSnapshot {
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            fake_snapshot(n, &self.latency_table, &self.latency)
        }
    }

    fn fake_snapshot(n: u64, latency_table: &str, latency: &[LatencyRow]) -> StatsSnapshot {
        let w0 = Counters::new();
        w0.add(Counter::RxFrames, 1000 * n);
        w0.add(Counter::TxFrames, 900 * n);
        w0.add(Counter::TcpPassiveOpens, 100 * n);
        let w1 = Counters::new();
        w1.add(Counter::RxFrames, 10 * n);
        w1.add(Counter::ListenDrops, 3);
        let control = Counters::new();
        control.add(Counter::TcpMigrateReqSuccess, 2);
        let g0 = crate::stats::Gauges::new();
        g0.set(Gauge::TimeWait, 5 * n);
        g0.set(Gauge::MbufsInUse, 1024);
        StatsSnapshot {
            uptime: Duration::from_secs(n),
            per_worker: vec![w0.snapshot(), w1.snapshot()],
            control: control.snapshot(),
            listeners: vec![ListenerInfo {
                id: 1,
                state: "LISTEN",
                recv_q: 4,
                send_q: 128,
                local: "198.18.0.1:80".parse().unwrap(),
                v6only: false,
                reuseport_group: 0,
                group_size: 1,
                syn_qlen: 2,
                fastopen_max_qlen: 0,
                incoming_cpu: None,
            }],
            latency_table: latency_table.to_string(),
            latency: latency.to_vec(),
            runtime: vec![fake_runtime(n)],
            gauges: vec![g0.snapshot(), GaugeSnapshot::default()],
        }
    }

    /// `n` seconds of a worker busy a quarter of the time at 1 GHz.
    fn fake_runtime(n: u64) -> RuntimeSnapshot {
        let r = Runtime::new(1_000_000_000);
        for _ in 0..n {
            r.stage(Stage::Rx, 1000, 50_000);
            r.stage(Stage::Tcp, 1000, 300_000);
        }
        r.busy(250_000_000 * n);
        r.idle(750_000_000 * n);
        r.snapshot()
    }

    fn fake() -> Arc<Fake> {
        let mut w = WorkerLatency::new();
        for i in 1..=10 {
            w.record(1, Metric::SynToSynAck, i * 1000);
        }
        let (mut hub, tx) = LatencyHub::new();
        tx.send(w.take());
        hub.drain();
        hub.set_listener_label(1, "198.18.0.1:80");
        Arc::new(Fake { calls: AtomicU64::new(0), latency_table: hub.percentile_table(), latency: hub.rows() })
    }

    fn temp_socket(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("dlisten-test-{}-{name}", std::process::id())).join("ctl.sock")
    }

    #[test]
    fn default_path() {
        assert_eq!(default_socket_path("dlisten"), PathBuf::from("/run/dlisten/dlisten.sock"));
        assert_eq!(default_socket_path("t1"), PathBuf::from("/run/dlisten/t1.sock"));
    }

    #[test]
    fn rates_from_two_snapshots() {
        let a = fake_snapshot(2, "", &[]);
        let mut b = fake_snapshot(6, "", &[]);
        b.uptime = Duration::from_secs(4); // 2 s later, 4 steps of counters
        assert_eq!(rate(&b, Some(&a), 0, Counter::RxFrames), 2000.0);
        assert_eq!(rate(&b, Some(&a), 0, Counter::TcpPassiveOpens), 200.0);
        assert_eq!(rate(&b, Some(&a), 1, Counter::RxFrames), 20.0);
        // Without a previous snapshot: the average since start.
        assert_eq!(rate(&a, None, 0, Counter::RxFrames), 1000.0);
        // No time passed: no rate rather than a division by zero.
        assert_eq!(rate(&a, Some(&a), 0, Counter::RxFrames), 0.0);
        let text = format_stats(&b, Some(&a));
        assert!(text.starts_with("uptime 4.0 s (rates: last 2.0 s)\n"), "{text}");
        assert!(text.contains("worker 0 rx 2000.0 frames/s tx 1800.0 frames/s passive-opens 200.0/s\n"), "{text}");
        assert!(text.contains("worker 1 rx 20.0 frames/s tx 0.0 frames/s passive-opens 0.0/s\n"), "{text}");
        // The runtime table covers the same interval: 4000 packets in 1 s busy.
        assert!(text.contains("runtime worker 0 (last 2.0 s): busy 25.0%, capacity 0.004 Mpps per busy second, 350 clocks per received packet\n"), "{text}");
        assert!(text.contains("  tcp                 4           4000       300.0     1000.0\n"), "{text}");
    }

    #[test]
    fn stats_and_json_over_the_socket() {
        let path = temp_socket("serve");
        let server = ControlServer::start(&path, fake()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let text = query(&path, "stats").unwrap();
        assert!(text.starts_with("uptime 1.0 s (rates: since start)\n"), "{text}");
        assert!(text.contains("worker 0 rx 1000.0 frames/s tx 900.0 frames/s passive-opens 100.0/s"), "{text}");
        assert!(text.contains("  TcpPassiveOpens                  100\n"), "{text}");
        assert!(text.contains("  TcpExtListenDrops                3\n"), "{text}");
        assert!(text.contains("  TcpExtTCPMigrateReqSuccess       2\n"), "control counters summed: {text}");
        assert!(text.contains("Local Address:Port"), "{text}");
        assert!(text.contains("LISTEN 4      128    198.18.0.1:80"), "{text}");
        assert!(text.contains("198.18.0.1:80         syn->synack"), "{text}");

        // The second `stats` has rates since the first.
        let text = query(&path, "stats").unwrap();
        assert!(text.starts_with("uptime 2.0 s (rates: last 1.0 s)\n"), "{text}");

        let v: Value = serde_json::from_str(&query(&path, "json").unwrap()).unwrap();
        assert_eq!(v["uptime_s"], 3.0);
        assert_eq!(v["counters"]["DlRxFrames"], 3000 + 30);
        assert_eq!(v["counters"]["TcpPassiveOpens"], 300);
        assert_eq!(v["counters"]["TcpExtTCPMigrateReqSuccess"], 2);
        assert_eq!(v["counters"]["TcpExtSyncookiesSent"], 0);
        assert_eq!(v["counters"].as_object().unwrap().len(), Counter::COUNT);
        assert_eq!(v["workers"][1]["rx_frames"], 30);
        assert_eq!(v["workers"][0]["tx_frames"], 2700);
        assert_eq!(v["workers"][0]["passive_opens"], 300);
        // Gauges are the last value, not a sum or a rate.
        assert_eq!(v["workers"][0]["time_wait"], 15);
        assert_eq!(v["workers"][0]["mbufs_in_use"], 1024);
        assert_eq!(v["workers"][1]["time_wait"], 0);
        assert_eq!(v["workers"][1]["connections"], 0);
        assert_eq!(v["listeners"][0]["local"], "198.18.0.1:80");
        assert_eq!(v["listeners"][0]["recv_q"], 4);
        assert_eq!(v["listeners"][0]["send_q"], 128);
        assert_eq!(v["listeners"][0]["state"], "LISTEN");
        let lat = &v["latency"][0];
        assert_eq!(lat["listener"], "198.18.0.1:80");
        assert_eq!(lat["metric"], "syn->synack");
        assert_eq!(lat["count"], 10);
        assert!((lat["max_us"].as_f64().unwrap() - 10.0).abs() < 0.01, "{lat}");
        assert_eq!(v["latency"][1]["listener"], "all");
        let rt = &v["runtime"][0];
        assert_eq!(rt["worker"], 0);
        assert_eq!(rt["busy_percent"], 25.0);
        assert_eq!(rt["stages"][0]["stage"], "rx");
        assert_eq!(rt["stages"][0]["packets"], 3000);
        assert_eq!(rt["stages"][3]["stage"], "tcp");
        assert_eq!(rt["stages"][3]["clocks_per_packet"], 300.0);

        match query(&path, "frobnicate") {
            Err(ControlError::Server { message, .. }) => assert!(message.contains("unknown command"), "{message}"),
            other => panic!("{other:?}"),
        }

        drop(server);
        assert!(!path.exists(), "Drop removes the socket file");
        match query(&path, "stats") {
            Err(e @ ControlError::NotRunning(_)) => {
                let msg = e.to_string();
                assert!(msg.starts_with("no dlisten running with control socket "), "{msg}");
                assert!(msg.ends_with("(is serve running? pass --socket)"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir(path.parent().unwrap());
    }

    #[test]
    fn stale_socket_replaced_live_one_refused() {
        let path = temp_socket("stale");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A socket file left by a dead server: bound, then its listener dropped.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        assert!(matches!(query(&path, "stats"), Err(ControlError::NotRunning(_))));
        let bound = ControlListener::bind(&path).unwrap();
        assert!(bound.replaced_stale(), "the dead server's socket file is reported");
        let server = bound.start(fake()).unwrap();
        assert!(query(&path, "stats").unwrap().starts_with("uptime "));

        // A second server on a live socket is refused; the first keeps working.
        let err = ControlServer::start(&path, fake()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(query(&path, "json").is_ok());
        drop(server);

        // A regular file is not ours to remove.
        std::fs::write(&path, b"x").unwrap();
        let err = ControlServer::start(&path, fake()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&path).unwrap();

        // Bound on a clean path: nothing replaced; dropped unserved: removed.
        let bound = ControlListener::bind(&path).unwrap();
        assert!(!bound.replaced_stale());
        drop(bound);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(path.parent().unwrap());
    }
}
