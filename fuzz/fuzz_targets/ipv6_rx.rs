//! cargo-fuzz wrapper: the harness is dlisten::testkit::fuzz::ipv6_rx (what it
//! feeds and checks is documented there; tests/fuzz_corpus.rs replays this
//! target's corpus through the same function on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dlisten::testkit::fuzz::ipv6_rx::run(data));
