#!/usr/bin/python3
"""The kernel side's application: a listener on the Linux stack of the
namespace it runs in, made with the socket module, reporting on stdout (one
JSON object a line) what dlisten's --event-log reports: listening, accept,
data, eof, reset.

  kernel_listener.py --addr 198.18.0.1 [--addr 2001:2::1] --port 80 --backlog N [--fastopen Q] --mode discard|hold

One listener per --addr: an IPv6 one (`2001:2::1`, or `::` for any) is
IPV6_V6ONLY, so it takes no IPv4 connection from the IPv4 one.

discard: accept every connection, read and drop, close at EOF (dlisten's
--app discard). hold: never accept (dlisten's --app hold). Runs until SIGTERM.
"""
import argparse
import json
import select
import signal
import socket
import sys


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", action="append", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backlog", type=int, required=True)
    p.add_argument("--fastopen", type=int, default=0)
    p.add_argument("--mode", choices=["discard", "hold"], required=True)
    a = p.parse_args()

    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))

    listeners = []
    for addr in a.addr:
        v6 = ":" in addr
        ls = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        if v6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if a.fastopen:
            ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, a.fastopen)
        ls.bind((addr, a.port))
        ls.listen(a.backlog)
        ls.setblocking(False)
        listeners.append(ls)
    # One line once all are bound: run.py starts the case on it.
    emit(event="listening", addr=" ".join(f"[{x}]:{a.port}" if ":" in x else f"{x}:{a.port}" for x in a.addr))

    conns = {}  # socket -> "ip:port"
    while running[0]:
        watch = list(conns) + (listeners if a.mode == "discard" else [])
        try:
            ready, _, _ = select.select(watch, [], [], 0.05)
        except InterruptedError:
            continue
        for s in ready:
            if s in listeners:
                try:
                    c, peer = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns[c] = f"{peer[0]}:{peer[1]}"
                emit(event="accept", peer=conns[c])
                continue
            peer = conns[s]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                emit(event="reset", peer=peer)
                del conns[s]
                s.close()
                continue
            if data:
                emit(event="data", peer=peer, len=len(data), bytes=data.hex())
            else:
                emit(event="eof", peer=peer)
                del conns[s]
                s.close()
    for s in conns:
        s.close()
    for ls in listeners:
        ls.close()


if __name__ == "__main__":
    main()
