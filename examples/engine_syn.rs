//! Engine-only driver for instruction counts (valgrind --tool=callgrind) and
//! memory per request sock / connection. No I/O: frames are built in
//! memory and handed over in bursts of 32 through the worker's staged
//! receive path (engine::burst), answers go to sinks that reuse buffers.
//!
//! ```text
//! engine_syn MODE COUNT [--sw-csum] [--spread-peers]
//!   queue             COUNT SYNs, tcp_syncookies=1, backlog never full: request socks
//!   cookie            COUNT SYNs, tcp_syncookies=2: SYN cookies, no state
//!   handshake         COUNT x (SYN, ACK from the SYN-ACK), request socks; accept() every 64
//!   cookie-handshake  the same with tcp_syncookies=2 (the ACK is checked as a cookie)
//!   data              one connection, then COUNT in-order 1448-byte segments (an
//!                     upload, in bursts of 32, the application reading after each)
//!   mem               sizes and heap bytes per request sock / connection (COUNT flows)
//! ```
//! `--sw-csum` makes the engine verify checksums in software (no RX offload).
//! `--spread-peers` gives every flow its own source address (2^15 of them,
//! a flood from many sources) instead of 50 000 ports per address.
//!
//! Only `engine_rx` does engine work, so `--toggle-collect='*engine_rx*'`
//! counts exactly the engine: frame in, answer built. Every run checks its
//! counters and exits non-zero when the engine did not do what the mode
//! says (so a count is never of a run that silently dropped everything).

use dlisten::engine::host::RxMeta;
use dlisten::engine::tcp::output::FlowKey;
use dlisten::engine::tcp::reqsk::RequestSock;
use dlisten::engine::tcb::Tcb;
use dlisten::engine::tcp::Conn;
use dlisten::engine::listen::ChildSock;
use dlisten::stats::Counter;
use dlisten::wire::tcp::TcpFlags;
use dlisten::engine::time::Instant;
use dlisten::testkit::clients::{self, bench_rig, Path, SYN_LEN};
use dlisten::testkit::rig::{BurstSink, ReuseSink, Rig, RigWorker, FRAME_MAX};
use std::alloc::{GlobalAlloc, Layout, System};
use std::mem::size_of;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The system allocator, counting calls and live bytes.
struct Counting;

static ALLOC_CALLS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counters are plain atomics and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours (non-zero size layout from the caller).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` via `alloc`/`realloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOC_CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller
        // guarantees `new_size` is valid for `layout.align()`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOC_CALLS.load(Ordering::Relaxed)
}

fn live() -> i64 {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The only function that does engine work: callgrind counts it alone.
#[inline(never)]
fn engine_rx(w: &mut RigWorker, now: Instant, frame: &[u8], meta: RxMeta, tx: &mut ReuseSink) {
    w.rx(now, frame, meta, tx);
}

/// Frames per burst, as a worker's RX burst hands them over.
const BURST: usize = 32;

/// The only function that does engine work on the timed paths: one burst.
#[inline(never)]
fn engine_rx_burst(w: &mut RigWorker, now: Instant, frames: &[(&[u8], RxMeta)], tx: &mut BurstSink) {
    tx.clear();
    w.rx_burst(now, frames, tx);
}

/// COUNT SYNs, each answered by a SYN-ACK (request sock or cookie).
fn run_syns(path: Path, count: u32, meta: RxMeta, spread: bool, ipv6: bool) -> Result<(), String> {
    let (mut rig, _fd) = clients::bench_rig_in(path, count.max(1) * 2, ipv6);
    let now = rig.now;
    let (frames, syn_len) = match (ipv6, spread) {
        (true, _) => (clients::syn6_frames(0, count), clients::SYN6_LEN),
        (false, true) => (clients::spread_syn_frames(0, count), SYN_LEN),
        (false, false) => (clients::syn_frames(0, count), SYN_LEN),
    };
    let mut tx = BurstSink::default();
    // Warm-up (the first SYNs grow tables, the neighbour table up to its
    // 16384 entries with spread peers), then the allocation check.
    let warm = if spread { count.min(17_384) } else { (count / 10).min(1000) } as usize;
    let mut allocs_in_loop = 0;
    let mut burst: Vec<(&[u8], RxMeta)> = Vec::with_capacity(BURST);
    for (k, f) in frames.chunks_exact(syn_len).enumerate() {
        if k == warm {
            allocs_in_loop = allocs();
        }
        burst.push((f, meta));
        if burst.len() == BURST || k + 1 == count as usize {
            engine_rx_burst(&mut rig.workers[0], now, &burst, &mut tx);
            burst.clear();
        }
    }
    allocs_in_loop = allocs() - allocs_in_loop;
    let c = rig.workers[0].counters.snapshot();
    print_counters(&rig);
    let n = u64::from(count);
    println!("request socks: {}", rig.workers[0].engine.request_socks());
    println!("allocations after warm-up ({} SYNs): {allocs_in_loop}", count as usize - warm);
    check(tx.frames == n, format!("{} SYN-ACKs for {n} SYNs", tx.frames))?;
    check(c.get(Counter::TcpOutSegs) == n, "TcpOutSegs != SYNs".into())?;
    match path {
        Path::Queue => check(rig.workers[0].engine.request_socks() == count as usize, "not one request sock per SYN".into()),
        Path::Cookie => {
            check(c.get(Counter::SyncookiesSent) == n, "SyncookiesSent != SYNs".into())?;
            check(rig.workers[0].engine.request_socks() == 0, "request socks in cookie mode".into())?;
            // The design's rule: cookie mode allocates nothing per SYN.
            check(allocs_in_loop == 0, format!("cookie path allocated {allocs_in_loop} times"))
        }
    }
}

/// COUNT complete handshakes: SYN, our SYN-ACK, the client's ACK, accept().
fn run_handshakes(path: Path, count: u32, meta: RxMeta) -> Result<(), String> {
    const BATCH: u32 = 32;
    const ACCEPT_EVERY: u32 = 64;
    let (mut rig, fd) = bench_rig(path, 4096);
    let now = rig.now;
    let listener = rig.stack.listener(fd).map_err(|e| format!("listener: {e:?}"))?;
    let frames = clients::syn_frames(0, count);
    let mut acks = vec![[0u8; FRAME_MAX]; BATCH as usize];
    let mut ack_len = [0usize; BATCH as usize];
    let mut tx = BurstSink::default();
    let mut accepted = 0u64;
    let mut done = 0u32;
    for batch in frames.chunks(SYN_LEN * BATCH as usize) {
        // A burst of SYNs, then a burst of the ACKs of their SYN-ACKs.
        let syns: Vec<(&[u8], RxMeta)> = batch.chunks_exact(SYN_LEN).map(|f| (f, meta)).collect();
        let n = syns.len();
        engine_rx_burst(&mut rig.workers[0], now, &syns, &mut tx);
        for (k, synack) in tx.sent().enumerate() {
            ack_len[k] = clients::ack_frame(synack, &mut acks[k]);
        }
        let burst: Vec<(&[u8], RxMeta)> = (0..n).map(|k| (&acks[k][..ack_len[k]], meta)).collect();
        engine_rx_burst(&mut rig.workers[0], now, &burst, &mut tx);
        done += n as u32;
        if done % ACCEPT_EVERY == 0 || done == count {
            while listener.acceptq_remove().is_some() {
                accepted += 1;
            }
        }
    }
    print_counters(&rig);
    let c = rig.workers[0].counters.snapshot();
    let n = u64::from(count);
    println!("accepted: {accepted}, connections: {}, request socks: {}", rig.workers[0].engine.connections().len(), rig.workers[0].engine.request_socks());
    check(c.get(Counter::TcpPassiveOpens) == n, "PassiveOpens != handshakes".into())?;
    check(accepted == n, format!("accepted {accepted} of {n}"))?;
    check(rig.workers[0].engine.request_socks() == 0, "request socks left".into())?;
    if path == Path::Cookie {
        check(c.get(Counter::SyncookiesRecv) == n, "SyncookiesRecv != handshakes".into())?;
    }
    Ok(())
}

/// One established connection receiving COUNT full-sized segments in
/// order, as one upload does: per segment, what the engine does between
/// the frame and the ring (and the ACKs it sends). The application's
/// read() after each burst is outside the count (it is the copy out a
/// recv() pays in the application's time).
fn run_data(count: u32, meta: RxMeta) -> Result<(), String> {
    const BATCH: usize = 32;
    const MSS: usize = 1448;
    let (mut rig, fd) = bench_rig(Path::Queue, 64);
    let now = rig.now;
    let listener = rig.stack.listener(fd).map_err(|e| format!("listener: {e:?}"))?;
    let w = &mut rig.workers[0];
    let mut tx = BurstSink::default();
    let syn = clients::syn_frames(0, 1);
    engine_rx_burst(w, now, &[(&syn[..], meta)], &mut tx);
    let synack = tx.sent().next().ok_or("no SYN-ACK")?.to_vec();
    let mut ack = [0u8; FRAME_MAX];
    let n = clients::ack_frame(&synack, &mut ack);
    engine_rx_burst(w, now, &[(&ack[..n], meta)], &mut tx);
    let id = listener.acceptq_remove().ok_or("not accepted")?.conn_id;
    let payload = vec![0x5a; MSS];
    let mut frames = vec![[0u8; FRAME_MAX]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut buf = vec![0u8; 256 * 1024];
    let (mut sent, mut read, mut acks) = (0u32, 0u64, 0u64);
    let mut left = count as usize;
    while left > 0 {
        let n = left.min(BATCH);
        for k in 0..n {
            lens[k] = clients::segment_frame(&synack, sent, TcpFlags::ACK | TcpFlags::PSH, &payload, &mut frames[k]);
            sent = sent.wrapping_add(MSS as u32);
        }
        let burst: Vec<(&[u8], RxMeta)> = (0..n).map(|k| (&frames[k][..lens[k]], meta)).collect();
        engine_rx_burst(w, now, &burst, &mut tx);
        acks += tx.sent().count() as u64;
        while let Ok(got) = w.engine.read(id, &mut buf) {
            if got == 0 {
                break;
            }
            read += got as u64;
        }
        left -= n;
    }
    print_counters(&rig);
    println!("bytes read: {read}, ACKs sent: {acks}");
    let want = u64::from(count) * MSS as u64;
    check(read == want, format!("read {read} of {want} bytes"))?;
    check(acks > 0, "no ACKs".into())
}

/// Sizes, and heap bytes per request sock and per connection.
fn run_mem(count: u32) -> Result<(), String> {
    println!("size_of::<RequestSock>()             = {:4} B  (target <= 64)", size_of::<RequestSock>());
    println!("size_of::<FlowKey>()                 = {:4} B", size_of::<FlowKey>());
    println!("size_of::<(FlowKey, RequestSock)>()  = {:4} B  (one HashMap slot, + 1 control byte)", size_of::<(FlowKey, RequestSock)>());
    println!("size_of::<Tcb>()                     = {:4} B  (the TCB alone)", size_of::<Tcb>());
    println!("size_of::<Conn>()                    = {:4} B  (target <= 256: TCB + what the listen path keeps)", size_of::<Conn>());
    println!("size_of::<(u8, Option<Conn>)>()      = {:4} B  (one ConnTable slot)", size_of::<(u8, Option<Conn>)>());
    println!("size_of::<(FlowKey, u32)>()          = {:4} B  (ConnTable by_key slot, + 1 control byte)", size_of::<(FlowKey, u32)>());
    println!("size_of::<ChildSock>()               = {:4} B  (one accept-ring entry)", size_of::<ChildSock>());
    let meta = clients::META_OFFLOAD;
    let frames = clients::syn_frames(0, count);
    let mut tx = ReuseSink::default();

    // Request socks: live heap after COUNT SYNs minus before.
    let (mut rig, _fd) = bench_rig(Path::Queue, count * 2);
    let now = rig.now;
    let before = live();
    for f in frames.chunks_exact(SYN_LEN) {
        engine_rx(&mut rig.workers[0], now, f, meta, &mut tx);
    }
    let per_req = (live() - before) as f64 / f64::from(count);
    check(rig.workers[0].engine.request_socks() == count as usize, "not one request sock per SYN".into())?;
    println!("heap per request sock ({count} SYNs, request table + timer wheel): {per_req:.1} B");
    drop(rig);

    // Cookies: after a warm-up, nothing.
    let (mut rig, _fd) = bench_rig(Path::Cookie, 4096);
    let now = rig.now;
    let warm = 1000.min(count as usize);
    let mut it = frames.chunks_exact(SYN_LEN);
    for f in it.by_ref().take(warm) {
        engine_rx(&mut rig.workers[0], now, f, meta, &mut tx);
    }
    let (before, calls) = (live(), allocs());
    let rest = it.len();
    for f in it {
        engine_rx(&mut rig.workers[0], now, f, meta, &mut tx);
    }
    let (grown, calls) = (live() - before, allocs() - calls);
    println!("cookie mode, {rest} SYNs after {warm} warm-up: {calls} allocations, {grown} B heap growth");
    check(calls == 0 && grown == 0, "cookie path allocates".into())?;
    drop(rig);

    // Established connections: handshakes, accepted, connections kept.
    let (mut rig, fd) = bench_rig(Path::Queue, 4096);
    let now = rig.now;
    let listener = rig.stack.listener(fd).map_err(|e| format!("listener: {e:?}"))?;
    let mut ack = [0u8; FRAME_MAX];
    // Stay under the worker's default buffer cap (1 GiB / 128 KiB).
    let conns = count.min(4000);
    let before = live();
    for f in frames.chunks_exact(SYN_LEN).take(conns as usize) {
        engine_rx(&mut rig.workers[0], now, f, meta, &mut tx);
        let len = clients::ack_frame(tx.last(), &mut ack);
        engine_rx(&mut rig.workers[0], now, &ack[..len], meta, &mut tx);
        while listener.acceptq_remove().is_some() {}
    }
    let per_conn = (live() - before) as f64 / f64::from(conns);
    check(rig.workers[0].engine.connections().len() == conns as usize, "not one connection per handshake".into())?;
    let cfg = rig.workers[0].engine.config();
    println!("heap per established connection ({conns} handshakes, ConnTable + emptied request table): {per_conn:.1} B (target <= 256 before buffers)");
    println!(
        "  buffers grow on demand up to {} + {} B: none yet for a connection that carried no data",
        cfg.rcv_buf, cfg.snd_buf
    );
    Ok(())
}

fn print_counters(rig: &Rig) {
    let c = rig.workers[0].counters.snapshot();
    let line: Vec<String> = c.nonzero().map(|(name, v)| format!("{name}={v}")).collect();
    println!("counters: {}", line.join(" "));
}

fn check(ok: bool, what: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sw = args.iter().any(|a| a == "--sw-csum");
    let spread = args.iter().any(|a| a == "--spread-peers");
    let ipv6 = args.iter().any(|a| a == "--ipv6");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(mode), Some(count)) = (pos.first(), pos.get(1).and_then(|s| s.parse::<u32>().ok())) else {
        eprintln!("usage: engine_syn queue|cookie|handshake|cookie-handshake|mem COUNT [--sw-csum] [--spread-peers]");
        return ExitCode::from(2);
    };
    let meta = if sw { clients::META_SOFTWARE } else { clients::META_OFFLOAD };
    println!("mode {mode}, count {count}, rx checksums {}, peers {}", if sw { "software" } else { "offloaded" }, if spread { "spread" } else { "few" });
    let r = match mode.as_str() {
        "queue" => run_syns(Path::Queue, count, meta, spread, ipv6),
        "cookie" => run_syns(Path::Cookie, count, meta, spread, ipv6),
        "handshake" => run_handshakes(Path::Queue, count, meta),
        "cookie-handshake" => run_handshakes(Path::Cookie, count, meta),
        "data" => run_data(count, meta),
        "mem" => run_mem(count),
        other => Err(format!("unknown mode {other}")),
    };
    match r {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("engine_syn: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
