//! Linux's syncookies.c, `cookie_v4_check`: an ACK for a listener that has
//! no request sock may carry a cookie we minted; if so, the connection is
//! rebuilt from the ACK alone.
//!
//! With fleet keys ([`crate::engine::keys::fleet`]) the cookie may have been
//! minted by another server of the fleet, so three things differ from
//! Linux: the ACK is checked even when this listener sent no cookie lately
//! (no `tcp_synq_no_recent_overflow` gate), the cookie counter counts UTC
//! minutes (a cookie from a server up to [`FLEET_CLOCK_SKEW`] ahead, already
//! in the next minute, is checked against that minute too), and the options ride in the low bits of the TSval itself (a UTC
//! clock plus the shared keyed offset) rather than of the TSval less the
//! offset, which would leave each server's clock base in them.

use super::child::{ChildError, ChildParams};
use super::conn::Origin;
use super::{TcpConfig, TcpEngine};
use crate::engine::keys::{isn, Secrets};
use crate::engine::flow::FlowKey;
use crate::engine::host::TcpInput;
use crate::engine::keys::syncookie::{self, CookieOpts};
use crate::engine::listen::Listener;
use crate::engine::time::{Duration, Instant};
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Counters};
use crate::wire::tcp_options;
use std::sync::Arc;

/// How far ahead another server's clock may be when its cookie comes back
/// here (a cookie minted in its next minute is still checked).
pub(super) const FLEET_CLOCK_SKEW: Duration = Duration::from_secs(1);

impl TcpEngine {
    /// `cookie_v4_check`: an ACK for a listener with no request sock. `true`
    /// when it was consumed (a connection made, or dropped on overflow);
    /// `false` to answer with RST.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cookie_check(
        &mut self,
        now: Instant,
        key: FlowKey,
        hash: u32,
        listener: &Arc<Listener>,
        input: &TcpInput<'_>,
        c: &Counters,
        tx: &mut impl TxSink,
    ) -> bool {
        let Some(params) = self.cookie_params(now, &key, listener, input, c) else { return false };
        match self.create_child(now, key, hash, input.eth_src, listener, params, c) {
            Ok(id) => {
                if input.seg.seq_len() > 0 {
                    self.tcb_segment(now, id, input, c, tx);
                }
                true
            }
            // On overflow Linux drops the ACK silently (tcp_get_cookie_sock
            // returns no child): the client retransmits.
            Err(ChildError::AcceptQueueFull) => true,
            // Our own cap: refuse cleanly with RST.
            Err(ChildError::Limit) => false,
        }
    }

    /// Linux's `tcp_cookie_time` on engine time; with fleet keys on UTC, so
    /// the servers of a fleet agree on it.
    pub(super) fn cookie_counter(&self, now: Instant) -> u32 {
        if self.secrets.fleet {
            syncookie::counter(now + Duration::from_millis(self.cfg.utc_ms_at_zero))
        } else {
            syncookie::counter(now)
        }
    }

    /// The TSval of a cookie SYN-ACK (Linux's `cookie_init_timestamp` plus
    /// `ts_off`, as `tcp_make_synack` adds it). With fleet keys the options go
    /// in the TSval itself: `ts_off` holds this server's clock base.
    #[inline(always)]
    pub(super) fn cookie_tsval(&self, now: Instant, ts_off: u32, opts: CookieOpts) -> u32 {
        let ts_now = now.as_millis() as u32;
        let (wscale, sack, ecn) = (opts.wscale, opts.sack, opts.ecn);
        if self.secrets.fleet {
            syncookie::encode_ts(ts_now.wrapping_add(ts_off), wscale, sack, ecn)
        } else {
            syncookie::encode_ts(ts_now, wscale, sack, ecn).wrapping_add(ts_off)
        }
    }

    /// The connection a valid cookie encodes: the MSS from its ISN, window
    /// scale, SACK and ECN from the TSecr when the client sent timestamps.
    fn cookie_params(
        &mut self,
        now: Instant,
        key: &FlowKey,
        listener: &Listener,
        input: &TcpInput<'_>,
        c: &Counters,
    ) -> Option<ChildParams<'static>> {
        // A copy of plain data, not an Arc clone (an atomic RMW) per segment.
        let s = *self.sysctls;
        let seg = &input.seg;
        // tcp_synq_no_recent_overflow: no cookie sent lately, none can be
        // valid; unless a server sharing our keys sent it.
        if s.tcp_syncookies == 0 || (!self.secrets.fleet && listener.synq_no_recent_overflow(now)) {
            return None;
        }
        let client_isn = seg.seq_number().wrapping_sub(1);
        let cookie = seg.ack_number().wrapping_sub(1);
        let counter = self.cookie_counter(now);
        let mut checked = syncookie::check(&self.secrets.syncookie, key, client_isn, cookie, counter);
        if checked.is_err() && self.secrets.fleet {
            // The server that minted it may be a little ahead, already in
            // the next minute: NTP keeps fleet clocks well within this.
            let ahead = self.cookie_counter(now + FLEET_CLOCK_SKEW);
            if ahead != counter {
                checked = syncookie::check(&self.secrets.syncookie, key, client_isn, cookie, ahead);
            }
        }
        let Ok(mss) = checked else {
            c.inc(Counter::SyncookiesFailed);
            return None;
        };
        c.inc(Counter::SyncookiesRecv);
        let (mut wscale, mut sack, mut ecn, mut ts) = (None, false, false, None);
        if let Some((tsval, tsecr)) = tcp_options::timestamps(seg.options()) {
            let ts_off = self.ts_offs.get(key);
            let bits = if self.secrets.fleet { tsecr } else { tsecr.wrapping_sub(ts_off) };
            let o = syncookie::decode_ts(bits, &s)?;
            wscale = o.wscale;
            sack = o.sack;
            ecn = o.ecn;
            ts = Some((tsval, ts_off));
        }
        Some(ChildParams {
            origin: Origin::Cookie,
            iss: cookie,
            irs: client_isn,
            snd_wscale: wscale,
            rcv_wscale: self.cfg.rcv_wscale,
            sack,
            ecn,
            ts,
            syn_at: now,
            peer_mss: mss,
            peer_window: u32::from(seg.window_len()) << wscale.unwrap_or(0),
            initial_data: &[],
            rtt_sample: None,
        })
    }
}

/// The TSval offsets of an engine: UTC-based with fleet keys (see
/// [`isn::TsOffCache::with_base`]).
pub(super) fn ts_off_cache(secrets: &Secrets, cfg: &TcpConfig) -> isn::TsOffCache {
    let base = if secrets.fleet { cfg.utc_ms_at_zero as u32 } else { 0 };
    isn::TsOffCache::with_base(secrets.ts_off, base)
}
