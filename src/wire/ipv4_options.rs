//! IPv4 options of a received datagram, checked as Linux's
//! `__ip_options_compile` (net/ipv4/ip_options.c) checks them on input.
//!
//! What a host that delivers locally needs to know: where record route,
//! timestamp and source route sit, whether a router alert is present, and,
//! for a malformed option, the offset that an ICMP parameter problem points
//! at. The bytes are not changed (Linux fills in record route and timestamp
//! slots on input only so that an echo or a forward carries them).
#![forbid(unsafe_code)]

use super::ipv4;

/// Option kinds (RFC 791, RFC 2113, RFC 1108).
pub mod kind {
    pub const END: u8 = 0;
    pub const NOOP: u8 = 1;
    pub const RR: u8 = 7;
    pub const TIMESTAMP: u8 = 68;
    pub const SEC: u8 = 130;
    pub const LSRR: u8 = 131;
    pub const CIPSO: u8 = 134;
    pub const SID: u8 = 136;
    pub const SSRR: u8 = 137;
    pub const RA: u8 = 148;
}

/// Timestamp option flags (the low nibble of its fourth byte).
const TS_TSONLY: u8 = 0;
const TS_TSANDADDR: u8 = 1;
const TS_PRESPEC: u8 = 3;

/// What the options say, as offsets from the start of the IP header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpOptions {
    /// Record route option.
    pub rr: Option<u8>,
    /// Its next slot was free: an echo must add our address.
    pub rr_needaddr: bool,
    /// Timestamp option.
    pub ts: Option<u8>,
    pub ts_needaddr: bool,
    pub ts_needtime: bool,
    /// Loose or strict source route.
    pub srr: Option<u8>,
    pub is_strictroute: bool,
    /// A router alert with value 0 (RFC 2113).
    pub router_alert: bool,
    /// A CIPSO option.
    pub cipso: Option<u8>,
}

/// A malformed option: `pointer` is the offset (from the start of the IP
/// header) of the offending byte, what ICMP parameter problem reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionError {
    pub pointer: u8,
}

/// Check the options `opts` (the bytes after the fixed 20-byte header) of a
/// datagram addressed to us. `is_local` tells whether an address is ours
/// (for prespecified timestamps). `cipso_doi_known` is whether a CIPSO
/// domain of interpretation is configured (Linux: none by default, so a
/// CIPSO option is an error at its DOI field).
pub fn compile(opts: &[u8], is_local: impl Fn([u8; 4]) -> bool, cipso_doi_known: bool) -> Result<IpOptions, OptionError> {
    let base = ipv4::HEADER_LEN;
    let err = |at: usize| Err(OptionError { pointer: (base + at) as u8 });
    let mut out = IpOptions::default();
    let mut i = 0;
    while i < opts.len() {
        let l = opts.len() - i;
        match opts[i] {
            // Linux rewrites the bytes after END to END; they are not read.
            kind::END => break,
            kind::NOOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if l < 2 {
            return err(i);
        }
        let optlen = usize::from(opts[i + 1]);
        if optlen < 2 || optlen > l {
            return err(i);
        }
        let o = &opts[i..i + optlen];
        let at = (base + i) as u8;
        match o[0] {
            kind::SSRR | kind::LSRR => {
                if optlen < 3 {
                    return err(i + 1);
                }
                if o[2] < 4 {
                    return err(i + 2);
                }
                // RFC 1812 5.2.4.1: only one source route.
                if out.srr.is_some() {
                    return err(i);
                }
                out.is_strictroute = o[0] == kind::SSRR;
                out.srr = Some(at);
            }
            kind::RR => {
                if out.rr.is_some() {
                    return err(i);
                }
                if optlen < 3 {
                    return err(i + 1);
                }
                if o[2] < 4 {
                    return err(i + 2);
                }
                if usize::from(o[2]) <= optlen {
                    if usize::from(o[2]) + 3 > optlen {
                        return err(i + 2);
                    }
                    out.rr_needaddr = true;
                }
                out.rr = Some(at);
            }
            kind::TIMESTAMP => {
                if out.ts.is_some() {
                    return err(i);
                }
                if optlen < 4 {
                    return err(i + 1);
                }
                let ptr = usize::from(o[2]);
                if ptr < 5 {
                    return err(i + 2);
                }
                if ptr <= optlen {
                    if ptr + 3 > optlen {
                        return err(i + 2);
                    }
                    match o[3] & 0x0f {
                        TS_TSONLY => {
                            out.ts = Some(at);
                            out.ts_needtime = true;
                        }
                        TS_TSANDADDR => {
                            if ptr + 7 > optlen {
                                return err(i + 2);
                            }
                            out.ts = Some(at);
                            out.ts_needaddr = true;
                            out.ts_needtime = true;
                        }
                        TS_PRESPEC => {
                            if ptr + 7 > optlen {
                                return err(i + 2);
                            }
                            out.ts = Some(at);
                            let addr = [o[ptr - 1], o[ptr], o[ptr + 1], o[ptr + 2]];
                            // Only a slot prespecified for one of our
                            // addresses is ours to stamp.
                            if is_local(addr) {
                                out.ts_needtime = true;
                            }
                        }
                        // Other flags on a received datagram: accepted as
                        // they are (Linux refuses them only from a socket).
                        _ => {}
                    }
                } else {
                    // Full: the overflow counter counts one more hop, unless
                    // it would wrap.
                    if o[3] >> 4 == 15 {
                        return err(i + 3);
                    }
                    out.ts = Some(at);
                }
            }
            kind::RA => {
                if optlen < 4 {
                    return err(i + 1);
                }
                if o[2] == 0 && o[3] == 0 {
                    out.router_alert = true;
                }
            }
            kind::CIPSO => {
                if out.cipso.is_some() {
                    return err(i);
                }
                // cipso_v4_validate: length first, then the DOI.
                if optlen < 8 {
                    return err(i + 1);
                }
                if !cipso_doi_known {
                    return err(i + 2);
                }
                out.cipso = Some(at);
            }
            // SEC, SID and unknown kinds are skipped on a received datagram.
            _ => {}
        }
        i += optlen;
    }
    Ok(out)
}

/// Longest IPv4 options block.
pub const MAX_LEN: usize = 40;

/// The options a reply carries back (Linux's `__ip_options_echo` of a
/// datagram as `ip_options_compile` left it on input), and where the
/// reply's own address and time go when it is sent (`ip_options_build`).
/// Only record route and timestamp are echoed; NOPs, router alert and the
/// rest are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionsEcho {
    bytes: [u8; MAX_LEN],
    len: u8,
    /// Offsets (in `bytes`) of the slots written at send time.
    rr_addr: Option<u8>,
    ts_addr: Option<u8>,
    ts_time: Option<u8>,
}

impl OptionsEcho {
    /// The echo of the options `opts` (after the fixed header) of a
    /// datagram received at `rx_time` (ms since midnight UTC) for our
    /// address `ours`, checked by [`compile`] into `o`. `None` when there is
    /// nothing to echo, or when Linux's echo fails (the reply then goes out
    /// without options).
    pub fn of_received(opts: &[u8], o: &IpOptions, ours: [u8; 4], rx_time: u32, is_local: impl Fn([u8; 4]) -> bool) -> Option<OptionsEcho> {
        if o.rr.is_none() && o.ts.is_none() {
            return None;
        }
        // What ip_options_compile wrote into the datagram on input.
        let mut m = [0u8; MAX_LEN];
        let n = opts.len().min(MAX_LEN);
        m[..n].copy_from_slice(&opts[..n]);
        let at = |off: u8| usize::from(off) - ipv4::HEADER_LEN;
        if let (Some(rr), true) = (o.rr, o.rr_needaddr) {
            let r = at(rr);
            let ptr = usize::from(m[r + 2]);
            m[r + ptr - 1..r + ptr + 3].copy_from_slice(&ours);
            m[r + 2] += 4;
        }
        if let Some(ts) = o.ts {
            let t = at(ts);
            let (optlen, ptr) = (usize::from(m[t + 1]), usize::from(m[t + 2]));
            if ptr <= optlen {
                match m[t + 3] & 0x0f {
                    TS_TSONLY => {
                        m[t + ptr - 1..t + ptr + 3].copy_from_slice(&rx_time.to_be_bytes());
                        m[t + 2] += 4;
                    }
                    TS_TSANDADDR => {
                        m[t + ptr - 1..t + ptr + 3].copy_from_slice(&ours);
                        m[t + ptr + 3..t + ptr + 7].copy_from_slice(&rx_time.to_be_bytes());
                        m[t + 2] += 8;
                    }
                    TS_PRESPEC if o.ts_needtime => {
                        m[t + ptr + 3..t + ptr + 7].copy_from_slice(&rx_time.to_be_bytes());
                        m[t + 2] += 8;
                    }
                    _ => {}
                }
            } else {
                let overflow = m[t + 3] >> 4;
                m[t + 3] = (m[t + 3] & 0x0f) | ((overflow + 1) << 4);
            }
        }
        // __ip_options_echo.
        let mut e = OptionsEcho { bytes: [0; MAX_LEN], len: 0, rr_addr: None, ts_addr: None, ts_time: None };
        let mut d = 0usize;
        if let Some(rr) = o.rr {
            let r = at(rr);
            let (optlen, soffset) = (usize::from(m[r + 1]), usize::from(m[r + 2]));
            e.bytes[d..d + optlen].copy_from_slice(&m[r..r + optlen]);
            if o.rr_needaddr && soffset <= optlen {
                if soffset + 3 > optlen {
                    return None;
                }
                e.bytes[d + 2] = (soffset + 4) as u8;
                e.rr_addr = Some((d + soffset - 1) as u8);
            }
            d += optlen;
        }
        if let Some(ts) = o.ts {
            let t = at(ts);
            let (optlen, mut soffset) = (usize::from(m[t + 1]), usize::from(m[t + 2]));
            e.bytes[d..d + optlen].copy_from_slice(&m[t..t + optlen]);
            if soffset <= optlen {
                if o.ts_needaddr {
                    if soffset + 3 > optlen {
                        return None;
                    }
                    e.ts_addr = Some((d + soffset - 1) as u8);
                    soffset += 4;
                }
                if o.ts_needtime {
                    if soffset + 3 > optlen {
                        return None;
                    }
                    if e.bytes[d + 3] & 0x0f != TS_PRESPEC {
                        e.ts_time = Some((d + soffset - 1) as u8);
                        soffset += 4;
                    } else if soffset + 7 <= optlen {
                        let s = d + soffset - 1;
                        let addr = [e.bytes[s], e.bytes[s + 1], e.bytes[s + 2], e.bytes[s + 3]];
                        if is_local(addr) {
                            e.ts_time = Some((s + 4) as u8);
                            soffset += 8;
                        }
                    }
                }
                e.bytes[d + 2] = soffset as u8;
            }
            d += optlen;
        }
        // Padded with END to a multiple of four.
        e.len = d.next_multiple_of(4) as u8;
        Some(e)
    }

    /// Bytes of the options block in the reply.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write the reply's options into `out` (at least [`OptionsEcho::len`]
    /// bytes), with our address and the send time (ms since midnight UTC)
    /// where the echo left slots for them.
    pub fn write(&self, out: &mut [u8], ours: [u8; 4], tx_time: u32) {
        let n = self.len();
        out[..n].copy_from_slice(&self.bytes[..n]);
        for at in [self.rr_addr, self.ts_addr].into_iter().flatten() {
            let at = usize::from(at);
            out[at..at + 4].copy_from_slice(&ours);
        }
        if let Some(at) = self.ts_time {
            let at = usize::from(at);
            out[at..at + 4].copy_from_slice(&tx_time.to_be_bytes());
        }
    }
}

/// What a reply to `ip` (a datagram for us) echoes of its options, with
/// `time` as the receive time (ms since midnight UTC); `None` when it has
/// none to echo or they do not check (Linux's `ip_options_echo` of a
/// received datagram; a prespecified timestamp slot is ours when it names
/// the datagram's destination).
pub fn reply_echo(ip: &ipv4::Ipv4Packet<&[u8]>, time: u32) -> Option<OptionsEcho> {
    if !ip.has_options() {
        return None;
    }
    let (opts, ours) = (ip.options(), ip.dst_addr().octets());
    let o = compile(opts, |a| a == ours, false).ok()?;
    OptionsEcho::of_received(opts, &o, ours, time, |a| a == ours)
}

/// Put an options block of `opts_len` bytes, written by `write`, into the
/// IPv4 frame `frame[..len]` whose IP header (20 bytes, no options) starts
/// at `l2`: the rest moves up, the header length, total length and header
/// checksum are redone (the TCP and UDP checksums do not cover IP options).
/// `frame` must have room for `len + opts_len` bytes; returns the new length.
pub fn insert_into_frame(frame: &mut [u8], len: usize, l2: usize, opts_len: usize, write: impl FnOnce(&mut [u8]), csum: bool) -> usize {
    let l4 = l2 + ipv4::HEADER_LEN;
    frame.copy_within(l4..len, l4 + opts_len);
    write(&mut frame[l4..l4 + opts_len]);
    let ihl = (ipv4::HEADER_LEN + opts_len) / 4;
    frame[l2] = 0x40 | ihl as u8;
    let total = u16::from_be_bytes([frame[l2 + 2], frame[l2 + 3]]) + opts_len as u16;
    frame[l2 + 2..l2 + 4].copy_from_slice(&total.to_be_bytes());
    frame[l2 + 10..l2 + 12].fill(0);
    if csum {
        let sum = !super::checksum::fold(super::checksum::sum(&frame[l2..l4 + opts_len]));
        frame[l2 + 10..l2 + 12].copy_from_slice(&sum.to_be_bytes());
    }
    len + opts_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn none(_: [u8; 4]) -> bool {
        false
    }

    #[test]
    fn nops_end_and_padding_are_fine() {
        assert_eq!(compile(&[1, 1, 1, 1], none, false), Ok(IpOptions::default()));
        assert_eq!(compile(&[1, 0, 7, 0], none, false), Ok(IpOptions::default()));
        assert_eq!(compile(&[], none, false), Ok(IpOptions::default()));
    }

    #[test]
    fn record_route_with_a_free_slot_needs_our_address() {
        let rr = [kind::RR, 7, 4, 0, 0, 0, 0, 1];
        let o = compile(&rr, none, false).unwrap();
        assert_eq!((o.rr, o.rr_needaddr), (Some(20), true));
        // Full (pointer past the end): kept, nothing to add.
        let full = [kind::RR, 7, 8, 1, 2, 3, 4, 1];
        let o = compile(&full, none, false).unwrap();
        assert_eq!((o.rr, o.rr_needaddr), (Some(20), false));
        // A pointer below 4 points at itself.
        assert_eq!(compile(&[kind::RR, 7, 3, 0, 0, 0, 0, 1], none, false), Err(OptionError { pointer: 22 }));
        // Two of them: the second is the error.
        let two = [kind::RR, 3, 4, kind::RR, 3, 4, 1, 1];
        assert_eq!(compile(&two, none, false), Err(OptionError { pointer: 23 }));
    }

    #[test]
    fn timestamp_flags() {
        let ts_only = [kind::TIMESTAMP, 8, 5, 0, 0, 0, 0, 0];
        let o = compile(&ts_only, none, false).unwrap();
        assert_eq!((o.ts, o.ts_needtime, o.ts_needaddr), (Some(20), true, false));
        let ts_addr = [kind::TIMESTAMP, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let o = compile(&ts_addr, none, false).unwrap();
        assert_eq!((o.ts_needtime, o.ts_needaddr), (true, true));
        // Address and time need 8 bytes from the pointer.
        let short = [kind::TIMESTAMP, 8, 5, 1, 0, 0, 0, 0];
        assert_eq!(compile(&short, none, false), Err(OptionError { pointer: 22 }));
        // Prespecified: stamped only for one of our addresses.
        let pre = [kind::TIMESTAMP, 12, 5, 3, 198, 18, 0, 1, 0, 0, 0, 0];
        assert!(!compile(&pre, none, false).unwrap().ts_needtime);
        assert!(compile(&pre, |a| a == [198, 18, 0, 1], false).unwrap().ts_needtime);
        // Full with the overflow counter at 15: error at the flags byte.
        let overflow = [kind::TIMESTAMP, 8, 9, 0xf0, 0, 0, 0, 0];
        assert_eq!(compile(&overflow, none, false), Err(OptionError { pointer: 23 }));
    }

    #[test]
    fn source_routes_are_found_and_only_one_is_allowed() {
        let lsrr = [kind::LSRR, 7, 4, 198, 18, 0, 9, 0];
        let o = compile(&lsrr, none, false).unwrap();
        assert_eq!((o.srr, o.is_strictroute), (Some(20), false));
        let two = [kind::SSRR, 3, 4, kind::LSRR, 3, 4, 0, 0];
        assert_eq!(compile(&two, none, false), Err(OptionError { pointer: 23 }));
    }

    #[test]
    fn router_alert_and_unknown_kinds() {
        let o = compile(&[kind::RA, 4, 0, 0], none, false).unwrap();
        assert!(o.router_alert);
        assert_eq!(compile(&[kind::RA, 3, 0, 1], none, false), Err(OptionError { pointer: 21 }));
        // Unknown and security kinds are skipped by their length.
        assert_eq!(compile(&[200, 4, 9, 9, kind::SEC, 3, 0, 1], none, false), Ok(IpOptions::default()));
    }

    #[test]
    fn bad_lengths_point_at_the_option() {
        assert_eq!(compile(&[1, 1, 1, 200], none, false), Err(OptionError { pointer: 23 }));
        assert_eq!(compile(&[200, 1, 0, 0], none, false), Err(OptionError { pointer: 20 }));
        assert_eq!(compile(&[200, 9, 0, 0], none, false), Err(OptionError { pointer: 20 }));
    }

    #[test]
    fn cipso_without_a_doi_is_an_error_at_the_doi() {
        let cipso = [kind::CIPSO, 8, 0, 0, 0, 1, 0, 0];
        assert_eq!(compile(&cipso, none, false), Err(OptionError { pointer: 22 }));
        assert_eq!(compile(&cipso, none, true).unwrap().cipso, Some(20));
        assert_eq!(compile(&[kind::CIPSO, 6, 0, 0, 0, 1, 0, 0], none, false), Err(OptionError { pointer: 21 }));
    }


    const OURS: [u8; 4] = [198, 18, 0, 1];

    #[test]
    fn nops_and_router_alert_are_not_echoed() {
        for opts in [&[1u8, 1, 1, 0][..], &[kind::RA, 4, 0, 0]] {
            let o = compile(opts, none, false).unwrap();
            assert_eq!(OptionsEcho::of_received(opts, &o, OURS, 7, none), None);
        }
    }

    /// ping -R: the replying host appears twice, once as the datagram's
    /// last hop (input) and once as the reply's first (output).
    #[test]
    fn record_route_echo_carries_our_address_twice() {
        let opts = [kind::RR, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let o = compile(&opts, none, false).unwrap();
        let e = OptionsEcho::of_received(&opts, &o, OURS, 0, none).expect("echo");
        let mut out = [0u8; 12];
        e.write(&mut out, OURS, 0);
        assert_eq!(out, [kind::RR, 11, 12, 198, 18, 0, 1, 198, 18, 0, 1, 0]);
        // One slot only: filled on input, full in the reply.
        let opts = [kind::RR, 7, 4, 0, 0, 0, 0, 1];
        let o = compile(&opts, none, false).unwrap();
        let e = OptionsEcho::of_received(&opts, &o, OURS, 0, none).expect("echo");
        let mut out = [0u8; 8];
        e.write(&mut out, OURS, 0);
        assert_eq!(out, [kind::RR, 7, 8, 198, 18, 0, 1, 0]);
    }

    #[test]
    fn timestamp_echo_stamps_receive_and_send() {
        let opts = [kind::TIMESTAMP, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let o = compile(&opts, none, false).unwrap();
        let e = OptionsEcho::of_received(&opts, &o, OURS, 1000, none).expect("echo");
        let mut out = [0u8; 12];
        e.write(&mut out, OURS, 1001);
        assert_eq!(&out[..4], &[kind::TIMESTAMP, 12, 13, 0]);
        assert_eq!(&out[4..8], &1000u32.to_be_bytes());
        assert_eq!(&out[8..12], &1001u32.to_be_bytes());
        // Full: the overflow count goes up by one, nothing else.
        let full = [kind::TIMESTAMP, 8, 9, 0x20, 0, 0, 0, 9];
        let o = compile(&full, none, false).unwrap();
        let e = OptionsEcho::of_received(&full, &o, OURS, 1000, none).expect("echo");
        let mut out = [0u8; 8];
        e.write(&mut out, OURS, 1001);
        assert_eq!(out, [kind::TIMESTAMP, 8, 9, 0x30, 0, 0, 0, 9]);
    }

    #[test]
    fn inserting_options_moves_the_payload_and_redoes_the_ip_header() {
        let mut f = [0u8; 80];
        f[14] = 0x45;
        f[16..18].copy_from_slice(&24u16.to_be_bytes());
        f[34..38].copy_from_slice(b"tcp!");
        let n = insert_into_frame(&mut f, 38, 14, 4, |o| o.copy_from_slice(&[kind::RR, 3, 4, 0]), true);
        assert_eq!(n, 42);
        assert_eq!(f[14], 0x46);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 28);
        assert_eq!(&f[34..38], &[kind::RR, 3, 4, 0]);
        assert_eq!(&f[38..42], b"tcp!");
        assert_eq!(super::super::checksum::fold(super::super::checksum::sum(&f[14..38])), 0xffff);
    }

    proptest! {
        /// Any bytes: no panic, and an error points inside the options.
        #[test]
        fn never_panics(opts in proptest::collection::vec(any::<u8>(), 0..40)) {
            match compile(&opts, |a| a[0] & 1 == 0, false) {
                Err(e) => prop_assert!(usize::from(e.pointer) >= 20 && usize::from(e.pointer) < 20 + opts.len()),
                Ok(o) => {
                    if let Some(e) = OptionsEcho::of_received(&opts, &o, OURS, 5, |a| a[0] & 1 == 0) {
                        prop_assert!(e.len() <= MAX_LEN && e.len() % 4 == 0);
                        let mut out = [0u8; MAX_LEN];
                        e.write(&mut out, OURS, 6);
                    }
                }
            }
        }
    }
}
