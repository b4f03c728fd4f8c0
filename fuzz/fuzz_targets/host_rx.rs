//! Arbitrary bytes as a received frame: `Host::rx` must never panic, and
//! whatever it sends must be a frame a peer accepts (lengths and checksums).
//! The first byte picks what the NIC claims about checksums, so the
//! offload paths are fuzzed too; the rest is the frame.
#![no_main]

use dlisten::engine::host::{CsumStatus, Host, HostConfig, NoSockets, RxMeta};
use dlisten::engine::time::Instant;
use dlisten::engine::tx::VecSink;
use dlisten::stats::Counters;
use dlisten::wire::ethernet::{EtherType, EthernetAddress, EthernetFrame};
use dlisten::wire::icmp::Icmpv4Packet;
use dlisten::wire::ipv4::{IpProtocol, Ipv4Packet};
use dlisten::wire::tcp::TcpSegment;
use dlisten::wire::udp::UdpPacket;
use dlisten::wire::ArpPacket;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// The corpus frames (fuzz/corpus/host_rx) are addressed to these.
const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0xc6, 0x12, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const OUR_IP2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

fn csum(bits: u8) -> CsumStatus {
    match bits & 3 {
        1 => CsumStatus::Good,
        2 => CsumStatus::Bad,
        _ => CsumStatus::Unknown,
    }
}

fn check_sent(frame: &[u8]) {
    let eth = EthernetFrame::new_checked(frame).expect("sent frame has an Ethernet header");
    assert_eq!(eth.src_addr(), OUR_MAC);
    match eth.ethertype() {
        EtherType::Arp => {
            ArpPacket::new_checked(eth.payload()).expect("sent ARP parses");
        }
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("sent IPv4 parses");
            assert_eq!(usize::from(ip.total_len()), eth.payload().len());
            assert!(ip.verify_checksum());
            let (src, dst, l4) = (ip.src_addr(), ip.dst_addr(), ip.payload());
            match ip.protocol() {
                IpProtocol::Tcp => {
                    let s = TcpSegment::new_checked(l4).expect("sent TCP parses");
                    assert!(s.verify_checksum(src, dst));
                }
                IpProtocol::Icmp => {
                    let m = Icmpv4Packet::new_checked(l4).expect("sent ICMP parses");
                    assert!(m.verify_checksum());
                }
                IpProtocol::Udp => {
                    let u = UdpPacket::new_checked(l4).expect("sent UDP parses");
                    assert!(u.verify_checksum(src, dst));
                }
                other => panic!("sent IP protocol {other:?}"),
            }
        }
        other => panic!("sent ethertype {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let meta = RxMeta { ip_csum: csum(flags), l4_csum: csum(flags >> 2), rss_hash: None };
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP, OUR_IP2] };
    let mut host = Host::new(cfg, Arc::new(Counters::new()));
    let mut tx = VecSink::default();
    host.rx(Instant::from_secs(1), frame, meta, &mut NoSockets, &mut tx);
    assert!(tx.frames.len() <= 1);
    for f in &tx.frames {
        check_sent(f);
    }
});
