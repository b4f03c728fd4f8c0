//! A worker's transmit sink when the port will not take more and when its
//! mempool runs dry, on `net_ring` (TX feeds its own RX, which nobody polls
//! here, so the TX ring fills): the frames a full ring refuses are counted
//! as drops (DlTxDrops), the frames with no mbuf to build them in as such
//! (DlTxNoMbuf), none is lost uncounted, nothing panics, and once the ring
//! is drained the same sink sends again. EAL initialises once per process:
//! this file holds one test.

use dlisten::dpdk::{Eal, MbufBatch, Mempool, Port, PortConfig, RxQueue, DEFAULT_DATA_ROOM};
use dlisten::engine::tx::{TxFrame, TxSink};
use dlisten::worker::sink::MbufSink;
use std::sync::Arc;

fn eal_args() -> Vec<String> {
    let prefix = format!("dl-txex-{}", std::process::id());
    [
        "dlisten-txex", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry", "--file-prefix", &prefix,
        "--log-level", "lib.eal:warning", "--vdev", "net_ring0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Emit `n` 60-byte frames; how many the sink took.
fn emit(sink: &mut MbufSink<'_>, n: usize) -> usize {
    let taken = (0..n)
        .filter(|&i| {
            sink.emit(60, |buf| {
                buf[..60].fill(i as u8);
                TxFrame::done(60)
            })
        })
        .count();
    sink.flush();
    taken
}

/// Receive (and free) everything the ring holds.
fn drain(rxq: &mut RxQueue) -> usize {
    let mut batch = MbufBatch::new();
    let mut total = 0;
    loop {
        let n = rxq.rx_burst(&mut batch);
        batch.clear();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

#[test]
fn a_full_tx_ring_and_an_empty_mempool_are_counted() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    let big = Arc::new(Mempool::new(&eal, "dl_txex_big", 8191, 0, DEFAULT_DATA_ROOM, -1).expect("mempool"));
    let tiny = Arc::new(Mempool::new(&eal, "dl_txex_tiny", 63, 0, DEFAULT_DATA_ROOM, -1).expect("mempool"));
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        mempools: vec![big.clone(), tiny.clone()],
        want_rss: false,
        ..PortConfig::new(big.clone())
    };
    let mut port = Port::new(&eal, 0, &cfg).expect("port");
    port.start().expect("start");

    // Queue 0, plenty of mbufs: more frames than the ring holds.
    let (mut rx0, tx0) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
    let mut sink = MbufSink::new(&big, tx0, false);
    let emitted = 3000;
    assert_eq!(emit(&mut sink, emitted), emitted, "every frame had an mbuf");
    let drops = sink.take_drops() as usize;
    assert_eq!(sink.take_no_mbuf(), 0);
    assert!(drops > 0, "the ring never filled");
    let in_ring = drain(&mut rx0);
    assert_eq!(in_ring + drops, emitted, "a frame is either in the ring or counted as dropped");
    // Drained: the same sink sends again, nothing dropped.
    assert_eq!(emit(&mut sink, 100), 100);
    assert_eq!((sink.take_drops(), drain(&mut rx0)), (0, 100));

    drop(sink);

    // Queue 1, 63 mbufs: the ring holds every one of them, then there are none.
    let (mut rx1, tx1) = (port.rx_queue(1).unwrap(), port.tx_queue(1).unwrap());
    let mut sink = MbufSink::new(&tiny, tx1, false);
    let taken = emit(&mut sink, 200);
    let no_mbuf = sink.take_no_mbuf() as usize;
    assert_eq!(sink.take_drops(), 0, "the ring had room");
    assert!(taken <= 63 && taken > 0, "{taken}");
    assert_eq!(taken + no_mbuf, 200, "a frame is either sent or counted as wanting an mbuf");
    assert_eq!(drain(&mut rx1), taken);
    // The mbufs are back: frames are built again.
    assert_eq!(emit(&mut sink, 10), 10);
    assert_eq!((sink.take_no_mbuf(), drain(&mut rx1)), (0, 10));

    drop(sink);
    drop((rx0, rx1));
    port.stop().expect("stop");
}
