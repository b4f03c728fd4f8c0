#!/usr/bin/env python3
"""Many idle HTTP keep-alive connections, from the kernel's side.

client SERVER PORT COUNT SRC1,SRC2,... DEADLINE
    Opens COUNT connections to SERVER:PORT, spread over the source addresses
    (about 25 000 each, ephemeral ports), at most 256 handshakes in flight.
    Each sends one HTTP/1.1 keep-alive request, reads the answer, and then
    stays idle. Prints "ready N FAILED" once every connection is done, then
    holds them until stdin closes (or DEADLINE seconds have passed).
server ADDR PORT DEADLINE
    The kernel's listener for the same clients: accepts, answers every
    request with a fixed 200, keeps the connection. Exits after DEADLINE s.

Plain epoll and non-blocking sockets: a few hundred bytes of Python per
connection, so the client fits next to a million sockets.
"""
import errno
import os
import select
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: kernel\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nhello from kernel!\n"
IN_FLIGHT = 256


def client(server, port, count, sources, deadline):
    ep = select.epoll()
    conns = {}      # fd -> [socket, state]; state 0 connecting, 1 waiting answer
    idle = []       # sockets held open
    failed = 0
    opened = 0
    end = time.monotonic() + deadline
    while (opened < count or conns) and time.monotonic() < end:
        while opened < count and len(conns) < IN_FLIGHT:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.bind((sources[opened % len(sources)], 0))
            except OSError:
                s.close()
                failed += 1
                opened += 1
                continue
            rc = s.connect_ex((server, port))
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                opened += 1
                continue
            conns[s.fileno()] = [s, 0]
            ep.register(s.fileno(), select.EPOLLOUT)
            opened += 1
        for fd, ev in ep.poll(0.5):
            s, state = conns[fd]
            if ev & (select.EPOLLERR | select.EPOLLHUP) or (state == 0 and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
                ep.unregister(fd)
                del conns[fd]
                s.close()
                failed += 1
                continue
            if state == 0:
                s.send(REQUEST)
                conns[fd][1] = 1
                ep.modify(fd, select.EPOLLIN)
                continue
            data = s.recv(4096)
            ep.unregister(fd)
            del conns[fd]
            if data.startswith(b"HTTP/1.1 200"):
                idle.append(s)
            else:
                s.close()
                failed += 1
    failed += len(conns)
    print(f"ready {len(idle)} {failed}", flush=True)
    # Hold the idle connections until told to stop (stdin closes) or the deadline.
    left = max(1.0, end - time.monotonic())
    select.select([sys.stdin], [], [], left)
    for s in idle:
        s.close()


def server(addr, port, deadline):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Several listener processes share the port (one file per connection,
    # and a process may have only so many files).
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    ls.bind((addr, port))
    ls.listen(4096)
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    conns = {}
    print("listening", flush=True)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for fd, ev in ep.poll(0.5):
            if fd == ls.fileno():
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
                continue
            c = conns[fd]
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                del conns[fd]
                c.close()
            elif data.endswith(b"\r\n\r\n"):
                c.send(RESPONSE)


def main():
    if len(sys.argv) >= 7 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","), float(sys.argv[6]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
