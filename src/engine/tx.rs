//! How the engine hands frames out: a sink that lends a buffer to fill.
//! The worker backs it with mbufs (zero copy: the frame is built in the
//! mbuf's data room), tests with the sinks of `crate::testkit::rig`.

/// Checksum work the port is asked to finish on transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOffload {
    /// Every checksum is already in the frame.
    None,
    /// IPv4 header checksum and the TCP checksum (the TCP field holds the
    /// pseudo-header sum, as DPDK requires).
    Ipv4Tcp { l2_len: u8, l3_len: u8 },
}

/// A frame the builder wrote: its length and what the port must finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrame {
    pub len: usize,
    pub offload: TxOffload,
}

impl TxFrame {
    pub fn done(len: usize) -> TxFrame {
        TxFrame { len, offload: TxOffload::None }
    }
}

pub trait TxSink {
    /// Lend a zeroed-or-not buffer of at least `max_len` bytes to `build`,
    /// which writes one frame and says how long it is. Returns false when no
    /// buffer was available (the frame is dropped and counted by the sink).
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool;

    /// Whether the port finishes IPv4/TCP checksums (then builders may leave them to it).
    fn csum_offload(&self) -> bool {
        false
    }
}
