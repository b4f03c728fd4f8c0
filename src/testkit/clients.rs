//! Many clients' SYNs and final ACKs, written into buffers without
//! allocating: the inputs of the benches and the callgrind driver. One
//! listener on OUR_IP:80, clients in 198.18.128.0/17 (RFC 2544's
//! benchmarking range, never routed), SYNs laid out exactly as Linux's
//! own (MSS, SACK_PERM, TS, NOP, WS: 74-byte frames).

use super::frame::{write_tcp_frame, TcpHeader, OUR_IP};
use super::rig::{Rig, RigConfig};
use crate::engine::host::{CsumStatus, RxMeta};
use crate::engine::keys::Secrets;
use crate::engine::socket::Fd;
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::TcpConfig;
use crate::wire::ethernet::EthernetFrame;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::tcp::{TcpFlags, TcpSegment};
use crate::wire::tcp_options::{self, SynOptions};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// The listener's port.
pub const PORT: u16 = 80;
/// A Linux SYN: 14 + 20 + 20 + 20 bytes of options.
pub const SYN_LEN: usize = 74;
/// A Linux SYN over IPv6: 14 + 40 + 20 + 20 bytes of options.
pub const SYN6_LEN: usize = 94;
/// Our IPv6 address in the IPv6 benches.
pub const OUR_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
/// Flows per client address; the address changes after that many ports.
const PORTS_PER_PEER: u32 = 50_000;

/// The NIC checked both checksums (what DPDK reports with RX offload).
pub const META_OFFLOAD: RxMeta = RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None };
/// No RX checksum offload: the engine verifies in software.
pub const META_SOFTWARE: RxMeta = RxMeta { ip_csum: CsumStatus::Unknown, l4_csum: CsumStatus::Unknown, rss_hash: None };

/// Client `i`'s address and port: distinct for i < 2^15 * 50_000.
pub fn peer(i: u32) -> (Ipv4Addr, u16) {
    let base = u32::from(Ipv4Addr::new(198, 18, 128, 0));
    let addr = Ipv4Addr::from(base + (i / PORTS_PER_PEER) % (1 << 15));
    (addr, 10_000 + (i % PORTS_PER_PEER) as u16)
}

/// Client `i` when every flow has its own address (a flood from many
/// sources, as a spoofing SYN flood looks): 2^15 addresses, then new ports.
pub fn spread_peer(i: u32) -> (Ipv4Addr, u16) {
    let base = u32::from(Ipv4Addr::new(198, 18, 128, 0));
    (Ipv4Addr::from(base + i % (1 << 15)), 10_000 + (i >> 15) as u16)
}

/// Write client `i`'s SYN (ISN and TSval derived from `i`) into `buf`;
/// returns its length.
pub fn syn_frame(i: u32, buf: &mut [u8]) -> usize {
    syn_frame_from(peer(i), i, buf)
}

/// Client `i`'s SYN from `spread_peer(i)`.
pub fn spread_syn_frame(i: u32, buf: &mut [u8]) -> usize {
    syn_frame_from(spread_peer(i), i, buf)
}

fn syn_frame_from((addr, port): (Ipv4Addr, u16), i: u32, buf: &mut [u8]) -> usize {
    let opts = SynOptions {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some((0x1000_0000 ^ i.wrapping_mul(7), 0)),
        fastopen: None,
    };
    let mut opt_bytes = [0u8; 40];
    let n = opts.emit(&mut opt_bytes).unwrap_or(0);
    let h = TcpHeader {
        src: SocketAddrV4::new(addr, port),
        dst: SocketAddrV4::new(OUR_IP, PORT),
        seq: 0x5eed_0000 ^ i.wrapping_mul(0x9e37_79b9),
        ident: 0,
        ..TcpHeader::default()
    };
    write_tcp_frame(buf, &h, &opt_bytes[..n], &[])
}

/// The client's ACK completing the handshake that `synack` (our SYN-ACK,
/// as the engine sent it) answers: [`reply_frame`] without data. Returns 0
/// when `synack` is not a SYN-ACK.
pub fn ack_frame(synack: &[u8], buf: &mut [u8]) -> usize {
    let Ok(eth) = EthernetFrame::new_checked(synack) else { return 0 };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return 0 };
    let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return 0 };
    if seg.flags() != TcpFlags::SYN | TcpFlags::ACK {
        return 0;
    }
    reply_frame(synack, &[], buf)
}

/// The client's answer to `ours` (a segment the engine sent), carrying
/// `payload`: seq = its ack, ack = all of it (a SYN or FIN counts one), and
/// TSecr = its TSval (the cookie path reads its options from there), TSval
/// = the one echoed + 1 (else PAWS drops it), in Linux's layout for
/// established segments (NOP NOP TS). Returns 0 when `ours` is not TCP.
pub fn reply_frame(ours: &[u8], payload: &[u8], buf: &mut [u8]) -> usize {
    let flags = if payload.is_empty() { TcpFlags::ACK } else { TcpFlags::ACK | TcpFlags::PSH };
    segment_frame(ours, 0, flags, payload, buf)
}

/// The same with `flags`, and `sent` bytes the client sent since: its seq
/// is `ours`'s ack + `sent`.
pub fn segment_frame(ours: &[u8], sent: u32, flags: TcpFlags, payload: &[u8], buf: &mut [u8]) -> usize {
    let Ok(eth) = EthernetFrame::new_checked(ours) else { return 0 };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return 0 };
    let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return 0 };
    let seen = seg.flags();
    let len = seg.payload().len() as u32 + u32::from(seen.contains(TcpFlags::SYN)) + u32::from(seen.contains(TcpFlags::FIN));
    let mut opts = [0u8; 12];
    let opts_len = match tcp_options::timestamps(seg.options()) {
        Some((tsval, tsecr)) => {
            opts[..4].copy_from_slice(&[1, 1, 8, 10]);
            opts[4..8].copy_from_slice(&tsecr.wrapping_add(1).to_be_bytes());
            opts[8..12].copy_from_slice(&tsval.to_be_bytes());
            12
        }
        None => 0,
    };
    let h = TcpHeader {
        src: SocketAddrV4::new(ip.dst_addr(), seg.dst_port()),
        dst: SocketAddrV4::new(ip.src_addr(), seg.src_port()),
        seq: seg.ack_number().wrapping_add(sent),
        ack: seg.seq_number().wrapping_add(len),
        flags,
        window: 502,
        ident: 0,
        ..TcpHeader::default()
    };
    write_tcp_frame(buf, &h, &opts[..opts_len], payload)
}

/// Client `i` over IPv6: 2001:2:0:1::/64, one address per
/// `PORTS_PER_PEER` flows as [`peer`].
pub fn peer6(i: u32) -> (Ipv6Addr, u16) {
    let (v4, port) = peer(i);
    let base = u128::from(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0));
    (Ipv6Addr::from(base | u128::from(u32::from(v4) & 0x7fff)), port)
}

/// Client `i`'s SYN over IPv6 to `OUR_IP6`, with [`syn_frame`]'s options,
/// ISN and TSval; returns its length ([`SYN6_LEN`]).
pub fn syn6_frame(i: u32, buf: &mut [u8]) -> usize {
    use crate::wire::ethernet::{self, EtherType};
    use crate::wire::ipv6::{self, Ipv6Repr, NextHeader};
    use crate::wire::tcp::{TcpRepr, CHECKSUM_AT};
    let (addr, port) = peer6(i);
    let mut v4 = [0u8; SYN_LEN];
    syn_frame(i, &mut v4);
    let tcp = &v4[SYN_LEN - 40..];
    let f = &mut buf[..SYN6_LEN];
    let _ = ethernet::emit_header(f, super::frame::OUR_MAC, super::frame::PEER_MAC, EtherType::Ipv6);
    let ip = Ipv6Repr {
        src_addr: addr,
        dst_addr: OUR_IP6,
        next_header: NextHeader::Tcp,
        payload_len: 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let _ = ip.emit(&mut f[ethernet::HEADER_LEN..]);
    let l4 = &mut f[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
    l4.copy_from_slice(tcp);
    let seg = TcpSegment::new_unchecked(&*l4);
    let repr = TcpRepr {
        src_port: port,
        dst_port: PORT,
        seq_number: seg.seq_number(),
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: seg.window_len(),
    };
    let _ = repr.emit_header(l4, 20);
    let _ = ipv6::fill_upper_layer(&addr, &OUR_IP6, NextHeader::Tcp, l4, CHECKSUM_AT);
    SYN6_LEN
}

/// `n` IPv6 SYN frames back to back, `SYN6_LEN` bytes each.
pub fn syn6_frames(first: u32, n: u32) -> Vec<u8> {
    let mut v = vec![0u8; n as usize * SYN6_LEN];
    for (k, chunk) in v.chunks_exact_mut(SYN6_LEN).enumerate() {
        syn6_frame(first + k as u32, chunk);
    }
    v
}

/// `n` SYN frames back to back, `SYN_LEN` bytes each (client `first + k`).
pub fn syn_frames(first: u32, n: u32) -> Vec<u8> {
    frames_of(first, n, syn_frame)
}

/// The same from `spread_peer` addresses.
pub fn spread_syn_frames(first: u32, n: u32) -> Vec<u8> {
    frames_of(first, n, spread_syn_frame)
}

fn frames_of(first: u32, n: u32, make: fn(u32, &mut [u8]) -> usize) -> Vec<u8> {
    let mut v = vec![0u8; n as usize * SYN_LEN];
    for (k, chunk) in v.chunks_exact_mut(SYN_LEN).enumerate() {
        let len = make(first + k as u32, chunk);
        debug_assert_eq!(len, SYN_LEN);
    }
    v
}

/// Which listen path the SYNs take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `tcp_syncookies = 1` and a backlog that never fills: request socks.
    Queue,
    /// `tcp_syncookies = 2`: every SYN is answered with a cookie.
    Cookie,
}

/// One worker with one listener on OUR_IP:80, and no connection or buffer
/// cap (a benchmark measures the engine, not the limit). `backlog` is
/// clamped by somaxconn as listen() does; somaxconn is raised to it so
/// that the queue path holds every request of a run.
pub fn bench_rig(path: Path, backlog: u32) -> (Rig, Fd) {
    bench_rig_in(path, backlog, false)
}

/// [`bench_rig`], with `ipv6`: the listener is a dual-stack `[::]:80` and
/// the host owns [`OUR_IP6`] too.
pub fn bench_rig_in(path: Path, backlog: u32, ipv6: bool) -> (Rig, Fd) {
    let sysctls = Sysctls {
        somaxconn: backlog,
        tcp_max_syn_backlog: backlog,
        tcp_syncookies: match path {
            Path::Queue => 1,
            Path::Cookie => 2,
        },
        ..Sysctls::default()
    };
    fn uncapped(w: u16) -> TcpConfig {
        TcpConfig { max_conns: usize::MAX, max_buffer_bytes: u64::MAX, ..TcpConfig::new(w) }
    }
    let rig = Rig::new(RigConfig {
        sysctls,
        stack_seed: 1,
        secrets: Secrets::from_seed([7; 32]),
        tcp: uncapped,
        addrs6: if ipv6 { vec![OUR_IP6] } else { Vec::new() },
        ..RigConfig::default()
    });
    if !ipv6 {
        let fd = rig.listen_on(SocketAddrV4::new(OUR_IP, PORT), backlog as i32, |_, _| {});
        return (rig, fd);
    }
    let st = &rig.stack;
    let fd = st.socket6(crate::engine::socket::SockType::Stream).expect("socket6");
    st.bind(fd, SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, PORT, 0, 0)).expect("bind [::]:80");
    st.listen(fd, backlog as i32).expect("listen");
    (rig, fd)
}
