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

/// Linux `tcp_model_timeout`: how long `boundary` retransmissions take,
/// counted from the first, if the RTO started at `base` and doubled up to
/// `TCP_RTO_MAX`. A connection gives up when this much time has passed
/// since its first retransmission (`retransmits_timed_out`), so a large
/// measured RTO does not stretch `tcp_retries2` to hours.
pub fn model_timeout(boundary: u8, base: Duration) -> Duration {
    let base_ms = (base.as_millis() as u64).max(1);
    let max_ms = RTO_MAX.as_millis() as u64;
    // ilog2(TCP_RTO_MAX / base): the last doubling before the cap.
    let thresh = (max_ms / base_ms).max(1).ilog2();
    let b = u32::from(boundary);
    let ms = if b <= thresh {
        ((2u64 << b) - 1) * base_ms
    } else {
        ((2u64 << thresh) - 1) * base_ms + u64::from(b - thresh) * max_ms
    };
    Duration::from_millis(ms)
}

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
    fn model_timeouts_are_linux_s() {
        // tcp(7): tcp_retries2 = 15 "corresponds to a hypothetical timeout
        // of 924.6 seconds"; 6 to 25.4 s.
        assert_eq!(model_timeout(15, RTO_MIN), Duration::from_millis(924_600));
        assert_eq!(model_timeout(6, RTO_MIN), Duration::from_millis(25_400));
        // A SYN-ACK's base is TCP_TIMEOUT_INIT: 5 retries = 63 s.
        assert_eq!(model_timeout(5, RTO_INIT), Duration::from_secs(63));
        // Past the cap the steps are TCP_RTO_MAX: 1 s base caps after 6.
        assert_eq!(model_timeout(8, RTO_INIT), Duration::from_secs(127 + 2 * 120));
    }

    #[test]
    fn clamped_to_max() {
        let mut r = RttEstimator::default();
        r.on_sample(Duration::from_secs(500));
        assert_eq!(r.rto(), RTO_MAX);
    }
}
