//! The errors the socket API answers, with Linux's errno names and values.

use thiserror::Error;

/// A socket-call failure, as Linux reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum Errno {
    #[error("EBADF: bad socket descriptor")]
    Ebadf,
    #[error("EINVAL: invalid argument or socket state")]
    Einval,
    #[error("EOPNOTSUPP: operation not supported on this socket type")]
    Eopnotsupp,
    #[error("EADDRINUSE: address already in use")]
    Eaddrinuse,
    #[error("EADDRNOTAVAIL: address not available")]
    Eaddrnotavail,
    #[error("EAGAIN: resource temporarily unavailable")]
    Eagain,
    #[error("EAFNOSUPPORT: address family not supported")]
    Eafnosupport,
    #[error("ENOBUFS: no buffer space available")]
    Enobufs,
    #[error("EMFILE: too many open sockets")]
    Emfile,
    #[error("ENOTCONN: socket is not connected")]
    Enotconn,
    #[error("ECONNRESET: connection reset by peer")]
    Econnreset,
    #[error("EPIPE: broken pipe")]
    Epipe,
    #[error("EISCONN: socket is already connected")]
    Eisconn,
    #[error("ENOPROTOOPT: protocol not available")]
    Enoprotoopt,
    #[error("ETIMEDOUT: connection timed out")]
    Etimedout,
}

impl Errno {
    /// The numeric value on Linux x86-64.
    pub const fn raw(self) -> i32 {
        match self {
            Errno::Ebadf => 9,
            Errno::Eagain => 11,
            Errno::Einval => 22,
            Errno::Emfile => 24,
            Errno::Epipe => 32,
            Errno::Eopnotsupp => 95,
            Errno::Eafnosupport => 97,
            Errno::Eaddrinuse => 98,
            Errno::Eaddrnotavail => 99,
            Errno::Econnreset => 104,
            Errno::Enobufs => 105,
            Errno::Eisconn => 106,
            Errno::Enotconn => 107,
            Errno::Enoprotoopt => 92,
            Errno::Etimedout => 110,
        }
    }
}
