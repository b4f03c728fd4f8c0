//! Neighbour discovery for our IPv6 addresses, as a Linux host that does
//! not forward answers it (`ndisc_rcv`, `ndisc_recv_ns`, `ndisc_recv_na`,
//! `ndisc_send_na`). Router solicitations and advertisements are counted
//! and ignored: our addresses are configured, not autoconfigured.

use super::{write_eth, Host};
use crate::engine::time::Instant;
use crate::engine::tx::{TxFrame, TxSink};
use crate::stats::Counter;
use crate::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmpv6::Icmpv6Packet;
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, NextHeader};
use crate::wire::ndp::{self, NaFlags, NdiscRepr};
use std::net::Ipv6Addr;

impl Host {
    pub(super) fn ndisc(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv6Packet<&[u8]>, icmp: &Icmpv6Packet<&[u8]>, tx: &mut impl TxSink) {
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let repr = match NdiscRepr::parse(icmp, ip.hop_limit(), &src, &dst) {
            Ok(r) => r,
            Err(_) => {
                self.counters.inc(Counter::Icmp6NdiscInvalid);
                return;
            }
        };
        match repr {
            NdiscRepr::NeighborSolicit { target, source_lladdr, .. } => self.ndisc_recv_ns(now, eth, &src, &dst, target, source_lladdr, tx),
            NdiscRepr::NeighborAdvert { flags, target, target_lladdr } => {
                // ndisc_recv_na: our own address advertised by someone else is
                // only logged; others update an entry we have (a new one is
                // created only with accept_untracked_na, off by default), the
                // link-layer address replaced when the override flag says so.
                if self.v6.is_ours(&target) {
                    return;
                }
                if let (Some(mac), true) = (target_lladdr, flags.override_) {
                    self.neighbors6.update_existing(now, target, mac);
                }
            }
            NdiscRepr::RouterSolicit { .. } | NdiscRepr::RouterAdvert { .. } => {}
        }
    }

    /// `ndisc_recv_ns` for an address of ours.
    #[allow(clippy::too_many_arguments)]
    fn ndisc_recv_ns(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        target: Ipv6Addr,
        source_lladdr: Option<EthernetAddress>,
        tx: &mut impl TxSink,
    ) {
        if !self.v6.is_ours(&target) {
            return;
        }
        if src.is_unspecified() {
            // Someone's duplicate address detection for our address: defend it
            // to all nodes, unsolicited, overriding, with our link-layer address.
            let flags = NaFlags { router: false, solicited: false, override_: true };
            return self.ndisc_send_na(ipv6::LINK_LOCAL_ALL_NODES, ipv6::multicast_mac(&ipv6::LINK_LOCAL_ALL_NODES), target, flags, true, tx);
        }
        let inc = dst.is_multicast();
        // __neigh_lookup(..., create = !inc || lladdr): a multicast
        // solicitation without the sender's link-layer address creates no
        // entry, and without an entry there is no answer. The answer goes to
        // the entry's address.
        let known = self.neighbors6.lookup(now, *src);
        let mac = match (source_lladdr, known) {
            (Some(mac), _) => {
                self.neighbors6.learn(now, *src, mac);
                mac
            }
            (None, Some(mac)) => mac,
            (None, None) if inc => return,
            (None, None) => eth.src_addr(),
        };
        // ndisc_send_na(dev, saddr, target, router 0, solicited 1,
        // override = ifp && inc, inc_opt = inc).
        let flags = NaFlags { router: false, solicited: true, override_: inc };
        self.ndisc_send_na(*src, mac, target, flags, inc, tx);
    }

    /// `ndisc_send_na` from `target` (ours) to `to`: hop limit 255, traffic
    /// class 0, the target link-layer address option when `with_lladdr`.
    fn ndisc_send_na(&mut self, to: Ipv6Addr, to_mac: EthernetAddress, target: Ipv6Addr, flags: NaFlags, with_lladdr: bool, tx: &mut impl TxSink) {
        let mac = self.cfg.mac;
        let na = NdiscRepr::NeighborAdvert { flags, target, target_lladdr: with_lladdr.then_some(mac) };
        let icmp_len = na.buffer_len();
        let repr = Ipv6Repr {
            src_addr: target,
            dst_addr: to,
            next_header: NextHeader::Icmpv6,
            payload_len: icmp_len as u16,
            hop_limit: ndp::HOP_LIMIT,
            traffic_class: 0,
            flow_label: 0,
        };
        let frame_len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp_len;
        let sent = tx.emit(frame_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, to_mac, mac, EtherType::Ipv6);
            let (l3, l4) = rest.split_at_mut(ipv6::HEADER_LEN);
            let _ = repr.emit(l3);
            let _ = na.emit(l4, &target, &to);
            TxFrame::done(frame_len)
        });
        if sent {
            self.count_sent6(Counter::Icmp6OutNeighborAdvertisements);
        }
    }
}
