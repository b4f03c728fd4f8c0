//! Shared nothing, measured: complete handshakes per second of one worker
//! thread and of two, engine only (no I/O), each worker serving its own
//! SO_REUSEPORT member affine to it (SO_INCOMING_CPU), as `dlisten serve`
//! does per core. Wall-clock, so run it on an otherwise idle machine; the
//! figure is the ratio of the two runs made side by side.
//!
//! With `--shared-listener` both workers serve one listener without
//! SO_REUSEPORT instead (what `--app-threads N` makes): its request count
//! (`qlen`) and accept queue are then written by both cores, the shared
//! atomics left on the handshake path, and the ratio shows what they cost.
//!
//! ```text
//! engine_scale COUNT [ROUNDS] [--shared-listener]   COUNT handshakes per worker, best of ROUNDS (default 5)
//! ```

use dlisten::engine::socket::Fd;
use dlisten::engine::sysctl::Sysctls;
use dlisten::engine::tcp::TcpConfig;
use dlisten::testkit::clients::{self, META_OFFLOAD, PORT, SYN_LEN};
use dlisten::testkit::frame::OUR_IP;
use dlisten::testkit::rig::{ReuseSink, Rig, RigConfig, RigWorker, FRAME_MAX};
use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const BATCH: usize = 32;

fn uncapped(w: u16) -> TcpConfig {
    TcpConfig { max_conns: usize::MAX, max_buffer_bytes: u64::MAX, ..TcpConfig::new(w) }
}

/// `workers` workers, each with a listener of its own on OUR_IP:80, or
/// all with the same one (`shared`).
fn rig(workers: u16, count: u32, shared: bool) -> (Rig, Vec<Fd>) {
    let backlog = count.max(64) * 2 * if shared { u32::from(workers) } else { 1 };
    let sysctls = Sysctls { somaxconn: backlog, tcp_max_syn_backlog: backlog, ..Sysctls::default() };
    let rig = Rig::new(RigConfig { workers, sysctls, tcp: uncapped, ..RigConfig::default() });
    if shared {
        let fd = rig.listen_on(SocketAddrV4::new(OUR_IP, PORT), backlog as i32, |_, _| {});
        return (rig, vec![fd; usize::from(workers)]);
    }
    let fds = (0..workers)
        .map(|w| {
            rig.listen_on(SocketAddrV4::new(OUR_IP, PORT), backlog as i32, |st, fd| {
                st.set_reuseport(fd, true).expect("SO_REUSEPORT");
                st.set_incoming_cpu(fd, Some(w)).expect("SO_INCOMING_CPU");
            })
        })
        .collect();
    (rig, fds)
}

/// One worker's handshakes: SYN, our SYN-ACK, the client's ACK, accept().
/// Returns the time it took and how many were accepted.
fn handshakes(mut w: RigWorker, rig_stack: &dlisten::engine::socket::Stack, fd: Fd, first: u32, count: u32, start: &Barrier) -> (Duration, u64) {
    let frames = clients::syn_frames(first, count);
    let listener = rig_stack.listener(fd).expect("listener");
    let mut acks = vec![[0u8; FRAME_MAX]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut tx = ReuseSink::default();
    let now = dlisten::testkit::rig::START;
    let mut accepted = 0;
    start.wait();
    let t = Instant::now();
    for batch in frames.chunks(SYN_LEN * BATCH) {
        let syns = batch.chunks_exact(SYN_LEN);
        let n = syns.len();
        for (k, syn) in syns.enumerate() {
            w.rx(now, syn, META_OFFLOAD, &mut tx);
            lens[k] = clients::ack_frame(tx.last(), &mut acks[k]);
        }
        for k in 0..n {
            w.rx(now, &acks[k][..lens[k]], META_OFFLOAD, &mut tx);
        }
        while listener.acceptq_remove().is_some() {
            accepted += 1;
        }
    }
    (t.elapsed(), accepted)
}

/// Handshakes per second of `workers` threads running at once.
fn run(workers: u16, count: u32, shared: bool) -> Result<f64, String> {
    let (mut rig, fds) = rig(workers, count, shared);
    let stack = rig.stack.clone();
    let start = Arc::new(Barrier::new(usize::from(workers)));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads: Vec<_> = std::mem::take(&mut rig.workers)
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let (stack, start, fd, core) = (stack.clone(), start.clone(), fds[i], cores.get(i).copied());
            // Distinct clients per worker: flows never overlap.
            let first = i as u32 * count;
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                handshakes(w, &stack, fd, first, count, &start)
            })
        })
        .collect();
    let (mut slowest, mut accepted) = (Duration::ZERO, 0);
    for t in threads {
        let (took, n) = t.join().map_err(|_| "a worker thread panicked".to_string())?;
        accepted += n;
        slowest = slowest.max(took);
    }
    // A shared accept queue may leave a child for the other thread's next
    // look, or hand one thread the other's: count them all at the end.
    if let Ok(l) = rig.stack.listener(fds[0]) {
        while l.acceptq_remove().is_some() {
            accepted += 1;
        }
    }
    let want = u64::from(workers) * u64::from(count);
    if accepted != want {
        return Err(format!("{accepted} of {want} handshakes accepted"));
    }
    Ok(f64::from(workers) * f64::from(count) / slowest.as_secs_f64())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(count) = args.first().and_then(|s| s.parse::<u32>().ok()) else {
        eprintln!("usage: engine_scale COUNT [ROUNDS]");
        return ExitCode::from(2);
    };
    let rounds = args.get(1).and_then(|s| s.parse::<u32>().ok()).unwrap_or(5).max(1);
    let shared = args.iter().any(|a| a == "--shared-listener");
    let mut best = [0f64; 2];
    for _ in 0..rounds {
        for (i, workers) in [1u16, 2].into_iter().enumerate() {
            match run(workers, count, shared) {
                Ok(rate) => best[i] = best[i].max(rate),
                Err(e) => {
                    eprintln!("engine_scale: FAILED: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!("1 worker:  {:.3} M handshakes/s", best[0] / 1e6);
    println!("2 workers: {:.3} M handshakes/s", best[1] / 1e6);
    let how = if shared { "one shared listener" } else { "a listener per worker" };
    println!("ratio:     {:.2}x (best of {rounds} rounds each, {count} handshakes per worker, {how})", best[1] / best[0]);
    ExitCode::SUCCESS
}
