//! `dlisten flood`: a DPDK SYN-flood and handshake load generator.
pub mod addr;
pub mod gen;
pub mod packet;
