"""The differential cases. Each is a script run once against the kernel and
once against dlisten (concurrently), with the listener settings it names.

`t` is the session (run.py's Target): t.send(frame), t.wait(secs),
t.expect(match, timeout) returns the first parsed frame since the last send
for which match(frame) holds, or None (then the script goes on with zeros,
and the difference shows in the answers).

Marks: `pending_fix=REASON` for a difference dlisten is being fixed for (the
suite reports it apart and does not fail on it); `deviation=KEY` for a
difference dlisten makes on purpose, KEY naming its row in the README's
"Where dlisten differs from Linux" table.
"""
import difflib
import re
import struct

from frames import (ALL_NODES, ALL_NODES_MAC, CLIENT_IP, CLIENT_IP6, CLOSED_PORT, OTHER_IP, OTHER_IP6, OTHER_MAC, SERVER_IP,
                    SERVER_IP6, SERVER_MAC, TSVAL, HBHOptUnknown, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                    IPv6ExtHdrHopByHop, arp_request, eth, icmp6_echo, icmp_echo, ip6_next_header, ip_proto,
                    linux_opts, neighbor_solicit, raw_bytes, syn, syn6, tcp, tcp6, tfo_exp_opts, tfo_opts, udp, udp6)
from normalise import ACK, SYN
from scapy.all import ICMP, IP, IPOption, Raw
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6Unknown, IPv6ExtHdrRouting

# Compared in every case: the listen path's, and the host's, counters that
# dlisten keeps under Linux's names.
COUNTERS = [
    "TcpPassiveOpens", "TcpAttemptFails", "TcpOutRsts", "TcpInErrs", "TcpInCsumErrors",
    "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
    "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtEmbryonicRsts",
    "TcpExtTCPSynRetrans", "TcpExtTCPFastOpenPassive", "TcpExtTCPFastOpenPassiveFail",
    "TcpExtTCPFastOpenCookieReqd", "TcpExtTCPFastOpenListenOverflow",
    "IpInReceives", "IpInHdrErrors", "IpInAddrErrors", "IpInUnknownProtos",
    "IcmpInMsgs", "IcmpInEchos", "IcmpOutEchoReps", "IcmpOutDestUnreachs", "IcmpInErrors",
    "UdpNoPorts", "UdpInErrors", "UdpInCsumErrors", "IpExtInTruncatedPkts",
]
# The IPv6 cases': TCP's counters are one set for both families (as in
# Linux), then Ip6/Icmp6/Udp6. Not compared: Icmp6OutMsgs and Ip6OutRequests
# (the kernel's own MLD reports count there), Ip6Reasm* (Linux queues a
# fragment for 60 s; dlisten counts it failed at once).
COUNTERS6 = [
    "TcpPassiveOpens", "TcpAttemptFails", "TcpOutRsts", "TcpInErrs", "TcpInCsumErrors",
    "TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
    "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtEmbryonicRsts",
    "Ip6InReceives", "Ip6InHdrErrors", "Ip6InAddrErrors", "Ip6InUnknownProtos", "Ip6InTruncatedPkts",
    "Ip6InDelivers", "Ip6InMcastPkts",
    "Icmp6InMsgs", "Icmp6InErrors", "Icmp6InCsumErrors", "Icmp6InEchos", "Icmp6InNeighborSolicits",
    "Icmp6OutEchoReplies", "Icmp6OutNeighborAdvertisements", "Icmp6OutDestUnreachs", "Icmp6OutParmProblems",
    "Icmp6OutRateLimitHost",
    "Udp6NoPorts", "Udp6InErrors", "Udp6InCsumErrors",
]

def _established(line):
    """A line of a segment the target sent on an established connection
    (neither SYN nor RST)."""
    if " tcp " not in f" {line}":
        return False
    flags = line.split(" tcp ", 1)[1].split()[1]
    return "S" not in flags and "R" not in flags


def mask_established_window_and_id(lines):
    out = []
    for l in lines:
        if _established(l):
            l = re.sub(r" win=\d+ ", " win=* ", l)
            l = re.sub(r" id=(0|nz)", " id=*", l)
        out.append(l)
    return out


def mask_fin_ack_at_once(lines):
    """Drop a bare ACK the target sent when the same step holds its FIN with
    the same seq and ack (dlisten acks the FIN, then sends its own)."""
    out = []
    for i, l in enumerate(lines):
        m = re.match(r"(step \d+): tcp (\S+) A (seq=\S+ ack=\S+) ", l)
        if m and any(x.startswith(f"{m[1]}: tcp {m[2]} FA {m[3]} ") for x in lines[i + 1:]):
            continue
        out.append(l)
    return out


def mask_icmp_error_counters(lines):
    return [l for l in lines if not l.startswith(("IcmpInErrors=", "IcmpInDestUnreachs=", "Icmp6InErrors=", "Icmp6InDestUnreachs="))]


# The README's "Where dlisten differs from Linux" rows, by key: the mask
# erases exactly that difference; the rest of a marked case must match.
DEVIATIONS = {
    "established-window-and-ip-id": mask_established_window_and_id,
    "fin-acked-at-once": mask_fin_ack_at_once,
    "icmp-errors-ignored": mask_icmp_error_counters,
}


class Case:
    def __init__(self, name, script, *, syncookies=1, synack_retries=5, abort_on_overflow=0, fastopen=1,
                 timestamps=1, listen=True, backlog=128, fastopen_qlen=0, app="discard", settle=0.3,
                 timed=False, pending_fix=None, deviation=(), counters=(), family=4, listen6=None):
        self.name, self.script = name, script
        self.syncookies, self.synack_retries, self.abort_on_overflow = syncookies, synack_retries, abort_on_overflow
        self.fastopen, self.timestamps, self.listen, self.backlog = fastopen, timestamps, listen, backlog
        self.fastopen_qlen, self.app, self.settle, self.timed = fastopen_qlen, app, settle, timed
        self.pending_fix, self.deviation = pending_fix, deviation
        # family 6: IPv6 on the kernel target, both targets own SERVER_IP6
        # too and listen on [listen6]:80 besides the IPv4 listener.
        self.family = family
        self.listen6 = listen6 or SERVER_IP6
        self.counters = (COUNTERS6 if family == 6 else COUNTERS) + list(counters)

    def mark_text(self):
        marks = []
        if self.pending_fix:
            marks.append(f"[pending_fix: {self.pending_fix}]")
        if self.deviation:
            marks.append(f"[deviation: {', '.join(self.deviation)}; README]")
        return " ".join(marks)

    def judge(self, k, d):
        """(verdict, detail): match, differs, pending_fix, deviation or stale-mark.
        A deviation case must differ without its masks (else the mark is
        stale) and match with them."""
        def diff(a, b):
            return "\n".join(difflib.unified_diff(a, b, "kernel", "dlisten", n=2, lineterm=""))
        same = k.lines == d.lines
        mk, md = k.lines, d.lines
        for key in self.deviation:
            mk, md = DEVIATIONS[key](mk), DEVIATIONS[key](md)
        if self.pending_fix:
            # A pending case may carry deviations too: they stay once it is fixed.
            return "pending_fix", ("now matches the kernel: remove the pending_fix mark" if mk == md else diff(mk, md))
        if self.deviation:
            if same:
                return "stale-mark", "matches the kernel without its deviation masks: the mark is stale"
            if mk == md:
                return "deviation", diff(k.lines, d.lines)
            return "differs", diff(mk, md)
        return ("match", "") if same else ("differs", diff(k.lines, d.lines))


CASES = []


def case(**kw):
    def register(fn):
        CASES.append(Case(fn.__name__, fn, **kw))
        return fn
    return register


# ---- helpers ----

def synack_to(sport):
    return lambda f: f.tcp and f.dport == sport and f.flags & (SYN | ACK) == SYN | ACK


def open_request(t, sport, seq=1000, opts=None, **kw):
    """SYN; the SYN-ACK's (seq, tsval), zeros when none came."""
    t.send(syn(sport, seq, opts, **kw))
    sa = t.expect(synack_to(sport))
    return (sa.seq, sa.tsval or 0) if sa else (0, 0)


def final_ack(t, sport, seq, isn, tsecr, data=b"", flags="A", ts=True, tsval=TSVAL + 1):
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))] if ts else []
    t.send(tcp(sport, flags if not data else flags + "P", seq + 1, isn + 1, opts=opts, data=data, win=502))


def handshake(t, sport, seq=1000, data=b"", **kw):
    isn, tsv = open_request(t, sport, seq)
    final_ack(t, sport, seq, isn, tsv, data=data, **kw)
    return isn, tsv


# ---- SYN options and their echo ----

@case()
def syn_linux_options(t):
    t.send(syn(40000))
    t.wait(0.1)


@case()
def syn_no_options(t):
    t.send(syn(40001, opts=[]))
    t.wait(0.1)


@case()
def syn_mss_only(t):
    t.send(syn(40002, opts=[("MSS", 536)]))
    t.wait(0.1)


@case()
def syn_wscale_14_no_ts(t):
    t.send(syn(40003, opts=[("MSS", 1460), ("NOP", None), ("WScale", 14), ("SAckOK", b"")]))
    t.wait(0.1)


@case()
def syn_wscale_over_14(t):
    # RFC 7323 2.3: a shift above 14 is used as 14.
    t.send(syn(40004, opts=[("MSS", 1460), ("NOP", None), ("WScale", 15)]))
    t.wait(0.1)


@case()
def syn_timestamps_no_sack(t):
    t.send(syn(40005, opts=[("MSS", 1400), ("NOP", None), ("NOP", None), ("Timestamp", (TSVAL, 0))]))
    t.wait(0.1)


@case()
def syn_small_mss_unknown_option(t):
    t.send(syn(40006, opts=[("MSS", 88), (99, b"ab"), ("SAckOK", b"")]))
    t.wait(0.1)


@case()
def syn_ecn_setup(t):
    # ECE|CWR in the SYN: tcp_ecn=2 (the default) answers ECE in the SYN-ACK.
    t.send(tcp(40007, "SEC", 1000, opts=linux_opts()))
    t.wait(0.1)


@case()
def syn_with_data_no_tfo(t):
    t.send(syn(40008, data=b"early"))
    t.wait(0.1)


@case(timestamps=0)
def syn_timestamps_off(t):
    t.send(syn(40009))
    t.wait(0.1)


@case()
def syn_ipv4_nop_options(t):
    t.send(syn(40010, ip={"options": [IPOption(b"\x01\x01\x01\x00")]}))
    t.wait(0.1)


@case()
def syn_ipv4_router_alert(t):
    # Router alert (RFC 2113) is accepted and not echoed: a plain SYN-ACK.
    t.send(syn(40011, ip={"options": [IPOption(b"\x94\x04\x00\x00")]}))
    t.wait(0.1)


@case()
def syn_ipv4_record_route(t):
    # Record route with two free slots: the SYN-ACK echoes it with the
    # server's address twice (ip_options_compile on input, the echo on output).
    t.send(syn(40012, ip={"options": [IPOption(b"\x07\x0b\x04" + bytes(8) + b"\x00")]}))
    t.wait(0.1)


@case()
def syn_ipv4_loose_source_route(t):
    # accept_source_route is 0: dropped, unanswered.
    t.send(syn(40013, ip={"options": [IPOption(b"\x83\x07\x04" + bytes([198, 18, 0, 9]) + b"\x00")]}))
    t.wait(0.1)


@case()
def syn_ipv4_malformed_option(t):
    # Record route with a pointer below 4: a header error, answered with an
    # ICMP parameter problem pointing at byte 22.
    t.send(syn(40014, ip={"options": [IPOption(b"\x07\x07\x03" + bytes(4) + b"\x01")]}))
    t.wait(0.1)


# ---- closed ports (tcp_v4_send_reset) ----

@case()
def closed_syn(t):
    t.send(tcp(40100, "S", 1000, opts=linux_opts(), dport=CLOSED_PORT, ip={"tos": 0x10}))


@case()
def closed_syn_with_data(t):
    t.send(tcp(40101, "S", 1000, opts=linux_opts(), data=b"abc", dport=CLOSED_PORT))


@case()
def closed_ack(t):
    t.send(tcp(40102, "A", 1000, ack=5555, dport=CLOSED_PORT))


@case()
def closed_fin(t):
    t.send(tcp(40103, "F", 1000, dport=CLOSED_PORT))


@case()
def closed_fin_ack(t):
    t.send(tcp(40104, "FA", 1000, ack=9, dport=CLOSED_PORT))


@case()
def closed_syn_fin(t):
    t.send(tcp(40105, "SF", 1000, dport=CLOSED_PORT))


@case()
def closed_rst(t):
    t.send(tcp(40106, "R", 1000, dport=CLOSED_PORT))
    t.send(tcp(40107, "RA", 1000, ack=77, dport=CLOSED_PORT))


@case()
def closed_data(t):
    t.send(tcp(40108, "PA", 1000, ack=4242, data=b"GET / HTTP/1.0\r\n\r\n", dport=CLOSED_PORT))


@case()
def closed_no_flags(t):
    t.send(tcp(40109, "", 1000, dport=CLOSED_PORT))


@case(listen=False)
def closed_no_listener_at_all(t):
    t.send(tcp(40110, "S", 1000, opts=linux_opts()))


# ---- segments to the listener itself (tcp_rcv_state_process, TCP_LISTEN) ----

@case()
def listener_bare_ack(t):
    # No request and no recent cookie: the ACK is not checked as a cookie, RST.
    t.send(tcp(40200, "A", 1000, ack=123456))


@case()
def listener_syn_ack(t):
    t.send(tcp(40201, "SA", 1000, ack=99, opts=linux_opts()))


@case()
def listener_rst_fin_data(t):
    t.send(tcp(40202, "R", 1000))
    t.send(tcp(40203, "F", 1000))
    t.send(tcp(40204, "P", 1000, data=b"x"))


@case()
def listener_syn_fin(t):
    # "if (th->fin) goto discard" before conn_request.
    t.send(tcp(40205, "SF", 1000, opts=linux_opts()))


@case()
def listener_syn_rst(t):
    t.send(tcp(40206, "SR", 1000, opts=linux_opts()))


# ---- the final ACK and its variants (tcp_check_req) ----

@case(deviation=("established-window-and-ip-id", "fin-acked-at-once"))
def handshake_then_data_then_fin(t):
    isn, tsv = handshake(t, 40300)
    t.wait(0.05)
    t.send(tcp(40300, "PA", 1001, isn + 1, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 2, tsv))],
               data=b"hello", win=502))
    t.wait(0.1)
    t.send(tcp(40300, "FA", 1006, isn + 1, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 3, tsv))], win=502))
    t.wait(0.05)
    # The server's FIN acknowledged well before any retransmission of it
    # (a probe or RTO about 200 ms later), so how many FINs each side sent
    # does not depend on the machine's load.
    t.send(tcp(40300, "A", 1007, isn + 2, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 4, tsv))], win=502))
    t.wait(0.15)


@case(deviation=("established-window-and-ip-id",))
def final_ack_with_data(t):
    handshake(t, 40301, data=b"first bytes")
    t.wait(0.2)


@case()
def final_ack_wrong_ack_number(t):
    isn, tsv = open_request(t, 40302)
    t.send(tcp(40302, "A", 1001, isn + 5, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 1, tsv))]))
    t.wait(0.1)
    # The request is still there: the right ACK completes it.
    final_ack(t, 40302, 1000, isn, tsv, tsval=TSVAL + 2)


@case()
def final_ack_without_ack_flag(t):
    isn, tsv = open_request(t, 40303)
    t.send(tcp(40303, "P", 1001, 0, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 1, tsv))], data=b"z"))
    t.wait(0.1)
    final_ack(t, 40303, 1000, isn, tsv, tsval=TSVAL + 2)


@case()
def final_ack_seq_out_of_window(t):
    isn, tsv = open_request(t, 40304)
    t.send(tcp(40304, "A", 1001 + 200000, isn + 1, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 1, tsv))]))
    t.wait(0.1)


@case(counters=["TcpExtTSEcrRejected"])
def final_ack_bad_tsecr(t):
    # PAWS does not reject on TSecr; Linux checks the echoed value only for cookies.
    isn, tsv = open_request(t, 40305)
    final_ack(t, 40305, 1000, isn, tsv + 100000)
    t.wait(0.1)


@case(deviation=("established-window-and-ip-id", "fin-acked-at-once"))
def final_ack_fin(t):
    isn, tsv = open_request(t, 40306)
    final_ack(t, 40306, 1000, isn, tsv, flags="FA")
    t.wait(0.2)


# ---- duplicate SYN, RST and SYN to a request in SYN_RECV ----

@case()
def dup_syn_same_isn(t):
    open_request(t, 40400)
    t.send(syn(40400, 1000, linux_opts(TSVAL + 1)))
    t.wait(0.1)


@case()
def dup_syn_new_isn_in_window(t):
    open_request(t, 40401)
    t.send(syn(40401, 1000 + 10, linux_opts(TSVAL + 1)))
    t.wait(0.1)
    t.send(tcp(40401, "A", 1001, 1, win=502))  # is the request still there?


@case()
def dup_syn_new_isn_out_of_window(t):
    isn, tsv = open_request(t, 40402)
    t.send(syn(40402, 1000 + 500000, linux_opts(TSVAL + 1)))
    t.wait(0.1)
    final_ack(t, 40402, 1000, isn, tsv, tsval=TSVAL + 2)


@case()
def rst_to_request_at_rcv_nxt(t):
    isn, tsv = open_request(t, 40403)
    t.send(tcp(40403, "R", 1001))
    t.wait(0.1)
    final_ack(t, 40403, 1000, isn, tsv)  # gone: RST


@case()
def rst_to_request_in_window(t):
    isn, tsv = open_request(t, 40404)
    t.send(tcp(40404, "R", 1001 + 100))
    t.wait(0.1)
    final_ack(t, 40404, 1000, isn, tsv)


@case()
def rst_to_request_out_of_window(t):
    isn, tsv = open_request(t, 40405)
    t.send(tcp(40405, "R", 1001 + 500000))
    t.wait(0.1)
    final_ack(t, 40405, 1000, isn, tsv)


@case()
def rst_ack_to_request(t):
    isn, tsv = open_request(t, 40406)
    t.send(tcp(40406, "RA", 1001, isn + 1))
    t.wait(0.1)
    final_ack(t, 40406, 1000, isn, tsv)


# ---- the accept queue full at the final ACK (tcp_abort_on_overflow) ----

def fill_accept_queue(t, base):
    """With backlog 1 the accept queue takes two children (backlog+1) and
    the SYN queue two requests (a third SYN would get a cookie). Requests
    1 and 2, child 1, request 3, child 2 (the queue is now full), then the
    final ACK of request 3 finds the accept queue full."""
    r1, r2 = open_request(t, base), open_request(t, base + 1)
    final_ack(t, base, 1000, *r1)
    r3 = open_request(t, base + 2)
    final_ack(t, base + 1, 1000, *r2)
    final_ack(t, base + 2, 1000, *r3)
    t.wait(1.3)  # the SYN-ACK timer of a request that stayed



@case(app="hold", backlog=1, abort_on_overflow=0, timed=True)
def acceptq_full_abort_0(t):
    fill_accept_queue(t, 40500)


@case(app="hold", backlog=1, abort_on_overflow=1, timed=True)
def acceptq_full_abort_1(t):
    fill_accept_queue(t, 40510)


@case(app="hold", backlog=1, syncookies=0)
def acceptq_full_at_syn(t):
    # Two children queued (backlog+1), then a SYN: dropped (ListenOverflows).
    for i in range(2):
        handshake(t, 40520 + i)
        t.wait(0.05)
    t.send(syn(40522))
    t.wait(0.2)


# ---- the SYN queue and SYN cookies ----

@case(app="hold", backlog=2)
def synq_threshold_backlog_2(t):
    for i in range(5):
        t.send(syn(40600 + i))
        t.wait(0.05)


@case(app="hold", backlog=2, syncookies=0)
def synq_full_no_cookies(t):
    for i in range(5):
        t.send(syn(40610 + i))
        t.wait(0.05)


def cookie_handshake(t, sport, opts, ts):
    t.send(syn(sport, 1000, opts))
    sa = t.expect(synack_to(sport))
    isn, tsv = (sa.seq, sa.tsval or 0) if sa else (0, 0)
    final_ack(t, sport, 1000, isn, tsv, ts=ts, data=b"after cookie")
    t.wait(0.2)


@case(syncookies=2, deviation=("established-window-and-ip-id",))
def cookies_always_with_timestamps(t):
    cookie_handshake(t, 40700, linux_opts(), ts=True)


@case(syncookies=2, deviation=("established-window-and-ip-id",))
def cookies_always_without_timestamps(t):
    cookie_handshake(t, 40701, [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b"")], ts=False)


@case(syncookies=2, deviation=("established-window-and-ip-id",))
def cookies_always_mss_536(t):
    cookie_handshake(t, 40702, [("MSS", 536)], ts=False)


def flood_then_cookie(t, base, opts, ts):
    # backlog 2: the SYN queue overflows within five SYNs, whatever the
    # exact threshold; the last SYN's answer is a cookie on both sides.
    for i in range(5):
        t.send(syn(base + i, 1000, opts))
        t.wait(0.05)
    sport = base + 5
    t.send(syn(sport, 1000, opts))
    sa = t.expect(synack_to(sport))
    isn, tsv = (sa.seq, sa.tsval or 0) if sa else (0, 0)
    final_ack(t, sport, 1000, isn, tsv, ts=ts, data=b"x")
    t.wait(0.2)


def only(*names):
    """Compare only these counters (the SYN queue threshold is another case's)."""
    def register(c):
        c.counters = list(names)
    return register


@case(backlog=2, deviation=("established-window-and-ip-id",))
def cookies_on_overflow_with_timestamps(t):
    flood_then_cookie(t, 40710, linux_opts(), ts=True)


only("TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpPassiveOpens")(CASES[-1])


@case(backlog=2, deviation=("established-window-and-ip-id",))
def cookies_on_overflow_without_timestamps(t):
    flood_then_cookie(t, 40720, [("MSS", 1460), ("SAckOK", b"")], ts=False)


only("TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpPassiveOpens")(CASES[-1])


@case(syncookies=2)
def cookie_bad_ack(t):
    isn, tsv = open_request(t, 40730)
    final_ack(t, 40730, 1000, isn + 12345, tsv)
    t.wait(0.1)


@case(app="hold", backlog=2)
def cookies_on_overflow_bad_ack(t):
    # Cookies were sent a moment ago, so a bare ACK is checked as one: it fails.
    for i in range(5):
        t.send(syn(40740 + i))
    t.send(tcp(40745, "A", 1001, ack=123456))


only("TcpExtSyncookiesFailed", "TcpOutRsts", "TcpPassiveOpens")(CASES[-1])


@case(syncookies=0)
def cookies_off_bare_ack(t):
    t.send(tcp(40731, "A", 1000, ack=123456))


# ---- SYN-ACK retransmissions (tcp_synack_retries) ----

@case(synack_retries=2, timed=True, settle=0.1)
def synack_retries_2(t):
    # SYN-ACKs at 0, 1 and 3 s; the request dies at 7 s; then the ACK finds nothing.
    isn, tsv = open_request(t, 40800)
    t.wait(7.6)
    final_ack(t, 40800, 1000, isn, tsv)
    t.wait(0.2)


@case(synack_retries=1, timed=True, settle=0.1)
def synack_retries_1_acked_late(t):
    # Acked after the only retransmission, before the request dies (3 s).
    isn, tsv = open_request(t, 40801)
    t.wait(1.6)
    final_ack(t, 40801, 1000, isn, tsv)
    t.wait(0.2)


# ---- TCP Fast Open (RFC 7413); tcp_fastopen=3, TCP_FASTOPEN on the listener ----

def tfo_cookie(t, sport, opts_fn=tfo_opts, exp=False):
    """A cookie request; the cookie the SYN-ACK carried (b"" when none)."""
    t.send(syn(sport, 1000, opts_fn()))
    sa = t.expect(synack_to(sport))
    if not sa:
        return b""
    for k, v in sa.options:
        if k == 34:
            return v
        if k == 254 and v[:2] == b"\xf9\x89":
            return v[2:]
    return b""


@case(fastopen=3, fastopen_qlen=16)
def tfo_cookie_request(t):
    tfo_cookie(t, 40900)
    t.wait(0.1)


@case(fastopen=3, fastopen_qlen=16)
def tfo_cookie_and_data(t):
    cookie = tfo_cookie(t, 40901)
    t.send(syn(40902, 5000, tfo_opts(cookie), data=b"GET / tfo"))
    t.wait(0.3)


@case(fastopen=3, fastopen_qlen=16)
def tfo_cookie_without_data(t):
    cookie = tfo_cookie(t, 40903)
    t.send(syn(40904, 5000, tfo_opts(cookie)))
    t.wait(0.3)


@case(fastopen=3, fastopen_qlen=16)
def tfo_bad_cookie(t):
    t.send(syn(40905, 5000, tfo_opts(b"\x01\x02\x03\x04\x05\x06\x07\x08"), data=b"nope"))
    t.wait(0.3)


@case(fastopen=3, fastopen_qlen=16)
def tfo_experimental_option(t):
    cookie = tfo_cookie(t, 40906, tfo_exp_opts)
    t.send(syn(40907, 5000, tfo_exp_opts(cookie), data=b"exp"))
    t.wait(0.3)


@case(fastopen=3, fastopen_qlen=0)
def tfo_listener_without_fastopen(t):
    t.send(syn(40908, 1000, tfo_opts()))
    t.send(syn(40909, 5000, tfo_opts(b"\x01\x02\x03\x04\x05\x06\x07\x08"), data=b"nope"))
    t.wait(0.3)


@case(fastopen=3, fastopen_qlen=1)
def tfo_fastopen_queue_full(t):
    # qlen 1: the first TFO child holds the fast-open queue until its final
    # ACK; the second TFO SYN falls back to a plain handshake.
    cookie = tfo_cookie(t, 40911)
    t.send(syn(40912, 5000, tfo_opts(cookie), data=b"first"))
    t.send(syn(40913, 6000, tfo_opts(cookie), data=b"second"))
    t.wait(0.2)


@case(fastopen=0x203, fastopen_qlen=16)
def tfo_no_cookie_needed(t):
    # 0x200 (TFO_SERVER_COOKIE_NOT_REQD): data in a SYN without any cookie.
    t.send(syn(40910, 5000, linux_opts(), data=b"no cookie"))
    t.wait(0.3)


@case()
def listener_ack_with_data(t):
    t.send(tcp(40207, "PA", 1000, ack=777, data=b"hello?"))


# ---- malformed IPv4 and TCP ----

def set_ip_csum(b, v):
    b[24:26] = struct.pack("!H", v)


@case()
def bad_ip_checksum(t):
    t.send(raw_bytes(syn(41000), lambda b: set_ip_csum(b, struct.unpack("!H", b[24:26])[0] ^ 0x5555)))


@case()
def bad_tcp_checksum(t):
    t.send(tcp(41001, "S", 1000, opts=linux_opts(), chksum=0x1234))


@case()
def ip_header_too_short(t):
    t.send(raw_bytes(syn(41002), lambda b: b.__setitem__(14, 0x44)))  # ihl 4


@case()
def ip_total_length_beyond_frame(t):
    t.send(syn(41003, ip={"len": 200}))


@case()
def ip_version_6_in_ipv4_frame(t):
    t.send(raw_bytes(syn(41004), lambda b: b.__setitem__(14, 0x65)))


@case()
def tcp_data_offset_too_small(t):
    t.send(tcp(41005, "S", 1000, dataofs=4))


@case()
def tcp_data_offset_beyond_segment(t):
    t.send(tcp(41006, "S", 1000, dataofs=15))


@case()
def ip_dst_not_ours(t):
    t.send(tcp(41007, "S", 1000, opts=linux_opts(), ip={"dst": OTHER_IP}))


@case()
def eth_dst_not_ours(t):
    p = syn(41008)
    p.dst = OTHER_MAC
    t.send(p)


@case()
def ip_source_limited_broadcast(t):
    t.send(tcp(41010, "S", 1000, opts=linux_opts(), ip={"src": "255.255.255.255"}))


@case()
def ip_source_multicast(t):
    t.send(tcp(41012, "S", 1000, opts=linux_opts(), ip={"src": "224.0.0.5"}))


# ---- ARP, ICMP, UDP, other protocols (what a Linux host answers) ----

@case()
def arp_request_for_us(t):
    t.send(arp_request())


@case()
def arp_request_for_another(t):
    t.send(arp_request(OTHER_IP))


@case()
def arp_request_unicast(t):
    t.send(arp_request(dst=SERVER_MAC))


@case()
def icmp_echo_request(t):
    p = icmp_echo()
    p[IP].tos = 0x28
    t.send(p)


@case()
def icmp_echo_record_route(t):
    # ping -R: the reply carries the record route back (icmp_reply's echo).
    p = icmp_echo()
    p[IP].options = [IPOption(b"\x07\x0b\x04" + bytes(8) + b"\x00")]
    t.send(p)


@case()
def closed_syn_record_route(t):
    # The RST echoes the record route too (ip_send_unicast_reply).
    t.send(tcp(40108, "S", 1000, opts=linux_opts(), dport=CLOSED_PORT,
               ip={"options": [IPOption(b"\x07\x0b\x04" + bytes(8) + b"\x00")]}))


@case()
def icmp_echo_bad_checksum(t):
    t.send(icmp_echo(chksum=0x1234))


@case(counters=["IcmpInDestUnreachs"], deviation=("icmp-errors-ignored",))
def icmp_dest_unreachable_received(t):
    quoted = bytes(tcp(40000, "S", 1, dport=80))[14:14 + 28]
    p = eth() / IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP(type=3, code=3) / Raw(quoted)
    t.send(p)


@case()
def udp_closed_port(t):
    t.send(udp(41100, 9, b"hello"))


@case()
def udp_bad_checksum(t):
    t.send(udp(41101, 9, b"hello", chksum=0x1234))


@case()
def udp_zero_checksum(t):
    t.send(udp(41102, 9, b"hello", chksum=0))


@case()
def unknown_ip_protocol(t):
    t.send(ip_proto(253))


@case()
def tcp_segment_shorter_than_header(t):
    t.send(eth() / IP(src=CLIENT_IP, dst=SERVER_IP, proto=6) / Raw(bytes(tcp(41011, "S", 1000))[34:34 + 19]))


@case()
def udp_length_beyond_datagram(t):
    t.send(udp(41103, 9, b"hello", len=40))


# ---- IPv6: the host (ip6_input.c, icmp.c, ndisc.c, exthdrs.c) ----
#
# The IPv6 twins of the cases above, family=6: both targets own 2001:2::1
# too, the tester is 2001:2::2.

V6 = dict(family=6)


@case(**V6)
def v6_icmp_echo_request(t):
    # icmpv6_echo_reply: the traffic class and code reflected, hop limit 64.
    t.send(icmp6_echo(ip={"tc": 0x28, "hlim": 9}, code=9))


@case(**V6)
def v6_icmp_echo_bad_checksum(t):
    t.send(icmp6_echo(cksum=0x1234))


@case(**V6)
def v6_icmp_echo_to_all_nodes(t):
    # echo_ignore_multicast 0: a request to ff02::1 is answered, from our address.
    p = icmp6_echo(ip={"dst": ALL_NODES})
    p.dst = ALL_NODES_MAC
    t.send(p)


@case(**V6)
def v6_icmp_echo_from_unspecified(t):
    # No address to answer to.
    t.send(icmp6_echo(ip={"src": "::"}))


@case(**V6)
def v6_icmp_unknown_informational(t):
    # icmpv6_rcv: an unknown informational type (128 and above) is dropped
    # silently (RFC 4443 2.4 (b)).
    t.send(eth() / IPv6(src=CLIENT_IP6, dst=SERVER_IP6) / ICMPv6Unknown(type=200, msgbody=b"abcd"))


@case(counters=["Icmp6InDestUnreachs"], deviation=("icmp-errors-ignored",), **V6)
def v6_icmp_dest_unreachable_received(t):
    # Port unreachable quoting a segment of ours: Linux hands it to
    # tcp_v6_err, which finds no socket and counts Icmp6InErrors.
    quoted = bytes(tcp6(80, "SA", 1, ack=1001, dport=42000))[14:14 + 60]
    t.send(eth() / IPv6(src=CLIENT_IP6, dst=SERVER_IP6) / ICMPv6DestUnreach(code=4) / Raw(quoted))


@case(**V6)
def v6_ns_multicast(t):
    # Address resolution: to the solicited-node group, with the sender's
    # link-layer address; NA S|O with our link-layer address (ndisc_recv_ns).
    t.send(neighbor_solicit())


@case(**V6)
def v6_ns_unicast(t):
    # Reachability confirmation: unicast, no link-layer option; NA S only,
    # without the option (override and inc_opt are the multicast ones).
    t.send(neighbor_solicit(multicast=False, lladdr=False))


@case(**V6)
def v6_ns_unicast_with_lladdr(t):
    t.send(neighbor_solicit(multicast=False))


@case(**V6)
def v6_ns_dad(t):
    # Someone's DAD for our address (source ::): defended to ff02::1, O only.
    t.send(neighbor_solicit(src="::", lladdr=False))


@case(**V6)
def v6_ns_multicast_no_lladdr_known_sender(t):
    # Without the option, a multicast NS is answered only if the sender is
    # already a neighbour (__neigh_lookup with create = 0): an echo first.
    t.send(icmp6_echo())
    t.send(neighbor_solicit(lladdr=False))


@case(**V6)
def v6_ns_for_another(t):
    t.send(neighbor_solicit(OTHER_IP6))


# To a group MAC we are not in: a veth filters no multicast, so the kernel
# counts the packet at IPv6 (Ip6InReceives, Ip6InMcastPkts) before finding
# the group is not ours; a NIC's multicast filter, and dlisten's, drops it
# before IPv6 sees it. The frames (none) and the rest are compared.
CASES[-1].counters = [n for n in COUNTERS6 if n not in ("Ip6InReceives", "Ip6InMcastPkts")]


@case(**V6)
def v6_ns_hop_limit_not_255(t):
    # RFC 4861 7.1.1: a hop limit below 255 came through a router, invalid.
    p = neighbor_solicit()
    p[IPv6].hlim = 64
    t.send(p)


# ---- IPv6: closed ports (tcp_v6_send_reset, __udp6_lib_rcv) ----

@case(**V6)
def v6_closed_syn(t):
    # The RST reflects the traffic class without its ECN bits.
    t.send(tcp6(42100, "S", 1000, opts=linux_opts(mss=1440), dport=CLOSED_PORT, ip={"tc": 0x2b}))


@case(**V6)
def v6_closed_syn_with_data(t):
    t.send(tcp6(42101, "S", 1000, opts=linux_opts(mss=1440), data=b"abc", dport=CLOSED_PORT))


@case(**V6)
def v6_closed_ack(t):
    t.send(tcp6(42102, "A", 1000, ack=5555, dport=CLOSED_PORT))


@case(**V6)
def v6_closed_fin(t):
    t.send(tcp6(42103, "F", 1000, dport=CLOSED_PORT))


@case(**V6)
def v6_closed_fin_ack(t):
    t.send(tcp6(42104, "FA", 1000, ack=9, dport=CLOSED_PORT))


@case(**V6)
def v6_closed_syn_fin(t):
    t.send(tcp6(42105, "SF", 1000, dport=CLOSED_PORT))


@case(**V6)
def v6_closed_rst(t):
    t.send(tcp6(42106, "R", 1000, dport=CLOSED_PORT))
    t.send(tcp6(42107, "RA", 1000, ack=77, dport=CLOSED_PORT))


@case(**V6)
def v6_closed_data(t):
    t.send(tcp6(42108, "PA", 1000, ack=4242, data=b"GET / HTTP/1.0\r\n\r\n", dport=CLOSED_PORT))


@case(**V6)
def v6_closed_no_flags(t):
    t.send(tcp6(42109, "", 1000, dport=CLOSED_PORT))


@case(listen=False, **V6)
def v6_closed_no_listener_at_all(t):
    t.send(syn6(42110))


@case(**V6)
def v6_udp_closed_port(t):
    t.send(udp6(42111, 9, b"hello"))


@case(**V6)
def v6_udp_bad_checksum(t):
    t.send(udp6(42112, 9, b"hello", chksum=0x1234))


@case(**V6)
def v6_udp_zero_checksum(t):
    # RFC 8200 8.1: no checksum is not allowed over IPv6; dropped as an error.
    t.send(udp6(42113, 9, b"hello", chksum=0))


@case(**V6)
def v6_udp_length_beyond_datagram(t):
    t.send(udp6(42114, 9, b"hello", len=40))


# ---- IPv6: malformed headers and extension headers ----

@case(**V6)
def v6_bad_tcp_checksum(t):
    t.send(tcp6(42200, "S", 1000, opts=linux_opts(mss=1440), chksum=0x1234))


@case(**V6)
def v6_tcp_data_offset_too_small(t):
    t.send(tcp6(42201, "S", 1000, dataofs=4))


@case(**V6)
def v6_tcp_segment_shorter_than_header(t):
    t.send(ip6_next_header(6, bytes(tcp6(42202, "S", 1000))[54:54 + 19]))


@case(**V6)
def v6_payload_length_beyond_frame(t):
    t.send(syn6(42203, ip={"plen": 200}))


@case(**V6)
def v6_version_4_in_ipv6_frame(t):
    t.send(raw_bytes(syn6(42204), lambda b: b.__setitem__(14, 0x40 | (b[14] & 0x0F))))


@case(**V6)
def v6_dst_not_ours(t):
    # Forwarding off: someone else's address is dropped (Ip6InAddrErrors).
    t.send(icmp6_echo(ip={"dst": OTHER_IP6}))


@case(**V6)
def v6_source_multicast(t):
    t.send(icmp6_echo(ip={"src": "ff02::5"}))


@case(**V6)
def v6_unknown_next_header(t):
    # No handler for 253: parameter problem 1 pointing at the next header field.
    t.send(ip6_next_header(253))


@case(**V6)
def v6_hbh_option_skip(t):
    # Type bits 00: skipped, the echo behind it answered.
    t.send(icmp6_echo(ext=IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x1e, optdata=b"\0\0")])))


@case(**V6)
def v6_hbh_option_discard_icmp(t):
    # Type bits 10 (ip6_tlvopt_unknown): discard, parameter problem 2
    # pointing at the option's type byte (offset 42).
    t.send(icmp6_echo(ext=IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x9e, optdata=b"\0\0")])))


@case(**V6)
def v6_hbh_option_discard_icmp_to_multicast(t):
    # 10 reports even about a packet to a group; 11 (the next step) does not.
    for otype in (0x9e, 0xde):
        p = icmp6_echo(ip={"dst": ALL_NODES}, ext=IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=otype, optdata=b"\0\0")]))
        p.dst = ALL_NODES_MAC
        t.send(p)


@case(**V6)
def v6_hbh_not_first(t):
    # A hop-by-hop header after a destination options header: parameter
    # problem 1 (unrecognised next header) pointing at the dstopt's next header.
    ext = IPv6ExtHdrDestOpt(nh=0) / IPv6ExtHdrHopByHop()
    t.send(icmp6_echo(ext=ext))


@case(**V6)
def v6_dstopt_discard_icmp(t):
    t.send(icmp6_echo(ext=IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x9e, optdata=b"\0\0")])))


@case(**V6)
def v6_routing_header_type0(t):
    # RFC 5095: type 0 with segments left is refused, parameter problem 0
    # pointing at the routing type (ipv6_rthdr_rcv).
    t.send(icmp6_echo(ext=IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:2::5"])))


@case(**V6)
def v6_routing_header_no_segments_left(t):
    # Segments left 0: the header is passed over, the echo answered.
    t.send(icmp6_echo(ext=IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:2::5"])))


@case(**V6)
def v6_atomic_fragment(t):
    # Offset 0 and no M (RFC 6946): not a fragment at all, the echo answered.
    t.send(icmp6_echo(ext=IPv6ExtHdrFragment(offset=0, m=0, id=7)))


@case(**V6)
def v6_first_fragment(t):
    # A first fragment whose rest never comes: nothing answered within the
    # case (Linux queues it for 60 s; dlisten counts it failed at once).
    t.send(icmp6_echo(ext=IPv6ExtHdrFragment(offset=0, m=1, id=8)))


@case(**V6)
def v6_fragment_not_multiple_of_8(t):
    # M set and a length not a multiple of 8: parameter problem 0 pointing
    # at the payload length (ip6_frag_queue).
    t.send(icmp6_echo(data=b"pingdat", ext=IPv6ExtHdrFragment(offset=0, m=1, id=9)))


# ---- IPv6: the listen path (tcp_v6_conn_request, tcp_v6_syn_recv_sock) ----
#
# MSS 1440 on a 1500-byte link (1500 - 40 - 20).

V6_LISTEN = dict(family=6)


def synack6_to(sport):
    return lambda f: f.tcp and f.ip6 and f.dport == sport and f.flags & (SYN | ACK) == SYN | ACK


def open_request6(t, sport, seq=1000, opts=None, **kw):
    t.send(syn6(sport, seq, opts, **kw))
    sa = t.expect(synack6_to(sport))
    return (sa.seq, sa.tsval or 0) if sa else (0, 0)


def final_ack6(t, sport, seq, isn, tsecr, data=b"", flags="A", ts=True, tsval=TSVAL + 1):
    opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))] if ts else []
    t.send(tcp6(sport, flags if not data else flags + "P", seq + 1, isn + 1, opts=opts, data=data, win=502))


@case(**V6_LISTEN)
def v6_syn_linux_options(t):
    t.send(syn6(42300))
    t.wait(0.1)


@case(**V6_LISTEN)
def v6_syn_no_options(t):
    t.send(syn6(42301, opts=[]))
    t.wait(0.1)


@case(**V6_LISTEN)
def v6_syn_mss_only(t):
    t.send(syn6(42302, opts=[("MSS", 536)]))
    t.wait(0.1)


@case(**V6_LISTEN)
def v6_syn_wscale_over_14(t):
    t.send(syn6(42303, opts=[("MSS", 1440), ("NOP", None), ("WScale", 15)]))
    t.wait(0.1)


@case(**V6_LISTEN)
def v6_syn_timestamps_no_sack(t):
    t.send(syn6(42304, opts=[("MSS", 1400), ("NOP", None), ("NOP", None), ("Timestamp", (TSVAL, 0))]))
    t.wait(0.1)


@case(listen6="::", **V6_LISTEN)
def v6_syn_to_any_address_listener(t):
    # A listener on [::]:80 (IPV6_V6ONLY) takes the SYN to 2001:2::1.
    t.send(syn6(42305))
    t.wait(0.1)


@case(deviation=("established-window-and-ip-id", "fin-acked-at-once"), **V6_LISTEN)
def v6_handshake_then_data_then_fin(t):
    isn, tsv = open_request6(t, 42310)
    final_ack6(t, 42310, 1000, isn, tsv)
    t.wait(0.05)
    ts = lambda k: [("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + k, tsv))]  # noqa: E731
    t.send(tcp6(42310, "PA", 1001, isn + 1, opts=ts(2), data=b"hello", win=502))
    t.wait(0.1)
    t.send(tcp6(42310, "FA", 1006, isn + 1, opts=ts(3), win=502))
    t.wait(0.05)
    t.send(tcp6(42310, "A", 1007, isn + 2, opts=ts(4), win=502))
    t.wait(0.15)


@case(deviation=("established-window-and-ip-id",), **V6_LISTEN)
def v6_final_ack_with_data(t):
    isn, tsv = open_request6(t, 42311)
    final_ack6(t, 42311, 1000, isn, tsv, data=b"first bytes")
    t.wait(0.2)


@case(**V6_LISTEN)
def v6_final_ack_wrong_ack_number(t):
    isn, tsv = open_request6(t, 42312)
    t.send(tcp6(42312, "A", 1001, isn + 5, opts=[("NOP", None), ("NOP", None), ("Timestamp", (TSVAL + 1, tsv))]))
    t.wait(0.1)
    final_ack6(t, 42312, 1000, isn, tsv, tsval=TSVAL + 2)


def cookie_handshake6(t, sport, opts, ts):
    isn, tsv = open_request6(t, sport, 1000, opts)
    final_ack6(t, sport, 1000, isn, tsv, ts=ts, data=b"after cookie")
    t.wait(0.2)


@case(syncookies=2, deviation=("established-window-and-ip-id",), **V6_LISTEN)
def v6_cookies_always_with_timestamps(t):
    cookie_handshake6(t, 42320, linux_opts(mss=1440), ts=True)


@case(syncookies=2, deviation=("established-window-and-ip-id",), **V6_LISTEN)
def v6_cookies_always_without_timestamps(t):
    cookie_handshake6(t, 42321, [("MSS", 1440), ("NOP", None), ("WScale", 7), ("SAckOK", b"")], ts=False)


@case(syncookies=2, **V6_LISTEN)
def v6_cookie_bad_ack(t):
    isn, tsv = open_request6(t, 42322)
    final_ack6(t, 42322, 1000, isn + 12345, tsv)
    t.wait(0.1)


@case(**V6)
def v6_listener_bare_ack(t):
    t.send(tcp6(42330, "A", 1000, ack=123456))


@case(**V6)
def v6_listener_syn_ack(t):
    t.send(tcp6(42331, "SA", 1000, ack=99, opts=linux_opts(mss=1440)))


@case(**V6_LISTEN)
def v6_listener_rst_fin_data(t):
    t.send(tcp6(42332, "R", 1000))
    t.send(tcp6(42333, "F", 1000))
    t.send(tcp6(42334, "P", 1000, data=b"x"))


@case(**V6)
def v6_listener_ack_with_data(t):
    t.send(tcp6(42335, "PA", 1000, ack=777, data=b"hello?"))


@case(**V6_LISTEN)
def v6_rst_to_request_at_rcv_nxt(t):
    isn, tsv = open_request6(t, 42336)
    t.send(tcp6(42336, "R", 1001))
    t.wait(0.1)
    final_ack6(t, 42336, 1000, isn, tsv)
