//! An established connection as the TCP layer keeps it: its TCB plus what
//! the listen path knows, in this worker's table (Linux: a full socket in
//! ehash).

use super::reqsk::NO_WSCALE;
use crate::engine::flow::FlowKey;
use crate::engine::listen::Listener;
use crate::engine::tcb::{Events, Tcb};
use crate::engine::time::Instant;
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
pub struct Conn {
    pub key: FlowKey,
    pub listener_id: u64,
    pub origin: Origin,
    pub tcb: Tcb,
    /// The peer's MAC, from its latest frame.
    pub peer_mac: EthernetAddress,
    /// The TCB's timer in this worker's wheel, and its deadline.
    pub(super) timer: Option<(TimerId, Instant)>,
    pub syn_at: Instant,
    pub established_at: Instant,
    /// A TFO child whose SYN-ACK is not acknowledged yet (holds a fastopenq slot).
    pub tfo_pending: Option<Arc<Listener>>,
    /// Events not yet handed to the application.
    pub(super) pending: Events,
    /// Already in the ready list.
    pub(super) queued: bool,
    /// What the handshake negotiated (for inspection; the TCB has its own copy).
    pub(super) negotiated: Negotiated,
}

/// Handshake results, packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Negotiated {
    pub irs: u32,
    /// The connection's MSS before option overhead: the peer's, clamped to ours.
    pub mss: u16,
    /// `NO_WSCALE` when window scaling is off.
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub sack: bool,
    pub ecn: bool,
}

impl Conn {
    pub fn mss(&self) -> u16 {
        self.negotiated.mss
    }
    pub fn snd_wscale(&self) -> Option<u8> {
        (self.negotiated.snd_wscale != NO_WSCALE).then_some(self.negotiated.snd_wscale)
    }
    pub fn rcv_wscale(&self) -> u8 {
        self.negotiated.rcv_wscale
    }
    pub fn sack(&self) -> bool {
        self.negotiated.sack
    }
    pub fn ecn(&self) -> bool {
        self.negotiated.ecn
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
        u64::from(self.tcb.rcv_nxt().wrapping_sub(self.negotiated.irs).wrapping_sub(1).wrapping_sub(fin))
    }
}

/// This worker's established connections: ids for ChildSocks, lookup by flow.
#[derive(Default)]
pub struct ConnTable {
    by_key: HashMap<FlowKey, u32>,
    slots: Vec<(u8, Option<Conn>)>,
    free: Vec<u32>,
}

const CONN_INDEX_BITS: u32 = 24;
const CONN_INDEX_MASK: u32 = (1 << CONN_INDEX_BITS) - 1;

impl ConnTable {
    /// The most connections a table holds (ids keep 24 bits for the slot).
    pub const CAPACITY: usize = 1 << CONN_INDEX_BITS;

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

    pub(super) fn insert(&mut self, conn: Conn) -> Option<u32> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < (1 << CONN_INDEX_BITS) => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let slot = &mut self.slots[idx as usize];
        slot.0 = slot.0.wrapping_add(1);
        let id = (u32::from(slot.0) << CONN_INDEX_BITS) | idx;
        self.by_key.insert(conn.key, id);
        slot.1 = Some(conn);
        Some(id)
    }

    pub fn id_of(&self, key: &FlowKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    pub fn get(&self, id: u32) -> Option<&Conn> {
        let (gen, conn) = self.slots.get(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Conn> {
        let (gen, conn) = self.slots.get_mut(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        conn.as_mut()
    }

    pub(super) fn remove(&mut self, id: u32) -> Option<Conn> {
        let (gen, slot) = self.slots.get_mut(Self::index_of(id))?;
        if u32::from(*gen) != id >> CONN_INDEX_BITS {
            return None;
        }
        let conn = slot.take()?;
        self.by_key.remove(&conn.key);
        self.free.push(id & CONN_INDEX_MASK);
        Some(conn)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, (gen, c))| {
            c.as_ref().map(|c| ((u32::from(*gen) << CONN_INDEX_BITS) | i as u32, c))
        })
    }
}
