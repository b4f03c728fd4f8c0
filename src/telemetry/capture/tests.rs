use super::*;
use crate::telemetry::control::{ControlServer, StatsSnapshot, StatsSource};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::path::PathBuf;
use std::sync::Arc;

#[test]
fn the_command_round_trips_and_limits_hold() {
    let r = CaptureRequest {
        filter: CaptureFilter { host: Some(Ipv4Addr::new(198, 18, 0, 1)), port: Some(80) },
        direction: Direction::Tx,
        count: 12,
        duration: Duration::from_millis(1500),
        snaplen: 128,
    };
    let cmd = r.command();
    let args = cmd.strip_prefix("capture").unwrap();
    assert_eq!(CaptureRequest::parse(args).unwrap(), r);
    assert_eq!(CaptureRequest::parse("").unwrap(), CaptureRequest::default());
    for (args, needle) in [
        (" count=0", "count 0 is not in"),
        (" duration-ms=0", "duration"),
        (" duration-ms=3600001", "duration"),
        (" snaplen=70000", "snaplen 70000"),
        (" host=example", "not an IPv4 address"),
        (" port=65536", "not a port"),
        (" direction=up", "rx, tx or both"),
        (" colour=blue", "unknown key \"colour\""),
        (" count", "not key=value"),
    ] {
        let e = CaptureRequest::parse(args).unwrap_err();
        assert!(e.contains(needle), "{args}: {e}");
    }
}

/// A server with one worker and a capture hub, nothing else.
struct OneWorker(Arc<CaptureHub>);

impl StatsSource for OneWorker {
    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot::default()
    }
    fn capture(&self) -> Option<Arc<CaptureHub>> {
        Some(self.0.clone())
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlisten-capture-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read_blocks(path: &Path) -> Vec<Block<'static>> {
    let bytes = std::fs::read(path).unwrap();
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let mut blocks = Vec::new();
    while let Some(b) = r.next_block() {
        blocks.push(b.unwrap().into_owned());
    }
    blocks
}

fn tsc() -> u64 {
    // Nanoseconds as "ticks" at 1 GHz.
    std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() as u64
}

#[test]
fn a_capture_over_the_control_socket_stops_at_its_count() {
    let dir = temp("count");
    let sock = dir.join("ctl.sock");
    let hub = CaptureHub::new(1, tsc, 1_000_000_000, CaptureInterface { name: "dlt0".into(), ..Default::default() });
    let server = ControlServer::start(&sock, Arc::new(OneWorker(hub.clone()))).unwrap();
    let tap = hub.tap(0);
    // The "worker": a burst every millisecond until the capture has ended.
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let done = done.clone();
        std::thread::spawn(move || {
            let frames: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 60]).collect();
            while !done.load(Ordering::Relaxed) {
                tap.rx(frames.iter().map(|f| (f.as_slice(), f.len())));
                tap.tx(frames[..1].iter().map(|f| (f.as_slice(), 64)));
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let file = dir.join("out.pcapng");
    let req = CaptureRequest { count: 25, duration: Duration::from_secs(20), ..CaptureRequest::default() };
    let out = Box::new(std::fs::File::create(&file).unwrap());
    let mut announced = String::new();
    let summary = capture(&sock, &req, out, &AtomicBool::new(false), &mut |name| announced = name.to_string()).unwrap();
    assert_eq!(announced, "dlt0");
    assert_eq!((summary.frames, summary.stopped.as_str()), (25, "count"), "{summary:?}");
    assert_eq!(summary.rx + summary.tx, 25);
    assert!(summary.tx > 0 && summary.rx > summary.tx, "{summary:?}");

    let blocks = read_blocks(&file);
    let packets: Vec<_> = blocks.iter().filter_map(|b| if let Block::EnhancedPacket(p) = b { Some(p) } else { None }).collect();
    assert_eq!(packets.len(), 25);
    let outbound = packets.iter().filter(|p| p.options.contains(&EnhancedPacketOption::Flags(2))).count() as u64;
    assert_eq!(outbound, summary.tx);
    assert!(packets.windows(2).all(|w| w[0].timestamp <= w[1].timestamp), "in time order");
    let now = std::time::UNIX_EPOCH.elapsed().unwrap();
    assert!(now - packets[0].timestamp < Duration::from_secs(30), "time of day: {:?}", packets[0].timestamp);
    let Some(Block::InterfaceStatistics(isb)) = blocks.last() else { panic!("no statistics at the end: {blocks:?}") };
    assert!(isb.options.contains(&InterfaceStatisticsOption::IsbUsrDeliv(25)));

    // A second capture while one runs is refused; after it, one can start.
    let first = hub.arm(CaptureFilter::default(), Direction::Both, 64).unwrap();
    let out = Box::new(std::fs::File::create(&file).unwrap());
    match capture(&sock, &req, out, &AtomicBool::new(false), &mut |_| {}) {
        Err(ControlError::Server { message, .. }) => assert!(message.contains("already running"), "{message}"),
        other => panic!("{other:?}"),
    }
    drop(first);

    // Asked to stop: ends early, cleanly, with the summary.
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let long = CaptureRequest { count: MAX_COUNT, duration: Duration::from_secs(60), direction: Direction::Tx, ..req };
    let out = Box::new(std::fs::File::create(&file).unwrap());
    let started = Instant::now();
    let summary = capture(&sock, &long, out, &stop, &mut |_| {}).unwrap();
    stopper.join().unwrap();
    assert_eq!(summary.stopped, "client");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(summary.rx, 0, "tx only");
    assert_eq!(read_blocks(&file).iter().filter(|b| matches!(b, Block::EnhancedPacket(_))).count() as u64, summary.frames);

    // A bad request is refused before anything is armed.
    let bad = CaptureRequest { count: 0, ..req };
    let out = Box::new(std::io::sink());
    match capture(&sock, &bad, out, &AtomicBool::new(false), &mut |_| {}) {
        Err(ControlError::Server { message, .. }) => assert!(message.contains("count 0"), "{message}"),
        other => panic!("{other:?}"),
    }
    done.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_stops_at_its_duration_with_nothing_to_capture() {
    let dir = temp("duration");
    let sock = dir.join("ctl.sock");
    let hub = CaptureHub::new(2, tsc, 1_000_000_000, CaptureInterface::default());
    let server = ControlServer::start(&sock, Arc::new(OneWorker(hub))).unwrap();
    let file = dir.join("out.pcapng");
    let req = CaptureRequest { duration: Duration::from_millis(200), ..CaptureRequest::default() };
    let summary = capture(&sock, &req, Box::new(std::fs::File::create(&file).unwrap()), &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!((summary.frames, summary.dropped, summary.stopped.as_str()), (0, 0, "duration"));
    let blocks = read_blocks(&file);
    assert!(matches!(blocks[0], Block::InterfaceDescription(_)), "{blocks:?}");
    assert!(matches!(blocks[1], Block::InterfaceStatistics(_)), "{blocks:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
