//! `--vdev` strings for the drivers bound to a kernel interface, checked
//! before EAL sees them.
//!
//! EAL fails a bad `--vdev` with "probe failed" at best; here the mistakes
//! are named with their fix: a missing `iface=`, an unknown key, a number
//! that is not one, an interface that is not in this network namespace,
//! queues the interface does not have, fewer queues than `--workers`.
//! The keys are those the 22.11 PMDs register (`RTE_PMD_REGISTER_PARAM_STRING`
//! of drivers/net/af_xdp and drivers/net/af_packet). Other drivers pass
//! through unchecked.

use std::ffi::CString;
use thiserror::Error;

/// A driver bound to a kernel interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VdevDriver {
    /// net_af_xdp: an AF_XDP socket per queue, an XDP program on the interface.
    AfXdp,
    /// net_af_packet: an AF_PACKET socket per queue pair (PACKET_MMAP rings).
    AfPacket,
    /// Any other virtual device (net_tap, net_memif, net_ring, ...): not checked here.
    Other,
}

impl VdevDriver {
    /// From a device name such as `net_af_xdp0` (the driver, then an instance number).
    fn of(name: &str) -> VdevDriver {
        match name.trim_end_matches(|c: char| c.is_ascii_digit()) {
            "net_af_xdp" | "eth_af_xdp" => VdevDriver::AfXdp,
            "net_af_packet" | "eth_af_packet" => VdevDriver::AfPacket,
            _ => VdevDriver::Other,
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            VdevDriver::AfXdp => {
                &["iface", "start_queue", "queue_count", "shared_umem", "xdp_prog", "busy_budget", "force_copy"]
            }
            VdevDriver::AfPacket => &["iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass"],
            VdevDriver::Other => &[],
        }
    }

    /// The key that sets the number of queues.
    fn queue_key(self) -> &'static str {
        match self {
            VdevDriver::AfPacket => "qpairs",
            _ => "queue_count",
        }
    }
}

/// One `--vdev` argument, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vdev {
    /// As given to EAL.
    pub arg: String,
    /// The device name before the first comma (`net_af_xdp0`).
    pub name: String,
    pub driver: VdevDriver,
    /// `iface=`: the kernel interface (required by af_xdp and af_packet).
    pub iface: Option<String>,
    /// af_xdp `start_queue` (0).
    pub start_queue: u16,
    /// af_xdp `queue_count`, af_packet `qpairs` (1).
    pub queues: u16,
}

/// What is wrong with a `--vdev`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DevargsError {
    #[error("--vdev needs a device, e.g. --vdev net_af_xdp0,iface=eth0")]
    MissingDevice,
    #[error("--vdev {arg}: {name} needs iface=<interface>, e.g. --vdev {name},iface=eth0")]
    MissingIface { arg: String, name: String },
    #[error("--vdev {arg}: {name} has no argument {key:?} (it takes {known})")]
    UnknownKey { arg: String, name: String, key: String, known: String },
    #[error("--vdev {arg}: {key}={value:?} is not {expected}")]
    BadValue { arg: String, key: String, value: String, expected: &'static str },
    #[error("--vdev {arg}: {key} is given twice")]
    Duplicate { arg: String, key: String },
    #[error("--vdev {arg}: {item:?} is not key=value")]
    NotKeyValue { arg: String, item: String },
    #[error("--vdev {arg}: {iface:?} is not an interface name (1 to 15 bytes, no '/', ':', ',', '=' or spaces)")]
    BadIfaceName { arg: String, iface: String },
    #[error(
        "--vdev {arg}: there is no interface {iface} in this network namespace (see `ip link`; \
         run dlisten in the interface's namespace, e.g. with `ip netns exec`)"
    )]
    NoSuchIface { arg: String, iface: String },
    #[error(
        "--vdev {arg}: {iface} has {have} RX queue(s), queues {start}..{end} do not exist \
         (`ethtool -l {iface}`; for a veth, create it with numrxqueues/numtxqueues)"
    )]
    QueuesBeyondIface { arg: String, iface: String, have: u32, start: u32, end: u32 },
    #[error("--workers {workers} but --vdev {arg} gives {queues} queue(s): add {key}={workers}")]
    TooFewQueues { arg: String, workers: u16, queues: u16, key: &'static str },
}

/// The `--vdev` values in EAL's arguments (`--vdev X` and `--vdev=X`).
pub fn vdev_args(eal_args: &[String]) -> Result<Vec<&str>, DevargsError> {
    let mut out = Vec::new();
    let mut it = eal_args.iter();
    while let Some(a) = it.next() {
        if a == "--vdev" {
            out.push(it.next().map(String::as_str).ok_or(DevargsError::MissingDevice)?);
        } else if let Some(v) = a.strip_prefix("--vdev=") {
            out.push(v);
        }
    }
    Ok(out)
}

/// Parse one `--vdev` value: `name[,key=value]...`.
pub fn parse(arg: &str) -> Result<Vdev, DevargsError> {
    let mut items = arg.split(',');
    let name = items.next().unwrap_or_default().trim();
    if name.is_empty() {
        return Err(DevargsError::MissingDevice);
    }
    let driver = VdevDriver::of(name);
    let mut vdev = Vdev {
        arg: arg.to_string(),
        name: name.to_string(),
        driver,
        iface: None,
        start_queue: 0,
        queues: 1,
    };
    if driver == VdevDriver::Other {
        return Ok(vdev);
    }
    let mut seen: Vec<&str> = Vec::new();
    for item in items.filter(|i| !i.is_empty()) {
        let err_arg = || arg.to_string();
        let Some((key, value)) = item.split_once('=') else {
            return Err(DevargsError::NotKeyValue { arg: err_arg(), item: item.to_string() });
        };
        if !driver.keys().contains(&key) {
            return Err(DevargsError::UnknownKey {
                arg: err_arg(),
                name: name.to_string(),
                key: key.to_string(),
                known: driver.keys().join(", "),
            });
        }
        if seen.contains(&key) {
            return Err(DevargsError::Duplicate { arg: err_arg(), key: key.to_string() });
        }
        seen.push(key);
        let bad = |expected| DevargsError::BadValue { arg: err_arg(), key: key.to_string(), value: value.to_string(), expected };
        match key {
            "iface" => {
                if !valid_iface_name(value) {
                    return Err(DevargsError::BadIfaceName { arg: err_arg(), iface: value.to_string() });
                }
                vdev.iface = Some(value.to_string());
            }
            "start_queue" => vdev.start_queue = value.parse().map_err(|_| bad("a queue number (0..65535)"))?,
            "queue_count" | "qpairs" => {
                vdev.queues = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a queue count of at least 1"))?;
            }
            "shared_umem" | "force_copy" | "qdisc_bypass" if value != "0" && value != "1" => return Err(bad("0 or 1")),
            "busy_budget" | "blocksz" | "framesz" | "framecnt" => {
                value.parse::<u32>().map_err(|_| bad("a number"))?;
            }
            // xdp_prog: a path, which the PMD opens.
            _ => {}
        }
    }
    if vdev.iface.is_none() {
        return Err(DevargsError::MissingIface { arg: arg.to_string(), name: name.to_string() });
    }
    Ok(vdev)
}

/// Linux's `dev_valid_name`, and no character that would end a kvarg.
fn valid_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IF_NAMESIZE
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace())
}

impl Vdev {
    /// Against this host: the interface exists in this network namespace
    /// and has the queues asked for (af_xdp binds queues `start_queue..`).
    pub fn check_host(&self) -> Result<(), DevargsError> {
        let Some(iface) = &self.iface else { return Ok(()) };
        if interface_index(iface).is_none() {
            return Err(DevargsError::NoSuchIface { arg: self.arg.clone(), iface: iface.clone() });
        }
        if self.driver == VdevDriver::AfXdp {
            if let Some(have) = rx_queues_of(iface) {
                let (start, end) = (u32::from(self.start_queue), u32::from(self.start_queue) + u32::from(self.queues));
                if end > have {
                    return Err(DevargsError::QueuesBeyondIface { arg: self.arg.clone(), iface: iface.clone(), have, start, end });
                }
            }
        }
        Ok(())
    }

    /// A worker per queue: the device must offer `workers` queues.
    pub fn check_workers(&self, workers: u16) -> Result<(), DevargsError> {
        if self.driver != VdevDriver::Other && workers > self.queues {
            return Err(DevargsError::TooFewQueues {
                arg: self.arg.clone(),
                workers,
                queues: self.queues,
                key: self.driver.queue_key(),
            });
        }
        Ok(())
    }
}

/// Parse and check every `--vdev` of `eal_args` for a server with `workers`
/// workers. The worker count is checked only with a single device (with
/// more, which port serves is `--port`'s business).
pub fn check_eal_args(eal_args: &[String], workers: u16) -> Result<Vec<Vdev>, DevargsError> {
    let vdevs = vdev_args(eal_args)?.into_iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    for v in &vdevs {
        v.check_host()?;
    }
    if let [only] = vdevs.as_slice() {
        only.check_workers(workers)?;
    }
    Ok(vdevs)
}

/// `if_nametoindex` in this network namespace.
fn interface_index(iface: &str) -> Option<u32> {
    let name = CString::new(iface).ok()?;
    // SAFETY: name is a valid NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The interface's RX queues, as sysfs lists them (`queues/rx-N`); None when
/// sysfs does not say (not mounted for this namespace).
fn rx_queues_of(iface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{iface}/queues")).ok()?;
    let n = dir.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
    u32::try_from(n).ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn af_xdp_with_its_keys() {
        let v = parse("net_af_xdp0,iface=veth1,start_queue=2,queue_count=4,busy_budget=64,force_copy=1").unwrap();
        assert_eq!(v.driver, VdevDriver::AfXdp);
        assert_eq!(v.name, "net_af_xdp0");
        assert_eq!(v.iface.as_deref(), Some("veth1"));
        assert_eq!((v.start_queue, v.queues), (2, 4));
        let v = parse("net_af_xdp,iface=eth0").unwrap();
        assert_eq!((v.start_queue, v.queues), (0, 1));
    }

    #[test]
    fn af_packet_with_its_keys() {
        let v = parse("net_af_packet0,iface=eth0,qpairs=2,qdisc_bypass=1").unwrap();
        assert_eq!(v.driver, VdevDriver::AfPacket);
        assert_eq!(v.queues, 2);
        assert_eq!(parse("eth_af_packet1,iface=eth0").unwrap().driver, VdevDriver::AfPacket);
    }

    #[test]
    fn other_drivers_pass_through() {
        let v = parse("net_tap0,iface=dtap0,whatever=1").unwrap();
        assert_eq!(v.driver, VdevDriver::Other);
        assert_eq!(parse("net_memif0,role=server,socket=/run/x.memif").unwrap().driver, VdevDriver::Other);
        assert!(v.check_workers(8).is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("net_af_xdp0").unwrap_err();
        assert_eq!(e.to_string(), "--vdev net_af_xdp0: net_af_xdp0 needs iface=<interface>, e.g. --vdev net_af_xdp0,iface=eth0");
        let e = parse("net_af_xdp0,iface=eth0,queues=2").unwrap_err();
        assert!(matches!(&e, DevargsError::UnknownKey { key, .. } if key == "queues"), "{e}");
        assert!(e.to_string().contains("queue_count"), "{e}");
        let e = parse("net_af_xdp0,iface=eth0,queue_count=two").unwrap_err();
        assert_eq!(e.to_string(), "--vdev net_af_xdp0,iface=eth0,queue_count=two: queue_count=\"two\" is not a queue count of at least 1");
        assert!(matches!(parse("net_af_xdp0,iface=eth0,queue_count=0"), Err(DevargsError::BadValue { .. })));
        assert!(matches!(parse("net_af_xdp0,iface=eth0,start_queue=-1"), Err(DevargsError::BadValue { .. })));
        assert!(matches!(parse("net_af_xdp0,iface=eth0,force_copy=yes"), Err(DevargsError::BadValue { .. })));
        assert!(matches!(parse("net_af_xdp0,iface=a,iface=b"), Err(DevargsError::Duplicate { .. })));
        assert!(matches!(parse("net_af_xdp0,iface"), Err(DevargsError::NotKeyValue { .. })));
        assert!(matches!(parse("net_af_packet0,iface=a/b"), Err(DevargsError::BadIfaceName { .. })));
        assert!(matches!(parse("net_af_packet0,iface=sixteen_bytes_xx"), Err(DevargsError::BadIfaceName { .. })));
        assert!(matches!(parse("net_af_packet0,iface="), Err(DevargsError::BadIfaceName { .. })));
        assert_eq!(parse(""), Err(DevargsError::MissingDevice));
    }

    #[test]
    fn workers_need_queues() {
        let v = parse("net_af_xdp0,iface=eth0").unwrap();
        assert!(v.check_workers(1).is_ok());
        let e = v.check_workers(2).unwrap_err();
        assert_eq!(e.to_string(), "--workers 2 but --vdev net_af_xdp0,iface=eth0 gives 1 queue(s): add queue_count=2");
        let e = parse("net_af_packet0,iface=eth0").unwrap().check_workers(3).unwrap_err();
        assert!(e.to_string().ends_with("add qpairs=3"), "{e}");
    }

    #[test]
    fn vdevs_are_found_in_eal_args() {
        let a = args(&["dlisten", "--no-huge", "--vdev", "net_tap0,iface=t0", "-l", "0", "--vdev=net_af_xdp0,iface=x"]);
        assert_eq!(vdev_args(&a).unwrap(), vec!["net_tap0,iface=t0", "net_af_xdp0,iface=x"]);
        assert_eq!(vdev_args(&args(&["dlisten", "--vdev"])), Err(DevargsError::MissingDevice));
        assert!(vdev_args(&args(&["dlisten", "-a", "0000:03:00.0"])).unwrap().is_empty());
    }

    #[test]
    fn the_interface_must_exist_here() {
        // `lo` exists in every network namespace; this name cannot.
        let v = parse("net_af_packet0,iface=lo").unwrap();
        assert!(v.check_host().is_ok());
        let v = parse("net_af_xdp0,iface=dlnosuch0").unwrap();
        let e = v.check_host().unwrap_err();
        assert!(matches!(e, DevargsError::NoSuchIface { .. }), "{e}");
        let e = check_eal_args(&args(&["dlisten", "--vdev", "net_af_xdp0,iface=dlnosuch0"]), 1).unwrap_err();
        assert!(e.to_string().contains("no interface dlnosuch0 in this network namespace"), "{e}");
    }

    #[test]
    fn af_xdp_queues_must_exist_on_the_interface() {
        let have = rx_queues_of("lo").expect("sysfs lists lo's queues");
        let v = parse(&format!("net_af_xdp0,iface=lo,start_queue={have}")).unwrap();
        assert!(matches!(v.check_host(), Err(DevargsError::QueuesBeyondIface { .. })));
        assert!(parse("net_af_xdp0,iface=lo").unwrap().check_host().is_ok());
    }
}
