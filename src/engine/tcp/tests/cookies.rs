//! SYN cookies end to end: no request sock, the connection rebuilt from the
//! returning ACK (cookie_v4_check), the 2-minute overflow gate.

use super::*;
use crate::engine::keys::syncookie;

/// A cookie SYN-ACK for `syn`, then the client's ACK (echoing our TSval
/// when there is one). Returns the bench's answer to the ACK and the SYN-ACK.
fn cookie_round(b: &mut Bench, syn: Seg) -> (Out, Vec<Out>) {
    let port = syn.src.port();
    let sa = b.syn_synack(syn);
    let ack = match sa.ts() {
        Some((tsval, _)) => Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval),
        None => Seg::ack(CISN + 1, sa.seq + 1),
    };
    let out = b.send(ack.port(port));
    (sa, out)
}

#[test]
fn cookie_ack_builds_the_connection_with_options_from_the_timestamp() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    let fd = b.listen(128);
    let syn = Seg::syn(CISN).opts(&SynOptions { mss: Some(1400), ..linux_syn_opts() }).with_flags(TcpFlags::ECE | TcpFlags::CWR);
    let (sa, out) = cookie_round(&mut b, syn);
    assert!(out.is_empty(), "{out:?}");
    // The SYN-ACK: the cookie is our ISN, MSS ours, ECE kept (timestamps carry it).
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
    let (cookie, mss) = syncookie::make(&secrets().syncookie, &client_flow(), CISN, 1400, syncookie::counter(START));
    assert_eq!((sa.seq, mss), (cookie, 1300));
    let (tsval, tsecr) = sa.ts().expect("ts");
    assert_eq!(tsecr, 100);
    let bits = tsval.wrapping_sub(ts_off(CLIENT));
    assert_eq!(bits, syncookie::encode_ts(START.as_millis() as u32, Some(7), true, true));
    assert_eq!(b.counter(Counter::SyncookiesSent), 1);
    assert_eq!(b.counter(Counter::SyncookiesRecv), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!(b.request_socks(), 0);
    let child = b.stack.accept(fd).expect("child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    // MSS from the table: 1400 -> 1300.
    assert_eq!(conn.mss(), 1300);
    assert_eq!((conn.snd_wscale(), conn.sack(), conn.ecn()), (Some(7), true, true));
    assert_eq!(conn.ts(), Some((101, ts_off(CLIENT))));
    assert_eq!((conn.snd_nxt(), conn.rcv_nxt()), (cookie + 1, CISN + 1));
}

#[test]
fn cookie_without_timestamps_loses_wscale_sack_and_ecn() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    let fd = b.listen(128);
    let o = SynOptions { timestamps: None, mss: Some(1460), ..linux_syn_opts() };
    let (sa, out) = cookie_round(&mut b, Seg::syn(CISN).opts(&o).with_flags(TcpFlags::ECE | TcpFlags::CWR));
    assert!(out.is_empty());
    // tcp_clear_options: only the MSS is answered, no ECE.
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(sa.options, vec![2, 4, 0x05, 0xb4]);
    let child = b.stack.accept(fd).expect("child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.mss(), conn.snd_wscale(), conn.sack(), conn.ecn(), conn.ts()), (1460, None, false, false, None));
}

#[test]
fn bad_cookie_is_counted_and_reset() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 2).ts(101, tsval));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq), (TcpFlags::RST, sa.seq + 2));
    assert_eq!(b.counter(Counter::SyncookiesFailed), 1);
    assert_eq!(b.counter(Counter::SyncookiesRecv), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
    // Another client's ISN with that cookie fails too.
    let out = b.send(Seg::ack(CISN + 2, sa.seq + 1).ts(101, tsval));
    assert_eq!(out[0].flags, TcpFlags::RST);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 2);
}

#[test]
fn cookie_is_valid_in_the_next_minute_too() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    // START is at 1000 s = minute 16 + 40 s: 79 s later is minute 17.
    b.advance(secs(79));
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.counter(Counter::SyncookiesRecv), 1);
}

#[test]
fn cookie_older_than_two_counter_steps_fails() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    // A cookie sent 2.5 minutes later keeps the listener's overflow stamp
    // fresh, so the old ACK is checked, and fails by age (minute 16 vs 19).
    b.advance(secs(150));
    b.syn_synack(Seg::syn(CISN).port(41000));
    b.advance(secs(30));
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, TcpFlags::RST);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 1);
}

/// tcp_synq_no_recent_overflow: more than 2 minutes after the last cookie,
/// an ACK is not even tried as a cookie.
#[test]
fn no_recent_overflow_means_no_cookie_check() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    b.advance(secs(180));
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, TcpFlags::RST);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 0);
    assert_eq!(b.counter(Counter::SyncookiesRecv), 0);
}

/// With cookies on (1) but no overflow yet, a valid-looking ACK is reset
/// without a cookie check.
#[test]
fn ack_without_any_overflow_is_reset_unchecked() {
    let mut b = Bench::linux();
    b.listen(128);
    let (cookie, _) = syncookie::make(&secrets().syncookie, &client_flow(), CISN, 1460, syncookie::counter(START));
    let out = b.send(Seg::ack(CISN + 1, cookie + 1));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, TcpFlags::RST);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
}

/// A cookie ACK that finds the accept queue full is dropped silently (the
/// client retransmits it).
#[test]
fn cookie_ack_on_full_accept_queue_is_dropped() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    let fd = b.listen(0);
    // backlog 0: one child fits (0 + 1). Both SYNs come before either ACK.
    let sa1 = b.syn_synack(Seg::syn(CISN).port(41000));
    let sa2 = b.syn_synack(Seg::syn(CISN).port(41001));
    for (sa, port) in [(sa1, 41000), (sa2, 41001)] {
        let (tsval, _) = sa.ts().expect("ts");
        assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).port(port)).is_empty());
    }
    assert_eq!(b.counter(Counter::SyncookiesRecv), 2);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!(b.counter(Counter::ListenOverflows), 1);
    assert_eq!(b.listener(fd).sk_ack_backlog(), 1);
}
