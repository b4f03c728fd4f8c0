//! SYN-ACK retransmission (Linux's reqsk_timer_handler): 1 s doubling,
//! tcp_synack_retries times, then the request dies; old requests get fewer
//! retries when the queue is more than half full.

use super::*;

/// Offsets from START (ms) of the SYN-ACKs sent for `port`.
fn synack_times(out: &[Out], port: u16) -> Vec<u64> {
    out.iter()
        .filter(|o| o.dst.port() == port && o.flags.contains(TcpFlags::SYN | TcpFlags::ACK))
        .map(|o| (o.at - START).as_millis() as u64)
        .collect()
}

#[test]
fn synack_retransmits_at_1_3_7_15_31_and_the_request_dies_at_63() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    b.advance_to(ms(62_999));
    let out = b.take_out();
    assert_eq!(synack_times(&out, CLIENT_PORT), vec![1_000, 3_000, 7_000, 15_000, 31_000]);
    for o in &out {
        // Same ISN, same ack; the TSval follows the clock.
        assert_eq!((o.seq, o.ack, o.syn.mss, o.syn.wscale), (sa.seq, CISN + 1, Some(1460), Some(7)));
        let since = (o.at - START).as_millis() as u32;
        assert_eq!(o.ts(), Some((START.as_millis() as u32 + since + ts_off(CLIENT), 100)));
    }
    assert_eq!(b.counter(Counter::TcpSynRetrans), 5);
    assert_eq!(b.request_socks(), 1);
    // After the first timeout the request is no longer young.
    assert_eq!((b.listener(fd).reqsk_queue_len(), b.listener(fd).reqsk_queue_len_young()), (1, 0));
    assert_eq!(b.counter(Counter::TcpReqTimeouts), 0);
    b.advance(ms(1));
    assert!(b.take_out().is_empty(), "the request dies without a last SYN-ACK");
    assert_eq!(b.request_socks(), 0);
    assert_eq!(b.counter(Counter::TcpReqTimeouts), 1);
    assert_eq!(b.listener(fd).reqsk_queue_len(), 0);
    // Its ACK now finds no request and no cookie: RST.
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, TcpFlags::RST);
}

#[test]
fn synack_retries_2_sends_at_1_3_and_dies_at_7() {
    let mut b = Bench::with(|s| s.tcp_synack_retries = 2);
    b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    b.advance_to(ms(6_999));
    assert_eq!(synack_times(&b.take_out(), CLIENT_PORT), vec![1_000, 3_000]);
    assert_eq!(b.request_socks(), 1);
    b.advance(ms(1));
    assert_eq!(b.request_socks(), 0);
    assert_eq!(b.counter(Counter::TcpReqTimeouts), 1);
    assert_eq!(b.counter(Counter::TcpSynRetrans), 2);
}

/// The scenario from reqsk_timer_handler's formula, backlog 16:
/// - t=0: 9 SYNs; at t=1 s each times out once (qlen 9: 18 > max(8, 16), but
///   young*2 = 18 > 9 keeps 5 retries) and is old from then on;
/// - t=1.5 s: one more SYN: qlen 10, young 1.
/// - From then on, for each timer: qlen 10, young*2 <= 2 so the loop
///   `while (max > 2) { if (qlen < young) break; max--; young <<= 1; }`
///   runs down to 2 retries: the 9 old requests send their second
///   retransmission at 3 s and at 7 s expire instead of retransmitting,
///   until qlen*2 is no longer above 16 (the formula is evaluated per
///   timer, on the current qlen). The young one ages at 2.5 s and
///   retransmits at 2.5, 4.5 (num_timeout 1 < 2) and 8.5 s.
#[test]
fn old_requests_get_fewer_retries_when_the_queue_is_half_full() {
    for backlog in [16, 128] {
        let mut b = Bench::linux();
        let fd = b.listen(backlog);
        let l = b.listener(fd);
        for i in 0..9 {
            b.syn_synack(Seg::syn(CISN).port(41000 + i));
        }
        b.advance_to(ms(1_500));
        let mut out = b.take_out();
        assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (9, 0));
        b.syn_synack(Seg::syn(CISN).port(42000));
        assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (10, 1));
        b.advance_to(ms(6_999));
        assert_eq!(b.request_socks(), 10);
        out.extend(b.take_out());
        assert_eq!(synack_times(&out, 41000), vec![1_000, 3_000]);
        assert_eq!(synack_times(&out, 42000), vec![2_500, 4_500]);
        b.advance_to(ms(7_000));
        let out7 = b.take_out();
        if backlog == 16 {
            // Pruned: old requests expire while qlen*2 > 16: the first two
            // to fire die (qlen 10, then 9), the other seven see qlen 8
            // (16 > 16 is false: no pruning, 5 retries) and retransmit.
            assert_eq!(out7.len(), 7, "{out7:?}");
            assert_eq!(b.request_socks(), 8);
            assert_eq!(b.counter(Counter::TcpReqTimeouts), 2);
            assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (8, 0));
        } else {
            // max(8, 128) = 128 >= 20: no pruning, 5 retries for everyone.
            assert_eq!(out7.len(), 9);
            assert_eq!(b.request_socks(), 10);
            assert_eq!(b.counter(Counter::TcpReqTimeouts), 0);
        }
        b.advance_to(ms(8_500));
        assert_eq!(synack_times(&b.take_out(), 42000), vec![8_500]);
        // 1 s and 3 s: 9 + 9; the young one at 2.5, 4.5 and 8.5 s: 3; at 7 s: 7 or 9.
        let retrans = 9 + 9 + 3 + if backlog == 16 { 7 } else { 9 };
        assert_eq!(b.counter(Counter::TcpSynRetrans), retrans, "backlog {backlog}");
    }
}

/// A retransmitted SYN does not age a request (num_timeout counts timer
/// expiries only), but its SYN-ACK counts as a retransmission.
#[test]
fn syn_driven_resend_keeps_the_request_young() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    b.advance(ms(100));
    assert_eq!(b.send(Seg::syn(CISN)).len(), 1);
    assert_eq!(b.listener(fd).reqsk_queue_len_young(), 1);
    // The timer still fires at 1 s from the first SYN.
    b.advance_to(ms(1_000));
    let out = b.take_out();
    assert_eq!(synack_times(&out, CLIENT_PORT), vec![1_000]);
    assert_eq!(b.listener(fd).reqsk_queue_len_young(), 0);
}
