//! TCP Fast Open on the server side (RFC 7413, Linux's tcp_try_fastopen).

use super::*;
use crate::engine::errno::Errno;
use crate::engine::sysctl::tfo;

const TFO_ON: u32 = tfo::CLIENT_ENABLE | tfo::SERVER_ENABLE | tfo::SERVER_WO_SOCKOPT1;

fn tfo_syn(cookie: FastOpenCookie) -> Seg {
    Seg::syn(CISN).opts(&SynOptions { fastopen: Some(cookie), ..linux_syn_opts() })
}

#[test]
fn cookie_request_gets_a_cookie() {
    let mut b = Bench::with(|s| s.tcp_fastopen = TFO_ON);
    b.listen(16);
    let sa = b.syn_synack(tfo_syn(FastOpenCookie::request()));
    assert_eq!(sa.syn.fastopen, Some(tfo_cookie(CLIENT)));
    assert_eq!(sa.ack, CISN + 1);
    // Linux's layout: ..., nop,wscale 7, then kind 34 len 10 cookie, nop,nop.
    let n = sa.options.len();
    assert_eq!(&sa.options[n - 16..n - 12], &[1, 3, 3, 7]);
    assert_eq!(&sa.options[n - 12..n - 10], &[34, 10]);
    assert_eq!(&sa.options[n - 10..n - 2], tfo_cookie(CLIENT).as_bytes());
    assert_eq!(&sa.options[n - 2..], &[1, 1]);
    assert_eq!(b.counter(Counter::TcpFastOpenCookieReqd), 1);
    assert_eq!(b.request_socks(), 1);
}

#[test]
fn valid_cookie_with_data_makes_a_child_at_once() {
    let mut b = Bench::with(|s| s.tcp_fastopen = TFO_ON);
    let fd = b.listen(16);
    let sa = b.syn_synack(tfo_syn(tfo_cookie(CLIENT)).data(b"hello"));
    // The SYN-ACK acknowledges the data; no new cookie for a valid one.
    assert_eq!(sa.ack, CISN + 1 + 5);
    assert_eq!(sa.syn.fastopen, None);
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!(b.request_socks(), 0);
    let l = b.listener(fd);
    assert_eq!(l.fastopen_qlen(), 1);
    // accept() returns before the final ACK.
    let child = b.stack.accept(fd).expect("child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.bytes_received(), conn.rcv_nxt()), (5, CISN + 6));
    // The final ACK ends the handshake and frees the fast-open slot.
    let (tsval, _) = sa.ts().expect("ts");
    b.send(Seg::ack(CISN + 6, sa.seq + 1).ts(101, tsval));
    assert_eq!(l.fastopen_qlen(), 0);
}

/// tcp_try_fastopen: a valid cookie makes the child at once even when the
/// SYN carries no data (Linux 6.18: the application accepts it before the
/// final ACK, and may send in SYN_RECV).
#[test]
fn tcp_try_fastopen_valid_cookie_without_data_makes_a_child_at_once() {
    let mut b = Bench::with(|s| s.tcp_fastopen = TFO_ON);
    let fd = b.listen(16);
    let sa = b.syn_synack(tfo_syn(tfo_cookie(CLIENT)));
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(sa.syn.fastopen, None);
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 1);
    assert_eq!(b.request_socks(), 0);
    let l = b.listener(fd);
    assert_eq!(l.fastopen_qlen(), 1);
    let child = b.stack.accept(fd).expect("child before the final ACK");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.bytes_received(), conn.rcv_nxt()), (0, CISN + 1));
    let (tsval, _) = sa.ts().expect("ts");
    b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval));
    assert_eq!(l.fastopen_qlen(), 0);
}

#[test]
fn invalid_cookie_falls_back_to_the_handshake() {
    let mut b = Bench::with(|s| s.tcp_fastopen = TFO_ON);
    let fd = b.listen(16);
    let bogus = FastOpenCookie::new(&[1, 2, 3, 4, 5, 6, 7, 8]).expect("cookie");
    let sa = b.syn_synack(tfo_syn(bogus).data(b"hello"));
    // Data not acknowledged; a valid cookie offered for next time.
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(sa.syn.fastopen, Some(tfo_cookie(CLIENT)));
    assert_eq!(b.counter(Counter::TcpFastOpenPassiveFail), 1);
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 0);
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.stack.accept(fd), Err(Errno::Eagain));
    let (tsval, _) = sa.ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert!(b.stack.accept(fd).is_ok());
}

#[test]
fn full_fastopen_queue_falls_back_to_the_handshake() {
    let mut b = Bench::with(|s| s.tcp_fastopen = tfo::SERVER_ENABLE);
    let fd = b.listen_with(16, |st, fd| st.set_fastopen(fd, 1).expect("TCP_FASTOPEN"));
    b.syn_synack(tfo_syn(tfo_cookie(CLIENT)).data(b"one"));
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 1);
    let sa = b.syn_synack(tfo_syn(tfo_cookie(CLIENT)).data(b"two").port(41000));
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(b.counter(Counter::TcpFastOpenListenOverflow), 1);
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 1);
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.listener(fd).fastopen_qlen(), 1);
}

#[test]
fn tfo_disabled_is_a_plain_handshake() {
    // Linux's default tcp_fastopen = 1: client only.
    let mut b = Bench::linux();
    let fd = b.listen(16);
    let sa = b.syn_synack(tfo_syn(tfo_cookie(CLIENT)).data(b"hello"));
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(sa.syn.fastopen, None);
    let sa2 = b.syn_synack(tfo_syn(FastOpenCookie::request()).port(41000));
    assert_eq!(sa2.syn.fastopen, None);
    assert_eq!(b.counter(Counter::TcpFastOpenPassive), 0);
    assert_eq!(b.counter(Counter::TcpFastOpenPassiveFail), 0);
    assert_eq!(b.request_socks(), 2);
    assert_eq!(b.stack.accept(fd), Err(Errno::Eagain));
}
