//! The generator's per-packet work without I/O, for instruction counts
//! (valgrind --tool=callgrind, see bench/flood_callgrind.sh).
//!
//! ```text
//! flood_syn MODE COUNT
//!   syn    COUNT flood SYNs in bursts of 32: the generator's next SYN (tuple,
//!          ISN, flow slot) and the frame written from the template
//!   reply  COUNT SYN-ACKs to flood SYNs: parsed and checked against the
//!          flow (the generator's reply check)
//! ```
//!
//! Only `flood_burst` and `check_burst` do the counted work, so
//! `--toggle-collect='*flood_burst*'` (or `*check_burst*`) counts exactly
//! that. Every run checks its own counters and exits non-zero when the
//! generator did not do what the mode says.

use dlisten::flood::addr::SrcRange;
use dlisten::flood::gen::{self, GenConfig, Generator, TupleSpace};
use dlisten::flood::packet::{self, FloodSyn, Link, Rx, SynTemplate, SYN_FRAME_LEN};
use dlisten::testkit::frame::{write_tcp_frame, TcpHeader};
use dlisten::wire::ethernet::EthernetAddress;
use dlisten::wire::tcp::TcpFlags;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

const BURST: usize = 32;
const DST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 80);
const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
const THEM: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);

fn generator() -> Generator<Ipv4Addr> {
    // The default of `dlisten flood`: a /24 of sources, ports 1024-65535.
    let src = SrcRange::parse("198.18.1.0/24").expect("a valid prefix");
    Generator::new(GenConfig {
        dst: DST,
        flood: Some(TupleSpace { src, ports: (1024, 65535) }),
        legit: None,
        flood_count: None,
        legit_count: None,
        concurrency: 1,
        request: Vec::new(),
        timeout_ns: 1_000_000_000,
        syn_retries: gen::TCP_SYN_RETRIES,
        syn_rto_ns: gen::TCP_TIMEOUT_INIT_NS,
        salt: 0x5eed,
    })
}

/// One burst of flood SYNs written into `frames`, as the DPDK loop writes
/// them into a burst of mbufs.
#[inline(never)]
fn flood_burst(g: &mut Generator<Ipv4Addr>, t: &SynTemplate<Ipv4Addr>, now_ns: u64, frames: &mut [[u8; SYN_FRAME_LEN]; BURST]) -> usize {
    let tsval = gen::tsval(now_ns);
    let mut n = 0;
    for f in frames.iter_mut() {
        let Some(s) = g.next_flood_syn(now_ns) else { break };
        t.write(f, &s, tsval);
        n += 1;
    }
    n
}

/// One burst of replies through the reply check.
#[inline(never)]
fn check_burst(g: &mut Generator<Ipv4Addr>, now_ns: u64, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for f in frames {
        if let Rx::Tcp(r) = packet::parse(f) {
            g.on_reply(now_ns, &r, &mut out);
        }
    }
}

fn syn(count: u64) -> Result<(), String> {
    let mut g = generator();
    let t = SynTemplate::<Ipv4Addr>::new(&Link { our_mac: US, peer_mac: THEM }, DST);
    let mut frames = [[0u8; SYN_FRAME_LEN]; BURST];
    let mut sent = 0u64;
    let mut now = 1_000u64;
    while sent < count {
        sent += flood_burst(&mut g, &t, now, &mut frames) as u64;
        now += 3_200;
    }
    // The last frame is a valid SYN of the last flow.
    match packet::parse::<Ipv4Addr>(&frames[BURST - 1]) {
        Rx::Tcp(r) if r.flags == TcpFlags::SYN && r.to == DST => {}
        other => return Err(format!("the last frame is not a SYN to {DST}: {other:?}")),
    }
    check(g.stats.syn_sent == sent, format!("syn_sent {} != {sent}", g.stats.syn_sent))?;
    println!("flood_syn syn: {sent} SYNs");
    Ok(())
}

fn reply(count: u64) -> Result<(), String> {
    let mut g = generator();
    let mut syns: Vec<FloodSyn<Ipv4Addr>> = Vec::new();
    for _ in 0..count {
        syns.push(g.next_flood_syn(0).ok_or("the flood stopped")?);
    }
    let frames: Vec<Vec<u8>> = syns
        .iter()
        .map(|s| {
            let h = TcpHeader {
                eth_dst: US,
                eth_src: THEM,
                src: DST,
                dst: s.src,
                seq: 77,
                ack: s.isn.wrapping_add(1),
                flags: TcpFlags::SYN | TcpFlags::ACK,
                ..TcpHeader::default()
            };
            // A Linux SYN-ACK's options: MSS, SACK-permitted, timestamps, window scale.
            let opts = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
            let mut buf = vec![0u8; 128];
            let n = write_tcp_frame(&mut buf, &h, &opts, &[]);
            buf.truncate(n);
            buf
        })
        .collect();
    for (i, chunk) in frames.chunks(BURST).enumerate() {
        check_burst(&mut g, 1_000 + i as u64 * 3_200, chunk);
    }
    check(g.stats.synack == count, format!("synack {} != {count} ({:?})", g.stats.synack, g.stats))?;
    println!("flood_syn reply: {count} SYN-ACKs checked");
    Ok(())
}

fn check(ok: bool, what: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let count = args.get(2).and_then(|c| c.parse::<u64>().ok()).filter(|&c| (1..=10_000_000).contains(&c));
    let result = match (args.get(1).map(String::as_str), count) {
        (Some("syn"), Some(c)) => syn(c),
        (Some("reply"), Some(c)) => reply(c),
        _ => Err("usage: flood_syn syn|reply COUNT (1..=10000000)".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flood_syn: {e}");
            ExitCode::FAILURE
        }
    }
}
