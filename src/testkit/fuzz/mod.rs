//! The fuzz harnesses: one function per target, taking the input bytes.
//! The cargo-fuzz targets in `fuzz/` are one-line wrappers around them, and
//! `tests/fuzz_corpus.rs` replays every committed corpus file through the
//! same functions on the stable toolchain, so the corpus is a regression
//! suite that `cargo test` runs. A harness panics when it finds a bug.
//!
//! - [`wire`]: every wire parser (Ethernet, ARP, IPv4 and its options,
//!   ICMP, UDP, TCP and its options) on arbitrary bytes.
//! - [`host_rx`]: one received frame through the host (ARP, ICMP, UDP,
//!   the IPv4 checks) with the NIC's checksum claims.
//! - [`listen_segments`]: TCP segments from four clients against a
//!   listener (SYN queue, cookies, TFO, accept queue).
//! - [`established`]: a peer script against one established connection's
//!   control block, checking its invariants at every step.
//! - [`ipv6_parsers`]: the IPv6 header, extension headers, ICMPv6 and
//!   neighbour discovery on arbitrary bytes.
//! - [`ipv6_rx`]: IPv6 frames through the host.

pub mod established;
pub mod host_rx;
pub mod ipv6_parsers;
pub mod ipv6_rx;
pub mod listen_segments;
pub mod wire;

/// The names of the targets, as in `fuzz/Cargo.toml` and `fuzz/corpus/`.
pub const TARGETS: [&str; 6] = ["wire", "host_rx", "listen_segments", "established", "ipv6_parsers", "ipv6_rx"];

/// The harness of a target by name.
pub fn harness(target: &str) -> Option<fn(&[u8])> {
    match target {
        "wire" => Some(wire::run),
        "host_rx" => Some(host_rx::run),
        "listen_segments" => Some(listen_segments::run),
        "established" => Some(established::run),
        "ipv6_parsers" => Some(ipv6_parsers::run),
        "ipv6_rx" => Some(ipv6_rx::run),
        _ => None,
    }
}

#[cfg(test)]
mod regressions;
