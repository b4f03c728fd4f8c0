//! Built-in applications as pure, sans-IO services.
//!
//! A [`Service`] is one connection's application state. It knows nothing about
//! sockets or the TCB: the driver (the worker loop or an application thread)
//! hands it the bytes received and not yet consumed, collects what it appends to
//! `out`, writes that to the connection, and closes after the flush when told to.
//! TCP is a byte stream, so input arrives in arbitrary pieces; a service may leave
//! a partial request unconsumed and see those bytes again with more behind them.
//!
//! - [`AppKind::Http`]: HTTP/1.1 (RFC 9112) answering every request with one fixed
//!   200 response, keep-alive and `Connection: close` both honoured ([`http`]).
//! - [`AppKind::Echo`]: returns exactly what it got ([`echo`]).
//! - [`AppKind::Discard`]: reads and drops everything, RFC 863 style ([`discard`]).
//! - [`AppKind::Hold`]: has no service at all: it never calls accept, so the
//!   accept queue fills and operators can watch Linux's backlog behaviour.
#![forbid(unsafe_code)]

pub mod discard;
pub mod echo;
pub mod http;
pub mod session;

use std::fmt;
use std::str::FromStr;
use thiserror::Error;

pub use discard::DiscardService;
pub use echo::EchoService;
pub use session::{Phase, Session};
pub use http::{
    HttpConfig, HttpConfigError, HttpService, Persistence, PrebuiltResponse, MAX_HEADERS,
    MAX_REQUEST_HEAD,
};

/// What a service wants after handling input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep the connection open and keep reading.
    Continue,
    /// Write everything appended to `out`, then send FIN. Input that arrives
    /// afterwards is of no interest to the service.
    CloseAfterFlush,
}

/// What a service reports to the driver, per call. The driver owns the struct
/// (one per worker or per connection) and reads it after each call: when
/// `requests` grew during an `on_data`, the driver measures request->response
/// time around that call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Requests answered with the configured response.
    pub requests: u64,
    /// Requests answered with an error (400, 431) before closing.
    pub bad_requests: u64,
}

/// One connection's application state.
pub trait Service: Send {
    /// `input` is everything received so far that the service has not consumed;
    /// returns how many bytes it consumed (never more than `input.len()`). A
    /// partial request may stay unconsumed: the driver keeps those bytes and
    /// passes them again with more. Responses are appended to `out`.
    fn on_data(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> (usize, Next);

    /// The peer closed its side (FIN). Returns what to do with ours.
    fn on_eof(&mut self, out: &mut Vec<u8>) -> Next;

    /// What the service waits for from the peer, for the driver's timeouts.
    fn waiting(&self) -> Waiting {
        Waiting::Nothing
    }

    /// The server is shutting down: answer the request in progress, then
    /// close (HTTP: `Connection: close` on the next response).
    fn drain(&mut self) {}
}

/// What a service waits for from the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Nothing the driver should time out (a stream service, or closing).
    Nothing,
    /// A request head (or the first byte of the next request).
    Head,
    /// The rest of a request body.
    Body,
}

/// The built-in application chosen on the command line.
/// The application's settings as the control plane changes them while
/// serving (SIGHUP, `dlisten set http-body`): a generation number that the
/// serving loops compare between bursts, and the settings behind a lock
/// taken only when it moved. New connections get the new settings; open
/// ones keep theirs.
#[derive(Debug)]
pub struct LiveApp {
    generation: std::sync::atomic::AtomicU64,
    kind: std::sync::Mutex<AppKind>,
}

impl LiveApp {
    pub fn new(kind: AppKind) -> std::sync::Arc<LiveApp> {
        std::sync::Arc::new(LiveApp { generation: 0.into(), kind: std::sync::Mutex::new(kind) })
    }

    pub fn get(&self) -> AppKind {
        crate::sync::lock(&self.kind).clone()
    }

    /// Serve new connections with `kind` from the next burst on.
    pub fn set(&self, kind: AppKind) {
        *crate::sync::lock(&self.kind) = kind;
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Replace `kind` with the current settings if they changed since
    /// `seen` (0 at start); one atomic load when they did not.
    #[inline]
    pub fn refresh(&self, seen: &mut u64, kind: &mut AppKind) -> bool {
        let now = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if now == *seen {
            return false;
        }
        *kind = self.get();
        *seen = now;
        true
    }
}

#[derive(Clone, Debug)]
pub enum AppKind {
    Http(HttpConfig),
    Echo,
    Discard,
    Hold,
}

impl AppKind {
    /// The names accepted by [`FromStr`], for `--help` and error messages.
    pub const NAMES: [&'static str; 4] = ["http", "echo", "discard", "hold"];

    /// A fresh service for one accepted connection; `None` for `Hold`, which
    /// never accepts.
    pub fn new_service(&self) -> Option<Box<dyn Service>> {
        match self {
            AppKind::Http(config) => Some(Box::new(HttpService::new(config.clone()))),
            AppKind::Echo => Some(Box::new(EchoService)),
            AppKind::Discard => Some(Box::new(DiscardService)),
            AppKind::Hold => None,
        }
    }

    /// Whether the driver should call accept at all.
    pub fn accepts(&self) -> bool {
        !matches!(self, AppKind::Hold)
    }

    pub fn name(&self) -> &'static str {
        match self {
            AppKind::Http(_) => "http",
            AppKind::Echo => "echo",
            AppKind::Discard => "discard",
            AppKind::Hold => "hold",
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unknown application {0:?}: expected one of http, echo, discard, hold")]
pub struct UnknownApp(pub String);

/// Parses "http" (with the default response, see [`HttpConfig::default`]),
/// "echo", "discard" or "hold". Clap uses this through `value_parser`.
impl FromStr for AppKind {
    type Err = UnknownApp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http" => Ok(AppKind::Http(HttpConfig::default())),
            "echo" => Ok(AppKind::Echo),
            "discard" => Ok(AppKind::Discard),
            "hold" => Ok(AppKind::Hold),
            other => Err(UnknownApp(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_settings_are_taken_once_per_change() {
        let live = LiveApp::new(AppKind::Http(HttpConfig::new(b"one", "text/plain").unwrap()));
        let (mut kind, mut seen) = (live.get(), 0);
        assert!(!live.refresh(&mut seen, &mut kind), "nothing changed yet");
        live.set(AppKind::Http(HttpConfig::new(b"two", "text/plain").unwrap()));
        assert!(live.refresh(&mut seen, &mut kind));
        assert!(!live.refresh(&mut seen, &mut kind), "taken once");
        let AppKind::Http(config) = &kind else { panic!("{kind:?}") };
        assert!(config.response(http::Persistence::KeepAlive).full().ends_with(b"\r\n\r\ntwo"));
        // A second reader sees the same change.
        let (mut other, mut other_seen) = (AppKind::Echo, 0);
        assert!(live.refresh(&mut other_seen, &mut other));
        assert_eq!(other.name(), "http");
    }

    #[test]
    fn parse_names() {
        for name in AppKind::NAMES {
            let kind: AppKind = name.parse().unwrap();
            assert_eq!(kind.name(), name);
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!(
            "HTTP".parse::<AppKind>().unwrap_err(),
            UnknownApp("HTTP".into())
        );
        assert!("".parse::<AppKind>().is_err());
    }

    #[test]
    fn hold_has_no_service_and_never_accepts() {
        let hold = AppKind::Hold;
        assert!(hold.new_service().is_none());
        assert!(!hold.accepts());
        for name in ["http", "echo", "discard"] {
            let kind: AppKind = name.parse().unwrap();
            assert!(kind.accepts());
            assert!(kind.new_service().is_some());
        }
    }

    #[test]
    fn services_from_kind_behave() {
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        let mut echo = AppKind::Echo.new_service().unwrap();
        assert_eq!(
            echo.on_data(b"abc", &mut out, &mut stats),
            (3, Next::Continue)
        );
        assert_eq!(out, b"abc");

        let mut http = "http".parse::<AppKind>().unwrap().new_service().unwrap();
        out.clear();
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            http.on_data(req, &mut out, &mut stats),
            (req.len(), Next::Continue)
        );
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(stats.requests, 1);
    }

    /// Clap picks up `FromStr` for a derive field; check it end to end.
    #[test]
    fn clap_value_parser() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[arg(long, default_value = "http")]
            app: AppKind,
        }
        let cli = Cli::try_parse_from(["dlisten", "--app", "hold"]).unwrap();
        assert!(matches!(cli.app, AppKind::Hold));
        let cli = Cli::try_parse_from(["dlisten"]).unwrap();
        assert!(matches!(cli.app, AppKind::Http(_)));
        assert!(Cli::try_parse_from(["dlisten", "--app", "ftp"]).is_err());
    }
}
