//! http: HTTP/1.1 (RFC 9112) answering every request with one fixed 200 response.
//!
//! Requests are parsed with `httparse`; the response bytes are built once per
//! [`HttpConfig`] (three variants: persistent HTTP/1.1, `Connection: keep-alive`
//! for HTTP/1.0, and `Connection: close`), so a request costs one
//! `extend_from_slice` into `out` and no allocation.
//!
//! What is checked, and what is answered:
//! - a malformed request head, a missing or repeated `Host` in HTTP/1.1,
//!   conflicting `Content-Length`s, or framing we cannot trust (below): 400, close;
//! - more than [`MAX_HEADERS`] header lines, or a head (or chunked trailer
//!   section) longer than [`MAX_REQUEST_HEAD`]: 431, close;
//! - request bodies are read and dropped: `Content-Length: N` bytes, or
//!   `Transfer-Encoding: chunked` framing decoded to its last chunk and trailers.
//!   The response goes out when the whole request has been read.

use super::{Next, Service, ServiceStats, Waiting};
use httparse::Status;
use std::sync::Arc;
use thiserror::Error;

/// Header lines accepted in a request head (and in a chunked trailer section).
pub const MAX_HEADERS: usize = 64;
/// Longest request head accepted, request line and final CRLF included.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Longest chunk-size line (size and extensions) we wait for before giving up.
const MAX_CHUNK_SIZE_LINE: usize = 1024;

pub const DEFAULT_BODY: &str = "hello from dlisten\n";
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain";

/// RFC 9110 section 10.1.1: the interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nServer: dlisten\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEADER_FIELDS_TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: dlisten\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// What the response says about the connection (RFC 9112 section 9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: persistent, no `Connection` header needed.
    KeepAlive,
    /// HTTP/1.0 asked for `Connection: keep-alive`: say it back, stay open.
    KeepAliveHttp10,
    /// `Connection: close`, then FIN.
    Close,
}

/// One response, built once: status line, headers, body.
#[derive(Clone, Debug)]
pub struct PrebuiltResponse {
    bytes: Arc<[u8]>,
    /// Length of the status line and headers, final CRLF included.
    head_len: usize,
}

impl PrebuiltResponse {
    fn build(connection: Option<&str>, content_type: &str, body: &[u8]) -> Self {
        let mut head = format!(
            "HTTP/1.1 200 OK\r\nServer: dlisten\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(connection) = connection {
            head.push_str("Connection: ");
            head.push_str(connection);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let head_len = head.len();
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        PrebuiltResponse {
            bytes: bytes.into(),
            head_len,
        }
    }

    /// The whole response, for GET and every method but HEAD.
    pub fn full(&self) -> &[u8] {
        &self.bytes
    }

    /// Status line and headers only: the answer to HEAD (RFC 9110 section 9.3.2:
    /// the same header fields as for GET, `Content-Length` included, no content).
    pub fn head(&self) -> &[u8] {
        &self.bytes[..self.head_len]
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum HttpConfigError {
    #[error("content type {0:?} is not a valid header value (empty, or has control characters)")]
    ContentType(String),
}

/// The fixed response every request gets, prebuilt in its three variants.
/// Shared: every connection's service holds one pointer to it.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    responses: Arc<Responses>,
}

#[derive(Debug)]
struct Responses {
    keep_alive: PrebuiltResponse,
    keep_alive_http10: PrebuiltResponse,
    close: PrebuiltResponse,
}

impl HttpConfig {
    /// Builds the responses for `body`, sent with `Content-Type: content_type`.
    pub fn new(body: &[u8], content_type: &str) -> Result<Self, HttpConfigError> {
        let content_type = content_type.trim_matches([' ', '\t']);
        // RFC 9110 section 5.5: field-vchar, SP and HTAB only. Anything else
        // (CR/LF above all) would let the value inject headers.
        let valid = !content_type.is_empty()
            && content_type
                .bytes()
                .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b));
        if !valid {
            return Err(HttpConfigError::ContentType(content_type.to_string()));
        }
        Ok(HttpConfig::build(content_type, body))
    }

    fn build(content_type: &str, body: &[u8]) -> HttpConfig {
        let responses = Responses {
            keep_alive: PrebuiltResponse::build(None, content_type, body),
            keep_alive_http10: PrebuiltResponse::build(Some("keep-alive"), content_type, body),
            close: PrebuiltResponse::build(Some("close"), content_type, body),
        };
        HttpConfig { responses: Arc::new(responses) }
    }

    pub fn response(&self, persistence: Persistence) -> &PrebuiltResponse {
        let r = &*self.responses;
        match persistence {
            Persistence::KeepAlive => &r.keep_alive,
            Persistence::KeepAliveHttp10 => &r.keep_alive_http10,
            Persistence::Close => &r.close,
        }
    }
}

impl Default for HttpConfig {
    /// `hello from dlisten\n` as `text/plain`.
    fn default() -> Self {
        // The default content type is a valid header value: build directly
        // rather than unwrap `new`.
        HttpConfig::build(DEFAULT_CONTENT_TYPE, DEFAULT_BODY.as_bytes())
    }
}

/// The request being read: what its response will be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    head_only: bool,
    persistence: Persistence,
    /// The client waits for 100 Continue before sending the body.
    expect_continue: bool,
}

/// Where we are in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Dropping `remaining` bytes of a `Content-Length` body.
    Body { remaining: u64, request: Pending },
    /// Waiting for a chunk-size line.
    ChunkSize(Pending),
    /// Dropping `remaining` bytes of chunk data.
    ChunkData { remaining: u64, request: Pending },
    /// Waiting for the CRLF that ends chunk data.
    ChunkDataEnd(Pending),
    /// Waiting for the trailer section after the last chunk.
    Trailers(Pending),
    /// Answered with close (or the peer closed): nothing more is read.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body (RFC 9112 section 6.3 item 7: a request without Content-Length
    /// or Transfer-Encoding has a zero-length body).
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestError {
    BadRequest,
    HeaderFieldsTooLarge,
}

enum HeadOutcome {
    Partial,
    Complete {
        len: usize,
        request: Pending,
        framing: Framing,
    },
    Error(RequestError),
}

/// One connection's HTTP state.
#[derive(Clone, Debug)]
pub struct HttpService {
    config: HttpConfig,
    state: State,
    /// The server is draining: the next response closes the connection.
    draining: bool,
}

impl HttpService {
    pub fn new(config: HttpConfig) -> Self {
        HttpService {
            config,
            state: State::Head,
            draining: false,
        }
    }

    fn respond(&mut self, mut request: Pending, out: &mut Vec<u8>, stats: &mut ServiceStats) {
        if self.draining {
            request.persistence = Persistence::Close;
        }
        let response = self.config.response(request.persistence);
        out.extend_from_slice(if request.head_only {
            response.head()
        } else {
            response.full()
        });
        stats.requests += 1;
        self.state = if request.persistence == Persistence::Close {
            State::Closed
        } else {
            State::Head
        };
    }

    fn fail(&mut self, error: RequestError, out: &mut Vec<u8>, stats: &mut ServiceStats) {
        out.extend_from_slice(match error {
            RequestError::BadRequest => BAD_REQUEST,
            RequestError::HeaderFieldsTooLarge => HEADER_FIELDS_TOO_LARGE,
        });
        stats.bad_requests += 1;
        self.state = State::Closed;
    }

    // The parser's steps, one per state. Each returns how many bytes of
    // `rest` it consumed (0 when it only changed state), or `None` to wait
    // for more input.

    fn read_head(
        &mut self,
        rest: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> Option<usize> {
        match parse_head(rest) {
            HeadOutcome::Partial => None,
            HeadOutcome::Error(error) => {
                self.fail(error, out, stats);
                Some(0)
            }
            HeadOutcome::Complete {
                len,
                request,
                framing,
            } => {
                // RFC 9110 section 10.1.1: with a body announced, send 100
                // (Continue) now rather than leave the client waiting; our
                // final answer depends on the whole request being read.
                if request.expect_continue && !matches!(framing, Framing::None | Framing::Length(0))
                {
                    out.extend_from_slice(CONTINUE);
                }
                match framing {
                    Framing::None | Framing::Length(0) => self.respond(request, out, stats),
                    Framing::Length(remaining) => self.state = State::Body { remaining, request },
                    Framing::Chunked => self.state = State::ChunkSize(request),
                }
                Some(len)
            }
        }
    }

    fn read_body(
        &mut self,
        remaining: u64,
        request: Pending,
        rest: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> usize {
        let take = take(remaining, rest);
        let remaining = remaining - take as u64;
        if remaining == 0 {
            self.respond(request, out, stats);
        } else {
            self.state = State::Body { remaining, request };
        }
        take
    }

    fn read_chunk_size(
        &mut self,
        request: Pending,
        rest: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> Option<usize> {
        // httparse reads an empty size as 0; RFC 9112 section 7.1 wants
        // 1*HEXDIG.
        if !rest.first().is_some_and(u8::is_ascii_hexdigit) {
            self.fail(RequestError::BadRequest, out, stats);
            return Some(0);
        }
        match httparse::parse_chunk_size(rest) {
            // The limit holds however the line arrives, whole or in pieces.
            Ok(Status::Complete((len, _))) if len > MAX_CHUNK_SIZE_LINE => {
                self.fail(RequestError::BadRequest, out, stats)
            }
            Ok(Status::Complete((len, 0))) => {
                self.state = State::Trailers(request);
                return Some(len);
            }
            Ok(Status::Complete((len, remaining))) => {
                self.state = State::ChunkData { remaining, request };
                return Some(len);
            }
            Ok(Status::Partial) if rest.len() <= MAX_CHUNK_SIZE_LINE => return None,
            Ok(Status::Partial) | Err(_) => self.fail(RequestError::BadRequest, out, stats),
        }
        Some(0)
    }

    fn read_chunk_data(&mut self, remaining: u64, request: Pending, rest: &[u8]) -> usize {
        let take = take(remaining, rest);
        let remaining = remaining - take as u64;
        self.state = if remaining == 0 {
            State::ChunkDataEnd(request)
        } else {
            State::ChunkData { remaining, request }
        };
        take
    }

    fn read_chunk_data_end(
        &mut self,
        request: Pending,
        rest: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> Option<usize> {
        match rest {
            [b'\r', b'\n', ..] => {
                self.state = State::ChunkSize(request);
                Some(2)
            }
            [b'\r'] => None,
            _ => {
                self.fail(RequestError::BadRequest, out, stats);
                Some(0)
            }
        }
    }

    fn read_trailers(
        &mut self,
        request: Pending,
        rest: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> Option<usize> {
        // The trailer section is header lines and an empty line; a
        // server may drop the fields (RFC 9112 section 7.1.2).
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(rest, &mut headers) {
            Ok(Status::Complete((len, _))) if len <= MAX_REQUEST_HEAD => {
                self.respond(request, out, stats);
                return Some(len);
            }
            Ok(Status::Partial) if rest.len() <= MAX_REQUEST_HEAD => return None,
            Ok(Status::Complete(_)) => self.fail(RequestError::HeaderFieldsTooLarge, out, stats),
            Ok(Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                self.fail(RequestError::HeaderFieldsTooLarge, out, stats)
            }
            Err(_) => self.fail(RequestError::BadRequest, out, stats),
        }
        Some(0)
    }
}

impl Service for HttpService {
    fn on_data(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        stats: &mut ServiceStats,
    ) -> (usize, Next) {
        let mut pos = 0;
        // Every step either consumes bytes, changes state, or waits for more.
        loop {
            let rest = &input[pos..];
            let step = match self.state {
                // After a close response, whatever the peer pipelined behind it is
                // read and dropped, so the driver can FIN instead of resetting.
                State::Closed => return (input.len(), Next::CloseAfterFlush),
                _ if rest.is_empty() => break,
                State::Head => self.read_head(rest, out, stats),
                State::Body { remaining, request } => {
                    Some(self.read_body(remaining, request, rest, out, stats))
                }
                State::ChunkSize(request) => self.read_chunk_size(request, rest, out, stats),
                State::ChunkData { remaining, request } => {
                    Some(self.read_chunk_data(remaining, request, rest))
                }
                State::ChunkDataEnd(request) => self.read_chunk_data_end(request, rest, out, stats),
                State::Trailers(request) => self.read_trailers(request, rest, out, stats),
            };
            match step {
                Some(consumed) => pos += consumed,
                None => break,
            }
        }
        (pos, Next::Continue)
    }

    /// The peer will send no more requests; a partial one is dropped and we close.
    fn on_eof(&mut self, _out: &mut Vec<u8>) -> Next {
        self.state = State::Closed;
        Next::CloseAfterFlush
    }

    fn waiting(&self) -> Waiting {
        match self.state {
            State::Head => Waiting::Head,
            State::Closed => Waiting::Nothing,
            State::Body { .. }
            | State::ChunkSize(_)
            | State::ChunkData { .. }
            | State::ChunkDataEnd(_)
            | State::Trailers(_) => Waiting::Body,
        }
    }

    fn drain(&mut self) {
        self.draining = true;
    }
}

/// How many of `rest` belong to a body with `remaining` bytes left.
fn take(remaining: u64, rest: &[u8]) -> usize {
    usize::try_from(remaining).map_or(rest.len(), |remaining| remaining.min(rest.len()))
}

fn parse_head(input: &[u8]) -> HeadOutcome {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(input) {
        Ok(Status::Complete(len)) if len <= MAX_REQUEST_HEAD => len,
        Ok(Status::Partial) if input.len() <= MAX_REQUEST_HEAD => return HeadOutcome::Partial,
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return HeadOutcome::Error(RequestError::HeaderFieldsTooLarge)
        }
        Err(_) => return HeadOutcome::Error(RequestError::BadRequest),
    };
    // httparse accepts only HTTP/1.0 and HTTP/1.1, and a complete parse has a version.
    let http11 = match request.version {
        Some(1) => true,
        Some(0) => false,
        _ => return HeadOutcome::Error(RequestError::BadRequest),
    };
    match analyze_headers(request.headers, http11) {
        Ok(fields) => HeadOutcome::Complete {
            len,
            request: Pending {
                head_only: request.method == Some("HEAD"),
                persistence: fields.persistence,
                expect_continue: fields.expect_continue,
            },
            framing: fields.framing,
        },
        Err(error) => HeadOutcome::Error(error),
    }
}

/// What the header fields of a request say, as far as we care.
struct HeadFields {
    persistence: Persistence,
    framing: Framing,
    expect_continue: bool,
}

/// Connection persistence, body framing and expectation from the header fields.
fn analyze_headers(
    headers: &[httparse::Header<'_>],
    http11: bool,
) -> Result<HeadFields, RequestError> {
    let mut close = false;
    let mut keep_alive = false;
    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut expect_continue = false;

    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            // RFC 9110 section 7.6.1: a comma-separated list of case-insensitive options.
            for option in list_items(header.value) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 section 6.3 item 5: an invalid or conflicting
            // Content-Length is unrecoverable: 400 and close.
            let value = parse_content_length(header.value).ok_or(RequestError::BadRequest)?;
            if content_length.is_some_and(|previous| previous != value) {
                return Err(RequestError::BadRequest);
            }
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case("expect") {
            // RFC 9110 section 10.1.1: case-insensitive; ignored in HTTP/1.0.
            // Other expectations are ignored too (417 is a MAY).
            expect_continue |=
                http11 && trim_ows(header.value).eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Several fields make one list; only the final coding matters to us.
            for coding in list_items(header.value) {
                transfer_encoding = true;
                chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    // RFC 9112 section 3.2: an HTTP/1.1 request without Host, or with more than
    // one, gets 400.
    if http11 && hosts != 1 {
        return Err(RequestError::BadRequest);
    }

    let framing = if transfer_encoding {
        // RFC 9112 section 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing;
        // with Content-Length as well a server may reject (request smuggling).
        // Section 6.3 item 4: chunked not last in a request means 400.
        if !http11 || content_length.is_some() || !chunked_last {
            return Err(RequestError::BadRequest);
        }
        Framing::Chunked
    } else {
        content_length.map_or(Framing::None, Framing::Length)
    };

    // RFC 9112 section 9.3: close wins; HTTP/1.1 persists by default; HTTP/1.0
    // persists only when it asked for keep-alive.
    let persistence = if close {
        Persistence::Close
    } else if http11 {
        Persistence::KeepAlive
    } else if keep_alive {
        Persistence::KeepAliveHttp10
    } else {
        Persistence::Close
    };
    Ok(HeadFields {
        persistence,
        framing,
        expect_continue,
    })
}

/// Items of a comma-separated header list, optional whitespace trimmed, empty
/// items skipped (RFC 9110 section 5.6.1).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `Content-Length = 1*DIGIT`, fitting in a u64.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `wrk`-style request: what load generators send, over and over.
    const WRK_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    const OK_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\n\
        Server: dlisten\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 19\r\n\
        \r\n\
        hello from dlisten\n";
    const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
        Server: dlisten\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 19\r\n\
        Connection: close\r\n\
        \r\n\
        hello from dlisten\n";
    const OK_KEEP_ALIVE_HTTP10: &[u8] = b"HTTP/1.1 200 OK\r\n\
        Server: dlisten\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 19\r\n\
        Connection: keep-alive\r\n\
        \r\n\
        hello from dlisten\n";
    const BODY: &[u8] = b"hello from dlisten\n";

    /// What a driver sees after feeding a stream.
    #[derive(Debug, PartialEq, Eq)]
    struct Run {
        out: Vec<u8>,
        next: Next,
        stats: ServiceStats,
        /// Bytes received but not consumed when the feeding stopped.
        unconsumed: Vec<u8>,
    }

    /// Plays the driver: keeps unconsumed bytes, appends each piece, calls
    /// `on_data` with all of it, stops at `CloseAfterFlush`.
    fn drive<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Run {
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        let mut buffer = Vec::new();
        let mut next = Next::Continue;
        for piece in pieces {
            buffer.extend_from_slice(piece);
            let (consumed, n) = service.on_data(&buffer, &mut out, &mut stats);
            assert!(consumed <= buffer.len());
            buffer.drain(..consumed);
            next = n;
            if next == Next::CloseAfterFlush {
                break;
            }
        }
        Run {
            out,
            next,
            stats,
            unconsumed: buffer,
        }
    }

    fn one_shot(input: &[u8]) -> Run {
        drive([input])
    }

    fn byte_by_byte(input: &[u8]) -> Run {
        drive(input.chunks(1))
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn wrk_request_gets_byte_exact_response() {
        let run = one_shot(WRK_REQUEST);
        assert_eq!(run.out, OK_KEEP_ALIVE);
        assert_eq!(run.next, Next::Continue);
        assert_eq!(
            run.stats,
            ServiceStats {
                requests: 1,
                bad_requests: 0
            }
        );
        assert!(run.unconsumed.is_empty());
    }

    #[test]
    fn keep_alive_close_matrix() {
        let cases: [(&[u8], &[u8], Next); 6] = [
            // HTTP/1.1 persists by default.
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                OK_KEEP_ALIVE,
                Next::Continue,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                OK_CLOSE,
                Next::CloseAfterFlush,
            ),
            // HTTP/1.0 closes unless it asked for keep-alive.
            (b"GET / HTTP/1.0\r\n\r\n", OK_CLOSE, Next::CloseAfterFlush),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                OK_KEEP_ALIVE_HTTP10,
                Next::Continue,
            ),
            // Options are case-insensitive, listed, and close wins.
            (
                b"GET / HTTP/1.1\r\nHost: x\r\nconnection: Upgrade,  CLOSE\r\n\r\n",
                OK_CLOSE,
                Next::CloseAfterFlush,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n",
                OK_CLOSE,
                Next::CloseAfterFlush,
            ),
        ];
        for (request, response, next) in cases {
            let run = one_shot(request);
            assert_eq!(run.out, response, "{}", String::from_utf8_lossy(request));
            assert_eq!(run.next, next, "{}", String::from_utf8_lossy(request));
            assert_eq!(run.stats.requests, 1);
            assert!(run.unconsumed.is_empty());
        }
    }

    #[test]
    fn keep_alive_serves_the_next_request_after_close_none() {
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        for round in 1..=3 {
            assert_eq!(
                service.on_data(WRK_REQUEST, &mut out, &mut stats),
                (WRK_REQUEST.len(), Next::Continue)
            );
            assert_eq!(stats.requests, round);
        }
        assert_eq!(out, OK_KEEP_ALIVE.repeat(3));
    }

    const PIPELINE: [&[u8]; 3] = [
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n",
    ];

    fn pipeline_response() -> Vec<u8> {
        concat(&[
            OK_KEEP_ALIVE,
            OK_KEEP_ALIVE,
            &OK_KEEP_ALIVE[..OK_KEEP_ALIVE.len() - BODY.len()],
        ])
    }

    #[test]
    fn pipelined_requests_answered_in_order() {
        let input = concat(&PIPELINE);
        let run = one_shot(&input);
        assert_eq!(run.out, pipeline_response());
        assert_eq!(run.next, Next::Continue);
        assert_eq!(run.stats.requests, 3);
        assert!(run.unconsumed.is_empty());
        assert_eq!(byte_by_byte(&input), run);
    }

    #[test]
    fn pipeline_split_at_every_position_gives_identical_output() {
        let input = concat(&PIPELINE);
        let whole = one_shot(&input);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(drive([a, b]), whole, "split at {split}");
        }
    }

    #[test]
    fn partial_request_stays_unconsumed() {
        let input = concat(&[WRK_REQUEST, b"GET / HTTP/1.1\r\nHo"]);
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        let (consumed, next) = service.on_data(&input, &mut out, &mut stats);
        assert_eq!((consumed, next), (WRK_REQUEST.len(), Next::Continue));
        assert_eq!(out, OK_KEEP_ALIVE);
        // The driver passes the partial head again with the rest behind it.
        let rest = concat(&[&input[consumed..], b"st: x\r\n\r\n"]);
        assert_eq!(
            service.on_data(&rest, &mut out, &mut stats),
            (rest.len(), Next::Continue)
        );
        assert_eq!(out, OK_KEEP_ALIVE.repeat(2));
    }

    #[test]
    fn close_request_drops_what_follows() {
        let input = concat(&[
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            WRK_REQUEST,
        ]);
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        assert_eq!(
            service.on_data(&input, &mut out, &mut stats),
            (input.len(), Next::CloseAfterFlush)
        );
        assert_eq!(out, OK_CLOSE);
        assert_eq!(stats.requests, 1);
        // Anything later is read and dropped.
        assert_eq!(
            service.on_data(WRK_REQUEST, &mut out, &mut stats),
            (WRK_REQUEST.len(), Next::CloseAfterFlush)
        );
        assert_eq!(out, OK_CLOSE);
    }

    #[test]
    fn content_length_body_split_across_calls() {
        let body = b"0123456789abcdef".repeat(100);
        let head = format!(
            "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let input = concat(&[head.as_bytes(), &body, WRK_REQUEST]);

        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        // Head and a third of the body: all consumed, no response yet.
        let first = head.len() + body.len() / 3;
        assert_eq!(
            service.on_data(&input[..first], &mut out, &mut stats),
            (first, Next::Continue)
        );
        assert!(out.is_empty());
        assert_eq!(stats.requests, 0);
        // The rest of the body and the next request.
        let rest = &input[first..];
        assert_eq!(
            service.on_data(rest, &mut out, &mut stats),
            (rest.len(), Next::Continue)
        );
        assert_eq!(out, OK_KEEP_ALIVE.repeat(2));
        assert_eq!(stats.requests, 2);

        assert_eq!(byte_by_byte(&input).out, OK_KEEP_ALIVE.repeat(2));
    }

    #[test]
    fn content_length_zero_and_repeated_identical() {
        let run = one_shot(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            (run.out.as_slice(), run.next),
            (OK_KEEP_ALIVE, Next::Continue)
        );
        let run = one_shot(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
        );
        assert_eq!(
            (run.out.as_slice(), run.next),
            (OK_KEEP_ALIVE, Next::Continue)
        );
        assert!(run.unconsumed.is_empty());
    }

    const CHUNKED: &[u8] =
        b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
        5\r\nhello\r\n\
        1A;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        0\r\n\
        Trailer-Field: 1\r\n\
        \r\n";

    #[test]
    fn chunked_body_decoded_then_next_request() {
        let input = concat(&[CHUNKED, WRK_REQUEST]);
        let run = one_shot(&input);
        assert_eq!(run.out, OK_KEEP_ALIVE.repeat(2));
        assert_eq!(run.next, Next::Continue);
        assert_eq!(run.stats.requests, 2);
        assert!(run.unconsumed.is_empty());
        assert_eq!(byte_by_byte(&input), run);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(drive([a, b]), run, "split at {split}");
        }
    }

    #[test]
    fn chunked_without_trailers() {
        let run = one_shot(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(run.out, OK_KEEP_ALIVE);
        assert!(run.unconsumed.is_empty());
        // Nothing is answered before the last chunk.
        let run = one_shot(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        );
        assert!(run.out.is_empty());
        assert_eq!(run.next, Next::Continue);
    }

    const BAD_REQUESTS: [&[u8]; 12] = [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
        // RFC 9112 section 3.2: Host missing or repeated in HTTP/1.1.
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];

    #[test]
    fn malformed_gets_400_and_close() {
        let mut bad = BAD_REQUESTS.to_vec();
        let chunk_data_overrun: &[u8] =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n";
        let empty_chunk_size: &[u8] =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n";
        bad.extend([chunk_data_overrun, empty_chunk_size]);
        for request in bad {
            for run in [one_shot(request), byte_by_byte(request)] {
                assert_eq!(run.out, BAD_REQUEST, "{}", String::from_utf8_lossy(request));
                assert_eq!(run.next, Next::CloseAfterFlush);
                assert_eq!(
                    run.stats,
                    ServiceStats {
                        requests: 0,
                        bad_requests: 1
                    }
                );
            }
        }
        assert_eq!(
            BAD_REQUEST,
            b"HTTP/1.1 400 Bad Request\r\nServer: dlisten\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn earlier_requests_answered_before_the_400() {
        let input = concat(&[WRK_REQUEST, b"GET / HTTP/1.1\r\n\x01\r\n\r\n", WRK_REQUEST]);
        let run = one_shot(&input);
        assert_eq!(run.out, concat(&[OK_KEEP_ALIVE, BAD_REQUEST]));
        assert_eq!(run.next, Next::CloseAfterFlush);
        assert_eq!(
            run.stats,
            ServiceStats {
                requests: 1,
                bad_requests: 1
            }
        );
    }

    const TOO_LARGE: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: dlisten\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    #[test]
    fn too_many_headers_gets_431() {
        let mut request = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            request.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        let run = one_shot(&request);
        assert_eq!(run.out, TOO_LARGE);
        assert_eq!(run.out, HEADER_FIELDS_TOO_LARGE);
        assert_eq!(run.next, Next::CloseAfterFlush);
        assert_eq!(
            run.stats,
            ServiceStats {
                requests: 0,
                bad_requests: 1
            }
        );
    }

    #[test]
    fn exactly_max_headers_is_fine() {
        let mut request = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 1..MAX_HEADERS {
            request.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        assert_eq!(one_shot(&request).out, OK_KEEP_ALIVE);
    }

    /// A request head of `len` bytes exactly.
    fn head_of_len(len: usize) -> Vec<u8> {
        let start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        let end = b"\r\n\r\n";
        let pad = len - start.len() - end.len();
        concat(&[start, &vec![b'a'; pad], end])
    }

    #[test]
    fn head_size_limit() {
        let at_limit = head_of_len(MAX_REQUEST_HEAD);
        assert_eq!(one_shot(&at_limit).out, OK_KEEP_ALIVE);
        let over = head_of_len(MAX_REQUEST_HEAD + 1);
        assert_eq!(one_shot(&over).out, TOO_LARGE);
        // Arriving piece by piece, it is refused once the limit is passed,
        // without waiting for the end of the head.
        let run = drive(over.chunks(1000));
        assert_eq!(run.out, TOO_LARGE);
        let run = byte_by_byte(&over[..MAX_REQUEST_HEAD + 1]);
        assert_eq!(
            (run.out.as_slice(), run.next),
            (TOO_LARGE, Next::CloseAfterFlush)
        );
        // A head never finished is not answered before the limit.
        let run = byte_by_byte(&over[..MAX_REQUEST_HEAD]);
        assert_eq!((run.out.len(), run.next), (0, Next::Continue));
        assert_eq!(run.unconsumed.len(), MAX_REQUEST_HEAD);
    }

    #[test]
    fn trailers_too_large_gets_431() {
        let mut request =
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: "
                .to_vec();
        request.extend(vec![b'a'; MAX_REQUEST_HEAD]);
        assert_eq!(one_shot(&request).out, TOO_LARGE);
    }

    #[test]
    fn chunk_line_and_trailer_limits_hold_whole_or_in_pieces() {
        let start: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let long_extension = concat(&[
            start,
            b"1;",
            &vec![b'e'; MAX_CHUNK_SIZE_LINE],
            b"\r\na\r\n0\r\n\r\n",
        ]);
        let long_trailer = concat(&[
            start,
            b"0\r\nX-T: ",
            &vec![b't'; MAX_REQUEST_HEAD],
            b"\r\n\r\n",
        ]);
        for (input, response) in [(long_extension, BAD_REQUEST), (long_trailer, TOO_LARGE)] {
            assert_eq!(one_shot(&input).out, response);
            assert_eq!(drive(input.chunks(7)).out, response);
        }
        let short_extension = concat(&[start, b"1;", &[b'e'; 100], b"\r\na\r\n0\r\n\r\n"]);
        assert_eq!(one_shot(&short_extension).out, OK_KEEP_ALIVE);
    }

    #[test]
    fn expect_100_continue() {
        let head: &[u8] =
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        // The interim 100 goes out with the head, the 200 once the body is read.
        assert_eq!(
            service.on_data(head, &mut out, &mut stats),
            (head.len(), Next::Continue)
        );
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(stats.requests, 0);
        assert_eq!(
            service.on_data(b"data", &mut out, &mut stats),
            (4, Next::Continue)
        );
        assert_eq!(out, concat(&[CONTINUE, OK_KEEP_ALIVE]));
        assert_eq!(stats.requests, 1);
        // No body announced, or HTTP/1.0: no 100.
        let run = one_shot(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(run.out, OK_KEEP_ALIVE);
        let run =
            one_shot(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(run.out, OK_CLOSE);
    }

    #[test]
    fn head_gets_headers_only() {
        let run = one_shot(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = &OK_KEEP_ALIVE[..OK_KEEP_ALIVE.len() - BODY.len()];
        assert_eq!(run.out, head);
        assert!(run.out.ends_with(b"Content-Length: 19\r\n\r\n"));
        assert_eq!(run.stats.requests, 1);
        let run = one_shot(b"HEAD / HTTP/1.0\r\n\r\n");
        assert_eq!(run.out, &OK_CLOSE[..OK_CLOSE.len() - BODY.len()]);
        assert_eq!(run.next, Next::CloseAfterFlush);
    }

    #[test]
    fn leading_empty_lines_ignored() {
        // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
        // before the request line.
        let run = one_shot(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(run.out, OK_KEEP_ALIVE);
        assert!(run.unconsumed.is_empty());
    }

    #[test]
    fn eof_closes_and_drops_partial_request() {
        let mut service = HttpService::new(HttpConfig::default());
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        assert_eq!(
            service.on_data(b"GET / HT", &mut out, &mut stats),
            (0, Next::Continue)
        );
        assert_eq!(service.on_eof(&mut out), Next::CloseAfterFlush);
        assert!(out.is_empty());
        assert_eq!(
            service.on_data(WRK_REQUEST, &mut out, &mut stats),
            (WRK_REQUEST.len(), Next::CloseAfterFlush)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn configured_body_and_content_type() {
        let config = HttpConfig::new(b"{\"ok\":true}", " application/json ").unwrap();
        let expected: &[u8] =
            b"HTTP/1.1 200 OK\r\nServer: dlisten\r\nContent-Type: application/json\r\n\
            Content-Length: 11\r\n\r\n{\"ok\":true}";
        assert_eq!(config.response(Persistence::KeepAlive).full(), expected);
        let mut service = HttpService::new(config);
        let mut out = Vec::new();
        service.on_data(WRK_REQUEST, &mut out, &mut ServiceStats::default());
        assert_eq!(out, expected);

        let empty = HttpConfig::new(b"", "text/plain").unwrap();
        assert_eq!(
            empty.response(Persistence::Close).full(),
            b"HTTP/1.1 200 OK\r\nServer: dlisten\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn content_type_cannot_inject_headers() {
        for bad in [
            "",
            "  ",
            "text/plain\r\nSet-Cookie: a=b",
            "text/\x7fplain",
            "tëxt",
        ] {
            assert_eq!(
                HttpConfig::new(b"x", bad).unwrap_err(),
                HttpConfigError::ContentType(bad.trim().into())
            );
        }
    }

    #[test]
    fn default_config_matches_new() {
        let default = HttpConfig::default();
        let built = HttpConfig::new(DEFAULT_BODY.as_bytes(), DEFAULT_CONTENT_TYPE).unwrap();
        for p in [
            Persistence::KeepAlive,
            Persistence::KeepAliveHttp10,
            Persistence::Close,
        ] {
            assert_eq!(default.response(p).full(), built.response(p).full());
            assert_eq!(default.response(p).head(), built.response(p).head());
        }
    }

    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(WRK_REQUEST.to_vec()),
            Just(CHUNKED.to_vec()),
            Just(PIPELINE[1].to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"Content-Length: 3\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"Connection: close\r\n".to_vec()),
            Just(b"Expect: 100-continue\r\n".to_vec()),
            Just(b"HEAD / HTTP/1.0\r\n".to_vec()),
            Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..16),
        ]
    }

    proptest! {
        /// Arbitrary bytes, in arbitrary pieces: no panic, consumed <= input.
        #[test]
        fn arbitrary_input_never_panics(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut service = HttpService::new(HttpConfig::default());
            let mut stats = ServiceStats::default();
            let mut out = Vec::new();
            for piece in &pieces {
                let (consumed, _) = service.on_data(piece, &mut out, &mut stats);
                prop_assert!(consumed <= piece.len());
            }
            service.on_eof(&mut out);
        }

        /// HTTP-shaped input: however it is cut, the output is the same as when it
        /// arrives whole.
        #[test]
        fn split_does_not_change_output(
            fragments in proptest::collection::vec(fragment(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let input = fragments.concat();
            let whole = one_shot(&input);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&input[start..cut]);
                start = cut;
            }
            pieces.push(&input[start..]);
            let split = drive(pieces);
            prop_assert_eq!(&split.out, &whole.out);
            prop_assert_eq!(split.next, whole.next);
            prop_assert_eq!(split.stats, whole.stats);
            prop_assert_eq!(&split.unconsumed, &whole.unconsumed);
        }
    }
}
