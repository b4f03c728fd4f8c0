//! Building the segments the listen path sends: SYN-ACK (for a request sock
//! or a cookie), a bare ACK for an out-of-window segment, and RST.

use crate::engine::host::DEFAULT_TTL;
use crate::engine::tx::{TxFrame, TxSink};
use crate::wire::ethernet::{self, EtherType, EthernetAddress};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use std::net::Ipv4Addr;

/// Both ends of a flow, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local: u32,
    pub peer: u32,
    pub local_port: u16,
    pub peer_port: u16,
}

impl FlowKey {
    pub fn local_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.local)
    }
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.peer)
    }
}

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
    pub payload: &'a [u8],
}

/// Largest options block we emit.
const MAX_OPTIONS: usize = tcp::MAX_OPTIONS_LEN;

/// Build and hand one segment of `key` to `tx`. IPv4 with DF and ident 0,
/// TTL 64, TOS 0, as Linux's ip_build_and_send_pkt for a listener.
pub fn send_segment(tx: &mut impl TxSink, route: Route, key: FlowKey, seg: &OutSegment<'_>) -> bool {
    let max = ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp::HEADER_LEN + MAX_OPTIONS + seg.payload.len();
    tx.emit(max, |buf| {
        let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let _ = ethernet::emit_header(l2, route.peer_mac, route.our_mac, EtherType::Ipv4);
        let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
        // Options first, straight into place after the fixed header.
        let opts_len = {
            let opts = &mut l4[tcp::HEADER_LEN..tcp::HEADER_LEN + MAX_OPTIONS];
            match (seg.syn_options, seg.timestamps) {
                (Some(o), _) => o.emit(opts).unwrap_or(0),
                (None, Some((tsval, tsecr))) => {
                    // Linux's aligned layout for established segments: NOP NOP TS.
                    opts[..2].copy_from_slice(&[1, 1]);
                    opts[2..4].copy_from_slice(&[8, 10]);
                    opts[4..8].copy_from_slice(&tsval.to_be_bytes());
                    opts[8..12].copy_from_slice(&tsecr.to_be_bytes());
                    12
                }
                (None, None) => 0,
            }
        };
        let header_len = tcp::HEADER_LEN + opts_len;
        let tcp_len = header_len + seg.payload.len();
        l4[header_len..tcp_len].copy_from_slice(seg.payload);
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
        TcpSegment::new_unchecked(&mut l4[..tcp_len]).fill_checksum(src, dst);
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
        TxFrame::done(ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len)
    })
}

/// The options of a SYN-ACK answering what the client offered.
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
