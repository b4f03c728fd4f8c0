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

use dlisten::engine::host::RxMeta;
use dlisten::engine::sysctl::Sysctls;
use dlisten::engine::time::Duration;
use dlisten::testkit::check::parse_sent_tcp;
use dlisten::testkit::frame::{ip_frame, ip_to_us};
use dlisten::testkit::rig::{Rig, RigConfig, VecSink};
use dlisten::wire::ipv4::{IpProtocol, Ipv4Repr};
use dlisten::wire::tcp::{self, TcpSegment};
use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The client's TCP bytes, aimed at port 80 with a right checksum, in a frame.
fn frame(client: Ipv4Addr, tcp_bytes: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr { src_addr: client, ident: 1, ..ip_to_us(IpProtocol::Tcp) };
    let mut l4 = tcp_bytes.to_vec();
    if l4.len() >= tcp::HEADER_LEN {
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        TcpSegment::new_unchecked(&mut l4[..]).fill_checksum(client, ip.dst_addr);
    }
    ip_frame(&ip, &l4)
}

fn check_frames(rig: &Rig, sink: &mut VecSink) {
    for f in sink.take() {
        if let Err(e) = parse_sent_tcp(rig.now, &f) {
            panic!("the engine sent a bad frame ({e}): {f:02x?}");
        }
    }
}

fn run(mut data: &[u8]) {
    let sysctls = Sysctls { tcp_syncookies: 1, tcp_fastopen: 0x1 | 0x2 | 0x400, ..Sysctls::default() };
    let mut rig = Rig::new(RigConfig { sysctls, stack_seed: 1, ..RigConfig::default() });
    let fd = rig.listen_on(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 2, |_, _| {});
    let listener = rig.stack.listener(fd).expect("listener");
    let mut sink = VecSink::default();
    while let [ctl, len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (bytes, next) = rest.split_at(n);
        data = next;
        rig.advance(Duration::from_millis(250 * u64::from(ctl >> 3)), &mut sink);
        if ctl & 4 != 0 {
            let _ = rig.stack.accept(fd);
        }
        let client = Ipv4Addr::new(198, 18, 0, 2 + (ctl & 3));
        rig.rx(0, &frame(client, bytes), RxMeta::default(), &mut sink);
        check_frames(&rig, &mut sink);
        assert_eq!(listener.reqsk_queue_len() as usize, rig.request_socks());
    }
}

fuzz_target!(|data: &[u8]| run(data));
