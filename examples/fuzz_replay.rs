//! Replay a fuzz target's corpus through its harness (the same function
//! the cargo-fuzz target calls) and report inputs per second; the driver
//! for profiling a harness under callgrind.
//!
//!   cargo run --release --example fuzz_replay -- listen_segments fuzz/corpus/listen_segments [rounds]

use dlisten::testkit::fuzz;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(target), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: fuzz_replay TARGET CORPUS_DIR [ROUNDS]");
        std::process::exit(2);
    };
    let Some(run) = fuzz::harness(target) else {
        eprintln!("fuzz_replay: no target {target} (targets: {})", fuzz::TARGETS.join(", "));
        std::process::exit(2);
    };
    let rounds: u32 = match args.get(3).map(|r| r.parse()) {
        None => 1,
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("fuzz_replay: bad ROUNDS: {e}");
            std::process::exit(2);
        }
    };
    let inputs: Vec<Vec<u8>> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).filter_map(|e| std::fs::read(e.path()).ok()).collect(),
        Err(e) => {
            eprintln!("fuzz_replay: {dir}: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    for _ in 0..rounds {
        for input in &inputs {
            run(input);
        }
    }
    let n = inputs.len() as f64 * f64::from(rounds);
    let s = start.elapsed().as_secs_f64();
    println!("{target}: {n} inputs in {s:.3} s: {:.0} inputs/s", n / s.max(1e-9));
}
