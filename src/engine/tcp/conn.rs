//! An established connection as the TCP layer keeps it: its TCB plus what
//! the listen path knows, in this worker's table (Linux: a full socket in
//! ehash).

use crate::engine::flow::FlowKey;
use crate::engine::listen::Listener;
use crate::engine::tcb::{Events, Tcb};
use crate::engine::timer_wheel::TimerId;
use crate::wire::ethernet::EthernetAddress;
use ahash::AHashMap as HashMap;
use std::sync::Arc;

/// What a connection was born from (for counters and latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    RequestSock,
    Cookie,
    FastOpen,
}

/// An established connection: the TCB plus what the listen path knows.
/// Kept small (at most 288 bytes with its TCB and a flow key wide enough
/// for IPv6): a worker holds a million.
/// What the handshake negotiated is read back from the TCB.
pub struct Conn {
    pub key: FlowKey,
    /// The peer's initial sequence number.
    pub(super) irs: u32,
    pub origin: Origin,
    /// ECN was negotiated (not used yet).
    pub(super) ecn: bool,
    /// Events not yet handed to the application.
    pub(super) pending: Events,
    /// Already in the ready list.
    pub(super) queued: bool,
    /// The peer's MAC, from its latest frame.
    pub peer_mac: EthernetAddress,
    /// The TCB's timer in this worker's wheel.
    pub(super) timer: Option<TimerId>,
    /// A TFO child whose SYN-ACK is not acknowledged yet (holds a fastopenq slot).
    pub tfo_pending: Option<Arc<Listener>>,
    pub tcb: Tcb,
}

impl Conn {
    /// The connection's MSS before option overhead: the peer's, clamped to ours.
    pub fn mss(&self) -> u16 {
        self.tcb.mss() + if self.tcb.has_timestamps() { 12 } else { 0 }
    }
    pub fn snd_wscale(&self) -> Option<u8> {
        self.tcb.snd_wscale()
    }
    pub fn rcv_wscale(&self) -> u8 {
        self.tcb.rcv_wscale()
    }
    pub fn sack(&self) -> bool {
        self.tcb.sack()
    }
    pub fn ecn(&self) -> bool {
        self.ecn
    }
    /// (ts_recent, ts_off) when timestamps are on.
    pub fn ts(&self) -> Option<(u32, u32)> {
        self.tcb.timestamps()
    }
    pub fn snd_nxt(&self) -> u32 {
        self.tcb.snd_nxt()
    }
    pub fn rcv_nxt(&self) -> u32 {
        self.tcb.rcv_nxt()
    }
    /// Payload bytes received in order (a TFO SYN's data included).
    pub fn bytes_received(&self) -> u64 {
        let fin = u32::from(self.tcb.fin_received());
        u64::from(self.tcb.rcv_nxt().wrapping_sub(self.irs).wrapping_sub(1).wrapping_sub(fin))
    }
}

/// This worker's established connections: ids for ChildSocks, lookup by flow.
///
/// Slots live in fixed chunks, so the table grows without moving a
/// connection (a growing `Vec` would copy every 256-byte slot on each
/// doubling); the flow index is sized up front like Linux's ehash at boot.
pub struct ConnTable {
    by_key: HashMap<FlowKey, u32>,
    chunks: Vec<Box<[Option<Conn>]>>,
    /// Slots handed out so far (indices below it exist in `chunks`).
    slots: usize,
    /// Each slot's generation (the id's top byte), beside the slots so a
    /// slot is exactly a `Conn`.
    gens: Vec<u8>,
    free: Vec<u32>,
}

const CONN_INDEX_BITS: u32 = 24;
const CONN_INDEX_MASK: u32 = (1 << CONN_INDEX_BITS) - 1;
/// Slots per chunk (a chunk is 256 KiB of 256-byte slots).
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable::with_index_capacity(0)
    }
}

impl ConnTable {
    /// The most connections a table holds (ids keep 24 bits for the slot).
    pub const CAPACITY: usize = 1 << CONN_INDEX_BITS;

    /// A table whose flow index holds `n` connections before it rehashes
    /// (16 bytes each); slots are allocated a chunk at a time as needed.
    pub fn with_index_capacity(n: usize) -> Self {
        ConnTable { by_key: HashMap::with_capacity(n), chunks: Vec::new(), slots: 0, gens: Vec::new(), free: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The slot index of a connection id (ids carry a generation above it).
    pub fn index_of(id: u32) -> usize {
        (id & CONN_INDEX_MASK) as usize
    }

    #[inline]
    fn slot(&self, idx: usize) -> &Option<Conn> {
        &self.chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)]
    }

    #[inline]
    fn slot_mut(&mut self, idx: usize) -> &mut Option<Conn> {
        &mut self.chunks[idx >> CHUNK_BITS][idx & (CHUNK - 1)]
    }

    pub(super) fn insert(&mut self, conn: Conn) -> Option<u32> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots < Self::CAPACITY => {
                if self.slots == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                }
                self.gens.push(0);
                self.slots += 1;
                (self.slots - 1) as u32
            }
            None => return None,
        };
        let gen = &mut self.gens[idx as usize];
        *gen = gen.wrapping_add(1);
        let id = (u32::from(*gen) << CONN_INDEX_BITS) | idx;
        self.by_key.insert(conn.key, id);
        *self.slot_mut(idx as usize) = Some(conn);
        Some(id)
    }

    pub fn id_of(&self, key: &FlowKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    fn live(&self, id: u32) -> bool {
        self.gens.get(Self::index_of(id)).is_some_and(|&g| u32::from(g) == id >> CONN_INDEX_BITS)
    }

    pub fn get(&self, id: u32) -> Option<&Conn> {
        if !self.live(id) {
            return None;
        }
        self.slot(Self::index_of(id)).as_ref()
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Conn> {
        if !self.live(id) {
            return None;
        }
        self.slot_mut(Self::index_of(id)).as_mut()
    }

    pub(super) fn remove(&mut self, id: u32) -> Option<Conn> {
        if !self.live(id) {
            return None;
        }
        let conn = self.slot_mut(Self::index_of(id)).take()?;
        self.by_key.remove(&conn.key);
        self.free.push(id & CONN_INDEX_MASK);
        Some(conn)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.slots).zip(&self.gens).enumerate().filter_map(|(i, (c, gen))| {
            c.as_ref().map(|c| ((u32::from(*gen) << CONN_INDEX_BITS) | i as u32, c))
        })
    }
}
