//! The staged burst pipeline (`engine::burst`) against the same frames
//! handed to the host one by one: the same answers, counters and tables.

use super::*;
use proptest::prelude::*;

/// One step of a script: a segment from one of six clients (three ports on
/// two addresses), a move of the clock, or an accept().
#[derive(Clone, Debug)]
enum Step {
    Segment { client: u8, flags: u16, ack_right: bool, opts: u8, payload: usize },
    Advance(u32),
    Accept,
}

fn step() -> impl Strategy<Value = Step> {
    let flags = prop_oneof![
        4 => Just(0x002u16), // SYN
        4 => Just(0x010u16), // ACK
        1 => Just(0x004u16), // RST
        1 => Just(0x011u16), // FIN|ACK
        1 => Just(0x018u16), // PSH|ACK
    ];
    prop_oneof![
        10 => (0u8..6, flags, any::<bool>(), 0u8..3, prop_oneof![3 => Just(0usize), 1 => 1usize..100])
            .prop_map(|(client, flags, ack_right, opts, payload)| Step::Segment { client, flags, ack_right, opts, payload }),
        1 => (0u32..3_000).prop_map(Step::Advance),
        1 => Just(Step::Accept),
    ]
}

/// Sorted frames: within a burst the pipeline may send in another order.
fn sorted(out: Vec<Out>) -> Vec<String> {
    let mut v: Vec<String> = out.iter().map(|o| format!("{o:?}")).collect();
    v.sort();
    v
}

fn bench(always_cookies: bool) -> (Bench, Fd) {
    let mut b = Bench::with(|s| {
        s.tcp_syncookies = if always_cookies { 2 } else { 1 };
        s.somaxconn = 4;
    });
    let fd = b.listen(4);
    (b, fd)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_burst_answers_as_frames_one_by_one(
        steps in prop::collection::vec(step(), 1..80),
        cut in 1usize..12,
        always_cookies in any::<bool>(),
        nic_checked in any::<bool>(),
    ) {
        // Checksums verified by the NIC let plain SYNs take the SYN lane;
        // the frames' checksums are right, so both verdicts are true.
        let meta = if nic_checked {
            RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None }
        } else {
            RxMeta::default()
        };
        // Run one by one, recording the frames (acks that follow our SYN-ACKs).
        let (mut one, fd1) = bench(always_cookies);
        let mut synack_seq = std::collections::HashMap::<u16, u32>::new();
        let mut script: Vec<Result<Vec<u8>, Step>> = Vec::new();
        let mut one_out = Vec::new();
        for s in &steps {
            match s {
                Step::Segment { client, flags, ack_right, opts, payload } => {
                    let ip = Ipv4Addr::new(198, 18, 0, 2 + (client & 1));
                    let port = 40000 + u16::from(client >> 1);
                    let ack = if *ack_right { synack_seq.get(&port).map_or(0, |s| s.wrapping_add(1)) } else { 7 };
                    let mut seg = Seg::new(TcpFlags::from_bits_truncate(*flags), CISN, ack).from(ip, port);
                    if *flags & 0x002 == 0 {
                        seg.seq = CISN + 1;
                    }
                    seg = match opts {
                        0 => seg,
                        1 => seg.opts(&linux_syn_opts()),
                        _ => seg.ts(101, 0),
                    };
                    seg.payload = vec![0x5a; *payload];
                    let frame = seg.frame();
                    one.rx_frame_meta(0, &frame, meta);
                    for o in one.take_out() {
                        if o.flags.contains(TcpFlags::SYN | TcpFlags::ACK) {
                            synack_seq.insert(o.dst.port(), o.seq);
                        }
                        one_out.push(o);
                    }
                    script.push(Ok(frame));
                }
                Step::Advance(t) => {
                    one.advance(ms(u64::from(*t)));
                    one_out.extend(one.take_out());
                    script.push(Err(s.clone()));
                }
                Step::Accept => {
                    let _ = one.stack.accept(fd1);
                    script.push(Err(s.clone()));
                }
            }
        }

        // The same frames in bursts of up to `cut`, cut again at every
        // clock move and accept().
        let (mut burst, fd2) = bench(always_cookies);
        let mut burst_out = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let flush = |b: &mut Bench, pending: &mut Vec<Vec<u8>>, out: &mut Vec<Out>| {
            for chunk in pending.chunks(cut) {
                b.rx_burst_meta(chunk, meta);
                out.extend(b.take_out());
            }
            pending.clear();
        };
        for s in script {
            match s {
                Ok(frame) => pending.push(frame),
                Err(Step::Advance(t)) => {
                    flush(&mut burst, &mut pending, &mut burst_out);
                    burst.advance(ms(u64::from(t)));
                    burst_out.extend(burst.take_out());
                }
                Err(_) => {
                    flush(&mut burst, &mut pending, &mut burst_out);
                    let _ = burst.stack.accept(fd2);
                }
            }
        }
        flush(&mut burst, &mut pending, &mut burst_out);

        prop_assert_eq!(sorted(one_out), sorted(burst_out));
        for c in Counter::ALL {
            prop_assert_eq!(one.counter(*c), burst.counter(*c), "{}", c.name());
        }
        prop_assert_eq!(one.request_socks(), burst.request_socks());
        prop_assert_eq!(one.workers[0].engine.connections().len(), burst.workers[0].engine.connections().len());
    }
}

/// The script's segment as IPv6: the same TCP bytes from `src` to `dst`,
/// in an IPv6 header (hop limit 64) with the checksum made again.
fn as_ipv6(frame: &[u8], src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> Vec<u8> {
    use crate::wire::ethernet::{self, EtherType};
    use crate::wire::ipv6::{self, Ipv6Repr, NextHeader};
    let tcp = &frame[ethernet::HEADER_LEN + 20..];
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp.len()];
    f[..12].copy_from_slice(&frame[..12]);
    ethernet::emit_header(&mut f, EthernetAddress(frame[..6].try_into().unwrap()), CLIENT_MAC, EtherType::Ipv6).unwrap();
    let ip = Ipv6Repr { src_addr: src, dst_addr: dst, next_header: NextHeader::Tcp, payload_len: tcp.len() as u16, hop_limit: 64, traffic_class: 0, flow_label: 0 };
    ip.emit(&mut f[ethernet::HEADER_LEN..]).unwrap();
    let l4 = &mut f[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
    l4.copy_from_slice(tcp);
    ipv6::fill_upper_layer(&src, &dst, NextHeader::Tcp, l4, crate::wire::tcp::CHECKSUM_AT).unwrap();
    f
}

/// A dual-stack `[::]:80` listener on a rig owning 198.18.0.1 and 2001:2::1.
fn dual_stack_rig(always_cookies: bool) -> (Rig, Fd) {
    let mut sysctls = Sysctls { tcp_syncookies: if always_cookies { 2 } else { 1 }, ..Sysctls::default() };
    sysctls.somaxconn = 4;
    let rig = Rig::new(RigConfig { sysctls, addrs6: vec![crate::testkit::clients::OUR_IP6], ..RigConfig::default() });
    let st = &rig.stack;
    let fd = st.socket6(crate::engine::socket::SockType::Stream).expect("socket");
    st.bind(fd, std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, PORT, 0, 0)).expect("bind");
    st.listen(fd, 4).expect("listen");
    (rig, fd)
}

/// A SYN-ACK's (IPv6, client's port) and sequence number, from its bytes.
fn synack_of(f: &[u8]) -> Option<((bool, u16), u32)> {
    let v6 = f[12..14] == [0x86, 0xdd];
    let t = 14 + if v6 { 40 } else { 20 };
    let be16 = |at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    (f[t + 13] & 0x12 == 0x12).then(|| ((v6, be16(t + 2)), u32::from_be_bytes(f[t + 4..t + 8].try_into().unwrap())))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The same over IPv6 and IPv4 together, to a dual-stack listener:
    /// the IPv6 plain SYNs take the lane too. Frames compared byte for byte.
    #[test]
    fn an_ipv6_burst_answers_as_frames_one_by_one(
        steps in prop::collection::vec(step(), 1..80),
        cut in 1usize..12,
        always_cookies in any::<bool>(),
        nic_checked in any::<bool>(),
    ) {
        let meta = if nic_checked {
            RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None }
        } else {
            RxMeta::default()
        };
        let (mut one, fd1) = dual_stack_rig(always_cookies);
        let mut sink = VecSink::default();
        let mut synack_seq = std::collections::HashMap::<(bool, u16), u32>::new();
        let mut script: Vec<Result<Vec<u8>, Step>> = Vec::new();
        let mut one_out: Vec<Vec<u8>> = Vec::new();
        for s in &steps {
            match s {
                Step::Segment { client, flags, ack_right, opts, payload } => {
                    // Clients 0, 1, 4, 5 over IPv6, 2 and 3 over IPv4.
                    let v6 = client & 2 == 0;
                    let port = 40000 + u16::from(client >> 1);
                    let ack = if *ack_right { synack_seq.get(&(v6, port)).map_or(0, |s| s.wrapping_add(1)) } else { 7 };
                    let mut seg = Seg::new(TcpFlags::from_bits_truncate(*flags), CISN, ack).from(Ipv4Addr::new(198, 18, 0, 2 + (client & 1)), port);
                    if *flags & 0x002 == 0 {
                        seg.seq = CISN + 1;
                    }
                    seg = match opts {
                        0 => seg,
                        1 => seg.opts(&linux_syn_opts()),
                        _ => seg.ts(101, 0),
                    };
                    seg.payload = vec![0x5a; *payload];
                    let mut frame = seg.frame();
                    if v6 {
                        let peer = std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2 + u16::from(client & 1));
                        frame = as_ipv6(&frame, peer, crate::testkit::clients::OUR_IP6);
                    }
                    one.rx(0, &frame, meta, &mut sink);
                    for o in sink.take() {
                        if let Some((k, seq)) = synack_of(&o) {
                            synack_seq.insert(k, seq);
                        }
                        one_out.push(o);
                    }
                    script.push(Ok(frame));
                }
                Step::Advance(t) => {
                    one.advance(ms(u64::from(*t)), &mut sink);
                    one_out.extend(sink.take());
                    script.push(Err(s.clone()));
                }
                Step::Accept => {
                    let _ = one.stack.accept(fd1);
                    script.push(Err(s.clone()));
                }
            }
        }

        let (mut burst, fd2) = dual_stack_rig(always_cookies);
        let mut burst_out: Vec<Vec<u8>> = Vec::new();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let flush = |r: &mut Rig, pending: &mut Vec<Vec<u8>>, sink: &mut VecSink, out: &mut Vec<Vec<u8>>| {
            for chunk in pending.chunks(cut) {
                let input: Vec<(&[u8], RxMeta)> = chunk.iter().map(|f| (&f[..], meta)).collect();
                let now = r.now;
                let w = &mut r.workers[0];
                crate::engine::burst::receive(&mut w.host, &mut w.engine, now, &input, sink, &mut crate::engine::burst::NoClock);
                w.engine.take_latency_samples().clear();
                out.extend(sink.take());
            }
            pending.clear();
        };
        for s in script {
            match s {
                Ok(frame) => pending.push(frame),
                Err(Step::Advance(t)) => {
                    flush(&mut burst, &mut pending, &mut sink, &mut burst_out);
                    burst.advance(ms(u64::from(t)), &mut sink);
                    burst_out.extend(sink.take());
                }
                Err(_) => {
                    flush(&mut burst, &mut pending, &mut sink, &mut burst_out);
                    let _ = burst.stack.accept(fd2);
                }
            }
        }
        flush(&mut burst, &mut pending, &mut sink, &mut burst_out);

        one_out.sort();
        burst_out.sort();
        prop_assert_eq!(one_out, burst_out);
        for c in Counter::ALL {
            prop_assert_eq!(one.counter(*c), burst.counter(*c), "{}", c.name());
        }
        prop_assert_eq!(one.request_socks(), burst.request_socks());
        prop_assert_eq!(one.workers[0].engine.connections().len(), burst.workers[0].engine.connections().len());
    }
}
