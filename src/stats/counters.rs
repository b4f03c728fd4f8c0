//! Per-worker counters with Linux's `nstat` names.
//!
//! Each worker owns one [`Counters`] block and is its only writer, so an
//! increment is a relaxed load + store on a cache-padded block (no RMW, no
//! sharing on the hot path). Readers (stats, the control plane) load every
//! cell of every worker and sum them: a snapshot is not atomic across cells,
//! exactly like reading `/proc/net/netstat`.

use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, )*) => {
        /// A counter. The display name is the one `nstat` prints.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Counter { $( $(#[doc = $doc])* $variant, )* }

        impl Counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [Counter] = &[ $( Counter::$variant, )* ];
            /// Number of counters.
            pub const COUNT: usize = Self::ALL.len();

            /// The name Linux's `nstat` uses (or ours, for counters Linux lacks).
            pub const fn name(self) -> &'static str {
                match self { $( Counter::$variant => $name, )* }
            }

            /// What it counts: its doc comment, one line per element (the
            /// help text of exported metrics).
            pub const fn doc(self) -> &'static [&'static str] {
                match self { $( Counter::$variant => &[ $( $doc, )* ], )* }
            }
        }
    };
}

counters! {
    // --- Ip / Icmp / host behaviour ---
    /// Frames received from the port.
    RxFrames => "DlRxFrames",
    /// Frames handed to the port for transmission.
    TxFrames => "DlTxFrames",
    /// Frames the TX queue did not take (ring full), freed; or larger than an mbuf.
    TxDrops => "DlTxDrops",
    /// Frames not sent because the worker's mempool had no mbuf left
    /// (all of them in the RX ring, the TX ring or waiting to be sent).
    TxNoMbuf => "DlTxNoMbuf",
    /// Times the port's link went down while serving.
    LinkDown => "DlLinkDown",
    /// Times the port's link came back up while serving.
    LinkUp => "DlLinkUp",
    /// Frames shorter than their headers claim or otherwise unparsable.
    RxMalformed => "DlRxMalformed",
    /// Ethernet frames of a type we do not handle.
    RxUnknownEthertype => "DlRxUnknownEthertype",
    /// Frames addressed to another MAC (not us, not broadcast).
    RxOtherHost => "DlRxOtherHost",
    /// ARP requests for one of our addresses that we answered.
    ArpReplies => "DlArpReplies",
    /// ARP packets ignored (other targets, unsupported hardware).
    ArpIgnored => "DlArpIgnored",
    /// Received IPv4 datagrams (Linux: Ip InReceives).
    IpInReceives => "IpInReceives",
    /// IPv4 header errors: bad version, IHL, length, TTL (Ip InHdrErrors).
    IpInHdrErrors => "IpInHdrErrors",
    /// IPv4 datagrams addressed to someone else (Ip InAddrErrors).
    IpInAddrErrors => "IpInAddrErrors",
    /// IPv4 datagrams whose total length runs past the frame (IpExt InTruncatedPkts).
    IpInTruncatedPkts => "IpExtInTruncatedPkts",
    /// IPv4 fragments: counted and dropped, we do not reassemble (Ip ReasmFails).
    IpReasmFails => "IpReasmFails",
    /// Source-routed IPv4 datagrams dropped (`accept_source_route` 0).
    IpInOptionsDropped => "DlIpInSrcRouteDropped",
    /// IPv4 datagrams with an unknown protocol (Ip InUnknownProtos).
    IpInUnknownProtos => "IpInUnknownProtos",
    /// IPv4 header checksum failures.
    IpInCsumErrors => "DlIpInCsumErrors",
    /// IPv4 datagrams from a broadcast, multicast or zero source: dropped as
    /// Linux's routing drops a martian source, which no Ip counter counts.
    IpInMartianSrc => "DlIpInMartianSrc",
    /// ICMP messages received (Icmp InMsgs).
    IcmpInMsgs => "IcmpInMsgs",
    /// ICMP messages with a bad checksum or length (Icmp InErrors).
    IcmpInErrors => "IcmpInErrors",
    /// ICMP echo requests received (IcmpMsg InType8).
    IcmpInEchos => "IcmpInEchos",
    /// ICMP messages sent (Icmp OutMsgs).
    IcmpOutMsgs => "IcmpOutMsgs",
    /// ICMP echo replies sent.
    IcmpOutEchoReps => "IcmpOutEchoReps",
    /// ICMP destination unreachable sent.
    IcmpOutDestUnreachs => "IcmpOutDestUnreachs",
    /// ICMP parameter problems sent (a malformed IP option).
    IcmpOutParmProbs => "IcmpOutParmProbs",
    /// ICMP errors suppressed by the rate limit (Linux: icmp_ratelimit).
    IcmpOutRateLimited => "IcmpOutRateLimitHost",
    /// UDP datagrams received (Udp InDatagrams).
    UdpInDatagrams => "UdpInDatagrams",
    /// UDP datagrams to a port nobody listens on (Udp NoPorts).
    UdpNoPorts => "UdpNoPorts",
    /// UDP checksum errors (Udp InCsumErrors).
    UdpInCsumErrors => "UdpInCsumErrors",
    /// UDP datagrams dropped as bad: short, a length past the datagram, a bad checksum (Udp InErrors).
    UdpInErrors => "UdpInErrors",

    // --- Ip6 / Icmp6 / Udp6 (the TCP counters are shared, as in Linux) ---
    /// Received IPv6 packets (Ip6InReceives).
    Ip6InReceives => "Ip6InReceives",
    /// IPv6 header errors: bad version, multicast or loopback source,
    /// reserved multicast scope, malformed or refused extension headers (Ip6InHdrErrors).
    Ip6InHdrErrors => "Ip6InHdrErrors",
    /// IPv6 packets whose payload length runs past the frame (Ip6InTruncatedPkts).
    Ip6InTruncatedPkts => "Ip6InTruncatedPkts",
    /// IPv6 packets to an address that is not ours, or with a routing
    /// header we do not process (Ip6InAddrErrors).
    Ip6InAddrErrors => "Ip6InAddrErrors",
    /// IPv6 packets with an upper-layer protocol we have no handler for
    /// (answered with parameter problem, Ip6InUnknownProtos).
    Ip6InUnknownProtos => "Ip6InUnknownProtos",
    /// IPv6 packets handed to an upper-layer protocol (Ip6InDelivers).
    Ip6InDelivers => "Ip6InDelivers",
    /// IPv6 packets to a multicast group we are in (Ip6InMcastPkts).
    Ip6InMcastPkts => "Ip6InMcastPkts",
    /// IPv6 packets we sent (Ip6OutRequests).
    Ip6OutRequests => "Ip6OutRequests",
    /// IPv6 fragments: counted and dropped, we do not reassemble (Ip6ReasmFails).
    Ip6ReasmFails => "Ip6ReasmFails",
    /// ICMPv6 messages received (Icmp6InMsgs).
    Icmp6InMsgs => "Icmp6InMsgs",
    /// ICMPv6 messages with a bad checksum or too short (Icmp6InErrors).
    Icmp6InErrors => "Icmp6InErrors",
    /// ICMPv6 checksum errors (Icmp6InCsumErrors).
    Icmp6InCsumErrors => "Icmp6InCsumErrors",
    /// ICMPv6 echo requests received (Icmp6InEchos).
    Icmp6InEchos => "Icmp6InEchos",
    /// Router solicitations received, ignored: we are not a router (Icmp6InRouterSolicits).
    Icmp6InRouterSolicits => "Icmp6InRouterSolicits",
    /// Router advertisements received, ignored: addresses are configured (Icmp6InRouterAdvertisements).
    Icmp6InRouterAdvertisements => "Icmp6InRouterAdvertisements",
    /// Neighbour solicitations received (Icmp6InNeighborSolicits).
    Icmp6InNeighborSolicits => "Icmp6InNeighborSolicits",
    /// Neighbour advertisements received (Icmp6InNeighborAdvertisements).
    Icmp6InNeighborAdvertisements => "Icmp6InNeighborAdvertisements",
    /// Neighbour discovery messages dropped by `ndisc_rcv`'s checks (hop
    /// limit, code, length, options, multicast target...), which Linux
    /// only logs.
    Icmp6NdiscInvalid => "DlIcmp6NdiscInvalid",
    /// ICMPv6 messages sent (Icmp6OutMsgs).
    Icmp6OutMsgs => "Icmp6OutMsgs",
    /// ICMPv6 echo replies sent (Icmp6OutEchoReplies).
    Icmp6OutEchoReplies => "Icmp6OutEchoReplies",
    /// Neighbour advertisements sent (Icmp6OutNeighborAdvertisements).
    Icmp6OutNeighborAdvertisements => "Icmp6OutNeighborAdvertisements",
    /// ICMPv6 destination unreachable sent (Icmp6OutDestUnreachs).
    Icmp6OutDestUnreachs => "Icmp6OutDestUnreachs",
    /// ICMPv6 parameter problems sent (Icmp6OutParmProblems).
    Icmp6OutParmProblems => "Icmp6OutParmProblems",
    /// ICMPv6 errors suppressed by the per-peer or global rate limit (Icmp6OutRateLimitHost).
    Icmp6OutRateLimitHost => "Icmp6OutRateLimitHost",
    /// UDP datagrams over IPv6 to a port nobody listens on (Udp6NoPorts).
    Udp6NoPorts => "Udp6NoPorts",
    /// UDP datagrams over IPv6 dropped as bad: short, bad length, bad or zero checksum (Udp6InErrors).
    Udp6InErrors => "Udp6InErrors",
    /// UDP checksum errors over IPv6, a zero checksum included (Udp6InCsumErrors).
    Udp6InCsumErrors => "Udp6InCsumErrors",

    // --- Tcp ---
    /// TCP segments received (Tcp InSegs).
    TcpInSegs => "TcpInSegs",
    /// TCP segments sent (Tcp OutSegs).
    TcpOutSegs => "TcpOutSegs",
    /// RSTs sent (Tcp OutRsts).
    TcpOutRsts => "TcpOutRsts",
    /// Bad segments received: bad header length, impossible flags (Tcp InErrs).
    TcpInErrs => "TcpInErrs",
    /// TCP checksum errors (Tcp InCsumErrors).
    TcpInCsumErrors => "TcpInCsumErrors",
    /// TCP or UDP checksum errors where the field held only the pseudo-header
    /// sum: the sender offloaded its checksum and the port passed the bytes
    /// on unfinished (a veth under AF_XDP or AF_PACKET). Also counted in
    /// TcpInCsumErrors or UdpInCsumErrors.
    RxCsumPartial => "DlRxCsumPartial",
    /// Connections that went SYN_RECV -> ESTABLISHED (Tcp PassiveOpens).
    TcpPassiveOpens => "TcpPassiveOpens",
    /// Failed connection attempts (Tcp AttemptFails).
    TcpAttemptFails => "TcpAttemptFails",
    /// Accept queue full when a handshake completed or a SYN arrived.
    ListenOverflows => "TcpExtListenOverflows",
    /// SYNs or ACKs dropped by a listener for any reason.
    ListenDrops => "TcpExtListenDrops",
    /// SYN dropped because the request queue was full and cookies are off.
    TcpReqQFullDrop => "TcpExtTCPReqQFullDrop",
    /// SYN answered with a cookie because the request queue was full.
    TcpReqQFullDoCookies => "TcpExtTCPReqQFullDoCookies",
    /// SYN cookies sent.
    SyncookiesSent => "TcpExtSyncookiesSent",
    /// Valid SYN cookies received.
    SyncookiesRecv => "TcpExtSyncookiesRecv",
    /// Invalid SYN cookies received.
    SyncookiesFailed => "TcpExtSyncookiesFailed",
    /// RSTs received for request socks (SYN_RECV).
    EmbryonicRsts => "TcpExtEmbryonicRsts",
    /// Segments to a request sock rejected by PAWS (an old TSval).
    PawsEstabRejected => "TcpExtPAWSEstab",
    /// Final ACKs whose TSecr echoes none of the SYN-ACKs' TSvals.
    TsEcrRejected => "TcpExtTSEcrRejected",
    /// Challenge ACKs sent (RFC 5961) for an in-window RST not at rcv_nxt.
    TcpChallengeAck => "TcpExtTCPChallengeACK",
    /// Challenge ACKs not sent: within tcp_invalid_ratelimit of the last one.
    TcpAckSkippedChallenge => "TcpExtTCPACKSkippedChallenge",
    /// Connections opened by TCP Fast Open.
    TcpFastOpenPassive => "TcpExtTCPFastOpenPassive",
    /// TFO SYNs with an invalid cookie (fell back to the handshake).
    TcpFastOpenPassiveFail => "TcpExtTCPFastOpenPassiveFail",
    /// TFO refused because the fast-open queue was full.
    TcpFastOpenListenOverflow => "TcpExtTCPFastOpenListenOverflow",
    /// TFO cookie requests answered.
    TcpFastOpenCookieReqd => "TcpExtTCPFastOpenCookieReqd",
    /// Requests migrated to another reuseport member on close.
    TcpMigrateReqSuccess => "TcpExtTCPMigrateReqSuccess",
    /// Requests that could not be migrated (last member closed).
    TcpMigrateReqFailure => "TcpExtTCPMigrateReqFailure",
    /// Requests dropped by TCP_DEFER_ACCEPT.
    TcpDeferAcceptDrop => "TcpExtTCPDeferAcceptDrop",
    /// SYN-ACK retransmissions (Linux: TCPSynRetrans counts both directions).
    TcpSynRetrans => "TcpExtTCPSynRetrans",
    /// Request socks that died after tcp_synack_retries.
    TcpReqTimeouts => "DlTcpReqTimeouts",
    /// ACKs with no matching request, connection or valid cookie (answered with RST).
    TcpAckNoMatch => "DlTcpAckNoMatch",
    /// SYNs to a port nobody listens on (answered with RST|ACK).
    TcpSynNoListener => "DlTcpSynNoListener",
    /// Handshakes refused with RST because the worker's connection cap
    /// (--max-conns) was reached.
    ConnLimitRefused => "DlConnLimitRefused",
    /// Handshakes refused with RST because the worker's connection buffers
    /// in use reached the hard limit (--conn-mem-mb, tcp_mem's max).
    ConnMemRefused => "DlConnMemRefused",
    /// Connections reset because the application closed with unread data (Linux: TCPAbortOnClose).
    TcpAbortOnClose => "TcpExtTCPAbortOnClose",
    /// Connections that timed out (retries exhausted; Linux: TCPAbortOnTimeout).
    TcpAbortOnTimeout => "TcpExtTCPAbortOnTimeout",
    /// RSTs received on established connections (Linux: Tcp EstabResets).
    TcpEstabResets => "TcpEstabResets",
    /// Connections that ended and left this worker's table (TIME_WAIT moves
    /// them to the compact TIME_WAIT table). PassiveOpens - this = open now.
    ConnsClosed => "DlConnsClosed",
    /// TIME_WAIT entries that expired (Linux: TcpExtTW).
    TcpTw => "TcpExtTW",
    /// TIME_WAIT entries ended by an RST (Linux: TcpExtTWKilled... counts RFC 1337 kills).
    TcpTwKilled => "TcpExtTWKilled",
    /// A TIME_WAIT entry could not be kept: the table was full (tcp_max_tw_buckets).
    TcpTimeWaitOverflow => "TcpExtTCPTimeWaitOverflow",
    /// http connections closed because a request head took longer than
    /// --http-header-timeout (nginx: client_header_timeout).
    HttpHeaderTimeouts => "DlHttpHeaderTimeouts",
    /// Keep-alive http connections closed after --http-keepalive-timeout
    /// without a new request (nginx: keepalive_timeout).
    HttpIdleTimeouts => "DlHttpIdleTimeouts",
    /// http connections closed because a request body stalled for longer
    /// than --http-body-timeout between two reads (nginx: client_body_timeout).
    HttpBodyTimeouts => "DlHttpBodyTimeouts",
    /// Accepted connections reset because their client address already had
    /// --max-conns-per-source on this worker.
    ConnPerSourceRefused => "DlConnPerSourceRefused",
    /// Workers (or, with --app-threads, application threads) that began draining (SIGTERM).
    DrainWorkers => "DlDrainWorkers",
    /// Application connections open when the drain began.
    DrainConns => "DlDrainConns",
    /// Of those, the ones that finished (closed) before --drain-timeout.
    DrainFinished => "DlDrainFinished",
}

/// One worker's counters. Single writer (the worker), many readers.
pub struct Counters {
    cells: CachePadded<[AtomicU64; Counter::COUNT]>,
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    pub fn new() -> Self {
        Counters {
            cells: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Add `n` to `c`. Only the owning worker may call this: it is a load and a
    /// store, not an atomic add, because there is a single writer.
    #[inline]
    pub fn add(&self, c: Counter, n: u64) {
        let cell = &self.cells[c as usize];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.cells[c as usize].load(Ordering::Relaxed)
    }

    /// Copy every cell.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            values: std::array::from_fn(|i| self.cells[i].load(Ordering::Relaxed)),
        }
    }
}

/// A copy of counters, possibly summed over workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterSnapshot {
    values: [u64; Counter::COUNT],
}

impl Default for CounterSnapshot {
    fn default() -> Self {
        CounterSnapshot {
            values: [0; Counter::COUNT],
        }
    }
}

impl CounterSnapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Sum snapshots (e.g. of every worker).
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a CounterSnapshot>) -> CounterSnapshot {
        let mut total = CounterSnapshot::default();
        for p in parts {
            for (t, v) in total.values.iter_mut().zip(p.values.iter()) {
                *t = t.wrapping_add(*v);
            }
        }
        total
    }

    /// Non-zero counters as (name, value), in declaration order, like `nstat`.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL
            .iter()
            .filter(|c| self.get(**c) != 0)
            .map(|c| (c.name(), self.get(*c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn every_counter_says_what_it_counts() {
        for c in Counter::ALL {
            assert!(c.doc().iter().any(|l| !l.trim().is_empty()), "{} has no doc comment", c.name());
        }
        assert_eq!(Counter::TcpPassiveOpens.doc(), [" Connections that went SYN_RECV -> ESTABLISHED (Tcp PassiveOpens)."]);
    }

    #[test]
    fn snapshots_sum_over_workers() {
        let a = Counters::new();
        let b = Counters::new();
        a.inc(Counter::SyncookiesSent);
        a.add(Counter::SyncookiesSent, 2);
        b.inc(Counter::SyncookiesSent);
        b.inc(Counter::ListenDrops);
        let total = CounterSnapshot::sum([&a.snapshot(), &b.snapshot()]);
        assert_eq!(total.get(Counter::SyncookiesSent), 4);
        assert_eq!(total.get(Counter::ListenDrops), 1);
        let nz: Vec<_> = total.nonzero().collect();
        assert_eq!(
            nz,
            vec![("TcpExtListenDrops", 1), ("TcpExtSyncookiesSent", 4)]
        );
    }
}
