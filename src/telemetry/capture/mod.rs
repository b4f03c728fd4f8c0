//! Packet capture from a running server: tcpdump cannot see a DPDK port,
//! so `dlisten capture` asks the server over its control socket to copy
//! matching frames, received and transmitted, into a pcapng stream.
//!
//! - [`filter`]: which frames (direction, IPv4 host, TCP/UDP port).
//! - [`tap`]: the workers' side: one flag load per burst when off, a
//!   bounded ring per worker when on.
//! - [`pcapng`]: the file format tcpdump, tshark and Wireshark read.
//!
//! Protocol on the control socket: the client sends one line
//! `capture host=A port=N direction=rx|tx|both count=N duration-ms=N snaplen=N`
//! (every key optional); the server answers `ok <port name>` or `error: ...` on a line,
//! then chunks of pcapng (a little-endian u32 length, then that many
//! bytes; each chunk whole blocks), a zero length, and one summary line
//! (`frames=N rx=N tx=N dropped=N stopped=count|duration|client`). The
//! client shutting its writing side down (or sending anything) ends the
//! capture early, with the summary still sent.

pub mod filter;
pub mod pcapng;
pub mod tap;

pub use filter::{CaptureFilter, Direction};
pub use tap::{Armed, CaptureError, CaptureHub, CaptureInterface, CaptureTap, CapturedFrame, Way};

use crate::telemetry::control_client::{self as control, ControlError};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest capture a server accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most frames one capture writes.
pub const MAX_COUNT: u64 = 100_000_000;
/// The largest snapshot length (pcapng readers' usual limit is 262144).
pub const MAX_SNAPLEN: u32 = 65535;
/// How often the control thread empties the workers' rings.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// What to capture, and when to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureRequest {
    pub filter: CaptureFilter,
    pub direction: Direction,
    /// Stop after this many frames are written.
    pub count: u64,
    /// Stop after this long.
    pub duration: Duration,
    /// Bytes kept of each frame.
    pub snaplen: u32,
}

impl Default for CaptureRequest {
    fn default() -> Self {
        CaptureRequest {
            filter: CaptureFilter::default(),
            direction: Direction::Both,
            count: 10_000,
            duration: Duration::from_secs(60),
            snaplen: MAX_SNAPLEN,
        }
    }
}

impl CaptureRequest {
    /// The control socket command line (without its newline).
    pub fn command(&self) -> String {
        let mut s = format!(
            "capture direction={} count={} duration-ms={} snaplen={}",
            self.direction,
            self.count,
            self.duration.as_millis(),
            self.snaplen
        );
        if let Some(h) = self.filter.host {
            s.push_str(&format!(" host={h}"));
        }
        if let Some(p) = self.filter.port {
            s.push_str(&format!(" port={p}"));
        }
        s
    }

    /// The words after `capture`; limits checked, so a client cannot ask
    /// for a capture that never ends.
    pub fn parse(args: &str) -> Result<CaptureRequest, String> {
        let mut r = CaptureRequest::default();
        for word in args.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("capture: {word:?} is not key=value"));
            };
            let bad = |what: &str| format!("capture: {key}={value:?}: {what}");
            match key {
                "host" => r.filter.host = Some(value.parse::<Ipv4Addr>().map_err(|_| bad("not an IPv4 address"))?),
                "port" => r.filter.port = Some(value.parse().map_err(|_| bad("not a port (0-65535)"))?),
                "direction" => r.direction = value.parse().map_err(|e: String| bad(&e))?,
                "count" => r.count = value.parse().map_err(|_| bad("not a number"))?,
                "duration-ms" => r.duration = Duration::from_millis(value.parse().map_err(|_| bad("not a number"))?),
                "snaplen" => r.snaplen = value.parse().map_err(|_| bad("not a number"))?,
                _ => return Err(format!("capture: unknown key {key:?} (keys: host, port, direction, count, duration-ms, snaplen)")),
            }
        }
        r.check()?;
        Ok(r)
    }

    /// Within the limits: stops by itself, keeps something of each frame.
    pub fn check(&self) -> Result<(), String> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(format!("capture: count {} is not in 1..={MAX_COUNT}", self.count));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!("capture: duration {:?} is not within (0, {} s]", self.duration, MAX_DURATION.as_secs()));
        }
        if self.snaplen == 0 || self.snaplen > MAX_SNAPLEN {
            return Err(format!("capture: snaplen {} is not in 1..={MAX_SNAPLEN}", self.snaplen));
        }
        Ok(())
    }
}

/// Why a capture ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Count,
    Duration,
    /// The client asked (or went away).
    Client,
}

impl Stopped {
    fn name(self) -> &'static str {
        match self {
            Stopped::Count => "count",
            Stopped::Duration => "duration",
            Stopped::Client => "client",
        }
    }
}

/// What a finished capture reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Frames written.
    pub frames: u64,
    pub rx: u64,
    pub tx: u64,
    /// Matching frames lost because a worker's ring was full.
    pub dropped: u64,
    /// `count`, `duration` or `client`.
    pub stopped: String,
}

impl CaptureSummary {
    fn line(&self) -> String {
        format!("frames={} rx={} tx={} dropped={} stopped={}\n", self.frames, self.rx, self.tx, self.dropped, self.stopped)
    }

    fn parse(line: &str) -> Option<CaptureSummary> {
        let mut s = CaptureSummary::default();
        for word in line.split_whitespace() {
            let (k, v) = word.split_once('=')?;
            match k {
                "frames" => s.frames = v.parse().ok()?,
                "rx" => s.rx = v.parse().ok()?,
                "tx" => s.tx = v.parse().ok()?,
                "dropped" => s.dropped = v.parse().ok()?,
                "stopped" => s.stopped = v.to_string(),
                _ => {}
            }
        }
        Some(s)
    }
}

/// One chunk: its length, then its bytes (never empty: zero ends the stream).
fn chunk(stream: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk over 4 GiB"))?;
    stream.write_all(&len.to_le_bytes())?;
    stream.write_all(bytes)
}

fn pcap_io(e: pcap_file::PcapError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The client has shut its writing side down, sent something, or gone.
fn client_stopped(stream: &UnixStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    // The client sends nothing after its command: a byte or EOF is its word.
    let stopped = match (&*stream).read(&mut [0u8; 1]) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let restored = stream.set_nonblocking(false).is_ok();
    stopped || !restored
}

/// Serve one `capture` command on the control socket (the client's thread).
pub fn serve(mut stream: &UnixStream, hub: &std::sync::Arc<CaptureHub>, args: &str) -> io::Result<()> {
    let req = match CaptureRequest::parse(args) {
        Ok(r) => r,
        Err(e) => return stream.write_all(format!("error: {e}\n").as_bytes()),
    };
    let mut armed = match hub.arm(req.filter, req.direction, req.snaplen as usize) {
        Ok(a) => a,
        Err(e) => return stream.write_all(format!("error: {e}\n").as_bytes()),
    };
    stream.write_all(format!("ok {}\n", hub.interface.name).as_bytes())?;
    let mut pcap = pcapng::Pcapng::new(&hub.interface, req.snaplen).map_err(pcap_io)?;
    chunk(&mut stream, &pcap.take())?;
    let session = armed.session.clone();
    let deadline = Instant::now() + req.duration;
    let mut summary = CaptureSummary::default();
    let mut batch = Vec::new();
    let mut write_batch = |summary: &mut CaptureSummary, pcap: &mut pcapng::Pcapng| -> io::Result<()> {
        session.drain_into(&mut batch);
        // Workers' copies interleave by time.
        batch.sort_by_key(|f| f.tsc);
        for f in batch.drain(..) {
            if summary.frames < req.count {
                pcap.packet(&session.epoch, &f).map_err(pcap_io)?;
                summary.frames += 1;
                match f.way {
                    Way::In => summary.rx += 1,
                    Way::Out => summary.tx += 1,
                }
            }
            session.recycle(f);
        }
        Ok(())
    };
    let stopped = loop {
        std::thread::sleep(DRAIN_EVERY);
        write_batch(&mut summary, &mut pcap)?;
        let bytes = pcap.take();
        if !bytes.is_empty() {
            chunk(&mut stream, &bytes)?;
        }
        if summary.frames >= req.count {
            break Stopped::Count;
        }
        if Instant::now() >= deadline {
            break Stopped::Duration;
        }
        if client_stopped(stream) {
            break Stopped::Client;
        }
    };
    armed.disarm();
    write_batch(&mut summary, &mut pcap)?;
    summary.dropped = session.dropped();
    summary.stopped = stopped.name().to_string();
    let end = session.epoch.unix_ns(armed.tsc());
    pcap.statistics(session.epoch.unix_ns, end, summary.frames, summary.dropped).map_err(pcap_io)?;
    chunk(&mut stream, &pcap.take())?;
    chunk(&mut stream, &[])?;
    stream.write_all(summary.line().as_bytes())?;
    stream.flush()
}

/// Run a capture on the server at `path`, writing the pcapng to `out`,
/// until it ends (count, duration) or `stop` is set (then it ends early,
/// cleanly). `started` is told the port's name once the workers copy.
/// Returns the server's summary.
pub fn capture(
    path: &Path,
    req: &CaptureRequest,
    out: Box<dyn Write + Send>,
    stop: &AtomicBool,
    started: &mut dyn FnMut(&str),
) -> Result<CaptureSummary, ControlError> {
    let io_err = |source: io::Error| ControlError::Io { path: path.to_path_buf(), source };
    let mut stream = control::connect(path)?;
    // The server sends its summary by the end of the duration: allow it
    // that and some (a loaded machine), never forever.
    stream.set_read_timeout(Some(req.duration + Duration::from_secs(30))).map_err(io_err)?;
    stream.write_all(format!("{}\n", req.command()).as_bytes()).map_err(io_err)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io_err)?);
    let mut first = String::new();
    reader.read_line(&mut first).map_err(io_err)?;
    if let Some(message) = first.strip_prefix("error: ") {
        return Err(ControlError::Server { path: path.to_path_buf(), message: message.trim_end().to_string() });
    }
    match first.trim_end().split_once(' ') {
        Some(("ok", iface)) => started(iface),
        _ if first.trim_end() == "ok" => started(""),
        _ => {
            let message = format!("unexpected answer {first:?} (an older server?)");
            return Err(ControlError::Server { path: path.to_path_buf(), message });
        }
    }
    let copying = std::thread::Builder::new()
        .name("dl-capture".into())
        .spawn(move || copy_chunks(reader, out))
        .map_err(io_err)?;
    let mut asked_to_stop = false;
    while !copying.is_finished() {
        if !asked_to_stop && stop.load(Ordering::Relaxed) {
            asked_to_stop = true;
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = match copying.join() {
        Ok(r) => r.map_err(io_err)?,
        Err(_) => return Err(io_err(io::Error::other("the capture's copying thread panicked"))),
    };
    CaptureSummary::parse(&line).ok_or_else(|| ControlError::Server {
        path: path.to_path_buf(),
        message: format!("unexpected capture summary {line:?}"),
    })
}

/// Chunks to `out` until the zero-length one; then the summary line.
fn copy_chunks(mut reader: impl BufRead, mut out: Box<dyn Write + Send>) -> io::Result<String> {
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).map_err(|e| closed_early(e, "its data"))?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 {
            break;
        }
        buf.resize(len, 0);
        reader.read_exact(&mut buf).map_err(|e| closed_early(e, "a chunk"))?;
        out.write_all(&buf)?;
        out.flush()?;
    }
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line)
}

fn closed_early(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(e.kind(), format!("the server closed the capture in the middle of {what} (did it stop?)"))
    } else {
        e
    }
}

#[cfg(test)]
mod tests;
