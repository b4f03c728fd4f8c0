#!/usr/bin/python3
"""The kernel's side of the socket-API comparison: run socket_api.json's steps
with the socket module (listen through libc, since Python's listen() turns a
negative backlog into 0) in the namespace this runs in, and print one JSON
list: each step's answer, "ok", an errno name, or what it observed.

  ip netns exec NS socket_api.py tests/differential/socket_api.json

The namespace must own 198.18.0.1 and 2001:2::1 and nothing else of
198.18.0.0/24 or 2001:2::/64;
tests/differential_socket_api.rs makes it and compares with
engine::socket::Stack.
"""
import ctypes
import errno
import json
import socket
import subprocess
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range, set by the caller


def addr(s):
    ip, port = s.rsplit(":", 1)
    return ip.strip("[]"), int(port)


def family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def shown(ip, port):
    """An address as ss and dlisten print it: IPv6 in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def lookup(socks, where):
    """Which listening socket a connection to `where` reaches: the name of
    the one whose accept() returns it, or the connect's errno."""
    ip, port = addr(where)
    c = socket.socket(family_of(ip), socket.SOCK_STREAM)
    c.settimeout(2)
    try:
        c.connect((ip, port))
    except OSError as e:
        c.close()
        return name_of(e.errno) if e.errno else type(e).__name__
    found = "none"
    deadline = time.monotonic() + 1.0
    while found == "none" and time.monotonic() < deadline:
        for name, sk in socks.items():
            try:
                sk.setblocking(False)
                a, _ = sk.accept()
            except OSError:
                continue
            a.close()
            found = name
            break
        else:
            time.sleep(0.01)
    c.close()
    return found


def name_of(err):
    # 95 has two names; Linux's headers (and dlisten) say EOPNOTSUPP.
    return "EOPNOTSUPP" if err == errno.EOPNOTSUPP else errno.errorcode.get(err, str(err))


def send_q(local):
    """`ss -lnt`'s Send-Q of the listener on `local` (sk_max_ack_backlog)."""
    port = local.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[3] == local:
            return f[2]
    return "absent"


def step(socks, s):
    op = s["op"]
    if op == "socket":
        kind = socket.SOCK_STREAM if s["type"] == "stream" else socket.SOCK_DGRAM
        family = socket.AF_INET6 if s.get("family") == "inet6" else socket.AF_INET
        socks[s["sock"]] = socket.socket(family, kind)
        return "ok"
    if op == "somaxconn":
        with open("/proc/sys/net/core/somaxconn", "w") as f:
            f.write(str(s["value"]))
        return "ok"
    if op == "send_q":
        return send_q(s["addr"])
    if op == "lookup":
        return lookup(socks, s["addr"])
    sk = socks[s["sock"]]
    if op == "listen":
        if libc.listen(sk.fileno(), ctypes.c_int(s["backlog"])) != 0:
            return name_of(ctypes.get_errno())
        return "ok"
    if op == "bind":
        sk.bind(addr(s["addr"]))
    elif op == "connect":
        sk.settimeout(2)
        sk.connect(addr(s["addr"]))
    elif op == "accept":
        sk.setblocking(False)
        sk.accept()
    elif op == "reuseaddr":
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    elif op == "reuseport":
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    elif op == "v6only":
        sk.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, s["value"])
    elif op == "fastopen":
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, s["qlen"])
    elif op == "getsockname":
        ip, port = sk.getsockname()[:2]
        if EPHEMERAL[0] <= port <= EPHEMERAL[1]:
            return shown(ip, "ephemeral")
        return shown(ip, port)
    elif op == "close":
        sk.close()
    else:
        raise ValueError(f"unknown op {op}")
    return "ok"


def main():
    with open(sys.argv[1]) as f:
        steps = json.load(f)["steps"]
    socks, out = {}, []
    for s in steps:
        try:
            r = step(socks, s)
        except OSError as e:
            r = name_of(e.errno) if e.errno else type(e).__name__
        out.append(r)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
