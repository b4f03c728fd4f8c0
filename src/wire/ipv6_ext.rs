//! The IPv6 extension-header walk of a host, as Linux's input path does it
//! (ip6_input.c `ip6_rcv_core` / `ip6_protocol_deliver_rcu`, exthdrs.c,
//! reassembly.c `ipv6_frag_rcv`).
//!
//! - Hop-by-hop options only directly after the fixed header
//!   (`ipv6_parse_hopopts`); anywhere else next header 0 has no handler and
//!   is an unrecognised next header, like any unknown protocol.
//! - Options (hop-by-hop and destination): Pad1/PadN (at most 7 bytes of
//!   padding in a row, PadN all zeros), at most 8 other options per header
//!   (`max_hbh_opts_number`, `max_dst_opts_number`); an unknown option is
//!   handled by the two high bits of its type (`ip6_tlvopt_unknown`).
//! - Routing headers: with segments left 0 skipped (type 2 dropped), with
//!   segments left a parameter problem at the type (`ipv6_rthdr_rcv`:
//!   `accept_source_route` 0 and no forwarding); segment routing (types 3,
//!   4) silently dropped (`seg6_enabled`, `rpl_seg_enabled` off).
//! - Fragment headers: an atomic fragment (offset 0, no M) goes on as
//!   unfragmented (RFC 6946); any other fragment ends the walk (the host
//!   counts and drops it: no reassembly), after the checks
//!   `ip6_frag_queue` makes before queueing.
//!
//! Offsets and pointers count from the start of the IPv6 header.

use super::ipv6::{self, NextHeader};
use super::icmpv6::Icmpv6ParamProblem;

/// Linux's `max_hbh_opts_number` / `max_dst_opts_number` default.
pub const MAX_OPTS: usize = 8;

/// Option types (RFC 8200 §4.2, IANA "Destination Options and Hop-by-Hop Options").
pub mod opt {
    pub const PAD1: u8 = 0x00;
    pub const PADN: u8 = 0x01;
    pub const JUMBO: u8 = 0xc2;
    pub const ROUTER_ALERT: u8 = 0x05;
    pub const CALIPSO: u8 = 0x07;
    pub const IOAM: u8 = 0x31;
    /// Home address (RFC 6275), destination options only.
    pub const HOME_ADDRESS: u8 = 0xc9;
}

/// Why a packet stops in its extension headers, and what Linux does then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtError {
    /// Malformed (truncated header, bad padding, too many options, bad
    /// option length) or refused silently: drop, Ip6InHdrErrors.
    Header,
    /// Drop, Ip6InHdrErrors, and answer ICMPv6 parameter problem with this
    /// code, pointing at `pointer`.
    ParamProblem { code: Icmpv6ParamProblem, pointer: u32 },
    /// Routing header to a multicast destination, or a type 2 routing
    /// header that is not ours to process: drop, Ip6InAddrErrors.
    Address,
    /// Jumbo payload option promising more than the packet holds: drop,
    /// Ip6InTruncatedPkts.
    Truncated,
    /// Dropped without a counter (segment routing headers, off by default).
    Discard,
}

/// A fragment header of a real fragment (not atomic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of the fragment header.
    pub header_at: usize,
    /// Fragment offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
    /// Next header of the fragmentable part.
    pub next_header: NextHeader,
}

/// Where the walk ended: the upper-layer header (or the first header no
/// handler takes), or a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol found. `HopByHop` here means one that was not first:
    /// an unrecognised next header, as any `Unknown`.
    pub next_header: NextHeader,
    /// Offset of that header.
    pub offset: usize,
    /// Offset of the byte that named it (Linux's `nhoff`, the pointer of an
    /// "unrecognised next header" parameter problem).
    pub nhoff: usize,
    /// Set when the walk stopped at a fragment (`next_header` is then `Fragment`).
    pub fragment: Option<Fragment>,
    /// An atomic fragment header was passed (Linux's IP6SKB_FRAGMENTED:
    /// neighbour discovery refuses such packets).
    pub fragmented: bool,
    /// A router alert option was present (hop-by-hop).
    pub router_alert: bool,
}

/// The walk's position between headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub next_header: u8,
    pub offset: usize,
    pub nhoff: usize,
    pub router_alert: bool,
}

/// Length of the extension header at `off` (`(hdrlen + 1) * 8`), or
/// `Header` if fewer than 8 bytes or than that length remain.
fn ext_len(packet: &[u8], off: usize) -> Result<usize, ExtError> {
    if packet.len() < off + 8 {
        return Err(ExtError::Header);
    }
    let len = (usize::from(packet[off + 1]) + 1) * 8;
    if packet.len() < off + len {
        return Err(ExtError::Header);
    }
    Ok(len)
}

/// Step one of the walk (`ip6_rcv_core`): the hop-by-hop header if it
/// directly follows the fixed header. `packet` is the IPv6 packet cut at its
/// payload length (`Ipv6Packet::packet`); shorter than the fixed header it
/// is a `Header` error.
pub fn hop_by_hop(packet: &[u8], dst_multicast: bool) -> Result<Cursor, ExtError> {
    if packet.len() < ipv6::HEADER_LEN {
        return Err(ExtError::Header);
    }
    let nh = packet[ipv6::NEXT_HEADER_OFFSET];
    let first = Cursor { next_header: nh, offset: ipv6::HEADER_LEN, nhoff: ipv6::NEXT_HEADER_OFFSET, router_alert: false };
    if nh != u8::from(NextHeader::HopByHop) {
        return Ok(first);
    }
    let off = ipv6::HEADER_LEN;
    let len = ext_len(packet, off)?;
    let router_alert = parse_tlv(packet, off, len, true, dst_multicast)?;
    Ok(Cursor { next_header: packet[off], offset: off + len, nhoff: off, router_alert })
}

/// Step two (`ip6_protocol_deliver_rcu` and the extension handlers): the
/// headers after the hop-by-hop one up to the upper layer.
pub fn walk_from(packet: &[u8], at: Cursor, dst_multicast: bool) -> Result<UpperLayer, ExtError> {
    if packet.len() < ipv6::HEADER_LEN {
        return Err(ExtError::Header);
    }
    let Cursor { next_header: mut nh, offset: mut off, mut nhoff, router_alert } = at;
    let mut fragmented = false;
    loop {
        match NextHeader::from(nh) {
            NextHeader::DestOptions => {
                // ipv6_destopt_rcv
                let len = ext_len(packet, off)?;
                parse_tlv(packet, off, len, false, dst_multicast)?;
                (nh, nhoff, off) = (packet[off], off, off + len);
            }
            NextHeader::Routing => {
                let len = routing(packet, off, dst_multicast)?;
                (nh, nhoff, off) = (packet[off], off, off + len);
            }
            NextHeader::Fragment => match fragment(packet, off)? {
                None => {
                    fragmented = true;
                    (nh, nhoff, off) = (packet[off], off, off + 8);
                }
                Some(f) => {
                    return Ok(UpperLayer { next_header: NextHeader::Fragment, offset: off, nhoff, fragment: Some(f), fragmented, router_alert })
                }
            },
            other => return Ok(UpperLayer { next_header: other, offset: off, nhoff, fragment: None, fragmented, router_alert }),
        }
    }
}

/// Both steps.
pub fn walk(packet: &[u8], dst_multicast: bool) -> Result<UpperLayer, ExtError> {
    walk_from(packet, hop_by_hop(packet, dst_multicast)?, dst_multicast)
}

/// `ip6_parse_tlv` over the header at `off` of `len` bytes. Returns whether
/// a router alert option was seen.
fn parse_tlv(packet: &[u8], off: usize, len: usize, hop_by_hop: bool, dst_multicast: bool) -> Result<bool, ExtError> {
    let end = off + len;
    let mut at = off + 2;
    let mut padlen = 0usize;
    let mut count = 0usize;
    let mut router_alert = false;
    while at < end {
        let kind = packet[at];
        if kind == opt::PAD1 {
            padlen += 1;
            if padlen > 7 {
                return Err(ExtError::Header);
            }
            at += 1;
            continue;
        }
        if end - at < 2 {
            return Err(ExtError::Header);
        }
        let optlen = usize::from(packet[at + 1]) + 2;
        if optlen > end - at {
            return Err(ExtError::Header);
        }
        if kind == opt::PADN {
            // RFC 4942 §2.1.9.5: padding only aligns to 8, and carries zeros.
            padlen += optlen;
            if padlen > 7 || packet[at + 2..at + optlen].iter().any(|&b| b != 0) {
                return Err(ExtError::Header);
            }
        } else {
            count += 1;
            if count > MAX_OPTS {
                return Err(ExtError::Header);
            }
            let pointer = at as u32;
            match (hop_by_hop, kind) {
                (true, opt::ROUTER_ALERT) => {
                    // ipv6_hop_ra
                    if packet[at + 1] != 2 {
                        return Err(ExtError::Header);
                    }
                    router_alert = true;
                }
                (true, opt::JUMBO) => return Err(jumbo(packet, at)),
                (true, opt::CALIPSO) => {
                    // ipv6_hop_calipso's length checks (no CALIPSO DOI is configured).
                    let l = packet[at + 1];
                    if l < 8 || usize::from(packet[at + 6]) * 4 + 8 > usize::from(l) {
                        return Err(ExtError::Header);
                    }
                }
                (true, opt::IOAM) => {
                    // ipv6_hop_ioam: 4n-aligned, else ignored while ioam6_enabled is 0.
                    if at & 3 != 0 {
                        return Err(ExtError::Header);
                    }
                }
                // ipv6_dest_hao: a home address needs an xfrm state we never have.
                (false, opt::HOME_ADDRESS) => return Err(ExtError::Header),
                _ => unknown_option(kind, pointer, dst_multicast)?,
            }
            padlen = 0;
        }
        at += optlen;
    }
    Ok(router_alert)
}

/// `ip6_tlvopt_unknown`: the two high bits of the option type decide.
fn unknown_option(kind: u8, pointer: u32, dst_multicast: bool) -> Result<(), ExtError> {
    let problem = ExtError::ParamProblem { code: Icmpv6ParamProblem::UnrecognizedOption, pointer };
    match kind >> 6 {
        0 => Ok(()),
        1 => Err(ExtError::Header),
        // 11: an ICMPv6 error unless the destination was multicast.
        3 if dst_multicast => Err(ExtError::Header),
        // 10: an ICMPv6 error even to a multicast destination.
        _ => Err(problem),
    }
}

/// `ipv6_hop_jumbo`: never valid in a packet that fits a frame.
fn jumbo(packet: &[u8], at: usize) -> ExtError {
    if packet[at + 1] != 4 || at & 3 != 2 {
        return ExtError::Header;
    }
    let jumbo_len = u32::from_be_bytes([packet[at + 2], packet[at + 3], packet[at + 4], packet[at + 5]]);
    if jumbo_len <= 0xffff {
        return ExtError::ParamProblem { code: Icmpv6ParamProblem::ErroneousHeaderField, pointer: at as u32 + 2 };
    }
    if packet[ipv6::PAYLOAD_LEN_OFFSET..ipv6::PAYLOAD_LEN_OFFSET + 2] != [0, 0] {
        return ExtError::ParamProblem { code: Icmpv6ParamProblem::ErroneousHeaderField, pointer: at as u32 };
    }
    ExtError::Truncated
}

/// `ipv6_rthdr_rcv` on a host (no forwarding, `accept_source_route` 0).
/// Returns the header's length when the walk goes on.
fn routing(packet: &[u8], off: usize, dst_multicast: bool) -> Result<usize, ExtError> {
    let len = ext_len(packet, off)?;
    if dst_multicast {
        return Err(ExtError::Address);
    }
    let (hdrlen, kind, segments_left) = (packet[off + 1], packet[off + 2], packet[off + 3]);
    match kind {
        // Segment routing (SRv6, RPL): seg6_enabled / rpl_seg_enabled are 0.
        3 | 4 => return Err(ExtError::Discard),
        // Mobile IPv6: processed only for a home address option of ours.
        2 if segments_left == 0 => return Err(ExtError::Address),
        2 if hdrlen != 2 || segments_left != 1 => return Err(ExtError::Header),
        2 => return Err(ExtError::Address),
        _ if segments_left == 0 => {}
        _ => return Err(ExtError::ParamProblem { code: Icmpv6ParamProblem::ErroneousHeaderField, pointer: off as u32 + 2 }),
    }
    Ok(len)
}

/// `ipv6_frag_rcv` and the checks of `ip6_frag_queue`: `None` for an atomic
/// fragment, the fragment otherwise.
fn fragment(packet: &[u8], off: usize) -> Result<Option<Fragment>, ExtError> {
    let fail_hdr = ExtError::ParamProblem { code: Icmpv6ParamProblem::ErroneousHeaderField, pointer: off as u32 };
    let payload_len = usize::from(u16::from_be_bytes([packet[ipv6::PAYLOAD_LEN_OFFSET], packet[ipv6::PAYLOAD_LEN_OFFSET + 1]]));
    if payload_len == 0 || packet.len() < off + 8 {
        return Err(fail_hdr);
    }
    let frag_off = u16::from_be_bytes([packet[off + 2], packet[off + 3]]);
    let (offset, more) = (frag_off & 0xfff8, frag_off & 1 != 0);
    if offset == 0 && !more {
        return Ok(None);
    }
    // The fragment's end in the original payload (from the payload length,
    // as Linux: a caller's buffer may run longer).
    let frag_len = (ipv6::HEADER_LEN + payload_len).checked_sub(off + 8).ok_or(fail_hdr)?;
    let end = usize::from(offset) + frag_len;
    if end > 0xffff {
        return Err(ExtError::ParamProblem { code: Icmpv6ParamProblem::ErroneousHeaderField, pointer: off as u32 + 2 });
    }
    // RFC 8200 §4.5: every fragment but the last is a multiple of 8 long.
    if more && end & 7 != 0 {
        return Err(ExtError::ParamProblem {
            code: Icmpv6ParamProblem::ErroneousHeaderField,
            pointer: ipv6::PAYLOAD_LEN_OFFSET as u32,
        });
    }
    Ok(Some(Fragment {
        header_at: off,
        offset,
        more,
        ident: u32::from_be_bytes([packet[off + 4], packet[off + 5], packet[off + 6], packet[off + 7]]),
        next_header: NextHeader::from(packet[off]),
    }))
}

/// Linux's `ipv6_skip_exthdr`: skips hop-by-hop, routing, destination
/// options, AH and first-fragment headers from `start` without checking
/// them. Returns the protocol after them, its offset and the fragment
/// offset field seen (0 without a fragment header); `None` if a header is
/// cut short or the chain ends in "no next header". A non-first fragment
/// stops the walk at its fragment header.
pub fn skip_ext_headers(packet: &[u8], mut start: usize, mut nh: u8) -> Option<(u8, usize, u16)> {
    let mut frag_off = 0u16;
    loop {
        let len = match NextHeader::from(nh) {
            NextHeader::HopByHop | NextHeader::Routing | NextHeader::DestOptions => (usize::from(*packet.get(start + 1)?) + 1) * 8,
            NextHeader::Fragment => {
                let b = packet.get(start + 2..start + 4)?;
                frag_off = u16::from_be_bytes([b[0], b[1]]);
                if frag_off & !7 != 0 {
                    return Some((nh, start, frag_off));
                }
                8
            }
            // Authentication header (RFC 4302): length in 4-byte units, minus 2.
            NextHeader::Unknown(51) => (usize::from(*packet.get(start + 1)?) + 2) * 4,
            NextHeader::NoNextHeader => return None,
            _ => return Some((nh, start, frag_off)),
        };
        nh = *packet.get(start)?;
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr};
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
    const PP: fn(Icmpv6ParamProblem, u32) -> ExtError = |code, pointer| ExtError::ParamProblem { code, pointer };
    use Icmpv6ParamProblem::*;

    /// A packet with `first` as next header and `rest` after the fixed header.
    fn packet(first: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: first.into(),
            payload_len: rest.len() as u16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut p)
        .unwrap();
        p.extend_from_slice(rest);
        p
    }

    fn run(first: u8, rest: &[u8]) -> Result<UpperLayer, ExtError> {
        let p = packet(first, rest);
        walk(Ipv6Packet::new_checked(&p[..]).unwrap().packet(), false)
    }

    fn upper(nh: NextHeader, offset: usize, nhoff: usize) -> UpperLayer {
        UpperLayer { next_header: nh, offset, nhoff, fragment: None, fragmented: false, router_alert: false }
    }

    const TCP_HDR: [u8; 20] = [0; 20];

    #[test]
    fn no_extension_headers() {
        assert_eq!(run(6, &TCP_HDR), Ok(upper(NextHeader::Tcp, 40, 6)));
        assert_eq!(run(59, &[]), Ok(upper(NextHeader::NoNextHeader, 40, 6)));
        assert_eq!(run(200, &[]), Ok(upper(NextHeader::Unknown(200), 40, 6)));
    }

    #[test]
    fn hop_by_hop_then_dest_options_then_tcp() {
        // HBH: next DSTOPT, len 0, PadN(4 zero bytes). DSTOPT: next TCP, len 0,
        // Pad1, Pad1, an unknown skippable option (type 0x1e) of 2 bytes.
        let mut rest = vec![60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 0, 0, 0x1e, 2, 0xaa, 0xbb];
        rest.extend_from_slice(&TCP_HDR);
        assert_eq!(run(0, &rest), Ok(upper(NextHeader::Tcp, 56, 48)));
    }

    #[test]
    fn router_alert_is_recorded_and_checked() {
        let rest = [6, 0, 5, 2, 0, 0, 1, 0];
        let mut got = run(0, &rest).unwrap();
        assert!(got.router_alert);
        got.router_alert = false;
        assert_eq!(got, upper(NextHeader::Tcp, 48, 40));
        // A router alert of the wrong length.
        assert_eq!(run(0, &[6, 0, 5, 1, 0, 0, 0, 0]), Err(ExtError::Header));
    }

    #[test]
    fn hop_by_hop_not_first_is_an_unknown_header() {
        // DSTOPT (PadN 4) then next header 0.
        let rest = [0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(run(60, &rest), Ok(upper(NextHeader::HopByHop, 48, 40)));
    }

    #[test]
    fn unknown_options_by_their_high_bits() {
        for (kind, unicast, multicast) in [
            (0x1e, None, None),
            (0x5e, Some(ExtError::Header), Some(ExtError::Header)),
            (0x9e, Some(PP(UnrecognizedOption, 44)), Some(PP(UnrecognizedOption, 44))),
            (0xde, Some(PP(UnrecognizedOption, 44)), Some(ExtError::Header)),
        ] {
            // DSTOPT: PadN(2), then the option (2 bytes of data).
            let rest = [6, 0, 1, 0, kind, 2, 0, 0];
            let p = packet(60, &rest);
            let got = |mc| walk(&p, mc).err();
            assert_eq!(got(false), unicast, "kind {kind:#x}");
            assert_eq!(got(true), multicast, "kind {kind:#x}");
            // The same in a hop-by-hop header.
            let p = packet(0, &rest);
            assert_eq!(walk(&p, false).err(), unicast, "hbh kind {kind:#x}");
        }
    }

    #[test]
    fn bad_padding_and_too_many_options() {
        // Six bytes of padding in a row are fine (Pad1, Pad1, PadN of 4), fourteen are not.
        assert_eq!(run(60, &[6, 0, 0, 0, 1, 2, 0, 0]), Ok(upper(NextHeader::Tcp, 48, 40)));
        assert_eq!(run(60, &[6, 1, 0, 0, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(ExtError::Header));
        // PadN with a non-zero byte.
        assert_eq!(run(60, &[6, 0, 1, 4, 0, 0, 1, 0]), Err(ExtError::Header));
        // An option running past the header.
        assert_eq!(run(60, &[6, 0, 0x1e, 5, 0, 0, 0, 0]), Err(ExtError::Header));
        // A lone byte where a TLV needs two.
        assert_eq!(run(60, &[6, 0, 1, 3, 0, 0, 0, 0x1e]), Err(ExtError::Header));
        // Nine skippable options (2 bytes each) in 24 bytes: too many.
        let mut rest = vec![6, 2];
        for _ in 0..9 {
            rest.extend_from_slice(&[0x1e, 0]);
        }
        rest.extend_from_slice(&[1, 2, 0, 0]);
        assert_eq!(rest.len(), 24);
        assert_eq!(run(60, &rest), Err(ExtError::Header));
        rest[2 * 9] = 0; // the ninth becomes Pad1 + Pad1
        rest[2 * 9 + 1] = 0;
        assert_eq!(run(60, &rest).map(|u| u.offset), Ok(64));
    }

    #[test]
    fn truncated_extension_headers() {
        assert_eq!(run(0, &[6, 0, 1, 2]), Err(ExtError::Header));
        assert_eq!(run(60, &[6, 1, 1, 4, 0, 0, 0, 0]), Err(ExtError::Header));
        assert_eq!(run(43, &[6, 0, 0]), Err(ExtError::Header));
    }

    #[test]
    fn jumbo_payload_option() {
        // Jumbo at offset 42 (4n+2), length 4.
        assert_eq!(run(0, &[6, 0, 0xc2, 4, 0, 0, 0xff, 0xff]), Err(PP(ErroneousHeaderField, 44)));
        assert_eq!(run(0, &[6, 0, 0xc2, 4, 0, 1, 0, 0]), Err(PP(ErroneousHeaderField, 42)));
        assert_eq!(run(0, &[6, 0, 0xc2, 3, 0, 1, 0, 0]), Err(ExtError::Header));
        let mut p = packet(0, &[6, 0, 0xc2, 4, 0, 1, 0, 0]);
        p[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(walk(&p, false), Err(ExtError::Truncated));
    }

    #[test]
    fn dest_options_home_address_is_dropped() {
        let mut rest = vec![6, 2, 0xc9, 16];
        rest.extend_from_slice(&[0x20; 16]);
        rest.extend_from_slice(&[1, 2, 0, 0]);
        assert_eq!(run(60, &rest), Err(ExtError::Header));
    }

    #[test]
    fn routing_headers() {
        // Type 0, segments left 0: skipped.
        assert_eq!(run(43, &[6, 0, 0, 0, 0, 0, 0, 0]), Ok(upper(NextHeader::Tcp, 48, 40)));
        // Type 0 with segments left: parameter problem at the type byte.
        assert_eq!(run(43, &[6, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Err(PP(ErroneousHeaderField, 42)));
        // Segment routing: silently dropped.
        assert_eq!(run(43, &[6, 0, 4, 0, 0, 0, 0, 0]), Err(ExtError::Discard));
        assert_eq!(run(43, &[6, 0, 3, 0, 0, 0, 0, 0]), Err(ExtError::Discard));
        // Type 2.
        assert_eq!(run(43, &[6, 0, 2, 0, 0, 0, 0, 0]), Err(ExtError::Address));
        assert_eq!(run(43, &[6, 0, 2, 1, 0, 0, 0, 0]), Err(ExtError::Header));
        // To a multicast destination: an address error whatever the type.
        let p = packet(43, &[6, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(walk(&p, true), Err(ExtError::Address));
    }

    #[test]
    fn fragments() {
        // Atomic fragment: goes on, marked fragmented.
        let mut rest = vec![6, 0, 0, 0, 0, 0, 0, 7];
        rest.extend_from_slice(&TCP_HDR);
        let got = run(44, &rest).unwrap();
        assert_eq!((got.next_header, got.offset, got.nhoff, got.fragmented), (NextHeader::Tcp, 48, 40, true));
        // First fragment (M set, 16 bytes after the header).
        let mut rest = vec![17, 0, 0, 1, 0, 0, 0, 9];
        rest.extend_from_slice(&[0; 16]);
        let got = run(44, &rest).unwrap();
        assert_eq!(got.next_header, NextHeader::Fragment);
        assert_eq!(got.fragment, Some(Fragment { header_at: 40, offset: 0, more: true, ident: 9, next_header: NextHeader::Udp }));
        // Not a multiple of 8 with M set.
        let mut rest = vec![17, 0, 0, 1, 0, 0, 0, 9];
        rest.extend_from_slice(&[0; 15]);
        assert_eq!(run(44, &rest), Err(PP(ErroneousHeaderField, 4)));
        // Last fragment past 65535.
        let mut rest = vec![17, 0, 0xff, 0xf8, 0, 0, 0, 9];
        rest.extend_from_slice(&[0; 16]);
        assert_eq!(run(44, &rest), Err(PP(ErroneousHeaderField, 42)));
        // Truncated fragment header; none at all (payload length 0): the
        // pointer is where it would start, past the packet (ipv6_frag_rcv).
        assert_eq!(run(44, &[17, 0, 0]), Err(PP(ErroneousHeaderField, 40)));
        assert_eq!(run(44, &[]), Err(PP(ErroneousHeaderField, 40)));
        // An atomic fragment, then a real one: the walk stops at the second.
        let mut rest = vec![44, 0, 0, 0, 0, 0, 0, 1, 17, 0, 0, 1, 0, 0, 0, 2];
        rest.extend_from_slice(&[0; 8]);
        let got = run(44, &rest).unwrap();
        assert_eq!((got.offset, got.nhoff, got.fragmented), (48, 40, true));
        assert_eq!(got.fragment.map(|f| f.ident), Some(2));
    }

    #[test]
    fn shorter_than_the_fixed_header() {
        assert_eq!(walk(&[0x60; 39], false), Err(ExtError::Header));
    }

    #[test]
    fn skip_without_checking() {
        // DSTOPT with an unknown discard option is skipped all the same.
        let p = packet(60, &[58, 0, 0x5e, 4, 0, 0, 0, 0, 128, 0, 0, 0]);
        assert_eq!(skip_ext_headers(&p, 40, 60), Some((58, 48, 0)));
        // A non-first fragment stops at its header.
        let p = packet(44, &[58, 0, 0, 0x10, 0, 0, 0, 1]);
        assert_eq!(skip_ext_headers(&p, 40, 44), Some((44, 40, 0x10)));
        // Cut short, or no next header.
        assert_eq!(skip_ext_headers(&packet(60, &[58]), 40, 60), None);
        assert_eq!(skip_ext_headers(&packet(59, &[]), 40, 59), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(first in any::<u8>(), rest in proptest::collection::vec(any::<u8>(), 0..120),
                                       mc in any::<bool>()) {
            let p = packet(first, &rest);
            if let Ok(u) = walk(&p, mc) {
                prop_assert!(u.offset <= p.len());
                prop_assert!(u.nhoff < u.offset);
                prop_assert_eq!(u8::from(u.next_header), p[u.nhoff]);
            }
            if let Err(ExtError::ParamProblem { pointer, .. }) = walk(&p, mc) {
                prop_assert!((pointer as usize) <= p.len());
            }
            if let Some((_, at, _)) = skip_ext_headers(&p, 40, first) {
                prop_assert!(at <= p.len() + 2048);
            }
        }

        #[test]
        fn any_buffer_and_cursor_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120), nh in any::<u8>(),
                                             offset in 0usize..200, mc in any::<bool>()) {
            let _ = walk(&data, mc);
            let _ = walk_from(&data, Cursor { next_header: nh, offset, nhoff: 6, router_alert: false }, mc);
            let _ = skip_ext_headers(&data, offset, nh);
        }

        #[test]
        fn padded_headers_are_walked(pads in proptest::collection::vec(0usize..=4, 1..6)) {
            // A chain of destination options headers, each one PadN of n
            // bytes plus Pad1s to 8: every one is skipped.
            let mut rest = Vec::new();
            for (i, n) in pads.iter().enumerate() {
                let next = if i + 1 == pads.len() { 6 } else { 60 };
                let mut h = vec![next, 0, 1, *n as u8];
                h.extend(std::iter::repeat_n(0, *n));
                h.resize(8, 0);
                rest.extend_from_slice(&h);
            }
            rest.extend_from_slice(&TCP_HDR);
            let u = run(60, &rest).unwrap();
            prop_assert_eq!(u.next_header, NextHeader::Tcp);
            prop_assert_eq!(u.offset, 40 + 8 * pads.len());
        }
    }
}
