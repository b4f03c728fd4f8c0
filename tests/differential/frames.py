"""Addresses, keys and the frames the cases send (built with scapy)."""
import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, conf  # noqa: E402

conf.verb = 0

SERVER_IP = "198.18.0.1"
CLIENT_IP = "198.18.0.2"
OTHER_IP = "198.18.0.3"  # on the link, owned by nobody
SERVER_MAC = "02:00:00:00:00:01"
CLIENT_MAC = "02:00:00:00:00:02"
OTHER_MAC = "02:00:00:00:00:03"
# net.ipv4.tcp_fastopen_key on the kernel, --tfo-key on dlisten: the same key,
# so both make the same cookie for the same addresses and a cookie one side
# gave is valid on the other.
TFO_KEY = "00112233-44556677-8899aabb-ccddeeff"
LISTEN_PORT = 80
CLOSED_PORT = 81

TSVAL = 100  # the client's first TSval in every flow; later ones count up

# Linux's own SYN options (tcp_syn_options order).
def linux_opts(tsval=TSVAL, wscale=7, mss=1460):
    return [("MSS", mss), ("SAckOK", b""), ("Timestamp", (tsval, 0)), ("NOP", None), ("WScale", wscale)]


def eth(dst=SERVER_MAC):
    return Ether(src=CLIENT_MAC, dst=dst)


def tcp(sport, flags, seq, ack=0, opts=(), data=b"", dport=LISTEN_PORT, win=64240, ip=None, **tcpkw):
    """One TCP segment from the client. `ip`: IP() fields to override."""
    iph = IP(**{"src": CLIENT_IP, "dst": SERVER_IP, **(ip or {})})
    seg = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win, options=list(opts), **tcpkw)
    pkt = eth() / iph / seg
    if data:
        pkt = pkt / Raw(data)
    return pkt


def syn(sport, seq=1000, opts=None, **kw):
    return tcp(sport, "S", seq, opts=linux_opts() if opts is None else opts, **kw)


def tfo_opts(cookie=b"", tsval=TSVAL):
    """Linux's SYN options with the TFO option (kind 34) last, as Linux sends them."""
    return linux_opts(tsval) + [(34, cookie)]


def tfo_exp_opts(cookie=b"", tsval=TSVAL):
    """The experimental TFO option: kind 254, magic 0xF989, then the cookie."""
    return linux_opts(tsval) + [(254, b"\xf9\x89" + cookie)]


def udp(sport, dport, data=b"hello", **udpkw):
    return eth() / IP(src=CLIENT_IP, dst=SERVER_IP) / UDP(sport=sport, dport=dport, **udpkw) / Raw(data)


def icmp_echo(ident=5, seq=9, data=b"pingdata", **icmpkw):
    return eth() / IP(src=CLIENT_IP, dst=SERVER_IP) / ICMP(id=ident, seq=seq, **icmpkw) / Raw(data)


def arp_request(target=SERVER_IP, dst="ff:ff:ff:ff:ff:ff"):
    return Ether(src=CLIENT_MAC, dst=dst) / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT_IP, hwdst="00:00:00:00:00:00", pdst=target)


def ip_proto(proto, data=b"xxxxxxxxxxxx", **ipkw):
    return eth() / IP(src=CLIENT_IP, dst=SERVER_IP, proto=proto, **ipkw) / Raw(data)


def raw_bytes(pkt, patch):
    """The frame's bytes with `patch(bytearray)` applied after scapy computed
    every length and checksum (for malformed frames)."""
    b = bytearray(bytes(pkt))
    patch(b)
    return bytes(b)


__all__ = [n for n in dir() if not n.startswith("_")] + ["ARP", "ICMP", "IP", "TCP", "UDP", "Ether", "Raw"]
