//! Buffer memory accounted by use, as Linux's tcp_mem: the pool's count is
//! exactly what the connections hold after every call, rings go when they
//! drain, connections are refused only at the hard limit (counted, and a
//! warning), and pressure comes and goes with use.

use super::*;
use crate::engine::tcb::State;

fn in_use(b: &Bench) -> u64 {
    b.workers[0].engine.mem().allocated()
}

/// In use, checked against the sum of what every connection holds.
fn exact(b: &Bench) -> u64 {
    let held: u64 = b.workers[0].engine.connections().iter().map(|(_, c)| u64::from(c.tcb.mem())).sum();
    assert_eq!(in_use(b), held, "the pool's count is what the connections hold");
    held
}

/// A client at CLIENT:port sends `data` on its established connection.
fn data(b: &mut Bench, port: u16, iss: u32, seq_off: u32, tsval: u32, bytes: &[u8]) -> Vec<Out> {
    b.send(Seg::new(TcpFlags::ACK | TcpFlags::PSH, CISN + 1 + seq_off, iss.wrapping_add(1)).ts(tsval, 0).data(bytes).port(port))
}

fn read_all(b: &mut Bench, id: u32) -> usize {
    let mut buf = [0u8; 65536];
    b.workers[0].engine.read(id, &mut buf).unwrap_or(0)
}

#[test]
fn accounting_is_exact_through_data_acks_and_close() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let iss = b.handshake(CLIENT, 40_000);
    let id = b.stack.accept(fd).expect("accepted").conn_id;
    assert_eq!(exact(&b), 0, "an idle connection holds no buffer");

    data(&mut b, 40_000, iss, 0, 102, &[b'x'; 1000]);
    assert_eq!(exact(&b), 4096);
    assert_eq!(read_all(&mut b, id), 1000);
    assert_eq!(exact(&b), 0, "read to empty: released");

    let (r, out) = b.app_write(id, &[b'y'; 5000]);
    assert_eq!(r, Ok(5000));
    assert_eq!(exact(&b), 8192);
    // Acknowledge what was sent until everything is (Nagle holds the tail).
    let mut out = out;
    let mut tsval = 103;
    while let Some(end) = out.iter().map(|o| o.seq.wrapping_add(o.payload_len as u32)).max() {
        assert_eq!(exact(&b), 8192, "bytes unacknowledged");
        out = b.send(Seg::ack(CISN + 1001, end).ts(tsval, 0));
        tsval += 1;
    }
    assert_eq!(exact(&b), 0, "acknowledged: released");

    // close() after a last response: FIN; the data stays until acknowledged,
    // then the connection goes to TIME_WAIT and leaves the table.
    assert_eq!(b.app_write(id, b"bye").0, Ok(3));
    let out = b.app_close(id);
    assert!(out.iter().any(|o| o.flags.contains(TcpFlags::FIN)), "{out:?}");
    assert_eq!(exact(&b), 4096);
    b.send(Seg::ack(CISN + 1001, iss.wrapping_add(1 + 5000 + 3 + 1)).ts(105, 0));
    assert_eq!(exact(&b), 0);
    let conn = b.workers[0].engine.connections().get(id).expect("FIN_WAIT_2");
    assert_eq!(conn.tcb.state(), State::FinWait2);
    b.send(Seg::new(TcpFlags::ACK | TcpFlags::FIN, CISN + 1001, iss.wrapping_add(5005)).ts(106, 0));
    assert!(b.workers[0].engine.connections().is_empty(), "in TIME_WAIT, out of the table");
    assert_eq!(in_use(&b), 0);

    // close() with unread data: RST, everything released at once.
    let iss = b.handshake(CLIENT, 40_001);
    let id = b.stack.accept(fd).expect("accepted").conn_id;
    data(&mut b, 40_001, iss, 0, 102, &[b'z'; 3000]);
    assert_eq!(exact(&b), 4096);
    let out = b.app_close(id);
    assert!(out.iter().any(|o| o.flags.contains(TcpFlags::RST)), "{out:?}");
    assert!(b.workers[0].engine.connections().is_empty());
    assert_eq!(in_use(&b), 0);
}

#[test]
fn out_of_order_data_is_charged_and_released() {
    let mut b = Bench::linux();
    let fd = b.listen(128);
    let iss = b.handshake(CLIENT, 40_000);
    let id = b.stack.accept(fd).expect("accepted").conn_id;
    data(&mut b, 40_000, iss, 100, 102, &[1; 100]);
    let ooo = exact(&b);
    assert!(ooo > 4096, "the ring and the range list: {ooo}");
    data(&mut b, 40_000, iss, 0, 103, &[2; 100]);
    assert_eq!(exact(&b), 4096, "the hole filled: the range list is gone");
    assert_eq!(read_all(&mut b, id), 200);
    assert_eq!(exact(&b), 0);
}

#[test]
fn refused_only_at_the_hard_limit_with_counter_and_warning() {
    let mut b = Bench::linux();
    b.tcp_config(|c| c.max_buffer_bytes = 2 * 4096);
    let fd = b.listen(128);
    let mut ids = Vec::new();
    for port in [40_000, 40_001] {
        let iss = b.handshake(CLIENT, port);
        ids.push(b.stack.accept(fd).expect("accepted").conn_id);
        data(&mut b, port, iss, 0, 102, &[b'u'; 100]);
    }
    assert_eq!(exact(&b), 8192, "two unread requests fill the pool");
    let sa = b.syn_synack(Seg::syn(CISN).from(CLIENT, 40_002));
    let (tsval, _) = sa.ts().expect("ts");
    let out = b.send(Seg::ack(CISN + 1, sa.seq.wrapping_add(1)).ts(101, tsval).from(CLIENT, 40_002));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, TcpFlags::RST, "{out:?}");
    assert_eq!(b.counter(Counter::ConnMemRefused), 1);
    assert_eq!(b.counter(Counter::ConnLimitRefused), 0);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 2);
    let now = b.now;
    let w = b.workers[0].engine.take_mem_warning(now).expect("a warning");
    assert_eq!((w.refused, w.allocated, w.max), (1, 8192, 8192));
    assert_eq!(b.workers[0].engine.take_mem_warning(now), None, "one warning per refusal burst");

    // One request read: memory for one more connection again.
    assert_eq!(read_all(&mut b, ids[0]), 100);
    assert_eq!(exact(&b), 4096);
    b.handshake(CLIENT, 40_003);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 3);
    assert_eq!(b.counter(Counter::ConnMemRefused), 1);
}

#[test]
fn thousands_of_idle_connections_need_no_buffer_memory() {
    // The old rule reserved 128 KiB per connection: 1 MiB allowed 8.
    let mut b = Bench::linux();
    b.tcp_config(|c| c.max_buffer_bytes = 1 << 20);
    let fd = b.listen(4096);
    for i in 0..2000u32 {
        let ip = Ipv4Addr::from(u32::from(CLIENT) + i / 1000);
        b.handshake(ip, 40_000 + (i % 1000) as u16);
    }
    assert_eq!(b.accept_all(fd), 2000);
    assert_eq!(b.counter(Counter::TcpPassiveOpens), 2000);
    assert_eq!(b.counter(Counter::ConnMemRefused), 0);
    assert_eq!(exact(&b), 0);
}

#[test]
fn pressure_follows_use_with_hysteresis() {
    let mut b = Bench::linux();
    // tcp_mem from a 24 KiB limit: min 12 KiB, pressure 16 KiB.
    b.tcp_config(|c| c.max_buffer_bytes = 6 * 4096);
    let fd = b.listen(128);
    let mut ids = Vec::new();
    for port in 40_000..40_005u16 {
        let iss = b.handshake(CLIENT, port);
        ids.push(b.stack.accept(fd).expect("accepted").conn_id);
        data(&mut b, port, iss, 0, 102, &[b'p'; 10]);
        let pressure = b.workers[0].engine.mem().under_pressure();
        assert_eq!(pressure, exact(&b) > 16 * 1024, "{} bytes", exact(&b));
    }
    assert!(b.workers[0].engine.mem().under_pressure());
    read_all(&mut b, ids[0]);
    read_all(&mut b, ids[1]);
    assert_eq!(exact(&b), 12 * 1024);
    assert!(b.workers[0].engine.mem().under_pressure(), "not below min yet");
    read_all(&mut b, ids[2]);
    assert!(!b.workers[0].engine.mem().under_pressure());
}

#[test]
fn an_established_connection_is_at_most_288_bytes_of_control_state() {
    let conn = std::mem::size_of::<crate::engine::tcp::Conn>();
    let tcb = std::mem::size_of::<crate::engine::tcb::Tcb>();
    println!("size_of::<Conn>() = {conn}, of which the Tcb {tcb}");
    assert!(tcb <= 208, "Tcb is {tcb} bytes");
    // 256 with IPv4 addresses in the flow key; the two IPv6 addresses
    // (16-byte aligned) add 32.
    assert!(conn <= 288, "Conn is {conn} bytes");
}
