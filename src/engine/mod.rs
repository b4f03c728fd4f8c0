//! The sans-IO protocol engine.
//!
//! Nothing here reads a clock, a socket, a NIC or an RNG: time comes in as
//! [`time::Instant`] values, keys are injected, packets come in as byte
//! slices and go out through a transmit sink. So every Linux behaviour is
//! tested deterministically on a virtual clock, and the same code runs in
//! the DPDK workers.
//!
//! One folder per layer, bottom up:
//! - [`keys`]: key material and the keyed hashes (ISN, timestamp offset,
//!   SYN cookie, TFO cookie), bundled as [`keys::Secrets`].
//! - [`host`]: what a Linux host answers before any socket: ARP, ICMP,
//!   the neighbour table, the ICMP rate limit, RST for closed ports.
//! - [`listen`]: the listen path's shared state: listeners, accept queues,
//!   the listening hash and reuseport groups.
//! - [`socket`]: the control plane: socket, bind, listen, close with
//!   Linux's errnos (locked; never on the per-packet path).
//! - [`tcp`]: the per-worker TCP layer: the `tcp_v4_rcv` demux, request
//!   socks, cookies, TFO, TIME_WAIT (Linux's listen path, per core).
//! - [`tcb`]: an established connection's data path.
//!
//! [`burst`] runs a burst of frames through host and TCP in stages.
//!
//! Shared by all: [`flow::FlowKey`], [`time`], [`timer_wheel`],
//! [`tx::TxSink`], [`sysctl::Sysctls`], [`errno::Errno`].
#![forbid(unsafe_code)]

pub mod burst;
pub mod errno;
pub mod flow;
pub mod host;
pub mod keys;
pub mod listen;
pub mod socket;
pub mod sysctl;
pub mod tcb;
pub mod tcp;
pub mod time;
pub mod timer_wheel;
pub mod tx;
