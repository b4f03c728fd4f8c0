#!/usr/bin/env bash
# Kernel oracle: what Linux 6.x answers on a closed port (RST/ICMP), via scapy across a veth
# in two namespaces it creates. Recorded results (Linux 6.18):
#   SYN+3 bytes -> RST|ACK tos reflected, ttl 64, id 0, DF, seq 0, ack seq+1+3, win 0, no options
#   ACK ack=X   -> RST seq X, no ACK flag
#   NULL flags  -> RST|ACK ack=seq; SYN|FIN -> RST|ACK ack=seq+2
#   UDP closed  -> ICMP 3/3, tos 0xc0, no DF, quotes the whole datagram (up to 576 bytes total)
#   proto 253   -> ICMP 3/2; echo -> reply, tos copied, no DF
#   20 rapid UDP to closed ports -> 8 answered (per-peer bucket: burst 6, then 1/s)
set -e
ip netns add orA; ip netns add orB
trap 'ip netns del orA; ip netns del orB' EXIT
ip link add vA netns orA type veth peer name vB netns orB
ip -n orA addr add 198.18.0.1/24 dev vA; ip -n orA link set vA up; ip -n orA link set lo up
ip -n orB addr add 198.18.0.2/24 dev vB; ip -n orB link set vB up
sleep 1
ip netns exec orB /usr/bin/python3 - <<'PY'
from scapy.all import *
conf.verb=0
conf.iface='vB'
r=sr1(IP(dst="198.18.0.1",tos=0x10,id=7)/TCP(sport=40000,dport=81,flags="S",seq=1000,options=[('MSS',1460),('SAckOK',b''),('Timestamp',(1,0)),('WScale',7)])/b"abc",timeout=2)
print("SYN+3data to closed ->", r.summary(), "tos",r.tos,"ttl",r.ttl,"id",r.id,"flags",r[IP].flags,"seq",r.seq,"ack",r.ack,"win",r.window,"opts",r[TCP].options, "len", len(r))
r=sr1(IP(dst="198.18.0.1")/TCP(sport=40001,dport=81,flags="A",seq=1000,ack=5555),timeout=2)
print("ACK to closed ->", r.summary(), "seq",r.seq,"ack",r.ack, r[TCP].flags, "ipflags", r[IP].flags, "id", r.id)
r=sr1(IP(dst="198.18.0.1")/TCP(sport=40002,dport=81,flags="",seq=1000),timeout=2)
print("NULL to closed ->", r and (r.summary(), r.seq, r.ack))
r=sr1(IP(dst="198.18.0.1")/TCP(sport=40003,dport=81,flags="SF",seq=1000),timeout=2)
print("SYNFIN to closed ->", r and (r.summary(), r.seq, r.ack))
r=sr1(IP(dst="198.18.0.1")/TCP(sport=40004,dport=81,flags="FA",seq=1000, ack=9),timeout=2)
print("FINACK to closed ->", r and (r.summary(), r.seq, r.ack, r[TCP].flags))
r=sr1(IP(dst="198.18.0.1")/UDP(sport=40000,dport=9)/b"hello",timeout=2)
print("UDP closed ->", r and (r.summary(), r[IP].tos, r[IP].flags, r[IP].id, r[ICMP].type, r[ICMP].code, len(r), bytes(r[ICMP])[8:].hex()))
r=sr1(IP(dst="198.18.0.1",proto=253)/b"xxxxxxxxxxxx",timeout=2)
print("proto253 ->", r and (r.summary(), r[ICMP].type, r[ICMP].code, len(r)))
r=sr1(IP(dst="198.18.0.1")/ICMP(id=5,seq=9)/b"pingdata",timeout=2)
print("echo ->", r and (r.summary(), r[IP].flags, r[IP].id, r[IP].ttl, r[IP].tos, bytes(r[ICMP].payload)))
# rate limit: 20 udp quickly
ans=0
for i in range(20):
    r=sr1(IP(dst="198.18.0.1")/UDP(sport=41000+i,dport=9)/b"x",timeout=0.3)
    ans += r is not None
print("udp unreach answered of 20 rapid:", ans)
PY
