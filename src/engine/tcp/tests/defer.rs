//! TCP_DEFER_ACCEPT (Linux's `tcp_check_req` and `reqsk_timer_handler` with
//! `rskq_defer_accept`): a bare final ACK does not complete the handshake
//! (TCPDeferAcceptDrop, the request remembers it was ACKed); data does;
//! while an ACKed request waits, its SYN-ACK is not resent until the last
//! retransmit of the deferral (`syn_ack_recalc`), after which a bare ACK
//! completes it.

use super::*;

/// Offsets from START (ms) of the SYN-ACKs in `out`.
fn synack_times(out: &[Out]) -> Vec<u64> {
    out.iter()
        .filter(|o| o.flags.contains(TcpFlags::SYN | TcpFlags::ACK))
        .map(|o| (o.at - START).as_millis() as u64)
        .collect()
}

/// A listener with TCP_DEFER_ACCEPT `secs`.
fn deferring(secs: i32) -> (Bench, Fd) {
    let mut b = Bench::linux();
    let fd = b.listen_with(128, |st, fd| st.set_defer_accept(fd, secs).expect("TCP_DEFER_ACCEPT"));
    (b, fd)
}

#[test]
fn seconds_become_synack_retransmits_as_secs_to_retrans() {
    use crate::engine::socket::secs_to_retrans;
    // 1 s doubling: 1, 3, 7, 15, 31, 63, 127, then 120 s steps.
    let cases = [(0, 0), (-5, 0), (1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (31, 5), (63, 6), (127, 7), (128, 8), (247, 8), (248, 9)];
    for (secs, want) in cases {
        assert_eq!(secs_to_retrans(secs), want, "{secs} s");
    }
    let (b, fd) = deferring(5);
    assert_eq!(b.listener(fd).defer_accept_retrans(), 3);
}

#[test]
fn a_bare_ack_is_dropped_and_data_completes_the_handshake() {
    let (mut b, fd) = deferring(5);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("timestamps");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval));
    assert!(out.is_empty(), "a bare ACK is dropped silently: {out:?}");
    assert_eq!(b.counter(Counter::TcpDeferAcceptDrop), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.stack.accept(fd).err(), Some(crate::engine::errno::Errno::Eagain));

    let req = b"GET / HTTP/1.1\r\n\r\n";
    let seg = Seg::new(TcpFlags::ACK | TcpFlags::PSH, CISN + 1, sa.seq + 1).ts(102, tsval).data(req);
    b.send(seg);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!(b.request_socks(), 0);
    let child = b.stack.accept(fd).expect("data completes the handshake");
    let mut buf = [0u8; 64];
    let n = b.workers[0].engine.read(child.conn_id, &mut buf).expect("the data is there");
    assert_eq!(&buf[..n], req);
}

#[test]
fn an_acked_request_waits_silently_then_resends_at_the_end_of_the_deferral() {
    // Defer 5 s = 3 retransmits. After the bare ACK: no SYN-ACK at 1 s and
    // 3 s (resend only once num_timeout >= defer - 1), then at 7, 15 and
    // 31 s; with tcp_synack_retries 5 the request dies at 63 s.
    let (mut b, _fd) = deferring(5);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("timestamps");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    b.advance_to(ms(62_999));
    assert_eq!(synack_times(&b.take_out()), vec![7_000, 15_000, 31_000]);
    assert_eq!(b.request_socks(), 1);
    b.advance(ms(1));
    assert_eq!(b.request_socks(), 0, "expired: retries used up and the deferral over");
    assert_eq!(b.counter(Counter::TcpReqTimeouts), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
}

#[test]
fn after_the_deferral_a_bare_ack_completes_the_handshake() {
    let (mut b, fd) = deferring(5);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("timestamps");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    // Three timeouts (1, 3, 7 s): num_timeout reaches the deferral.
    b.advance_to(ms(7_000));
    assert_eq!(synack_times(&b.take_out()), vec![7_000]);
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(102, tsval)).is_empty());
    assert_eq!(b.counter(Counter::TcpDeferAcceptDrop), 1, "not dropped again");
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert!(b.stack.accept(fd).is_ok());
}

#[test]
fn without_an_ack_the_synack_schedule_is_the_usual_one() {
    let (mut b, _fd) = deferring(5);
    b.syn_synack(Seg::syn(CISN));
    b.advance_to(ms(62_999));
    assert_eq!(synack_times(&b.take_out()), vec![1_000, 3_000, 7_000, 15_000, 31_000]);
    b.advance(ms(1));
    assert_eq!(b.request_socks(), 0);
}
