//! ARP for our addresses (RFC 826, as Linux's `arp_process` answers).

use super::{write_eth, Host};
use crate::engine::time::Instant;
use crate::engine::tx::{TxFrame, TxSink};
use crate::stats::Counter;
use crate::wire::arp::{ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, EtherType, EthernetFrame};

impl Host {
    // Off the TCP receive path's inlined code (the SYN path stays small).
    #[inline(never)]
    pub(super) fn arp(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, tx: &mut impl TxSink) {
        let c = &*self.counters;
        let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
            c.inc(Counter::ArpIgnored);
            return;
        };
        let sender_ip = arp.sender_protocol_addr();
        let sender_mac = arp.sender_hardware_addr();
        // Someone claims one of our addresses (a conflict, or a gratuitous ARP
        // for it): Linux's arp_process neither answers (ip_route_input rejects
        // a local source) nor should we learn our own address as a neighbour.
        if self.is_ours(sender_ip) {
            c.inc(Counter::ArpIgnored);
            return;
        }
        // RFC 826: update the sender's entry whether or not the request is for us.
        if !sender_ip.is_unspecified() {
            self.neighbors.learn(now, sender_ip, sender_mac);
        }
        let request = ArpRepr::parse(&arp);
        let reply = self.cfg.addrs.iter().find_map(|ip| request.reply_to(self.cfg.mac, *ip));
        let Some(reply) = reply else {
            c.inc(Counter::ArpIgnored);
            return;
        };
        let mac = self.cfg.mac;
        let sent = tx.emit(ethernet::HEADER_LEN + reply.buffer_len(), |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, sender_mac, mac, EtherType::Arp);
            let len = reply.emit(rest).unwrap_or(0);
            TxFrame::done(ethernet::HEADER_LEN + len)
        });
        if sent {
            c.inc(Counter::ArpReplies);
            c.inc(Counter::TxFrames);
        }
    }
}
