//! One connection's application side, as both drivers use it (per-core in
//! the worker, or on application threads): bytes in, service, bytes out.

use super::{Next, Service, ServiceStats, Waiting};

/// Input a service may leave unconsumed (a partial request) before the
/// connection is considered abusive.
pub const MAX_PENDING_INPUT: usize = 64 * 1024;

/// A service left more than [`MAX_PENDING_INPUT`] bytes unconsumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_PENDING_INPUT} bytes of unconsumed input")]
pub struct InputOverflow;

/// Input and output are kept only while they hold bytes: an idle
/// connection's session allocates nothing beyond its service.
pub struct Session {
    service: Box<dyn Service>,
    /// Received bytes the service has not consumed yet.
    input: Vec<u8>,
    /// Service output the connection has not taken yet.
    output: Vec<u8>,
    /// FIN once `output` is sent.
    close_after_flush: bool,
    /// A request was answered: waiting for a head with nothing received is
    /// keep-alive idleness, not a slow head.
    answered: bool,
}

/// Which of the slow-client timeouts applies to a session now (nginx's
/// client_header_timeout, keepalive_timeout, client_body_timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Writing, closing, or a stream service: no timeout.
    Busy,
    /// Waiting for a request head (the first one, or one begun).
    Header,
    /// Keep-alive: a request answered, nothing of the next one yet.
    Idle,
    /// Waiting for the rest of a request body.
    Body,
}

impl Session {
    pub fn new(service: Box<dyn Service>) -> Session {
        Session { service, input: Vec::new(), output: Vec::new(), close_after_flush: false, answered: false }
    }

    /// Received bytes: run the service. Returns how many requests it answered,
    /// or `InputOverflow` when unconsumed input exceeds [`MAX_PENDING_INPUT`].
    pub fn received(&mut self, data: &[u8]) -> Result<u64, InputOverflow> {
        if self.close_after_flush {
            return Ok(0);
        }
        let mut stats = ServiceStats::default();
        let next = if self.input.is_empty() {
            // The common case: no partial request waiting, no copy.
            let (used, next) = self.service.on_data(data, &mut self.output, &mut stats);
            self.input.extend_from_slice(&data[used.min(data.len())..]);
            next
        } else {
            self.input.extend_from_slice(data);
            let (used, next) = self.service.on_data(&self.input, &mut self.output, &mut stats);
            self.input.drain(..used.min(self.input.len()));
            if self.input.is_empty() {
                self.input = Vec::new();
            }
            next
        };
        self.close_after_flush |= matches!(next, Next::CloseAfterFlush);
        self.answered |= stats.requests > 0;
        if self.input.len() > MAX_PENDING_INPUT {
            return Err(InputOverflow);
        }
        Ok(stats.requests)
    }

    /// The peer closed its side.
    pub fn eof(&mut self) {
        if !self.close_after_flush {
            self.close_after_flush = matches!(self.service.on_eof(&mut self.output), Next::CloseAfterFlush);
        }
    }

    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// `n` bytes of output were written.
    pub fn wrote(&mut self, n: usize) {
        if n >= self.output.len() {
            self.output = Vec::new();
        } else {
            self.output.drain(..n);
        }
    }

    /// The connection can take no more output (reset, shut down).
    pub fn drop_output(&mut self) {
        self.output = Vec::new();
    }

    /// Bytes the session holds on the heap for its input and output.
    pub fn held(&self) -> usize {
        self.input.capacity() + self.output.capacity()
    }

    /// Everything is written and the service wants the connection closed.
    pub fn should_close(&self) -> bool {
        self.close_after_flush && self.output.is_empty()
    }

    /// The timeout that applies now.
    pub fn phase(&self) -> Phase {
        if self.close_after_flush || !self.output.is_empty() {
            return Phase::Busy;
        }
        match self.service.waiting() {
            Waiting::Nothing => Phase::Busy,
            Waiting::Head if self.answered && self.input.is_empty() => Phase::Idle,
            Waiting::Head => Phase::Header,
            Waiting::Body => Phase::Body,
        }
    }

    /// Nothing of a request received and nothing to write: closing now
    /// loses nothing (what nginx closes at once on a graceful shutdown).
    pub fn between_requests(&self) -> bool {
        matches!(self.phase(), Phase::Header | Phase::Idle) && self.input.is_empty()
    }

    /// The server is shutting down (see [`Service::drain`]).
    pub fn drain(&mut self) {
        self.service.drain();
    }

    /// Reading stops once the service decided to close.
    pub fn done_reading(&self) -> bool {
        self.close_after_flush
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppKind;

    #[test]
    fn echo_session_closes_after_flushing_on_eof() {
        let mut s = Session::new(AppKind::Echo.new_service().unwrap());
        assert_eq!(s.received(b"abc"), Ok(0));
        assert_eq!(s.output(), b"abc");
        s.eof();
        assert!(!s.should_close());
        s.wrote(2);
        assert_eq!(s.output(), b"c");
        s.wrote(1);
        assert!(s.should_close());
    }

    #[test]
    fn http_counts_requests_and_keeps_partial_input() {
        let mut s = Session::new(AppKind::Http(Default::default()).new_service().unwrap());
        assert_eq!(s.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HT"), Ok(1));
        assert!(s.output().starts_with(b"HTTP/1.1 200 OK"));
        assert_eq!(s.received(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), Ok(1));
        let n = s.output().len();
        s.wrote(n);
        assert!(s.should_close());
    }

    #[test]
    fn endless_partial_input_is_refused() {
        let mut s = Session::new(AppKind::Http(Default::default()).new_service().unwrap());
        // A request head that never ends is answered 431 and closed by the
        // service itself; a service that only buffers is cut off here.
        let mut refused = false;
        for _ in 0..100 {
            if s.received(&[b'a'; 4096]).is_err() {
                refused = true;
                break;
            }
            if s.done_reading() {
                break;
            }
        }
        assert!(refused || s.done_reading());
    }

    #[test]
    fn phases_follow_the_request() {
        let mut s = Session::new(AppKind::Http(Default::default()).new_service().unwrap());
        assert_eq!(s.phase(), Phase::Header, "a new connection waits for its first head");
        assert_eq!(s.received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"), Ok(0));
        assert_eq!(s.phase(), Phase::Body);
        assert_eq!(s.received(b"cd"), Ok(1));
        assert_eq!(s.phase(), Phase::Busy, "the response is not written yet");
        let n = s.output().len();
        s.wrote(n);
        assert_eq!(s.phase(), Phase::Idle);
        assert_eq!(s.received(b"GET / HT"), Ok(0));
        assert_eq!(s.phase(), Phase::Header);
        let echo = Session::new(AppKind::Echo.new_service().unwrap());
        assert_eq!(echo.phase(), Phase::Busy);
    }

    #[test]
    fn a_draining_session_closes_after_the_next_response() {
        let mut s = Session::new(AppKind::Http(Default::default()).new_service().unwrap());
        assert_eq!(s.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(1));
        assert!(!s.done_reading());
        s.drain();
        let n = s.output().len();
        s.wrote(n);
        assert_eq!(s.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(1));
        assert!(s.output().windows(19).any(|w| w == b"Connection: close\r\n"));
        let n = s.output().len();
        s.wrote(n);
        assert!(s.should_close());
    }

    #[test]
    fn an_idle_session_holds_no_buffers() {
        let mut s = Session::new(AppKind::Http(Default::default()).new_service().unwrap());
        assert_eq!(s.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(1));
        let n = s.output().len();
        s.wrote(n);
        assert_eq!(s.held(), 0, "request answered and written: nothing kept");
        // A partial request is kept, and released once completed.
        assert_eq!(s.received(b"GET / HT"), Ok(0));
        assert!(s.held() > 0);
        assert_eq!(s.received(b"TP/1.1\r\nHost: x\r\n\r\n"), Ok(1));
        let n = s.output().len();
        s.wrote(n);
        assert_eq!(s.held(), 0);
    }
}
