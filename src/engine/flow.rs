//! The 4-tuple that names a TCP flow, from our side: the key of every
//! per-worker table (request socks, connections, TIME_WAIT) and the input
//! of the keyed hashes (ISN, timestamp offset, SYN cookie, TFO cookie).

use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

/// Both ends of a flow, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub local: u32,
    pub peer: u32,
    pub local_port: u16,
    pub peer_port: u16,
}

/// Two words into the tables' hasher, not four fields: every per-segment
/// table lookup hashes a key.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64((u64::from(self.local) << 32) | u64::from(self.peer));
        state.write_u32((u32::from(self.local_port) << 16) | u32::from(self.peer_port));
    }
}

impl FlowKey {
    pub fn local_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.local)
    }
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.peer)
    }
}
