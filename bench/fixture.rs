//! Fixed inputs shared by the callgrind driver (`examples/engine_syn.rs`)
//! and the criterion benches (`benches/listen_path.rs`), included in both
//! with `#[path]`: one listener on 198.18.0.1:80, clients in 198.18.128.0/17
//! (RFC 2544's benchmarking range, never routed), SYNs laid out exactly as
//! Linux's own (MSS, SACK_PERM, TS, NOP, WS: 74-byte frames).

#![allow(dead_code)]

use dlisten::engine::host::{CsumStatus, Host, HostConfig, RxMeta};
use dlisten::engine::keys::Secrets;
use dlisten::engine::socket::{Fd, SockType, Stack, StackConfig};
use dlisten::engine::sysctl::Sysctls;
use dlisten::engine::tcp::{TcpConfig, TcpEngine};
use dlisten::engine::time::Instant;
use dlisten::engine::tx::{TxFrame, TxSink};
use dlisten::stats::Counters;
use dlisten::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use dlisten::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use dlisten::wire::tcp::{self, TcpFlags, TcpRepr, TcpSegment};
use dlisten::wire::tcp_options::{self, SynOptions};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PORT: u16 = 80;
/// Largest frame the sink lends (Ethernet MTU 1500 + header).
pub const FRAME_MAX: usize = 1514;
/// A Linux SYN: 14 + 20 + 20 + 20 bytes of options.
pub const SYN_LEN: usize = 74;
/// Flows per client address; the address changes after that many ports.
const PORTS_PER_PEER: u32 = 50_000;

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
    let repr = TcpRepr {
        src_port: port,
        dst_port: PORT,
        seq_number: 0x5eed_0000 ^ i.wrapping_mul(0x9e37_79b9),
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: 64240,
    };
    client_frame(addr, &repr, |o| opts.emit(o).unwrap_or(0), buf)
}

/// The client's ACK completing the handshake that `synack` (our SYN-ACK,
/// as the engine sent it) answers: seq = its ack, ack = its seq + 1, and
/// TSecr = its TSval (the cookie path reads its options from there),
/// TSval = the SYN's + 1.
/// Returns 0 when `synack` is not a SYN-ACK.
pub fn ack_frame(synack: &[u8], buf: &mut [u8]) -> usize {
    let Ok(eth) = EthernetFrame::new_checked(synack) else { return 0 };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return 0 };
    let Ok(seg) = TcpSegment::new_checked(ip.payload()) else { return 0 };
    if seg.flags() != TcpFlags::SYN | TcpFlags::ACK {
        return 0;
    }
    let ts = tcp_options::timestamps(seg.options());
    let repr = TcpRepr {
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        seq_number: seg.ack_number(),
        ack_number: seg.seq_number().wrapping_add(1),
        flags: TcpFlags::ACK,
        window_len: 502,
    };
    client_frame(
        ip.dst_addr(),
        &repr,
        |o| match ts {
            // Linux's layout for established segments: NOP NOP TS.
            // TSval one tick after the SYN's (which the SYN-ACK echoes), else PAWS drops it.
            Some((tsval, tsecr)) => {
                o[..4].copy_from_slice(&[1, 1, 8, 10]);
                o[4..8].copy_from_slice(&tsecr.wrapping_add(1).to_be_bytes());
                o[8..12].copy_from_slice(&tsval.to_be_bytes());
                12
            }
            None => 0,
        },
        buf,
    )
}

/// Eth + IPv4 + TCP from `addr` to LOCAL with options written by `opts`.
fn client_frame(addr: Ipv4Addr, repr: &TcpRepr, opts: impl FnOnce(&mut [u8]) -> usize, buf: &mut [u8]) -> usize {
    let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    let _ = ethernet::emit_header(l2, OUR_MAC, PEER_MAC, EtherType::Ipv4);
    let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
    let end = (tcp::HEADER_LEN + tcp::MAX_OPTIONS_LEN).min(l4.len());
    let opts_len = opts(&mut l4[tcp::HEADER_LEN..end]);
    let tcp_len = repr.emit_header(l4, opts_len).unwrap_or(tcp::HEADER_LEN);
    TcpSegment::new_unchecked(&mut l4[..tcp_len]).fill_checksum(addr, LOCAL);
    let ip = Ipv4Repr {
        src_addr: addr,
        dst_addr: LOCAL,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len as u16,
        ttl: 64,
        ident: 0,
        dont_frag: true,
        tos: 0,
    };
    let _ = ip.emit(l3);
    ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_len
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

/// The NIC checked both checksums (what DPDK reports with RX offload).
pub const META_OFFLOAD: RxMeta = RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None };
/// No RX checksum offload: the engine verifies in software.
pub const META_SOFTWARE: RxMeta = RxMeta { ip_csum: CsumStatus::Unknown, l4_csum: CsumStatus::Unknown, rss_hash: None };

/// A sink that never allocates: one buffer, rewritten by every frame,
/// keeping only the last frame's length and a count.
pub struct ReuseSink {
    pub buf: Box<[u8; FRAME_MAX]>,
    pub len: usize,
    pub frames: u64,
}

impl ReuseSink {
    pub fn new() -> ReuseSink {
        ReuseSink { buf: Box::new([0u8; FRAME_MAX]), len: 0, frames: 0 }
    }

    /// The last frame sent.
    pub fn last(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl TxSink for ReuseSink {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        if max_len > FRAME_MAX {
            return false;
        }
        let frame = build(&mut self.buf[..max_len]);
        self.len = frame.len.min(max_len);
        self.frames += 1;
        true
    }
}

/// Which listen path the SYNs take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `tcp_syncookies = 1` and a backlog that never fills: request socks.
    Queue,
    /// `tcp_syncookies = 2`: every SYN is answered with a cookie.
    Cookie,
}

/// One worker's engine with one listener on LOCAL:PORT.
pub struct Rig {
    pub stack: Arc<Stack>,
    pub fd: Fd,
    pub host: Host,
    pub tcp: TcpEngine,
    pub counters: Arc<Counters>,
    pub now: Instant,
}

impl Rig {
    /// `backlog` is clamped by somaxconn as listen() does; somaxconn is
    /// raised to it so that the queue path holds every request of a run.
    pub fn new(path: Path, backlog: u32) -> Rig {
        let sysctls = Sysctls {
            somaxconn: backlog,
            tcp_max_syn_backlog: backlog,
            tcp_syncookies: match path {
                Path::Queue => 1,
                Path::Cookie => 2,
            },
            ..Sysctls::default()
        };
        let stack = Arc::new(Stack::new(StackConfig { workers: 1, local_addrs: vec![LOCAL], sysctls, seed: 1 }));
        let fd = stack.socket(SockType::Stream).expect("socket");
        stack.bind(fd, SocketAddrV4::new(LOCAL, PORT)).expect("bind 198.18.0.1:80");
        stack.listen(fd, backlog as i32).expect("listen");
        let counters = Arc::new(Counters::new());
        let host = Host::new(HostConfig { mac: OUR_MAC, addrs: vec![LOCAL] }, counters.clone());
        let now = Instant::from_secs(1_000);
        // No connection or buffer cap: the benchmark measures the engine, not the limit.
        let cfg = TcpConfig { max_conns: usize::MAX, max_buffer_bytes: u64::MAX, ..TcpConfig::new(0) };
        let tcp = TcpEngine::new(cfg, stack.clone(), Secrets::from_seed([7; 32]), now);
        Rig { stack, fd, host, tcp, counters, now }
    }

    /// Hand one received frame to the engine.
    #[inline]
    pub fn rx(&mut self, frame: &[u8], meta: RxMeta, tx: &mut impl TxSink) {
        self.host.rx(self.now, frame, meta, &mut self.tcp, tx);
        // As the worker does after every burst: hand latency samples on.
        self.tcp.take_latency_samples().clear();
    }

    /// The application's accept() until EAGAIN; returns how many.
    pub fn drain_accept(&self) -> u64 {
        let mut n = 0;
        while self.stack.accept(self.fd).is_ok() {
            n += 1;
        }
        n
    }
}
