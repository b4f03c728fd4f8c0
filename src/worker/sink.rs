//! The engine's transmit sink backed by mbufs: frames are built directly in
//! an mbuf's data room (zero copy) and sent in bursts.

use crate::dpdk::{MbufBatch, Mempool, TxQueue};
use crate::engine::tx::{TxFrame, TxOffload, TxSink};

pub struct MbufSink<'p> {
    pool: &'p Mempool,
    batch: MbufBatch,
    csum_offload: bool,
    alloc_failures: u64,
}

impl<'p> MbufSink<'p> {
    pub fn new(pool: &'p Mempool, csum_offload: bool) -> Self {
        MbufSink { pool, batch: MbufBatch::new(), csum_offload, alloc_failures: 0 }
    }

    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Send what is pending; returns how many a full TX ring refused (freed).
    pub fn flush(&mut self, txq: &mut TxQueue) -> usize {
        if self.batch.is_empty() {
            return 0;
        }
        txq.tx_burst(&mut self.batch).dropped
    }

    pub fn take_alloc_failures(&mut self) -> u64 {
        std::mem::take(&mut self.alloc_failures)
    }
}

impl TxSink for MbufSink<'_> {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        if self.batch.is_full() {
            self.alloc_failures += 1;
            return false;
        }
        let Some(mut m) = self.pool.alloc() else {
            self.alloc_failures += 1;
            return false;
        };
        let Some(buf) = m.append(max_len) else {
            self.alloc_failures += 1;
            return false;
        };
        let frame = build(buf);
        if frame.len == 0 || !m.set_len(frame.len) {
            return false;
        }
        if let TxOffload::Ipv4Tcp { l2_len, l3_len } = frame.offload {
            m.request_tx_csum_ipv4_tcp(l2_len, u16::from(l3_len));
        }
        self.batch.push(m).is_ok()
    }

    fn csum_offload(&self) -> bool {
        self.csum_offload
    }
}
