//! Bugs the fuzzers found, each as a named test: the minimized input
//! through its harness, and the behaviour itself through the public API.
//! (The same inputs are in `fuzz/regressions/<target>/` for the replay.)

use super::*;
use crate::engine::tcb::recv::RecvBuf;

/// A TCB with a 64 KiB buffer and window scale 14 (16 KiB of rounding
/// slack), a 16 KiB memory pool, gets a 29 742-byte segment 6 111 bytes
/// out of order: the ring grew to 16 KiB, the segment did not fit and was
/// dropped, and the empty ring stayed allocated (and charged to the pool)
/// until the connection was freed.
#[test]
fn out_of_order_segment_larger_than_the_grant_leaves_no_ring() {
    let input = [
        0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xe5, 0xbb, 0xff, 0xec, 0x00,
        0x00, 0x00, 0x20, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x2b, 0x2b, 0xff, 0x2b, 0x05, 0xff, 0x05,
    ];
    established::run(&input);

    let mut rcv = RecvBuf::new(65_535, (1 << 14) - 1);
    let mut room = 16 * 1024;
    let data = vec![7u8; 29_742];
    assert_eq!(rcv.store(1000, 1000 + 6111, &data, &mut room), None);
    assert_eq!(rcv.mem(), 0, "nothing kept, nothing held");
    // In order, the same segment is cut to what the grant allows.
    let mut room = 16 * 1024;
    assert_eq!(rcv.store(1000, 1000, &data, &mut room), Some(1000 + 16 * 1024));
    assert_eq!(rcv.mem(), 16 * 1024);
}
