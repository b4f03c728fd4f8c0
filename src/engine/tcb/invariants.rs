//! What must hold of a [`Tcb`] between any two calls, whatever the peer
//! sent: the sequence space, the rings and their memory, the windows, and
//! the state and flag bits agreeing with each other. The fuzz harness and
//! the tests call [`Tcb::check_invariants`] after every step; nothing in
//! the data path does (it is support code, like the test kit).

use super::recv::MAX_OOO_RANGES;
use super::seq::{after, before};
use super::*;
use std::fmt;

/// A broken invariant: which rule, and the values that broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for Violation {}

fn check(ok: bool, rule: &'static str, detail: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(Violation { rule, detail: detail() })
    }
}

impl Tcb {
    /// Check every invariant; the first broken one is returned.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        self.check_send_space()?;
        self.check_receive_space()?;
        self.check_state()
    }

    fn check_send_space(&self) -> Result<(), Violation> {
        let (una, nxt, max) = (self.snd_una, self.snd_nxt, self.snd_max);
        check(!after(una, nxt) && !after(nxt, max), "snd_una <= snd_nxt <= snd_max", || {
            format!("snd_una {una} snd_nxt {nxt} snd_max {max}")
        })?;
        let (len, cap, mem) = (self.snd.len(), self.snd.cap(), self.snd.mem());
        check(len <= cap && mem <= cap, "send ring within its capacity", || {
            format!("len {len} ring {mem} cap {cap}")
        })?;
        check(mem >= len, "send ring holds its bytes", || format!("len {len} ring {mem}"))?;
        if self.state != State::Closed {
            // Nothing is ever sent that the ring does not hold (a FIN is one
            // more sequence number).
            let sent = max.wrapping_sub(self.data_seq());
            let limit = len + self.has(F_FIN_SENT) as u32;
            check(
                !before(max, self.data_seq()) && sent <= limit,
                "sent data is in the send ring",
                || format!("snd_max {max} data_seq {} ring len {len} fin_sent {}", self.data_seq(), self.has(F_FIN_SENT)),
            )?;
        } else {
            check(len == 0 && mem == 0, "send ring released when closed", || format!("len {len} ring {mem}"))?;
        }
        check(self.snd_wnd <= self.max_snd_wnd, "snd_wnd <= max_snd_wnd", || {
            format!("snd_wnd {} max_snd_wnd {}", self.snd_wnd, self.max_snd_wnd)
        })?;
        let mss = u32::from(self.mss);
        check(mss > 0 && self.cwnd >= 1, "mss and cwnd positive", || {
            format!("mss {mss} cwnd {}", self.cwnd)
        })?;
        check(self.ssthresh >= 2 * mss, "ssthresh >= 2 * mss", || {
            format!("ssthresh {} mss {mss}", self.ssthresh)
        })?;
        check(self.snd_wscale <= 14 && self.rcv_wscale <= 14, "window scale <= 14", || {
            format!("snd_wscale {} rcv_wscale {}", self.snd_wscale, self.rcv_wscale)
        })?;
        check(
            // Giving up by time (Linux retransmits_timed_out) allows one
            // retransmission past the limit when the RTO is at its floor.
            self.retransmits <= self.retries2.max(self.synack_retries).saturating_add(1),
            "retransmissions within the retry limit",
            || format!("retransmits {} retries2 {} synack_retries {}", self.retransmits, self.retries2, self.synack_retries),
        )
    }

    fn check_receive_space(&self) -> Result<(), Violation> {
        let (len, ring, mem) = (self.rcv.len(), self.rcv.ring_len(), self.rcv.mem());
        check(len <= ring, "receive queue within the ring", || format!("len {len} ring {ring}"))?;
        if !self.rcv.has_ooo() {
            check(len <= mem && mem <= ring, "receive ring holds its bytes", || {
                format!("len {len} allocated {mem} ring {ring}")
            })?;
            check(len > 0 || mem == 0, "an empty receive buffer holds no memory", || format!("{mem} bytes allocated"))?;
        }
        let nxt = self.rcv_nxt;
        let ring_end = nxt.wrapping_add(self.rcv.room());
        let ranges = self.rcv.ranges();
        check(ranges.len() <= MAX_OOO_RANGES, "at most MAX_OOO_RANGES ranges", || format!("{ranges:?}"))?;
        check(self.rcv.has_ooo() != ranges.is_empty(), "range list exists only while used", || {
            format!("has_ooo {} ranges {ranges:?}", self.rcv.has_ooo())
        })?;
        for (i, &(s, e)) in ranges.iter().enumerate() {
            check(after(e, s) && after(s, nxt) && !after(e, ring_end), "ranges non-empty, after rcv_nxt, in the ring", || {
                format!("range {s}..{e} rcv_nxt {nxt} ring end {ring_end}")
            })?;
            for &(s2, e2) in &ranges[i + 1..] {
                check(before(e, s2) || before(e2, s), "ranges disjoint and not adjacent", || format!("{ranges:?}"))?;
            }
        }
        check(!after(self.rcv_wup, nxt), "rcv_wup <= rcv_nxt", || format!("rcv_wup {} rcv_nxt {nxt}", self.rcv_wup))?;
        // Never a window beyond what the ring can store.
        let edge = self.rcv_wup.wrapping_add(self.rcv_wnd);
        check(!after(edge, ring_end), "advertised window within the ring", || {
            format!("right edge {edge} ring end {ring_end} (rcv_nxt {nxt}, queue {len}, ring {ring})")
        })
    }

    fn check_state(&self) -> Result<(), Violation> {
        let st = self.state;
        let fin_queued = self.has(F_FIN_QUEUED);
        check(!self.has(F_FIN_SENT) || fin_queued, "FIN sent only when queued", || format!("state {st:?}"))?;
        let our_fin_unacked = matches!(st, State::FinWait1 | State::Closing | State::LastAck);
        if st != State::Closed {
            check(fin_queued == our_fin_unacked, "our FIN queued exactly in FIN_WAIT_1, CLOSING, LAST_ACK", || {
                format!("state {st:?} fin_queued {fin_queued}")
            })?;
            let peer_fin = matches!(st, State::CloseWait | State::LastAck | State::Closing | State::TimeWait);
            check(self.has(F_FIN_RCVD) == peer_fin, "the peer's FIN received exactly in the states after it", || {
                format!("state {st:?} fin_rcvd {}", self.has(F_FIN_RCVD))
            })?;
        }
        match st {
            State::Closed => check(
                self.rtx_at == Deadline::NONE && self.delack_at == Deadline::NONE,
                "no timer when closed",
                || format!("rtx {:?} delack {:?}", self.rtx_at, self.delack_at),
            ),
            State::TimeWait => check(self.rtx_at != Deadline::NONE, "TIME_WAIT has its expiry", String::new),
            _ => Ok(()),
        }
    }
}
