//! `--event-log FILE`: one JSON object per line for every event the
//! application sees (listening, accept, data, EOF, reset, close).
//!
//! Workers and application threads hold an [`EventSender`]: `send` stamps the
//! event and `try_send`s it on a bounded channel, so a slow disk never stalls
//! a worker; a full channel drops the event and counts it. One writer thread
//! owns the file behind a `BufWriter` and flushes whenever the channel goes
//! idle, so `tail -f` follows the log.
//!
//! ```text
//! {"ts":0.000412,"event":"listening","addr":"198.18.0.1:80"}
//! {"ts":1.250007,"event":"accept","listener":"198.18.0.1:80","peer":"198.18.0.2:40000","worker":0}
//! {"ts":1.250213,"event":"data","peer":"198.18.0.2:40000","len":78,"bytes":"474554202f20..."}
//! ```

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Payload bytes a `data` event carries (the full length goes in `len`).
pub const DATA_BYTES_MAX: usize = 64;
/// Events the channel holds before senders start dropping.
const CHANNEL_CAPACITY: usize = 65_536;
/// Flush at least this often while events keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// An application-visible event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// A listener entered LISTEN.
    Listening { addr: SocketAddr },
    /// accept() returned a connection.
    Accept { listener: SocketAddr, peer: SocketAddr, worker: u16 },
    /// Data read from a connection: the first [`DATA_BYTES_MAX`] bytes and the full length.
    Data { peer: SocketAddr, bytes: Vec<u8>, len: usize },
    /// The peer sent FIN.
    Eof { peer: SocketAddr },
    /// The connection was reset (by the peer or by us).
    Reset { peer: SocketAddr },
    /// The application closed the connection.
    Close { peer: SocketAddr },
}

impl AppEvent {
    /// A `Data` event keeping only the first [`DATA_BYTES_MAX`] bytes of `payload`.
    pub fn data(peer: SocketAddr, payload: &[u8]) -> AppEvent {
        let keep = payload.len().min(DATA_BYTES_MAX);
        AppEvent::Data { peer, bytes: payload[..keep].to_vec(), len: payload.len() }
    }

    /// The `"event"` field.
    pub fn name(&self) -> &'static str {
        match self {
            AppEvent::Listening { .. } => "listening",
            AppEvent::Accept { .. } => "accept",
            AppEvent::Data { .. } => "data",
            AppEvent::Eof { .. } => "eof",
            AppEvent::Reset { .. } => "reset",
            AppEvent::Close { .. } => "close",
        }
    }

    /// The JSON line (without the newline) for this event at `ts` since start.
    /// Every value is a number, an address or hex, so nothing needs escaping.
    pub fn to_json_line(&self, ts: Duration) -> String {
        let mut s = String::with_capacity(96);
        let _ = write!(s, "{{\"ts\":{}.{:06},\"event\":\"{}\"", ts.as_secs(), ts.subsec_micros(), self.name());
        match self {
            AppEvent::Listening { addr } => {
                let _ = write!(s, ",\"addr\":\"{addr}\"");
            }
            AppEvent::Accept { listener, peer, worker } => {
                let _ = write!(s, ",\"listener\":\"{listener}\",\"peer\":\"{peer}\",\"worker\":{worker}");
            }
            AppEvent::Data { peer, bytes, len } => {
                let _ = write!(s, ",\"peer\":\"{peer}\",\"len\":{len},\"bytes\":\"");
                for b in bytes.iter().take(DATA_BYTES_MAX) {
                    let _ = write!(s, "{b:02x}");
                }
                s.push('"');
            }
            AppEvent::Eof { peer } | AppEvent::Reset { peer } | AppEvent::Close { peer } => {
                let _ = write!(s, ",\"peer\":\"{peer}\"");
            }
        }
        s.push('}');
        s
    }
}

enum Msg {
    Event(Duration, AppEvent),
    /// Flush and stop (sent by `close`).
    Stop,
}

/// The senders' end: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventSender {
    tx: Sender<Msg>,
    start: Instant,
    dropped: Arc<AtomicU64>,
}

impl EventSender {
    /// Stamp and queue an event. Returns false (and counts a drop) when the
    /// channel is full or the log closed.
    pub fn send(&self, event: AppEvent) -> bool {
        match self.tx.try_send(Msg::Event(self.start.elapsed(), event)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Events dropped so far, by every sender.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The log file and its writer thread. `close` (or Drop) flushes and joins.
pub struct EventLog {
    tx: Sender<Msg>,
    dropped: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    writer: Option<JoinHandle<io::Result<()>>>,
    /// The first write error, if the thread stopped early.
    error: Arc<Mutex<Option<io::ErrorKind>>>,
}

impl EventLog {
    /// Create (truncate) `path` and start the writer thread. Timestamps count
    /// from now.
    pub fn open(path: &Path) -> io::Result<(EventLog, EventSender)> {
        Self::open_with_capacity(path, CHANNEL_CAPACITY)
    }

    /// As [`open`](Self::open), with a channel of `capacity` events.
    pub fn open_with_capacity(path: &Path, capacity: usize) -> io::Result<(EventLog, EventSender)> {
        let file = File::create(path)?;
        let (tx, rx) = channel::bounded(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let writer = {
            let (written, error) = (written.clone(), error.clone());
            std::thread::Builder::new().name("dl-event-log".into()).spawn(move || {
                let r = write_loop(rx, BufWriter::new(file), &written);
                if let Err(e) = &r {
                    if let Ok(mut slot) = error.lock() {
                        *slot = Some(e.kind());
                    }
                }
                r
            })?
        };
        let sender = EventSender { tx: tx.clone(), start: Instant::now(), dropped: dropped.clone() };
        Ok((EventLog { tx, dropped, written, writer: Some(writer), error }, sender))
    }

    /// Events dropped because the channel was full (or the log closed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The writer's I/O error, if it stopped on one.
    pub fn error(&self) -> Option<io::ErrorKind> {
        self.error.lock().ok().and_then(|e| *e)
    }

    /// Write what is queued, flush, stop the writer. Events sent afterwards
    /// are dropped (and counted).
    pub fn close(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let Some(writer) = self.writer.take() else { return Ok(()) };
        // Blocking send: the writer is draining, so this waits at most for
        // one channel's worth of writes. It fails only if the writer is gone.
        let _ = self.tx.send(Msg::Stop);
        match writer.join() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("event log writer panicked")),
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("dlisten: event log: {e}");
        }
    }
}

fn write_loop(rx: Receiver<Msg>, mut out: BufWriter<File>, written: &AtomicU64) -> io::Result<()> {
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(Msg::Event(ts, event)) => {
                out.write_all(event.to_json_line(ts).as_bytes())?;
                out.write_all(b"\n")?;
                written.fetch_add(1, Ordering::Relaxed);
                if last_flush.elapsed() >= FLUSH_EVERY {
                    out.flush()?;
                    last_flush = Instant::now();
                }
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                out.flush()?;
                last_flush = Instant::now();
            }
        }
    }
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("dlisten-{}-{name}", std::process::id()))
    }

    #[test]
    fn events_round_trip_through_the_file() {
        let path = temp_path("events.jsonl");
        let (log, tx) = EventLog::open(&path).unwrap();
        let payload: Vec<u8> = (0..100u8).collect();
        let tx2 = tx.clone();
        assert!(tx.send(AppEvent::Listening { addr: addr("198.18.0.1:80") }));
        std::thread::spawn(move || {
            assert!(tx2.send(AppEvent::Accept {
                listener: addr("198.18.0.1:80"),
                peer: addr("198.18.0.2:40000"),
                worker: 1,
            }));
        })
        .join()
        .unwrap();
        assert!(tx.send(AppEvent::data(addr("198.18.0.2:40000"), &payload)));
        assert!(tx.send(AppEvent::data(addr("198.18.0.2:40000"), b"GET /")));
        assert!(tx.send(AppEvent::Eof { peer: addr("198.18.0.2:40000") }));
        assert!(tx.send(AppEvent::Reset { peer: addr("198.18.0.3:1") }));
        assert!(tx.send(AppEvent::Close { peer: addr("198.18.0.2:40000") }));
        log.close().unwrap();
        assert!(!tx.send(AppEvent::Close { peer: addr("198.18.0.2:40000") }), "closed log drops");
        assert_eq!(tx.dropped(), 1);

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["listening", "accept", "data", "data", "eof", "reset", "close"]);
        let mut last_ts = 0.0;
        for l in &lines {
            let ts = l["ts"].as_f64().unwrap();
            assert!(ts >= last_ts && ts < 60.0, "{l}");
            last_ts = ts;
        }
        assert_eq!(lines[0]["addr"], "198.18.0.1:80");
        assert_eq!(lines[1]["listener"], "198.18.0.1:80");
        assert_eq!(lines[1]["peer"], "198.18.0.2:40000");
        assert_eq!(lines[1]["worker"], 1);
        // Capped at 64 bytes of hex; len is the full length.
        assert_eq!(lines[2]["len"], 100);
        let hex = lines[2]["bytes"].as_str().unwrap();
        assert_eq!(hex.len(), 128);
        assert!(hex.starts_with("000102030405") && hex.ends_with("3e3f"));
        assert_eq!(lines[3]["bytes"], "474554202f");
        assert_eq!(lines[3]["len"], 5);
        assert_eq!(lines[4]["peer"], "198.18.0.2:40000");
        assert_eq!(lines[5]["peer"], "198.18.0.3:1");
        assert_eq!(lines[6].as_object().unwrap().len(), 3, "ts, event, peer");
    }

    #[test]
    fn ts_has_microseconds() {
        let line = AppEvent::Eof { peer: addr("198.18.0.2:1") }.to_json_line(Duration::from_nanos(3_000_015_999));
        assert_eq!(line, r#"{"ts":3.000015,"event":"eof","peer":"198.18.0.2:1"}"#);
        // Hand-built Data keeps at most 64 bytes too.
        let d = AppEvent::Data { peer: addr("198.18.0.2:1"), bytes: vec![0xab; 80], len: 80 };
        let v: Value = serde_json::from_str(&d.to_json_line(Duration::ZERO)).unwrap();
        assert_eq!(v["bytes"].as_str().unwrap().len(), 128);
        assert_eq!(v["ts"], 0.0);
    }

    #[test]
    fn full_channel_drops_instead_of_blocking() {
        let path = temp_path("full.jsonl");
        let (log, tx) = EventLog::open_with_capacity(&path, 1).unwrap();
        let mut sent = 0u64;
        for _ in 0..10_000 {
            if tx.send(AppEvent::Eof { peer: addr("198.18.0.2:1") }) {
                sent += 1;
            }
        }
        assert_eq!(sent + tx.dropped(), 10_000);
        let dropped = log.dropped();
        drop(log); // Drop flushes and joins too.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count() as u64;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(lines, sent);
        assert_eq!(dropped, 10_000 - sent);
    }

    #[test]
    fn open_fails_cleanly_on_a_bad_path() {
        assert!(EventLog::open(Path::new("/nonexistent-dir-dlisten/x.jsonl")).is_err());
    }
}
