//! Arbitrary TCP segments against a listening engine (backlog 2, SYN
//! cookies and TFO on), on a virtual clock.
//!
//! Input: records of `[ctl][len][len bytes of TCP header + payload]`.
//! `ctl & 3` picks one of four clients (198.18.0.2..=5), `ctl & 4` makes
//! the application accept once, `ctl >> 3` advances the clock by that many
//! 250 ms steps (the engine is polled once per step: timers fire up to
//! 250 ms late, as behind a long stall; exact timer behaviour is the
//! packet-script tests' business). The TCP bytes get destination port 80 and a correct
//! checksum so they reach the listen path. Checked: no panic, the
//! listener's qlen equals the engine's request socks, and every emitted
//! frame parses with valid IPv4/TCP checksums.
//!
//! Speed: the engine's tables are sized for a handful of connections, not
//! the production 64 Ki flow index and 4096-entry SYN table (zeroing those
//! per input was most of a run under the sanitizer), and the clock moves
//! in 250 ms polls rather than 1 ms ones (polling was two thirds of the
//! instructions).

use crate::engine::host::RxMeta;
use crate::engine::sysctl::Sysctls;
use crate::engine::tcp::TcpConfig;
use crate::engine::time::Duration;
use crate::engine::tx::{TxFrame, TxSink};
use crate::testkit::check::parse_sent_tcp;
use crate::testkit::frame::{ip_to_us, OUR_MAC, PEER_MAC};
use crate::testkit::rig::{Rig, RigConfig, FRAME_MAX};
use crate::wire::ethernet::{self, EtherType, EthernetFrame};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Repr};
use crate::wire::tcp::{self, TcpSegment};
use std::net::{Ipv4Addr, SocketAddrV4};

/// The client's TCP bytes, aimed at port 80 with a right checksum, in a
/// frame written over `f` (one buffer for every record of a run).
fn frame(f: &mut Vec<u8>, client: Ipv4Addr, tcp_bytes: &[u8]) {
    let l4_at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    let ip = Ipv4Repr { src_addr: client, ident: 1, payload_len: tcp_bytes.len() as u16, ..ip_to_us(IpProtocol::Tcp) };
    f.clear();
    f.resize(l4_at, 0);
    f.extend_from_slice(tcp_bytes);
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(OUR_MAC);
    eth.set_src_addr(PEER_MAC);
    eth.set_ethertype(EtherType::Ipv4);
    let _ = ip.emit(&mut f[ethernet::HEADER_LEN..l4_at]);
    let l4 = &mut f[l4_at..];
    if l4.len() >= tcp::HEADER_LEN {
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        TcpSegment::new_unchecked(l4).fill_checksum(client, ip.dst_addr);
    }
}

/// Keeps the frames sent since the last check in buffers reused for the
/// whole run, each filled with 0xa5 first (which shows bytes a builder
/// forgot to write, as the rig's `VecSink` does).
#[derive(Default)]
struct Sent {
    bufs: Vec<Vec<u8>>,
    /// How many of `bufs` hold a frame.
    n: usize,
}

impl TxSink for Sent {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        if self.n == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(FRAME_MAX));
        }
        let buf = &mut self.bufs[self.n];
        buf.clear();
        buf.resize(max_len, 0xa5);
        let frame = build(buf);
        buf.truncate(frame.len);
        self.n += 1;
        true
    }
}

fn check_frames(rig: &Rig, sent: &mut Sent) {
    for f in &sent.bufs[..sent.n] {
        if let Err(e) = parse_sent_tcp(rig.now, f) {
            panic!("the engine sent a bad frame ({e}): {f:02x?}");
        }
    }
    sent.n = 0;
}

/// Poll interval while the clock advances.
const POLL_STEP: Duration = Duration::from_millis(250);

/// Per-worker settings: Linux's, with tables for a few connections.
fn small_tables(worker: u16) -> TcpConfig {
    TcpConfig { max_conns: 64, ..TcpConfig::new(worker) }
}

pub fn run(mut data: &[u8]) {
    let sysctls = Sysctls {
        tcp_syncookies: 1,
        tcp_fastopen: 0x1 | 0x2 | 0x400,
        // Linux's pre-4.4 default; the backlog of 2 bounds the queue anyway.
        tcp_max_syn_backlog: 128,
        ..Sysctls::default()
    };
    let mut rig = Rig::new(RigConfig { sysctls, stack_seed: 1, tcp: small_tables, ..RigConfig::default() });
    let fd = rig.listen_on(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 2, |_, _| {});
    let listener = rig.stack.listener(fd).expect("listener");
    let mut sink = Sent::default();
    let mut f = Vec::with_capacity(FRAME_MAX);
    while let [ctl, len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (bytes, next) = rest.split_at(n);
        data = next;
        rig.advance_in_steps(Duration::from_millis(250 * u64::from(ctl >> 3)), POLL_STEP, &mut sink);
        if ctl & 4 != 0 {
            let _ = rig.stack.accept(fd);
        }
        let client = Ipv4Addr::new(198, 18, 0, 2 + (ctl & 3));
        frame(&mut f, client, bytes);
        rig.rx(0, &f, RxMeta::default(), &mut sink);
        check_frames(&rig, &mut sink);
        assert_eq!(listener.reqsk_queue_len() as usize, rig.request_socks());
    }
}
