#!/usr/bin/python3
"""Unit tests of the suite's own logic (no root, no namespaces): parsing,
the seq/ack relations, the deviation masks and the verdicts.

  python3 -m unittest discover -s tests/differential -p 'test_*.py'
"""
import os
import sys
import unittest
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
import normalise  # noqa: E402
from frames import IP, TCP, UDP, Ether, IPv6, Raw, icmp6_echo, solicited_node, syn, syn6, tcp, udp6  # noqa: E402
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6MLReport2, ICMPv6ND_NA, ICMPv6ND_RS,  # noqa: E402
                                ICMPv6NDOptDstLLAddr, ICMPv6ParamProblem, IPv6ExtHdrHopByHop)


def synack(seq, ack, tsval=7, tsecr=100, sport=80, dport=40000, **ipkw):
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (tsval, tsecr)), ("NOP", None), ("WScale", 7)]
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.18.0.1", dst="198.18.0.2", flags="DF", id=0, **ipkw)
                 / TCP(sport=sport, dport=dport, flags="SA", seq=seq, ack=ack, window=65160, options=opts))


SERVER_MAC, CLIENT_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def from_server6(*layers, dst="2001:2::2", eth_dst=CLIENT_MAC, **ipkw):
    """A frame dlisten or the kernel might send the tester over IPv6."""
    p = Ether(src=SERVER_MAC, dst=eth_dst) / IPv6(src="2001:2::1", dst=dst, **ipkw)
    for layer in layers:
        p = p / layer
    return bytes(p)


class FakeTarget:
    def __init__(self, sent, received, events=(), counters=None):
        self.sent = [(t, bytes(f)) for t, f in sent]
        self._received = [(t, bytes(f)) for t, f in received]
        self.events = list(events)
        self.counters = counters or {}

    def received(self):
        return self._received


class Parse(unittest.TestCase):
    def test_synack_fields_and_checksums(self):
        f = normalise.parse(synack(5000, 1001))
        self.assertEqual((f.kind, f.sport, f.dport, f.seq, f.ack, f.win), ("tcp", 80, 40000, 5000, 1001, 65160))
        self.assertEqual((f.tsval, f.tsecr, f.ip_df, f.ip_ttl), (7, 100, True, 64))
        self.assertTrue(f.csum_ok)
        bad = bytearray(synack(5000, 1001))
        bad[-1] ^= 0xFF  # an option byte: the TCP checksum no longer holds
        self.assertFalse(normalise.parse(bytes(bad)).csum_ok)

    def test_malformed_options_do_not_raise(self):
        self.assertEqual(normalise.tcp_options(b"\x02\x09\x05"), [("bad", b"\x02\x09\x05")])
        self.assertEqual(normalise.tcp_options(b"\x01\x00"), [(1, b""), (0, b"")])


class Ipv6(unittest.TestCase):
    def line(self, frame, sent=()):
        sent = [(0.0, f) for f in sent] or [(0.0, syn6(40000))]
        lines = normalise.frames_summary(cases.Case("x", None), FakeTarget(sent, [(0.01, frame)]))
        return lines[0][1] if lines else None

    def test_rst_fields_relations_and_checksum(self):
        rst = from_server6(TCP(sport=80, dport=40000, flags="RA", seq=0, ack=1001, window=0), tc=0x28, hlim=64)
        f = normalise.parse(rst)
        self.assertEqual((f.kind, f.ip6, f.ip6_tc, f.ip6_hop, f.ip6_fl, f.csum_ok), ("tcp", True, 0x28, 64, 0, True))
        self.assertEqual(self.line(rst), "tcp 80>40000 RA seq=0 ack=C0+1 win=0 [] | 2001:2::1>2001:2::2 tc=0x28 hop=64 fl=0")
        bad = bytearray(rst)
        bad[-1] ^= 1  # the urgent pointer: the checksum over the pseudo-header no longer holds
        self.assertTrue(self.line(bytes(bad)).endswith(" CSUM-BAD"))
        # A flow label shows as nonzero, not by value (Linux's is a keyed hash).
        self.assertIn(" fl=nz", self.line(from_server6(TCP(sport=80, dport=40000, flags="R", seq=5), fl=0x12345)))

    def test_neighbour_advertisement_flags_target_and_option(self):
        na = from_server6(ICMPv6ND_NA(R=0, S=1, O=1, tgt="2001:2::1"), ICMPv6NDOptDstLLAddr(lladdr=SERVER_MAC), hlim=255)
        self.assertEqual(self.line(na), "icmp6 136/0 na flags=SO target=2001:2::1 [tll:02:00:00:00:00:01]"
                                        " | 2001:2::1>2001:2::2 tc=0x0 hop=255 fl=0")
        # DAD's answer: to all nodes, so the Ethernet group address is shown.
        dad = from_server6(ICMPv6ND_NA(R=0, S=0, O=1, tgt="2001:2::1"), dst="ff02::1", eth_dst="33:33:00:00:00:01", hlim=255)
        self.assertEqual(self.line(dad), "icmp6 136/0 na flags=O target=2001:2::1 []"
                                         " | 2001:2::1>ff02::1 tc=0x0 hop=255 fl=0 eth=33:33:00:00:00:01")
        self.assertEqual(normalise.nd_options(b"\x02\x00\x01"), "BAD:020001")

    def test_echo_reply_and_error_quoting_the_step(self):
        echo = icmp6_echo()
        reply = from_server6(ICMPv6EchoReply(id=5, seq=9, data=b"pingdata"))
        self.assertEqual(self.line(reply, [echo]), "icmp6 129/0 id=5 seq=9 data=70696e6764617461"
                                                   " | 2001:2::1>2001:2::2 tc=0x0 hop=64 fl=0")
        quoted = bytes(echo)[14:]
        pp = from_server6(ICMPv6ParamProblem(code=2, ptr=42), Raw(quoted))
        self.assertEqual(self.line(pp, [echo]), f"icmp6 4/2 rest=0000002a quote={len(quoted)}B of step 0 (whole)"
                                                " | 2001:2::1>2001:2::2 tc=0x0 hop=64 fl=0")
        cut = from_server6(ICMPv6ParamProblem(code=2, ptr=42), Raw(quoted[:48]))
        self.assertIn("quote=48B of step 0 |", self.line(cut, [echo]))

    def test_mld_reports_and_router_solicitations_are_left_out(self):
        mld = bytes(Ether(src=SERVER_MAC, dst="33:33:00:00:00:16") / IPv6(src="::", dst="ff02::16", hlim=1)
                    / IPv6ExtHdrHopByHop(options=[]) / ICMPv6MLReport2())
        rs = from_server6(ICMPv6ND_RS(), dst="ff02::2", eth_dst="33:33:00:00:00:02", hlim=255)
        self.assertEqual(normalise.parse(mld).icmp_type, 143, "read through the hop-by-hop header")
        target = FakeTarget([(0.0, syn6(40000))], [(0.01, mld), (0.02, rs)])
        s = normalise.summary(cases.Case("x", None, family=6), target)
        self.assertEqual(s.frames, [])
        self.assertEqual(s.chatter, ["icmp6 143", "icmp6 133"])

    def test_extension_headers_are_walked_and_shown(self):
        echo = from_server6(IPv6ExtHdrHopByHop(options=[]), ICMPv6EchoReply(id=1, seq=2))
        self.assertIn("icmp6 129/0 id=1 seq=2 data= | 2001:2::1>2001:2::2 tc=0x0 hop=64 fl=0 ext=0", self.line(echo))

    def test_udp_zero_checksum_is_bad_only_over_ipv6(self):
        v6 = bytearray(from_server6(UDP(sport=9, dport=40000) / Raw(b"x")))
        v6[14 + 40 + 6:14 + 40 + 8] = b"\0\0"
        self.assertFalse(normalise.parse(bytes(v6)).csum_ok)
        v4 = bytearray(bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=9, dport=40000) / Raw(b"x")))
        v4[14 + 20 + 6:14 + 20 + 8] = b"\0\0"
        self.assertTrue(normalise.parse(bytes(v4)).csum_ok)
        self.assertTrue(normalise.parse(bytes(udp6(40000, 9))).csum_ok)

    def test_solicited_node_group(self):
        self.assertEqual(solicited_node("2001:2::1"), ("ff02::1:ff00:1", "33:33:ff:00:00:01"))
        self.assertEqual(solicited_node("2001:2::abcd:1234"), ("ff02::1:ffcd:1234", "33:33:ff:cd:12:34"))


class Relations(unittest.TestCase):
    def test_nearest_base_within_64k(self):
        bases = [("S0", 5000), ("A0", 5001)]
        self.assertEqual(normalise.rel(5001, bases), "A0")
        self.assertEqual(normalise.rel(5003, bases), "A0+2")
        self.assertEqual(normalise.rel(4990, bases), "S0-10")
        self.assertEqual(normalise.rel(0, bases), "0")
        self.assertEqual(normalise.rel(900000, bases), "?")
        # Across the 2^32 wrap.
        self.assertEqual(normalise.rel(3, [("C0", 0xFFFFFFFF)]), "C0+4")

    def test_a_handshake_normalises_to_relations(self):
        case = cases.Case("x", None)
        sent = [(0.0, syn(40000, 1000)), (0.1, tcp(40000, "A", 1001, 5001))]
        recv = [(0.05, synack(5000, 1001)), (0.15, synack(5000, 1001))]
        lines = normalise.frames_summary(case, FakeTarget(sent, recv))
        self.assertEqual([step for step, _ in lines], ["step 0", "step 1"])
        self.assertIn("SA seq=S0 ack=C0+1 win=65160 [MSS:1460,SACKOK,TS:nz,T,NOP,WS:7]", lines[0][1])
        # The same ISN again is S0, not a new one.
        self.assertIn("seq=S0 ", lines[1][1])
        other = normalise.frames_summary(case, FakeTarget(sent, [(0.05, synack(777777, 1001))]))
        self.assertEqual(other[0][1], lines[0][1], "ISN values do not matter, relations do")

    def test_timed_cases_label_timer_answers_by_time(self):
        case = cases.Case("x", None, timed=True)
        sent = [(10.0, syn(40000, 1000))]
        recv = [(10.01, synack(5000, 1001)), (11.02, synack(5000, 1001)), (13.2, synack(5000, 1001))]
        when = [line.split()[0] for _, line in normalise.frames_summary(case, FakeTarget(sent, recv))]
        self.assertEqual(when, ["now", "@1.0s", "@3.0s"])

    def test_app_events_join_data_per_peer(self):
        ev = [{"event": "accept", "peer": "198.18.0.2:40001"}, {"event": "data", "peer": "198.18.0.2:40001", "bytes": "61"},
              {"event": "data", "peer": "198.18.0.2:40001", "bytes": "62"}, {"event": "listening"},
              {"event": "eof", "peer": "198.18.0.2:40001"}, {"event": "close", "peer": "198.18.0.2:40001"}]
        self.assertEqual(normalise.app_summary(ev), ["app :40001 accept", "app :40001 data 6162", "app :40001 eof"])


class Verdicts(unittest.TestCase):
    def lines(self, *l):
        return SimpleNamespace(lines=list(l))

    def test_plain_pending_and_deviation(self):
        k = self.lines("step 1: tcp 80>1 A seq=A0 ack=C0+1 win=502 [] | tos=0x0 ttl=64 DF id=nz")
        d = self.lines("step 1: tcp 80>1 A seq=A0 ack=C0+1 win=512 [] | tos=0x0 ttl=64 DF id=0")
        self.assertEqual(cases.Case("x", None).judge(k, k)[0], "match")
        self.assertEqual(cases.Case("x", None).judge(k, d)[0], "differs")
        self.assertEqual(cases.Case("x", None, pending_fix="why").judge(k, d)[0], "pending_fix")
        self.assertIn("now matches", cases.Case("x", None, pending_fix="why").judge(k, k)[1])
        dev = cases.Case("x", None, deviation=("established-window-and-ip-id",))
        self.assertEqual(dev.judge(k, d)[0], "deviation")
        self.assertEqual(dev.judge(k, k)[0], "stale-mark")
        # The mask erases only its difference: another one still fails.
        d2 = self.lines(d.lines[0].replace("ack=C0+1", "ack=C0+2"))
        self.assertEqual(dev.judge(k, d2)[0], "differs")

    def test_window_and_id_are_masked_only_on_established_segments(self):
        m = cases.mask_established_window_and_id
        syn_ack = "step 0: tcp 80>1 SA seq=S0 ack=C0+1 win=65160 [] | tos=0x0 ttl=64 DF id=0"
        self.assertEqual(m([syn_ack]), [syn_ack])
        self.assertEqual(m(["step 1: tcp 80>1 A seq=A0 ack=C0+1 win=512 [] | tos=0x0 ttl=64 DF id=0"]),
                         ["step 1: tcp 80>1 A seq=A0 ack=C0+1 win=* [] | tos=0x0 ttl=64 DF id=*"])

    def test_fin_acked_at_once_drops_only_the_bare_ack_before_the_fin(self):
        ack = "step 3: tcp 80>1 A seq=A0 ack=C0+7 win=* []"
        fin = "step 3: tcp 80>1 FA seq=A0 ack=C0+7 win=* []"
        self.assertEqual(cases.mask_fin_ack_at_once([ack, fin]), [fin])
        self.assertEqual(cases.mask_fin_ack_at_once([ack]), [ack])

    def test_icmp_errors_ignored_masks_both_families_counters_only(self):
        lines = ["IcmpInErrors=1", "Icmp6InErrors=1", "Icmp6InDestUnreachs=1", "Icmp6InMsgs=1", "step 0: icmp6 1/4 x"]
        self.assertEqual(cases.mask_icmp_error_counters(lines), ["Icmp6InMsgs=1", "step 0: icmp6 1/4 x"])

    def test_every_case_is_well_formed(self):
        names = [c.name for c in cases.CASES]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(names), 40)
        for c in cases.CASES:
            for key in c.deviation:
                self.assertIn(key, cases.DEVIATIONS, c.name)
            self.assertFalse(set(c.counters) - set(cases.COUNTERS) - set(cases.COUNTERS6) - {"TcpExtTSEcrRejected", "IcmpInDestUnreachs", "Icmp6InDestUnreachs"}, c.name)


class Counters(unittest.TestCase):
    def test_nstat_and_the_exit_report(self):
        self.assertEqual(normalise.parse_nstat("#kernel\nIpInReceives 5 0.0\nTcpOutRsts 1 0.0\n"),
                         {"IpInReceives": 5, "TcpOutRsts": 1})
        report = "counters:\n  DlRxFrames 3\n  TcpOutRsts 1\nport 0 ipackets 3\ncounters:\n  TcpOutRsts 2\n"
        self.assertEqual(normalise.parse_report(report), {"TcpOutRsts": 2})


if __name__ == "__main__":
    unittest.main()
