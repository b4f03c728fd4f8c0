//! SYN -> SYN-ACK, the final ACK, and what a request sock or a listener
//! answers to everything else (Linux's tcp_conn_request, tcp_check_req and
//! tcp_rcv_state_process in LISTEN).

use super::*;
use crate::engine::errno::Errno;

fn be(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// `+0 < S 1000:1000(0) win 64240 <mss 1400,sackOK,TS val 100 ecr 0,nop,wscale 9>`
/// `+0 > S. isn:isn(0) ack 1001 win 65160 <mss 1460,sackOK,TS val now+off ecr 100,nop,wscale 7>`
#[test]
fn synack_answers_the_clients_options_in_linux_layout() {
    let mut b = Bench::linux();
    b.listen(128);
    let o = SynOptions { mss: Some(1400), wscale: Some(9), ..linux_syn_opts() };
    let sa = b.syn_synack(Seg::syn(CISN).opts(&o));
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!((sa.window, sa.payload_len), (65160, 0));
    assert_eq!((sa.src, sa.dst), (SocketAddrV4::new(SERVER, PORT), SocketAddrV4::new(CLIENT, CLIENT_PORT)));
    assert_eq!(sa.eth_dst, CLIENT_MAC);
    let tsval = (START.as_millis() as u32).wrapping_add(ts_off(CLIENT));
    let mut want = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    want.extend_from_slice(&be(tsval));
    want.extend_from_slice(&be(100));
    want.extend_from_slice(&[1, 3, 3, 7]);
    assert_eq!(sa.options, want);
    // ip_build_and_send_pkt for a listener: DF, ident 0, TTL 64, TOS 0.
    assert!(sa.df);
    assert_eq!((sa.ident, sa.ttl, sa.tos), (0, 64, 0));
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.counter(Counter::TcpOutSegs), 1);
    assert_eq!(b.counter(Counter::TcpInSegs), 1);
}

#[test]
fn synack_options_only_answer_what_was_offered() {
    let cases: [(SynOptions, Vec<u8>); 4] = [
        // No window scale: none back; SACK-permitted rides before TS.
        (SynOptions { wscale: None, ..linux_syn_opts() }, {
            let mut v = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
            v.extend_from_slice(&be(START.as_millis() as u32 + ts_off(CLIENT)));
            v.extend_from_slice(&be(100));
            v
        }),
        // No SACK: nop,nop,TS.
        (SynOptions { sack_permitted: false, ..linux_syn_opts() }, {
            let mut v = vec![2, 4, 0x05, 0xb4, 1, 1, 8, 10];
            v.extend_from_slice(&be(START.as_millis() as u32 + ts_off(CLIENT)));
            v.extend_from_slice(&be(100));
            v.extend_from_slice(&[1, 3, 3, 7]);
            v
        }),
        // No timestamps: nop,nop,sackOK.
        (SynOptions { timestamps: None, ..linux_syn_opts() }, vec![2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]),
        // MSS only (a small one): ours is announced whatever the client's.
        (SynOptions { mss: Some(536), ..SynOptions::default() }, vec![2, 4, 0x05, 0xb4]),
    ];
    for (i, (syn, want)) in cases.iter().enumerate() {
        let mut b = Bench::linux();
        b.listen(128);
        let sa = b.syn_synack(Seg::syn(CISN).opts(syn));
        assert_eq!(&sa.options, want, "case {i}");
    }
}

#[test]
fn syn_without_options_gets_mss_536_for_the_connection() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(Seg::new(TcpFlags::SYN, CISN, 0));
    // We still announce ours.
    assert_eq!(sa.options, vec![2, 4, 0x05, 0xb4]);
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1)).is_empty());
    let child = b.stack.accept(fd).expect("a child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("the connection");
    assert_eq!(conn.mss(), 536);
    assert_eq!((conn.snd_wscale(), conn.sack(), conn.ts(), conn.ecn()), (None, false, None, false));
}

#[test]
fn ecn_setup_syn_gets_ece_unless_the_ip_header_is_ect() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN).with_flags(TcpFlags::ECE | TcpFlags::CWR));
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE);
    // ECE alone is not an ECN-setup SYN (RFC 3168 6.1.1).
    let sa = b.syn_synack(Seg::syn(CISN).port(40001).with_flags(TcpFlags::ECE));
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
    // Linux's tcp_ecn_create_request: an ECT-marked SYN is not trusted.
    let mut s = Seg::syn(CISN).port(40002).with_flags(TcpFlags::ECE | TcpFlags::CWR);
    s.ip_ecn = 2;
    let sa = b.syn_synack(s);
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
}

#[test]
fn right_ack_completes_and_accept_returns_the_child() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let l = b.listener(fd);
    let sa = b.syn_synack(Seg::syn(CISN));
    assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young()), (1, 1));
    assert_eq!(b.stack.accept(fd), Err(Errno::Eagain));
    let (tsval, _) = sa.ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!((l.reqsk_queue_len(), l.reqsk_queue_len_young(), b.request_socks()), (0, 0, 0));
    assert_eq!(l.sk_ack_backlog(), 1);
    let child = b.stack.accept(fd).expect("child");
    assert_eq!(child.peer, SocketAddrV4::new(CLIENT, CLIENT_PORT).into());
    assert_eq!(child.local, SocketAddrV4::new(SERVER, PORT).into());
    assert_eq!(child.worker, 0);
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.snd_nxt(), conn.rcv_nxt()), (sa.seq + 1, CISN + 1));
    assert_eq!((conn.mss(), conn.snd_wscale(), conn.rcv_wscale(), conn.sack()), (1460, Some(7), 7, true));
    assert_eq!(conn.ts(), Some((101, ts_off(CLIENT))));
    assert_eq!(l.sk_ack_backlog(), 0);
}

#[test]
fn wrong_ack_gets_rst_and_the_request_stays() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let bad = sa.seq.wrapping_add(7);
    let out = b.send(Seg::ack(CISN + 1, bad));
    assert_eq!(out.len(), 1);
    // tcp_v4_send_reset for an ACK: RST, seq = its ack, no ACK flag.
    assert_eq!((out[0].flags, out[0].seq, out[0].ack, out[0].window), (TcpFlags::RST, bad, 0, 0));
    assert!(out[0].options.is_empty());
    assert_eq!(b.counter(Counter::TcpOutRsts), 1);
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len()), (1, 1));
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
    // The right ACK still completes.
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
}

#[test]
fn ack_with_data_completes_and_keeps_the_data() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).data(b"GET / HTTP/1.0\r\n\r\n"));
    // Linux: the first data segment enters quick-ACK mode (tcp_event_data_recv
    // -> tcp_incr_quickack), so the data is acknowledged at once.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].ack, out[0].payload_len), (CISN + 1 + 18, 0), "{out:?}");
    let child = b.stack.accept(fd).expect("child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!(conn.bytes_received(), 18);
    assert_eq!(conn.rcv_nxt(), CISN + 1 + 18);
}

/// Linux's tcp_check_req: a retransmitted SYN gets the same SYN-ACK again,
/// at most one per 500 ms (tcp_oow_rate_limited, last_oow_ack_time).
#[test]
fn retransmitted_syn_resends_the_synack_rate_limited() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    b.advance(ms(10));
    let again = b.send(Seg::syn(CISN));
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].flags, again[0].seq, again[0].ack), (sa.flags, sa.seq, CISN + 1));
    assert_eq!(again[0].syn.mss, Some(1460));
    assert_eq!(again[0].ts().map(|t| t.0), Some(START.as_millis() as u32 + 10 + ts_off(CLIENT)));
    assert_eq!(b.counter(Counter::TcpSynRetrans), 1);
    b.advance(ms(100));
    assert!(b.send(Seg::syn(CISN)).is_empty(), "within 500 ms of the last answer");
    b.advance(ms(400));
    assert_eq!(b.send(Seg::syn(CISN)).len(), 1);
    assert_eq!(b.counter(Counter::TcpSynRetrans), 2);
    assert_eq!(b.request_socks(), 1);
}

#[test]
fn rst_at_rcv_nxt_removes_the_request_silently() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    assert!(b.send(Seg::rst(CISN + 1)).is_empty());
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len(), b.listener(fd).reqsk_queue_len_young()), (0, 0, 0));
    assert_eq!(b.counter(Counter::EmbryonicRsts), 1);
    assert_eq!(b.counter(Counter::TcpAttemptFails), 1);
    assert_eq!(b.counter(Counter::TcpOutRsts), 0);
}

/// RFC 5961 3.2 in `tcp_check_req` (Linux 6.18, seen on the live kernel):
/// an in-window RST not at rcv_nxt gets a challenge ACK (seq ISN + 1, ack
/// rcv_nxt, timestamps), a second within tcp_invalid_ratelimit is skipped,
/// and the request survives: the correct ACK completes the handshake.
#[test]
fn tcp_check_req_answers_an_inexact_rst_with_a_challenge_ack() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN).ts(100, 0));
    let out = b.send(Seg::rst(CISN + 1 + 100));
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!((a.flags, a.seq, a.ack), (TcpFlags::ACK, sa.seq + 1, CISN + 1));
    assert_eq!(a.options, ts_opt_bytes(START.as_millis() as u32 + ts_off(CLIENT), 100));
    b.advance(ms(300));
    assert!(b.send(Seg::rst(CISN + 1 + 200)).is_empty());
    assert_eq!(b.counter(Counter::TcpChallengeAck), 1);
    assert_eq!(b.counter(Counter::TcpAckSkippedChallenge), 1);
    assert_eq!((b.counter(Counter::EmbryonicRsts), b.request_socks()), (0, 1));
    let (tsval, _) = sa.ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert_eq!(b.listener(fd).sk_ack_backlog(), 1);
}

#[test]
fn rst_out_of_window_is_ignored() {
    let mut b = Bench::linux();
    b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    assert!(b.send(Seg::rst(CISN + 1 + 100_000)).is_empty());
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.counter(Counter::EmbryonicRsts), 0);
}

#[test]
fn syn_with_another_seq_in_window_is_an_embryonic_reset() {
    let mut b = Bench::linux();
    b.listen(128);
    b.syn_synack(Seg::syn(CISN));
    let out = b.send(Seg::new(TcpFlags::SYN, CISN + 100, 0));
    assert_eq!(out.len(), 1);
    // No ACK on the offending segment: RST|ACK, seq 0, ack = seq + 1.
    assert_eq!((out[0].flags, out[0].seq, out[0].ack), (TcpFlags::RST | TcpFlags::ACK, 0, CISN + 101));
    assert_eq!(b.request_socks(), 0);
    assert_eq!(b.counter(Counter::EmbryonicRsts), 1);
    assert_eq!(b.counter(Counter::TcpAttemptFails), 1);
}

/// RFC 9293 3.10.7.4: an unacceptable segment gets an ACK (Linux:
/// tcp_v4_reqsk_send_ack, rate limited like the SYN-ACK above).
#[test]
fn out_of_window_ack_gets_a_rate_limited_ack() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let oow = Seg::ack(CISN + 1 + 200_000, sa.seq + 1).ts(101, tsval);
    let out = b.send(oow.clone());
    assert_eq!(out.len(), 1);
    let a = &out[0];
    assert_eq!((a.flags, a.seq, a.ack), (TcpFlags::ACK, sa.seq + 1, CISN + 1));
    // 65160 >> our wscale 7.
    assert_eq!(a.window, 509);
    assert_eq!(a.options, ts_opt_bytes(START.as_millis() as u32 + ts_off(CLIENT), 100));
    assert!(b.send(oow.clone()).is_empty());
    b.advance(ms(500));
    assert_eq!(b.send(oow).len(), 1);
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
}

/// Linux's tcp_oow_rate_limited does not limit data segments without SYN.
#[test]
fn out_of_window_data_is_acked_every_time() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let oow = Seg::ack(CISN + 1 + 200_000, sa.seq + 1).ts(101, tsval).data(b"x");
    for _ in 0..3 {
        let out = b.send(oow.clone());
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].flags, out[0].ack), (TcpFlags::ACK, CISN + 1));
    }
    assert_eq!(b.request_socks(), 1);
}

/// PAWS (RFC 7323 5.3) on a request: a TSval older than the SYN's is answered
/// with an ACK and does not complete the handshake.
#[test]
fn paws_rejects_an_old_timestamp() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(99, tsval));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, TcpFlags::ACK);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(100, tsval)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
}

#[test]
fn listener_ignores_rst_and_bare_fin() {
    let mut b = Bench::linux();
    b.listen(128);
    assert!(b.send(Seg::rst(5)).is_empty());
    assert!(b.send(Seg::new(TcpFlags::FIN, 5, 0)).is_empty());
    assert!(b.send(Seg::new(TcpFlags::empty(), 5, 0)).is_empty());
    assert_eq!(b.counter(Counter::TcpOutSegs), 0);
    assert_eq!(b.request_socks(), 0);
}

#[test]
fn listener_answers_a_stray_ack_and_synack_with_rst() {
    let mut b = Bench::linux();
    b.listen(128);
    // No request, no cookie sent lately: not even checked as a cookie.
    let out = b.send(Seg::ack(5, 77_777));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq, out[0].ack), (TcpFlags::RST, 77_777, 0));
    assert_eq!(b.counter(Counter::SyncookiesFailed), 0);
    let out = b.send(Seg::new(TcpFlags::SYN | TcpFlags::ACK, 5, 88_888));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq), (TcpFlags::RST, 88_888));
    assert_eq!(b.counter(Counter::TcpOutRsts), 2);
    assert_eq!(b.request_socks(), 0);
}

#[test]
fn syn_to_a_closed_port_gets_rst_ack() {
    let mut b = Bench::linux();
    b.listen(128);
    let out = b.send(Seg::syn(CISN).dport(81));
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!((r.flags, r.seq, r.ack, r.window), (TcpFlags::RST | TcpFlags::ACK, 0, CISN + 1, 0));
    assert_eq!(r.src, SocketAddrV4::new(SERVER, 81));
    assert_eq!(b.counter(Counter::TcpSynNoListener), 1);
    assert_eq!(b.request_socks(), 0);
}

/// tcp_rcv_state_process in TCP_LISTEN: a SYN with FIN is discarded
/// silently (no SYN-ACK, no request), while the same segment to a closed
/// port gets RST|ACK (see the host tests).
#[test]
fn listener_discards_syn_fin() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    assert!(b.send(Seg::new(TcpFlags::SYN | TcpFlags::FIN, CISN, 0)).is_empty());
    assert!(b.send(Seg::new(TcpFlags::SYN | TcpFlags::RST, CISN, 0)).is_empty());
    assert_eq!((b.request_socks(), b.listener(fd).reqsk_queue_len()), (0, 0));
    assert_eq!((b.counter(Counter::TcpOutRsts), b.counter(Counter::TcpInErrs)), (0, 0));
    b.syn_synack(Seg::syn(CISN));
}

/// `tcp_v4_save_options` + `ip_build_and_send_pkt`: a SYN with record
/// route gets a SYN-ACK that carries it back with our address twice (the
/// input hop and the output hop), and so does its retransmission; NOPs are
/// not echoed; nothing is kept once the handshake completes.
#[test]
fn synack_echoes_record_route_as_ip_options_echo() {
    let mut b = Bench::linux();
    b.listen(128);
    let rr = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let sa = b.syn_synack(Seg::syn(CISN).ip_options(&rr));
    let s = SERVER.octets();
    let expect = [7, 11, 12, s[0], s[1], s[2], s[3], s[0], s[1], s[2], s[3], 0];
    assert_eq!(sa.ip_options, expect);
    assert_eq!(sa.syn.mss, Some(1460));
    b.advance(secs(1));
    let rtx = b.take_out();
    assert_eq!(rtx.len(), 1);
    assert_eq!(rtx[0].ip_options, expect);
    let (tsval, _) = rtx[0].ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    assert!(b.workers[0].engine.ip_echo_is_empty());
    // NOPs only: a plain SYN-ACK.
    let sa = b.syn_synack(Seg::syn(CISN).port(41001).ip_options(&[1, 1, 1, 1]));
    assert!(sa.ip_options.is_empty());
}

/// The same echo on a cookie SYN-ACK, and none kept afterwards.
#[test]
fn cookie_synack_echoes_record_route() {
    let mut b = Bench::with(|s| s.tcp_syncookies = 2);
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN).ip_options(&[7, 7, 4, 0, 0, 0, 0, 1]));
    let s = SERVER.octets();
    // The NOP after it is not echoed: END pads the block.
    assert_eq!(sa.ip_options, [7, 7, 8, s[0], s[1], s[2], s[3], 0]);
    assert!(b.workers[0].engine.ip_echo_is_empty());
}

/// `tcp_openreq_init_rwin`: the SYN-ACK window is the receive space
/// rounded down to MSS segments less the timestamp option when timestamps
/// are on: 65160 (45 x 1448) with them, 64240 (44 x 1460) without.
#[test]
fn synack_window_is_whole_segments_of_the_mss_in_use() {
    let mut b = Bench::linux();
    b.listen(128);
    assert_eq!(b.syn_synack(Seg::syn(CISN)).window, 65160);
    let no_ts = SynOptions { timestamps: None, ..linux_syn_opts() };
    assert_eq!(b.syn_synack(Seg::syn(CISN).port(41001).opts(&no_ts)).window, 64240);
    let mut c = Bench::with(|s| s.tcp_syncookies = 2);
    c.listen(128);
    assert_eq!(c.syn_synack(Seg::syn(CISN).opts(&no_ts)).window, 64240);
}

/// `tcp_check_req` (Linux 6.18): a final ACK whose TSecr is none of the
/// TSvals our SYN-ACKs carried is answered like an out-of-window segment
/// and counted (TSEcrRejected); the request stays and the right ACK
/// completes it.
#[test]
fn tcp_check_req_rejects_a_tsecr_we_never_sent() {
    let mut b = Bench::linux();
    b.listen(128);
    let sa = b.syn_synack(Seg::syn(CISN));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval + 100_000));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq, out[0].ack), (TcpFlags::ACK, sa.seq + 1, CISN + 1));
    assert_eq!((b.counter(Counter::TsEcrRejected), b.counter(Counter::TcpPassiveOpens)), (1, 0));
    assert_eq!(b.request_socks(), 1);
    // A retransmitted SYN-ACK widens the range to its TSval.
    b.advance(secs(1));
    let rtx = b.take_out();
    let (tsval2, _) = rtx[0].ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(102, tsval2)).is_empty());
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
}
