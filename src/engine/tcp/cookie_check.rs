//! Linux's syncookies.c, `cookie_v4_check`: an ACK for a listener that has
//! no request sock may carry a cookie we minted; if so, the connection is
//! rebuilt from the ACK alone.

use super::child::{ChildError, ChildParams};
use super::conn::Origin;
use super::TcpEngine;
use crate::engine::flow::FlowKey;
use crate::engine::host::TcpInput;
use crate::engine::keys::syncookie;
use crate::engine::listen::Listener;
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Counters};
use crate::wire::tcp_options;
use std::sync::Arc;

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
        // tcp_synq_no_recent_overflow: no cookie sent lately, none can be valid.
        if s.tcp_syncookies == 0 || listener.synq_no_recent_overflow(now) {
            return None;
        }
        let client_isn = seg.seq_number().wrapping_sub(1);
        let cookie = seg.ack_number().wrapping_sub(1);
        let Ok(mss) = syncookie::check(&self.secrets.syncookie, key, client_isn, cookie, syncookie::counter(now)) else {
            c.inc(Counter::SyncookiesFailed);
            return None;
        };
        c.inc(Counter::SyncookiesRecv);
        let (mut wscale, mut sack, mut ecn, mut ts) = (None, false, false, None);
        if let Some((tsval, tsecr)) = tcp_options::timestamps(seg.options()) {
            let ts_off = self.ts_offs.get(key);
            let o = syncookie::decode_ts(tsecr.wrapping_sub(ts_off), &s)?;
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
