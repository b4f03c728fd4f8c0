"""Parsing and normalising what a target answered, so that the kernel's and
dlisten's answers compare equal exactly when they behave the same.

A frame becomes one line: protocol, ports, flags, sequence and
acknowledgment numbers as relations (S0+1: the target's first ISN in this
flow plus one; C0+4: the client's ISN plus four; A0: the first ack value the
client sent), the window, the TCP options in order with the timestamps as
relations (TSval nz/0, TSecr T+k: the client's k-th TSval), payload, the IP
header fields that are policy (TOS, TTL, DF, ID zero or not; over IPv6 the
addresses, traffic class, hop limit, flow label zero or not, extension headers
and a multicast Ethernet destination) and whether every checksum is right.
ICMPv6 reads as echo (identifier, sequence, data), neighbour discovery (the
R/S/O flags, target, options) or an error (what it quotes); the MLD reports
and router solicitations a Linux host sends unasked are left out. Frames are grouped by the step (client frame) after which
they arrived; timed cases add the arrival time since the first step rounded
to 0.5 s (answers within 0.2 s of their step are "now"). The application's events become one line each (per peer: accept,
the bytes read, eof or reset); counters are compared by their nstat names.
"""
import ipaddress
import math
import re
import struct
from types import SimpleNamespace

IMMEDIATE = 0.2  # seconds: an answer this soon after a step is that step's
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 1, 2, 4, 8, 16, 32, 64, 128
FLAG_NAMES = [(FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"), (ECE, "E"), (CWR, "C")]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip4(b):
    return ".".join(str(x) for x in b)


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def tcp_options(b):
    """[(kind, value bytes)] in order; a malformed tail becomes ("bad", rest)."""
    out, i = [], 0
    while i < len(b):
        kind = b[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            continue
        if i + 1 >= len(b) or b[i + 1] < 2 or i + b[i + 1] > len(b):
            out.append(("bad", b[i:]))
            break
        out.append((kind, b[i + 2:i + b[i + 1]]))
        i += b[i + 1]
    return out


def parse(data):
    """A frame as fields (every layer we know); `.kind` says which."""
    f = SimpleNamespace(kind="eth", raw=data, len=len(data), tcp=False)
    if len(data) < 14:
        f.kind = "runt"
        return f
    f.eth_dst, f.eth_src, f.ethertype = mac(data[0:6]), mac(data[6:12]), struct.unpack("!H", data[12:14])[0]
    p = data[14:]
    if f.ethertype == 0x0806 and len(p) >= 28:
        f.kind = "arp"
        f.arp_op = struct.unpack("!H", p[6:8])[0]
        f.sha, f.spa, f.tha, f.tpa = mac(p[8:14]), ip4(p[14:18]), mac(p[18:24]), ip4(p[24:28])
        return f
    if f.ethertype == 0x86DD and len(p) >= 40:
        return _ipv6(f, p)
    if f.ethertype != 0x0800 or len(p) < 20:
        return f
    ihl = (p[0] & 15) * 4
    f.kind, f.ip6 = "ipv4", False
    f.ip_tos, f.ip_len, f.ip_id = p[1], struct.unpack("!H", p[2:4])[0], struct.unpack("!H", p[4:6])[0]
    frag = struct.unpack("!H", p[6:8])[0]
    f.ip_df, f.ip_frag = bool(frag & 0x4000), frag & 0x3FFF
    f.ip_ttl, f.proto = p[8], p[9]
    f.ip_src, f.ip_dst = ip4(p[12:16]), ip4(p[16:20])
    f.ip_opts = p[20:ihl]
    f.ip_bytes = p[:f.ip_len]
    f.csum_ok = csum(p[:ihl]) == 0xFFFF
    l4 = p[ihl:f.ip_len]
    pseudo = p[12:20] + struct.pack("!BBH", 0, f.proto, len(l4))
    if f.proto == 1 and len(l4) >= 8:
        f.kind = "icmp"
        f.icmp_type, f.icmp_code = l4[0], l4[1]
        f.icmp_rest = l4[4:8]
        f.payload = l4[8:]
        f.csum_ok = f.csum_ok and csum(l4) == 0xFFFF
        return f
    return _l4(f, l4, pseudo)


# Extension headers a received IPv6 packet may carry before its upper layer
# (hop-by-hop, routing, fragment, destination options): next header and length.
IPV6_EXT = {0, 43, 44, 60}


def _ipv6(f, p):
    vtf, plen, nh, f.ip6_hop = struct.unpack("!IHBB", p[:8])
    f.kind, f.ip6 = "ipv6", True
    f.ip6_tc, f.ip6_fl = (vtf >> 20) & 0xFF, vtf & 0xFFFFF
    f.ip_src, f.ip_dst = str(ipaddress.IPv6Address(p[8:24])), str(ipaddress.IPv6Address(p[24:40]))
    f.ip_bytes = p[:40 + plen]
    f.ip6_ext = []
    off, end = 40, 40 + plen
    while nh in IPV6_EXT and off + 8 <= end:
        f.ip6_ext.append(nh)
        nh, hlen = p[off], (8 if nh == 44 else (p[off + 1] + 1) * 8)
        off += hlen
    f.proto, f.csum_ok = nh, True
    l4 = p[off:end]
    pseudo = p[8:40] + struct.pack("!IxxxB", len(l4), nh)
    if nh == 58 and len(l4) >= 4:
        f.kind = "icmp6"
        f.icmp_type, f.icmp_code = l4[0], l4[1]
        f.icmp_rest = l4[4:8]
        f.payload = l4[8:]
        f.csum_ok = csum(pseudo + l4) == 0xFFFF
        return f
    return _l4(f, l4, pseudo)


def _l4(f, l4, pseudo):
    """TCP or UDP over either IP version (`pseudo`: its pseudo-header)."""
    if f.proto == 6 and len(l4) >= 20:
        f.kind, f.tcp = "tcp", True
        f.sport, f.dport, f.seq, f.ack = struct.unpack("!HHII", l4[:12])
        doff = (l4[12] >> 4) * 4
        f.flags, f.win, f.urg = l4[13], struct.unpack("!H", l4[14:16])[0], struct.unpack("!H", l4[18:20])[0]
        f.options = tcp_options(l4[20:doff])
        f.payload = l4[doff:]
        f.csum_ok = f.csum_ok and csum(pseudo + l4) == 0xFFFF
        f.tsval = f.tsecr = None
        for k, v in f.options:
            if k == 8 and len(v) == 8:
                f.tsval, f.tsecr = struct.unpack("!II", v)
    elif f.proto == 17 and len(l4) >= 8:
        f.kind = "udp"
        f.sport, f.dport, f.udp_len, uc = struct.unpack("!HHHH", l4[:8])
        f.payload = l4[8:]
        # A zero checksum is "none" over IPv4 only (RFC 8200 8.1).
        f.csum_ok = f.csum_ok and ((uc == 0 and not f.ip6) or csum(pseudo + l4) == 0xFFFF)
    return f


def flags_str(v):
    return "".join(n for bit, n in FLAG_NAMES if v & bit) or "none"


def rel(v, bases):
    """0, or v as `name+offset` of the nearest base within 64 KiB, else ?."""
    if v == 0:
        return "0"
    best = None
    for name, b in bases:
        d = (v - b) & 0xFFFFFFFF
        if d >= 1 << 31:
            d -= 1 << 32
        if abs(d) <= 65536 and (best is None or abs(d) < abs(best[1])):
            best = (name, d)
    if best:
        return best[0] + (f"{best[1]:+d}" if best[1] else "")
    return "?"


class Flow:
    """The named values of one 4-tuple: client ISNs (C), client TSvals (T),
    client ack values (A), target ISNs (S)."""

    def __init__(self):
        self.c, self.t, self.a, self.s = [], [], [], []

    @staticmethod
    def _add(lst, prefix, v):
        for name, b in lst:
            if b == v:
                return name
        name = f"{prefix}{len(lst)}"
        lst.append((name, v))
        return name

    def sent(self, f):
        if f.flags & SYN or not self.c:
            self._add(self.c, "C", f.seq)
        if f.tsval is not None and not self.t:
            self.t.append(("T", f.tsval))
        if f.flags & ACK and f.ack:
            self._add(self.a, "A", f.ack)


def option_str(kind, v, flow):
    if kind == 0:
        return "EOL"
    if kind == 1:
        return "NOP"
    if kind == 2 and len(v) == 2:
        return f"MSS:{struct.unpack('!H', v)[0]}"
    if kind == 3 and len(v) == 1:
        return f"WS:{v[0]}"
    if kind == 4 and not v:
        return "SACKOK"
    if kind == 8 and len(v) == 8:
        tsval, tsecr = struct.unpack("!II", v)
        return f"TS:{'nz' if tsval else '0'},{rel(tsecr, flow.t)}"
    if kind == 34:
        # Same key on both sides: the cookie itself is compared.
        return f"TFO:{v.hex() or '-'}"
    if kind == 254 and v[:2] == b"\xf9\x89":
        return f"EXP-TFO:{v[2:].hex() or '-'}"
    return f"opt{kind}:{v.hex()}"


def ip_str(f):
    if f.ip6:
        s = f"{f.ip_src}>{f.ip_dst} tc={f.ip6_tc:#x} hop={f.ip6_hop} fl={'0' if f.ip6_fl == 0 else 'nz'}"
        if f.ip6_ext:
            s += " ext=" + ",".join(str(h) for h in f.ip6_ext)
        if int(f.eth_dst[:2], 16) & 1:
            s += f" eth={f.eth_dst}"
        return s
    s = f"tos={f.ip_tos:#x} ttl={f.ip_ttl} {'DF' if f.ip_df else 'noDF'} id={'0' if f.ip_id == 0 else 'nz'}"
    if f.ip_opts:
        s += f" ipopts={f.ip_opts.hex()}"
    if f.ip_frag:
        s += f" frag={f.ip_frag:#x}"
    return s


# ICMPv6 a Linux host sends of its own accord on a link: MLD queries and
# reports (130-132, 143; RFC 2710, RFC 3810) and router solicitations (133).
# Not answers to anything a case sent; dlisten sends none of them.
ICMP6_CHATTER = {130, 131, 132, 133, 143}
NA_FLAGS = ((0x80, "R"), (0x40, "S"), (0x20, "O"))


def nd_options(b):
    """Neighbour discovery options (RFC 4861 4.6) as text: sll/tll with the
    link-layer address, other types by number."""
    out, i = [], 0
    while i + 2 <= len(b):
        kind, n = b[i], b[i + 1] * 8
        if n == 0 or i + n > len(b):
            out.append(f"BAD:{b[i:].hex()}")
            break
        v = b[i + 2:i + n]
        out.append(f"{ {1: 'sll', 2: 'tll'}[kind]}:{mac(v[:6])}" if kind in (1, 2) and n == 8 else f"nd{kind}:{v.hex()}")
        i += n
    return ",".join(out)


def quote_str(f, sent_ip):
    """An ICMP error's quoted packet: which step's packet it is, whole or cut."""
    q = f.payload
    which = [i for i, b in enumerate(sent_ip) if q and b.startswith(q)]
    whole = [i for i in which if len(sent_ip[i]) == len(q)]
    return f"rest={f.icmp_rest.hex()} quote={len(q)}B" + (
        " of step %d%s" % (which[-1], " (whole)" if whole else "") if which else " (not ours)")


def icmp6_str(f, sent_ip):
    t = f.icmp_type
    s = f"icmp6 {t}/{f.icmp_code}"
    if t in (128, 129) and len(f.icmp_rest) == 4:
        ident, seq = struct.unpack("!HH", f.icmp_rest)
        return f"{s} id={ident} seq={seq} data={f.payload.hex()}"
    if t in (135, 136) and len(f.payload) >= 16:
        target = ipaddress.IPv6Address(f.payload[:16])
        flags = "".join(n for bit, n in NA_FLAGS if f.icmp_rest[0] & bit) if t == 136 else ""
        reserved = f" reserved={f.icmp_rest.hex()}" if (t == 135 and any(f.icmp_rest)) or (t == 136 and (f.icmp_rest[0] & 0x1F or any(f.icmp_rest[1:]))) else ""
        return f"{s} {'na' if t == 136 else 'ns'} flags={flags or '-'} target={target} [{nd_options(f.payload[16:])}]{reserved}"
    if t < 128:
        return f"{s} {quote_str(f, sent_ip)}"
    return f"{s} rest={f.icmp_rest.hex()} data={f.payload[:32].hex()}"


def describe(f, flows, sent_ip):
    """One received frame as its normalised line, None for link chatter."""
    bad = "" if getattr(f, "csum_ok", True) else " CSUM-BAD"
    if f.kind == "arp":
        return f"arp op={f.arp_op} {f.sha} {f.spa} -> {f.tha} {f.tpa} (eth to {f.eth_dst})"
    if f.kind == "tcp":
        fl = flows.setdefault(("tcp", f.dport, f.sport), Flow())
        if f.flags & SYN:
            seq = Flow._add(fl.s, "S", f.seq)
        else:
            seq = rel(f.seq, fl.s + fl.a)
        ack = rel(f.ack, fl.c) if f.flags & ACK else ("0" if f.ack == 0 else "?")
        opts = ",".join(option_str(k, v, fl) if k != "bad" else f"BAD:{v.hex()}" for k, v in f.options)
        data = f" data={len(f.payload)}:{f.payload[:32].hex()}" if f.payload else ""
        urg = f" urg={f.urg}" if f.urg else ""
        return (f"tcp {f.sport}>{f.dport} {flags_str(f.flags)} seq={seq} ack={ack} win={f.win}"
                f" [{opts}]{data}{urg} | {ip_str(f)}{bad}")
    if f.kind == "icmp":
        s = f"icmp {f.icmp_type}/{f.icmp_code}"
        if f.icmp_type == 0:
            ident, seq = struct.unpack("!HH", f.icmp_rest)
            s += f" id={ident} seq={seq} data={f.payload.hex()}"
        else:
            s += " " + quote_str(f, sent_ip)
        return f"{s} | {ip_str(f)}{bad}"
    if f.kind == "icmp6":
        if f.icmp_type in ICMP6_CHATTER:
            return None
        return f"{icmp6_str(f, sent_ip)} | {ip_str(f)}{bad}"
    if f.kind == "udp":
        return f"udp {f.sport}>{f.dport} len={f.udp_len} data={f.payload.hex()} | {ip_str(f)}{bad}"
    if f.kind == "ipv4":
        return f"ipv4 proto={f.proto} len={f.ip_len} | {ip_str(f)}{bad}"
    if f.kind == "ipv6":
        return f"ipv6 nh={f.proto} len={len(f.ip_bytes)} | {ip_str(f)}{bad}"
    return f"eth type={getattr(f, 'ethertype', 0):#06x} len={f.len}"


def frames_summary(case, target, chatter=None):
    """[(step label, line)] of every frame the target sent back; link
    chatter (ICMP6_CHATTER) is left out, appended to `chatter` if given."""
    flows = {}
    sent = [(t, 0, parse(b)) for t, b in target.sent]
    recv = [(t, 1, parse(b)) for t, b in target.received()]
    sent_ip = [getattr(f, "ip_bytes", b"") for _, _, f in sent]
    t0 = sent[0][0] if sent else 0.0
    t_step = t0
    step = -1
    out = []
    for t, is_recv, f in sorted(sent + recv, key=lambda x: (x[0], x[1])):
        if not is_recv:
            step += 1
            t_step = t
            if f.tcp:
                flows.setdefault(("tcp", f.sport, f.dport), Flow()).sent(f)
            continue
        line = describe(f, flows, sent_ip)
        if line is None:
            if chatter is not None:
                chatter.append(f)
            continue
        if case.timed:
            # An answer to its step is "now"; a later one (a timer's) gets its
            # time since the first step, to the nearest 0.5 s.
            when = "now" if t - t_step < IMMEDIATE else f"@{math.floor((t - t0) * 2 + 0.5) / 2:.1f}s"
            line = f"{when} {line}"
        out.append((f"step {step}" if step >= 0 else "before", line))
    # Within a step the order across flows is the scheduler's: sort it away.
    return sorted(out, key=lambda x: (int(x[0][5:]) if x[0] != "before" else -1, x[1] if not case.timed else ""))


def app_summary(events):
    """Per peer (by port): accept, the bytes read (joined), eof/reset."""
    peers = {}
    for e in events:
        kind = e.get("event")
        if kind not in ("accept", "data", "eof", "reset"):
            continue
        port = e.get("peer", ":").rsplit(":", 1)[1]
        seq = peers.setdefault(port, [])
        if kind == "data":
            if seq and seq[-1][0] == "data":
                seq[-1][1] += e.get("bytes", "")
                continue
            seq.append(["data", e.get("bytes", "")])
        else:
            seq.append([kind, ""])
    lines = []
    for port in sorted(peers, key=lambda p: int(p) if p.isdigit() else 0):
        for kind, b in peers[port]:
            lines.append(f"app :{port} {kind}" + (f" {b}" if b else ""))
    return lines


def summary(case, target):
    chatter = []
    frames = [f"{step}: {line}" for step, line in frames_summary(case, target, chatter)]
    app = app_summary(target.events)
    counters = [f"{n}={target.counters.get(n, 0)}" for n in case.counters]
    return SimpleNamespace(frames=frames, app=app, counters=counters, lines=frames + app + counters,
                           all_counters=target.counters, chatter=[f"icmp6 {f.icmp_type}" for f in chatter])


def parse_nstat(text):
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and not line.startswith("#") and f[1].isdigit():
            out[f[0]] = int(f[1])
    return out


def parse_report(text):
    """The counters of dlisten's exit report (the last `counters:` block)."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.startswith("counters:"):
            out, inside = {}, True
            continue
        if inside:
            f = line.split()
            if line.startswith("  ") and len(f) == 2 and f[1].isdigit():
                out[f[0]] = int(f[1])
            else:
                inside = False
    return out


def side_by_side(k, d):
    import difflib
    if k.lines == d.lines:
        return "\n".join("      both: " + l for l in k.lines if not re.fullmatch(r"\w+=0", l))
    return "\n".join("      " + l for l in difflib.unified_diff(k.lines, d.lines, "kernel", "dlisten", n=100, lineterm=""))
