//! The SYN lane: a plain SYN (`Host::plain_tcp`: IPv4 without options or
//! IPv6 without extension headers, checksums right, SYN alone, no data)
//! found for a listener is decided
//! and its SYN-ACK written in the TCP stage, in one pass: no records
//! between stages, no SYN-ACK queue. What a SYN flood and every connecting
//! client cost is this path. The decisions are `tcp_conn_request`'s,
//! through the same functions as [`conn_request`](super::conn_request);
//! what the lane does not take (TFO, a full accept queue, a SYN backlog
//! without room) is left to the general path, untouched.

use super::conn_request::{request_synack, syn_flood_action, Negotiation};
use super::output::Route;
use super::synack::EchoIp;
use super::{Found, Place, Rx, TcpEngine};
use crate::engine::host::{HostTx, TcpInput};
use crate::engine::listen::ListenView;
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Metric};
use crate::wire::tcp_options::SynOptions;

impl TcpEngine {
    /// Answer the plain SYN `input` (a SYN-ACK from a cookie or for a new
    /// request sock), or drop it, when that is what `tcp_conn_request` does
    /// for it; false (nothing done) leaves it to [`TcpEngine::deliver`].
    #[inline]
    pub fn syn_lane(&mut self, now: Instant, input: &TcpInput<'_>, found: &Found, host: &HostTx<'_>, tx: &mut impl TxSink) -> bool {
        let Place::Listener(hash, at) = found.place else { return false };
        if found.stale {
            return false;
        }
        // Out of `self` while the listener is borrowed from it.
        let Some(view) = self.view.take() else { return false };
        let done = self.syn_lane_in(now, input, found, hash, &view, at, host, tx);
        self.view = Some(view);
        done
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn syn_lane_in(
        &mut self,
        now: Instant,
        input: &TcpInput<'_>,
        found: &Found,
        hash: u32,
        view: &ListenView,
        at: crate::engine::listen::ListenerAt,
        host: &HostTx<'_>,
        tx: &mut impl TxSink,
    ) -> bool {
        let Some(listener) = view.get(at) else { return false };
        let c = host.counters;
        // Checked before syn_flood_action counts anything: a full accept
        // queue is the general path's (ListenOverflows after the cookie count).
        if listener.sk_acceptq_is_full() {
            return false;
        }
        let s = &*self.sysctls;
        let want_cookie = match syn_flood_action(s, listener, c) {
            Some(w) => w,
            None => return true,
        };
        let opts = SynOptions::parse(input.seg.options());
        // TFO (a cookie asked for or offered) takes the general path.
        if !want_cookie && opts.fastopen.is_some() {
            return false;
        }
        let n = Negotiation::new(s, self.cfg.mss_of(&found.key), &opts, input, want_cookie);
        if !want_cookie && s.tcp_syncookies == 0 && !self.backlog_room(s, listener, found.key.peer) {
            return false;
        }
        let ts_off = if n.ts.is_some() { self.ts_offs.get(&found.key) } else { 0 };
        let route = Route { our_mac: host.mac, peer_mac: input.eth_src };
        let rx = Rx { now, key: found.key, hash, input, route };
        let p = if want_cookie {
            self.cookie_synack_of(&rx, listener, &n, ts_off, c, EchoIp::No)
        } else {
            let iss = self.isn.isn(now, &rx.key);
            let synack = request_synack(&rx, listener, &n, iss, ts_off, None, EchoIp::No);
            self.add_request(&rx, listener.clone(), &n, iss, ts_off, synack)
        };
        if self.templates.send(&self.cfg, &p, c, tx) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
            if let Some((listener_id, at)) = p.sample {
                self.sample(listener_id, Metric::SynToSynAck, at);
            }
        }
        true
    }
}
