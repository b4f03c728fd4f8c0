//! Recognising a TCP or UDP checksum its sender left unfinished.
//!
//! A Linux sender that offloads its transmit checksum (`CHECKSUM_PARTIAL`)
//! writes only the pseudo-header sum into the checksum field and leaves the
//! rest to the NIC: `__tcp_v4_send_check` sets `th->check =
//! ~tcp_v4_check(len, saddr, daddr, 0)`, `udp4_hwcsum` does the same for
//! UDP. Between two Linux interfaces (a veth pair) the skb keeps its
//! `ip_summed` flag and nobody minds, but a driver that copies the bytes
//! out without that flag (AF_XDP, AF_PACKET with no vnet header) hands over
//! a segment whose checksum is wrong in exactly this way. Linux would drop
//! it from a wire too (`tcp_v4_rcv`: `csum_error`), so dlisten counts it as
//! a bad checksum; recognising it lets the operator be told why and how to
//! fix it (`ethtool -K <peer> tx off`).

use super::checksum;
use super::ethernet::{EtherType, EthernetFrame};
use super::ipv4::{IpProtocol, Ipv4Packet};
use super::tcp::TcpSegment;
use super::udp::UdpPacket;

/// The transport a partial checksum was found on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialL4 {
    Tcp,
    Udp,
}

/// `Some` when `frame` is Ethernet + IPv4 + TCP or UDP whose checksum does
/// not verify and whose checksum field holds the pseudo-header sum alone,
/// as `CHECKSUM_PARTIAL` leaves it. `None` for anything else: other
/// protocols, fragments, truncated frames, correct or otherwise wrong
/// checksums, and UDP without a checksum (field 0).
pub fn partial_l4_checksum(frame: &[u8]) -> Option<PartialL4> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    // Only a first fragment would carry the header; offload never fragments.
    if ip.is_fragment() {
        return None;
    }
    let l4 = ip.payload();
    let len = u16::try_from(l4.len()).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let (kind, field, valid) = match ip.protocol() {
        IpProtocol::Tcp => {
            let tcp = TcpSegment::new_checked(l4).ok()?;
            (PartialL4::Tcp, tcp.checksum(), tcp.verify_checksum(src, dst))
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4).ok()?;
            if udp.checksum() == 0 {
                return None;
            }
            (PartialL4::Udp, udp.checksum(), udp.verify_checksum(src, dst))
        }
        _ => return None,
    };
    if valid {
        return None;
    }
    let protocol = match kind {
        PartialL4::Tcp => 6,
        PartialL4::Udp => 17,
    };
    let pseudo = checksum::fold(checksum::pseudo_header_ipv4(src.octets(), dst.octets(), protocol, len));
    // One's complement has two zeros: 0x0000 and 0xffff are the same sum.
    let same = |a: u16, b: u16| a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0);
    same(field, pseudo).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::{self, EthernetAddress};
    use crate::wire::{Ipv4Repr, TcpFlags, TcpRepr};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
    const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// An Ethernet/IPv4/TCP segment with `payload`, its TCP checksum as
    /// `csum` says: finished, partial (the pseudo-header sum, as Linux
    /// leaves it), or the given value.
    fn tcp_frame(payload: &[u8], csum: Csum) -> Vec<u8> {
        tcp_frame_from(PEER, payload, csum)
    }

    fn tcp_frame_from(src: Ipv4Addr, payload: &[u8], csum: Csum) -> Vec<u8> {
        let tcp_len = 20 + payload.len();
        let mut f = vec![0u8; 34 + tcp_len];
        ethernet::emit_header(&mut f, OUR_MAC, PEER_MAC, EtherType::Ipv4).unwrap();
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 1,
            ack_number: 2,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window_len: 502,
        };
        repr.emit_header(&mut f[34..], 0).unwrap();
        f[54..].copy_from_slice(payload);
        let mut seg = TcpSegment::new_unchecked(&mut f[34..]);
        match csum {
            Csum::Full => seg.fill_checksum(src, US),
            Csum::Partial => {
                let p = checksum::pseudo_header_ipv4(src.octets(), US.octets(), 6, tcp_len as u16);
                seg.set_checksum(checksum::fold(p));
            }
            Csum::Value(v) => seg.set_checksum(v),
        }
        ip_header(&mut f, src, IpProtocol::Tcp, tcp_len);
        f
    }

    fn ip_header(f: &mut [u8], src: Ipv4Addr, protocol: IpProtocol, l4_len: usize) {
        Ipv4Repr {
            src_addr: src,
            dst_addr: US,
            protocol,
            payload_len: l4_len as u16,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            tos: 0,
        }
        .emit(&mut f[14..])
        .unwrap();
    }

    fn udp_frame(payload: &[u8], csum: Csum) -> Vec<u8> {
        let udp_len = 8 + payload.len();
        let mut f = vec![0u8; 34 + udp_len];
        ethernet::emit_header(&mut f, OUR_MAC, PEER_MAC, EtherType::Ipv4).unwrap();
        let mut udp = UdpPacket::new_unchecked(&mut f[34..]);
        udp.set_src_port(5353);
        udp.set_dst_port(53);
        udp.set_len(udp_len as u16);
        udp.payload_mut().copy_from_slice(payload);
        match csum {
            Csum::Full => udp.fill_checksum(PEER, US),
            Csum::Partial => {
                let p = checksum::pseudo_header_ipv4(PEER.octets(), US.octets(), 17, udp_len as u16);
                udp.set_checksum(checksum::fold(p));
            }
            Csum::Value(v) => udp.set_checksum(v),
        }
        ip_header(&mut f, PEER, IpProtocol::Udp, udp_len);
        f
    }

    #[derive(Clone, Copy)]
    enum Csum {
        Full,
        Partial,
        Value(u16),
    }

    #[test]
    fn partial_tcp_is_recognised() {
        let f = tcp_frame(b"GET / HTTP/1.1\r\n\r\n", Csum::Partial);
        assert_eq!(partial_l4_checksum(&f), Some(PartialL4::Tcp));
        // A bare ACK, as the handshake's last segment.
        assert_eq!(partial_l4_checksum(&tcp_frame(b"", Csum::Partial)), Some(PartialL4::Tcp));
    }

    #[test]
    fn partial_udp_is_recognised() {
        assert_eq!(partial_l4_checksum(&udp_frame(b"query", Csum::Partial)), Some(PartialL4::Udp));
    }

    #[test]
    fn finished_checksums_are_not_partial() {
        assert_eq!(partial_l4_checksum(&tcp_frame(b"data", Csum::Full)), None);
        assert_eq!(partial_l4_checksum(&udp_frame(b"data", Csum::Full)), None);
        // UDP without a checksum.
        assert_eq!(partial_l4_checksum(&udp_frame(b"data", Csum::Value(0))), None);
    }

    #[test]
    fn otherwise_wrong_checksums_are_not_partial() {
        let f = tcp_frame(b"data", Csum::Partial);
        let field = u16::from_be_bytes([f[50], f[51]]);
        let wrong = tcp_frame(b"data", Csum::Value(field.wrapping_add(1)));
        assert_eq!(partial_l4_checksum(&wrong), None);
    }

    #[test]
    fn the_other_zero_is_the_same_sum() {
        // From 198.18.115.191 a bare segment's pseudo-header sum folds to
        // 0xffff (c612 + 73bf + c612 + 0001 + 6 + 20); a sender may write it as 0x0000.
        let src = Ipv4Addr::new(198, 18, 115, 191);
        let mut f = tcp_frame_from(src, b"", Csum::Partial);
        assert_eq!(&f[50..52], &[0xff, 0xff]);
        assert_eq!(partial_l4_checksum(&f), Some(PartialL4::Tcp));
        f[50..52].copy_from_slice(&[0, 0]);
        assert_eq!(partial_l4_checksum(&f), Some(PartialL4::Tcp));
    }

    #[test]
    fn not_tcp_udp_or_ipv4() {
        let mut arp = tcp_frame(b"", Csum::Partial);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(partial_l4_checksum(&arp), None);
        let mut icmp = tcp_frame(b"", Csum::Partial);
        icmp[23] = 1;
        assert_eq!(partial_l4_checksum(&icmp), None);
        let f = tcp_frame(b"abc", Csum::Partial);
        assert_eq!(partial_l4_checksum(&f[..40]), None);
        assert_eq!(partial_l4_checksum(&[]), None);
    }

    #[test]
    fn fragments_are_not_looked_at() {
        let mut f = tcp_frame(b"abcd", Csum::Partial);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..34]);
        ip.set_frag(false, true, 0);
        ip.fill_checksum();
        assert_eq!(partial_l4_checksum(&f), None);
    }

    proptest! {
        #[test]
        fn partial_is_recognised_for_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let f = tcp_frame(&payload, Csum::Partial);
            let full = tcp_frame(&payload, Csum::Full);
            // The rare payload whose finished checksum equals the partial one is a valid segment.
            let expect = if f == full { None } else { Some(PartialL4::Tcp) };
            prop_assert_eq!(partial_l4_checksum(&f), expect);
            prop_assert_eq!(partial_l4_checksum(&full), None);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = partial_l4_checksum(&bytes);
        }
    }
}
