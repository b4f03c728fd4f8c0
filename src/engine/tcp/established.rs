//! Segments, timers and application calls for established connections:
//! the glue between a connection's TCB (`engine::tcb`) and the worker
//! (Linux: `tcp_rcv_established` and the socket calls on a full socket).

use super::output::{emit_tcb_segment, Route};
use super::{TcpEngine, Timer};
use crate::engine::errno::Errno;
use crate::engine::host::TcpInput;
use super::mem::TcpMem;
use crate::engine::tcb::{Events, SegIn, Tcb};
use crate::engine::time::Instant;
use crate::engine::tx::TxSink;
use crate::stats::{Counter, Counters};
use crate::wire::tcp::TcpFlags;
use crate::wire::tcp_options::{self, TcpOption, TcpOptionIter};

/// SACK blocks of a segment's options, without allocating.
fn sack_blocks<'b>(options: &[u8], buf: &'b mut [(u32, u32); 4]) -> &'b [(u32, u32)] {
    let mut n = 0;
    for opt in TcpOptionIter::new(options).flatten() {
        if let TcpOption::Sack(blocks) = opt {
            for b in blocks.as_slice() {
                if n < buf.len() {
                    buf[n] = *b;
                    n += 1;
                }
            }
        }
    }
    &buf[..n]
}

/// Before a call into a TCB: grant it what the pool has left; returns the
/// bytes it holds, for [`TcpMem::charge`] after the call.
fn grant(mem: &TcpMem, tcb: &mut Tcb) -> u32 {
    tcb.set_mem(mem.room(), mem.under_pressure());
    tcb.mem()
}

impl TcpEngine {
    /// Hand a segment to a connection's TCB and send what it answers.
    pub(super) fn tcb_segment(&mut self, now: Instant, id: u32, input: &TcpInput<'_>, c: &Counters, tx: &mut impl TxSink) {
        let seg = &input.seg;
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.peer_mac = input.eth_src;
        let flags = seg.flags();
        let ts = if conn.tcb.has_timestamps() { tcp_options::timestamps(seg.options()) } else { None };
        let mut sack_buf = [(0u32, 0u32); 4];
        let sack = sack_blocks(seg.options(), &mut sack_buf);
        let seg_in = SegIn {
            seq: seg.seq_number(),
            ack: flags.contains(TcpFlags::ACK).then(|| seg.ack_number()),
            flags,
            window: seg.window_len(),
            ts,
            sack,
            payload: seg.payload(),
        };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let held = grant(&self.mem, &mut conn.tcb);
        let ev = conn.tcb.on_segment(now, &seg_in, &mut |out, payload| emit_tcb_segment(tx, route, key, &out, payload, c));
        self.mem.charge(held, conn.tcb.mem());
        if flags.contains(TcpFlags::RST) && ev.contains(Events::RESET) {
            c.inc(Counter::TcpEstabResets);
        }
        if let Some(l) = conn.tfo_pending.as_ref().filter(|_| !conn.tcb.syn_ack_pending()) {
            l.fastopenq_removed();
            conn.tfo_pending = None;
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Record events for the application and free a connection that is gone.
    pub(super) fn note_events(&mut self, id: u32, ev: Events) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let ev = Events(ev.0 | conn.tcb.take_events().0);
        if ev.is_empty() {
            return;
        }
        conn.pending = Events(conn.pending.0 | ev.0);
        if ev.contains(Events::TIME_WAIT) {
            self.enter_time_wait(id);
            return;
        }
        if !conn.queued {
            conn.queued = true;
            self.ready.push(id);
        }
    }

    /// Keep the connection's timer at its TCB's next deadline.
    pub(super) fn rearm(&mut self, id: u32) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let want = conn.tcb.next_timeout();
        match (conn.timer, want) {
            (Some(t), Some(w)) if self.timers.fires_with(t, w) => {}
            (Some(t), Some(w)) if self.timers.reschedule(t, w) => {}
            (old, want) => {
                if let Some(t) = old {
                    self.timers.cancel(t);
                }
                conn.timer = want.map(|w| self.timers.schedule(w, Timer::Conn(id)));
            }
        }
    }

    pub(super) fn conn_timer(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.timer = None;
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let held = grant(&self.mem, &mut conn.tcb);
        let ev = conn.tcb.on_timeout(now, &mut |out, payload| emit_tcb_segment(tx, route, key, &out, payload, c));
        self.mem.charge(held, conn.tcb.mem());
        if conn.tcb.error() == Some(Errno::Etimedout) && ev.contains(Events::RESET) {
            c.inc(Counter::TcpAbortOnTimeout);
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Connections with events since the last call, and their events. A
    /// connection reported with `Events::CLOSED` is gone: its id is dead.
    pub fn drain_ready(&mut self, out: &mut Vec<(u32, Events)>) {
        out.append(&mut self.gone_ready);
        for id in std::mem::take(&mut self.ready) {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            conn.queued = false;
            let ev = std::mem::take(&mut conn.pending);
            out.push((id, ev));
            if ev.contains(Events::CLOSED) {
                self.finish(id);
            }
        }
    }

    /// Forget a connection whose TCB is closed (or aborted).
    pub(super) fn finish(&mut self, id: u32) {
        let Some(conn) = self.conns.remove(id) else { return };
        if let Some(t) = conn.timer {
            self.timers.cancel(t);
        }
        if let Some(l) = &conn.tfo_pending {
            l.fastopenq_removed();
        }
        self.mem.charge(conn.tcb.mem(), 0);
        self.counters.inc(Counter::ConnsClosed);
    }

    // --- the application's side (per-core apps call these from the worker loop) ---

    /// Reset and forget an established connection (the application's abort,
    /// or a child whose listener closed): RST|ACK as Linux's tcp_send_active_reset.
    pub fn abort(&mut self, now: Instant, conn_id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(conn_id) else { return };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let held = conn.tcb.mem();
        conn.tcb.abort(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        self.mem.charge(held, conn.tcb.mem());
        self.finish(conn_id);
    }

    /// Read received bytes: `Ok(0)` at EOF, `Err(Eagain)` when none yet.
    pub fn read(&mut self, id: u32, buf: &mut [u8]) -> Result<usize, Errno> {
        let tcb = &mut self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb;
        let held = tcb.mem();
        let r = tcb.read(buf);
        self.mem.charge(held, tcb.mem());
        r
    }

    /// Queue bytes for sending; a short count is backpressure (send buffer full).
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize, Errno> {
        let tcb = &mut self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb;
        let held = grant(&self.mem, tcb);
        let r = tcb.write(data);
        self.mem.charge(held, tcb.mem());
        r
    }

    /// Free space in the send buffer.
    pub fn send_space(&self, id: u32) -> usize {
        self.conns.get(id).map_or(0, |c| (c.tcb.send_buf_cap() - c.tcb.send_queue_len()) as usize)
    }

    /// `shutdown(SHUT_WR)`: FIN after the queued data.
    pub fn shutdown(&mut self, id: u32) -> Result<(), Errno> {
        self.conns.get_mut(id).ok_or(Errno::Ebadf)?.tcb.shutdown_write()
    }

    /// `close()`: FIN, or RST when unread data remains (Linux tcp_close).
    pub fn close(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let unread = conn.tcb.recv_queue_len() > 0;
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let held = grant(&self.mem, &mut conn.tcb);
        let ev = conn.tcb.close(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        self.mem.charge(held, conn.tcb.mem());
        if unread {
            c.inc(Counter::TcpAbortOnClose);
        }
        self.note_events(id, ev);
        self.rearm(id);
    }

    /// Send what the TCB may send now (after writes, reads that opened the window, shutdown).
    pub fn flush(&mut self, now: Instant, id: u32, tx: &mut impl TxSink) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let route = Route { our_mac: self.cfg.mac, peer_mac: conn.peer_mac };
        let key = conn.key;
        let c = &*self.counters;
        let held = grant(&self.mem, &mut conn.tcb);
        conn.tcb.poll_transmit(now, &mut |seg, payload| emit_tcb_segment(tx, route, key, &seg, payload, c));
        self.mem.charge(held, conn.tcb.mem());
        self.note_events(id, Events::default());
        self.rearm(id);
    }
}
