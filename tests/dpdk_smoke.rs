//! End-to-end check of the DPDK layer on `net_ring`, whose TX queue feeds its
//! own RX queue: EAL up without hugepages, a mempool, a port, a frame out and
//! back in, stats, teardown; and `net_null` (which makes up packets on RX
//! and discards on TX) with two queues and RSS. EAL initialises once per process, and each file
//! in tests/ is its own process, so this file holds exactly one test.

use std::sync::Arc;

use dlisten::dpdk::{
    version, CsumStatus, DpdkError, Eal, Mbuf, MbufBatch, Mempool, Port, PortConfig, BURST,
    DEFAULT_DATA_ROOM,
};

/// Ethernet + IPv4 + TCP SYN, 198.18.0.1:40000 -> 198.18.0.2:80, padded to 60 bytes.
fn syn_frame() -> Vec<u8> {
    #[rustfmt::skip]
    let mut f = vec![
        // Ethernet: dst, src, type IPv4
        0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00,
        // IPv4: ver/ihl, tos, total len 40, id, frag, ttl 64, proto TCP, csum 0
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0,
        198, 18, 0, 1, // src
        198, 18, 0, 2, // dst
        // TCP: ports 40000 -> 80, seq, ack, offset 5, flags SYN, window, csum, urg
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    f.resize(60, 0);
    f
}

fn eal_args(vdev: &str) -> Vec<String> {
    let prefix = format!("dl-smoke-{}", std::process::id());
    [
        "dlisten-smoke",
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        &prefix,
        "--log-level",
        "lib.eal:warning",
        "--vdev",
        vdev,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// net_null, two queues: RSS on (it reports every hash type), RX yields
/// made-up 64-byte packets from the queue's own pool, TX takes everything.
fn null_port(eal: &Eal) {
    let pools: Vec<Arc<Mempool>> = (0..2)
        .map(|q| {
            let name = format!("dl_null{q}");
            Arc::new(Mempool::new(eal, &name, 511, 0, DEFAULT_DATA_ROOM, -1).expect("mempool"))
        })
        .collect();
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        mempools: pools.clone(),
        ..PortConfig::new(pools[0].clone())
    };
    let mut port = Port::new(eal, 1, &config).expect("null port");
    assert_eq!(port.info().driver, "net_null");
    assert!(port.info().rss_enabled, "{:?}", port.info());
    port.start().expect("start");
    let mut rxq = port.rx_queue(1).expect("rx queue 1");
    let mut txq = port.tx_queue(1).expect("tx queue 1");
    let mut b = MbufBatch::new();
    assert_eq!(rxq.rx_burst(&mut b), BURST);
    assert!(b.iter().all(|m| m.len() == 64));
    assert_eq!(
        pools[1].in_use_count(),
        BURST as u32,
        "RX queue 1 fills from pool 1"
    );
    assert_eq!(txq.tx_burst(&mut b).sent, BURST);
    assert_eq!(pools[1].in_use_count(), 0, "net_null frees what it sends");
    drop((rxq, txq));
    port.stop().expect("stop");
}

#[test]
fn net_ring_loopback_and_net_null() {
    assert!(version().starts_with("DPDK 22.11"), "{}", version());

    let mut args = eal_args("net_ring0");
    args.extend(["--vdev".to_string(), "net_null0".to_string()]);
    let eal = Eal::init(&args).expect("EAL init");
    assert!(matches!(
        Eal::init(&args),
        Err(DpdkError::EalAlreadyInitialised)
    ));
    assert_eq!(eal.ports(), vec![0, 1]);

    let pool = Arc::new(
        Mempool::new(
            &eal,
            "dl_smoke",
            1023,
            32,
            DEFAULT_DATA_ROOM,
            eal.socket_id(),
        )
        .expect("mempool"),
    );
    assert!(matches!(
        Mempool::new(&eal, "dl_smoke", 1023, 32, DEFAULT_DATA_ROOM, -1),
        Err(DpdkError::MempoolCreate { errno, .. }) if errno == libc::EEXIST
    ));

    assert!(matches!(
        Port::new(&eal, 7, &PortConfig::new(pool.clone())),
        Err(DpdkError::NoSuchPort { port: 7, .. })
    ));
    let too_many = PortConfig {
        rx_queues: 64,
        ..PortConfig::new(pool.clone())
    };
    assert!(matches!(
        Port::new(&eal, 0, &too_many),
        Err(DpdkError::QueueCount { .. })
    ));

    let mut port = Port::new(&eal, 0, &PortConfig::new(pool.clone())).expect("port");
    assert!(matches!(
        Port::new(&eal, 0, &PortConfig::new(pool.clone())),
        Err(DpdkError::PortInUse { port: 0 })
    ));
    let info = port.info().clone();
    assert_eq!(info.driver, "net_ring");
    assert!(!info.rss_enabled, "one queue: no RSS");
    assert_eq!((info.rx_queues, info.tx_queues), (1, 1));
    assert!(info.rx_desc > 0 && info.tx_desc > 0);
    port.start().expect("start");
    assert!(port.link().expect("link").up);
    let mac = port.mac_addr().expect("mac");
    assert_eq!(mac.len(), 6);

    let mut rxq = port.rx_queue(0).expect("rx queue");
    let mut txq = port.tx_queue(0).expect("tx queue");
    assert!(matches!(
        port.rx_queue(0),
        Err(DpdkError::QueueTaken { .. })
    ));
    null_port(&eal);
    assert!(matches!(
        port.tx_queue(1),
        Err(DpdkError::QueueTaken { .. })
    ));
    assert!(matches!(
        port.stop(),
        Err(DpdkError::QueuesInUse { port: 0 })
    ));

    // Build a frame in a fresh mbuf, with a TX checksum request set and cleared.
    let frame = syn_frame();
    let mut m: Mbuf = pool.alloc().expect("alloc");
    assert!(m.is_empty());
    assert!(m.headroom() >= 128);
    m.append(frame.len())
        .expect("tailroom")
        .copy_from_slice(&frame);
    assert_eq!(m.data(), &frame[..]);
    assert_eq!((m.pkt_len(), m.nb_segs()), (60, 1));
    m.request_tx_csum_ipv4_tcp(14, 20);
    assert_ne!(m.ol_flags(), 0);
    m.clear_tx_offload();
    assert_eq!(m.ol_flags(), 0);
    assert!(
        m.append(usize::from(DEFAULT_DATA_ROOM)).is_none(),
        "no room for that much"
    );

    let mut tx = MbufBatch::new();
    tx.push(m).expect("room");
    let sent = txq.tx_burst(&mut tx);
    assert_eq!((sent.sent, sent.dropped), (1, 0));
    assert!(tx.is_empty());

    // net_ring: what TX queue 0 sent, RX queue 0 receives.
    let mut rx = MbufBatch::new();
    assert_eq!(rxq.rx_burst(&mut rx), 1);
    assert_eq!(rxq.rx_burst(&mut rx), 0);
    let got = rx.as_slice();
    assert_eq!(got[0].data(), &frame[..]);
    assert_eq!(got[0].rss_hash(), None, "no RSS on net_ring");
    assert_eq!(got[0].rx_ip_csum(), CsumStatus::Unknown);
    assert_eq!(got[0].rx_l4_csum(), CsumStatus::Unknown);

    // Turn the received SYN into a reply in place (swap MACs, shrink, grow) and send it back.
    for m in rx.iter_mut() {
        let d = m.data_mut();
        let (dst, src) = d.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        assert!(m.set_len(54));
        assert!(m.trim(0));
        assert_eq!(m.len(), 54);
        assert!(!m.set_len(usize::from(DEFAULT_DATA_ROOM)));
    }
    assert_eq!(
        rx.iter().next().map(|m| m.data()[0..6].to_vec()),
        Some(frame[6..12].to_vec())
    );
    let mut reply = MbufBatch::new();
    for m in rx.drain() {
        reply.push(m).expect("room");
    }
    assert!(rx.is_empty());
    assert_eq!(txq.try_tx_burst(&mut reply), 1);
    assert!(reply.is_empty());
    assert_eq!(rxq.rx_burst(&mut rx), 1);
    assert_eq!(rx.as_slice()[0].len(), 54);
    rx.clear();

    // A full burst out and back, allocated in bulk.
    let in_use_before = pool.in_use_count();
    let mut bulk = MbufBatch::new();
    assert!(pool.alloc_bulk(&mut bulk, BURST));
    assert!(!pool.alloc_bulk(&mut bulk, 1), "batch is full");
    assert_eq!(pool.in_use_count(), in_use_before + BURST as u32);
    for m in bulk.iter_mut() {
        m.append(60).expect("tailroom").copy_from_slice(&frame);
    }
    let sent = txq.tx_burst(&mut bulk);
    assert_eq!(sent.sent + sent.dropped, BURST);
    let mut received = 0;
    while rxq.rx_burst(&mut rx) > 0 {
        received += rx.len();
        rx.clear();
    }
    assert_eq!(received, sent.sent);
    // Frames allocated, sized and written in one call (the flood's send
    // path): each mbuf holds exactly the bytes written, and goes round.
    let mut frames = MbufBatch::new();
    assert!(pool.alloc_frames(&mut frames, 8, 60, |i, buf| {
        buf.copy_from_slice(&frame);
        buf[59] = i as u8;
    }));
    assert!(!pool.alloc_frames(&mut frames, BURST, 60, |_, _| panic!("all or nothing")), "no room for a burst more");
    assert!(!pool.alloc_frames(&mut MbufBatch::new(), 1, u16::MAX, |_, _| panic!("too long")), "longer than a data room");
    assert_eq!(pool.in_use_count(), in_use_before + 8);
    for (i, m) in frames.iter().enumerate() {
        assert_eq!((m.len(), m.pkt_len(), m.data()[59]), (60, 60, i as u8));
    }
    assert_eq!(txq.try_tx_burst(&mut frames), 8);
    let mut seen = Vec::new();
    while rxq.rx_burst(&mut rx) > 0 {
        seen.extend(rx.iter().map(|m| (m.len(), m.data()[59])));
        rx.clear();
    }
    assert_eq!(seen, (0..8).map(|i| (60, i)).collect::<Vec<_>>());
    assert_eq!(pool.in_use_count(), in_use_before);
    // A drain dropped half-way frees the rest.
    assert!(pool.alloc_bulk(&mut rx, 4));
    let first = rx.drain().next();
    assert!(first.is_some());
    drop(first);
    assert!(rx.is_empty());
    assert_eq!(pool.in_use_count(), in_use_before);

    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, 2 + sent.sent as u64 + 8);
    assert_eq!(stats.ipackets, 2 + sent.sent as u64 + 8);
    assert_eq!(stats.rx_nombuf, 0);

    // A worker-style std thread: registers for an lcore id, bursts, unregisters.
    let worker_eal = eal.clone();
    let worker_pool = pool.clone();
    let (lcore, rxq, txq) = std::thread::spawn(move || {
        let lcore = worker_eal.register_thread().expect("register");
        let mut b = MbufBatch::new();
        let mut m = worker_pool.alloc().expect("alloc");
        m.append(60).expect("room").copy_from_slice(&syn_frame());
        b.push(m).expect("room");
        assert_eq!(txq.tx_burst(&mut b).sent, 1);
        assert_eq!(rxq.rx_burst(&mut b), 1);
        assert_eq!(dlisten::dpdk::lcore_id(), Some(lcore));
        worker_eal.unregister_thread();
        (lcore, rxq, txq)
    })
    .join()
    .expect("worker thread");
    assert!(lcore < 128);

    // Queue handles back: the port can stop, and the queues can be taken again.
    drop((rxq, txq));
    assert!(port.rx_queue(0).is_ok());
    port.stop().expect("stop");
    port.close().map_err(|(_, e)| e).expect("close");
    assert_eq!(
        pool.in_use_count(),
        0,
        "closing the port returned its RX ring's mbufs"
    );
}
