//! Stack-wide knobs, named after the sysctls they mirror, with Linux's
//! defaults (6.x).

/// `net.ipv4.tcp_fastopen` bits.
pub mod tfo {
    pub const CLIENT_ENABLE: u32 = 1;
    pub const SERVER_ENABLE: u32 = 2;
    pub const CLIENT_NO_COOKIE: u32 = 4;
    /// Accept data in SYN without a cookie.
    pub const SERVER_COOKIE_NOT_REQD: u32 = 0x200;
    /// Every listener is TFO-enabled without setsockopt(TCP_FASTOPEN), qlen = backlog.
    pub const SERVER_WO_SOCKOPT1: u32 = 0x400;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sysctls {
    /// `net.core.somaxconn`: clamp for listen()'s backlog. 4096 since Linux 5.4.
    pub somaxconn: u32,
    /// `net.ipv4.tcp_max_syn_backlog`: bounds the SYN queue when cookies are off.
    pub tcp_max_syn_backlog: u32,
    /// `net.ipv4.tcp_syncookies`: 0 off, 1 when the queue overflows, 2 always.
    pub tcp_syncookies: u8,
    /// `net.ipv4.tcp_synack_retries`.
    pub tcp_synack_retries: u8,
    /// `net.ipv4.tcp_abort_on_overflow`: RST instead of dropping the final ACK.
    pub tcp_abort_on_overflow: bool,
    /// `net.ipv4.tcp_fastopen` bits (see [`tfo`]). Linux's default is 1 (client only).
    pub tcp_fastopen: u32,
    /// `net.ipv4.ip_local_port_range`, inclusive.
    pub ip_local_port_range: (u16, u16),
    /// `net.ipv4.tcp_timestamps`.
    pub tcp_timestamps: bool,
    /// `net.ipv4.tcp_sack`.
    pub tcp_sack: bool,
    /// `net.ipv4.tcp_window_scaling`.
    pub tcp_window_scaling: bool,
    /// `net.ipv4.tcp_ecn`: 0 off, 1 request and accept, 2 accept only (default).
    pub tcp_ecn: u8,
    /// `net.ipv4.tcp_migrate_req`: migrate requests when a reuseport member closes.
    pub tcp_migrate_req: bool,
    /// `net.ipv4.tcp_retries2`: retransmissions before an established connection gives up.
    pub tcp_retries2: u8,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME_WAIT entries (per worker here).
    pub tcp_max_tw_buckets: u32,
    /// `net.ipv4.tcp_fin_timeout` in seconds (orphaned FIN_WAIT_2).
    pub tcp_fin_timeout: u32,
    /// `net.ipv6.bindv6only`: IPV6_V6ONLY of new AF_INET6 sockets (0: an
    /// AF_INET6 listener on `::` takes IPv4 connections too).
    pub bindv6only: bool,
}

impl Sysctls {
    /// Linux's defaults. [`Default`] returns these and the command line shows
    /// them, so they are written once, here.
    pub const DEFAULT: Sysctls = Sysctls {
        somaxconn: 4096,
        tcp_max_syn_backlog: 4096,
        tcp_syncookies: 1,
        tcp_synack_retries: 5,
        tcp_abort_on_overflow: false,
        tcp_fastopen: tfo::CLIENT_ENABLE,
        ip_local_port_range: (32768, 60999),
        tcp_timestamps: true,
        tcp_sack: true,
        tcp_window_scaling: true,
        tcp_ecn: 2,
        tcp_migrate_req: false,
        tcp_retries2: 15,
        tcp_max_tw_buckets: 262_144,
        tcp_fin_timeout: 60,
        bindv6only: false,
    };
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls::DEFAULT
    }
}
