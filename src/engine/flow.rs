//! The 4-tuple that names a TCP flow, from our side: the key of every
//! per-worker table (request socks, connections, TIME_WAIT) and the input
//! of the keyed hashes (ISN, timestamp offset, SYN cookie, TFO cookie).

use std::net::Ipv4Addr;

/// Both ends of a flow, from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub local: u32,
    pub peer: u32,
    pub local_port: u16,
    pub peer_port: u16,
}

impl FlowKey {
    pub fn local_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.local)
    }
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.peer)
    }
}
