#!/usr/bin/python3
"""The kernel differential suite: the same frames go to a Linux listener in one
network namespace and to `dlisten serve` (net_af_packet on a veth) in another;
the answers are normalised and compared case by case.

  run.py --dlisten target/debug/dlisten [--case NAME_OR_PREFIX ...] [--verbose] [--list]

As root. Per case it creates two namespaces (kernel, dlisten), each joined by a
veth to a tester namespace created once, with offloads off so checksums are
really computed and checked, and removes them afterwards (and on any exit).
Addresses: 198.18.0.1 (both targets) and 198.18.0.2 (the tester, which has no
address of its own: frames go out and come back through AF_PACKET only); the
IPv6 cases add 2001:2::1 (both targets) and 2001:2::2 (the tester). IPv6 is
on only in the kernel target's namespace of an IPv6 case, configured to send
nothing unasked (no DAD, no router solicitation, no link-local address, no
automatic flow label); the MLD reports a Linux host cannot be kept from
sending when it joins its solicited-node group are left out by normalise.py.

A case is a function in cases.py run once per target, concurrently, on the
same script. What is compared (see normalise.py): the frames each target sent
back, grouped by the step that caused them; what the application accepted and
read; counters by their nstat names. Exit status 1 on any unexpected
difference; cases marked `pending_fix` (being fixed in dlisten) and
`deviation` (the README's table) are reported apart.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases as case_defs  # noqa: E402
import normalise  # noqa: E402
from frames import CLIENT_IP, CLIENT_IP6, CLIENT_MAC, SERVER_IP, SERVER_IP6, SERVER_MAC, TFO_KEY  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"  # Debian's, with python3-scapy
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SEND_GAP = 0.05
CASE_DEADLINE = 30.0  # no case may run longer (seconds)

libc = ctypes.CDLL(None, use_errno=True)
# The kernel target of an IPv6 case: IPv6 on, and nothing sent that no case
# frame asked for.
IPV6_QUIET = [
    "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
    # No link-local address (addr_gen_mode 1, "none"), so no DAD of it, no
    # router solicitation from it and no MLD report for its group.
    "net.ipv6.conf.default.addr_gen_mode=1",
    "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.default.dad_transmits=0",
    "net.ipv6.conf.default.router_solicitations=0", "net.ipv6.conf.default.accept_ra=0",
    # The solicited-node group's unsolicited reports all go out within a
    # millisecond of the address, before the first step (and are dropped).
    "net.ipv6.conf.default.mldv1_unsolicited_report_interval=1",
    "net.ipv6.conf.default.mldv2_unsolicited_report_interval=1",
    # dlisten sends flow label 0 (RFC 6437: "not labelled"); so does Linux
    # without auto_flowlabels (the README's table), and labels are compared.
    "net.ipv6.auto_flowlabels=0",
]
# Every application process this run started, killed (by PID) on any exit.
PROCS = []
# Whether this dlisten takes an IPv6 --listen (see main); without one its
# IPv6 cases run with the IPv4 listener only.
DLISTEN_LISTENS_V6 = [False]


def sh(*argv, check=True, timeout=20):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def ns_exec(ns, *argv, **kw):
    return sh("ip", "netns", "exec", ns, *argv, **kw)


class Namespaces:
    """Every namespace this run created, deleted at exit whatever happens."""

    def __init__(self):
        self.names = []
        self.lock = threading.Lock()

    def add(self, name, ipv6=False):
        sh("ip", "netns", "add", name)
        with self.lock:
            self.names.append(name)
        if ipv6:
            # Set before the veth exists: its interface takes the defaults.
            ns_exec(name, "sysctl", "-qw", *IPV6_QUIET)
        else:
            # No IPv6 chatter (router solicitations, MLD) on the links.
            ns_exec(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def delete(self, name):
        with self.lock:
            if name in self.names:
                self.names.remove(name)
        sh("ip", "netns", "del", name, check=False)

    def delete_all(self):
        for n in list(self.names):
            self.delete(n)


def packet_socket(ns, ifname):
    """An AF_PACKET socket on `ifname` inside `ns` (setns on this thread, then back)."""
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
        finally:
            if libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(here)
        os.close(there)
    return s


def link(tester_ns, tester_if, target_ns, target_if):
    """A veth between the tester and a target, fixed MACs, up, offloads off."""
    sh("ip", "link", "add", target_if, "netns", target_ns, "address", SERVER_MAC, "type", "veth",
       "peer", "name", tester_if, "netns", tester_ns, "address", CLIENT_MAC)
    for ns, ifname in ((target_ns, target_if), (tester_ns, tester_if)):
        # rx off: the receiver verifies checksums instead of trusting the
        # veth's CHECKSUM_UNNECESSARY; tx off: the sender computes them.
        ns_exec(ns, "ethtool", "-K", ifname, "rx", "off", "tx", "off")
        sh("ip", "-n", ns, "link", "set", ifname, "up")


class Capture:
    """Frames arriving at the tester's end of a link, with their arrival times."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(0.02)
        self.frames = []  # (monotonic time, bytes)
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            with self.cond:
                self.frames.append((time.monotonic(), data))
                self.cond.notify_all()

    def send(self, data):
        self.sock.send(data)

    def stop(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()


class Target:
    """One side of a case: its namespace and application, and the session the
    case script drives (send, wait, wait for a frame)."""

    def __init__(self, kind, case, nss, tester_ns, index, dlisten):
        self.kind = kind  # "kernel" or "dlisten"
        self.case = case
        self.nss = nss
        self.tester_ns = tester_ns
        self.ns = f"df{kind[0]}{os.getpid() % 100000}x{index}"
        self.tester_if = f"{kind[0]}{index}"
        self.dlisten = dlisten
        self.proc = None
        self.out_lines = []
        self.sent = []  # (time, bytes) of every frame sent
        self.t0 = None
        self.stop_time = None
        self.error = None
        self.events = []
        self.counters = {}
        self.tmp = tempfile.mkdtemp(prefix=f"dfcase{index}{kind[0]}")

    # ---- setup and teardown ----
    def setup(self):
        self.nss.add(self.ns, ipv6=self.kind == "kernel" and self.case.family == 6)
        link(self.tester_ns, self.tester_if, self.ns, "v0")
        self.cap = Capture(packet_socket(self.tester_ns, self.tester_if))
        if self.kind == "kernel":
            self._start_kernel()
        else:
            self._start_dlisten()

    def _start_kernel(self):
        c = self.case
        ns_exec(self.ns, "ip", "addr", "add", f"{SERVER_IP}/24", "dev", "v0")
        # The tester answers no ARP: the kernel knows its MAC for good.
        ns_exec(self.ns, "ip", "neigh", "replace", CLIENT_IP, "lladdr", CLIENT_MAC, "dev", "v0", "nud", "permanent")
        if c.family == 6:
            ns_exec(self.ns, "ip", "-6", "addr", "add", f"{SERVER_IP6}/64", "dev", "v0", "nodad")
            ns_exec(self.ns, "ip", "-6", "neigh", "replace", CLIENT_IP6, "lladdr", CLIENT_MAC, "dev", "v0", "nud", "permanent")
        sysctls = {
            "net.ipv4.tcp_syncookies": c.syncookies,
            "net.ipv4.tcp_synack_retries": c.synack_retries,
            "net.ipv4.tcp_abort_on_overflow": c.abort_on_overflow,
            "net.ipv4.tcp_fastopen": c.fastopen,
            "net.ipv4.tcp_fastopen_key": TFO_KEY,
            "net.ipv4.tcp_timestamps": c.timestamps,
            "net.core.somaxconn": 4096,
            "net.ipv4.tcp_max_syn_backlog": 4096,
            # dlisten's window scale is 7, what Linux picks for a 6 MiB
            # tcp_rmem[2] (the default before 6.16 raised it to 32 MiB).
            "net.ipv4.tcp_rmem": "4096 131072 6291456",
        }
        ns_exec(self.ns, "sysctl", "-qw", *[f"{k}={v}" for k, v in sysctls.items()])
        if c.listen:
            argv = ["ip", "netns", "exec", self.ns, PYTHON, os.path.join(HERE, "kernel_listener.py"),
                    "--addr", SERVER_IP, *(["--addr", c.listen6] if c.family == 6 else []),
                    "--port", "80", "--backlog", str(c.backlog),
                    "--fastopen", str(c.fastopen_qlen), "--mode", c.app]
            self._spawn(argv, "listening")

    def _start_dlisten(self):
        c = self.case
        self.event_log = os.path.join(self.tmp, "events.jsonl")
        argv = ["ip", "netns", "exec", self.ns, self.dlisten, "serve", "--addr", SERVER_IP,
                *(["--addr", SERVER_IP6] if c.family == 6 else []),
                "--idle-sleep-us", "20", "--app", c.app, "--event-log", self.event_log,
                "--syncookies", str(c.syncookies), "--synack-retries", str(c.synack_retries),
                "--abort-on-overflow", str(c.abort_on_overflow), "--fastopen", hex(c.fastopen),
                "--tfo-key", TFO_KEY, "--timestamps", str(c.timestamps),
                "--somaxconn", "4096", "--max-syn-backlog", "4096"]
        if c.listen:
            argv += ["--listen", f"{SERVER_IP}:80", "--backlog", str(c.backlog), "--fastopen-qlen", str(c.fastopen_qlen)]
            if c.family == 6 and DLISTEN_LISTENS_V6[0]:
                argv += ["--listen", f"[{c.listen6}]:80"]
        prefix = f"dfd{os.getpid() % 100000}x{self.ns.rsplit('x', 1)[1]}"
        argv += ["--control-socket", os.path.join(self.tmp, "ctl.sock"),
                 "--", "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--file-prefix", prefix,
                 "--vdev", "net_af_packet0,iface=v0", "--log-level", "lib.eal:error"]
        self._spawn(argv, "dlisten: ready")

    def _spawn(self, argv, ready_word):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        PROCS.append(self.proc)
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.out_lines.append(line.rstrip("\n"))
                if ready_word in line:
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not ready.wait(20) or self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} did not start:\n" + "\n".join(self.out_lines[-30:]))

    def finish(self):
        """Stop the application, collect counters and events. Frames after
        this point (a kernel application's close sends FIN) are not part of
        the case."""
        self.stop_time = time.monotonic()
        # Every frame sent must have reached the target's interface (and,
        # for dlisten, the application): else nothing of the case is real.
        rx = int(ns_exec(self.ns, "cat", "/sys/class/net/v0/statistics/rx_packets").strip())
        if rx < len(self.sent):
            self.error = f"{self.kind}'s interface received {rx} of the {len(self.sent)} frames sent"
        if self.kind == "kernel":
            out = ns_exec(self.ns, "nstat", "-asz")
            self.counters = normalise.parse_nstat(out)
            if self.proc:
                self._stop(signal.SIGTERM)
                self.events = [json.loads(l) for l in self.out_lines if l.startswith("{")]
        else:
            self._stop(signal.SIGINT)
            self.counters = normalise.parse_report("\n".join(self.out_lines))
            if not self.error and self.counters.get("DlRxFrames", 0) < len(self.sent):
                self.error = f"dlisten received {self.counters.get('DlRxFrames', 0)} of the {len(self.sent)} frames sent"
            try:
                with open(self.event_log) as f:
                    self.events = [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                self.events = []

    def _stop(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.error = f"{self.kind} did not stop within 15 s"
        self.reader.join(5)
        if self.kind == "dlisten" and self.proc.returncode != 0 and not self.error:
            self.error = f"dlisten exited with {self.proc.returncode}:\n" + "\n".join(self.out_lines[-30:])

    def teardown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "cap", None):
            self.cap.stop()
        self.nss.delete(self.ns)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the session a case script drives ----
    def send(self, pkt):
        data = bytes(pkt)
        # Answers come within microseconds (kernel) or a millisecond
        # (dlisten): 50 ms between steps keeps each answer in its own step.
        if self.sent:
            gap = self.sent[-1][0] + SEND_GAP - time.monotonic()
            if gap > 0:
                time.sleep(gap)
        if self.t0 is None:
            self.t0 = time.monotonic()
        self.sent.append((time.monotonic(), data))
        self.cap.send(data)

    def wait(self, secs):
        time.sleep(secs)

    def received(self):
        with self.cap.cond:
            return [(t, b) for t, b in self.cap.frames if self.stop_time is None or t <= self.stop_time]

    def expect(self, match, timeout=1.0):
        """The first frame (parsed) since the last send for which match(frame) is true, or None."""
        since = self.sent[-1][0] if self.sent else 0.0
        deadline = time.monotonic() + timeout
        with self.cap.cond:
            while True:
                for t, data in self.cap.frames:
                    if t >= since:
                        f = normalise.parse(data)
                        if match(f):
                            return f
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cap.cond.wait(left)


def run_target(t, script, results, barrier):
    try:
        t.setup()
    except Exception as e:  # reported as the case's failure
        t.error = f"setup: {e}"
    try:
        barrier.wait(30)
    except threading.BrokenBarrierError:
        pass
    if t.error:
        return
    try:
        script(t)
        t.wait(t.case.settle)
        t.finish()
    except Exception as e:
        t.error = f"{type(e).__name__}: {e}"
    results[t.kind] = t


def run_case(case, index, nss, tester_ns, dlisten):
    targets = [Target(k, case, nss, tester_ns, index, dlisten) for k in ("kernel", "dlisten")]
    results = {}
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run_target, args=(t, case.script, results, barrier)) for t in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(CASE_DEADLINE + 30)
    for t in targets:
        t.teardown()
    errors = [t.error for t in targets if t.error]
    if errors:
        return None, None, errors
    k, d = (normalise.summary(case, t) for t in targets)
    return k, d, []


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dlisten", default=os.path.join(HERE, "..", "..", "target", "debug", "dlisten"))
    p.add_argument("--case", action="append", default=[], help="run only cases whose name starts with this (repeatable)")
    p.add_argument("--verbose", "-v", action="store_true", help="print both sides of every case")
    p.add_argument("--list", action="store_true")
    a = p.parse_args()

    cases = case_defs.CASES
    if a.case:
        cases = [c for c in cases if any(c.name.startswith(s) for s in a.case)]
    if a.list:
        for c in cases:
            print(f"{c.name:40} {c.mark_text()}")
        return 0
    if os.geteuid() != 0:
        print("run.py: run as root (it creates network namespaces)", file=sys.stderr)
        return 2
    if not os.access(a.dlisten, os.X_OK):
        print(f"run.py: {a.dlisten} is not an executable dlisten (cargo build first)", file=sys.stderr)
        return 2
    dlisten = os.path.abspath(a.dlisten)
    probe = subprocess.run([dlisten, "serve", "--check", "--addr", SERVER_IP, "--addr", SERVER_IP6, "--listen", f"[{SERVER_IP6}]:80"],
                           capture_output=True, text=True, timeout=20)
    DLISTEN_LISTENS_V6[0] = probe.returncode == 0
    if not DLISTEN_LISTENS_V6[0] and any(c.family == 6 and c.listen for c in cases):
        print("run.py: this dlisten has no IPv6 --listen; its IPv6 cases run with the IPv4 listener only", flush=True)

    nss = Namespaces()

    def clean_up():
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        nss.delete_all()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (clean_up(), os._exit(130)))
    tally = {"match": 0, "differs": 0, "pending_fix": 0, "deviation": 0, "error": 0}
    unexpected = []
    start = time.monotonic()
    try:
        tester = nss.add(f"dft{os.getpid() % 100000}")
        for i, case in enumerate(cases):
            t_case = time.monotonic()
            k, d, errors = run_case(case, i, nss, tester, dlisten)
            took = time.monotonic() - t_case
            if errors:
                verdict, detail = "error", "; ".join(errors)
            else:
                verdict, detail = case.judge(k, d)
            tally[verdict if verdict in tally else "differs"] += 1
            if verdict in ("differs", "error", "stale-mark"):
                unexpected.append(case.name)
            print(f"{verdict.upper():12} {case.name:40} {took:5.1f}s  {case.mark_text()}", flush=True)
            if detail and (verdict != "match" or a.verbose):
                for line in detail.splitlines():
                    print(f"    {line}")
            if a.verbose and k is not None:
                print(normalise.side_by_side(k, d))
                print("      nonzero counters, kernel: " + " ".join(f"{n}={v}" for n, v in sorted(k.all_counters.items()) if v))
                print("      nonzero counters, dlisten: " + " ".join(f"{n}={v}" for n, v in sorted(d.all_counters.items()) if v))
                for side, x in (("kernel", k), ("dlisten", d)):
                    if x.chatter:
                        print(f"      link chatter left out, {side}: " + " ".join(x.chatter))
    finally:
        clean_up()
    print(f"\n{len(cases)} cases in {time.monotonic() - start:.0f}s: " +
          ", ".join(f"{n} {v}" for v, n in ((k, v) for k, v in tally.items())))
    if unexpected:
        print("unexpected: " + " ".join(unexpected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
