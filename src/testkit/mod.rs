//! The test kit: one frame builder, one checker of what we send, and one
//! engine rig, used by the unit tests, the packet scripts, the benches,
//! the callgrind driver, the fuzz targets and the generator's tests.
//! Support code, not part of the server: nothing in the data path uses it.
//!
//! - [`frame`]: the frames a peer sends (Ethernet, ARP, IPv4, ICMP, UDP,
//!   TCP), checksums right, into a buffer or a `Vec`.
//! - [`check`]: the frames we send, parsed and verified as a peer would.
//! - [`rig`]: a stack and its workers on a virtual clock, and the sinks
//!   that take what they send.
//! - [`clients`]: many clients' SYNs and ACKs, for the benches.
#![forbid(unsafe_code)]

pub mod check;
pub mod clients;
pub mod frame;
pub mod fuzz;
pub mod rig;
