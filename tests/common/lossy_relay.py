"""A lossy, reordering Ethernet relay between two interfaces (AF_PACKET),
for tests and benchmarks on kernels without sch_netem.

    lossy_relay.py IF_A IF_B SECONDS [LOSS_PCT] [REORDER_PCT] [SEED]

Every frame received on one interface is sent out of the other, except
that LOSS_PCT % are dropped and REORDER_PCT % are held back until the next
3 frames in the same direction went (so those overtake it). Seeded, so a
run is repeatable; stops by itself after SECONDS. Prints what it did.
"""
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    if_a, if_b, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
    loss = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    reorder = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
    socks = {}
    for name in (if_a, if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        s.setblocking(False)
        socks[name] = s
    peer = {if_a: socks[if_b], if_b: socks[if_a]}
    held = {if_a: [], if_b: []}  # [frame, frames still to overtake it]
    stats = {"forwarded": 0, "dropped": 0, "reordered": 0}
    print("relay ready", flush=True)
    deadline = time.monotonic() + secs
    fds = {s.fileno(): name for name, s in socks.items()}
    while time.monotonic() < deadline:
        ready, _, _ = select.select(list(socks.values()), [], [], 0.002)
        for s in ready:
            name = fds[s.fileno()]
            for _ in range(64):
                try:
                    frame, addr = s.recvfrom(65535)
                except (BlockingIOError, OSError):
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                out = peer[name]
                r = rng.random() * 100
                if r < loss:
                    stats["dropped"] += 1
                    continue
                if r < loss + reorder:
                    held[name].append([frame, 3])
                    stats["reordered"] += 1
                    continue
                send(out, frame, stats)
                keep = []
                for h in held[name]:
                    h[1] -= 1
                    if h[1] <= 0:
                        send(out, h[0], stats)
                    else:
                        keep.append(h)
                held[name] = keep
        # Nothing overtakes a held frame for long: let it go after a quiet poll.
        if not ready:
            for name, hs in held.items():
                for h in hs:
                    send(peer[name], h[0], stats)
                held[name] = []
    print("relay", " ".join("%s %d" % kv for kv in stats.items()), flush=True)


def send(sock, frame, stats):
    try:
        sock.send(frame)
        stats["forwarded"] += 1
    except OSError:
        stats["dropped"] += 1


if __name__ == "__main__":
    main()
