//! Building the segments the TCP layer sends: SYN-ACK (for a request sock
//! or a cookie), a bare ACK for an out-of-window segment, RST, and what a
//! TCB hands out (Linux's tcp_output.c and `ip_build_and_send_pkt`).

use crate::engine::host::ipv6::DEFAULT_HOP_LIMIT;
use crate::engine::host::DEFAULT_TTL;
use crate::engine::tcb::{Payload, SegOut};
use crate::engine::tx::{TxFrame, TxOffload, TxSink};
use crate::stats::{Counter, Counters};
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetAddress};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Repr, NextHeader};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
pub use crate::engine::flow::FlowKey;

/// Where a segment goes at layer 2.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub our_mac: EthernetAddress,
    pub peer_mac: EthernetAddress,
}

/// A segment to send: fixed header fields, options for a SYN-ACK, payload.
pub struct OutSegment<'a> {
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// SYN-ACK options (Linux's layout), or only timestamps for an ACK.
    pub syn_options: Option<&'a SynOptions>,
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018), at most 3 with timestamps, 4 without.
    pub sack: &'a [(u32, u32)],
    /// The payload, possibly in two pieces (a ring buffer's wrap).
    pub payload: (&'a [u8], &'a [u8]),
}

impl<'a> OutSegment<'a> {
    /// A segment without options or payload (RST, bare ACK).
    pub fn bare(seq: u32, ack: u32, flags: TcpFlags, window: u16) -> OutSegment<'a> {
        OutSegment { seq, ack, flags, window, syn_options: None, timestamps: None, sack: &[], payload: (&[], &[]) }
    }

    fn payload_len(&self) -> usize {
        self.payload.0.len() + self.payload.1.len()
    }
}

/// Options of a non-SYN segment in Linux's aligned layout: NOP NOP TS, then
/// NOP NOP SACK. Returns the length written.
fn write_options(opts: &mut [u8], ts: Option<(u32, u32)>, sack: &[(u32, u32)]) -> usize {
    let mut n = 0;
    if let Some((tsval, tsecr)) = ts {
        opts[..4].copy_from_slice(&[1, 1, 8, 10]);
        opts[4..8].copy_from_slice(&tsval.to_be_bytes());
        opts[8..12].copy_from_slice(&tsecr.to_be_bytes());
        n = 12;
    }
    let room = (tcp::MAX_OPTIONS_LEN - n - 4) / 8;
    let blocks = &sack[..sack.len().min(room)];
    if !blocks.is_empty() {
        opts[n..n + 4].copy_from_slice(&[1, 1, 5, (2 + 8 * blocks.len()) as u8]);
        n += 4;
        for (l, r) in blocks {
            opts[n..n + 4].copy_from_slice(&l.to_be_bytes());
            opts[n + 4..n + 8].copy_from_slice(&r.to_be_bytes());
            n += 8;
        }
    }
    n
}

/// Largest options block we emit.
const MAX_OPTIONS: usize = tcp::MAX_OPTIONS_LEN;

/// Build and hand one segment of `key` to `tx`. IPv4 with DF and ident 0,
/// TTL 64, TOS 0, as Linux's ip_build_and_send_pkt for a listener; IPv6
/// with hop limit 64, traffic class 0 and flow label 0 (`ip6_xmit`).
pub fn send_segment(tx: &mut impl TxSink, route: Route, key: FlowKey, seg: &OutSegment<'_>) -> bool {
    if !key.is_v4() {
        return send_segment6(tx, route, key, seg);
    }
    let max = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN + MAX_OPTIONS + seg.payload_len();
    let offload = tx.csum_offload();
    tx.emit(max, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let _ = ethernet::emit_header(l2, route.peer_mac, route.our_mac, EtherType::Ipv4);
        let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
        // Options first, straight into place after the fixed header. Written
        // out here rather than through `write_tcp` (IPv6's): the call costs
        // the IPv4 queue path 36 instructions per SYN (bench/callgrind.sh).
        let opts_len = {
            let opts = &mut l4[tcp::HEADER_LEN..tcp::HEADER_LEN + MAX_OPTIONS];
            match seg.syn_options {
                Some(o) => o.emit(opts).unwrap_or(0),
                None => write_options(opts, seg.timestamps, seg.sack),
            }
        };
        let header_len = tcp::HEADER_LEN + opts_len;
        let (a, b) = seg.payload;
        let tcp_len = header_len + a.len() + b.len();
        l4[header_len..header_len + a.len()].copy_from_slice(a);
        l4[header_len + a.len()..tcp_len].copy_from_slice(b);
        let repr = TcpRepr {
            src_port: key.local_port,
            dst_port: key.peer_port,
            seq_number: seg.seq,
            ack_number: seg.ack,
            flags: seg.flags,
            window_len: seg.window,
        };
        let _ = repr.emit_header(&mut l4[..tcp_len], opts_len);
        let (src, dst) = (key.local_ip(), key.peer_ip());
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            ttl: DEFAULT_TTL,
            ident: 0,
            dont_frag: true,
            tos: 0,
        };
        let _ = ip.emit(l3);
        let len = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len;
        if offload {
            // DPDK wants the pseudo-header sum in the TCP field and a zero IP checksum.
            let mut t = TcpSegment::new_unchecked(&mut l4[..tcp_len]);
            t.set_checksum(checksum::fold(checksum::pseudo_header_ipv4(src.octets(), dst.octets(), 6, tcp_len as u16)));
            l3[10..12].copy_from_slice(&[0, 0]);
            TxFrame { len, offload: TxOffload::Ipv4Tcp { l2_len: ethernet::HEADER_LEN as u8, l3_len: ipv4::HEADER_LEN as u8 } }
        } else {
            TcpSegment::new_unchecked(&mut l4[..tcp_len]).fill_checksum(src, dst);
            TxFrame::done(len)
        }
    })
}

/// The TCP header, options and payload of `seg` into `l4`; the length written.
fn write_tcp(l4: &mut [u8], key: &FlowKey, seg: &OutSegment<'_>) -> usize {
    let opts_len = {
        let opts = &mut l4[tcp::HEADER_LEN..tcp::HEADER_LEN + MAX_OPTIONS];
        match seg.syn_options {
            Some(o) => o.emit(opts).unwrap_or(0),
            None => write_options(opts, seg.timestamps, seg.sack),
        }
    };
    let header_len = tcp::HEADER_LEN + opts_len;
    let (a, b) = seg.payload;
    let tcp_len = header_len + a.len() + b.len();
    l4[header_len..header_len + a.len()].copy_from_slice(a);
    l4[header_len + a.len()..tcp_len].copy_from_slice(b);
    let repr = TcpRepr {
        src_port: key.local_port,
        dst_port: key.peer_port,
        seq_number: seg.seq,
        ack_number: seg.ack,
        flags: seg.flags,
        window_len: seg.window,
    };
    let _ = repr.emit_header(&mut l4[..tcp_len], opts_len);
    tcp_len
}

/// The IPv6 header of a TCP segment we send: hop limit 64, traffic class 0
/// and flow label 0 (`ip6_xmit` for a listener's and a connection's packets).
pub(super) fn tcp6_header(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, tcp_len: usize) -> Ipv6Repr {
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: NextHeader::Tcp,
        payload_len: tcp_len as u16,
        hop_limit: DEFAULT_HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
}

#[inline(never)]
fn send_segment6(tx: &mut impl TxSink, route: Route, key: FlowKey, seg: &OutSegment<'_>) -> bool {
    const L3: usize = ipv6::HEADER_LEN;
    let max = ethernet::HEADER_LEN + L3 + tcp::HEADER_LEN + MAX_OPTIONS + seg.payload_len();
    let offload = tx.csum_offload();
    let (src, dst) = (key.local_ip6(), key.peer_ip6());
    tx.emit(max, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let _ = ethernet::emit_header(l2, route.peer_mac, route.our_mac, EtherType::Ipv6);
        let (l3, l4) = rest.split_at_mut(L3);
        let tcp_len = write_tcp(l4, &key, seg);
        let _ = tcp6_header(src, dst, tcp_len).emit(l3);
        let len = ethernet::HEADER_LEN + L3 + tcp_len;
        let l4 = &mut l4[..tcp_len];
        if offload {
            let sum = checksum::fold(ipv6::pseudo_header(&src, &dst, 6, tcp_len as u32));
            l4[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].copy_from_slice(&sum.to_be_bytes());
            TxFrame { len, offload: TxOffload::Ipv6Tcp { l2_len: ethernet::HEADER_LEN as u8, l3_len: L3 as u8 } }
        } else {
            let _ = ipv6::fill_upper_layer(&src, &dst, NextHeader::Tcp, l4, tcp::CHECKSUM_AT);
            TxFrame::done(len)
        }
    })
}

/// The options of a SYN-ACK answering what the client offered.
#[derive(Clone, Copy)]
pub struct SynAckOptions {
    pub mss: u16,
    pub wscale: Option<u8>,
    pub sack: bool,
    pub timestamps: Option<(u32, u32)>,
    pub fastopen: Option<FastOpenCookie>,
}

impl SynAckOptions {
    pub fn to_wire(&self) -> SynOptions {
        SynOptions {
            mss: Some(self.mss),
            wscale: self.wscale,
            sack_permitted: self.sack,
            timestamps: self.timestamps,
            fastopen: self.fastopen,
        }
    }
}

/// Send a segment without payload or SYN options; counted when the port took it.
pub fn send_counted(tx: &mut impl TxSink, route: Route, key: FlowKey, seg: &OutSegment<'_>, c: &Counters) {
    if send_segment(tx, route, key, seg) {
        c.inc(Counter::TcpOutSegs);
        c.inc(Counter::TxFrames);
        if !key.is_v4() {
            c.inc(Counter::Ip6OutRequests);
        }
        if seg.flags.contains(TcpFlags::RST) {
            c.inc(Counter::TcpOutRsts);
        }
    }
}

/// Emit one segment a TCB produced.
pub fn emit_tcb_segment(tx: &mut impl TxSink, route: Route, key: FlowKey, seg: &SegOut, payload: Payload<'_>, c: &Counters) {
    let out = OutSegment {
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: seg.window,
        syn_options: None,
        timestamps: seg.ts,
        sack: seg.sack_blocks(),
        payload: (payload.0, payload.1),
    };
    send_counted(tx, route, key, &out, c);
}
