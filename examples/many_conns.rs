//! Many idle connections, engine only: COUNT clients each complete a
//! handshake, make one HTTP/1.1 keep-alive request that the per-core `http`
//! app answers, acknowledge the answer, and then stay idle, all on one
//! worker with the default limits (`TcpConfig::new`: 1 GiB of buffers in
//! use, the table's connection limit). Reports what every idle connection
//! costs: heap bytes (a counting allocator: exact) and resident memory
//! (/proc/self/statm), and checks that no connection was refused and no
//! buffer memory is left in use.
//!
//! ```text
//! cargo run --release --example many_conns -- [COUNT]   (default 1000000)
//! ```

use dlisten::app::AppKind;
use dlisten::engine::tcb::Events;
use dlisten::engine::tcp::{Conn, TcpEngine};
use dlisten::engine::tx::TxSink;
use dlisten::stats::Counter;
use dlisten::telemetry::latency::WorkerLatency;
use dlisten::testkit::clients::{self, META_OFFLOAD, PORT, SYN_LEN};
use dlisten::testkit::frame::OUR_IP;
use dlisten::testkit::rig::{ReuseSink, Rig, RigConfig, FRAME_MAX, START};
use dlisten::worker::apps::{ConnLimits, PerCoreApps};
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Heap bytes in use, counted on every allocation and free.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(new_size, Ordering::Relaxed);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n";

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The per-core app's turn, as the worker loop takes it after a burst.
fn serve(apps: &mut PerCoreApps, tcp: &mut TcpEngine, ready: &mut Vec<(u32, Events)>, latency: &mut WorkerLatency, tx: &mut impl TxSink) {
    tcp.drain_ready(ready);
    apps.run(START, &|| START, ready, tcp, latency, tx);
    ready.clear();
}

fn main() -> ExitCode {
    let count: u32 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("many_conns: COUNT: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut rig = Rig::new(RigConfig::default());
    let fd = rig.listen_on(SocketAddrV4::new(OUR_IP, PORT), 4096, |_, _| {});
    let listener = rig.stack.listener(fd).expect("the listener");
    // The default limits: every idle connection has its keep-alive timer.
    let counters = rig.workers[0].counters.clone();
    let drain = Arc::new(AtomicBool::new(false));
    let mut apps = PerCoreApps::new(AppKind::Http(Default::default()), vec![listener], None, ConnLimits::default(), counters, drain);
    let mut latency = WorkerLatency::default();
    let mut ready = Vec::new();
    let mut tx = ReuseSink::default();
    let (mut syn, mut frame, mut synack) = ([0u8; SYN_LEN], [0u8; FRAME_MAX], [0u8; FRAME_MAX]);
    let w = &mut rig.workers[0];

    let (heap0, rss0) = (HEAP.load(Ordering::Relaxed), rss());
    let t = std::time::Instant::now();
    for i in 0..count {
        let n = clients::syn_frame(i, &mut syn);
        w.rx(START, &syn[..n], META_OFFLOAD, &mut tx);
        let sa_len = tx.len;
        synack[..sa_len].copy_from_slice(tx.last());
        // The handshake's ACK, then the request, as a Linux client sends them.
        let n = clients::reply_frame(&synack[..sa_len], &[], &mut frame);
        w.rx(START, &frame[..n], META_OFFLOAD, &mut tx);
        let n = clients::reply_frame(&synack[..sa_len], REQUEST, &mut frame);
        w.rx(START, &frame[..n], META_OFFLOAD, &mut tx);
        let sent = tx.frames;
        serve(&mut apps, &mut w.engine, &mut ready, &mut latency, &mut tx);
        if tx.frames == sent {
            eprintln!("many_conns: client {i} got no answer");
            return ExitCode::FAILURE;
        }
        // The client acknowledges the answer: the connection is idle.
        let n = clients::reply_frame(tx.last(), &[], &mut frame);
        w.rx(START, &frame[..n], META_OFFLOAD, &mut tx);
        serve(&mut apps, &mut w.engine, &mut ready, &mut latency, &mut tx);
    }
    let secs = t.elapsed().as_secs_f64();
    let (heap1, rss1) = (HEAP.load(Ordering::Relaxed), rss());
    let conns = w.engine.connections().len();
    let in_use = w.engine.mem().allocated();
    let refused = w.counters.get(Counter::ConnMemRefused) + w.counters.get(Counter::ConnLimitRefused);
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / f64::from(count.max(1));
    println!("connections: {conns} established and idle (of {count}), {:.0} per second built", f64::from(count) / secs);
    println!("refused: {refused}; buffer memory in use: {in_use} bytes");
    println!("size_of::<Conn>() = {} bytes", std::mem::size_of::<Conn>());
    println!("heap per idle connection: {:.0} bytes", per(heap1 as u64, heap0 as u64));
    println!("RSS per idle connection: {:.0} bytes (RSS {} -> {} MiB)", per(rss1, rss0), rss0 >> 20, rss1 >> 20);
    if conns != count as usize || refused != 0 || in_use != 0 {
        eprintln!("many_conns: expected {count} idle connections, none refused, no buffer in use");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
