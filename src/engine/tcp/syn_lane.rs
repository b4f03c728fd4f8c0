//! The SYN lane: a plain SYN (`Host::plain_syn`: no IP options, checksums
//! verified by the NIC, SYN alone, no data) found for a listener that
//! answers it with a cookie is decided and its SYN-ACK written in the TCP
//! stage, in one pass: no records between stages, no SYN-ACK queue. What a
//! SYN flood costs is this path. The decisions are `tcp_conn_request`'s,
//! through the same functions as [`conn_request`](super::conn_request);
//! anything else (a SYN that queues a request, TFO, a full accept queue)
//! is left to the general path, untouched.

use super::conn_request::{cookie_synack, syn_flood_action, Negotiation};
use super::output::Route;
use super::synack::EchoIp;
use super::{Found, Place, Rx, TcpEngine};
use crate::engine::host::{HostTx, TcpInput};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Metric};
use crate::wire::tcp_options::SynOptions;

impl TcpEngine {
    /// Answer the plain SYN `input` with a cookie SYN-ACK, or drop it, when
    /// that is what `tcp_conn_request` does for it; false (nothing done)
    /// leaves it to [`TcpEngine::deliver`].
    #[inline]
    pub fn cookie_syn_lane(&mut self, now: Instant, input: &TcpInput<'_>, found: &Found, host: &HostTx<'_>, tx: &mut impl TxSink) -> bool {
        let Place::Listener(hash, at) = found.place else { return false };
        if found.stale {
            return false;
        }
        let c = host.counters;
        let s = &*self.sysctls;
        let Some(listener) = self.view.as_deref().and_then(|v| v.get(at)) else { return false };
        // Checked before syn_flood_action counts anything: a full accept
        // queue is the general path's (ListenOverflows after the cookie count).
        if listener.sk_acceptq_is_full() {
            return false;
        }
        match syn_flood_action(s, listener, c) {
            Some(true) => {}
            Some(false) => return false,
            None => return true,
        }
        let opts = SynOptions::parse(input.seg.options());
        let n = Negotiation::new(s, self.cfg.mss, &opts, input, true);
        let ts_off = if n.ts.is_some() { self.ts_offs.get(&found.key) } else { 0 };
        let route = Route { our_mac: host.mac, peer_mac: input.eth_src };
        let rx = Rx { now, key: found.key, hash, input, route };
        let p = cookie_synack(&self.secrets.syncookie, &rx, listener, &n, ts_off, c, EchoIp::No);
        if self.templates.send(&self.cfg, &p, tx) {
            c.inc(Counter::TcpOutSegs);
            c.inc(Counter::TxFrames);
            if let Some((listener_id, at)) = p.sample {
                self.sample(listener_id, Metric::SynToSynAck, at);
            }
        }
        true
    }
}
