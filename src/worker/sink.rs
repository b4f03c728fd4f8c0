//! The engine's transmit sink backed by mbufs: frames are built directly in
//! an mbuf's data room (zero copy) and sent in bursts.

use crate::dpdk::{MbufBatch, Mempool, TxQueue};
use crate::engine::tx::{TxFrame, TxOffload, TxSink};
use crate::telemetry::capture::CaptureTap;

pub struct MbufSink<'p> {
    pool: &'p Mempool,
    txq: TxQueue,
    batch: MbufBatch,
    csum_offload: bool,
    /// Frames refused by a full TX ring (or too large for an mbuf).
    drops: u64,
    /// Frames not built: the mempool was empty.
    no_mbuf: u64,
    /// `dlisten capture`'s tx side: what is handed to the port.
    capture: Option<CaptureTap>,
}

impl<'p> MbufSink<'p> {
    pub fn new(pool: &'p Mempool, txq: TxQueue, csum_offload: bool) -> Self {
        MbufSink { pool, txq, batch: MbufBatch::new(), csum_offload, drops: 0, no_mbuf: 0, capture: None }
    }

    /// Copy what is handed to the port to `tap` while a capture runs.
    pub fn with_capture(mut self, tap: CaptureTap) -> Self {
        self.capture = Some(tap);
        self
    }

    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Send what is pending (a full TX ring frees what it refuses).
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            if let Some(tap) = &self.capture {
                tap.tx(self.batch.iter().map(|m| (m.data(), m.pkt_len())));
            }
            self.drops += self.txq.tx_burst(&mut self.batch).dropped as u64;
        }
    }

    /// Frames a full TX ring refused since the last call.
    pub fn take_drops(&mut self) -> u64 {
        std::mem::take(&mut self.drops)
    }

    /// Frames not built for want of an mbuf since the last call.
    pub fn take_no_mbuf(&mut self) -> u64 {
        std::mem::take(&mut self.no_mbuf)
    }
}

impl TxSink for MbufSink<'_> {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        if self.batch.is_full() {
            // A burst's worth is ready: send it and go on building.
            self.flush();
        }
        let Some(mut m) = self.pool.alloc() else {
            self.no_mbuf += 1;
            return false;
        };
        let Some(buf) = m.append(max_len) else {
            // A frame larger than the data room: no mbuf would do.
            self.drops += 1;
            return false;
        };
        let frame = build(buf);
        if frame.len == 0 || !m.set_len(frame.len) {
            return false;
        }
        match frame.offload {
            TxOffload::Ipv4Tcp { l2_len, l3_len } => m.request_tx_csum_ipv4_tcp(l2_len, u16::from(l3_len)),
            TxOffload::Ipv6Tcp { l2_len, l3_len } => m.request_tx_csum_ipv6_tcp(l2_len, u16::from(l3_len)),
            TxOffload::None => {}
        }
        self.batch.push(m).is_ok()
    }

    fn csum_offload(&self) -> bool {
        self.csum_offload
    }
}
