//! RST for a segment no socket takes (Linux's `tcp_v4_send_reset`,
//! `tcp_v6_send_reset`).

use super::icmp::tos_of;
use super::ipv6::DEFAULT_HOP_LIMIT;
use super::{write_eth, IpHeader, TcpInput, DEFAULT_TTL};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self as wire_ipv6, Ipv6Packet, Ipv6Repr, NextHeader};
use crate::engine::tx::{TxFrame, TxSink, WithIpOptions};
use crate::wire::ipv4_options;
use crate::stats::{Counter, Counters};
use crate::wire::ethernet::{self, EtherType, EthernetAddress};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};

/// Answer a segment nobody takes, exactly as Linux's tcp_v4_send_reset:
/// never to an RST; if it carried ACK, RST with seq = its ack; otherwise
/// RST|ACK with seq 0 and ack = seq + SYN + FIN + payload. Window 0, no
/// options, TOS reflected, TTL 64, DF, IP ident 0; the segment's IP
/// options echoed (`ip_send_unicast_reply`), stamped with `time` (ms since
/// midnight UTC) where they ask for it.
///
/// Over IPv6 (`tcp_v6_send_reset`) the same fields, the traffic class
/// reflected without its ECN bits, hop limit 64, flow label 0.
pub fn send_reset(input: &TcpInput<'_>, mac: EthernetAddress, time: u32, c: &Counters, tx: &mut impl TxSink) {
    match &input.ip {
        IpHeader::V4(ip) if ip.has_options() => reset_with_options(input, ip, mac, time, c, tx),
        IpHeader::V4(ip) => reset(input, ip, mac, c, tx),
        IpHeader::V6(ip, _) => reset6(input, ip, mac, c, tx),
    }
}

#[cold]
#[inline(never)]
fn reset_with_options(input: &TcpInput<'_>, ip: &Ipv4Packet<&[u8]>, mac: EthernetAddress, time: u32, c: &Counters, tx: &mut impl TxSink) {
    match ipv4_options::reply_echo(ip, time) {
        Some(echo) => reset(input, ip, mac, c, &mut WithIpOptions::new(tx, &echo, ip.dst_addr().octets(), time)),
        None => reset(input, ip, mac, c, tx),
    }
}

/// The RST's (seq, ack, flags) answering `seg`, or `None` for an RST.
fn reset_fields(seg: &TcpSegment<&[u8]>) -> Option<(u32, u32, TcpFlags)> {
    let flags = seg.flags();
    if flags.contains(TcpFlags::RST) {
        return None;
    }
    Some(if flags.contains(TcpFlags::ACK) {
        (seg.ack_number(), 0, TcpFlags::RST)
    } else {
        let len = seg.payload().len() as u32
            + flags.contains(TcpFlags::SYN) as u32
            + flags.contains(TcpFlags::FIN) as u32;
        (0, seg.seq_number().wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
    })
}

fn reset(input: &TcpInput<'_>, ip: &Ipv4Packet<&[u8]>, mac: EthernetAddress, c: &Counters, tx: &mut impl TxSink) {
    let seg = &input.seg;
    let Some((seq, ack, out_flags)) = reset_fields(seg) else { return };
    let (src, dst) = (ip.dst_addr(), ip.src_addr());
    let ip_repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Tcp,
        payload_len: tcp::HEADER_LEN as u16,
        ttl: DEFAULT_TTL,
        ident: 0,
        dont_frag: true,
        tos: tos_of(ip),
    };
    let tcp_repr = reset_repr(seg, seq, ack, out_flags);
    let peer_mac = input.eth_src;
    const LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN;
    let sent = tx.emit(LEN, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        write_eth(l2, peer_mac, mac, EtherType::Ipv4);
        let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
        let _ = ip_repr.emit(l3);
        let l4 = &mut l4[..tcp::HEADER_LEN];
        let _ = tcp_repr.emit_header(l4, 0);
        TcpSegment::new_unchecked(l4).fill_checksum(src, dst);
        TxFrame::done(LEN)
    });
    if sent {
        c.inc(Counter::TcpOutSegs);
        c.inc(Counter::TcpOutRsts);
        c.inc(Counter::TxFrames);
    }
}

/// The RST's TCP header: back to the segment's sender, window 0.
fn reset_repr(seg: &TcpSegment<&[u8]>, seq: u32, ack: u32, flags: TcpFlags) -> TcpRepr {
    TcpRepr { src_port: seg.dst_port(), dst_port: seg.src_port(), seq_number: seq, ack_number: ack, flags, window_len: 0 }
}

#[inline(never)]
fn reset6(input: &TcpInput<'_>, ip: &Ipv6Packet<&[u8]>, mac: EthernetAddress, c: &Counters, tx: &mut impl TxSink) {
    let seg = &input.seg;
    let Some((seq, ack, out_flags)) = reset_fields(seg) else { return };
    let (ours, peer) = (ip.dst_addr(), ip.src_addr());
    let ip_repr = Ipv6Repr {
        src_addr: ours,
        dst_addr: peer,
        next_header: NextHeader::Tcp,
        payload_len: tcp::HEADER_LEN as u16,
        hop_limit: DEFAULT_HOP_LIMIT,
        traffic_class: ip.traffic_class() & !0x03,
        flow_label: 0,
    };
    let tcp_repr = reset_repr(seg, seq, ack, out_flags);
    let peer_mac = input.eth_src;
    const LEN: usize = ethernet::HEADER_LEN + wire_ipv6::HEADER_LEN + tcp::HEADER_LEN;
    let sent = tx.emit(LEN, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        write_eth(l2, peer_mac, mac, EtherType::Ipv6);
        let (l3, l4) = rest.split_at_mut(wire_ipv6::HEADER_LEN);
        let _ = ip_repr.emit(l3);
        let l4 = &mut l4[..tcp::HEADER_LEN];
        let _ = tcp_repr.emit_header(l4, 0);
        let _ = wire_ipv6::fill_upper_layer(&ours, &peer, NextHeader::Tcp, l4, tcp::CHECKSUM_AT);
        TxFrame::done(LEN)
    });
    if sent {
        c.inc(Counter::TcpOutSegs);
        c.inc(Counter::TcpOutRsts);
        c.inc(Counter::Ip6OutRequests);
        c.inc(Counter::TxFrames);
    }
}
