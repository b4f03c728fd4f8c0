//! Typed DPDK failures, each carrying `rte_errno` and a plain "what to do".

use thiserror::Error;

/// DPDK-specific errno values (rte_errno.h), above the libc range.
const E_RTE_SECONDARY: i32 = 1001;
const E_RTE_NO_CONFIG: i32 = 1002;

/// A failure of the DPDK layer. `errno` is `rte_errno` (or the negative
/// return value DPDK gave, made positive).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DpdkError {
    #[error("EAL initialisation failed: {} (rte_errno {errno}); {hint}", errno_text(*errno))]
    EalInit { errno: i32, hint: &'static str },
    #[error("EAL was already initialised in this process; DPDK initialises once per process")]
    EalAlreadyInitialised,
    #[error(transparent)]
    Devargs(#[from] super::devargs::DevargsError),
    #[error("EAL argument {index} contains a NUL byte")]
    EalArgument { index: usize },
    #[error("no DPDK port: pass --vdev net_tap0 or bind a NIC to vfio-pci")]
    NoPorts,
    #[error("DPDK port {port} does not exist (ports found: {available:?}); pass --port with one of them, or a --vdev / PCI device to EAL")]
    NoSuchPort { port: u16, available: Vec<u16> },
    #[error("no DPDK port, and this process is not root: DPDK needs root (or CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_IPC_LOCK) to create tap devices, map hugepages and open NICs")]
    NotRoot,
    #[error("port {port} is already configured by another Port in this process")]
    PortInUse { port: u16 },
    #[error("port {port}: reading device info failed: {} ({errno})", errno_text(*errno))]
    PortInfo { port: u16, errno: i32 },
    #[error(
        "port {port}: {requested} {dir} queues requested, the driver offers at most {max}; \
         use fewer workers"
    )]
    QueueCount {
        port: u16,
        dir: Direction,
        requested: u16,
        max: u16,
    },
    #[error("port {port}: MTU {mtu} is outside the driver's range {min}..={max}")]
    Mtu {
        port: u16,
        mtu: u16,
        min: u16,
        max: u16,
    },
    #[error(
        "port {port}: {given} mempools for {rx_queues} RX queues; give one, or one per RX queue"
    )]
    MempoolCount {
        port: u16,
        given: usize,
        rx_queues: u16,
    },
    #[error("port {port}: rte_eth_dev_configure failed: {} ({errno})", errno_text(*errno))]
    PortConfigure { port: u16, errno: i32 },
    #[error("port {port}: {dir} queue {queue} setup failed: {} ({errno})", errno_text(*errno))]
    QueueSetup {
        port: u16,
        queue: u16,
        dir: Direction,
        errno: i32,
    },
    #[error("port {port}: start failed: {} ({errno})", errno_text(*errno))]
    PortStart { port: u16, errno: i32 },
    #[error("port {port}: stop failed: {} ({errno})", errno_text(*errno))]
    PortStop { port: u16, errno: i32 },
    #[error("port {port}: {what} failed: {} ({errno})", errno_text(*errno))]
    PortOp {
        port: u16,
        what: &'static str,
        errno: i32,
    },
    #[error("port {port}: {dir} queue {queue} does not exist or was already taken by a worker")]
    QueueTaken {
        port: u16,
        queue: u16,
        dir: Direction,
    },
    #[error("port {port}: queue handles are still held by workers; drop them before stopping")]
    QueuesInUse { port: u16 },
    #[error("mempool {name:?}: creation failed: {} ({errno}); {hint}", errno_text(*errno))]
    MempoolCreate {
        name: String,
        errno: i32,
        hint: &'static str,
    },
    #[error("rte_thread_register failed: {} ({errno}); {hint}", errno_text(*errno))]
    ThreadRegister { errno: i32, hint: &'static str },
}

/// Receive or transmit side of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Rx,
    Tx,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Rx => "RX",
            Direction::Tx => "TX",
        })
    }
}

/// What `rte_errno` means, as text, without calling into DPDK (so errors can
/// be shown after EAL is gone). DPDK's own codes are named by hand.
pub fn errno_text(errno: i32) -> String {
    match errno {
        E_RTE_SECONDARY => "operation not allowed in a secondary process".to_string(),
        E_RTE_NO_CONFIG => "missing rte_config".to_string(),
        // strerror without std's " (os error N)": the messages add the number once.
        e => {
            let text = std::io::Error::from_raw_os_error(e).to_string();
            match text.strip_suffix(&format!(" (os error {e})")) {
                Some(bare) => bare.to_string(),
                None => text,
            }
        }
    }
}

/// The advice for an `rte_eal_init` failure. The errno values are the ones
/// lib/eal/linux/eal.c sets in 22.11.
pub fn eal_init_hint(errno: i32) -> &'static str {
    match errno {
        // "Cannot get hugepage information": no hugetlbfs mount or no access to it.
        libc::EACCES => {
            "no usable hugepages: use --no-huge -m 512 or reserve hugepages \
             (deploy/hugepages.sh), and run as root"
        }
        libc::ENOMEM => {
            "not enough memory: use --no-huge -m 512 or reserve more hugepages \
             (deploy/hugepages.sh)"
        }
        libc::EPERM => "permission denied: run as root",
        libc::EALREADY => "EAL is already initialised in this process",
        libc::EINVAL => "invalid EAL arguments or a plugin failed to load; see the EAL log above",
        libc::ENODEV => {
            "device probing failed: check the --vdev/-a arguments, or bind a NIC to vfio-pci"
        }
        libc::ENOTSUP => "this CPU lacks instructions this DPDK build needs",
        libc::EEXIST => {
            "another DPDK process uses the same runtime directory: pass a unique --file-prefix"
        }
        libc::EFAULT | libc::ENOEXEC => "EAL internal setup failed; see the EAL log above",
        _ => "see the EAL log above",
    }
}

/// The advice for an `rte_pktmbuf_pool_create` failure.
pub fn mempool_hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOMEM => {
            "not enough DPDK memory: raise -m, reserve more hugepages, or use fewer mbufs"
        }
        libc::EEXIST => "a mempool with this name already exists: names must be unique",
        libc::ENAMETOOLONG => "the name is too long: mempool names have at most 25 bytes",
        libc::EINVAL => "invalid size: cache size must be at most 512 and at most n_mbufs / 1.5",
        libc::ENOSPC => "too many memzones: raise RTE_MAX_MEMZONE or create fewer pools",
        E_RTE_NO_CONFIG => "EAL is not initialised",
        E_RTE_SECONDARY => "mempools are created by the primary process",
        _ => "see the EAL log above",
    }
}

/// The advice for an `rte_thread_register` failure.
pub fn thread_register_hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOMEM => "no free lcore id: EAL has RTE_MAX_LCORE lcores; use fewer threads",
        libc::EINVAL => "EAL is not initialised",
        _ => "see the EAL log above",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_hints_say_what_to_do() {
        assert!(eal_init_hint(libc::EACCES).contains("--no-huge -m 512"));
        assert!(eal_init_hint(libc::EACCES).contains("deploy/hugepages.sh"));
        assert!(eal_init_hint(libc::ENOMEM).contains("--no-huge"));
        assert!(eal_init_hint(libc::EPERM).contains("run as root"));
        assert!(eal_init_hint(libc::EALREADY).contains("already"));
        assert!(eal_init_hint(libc::ENODEV).contains("vfio-pci"));
        assert_eq!(eal_init_hint(12345), "see the EAL log above");
    }

    #[test]
    fn errno_text_names_dpdk_codes() {
        assert_eq!(
            errno_text(E_RTE_SECONDARY),
            "operation not allowed in a secondary process"
        );
        assert!(errno_text(libc::ENOMEM).contains("memory"));
    }

    #[test]
    fn messages_carry_errno_and_hint() {
        let e = DpdkError::EalInit {
            errno: libc::EACCES,
            hint: eal_init_hint(libc::EACCES),
        };
        let text = e.to_string();
        assert!(text.contains("rte_errno 13"), "{text}");
        assert!(text.contains("--no-huge -m 512"), "{text}");
        assert_eq!(
            DpdkError::NoPorts.to_string(),
            "no DPDK port: pass --vdev net_tap0 or bind a NIC to vfio-pci"
        );
        let q = DpdkError::QueueCount {
            port: 0,
            dir: Direction::Rx,
            requested: 8,
            max: 4,
        };
        assert_eq!(
            q.to_string(),
            "port 0: 8 RX queues requested, the driver offers at most 4; use fewer workers"
        );
    }

    #[test]
    fn errno_text_names_the_errno_once() {
        assert_eq!(errno_text(libc::ENOMEM), "Cannot allocate memory");
        let e = DpdkError::MempoolCreate { name: "p".into(), errno: libc::ENOMEM, hint: mempool_hint(libc::ENOMEM) };
        assert!(e.to_string().starts_with("mempool \"p\": creation failed: Cannot allocate memory (12); not enough"), "{e}");
    }

    #[test]
    fn mempool_hints() {
        assert!(mempool_hint(libc::EEXIST).contains("unique"));
        assert!(mempool_hint(libc::ENOMEM).contains("-m"));
    }
}
