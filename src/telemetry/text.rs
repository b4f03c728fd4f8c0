//! Text an operator reads: the `ss -lnt` listing of the listeners.

use crate::engine::socket::ListenerInfo;
use std::fmt::Write as _;

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
            l.local.to_string(),
            "0.0.0.0:*",
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
    use std::net::SocketAddrV4;

    fn info(recv_q: u32, send_q: u32, local: &str) -> ListenerInfo {
        ListenerInfo {
            id: 1,
            state: "LISTEN",
            recv_q,
            send_q,
            local: local.parse::<SocketAddrV4>().unwrap(),
            reuseport_group: 0,
            group_size: 1,
            syn_qlen: 1,
            fastopen_max_qlen: 0,
            incoming_cpu: None,
        }
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
}
