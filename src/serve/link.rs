//! The port's link, watched while serving: a link that goes down (a cable
//! pulled, `ip link set <dev> down` under net_af_packet or net_tap, the
//! interface deleted) is said once and counted (DlLinkDown), its return
//! likewise (DlLinkUp). The workers go on polling throughout: nothing
//! arrives while it is down, and what they send is dropped by the driver
//! or counted (DlTxDrops).
//!
//! The driver's word is not enough for a port bound to a kernel interface:
//! net_af_packet reports the link it set at start forever. There the
//! interface must be up with a carrier too (`/sys/class/net/<if>/carrier`,
//! `LOWER_UP` in `ip link`: read at once, where `operstate` waits for the
//! kernel's linkwatch work, seconds on a busy machine).

use crate::dpdk::{DpdkError, Link, Port};
use crate::stats::{Counter, Counters};
use std::sync::Arc;

pub(super) struct LinkWatch {
    port_id: u16,
    /// As last seen; None until a reading succeeds.
    up: Option<bool>,
    /// The main thread's counters (their only writer).
    counters: Arc<Counters>,
}

impl LinkWatch {
    /// `initial`: the link as printed at start.
    pub fn new(port_id: u16, initial: Option<bool>, counters: Arc<Counters>) -> LinkWatch {
        LinkWatch { port_id, up: initial, counters }
    }

    /// Read the link; say it when it changed. A driver that cannot tell
    /// stays quiet (it said so once at start).
    pub fn poll(&mut self, port: &Port) {
        if let Some(line) = LinkWatch::read(port).ok().and_then(|link| self.update(link)) {
            println!("{line}");
        }
    }

    /// The driver's link, down when the kernel interface under it is.
    pub fn read(port: &Port) -> Result<Link, DpdkError> {
        let mut link = port.link()?;
        if let Some(iface) = port.info().iface.as_deref() {
            link.up &= kernel_carrier(iface);
        }
        Ok(link)
    }

    /// A new reading: the line to print when it is a change.
    fn update(&mut self, link: Link) -> Option<String> {
        let was = self.up.replace(link.up);
        if was.is_none() || was == Some(link.up) {
            return None;
        }
        let p = self.port_id;
        if link.up {
            self.counters.inc(Counter::LinkUp);
            Some(format!(
                "dlisten: port {p} link up{}: serving again",
                link.speed_mbps.map(|s| format!(" {s} Mbps")).unwrap_or_default()
            ))
        } else {
            self.counters.inc(Counter::LinkDown);
            Some(format!("dlisten: port {p} link down: nothing is received or sent until it is back"))
        }
    }
}

/// The interface is up and has a carrier (`netif_carrier_ok`). The file
/// answers EINVAL while the interface is down, and is missing once it is
/// gone; any other error leaves the driver's word.
fn kernel_carrier(iface: &str) -> bool {
    match std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier")) {
        Ok(carrier) => carrier.trim() == "1",
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(up: bool) -> Link {
        Link { up, speed_mbps: up.then_some(10_000), full_duplex: true }
    }

    #[test]
    fn one_line_and_one_count_per_change() {
        let counters = Arc::new(Counters::new());
        let mut w = LinkWatch::new(3, Some(true), counters.clone());
        assert_eq!(w.update(link(true)), None);
        assert_eq!(w.update(link(false)).as_deref(), Some("dlisten: port 3 link down: nothing is received or sent until it is back"));
        assert_eq!(w.update(link(false)), None);
        assert_eq!(w.update(link(false)), None);
        assert_eq!(w.update(link(true)).as_deref(), Some("dlisten: port 3 link up 10000 Mbps: serving again"));
        assert_eq!(w.update(link(true)), None);
        assert_eq!((counters.get(Counter::LinkDown), counters.get(Counter::LinkUp)), (1, 1));
    }

    #[test]
    fn the_kernel_carrier() {
        assert!(!kernel_carrier("dlnosuch0"), "an interface that is gone is down");
        assert!(kernel_carrier("lo"), "lo is up and always has a carrier");
    }

    #[test]
    fn the_first_reading_after_an_unknown_start_is_not_a_change() {
        let counters = Arc::new(Counters::new());
        let mut w = LinkWatch::new(0, None, counters.clone());
        assert_eq!(w.update(link(false)), None);
        assert!(w.update(link(true)).is_some());
        assert_eq!((counters.get(Counter::LinkDown), counters.get(Counter::LinkUp)), (0, 1));
    }
}
