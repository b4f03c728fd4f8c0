//! How the engine hands frames out: a sink that lends a buffer to fill.
//! The worker backs it with mbufs (zero copy: the frame is built in the
//! mbuf's data room), tests with the sinks of `crate::testkit::rig`.

use crate::wire::ethernet;
use crate::wire::ipv4_options::{self, OptionsEcho};

/// Checksum work the port is asked to finish on transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOffload {
    /// Every checksum is already in the frame.
    None,
    /// IPv4 header checksum and the TCP checksum (the TCP field holds the
    /// pseudo-header sum, as DPDK requires).
    Ipv4Tcp { l2_len: u8, l3_len: u8 },
    /// The TCP checksum of an IPv6 packet (the field holds the IPv6
    /// pseudo-header sum).
    Ipv6Tcp { l2_len: u8, l3_len: u8 },
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

/// A sink that puts an IPv4 options block into every frame built through it.
pub struct WithIpOptions<'a, S> {
    inner: &'a mut S,
    echo: &'a OptionsEcho,
    ours: [u8; 4],
    time: u32,
}

impl<'a, S: TxSink> WithIpOptions<'a, S> {
    /// Frames through `inner` carrying `echo`, with our address `ours` and
    /// the time `time` (ms since midnight UTC) where it has slots for them.
    pub fn new(inner: &'a mut S, echo: &'a OptionsEcho, ours: [u8; 4], time: u32) -> Self {
        WithIpOptions { inner, echo, ours, time }
    }
}

impl<S: TxSink> TxSink for WithIpOptions<'_, S> {
    fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, max_len: usize, build: F) -> bool {
        let n = self.echo.len();
        let (echo, ours, time) = (self.echo, self.ours, self.time);
        self.inner.emit(max_len + n, |buf| {
            let f = build(&mut buf[..max_len]);
            let offload = f.offload != TxOffload::None;
            let len = ipv4_options::insert_into_frame(buf, f.len, ethernet::HEADER_LEN, n, |o| echo.write(o, ours, time), !offload);
            let offload = match f.offload {
                TxOffload::Ipv4Tcp { l2_len, l3_len } => TxOffload::Ipv4Tcp { l2_len, l3_len: l3_len + n as u8 },
                other => other,
            };
            TxFrame { len, offload }
        })
    }

    fn csum_offload(&self) -> bool {
        self.inner.csum_offload()
    }
}
