//! A DPDK port that only receives and drops: the other end of a memif
//! link for measuring what `dlisten flood` offers from one core, without a
//! server's work in the way. Prints the packets received each second and
//! the total; stops after SECS seconds or on SIGINT/SIGTERM.
//!
//! ```text
//! memif_sink SECS -- EAL_ARGS   (e.g. --vdev net_memif0,role=server,socket=/tmp/x.sock)
//! ```

use dlisten::dpdk::{Eal, MbufBatch, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(secs) = args.get(1).and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0 && *s <= 3600.0) else {
        eprintln!("usage: memif_sink SECS -- EAL_ARGS (SECS in (0, 3600])");
        return ExitCode::FAILURE;
    };
    let eal_args: Vec<String> = std::iter::once(args[0].clone()).chain(args.iter().skip(2).filter(|a| *a != "--").cloned()).collect();
    match run(Duration::from_secs_f64(secs), &eal_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memif_sink: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(limit: Duration, eal_args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let eal = Eal::init(eal_args)?;
    let port_id = eal.choose_port(None)?;
    let pool = Arc::new(Mempool::new(&eal, "sink_pool", 16383, 256, DEFAULT_DATA_ROOM, eal.socket_id())?);
    let cfg = PortConfig { want_rss: false, want_csum_offload: false, ..PortConfig::new(pool.clone()) };
    let mut port = Port::new(&eal, port_id, &cfg)?;
    port.start()?;
    println!("sink: port {port_id} driver {} ready", port.info().driver);
    let mut rxq = port.rx_queue(0)?;
    let mut rx = MbufBatch::new();
    let started = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = started;
    let (mut total, mut second, mut next) = (0u64, 0u64, Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        let n = rxq.rx_burst(&mut rx);
        if n > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            total += n as u64;
            second += n as u64;
            rx.clear();
        }
        let elapsed = started.elapsed();
        if elapsed >= next {
            println!("sink: {:>4.0}s rx/s {second}", elapsed.as_secs_f64());
            second = 0;
            next = elapsed + Duration::from_secs(1);
        }
    }
    let window = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let rate = if window > 0.0 { total as f64 / window } else { 0.0 };
    let stats = port.stats().unwrap_or_default();
    println!("sink: received {total} packets in {window:.2} s (first to last): {rate:.0} per second");
    println!("sink: ipackets {} imissed {} rx_nombuf {}", stats.ipackets, stats.imissed, stats.rx_nombuf);
    drop(rxq);
    port.stop()?;
    Ok(())
}
