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

    proptest! {
        /// Any bytes: no panic, and an error points inside the options.
        #[test]
        fn never_panics(opts in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Err(e) = compile(&opts, |a| a[0] & 1 == 0, false) {
                prop_assert!(usize::from(e.pointer) >= 20 && usize::from(e.pointer) < 20 + opts.len());
            }
        }
    }
}
