//! Saying once, plainly, why segments with offloaded checksums are lost.
//!
//! A veth peer with transmit checksum offload on (the default) sends TCP
//! and UDP with only the pseudo-header sum in the checksum field
//! (`CHECKSUM_PARTIAL`); net_af_xdp and net_af_packet copy those bytes out
//! without the skb's flag, so the engine finds the checksum wrong and drops
//! the segment as Linux would from a wire. Without a word that looks like a
//! server that never answers. The worker looks at a burst's frames only when
//! the checksum error counters moved, counts the partial ones
//! (`DlRxCsumPartial`) and logs one line per port naming the interface and
//! the fix.

use crate::stats::{Counter, Counters};
use crate::wire::csum_partial::{partial_l4_checksum, PartialL4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One worker's watch over partial checksums on its port.
pub struct PartialCsumWatch {
    port_id: u16,
    iface: Option<Arc<str>>,
    /// Shared by the port's workers: the line is logged once per port.
    logged: Arc<AtomicBool>,
    /// TcpInCsumErrors + UdpInCsumErrors when last looked at.
    seen_errors: u64,
}

impl PartialCsumWatch {
    pub fn new(port_id: u16, iface: Option<Arc<str>>, logged: Arc<AtomicBool>) -> PartialCsumWatch {
        PartialCsumWatch { port_id, iface, logged, seen_errors: 0 }
    }

    /// Before a burst goes through the engine: two counter loads.
    #[inline]
    pub fn before(&mut self, counters: &Counters) {
        self.seen_errors = csum_errors(counters);
    }

    /// After the burst: when it raised a checksum error, count the frames
    /// with a partial checksum and, the first time on this port, log the line.
    #[inline]
    pub fn after<'f>(&mut self, counters: &Counters, frames: impl Iterator<Item = &'f [u8]>) {
        if csum_errors(counters) == self.seen_errors {
            return;
        }
        self.look(counters, frames);
    }

    #[cold]
    fn look<'f>(&mut self, counters: &Counters, frames: impl Iterator<Item = &'f [u8]>) {
        let mut first = None;
        let mut n = 0;
        for kind in frames.filter_map(partial_l4_checksum) {
            first.get_or_insert(kind);
            n += 1;
        }
        if n == 0 {
            return;
        }
        counters.add(Counter::RxCsumPartial, n);
        if let Some(kind) = first {
            if !self.logged.swap(true, Ordering::Relaxed) {
                eprintln!("{}", message(self.port_id, self.iface.as_deref(), kind));
            }
        }
    }
}

fn csum_errors(counters: &Counters) -> u64 {
    counters.get(Counter::TcpInCsumErrors).wrapping_add(counters.get(Counter::UdpInCsumErrors))
}

/// The one line: what arrives, what happens to it, and the fix.
pub fn message(port_id: u16, iface: Option<&str>, kind: PartialL4) -> String {
    let (what, counter) = match kind {
        PartialL4::Tcp => ("TCP segments", "TcpInCsumErrors"),
        PartialL4::Udp => ("UDP datagrams", "UdpInCsumErrors"),
    };
    let (on, peer) = match iface {
        Some(i) => (format!("port {port_id} ({i})"), format!("the peer of {i} (the other end of the veth)")),
        None => (format!("port {port_id}"), "the sending interface".to_string()),
    };
    format!(
        "dlisten: {on}: {what} arrive with partial checksums (only the pseudo-header sum: the sender \
         offloads its transmit checksum and this interface passes the bytes on unfinished); they are \
         dropped as bad and counted in {counter} and DlRxCsumPartial. Fix: turn transmit checksum \
         offload off on {peer}: ethtool -K <peer> tx off"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare ACK with a partial TCP checksum, 198.18.0.2 -> 198.18.0.1.
    fn partial_ack() -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..34].copy_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
        ]);
        let ipc = crate::wire::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ipc.to_be_bytes());
        // Ports 40000 -> 80, doff 5, ACK.
        f[34..38].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        f[46] = 0x50;
        f[47] = 0x10;
        let p = crate::wire::checksum::pseudo_header_ipv4([198, 18, 0, 2], [198, 18, 0, 1], 6, 20);
        f[50..52].copy_from_slice(&crate::wire::checksum::fold(p).to_be_bytes());
        f
    }

    #[test]
    fn counts_partial_frames_and_logs_once_per_port() {
        let counters = Counters::new();
        let logged = Arc::new(AtomicBool::new(false));
        let mut a = PartialCsumWatch::new(0, Some("xdp0".into()), logged.clone());
        let mut b = PartialCsumWatch::new(0, Some("xdp0".into()), logged.clone());
        let frame = partial_ack();
        assert_eq!(partial_l4_checksum(&frame), Some(PartialL4::Tcp));

        // No checksum error in the burst: the frames are not looked at.
        a.before(&counters);
        a.after(&counters, [&frame[..]].into_iter());
        assert_eq!(counters.get(Counter::RxCsumPartial), 0);
        assert!(!logged.load(Ordering::Relaxed));

        // The engine counted two errors: both frames are partial.
        a.before(&counters);
        counters.add(Counter::TcpInCsumErrors, 2);
        a.after(&counters, [&frame[..], &frame[..]].into_iter());
        assert_eq!(counters.get(Counter::RxCsumPartial), 2);
        assert!(logged.load(Ordering::Relaxed));

        // Another worker of the same port counts too; the flag is already taken.
        b.before(&counters);
        counters.inc(Counter::TcpInCsumErrors);
        b.after(&counters, [&frame[..]].into_iter());
        assert_eq!(counters.get(Counter::RxCsumPartial), 3);
    }

    #[test]
    fn an_otherwise_bad_checksum_is_not_partial() {
        let counters = Counters::new();
        let logged = Arc::new(AtomicBool::new(false));
        let mut w = PartialCsumWatch::new(0, None, logged.clone());
        let mut frame = partial_ack();
        frame[51] ^= 1;
        w.before(&counters);
        counters.inc(Counter::TcpInCsumErrors);
        w.after(&counters, [&frame[..]].into_iter());
        assert_eq!(counters.get(Counter::RxCsumPartial), 0);
        assert!(!logged.load(Ordering::Relaxed));
    }

    #[test]
    fn the_line_names_the_interface_and_the_fix() {
        let m = message(0, Some("xdp0"), PartialL4::Tcp);
        assert!(m.starts_with("dlisten: port 0 (xdp0): TCP segments arrive with partial checksums"), "{m}");
        assert!(m.contains("TcpInCsumErrors and DlRxCsumPartial"), "{m}");
        assert!(m.ends_with("the peer of xdp0 (the other end of the veth): ethtool -K <peer> tx off"), "{m}");
        assert!(!m.contains('\n'));
        let m = message(1, None, PartialL4::Udp);
        assert!(m.contains("port 1: UDP datagrams") && m.contains("UdpInCsumErrors"), "{m}");
    }
}
