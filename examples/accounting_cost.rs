//! What the workers' runtime accounting costs: the same bursts of cookie
//! SYNs (the cheapest packet a worker handles, so the largest share the
//! accounting can take) through the staged receive path, once with no
//! clock and once with the worker's own TSC stage clock writing a
//! `Runtime`, alternating, best of ROUNDS each. Cycles from the TSC.
//!
//! ```text
//! accounting_cost [COUNT] [ROUNDS]        both, side by side (default 200000 SYNs, 7 rounds)
//! accounting_cost plain|accounted COUNT   one of them once (for callgrind: --toggle-collect='*run_bursts*')
//! ```

use dlisten::dpdk::tsc;
use dlisten::engine::burst::{self, NoClock, StageClock};
use dlisten::engine::host::RxMeta;
use dlisten::stats::Runtime;
use dlisten::testkit::clients::{self, bench_rig, Path, SYN_LEN};
use dlisten::testkit::rig::{BurstSink, RigWorker};
use dlisten::worker::TscClock;
use std::process::ExitCode;

const BURST: usize = 32;

/// Every frame in bursts of 32 through the worker's receive path; the
/// stage clock is made per burst as the worker loop makes it.
#[inline(never)]
fn run_bursts(w: &mut RigWorker, frames: &[(&[u8], RxMeta)], runtime: Option<&Runtime>, tx: &mut BurstSink) {
    let now = dlisten::testkit::rig::START;
    for burst in frames.chunks(BURST) {
        tx.clear();
        match runtime {
            Some(r) => receive(w, now, burst, tx, &mut TscClock::new(r, tsc())),
            None => receive(w, now, burst, tx, &mut NoClock),
        }
    }
}

#[inline(always)]
fn receive(w: &mut RigWorker, now: dlisten::engine::time::Instant, burst: &[(&[u8], RxMeta)], tx: &mut BurstSink, clock: &mut impl StageClock) {
    burst::receive(&mut w.host, &mut w.engine, now, burst, tx, clock);
}

/// TSC cycles per SYN of one pass over `count` SYNs.
fn one_pass(count: u32, accounted: bool) -> f64 {
    let (mut rig, _fd) = bench_rig(Path::Cookie, 4096);
    let frames = clients::syn_frames(0, count);
    let input: Vec<(&[u8], RxMeta)> = frames.chunks_exact(SYN_LEN).map(|f| (f, clients::META_OFFLOAD)).collect();
    let runtime = Runtime::new(0);
    let mut tx = BurstSink::default();
    // Warm the tables and caches with the first tenth, then time the rest.
    let warm = input.len() / 10;
    run_bursts(&mut rig.workers[0], &input[..warm], accounted.then_some(&runtime), &mut tx);
    let start = tsc();
    run_bursts(&mut rig.workers[0], &input[warm..], accounted.then_some(&runtime), &mut tx);
    let cycles = tsc() - start;
    cycles as f64 / (input.len() - warm) as f64
}

/// TSC ticks one TSC read takes (best of a few runs of a million).
fn tsc_read_ticks() -> f64 {
    (0..5)
        .map(|_| {
            let n = 1_000_000u64;
            let start = tsc();
            let mut x = 0u64;
            for _ in 0..n {
                x = x.wrapping_add(tsc());
            }
            std::hint::black_box(x);
            (tsc() - start) as f64 / n as f64
        })
        .fold(f64::MAX, f64::min)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(mode @ ("plain" | "accounted")) = args.first().map(String::as_str) {
        let count = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
        println!("{mode}: {:.1} cycles per SYN", one_pass(count, mode == "accounted"));
        return ExitCode::SUCCESS;
    }
    let count: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let rounds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    let (mut plain, mut accounted) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        plain = plain.min(one_pass(count, false));
        accounted = accounted.min(one_pass(count, true));
    }
    let overhead = (accounted - plain) / plain * 100.0;
    println!("cookie SYNs in bursts of {BURST}, {count} per pass, best of {rounds}:");
    println!("  without accounting: {plain:.1} cycles per SYN");
    println!("  with the worker's stage clock: {accounted:.1} cycles per SYN");
    println!("  measured difference: {:+.1} cycles per SYN ({overhead:+.2} %; wall clock, noisy on a shared machine)", accounted - plain);
    // The accounting's own work per burst: one TSC read per stage mark
    // (parse, lookup, tcp, build, and the burst's start) and three plain
    // stores per stage into the worker's own cache lines.
    let read = tsc_read_ticks();
    let marks = 5.0;
    let per_syn = (marks * read + 4.0 * 3.0) / BURST as f64;
    println!(
        "  bound from its parts: {marks} TSC reads of {read:.1} ticks + 12 stores per burst = {per_syn:.1} ticks per SYN ({:.2} % of {plain:.1})",
        per_syn / plain * 100.0
    );
    ExitCode::SUCCESS
}
