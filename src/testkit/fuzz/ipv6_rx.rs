//! Arbitrary IPv6 packets as received frames: `Host::rx` with IPv6
//! addresses must never panic, and whatever it sends must be a frame a peer
//! accepts (lengths and checksums, multicast destinations on their MAC).
//! The first byte picks the Ethernet destination (our MAC, all nodes, our
//! solicited-node group) and whether an ICMPv6 checksum is fixed up so the
//! input gets past `icmpv6_rcv`; the rest is the IPv6 packet.

use crate::engine::host::{Host, HostConfig, NoSockets, RxMeta};
use crate::engine::time::Instant;
use crate::stats::Counters;
use crate::testkit::check::check_sent;
use crate::testkit::frame::{OUR_IP, OUR_MAC, PEER_MAC};
use crate::testkit::rig::VecSink;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::ipv6::{self, NextHeader};
use std::net::Ipv6Addr;
use std::sync::Arc;

/// The corpus packets (fuzz/corpus/ipv6_rx) are addressed to this.
const OUR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);

/// The harness (cargo-fuzz target `ipv6_rx`).
pub fn run(data: &[u8]) {
    let Some((&ctl, packet)) = data.split_first() else {
        return;
    };
    let dst = match ctl & 3 {
        1 => ipv6::multicast_mac(&ipv6::LINK_LOCAL_ALL_NODES),
        2 => ipv6::multicast_mac(&ipv6::solicited_node(&OUR6)),
        _ => OUR_MAC,
    };
    let mut frame = vec![0u8; ethernet::HEADER_LEN];
    ethernet::emit_header(&mut frame, dst, PEER_MAC, EtherType::Ipv6).unwrap();
    frame.extend_from_slice(packet);
    // An ICMPv6 message right after the fixed header, its checksum made right.
    if ctl & 4 != 0 && packet.len() >= 44 && packet[6] == 58 {
        let p = crate::wire::ipv6::Ipv6Packet::new_unchecked(packet);
        let (src, to, end) = (p.src_addr(), p.dst_addr(), p.total_len().min(packet.len()));
        let _ = ipv6::fill_upper_layer(&src, &to, NextHeader::Icmpv6, &mut frame[ethernet::HEADER_LEN + 40..ethernet::HEADER_LEN + end.max(44)], 2);
    }
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP], utc_ms_at_zero: 0 };
    let mut host = Host::new(cfg, Arc::new(Counters::new())).with_ipv6(vec![OUR6]);
    let mut tx = VecSink::default();
    host.rx(Instant::from_secs(1), &frame, RxMeta::default(), &mut NoSockets, &mut tx);
    assert!(tx.frames.len() <= 1);
    for f in &tx.frames {
        if let Err(e) = check_sent(f) {
            panic!("we sent a bad frame ({e:?}): {f:02x?}");
        }
    }
}
