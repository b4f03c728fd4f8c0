//! Wire formats: zero-copy views over packet bytes, and emitters.
//!
//! Every protocol has a view `Foo<T: AsRef<[u8]>>` over a byte buffer: getters
//! need `AsRef<[u8]>`, setters need `AsMut<[u8]>`, and field offsets live in a
//! private `mod field`. Nothing here allocates and nothing here is `unsafe`.
//!
//! # Contract
//!
//! A view is built in one of two ways:
//! - `new_checked(buffer)` validates lengths (and versions, header lengths)
//!   once. **Once `new_checked` succeeded, no accessor panics**, whatever the
//!   bytes are: every getter, `payload()`, option iterator and checksum
//!   verification stays inside the validated buffer.
//! - `new_unchecked(buffer)` + `check_len()` is the same thing split in two,
//!   for hot paths that already know the length; accessors on an unchecked
//!   view may panic if the buffer is too short.
//!
//! Setters keep the same contract for the fields they write. Emit helpers
//! take a `&mut [u8]` and return [`Error::BufferTooSmall`] rather than
//! panicking.
//!
//! Unknown protocol numbers, ethertypes, ARP operations, ICMP types and TCP
//! option kinds are values (`Unknown(n)`), never errors: deciding what to do
//! with them is the engine's business.
#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod tcp_options;
pub mod udp;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame};
pub use icmp::{Icmpv4Packet, Icmpv4Type, Icmpv4Unreachable};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpRepr, TcpSegment};
pub use tcp_options::{
    FastOpenCookie, SackBlocks, SynOptions, TcpOption, TcpOptionIter, TcpOptionWriter,
};
pub use udp::UdpPacket;

/// Why a buffer is not a valid packet (or cannot hold one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the fixed header (or the length a header claims).
    #[error("buffer truncated")]
    Truncated,
    /// A length field contradicts the header or the buffer (e.g. IPv4
    /// total length below the header length, UDP length below 8).
    #[error("inconsistent length field")]
    BadLength,
    /// IPv4 header with a version other than 4.
    #[error("bad IP version")]
    BadVersion,
    /// Header length field (IPv4 IHL, TCP data offset) below the minimum or
    /// beyond the buffer.
    #[error("bad header length")]
    BadHeaderLen,
    /// A TCP option with a length byte below 2, beyond the option space, or
    /// wrong for its kind.
    #[error("malformed option")]
    BadOption,
    /// ARP packet whose hardware/protocol layout is not Ethernet/IPv4.
    #[error("unsupported ARP hardware or protocol layout")]
    UnsupportedArpLayout,
    /// An emit helper was handed a buffer too small for what it writes.
    #[error("buffer too small to emit into")]
    BufferTooSmall,
}

/// Result type of this module.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range inside a header.
type Field = core::ops::Range<usize>;
/// The rest of a buffer from an offset.
type Rest = core::ops::RangeFrom<usize>;
