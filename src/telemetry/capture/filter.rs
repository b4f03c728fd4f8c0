//! Which frames a capture keeps: a direction, an IPv4 host and a TCP/UDP
//! port, each optional, all of them required (tcpdump's
//! `host H and port P`). A frame too short or malformed for a test simply
//! does not match it: the filter never fails on wire input.

use crate::wire::ethernet::HEADER_LEN;
use crate::wire::{ArpPacket, EtherType, EthernetFrame, IpProtocol, Ipv4Packet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Frames the worker received, frames it handed to the port, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    Rx,
    Tx,
    #[default]
    Both,
}

impl Direction {
    pub fn rx(self) -> bool {
        matches!(self, Direction::Rx | Direction::Both)
    }

    pub fn tx(self) -> bool {
        matches!(self, Direction::Tx | Direction::Both)
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
            Direction::Both => "both",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Direction, String> {
        match s {
            "rx" | "in" => Ok(Direction::Rx),
            "tx" | "out" => Ok(Direction::Tx),
            "both" | "inout" => Ok(Direction::Both),
            other => Err(format!("direction {other:?}: expected rx, tx or both")),
        }
    }
}

/// `host` and `port`, as a worker applies them to each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CaptureFilter {
    /// IPv4 source or destination (ARP: sender or target protocol address).
    pub host: Option<Ipv4Addr>,
    /// TCP or UDP source or destination port (first fragments only).
    pub port: Option<u16>,
}

impl CaptureFilter {
    /// Does the Ethernet frame `frame` pass?
    pub fn matches(&self, frame: &[u8]) -> bool {
        if self.host.is_none() && self.port.is_none() {
            return true;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
        let l3 = &frame[HEADER_LEN..];
        match eth.ethertype() {
            EtherType::Ipv4 => self.matches_ipv4(l3),
            // ARP has addresses but no ports: `host` alone can match it.
            EtherType::Arp if self.port.is_none() => {
                let Ok(arp) = ArpPacket::new_checked(l3) else { return false };
                let host = self.host.unwrap_or(Ipv4Addr::UNSPECIFIED);
                arp.check_layout().is_ok()
                    && (arp.sender_protocol_addr() == host || arp.target_protocol_addr() == host)
            }
            _ => false,
        }
    }

    fn matches_ipv4(&self, l3: &[u8]) -> bool {
        let Ok(ip) = Ipv4Packet::new_checked(l3) else { return false };
        if let Some(h) = self.host {
            if ip.src_addr() != h && ip.dst_addr() != h {
                return false;
            }
        }
        let Some(p) = self.port else { return true };
        // As BPF's `port`: the first 4 bytes of a TCP or UDP header, which
        // only the first fragment carries.
        if !matches!(ip.protocol(), IpProtocol::Tcp | IpProtocol::Udp) || ip.frag_offset() != 0 {
            return false;
        }
        let l4 = ip.payload();
        if l4.len() < 4 {
            return false;
        }
        let src = u16::from_be_bytes([l4[0], l4[1]]);
        let dst = u16::from_be_bytes([l4[2], l4[3]]);
        src == p || dst == p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::frame::{ip_frame, ip_to_us, tcp_segment, TcpSpec};
    use proptest::prelude::*;

    /// A SYN from `src:sport` to `dst:dport`, in a frame.
    fn tcp_frame_to(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let ip = crate::wire::Ipv4Repr { src_addr: src, dst_addr: dst, ..ip_to_us(IpProtocol::Tcp) };
        ip_frame(&ip, &tcp_segment(src, dst, &TcpSpec { src_port: sport, dst_port: dport, ..TcpSpec::default() }))
    }

    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const OTHER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 9);

    fn f(host: Option<Ipv4Addr>, port: Option<u16>) -> CaptureFilter {
        CaptureFilter { host, port }
    }

    #[test]
    fn host_and_port_both_ways() {
        let syn = tcp_frame_to(CLIENT, 40000, SERVER, 80);
        let synack = tcp_frame_to(SERVER, 80, CLIENT, 40000);
        for frame in [&syn, &synack] {
            assert!(f(None, None).matches(frame));
            assert!(f(Some(SERVER), None).matches(frame));
            assert!(f(Some(CLIENT), None).matches(frame));
            assert!(f(None, Some(80)).matches(frame));
            assert!(f(None, Some(40000)).matches(frame));
            assert!(f(Some(SERVER), Some(80)).matches(frame));
            assert!(!f(Some(OTHER), None).matches(frame));
            assert!(!f(None, Some(81)).matches(frame));
            assert!(!f(Some(SERVER), Some(81)).matches(frame), "both must hold");
            assert!(!f(Some(OTHER), Some(80)).matches(frame), "both must hold");
        }
    }

    #[test]
    fn arp_matches_host_but_never_port() {
        let mut arp = vec![0xffu8; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
        // Ethernet/IPv4 request from CLIENT for SERVER.
        arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2]);
        arp.extend_from_slice(&CLIENT.octets());
        arp.extend_from_slice(&[0; 6]);
        arp.extend_from_slice(&SERVER.octets());
        assert!(f(Some(SERVER), None).matches(&arp));
        assert!(f(Some(CLIENT), None).matches(&arp));
        assert!(!f(Some(OTHER), None).matches(&arp));
        assert!(!f(None, Some(80)).matches(&arp));
        assert!(f(None, None).matches(&arp));
    }

    #[test]
    fn a_later_fragment_has_no_ports() {
        let mut frame = tcp_frame_to(CLIENT, 40000, SERVER, 80);
        // Fragment offset 8 (64 bytes): the "ports" there are payload.
        frame[HEADER_LEN + 6] = 0;
        frame[HEADER_LEN + 7] = 8;
        assert!(!f(None, Some(80)).matches(&frame));
        assert!(f(Some(SERVER), None).matches(&frame), "the host is in every fragment");
    }

    #[test]
    fn truncated_frames_do_not_match_a_filter() {
        let frame = tcp_frame_to(CLIENT, 40000, SERVER, 80);
        for len in [0, 5, HEADER_LEN, HEADER_LEN + 19, HEADER_LEN + 21] {
            assert!(!f(None, Some(80)).matches(&frame[..len]), "{len}");
        }
        assert!(f(None, None).matches(&frame[..3]), "no filter: everything");
    }

    #[test]
    fn direction_names() {
        for d in [Direction::Rx, Direction::Tx, Direction::Both] {
            assert_eq!(d.name().parse::<Direction>().unwrap(), d);
        }
        assert_eq!((Direction::Rx.rx(), Direction::Rx.tx()), (true, false));
        assert_eq!((Direction::Tx.rx(), Direction::Tx.tx()), (false, true));
        assert_eq!((Direction::Both.rx(), Direction::Both.tx()), (true, true));
        assert!("sideways".parse::<Direction>().unwrap_err().contains("rx, tx or both"));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            host in any::<Option<[u8; 4]>>(),
            port in any::<Option<u16>>(),
        ) {
            let _ = f(host.map(Ipv4Addr::from), port).matches(&bytes);
        }

        #[test]
        fn agrees_with_the_four_tuple(
            src in any::<[u8; 4]>(), sport in any::<u16>(), dst in any::<[u8; 4]>(), dport in any::<u16>(),
            host in any::<[u8; 4]>(), port in any::<u16>(),
        ) {
            let (src, dst, host) = (Ipv4Addr::from(src), Ipv4Addr::from(dst), Ipv4Addr::from(host));
            let frame = tcp_frame_to(src, sport, dst, dport);
            let host_ok = host == src || host == dst;
            let port_ok = port == sport || port == dport;
            prop_assert_eq!(f(Some(host), None).matches(&frame), host_ok);
            prop_assert_eq!(f(None, Some(port)).matches(&frame), port_ok);
            prop_assert_eq!(f(Some(host), Some(port)).matches(&frame), host_ok && port_ok);
        }
    }
}
