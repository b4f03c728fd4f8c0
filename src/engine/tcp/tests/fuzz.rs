//! Generated segment sequences against a listener with a tiny backlog and
//! cookies on: the engine never panics, its queue counts match its tables,
//! and every frame it emits re-parses with valid checksums (checked by the
//! bench on every frame).

use super::*;
use proptest::prelude::*;

/// Where a generated number lands relative to the right value.
#[derive(Clone, Debug)]
enum Num {
    Right,
    Near(i16),
    Any(u32),
}

#[derive(Clone, Debug)]
enum Opts {
    None,
    Linux,
    TsOnly,
    Raw(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Segment { client: u8, flags: u16, seq: Num, ack: Num, opts: Opts, payload: usize, ecn: u8 },
    Advance(u32),
    Accept,
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        3 => Just(Num::Right),
        2 => any::<i16>().prop_map(Num::Near),
        1 => any::<u32>().prop_map(Num::Any),
    ]
}

fn opts() -> impl Strategy<Value = Opts> {
    prop_oneof![
        Just(Opts::None),
        Just(Opts::Linux),
        Just(Opts::TsOnly),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Opts::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let flags = prop_oneof![
        3 => Just(0x002u16),               // SYN
        3 => Just(0x010u16),               // ACK
        1 => Just(0x004u16),               // RST
        1 => Just(0x011u16),               // FIN|ACK
        1 => Just(0x012u16),               // SYN|ACK
        1 => Just(0x0c2u16),               // SYN|ECE|CWR
        1 => 0u16..0x200,                // anything
    ];
    prop_oneof![
        8 => (0u8..6, flags, num(), num(), opts(), prop_oneof![3 => Just(0usize), 1 => 1usize..200], 0u8..4).prop_map(
            |(client, flags, seq, ack, opts, payload, ecn)| Op::Segment { client, flags, seq, ack, opts, payload, ecn }
        ),
        2 => prop_oneof![4 => 0u32..1_500, 1 => 1_500u32..70_000].prop_map(Op::Advance),
        1 => Just(Op::Accept),
    ]
}

fn pick(n: &Num, right: u32) -> u32 {
    match n {
        Num::Right => right,
        Num::Near(d) => right.wrapping_add(*d as i32 as u32),
        Num::Any(v) => *v,
    }
}

/// The listener's shared counts against the engine's own tables.
fn check_invariants(b: &Bench, l: &Listener) {
    assert_eq!(l.reqsk_queue_len() as usize, b.request_socks(), "qlen vs request socks");
    assert!(l.reqsk_queue_len_young() <= l.reqsk_queue_len(), "young <= qlen");
    assert!(l.sk_ack_backlog() <= l.sk_max_ack_backlog() + 1, "accept queue holds at most backlog + 1");
    assert!(l.fastopen_qlen() <= l.fastopen_max_qlen(), "fastopen qlen within its limit");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segments_keep_the_listener_consistent(ops in prop::collection::vec(op(), 1..60)) {
        let mut b = Bench::with(|s| {
            s.tcp_syncookies = 1;
            s.tcp_fastopen = 0x1 | 0x2 | 0x400;
        });
        let fd = b.listen(2);
        let l = b.listener(fd);
        // Last SYN-ACK seq seen per client port: the "right" ack.
        let mut synack_seq = std::collections::HashMap::<u16, u32>::new();
        for op in ops {
            match op {
                Op::Segment { client, flags, seq, ack, opts, payload, ecn } => {
                    let ip = Ipv4Addr::new(198, 18, 0, 2 + (client & 1));
                    let port = 40000 + u16::from(client >> 1);
                    let right_ack = synack_seq.get(&port).map_or(0, |s| s.wrapping_add(1));
                    let mut s = Seg::new(TcpFlags::from_bits_truncate(flags), pick(&seq, CISN), pick(&ack, right_ack))
                        .from(ip, port);
                    s = match opts {
                        Opts::None => s,
                        Opts::Linux => s.opts(&linux_syn_opts()),
                        Opts::TsOnly => s.ts(100 + client as u32, 0),
                        Opts::Raw(bytes) => s.raw_opts(&bytes),
                    };
                    s.payload = vec![0x5a; payload];
                    s.ip_ecn = ecn;
                    for o in b.send(s) {
                        if o.flags.contains(TcpFlags::SYN | TcpFlags::ACK) {
                            synack_seq.insert(o.dst.port(), o.seq);
                        }
                    }
                }
                Op::Advance(ms_) => {
                    b.advance(ms(u64::from(ms_)));
                    b.take_out();
                }
                Op::Accept => {
                    let _ = b.stack.accept(fd);
                }
            }
            check_invariants(&b, &l);
        }
        // Everything dies within the SYN-ACK retransmission budget.
        b.advance(secs(64));
        b.take_out();
        prop_assert_eq!(b.request_socks(), 0);
        prop_assert_eq!(l.reqsk_queue_len(), 0);
        prop_assert_eq!(l.reqsk_queue_len_young(), 0);
    }
}
