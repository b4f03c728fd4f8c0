//! discard: reads and drops everything (RFC 863 over TCP).

use super::{Next, Service, ServiceStats};

#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardService;

impl Service for DiscardService {
    fn on_data(
        &mut self,
        input: &[u8],
        _out: &mut Vec<u8>,
        _stats: &mut ServiceStats,
    ) -> (usize, Next) {
        (input.len(), Next::Continue)
    }

    fn on_eof(&mut self, _out: &mut Vec<u8>) -> Next {
        Next::CloseAfterFlush
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_all_writes_nothing() {
        let mut discard = DiscardService;
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        assert_eq!(
            discard.on_data(b"GET / HTTP/1.1\r\n\r\n", &mut out, &mut stats),
            (18, Next::Continue)
        );
        assert_eq!(
            discard.on_data(&[0u8; 4096], &mut out, &mut stats),
            (4096, Next::Continue)
        );
        assert_eq!(
            discard.on_data(b"", &mut out, &mut stats),
            (0, Next::Continue)
        );
        assert!(out.is_empty());
        assert_eq!(discard.on_eof(&mut out), Next::CloseAfterFlush);
        assert!(out.is_empty());
        assert_eq!(stats, ServiceStats::default());
    }
}
