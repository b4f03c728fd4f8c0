//! SO_REUSEPORT groups: SYNs spread by flow hash; requests of a closed
//! member migrate (tcp_migrate_req) or are reset.

use super::*;
use crate::engine::socket::Fd;

fn two_members(b: &mut Bench) -> (Fd, Fd) {
    let a = b.listen_with(16, |st, fd| st.set_reuseport(fd, true).expect("SO_REUSEPORT"));
    let c = b.listen_with(16, |st, fd| st.set_reuseport(fd, true).expect("SO_REUSEPORT"));
    (a, c)
}

/// The member a SYN with RSS hash `h` reaches (reciprocal_scale(h, 2)).
fn member_for(b: &Bench, h: u32) -> u64 {
    b.stack.lookup(0, SERVER, PORT, h).expect("a member").id
}

#[test]
fn syns_spread_over_the_group_by_flow_hash() {
    let mut b = Bench::linux();
    let (fa, fc) = two_members(&mut b);
    let (la, lc) = (b.listener(fa), b.listener(fc));
    assert_ne!(member_for(&b, 0x1000_0000), member_for(&b, 0xf000_0000));
    let mut expect = std::collections::HashMap::new();
    for i in 0..32u32 {
        let h = i.wrapping_mul(0x0800_0000) | 0x1234;
        b.syn_synack(Seg::syn(CISN).port(41000 + i as u16).hash(h));
        *expect.entry(member_for(&b, h)).or_insert(0u32) += 1;
    }
    assert_eq!(expect.get(&la.id).copied().unwrap_or(0), la.reqsk_queue_len());
    assert_eq!(expect.get(&lc.id).copied().unwrap_or(0), lc.reqsk_queue_len());
    assert_eq!((la.reqsk_queue_len(), lc.reqsk_queue_len()), (16, 16));
}

fn pending_request_on_closed_member(migrate: bool) -> (Bench, Fd, Out) {
    let mut b = Bench::with(|s| s.tcp_migrate_req = migrate);
    let (fa, fc) = two_members(&mut b);
    let h = 0x1000_0000;
    let (closing, other) = if member_for(&b, h) == b.listener(fa).id { (fa, fc) } else { (fc, fa) };
    let sa = b.syn_synack(Seg::syn(CISN).hash(h));
    assert_eq!(b.listener(closing).reqsk_queue_len(), 1);
    b.stack.close(closing).expect("close");
    (b, other, sa)
}

#[test]
fn closed_member_requests_migrate_when_tcp_migrate_req_is_on() {
    let (mut b, other, sa) = pending_request_on_closed_member(true);
    // The surviving member has a request of its own.
    b.syn_synack(Seg::syn(CISN).port(41000).hash(0x1000_0000));
    assert_eq!(b.listener(other).reqsk_queue_len(), 1);
    let (tsval, _) = sa.ts().expect("ts");
    assert!(b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).hash(0x1000_0000)).is_empty());
    assert_eq!(b.counter(Counter::TcpMigrateReqSuccess), 1);
    // The migrated request's slot left with it: the survivor's own
    // request is still counted (this was off by one before the fix).
    assert_eq!((b.listener(other).reqsk_queue_len(), b.listener(other).reqsk_queue_len_young()), (1, 1));
    assert_eq!(b.request_socks(), 1);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 1);
    let child = b.stack.accept(other).expect("the migrated child");
    assert_eq!(child.peer, SocketAddrV4::new(CLIENT, CLIENT_PORT).into());
}

#[test]
fn closed_member_requests_are_reset_without_migration() {
    let (mut b, other, sa) = pending_request_on_closed_member(false);
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).hash(0x1000_0000));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq), (TcpFlags::RST, sa.seq + 1));
    assert_eq!(b.counter(Counter::TcpMigrateReqSuccess), 0);
    assert_eq!(b.counter(Counter::TcpMigrateReqFailure), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 0);
    assert!(b.stack.accept(other).is_err());
    assert_eq!(b.request_socks(), 0);
}

/// The SYN-ACK timer of a closed member's request migrates it too (Linux's
/// reqsk_timer_handler calls reuseport_migrate_sock).
#[test]
fn closed_member_request_timer_migrates_and_retransmits() {
    let (mut b, other, sa) = pending_request_on_closed_member(true);
    b.advance(secs(1));
    let out = b.take_out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq, sa.seq);
    assert_eq!(b.counter(Counter::TcpMigrateReqSuccess), 1);
    // Migrated with its slot, and no longer young after its first timeout.
    assert_eq!((b.listener(other).reqsk_queue_len(), b.listener(other).reqsk_queue_len_young()), (1, 0));
}
