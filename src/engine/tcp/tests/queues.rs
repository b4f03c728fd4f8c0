//! Queue limits: the SYN queue (qlen > backlog: cookies or drop, the last
//! quarter of tcp_max_syn_backlog for proven peers) and the accept queue
//! (backlog + 1 children, tcp_abort_on_overflow).

use super::*;
use crate::engine::errno::Errno;

/// `inet_csk_reqsk_queue_is_full` is `qlen > max_ack_backlog` (Linux 6.14
/// and later): with backlog 2, SYNs 1 to 3 get request socks and the 4th
/// is the first answered with a cookie.
#[test]
fn reqsk_queue_is_full_when_qlen_exceeds_the_backlog() {
    let mut b = Bench::linux();
    let fd = b.listen(2);
    b.syn_synack(Seg::syn(CISN).port(41000));
    b.syn_synack(Seg::syn(CISN).port(41001));
    b.syn_synack(Seg::syn(CISN).port(41002));
    assert_eq!(b.counter(Counter::SyncookiesSent), 0);
    assert_eq!(b.listener(fd).reqsk_queue_len(), 3);
    let sa = b.syn_synack(Seg::syn(CISN).port(41003));
    assert_eq!(b.counter(Counter::TcpReqQFullDoCookies), 1);
    assert_eq!(b.counter(Counter::SyncookiesSent), 1);
    assert_eq!(b.counter(Counter::ListenDrops), 0);
    // No request sock for the cookie.
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len()), (3, 3));
    assert_eq!(sa.ack, CISN + 1);
    // Switched off at run time: the next overflowing SYN is dropped.
    b.set_sysctls(|s| s.tcp_syncookies = 0);
    assert!(b.send(Seg::syn(CISN).port(41004)).is_empty());
    assert_eq!(b.counter(Counter::TcpReqQFullDrop), 1);
    assert_eq!(b.counter(Counter::SyncookiesSent), 1);
}

#[test]
fn full_syn_queue_drops_without_cookies() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 0);
    let fd = b.listen(2);
    b.syn_synack(Seg::syn(CISN).port(41000));
    b.syn_synack(Seg::syn(CISN).port(41001));
    b.syn_synack(Seg::syn(CISN).port(41002));
    assert!(b.send(Seg::syn(CISN).port(41003)).is_empty());
    assert_eq!(b.counter(Counter::TcpReqQFullDrop), 1);
    assert_eq!(b.counter(Counter::ListenDrops), 1);
    assert_eq!(b.counter(Counter::SyncookiesSent), 0);
    assert_eq!(b.listener(fd).reqsk_queue_len(), 3);
}

#[test]
fn syncookies_2_answers_every_syn_with_a_cookie() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    assert_eq!(b.counter(Counter::SyncookiesSent), 1);
    assert_eq!(b.counter(Counter::TcpReqQFullDoCookies), 1);
    assert_eq!(b.request_socks(), 0);
}

/// tcp_conn_request without cookies: "Kill the following clause, if you
/// dislike this way": when fewer than tcp_max_syn_backlog/4 slots remain,
/// only peers that completed a handshake before (tcp_peer_is_proven) get
/// a request. tcp_max_syn_backlog 8: the clause bites at qlen >= 7.
#[test]
fn last_quarter_of_the_syn_backlog_is_for_proven_peers() {
    let mut b = Bench::with(|s| {
        s.tcp_syncookies = 0;
        s.tcp_max_syn_backlog = 8;
    });
    let fd = b.listen(100);
    let proven = Ipv4Addr::new(198, 18, 0, 3);
    b.handshake(proven, 50000);
    for i in 0..7 {
        b.syn_synack(Seg::syn(CISN).port(41000 + i));
    }
    assert_eq!(b.listener(fd).reqsk_queue_len(), 7);
    let stranger = Ipv4Addr::new(198, 18, 0, 4);
    assert!(b.send(Seg::syn(CISN).from(stranger, 50000)).is_empty());
    assert_eq!(b.counter(Counter::ListenDrops), 1);
    assert_eq!(b.counter(Counter::TcpReqQFullDrop), 0);
    // The same client again (its address is not proven either).
    assert!(b.send(Seg::syn(CISN).port(41999)).is_empty());
    assert_eq!(b.counter(Counter::ListenDrops), 2);
    b.syn_synack(Seg::syn(CISN).from(proven, 50001));
    assert_eq!(b.listener(fd).reqsk_queue_len(), 8);
}

/// Fill the accept queue of a backlog-2 listener: three children.
fn three_children(b: &mut Bench) {
    for i in 0..3 {
        b.handshake(CLIENT, 41000 + i);
    }
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 3);
}

#[test]
fn accept_queue_holds_backlog_plus_one_then_drops_syns() {
    let mut b = Bench::linux();
    let fd = b.listen(2);
    three_children(&mut b);
    let l = b.listener(fd);
    assert_eq!((l.sk_ack_backlog(), l.sk_max_ack_backlog()), (3, 2));
    assert!(l.sk_acceptq_is_full());
    assert!(b.send(Seg::syn(CISN).port(41003)).is_empty());
    assert_eq!(b.counter(Counter::ListenOverflows), 1);
    assert_eq!(b.counter(Counter::ListenDrops), 1);
    assert_eq!(b.request_socks(), 0);
    // Once the application accepts, SYNs are answered again.
    b.stack.accept(fd).expect("child");
    b.syn_synack(Seg::syn(CISN).port(41003));
}

/// The final ACK while the accept queue is full, tcp_abort_on_overflow = 0:
/// the ACK is dropped, the request stays and keeps retransmitting its
/// SYN-ACK; the client's retransmitted ACK completes once there is room.
#[test]
fn final_ack_on_full_accept_queue_is_dropped_and_retried() {
    let mut b = Bench::linux();
    let fd = b.listen(2);
    for i in 0..2 {
        b.handshake(CLIENT, 41000 + i);
    }
    let sa3 = b.syn_synack(Seg::syn(CISN).port(41002));
    let sa4 = b.syn_synack(Seg::syn(CISN).port(41003));
    assert!(b.send(Seg::ack(CISN + 1, sa3.seq + 1).port(41002)).is_empty());
    assert!(b.listener(fd).sk_acceptq_is_full());
    assert!(b.send(Seg::ack(CISN + 1, sa4.seq + 1).port(41003)).is_empty());
    assert_eq!(b.counter(Counter::ListenOverflows), 1);
    assert_eq!(b.counter(Counter::ListenDrops), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 3);
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len()), (1, 1));
    // Its SYN-ACK still goes out at 1 s.
    b.advance(secs(1));
    let out = b.take_out();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].dst.port(), out[0].seq), (41003, sa4.seq));
    let first = b.stack.accept(fd).expect("child");
    assert_eq!(first.peer.port(), 41000);
    assert!(b.send(Seg::ack(CISN + 1, sa4.seq + 1).port(41003)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 4);
    assert_eq!(b.request_socks(), 0);
    let ports: Vec<u16> = std::iter::from_fn(|| b.stack.accept(fd).ok()).map(|c| c.peer.port()).collect();
    assert_eq!(ports, vec![41001, 41002, 41003]);
    assert_eq!(b.stack.accept(fd), Err(Errno::Eagain));
}

/// The accept-queue overflow seen from a real port: backlog 1, one child
/// queued, two SYNs answered, the first ACK fills the queue to backlog + 1,
/// the second ACK overflows. Both SYNs must get request socks (qlen 1 is
/// not > backlog 1), so the second ACK takes tcp_check_req's
/// listen_overflow path and not the cookie path: with abort 0 it is dropped
/// and the SYN-ACK retransmitted, a re-ACK while full dropped again; with
/// abort 1 an RST, and the request is gone.
#[test]
fn tcp_check_req_listen_overflow_with_backlog_1() {
    for abort in [false, true] {
        let mut b = Bench::with(|s| s.tcp_abort_on_overflow = abort);
        let fd = b.listen(1);
        b.handshake(CLIENT, 41000);
        let sa2 = b.syn_synack(Seg::syn(CISN).port(41001));
        let sa3 = b.syn_synack(Seg::syn(CISN).port(41002));
        assert_eq!((b.counter(Counter::SyncookiesSent), b.request_socks()), (0, 2));
        assert!(b.send(Seg::ack(CISN + 1, sa2.seq + 1).port(41001)).is_empty());
        assert_eq!(b.listener(fd).sk_ack_backlog(), 2);
        let out = b.send(Seg::ack(CISN + 1, sa3.seq + 1).port(41002));
        assert_eq!(b.counter(Counter::ListenOverflows), 1);
        if abort {
            assert_eq!(out.len(), 1);
            assert_eq!((out[0].flags, out[0].seq), (TcpFlags::RST, sa3.seq + 1));
            assert_eq!(b.request_socks(), 0);
            continue;
        }
        assert!(out.is_empty());
        assert_eq!(b.request_socks(), 1);
        b.advance(secs(1));
        let rtx = b.take_out();
        assert_eq!(rtx.len(), 1);
        assert_eq!((rtx[0].flags, rtx[0].dst.port(), rtx[0].seq), (TcpFlags::SYN | TcpFlags::ACK, 41002, sa3.seq));
        assert!(b.send(Seg::ack(CISN + 1, sa3.seq + 1).port(41002)).is_empty());
        assert_eq!((b.counter(Counter::ListenOverflows), b.request_socks()), (2, 1));
    }
}

#[test]
fn final_ack_on_full_accept_queue_with_abort_on_overflow_gets_rst() {
    let mut b = Bench::with(|s| s.tcp_abort_on_overflow = true);
    let fd = b.listen(2);
    for i in 0..2 {
        b.handshake(CLIENT, 41000 + i);
    }
    let sa3 = b.syn_synack(Seg::syn(CISN).port(41002));
    let sa4 = b.syn_synack(Seg::syn(CISN).port(41003));
    assert!(b.send(Seg::ack(CISN + 1, sa3.seq + 1).port(41002)).is_empty());
    let out = b.send(Seg::ack(CISN + 1, sa4.seq + 1).port(41003));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq, out[0].dst.port()), (TcpFlags::RST, sa4.seq + 1, 41003));
    assert_eq!(b.counter(Counter::ListenOverflows), 1);
    assert_eq!(b.counter(Counter::EmbryonicRsts), 1);
    assert_eq!(b.counter(Counter::TcpAttemptFails), 0);
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len()), (0, 0));
}

/// The per-worker connection cap: a handshake beyond it is refused
/// cleanly with RST and counted (the memory limit: see `memory.rs`).
#[test]
fn connection_cap_refuses_with_rst() {
    let mut b = Bench::linux();
    b.tcp_config(|c| c.max_conns = 2);
    let fd = b.listen(128);
    b.handshake(CLIENT, 40_000);
    b.handshake(CLIENT, 40_001);
    let sa = b.syn_synack(Seg::syn(CISN).from(CLIENT, 40_002));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq.wrapping_add(1)).ts(101, tsval).from(CLIENT, 40_002));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, TcpFlags::RST, "{out:?}");
    assert_eq!(b.counter(Counter::ConnLimitRefused), 1);
    assert_eq!(b.counter(Counter::ConnMemRefused), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 2);
    assert_eq!(b.request_socks(), 0, "the refused request is gone");
    assert!(b.stack.accept(fd).is_ok() && b.stack.accept(fd).is_ok() && b.stack.accept(fd).is_err());
}
