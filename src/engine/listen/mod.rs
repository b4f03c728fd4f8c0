//! The listen path's shared data: what the control plane (socket calls)
//! publishes and the workers read without locks.
//!
//! - [`listener::Listener`]: a socket in LISTEN (atomics + accept queue).
//! - [`accept_queue::AcceptQueue`]: the bounded MPMC accept ring.
//! - [`lhash::Lhash`]: the listening hash with reuseport groups, RCU-published.
//! - [`reuseport::ReuseportGroup`]: member selection (`reciprocal_scale`,
//!   SO_INCOMING_CPU).

pub mod accept_queue;
pub mod lhash;
pub mod listener;
pub mod reuseport;

pub use accept_queue::{AcceptQueue, PopError};
pub use lhash::Lhash;
pub use listener::{ChildSock, Listener};
pub use reuseport::{reciprocal_scale, ReuseportGroup};
