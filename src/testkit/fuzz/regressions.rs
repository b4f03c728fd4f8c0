//! Bugs the fuzzers found, each as a named test: the minimized input
//! through its harness, and the behaviour itself through the public API.
//! (The same inputs are in `fuzz/regressions/<target>/` for the replay.)

use super::*;
use crate::engine::tcb::recv::RecvBuf;

/// A TCB with a 64 KiB buffer and window scale 14 (16 KiB of rounding
/// slack), a 16 KiB memory pool, gets a 29 742-byte segment 6 111 bytes
/// out of order: the ring grew to 16 KiB, the segment did not fit and was
/// dropped, and the empty ring stayed allocated (and charged to the pool)
/// until the connection was freed.
#[test]
fn out_of_order_segment_larger_than_the_grant_leaves_no_ring() {
    let input = [
        0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xbb, 0xff, 0xec, 0x00,
        0x00, 0x00, 0x20, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x2b, 0x2b, 0xff, 0x2b, 0x05, 0xff, 0x05,
    ];
    established::run(&input);

    let mut rcv = RecvBuf::new(65_535, (1 << 14) - 1);
    let mut room = 16 * 1024;
    let data = vec![7u8; 29_742];
    assert_eq!(rcv.store(1000, 1000 + 6111, &data, &mut room), None);
    assert_eq!(rcv.mem(), 0, "nothing kept, nothing held");
    // In order, the same segment is cut to what the grant allows.
    let mut room = 16 * 1024;
    assert_eq!(rcv.store(1000, 1000, &data, &mut room), Some(1000 + 16 * 1024));
    assert_eq!(rcv.mem(), 16 * 1024);
}

/// An IPv4 datagram for an unknown protocol with a timestamp option (room
/// for two stamps, overflow count 15): the protocol-unreachable reply
/// echoes the option as Linux does, both slots stamped and the overflow
/// count copied. The frame checker compiled our options as a receiver
/// would, and took that for a malformed option; it checks their framing.
#[test]
fn timestamp_option_echo_with_overflow_15_is_what_linux_sends() {
    let input = [
        0xed, 0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, 0x02, 0x00, 0x00, 0xc6, 0x12, 0x02, 0x08, 0x00, 0x4a, 0x00, 0x00, 0x28, 0x12,
        0x34, 0x40, 0x00, 0xc0, 0xfe, 0x63, 0x74, 0xc6, 0x12, 0x04, 0x02, 0xc6, 0x12, 0x00, 0x01, 0x01, 0x01, 0x44, 0x0c, 0x05,
        0xf0, 0x72, 0x00, 0x01, 0x01, 0x77, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x8e, 0x98, 0x8f, 0x00, 0x00,
    ];
    host_rx::run(&input);

    use crate::engine::host::{CsumStatus, Host, HostConfig, NoSockets, RxMeta};
    use crate::engine::time::Instant;
    use crate::testkit::check::check_sent;
    use crate::testkit::frame::{OUR_IP, OUR_IP2, OUR_MAC};
    use crate::testkit::rig::VecSink;
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP, OUR_IP2], utc_ms_at_zero: 0 };
    let mut host = Host::new(cfg, std::sync::Arc::new(crate::stats::Counters::new()));
    let mut tx = VecSink::default();
    // The NIC vouched for the IPv4 checksum (the input's first byte).
    let meta = RxMeta { ip_csum: CsumStatus::Good, ..RxMeta::default() };
    host.rx(Instant::from_secs(1), &input[1..], meta, &mut NoSockets, &mut tx);
    assert_eq!(tx.frames.len(), 1, "a protocol unreachable");
    let ip = &tx.frames[0][14..];
    assert_eq!(ip[0], 0x48, "12 bytes of options");
    // Type, length 12, pointer past both slots, overflow 15 / flags 0, then
    // our time of day (1000 ms) in both slots.
    assert_eq!(&ip[20..32], &[0x44, 0x0c, 0x0d, 0xf0, 0, 0, 0x03, 0xe8, 0, 0, 0x03, 0xe8]);
    assert!(check_sent(&tx.frames[0]).is_ok());
}

/// The same echo of a 17-byte timestamp option (pointer 7): the reply's
/// copy has its last slot taken and a pointer whose slot would not fit,
/// as Linux's echo has.
#[test]
fn timestamp_option_echo_of_odd_length_is_framed() {
    let input = [
        0xed, 0x02, 0x00, 0x00, 0xc6, 0x12, 0x01, 0x02, 0x00, 0x00, 0xc6, 0x12, 0x02, 0x08, 0x00, 0x4a, 0x00, 0x00,
        0x28, 0x12, 0x34, 0x40, 0x00, 0xc0, 0xfe, 0x63, 0x74, 0xc6, 0x12, 0x04, 0x02, 0xc6, 0x12, 0x00, 0x01, 0x01,
        0x01, 0x44, 0x11, 0x07, 0x00, 0x01, 0x01, 0x77, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x8e, 0x98, 0x8f, 0x00,
        0x00
    ];
    host_rx::run(&input);
}

/// Out-of-order data past where the peer then put its FIN (a wild
/// segment, then the FIN in order): the range stayed after the FIN, right
/// at the new rcv_nxt, never to be read, its memory held and its SACK block
/// advertised. Linux's tcp_fin drops the out-of-order queue.
#[test]
fn out_of_order_data_after_the_fin_is_dropped() {
    let input = [
        0x4f, 0x1a, 0x6d, 0x00, 0xf7, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0xff, 0xca, 0xca,
        0xca, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x00, 0xff, 0xff, 0xff,
        0x30, 0x30, 0x30, 0x30, 0x1d, 0x30, 0x30, 0x30, 0x30, 0x38, 0x32, 0x38, 0x39, 0x34, 0x33, 0x34, 0x34, 0x33,
        0x33, 0x35, 0x34, 0x30, 0x36, 0x32, 0x31, 0x31, 0x39, 0x37, 0xff
    ];
    established::run(&input);

    use crate::engine::tcb::{PassiveOpen, Payload, SegIn, SegOut, Tcb, TcbConfig, TcpFlags};
    use crate::engine::time::Instant;
    let now = Instant::from_secs(10);
    let mut t = Tcb::new_passive(PassiveOpen {
        now,
        iss: 1000,
        irs: 5000,
        peer_mss: 1460,
        our_mss: 1460,
        snd_wscale: Some(7),
        rcv_wscale: 7,
        sack_ok: true,
        ts: None,
        peer_window: 65_535,
        initial_data: &[],
        syn_ack_pending: false,
        rtt_sample: None,
        rcv_buf_cap: 65_536,
        snd_buf_cap: 65_536,
        mem_room: u32::MAX,
        config: TcbConfig::default(),
    });
    let seg = |seq, flags, payload| SegIn { seq, ack: Some(1001), flags: flags | TcpFlags::ACK, window: 512, ts: None, sack: &[], payload };
    let mut out = |_: SegOut, _: Payload<'_>| {};
    t.on_segment(now, &seg(5011, TcpFlags::empty(), &[1; 100]), &mut out);
    assert_eq!(t.ooo_bytes(), 100);
    // Nine bytes and the FIN at 5010: the held range starts right after it.
    t.on_segment(now, &seg(5001, TcpFlags::FIN, &[2; 9]), &mut out);
    assert!(t.fin_received());
    assert_eq!(t.ooo_bytes(), 0, "nothing after the FIN is kept");
    assert_eq!(t.recv_queue_len(), 9);
    t.check_invariants().expect("invariants");
}
