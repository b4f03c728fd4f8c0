//! The plain TCP segment: what nearly every frame of a server is, recognised
//! with a few loads at fixed offsets so that it skips the host's general
//! receive path. A frame is plain when that path would hand it to TCP with
//! no other effect than counting it in RxFrames, IpInReceives and
//! TcpInSegs: Ethernet to our MAC, IPv4 without options or fragmentation,
//! to one of our addresses from a unicast source, both checksums right
//! (verified by the NIC, else here), and a whole TCP header. Anything else takes [`Host::parse`].
//! A plain SYN (SYN alone, reserved bits clear, no data) is what the SYN
//! lane takes.

use super::{CsumStatus, Host, IpHeader, RxMeta, TcpInput};
use crate::wire::ethernet::{self, EthernetAddress};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::tcp::{self, TcpSegment};
use std::net::Ipv4Addr;

const ETH: usize = ethernet::HEADER_LEN;
const TCP_AT: usize = ETH + ipv4::HEADER_LEN;
/// Ethernet, IPv4 without options, the fixed TCP header.
const MIN_LEN: usize = TCP_AT + tcp::HEADER_LEN;

impl Host {
    /// The TCP input of a plain segment and whether it is a plain SYN, or
    /// `None` for any other frame. Counts nothing: the caller adds
    /// [`Host::count_plain`] for what it took.
    #[inline]
    pub fn plain_tcp<'a>(&self, frame: &'a [u8], meta: RxMeta) -> Option<(TcpInput<'a>, bool)> {
        if meta.ip_csum == CsumStatus::Bad || meta.l4_csum == CsumStatus::Bad {
            return None;
        }
        let f: &[u8; MIN_LEN] = frame.get(..MIN_LEN)?.try_into().ok()?;
        // Our MAC, IPv4, version 4 with a 20-byte header, no MF and no
        // fragment offset (DF is fine), TCP.
        if f[..6] != self.cfg.mac.0 || f[12..14] != [0x08, 0x00] || f[ETH] != 0x45 {
            return None;
        }
        if f[ETH + 6] & 0x3f != 0 || f[ETH + 7] != 0 || f[ETH + 9] != 6 {
            return None;
        }
        // A TCP header within the IPv4 total length, itself within the frame.
        let total = usize::from(u16::from_be_bytes([f[ETH + 2], f[ETH + 3]]));
        let tcp_len = usize::from(f[TCP_AT + 12] >> 4) * 4;
        if tcp_len < tcp::HEADER_LEN || total < ipv4::HEADER_LEN + tcp_len || frame.len() < ETH + total {
            return None;
        }
        // SYN alone, reserved bits clear, no data.
        let syn = f[TCP_AT + 12] & 0x0f == 0 && f[TCP_AT + 13] == 0x02 && total == ipv4::HEADER_LEN + tcp_len;
        let dst = Ipv4Addr::from([f[ETH + 16], f[ETH + 17], f[ETH + 18], f[ETH + 19]]);
        let src = Ipv4Addr::from([f[ETH + 12], f[ETH + 13], f[ETH + 14], f[ETH + 15]]);
        if !self.is_ours(dst) || src.is_broadcast() || src.is_multicast() || src.is_unspecified() {
            return None;
        }
        // What the NIC did not verify is verified here, as the general path
        // would; a failure is left to it (it counts the error).
        let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
        let seg = TcpSegment::new_unchecked(&frame[TCP_AT..ETH + total]);
        if meta.ip_csum == CsumStatus::Unknown && !ip.verify_checksum() {
            return None;
        }
        if meta.l4_csum == CsumStatus::Unknown && !seg.verify_checksum(src, dst) {
            return None;
        }
        let input = TcpInput {
            eth_src: EthernetAddress([f[6], f[7], f[8], f[9], f[10], f[11]]),
            ip: IpHeader::V4(ip),
            seg,
            meta,
        };
        Some((input, syn))
    }

    /// Count `n` plain segments taken as the general path would have.
    #[inline]
    pub fn count_plain(&self, n: u64) {
        use crate::stats::Counter;
        if n != 0 {
            let c = &*self.counters;
            c.add(Counter::RxFrames, n);
            c.add(Counter::IpInReceives, n);
            c.add(Counter::TcpInSegs, n);
        }
    }
}
