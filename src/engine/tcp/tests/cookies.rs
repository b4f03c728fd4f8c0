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

/// The keys of a fleet's key file, for [`fleet_server`].
fn fleet_keys() -> crate::engine::keys::FleetKeys {
    use crate::engine::keys::SipKey;
    crate::engine::keys::FleetKeys {
        syncookie: SipKey::from_bytes(*b"fleet-cookie-key"),
        syncookie_previous: None,
        timestamp: SipKey::from_bytes(*b"fleet-tsoff--key"),
        fastopen: None,
    }
}

/// UTC (ms) of the moment both fleet servers of a test take a segment.
const FLEET_UTC_MS: u64 = 1_764_806_400_000 + 45_000;

/// A server of a fleet that started `uptime` before [`FLEET_UTC_MS`]: its
/// engine clock reads `uptime` then. `keys`: the fleet's key file, or only a
/// shared `--syncookie-key` (the Linux rules).
fn fleet_server(uptime: Duration, syncookies: u8, keys: Option<crate::engine::keys::FleetKeys>) -> Bench {
    let mut b = Bench::with(|s| s.tcp_syncookies = syncookies);
    b.now = crate::engine::time::Instant::ZERO + uptime;
    b.tcp_config(|c| c.utc_ms_at_zero = FLEET_UTC_MS - uptime.as_millis() as u64);
    let fleet = fleet_keys();
    for w in &mut b.workers {
        w.engine.with_secrets(|s| match keys {
            Some(k) => k.apply(s),
            None => s.syncookie = syncookie::SyncookieKeys::new(fleet.syncookie),
        });
    }
    b
}

/// A cookie SYN-ACK from server `a`; the client's ACK (echoing its TSval)
/// reaches server `b` 3 ms later. Returns the SYN-ACK and `b`'s answer.
fn cookie_to_other_server(a: &mut Bench, b: &mut Bench) -> (Out, Vec<Out>) {
    let syn = Seg::syn(CISN).opts(&SynOptions { mss: Some(1400), ..linux_syn_opts() });
    let sa = a.syn_synack(syn);
    assert_eq!(a.counter(Counter::SyncookiesSent), 1);
    let (tsval, _) = sa.ts().expect("ts");
    b.advance(ms(3));
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval));
    (sa, out)
}

/// An ECMP change moves a client from server A to B between its SYN and its
/// ACK. B shares A's key file, has never sent a cookie, started at another
/// time (another engine clock): it builds the connection from A's cookie.
#[test]
fn fleet_server_accepts_a_cookie_another_server_made() {
    let keys = Some(fleet_keys());
    // Uptimes on either side of minute boundaries: engine-time counters differ.
    let mut a = fleet_server(secs(3 * 60 + 50), 2, keys);
    let mut b = fleet_server(secs(17 * 60 + 5) + ms(321), 1, keys);
    let fd = b.listen(128);
    a.listen(128);
    let (sa, out) = cookie_to_other_server(&mut a, &mut b);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(b.counter(Counter::SyncookiesRecv), 1);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    let child = b.stack.accept(fd).expect("child");
    let conn = b.workers[0].engine.connections().get(child.conn_id).expect("conn");
    // Everything A's SYN-ACK promised: MSS 1400 -> 1300, the client's
    // wscale and SACK from the timestamp bits.
    assert_eq!((conn.mss(), conn.snd_wscale(), conn.sack()), (1300, Some(7), true));
    assert_eq!((conn.snd_nxt(), conn.rcv_nxt()), (sa.seq + 1, CISN + 1));
    // B's TSvals run on the same clock as A's: not behind the SYN-ACK's
    // (the client's PAWS check would drop them).
    let (recent, off) = conn.ts().expect("ts");
    assert_eq!(recent, 101);
    let b_tsval = (b.now.as_millis() as u32).wrapping_add(off);
    let ahead = b_tsval.wrapping_sub(sa.ts().expect("ts").0) as i32;
    // (A cookie TSval is up to 127 ms behind its clock: cookie_init_timestamp.)
    assert!((3..=3 + 127).contains(&ahead), "B's TSval {ahead} ms after A's");
}

/// The same move with only a shared --syncookie-key: B sent no cookie in the
/// last 2 minutes, so (tcp_synq_no_recent_overflow) it does not look at the
/// ACK and answers RST, as Linux does.
#[test]
fn without_fleet_keys_another_servers_cookie_is_reset() {
    let mut a = fleet_server(secs(3 * 60 + 50), 2, None);
    let mut b = fleet_server(secs(3 * 60 + 50), 1, None);
    a.listen(128);
    b.listen(128);
    let (sa, out) = cookie_to_other_server(&mut a, &mut b);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].flags, out[0].seq), (TcpFlags::RST, sa.seq + 1));
    assert_eq!(b.counter(Counter::SyncookiesRecv) + b.counter(Counter::SyncookiesFailed), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
}

/// Fleet keys still check the cookie: a forged one fails (and gets RST),
/// and so does a cookie made under another fleet's key.
#[test]
fn fleet_server_still_rejects_bad_cookies() {
    let keys = fleet_keys();
    let mut a = fleet_server(secs(100), 2, Some(crate::engine::keys::FleetKeys { syncookie: secrets().isn, ..keys }));
    let mut b = fleet_server(secs(900), 1, Some(keys));
    a.listen(128);
    b.listen(128);
    let (_, out) = cookie_to_other_server(&mut a, &mut b);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, TcpFlags::RST);
    assert_eq!(b.counter(Counter::SyncookiesFailed), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
}

/// A changed key file reaches running workers as a command: before it, the
/// other server's cookie is reset; after it, it makes a connection.
#[test]
fn fleet_keys_taken_at_run_time() {
    let mut a = fleet_server(secs(100), 2, Some(fleet_keys()));
    let mut b = fleet_server(secs(900), 1, None);
    a.listen(128);
    b.listen(128);
    let (_, out) = cookie_to_other_server(&mut a, &mut b);
    assert_eq!(out[0].flags, TcpFlags::RST);
    b.stack.set_fleet_keys(fleet_keys());
    b.advance(ms(1));
    let sa = a.syn_synack(Seg::syn(CISN).port(41000));
    let (tsval, _) = sa.ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).port(41000)).is_empty());
    assert_eq!(b.counter(Counter::SyncookiesRecv), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
}

/// Fleet clocks differ by a little (NTP): a cookie minted by a server whose
/// minute just turned (here 0.5 s in) is still good on a server whose minute
/// turns within a second (here 10 ms later), and fails on one whose clock is
/// 2 s behind.
#[test]
fn fleet_cookie_from_a_server_slightly_ahead_across_a_minute() {
    for (behind, accepted) in [(ms(10), true), (secs(2), false)] {
        let keys = Some(fleet_keys());
        // FLEET_UTC_MS is 45 s into a minute; the boundary is 15 s later.
        let boundary = FLEET_UTC_MS + 15_000;
        let mut a = fleet_server(secs(100), 2, keys);
        a.tcp_config(|c| c.utc_ms_at_zero = boundary + 500 - 100_000);
        let mut b = fleet_server(secs(900), 1, keys);
        // The ACK reaches B 3 ms after it left A (`cookie_to_other_server`).
        b.tcp_config(|c| c.utc_ms_at_zero = boundary - behind.as_millis() as u64 - 3 - 900_000);
        for w in a.workers.iter_mut().chain(b.workers.iter_mut()) {
            w.engine.with_secrets(|s| fleet_keys().apply(s));
        }
        a.listen(128);
        b.listen(128);
        let (_, out) = cookie_to_other_server(&mut a, &mut b);
        assert_eq!(out.is_empty(), accepted, "B {behind:?} before its minute: {out:?}");
        assert_eq!(b.counter(Counter::SyncookiesRecv), u64::from(accepted), "{behind:?}");
    }
}
