//! ICMP: echo replies, destination unreachable and parameter problem, as
//! Linux's `icmp_echo` and `icmp_send` build them (rate limited like `icmp_global_allow` and
//! the per-peer `inet_peer` limit).

use super::{write_eth, Host, DEFAULT_TTL, ICMP_ERROR_MAX};
use crate::engine::time::Instant;
use crate::engine::tx::{TxFrame, TxSink, WithIpOptions};
use crate::wire::ipv4_options;
use crate::stats::Counter;
use crate::wire::ethernet::{self, EtherType, EthernetFrame};
use crate::wire::icmp::{self, Icmpv4Packet, Icmpv4Type};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};

/// ICMP errors carry precedence "internetwork control" (Linux: IPTOS_PREC_INTERNETCONTROL).
const IPTOS_PREC_INTERNETCONTROL: u8 = 0xc0;
const IPTOS_TOS_MASK: u8 = 0x1e;

/// The TOS byte of a received datagram (DSCP << 2 | ECN).
pub(super) fn tos_of(ip: &Ipv4Packet<&[u8]>) -> u8 {
    (ip.dscp() << 2) | ip.ecn()
}

impl Host {
    /// `icmp_rcv`: echo requests answered (`icmp_echo`), with the request's
    /// IP options echoed as `icmp_reply` does.
    // Off the TCP receive path's inlined code (the SYN path stays small).
    #[inline(never)]
    pub(super) fn icmp(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, tx: &mut impl TxSink) {
        if ip.has_options() {
            return self.icmp_with_options(now, eth, ip, tx);
        }
        self.icmp_echo(eth, ip, tx)
    }

    #[cold]
    #[inline(never)]
    fn icmp_with_options(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, tx: &mut impl TxSink) {
        let time = self.cfg.utc_ms_since_midnight(now);
        match ipv4_options::reply_echo(ip, time) {
            Some(echo) => self.icmp_echo(eth, ip, &mut WithIpOptions::new(tx, &echo, ip.dst_addr().octets(), time)),
            None => self.icmp_echo(eth, ip, tx),
        }
    }

    fn icmp_echo(&mut self, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, tx: &mut impl TxSink) {
        let c = &*self.counters;
        c.inc(Counter::IcmpInMsgs);
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            c.inc(Counter::IcmpInErrors);
            return;
        };
        if !icmp.verify_checksum() {
            c.inc(Counter::IcmpInErrors);
            return;
        }
        if icmp.msg_type() != Icmpv4Type::EchoRequest {
            return;
        }
        c.inc(Counter::IcmpInEchos);
        let icmp_len = ip.payload().len();
        let ip_len = ipv4::HEADER_LEN + icmp_len;
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let request = ip.payload();
        // Linux: the echo reply copies the TOS, has no DF and TTL 64.
        let ip_repr = Ipv4Repr {
            src_addr: ip.dst_addr(),
            dst_addr: ip.src_addr(),
            protocol: IpProtocol::Icmp,
            payload_len: icmp_len as u16,
            ttl: DEFAULT_TTL,
            ident: {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                self.ip_ident
            },
            dont_frag: false,
            tos: tos_of(ip),
        };
        let sent = tx.emit(ethernet::HEADER_LEN + ip_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv4);
            let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
            let _ = ip_repr.emit(l3);
            let reply = &mut l4[..icmp_len];
            reply.copy_from_slice(request);
            let mut m = Icmpv4Packet::new_unchecked(reply);
            let code = m.msg_code();
            m.echo_request_to_reply();
            // Linux's icmp_echo copies the request's code into the reply (nmap's
            // OS detection probes with code 9 to see this); RFC 792 says 0.
            if code != 0 {
                m.set_msg_code(code);
                m.fill_checksum();
            }
            TxFrame::done(ethernet::HEADER_LEN + ip_len)
        });
        if sent {
            c.inc(Counter::IcmpOutMsgs);
            c.inc(Counter::IcmpOutEchoReps);
            c.inc(Counter::TxFrames);
        }
    }

    /// ICMP destination unreachable quoting the offending datagram, rate limited.
    // Off the TCP receive path's inlined code (the SYN path stays small).
    #[inline(never)]
    pub(super) fn icmp_unreachable(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        code: u8,
        tx: &mut impl TxSink,
    ) {
        self.icmp_error(now, eth, ip, Icmpv4Type::DestUnreachable, code, [0; 4], tx);
    }

    /// ICMP parameter problem pointing at byte `pointer` of the datagram's
    /// IP header (`ip_options_compile`'s error path).
    pub(super) fn icmp_param_problem(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, ip: &Ipv4Packet<&[u8]>, pointer: u8, tx: &mut impl TxSink) {
        // icmp_send: never an error about an ICMP error.
        if ip.protocol() == IpProtocol::Icmp && ip.payload().first().is_some_and(|&t| is_icmp_error(t)) {
            return;
        }
        self.icmp_error(now, eth, ip, Icmpv4Type::ParamProblem, 0, [pointer, 0, 0, 0], tx);
    }

    /// An ICMP error (`icmp_send`) with the four bytes after the checksum
    /// (`word`: unused for unreachable, the pointer for parameter problem).
    #[allow(clippy::too_many_arguments)]
    fn icmp_error(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        msg_type: Icmpv4Type,
        code: u8,
        word: [u8; 4],
        tx: &mut impl TxSink,
    ) {
        if !ip.has_options() {
            return self.icmp_error_to(now, eth, ip, (msg_type, code, word), 0, tx);
        }
        self.icmp_error_with_options(now, eth, ip, (msg_type, code, word), tx)
    }

    #[cold]
    #[inline(never)]
    fn icmp_error_with_options(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        (msg_type, code, word): (Icmpv4Type, u8, [u8; 4]),
        tx: &mut impl TxSink,
    ) {
        let time = self.cfg.utc_ms_since_midnight(now);
        match ipv4_options::reply_echo(ip, time) {
            Some(echo) => {
                let opts = echo.len();
                self.icmp_error_to(now, eth, ip, (msg_type, code, word), opts, &mut WithIpOptions::new(tx, &echo, ip.dst_addr().octets(), time))
            }
            None => self.icmp_error_to(now, eth, ip, (msg_type, code, word), 0, tx),
        }
    }

    /// The error itself; `opts` bytes of echoed IP options come off the
    /// quote so the whole stays within 576 bytes (`icmp_send`'s room).
    fn icmp_error_to(
        &mut self,
        now: Instant,
        eth: &EthernetFrame<&[u8]>,
        ip: &Ipv4Packet<&[u8]>,
        (msg_type, code, word): (Icmpv4Type, u8, [u8; 4]),
        opts: usize,
        tx: &mut impl TxSink,
    ) {
        let c = &*self.counters;
        let peer = ip.src_addr();
        if !self.icmp_limit.allow(now, peer) {
            c.inc(Counter::IcmpOutRateLimited);
            return;
        }
        let original = &eth.payload()[..usize::from(ip.total_len())];
        let quote_len = original.len().min(ICMP_ERROR_MAX - ipv4::HEADER_LEN - opts - icmp::HEADER_LEN);
        let icmp_len = icmp::HEADER_LEN + quote_len;
        let ip_len = ipv4::HEADER_LEN + icmp_len;
        let (mac, peer_mac) = (self.cfg.mac, eth.src_addr());
        let ip_repr = Ipv4Repr {
            src_addr: ip.dst_addr(),
            dst_addr: peer,
            protocol: IpProtocol::Icmp,
            payload_len: icmp_len as u16,
            ttl: DEFAULT_TTL,
            ident: {
                self.ip_ident = self.ip_ident.wrapping_add(1);
                self.ip_ident
            },
            dont_frag: false,
            tos: IPTOS_PREC_INTERNETCONTROL | (tos_of(ip) & IPTOS_TOS_MASK),
        };
        let sent = tx.emit(ethernet::HEADER_LEN + ip_len, |buf| {
            let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
            write_eth(l2, peer_mac, mac, EtherType::Ipv4);
            let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
            let _ = ip_repr.emit(l3);
            let mut m = Icmpv4Packet::new_unchecked(&mut l4[..icmp_len]);
            m.set_msg_type(msg_type);
            m.set_msg_code(code);
            m.set_echo_ident(u16::from_be_bytes([word[0], word[1]]));
            m.set_echo_seq_no(u16::from_be_bytes([word[2], word[3]]));
            m.data_mut().copy_from_slice(&original[..quote_len]);
            m.fill_checksum();
            TxFrame::done(ethernet::HEADER_LEN + ip_len)
        });
        if sent {
            c.inc(Counter::IcmpOutMsgs);
            c.inc(if msg_type == Icmpv4Type::ParamProblem { Counter::IcmpOutParmProbs } else { Counter::IcmpOutDestUnreachs });
            c.inc(Counter::TxFrames);
        }
    }
}

/// ICMP types that are errors (RFC 1122 3.2.2: never answered with one).
fn is_icmp_error(msg_type: u8) -> bool {
    matches!(msg_type, 3 | 4 | 5 | 11 | 12)
}
