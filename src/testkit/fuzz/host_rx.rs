//! Arbitrary bytes as a received frame: `Host::rx` must never panic, and
//! whatever it sends must be a frame a peer accepts (lengths and checksums).
//! The first byte picks what the NIC claims about checksums, so the
//! offload paths are fuzzed too; the rest is the frame (the corpus frames
//! are addressed to OUR_IP / OUR_IP2 / OUR_MAC).

use crate::engine::host::{CsumStatus, Host, HostConfig, NoSockets, RxMeta};
use crate::engine::time::Instant;
use crate::stats::Counters;
use crate::testkit::check::check_sent;
use crate::testkit::frame::{OUR_IP, OUR_IP2, OUR_MAC};
use crate::testkit::rig::VecSink;
use std::sync::Arc;

fn csum(bits: u8) -> CsumStatus {
    match bits & 3 {
        1 => CsumStatus::Good,
        2 => CsumStatus::Bad,
        _ => CsumStatus::Unknown,
    }
}

pub fn run(data: &[u8]) {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let meta = RxMeta { ip_csum: csum(flags), l4_csum: csum(flags >> 2), rss_hash: None };
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP, OUR_IP2], utc_ms_at_zero: 0 };
    let mut host = Host::new(cfg, Arc::new(Counters::new()));
    let mut tx = VecSink::default();
    host.rx(Instant::from_secs(1), frame, meta, &mut NoSockets, &mut tx);
    assert!(tx.frames.len() <= 1, "one frame in, {} out", tx.frames.len());
    for f in &tx.frames {
        if let Err(e) = check_sent(f) {
            panic!("we sent a bad frame ({e:?}): {f:02x?}");
        }
    }
}
