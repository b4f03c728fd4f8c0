//! Request socks: half-open connections (SYN_RECV) in a worker's own table.
//! RSS sends every packet of a flow to one queue, so no other core ever
//! touches them: no locks. The listener's `qlen`/`young` are the only shared
//! state (atomics).

use crate::engine::listen::Listener;
use crate::engine::time::Instant;
use crate::engine::timer_wheel::TimerId;
use std::sync::Arc;

/// Request-sock option bits.
pub mod opt {
    pub const SACK: u8 = 1 << 0;
    pub const TSTAMP: u8 = 1 << 1;
    pub const ECN: u8 = 1 << 2;
    /// The final ACK came while the accept queue was full
    /// (`inet_rsk(req)->acked`): the request waits for a retransmitted ACK.
    pub const ACKED: u8 = 1 << 3;
}

/// A half-open connection (Linux's `struct tcp_request_sock`, the parts a
/// listener needs). Kept small: the per-request budget is 64 bytes.
#[derive(Debug)]
pub struct RequestSock {
    pub listener: Arc<Listener>,
    /// When the SYN arrived (SYN→established latency, timestamps clock).
    pub syn_at: Instant,
    pub timer: TimerId,
    /// Our ISN (`snt_isn`).
    pub snt_isn: u32,
    /// The client's ISN (`rcv_isn`).
    pub rcv_isn: u32,
    /// Last TSval seen from the client (`ts_recent`).
    pub ts_recent: u32,
    /// Our TSval offset for this address pair (`ts_off`).
    pub ts_off: u32,
    /// MSS we announced (the client's, clamped to ours).
    pub mss: u16,
    /// The client's window from its SYN (never scaled).
    pub peer_window: u16,
    /// The client's window scale, `NO_WSCALE` when it sent none.
    pub snd_wscale: u8,
    /// Our window scale, as announced.
    pub rcv_wscale: u8,
    /// `opt::*` bits.
    pub opts: u8,
    /// SYN-ACK timeouts so far (`num_timeout`).
    pub num_timeout: u8,
    /// SYN-ACK retransmissions so far, timer or SYN driven (`num_retrans`).
    pub num_retrans: u8,
}

pub const NO_WSCALE: u8 = 0xff;

impl RequestSock {
    pub fn has(&self, bit: u8) -> bool {
        self.opts & bit != 0
    }

    /// Still young: its SYN-ACK never timed out.
    pub fn is_young(&self) -> bool {
        self.num_timeout == 0
    }

    pub fn snd_wscale(&self) -> Option<u8> {
        (self.snd_wscale != NO_WSCALE).then_some(self.snd_wscale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sock_fits_the_budget() {
        let size = std::mem::size_of::<RequestSock>();
        assert!(size <= 64, "RequestSock is {size} bytes");
    }
}
