//! IPv6 host behaviour, deterministically: frames in, frames out, on a
//! virtual clock, no sockets. Expected answers are the Linux functions'
//! named in `ipv6.rs` and `ndisc.rs`. Every frame we send is re-parsed and
//! its checksums verified (`check_sent`).

use crate::engine::host::*;
use crate::testkit::check::*;
use crate::testkit::frame::{OTHER_MAC, OUR_IP, OUR_MAC, PEER_MAC};
use crate::testkit::rig::VecSink;
use crate::wire::icmpv6::{Icmpv6Packet, Icmpv6ParamProblem, Icmpv6Repr, Icmpv6Type, Icmpv6Unreachable};
use crate::wire::ipv6::{self, Ipv6Repr, NextHeader};
use crate::wire::ndp::{NaFlags, NdiscRepr};
use crate::wire::tcp::TcpRepr;
use proptest::prelude::*;
use std::time::Duration;

const OUR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const OUR6_2: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x11);
const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3);

struct Rig {
    host: Host,
    tx: VecSink,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP], utc_ms_at_zero: 0 };
        let host = Host::new(cfg, Arc::new(Counters::new())).with_ipv6(vec![OUR6, OUR6_2]);
        Rig { host, tx: VecSink::default(), now: Instant::from_secs(1000) }
    }

    fn rx(&mut self, frame: &[u8]) -> Vec<Sent> {
        self.host.rx(self.now, frame, RxMeta::default(), &mut NoSockets, &mut self.tx);
        self.tx.take().iter().map(|f| check_sent(f).unwrap_or_else(|e| panic!("we sent a bad frame ({e:?}): {f:02x?}"))).collect()
    }

    fn count(&self, c: Counter) -> u64 {
        self.host.counters().get(c)
    }

    fn counters(&self) -> Vec<(Counter, u64)> {
        Counter::ALL.iter().map(|c| (*c, self.count(*c))).filter(|(_, n)| *n != 0).collect()
    }
}

fn ip6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hop_limit: u8) -> Ipv6Repr {
    Ipv6Repr { src_addr: src, dst_addr: dst, next_header: nh.into(), payload_len: 0, hop_limit, traffic_class: 0, flow_label: 0 }
}

/// An Ethernet frame from the peer carrying `ip` (its payload length set) and `payload`.
fn frame6(eth_dst: EthernetAddress, ip: Ipv6Repr, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN];
    ethernet::emit_header(&mut f, eth_dst, PEER_MAC, EtherType::Ipv6).unwrap();
    Ipv6Repr { payload_len: payload.len() as u16, ..ip }.emit(&mut f[ethernet::HEADER_LEN..]).unwrap();
    f.extend_from_slice(payload);
    f
}

fn icmp6_bytes(r: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b, src, dst).unwrap();
    b
}

fn ndisc_bytes(r: &NdiscRepr, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b, src, dst).unwrap();
    b
}

/// A neighbour solicitation for `target` from `src` to `dst`.
fn ns_frame(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, sllao: Option<EthernetAddress>) -> Vec<u8> {
    let ns = NdiscRepr::NeighborSolicit { target, source_lladdr: sllao, nonce: None };
    let eth_dst = if dst.is_multicast() { ipv6::multicast_mac(&dst) } else { OUR_MAC };
    frame6(eth_dst, ip6(src, dst, 58, 255), &ndisc_bytes(&ns, &src, &dst))
}

fn udp6_bytes(src: &Ipv6Addr, dst: &Ipv6Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b[0..2].copy_from_slice(&40000u16.to_be_bytes());
    b[2..4].copy_from_slice(&dst_port.to_be_bytes());
    b[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    b.extend_from_slice(payload);
    ipv6::fill_upper_layer(src, dst, NextHeader::Udp, &mut b, 6).unwrap();
    b
}

fn tcp6_bytes(src: &Ipv6Addr, dst: &Ipv6Addr, flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    TcpRepr { src_port: 40000, dst_port: 80, seq_number: seq, ack_number: ack, flags, window_len: 64800 }.emit_header(&mut b, 0).unwrap();
    b.extend_from_slice(payload);
    ipv6::fill_upper_layer(src, dst, NextHeader::Tcp, &mut b, 16).unwrap();
    b
}

fn one6(mut sent: Vec<Sent>) -> (EthernetAddress, Ipv6Repr, Vec<u8>) {
    assert_eq!(sent.len(), 1, "expected one frame, got {sent:?}");
    match sent.remove(0) {
        Sent::Ipv6 { eth_dst, ip, l4 } => (eth_dst, ip, l4),
        other => panic!("expected IPv6, got {other:?}"),
    }
}

fn na_of(l4: &[u8], ip: &Ipv6Repr) -> NdiscRepr {
    NdiscRepr::parse(&Icmpv6Packet::new_checked(l4).unwrap(), ip.hop_limit, &ip.src_addr, &ip.dst_addr).unwrap()
}

// ------------------------------------------------------- neighbour discovery

#[test]
fn multicast_solicitation_gets_a_solicited_overriding_advertisement() {
    let mut rig = Rig::new();
    let sn = ipv6::solicited_node(&OUR6);
    let (eth_dst, ip, l4) = one6(rig.rx(&ns_frame(PEER6, sn, OUR6, Some(PEER_MAC))));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit, ip.traffic_class, ip.next_header), (OUR6, PEER6, 255, 0, NextHeader::Icmpv6));
    assert_eq!(
        na_of(&l4, &ip),
        NdiscRepr::NeighborAdvert {
            flags: NaFlags { router: false, solicited: true, override_: true },
            target: OUR6,
            target_lladdr: Some(OUR_MAC)
        }
    );
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), Some(PEER_MAC));
    assert_eq!(
        rig.counters(),
        vec![
            (Counter::RxFrames, 1),
            (Counter::TxFrames, 1),
            (Counter::Ip6InReceives, 1),
            (Counter::Ip6InDelivers, 1),
            (Counter::Ip6InMcastPkts, 1),
            (Counter::Ip6OutRequests, 1),
            (Counter::Icmp6InMsgs, 1),
            (Counter::Icmp6InNeighborSolicits, 1),
            (Counter::Icmp6OutMsgs, 1),
            (Counter::Icmp6OutNeighborAdvertisements, 1),
        ]
    );
}

#[test]
fn unicast_solicitation_gets_no_override_and_no_lladdr() {
    // ndisc_send_na(..., solicited 1, override = inc = 0, inc_opt = 0):
    // a reachability probe.
    let mut rig = Rig::new();
    let (eth_dst, ip, l4) = one6(rig.rx(&ns_frame(PEER6, OUR6_2, OUR6_2, None)));
    assert_eq!((eth_dst, ip.src_addr, ip.dst_addr), (PEER_MAC, OUR6_2, PEER6));
    assert_eq!(
        na_of(&l4, &ip),
        NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: true, override_: false }, target: OUR6_2, target_lladdr: None }
    );
    // With the sender's address, the answer goes there and it is learned.
    let (eth_dst, _, _) = one6(rig.rx(&ns_frame(PEER6, OUR6, OUR6, Some(OTHER_MAC))));
    assert_eq!(eth_dst, OTHER_MAC);
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), Some(OTHER_MAC));
}

#[test]
fn multicast_solicitation_without_source_lladdr_is_answered_only_to_a_known_neighbour() {
    let mut rig = Rig::new();
    let sn = ipv6::solicited_node(&OUR6);
    assert!(rig.rx(&ns_frame(PEER6, sn, OUR6, None)).is_empty());
    assert_eq!(rig.count(Counter::Icmp6InNeighborSolicits), 1);
    assert_eq!(rig.count(Counter::Icmp6OutMsgs), 0);
    // Once known (here from its first solicitation), Linux answers it at the
    // address it has for it (tests/oracle/ipv6_host.sh).
    one6(rig.rx(&ns_frame(PEER6, sn, OUR6, Some(OTHER_MAC))));
    let (eth_dst, ip, l4) = one6(rig.rx(&ns_frame(PEER6, sn, OUR6, None)));
    assert_eq!(eth_dst, OTHER_MAC);
    assert_eq!(
        na_of(&l4, &ip),
        NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: true, override_: true }, target: OUR6, target_lladdr: Some(OUR_MAC) }
    );
}

#[test]
fn duplicate_address_detection_for_our_address_is_defended_to_all_nodes() {
    let mut rig = Rig::new();
    let sn = ipv6::solicited_node(&OUR6);
    let (eth_dst, ip, l4) = one6(rig.rx(&ns_frame(Ipv6Addr::UNSPECIFIED, sn, OUR6, None)));
    assert_eq!(eth_dst, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit), (OUR6, ipv6::LINK_LOCAL_ALL_NODES, 255));
    assert_eq!(
        na_of(&l4, &ip),
        NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: false, override_: true }, target: OUR6, target_lladdr: Some(OUR_MAC) }
    );
    // DAD not to the solicited-node group, or with a link-layer address: refused.
    assert!(rig.rx(&ns_frame(Ipv6Addr::UNSPECIFIED, OUR6, OUR6, None)).is_empty());
    assert!(rig.rx(&ns_frame(Ipv6Addr::UNSPECIFIED, sn, OUR6, Some(PEER_MAC))).is_empty());
    assert_eq!(rig.count(Counter::Icmp6NdiscInvalid), 2);
    assert!(rig.host.neighbors6().is_empty());
}

#[test]
fn solicitations_for_others_or_invalid_are_dropped() {
    let mut rig = Rig::new();
    // Someone else's address, sent to our group (the low 24 bits collide).
    let twin = Ipv6Addr::new(0x2001, 2, 0, 9, 0, 0, 0, 1);
    assert!(rig.rx(&ns_frame(PEER6, ipv6::solicited_node(&OUR6), twin, Some(PEER_MAC))).is_empty());
    // Hop limit 254: not from the link (ndisc_rcv).
    let mut f = ns_frame(PEER6, ipv6::solicited_node(&OUR6), OUR6, Some(PEER_MAC));
    f[ethernet::HEADER_LEN + 7] = 254;
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Icmp6NdiscInvalid), 1);
    // A bad checksum.
    let mut f = ns_frame(PEER6, ipv6::solicited_node(&OUR6), OUR6, Some(PEER_MAC));
    let n = f.len();
    f[n - 1] ^= 1;
    assert!(rig.rx(&f).is_empty());
    assert_eq!((rig.count(Counter::Icmp6InCsumErrors), rig.count(Counter::Icmp6InErrors)), (1, 1));
    // Another host's solicited-node group: its MAC is not ours.
    assert!(rig.rx(&ns_frame(PEER6, ipv6::solicited_node(&OTHER6), OTHER6, Some(PEER_MAC))).is_empty());
    assert_eq!(rig.count(Counter::RxOtherHost), 1);
}

#[test]
fn advertisements_update_known_neighbours_only() {
    let mut rig = Rig::new();
    let all = ipv6::LINK_LOCAL_ALL_NODES;
    let na = |override_: bool, mac: EthernetAddress| {
        let r = NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: false, override_ }, target: PEER6, target_lladdr: Some(mac) };
        frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 58, 255), &ndisc_bytes(&r, &PEER6, &all))
    };
    // Unknown neighbour: nothing created (accept_untracked_na 0).
    assert!(rig.rx(&na(true, OTHER_MAC)).is_empty());
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), None);
    assert_eq!(rig.count(Counter::Icmp6InNeighborAdvertisements), 1);
    // Known from its solicitation: without override the address stays, with it it changes.
    rig.rx(&ns_frame(PEER6, ipv6::solicited_node(&OUR6), OUR6, Some(PEER_MAC)));
    assert!(rig.rx(&na(false, OTHER_MAC)).is_empty());
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), Some(PEER_MAC));
    assert!(rig.rx(&na(true, OTHER_MAC)).is_empty());
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), Some(OTHER_MAC));
    // Someone advertising our own address changes nothing.
    let r = NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: false, override_: true }, target: OUR6, target_lladdr: Some(OTHER_MAC) };
    assert!(rig.rx(&frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 58, 255), &ndisc_bytes(&r, &PEER6, &all))).is_empty());
    assert_eq!(rig.host.neighbors6().len(), 1);
}

#[test]
fn router_messages_are_counted_and_ignored() {
    let mut rig = Rig::new();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let ra = NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_time: 0,
        source_lladdr: Some(PEER_MAC),
        mtu: None,
    };
    let all = ipv6::LINK_LOCAL_ALL_NODES;
    let f = frame6(ipv6::multicast_mac(&all), ip6(ll, all, 58, 255), &ndisc_bytes(&ra, &ll, &all));
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Icmp6InRouterAdvertisements), 1);
    assert_eq!(rig.count(Counter::Icmp6NdiscInvalid), 0);
}

// ------------------------------------------------------------------ echo

#[test]
fn echo_request_is_answered_with_its_data_and_traffic_class() {
    let mut rig = Rig::new();
    let req = icmp6_bytes(&Icmpv6Repr::EchoRequest { ident: 7, seq_no: 3, data: b"abcdefgh" }, &PEER6, &OUR6);
    let ip = Ipv6Repr { traffic_class: 0xb9, flow_label: 0x777, ..ip6(PEER6, OUR6, 58, 9) };
    let (eth_dst, rip, l4) = one6(rig.rx(&frame6(OUR_MAC, ip, &req)));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!((rip.src_addr, rip.dst_addr, rip.hop_limit, rip.traffic_class, rip.flow_label), (OUR6, PEER6, 64, 0xb9, 0));
    let p = Icmpv6Packet::new_checked(&l4[..]).unwrap();
    assert_eq!(Icmpv6Repr::parse(&p), Some(Icmpv6Repr::EchoReply { ident: 7, seq_no: 3, data: b"abcdefgh" }));
    assert_eq!((rig.count(Counter::Icmp6InEchos), rig.count(Counter::Icmp6OutEchoReplies)), (1, 1));
    assert_eq!(rig.host.neighbors6().lookup(rig.now, PEER6), Some(PEER_MAC));
}

#[test]
fn echo_to_all_nodes_is_answered_from_our_address() {
    let mut rig = Rig::new();
    let all = ipv6::LINK_LOCAL_ALL_NODES;
    let req = icmp6_bytes(&Icmpv6Repr::EchoRequest { ident: 1, seq_no: 1, data: b"x" }, &PEER6, &all);
    let (_, rip, l4) = one6(rig.rx(&frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 58, 1), &req)));
    // The closest of our addresses to the peer (2001:2::/64 over 2001:2:0:1::/64).
    assert_eq!(rip.src_addr, OUR6);
    assert!(Icmpv6Packet::new_checked(&l4[..]).unwrap().verify_checksum(&OUR6, &PEER6));
}

// ---------------------------------------------------------- closed ports

#[test]
fn udp_to_a_closed_port_gets_port_unreachable_quoting_it() {
    let mut rig = Rig::new();
    let dgram = udp6_bytes(&PEER6, &OUR6, 53, b"query");
    let f = frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &dgram);
    let (_, ip, l4) = one6(rig.rx(&f));
    assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit, ip.traffic_class), (OUR6, PEER6, 64, 0));
    let p = Icmpv6Packet::new_checked(&l4[..]).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&p),
        Some(Icmpv6Repr::DstUnreachable { code: Icmpv6Unreachable::PortUnreachable, quoted: &f[ethernet::HEADER_LEN..] })
    );
    assert_eq!(rig.count(Counter::Udp6NoPorts), 1);
    assert_eq!(rig.count(Counter::Icmp6OutDestUnreachs), 1);
    // A zero checksum is refused over IPv6.
    let mut z = dgram.clone();
    z[6..8].copy_from_slice(&[0, 0]);
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &z)).is_empty());
    let mut bad = dgram;
    bad[8] ^= 0xff;
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &bad)).is_empty());
    assert_eq!((rig.count(Counter::Udp6InCsumErrors), rig.count(Counter::Udp6InErrors)), (2, 2));
}

#[test]
fn icmpv6_errors_are_rate_limited_per_peer_at_100_ms() {
    let mut rig = Rig::new();
    let f = frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &udp6_bytes(&PEER6, &OUR6, 9, b""));
    let answered = (0..20).filter(|_| !rig.rx(&f).is_empty()).count();
    assert_eq!(answered, 6);
    assert_eq!(rig.count(Counter::Icmp6OutRateLimitHost), 14);
    rig.now += Duration::from_millis(99);
    assert!(rig.rx(&f).is_empty());
    rig.now += Duration::from_millis(1);
    assert_eq!(rig.rx(&f).len(), 1);
    // Echo replies are not limited.
    let req = icmp6_bytes(&Icmpv6Repr::EchoRequest { ident: 1, seq_no: 1, data: b"" }, &PEER6, &OUR6);
    let ping = frame6(OUR_MAC, ip6(PEER6, OUR6, 58, 64), &req);
    assert_eq!((0..20).filter(|_| !rig.rx(&ping).is_empty()).count(), 20);
}

#[test]
fn tcp_to_a_closed_port_gets_reset_as_tcp_v6_send_reset() {
    let mut rig = Rig::new();
    // SYN with 3 bytes of data: RST|ACK acknowledging seq + 1 + 3.
    let syn = tcp6_bytes(&PEER6, &OUR6, TcpFlags::SYN, 1000, 0, b"abc");
    let ip = Ipv6Repr { traffic_class: 0x2b, ..ip6(PEER6, OUR6, 6, 64) };
    let (eth_dst, rip, l4) = one6(rig.rx(&frame6(OUR_MAC, ip, &syn)));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!((rip.src_addr, rip.dst_addr, rip.hop_limit, rip.traffic_class), (OUR6, PEER6, 64, 0x28));
    let seg = TcpSegment::new_checked(&l4[..]).unwrap();
    assert_eq!(
        TcpRepr::parse(&seg),
        TcpRepr { src_port: 80, dst_port: 40000, seq_number: 0, ack_number: 1004, flags: TcpFlags::RST | TcpFlags::ACK, window_len: 0 }
    );
    assert_eq!(seg.header_len(), 20);
    // An ACK: RST with its ack as seq.
    let ack = tcp6_bytes(&PEER6, &OUR6, TcpFlags::ACK, 1000, 0xdead_beef, b"");
    let (_, _, l4) = one6(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 6, 64), &ack)));
    let seg = TcpSegment::new_checked(&l4[..]).unwrap();
    assert_eq!((seg.flags(), seg.seq_number(), seg.ack_number()), (TcpFlags::RST, 0xdead_beef, 0));
    // Never an RST to an RST, nor to a bad checksum.
    let rst = tcp6_bytes(&PEER6, &OUR6, TcpFlags::RST, 1000, 0, b"");
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 6, 64), &rst)).is_empty());
    let mut bad = tcp6_bytes(&PEER6, &OUR6, TcpFlags::SYN, 1000, 0, b"");
    bad[0] ^= 1;
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 6, 64), &bad)).is_empty());
    assert_eq!(rig.count(Counter::TcpInSegs), 4);
    assert_eq!(rig.count(Counter::TcpOutRsts), 2);
    assert_eq!(rig.count(Counter::TcpSynNoListener), 1);
    assert_eq!((rig.count(Counter::TcpInCsumErrors), rig.count(Counter::TcpInErrs)), (1, 1));
}

// ------------------------------------------------- header and extensions

#[test]
fn unknown_next_header_gets_parameter_problem_at_its_byte() {
    let mut rig = Rig::new();
    let f = frame6(OUR_MAC, ip6(PEER6, OUR6, 132, 64), &[0; 12]);
    let (_, _, l4) = one6(rig.rx(&f));
    let p = Icmpv6Packet::new_checked(&l4[..]).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&p),
        Some(Icmpv6Repr::ParamProblem { code: Icmpv6ParamProblem::UnrecognizedNextHeader, pointer: 6, quoted: &f[ethernet::HEADER_LEN..] })
    );
    assert_eq!((rig.count(Counter::Ip6InUnknownProtos), rig.count(Counter::Icmp6OutParmProblems)), (1, 1));
    // Hop-by-hop after a destination options header: the same, at the
    // destination options header's next-header byte.
    let f = frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &[0, 0, 1, 4, 0, 0, 0, 0, 59, 0, 1, 4, 0, 0, 0, 0]);
    let (_, _, l4) = one6(rig.rx(&f));
    assert_eq!(Icmpv6Packet::new_checked(&l4[..]).unwrap().word(), 40);
}

#[test]
fn unknown_options_follow_their_type_bits_even_to_multicast() {
    let mut rig = Rig::new();
    let all = ipv6::LINK_LOCAL_ALL_NODES;
    let opts = |kind: u8| vec![59, 0, 1, 0, kind, 2, 0, 0];
    // 10: reported even to a multicast destination, from our address.
    let f = frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 60, 64), &opts(0x9e));
    let (_, ip, l4) = one6(rig.rx(&f));
    assert_eq!(ip.src_addr, OUR6);
    let p = Icmpv6Packet::new_checked(&l4[..]).unwrap();
    assert_eq!((p.msg_type(), p.msg_code(), p.word()), (Icmpv6Type::ParamProblem, 2, 44));
    // 11: not to multicast; to our unicast address, yes.
    assert!(rig.rx(&frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 60, 64), &opts(0xde))).is_empty());
    assert_eq!(one6(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &opts(0xde)))).1.dst_addr, PEER6);
    // 01: dropped silently; 00: skipped (no next header: delivered to nobody).
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &opts(0x5e))).is_empty());
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &opts(0x1e))).is_empty());
    assert_eq!(rig.count(Counter::Ip6InHdrErrors), 4);
    assert_eq!(rig.count(Counter::Ip6InDelivers), 1);
}

#[test]
fn never_an_error_about_an_icmpv6_error() {
    let mut rig = Rig::new();
    // A destination unreachable behind an option that asks for a report.
    let err = icmp6_bytes(&Icmpv6Repr::DstUnreachable { code: Icmpv6Unreachable::NoRoute, quoted: &[0; 8] }, &PEER6, &OUR6);
    let mut rest = vec![58, 0, 1, 0, 0x9e, 2, 0, 0];
    rest.extend_from_slice(&err);
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &rest)).is_empty());
    assert_eq!(rig.count(Counter::Ip6InHdrErrors), 1);
    // An echo request behind it is eligible.
    let echo = icmp6_bytes(&Icmpv6Repr::EchoRequest { ident: 1, seq_no: 1, data: b"" }, &PEER6, &OUR6);
    rest.truncate(8);
    rest.extend_from_slice(&echo);
    assert_eq!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 60, 64), &rest)).len(), 1);
}

#[test]
fn header_checks_and_drops() {
    let mut rig = Rig::new();
    let udp = udp6_bytes(&PEER6, &OUR6, 9, b"");
    // Not ours.
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OTHER6, 17, 64), &udp)).is_empty());
    assert_eq!(rig.count(Counter::Ip6InAddrErrors), 1);
    // Multicast or loopback source, interface-local multicast destination.
    let ff01: Ipv6Addr = "ff01::1".parse().unwrap();
    assert!(rig.rx(&frame6(OUR_MAC, ip6(ff01, OUR6, 17, 64), &udp)).is_empty());
    assert!(rig.rx(&frame6(OUR_MAC, ip6(Ipv6Addr::LOCALHOST, OUR6, 17, 64), &udp)).is_empty());
    assert!(rig.rx(&frame6(ipv6::multicast_mac(&ff01), ip6(PEER6, ff01, 17, 64), &udp)).is_empty());
    assert_eq!(rig.count(Counter::Ip6InHdrErrors), 3);
    // A payload length past the frame; a bad version.
    let mut f = frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &udp);
    f[ethernet::HEADER_LEN + 5] += 1;
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Ip6InTruncatedPkts), 1);
    f[ethernet::HEADER_LEN] = 0x40;
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Ip6InHdrErrors), 4);
    // A fragment: counted, dropped.
    let mut frag = vec![17, 0, 0, 1, 0, 0, 0, 5];
    frag.extend_from_slice(&[0; 16]);
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 44, 64), &frag)).is_empty());
    assert_eq!(rig.count(Counter::Ip6ReasmFails), 1);
    // Ethernet padding is not payload: the datagram still checks.
    let mut padded = frame6(OUR_MAC, ip6(PEER6, OUR6, 17, 64), &udp);
    padded.extend_from_slice(&[0; 6]);
    assert_eq!(rig.rx(&padded).len(), 1);
    assert_eq!(rig.count(Counter::Ip6InReceives), 8);
}

#[test]
fn without_ipv6_addresses_ipv6_is_an_unknown_ethertype() {
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP], utc_ms_at_zero: 0 };
    let mut host = Host::new(cfg, Arc::new(Counters::new()));
    let mut tx = VecSink::default();
    let f = ns_frame(PEER6, OUR6, OUR6, Some(PEER_MAC));
    host.rx(Instant::from_secs(1), &f, RxMeta::default(), &mut NoSockets, &mut tx);
    assert!(tx.take().is_empty());
    assert_eq!(host.counters().get(Counter::RxUnknownEthertype), 1);
    assert!(host.ipv6_identity().multicast_macs().is_empty());
}

#[test]
fn our_groups_and_their_macs() {
    let rig = Rig::new();
    let id = rig.host.ipv6_identity();
    assert_eq!(id.groups(), &[ipv6::LINK_LOCAL_ALL_NODES, ipv6::solicited_node(&OUR6), ipv6::solicited_node(&OUR6_2)]);
    assert_eq!(
        id.multicast_macs(),
        &[
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
            EthernetAddress([0x33, 0x33, 0xff, 0, 0, 1]),
            EthernetAddress([0x33, 0x33, 0xff, 0, 0, 0x11])
        ]
    );
}

proptest! {
    #[test]
    fn arbitrary_ipv6_payloads_never_panic_and_answers_check(
        nh in prop_oneof![Just(0u8), Just(6), Just(17), Just(43), Just(44), Just(58), Just(60), any::<u8>()],
        hop in prop_oneof![Just(255u8), any::<u8>()],
        to in 0usize..4,
        payload in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut rig = Rig::new();
        let dst = [OUR6, ipv6::solicited_node(&OUR6), ipv6::LINK_LOCAL_ALL_NODES, OTHER6][to];
        let mac = if dst.is_multicast() { ipv6::multicast_mac(&dst) } else { OUR_MAC };
        let mut payload = payload;
        // Give ICMPv6 a valid checksum half the time, so it gets past icmpv6_rcv.
        if nh == 58 && payload.len() >= 4 && payload[0] & 1 == 0 {
            ipv6::fill_upper_layer(&PEER6, &dst, NextHeader::Icmpv6, &mut payload, 2).unwrap();
        }
        let sent = rig.rx(&frame6(mac, ip6(PEER6, dst, nh, hop), &payload));
        prop_assert!(sent.len() <= 1);
    }
}

#[test]
fn hop_by_hop_first_is_parsed_before_the_address_check() {
    let mut rig = Rig::new();
    // A router alert in a hop-by-hop header, then an echo request: answered.
    let echo = icmp6_bytes(&Icmpv6Repr::EchoRequest { ident: 2, seq_no: 2, data: b"" }, &PEER6, &OUR6);
    let mut rest = vec![58, 0, 5, 2, 0, 0, 1, 0];
    rest.extend_from_slice(&echo);
    assert_eq!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OUR6, 0, 64), &rest)).len(), 1);
    // A jumbo payload option in a normal packet: parameter problem at its length.
    let f = frame6(OUR_MAC, ip6(PEER6, OUR6, 0, 64), &[59, 0, 0xc2, 4, 0, 0, 0x10, 0]);
    let (_, _, l4) = one6(rig.rx(&f));
    let p = Icmpv6Packet::new_checked(&l4[..]).unwrap();
    assert_eq!((p.msg_type(), p.msg_code(), p.word()), (Icmpv6Type::ParamProblem, 0, 44));
    // A bad hop-by-hop header counts as a header error even for someone else's address.
    assert!(rig.rx(&frame6(OUR_MAC, ip6(PEER6, OTHER6, 0, 64), &[59, 0, 1, 4, 0, 0, 0, 1])).is_empty());
    assert_eq!((rig.count(Counter::Ip6InHdrErrors), rig.count(Counter::Ip6InAddrErrors)), (2, 0));
}

#[test]
fn errors_only_for_frames_to_our_mac() {
    let mut rig = Rig::new();
    // A closed UDP port in a broadcast frame: counted, not answered (icmp6_send: PACKET_HOST only).
    let f = frame6(EthernetAddress::BROADCAST, ip6(PEER6, OUR6, 17, 64), &udp6_bytes(&PEER6, &OUR6, 9, b""));
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Udp6NoPorts), 1);
    // TCP in it: not even counted as a segment (tcp_v6_rcv: PACKET_HOST only).
    let syn = tcp6_bytes(&PEER6, &OUR6, TcpFlags::SYN, 1, 0, b"");
    assert!(rig.rx(&frame6(EthernetAddress::BROADCAST, ip6(PEER6, OUR6, 6, 64), &syn)).is_empty());
    assert_eq!(rig.count(Counter::TcpInSegs), 0);
    // From an unspecified source: nobody to tell.
    let f = frame6(OUR_MAC, ip6(Ipv6Addr::UNSPECIFIED, OUR6, 17, 64), &udp6_bytes(&Ipv6Addr::UNSPECIFIED, &OUR6, 9, b""));
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::Icmp6OutMsgs), 0);
}

#[test]
fn a_solicited_advertisement_to_a_group_is_invalid() {
    let mut rig = Rig::new();
    let all = ipv6::LINK_LOCAL_ALL_NODES;
    let r = NdiscRepr::NeighborAdvert { flags: NaFlags { router: false, solicited: true, override_: true }, target: PEER6, target_lladdr: None };
    assert!(rig.rx(&frame6(ipv6::multicast_mac(&all), ip6(PEER6, all, 58, 255), &ndisc_bytes(&r, &PEER6, &all))).is_empty());
    assert_eq!(rig.count(Counter::Icmp6NdiscInvalid), 1);
}
