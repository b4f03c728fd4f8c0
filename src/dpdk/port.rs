//! Ethernet ports (ethdev): configuration, queues, link and statistics.
//!
//! Lifecycle: `Port::new` configures and sets up queues, `start`, hand one
//! `RxQueue`/`TxQueue` per worker, join the workers (dropping the handles),
//! `stop`. The device is closed when the `Port` and every queue handle are
//! gone, so no worker can burst on a closed port.

use std::cell::Cell;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::eal::{rte_errno, Eal};
use super::error::{Direction, DpdkError};
use super::ffi;
use super::mbuf::MbufBatch;
use super::mempool::Mempool;

// RTE_BIT64() flags bindgen cannot evaluate; csrc/shim.c asserts each value.
/// RTE_ETH_RSS_IPV4: hash on the addresses (fragments, non-TCP).
pub const RSS_IPV4: u64 = 1 << 2;
/// RTE_ETH_RSS_NONFRAG_IPV4_TCP: hash on the TCP 4-tuple.
pub const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
/// RTE_ETH_RSS_NONFRAG_IPV4_UDP.
pub const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
/// RTE_ETH_RSS_IPV6: hash on the IPv6 addresses (fragments, non-TCP).
pub const RSS_IPV6: u64 = 1 << 8;
/// RTE_ETH_RSS_NONFRAG_IPV6_TCP: hash on the IPv6 TCP 4-tuple.
pub const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
/// RTE_ETH_RX_OFFLOAD_IPV4_CKSUM / UDP_CKSUM / TCP_CKSUM / RSS_HASH.
pub const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
pub const RX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
pub const RX_OFFLOAD_TCP_CKSUM: u64 = 1 << 3;
pub const RX_OFFLOAD_RSS_HASH: u64 = 1 << 19;
/// RTE_ETH_TX_OFFLOAD_IPV4_CKSUM / UDP_CKSUM / TCP_CKSUM.
pub const TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
pub const TX_OFFLOAD_UDP_CKSUM: u64 = 1 << 2;
pub const TX_OFFLOAD_TCP_CKSUM: u64 = 1 << 3;

/// The flow types dlisten wants RSS to hash: the TCP 4-tuple, so every
/// segment of a connection lands on the worker that owns it, and the
/// address pair for everything else; the same over IPv6 where the PMD
/// offers it (without it IPv6 lands by the address pair, which keeps a
/// connection on one worker too).
pub const WANTED_RSS_HF: u64 = RSS_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_IPV6 | RSS_NONFRAG_IPV6_TCP;

const CSUM_RX: u64 = RX_OFFLOAD_IPV4_CKSUM | RX_OFFLOAD_TCP_CKSUM | RX_OFFLOAD_UDP_CKSUM;
const CSUM_TX: u64 = TX_OFFLOAD_IPV4_CKSUM | TX_OFFLOAD_TCP_CKSUM | TX_OFFLOAD_UDP_CKSUM;

/// How to bring a port up.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// One per worker.
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Ring sizes; adjusted to the driver's limits.
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// One pool for every RX queue, or one per RX queue (NUMA/cache locality).
    pub mempools: Vec<Arc<Mempool>>,
    /// Spread flows over the RX queues with RSS (only when rx_queues > 1
    /// and the driver can).
    pub want_rss: bool,
    /// Use the NIC's IPv4/TCP/UDP checksum offloads where offered.
    pub want_csum_offload: bool,
    pub promiscuous: bool,
    pub mtu: Option<u16>,
}

impl PortConfig {
    /// One RX and one TX queue of 1024 descriptors, RSS and checksum
    /// offloads where available, promiscuous off, default MTU.
    pub fn new(mempool: Arc<Mempool>) -> PortConfig {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mempools: vec![mempool],
            want_rss: true,
            want_csum_offload: true,
            promiscuous: false,
            mtu: None,
        }
    }
}

/// What a driver offers (from `rte_eth_dev_info_get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub flow_type_rss_offloads: u64,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
}

/// The offloads to configure, decided from a request and the capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadPlan {
    /// RTE_ETH_RSS_* to hash on; 0 means RSS stays off (mq_mode NONE).
    pub rss_hf: u64,
    pub rx_offloads: u64,
    pub tx_offloads: u64,
}

impl OffloadPlan {
    pub fn rss_enabled(&self) -> bool {
        self.rss_hf != 0
    }
    /// IPv4 and TCP checksums are verified by the NIC.
    pub fn rx_csum_offload(&self) -> bool {
        self.rx_offloads & (RX_OFFLOAD_IPV4_CKSUM | RX_OFFLOAD_TCP_CKSUM)
            == (RX_OFFLOAD_IPV4_CKSUM | RX_OFFLOAD_TCP_CKSUM)
    }
    /// IPv4 and TCP checksums are filled by the NIC.
    pub fn tx_csum_offload(&self) -> bool {
        self.tx_offloads & (TX_OFFLOAD_IPV4_CKSUM | TX_OFFLOAD_TCP_CKSUM)
            == (TX_OFFLOAD_IPV4_CKSUM | TX_OFFLOAD_TCP_CKSUM)
    }
}

/// Decide RSS and checksum offloads. RSS only with several RX queues and
/// only for the flow types the driver hashes (asking for more makes
/// rte_eth_dev_configure fail with EINVAL). Each checksum offload only
/// where offered.
pub fn plan_offloads(
    caps: &Capabilities,
    rx_queues: u16,
    want_rss: bool,
    want_csum: bool,
) -> OffloadPlan {
    let mut plan = OffloadPlan::default();
    if want_rss && rx_queues > 1 {
        plan.rss_hf = caps.flow_type_rss_offloads & WANTED_RSS_HF;
        // Without the 4-tuple hash, connections would not stick to one worker.
        if plan.rss_hf & RSS_NONFRAG_IPV4_TCP == 0 {
            plan.rss_hf = 0;
        }
        if plan.rss_hf != 0 {
            plan.rx_offloads |= caps.rx_offload_capa & RX_OFFLOAD_RSS_HASH;
        }
    }
    if want_csum {
        plan.rx_offloads |= caps.rx_offload_capa & CSUM_RX;
        plan.tx_offloads |= caps.tx_offload_capa & CSUM_TX;
    }
    plan
}

/// Check a queue/mempool request against the driver's limits.
pub fn check_queues(
    port: u16,
    caps: &Capabilities,
    rx_queues: u16,
    tx_queues: u16,
    mempools: usize,
) -> Result<(), DpdkError> {
    for (dir, requested, max) in [
        (Direction::Rx, rx_queues, caps.max_rx_queues),
        (Direction::Tx, tx_queues, caps.max_tx_queues),
    ] {
        if requested == 0 || requested > max {
            return Err(DpdkError::QueueCount {
                port,
                dir,
                requested,
                max,
            });
        }
    }
    if mempools != 1 && mempools != usize::from(rx_queues) {
        return Err(DpdkError::MempoolCount {
            port,
            given: mempools,
            rx_queues,
        });
    }
    Ok(())
}

/// What the port is and how it was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub port_id: u16,
    pub driver: String,
    /// The kernel interface behind the port, for drivers bound to one
    /// (net_af_xdp, net_af_packet, net_tap): what log lines name.
    pub iface: Option<String>,
    /// NUMA socket of the device, -1 when unknown (virtual devices).
    pub socket_id: i32,
    pub caps: Capabilities,
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Descriptor counts after adjusting to the driver's limits.
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub min_mtu: u16,
    pub max_mtu: u16,
    pub rss_enabled: bool,
    pub rss_hf: u64,
    pub rx_offloads: u64,
    pub tx_offloads: u64,
    pub rx_csum_offload: bool,
    pub tx_csum_offload: bool,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// 0 when none, None when the driver does not know (virtual devices).
    pub speed_mbps: Option<u32>,
    pub full_duplex: bool,
}

/// Port counters (`rte_eth_stats_get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the NIC because the RX ring was full (workers too slow).
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX refill failures: the mempool was empty.
    pub rx_nombuf: u64,
}

/// Ports configured by a live `Port`: configuring one twice would race
/// with the first owner's queues.
static PORT_CLAIMED: [AtomicBool; ffi::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; ffi::RTE_MAX_ETHPORTS as usize];

/// Releases a port claim (on `Port::new` failure, or after close).
struct PortClaim(u16);

impl PortClaim {
    fn take(port: u16) -> Result<PortClaim, DpdkError> {
        let slot = PORT_CLAIMED
            .get(usize::from(port))
            .ok_or(DpdkError::NoPorts)?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::PortInUse { port });
        }
        Ok(PortClaim(port))
    }
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        if let Some(slot) = PORT_CLAIMED.get(usize::from(self.0)) {
            slot.store(false, Ordering::Release);
        }
    }
}

/// A configured ethdev port. See the module doc for the lifecycle.
pub struct Port {
    shared: Arc<PortShared>,
}

struct PortShared {
    id: u16,
    info: PortInfo,
    started: AtomicBool,
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
    // Dropped after the device is closed (fields drop after Drop::drop):
    // the claim, then the pools (RX rings hold their mbufs), then EAL.
    _claim: PortClaim,
    _mempools: Vec<Arc<Mempool>>,
    _eal: Eal,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // No queue handle exists (each holds an Arc of self), so no burst
        // can run concurrently.
        if self.started.load(Ordering::Acquire) {
            // SAFETY: valid configured port, no concurrent data-path calls.
            unsafe { ffi::rte_eth_dev_stop(self.id) };
        }
        // SAFETY: as above; close releases the queues and their mbufs.
        unsafe { ffi::rte_eth_dev_close(self.id) };
    }
}

fn neg_errno(ret: i32) -> i32 {
    if ret < 0 {
        -ret
    } else {
        rte_errno()
    }
}

/// `Ok` when a DPDK call returned 0, else the error `err` makes of its errno.
fn check(ret: i32, err: impl FnOnce(i32) -> DpdkError) -> Result<(), DpdkError> {
    if ret == 0 {
        Ok(())
    } else {
        Err(err(neg_errno(ret)))
    }
}

/// `NoPorts`, or `NoSuchPort` with the ports there are, unless EAL has `port`.
fn check_port_exists(eal: &Eal, port: u16) -> Result<(), DpdkError> {
    let ports = eal.ports();
    if ports.contains(&port) {
        return Ok(());
    }
    if ports.is_empty() {
        return Err(DpdkError::NoPorts);
    }
    Err(DpdkError::NoSuchPort {
        port,
        available: ports,
    })
}

fn dev_info(port: u16) -> Result<ffi::rte_eth_dev_info, DpdkError> {
    let mut dev_info = ffi::rte_eth_dev_info::default();
    // SAFETY: valid port (`Port::new` checked it); dev_info is a writable struct
    // of the type the call fills.
    let ret = unsafe { ffi::rte_eth_dev_info_get(port, &mut dev_info) };
    check(ret, |errno| DpdkError::PortInfo { port, errno })?;
    Ok(dev_info)
}

fn driver_name(dev_info: &ffi::rte_eth_dev_info) -> String {
    if dev_info.driver_name.is_null() {
        return String::new();
    }
    // SAFETY: non-null driver_name points to the PMD's static name.
    unsafe { CStr::from_ptr(dev_info.driver_name) }
        .to_string_lossy()
        .into_owned()
}

/// The kernel interface the port is bound to (net_af_xdp, net_af_packet,
/// net_tap set `if_index`), by its name in this network namespace.
fn interface_name(dev_info: &ffi::rte_eth_dev_info) -> Option<String> {
    if dev_info.if_index == 0 {
        return None;
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, what if_indextoname writes at most
    // (the name and its NUL); it returns NULL when the index is unknown.
    let name = unsafe { libc::if_indextoname(dev_info.if_index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

fn capabilities(dev_info: &ffi::rte_eth_dev_info) -> Capabilities {
    Capabilities {
        max_rx_queues: dev_info.max_rx_queues,
        max_tx_queues: dev_info.max_tx_queues,
        flow_type_rss_offloads: dev_info.flow_type_rss_offloads,
        rx_offload_capa: dev_info.rx_offload_capa,
        tx_offload_capa: dev_info.tx_offload_capa,
    }
}

fn check_mtu(
    port: u16,
    mtu: Option<u16>,
    dev_info: &ffi::rte_eth_dev_info,
) -> Result<(), DpdkError> {
    match mtu {
        Some(mtu) if mtu < dev_info.min_mtu || mtu > dev_info.max_mtu => Err(DpdkError::Mtu {
            port,
            mtu,
            min: dev_info.min_mtu,
            max: dev_info.max_mtu,
        }),
        _ => Ok(()),
    }
}

/// The device configuration: RSS and offloads as planned, the MTU if set.
fn eth_conf(plan: &OffloadPlan, mtu: Option<u16>) -> ffi::rte_eth_conf {
    let mut conf = ffi::rte_eth_conf::default();
    if plan.rss_enabled() {
        conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
        // NULL key: the driver's default Toeplitz key.
        conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
        conf.rx_adv_conf.rss_conf.rss_hf = plan.rss_hf;
    } else {
        conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_NONE;
    }
    conf.rxmode.offloads = plan.rx_offloads;
    conf.txmode.offloads = plan.tx_offloads;
    if let Some(mtu) = mtu {
        conf.rxmode.mtu = u32::from(mtu);
    }
    conf
}

fn configure(port: u16, config: &PortConfig, conf: &ffi::rte_eth_conf) -> Result<(), DpdkError> {
    // SAFETY: valid port, not started; conf is fully initialised.
    let ret = unsafe { ffi::rte_eth_dev_configure(port, config.rx_queues, config.tx_queues, conf) };
    check(ret, |errno| DpdkError::PortConfigure { port, errno })
}

/// The descriptor counts the driver accepts, nearest to those asked for.
fn adjust_descriptors(port: u16, rx_desc: u16, tx_desc: u16) -> Result<(u16, u16), DpdkError> {
    let (mut rx_desc, mut tx_desc) = (rx_desc, tx_desc);
    // SAFETY: valid configured port; both pointers are writable u16s.
    let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rx_desc, &mut tx_desc) };
    check(ret, |errno| DpdkError::PortOp {
        port,
        what: "adjusting descriptor counts",
        errno,
    })?;
    Ok((rx_desc, tx_desc))
}

/// The socket argument of queue setup is unsigned; SOCKET_ID_ANY (-1)
/// wraps to the value DPDK expects for "any".
fn queue_socket(socket_id: i32) -> u32 {
    socket_id as u32
}

fn setup_rx_queues(
    port: u16,
    config: &PortConfig,
    dev_info: &ffi::rte_eth_dev_info,
    conf: &ffi::rte_eth_conf,
    rx_desc: u16,
    socket_id: i32,
) -> Result<(), DpdkError> {
    for q in 0..config.rx_queues {
        let pool = &config.mempools[usize::from(q) % config.mempools.len()];
        let mut rxconf = dev_info.default_rxconf;
        rxconf.offloads = conf.rxmode.offloads;
        // SAFETY: valid configured port, q < rx_queues; rxconf is copied
        // by DPDK; the pool outlives the port (kept in PortShared).
        let ret = unsafe {
            ffi::rte_eth_rx_queue_setup(
                port,
                q,
                rx_desc,
                queue_socket(socket_id),
                &rxconf,
                pool.as_ptr(),
            )
        };
        check(ret, |errno| DpdkError::QueueSetup {
            port,
            queue: q,
            dir: Direction::Rx,
            errno,
        })?;
    }
    Ok(())
}

fn setup_tx_queues(
    port: u16,
    config: &PortConfig,
    dev_info: &ffi::rte_eth_dev_info,
    conf: &ffi::rte_eth_conf,
    tx_desc: u16,
    socket_id: i32,
) -> Result<(), DpdkError> {
    for q in 0..config.tx_queues {
        let mut txconf = dev_info.default_txconf;
        txconf.offloads = conf.txmode.offloads;
        // SAFETY: valid configured port, q < tx_queues; txconf is copied.
        let ret = unsafe {
            ffi::rte_eth_tx_queue_setup(port, q, tx_desc, queue_socket(socket_id), &txconf)
        };
        check(ret, |errno| DpdkError::QueueSetup {
            port,
            queue: q,
            dir: Direction::Tx,
            errno,
        })?;
    }
    Ok(())
}

/// How a port was made to receive the multicast groups it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulticastRx {
    /// The driver filters on the list.
    Filter,
    /// The driver has no list: it receives every multicast frame.
    AllMulticast,
}

fn enable_promiscuous(port: u16) -> Result<(), DpdkError> {
    // SAFETY: valid configured port; a control-path call DPDK allows
    // while the data path runs.
    let ret = unsafe { ffi::rte_eth_promiscuous_enable(port) };
    check(ret, |errno| DpdkError::PortOp {
        port,
        what: "enabling promiscuous mode",
        errno,
    })
}

impl Port {
    /// Configure `port_id` (RSS, offloads, MTU, queues) without starting it.
    pub fn new(eal: &Eal, port_id: u16, config: &PortConfig) -> Result<Port, DpdkError> {
        check_port_exists(eal, port_id)?;
        let port = port_id;
        let claim = PortClaim::take(port)?;
        let dev_info = dev_info(port)?;
        let caps = capabilities(&dev_info);
        check_queues(
            port,
            &caps,
            config.rx_queues,
            config.tx_queues,
            config.mempools.len(),
        )?;
        check_mtu(port, config.mtu, &dev_info)?;
        let plan = plan_offloads(
            &caps,
            config.rx_queues,
            config.want_rss,
            config.want_csum_offload,
        );
        let conf = eth_conf(&plan, config.mtu);
        configure(port, config, &conf)?;

        // From here on the device is configured: a failure must close it.
        let closer = CloseOnError(port);
        let (rx_desc, tx_desc) = adjust_descriptors(port, config.rx_desc, config.tx_desc)?;
        let socket_id = eal.port_socket_id(port);
        setup_rx_queues(port, config, &dev_info, &conf, rx_desc, socket_id)?;
        setup_tx_queues(port, config, &dev_info, &conf, tx_desc, socket_id)?;
        if config.promiscuous {
            enable_promiscuous(port)?;
        }
        std::mem::forget(closer);

        let info = PortInfo {
            port_id: port,
            driver: driver_name(&dev_info),
            iface: interface_name(&dev_info),
            socket_id,
            caps,
            rx_queues: config.rx_queues,
            tx_queues: config.tx_queues,
            rx_desc,
            tx_desc,
            min_mtu: dev_info.min_mtu,
            max_mtu: dev_info.max_mtu,
            rss_enabled: plan.rss_enabled(),
            rss_hf: plan.rss_hf,
            rx_offloads: plan.rx_offloads,
            tx_offloads: plan.tx_offloads,
            rx_csum_offload: plan.rx_csum_offload(),
            tx_csum_offload: plan.tx_csum_offload(),
        };
        Ok(Port {
            shared: Arc::new(PortShared {
                id: port,
                info,
                started: AtomicBool::new(false),
                rx_taken: (0..config.rx_queues)
                    .map(|_| AtomicBool::new(false))
                    .collect(),
                tx_taken: (0..config.tx_queues)
                    .map(|_| AtomicBool::new(false))
                    .collect(),
                _claim: claim,
                _mempools: config.mempools.clone(),
                _eal: eal.clone(),
            }),
        })
    }

    pub fn id(&self) -> u16 {
        self.shared.id
    }

    pub fn info(&self) -> &PortInfo {
        &self.shared.info
    }

    fn queues_out(&self) -> bool {
        Arc::strong_count(&self.shared) > 1
    }

    /// Start the device. Queue handles must not be out (take them after).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        let port = self.shared.id;
        if self.queues_out() {
            return Err(DpdkError::QueuesInUse { port });
        }
        // SAFETY: valid configured port; no queue handle exists, so no
        // data-path call runs concurrently.
        let ret = unsafe { ffi::rte_eth_dev_start(port) };
        check(ret, |errno| DpdkError::PortStart { port, errno })?;
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stop the device. Every queue handle must have been dropped first.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        let port = self.shared.id;
        if self.queues_out() {
            return Err(DpdkError::QueuesInUse { port });
        }
        // SAFETY: valid port; no queue handle exists (checked above).
        let ret = unsafe { ffi::rte_eth_dev_stop(port) };
        check(ret, |errno| DpdkError::PortStop { port, errno })?;
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    /// Stop (if started) and close the device now. Fails, giving the port
    /// back, while queue handles are out.
    pub fn close(self) -> Result<(), (Port, DpdkError)> {
        if self.queues_out() {
            let port = self.shared.id;
            return Err((self, DpdkError::QueuesInUse { port }));
        }
        drop(self);
        Ok(())
    }

    pub fn promiscuous_enable(&self) -> Result<(), DpdkError> {
        enable_promiscuous(self.shared.id)
    }

    /// Receive frames sent to these multicast MACs (IPv6's all-nodes and
    /// solicited-node groups): the port's multicast filter
    /// (`rte_eth_dev_set_mc_addr_list`, replacing any earlier list), or all
    /// multicast where the driver has no filter. Says which it used.
    pub fn accept_multicast(&self, macs: &[[u8; 6]]) -> Result<MulticastRx, DpdkError> {
        let port = self.shared.id;
        let mut list: Vec<ffi::rte_ether_addr> =
            macs.iter().map(|m| ffi::rte_ether_addr { addr_bytes: *m }).collect();
        let n = u32::try_from(list.len()).map_err(|_| DpdkError::PortOp { port, what: "setting the multicast list", errno: libc::E2BIG })?;
        // SAFETY: valid configured port; `list` holds `n` initialised
        // addresses for the duration of the call, which copies them.
        let ret = unsafe { ffi::rte_eth_dev_set_mc_addr_list(port, list.as_mut_ptr(), n) };
        if ret == 0 {
            return Ok(MulticastRx::Filter);
        }
        if neg_errno(ret) != libc::ENOTSUP {
            return Err(DpdkError::PortOp { port, what: "setting the multicast list", errno: neg_errno(ret) });
        }
        // SAFETY: valid configured port; a control-path call.
        let ret = unsafe { ffi::rte_eth_allmulticast_enable(port) };
        check(ret, |errno| DpdkError::PortOp { port, what: "enabling all-multicast", errno })?;
        Ok(MulticastRx::AllMulticast)
    }

    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let port = self.shared.id;
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: valid port; addr is writable.
        let ret = unsafe { ffi::rte_eth_macaddr_get(port, &mut addr) };
        check(ret, |errno| DpdkError::PortOp {
            port,
            what: "reading the MAC address",
            errno,
        })?;
        Ok(addr.addr_bytes)
    }

    pub fn link(&self) -> Result<Link, DpdkError> {
        let port = self.shared.id;
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: valid port; link is writable; nowait does not block.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(port, &mut link) };
        check(ret, |errno| DpdkError::PortOp {
            port,
            what: "reading the link state",
            errno,
        })?;
        let speed_mbps = match link.link_speed {
            ffi::RTE_ETH_SPEED_NUM_UNKNOWN => None,
            s => Some(s),
        };
        Ok(Link {
            up: u32::from(link.link_status()) == ffi::RTE_ETH_LINK_UP,
            speed_mbps,
            full_duplex: u32::from(link.link_duplex()) == ffi::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let port = self.shared.id;
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: valid port; s is writable.
        let ret = unsafe { ffi::rte_eth_stats_get(port, &mut s) };
        check(ret, |errno| DpdkError::PortOp {
            port,
            what: "reading statistics",
            errno,
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The handle for RX queue `queue`, for one worker. Each queue is handed
    /// out once at a time (two threads bursting one queue is a data race
    /// in DPDK); it comes back when the handle is dropped.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        self.take(&self.shared.rx_taken, queue, Direction::Rx)?;
        Ok(RxQueue {
            shared: self.shared.clone(),
            port: self.shared.id,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// The handle for TX queue `queue`; as [`Port::rx_queue`].
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, DpdkError> {
        self.take(&self.shared.tx_taken, queue, Direction::Tx)?;
        Ok(TxQueue {
            shared: self.shared.clone(),
            port: self.shared.id,
            queue,
            _not_sync: PhantomData,
        })
    }

    fn take(&self, slots: &[AtomicBool], queue: u16, dir: Direction) -> Result<(), DpdkError> {
        let taken = slots
            .get(usize::from(queue))
            .map(|s| s.swap(true, Ordering::AcqRel));
        match taken {
            Some(false) => Ok(()),
            _ => Err(DpdkError::QueueTaken {
                port: self.shared.id,
                queue,
                dir,
            }),
        }
    }
}

/// Closes a configured port if `Port::new` fails half-way.
struct CloseOnError(u16);

impl Drop for CloseOnError {
    fn drop(&mut self) {
        // SAFETY: the port is configured, not started, and no handle to it
        // exists yet.
        unsafe { ffi::rte_eth_dev_close(self.0) };
    }
}

/// One RX queue, owned by one worker thread (Send, not Sync).
pub struct RxQueue {
    shared: Arc<PortShared>,
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receive up to `out.room()` packets into `out`; returns how many.
    pub fn rx_burst(&mut self, out: &mut MbufBatch) -> usize {
        let (ptr, room) = out.spare_ptr();
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue) (handed out
        // once, !Sync, &mut self); the port stays configured while the
        // handle lives; ptr has room for `room` pointers.
        let n = unsafe { ffi::dl_rte_eth_rx_burst(self.port, self.queue, ptr, room) };
        let n = usize::from(n.min(room));
        // SAFETY: the PMD wrote n received mbufs, now owned by the batch.
        unsafe { out.filled(n) };
        n
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        if let Some(slot) = self.shared.rx_taken.get(usize::from(self.queue)) {
            slot.store(false, Ordering::Release);
        }
    }
}

/// Result of a [`TxQueue::tx_burst`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResult {
    /// Taken by the NIC.
    pub sent: usize,
    /// Refused (TX ring full) and freed.
    pub dropped: usize,
}

/// One TX queue, owned by one worker thread (Send, not Sync).
pub struct TxQueue {
    shared: Arc<PortShared>,
    port: u16,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Hand the batch to the NIC; what it does not take is freed. The batch
    /// is empty afterwards.
    pub fn tx_burst(&mut self, batch: &mut MbufBatch) -> TxResult {
        let held = batch.len();
        let sent = self.try_tx_burst(batch);
        batch.clear();
        TxResult {
            sent,
            dropped: held - sent,
        }
    }

    /// Hand the batch to the NIC; what it does not take stays in the batch
    /// (moved to the front) for a later retry. Returns how many were sent.
    pub fn try_tx_burst(&mut self, batch: &mut MbufBatch) -> usize {
        let (ptr, n) = batch.held_ptr();
        if n == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue); the port
        // stays configured while it lives; ptr holds n owned mbufs.
        let sent = unsafe { ffi::dl_rte_eth_tx_burst(self.port, self.queue, ptr, n) };
        let sent = usize::from(sent.min(n));
        // SAFETY: the PMD owns the first `sent` mbufs now.
        unsafe { batch.taken(sent) };
        sent
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        if let Some(slot) = self.shared.tx_taken.get(usize::from(self.queue)) {
            slot.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_RSS: u64 = RSS_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_NONFRAG_IPV4_UDP | (1 << 12);

    fn nic() -> Capabilities {
        Capabilities {
            max_rx_queues: 64,
            max_tx_queues: 64,
            flow_type_rss_offloads: ALL_RSS,
            rx_offload_capa: CSUM_RX | RX_OFFLOAD_RSS_HASH | (1 << 9),
            tx_offload_capa: CSUM_TX | (1 << 16),
        }
    }

    #[test]
    fn rss_on_a_multi_queue_nic_hashes_the_tcp_4_tuple() {
        let plan = plan_offloads(&nic(), 4, true, false);
        assert!(plan.rss_enabled());
        assert_eq!(plan.rss_hf, RSS_IPV4 | RSS_NONFRAG_IPV4_TCP);
        assert_eq!(plan.rx_offloads, RX_OFFLOAD_RSS_HASH);
        assert_eq!(plan.tx_offloads, 0);
    }

    #[test]
    fn rss_hashes_the_ipv6_4_tuple_where_offered() {
        let caps = Capabilities { flow_type_rss_offloads: ALL_RSS | RSS_IPV6 | RSS_NONFRAG_IPV6_TCP | (1 << 11), ..nic() };
        let plan = plan_offloads(&caps, 4, true, false);
        assert_eq!(plan.rss_hf, RSS_IPV4 | RSS_NONFRAG_IPV4_TCP | RSS_IPV6 | RSS_NONFRAG_IPV6_TCP);
    }

    #[test]
    fn no_rss_with_one_queue_or_when_not_wanted() {
        assert!(!plan_offloads(&nic(), 1, true, false).rss_enabled());
        assert!(!plan_offloads(&nic(), 4, false, false).rss_enabled());
        assert_eq!(plan_offloads(&nic(), 1, true, false).rx_offloads, 0);
    }

    #[test]
    fn rss_masked_by_what_the_driver_hashes() {
        // A driver that hashes only the 4-tuple: RSS_IPV4 is dropped from the request.
        let caps = Capabilities {
            flow_type_rss_offloads: RSS_NONFRAG_IPV4_TCP,
            ..nic()
        };
        assert_eq!(
            plan_offloads(&caps, 2, true, false).rss_hf,
            RSS_NONFRAG_IPV4_TCP
        );
        // No 4-tuple hash: connections would not stick to a worker, so no RSS.
        let caps = Capabilities {
            flow_type_rss_offloads: RSS_IPV4,
            ..nic()
        };
        assert!(!plan_offloads(&caps, 2, true, false).rss_enabled());
        // net_null / net_ring: no RSS at all.
        let caps = Capabilities {
            flow_type_rss_offloads: 0,
            rx_offload_capa: 0,
            tx_offload_capa: 0,
            ..nic()
        };
        let plan = plan_offloads(&caps, 2, true, true);
        assert_eq!(plan, OffloadPlan::default());
    }

    #[test]
    fn rss_hash_offload_only_when_offered() {
        let caps = Capabilities {
            rx_offload_capa: 0,
            ..nic()
        };
        let plan = plan_offloads(&caps, 2, true, false);
        assert!(plan.rss_enabled());
        assert_eq!(plan.rx_offloads, 0);
    }

    #[test]
    fn checksum_offloads_only_where_offered() {
        let plan = plan_offloads(&nic(), 1, true, true);
        assert_eq!(plan.rx_offloads, CSUM_RX);
        assert_eq!(plan.tx_offloads, CSUM_TX);
        assert!(plan.rx_csum_offload() && plan.tx_csum_offload());

        // TX IPv4 checksum but not TCP: only the IPv4 one is enabled, and
        // the port does not count as TCP-checksum-offloading.
        let caps = Capabilities {
            rx_offload_capa: RX_OFFLOAD_IPV4_CKSUM,
            tx_offload_capa: TX_OFFLOAD_IPV4_CKSUM,
            ..nic()
        };
        let plan = plan_offloads(&caps, 1, false, true);
        assert_eq!(plan.rx_offloads, RX_OFFLOAD_IPV4_CKSUM);
        assert_eq!(plan.tx_offloads, TX_OFFLOAD_IPV4_CKSUM);
        assert!(!plan.rx_csum_offload() && !plan.tx_csum_offload());

        assert_eq!(
            plan_offloads(&nic(), 1, false, false),
            OffloadPlan::default()
        );
    }

    #[test]
    fn queue_counts_checked_against_the_driver() {
        let caps = Capabilities {
            max_rx_queues: 4,
            max_tx_queues: 2,
            ..nic()
        };
        assert_eq!(check_queues(0, &caps, 4, 2, 1), Ok(()));
        assert_eq!(check_queues(0, &caps, 4, 2, 4), Ok(()));
        assert_eq!(
            check_queues(3, &caps, 5, 2, 1),
            Err(DpdkError::QueueCount {
                port: 3,
                dir: Direction::Rx,
                requested: 5,
                max: 4
            })
        );
        assert_eq!(
            check_queues(3, &caps, 1, 3, 1),
            Err(DpdkError::QueueCount {
                port: 3,
                dir: Direction::Tx,
                requested: 3,
                max: 2
            })
        );
        assert!(matches!(
            check_queues(0, &caps, 0, 1, 1),
            Err(DpdkError::QueueCount { .. })
        ));
        assert_eq!(
            check_queues(0, &caps, 4, 2, 2),
            Err(DpdkError::MempoolCount {
                port: 0,
                given: 2,
                rx_queues: 4
            })
        );
    }

    #[test]
    fn a_port_is_claimed_once_at_a_time() {
        let last = (ffi::RTE_MAX_ETHPORTS - 1) as u16;
        let claim = PortClaim::take(last).expect("free");
        assert!(
            matches!(PortClaim::take(last), Err(DpdkError::PortInUse { port }) if port == last)
        );
        drop(claim);
        assert!(PortClaim::take(last).is_ok());
        assert!(matches!(PortClaim::take(u16::MAX), Err(DpdkError::NoPorts)));
    }

    #[test]
    fn queue_handles_are_send() {
        fn is_send<T: Send>() {}
        is_send::<RxQueue>();
        is_send::<TxQueue>();
        is_send::<MbufBatch>();
        is_send::<super::super::mbuf::Mbuf>();
    }
}
