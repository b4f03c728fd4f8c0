//! Arbitrary bytes through the IPv6 parsers: the fixed header, the
//! extension-header walk, ICMPv6 and neighbour discovery. None may panic;
//! every offset and pointer they return lies inside the packet, and what
//! the ICMPv6 and neighbour discovery readers accept re-emits to itself.
//! The first byte picks the ICMPv6 type family, hop limit and multicast
//! flag, so the validation branches are reached; the rest is an IPv6 packet.

use crate::wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use crate::wire::ipv6_ext::{self, ExtError};
use crate::wire::ndp::NdiscRepr;

/// The harness (cargo-fuzz target `ipv6_parsers`).
pub fn run(data: &[u8]) {
    let Some((&ctl, bytes)) = data.split_first() else {
        return;
    };
    let Ok(ip) = Ipv6Packet::new_checked(bytes) else {
        return;
    };
    let _ = Ipv6Repr::parse(&ip);
    let packet = ip.packet();
    let mc = ctl & 1 != 0;
    match ipv6_ext::walk(packet, mc) {
        Ok(u) => {
            assert!(u.nhoff < u.offset && u.offset <= packet.len());
            assert_eq!(u8::from(u.next_header), packet[u.nhoff]);
            let msg = &packet[u.offset..];
            if let Ok(icmp) = Icmpv6Packet::new_checked(msg) {
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                let _ = icmp.verify_checksum(&src, &dst);
                if let Some(r) = Icmpv6Repr::parse(&icmp) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut buf, &src, &dst).unwrap();
                    assert_eq!(Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&buf[..]).unwrap()), Some(r));
                }
                let hop = if ctl & 2 != 0 { 255 } else { ip.hop_limit() };
                if let Ok(r) = NdiscRepr::parse(&icmp, hop, &src, &dst) {
                    let mut buf = vec![0u8; r.buffer_len()];
                    r.emit(&mut buf, &src, &dst).unwrap();
                    assert_eq!(NdiscRepr::parse(&Icmpv6Packet::new_checked(&buf[..]).unwrap(), hop, &src, &dst), Ok(r));
                }
            }
        }
        // At most the end: a fragment header promised by a zero payload
        // length is pointed at where it would start, as Linux does.
        Err(ExtError::ParamProblem { pointer, .. }) => assert!((pointer as usize) <= packet.len()),
        Err(_) => {}
    }
    let _ = ipv6_ext::skip_ext_headers(packet, 40, packet[6]);
}
