#!/usr/bin/env bash
# Kernel oracle: what a Linux host answers over IPv6 (neighbour discovery,
# echo, closed ports, extension headers), via raw AF_PACKET frames across a
# veth in two namespaces it creates. Run as root. Recorded results (Linux 6.18.44):
#   multicast NS with SLLAO     -> NA to the sender, flags S|O, TLLAO, hop 255, tclass 0
#   unicast NS, no SLLAO        -> NA flags S only, no TLLAO
#   DAD NS (from ::)            -> NA to ff02::1 (33:33:00:00:00:01), flags O, TLLAO
#   multicast NS, no SLLAO      -> answered (S|O, TLLAO) because the sender was known
#   echo code 9, tclass 0xb9    -> reply code 9, tclass 0xb9, hop 64, an automatic flow label
#   next header 132             -> param problem 1, pointer 6
#   dstopt option 0x9e          -> param problem 2, pointer 44
#   SYN+3 bytes, tclass 0x2b    -> RST|ACK ack seq+4, win 0, tclass 0x28 (ECN bits cleared)
#   routing type 0, segleft 1   -> param problem 0, pointer 42 (the type byte)
#   fragment, M, 15 bytes       -> param problem 0, pointer 4 (payload length)
#   hop-by-hop after dstopt     -> param problem 1, pointer 40
#   UDP to a closed port        -> destination unreachable 4
#   20 rapid UDP probes         -> 6 answered (burst of 6, then 1 per 100 ms)
#   nstat: Ip6InHdrErrors 3, Ip6InUnknownProtos 2, Ip6InDelivers 7+, Ip6InMcastPkts 3
set -e
A=orv6A$$; B=orv6B$$
ip netns add $A; ip netns add $B
trap 'ip netns del $A; ip netns del $B' EXIT
ip link add v6oa$$ netns $A type veth peer name v6ob$$ netns $B
ip netns exec $A sysctl -qw net.ipv6.conf.v6oa$$.accept_ra=0
ip netns exec $A sysctl -qw net.ipv6.conf.v6oa$$.addr_gen_mode=1
ip netns exec $B sysctl -qw net.ipv6.conf.v6ob$$.disable_ipv6=1
ip -n $A link set v6oa$$ up; ip -n $B link set v6ob$$ up
ip -n $A -6 addr add 2001:2::1/64 dev v6oa$$ nodad
KMAC=$(ip netns exec $A cat /sys/class/net/v6oa$$/address)
sleep 0.5
ip netns exec $B /usr/bin/python3 - v6ob$$ "$KMAC" <<'PY'
import socket, struct, ipaddress, time, sys
IF=sys.argv[1]
def a(x): return ipaddress.IPv6Address(x).packed
def csum(src,dst,nh,msg):
    d=src+dst+struct.pack('!IxxxB',len(msg),nh)+msg
    if len(d)%2: d+=b'\0'
    t=sum(struct.unpack('!%dH'%(len(d)//2),d))
    while t>0xffff: t=(t>>16)+(t&0xffff)
    return (~t)&0xffff
def icmp(src,dst,body):
    b=bytearray(body); b[2:4]=b'\0\0'; b[2:4]=struct.pack('!H',csum(src,dst,58,bytes(b))); return bytes(b)
def ip6(src,dst,nh,payload,hop=64,tc=0):
    return struct.pack('!IHBB',0x60000000|(tc<<20),len(payload),nh,hop)+src+dst+payload
s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd)); s.bind((IF,0)); s.settimeout(0.5)
mymac=s.getsockname()[4]
peer=a('2001:2::2'); ours=a('2001:2::1'); sn=a('ff02::1:ff00:1')
def send(dstmac, pkt):
    s.send(dstmac+mymac+b'\x86\xdd'+pkt)
    out=[]
    t=time.time()
    while time.time()-t<0.6:
        try: f=s.recv(2000)
        except socket.timeout: break
        if f[6:12]==mymac: continue
        out.append(f)
    return out
def show(name, frames):
    for f in frames:
        p=f[14:]; nh=p[6]; hop=p[7]; tc=(struct.unpack('!I',p[:4])[0]>>20)&0xff; flow=struct.unpack('!I',p[:4])[0]&0xfffff
        src=ipaddress.IPv6Address(p[8:24]); dst=ipaddress.IPv6Address(p[24:40]); l4=p[40:]
        print(name, 'dstmac',f[:6].hex(), 'src',src,'dst',dst,'nh',nh,'hop',hop,'tc',hex(tc),'flow',hex(flow),'l4',l4[:48].hex())
    if not frames: print(name,'-> nothing')
# 1. multicast NS with SLLAO
ns=icmp(peer,sn,bytes([135,0,0,0,0,0,0,0])+ours+bytes([1,1])+mymac)
show('mcast-ns', send(b'\x33\x33\xff\x00\x00\x01', ip6(peer,sn,58,ns,255)))
# 2. unicast NS without SLLAO
ns=icmp(peer,ours,bytes([135,0,0,0,0,0,0,0])+ours)
kmac=bytes.fromhex(sys.argv[2].replace(':',''))
show('ucast-ns', send(kmac, ip6(peer,ours,58,ns,255)))
# 3. DAD
ns=icmp(a('::'),sn,bytes([135,0,0,0,0,0,0,0])+ours)
show('dad-ns', send(b'\x33\x33\xff\x00\x00\x01', ip6(a('::'),sn,58,ns,255)))
# 4. mcast NS without SLLAO
ns=icmp(peer,sn,bytes([135,0,0,0,0,0,0,0])+ours)
show('mcast-ns-noll', send(b'\x33\x33\xff\x00\x00\x01', ip6(peer,sn,58,ns,255)))
# 5. echo with tc 0xb9 code 9
e=icmp(peer,ours,bytes([128,9,0,0,0,7,0,3])+b'abcdefgh')
show('echo', send(kmac, ip6(peer,ours,58,e,9,0xb9)))
# 6. unknown next header 132
show('unk-nh', send(kmac, ip6(peer,ours,132,bytes(12))))
# 7. dstopt unknown 0x9e
show('opt-9e', send(kmac, ip6(peer,ours,60,bytes([59,0,1,0,0x9e,2,0,0]))))
# 8. tcp syn tc 0x2b
tcp=bytearray(struct.pack('!HHIIBBHHH',40000,80,1000,0,0x50,0x02,64800,0,0))+b'abc'; tcp[16:18]=struct.pack('!H',csum(peer,ours,6,bytes(tcp)))
show('tcp-syn', send(kmac, ip6(peer,ours,6,bytes(tcp),64,0x2b)))
# 9. routing type 0 segleft 1
show('rh0', send(kmac, ip6(peer,ours,43,bytes([59,2,0,1])+bytes(20))))
# 10. fragment M, 15 bytes
show('frag15', send(kmac, ip6(peer,ours,44,bytes([17,0,0,1,0,0,0,9])+bytes(15))))
# 11. hbh not first
show('hbh2', send(kmac, ip6(peer,ours,60,bytes([0,0,1,4,0,0,0,0,59,0,1,4,0,0,0,0]))))
# 12. udp closed port
u=bytearray(struct.pack('!HHHH',40000,9,13,0)+b'hello'); u[6:8]=struct.pack('!H',csum(peer,ours,17,bytes(u)))
show('udp', send(kmac, ip6(peer,ours,17,bytes(u))))
# 13. 20 rapid UDP probes to closed ports, then count the answers.
for i in range(20):
    u=bytearray(struct.pack('!HHHH',41000+i,9,8,0)); u[6:8]=struct.pack('!H',csum(peer,ours,17,bytes(u)))
    s.send(kmac+mymac+b'\x86\xdd'+ip6(peer,ours,17,bytes(u)))
n=0
t=time.time()
while time.time()-t<1:
    try: f=s.recv(2000)
    except socket.timeout: break
    if f[6:12]!=mymac and f[54]==1: n+=1
print('20 rapid udp ->', n, 'port unreachables')
PY
ip netns exec $A nstat -az | grep -E "^(Ip6|Icmp6|Udp6)" | awk '$2 != 0'
