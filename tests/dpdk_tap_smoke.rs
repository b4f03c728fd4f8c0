//! Bring-up of a `net_tap` port: the PMD creates a kernel interface in the
//! current network namespace, the port reports its driver, MAC and link,
//! and closing the port removes the interface. No traffic is sent.
//! One test per file: EAL initialises once per process.

use std::path::Path;
use std::sync::Arc;

use dlisten::dpdk::{Eal, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};

#[test]
fn net_tap_bring_up() {
    if !Path::new("/dev/net/tun").exists() {
        panic!("net_tap needs /dev/net/tun (and root); this machine has none");
    }
    let iface = format!("dltap{}", std::process::id() % 100_000);
    let vdev = format!("net_tap0,iface={iface}");
    let prefix = format!("dl-tap-{}", std::process::id());
    let args: Vec<String> = [
        "dlisten-tap-smoke",
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
        &vdev,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let eal = Eal::init(&args).expect("EAL init");
    assert_eq!(eal.ports(), vec![0]);
    let sys = format!("/sys/class/net/{iface}");
    assert!(Path::new(&sys).exists(), "net_tap created {iface}");

    let pools: Vec<Arc<Mempool>> = (0..2)
        .map(|q| {
            Arc::new(
                Mempool::new(
                    &eal,
                    &format!("dl_tap_rx{q}"),
                    2047,
                    64,
                    DEFAULT_DATA_ROOM,
                    -1,
                )
                .expect("mempool"),
            )
        })
        .collect();
    let config = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 512,
        tx_desc: 512,
        mempools: pools.clone(),
        ..PortConfig::new(pools[0].clone())
    };
    let mut port = Port::new(&eal, 0, &config).expect("port");
    let info = port.info().clone();
    eprintln!("{info:?}");
    assert_eq!(info.driver, "net_tap");
    assert_eq!((info.rx_queues, info.tx_queues), (2, 2));
    // net_tap hashes the IPv4 4-tuple (with its BPF RSS), so two queues get RSS
    // when the PMD reports it; either way the port must come up.
    if info.caps.flow_type_rss_offloads & dlisten::dpdk::RSS_NONFRAG_IPV4_TCP != 0 {
        assert!(info.rss_enabled, "{info:?}");
    } else {
        assert!(!info.rss_enabled, "{info:?}");
    }
    port.start().expect("start");

    // The MAC DPDK reports is the kernel interface's.
    let mac = port.mac_addr().expect("mac");
    let kernel_mac = std::fs::read_to_string(format!("{sys}/address")).expect("read address");
    let dpdk_mac = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(kernel_mac.trim(), dpdk_mac);

    let link = port.link().expect("link");
    assert!(link.up, "{link:?}");
    let flags = std::fs::read_to_string(format!("{sys}/flags")).expect("read flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("hex");
    assert_ne!(flags & 1, 0, "IFF_UP on the kernel side");

    // Queues open and burst (nothing is sent; the kernel may or may not
    // have queued an IPv6 router solicitation, so only the call is checked).
    let mut rxq = port.rx_queue(1).expect("rx queue 1");
    let mut batch = dlisten::dpdk::MbufBatch::new();
    let n = rxq.rx_burst(&mut batch);
    assert_eq!(n, batch.len());
    drop(batch);
    drop(rxq);
    assert!(port.stats().is_ok());

    port.stop().expect("stop");
    port.close().map_err(|(_, e)| e).expect("close");
    assert!(
        !Path::new(&sys).exists(),
        "closing the port removed {iface}"
    );
    for pool in &pools {
        assert_eq!(pool.in_use_count(), 0);
    }
}
