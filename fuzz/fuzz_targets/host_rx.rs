//! Arbitrary bytes as a received frame: `Host::rx` must never panic, and
//! whatever it sends must be a frame a peer accepts (lengths and checksums).
//! The first byte picks what the NIC claims about checksums, so the
//! offload paths are fuzzed too; the rest is the frame.
#![no_main]

use dlisten::engine::host::{CsumStatus, Host, HostConfig, NoSockets, RxMeta};
use dlisten::engine::time::Instant;
use dlisten::stats::Counters;
// The corpus frames (fuzz/corpus/host_rx) are addressed to these.
use dlisten::testkit::check::check_sent;
use dlisten::testkit::frame::{OUR_IP, OUR_IP2, OUR_MAC};
use dlisten::testkit::rig::VecSink;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn csum(bits: u8) -> CsumStatus {
    match bits & 3 {
        1 => CsumStatus::Good,
        2 => CsumStatus::Bad,
        _ => CsumStatus::Unknown,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let meta = RxMeta { ip_csum: csum(flags), l4_csum: csum(flags >> 2), rss_hash: None };
    let cfg = HostConfig { mac: OUR_MAC, addrs: vec![OUR_IP, OUR_IP2] };
    let mut host = Host::new(cfg, Arc::new(Counters::new()));
    let mut tx = VecSink::default();
    host.rx(Instant::from_secs(1), frame, meta, &mut NoSockets, &mut tx);
    assert!(tx.frames.len() <= 1);
    for f in &tx.frames {
        if let Err(e) = check_sent(f) {
            panic!("we sent a bad frame ({e:?}): {f:02x?}");
        }
    }
});
