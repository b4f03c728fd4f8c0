//! Text an operator reads: the `ss -lnt` listing of the listeners, and
//! where each worker's cycles go (VPP's `show runtime`).

use crate::engine::socket::ListenerInfo;
use crate::stats::runtime::StageTotals;
use crate::stats::{RuntimeSnapshot, Stage};
use std::fmt::Write as _;

/// Per worker: busy share, capacity (packets per busy second), clocks per
/// received packet, then each stage's calls, packets, clocks per packet and
/// packets per call. `label` says which interval the figures cover.
pub fn format_runtime(workers: &[RuntimeSnapshot], label: &str) -> String {
    let mut out = String::new();
    for (w, r) in workers.iter().enumerate() {
        let _ = writeln!(
            out,
            "runtime worker {w} ({label}): busy {:.1}%, capacity {:.3} Mpps per busy second, {:.0} clocks per received packet",
            r.busy_percent(),
            r.capacity_pps() / 1e6,
            r.clocks_per_rx_packet()
        );
        StageTotals::write_header(&mut out);
        for &s in Stage::ALL {
            let t = r.stage(s);
            if t.calls > 0 {
                t.write_row(&mut out, s.name());
            }
        }
    }
    out
}

/// `ss -lnt` columns (State Recv-Q Send-Q Local Address:Port Peer
/// Address:Port) plus, at the end, the reuseport group, its size, the SYN
/// queue length and the TFO queue limit.
pub fn format_ss_lnt(list: &[ListenerInfo]) -> String {
    let mut out = String::new();
    let h =
        ["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Group", "Members", "SynQ", "TFOq"];
    let _ = writeln!(
        out,
        "{:<6} {:<6} {:<6} {:<21} {:<21} {:<5} {:<7} {:<6} {}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    );
    for l in list {
        let _ = writeln!(
            out,
            "{:<6} {:<6} {:<6} {:<21} {:<21} {:<5} {:<7} {:<6} {}",
            l.state,
            l.recv_q,
            l.send_q,
            l.ss_local(),
            l.ss_peer(),
            l.reuseport_group,
            l.group_size,
            l.syn_qlen,
            l.fastopen_max_qlen
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(recv_q: u32, send_q: u32, local: &str) -> ListenerInfo {
        ListenerInfo {
            id: 1,
            state: "LISTEN",
            recv_q,
            send_q,
            local: local.parse().unwrap(),
            v6only: false,
            reuseport_group: 0,
            group_size: 1,
            syn_qlen: 1,
            fastopen_max_qlen: 0,
            incoming_cpu: None,
        }
    }

    #[test]
    fn runtime_table() {
        use crate::stats::Runtime;
        let r = Runtime::new(1_000_000_000);
        r.stage(Stage::Rx, 64, 640);
        r.stage(Stage::Rx, 32, 320);
        r.stage(Stage::Tcp, 96, 9_600);
        r.busy(20_000);
        r.idle(20_000);
        let text = format_runtime(&[r.snapshot()], "since start");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("runtime worker 0 (since start): busy 50.0%, capacity 4.800 Mpps"), "{text}");
        assert!(lines[0].ends_with("110 clocks per received packet"), "{text}");
        let rx: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(rx, ["rx", "2", "96", "10.0", "48.0"]);
        let tcp: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(tcp, ["tcp", "1", "96", "100.0", "96.0"]);
    }

    #[test]
    fn ss_lnt_listing() {
        let text = format_ss_lnt(&[info(1, 128, "0.0.0.0:22"), info(0, 4096, "198.18.0.1:80")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(&header[..7], &["State", "Recv-Q", "Send-Q", "Local", "Address:Port", "Peer", "Address:Port"]);
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(&row[..5], &["LISTEN", "1", "128", "0.0.0.0:22", "0.0.0.0:*"]);
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(&row[..5], &["LISTEN", "0", "4096", "198.18.0.1:80", "0.0.0.0:*"]);
    }

    /// The forms `ss -lnt` prints on Linux 6.18 for AF_INET6 listeners.
    #[test]
    fn ss_lnt_ipv6_forms() {
        let dual = info(0, 5, "[::]:9100");
        let only = ListenerInfo { v6only: true, ..info(0, 5, "[::]:9101") };
        let lo = ListenerInfo { v6only: true, ..info(0, 5, "[2001:2::1]:9102") };
        let mapped = info(0, 5, "[::ffff:198.18.0.1]:9103");
        let cols = |l: &ListenerInfo| (l.ss_local(), l.ss_peer());
        assert_eq!(cols(&dual), ("*:9100".into(), "*:*".into()));
        assert_eq!(cols(&only), ("[::]:9101".into(), "[::]:*".into()));
        assert_eq!(cols(&lo), ("[2001:2::1]:9102".into(), "[::]:*".into()));
        assert_eq!(cols(&mapped), ("[::ffff:198.18.0.1]:9103".into(), "*:*".into()));
        let text = format_ss_lnt(&[dual]);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(&row[..5], &["LISTEN", "0", "5", "*:9100", "*:*"]);
    }
}
