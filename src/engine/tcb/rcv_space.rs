//! Receive-buffer autotuning, as Linux's dynamic right-sizing
//! (`tcp_rcv_space_adjust`, `tcp_rcv_rtt_measure`, `tcp_rcv_rtt_measure_ts`):
//! once per receiver-side RTT, the bytes the application copied in that
//! RTT are measured; when they exceed the previous measurement, the buffer
//! (and with it the window offered) grows to about twice what the sender
//! moved in an RTT plus its growth, up to `tcp_rmem[2]`. A connection whose
//! application does not read never grows: the measurement counts what was
//! read, not what arrived.
//!
//! The receiver has no RTT samples of its own data: Linux estimates it from
//! the timestamps the peer echoes in its data (`tcp_rcv_rtt_measure_ts`),
//! and without timestamps from the time the peer takes to send one window
//! (`tcp_rcv_rtt_measure`, which only keeps the minimum).

use super::seq::before;

/// Linux `TCP_INIT_CWND`: the first measurement expects this many segments.
const INIT_SEGS: u32 = 10;

/// Linux's `rcvq_space` and `rcv_rtt_est` of one connection. Times are
/// microseconds of engine time (wrapping, as the `Tcb`'s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RcvSpace {
    /// Bytes copied in the last measured RTT (Linux `rcvq_space.space`).
    space: u32,
    /// `copied_seq` when the current measurement began (`rcvq_space.seq`).
    seq: u32,
    /// When it began (`rcvq_space.time`).
    time_us: u32,
    /// Receiver RTT estimate, 8 times the microseconds (`rcv_rtt_est.rtt_us`); 0 = none.
    rtt_us8: u32,
    /// The window-based measurement: `rcv_nxt` to reach and when it started
    /// (`rcv_rtt_est.seq`, `.time`; `window_started` false = not started).
    rtt_seq: u32,
    rtt_time_us: u32,
    window_started: bool,
    /// The last TSecr a sample was taken from (`rcv_rtt_last_tsecr`).
    last_tsecr: u32,
}

impl RcvSpace {
    /// Linux `tcp_init_buffer_space`: the first measurement starts at
    /// `copied_seq`, expecting min(window, 10 segments of `adv_mss`).
    pub fn new(now_us: u32, copied_seq: u32, rcv_wnd: u32, adv_mss: u16) -> RcvSpace {
        RcvSpace {
            space: rcv_wnd.min(INIT_SEGS * u32::from(adv_mss)).max(1),
            seq: copied_seq,
            time_us: now_us,
            ..RcvSpace::default()
        }
    }

    /// The receiver's RTT estimate in microseconds, if any.
    pub fn rtt_us(&self) -> Option<u32> {
        (self.rtt_us8 != 0).then_some(self.rtt_us8 >> 3)
    }

    /// Bytes copied in the last measured RTT.
    pub fn space(&self) -> u32 {
        self.space
    }

    /// Linux `tcp_rcv_rtt_update`. `win_dep`: a window-based sample, which
    /// overestimates, so only a new minimum is taken.
    fn rtt_update(&mut self, sample_us: u32, win_dep: bool) {
        let m = sample_us.saturating_mul(8);
        let old = self.rtt_us8;
        self.rtt_us8 = if old == 0 || m < old {
            m
        } else if win_dep {
            return;
        } else {
            (old - (old >> 3)).saturating_add(sample_us)
        }
        .max(1);
    }

    /// Linux `tcp_rcv_rtt_measure_ts`: a data segment of at least `rcv_mss`
    /// bytes echoing a TSecr not used before gives a sample of our clock
    /// now less the echoed one, in milliseconds (a zero difference counts
    /// as one tick, as Linux's sender-side `tcp_rtt_tsopt_us` does: the
    /// timestamp clock cannot tell less).
    pub fn measure_ts(&mut self, ts_now_ms: u32, tsecr: u32, seg_len: u32, rcv_mss: u16) {
        if tsecr == 0 || tsecr == self.last_tsecr {
            return;
        }
        self.last_tsecr = tsecr;
        if seg_len < u32::from(rcv_mss) {
            return;
        }
        let delta = ts_now_ms.wrapping_sub(tsecr);
        if (delta as i32) < 0 || delta > 60_000 {
            return;
        }
        self.rtt_update(delta.max(1) * 1000, false);
    }

    /// Linux `tcp_rcv_rtt_measure`: the time the peer takes to fill the
    /// window offered when the measurement began.
    pub fn measure_window(&mut self, now_us: u32, rcv_nxt: u32, rcv_wnd: u32) {
        if self.window_started {
            if before(rcv_nxt, self.rtt_seq) {
                return;
            }
            self.rtt_update(now_us.wrapping_sub(self.rtt_time_us), true);
        }
        self.rtt_seq = rcv_nxt.wrapping_add(rcv_wnd);
        self.rtt_time_us = now_us;
        self.window_started = true;
    }

    /// Linux `tcp_rcv_space_adjust`, called after the application read
    /// (`copied_seq` is the sequence number after the last byte read).
    /// Returns the receive buffer the last RTT asks for when it grew
    /// (`grow` false: under memory pressure, measure but do not grow).
    pub fn adjust(&mut self, now_us: u32, copied_seq: u32, adv_mss: u16, grow: bool) -> Option<u32> {
        let elapsed = now_us.wrapping_sub(self.time_us);
        if self.rtt_us8 == 0 || elapsed < self.rtt_us8 >> 3 {
            return None;
        }
        let copied = copied_seq.wrapping_sub(self.seq);
        let mut want = None;
        if copied > self.space {
            if grow {
                // Linux: "copied = bytes received in previous RTT, our base
                // window. To cope with packet losses, we need a 2x factor.
                // To cope with slow start, and sender growing its cwin by
                // 100 % every RTT, we need a 4x factor."
                let space = u64::from(self.space);
                let mut rcvwin = (u64::from(copied) << 1) + 16 * u64::from(adv_mss);
                let grow_by = rcvwin.saturating_mul(u64::from(copied) - space) / space;
                rcvwin = rcvwin.saturating_add(grow_by.saturating_mul(2));
                // dlisten's ring holds payload bytes only (no skb overhead):
                // the buffer is the window (Linux tcp_space_from_win).
                want = Some(rcvwin.min(u64::from(u32::MAX)) as u32);
            }
            self.space = copied;
        }
        self.seq = copied_seq;
        self.time_us = now_us;
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_growth_without_an_rtt_or_before_one_has_passed() {
        let mut s = RcvSpace::new(0, 1000, 65535, 1460);
        assert_eq!(s.space(), 14600);
        assert_eq!(s.adjust(5_000, 1000 + 100_000, 1460, true), None, "no RTT estimate yet");
        s.measure_ts(110, 100, 1448, 536);
        assert_eq!(s.rtt_us(), Some(10_000));
        // 9 ms after the measurement began: less than one RTT.
        assert_eq!(s.adjust(9_000, 1000 + 200_000, 1460, true), None);
        assert!(s.adjust(10_000, 1000 + 200_000, 1460, true).is_some());
    }

    #[test]
    fn growth_follows_linux_formula() {
        let mut s = RcvSpace::new(0, 0, 65535, 1460);
        s.measure_ts(10, 9, 1460, 1460);
        assert_eq!(s.rtt_us(), Some(1000));
        // 29 200 bytes read in one RTT, twice the 14 600 expected:
        // rcvwin = 2 * 29200 + 16 * 1460 = 81 760; grow = rcvwin * 1 = 81 760;
        // rcvwin + 2 * grow = 245 280.
        assert_eq!(s.adjust(1000, 29_200, 1460, true), Some(245_280));
        assert_eq!(s.space(), 29_200);
        // The same amount next RTT: no growth asked, space unchanged.
        assert_eq!(s.adjust(2000, 58_400, 1460, true), None);
        // Under pressure: measured, not grown.
        assert_eq!(s.adjust(3000, 58_400 + 40_000, 1460, false), None);
        assert_eq!(s.space(), 40_000);
    }

    #[test]
    fn rtt_samples_ts_smoothed_window_minimum() {
        let mut s = RcvSpace::default();
        // Too small a segment: the TSecr is used up, no sample.
        s.measure_ts(100, 90, 100, 536);
        assert_eq!(s.rtt_us(), None);
        s.measure_ts(100, 90, 1000, 536);
        assert_eq!(s.rtt_us(), None, "the same TSecr twice gives one chance");
        s.measure_ts(100, 92, 1000, 536);
        assert_eq!(s.rtt_us(), Some(8000));
        // A larger sample is smoothed in at 1/8.
        s.measure_ts(116, 100, 1000, 536);
        assert_eq!(s.rtt_us(), Some(9000));
        // Same-tick echo: one millisecond.
        s.measure_ts(200, 200, 1000, 536);
        assert_eq!(s.rtt_us(), Some(1000));

        let mut w = RcvSpace::default();
        w.measure_window(0, 0, 10_000);
        w.measure_window(500, 5_000, 10_000);
        assert_eq!(w.rtt_us(), None, "window not filled yet");
        w.measure_window(3_000, 10_000, 10_000);
        assert_eq!(w.rtt_us(), Some(3_000));
        w.measure_window(9_000, 20_000, 10_000);
        assert_eq!(w.rtt_us(), Some(3_000), "window samples only lower the estimate");
        w.measure_window(10_000, 30_000, 10_000);
        assert_eq!(w.rtt_us(), Some(1_000));
    }
}
