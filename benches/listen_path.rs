//! Engine-only timings of the listen path, piece by piece and whole. No
//! I/O: frames come from memory, answers go to a sink that reuses one
//! buffer. The performance targets and how far we are from them are
//! recorded in bench/RESULTS.md, never asserted here: wall-clock time on a shared VM is
//! noise; instruction counts (bench/callgrind.sh) are the repeatable figure.
//!
//! `cargo bench --bench listen_path` (about 1 minute).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dlisten::engine::listen::{AcceptQueue, ChildSock, Listener, ReuseportGroup};
use dlisten::engine::flow::FlowKey;
use dlisten::engine::keys::Secrets;
use dlisten::engine::socket::{SockType, Stack, StackConfig};
use dlisten::engine::keys::syncookie;
use dlisten::engine::sysctl::Sysctls;
use dlisten::engine::time::Instant as EngineInstant;
use dlisten::wire::ethernet::EthernetFrame;
use dlisten::wire::ipv4::Ipv4Packet;
use dlisten::wire::tcp::TcpSegment;
use dlisten::wire::tcp_options::SynOptions;
use dlisten::testkit::clients::{self, bench_rig, Path, SYN_LEN};
use dlisten::testkit::frame::OUR_IP as LOCAL;
use dlisten::testkit::rig::{ReuseSink, FRAME_MAX};
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct flows the stateless benches cycle through.
const FLOWS: u32 = 1024;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Eth + IPv4 + TCP views with length checks, both checksums verified,
/// and the SYN's options parsed: everything the host does to a SYN before
/// any table is touched.
fn wire(c: &mut Criterion) {
    let mut syn = [0u8; SYN_LEN];
    clients::syn_frame(1, &mut syn);
    c.bench_function("wire/parse_syn_eth_ip_tcp_opts", |b| {
        b.iter(|| {
            let f = black_box(&syn[..]);
            let eth = EthernetFrame::new_checked(f).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let seg = TcpSegment::new_checked(ip.payload()).ok()?;
            Some((seg.seq_number(), SynOptions::parse(seg.options())))
        })
    });
    c.bench_function("wire/parse_syn_with_sw_checksums", |b| {
        b.iter(|| {
            let f = black_box(&syn[..]);
            let eth = EthernetFrame::new_checked(f).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let seg = TcpSegment::new_checked(ip.payload()).ok()?;
            let ok = ip.verify_checksum() && seg.verify_checksum(ip.src_addr(), ip.dst_addr());
            Some((ok, SynOptions::parse(seg.options())))
        })
    });
    let eth = EthernetFrame::new_checked(&syn[..]).expect("fixture SYN");
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("fixture SYN");
    let seg = TcpSegment::new_checked(ip.payload()).expect("fixture SYN");
    let opts = seg.options();
    c.bench_function("wire/syn_options_parse", |b| b.iter(|| SynOptions::parse(black_box(opts))));
}

/// `Stack::lookup` (listening hash + reuseport group) with 1 and 64 listeners.
fn lookup(c: &mut Criterion) {
    for n in [1u16, 64] {
        let sysctls = Sysctls::default();
        let stack = Stack::new(StackConfig { workers: 1, local_addrs: vec![LOCAL], local_addrs6: Vec::new(), sysctls, seed: 1 });
        for k in 0..n {
            let fd = stack.socket(SockType::Stream).expect("socket");
            stack.bind(fd, SocketAddrV4::new(LOCAL, 1000 + k)).expect("bind");
            stack.listen(fd, 128).expect("listen");
        }
        let port = 1000 + n / 2;
        assert!(stack.lookup(0, LOCAL, port, 7).is_some());
        c.bench_function(&format!("lookup/stack_lookup_{n}_listeners"), |b| {
            let mut h = 0u32;
            b.iter(|| {
                h = h.wrapping_add(0x9e37_79b9);
                stack.lookup(0, black_box(LOCAL), black_box(port), h)
            })
        });
    }
}

/// Picking one of 8 SO_REUSEPORT members by flow hash.
fn reuseport(c: &mut Criterion) {
    let members: Vec<Arc<Listener>> =
        (0..8).map(|k| Arc::new(Listener::new(k + 1, SocketAddrV4::new(LOCAL, 80), 128, true))).collect();
    let group = ReuseportGroup::new(1, true, members, 1);
    c.bench_function("reuseport/select_by_hash_8_members", |b| {
        let mut h = 0u32;
        b.iter(|| {
            h = h.wrapping_add(0x9e37_79b9);
            group.select_by_hash(0, black_box(h)).map(|l| l.id)
        })
    });
}

/// SYN cookie mint and check (SipHash of the 4-tuple + counter).
fn cookie(c: &mut Criterion) {
    let keys = Secrets::from_seed([7; 32]).syncookie;
    let flow = |peer: u32| FlowKey::v4(u32::from(LOCAL), peer, 80, 40000);
    let saddr = u32::from(clients::peer(1).0);
    let counter = syncookie::counter(EngineInstant::from_secs(1_000));
    c.bench_function("syncookie/make", |b| {
        let mut isn = 0u32;
        b.iter(|| {
            isn = isn.wrapping_add(1);
            syncookie::make(&keys, &flow(black_box(saddr)), isn, 1460, counter)
        })
    });
    let (ck, _) = syncookie::make(&keys, &flow(saddr), 1234, 1460, counter);
    assert_eq!(syncookie::check(&keys, &flow(saddr), 1234, ck, counter), Ok(1460));
    c.bench_function("syncookie/check_valid", |b| {
        b.iter(|| syncookie::check(&keys, &flow(black_box(saddr)), 1234, black_box(ck), counter))
    });
}

/// Frame in, SYN-ACK built: `Host::rx` through the engine.
fn synack(c: &mut Criterion) {
    let frames = clients::syn_frames(0, FLOWS);
    for (name, meta) in [("offload", clients::META_OFFLOAD), ("sw_csum", clients::META_SOFTWARE)] {
        let (mut rig, _fd) = bench_rig(Path::Cookie, 4096);
        let mut tx = ReuseSink::default();
        c.bench_function(&format!("synack/cookie_frame_to_synack_{name}"), |b| {
            let mut it = frames.chunks_exact(SYN_LEN).cycle();
            b.iter(|| {
                let f = it.next().unwrap_or(&frames[..SYN_LEN]);
                rig.rx(0, f, meta, &mut tx);
            })
        });
        // (A filtered run, `-- capture_tap`, never runs the closure.)
        assert_eq!(rig.workers[0].engine.request_socks(), 0, "cookies keep no request sock");
    }
    // The queue path keeps a request sock per SYN: every sample starts from a
    // fresh engine with a backlog that holds it, and new flows.
    c.bench_function("synack/queue_frame_to_synack_offload", |b| {
        b.iter_custom(|iters| {
            let n = iters as u32;
            let frames = clients::syn_frames(0, n);
            let (mut rig, _fd) = bench_rig(Path::Queue, n.max(1) * 2);
            let mut tx = ReuseSink::default();
            let t = Instant::now();
            for f in frames.chunks_exact(SYN_LEN) {
                rig.rx(0, f, clients::META_OFFLOAD, &mut tx);
            }
            let d = t.elapsed();
            assert_eq!(rig.workers[0].engine.request_socks(), n as usize);
            d
        })
    });
}

/// One push and one pop of the accept ring (uncontended).
fn accept_queue(c: &mut Criterion) {
    let q: AcceptQueue<ChildSock> = AcceptQueue::new(4096);
    let child = ChildSock {
        worker: 0,
        conn_id: 1,
        local: SocketAddrV4::new(LOCAL, 80).into(),
        peer: SocketAddrV4::new(clients::peer(1).0, 40000).into(),
        established_at: EngineInstant::ZERO,
        flow_hash: 7,
    };
    c.bench_function("accept_queue/push_pop", |b| {
        b.iter(|| {
            let _ = q.push(black_box(child), 4096);
            q.pop()
        })
    });
}

/// SYN -> SYN-ACK -> ACK -> accept(), engine time only: the client's ACK
/// is built between the timed halves, 32 handshakes at a time.
fn handshake(c: &mut Criterion) {
    const BATCH: usize = 32;
    for (name, path) in [("queue", Path::Queue), ("cookie", Path::Cookie)] {
        c.bench_function(&format!("handshake/syn_ack_accept_{name}"), |b| {
            b.iter_custom(|iters| {
                let n = iters as u32;
                let frames = clients::syn_frames(0, n);
                let (mut rig, fd) = bench_rig(path, 4096);
                let listener = rig.stack.listener(fd).expect("listener");
                let mut synacks = vec![[0u8; FRAME_MAX]; BATCH];
                let mut acks = vec![[0u8; FRAME_MAX]; BATCH];
                let mut lens = [0usize; BATCH];
                let mut tx = ReuseSink::default();
                let mut spent = Duration::ZERO;
                let mut accepted = 0u64;
                for batch in frames.chunks(SYN_LEN * BATCH) {
                    let t = Instant::now();
                    for (k, syn) in batch.chunks_exact(SYN_LEN).enumerate() {
                        rig.rx(0, syn, clients::META_OFFLOAD, &mut tx);
                        lens[k] = tx.len;
                        synacks[k][..tx.len].copy_from_slice(tx.last());
                    }
                    spent += t.elapsed();
                    let m = batch.len() / SYN_LEN;
                    for k in 0..m {
                        lens[k] = clients::ack_frame(&synacks[k][..lens[k]], &mut acks[k]);
                    }
                    let t = Instant::now();
                    for k in 0..m {
                        rig.rx(0, &acks[k][..lens[k]], clients::META_OFFLOAD, &mut tx);
                    }
                    while listener.acceptq_remove().is_some() {
                        accepted += 1;
                    }
                    spent += t.elapsed();
                }
                assert_eq!(accepted, iters);
                spent
            })
        });
    }
}

/// `dlisten capture`'s tap on a burst of 32 SYN frames: off (what every
/// worker pays per burst when nobody captures), and on with a filter that
/// matches every frame (the copy into the ring, drained as the control
/// thread does).
fn capture_tap(c: &mut Criterion) {
    use dlisten::telemetry::capture::{CaptureFilter, CaptureHub, CaptureInterface, Direction};
    let frames: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            let mut buf = vec![0u8; FRAME_MAX];
            let n = clients::syn_frame(i, &mut buf);
            buf.truncate(n);
            buf
        })
        .collect();
    let burst = || frames.iter().map(|f| (f.as_slice(), f.len()));
    let hub = CaptureHub::new(1, || 0, 1_000_000_000, CaptureInterface::default());
    let tap = hub.tap(0);
    c.bench_function("capture_tap_off_burst32", |b| b.iter(|| tap.rx(black_box(burst()))));
    let filter = CaptureFilter { host: Some(LOCAL), port: Some(clients::PORT) };
    let armed = hub.arm(filter, Direction::Both, 2048).expect("arm");
    let mut out = Vec::with_capacity(64);
    c.bench_function("capture_tap_on_burst32", |b| {
        b.iter(|| {
            tap.rx(black_box(burst()));
            armed.session.drain_into(&mut out);
            for f in out.drain(..) {
                armed.session.recycle(f);
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = config();
    targets = wire, lookup, reuseport, cookie, synack, accept_queue, handshake, capture_tap
}
criterion_main!(benches);
