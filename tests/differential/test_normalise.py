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
from frames import IP, TCP, Ether, syn, tcp  # noqa: E402


def synack(seq, ack, tsval=7, tsecr=100, sport=80, dport=40000, **ipkw):
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (tsval, tsecr)), ("NOP", None), ("WScale", 7)]
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.18.0.1", dst="198.18.0.2", flags="DF", id=0, **ipkw)
                 / TCP(sport=sport, dport=dport, flags="SA", seq=seq, ack=ack, window=65160, options=opts))


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

    def test_every_case_is_well_formed(self):
        names = [c.name for c in cases.CASES]
        self.assertEqual(len(names), len(set(names)))
        self.assertGreaterEqual(len(names), 40)
        for c in cases.CASES:
            for key in c.deviation:
                self.assertIn(key, cases.DEVIATIONS, c.name)
            self.assertFalse(set(c.counters) - set(cases.COUNTERS) - set(cases.COUNTERS6) - {"TcpExtTSEcrRejected", "IcmpInDestUnreachs"}, c.name)


class Counters(unittest.TestCase):
    def test_nstat_and_the_exit_report(self):
        self.assertEqual(normalise.parse_nstat("#kernel\nIpInReceives 5 0.0\nTcpOutRsts 1 0.0\n"),
                         {"IpInReceives": 5, "TcpOutRsts": 1})
        report = "counters:\n  DlRxFrames 3\n  TcpOutRsts 1\nport 0 ipackets 3\ncounters:\n  TcpOutRsts 2\n"
        self.assertEqual(normalise.parse_report(report), {"TcpOutRsts": 2})


if __name__ == "__main__":
    unittest.main()
