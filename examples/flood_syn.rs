//! The generator's per-packet work without I/O, for instruction counts
//! (valgrind --tool=callgrind, see bench/flood_callgrind.sh).
//!
//! ```text
//! flood_syn MODE COUNT
//!   syn    COUNT flood SYNs in bursts of 32: the generator's next SYN (tuple,
//!          ISN, flow slot) and the frame written from the template
//!   reply  COUNT SYN-ACKs to flood SYNs: parsed and checked against the
//!          flow (the generator's reply check)
//!   syn6, reply6: the same over IPv6 (sources 2001:2:0:1::/120)
//! ```
//!
//! Only `flood_burst` and `check_burst` do the counted work, so
//! `--toggle-collect='*flood_burst*'` (or `*check_burst*`) counts exactly
//! that. Every run checks its own counters and exits non-zero when the
//! generator did not do what the mode says.

use dlisten::flood::addr::SrcRange;
use dlisten::flood::family::{Family, Sock};
use dlisten::flood::gen::{self, GenConfig, Generator, TupleSpace};
use dlisten::flood::packet::{self, FloodSyn, Link, ParseReply, Rx, Segment, SynTemplate};
use dlisten::wire::ethernet::EthernetAddress;
use dlisten::wire::tcp::TcpFlags;
use dlisten::wire::tcp_options::SynOptions;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

const BURST: usize = 32;
const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x02]);
const THEM: EthernetAddress = EthernetAddress([0x02, 0, 0, 0xc6, 0x12, 0x01]);

/// The target and `dlisten flood`'s default sources of a family.
fn dst<A: Family>() -> A::Sock {
    let ip = if A::BITS == 32 { "198.18.0.1" } else { "2001:2::1" };
    A::Sock::from_parts(A::from_ip(ip.parse().expect("an address")).expect("of the family"), 80)
}

fn generator<A: Family>() -> Generator<A> {
    // The default of `dlisten flood`: its source prefix, ports 1024-65535.
    let src = SrcRange::<A>::parse(A::DEFAULT_SRC).expect("a valid prefix");
    Generator::new(GenConfig {
        dst: dst::<A>(),
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

/// Room for a SYN of either family.
const FRAME: usize = packet::SYN6_FRAME_LEN;

/// One burst of flood SYNs written into `frames`, as the DPDK loop writes
/// them into a burst of mbufs.
#[inline(never)]
fn flood_burst<A: Family>(g: &mut Generator<A>, t: &SynTemplate<A>, now_ns: u64, frames: &mut [[u8; FRAME]; BURST]) -> usize {
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
fn check_burst<A: ParseReply>(g: &mut Generator<A>, now_ns: u64, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for f in frames {
        if let Rx::Tcp(r) = packet::parse::<A>(f) {
            g.on_reply(now_ns, &r, &mut out);
        }
    }
}

fn syn<A: ParseReply>(count: u64) -> Result<(), String> {
    let mut g = generator::<A>();
    let t = SynTemplate::<A>::new(&Link { our_mac: US, peer_mac: THEM }, dst::<A>());
    let mut frames = [[0u8; FRAME]; BURST];
    let mut sent = 0u64;
    let mut now = 1_000u64;
    while sent < count {
        sent += flood_burst(&mut g, &t, now, &mut frames) as u64;
        now += 3_200;
    }
    // The last frame is a valid SYN of the last flow.
    match packet::parse::<A>(&frames[BURST - 1][..A::SYN_FRAME_LEN]) {
        Rx::Tcp(r) if r.flags == TcpFlags::SYN && r.to == dst::<A>() => {}
        other => return Err(format!("the last frame is not a SYN to {}: {other:?}", dst::<A>())),
    }
    check(g.stats.syn_sent == sent, format!("syn_sent {} != {sent}", g.stats.syn_sent))?;
    println!("flood_syn syn: {sent} SYNs");
    Ok(())
}

fn reply<A: ParseReply>(count: u64) -> Result<(), String> {
    let mut g = generator::<A>();
    let mut syns: Vec<FloodSyn<A>> = Vec::new();
    for _ in 0..count {
        syns.push(g.next_flood_syn(0).ok_or("the flood stopped")?);
    }
    let back = Link { our_mac: THEM, peer_mac: US };
    let frames: Vec<Vec<u8>> = syns
        .iter()
        .map(|s| {
            // A Linux SYN-ACK: MSS, SACK-permitted, timestamps, window scale.
            let opts = SynOptions { timestamps: Some((1, 0)), ..packet::syn_options::<A>(1) };
            let seg = Segment::<A> {
                src: dst::<A>(),
                dst: s.src,
                seq: 77,
                ack: s.isn.wrapping_add(1),
                flags: TcpFlags::SYN | TcpFlags::ACK,
                syn: Some(opts),
                timestamps: None,
                payload: &[],
                ident: 0,
            };
            let mut buf = vec![0u8; 128];
            let n = packet::build_segment(&mut buf, &back, &seg);
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
        (Some("syn"), Some(c)) => syn::<Ipv4Addr>(c),
        (Some("reply"), Some(c)) => reply::<Ipv4Addr>(c),
        (Some("syn6"), Some(c)) => syn::<Ipv6Addr>(c),
        (Some("reply6"), Some(c)) => reply::<Ipv6Addr>(c),
        _ => Err("usage: flood_syn syn|reply|syn6|reply6 COUNT (1..=10000000)".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flood_syn: {e}");
            ExitCode::FAILURE
        }
    }
}
