//! Host behaviour, deterministically: frames in, frames out, on a virtual
//! clock, with no sockets. Expected answers are Linux 6.18's, recorded by
//! tests/oracle/closed_port.sh. Every frame we send is re-parsed with the wire
//! module and its checksums verified (`check_sent`).

use super::*;
use crate::testkit::check::*;
use crate::testkit::frame::*;
use crate::testkit::rig::VecSink;
use crate::wire::arp::ArpOperation;
use crate::wire::ethernet::EthernetAddress;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::tcp::TcpRepr;
use crate::wire::arp::ArpRepr;
use crate::wire::icmp::{self, Icmpv4Packet, Icmpv4Type};
use crate::wire::{arp, ipv4, tcp, udp};
use proptest::prelude::*;
use std::time::Duration;

/// A second peer, with its own ICMP rate-limit bucket.
const PEER2_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 4);

struct Rig {
    host: Host,
    tx: VecSink,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP, OUR_IP2], utc_ms_at_zero: 0 };
        Rig { host: Host::new(cfg, Arc::new(Counters::new())), tx: VecSink::default(), now: Instant::from_secs(1000) }
    }

    /// Feed one frame; return what we sent, each frame checked.
    fn rx(&mut self, frame: &[u8]) -> Vec<Sent> {
        self.rx_meta(frame, RxMeta::default())
    }

    fn rx_meta(&mut self, frame: &[u8], meta: RxMeta) -> Vec<Sent> {
        self.raw_meta(frame, meta)
            .iter()
            .map(|f| check_sent(f).unwrap_or_else(|e| panic!("we sent a bad frame ({e:?}): {f:02x?}")))
            .collect()
    }

    fn raw(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        self.raw_meta(frame, RxMeta::default())
    }

    fn raw_meta(&mut self, frame: &[u8], meta: RxMeta) -> Vec<Vec<u8>> {
        self.host.rx(self.now, frame, meta, &mut NoSockets, &mut self.tx);
        self.tx.take()
    }

    fn count(&self, c: Counter) -> u64 {
        self.host.counters().get(c)
    }

    /// Every non-zero counter, in declaration order.
    fn counters(&self) -> Vec<(Counter, u64)> {
        Counter::ALL.iter().map(|c| (*c, self.count(*c))).filter(|(_, n)| *n != 0).collect()
    }
}

fn one(mut sent: Vec<Sent>) -> Sent {
    assert_eq!(sent.len(), 1, "expected exactly one frame, got {sent:?}");
    sent.remove(0)
}

/// The single IPv4 frame sent: (Ethernet destination, IP header, L4 bytes).
fn one_ipv4(sent: Vec<Sent>) -> (EthernetAddress, Ipv4Repr, Vec<u8>) {
    match one(sent) {
        Sent::Ipv4 { eth_dst, ip, l4, .. } => (eth_dst, ip, l4),
        other => panic!("expected IPv4, got {other:?}"),
    }
}

/// The single TCP segment sent: IP header, fixed TCP fields, header length
/// and payload length.
fn one_tcp(sent: Vec<Sent>) -> (EthernetAddress, Ipv4Repr, TcpRepr, u8, usize) {
    let (eth_dst, ip, l4) = one_ipv4(sent);
    assert_eq!(ip.protocol, IpProtocol::Tcp);
    let seg = TcpSegment::new_unchecked(&l4[..]);
    (eth_dst, ip, TcpRepr::parse(&seg), seg.header_len(), seg.payload_len())
}

/// The single ICMP message sent: IP header and the message.
fn one_icmp(sent: Vec<Sent>) -> (EthernetAddress, Ipv4Repr, Vec<u8>) {
    let (eth_dst, ip, l4) = one_ipv4(sent);
    assert_eq!(ip.protocol, IpProtocol::Icmp);
    (eth_dst, ip, l4)
}

fn arp_frame(dst: EthernetAddress, src: EthernetAddress, repr: &ArpRepr) -> Vec<u8> {
    eth(dst, src, EtherType::Arp, &arp_packet(repr))
}

fn request(sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Request,
        sender_hardware_addr: sha,
        sender_protocol_addr: spa,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: tpa,
    }
}

/// A frame whose IPv4 header was changed by `edit`, checksum recomputed.
fn edit_ip(mut frame: Vec<u8>, edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
    edit(&mut ip);
    ip.fill_checksum();
    frame
}

const L3: usize = ethernet::HEADER_LEN;
const L4: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

// ---------------------------------------------------------------- ARP

#[test]
fn arp_request_for_our_address_gets_one_reply() {
    let mut rig = Rig::new();
    let raw = rig.raw(&arp_request_frame(OUR_IP));
    assert_eq!(raw.len(), 1);
    // 42 bytes: the port pads to the Ethernet minimum, not us.
    assert_eq!(raw[0].len(), ethernet::HEADER_LEN + arp::PACKET_LEN);
    let sent = check_sent(&raw[0]).expect("valid ARP reply");
    assert_eq!(
        sent,
        Sent::Arp {
            eth_dst: PEER_MAC,
            arp: ArpRepr {
                operation: ArpOperation::Reply,
                sender_hardware_addr: OUR_MAC,
                sender_protocol_addr: OUR_IP,
                target_hardware_addr: PEER_MAC,
                target_protocol_addr: PEER_IP,
            },
        }
    );
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 1), (Counter::TxFrames, 1), (Counter::ArpReplies, 1)]);
    assert_eq!(rig.host.neighbors().lookup(rig.now, PEER_IP), Some(PEER_MAC));
}

#[test]
fn arp_request_for_our_second_address_answers_from_it() {
    let mut rig = Rig::new();
    let Sent::Arp { arp, .. } = one(rig.rx(&arp_request_frame(OUR_IP2))) else { panic!("not ARP") };
    assert_eq!(arp.sender_protocol_addr, OUR_IP2);
    assert_eq!(arp.sender_hardware_addr, OUR_MAC);
}

#[test]
fn arp_request_unicast_to_us_and_padded_is_answered() {
    let mut rig = Rig::new();
    let mut f = arp_frame(OUR_MAC, PEER_MAC, &request(PEER_MAC, PEER_IP, OUR_IP));
    f.resize(60, 0);
    assert!(matches!(one(rig.rx(&f)), Sent::Arp { eth_dst: PEER_MAC, .. }));
}

#[test]
fn arp_reply_goes_to_the_arp_sender_not_the_ethernet_source() {
    // RFC 826: the reply is sent to the sender hardware address.
    let mut rig = Rig::new();
    let f = arp_frame(EthernetAddress::BROADCAST, OTHER_MAC, &request(PEER_MAC, PEER_IP, OUR_IP));
    assert!(matches!(one(rig.rx(&f)), Sent::Arp { eth_dst: PEER_MAC, .. }));
}

#[test]
fn arp_request_for_another_address_is_ignored_but_its_sender_learned() {
    let mut rig = Rig::new();
    assert!(rig.rx(&arp_request_frame(OTHER_IP)).is_empty());
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 1), (Counter::ArpIgnored, 1)]);
    assert_eq!(rig.host.neighbors().lookup(rig.now, PEER_IP), Some(PEER_MAC));
    // Learned entries age out (neighbor::NEIGH_TTL).
    let later = rig.now + crate::engine::host::neighbor::NEIGH_TTL;
    assert_eq!(rig.host.neighbors().lookup(later, PEER_IP), None);
}

#[test]
fn arp_reply_is_learned_not_answered() {
    let mut rig = Rig::new();
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hardware_addr: PEER_MAC,
        sender_protocol_addr: PEER_IP,
        target_hardware_addr: OUR_MAC,
        target_protocol_addr: OUR_IP,
    };
    assert!(rig.rx(&arp_frame(OUR_MAC, PEER_MAC, &reply)).is_empty());
    assert_eq!(rig.count(Counter::ArpIgnored), 1);
    assert_eq!(rig.host.neighbors().lookup(rig.now, PEER_IP), Some(PEER_MAC));
}

#[test]
fn gratuitous_arp_is_learned_not_answered() {
    let mut rig = Rig::new();
    let f = arp_frame(EthernetAddress::BROADCAST, OTHER_MAC, &request(OTHER_MAC, OTHER_IP, OTHER_IP));
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::ArpIgnored), 1);
    assert_eq!(rig.host.neighbors().lookup(rig.now, OTHER_IP), Some(OTHER_MAC));
}

#[test]
fn arp_claiming_our_address_is_not_answered_nor_learned() {
    // A gratuitous ARP (or a request) whose sender claims one of our
    // addresses: Linux's arp_process does not answer it (ip_route_input
    // rejects a local source address; measured on Linux 6.18: no reply) and
    // we must not learn our own address as a neighbour.
    let mut rig = Rig::new();
    for f in [
        arp_frame(EthernetAddress::BROADCAST, OTHER_MAC, &request(OTHER_MAC, OUR_IP, OUR_IP)),
        arp_frame(EthernetAddress::BROADCAST, OTHER_MAC, &request(OTHER_MAC, OUR_IP2, OUR_IP)),
    ] {
        assert!(rig.rx(&f).is_empty());
    }
    assert_eq!(rig.count(Counter::ArpIgnored), 2);
    assert_eq!(rig.host.neighbors().lookup(rig.now, OUR_IP), None);
    assert_eq!(rig.host.neighbors().lookup(rig.now, OUR_IP2), None);
}

#[test]
fn arp_probe_for_our_address_is_answered_and_not_learned() {
    // RFC 5227 probe (sender IP 0.0.0.0): Linux answers it (duplicate
    // address detection) to the sender hardware address, target IP 0.0.0.0
    // (measured on Linux 6.18).
    let mut rig = Rig::new();
    let f = arp_frame(EthernetAddress::BROADCAST, PEER_MAC, &request(PEER_MAC, Ipv4Addr::UNSPECIFIED, OUR_IP));
    let Sent::Arp { eth_dst, arp } = one(rig.rx(&f)) else { panic!("not ARP") };
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!(arp.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
    assert!(rig.host.neighbors().is_empty());
}

#[test]
fn arp_unsupported_layouts_and_operations_are_ignored() {
    let mut rig = Rig::new();
    let good = arp_packet(&request(PEER_MAC, PEER_IP, OUR_IP));
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16), (7, 3), (7, 0)] {
        // htype 6 (IEEE 802), ptype 0x86dd, hlen 8, plen 16, op 3 (RARP), op 0
        let mut p = good.clone();
        p[at] = value;
        cases.push(p);
    }
    cases.push(good[..arp::PACKET_LEN - 1].to_vec());
    cases.push(Vec::new());
    let n = cases.len() as u64;
    for (i, p) in cases.iter().enumerate() {
        let sent = rig.rx(&eth(EthernetAddress::BROADCAST, PEER_MAC, EtherType::Arp, p));
        assert!(sent.is_empty(), "case {i} answered: {sent:?}");
    }
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, n), (Counter::ArpIgnored, n)]);
    // Only the unknown operations had a layout to learn from.
    assert_eq!(rig.host.neighbors().len(), 1);
}

// ---------------------------------------------------------------- Ethernet

#[test]
fn frames_for_another_station_are_not_ours() {
    let mut rig = Rig::new();
    let mut to_other = ping_frame(1, 1, b"x");
    to_other[..6].copy_from_slice(OTHER_MAC.as_bytes());
    let mut to_multicast = ping_frame(1, 1, b"x");
    to_multicast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
    let mut arp_to_other = arp_request_frame(OUR_IP);
    arp_to_other[..6].copy_from_slice(OTHER_MAC.as_bytes());
    for f in [to_other, to_multicast, arp_to_other] {
        assert!(rig.rx(&f).is_empty());
    }
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 3), (Counter::RxOtherHost, 3)]);
    assert!(rig.host.neighbors().is_empty());
}

#[test]
fn broadcast_ipv4_frame_to_our_address_is_handled() {
    let mut rig = Rig::new();
    let mut f = ping_frame(1, 2, b"abcd");
    f[..6].copy_from_slice(EthernetAddress::BROADCAST.as_bytes());
    let (eth_dst, ip, _) = one_icmp(rig.rx(&f));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!(ip.dst_addr, PEER_IP);
}

#[test]
fn runt_frames_are_malformed() {
    let mut rig = Rig::new();
    let f = ping_frame(1, 1, b"x");
    for len in 0..ethernet::HEADER_LEN {
        assert!(rig.rx(&f[..len]).is_empty());
    }
    let n = ethernet::HEADER_LEN as u64;
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, n), (Counter::RxMalformed, n)]);
}

#[test]
fn unknown_ethertypes_are_counted() {
    let mut rig = Rig::new();
    assert!(rig.rx(&eth(OUR_MAC, PEER_MAC, EtherType::Ipv6, &[0x60; 40])).is_empty());
    assert!(rig.rx(&eth(OUR_MAC, PEER_MAC, EtherType::Unknown(0x8100), &[0; 46])).is_empty());
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 2), (Counter::RxUnknownEthertype, 2)]);
}

// ---------------------------------------------------------------- IPv4

#[test]
fn bad_ip_header_checksum_is_dropped() {
    let mut rig = Rig::new();
    let mut f = ping_frame(1, 1, b"x");
    f[L3 + 10] ^= 0x01;
    assert!(rig.rx(&f).is_empty());
    let expected = vec![
        (Counter::RxFrames, 1),
        (Counter::IpInReceives, 1),
        (Counter::IpInHdrErrors, 1),
        (Counter::IpInCsumErrors, 1),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn nic_verdict_on_the_ip_checksum_is_trusted() {
    let mut rig = Rig::new();
    // The NIC says bad: dropped even though the bytes are right.
    let bad = RxMeta { ip_csum: CsumStatus::Bad, ..RxMeta::default() };
    assert!(rig.rx_meta(&ping_frame(1, 1, b"x"), bad).is_empty());
    assert_eq!(rig.count(Counter::IpInCsumErrors), 1);
    assert_eq!(rig.count(Counter::IpInHdrErrors), 1);
    // The NIC says good: not checked again.
    let good = RxMeta { ip_csum: CsumStatus::Good, ..RxMeta::default() };
    let mut f = ping_frame(1, 1, b"x");
    f[L3 + 10] ^= 0x01;
    assert_eq!(rig.rx_meta(&f, good).len(), 1);
}

#[test]
fn ip_header_errors_are_dropped() {
    let mut rig = Rig::new();
    let ping = ping_frame(1, 1, b"0123456789");
    let cases = [
        edit_ip(ping.clone(), |ip| ip.set_version(6)),
        edit_ip(ping.clone(), |ip| ip.set_header_len(16)),
        edit_ip(ping.clone(), |ip| ip.set_total_len(19)),
        edit_ip(ping.clone(), |ip| ip.set_total_len(ping.len() as u16)),
        ping[..L3 + 19].to_vec(),
    ];
    for f in &cases {
        assert!(rig.rx(f).is_empty());
    }
    let n = cases.len() as u64;
    // The total length past the frame is a truncated packet (ip_rcv_core), the rest header errors.
    let expected = vec![
        (Counter::RxFrames, n),
        (Counter::IpInReceives, n),
        (Counter::IpInHdrErrors, n - 1),
        (Counter::IpInTruncatedPkts, 1),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn datagrams_for_another_address_are_addr_errors() {
    let mut rig = Rig::new();
    let f = edit_ip(ping_frame(1, 1, b"x"), |ip| ip.set_dst_addr(OTHER_IP));
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 1), (Counter::IpInReceives, 1), (Counter::IpInAddrErrors, 1)]);
}

#[test]
fn martian_sources_are_dropped_without_an_ip_counter() {
    let mut rig = Rig::new();
    for src in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::UNSPECIFIED] {
        let f = edit_ip(ping_frame(1, 1, b"x"), |ip| ip.set_src_addr(src));
        assert!(rig.rx(&f).is_empty(), "answered {src}");
    }
    // Linux's routing drops a martian source (ip_route_input_slow) and no Ip counter counts it.
    assert_eq!(rig.count(Counter::IpInAddrErrors), 0);
    assert_eq!(rig.count(Counter::IpInMartianSrc), 3);
    assert!(rig.host.neighbors().is_empty());
}

#[test]
fn fragments_are_reassembly_failures() {
    let mut rig = Rig::new();
    let first = edit_ip(udp_frame(9, b"hello"), |ip| ip.set_frag(false, true, 0));
    let later = edit_ip(udp_frame(9, b"hello"), |ip| ip.set_frag(false, false, 185));
    for f in [first, later] {
        assert!(rig.rx(&f).is_empty());
    }
    assert_eq!(rig.counters(), vec![(Counter::RxFrames, 2), (Counter::IpInReceives, 2), (Counter::IpReasmFails, 2)]);
}

/// A frame whose IPv4 header carries `options` (a multiple of 4 bytes) in
/// front of `l4` for `protocol`.
fn frame_with_ip_options(protocol: IpProtocol, options: &[u8], l4: &[u8]) -> Vec<u8> {
    let ip = ip_to_us(protocol);
    let mut l3 = ipv4_packet(&ip, &[options, l4].concat());
    let mut p = Ipv4Packet::new_unchecked(&mut l3[..]);
    p.set_header_len(20 + options.len() as u8);
    p.fill_checksum();
    eth(OUR_MAC, PEER_MAC, EtherType::Ipv4, &l3)
}

fn syn_with_ip_options(options: &[u8]) -> Vec<u8> {
    let ip = ip_to_us(IpProtocol::Tcp);
    frame_with_ip_options(IpProtocol::Tcp, options, &tcp_segment(ip.src_addr, ip.dst_addr, &TcpSpec::default()))
}

/// ip_options_compile: NOPs, an end of list, a router alert, record route
/// and timestamp are fine, and the segment is delivered (here to a closed
/// port, whose RST|ACK shows it reached TCP).
#[test]
fn ip_options_compile_lets_well_formed_options_through() {
    let mut rig = Rig::new();
    let cases: [&[u8]; 4] = [
        &[1, 1, 1, 0],
        &[148, 4, 0, 0],
        &[7, 7, 4, 0, 0, 0, 0, 1],
        &[68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    ];
    for options in cases {
        let (_, _, tcp, _, _) = one_tcp(rig.rx(&syn_with_ip_options(options)));
        assert_eq!((tcp.flags, tcp.ack_number), (TcpFlags::RST | TcpFlags::ACK, 1001), "{options:?}");
    }
    assert_eq!(rig.count(Counter::IpInHdrErrors), 0);
}

/// `ip_send_unicast_reply` and `icmp_reply` echo the datagram's record
/// route: our address in its one free slot on input, the reply's full.
#[test]
fn resets_and_echo_replies_carry_the_record_route_back() {
    let mut rig = Rig::new();
    let o = OUR_IP.octets();
    let echoed = vec![7, 7, 8, o[0], o[1], o[2], o[3], 0];
    match one(rig.rx(&syn_with_ip_options(&[7, 7, 4, 0, 0, 0, 0, 1]))) {
        Sent::Ipv4 { options, .. } => assert_eq!(options, echoed),
        other => panic!("{other:?}"),
    }
    let ping = ping_frame(7, 1, b"rr");
    let ip = Ipv4Packet::new_unchecked(&ping[L3..]);
    let echo_request = frame_with_ip_options(IpProtocol::Icmp, &[7, 7, 4, 0, 0, 0, 0, 1], ip.payload());
    match one(rig.rx(&echo_request)) {
        Sent::Ipv4 { options, l4, .. } => {
            assert_eq!(options, echoed);
            assert_eq!(Icmpv4Packet::new_unchecked(&l4[..]).msg_type(), Icmpv4Type::EchoReply);
        }
        other => panic!("{other:?}"),
    }
}

/// ip_rcv_options: a source route is dropped while accept_source_route is 0.
#[test]
fn source_routed_datagrams_are_dropped() {
    let mut rig = Rig::new();
    for kind in [131, 137] {
        assert!(rig.rx(&syn_with_ip_options(&[kind, 7, 4, 198, 18, 0, 9, 0])).is_empty());
    }
    let expected = vec![(Counter::RxFrames, 2), (Counter::IpInReceives, 2), (Counter::IpInOptionsDropped, 2)];
    assert_eq!(rig.counters(), expected);
}

/// ip_options_compile's error path: a header error and an ICMP parameter
/// problem whose pointer names the bad byte; never about an ICMP error.
#[test]
fn malformed_ip_options_get_a_parameter_problem() {
    let mut rig = Rig::new();
    // Record route with a pointer of 3 (below the minimum 4): byte 22.
    let f = syn_with_ip_options(&[7, 7, 3, 0, 0, 0, 0, 1]);
    let datagram = f[L3..].to_vec();
    let (_, ip, icmp) = one_icmp(rig.rx(&f));
    assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
    let m = Icmpv4Packet::new_unchecked(&icmp[..]);
    assert_eq!((m.msg_type(), m.msg_code()), (Icmpv4Type::ParamProblem, 0));
    assert_eq!(&icmp[4..8], &[22, 0, 0, 0], "pointer");
    assert_eq!(m.data(), &datagram[..]);
    assert_eq!((rig.count(Counter::IpInHdrErrors), rig.count(Counter::IcmpOutParmProbs)), (1, 1));
    // An option longer than what is left: the pointer is the option itself.
    let (_, _, icmp) = one_icmp(rig.rx(&syn_with_ip_options(&[1, 1, 200, 9])));
    assert_eq!(&icmp[4..8], &[22, 0, 0, 0]);
    // The same bad option on an ICMP port unreachable: dropped, unanswered.
    let unreachable = [3, 3, 0, 0, 0, 0, 0, 0];
    assert!(rig.rx(&frame_with_ip_options(IpProtocol::Icmp, &[7, 7, 3, 0, 0, 0, 0, 1], &unreachable)).is_empty());
    assert_eq!((rig.count(Counter::IpInHdrErrors), rig.count(Counter::IcmpOutParmProbs)), (3, 2));
}

#[test]
fn ethernet_padding_is_not_part_of_the_segment() {
    // A 40-byte SYN in a minimum 60-byte frame: 6 bytes of padding that must
    // count neither in the checksum nor in the acknowledged length.
    let mut rig = Rig::new();
    let mut f = tcp_frame(&TcpSpec { seq: 7000, ..TcpSpec::default() });
    assert_eq!(f.len(), 54);
    f.resize(60, 0xee);
    let (_, _, tcp, _, _) = one_tcp(rig.rx(&f));
    assert_eq!(tcp.ack_number, 7001);
    // And a padded UDP datagram is quoted without the padding.
    let mut f = udp_frame(9, b"hi");
    let datagram = f[L3..].to_vec();
    f.resize(60, 0xee);
    let (_, _, icmp) = one_icmp(rig.rx(&f));
    assert_eq!(&icmp[icmp::HEADER_LEN..], &datagram[..]);
}

#[test]
fn neighbours_are_learned_from_arp_only() {
    // Linux fills its neighbour table from ARP, not from IPv4 datagrams:
    // answers to a datagram go to its source MAC.
    let mut rig = Rig::new();
    rig.rx(&udp_frame(9, b"x"));
    assert!(rig.host.neighbors().is_empty());
}

// ---------------------------------------------------------------- ICMP echo

#[test]
fn echo_request_gets_a_linux_echo_reply() {
    let mut rig = Rig::new();
    let data = b"pingdata, odd length";
    let f = edit_ip(ping_frame(0x1234, 9, data), |ip| {
        ip.set_dscp(0x0a);
        ip.set_ecn(0x2);
        ip.set_ttl(3);
    });
    let (eth_dst, ip, icmp) = one_icmp(rig.rx(&f));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
    // Linux: TOS copied (ECN too), no DF, TTL 64.
    assert_eq!(ip.tos, 0x2a);
    assert!(!ip.dont_frag);
    assert_eq!(ip.ttl, DEFAULT_TTL);
    assert_eq!(usize::from(ip.payload_len), icmp::HEADER_LEN + data.len());
    let m = Icmpv4Packet::new_unchecked(&icmp[..]);
    assert_eq!((m.msg_type(), m.msg_code()), (Icmpv4Type::EchoReply, 0));
    assert_eq!((m.echo_ident(), m.echo_seq_no()), (0x1234, 9));
    assert_eq!(m.data(), data);
    let expected = vec![
        (Counter::RxFrames, 1),
        (Counter::TxFrames, 1),
        (Counter::IpInReceives, 1),
        (Counter::IcmpInMsgs, 1),
        (Counter::IcmpInEchos, 1),
        (Counter::IcmpOutMsgs, 1),
        (Counter::IcmpOutEchoReps, 1),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn echo_reply_copies_the_request_code_like_linux() {
    // Measured on Linux 6.18: an echo request with code 3 is answered with
    // type 0 code 3 (icmp_echo copies the header and changes the type only).
    let mut rig = Rig::new();
    let mut f = ping_frame(5, 9, b"pingdata");
    f[L4 + 1] = 3;
    fix_checksums(&mut f);
    let (_, _, icmp) = one_icmp(rig.rx(&f));
    let m = Icmpv4Packet::new_unchecked(&icmp[..]);
    assert_eq!((m.msg_type(), m.msg_code()), (Icmpv4Type::EchoReply, 3));
    assert_eq!((m.echo_ident(), m.echo_seq_no(), m.data()), (5, 9, &b"pingdata"[..]));
}

#[test]
fn echo_to_our_second_address_is_answered_from_it() {
    let mut rig = Rig::new();
    let f = edit_ip(ping_frame(1, 1, b""), |ip| ip.set_dst_addr(OUR_IP2));
    let (_, ip, _) = one_icmp(rig.rx(&f));
    assert_eq!(ip.src_addr, OUR_IP2);
}

#[test]
fn echo_with_bad_checksum_or_truncated_is_an_icmp_error() {
    let mut rig = Rig::new();
    let mut bad = ping_frame(1, 1, b"abc");
    bad[L4 + 2] ^= 0x40;
    assert!(rig.rx(&bad).is_empty());
    let ip = Ipv4Repr { dont_frag: false, ..ip_to_us(IpProtocol::Icmp) };
    assert!(rig.rx(&ip_frame(&ip, &[8, 0, 0xf7])).is_empty());
    let expected = vec![
        (Counter::RxFrames, 2),
        (Counter::IpInReceives, 2),
        (Counter::IcmpInMsgs, 2),
        (Counter::IcmpInErrors, 2),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn other_icmp_messages_are_not_answered() {
    let mut rig = Rig::new();
    let ip = Ipv4Repr { dont_frag: false, ..ip_to_us(IpProtocol::Icmp) };
    for (ty, code) in [(0u8, 0u8), (3, 3), (11, 0), (13, 0), (42, 0)] {
        let mut m = icmp_echo_request(1, 1, b"quoted");
        m[0] = ty;
        m[1] = code;
        Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
        assert!(rig.rx(&ip_frame(&ip, &m)).is_empty(), "answered type {ty}");
    }
    assert_eq!(rig.count(Counter::IcmpInMsgs), 5);
    assert_eq!(rig.count(Counter::IcmpInErrors), 0);
    assert_eq!(rig.count(Counter::TxFrames), 0);
}

// ---------------------------------------------------------------- ICMP unreachable

#[test]
fn udp_to_a_closed_port_is_port_unreachable() {
    let mut rig = Rig::new();
    let f = udp_frame(9, b"hello");
    let datagram = f[L3..].to_vec();
    let (eth_dst, ip, icmp) = one_icmp(rig.rx(&f));
    assert_eq!(eth_dst, PEER_MAC);
    assert_eq!((ip.src_addr, ip.dst_addr), (OUR_IP, PEER_IP));
    // Linux: precedence "internetwork control", no DF, TTL 64.
    assert_eq!(ip.tos, 0xc0);
    assert!(!ip.dont_frag);
    assert_eq!(ip.ttl, DEFAULT_TTL);
    let m = Icmpv4Packet::new_unchecked(&icmp[..]);
    assert_eq!((m.msg_type(), m.msg_code()), (Icmpv4Type::DestUnreachable, 3));
    assert_eq!(&icmp[4..8], &[0; 4], "unused word");
    assert_eq!(m.data(), &datagram[..], "quotes the whole datagram");
    let expected = vec![
        (Counter::RxFrames, 1),
        (Counter::TxFrames, 1),
        (Counter::IpInReceives, 1),
        (Counter::IcmpOutMsgs, 1),
        (Counter::IcmpOutDestUnreachs, 1),
        (Counter::UdpNoPorts, 1),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn unreachable_tos_keeps_the_tos_bits_not_ecn() {
    // Linux __icmp_send: RT_TOS(iph->tos) | IPTOS_PREC_INTERNETCONTROL.
    // Measured on Linux 6.18: a datagram with TOS 0xbb gets 0xda.
    let mut rig = Rig::new();
    let f = edit_ip(udp_frame(9, b"x"), |ip| {
        ip.set_dscp(0x2e); // 0xb8: EF
        ip.set_ecn(0x3);
    });
    let (_, ip, _) = one_icmp(rig.rx(&f));
    assert_eq!(ip.tos, 0xc0 | (0xbb & 0x1e));
}

#[test]
fn unreachable_quote_is_cut_at_576_bytes() {
    let mut rig = Rig::new();
    let payload: Vec<u8> = (0..1000 - udp::HEADER_LEN).map(|i| i as u8).collect();
    let f = udp_frame(9, &payload);
    assert_eq!(f.len() - L4, 1000);
    let raw = rig.raw(&f);
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].len(), ethernet::HEADER_LEN + ICMP_ERROR_MAX);
    let (_, ip, icmp) = one_icmp(raw.iter().map(|r| check_sent(r).expect("valid")).collect());
    assert_eq!(usize::from(ip.payload_len) + ipv4::HEADER_LEN, ICMP_ERROR_MAX);
    let quoted = ICMP_ERROR_MAX - ipv4::HEADER_LEN - icmp::HEADER_LEN;
    assert_eq!(&icmp[icmp::HEADER_LEN..], &f[L3..L3 + quoted]);
}

#[test]
fn udp_checksum_errors_are_not_answered() {
    let mut rig = Rig::new();
    let mut f = udp_frame(9, b"hello");
    f[L4 + 6] ^= 0x01;
    assert!(rig.rx(&f).is_empty());
    let bad = RxMeta { l4_csum: CsumStatus::Bad, ..RxMeta::default() };
    assert!(rig.rx_meta(&udp_frame(9, b"hello"), bad).is_empty());
    let expected = vec![(Counter::RxFrames, 2), (Counter::IpInReceives, 2), (Counter::UdpInCsumErrors, 2), (Counter::UdpInErrors, 2)];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn udp_without_checksum_is_accepted() {
    // RFC 768: zero means the sender computed none.
    let mut rig = Rig::new();
    let mut f = udp_frame(9, b"hello");
    f[L4 + 6..L4 + 8].copy_from_slice(&[0, 0]);
    assert_eq!(one_icmp(rig.rx(&f)).2[1], 3);
    assert_eq!(rig.count(Counter::UdpNoPorts), 1);
}

#[test]
fn udp_length_beyond_the_datagram_is_malformed() {
    let mut rig = Rig::new();
    let mut f = udp_frame(9, b"hello");
    f[L4 + 4..L4 + 6].copy_from_slice(&100u16.to_be_bytes());
    assert!(rig.rx(&f).is_empty());
    assert_eq!(rig.count(Counter::RxMalformed), 1);
    assert_eq!(rig.count(Counter::UdpInErrors), 1);
    assert_eq!(rig.count(Counter::UdpNoPorts), 0);
}

#[test]
fn unknown_protocol_is_protocol_unreachable() {
    let mut rig = Rig::new();
    let ip = ip_to_us(IpProtocol::Unknown(253));
    let f = ip_frame(&ip, b"xxxxxxxxxxxx");
    let (_, reply, icmp) = one_icmp(rig.rx(&f));
    assert_eq!(reply.tos, 0xc0);
    assert_eq!((icmp[0], icmp[1]), (3, 2));
    assert_eq!(&icmp[icmp::HEADER_LEN..], &f[L3..]);
    assert_eq!(rig.count(Counter::IpInUnknownProtos), 1);
    assert_eq!(rig.count(Counter::IcmpOutDestUnreachs), 1);
}

#[test]
fn unreachables_are_rate_limited_per_peer_like_linux() {
    let mut rig = Rig::new();
    let burst = (0..20).filter(|i| !rig.rx(&udp_frame(9000 + i, b"x")).is_empty()).count();
    assert_eq!(burst, 6, "Linux: XRLIM_BURST_FACTOR tokens");
    assert_eq!(rig.count(Counter::IcmpOutRateLimited), 14);
    // Protocol unreachables draw on the same bucket.
    assert!(rig.rx(&ip_frame(&ip_to_us(IpProtocol::Unknown(253)), b"x")).is_empty());
    // Echo replies are never limited.
    let pings = (0..20).filter(|i| rig.rx(&ping_frame(1, *i, b"x")).len() == 1).count();
    assert_eq!(pings, 20);
    // Another peer has its own bucket.
    let mut other = edit_ip(udp_frame(9, b"x"), |ip| ip.set_src_addr(PEER2_IP));
    fix_checksums(&mut other);
    assert_eq!(rig.rx(&other).len(), 1);
    // One second later, one more token.
    rig.now += Duration::from_secs(1);
    let later = (0..5).filter(|i| !rig.rx(&udp_frame(9100 + i, b"x")).is_empty()).count();
    assert_eq!(later, 1);
    assert_eq!(rig.count(Counter::IcmpOutDestUnreachs), 8);
}

// ---------------------------------------------------------------- TCP, closed port

#[test]
fn syn_to_a_closed_port_gets_linux_rst_ack() {
    // Oracle: SYN+3 bytes -> RST|ACK tos reflected, ttl 64, id 0, DF, seq 0,
    // ack seq+1+3, win 0, no options.
    let mut rig = Rig::new();
    let options = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
    let spec = TcpSpec { seq: 1000, options, payload: b"abc".to_vec(), ..TcpSpec::default() };
    let f = edit_ip(tcp_frame(&spec), |ip| {
        ip.set_dscp(0x04);
        ip.set_ident(7);
    });
    let (eth_dst, ip, tcp, header_len, payload_len) = one_tcp(rig.rx(&f));
    assert_eq!(eth_dst, PEER_MAC);
    let expected_ip = Ipv4Repr {
        src_addr: OUR_IP,
        dst_addr: PEER_IP,
        protocol: IpProtocol::Tcp,
        payload_len: tcp::HEADER_LEN as u16,
        ttl: 64,
        ident: 0,
        dont_frag: true,
        tos: 0x10,
    };
    assert_eq!(ip, expected_ip);
    let expected_tcp = TcpRepr {
        src_port: 81,
        dst_port: 40000,
        seq_number: 0,
        ack_number: 1004,
        flags: TcpFlags::RST | TcpFlags::ACK,
        window_len: 0,
    };
    assert_eq!(tcp, expected_tcp);
    assert_eq!((header_len, payload_len), (20, 0));
    let expected = vec![
        (Counter::RxFrames, 1),
        (Counter::TxFrames, 1),
        (Counter::IpInReceives, 1),
        (Counter::TcpInSegs, 1),
        (Counter::TcpOutSegs, 1),
        (Counter::TcpOutRsts, 1),
        (Counter::TcpSynNoListener, 1),
    ];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn ack_to_a_closed_port_gets_rst_with_their_ack() {
    let mut rig = Rig::new();
    let f = tcp_frame(&TcpSpec { flags: TcpFlags::ACK, seq: 1000, ack: 5555, ..TcpSpec::default() });
    let (_, ip, tcp, _, _) = one_tcp(rig.rx(&f));
    assert_eq!((tcp.seq_number, tcp.ack_number, tcp.flags), (5555, 0, TcpFlags::RST));
    assert_eq!(tcp.window_len, 0);
    assert!(ip.dont_frag);
    assert_eq!(rig.count(Counter::TcpSynNoListener), 0);
}

#[test]
fn fin_ack_and_data_to_a_closed_port_get_rst() {
    let mut rig = Rig::new();
    let fin_ack = TcpSpec { flags: TcpFlags::FIN | TcpFlags::ACK, seq: 1000, ack: 9, ..TcpSpec::default() };
    let (_, _, tcp, _, _) = one_tcp(rig.rx(&tcp_frame(&fin_ack)));
    assert_eq!((tcp.seq_number, tcp.flags), (9, TcpFlags::RST));
    let psh_ack = TcpSpec { flags: TcpFlags::PSH | TcpFlags::ACK, ack: 77, payload: vec![1; 100], ..TcpSpec::default() };
    let (_, _, tcp, _, _) = one_tcp(rig.rx(&tcp_frame(&psh_ack)));
    assert_eq!((tcp.seq_number, tcp.flags), (77, TcpFlags::RST));
}

#[test]
fn segments_without_ack_get_rst_ack_covering_them() {
    // Linux tcp_v4_send_reset: ack = seq + syn + fin + data length.
    let mut rig = Rig::new();
    let cases = [
        (TcpFlags::empty(), 1000, Vec::new(), 1000),
        (TcpFlags::FIN, 1000, Vec::new(), 1001),
        (TcpFlags::FIN | TcpFlags::PSH, 1000, vec![0; 10], 1011),
        (TcpFlags::SYN, u32::MAX, Vec::new(), 0),
        (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, 5, Vec::new(), 6),
    ];
    for (flags, seq, payload, ack) in cases {
        let spec = TcpSpec { flags, seq, ack: 0xdead, payload, ..TcpSpec::default() };
        let (_, _, tcp, _, _) = one_tcp(rig.rx(&tcp_frame(&spec)));
        assert_eq!((tcp.seq_number, tcp.ack_number, tcp.flags), (0, ack, TcpFlags::RST | TcpFlags::ACK), "{flags:?}");
    }
}

#[test]
fn rst_is_never_answered() {
    let mut rig = Rig::new();
    for flags in [TcpFlags::RST, TcpFlags::RST | TcpFlags::ACK] {
        assert!(rig.rx(&tcp_frame(&TcpSpec { flags, ack: 1, ..TcpSpec::default() })).is_empty());
    }
    let expected = vec![(Counter::RxFrames, 2), (Counter::IpInReceives, 2), (Counter::TcpInSegs, 2)];
    assert_eq!(rig.counters(), expected);
}

/// `tcp_v4_send_reset` on a closed port: SYN|FIN gets RST|ACK covering
/// both flags (ack = seq + 2), SYN|FIN|ACK an RST at its ack, and SYN|RST
/// nothing (a reset is never answered). None is an input error.
#[test]
fn tcp_v4_send_reset_answers_syn_fin_on_a_closed_port() {
    let mut rig = Rig::new();
    let syn_fin = TcpSpec { flags: TcpFlags::SYN | TcpFlags::FIN, seq: 1000, ..TcpSpec::default() };
    let (_, _, tcp, _, _) = one_tcp(rig.rx(&tcp_frame(&syn_fin)));
    assert_eq!((tcp.seq_number, tcp.ack_number, tcp.flags), (0, 1002, TcpFlags::RST | TcpFlags::ACK));
    let syn_fin_ack = TcpSpec { flags: TcpFlags::SYN | TcpFlags::FIN | TcpFlags::ACK, ack: 9, ..TcpSpec::default() };
    let (_, _, tcp, _, _) = one_tcp(rig.rx(&tcp_frame(&syn_fin_ack)));
    assert_eq!((tcp.seq_number, tcp.flags), (9, TcpFlags::RST));
    assert!(rig.rx(&tcp_frame(&TcpSpec { flags: TcpFlags::SYN | TcpFlags::RST, ..TcpSpec::default() })).is_empty());
    assert_eq!(rig.count(Counter::TcpInErrs), 0);
    assert_eq!(rig.count(Counter::TcpOutRsts), 2);
}

#[test]
fn tcp_checksum_errors_are_dropped() {
    let mut rig = Rig::new();
    let mut f = tcp_frame(&TcpSpec::default());
    f[L4 + 17] ^= 0x01;
    assert!(rig.rx(&f).is_empty());
    let bad = RxMeta { l4_csum: CsumStatus::Bad, ..RxMeta::default() };
    assert!(rig.rx_meta(&tcp_frame(&TcpSpec::default()), bad).is_empty());
    let expected = vec![
        (Counter::RxFrames, 2),
        (Counter::IpInReceives, 2),
        (Counter::TcpInSegs, 2),
        (Counter::TcpInErrs, 2),
        (Counter::TcpInCsumErrors, 2),
    ];
    assert_eq!(rig.counters(), expected);
    // A NIC that verified the checksum is trusted.
    let good = RxMeta { l4_csum: CsumStatus::Good, ..RxMeta::default() };
    let mut f = tcp_frame(&TcpSpec::default());
    f[L4 + 17] ^= 0x01;
    assert_eq!(rig.rx_meta(&f, good).len(), 1);
}

#[test]
fn bad_tcp_header_lengths_are_errors_or_discards() {
    let mut rig = Rig::new();
    let ip = ip_to_us(IpProtocol::Tcp);
    let mut cases = Vec::new();
    for doff in [0u8, 4, 6] {
        // Data offset below 5, or past the end of a 20-byte segment.
        let mut seg = tcp_segment(ip.src_addr, ip.dst_addr, &TcpSpec::default());
        seg[12] = doff << 4;
        TcpSegment::new_unchecked(&mut seg[..]).fill_checksum(ip.src_addr, ip.dst_addr);
        cases.push(ip_frame(&ip, &seg));
    }
    let seg = tcp_segment(ip.src_addr, ip.dst_addr, &TcpSpec::default());
    cases.push(ip_frame(&ip, &seg[..19]));
    let n = cases.len() as u64;
    for f in &cases {
        assert!(rig.rx(f).is_empty());
    }
    // tcp_v4_rcv: doff 0 and 4 are bad packets (InErrs); a header past the
    // segment and a 19-byte segment are discarded without a count.
    let expected = vec![(Counter::RxFrames, n), (Counter::IpInReceives, n), (Counter::TcpInSegs, n), (Counter::TcpInErrs, 2)];
    assert_eq!(rig.counters(), expected);
}

#[test]
fn rst_to_our_second_address_comes_from_it() {
    let mut rig = Rig::new();
    let mut f = edit_ip(tcp_frame(&TcpSpec::default()), |ip| ip.set_dst_addr(OUR_IP2));
    // The TCP checksum covers the destination address: recompute it.
    fix_checksums(&mut f);
    let (_, ip, _, _, _) = one_tcp(rig.rx(&f));
    assert_eq!(ip.src_addr, OUR_IP2);
}

/// A TCP layer that takes every segment and remembers what it was handed.
#[derive(Default)]
struct TakeAll {
    seen: Vec<(u16, u32, TcpFlags, Ipv4Addr, EthernetAddress)>,
}

impl TcpLayer for TakeAll {
    fn segment(&mut self, _: Instant, input: &TcpInput<'_>, _: &mut HostTx<'_>, _: &mut impl TxSink) -> Taken {
        let s = &input.seg;
        self.seen.push((s.dst_port(), s.seq_number(), s.flags(), input.ip.v4().expect("IPv4").src_addr(), input.eth_src));
        Taken::Yes
    }
}

#[test]
fn segments_a_socket_takes_are_not_reset_and_bad_ones_never_reach_it() {
    let mut rig = Rig::new();
    let mut layer = TakeAll::default();
    let mut bad_csum = tcp_frame(&TcpSpec::default());
    bad_csum[L4 + 17] ^= 0x01;
    for f in [
        tcp_frame(&TcpSpec { dst_port: 80, seq: 42, ..TcpSpec::default() }),
        tcp_frame(&TcpSpec { flags: TcpFlags::SYN | TcpFlags::FIN, ..TcpSpec::default() }),
        bad_csum,
    ] {
        rig.host.rx(rig.now, &f, RxMeta::default(), &mut layer, &mut rig.tx);
    }
    assert!(rig.tx.take().is_empty());
    let syn_fin = (81, 1000, TcpFlags::SYN | TcpFlags::FIN, PEER_IP, PEER_MAC);
    assert_eq!(layer.seen, vec![(80, 42, TcpFlags::SYN, PEER_IP, PEER_MAC), syn_fin]);
    assert_eq!(rig.count(Counter::TcpOutRsts), 0);
}

// ---------------------------------------------------------------- never panics

/// Valid frames of every kind we answer, to mutate.
fn seed_frames() -> Vec<Vec<u8>> {
    vec![
        arp_request_frame(OUR_IP),
        ping_frame(0x4242, 1, b"0123456789abcdef"),
        tcp_frame(&TcpSpec { payload: b"abc".to_vec(), ..TcpSpec::default() }),
        tcp_frame(&TcpSpec { flags: TcpFlags::ACK, ack: 5555, ..TcpSpec::default() }),
        udp_frame(9, b"hello"),
        ip_frame(&ip_to_us(IpProtocol::Unknown(253)), b"xxxxxxxxxxxx"),
    ]
}

/// Check everything the host sent in answer to `input`.
fn check_answers(input: &[u8], sent: &[Vec<u8>]) -> Result<(), TestCaseError> {
    prop_assert!(sent.len() <= 1, "one frame in, {} out", sent.len());
    for f in sent {
        let parsed = check_sent(f);
        prop_assert!(parsed.is_ok(), "bad frame {:?}: {:02x?}", parsed, f);
        // IPv4 answers go back to the frame's source; ARP to the ARP sender.
        if let Ok(Sent::Ipv4 { eth_dst, .. }) = parsed {
            prop_assert_eq!(&eth_dst.as_bytes()[..], &input[6..12]);
        }
    }
    Ok(())
}

fn any_meta() -> impl Strategy<Value = RxMeta> {
    let csum = prop_oneof![Just(CsumStatus::Unknown), Just(CsumStatus::Good), Just(CsumStatus::Bad)];
    (csum.clone(), csum).prop_map(|(ip_csum, l4_csum)| RxMeta { ip_csum, l4_csum, rss_hash: None })
}

/// A valid frame with some bytes flipped, maybe truncated, maybe with its
/// checksums fixed so the damage reaches the deeper layers.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seed_frames();
    (
        0..seeds.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        proptest::option::of(any::<prop::sample::Index>()),
        any::<bool>(),
        proptest::option::of(0usize..64),
    )
        .prop_map(move |(which, flips, cut, fix, pad)| {
            let mut f = seeds[which].clone();
            for (at, x) in flips {
                let i = at.index(f.len());
                f[i] ^= x;
            }
            if let Some(cut) = cut {
                f.truncate(cut.index(f.len() + 1));
            }
            if let Some(pad) = pad {
                f.resize(f.len() + pad, 0xee);
            }
            if fix {
                fix_checksums(&mut f);
            }
            f
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..1600), meta in any_meta()) {
        let mut rig = Rig::new();
        let sent = rig.raw_meta(&frame, meta);
        check_answers(&frame, &sent)?;
    }

    #[test]
    fn arbitrary_bytes_behind_our_headers_never_panic(
        ethertype in prop_oneof![Just(EtherType::Arp), Just(EtherType::Ipv4)],
        body in proptest::collection::vec(any::<u8>(), 0..600),
        meta in any_meta(),
    ) {
        let mut rig = Rig::new();
        let frame = eth(OUR_MAC, PEER_MAC, ethertype, &body);
        let sent = rig.raw_meta(&frame, meta);
        check_answers(&frame, &sent)?;
    }

    #[test]
    fn mutated_frames_never_panic_and_answers_are_valid(
        frames in proptest::collection::vec((mutated_frame(), any_meta(), 0u64..2000), 1..24),
    ) {
        // One host for the whole sequence: the rate limiter and the
        // neighbour table carry state from frame to frame.
        let mut rig = Rig::new();
        let mut sent_total = 0;
        for (frame, meta, step_ms) in &frames {
            rig.now += Duration::from_millis(*step_ms);
            let sent = rig.raw_meta(frame, *meta);
            sent_total += sent.len() as u64;
            check_answers(frame, &sent)?;
        }
        prop_assert_eq!(rig.count(Counter::RxFrames), frames.len() as u64);
        prop_assert_eq!(rig.count(Counter::TxFrames), sent_total);
    }
}

#[test]
fn seed_frames_are_all_answered() {
    // The mutation seeds (and the fuzz corpus) start from frames that reach
    // an answer, so mutations explore the paths next to it.
    let mut rig = Rig::new();
    for f in seed_frames() {
        assert_eq!(rig.rx(&f).len(), 1, "{f:02x?}");
    }
}

/// Writes the seed frames as the cargo-fuzz corpus (fuzz/corpus/host_rx),
/// each behind the fuzz target's first byte (0: checksums not verified by
/// the NIC). Run by hand: `cargo test --lib write_fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/host_rx");
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    let names = ["arp_request", "ping", "syn_data", "ack", "udp", "proto253"];
    for (name, f) in names.iter().zip(seed_frames()) {
        std::fs::write(dir.join(name), [&[0u8][..], &f].concat()).expect("write seed");
    }
}

/// IPv6: neighbour discovery, echo, errors, resets.
mod ipv6;

/// The plain TCP check against the host's general parse.
mod plain_tcp {
    use crate::engine::host::{CsumStatus, Host, RxMeta};
    use crate::wire::ethernet::EthernetAddress;
    use crate::engine::host::HostConfig;
    use crate::engine::time::Instant;
    use crate::engine::tx::{TxFrame, TxSink};
    use crate::stats::{Counter, Counters};
    use crate::engine::host::PlainCount;
    use crate::testkit::clients::{syn6_frame as write_syn6, syn_frame as write_syn, OUR_IP6};
    use crate::testkit::frame::{OUR_IP as OURS, OUR_MAC as MAC};
    use proptest::prelude::*;
    use std::sync::Arc;

    struct Drop0;
    impl TxSink for Drop0 {
        fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, _: usize, _: F) -> bool {
            false
        }
    }

    fn host() -> Host {
        let cfg = HostConfig { mac: MAC, addrs: vec![OURS], utc_ms_at_zero: 0 };
        Host::new(cfg, Arc::new(Counters::new())).with_ipv6(vec![OUR_IP6])
    }

    /// Count one plain segment of the family `input` came in.
    fn count_one(h: &Host, input: &crate::engine::host::TcpInput<'_>) {
        let v6 = input.ip.is_v6();
        h.count_plain(PlainCount { v4: u64::from(!v6), v6: u64::from(v6) });
    }

    /// The plain check of either family.
    fn plain<'a>(h: &Host, frame: &'a [u8], meta: RxMeta) -> Option<(crate::engine::host::TcpInput<'a>, bool)> {
        h.plain_tcp(frame, meta).or_else(|| h.plain_tcp6(frame, meta))
    }

    fn good() -> RxMeta {
        RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None }
    }

    /// A SYN as Linux sends it (MSS, SACK_PERM, TS, NOP, WS).
    fn syn_frame() -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let n = write_syn(3, &mut buf);
        buf.truncate(n);
        buf
    }

    /// The same SYN over IPv6.
    fn syn6_frame() -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let n = write_syn6(3, &mut buf);
        buf.truncate(n);
        buf
    }

    /// A TCP input's IPv4 bytes, TCP bytes and Ethernet source.
    type Taken = (Vec<u8>, Vec<u8>, EthernetAddress);

    /// What the general path makes of the frame: its TCP input and the
    /// counters it moved.
    fn general(frame: &[u8], meta: RxMeta) -> (Option<Taken>, Vec<u64>) {
        let mut h = host();
        let got = h.parse(Instant::ZERO, frame, meta, &mut Drop0).map(|t| (t.ip.into_inner().to_vec(), t.seg.into_inner().to_vec(), t.eth_src));
        let c = h.counters();
        (got, Counter::ALL.iter().map(|&k| c.get(k)).collect())
    }

    #[test]
    fn a_linux_syn_is_plain_and_its_input_is_the_general_one() {
        for frame in [syn_frame(), syn6_frame()] {
            a_syn_is_plain_and_its_input_is_the_general_one(&frame);
        }
    }

    fn a_syn_is_plain_and_its_input_is_the_general_one(frame: &[u8]) {
        let h = host();
        let (plain, syn) = plain(&h, frame, good()).expect("plain");
        assert!(syn);
        count_one(&h, &plain);
        let (want, counters) = general(frame, good());
        let want = want.expect("the general path takes it");
        assert_eq!(plain.ip.into_inner(), &want.0[..]);
        assert_eq!(plain.seg.into_inner(), &want.1[..]);
        assert_eq!(plain.eth_src, want.2);
        let c = h.counters();
        assert_eq!(Counter::ALL.iter().map(|&k| c.get(k)).collect::<Vec<_>>(), counters, "same counters as the general path");
    }

    #[test]
    fn without_the_nics_verdict_the_checksums_are_verified_here() {
        for frame in [syn_frame(), syn6_frame()] {
            checksums_are_verified_here(frame);
        }
    }

    fn checksums_are_verified_here(mut frame: Vec<u8>) {
        let meta = RxMeta { l4_csum: CsumStatus::Unknown, ip_csum: CsumStatus::Unknown, rss_hash: None };
        assert!(plain(&host(), &frame, meta).is_some());
        let bad = RxMeta { l4_csum: CsumStatus::Bad, ..good() };
        assert!(plain(&host(), &frame, bad).is_none(), "the NIC's bad verdict");
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(plain(&host(), &frame, meta).is_none(), "a wrong TCP checksum");
        assert!(plain(&host(), &frame, good()).is_some(), "the NIC's word is taken");
    }

    proptest! {
        /// Whatever a plain segment is, the general path hands exactly it to
        /// TCP and counts exactly what count_plain counts; mutations of a
        /// real SYN explore the edges (flags, lengths, addresses, MACs).
        #[test]
        fn plain_means_what_the_general_path_does(
            edits in proptest::collection::vec((0usize..100, any::<u8>()), 0..4),
            cut in 0usize..8,
            software in any::<bool>(),
            v6 in any::<bool>(),
        ) {
            let meta = if software { RxMeta::default() } else { good() };
            let mut frame = if v6 { syn6_frame() } else { syn_frame() };
            for (at, v) in edits {
                if at < frame.len() {
                    frame[at] = v;
                }
            }
            frame.truncate(frame.len().saturating_sub(cut));
            let h = host();
            if let Some((plain, syn)) = plain(&h, &frame, meta) {
                count_one(&h, &plain);
                let (want, counters) = general(&frame, meta);
                let want = want.expect("the general path takes every plain segment");
                if syn {
                    prop_assert!(plain.seg.payload().is_empty());
                    prop_assert_eq!(plain.seg.flags(), crate::wire::tcp::TcpFlags::SYN);
                }
                prop_assert_eq!(plain.ip.into_inner(), &want.0[..]);
                prop_assert_eq!(plain.seg.into_inner(), &want.1[..]);
                prop_assert_eq!(plain.eth_src, want.2);
                let c = h.counters();
                prop_assert_eq!(Counter::ALL.iter().map(|&k| c.get(k)).collect::<Vec<_>>(), counters);
            }
        }
    }
}
