//! The latency metrics dlisten times: names for the histograms and files.

use std::fmt;

/// What a latency sample measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// SYN received -> SYN-ACK handed to the port.
    SynToSynAck,
    /// SYN received -> handshake complete (ESTABLISHED).
    SynToEstablished,
    /// ESTABLISHED (on the accept queue) -> taken by accept().
    EstablishedToAccepted,
    /// First byte of a request -> response sent, for the built-in apps.
    RequestToResponse,
}

impl Metric {
    pub const ALL: [Metric; 4] =
        [Metric::SynToSynAck, Metric::SynToEstablished, Metric::EstablishedToAccepted, Metric::RequestToResponse];

    pub const fn name(self) -> &'static str {
        match self {
            Metric::SynToSynAck => "syn->synack",
            Metric::SynToEstablished => "syn->established",
            Metric::EstablishedToAccepted => "established->accepted",
            Metric::RequestToResponse => "request->response",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// A file name for the metric's .hgrm ("syn-synack").
    pub fn file_stem(self) -> String {
        self.name().replace("->", "-")
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
