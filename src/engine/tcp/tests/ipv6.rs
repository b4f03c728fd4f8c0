//! The listen path over IPv6 (Linux's tcp_ipv6.c: `tcp_v6_conn_request`,
//! `tcp_v6_send_synack`, `tcp_v6_syn_recv_sock`, `tcp_v6_send_reset`,
//! `tcp_v6_send_ack`; syncookies.c's IPv6 MSS table; TFO cookies over both
//! addresses). Scripts from 2001:2::2 to our 2001:2::1.

use super::*;
use crate::engine::keys::fastopen;
use crate::engine::sysctl::tfo;
use crate::testkit::frame::OUR_MAC;
use crate::wire::ethernet::{self, EtherType, EthernetFrame};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr, NextHeader};
use crate::wire::tcp::{TcpRepr, TcpSegment, CHECKSUM_AT};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// A segment from an IPv6 client to us.
#[derive(Clone)]
struct Seg6 {
    src: Ipv6Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    options: Vec<u8>,
    payload: Vec<u8>,
    traffic_class: u8,
}

impl Seg6 {
    fn new(flags: TcpFlags, seq: u32, ack: u32) -> Seg6 {
        Seg6 { src: CLIENT6, sport: CLIENT_PORT, dport: PORT, seq, ack, flags, options: Vec::new(), payload: Vec::new(), traffic_class: 0 }
    }

    /// A Linux client's SYN.
    fn syn(seq: u32) -> Seg6 {
        Seg6 { options: syn_opt_bytes(&linux_syn_opts()), ..Seg6::new(TcpFlags::SYN, seq, 0) }
    }

    fn ack(seq: u32, ack: u32) -> Seg6 {
        Seg6::new(TcpFlags::ACK, seq, ack)
    }

    fn ts(mut self, val: u32, ecr: u32) -> Seg6 {
        self.options = ts_opt_bytes(val, ecr);
        self
    }

    fn data(mut self, bytes: &[u8]) -> Seg6 {
        self.payload = bytes.to_vec();
        self
    }

    fn frame(&self) -> Vec<u8> {
        let tcp_len = 20 + self.options.len() + self.payload.len();
        let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + tcp_len];
        ethernet::emit_header(&mut f, OUR_MAC, CLIENT_MAC, EtherType::Ipv6).unwrap();
        let ip = Ipv6Repr {
            src_addr: self.src,
            dst_addr: SERVER6,
            next_header: NextHeader::Tcp,
            payload_len: tcp_len as u16,
            hop_limit: 64,
            traffic_class: self.traffic_class,
            flow_label: 0,
        };
        ip.emit(&mut f[ethernet::HEADER_LEN..]).unwrap();
        let l4 = &mut f[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
        l4[20..20 + self.options.len()].copy_from_slice(&self.options);
        l4[20 + self.options.len()..].copy_from_slice(&self.payload);
        let repr = TcpRepr { src_port: self.sport, dst_port: self.dport, seq_number: self.seq, ack_number: self.ack, flags: self.flags, window_len: 64800 };
        repr.emit_header(l4, self.options.len()).unwrap();
        ipv6::fill_upper_layer(&self.src, &SERVER6, NextHeader::Tcp, l4, CHECKSUM_AT).unwrap();
        f
    }
}

/// A segment we sent over IPv6, parsed (its checksum verified).
#[derive(Clone, Debug)]
struct Out6 {
    src: SocketAddrV6,
    dst: SocketAddrV6,
    eth_dst: EthernetAddress,
    hop_limit: u8,
    traffic_class: u8,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    window: u16,
    options: Vec<u8>,
    syn: SynOptions,
    payload: Vec<u8>,
}

impl Out6 {
    fn ts(&self) -> Option<(u32, u32)> {
        crate::wire::tcp_options::timestamps(&self.options)
    }
}

fn parse6(frame: &[u8]) -> Out6 {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    assert_eq!(eth.ethertype(), EtherType::Ipv6, "an IPv6 frame: {frame:02x?}");
    let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
    assert_eq!(ip.total_len() + ethernet::HEADER_LEN, frame.len(), "frame length");
    assert_eq!(ip.next_header(), NextHeader::Tcp);
    assert_eq!(ip.flow_label(), 0);
    let l4 = ip.payload();
    assert!(ipv6::verify_upper_layer(&ip.src_addr(), &ip.dst_addr(), 6, l4), "TCP checksum");
    let seg = TcpSegment::new_checked(l4).expect("tcp");
    Out6 {
        src: SocketAddrV6::new(ip.src_addr(), seg.src_port(), 0, 0),
        dst: SocketAddrV6::new(ip.dst_addr(), seg.dst_port(), 0, 0),
        eth_dst: eth.dst_addr(),
        hop_limit: ip.hop_limit(),
        traffic_class: ip.traffic_class(),
        flags: seg.flags(),
        seq: seg.seq_number(),
        ack: seg.ack_number(),
        window: seg.window_len(),
        options: seg.options().to_vec(),
        syn: SynOptions::parse(seg.options()),
        payload: seg.payload().to_vec(),
    }
}

/// A rig whose host owns 198.18.0.1 and 2001:2::1.
struct Bench6 {
    rig: Rig,
    sink: VecSink,
}

impl Bench6 {
    fn with(f: impl FnOnce(&mut Sysctls)) -> Bench6 {
        let mut sysctls = Sysctls::default();
        f(&mut sysctls);
        let rig = Rig::new(RigConfig { sysctls, addrs6: vec![SERVER6], ..RigConfig::default() });
        Bench6 { rig, sink: VecSink::default() }
    }

    fn linux() -> Bench6 {
        Bench6::with(|_| {})
    }

    /// A dual-stack `[::]:80` listener.
    fn listen(&mut self, backlog: i32) -> Fd {
        self.listen6(backlog, false)
    }

    /// An AF_INET6 listener on `[::]:80`, with IPV6_V6ONLY or without.
    fn listen6(&mut self, backlog: i32, v6only: bool) -> Fd {
        let st = &self.rig.stack;
        let fd = st.socket6(crate::engine::socket::SockType::Stream).expect("socket");
        st.set_v6only(fd, v6only).expect("IPV6_V6ONLY");
        st.bind(fd, SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, PORT, 0, 0)).expect("bind");
        st.listen(fd, backlog).expect("listen");
        fd
    }

    fn send(&mut self, seg: &Seg6) -> Vec<Out6> {
        self.rig.rx(0, &seg.frame(), RxMeta::default(), &mut self.sink);
        self.take()
    }

    fn take(&mut self) -> Vec<Out6> {
        self.sink.take().iter().map(|f| parse6(f)).collect()
    }

    fn syn_synack(&mut self, seg: &Seg6) -> Out6 {
        let out = self.send(seg);
        assert_eq!(out.len(), 1, "one SYN-ACK: {out:?}");
        assert_eq!(out[0].flags, TcpFlags::SYN | TcpFlags::ACK, "{out:?}");
        out[0].clone()
    }

    /// SYN, SYN-ACK, ACK with timestamps; returns the accepted child's
    /// connection id and our ISN.
    fn handshake(&mut self, fd: Fd) -> (u32, u32) {
        let sa = self.syn_synack(&Seg6::syn(CISN));
        let (tsval, _) = sa.ts().expect("timestamps");
        assert!(self.send(&Seg6::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
        let child = self.rig.stack.accept(fd).expect("accepted");
        (child.conn_id, sa.seq)
    }
}

fn flow6() -> FlowKey {
    FlowKey::v6(SERVER6, CLIENT6, PORT, CLIENT_PORT)
}

fn peer6() -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(CLIENT6, CLIENT_PORT, 0, 0))
}

/// tcp_v6_send_synack: the client's options answered in Linux's layout,
/// MSS 1440 (1500 less 60 bytes of IPv6 and TCP headers), the window 45
/// segments of 1428 (MSS less timestamps), hop limit 64, flow label 0.
#[test]
fn syn_gets_a_synack_with_the_ipv6_mss() {
    let mut b = Bench6::linux();
    b.listen(128);
    let sa = b.syn_synack(&Seg6::syn(CISN));
    assert_eq!(sa.src, SocketAddrV6::new(SERVER6, PORT, 0, 0));
    assert_eq!(sa.dst, SocketAddrV6::new(CLIENT6, CLIENT_PORT, 0, 0));
    assert_eq!(sa.eth_dst, CLIENT_MAC);
    assert_eq!((sa.hop_limit, sa.traffic_class), (64, 0));
    assert_eq!(sa.ack, CISN + 1);
    assert_eq!(sa.syn.mss, Some(1440));
    assert_eq!(sa.syn.wscale, Some(7));
    assert!(sa.syn.sack_permitted);
    let (tsval, tsecr) = sa.ts().expect("timestamps");
    assert_eq!(tsecr, 100);
    let off = crate::engine::keys::isn::ts_off(secrets().ts_off, &flow6());
    assert_eq!(tsval, (START.as_millis() as u32).wrapping_add(off));
    // mss, sackOK+TS, nop+wscale: Linux's order.
    assert_eq!(&sa.options[..4], &[2, 4, 0x05, 0xa0]);
    assert_eq!(&sa.options[4..6], &[4, 2]);
    assert_eq!(sa.window, 45 * 1428);
    assert_eq!(b.rig.request_socks(), 1);
    assert_eq!(b.rig.counter(Counter::Ip6OutRequests), 1);
    assert_eq!(b.rig.counter(Counter::TcpOutSegs), 1);
}

/// The ISN and the timestamp offset are keyed over both 16-byte
/// addresses: another IPv6 peer gets other values.
#[test]
fn isn_and_ts_offset_cover_the_ipv6_addresses() {
    let mut b = Bench6::linux();
    b.listen(128);
    let a = b.syn_synack(&Seg6::syn(CISN));
    let other = Seg6 { src: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 1, 2), ..Seg6::syn(CISN) };
    let c = b.syn_synack(&other);
    assert_ne!(a.seq, c.seq);
    assert_ne!(a.ts().unwrap().0, c.ts().unwrap().0);
}

/// tcp_v6_syn_recv_sock: the final ACK makes the child, accept() returns
/// it with the IPv6 peer, and its MSS is IPv6's.
#[test]
fn handshake_puts_the_ipv6_child_in_the_accept_queue() {
    let mut b = Bench6::linux();
    let fd = b.listen(128);
    let sa = b.syn_synack(&Seg6::syn(CISN));
    let (tsval, _) = sa.ts().unwrap();
    assert!(b.send(&Seg6::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.rig.counter(Counter::TcpPassiveOpens), 1);
    let child = b.rig.stack.accept(fd).expect("child");
    assert_eq!(child.peer, peer6());
    assert_eq!(child.local, SocketAddr::V6(SocketAddrV6::new(SERVER6, PORT, 0, 0)));
    assert_eq!(child.peer.to_string(), "[2001:2::2]:40000");
    let conn = b.rig.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.snd_nxt(), conn.rcv_nxt()), (sa.seq + 1, CISN + 1));
    assert_eq!((conn.mss(), conn.snd_wscale(), conn.sack()), (1440, Some(7), true));
}

/// A wrong ACK to a request gets tcp_v6_send_reset's RST over IPv6.
#[test]
fn wrong_ack_gets_an_ipv6_rst() {
    let mut b = Bench6::linux();
    b.listen(128);
    let sa = b.syn_synack(&Seg6::syn(CISN));
    let bad = sa.seq.wrapping_add(9);
    let out = b.send(&Seg6::ack(CISN + 1, bad));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].seq, out[0].ack, out[0].window), (TcpFlags::RST, bad, 0, 0));
    assert_eq!(out[0].dst.ip(), &CLIENT6);
    assert_eq!(b.rig.request_socks(), 1);
}

/// syncookies = 2: a cookie SYN-ACK, MSS from the IPv6 table (a 1460
/// client gets 1440); the cookie ACK makes the child, a forged one is
/// refused with RST.
#[test]
fn cookie_synack_and_cookie_ack_over_ipv6() {
    let mut b = Bench6::with(|s| s.tcp_syncookies = 2);
    let fd = b.listen(128);
    let sa = b.syn_synack(&Seg6::syn(CISN));
    assert_eq!(b.rig.counter(Counter::SyncookiesSent), 1);
    assert_eq!(b.rig.request_socks(), 0);
    assert_eq!(sa.syn.mss, Some(1440));
    let (tsval, _) = sa.ts().unwrap();
    // Forged: another ISN.
    let forged = b.send(&Seg6::ack(CISN + 1, sa.seq.wrapping_add(1 << 8)).ts(101, tsval));
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert_eq!(forged[0].flags, TcpFlags::RST);
    assert_eq!(b.rig.counter(Counter::SyncookiesFailed), 1);
    assert!(b.rig.stack.accept(fd).is_err());
    // The cookie does not fit another IPv6 peer either.
    let elsewhere = Seg6 { src: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3), ..Seg6::ack(CISN + 1, sa.seq + 1).ts(101, tsval) };
    assert_eq!(b.send(&elsewhere).len(), 1);
    assert_eq!(b.rig.counter(Counter::SyncookiesFailed), 2);
    // The real one.
    assert!(b.send(&Seg6::ack(CISN + 1, sa.seq + 1).ts(101, tsval)).is_empty());
    assert_eq!(b.rig.counter(Counter::SyncookiesRecv), 1);
    let child = b.rig.stack.accept(fd).expect("cookie child");
    assert_eq!(child.peer, peer6());
    let conn = b.rig.workers[0].engine.connections().get(child.conn_id).expect("conn");
    assert_eq!((conn.mss(), conn.snd_wscale(), conn.sack()), (1440, Some(7), true));
}

/// A valid TFO cookie (SipHash over saddr and daddr of the IPv6 header)
/// makes the child at once, with the SYN's data.
#[test]
fn tfo_syn_with_a_valid_ipv6_cookie_creates_the_child_with_data() {
    let mut b = Bench6::with(|s| s.tcp_fastopen = tfo::CLIENT_ENABLE | tfo::SERVER_ENABLE | tfo::SERVER_WO_SOCKOPT1);
    let fd = b.listen(16);
    let cookie = FastOpenCookie::new(&fastopen::gen(&secrets().tfo, &flow6())).unwrap();
    let syn = Seg6 { options: syn_opt_bytes(&SynOptions { fastopen: Some(cookie), ..linux_syn_opts() }), ..Seg6::syn(CISN) }.data(b"hello");
    let sa = b.syn_synack(&syn);
    assert_eq!(sa.ack, CISN + 1 + 5);
    assert_eq!(sa.syn.fastopen, None);
    assert_eq!(b.rig.counter(Counter::TcpFastOpenPassive), 1);
    let child = b.rig.stack.accept(fd).expect("child before the final ACK");
    assert_eq!(child.peer, peer6());
    let mut buf = [0u8; 16];
    assert_eq!(b.rig.workers[0].engine.read(child.conn_id, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    // The IPv4 cookie of the same peer bits is not this one.
    let v4 = fastopen::gen(&secrets().tfo, &FlowKey::v4(flow6().local as u32, flow6().peer as u32, PORT, CLIENT_PORT));
    assert_ne!(&v4[..], cookie.as_bytes());
}

/// tcp_v6_send_reset for a closed port: RST|ACK acknowledging the SYN,
/// window 0, no options, the traffic class without its ECN bits.
#[test]
fn syn_to_a_closed_ipv6_port_gets_rst_ack() {
    let mut b = Bench6::linux();
    b.listen(128);
    let syn = Seg6 { dport: 81, traffic_class: 0xb9, ..Seg6::syn(CISN) };
    let out = b.send(&syn);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!((r.flags, r.seq, r.ack, r.window), (TcpFlags::RST | TcpFlags::ACK, 0, CISN + 1, 0));
    assert!(r.options.is_empty());
    assert_eq!((r.hop_limit, r.traffic_class), (64, 0xb8));
    assert_eq!(r.src, SocketAddrV6::new(SERVER6, 81, 0, 0));
    assert_eq!(b.rig.counter(Counter::TcpSynNoListener), 1);
    assert_eq!(b.rig.counter(Counter::TcpOutRsts), 1);
}

/// tcp_v6_conn_request: a SYN from a v4-mapped source is a header error.
#[test]
fn syn_from_a_v4_mapped_source_is_dropped() {
    let mut b = Bench6::linux();
    b.listen(128);
    let syn = Seg6 { src: "::ffff:198.18.0.2".parse().unwrap(), ..Seg6::syn(CISN) };
    assert!(b.send(&syn).is_empty());
    assert_eq!(b.rig.counter(Counter::Ip6InHdrErrors), 1);
    assert_eq!(b.rig.request_socks(), 0);
}

/// Data and FIN on an established IPv6 connection: the data is
/// acknowledged (quick ACK) and readable, the FIN acknowledged, and our
/// close sends FIN, all over IPv6.
#[test]
fn data_and_fin_on_an_established_ipv6_connection() {
    let mut b = Bench6::linux();
    let fd = b.listen(128);
    let (id, iss) = b.handshake(fd);
    let out = b.send(&Seg6::ack(CISN + 1, iss + 1).ts(102, 0).data(b"GET / HTTP/1.1\r\n\r\n"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].flags, out[0].ack, out[0].payload.len()), (TcpFlags::ACK, CISN + 1 + 18, 0));
    let mut buf = [0u8; 64];
    assert_eq!(b.rig.workers[0].engine.read(id, &mut buf), Ok(18));
    let now = b.rig.now;
    let w = &mut b.rig.workers[0];
    assert_eq!(w.engine.write(id, b"HTTP/1.1 200 OK\r\n\r\n"), Ok(19));
    w.engine.flush(now, id, &mut b.sink);
    let out = b.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].payload, b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(out[0].seq, iss + 1);
    let fin = Seg6::new(TcpFlags::FIN | TcpFlags::ACK, CISN + 19, iss + 20).ts(103, 0);
    let out = b.send(&fin);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].ack, CISN + 20);
    let w = &mut b.rig.workers[0];
    w.engine.close(now, id, &mut b.sink);
    let out = b.take();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].flags.contains(TcpFlags::FIN));
    assert_eq!(out[0].dst, SocketAddrV6::new(CLIENT6, CLIENT_PORT, 0, 0));
}

/// A dual-stack `[::]` listener takes an IPv4 client too; accept() shows
/// it IPv4-mapped (`tcp_v6_syn_recv_sock`), and the segments stay IPv4.
#[test]
fn dual_stack_listener_takes_ipv4_as_v4_mapped() {
    let mut b = Bench6::linux();
    let fd = b.listen(128);
    let v4 = Seg::syn(CISN);
    b.rig.rx(0, &v4.frame(), RxMeta::default(), &mut b.sink);
    let frames = b.sink.take();
    assert_eq!(frames.len(), 1);
    let sa = parse_sent_tcp(b.rig.now, &frames[0]).expect("an IPv4 SYN-ACK");
    assert_eq!(sa.syn.mss, Some(1460));
    let (tsval, _) = sa.ts().unwrap();
    b.rig.rx(0, &Seg::ack(CISN + 1, sa.seq + 1).ts(101, tsval).frame(), RxMeta::default(), &mut b.sink);
    let child = b.rig.stack.accept(fd).expect("v4 child");
    assert_eq!(child.peer.to_string(), "[::ffff:198.18.0.2]:40000");
    // And an IPv6 one on the same listener.
    let (id6, _) = b.handshake(fd);
    assert!(b.rig.workers[0].engine.connections().get(id6).is_some());
}

/// IPV6_V6ONLY: no IPv4 for the `[::]` listener (RST from the closed
/// port), and a 0.0.0.0 listener takes no IPv6.
#[test]
fn v6only_and_ipv4_listeners_keep_to_their_family() {
    let mut b = Bench6::linux();
    b.listen6(128, true);
    b.rig.rx(0, &Seg::syn(CISN).frame(), RxMeta::default(), &mut b.sink);
    let frames = b.sink.take();
    let out = parse_sent_tcp(b.rig.now, &frames[0]).expect("IPv4");
    assert_eq!(out.flags, TcpFlags::RST | TcpFlags::ACK);
    let mut b = Bench6::linux();
    b.rig.listen_on(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 128, |_, _| {});
    let out = b.send(&Seg6::syn(CISN));
    assert_eq!(out[0].flags, TcpFlags::RST | TcpFlags::ACK);
}
