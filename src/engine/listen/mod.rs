//! The listen path's shared data: what the control plane (socket calls)
//! publishes and the workers read without locks.
//!
//! - [`listener::Listener`]: a socket in LISTEN (atomics + accept queue).
//! - [`accept_queue::AcceptQueue`]: the bounded MPMC accept ring.
//! - [`lhash::Lhash`]: the listening hash with reuseport groups, RCU-published.
//! - [`reuseport::ReuseportGroup`]: member selection (`reciprocal_scale`,
//!   SO_INCOMING_CPU).
//!
//! How a worker uses them (the control plane side is `engine::socket::Stack`):
//! - SYN: `lhash.lookup(worker, daddr, dport, rss_hash)`; then Linux's
//!   `tcp_conn_request` checks `reqsk_queue_is_full()` (cookie or
//!   TCPReqQFullDrop) and `sk_acceptq_is_full()` (ListenOverflows), and
//!   `reqsk_queue_added()` when it stores a request.
//! - Final ACK: `reqsk_queue_removed(young)`, then `acceptq_add(child)`. On
//!   `Err`, `is_closed()` means the listener went away: ask
//!   `Stack::reqsk_migrate` for another member (count TCPMigrateReq*) or
//!   reset; otherwise the queue is full (ListenOverflows, ListenDrops).
//! - Every loop: drain `Stack::pop_command(worker)` (`ControlCmd::Reset`).

pub mod accept_queue;
pub mod lhash;
pub mod listener;
pub mod reuseport;
pub mod view;

pub use accept_queue::AcceptQueue;
pub use lhash::{GroupKey, Lhash};
pub use listener::{ipv6_form, ChildSock, Family, Listener};
pub use reuseport::{reciprocal_scale, ReuseportGroup};
pub use view::{ListenView, ListenerAt};
