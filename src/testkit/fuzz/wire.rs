//! Every wire parser on arbitrary bytes. The first byte picks where the
//! bytes enter: an Ethernet frame (then ARP or IPv4 and what it carries,
//! as the host reads them), an IPv4 datagram, a TCP segment, a TCP options
//! block, or an IPv4 options block; the rest are the bytes.
//!
//! Checked, beyond "no panic once `check_len` passed": what a `Repr` parses
//! it emits again and re-parses to the same value; the SYN option walk and
//! the fast timestamp reader agree; the strict option iterator frames what
//! the lenient walk frames; a valid ICMP checksum stays valid through the
//! echo-reply rewrite and in a destination-unreachable we build; an
//! options echo fits the IPv4 header.

use crate::wire::arp::{self, ArpPacket, ArpRepr};
use crate::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use crate::wire::icmp::{self, Icmpv4Packet, Icmpv4Unreachable};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv4_options::{self, OptionsEcho};
use crate::wire::tcp::{self, TcpRepr, TcpSegment};
use crate::wire::tcp_options::{self, SynOptions, TcpOptionIter};
use crate::wire::udp::UdpPacket;
use std::net::Ipv4Addr;

pub fn run(data: &[u8]) {
    let Some((&entry, bytes)) = data.split_first() else {
        return;
    };
    match entry % 5 {
        0 => ethernet(bytes),
        1 => ipv4_datagram(bytes),
        2 => tcp_segment(bytes, Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 1)),
        3 => tcp_options(bytes),
        _ => ipv4_options(bytes),
    }
}

fn ethernet(bytes: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        return;
    };
    let dst = frame.dst_addr();
    let _ = (dst.is_broadcast(), dst.is_multicast(), dst.is_unicast(), frame.src_addr());
    assert_eq!(dst, EthernetAddress::from_bytes(&bytes[..6]));
    match frame.ethertype() {
        EtherType::Arp => arp_packet(frame.payload()),
        EtherType::Ipv4 => ipv4_datagram(frame.payload()),
        _ => {}
    }
}

fn arp_packet(bytes: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(bytes) else {
        return;
    };
    if packet.check_layout().is_err() {
        return;
    }
    let repr = ArpRepr::parse(&packet);
    let mut buf = [0xa5u8; arp::PACKET_LEN];
    let n = repr.emit(&mut buf).expect("an ARP packet fits 28 bytes");
    let again = ArpPacket::new_checked(&buf[..n]).expect("our ARP packet checks");
    assert_eq!(ArpRepr::parse(&again), repr, "ARP repr round trip");
    let our_ip = repr.target_protocol_addr;
    if let Some(reply) = repr.reply_to(EthernetAddress([2, 0, 0, 0, 0, 1]), our_ip) {
        assert_eq!(reply.sender_protocol_addr, our_ip);
        assert_eq!(reply.target_protocol_addr, repr.sender_protocol_addr);
    }
}

fn ipv4_datagram(bytes: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return;
    };
    let _ = (ip.dscp(), ip.ecn(), ip.ident(), ip.dont_frag(), ip.more_frags(), ip.frag_offset(), ip.ttl());
    let _ = (ip.checksum(), ip.verify_checksum(), ip.is_fragment());
    assert_eq!(ip.src_addr_u32(), u32::from(ip.src_addr()));
    assert_eq!(ip.dst_addr_raw(), ip.dst_addr().octets());
    let header_len = usize::from(ip.header_len());
    assert_eq!(ip.options().len(), header_len - ipv4::HEADER_LEN);
    assert_eq!(ip.has_options(), header_len > ipv4::HEADER_LEN);
    assert_eq!(ip.payload().len(), usize::from(ip.total_len()) - header_len);

    // Repr round trip (the fixed header; options are not part of a Repr).
    let repr = Ipv4Repr::parse(&ip);
    let mut buf = vec![0xa5u8; ipv4::HEADER_LEN + usize::from(repr.payload_len)];
    repr.emit(&mut buf).expect("a parsed header emits");
    let again = Ipv4Packet::new_checked(&buf[..]).expect("our header checks");
    assert!(again.verify_checksum(), "our IPv4 checksum");
    assert_eq!(Ipv4Repr::parse(&again), repr, "IPv4 repr round trip");

    if let Some(echo) = ipv4_options::reply_echo(&ip, 12_345) {
        options_echo(&echo);
    }

    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::Tcp => tcp_segment(ip.payload(), src, dst),
        IpProtocol::Udp => {
            if let Ok(udp) = UdpPacket::new_checked(ip.payload()) {
                let _ = (udp.src_port(), udp.dst_port(), udp.checksum(), udp.verify_checksum(src, dst));
                assert!(udp.payload().len() <= usize::from(udp.len()));
            }
        }
        IpProtocol::Icmp => icmp_message(ip.payload()),
        _ => {}
    }
    // What the host sends for an unreachable port quotes this datagram.
    let len = icmp::dest_unreachable_len(&ip);
    let mut msg = vec![0xa5u8; len];
    let n = icmp::emit_dest_unreachable(&mut msg, Icmpv4Unreachable::PortUnreachable, &ip).expect("sized by dest_unreachable_len");
    let sent = Icmpv4Packet::new_checked(&msg[..n]).expect("our ICMP message checks");
    assert!(sent.verify_checksum(), "our destination unreachable checksum");
}

fn icmp_message(bytes: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
        return;
    };
    let _ = (packet.msg_type(), packet.msg_code(), packet.echo_ident(), packet.echo_seq_no(), packet.data());
    let valid = packet.verify_checksum();
    let mut copy = bytes.to_vec();
    let mut reply = Icmpv4Packet::new_unchecked(&mut copy[..]);
    if reply.echo_request_to_reply() && valid {
        assert!(Icmpv4Packet::new_unchecked(&copy[..]).verify_checksum(), "echo reply checksum updated (RFC 1624)");
    }
}

fn tcp_segment(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(seg) = TcpSegment::new_checked(bytes) else {
        return;
    };
    let _ = (seg.checksum(), seg.urgent_at(), seg.verify_checksum(src, dst));
    let header_len = usize::from(seg.header_len());
    assert_eq!(seg.options().len(), header_len - tcp::HEADER_LEN);
    assert_eq!(seg.payload().len(), seg.payload_len());
    assert!(seg.seq_len() >= seg.payload_len());
    let repr = TcpRepr::parse(&seg);
    let mut buf = [0xa5u8; 60];
    let options_len = seg.options().len();
    let n = repr.emit_header(&mut buf, options_len).expect("a parsed header emits");
    assert_eq!(n, header_len);
    let again = TcpSegment::new_checked(&buf[..n]).expect("our TCP header checks");
    assert_eq!(TcpRepr::parse(&again), repr, "TCP repr round trip");
    tcp_options(seg.options());
}

fn tcp_options(opts: &[u8]) {
    let syn = SynOptions::parse(opts);
    assert_eq!(tcp_options::timestamps(opts), syn.timestamps, "fast timestamps vs the SYN walk");

    // Emitted and parsed back, the same options.
    let mut buf = [0xa5u8; 64];
    let n = syn.emit(&mut buf).expect("64 bytes hold any SynOptions");
    assert_eq!(n, syn.buffer_len());
    assert_eq!(n % 4, 0, "option block padded to 32 bits");
    assert_eq!(SynOptions::parse(&buf[..n]), syn, "SYN options round trip");

    // The strict iterator yields options within the block and ends.
    let mut used = 0;
    for (i, item) in TcpOptionIter::new(opts).enumerate() {
        assert!(i <= opts.len(), "option iterator does not end");
        if let Ok(o) = item {
            used += o.buffer_len();
        }
        assert!(used <= opts.len(), "options beyond their block");
    }
}

fn ipv4_options(opts: &[u8]) {
    let opts = &opts[..opts.len().min(ipv4_options::MAX_LEN)];
    let ours = [198, 18, 0, 1];
    let Ok(o) = ipv4_options::compile(opts, |a| a == ours, false) else {
        return;
    };
    for at in [o.rr, o.ts, o.srr, o.cipso].into_iter().flatten() {
        assert!(usize::from(at) >= ipv4::HEADER_LEN && usize::from(at) < ipv4::HEADER_LEN + opts.len());
    }
    if let Some(echo) = OptionsEcho::of_received(opts, &o, ours, 12_345, |a| a == ours) {
        options_echo(&echo);
    }
}

fn options_echo(echo: &OptionsEcho) {
    let n = echo.len();
    assert!(n <= ipv4_options::MAX_LEN && n % 4 == 0, "echo of {n} bytes does not fit an IPv4 header");
    let mut out = [0xa5u8; ipv4_options::MAX_LEN];
    echo.write(&mut out, [198, 18, 0, 1], 54_321);
    // Framed as options: every option's length stays inside the block.
    let mut i = 0;
    while i < n {
        match out[i] {
            0 => break,
            1 => i += 1,
            _ => {
                let len = usize::from(*out.get(i + 1).expect("option length byte"));
                assert!(len >= 2 && i + len <= n, "echoed option overruns the block");
                i += len;
            }
        }
    }
}
