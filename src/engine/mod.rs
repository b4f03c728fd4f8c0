//! The sans-IO protocol engine.
//!
//! Nothing here reads a clock, a socket, a NIC or an RNG: time comes in as
//! [`time::Instant`] values, keys are injected, packets come in as byte
//! slices and go out through a transmit sink. So every Linux behaviour is
//! tested deterministically on a virtual clock, and the same code runs in
//! the DPDK workers.
#![forbid(unsafe_code)]

pub mod bind_table;
pub mod errno;
pub mod fastopen;
pub mod host;
pub mod icmp_limit;
pub mod isn;
pub mod listen;
pub mod neighbor;
pub mod secrets;
pub mod socket;
pub mod syncookie;
pub mod sysctl;
pub mod tcb;
pub mod tcp;
#[cfg(test)]
pub mod testutil;
pub mod time;
pub mod timer_wheel;
pub mod tx;
