//! Arbitrary TCP segments against a listening engine (backlog 2, SYN
//! cookies and TFO on), on a virtual clock.
//!
//! Input: records of `[ctl][len][len bytes of TCP header + payload]`.
//! `ctl & 3` picks one of four clients (198.18.0.2..=5), `ctl & 4` makes
//! the application accept once, `ctl >> 3` advances the clock by that many
//! 250 ms steps (polling the engine every 1 ms tick). The TCP bytes get
//! destination port 80 and a correct checksum so they reach the listen
//! path. Checked: no panic, the listener's qlen equals the engine's request
//! socks, and every emitted frame parses with valid IPv4/TCP checksums.
#![no_main]

use dlisten::engine::host::{Host, HostConfig, RxMeta};
use dlisten::engine::keys::Secrets;
use dlisten::engine::socket::{SockType, Stack, StackConfig};
use dlisten::engine::sysctl::Sysctls;
use dlisten::engine::tcp::{TcpConfig, TcpEngine};
use dlisten::engine::time::{Duration, Instant};
use dlisten::engine::tx::VecSink;
use dlisten::stats::Counters;
use dlisten::wire::ethernet::{self, EtherType, EthernetAddress, EthernetFrame};
use dlisten::wire::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use dlisten::wire::tcp::{self, TcpSegment};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn frame(client: Ipv4Addr, tcp_bytes: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp_bytes.len()];
    let (l2, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
    let _ = ethernet::emit_header(l2, SERVER_MAC, CLIENT_MAC, EtherType::Ipv4);
    let (l3, l4) = rest.split_at_mut(ipv4::HEADER_LEN);
    l4.copy_from_slice(tcp_bytes);
    if l4.len() >= tcp::HEADER_LEN {
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        TcpSegment::new_unchecked(&mut *l4).fill_checksum(client, SERVER);
    }
    let ip = Ipv4Repr {
        src_addr: client,
        dst_addr: SERVER,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_bytes.len() as u16,
        ttl: 64,
        ident: 1,
        dont_frag: true,
        tos: 0,
    };
    let _ = ip.emit(l3);
    buf
}

fn check_frames(sink: &mut VecSink) {
    for f in sink.take() {
        let eth = EthernetFrame::new_checked(&f[..]).expect("ethernet");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum(), "IPv4 checksum");
        let seg = TcpSegment::new_checked(ip.payload()).expect("tcp");
        assert!(seg.verify_checksum(ip.src_addr(), ip.dst_addr()), "TCP checksum");
    }
}

fn run(mut data: &[u8]) {
    let sysctls = Sysctls { tcp_syncookies: 1, tcp_fastopen: 0x1 | 0x2 | 0x400, ..Sysctls::default() };
    let stack = Arc::new(Stack::new(StackConfig { workers: 1, local_addrs: vec![SERVER], sysctls, seed: 1 }));
    let fd = stack.socket(SockType::Stream).expect("socket");
    stack.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).expect("bind");
    stack.listen(fd, 2).expect("listen");
    let listener = stack.listener(fd).expect("listener");
    let mut now = Instant::from_secs(1000);
    let counters = Arc::new(Counters::new());
    let mut host = Host::new(HostConfig { mac: SERVER_MAC, addrs: vec![SERVER] }, counters);
    let mut engine = TcpEngine::new(TcpConfig::new(0), stack.clone(), Secrets::from_seed([7; 32]), now);
    let mut sink = VecSink::default();
    while let [ctl, len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (bytes, next) = rest.split_at(n);
        data = next;
        let end = now + Duration::from_millis(250 * u64::from(ctl >> 3));
        while now < end {
            now += Duration::from_millis(1);
            engine.poll(now, &mut host.tx_context(), &mut sink);
        }
        if ctl & 4 != 0 {
            let _ = stack.accept(fd);
        }
        let client = Ipv4Addr::new(198, 18, 0, 2 + (ctl & 3));
        host.rx(now, &frame(client, bytes), RxMeta::default(), &mut engine, &mut sink);
        check_frames(&mut sink);
        assert_eq!(listener.reqsk_queue_len() as usize, engine.request_socks());
    }
}

fuzz_target!(|data: &[u8]| run(data));
