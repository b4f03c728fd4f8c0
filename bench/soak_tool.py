#!/usr/bin/env python3
"""bench/soak.sh's helpers: the sampler, the echo and vanishing clients, and
the settle check. Standard library only; every loop ends by a deadline.

  soak_tool.py sample  BIN PREFIX PID PHASE CSV INTERVAL STOPFILE T0
  soak_tool.py snap    BIN PREFIX PID                 (one JSON line: gauges + counters + rss)
  soak_tool.py echo    HOST PORT SECONDS THREADS OUT.json
  soak_tool.py vanish  SRC HOST PORT KIND N           (KIND http|echo; prints "ready", then waits to be killed)
  soak_tool.py settle  BIN PREFIX PID IDLE.json MIN_S MAX_S MBUF_TOL
"""
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

# Counters the CSV keeps (nstat names); the gauges come first.
COUNTERS = [
    "TcpPassiveOpens", "DlConnsClosed", "TcpExtListenOverflows", "TcpExtListenDrops",
    "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies", "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed", "TcpExtTCPSynRetrans", "DlTcpReqTimeouts",
    "TcpExtEmbryonicRsts", "TcpExtTCPAbortOnTimeout", "TcpExtTCPAbortOnClose", "TcpEstabResets",
    "TcpExtTW", "TcpExtTWKilled", "TcpExtTCPTimeWaitOverflow", "DlHttpHeaderTimeouts",
    "DlHttpIdleTimeouts", "DlHttpBodyTimeouts", "DlConnMemRefused", "DlConnLimitRefused",
    "DlTxDrops", "DlTxNoMbuf", "TcpInCsumErrors", "TcpInErrs", "TcpOutRsts", "DlRxFrames",
    "DlTxFrames",
]
GAUGES = ["connections", "request_socks", "time_wait", "conn_mem_bytes", "mbufs_in_use"]
# What must come back to its idle value once the load is gone.
SETTLING = ["connections", "request_socks", "time_wait", "conn_mem_bytes"]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def snap(binary, prefix, pid):
    """The server's figures now, or None when it does not answer."""
    try:
        out = subprocess.run([binary, "stats", "--name", prefix, "--json"], capture_output=True, timeout=10, check=True).stdout
        d = json.loads(out)
    except (subprocess.SubprocessError, ValueError, OSError):
        return None
    s = {g: sum(w.get(g, 0) for w in d["workers"]) for g in GAUGES}
    s["accept_queue"] = sum(l["recv_q"] for l in d["listeners"])
    s["syn_queue"] = sum(l["syn_qlen"] for l in d["listeners"])
    s["rss_kb"] = rss_kb(pid)
    s["uptime_s"] = d["uptime_s"]
    busy = sum(r["busy_cycles"] for r in d["runtime"])
    s["busy_s"] = busy / max(d["runtime"][0]["tsc_hz"], 1) if d["runtime"] else 0.0
    for c in COUNTERS:
        s[c] = d["counters"].get(c, 0)
    return s


def cmd_sample(binary, prefix, pid, phase, csv_path, interval, stopfile, t0):
    interval, t0 = float(interval), float(t0)
    cols = ["t_s", "phase", "rss_kb"] + GAUGES + ["accept_queue", "syn_queue"] + COUNTERS
    new = not os.path.exists(csv_path)
    with open(csv_path, "a") as f:
        if new:
            f.write(",".join(cols) + "\n")
        # Bounded by the stop file and, whatever happens, by 3 hours.
        end = time.time() + 3 * 3600
        while not os.path.exists(stopfile) and time.time() < end:
            s = snap(binary, prefix, pid)
            if s is not None:
                s["t_s"] = round(time.time() - t0, 1)
                s["phase"] = phase
                f.write(",".join(str(s[c]) for c in cols) + "\n")
                f.flush()
            nxt = time.time() + interval
            while time.time() < nxt and not os.path.exists(stopfile):
                time.sleep(0.5)


def echo_one(host, port, size, slow, deadline):
    """One connection: send `size` random bytes, read them back. 'ok',
    'mismatch' (other bytes, or the connection ended short) or 'stalled'
    (no progress for 60 s); connect failures are 'refused'."""
    try:
        s = socket.create_connection((host, port), timeout=10)
    except OSError:
        return "refused", 0
    s.settimeout(60)
    data = random.randbytes(size)
    want = hashlib.sha256(data).digest()
    err = []

    def send():
        try:
            view = memoryview(data)
            while view:
                n = s.send(view[:65536])
                view = view[n:]
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    h, got = hashlib.sha256(), 0
    result = "ok"
    try:
        while True:
            b = s.recv(4096 if slow else 1 << 20)
            if not b:
                break
            h.update(b)
            got += len(b)
            if slow:
                time.sleep(0.002)
    except socket.timeout:
        result = "stalled"
    except OSError:
        result = "mismatch"
    t.join(5)
    s.close()
    if result == "ok" and (got != size or h.digest() != want or err):
        result = "mismatch"
    return result, got


def cmd_echo(host, port, seconds, threads, out):
    port, deadline = int(port), time.time() + float(seconds)
    tally = {"ok": 0, "mismatch": 0, "stalled": 0, "refused": 0, "bytes": 0}
    lock = threading.Lock()

    def run(i):
        rnd = random.Random(i)
        while time.time() < deadline:
            # Mostly small, now and then several MiB; thread 0 reads slowly
            # (the server's send buffer fills and its window closes).
            size = rnd.choice([1, 100, 1460, 1461, 16384, 65536, 200_000, 1 << 20, 4 << 20])
            r, got = echo_one(host, port, size, i == 0, deadline)
            with lock:
                tally[r] += 1
                tally["bytes"] += got
            if r == "refused":
                time.sleep(0.5)

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(int(threads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(float(seconds) + 180)
    with open(out, "w") as f:
        json.dump(tally, f)
    print(json.dumps(tally))


def cmd_vanish(src, host, port, kind, n):
    """Open N connections from SRC, leave them in the states a vanishing
    client leaves, say "ready" and wait to be killed (at most 10 minutes)."""
    port, n = int(port), int(n)
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(10)
        try:
            s.connect((host, port))
        except OSError:
            continue
        try:
            if kind == "echo":
                # Sending and reading until killed: data in flight both ways
                # when it vanishes. (A connection that finished its transfer
                # is idle, and an idle peer that vanished is never noticed
                # without keepalive, by Linux either.)
                blob = random.randbytes(1 << 20)

                def pump(s=s, blob=blob):
                    try:
                        while True:
                            s.sendall(blob)
                    except OSError:
                        pass

                def drain(s=s):
                    try:
                        while s.recv(65536):
                            pass
                    except OSError:
                        pass

                threading.Thread(target=pump, daemon=True).start()
                threading.Thread(target=drain, daemon=True).start()
            elif i % 3 == 0:
                # An idle keep-alive connection: the server closes it later.
                s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
                s.recv(4096)
            elif i % 3 == 1:
                # Half a request head.
                s.sendall(b"GET / HTTP/1.1\r\nHost: so")
            else:
                # Requests it never reads the answers of: the server's send
                # buffer fills and the window closes (zero-window probes).
                s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n" * 3000)
        except OSError:
            pass
        socks.append(s)
    print("ready", len(socks), flush=True)
    time.sleep(600)


def cmd_settle(binary, prefix, pid, idle_path, min_s, max_s, mbuf_tol):
    """Wait at least MIN_S, then until the settling gauges are back at their
    idle values and mbufs within MBUF_TOL of idle (or MAX_S passed). Prints
    the last snapshot as JSON with "settled" and "settle_s"."""
    idle = json.load(open(idle_path))
    t0 = time.time()
    min_s, max_s, mbuf_tol = float(min_s), float(max_s), int(mbuf_tol)
    last = None
    while True:
        s = snap(binary, prefix, pid)
        if s is not None:
            last = s
            back = all(s[g] <= idle[g] for g in SETTLING) and s["mbufs_in_use"] <= idle["mbufs_in_use"] + mbuf_tol
            if back and time.time() - t0 >= min_s:
                break
        if time.time() - t0 >= max_s:
            break
        time.sleep(5)
    last = last or {}
    last["settled"] = bool(last) and all(last[g] <= idle[g] for g in SETTLING) and last["mbufs_in_use"] <= idle["mbufs_in_use"] + mbuf_tol
    last["settle_s"] = round(time.time() - t0, 1)
    print(json.dumps(last))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sample":
        cmd_sample(*args)
    elif cmd == "snap":
        print(json.dumps(snap(*args)))
    elif cmd == "echo":
        cmd_echo(*args)
    elif cmd == "vanish":
        cmd_vanish(*args)
    elif cmd == "settle":
        cmd_settle(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
