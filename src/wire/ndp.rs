//! Neighbour discovery (RFC 4861) on Ethernet: neighbour solicitation and
//! advertisement with their link-layer address options, router
//! solicitation and advertisement recognised, validated as Linux's
//! `ndisc_rcv`, `ndisc_recv_ns`, `ndisc_recv_na` and `ndisc_parse_options` do.
//!
//! The messages are ICMPv6 ([`super::icmpv6::Icmpv6Packet`] covers the
//! header and checksum); this module reads and writes what follows.

use super::ethernet::EthernetAddress;
use super::icmpv6::{self, Icmpv6Packet, Icmpv6Type};
use super::ipv6;
use super::{Error, Result};
use std::net::Ipv6Addr;

/// Option types (RFC 4861 §4.6, RFC 7527 for the nonce).
pub mod opt {
    pub const SOURCE_LL_ADDR: u8 = 1;
    pub const TARGET_LL_ADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const NONCE: u8 = 14;
}

/// NA flags (RFC 4861 §4.4), in the first byte after the checksum.
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// Offset of the target address in NS, NA (and redirect).
const TARGET: core::ops::Range<usize> = 8..24;
/// `sizeof(struct nd_msg)`: header and target.
pub const ND_MSG_LEN: usize = TARGET.end;
/// `sizeof(struct rs_msg)`.
pub const RS_MSG_LEN: usize = 8;
/// `sizeof(struct ra_msg)`.
pub const RA_MSG_LEN: usize = 16;
/// An Ethernet link-layer address option: type, length 1, 6 bytes.
pub const LLADDR_OPT_LEN: usize = 8;
/// RFC 4861 §6.1.2: neighbour discovery is sent with hop limit 255 and
/// accepted only with it (it proves the sender is on the link).
pub const HOP_LIMIT: u8 = 255;

/// The flags of a neighbour advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaFlags {
    pub router: bool,
    pub solicited: bool,
    pub override_: bool,
}

/// The neighbour discovery messages a host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdiscRepr {
    NeighborSolicit { target: Ipv6Addr, source_lladdr: Option<EthernetAddress>, nonce: Option<[u8; 6]> },
    NeighborAdvert { flags: NaFlags, target: Ipv6Addr, target_lladdr: Option<EthernetAddress> },
    RouterSolicit { source_lladdr: Option<EthernetAddress> },
    RouterAdvert {
        hop_limit: u8,
        /// M and O flags, and the rest of that byte.
        flags: u8,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_time: u32,
        source_lladdr: Option<EthernetAddress>,
        mtu: Option<u32>,
    },
}

/// Why a neighbour discovery message is dropped (Linux prints each with
/// `ND_PRINTK` and counts nothing but Icmp6InMsgs and the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NdiscError {
    #[error("hop limit is not 255")]
    HopLimit,
    #[error("code is not 0")]
    Code,
    #[error("message too short")]
    TooShort,
    #[error("multicast target address")]
    MulticastTarget,
    #[error("duplicate address detection not to a solicited-node address")]
    DadDestination,
    #[error("duplicate address detection with a link-layer address option")]
    DadWithLladdr,
    #[error("invalid options")]
    BadOptions,
    #[error("invalid link-layer address length")]
    BadLladdrLength,
    #[error("solicited advertisement to a multicast address")]
    SolicitedToMulticast,
    #[error("router advertisement from a source that is not link-local")]
    RouterNotLinkLocal,
    #[error("not a message this host reads (redirect, or not neighbour discovery)")]
    Unhandled,
}

/// The options of a message (`ndisc_parse_options`): one of each kind
/// kept, the first; unknown kinds skipped.
#[derive(Debug, Default, Clone, Copy)]
struct Options<'a> {
    source_ll: Option<&'a [u8]>,
    target_ll: Option<&'a [u8]>,
    mtu: Option<&'a [u8]>,
    nonce: Option<&'a [u8]>,
}

fn parse_options(mut opts: &[u8]) -> core::result::Result<Options<'_>, NdiscError> {
    let mut o = Options::default();
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(NdiscError::BadOptions);
        }
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return Err(NdiscError::BadOptions);
        }
        let (this, rest) = opts.split_at(len);
        let slot = match this[0] {
            opt::SOURCE_LL_ADDR => Some(&mut o.source_ll),
            opt::TARGET_LL_ADDR => Some(&mut o.target_ll),
            opt::MTU => Some(&mut o.mtu),
            opt::NONCE => Some(&mut o.nonce),
            _ => None,
        };
        // Linux warns "duplicated ND6 option found" and keeps the first.
        if let Some(slot @ None) = slot {
            *slot = Some(this);
        }
        opts = rest;
    }
    Ok(o)
}

/// `ndisc_opt_addr_data`: an Ethernet address option is exactly 8 bytes.
fn lladdr(option: Option<&[u8]>) -> core::result::Result<Option<EthernetAddress>, NdiscError> {
    match option {
        None => Ok(None),
        Some(o) if o.len() == LLADDR_OPT_LEN => Ok(Some(EthernetAddress::from_bytes(&o[2..8]))),
        Some(_) => Err(NdiscError::BadLladdrLength),
    }
}

fn target(msg: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&msg[TARGET]);
    Ipv6Addr::from(a)
}

impl NdiscRepr {
    /// Validates and reads a neighbour discovery message as `ndisc_rcv`
    /// does, given the IPv6 header's hop limit and addresses. The ICMPv6
    /// checksum is the caller's (icmpv6_rcv checks it first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        icmp: &Icmpv6Packet<&T>,
        hop_limit: u8,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> core::result::Result<NdiscRepr, NdiscError> {
        let msg = icmp.message();
        let kind = icmp.msg_type();
        if !matches!(
            kind,
            Icmpv6Type::NeighborSolicit | Icmpv6Type::NeighborAdvert | Icmpv6Type::RouterSolicit | Icmpv6Type::RouterAdvert
        ) {
            return Err(NdiscError::Unhandled);
        }
        if hop_limit != HOP_LIMIT {
            return Err(NdiscError::HopLimit);
        }
        if icmp.msg_code() != 0 {
            return Err(NdiscError::Code);
        }
        match kind {
            Icmpv6Type::NeighborSolicit => {
                if msg.len() < ND_MSG_LEN {
                    return Err(NdiscError::TooShort);
                }
                let target = target(msg);
                if target.is_multicast() {
                    return Err(NdiscError::MulticastTarget);
                }
                // RFC 4861 §7.1.1: duplicate address detection goes to the
                // solicited-node address and carries no link-layer address.
                let dad = src.is_unspecified();
                if dad && !ipv6::is_solicited_node(dst) {
                    return Err(NdiscError::DadDestination);
                }
                let o = parse_options(&msg[ND_MSG_LEN..])?;
                let source_lladdr = lladdr(o.source_ll)?;
                if dad && source_lladdr.is_some() {
                    return Err(NdiscError::DadWithLladdr);
                }
                let nonce = o.nonce.filter(|n| n.len() == 8).map(|n| [n[2], n[3], n[4], n[5], n[6], n[7]]);
                Ok(NdiscRepr::NeighborSolicit { target, source_lladdr, nonce })
            }
            Icmpv6Type::NeighborAdvert => {
                if msg.len() < ND_MSG_LEN {
                    return Err(NdiscError::TooShort);
                }
                let target = target(msg);
                if target.is_multicast() {
                    return Err(NdiscError::MulticastTarget);
                }
                let f = msg[4];
                let flags = NaFlags { router: f & NA_ROUTER != 0, solicited: f & NA_SOLICITED != 0, override_: f & NA_OVERRIDE != 0 };
                if dst.is_multicast() && flags.solicited {
                    return Err(NdiscError::SolicitedToMulticast);
                }
                let o = parse_options(&msg[ND_MSG_LEN..])?;
                Ok(NdiscRepr::NeighborAdvert { flags, target, target_lladdr: lladdr(o.target_ll)? })
            }
            Icmpv6Type::RouterSolicit => {
                if msg.len() < RS_MSG_LEN {
                    return Err(NdiscError::TooShort);
                }
                let o = parse_options(&msg[RS_MSG_LEN..])?;
                Ok(NdiscRepr::RouterSolicit { source_lladdr: lladdr(o.source_ll)? })
            }
            _ => {
                // ndisc_router_discovery
                if !ipv6::is_link_local(src) {
                    return Err(NdiscError::RouterNotLinkLocal);
                }
                if msg.len() < RA_MSG_LEN {
                    return Err(NdiscError::TooShort);
                }
                let o = parse_options(&msg[RA_MSG_LEN..])?;
                let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                Ok(NdiscRepr::RouterAdvert {
                    hop_limit: msg[4],
                    flags: msg[5],
                    router_lifetime: u16::from_be_bytes([msg[6], msg[7]]),
                    reachable_time: be32(&msg[8..12]),
                    retrans_time: be32(&msg[12..16]),
                    source_lladdr: lladdr(o.source_ll)?,
                    mtu: o.mtu.filter(|m| m.len() == 8).map(|m| be32(&m[4..8])),
                })
            }
        }
    }

    /// Length [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let ll = |a: &Option<EthernetAddress>| if a.is_some() { LLADDR_OPT_LEN } else { 0 };
        match self {
            NdiscRepr::NeighborSolicit { source_lladdr, nonce, .. } => ND_MSG_LEN + ll(source_lladdr) + if nonce.is_some() { 8 } else { 0 },
            NdiscRepr::NeighborAdvert { target_lladdr, .. } => ND_MSG_LEN + ll(target_lladdr),
            NdiscRepr::RouterSolicit { source_lladdr } => RS_MSG_LEN + ll(source_lladdr),
            NdiscRepr::RouterAdvert { source_lladdr, mtu, .. } => RA_MSG_LEN + ll(source_lladdr) + if mtu.is_some() { 8 } else { 0 },
        }
    }

    /// Writes the message and its ICMPv6 checksum for `src` -> `dst`
    /// (`ndisc_send_na` and friends: reserved bytes zero, the link-layer
    /// option after the fixed part). Returns its length.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(Error::BufferTooSmall);
        }
        let m = &mut buf[..len];
        m.fill(0);
        let put_ll = |m: &mut [u8], at: usize, kind: u8, a: &EthernetAddress| {
            m[at] = kind;
            m[at + 1] = 1;
            m[at + 2..at + 8].copy_from_slice(a.as_bytes());
        };
        match self {
            NdiscRepr::NeighborSolicit { target, source_lladdr, nonce } => {
                m[0] = u8::from(Icmpv6Type::NeighborSolicit);
                m[TARGET].copy_from_slice(&target.octets());
                let mut at = ND_MSG_LEN;
                if let Some(a) = source_lladdr {
                    put_ll(m, at, opt::SOURCE_LL_ADDR, a);
                    at += LLADDR_OPT_LEN;
                }
                if let Some(n) = nonce {
                    m[at] = opt::NONCE;
                    m[at + 1] = 1;
                    m[at + 2..at + 8].copy_from_slice(n);
                }
            }
            NdiscRepr::NeighborAdvert { flags, target, target_lladdr } => {
                m[0] = u8::from(Icmpv6Type::NeighborAdvert);
                m[4] = if flags.router { NA_ROUTER } else { 0 }
                    | if flags.solicited { NA_SOLICITED } else { 0 }
                    | if flags.override_ { NA_OVERRIDE } else { 0 };
                m[TARGET].copy_from_slice(&target.octets());
                if let Some(a) = target_lladdr {
                    put_ll(m, ND_MSG_LEN, opt::TARGET_LL_ADDR, a);
                }
            }
            NdiscRepr::RouterSolicit { source_lladdr } => {
                m[0] = u8::from(Icmpv6Type::RouterSolicit);
                if let Some(a) = source_lladdr {
                    put_ll(m, RS_MSG_LEN, opt::SOURCE_LL_ADDR, a);
                }
            }
            NdiscRepr::RouterAdvert { hop_limit, flags, router_lifetime, reachable_time, retrans_time, source_lladdr, mtu } => {
                m[0] = u8::from(Icmpv6Type::RouterAdvert);
                m[4] = *hop_limit;
                m[5] = *flags;
                m[6..8].copy_from_slice(&router_lifetime.to_be_bytes());
                m[8..12].copy_from_slice(&reachable_time.to_be_bytes());
                m[12..16].copy_from_slice(&retrans_time.to_be_bytes());
                let mut at = RA_MSG_LEN;
                if let Some(a) = source_lladdr {
                    put_ll(m, at, opt::SOURCE_LL_ADDR, a);
                    at += LLADDR_OPT_LEN;
                }
                if let Some(v) = mtu {
                    m[at] = opt::MTU;
                    m[at + 1] = 1;
                    m[at + 4..at + 8].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
        Icmpv6Packet::new_unchecked(&mut *m).fill_checksum(src, dst);
        Ok(len)
    }
}

/// Length of the NA a host sends: `ndisc_send_na` with its target
/// link-layer address option or without.
pub const fn na_len(with_lladdr: bool) -> usize {
    ND_MSG_LEN + if with_lladdr { LLADDR_OPT_LEN } else { 0 }
}

const _: () = assert!(icmpv6::HEADER_LEN == RS_MSG_LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
    const OURS: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
    const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    // NS from 2001:2::2 to ff02::1:ff00:1 for 2001:2::1, with the source's MAC.
    fn ns_bytes() -> Vec<u8> {
        let mut m = vec![
            135, 0, 0, 0, // type, code, checksum
            0, 0, 0, 0, // reserved
            0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // target
            1, 1, 2, 0, 0, 0, 0, 2, // source link-layer address
        ];
        let dst = ipv6::solicited_node(&OURS);
        Icmpv6Packet::new_unchecked(&mut m[..]).fill_checksum(&PEER, &dst);
        m
    }

    fn parse(m: &[u8], hop: u8, src: &Ipv6Addr, dst: &Ipv6Addr) -> core::result::Result<NdiscRepr, NdiscError> {
        NdiscRepr::parse(&Icmpv6Packet::new_checked(m).unwrap(), hop, src, dst)
    }

    #[test]
    fn neighbour_solicitation() {
        let m = ns_bytes();
        let sn = ipv6::solicited_node(&OURS);
        assert!(Icmpv6Packet::new_checked(&m[..]).unwrap().verify_checksum(&PEER, &sn));
        let r = parse(&m, 255, &PEER, &sn).unwrap();
        assert_eq!(r, NdiscRepr::NeighborSolicit { target: OURS, source_lladdr: Some(PEER_MAC), nonce: None });
        let mut out = [0xa5u8; 40];
        assert_eq!(r.emit(&mut out, &PEER, &sn), Ok(32));
        assert_eq!(&out[..32], &m[..]);
        assert_eq!(&out[32..], &[0xa5; 8]);
    }

    #[test]
    fn validated_as_ndisc_rcv() {
        let m = ns_bytes();
        let sn = ipv6::solicited_node(&OURS);
        assert_eq!(parse(&m, 254, &PEER, &sn), Err(NdiscError::HopLimit));
        let mut c = m.clone();
        c[1] = 1;
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::Code));
        assert_eq!(parse(&m[..23], 255, &PEER, &sn), Err(NdiscError::TooShort));
        let mut c = m.clone();
        c[8] = 0xff;
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::MulticastTarget));
        // DAD: unspecified source, to the solicited-node group, no lladdr.
        assert_eq!(parse(&m[..24], 255, &Ipv6Addr::UNSPECIFIED, &sn).map(|_| ()), Ok(()));
        assert_eq!(parse(&m[..24], 255, &Ipv6Addr::UNSPECIFIED, &OURS), Err(NdiscError::DadDestination));
        assert_eq!(parse(&m, 255, &Ipv6Addr::UNSPECIFIED, &sn), Err(NdiscError::DadWithLladdr));
        // Options: zero length, past the end, a lone byte, a long lladdr.
        let mut c = m.clone();
        c[25] = 0;
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::BadOptions));
        c[25] = 2;
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::BadOptions));
        let mut c = m[..24].to_vec();
        c.push(1);
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::BadOptions));
        let mut c = m.clone();
        c[25] = 2;
        c.extend_from_slice(&[0; 8]);
        assert_eq!(parse(&c, 255, &PEER, &sn), Err(NdiscError::BadLladdrLength));
        // Unknown options are skipped; of two lladdrs the first counts.
        let mut c = m[..24].to_vec();
        c.extend_from_slice(&[99, 1, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 7, 1, 1, 2, 0, 0, 0, 0, 8]);
        assert_eq!(
            parse(&c, 255, &PEER, &sn),
            Ok(NdiscRepr::NeighborSolicit { target: OURS, source_lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 7])), nonce: None })
        );
        // Not neighbour discovery.
        let echo = [128u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&echo, 255, &PEER, &sn), Err(NdiscError::Unhandled));
    }

    #[test]
    fn neighbour_advertisement() {
        let r = NdiscRepr::NeighborAdvert {
            flags: NaFlags { router: false, solicited: true, override_: true },
            target: OURS,
            target_lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])),
        };
        let mut out = [0u8; 32];
        assert_eq!(r.emit(&mut out, &OURS, &PEER), Ok(na_len(true)));
        assert_eq!(&out[..8], &[136, 0, out[2], out[3], 0x60, 0, 0, 0]);
        assert_eq!(&out[24..], &[2, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(parse(&out, 255, &OURS, &PEER), Ok(r));
        // Solicited to a multicast destination is refused.
        assert_eq!(parse(&out, 255, &OURS, &ipv6::LINK_LOCAL_ALL_NODES), Err(NdiscError::SolicitedToMulticast));
        let mut c = out;
        c[4] = 0xa0; // router + override, unsolicited
        assert_eq!(
            parse(&c, 255, &OURS, &ipv6::LINK_LOCAL_ALL_NODES),
            Ok(NdiscRepr::NeighborAdvert {
                flags: NaFlags { router: true, solicited: false, override_: true },
                target: OURS,
                target_lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1]))
            })
        );
        assert_eq!(r.emit(&mut out[..31], &OURS, &PEER), Err(Error::BufferTooSmall));
    }

    #[test]
    fn router_messages_recognised() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let ra = NdiscRepr::RouterAdvert {
            hop_limit: 64,
            flags: 0,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_time: 0,
            source_lladdr: Some(PEER_MAC),
            mtu: Some(1500),
        };
        let mut out = [0u8; 32];
        assert_eq!(ra.emit(&mut out, &ll, &ipv6::LINK_LOCAL_ALL_NODES), Ok(32));
        assert_eq!(parse(&out, 255, &ll, &ipv6::LINK_LOCAL_ALL_NODES), Ok(ra));
        assert_eq!(parse(&out, 255, &PEER, &ipv6::LINK_LOCAL_ALL_NODES), Err(NdiscError::RouterNotLinkLocal));
        let rs = NdiscRepr::RouterSolicit { source_lladdr: None };
        let n = rs.emit(&mut out, &ll, &ipv6::LINK_LOCAL_ALL_NODES).unwrap();
        assert_eq!(parse(&out[..n], 255, &ll, &ipv6::LINK_LOCAL_ALL_NODES), Ok(rs));
    }

    fn lladdr_strategy() -> impl Strategy<Value = Option<EthernetAddress>> {
        proptest::option::of(any::<[u8; 6]>().prop_map(EthernetAddress))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 8..80), hop in prop_oneof![Just(255u8), any::<u8>()],
                                       src in any::<[u8; 16]>(), dst in any::<[u8; 16]>()) {
            let mut data = data;
            data[0] = 133 + data[0] % 5; // RS, RA, NS, NA, redirect
            let p = Icmpv6Packet::new_checked(&data[..]).unwrap();
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            if let Ok(r) = NdiscRepr::parse(&p, hop, &src, &dst) {
                let mut buf = vec![0u8; r.buffer_len()];
                r.emit(&mut buf, &src, &dst).unwrap();
                prop_assert_eq!(NdiscRepr::parse(&Icmpv6Packet::new_checked(&buf[..]).unwrap(), hop, &src, &dst), Ok(r));
            }
        }

        #[test]
        fn emit_parse_roundtrip(target in any::<[u8; 16]>(), ll in lladdr_strategy(), r in any::<bool>(), s in any::<bool>(),
                                o in any::<bool>(), nonce in proptest::option::of(any::<[u8; 6]>())) {
            let mut target = target;
            target[0] = 0x20; // not multicast
            let target = Ipv6Addr::from(target);
            for m in [
                NdiscRepr::NeighborSolicit { target, source_lladdr: ll, nonce },
                NdiscRepr::NeighborAdvert { flags: NaFlags { router: r, solicited: s, override_: o }, target, target_lladdr: ll },
                NdiscRepr::RouterSolicit { source_lladdr: ll },
            ] {
                let mut buf = vec![0u8; m.buffer_len()];
                m.emit(&mut buf, &PEER, &OURS).unwrap();
                let p = Icmpv6Packet::new_checked(&buf[..]).unwrap();
                prop_assert!(p.verify_checksum(&PEER, &OURS));
                prop_assert_eq!(NdiscRepr::parse(&p, 255, &PEER, &OURS), Ok(m));
            }
        }
    }
}
