"""Addresses, keys and the frames the cases send (built with scapy)."""
import logging
import socket

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, conf  # noqa: E402
from scapy.layers.inet6 import (HBHOptUnknown, ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr,  # noqa: E402
                                IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop)

conf.verb = 0

SERVER_IP = "198.18.0.1"
CLIENT_IP = "198.18.0.2"
OTHER_IP = "198.18.0.3"  # on the link, owned by nobody
SERVER_MAC = "02:00:00:00:00:01"
CLIENT_MAC = "02:00:00:00:00:02"
OTHER_MAC = "02:00:00:00:00:03"
# IPv6 (2001:2::/48 only): the targets own SERVER_IP6, the tester is CLIENT_IP6.
SERVER_IP6 = "2001:2::1"
CLIENT_IP6 = "2001:2::2"
OTHER_IP6 = "2001:2::3"  # on the link, owned by nobody
ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"
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


def solicited_node(addr):
    """The solicited-node group of `addr` and its Ethernet address (RFC 4291 2.7.1)."""
    low = socket.inet_pton(socket.AF_INET6, addr)[13:]
    group = socket.inet_ntop(socket.AF_INET6, bytes.fromhex("ff0200000000000000000001ff") + low)
    return group, "33:33:ff:" + ":".join(f"{b:02x}" for b in low)


def ip6(src=CLIENT_IP6, dst=SERVER_IP6, **kw):
    return IPv6(src=src, dst=dst, **kw)


def tcp6(sport, flags, seq, ack=0, opts=(), data=b"", dport=LISTEN_PORT, win=64240, ip=None, ext=None, **tcpkw):
    """One TCP segment over IPv6 from the client. `ip`: IPv6() fields to
    override; `ext`: extension headers before the segment."""
    seg = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=win, options=list(opts), **tcpkw)
    pkt = eth() / ip6(**(ip or {}))
    if ext is not None:
        pkt = pkt / ext
    pkt = pkt / seg
    if data:
        pkt = pkt / Raw(data)
    return pkt


def syn6(sport, seq=1000, opts=None, **kw):
    # The client's MSS over IPv6 on a 1500-byte link: 1500 - 40 - 20.
    return tcp6(sport, "S", seq, opts=linux_opts(mss=1440) if opts is None else opts, **kw)


def udp6(sport, dport, data=b"hello", **udpkw):
    return eth() / ip6() / UDP(sport=sport, dport=dport, **udpkw) / Raw(data)


def icmp6_echo(ident=5, seq=9, data=b"pingdata", ip=None, ext=None, **icmpkw):
    pkt = eth() / ip6(**(ip or {}))
    if ext is not None:
        pkt = pkt / ext
    return pkt / ICMPv6EchoRequest(id=ident, seq=seq, data=data, **icmpkw)


def neighbor_solicit(target=SERVER_IP6, multicast=True, src=CLIENT_IP6, lladdr=True):
    """A neighbour solicitation for `target`: to its solicited-node group
    (as address resolution sends it) or unicast to us (as reachability
    confirmation does), with or without the sender's link-layer address."""
    group, group_mac = solicited_node(target)
    dst, dst_mac = (group, group_mac) if multicast else (target, SERVER_MAC)
    pkt = eth(dst_mac) / IPv6(src=src, dst=dst, hlim=255) / ICMPv6ND_NS(tgt=target)
    if lladdr:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC)
    return pkt


def ip6_next_header(nh, data=b"xxxxxxxxxxxx", **ipkw):
    return eth() / IPv6(src=CLIENT_IP6, dst=SERVER_IP6, nh=nh, **ipkw) / Raw(data)


def raw_bytes(pkt, patch):
    """The frame's bytes with `patch(bytearray)` applied after scapy computed
    every length and checksum (for malformed frames)."""
    b = bytearray(bytes(pkt))
    patch(b)
    return bytes(b)


__all__ = [n for n in dir() if not n.startswith("_")] + ["ARP", "ICMP", "IP", "TCP", "UDP", "Ether", "Raw", "IPv6"]
