//! Sysctls changed while serving (SIGHUP, `dlisten set`): the stack holds
//! the new values at once, a worker's engine takes them between bursts
//! (when the generation it last saw has moved), never in the middle of one.

use super::*;

#[test]
fn a_sysctl_change_lands_between_bursts() {
    let mut b = Bench::linux();
    b.listen(128);
    b.syn_synack(Seg::syn(CISN).port(41000));
    assert_eq!((b.request_socks(), b.counter(Counter::SyncookiesSent)), (1, 0));

    // Written to the stack, not yet picked up: the engine's copy still rules.
    let mut s = *b.stack.sysctls();
    s.tcp_syncookies = 2;
    b.stack.set_sysctls(s);
    b.syn_synack(Seg::syn(CISN).port(41001));
    assert_eq!((b.request_socks(), b.counter(Counter::SyncookiesSent)), (2, 0));

    // Between bursts: picked up once, then nothing to do.
    assert!(b.workers[0].engine.refresh_sysctls_if_changed());
    assert!(!b.workers[0].engine.refresh_sysctls_if_changed());
    b.syn_synack(Seg::syn(CISN).port(41002));
    assert_eq!((b.request_socks(), b.counter(Counter::SyncookiesSent)), (2, 1), "syncookies=2: a cookie");
}

#[test]
fn new_tfo_keys_reach_every_worker() {
    let mut b = Bench::linux();
    let before = b.workers[0].engine.tfo_keys();
    let keys = crate::engine::keys::fastopen::TfoKeys::parse_linux("00112233-44556677-8899aabb-ccddeeff").unwrap();
    assert_ne!(before, keys);
    b.stack.set_tfo_keys(keys);
    b.advance(ms(1));
    assert_eq!(b.workers[0].engine.tfo_keys(), keys);
}
