//! `--metrics ADDR:PORT`: `/metrics` (Prometheus text format) and `/health`
//! over HTTP/1.1 on a kernel TCP socket of the management network, never
//! through the DPDK port.
//!
//! One thread serves one request at a time and closes each connection: a
//! scraper asks every few seconds, so this bounds the threads and the memory
//! a busy or hostile management network can take. A request must arrive
//! within [`REQUEST_TIMEOUT`] and fit in [`REQUEST_MAX`] bytes, so a slow
//! client holds the thread for that long at most.
//!
//! `/health` answers 200 while the server's [`Health`] flag says serving and
//! 503 otherwise: before the workers run, and from the moment it starts
//! stopping (a drain will clear the flag first, so a load balancer stops
//! sending new connections while the old ones finish).

use super::prometheus::{format_metrics, MetricsSource, CONTENT_TYPE};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request's line and headers must fit in this.
pub const REQUEST_MAX: usize = 8 * 1024;
/// Time a client has to send its request, and to take the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// How long a refused request's remaining input is read before closing.
const LINGER: Duration = Duration::from_millis(200);
/// Headers a request may have.
const HEADERS_MAX: usize = 32;

/// Whether the server is serving: what `/health` answers. Cheap to clone;
/// every clone is the same flag.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<AtomicBool>);

impl Health {
    /// Not serving yet.
    pub fn new() -> Health {
        Health::default()
    }

    pub fn set_serving(&self, serving: bool) {
        self.0.store(serving, Ordering::Relaxed);
    }

    pub fn is_serving(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The metrics socket, bound but not served yet: bound early so that a bad
/// or busy address fails before the NIC is touched.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsListener> {
        let listener = TcpListener::bind(addr)?;
        // Accepts poll, so that dropping the server never waits on a client.
        listener.set_nonblocking(true)?;
        Ok(MetricsListener { listener })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve on a thread of its own until the returned server is dropped.
    /// The thread inherits the caller's CPU affinity.
    pub fn start(self, source: Arc<dyn MetricsSource>, health: Health) -> io::Result<MetricsServer> {
        let addr = self.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("dl-metrics".into())
                .spawn(move || accept_loop(self.listener, source.as_ref(), &health, &stop))?
        };
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }
}

/// The running metrics endpoint; dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, source: &dyn MetricsSource, health: &Health, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A client that goes away or times out is its own problem.
                let _ = serve_client(stream, source, health);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                // EMFILE and friends: say so, and do not spin on them.
                eprintln!("dlisten: metrics: accept: {e}");
                std::thread::sleep(POLL * 2);
            }
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

fn serve_client(mut stream: TcpStream, source: &dyn MetricsSource, health: &Health) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let Some((route, head)) = read_request(&mut stream)? else { return Ok(()) };
    let (status, content_type, body) = match route {
        Route::Metrics => ("200 OK", CONTENT_TYPE, format_metrics(&source.metrics())),
        Route::Health if health.is_serving() => ("200 OK", "text/plain", "serving\n".to_string()),
        Route::Health => ("503 Service Unavailable", "text/plain", "not serving\n".to_string()),
        Route::NotFound => ("404 Not Found", "text/plain", "not found: try /metrics or /health\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "text/plain", "only GET and HEAD\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        Route::TooLarge => ("431 Request Header Fields Too Large", "text/plain", "request too large\n".to_string()),
    };
    let allow = if route == Route::MethodNotAllowed { "Allow: GET, HEAD\r\n" } else { "" };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    if !head {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()?;
    if matches!(route, Route::BadRequest | Route::TooLarge) {
        linger(&mut stream);
    }
    Ok(())
}

/// Closing with unread input makes the kernel answer RST, which can
/// destroy the error response before the client reads it: send FIN, then
/// read what the client still sends, for a short while.
fn linger(stream: &mut TcpStream) {
    const LINGER_MAX: usize = 64 * 1024;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    let mut total = 0;
    while total < LINGER_MAX {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// Read until a whole request head arrived, within the deadline. None when
/// the client went away or ran out of time. The bool is true for HEAD.
fn read_request(stream: &mut TcpStream) -> io::Result<Option<(Route, bool)>> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = vec![0u8; REQUEST_MAX];
    let mut len = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let head = req.method == Some("HEAD");
                return Ok(Some((route(req.method.unwrap_or_default(), req.path.unwrap_or_default()), head)));
            }
            Ok(httparse::Status::Partial) if len == buf.len() => return Ok(Some((Route::TooLarge, false))),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Some((Route::TooLarge, false))),
            Err(_) => return Ok(Some((Route::BadRequest, false))),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(None),
            Ok(n) => len += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn route(method: &str, target: &str) -> Route {
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    // Prometheus may add a query string (params in its scrape config).
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::prometheus::MetricsSnapshot;
    use std::sync::atomic::AtomicU64;

    /// Counts its scrapes and says so in the uptime.
    struct Fake(AtomicU64);

    impl MetricsSource for Fake {
        fn metrics(&self) -> MetricsSnapshot {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            MetricsSnapshot { uptime: Duration::from_secs(n), serving: true, ..MetricsSnapshot::default() }
        }
    }

    fn server() -> (MetricsServer, Health) {
        let health = Health::new();
        let listener = MetricsListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = listener.start(Arc::new(Fake(AtomicU64::new(0))), health.clone()).unwrap();
        (server, health)
    }

    /// Send `request` raw, return the whole answer.
    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").as_bytes())
    }

    #[test]
    fn metrics_and_health() {
        let (server, health) = server();
        let addr = server.local_addr();
        let m = get(addr, "/metrics");
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{m}");
        assert!(m.contains("\r\nConnection: close\r\n"), "{m}");
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())), "{head}");
        assert!(body.contains("\ndlisten_uptime_seconds 1\n"), "{body}");
        // Each scrape is a fresh snapshot; a query string is ignored.
        assert!(get(addr, "/metrics?x=1").contains("\ndlisten_uptime_seconds 2\n"));

        assert!(get(addr, "/health").starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        health.set_serving(true);
        let h = get(addr, "/health");
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n") && h.ends_with("\r\n\r\nserving\n"), "{h}");
        health.set_serving(false);
        assert!(get(addr, "/health").ends_with("\r\n\r\nnot serving\n"));

        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "dropping the server closes its socket");
    }

    #[test]
    fn other_requests_get_errors() {
        let (server, _) = server();
        let addr = server.local_addr();
        assert!(get(addr, "/").starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(get(addr, "/metricsx").starts_with("HTTP/1.1 404 "));
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
        assert!(exchange(addr, b"\x16\x03\x01 TLS? \r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(REQUEST_MAX));
        assert!(exchange(addr, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
        let many: String = (0..HEADERS_MAX + 1).map(|i| format!("H{i}: v\r\n")).collect();
        assert!(exchange(addr, format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()).starts_with("HTTP/1.1 431 "));
        // Still serving after all that.
        assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn a_silent_client_is_dropped_after_the_timeout() {
        let (server, _) = server();
        let addr = server.local_addr();
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).unwrap();
        silent.write_all(b"GET /metr").unwrap();
        // The server closes it without an answer once its time is up...
        silent.set_read_timeout(Some(REQUEST_TIMEOUT * 3)).unwrap();
        let mut answer = Vec::new();
        let _ = silent.read_to_end(&mut answer);
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
        let held = started.elapsed();
        assert!(held >= REQUEST_TIMEOUT && held < REQUEST_TIMEOUT * 2, "held {held:?}");
        // ...and serves the next one.
        assert!(get(addr, "/health").starts_with("HTTP/1.1 503 "));
    }
}
