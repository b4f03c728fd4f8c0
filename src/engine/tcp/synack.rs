//! SYN-ACKs from templates, as dperf builds its packets: each option layout
//! Linux's `tcp_synack_options` can produce is a frame built once per
//! worker and family (Ethernet, IPv4 or IPv6 and TCP headers, options with
//! our MSS and window scale), together with the checksum sums of its
//! constant bytes. Per
//! SYN-ACK only the changing fields are written (addresses, ports, seq,
//! ack, timestamps, ECE) and both checksums are finished from those sums.
//!
//! SYN-ACKs carrying a TFO cookie are rare and take the general builder
//! (`output::send_segment`).

use super::output::{send_segment, tcp6_header, OutSegment, Route, SynAckOptions};
use super::TcpConfig;
use crate::engine::flow::FlowKey;
use crate::engine::host::DEFAULT_TTL;
use crate::engine::time::Instant;
use crate::stats::{Counter, Counters};
use crate::engine::tx::{TxFrame, TxOffload, TxSink};
use crate::wire::checksum;
use crate::wire::ethernet::{self, EtherType, EthernetAddress};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::ipv6;
use crate::wire::tcp::{self, TcpFlags, TcpRepr};
use crate::wire::ipv4_options::OptionsEcho;
use crate::wire::tcp_options::{FastOpenCookie, SynOptions};
use ahash::AHashMap;

/// A SYN-ACK the listen path decided on, built in the build stage.
pub struct PendingSynAck {
    pub route: Route,
    pub key: FlowKey,
    pub iss: u32,
    pub ack: u32,
    /// Our TSval and the client's (TSecr), when timestamps are on.
    pub ts: Option<(u32, u32)>,
    pub sack: bool,
    /// Window scaling is on (ours is announced).
    pub wscale: bool,
    pub ecn: bool,
    pub fastopen: Option<FastOpenCookie>,
    /// (listener id, SYN time): a SYN->SYN-ACK latency sample once sent.
    pub sample: Option<(u64, Instant)>,
    /// A retransmission (TCPSynRetrans once sent).
    pub retransmit: bool,
    /// Whether it echoes the SYN's IP options (kept in the [`SynAckQueue`]).
    pub ip_options: EchoIp,
}

/// The SYN-ACKs decided and not built yet (the build stage of a burst),
/// and the IP options some of them echo: Linux's `ireq_opt`, kept here by
/// flow for the rare SYNs with record route or timestamp options so that
/// a request sock stays small, with the time they were last decided (the
/// time an IP timestamp option carries).
#[derive(Default)]
pub struct SynAckQueue {
    pending: Vec<PendingSynAck>,
    ip_echo: AHashMap<FlowKey, (OptionsEcho, Instant)>,
}

impl SynAckQueue {
    #[inline]
    pub fn push(&mut self, p: PendingSynAck) {
        self.pending.push(p);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The pending SYN-ACKs, taken out (their capacity comes back with
    /// [`SynAckQueue::put_back`]: no allocation per burst).
    pub fn take(&mut self) -> Vec<PendingSynAck> {
        std::mem::take(&mut self.pending)
    }

    pub fn put_back(&mut self, mut emptied: Vec<PendingSynAck>) {
        emptied.clear();
        self.pending = emptied;
    }

    /// Keep `echo` for the SYN-ACKs of `key`, decided at `now`.
    pub fn save_ip_echo(&mut self, key: FlowKey, echo: OptionsEcho, now: Instant) {
        self.ip_echo.insert(key, (echo, now));
    }

    /// A retransmission of `key`'s SYN-ACK decided at `now`.
    pub fn retouch_ip_echo(&mut self, key: &FlowKey, now: Instant) {
        if let Some(e) = self.ip_echo.get_mut(key) {
            e.1 = now;
        }
    }

    /// The echo for `p` (removed when used once).
    pub fn ip_echo_for(&mut self, p: &PendingSynAck) -> Option<(OptionsEcho, Instant)> {
        match p.ip_options {
            EchoIp::No => None,
            EchoIp::Once => self.ip_echo.remove(&p.key),
            EchoIp::Request => self.ip_echo.get(&p.key).copied(),
        }
    }

    pub fn forget_ip_echo(&mut self, key: &FlowKey) {
        self.ip_echo.remove(key);
    }

    pub fn ip_echo_is_empty(&self) -> bool {
        self.ip_echo.is_empty()
    }
}

/// Where a SYN-ACK's echoed IP options come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoIp {
    No,
    /// The request sock's, kept for its retransmissions.
    Request,
    /// Used once (a cookie or a TFO child keeps no request).
    Once,
}

const ETH: usize = ethernet::HEADER_LEN;
const IP: usize = ipv4::HEADER_LEN;
const IP6: usize = ipv6::HEADER_LEN;
/// The longest option block without TFO (MSS, SACK_PERM+TS, NOP+WS).
const MAX_OPTS: usize = 20;
/// Ethernet + IPv4 + TCP + the longest option block.
const MAX_LEN: usize = ETH + IP + tcp::HEADER_LEN + MAX_OPTS;
/// Ethernet + IPv6 + TCP + the longest option block.
const MAX_LEN6: usize = ETH + IP6 + tcp::HEADER_LEN + MAX_OPTS;
/// Where the TSval is in the TCP header of every layout with timestamps:
/// after MSS (4 bytes) and SACK_PERM or NOP NOP, then TS's kind and length.
const TS_IN_TCP: usize = tcp::HEADER_LEN + 8;
const TS: u8 = 1;
const SACK: u8 = 2;
const WS: u8 = 4;

/// One option layout's frame (`L` bytes: IPv4 or IPv6 at `T - ETH`) and
/// the sums of its constant bytes.
#[derive(Clone, Copy)]
struct Template<const L: usize> {
    bytes: [u8; L],
    len: u8,
    /// Partial sum of the IPv4 header without its addresses (0 for IPv6,
    /// which has no header checksum).
    ip_sum: u32,
    /// Partial sum of the TCP header and options without the fields written
    /// per SYN-ACK (ports, seq, ack, TSval, TSecr; flags with ECE off).
    tcp_sum: u32,
}

/// A worker's SYN-ACK templates, one per (family, timestamps, SACK, window scale).
pub struct SynAckTemplates {
    layouts: [Template<MAX_LEN>; 8],
    layouts6: [Template<MAX_LEN6>; 8],
}

impl SynAckTemplates {
    pub fn new(cfg: &TcpConfig) -> SynAckTemplates {
        SynAckTemplates {
            layouts: std::array::from_fn(|bits| Template::new4(cfg, bits as u8)),
            layouts6: std::array::from_fn(|bits| Template::new6(cfg, bits as u8)),
        }
    }

    /// Send `p`: from its template, or through the general builder when it
    /// carries a TFO cookie. False when the sink had no buffer. Counts
    /// Ip6OutRequests for an IPv6 SYN-ACK sent (the caller counts the rest):
    /// here, the IPv4 path has no family test.
    #[inline(always)]
    pub fn send(&self, cfg: &TcpConfig, p: &PendingSynAck, c: &Counters, tx: &mut impl TxSink) -> bool {
        if p.fastopen.is_some() {
            let sent = send_general(cfg, p, tx);
            if sent && !p.key.is_v4() {
                c.inc(Counter::Ip6OutRequests);
            }
            return sent;
        }
        // The templates have no IP options: the sink adds them after.
        let offload = tx.csum_offload();
        if p.key.is_v4() {
            let t = &self.layouts[layout(p)];
            tx.emit(MAX_LEN, |buf| t.write4(buf, p, offload))
        } else {
            self.send6(p, offload, c, tx)
        }
    }

    // Off the IPv4 path's inlined code.
    #[inline(never)]
    fn send6(&self, p: &PendingSynAck, offload: bool, c: &Counters, tx: &mut impl TxSink) -> bool {
        let t = &self.layouts6[layout(p)];
        let sent = tx.emit(MAX_LEN6, |buf| t.write6(buf, p, offload));
        if sent {
            c.inc(Counter::Ip6OutRequests);
        }
        sent
    }
}

fn layout(p: &PendingSynAck) -> usize {
    let mut bits = 0;
    if p.ts.is_some() {
        bits |= TS;
    }
    if p.sack {
        bits |= SACK;
    }
    if p.wscale {
        bits |= WS;
    }
    usize::from(bits)
}

/// The TCP header and options of layout `bits` into `l4` with the
/// per-SYN-ACK fields zero; the TCP length.
fn tcp_template(cfg: &TcpConfig, bits: u8, key: &FlowKey, l4: &mut [u8]) -> usize {
    let opts = SynOptions {
        mss: Some(cfg.mss_of(key)),
        wscale: (bits & WS != 0).then_some(cfg.rcv_wscale),
        sack_permitted: bits & SACK != 0,
        timestamps: (bits & TS != 0).then_some((0, 0)),
        fastopen: None,
    };
    let opts_len = opts.buffer_len();
    let tcp_len = tcp::HEADER_LEN + opts_len;
    let _ = opts.emit(&mut l4[tcp::HEADER_LEN..tcp_len]);
    let repr = TcpRepr {
        src_port: 0,
        dst_port: 0,
        seq_number: 0,
        ack_number: 0,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window_len: cfg.synack_window_of(key, bits & TS != 0),
    };
    let _ = repr.emit_header(&mut l4[..tcp_len], opts_len);
    l4[tcp::CHECKSUM_AT..tcp::CHECKSUM_AT + 2].fill(0);
    tcp_len
}

impl Template<MAX_LEN> {
    fn new4(cfg: &TcpConfig, bits: u8) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let (l2, rest) = bytes.split_at_mut(ETH);
        let _ = ethernet::emit_header(l2, EthernetAddress([0; 6]), cfg.mac, EtherType::Ipv4);
        let (l3, l4) = rest.split_at_mut(IP);
        let tcp_len = tcp_template(cfg, bits, &FlowKey::v4(0, 0, 0, 0), l4);
        // ip_build_and_send_pkt for a listener: DF, ident 0, TTL 64, TOS 0.
        let ip = Ipv4Repr {
            src_addr: std::net::Ipv4Addr::UNSPECIFIED,
            dst_addr: std::net::Ipv4Addr::UNSPECIFIED,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len as u16,
            ttl: DEFAULT_TTL,
            ident: 0,
            dont_frag: true,
            tos: 0,
        };
        let _ = ip.emit(l3);
        l3[10..12].fill(0);
        let (ip_sum, tcp_sum) = (checksum::sum(&l3[..IP]), checksum::sum(&l4[..tcp_len]));
        Template { bytes, len: (ETH + IP + tcp_len) as u8, ip_sum, tcp_sum }
    }

    /// Copy the template into `buf` and write what is this SYN-ACK's.
    #[inline]
    fn write4(&self, buf: &mut [u8], p: &PendingSynAck, offload: bool) -> TxFrame {
        let Some(f) = buf.get_mut(..MAX_LEN).and_then(|b| <&mut [u8; MAX_LEN]>::try_from(b).ok()) else {
            return TxFrame::done(0);
        };
        // Whole fixed-size copies and stores at constant offsets: no length
        // or bounds checks left to do per SYN-ACK.
        *f = self.bytes;
        let k = &p.key;
        let (local, peer) = (k.local_v4(), k.peer_v4());
        put(f, ETH + 12, &local.to_be_bytes());
        put(f, ETH + 16, &peer.to_be_bytes());
        let tcp_sum = self.write_tcp::<{ ETH + IP }>(f, p);
        let addrs = u64::from(local) + u64::from(peer);
        const T: usize = ETH + IP;
        let len = usize::from(self.len);
        let pseudo = addrs + 6 + (len - T) as u64;
        if offload {
            // DPDK wants the pseudo-header sum in the TCP field and a zero IP checksum.
            put(f, T + 16, &checksum::fold64(pseudo).to_be_bytes());
            return TxFrame { len, offload: TxOffload::Ipv4Tcp { l2_len: ETH as u8, l3_len: IP as u8 } };
        }
        let ip_csum = !checksum::fold64(u64::from(self.ip_sum) + addrs);
        put(f, ETH + 10, &ip_csum.to_be_bytes());
        put(f, T + 16, &(!checksum::fold64(tcp_sum + pseudo)).to_be_bytes());
        TxFrame::done(len)
    }
}

impl Template<MAX_LEN6> {
    fn new6(cfg: &TcpConfig, bits: u8) -> Self {
        let mut bytes = [0u8; MAX_LEN6];
        let (l2, rest) = bytes.split_at_mut(ETH);
        let _ = ethernet::emit_header(l2, EthernetAddress([0; 6]), cfg.mac, EtherType::Ipv6);
        let (l3, l4) = rest.split_at_mut(IP6);
        let any = std::net::Ipv6Addr::UNSPECIFIED;
        let tcp_len = tcp_template(cfg, bits, &FlowKey::v6(any, any, 0, 0), l4);
        let _ = tcp6_header(any, any, tcp_len).emit(l3);
        let tcp_sum = checksum::sum(&l4[..tcp_len]);
        Template { bytes, len: (ETH + IP6 + tcp_len) as u8, ip_sum: 0, tcp_sum }
    }

    /// Copy the template into `buf` and write what is this SYN-ACK's.
    #[inline(always)]
    fn write6(&self, buf: &mut [u8], p: &PendingSynAck, offload: bool) -> TxFrame {
        let Some(f) = buf.get_mut(..MAX_LEN6).and_then(|b| <&mut [u8; MAX_LEN6]>::try_from(b).ok()) else {
            return TxFrame::done(0);
        };
        *f = self.bytes;
        let k = &p.key;
        put(f, ETH + 8, &k.local.to_be_bytes());
        put(f, ETH + 24, &k.peer.to_be_bytes());
        let tcp_sum = self.write_tcp::<{ ETH + IP6 }>(f, p);
        // The pseudo-header's addresses as 32-bit words (RFC 8200 8.1).
        let words = |a: u128| (a >> 96) as u64 + (a >> 64) as u32 as u64 + (a >> 32) as u32 as u64 + a as u32 as u64;
        const T: usize = ETH + IP6;
        let len = usize::from(self.len);
        let pseudo = words(k.local) + words(k.peer) + 6 + (len - T) as u64;
        if offload {
            put(f, T + 16, &checksum::fold64(pseudo).to_be_bytes());
            return TxFrame { len, offload: TxOffload::Ipv6Tcp { l2_len: ETH as u8, l3_len: IP6 as u8 } };
        }
        put(f, T + 16, &(!checksum::fold64(tcp_sum + pseudo)).to_be_bytes());
        TxFrame::done(len)
    }
}

impl<const L: usize> Template<L> {
    /// The TCP fields of this SYN-ACK (the TCP header at `T`); the TCP
    /// sum without the pseudo-header.
    #[inline(always)]
    fn write_tcp<const T: usize>(&self, f: &mut [u8; L], p: &PendingSynAck) -> u64 {
        let k = &p.key;
        put(f, 0, &p.route.peer_mac.0);
        put(f, 6, &p.route.our_mac.0);
        put(f, T, &k.local_port.to_be_bytes());
        put(f, T + 2, &k.peer_port.to_be_bytes());
        put(f, T + 4, &p.iss.to_be_bytes());
        put(f, T + 8, &p.ack.to_be_bytes());
        // One's-complement sums of 32-bit fields added as 64-bit integers
        // and folded once (2^16 = 1 modulo 0xffff, so the halves need not
        // be split).
        let mut tcp_sum = u64::from(self.tcp_sum)
            + u64::from(u32::from(k.local_port) << 16 | u32::from(k.peer_port))
            + u64::from(p.iss)
            + u64::from(p.ack);
        if p.ecn {
            f[T + 13] |= 0x40;
            tcp_sum += 0x40;
        }
        if let Some((tsval, tsecr)) = p.ts {
            // Timestamps always sit at the same offset: right after MSS and
            // the two bytes before TS (SACK_PERM, or NOP NOP).
            put(f, T + TS_IN_TCP, &tsval.to_be_bytes());
            put(f, T + TS_IN_TCP + 4, &tsecr.to_be_bytes());
            tcp_sum += u64::from(tsval) + u64::from(tsecr);
        }
        tcp_sum
    }
}

/// Store `bytes` at a constant offset of a template-sized frame.
#[inline(always)]
fn put<const L: usize, const N: usize>(f: &mut [u8; L], at: usize, bytes: &[u8; N]) {
    f[at..at + N].copy_from_slice(bytes);
}

/// A SYN-ACK with a TFO cookie: built field by field.
pub(super) fn send_general(cfg: &TcpConfig, p: &PendingSynAck, tx: &mut impl TxSink) -> bool {
    let opts = SynAckOptions {
        mss: cfg.mss_of(&p.key),
        wscale: p.wscale.then_some(cfg.rcv_wscale),
        sack: p.sack,
        timestamps: p.ts,
        fastopen: p.fastopen,
    };
    let wire_opts = opts.to_wire();
    let mut flags = TcpFlags::SYN | TcpFlags::ACK;
    if p.ecn {
        flags |= TcpFlags::ECE;
    }
    let seg = OutSegment {
        seq: p.iss,
        ack: p.ack,
        flags,
        window: cfg.synack_window_of(&p.key, p.ts.is_some()),
        syn_options: Some(&wire_opts),
        timestamps: None,
        sack: &[],
        payload: (&[], &[]),
    };
    send_segment(tx, p.route, p.key, &seg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::check::parse_sent_tcp;
    use crate::testkit::rig::VecSink;

    struct OffloadSink(VecSink, Option<TxOffload>);

    impl TxSink for OffloadSink {
        fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
            let mut offload = None;
            let sent = self.0.emit(max_len, |b| {
                let f = build(b);
                offload = Some(f.offload);
                f
            });
            self.1 = offload;
            sent
        }
        fn csum_offload(&self) -> bool {
            true
        }
    }

    const V4: FlowKey = FlowKey::v4(0xc612_0001, 0xc612_8003, 80, 40123);

    fn v6() -> FlowKey {
        FlowKey::v6("2001:2::1".parse().unwrap(), "2001:2:0:1::8003".parse().unwrap(), 80, 40123)
    }

    fn pending(bits: u8, ecn: bool) -> PendingSynAck {
        pending_for(V4, bits, ecn)
    }

    fn pending_for(key: FlowKey, bits: u8, ecn: bool) -> PendingSynAck {
        PendingSynAck {
            route: Route {
                our_mac: EthernetAddress([2, 0, 0, 0xc6, 0x12, 1]),
                peer_mac: EthernetAddress([2, 0, 0, 0xc6, 0x12, 2]),
            },
            key,
            iss: 0xdead_beef,
            ack: 0x0102_0304,
            ts: (bits & TS != 0).then_some((0x1111_2222, 0x8765_4321)),
            sack: bits & SACK != 0,
            wscale: bits & WS != 0,
            ecn,
            fastopen: None,
            sample: None,
            retransmit: false,
            ip_options: EchoIp::No,
        }
    }

    /// Every layout of both families, from a template, is byte for byte
    /// what the general builder makes, checksums included, and with the
    /// NIC's offload what it hands the NIC.
    #[test]
    fn templates_match_the_general_builder() {
        let cfg = TcpConfig { mac: EthernetAddress([2, 0, 0, 0xc6, 0x12, 1]), ..TcpConfig::new(0) };
        let templates = SynAckTemplates::new(&cfg);
        for key in [V4, v6()] {
            for bits in 0..8u8 {
                for ecn in [false, true] {
                    let p = pending_for(key, bits, ecn);
                    let (mut fast, mut general) = (VecSink::default(), VecSink::default());
                    assert!(templates.send(&cfg, &p, &Counters::new(), &mut fast));
                    assert!(send_general(&cfg, &p, &mut general));
                    assert_eq!(fast.frames, general.frames, "{key:?} layout {bits} ecn {ecn}");
                    let f = &fast.frames[0];
                    if key.is_v4() {
                        parse_sent_tcp(Instant::ZERO, f).expect("valid checksums");
                    } else {
                        assert!(ipv6::verify_upper_layer(&key.local_ip6(), &key.peer_ip6(), 6, &f[ETH + IP6..]), "TCP checksum over IPv6");
                    }
                    let (mut fast, mut general) = (OffloadSink(VecSink::default(), None), OffloadSink(VecSink::default(), None));
                    assert!(templates.send(&cfg, &p, &Counters::new(), &mut fast));
                    assert!(send_general(&cfg, &p, &mut general));
                    assert_eq!(fast.0.frames, general.0.frames, "offloaded: {key:?} layout {bits} ecn {ecn}");
                    assert_eq!(fast.1, general.1);
                }
            }
        }
    }

    #[test]
    fn over_ipv6_the_synack_announces_the_ipv6_mss() {
        let cfg = TcpConfig { mac: EthernetAddress([2, 0, 0, 0xc6, 0x12, 1]), ..TcpConfig::new(0) };
        let templates = SynAckTemplates::new(&cfg);
        let mut sink = VecSink::default();
        assert!(templates.send(&cfg, &pending_for(v6(), TS | SACK | WS, false), &Counters::new(), &mut sink));
        let f = &sink.frames[0];
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        // MSS option right after the fixed TCP header: kind 2, length 4, 1440.
        let t = ETH + IP6;
        assert_eq!(&f[t + 20..t + 24], &[2, 4, 0x05, 0xa0]);
    }

    #[test]
    fn with_offload_the_tcp_field_holds_the_pseudo_header_sum() {
        let cfg = TcpConfig { mac: EthernetAddress([2, 0, 0, 0xc6, 0x12, 1]), ..TcpConfig::new(0) };
        let templates = SynAckTemplates::new(&cfg);
        let p = pending(TS | SACK | WS, false);
        let mut sink = OffloadSink(VecSink::default(), None);
        assert!(templates.send(&cfg, &p, &Counters::new(), &mut sink));
        assert!(matches!(sink.1, Some(TxOffload::Ipv4Tcp { l2_len: 14, l3_len: 20 })));
        let f = &sink.0.frames[0];
        assert_eq!(&f[ETH + 10..ETH + 12], &[0, 0], "IP checksum left to the NIC");
        let pseudo = checksum::pseudo_header_ipv4(
            p.key.local_v4().to_be_bytes(),
            p.key.peer_v4().to_be_bytes(),
            6,
            (f.len() - ETH - IP) as u16,
        );
        assert_eq!(&f[ETH + IP + 16..ETH + IP + 18], &checksum::fold(pseudo).to_be_bytes());
    }
}
