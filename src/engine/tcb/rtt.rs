//! Retransmission timeout estimation, RFC 6298, with Linux's clamps.

use crate::engine::time::Duration;

/// Linux `TCP_RTO_MIN`: 200 ms.
pub const RTO_MIN: Duration = Duration::from_millis(200);
/// Linux `TCP_RTO_MAX`: 120 s.
pub const RTO_MAX: Duration = Duration::from_secs(120);
/// Linux `TCP_TIMEOUT_INIT`: 1 s.
//= https://www.rfc-editor.org/rfc/rfc6298#section-2
//# (2.1) Until a round-trip time (RTT) measurement has been made for a
//#       segment sent between the sender and receiver, the sender SHOULD
//#       set RTO <- 1 second
pub const RTO_INIT: Duration = Duration::from_secs(1);

/// SRTT and RTTVAR in microseconds (u32: up to 71 minutes, far above RTO_MAX).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u32,
    rttvar_us: u32,
}

impl RttEstimator {
    pub fn has_sample(&self) -> bool {
        self.srtt_us != 0
    }

    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt_us as u64)
    }

    /// Feed one RTT measurement.
    pub fn on_sample(&mut self, rtt: Duration) {
        // A zero sample (same-tick ACK) would read as "no sample": use 1 us.
        let r = (rtt.as_micros().min(RTO_MAX.as_micros()) as u32).max(1);
        if self.srtt_us == 0 {
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# (2.2) When the first RTT measurement R is made, the host MUST set
            //#       SRTT <- R
            //#       RTTVAR <- R/2
            self.srtt_us = r;
            self.rttvar_us = r / 2;
        } else {
            //= https://www.rfc-editor.org/rfc/rfc6298#section-2
            //# RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|
            //# SRTT <- (1 - alpha) * SRTT + alpha * R'
            let delta = self.srtt_us.abs_diff(r);
            self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + delta / 4;
            self.srtt_us = (self.srtt_us - self.srtt_us / 8 + r / 8).max(1);
        }
    }

    /// The base RTO (before backoff).
    ///
    /// RFC 6298: RTO <- SRTT + max (G, K*RTTVAR). Linux's `tcp_set_rto`
    /// floors the variance term at `TCP_RTO_MIN` (its `mdev_max`), so the
    /// RTO is SRTT + max(200 ms, 4*RTTVAR), then clamped to `TCP_RTO_MAX`.
    pub fn rto(&self) -> Duration {
        if !self.has_sample() {
            return RTO_INIT;
        }
        let var = Duration::from_micros(4 * self.rttvar_us as u64).max(RTO_MIN);
        (self.srtt() + var).min(RTO_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_and_floor() {
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(), RTO_INIT);
        r.on_sample(Duration::from_millis(100));
        // 100 + max(200, 4*50) = 300 ms.
        assert_eq!(r.rto(), Duration::from_millis(300));
        for _ in 0..50 {
            r.on_sample(Duration::from_millis(1));
        }
        // Converges to ~1 ms + the 200 ms floor, as Linux on a LAN.
        assert!(r.rto() >= RTO_MIN && r.rto() < Duration::from_millis(210));
    }

    #[test]
    fn clamped_to_max() {
        let mut r = RttEstimator::default();
        r.on_sample(Duration::from_secs(500));
        assert_eq!(r.rto(), RTO_MAX);
    }
}
