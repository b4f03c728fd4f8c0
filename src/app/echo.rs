//! echo: returns exactly what it got (RFC 862 over TCP).

use super::{Next, Service, ServiceStats};

#[derive(Clone, Copy, Debug, Default)]
pub struct EchoService;

impl Service for EchoService {
    fn on_data(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        _stats: &mut ServiceStats,
    ) -> (usize, Next) {
        out.extend_from_slice(input);
        (input.len(), Next::Continue)
    }

    /// RFC 862 has the server echo until the client closes; we flush what is
    /// left, then close our side too.
    fn on_eof(&mut self, _out: &mut Vec<u8>) -> Next {
        Next::CloseAfterFlush
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_every_piece_in_order() {
        let mut echo = EchoService;
        let mut stats = ServiceStats::default();
        let mut out = Vec::new();
        assert_eq!(
            echo.on_data(b"hello ", &mut out, &mut stats),
            (6, Next::Continue)
        );
        assert_eq!(echo.on_data(b"", &mut out, &mut stats), (0, Next::Continue));
        assert_eq!(
            echo.on_data(b"\x00\xffworld", &mut out, &mut stats),
            (7, Next::Continue)
        );
        assert_eq!(out, b"hello \x00\xffworld");
        assert_eq!(echo.on_eof(&mut out), Next::CloseAfterFlush);
        assert_eq!(out, b"hello \x00\xffworld");
        assert_eq!(stats, ServiceStats::default());
    }
}
