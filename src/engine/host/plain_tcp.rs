//! The plain TCP segment: what nearly every frame of a server is, recognised
//! with a few loads at fixed offsets so that it skips the host's general
//! receive path. A frame is plain when that path would hand it to TCP with
//! no other effect than counting it in RxFrames, IpInReceives and
//! TcpInSegs: Ethernet to our MAC, IPv4 without options or fragmentation,
//! to one of our addresses from a unicast source, both checksums right
//! (verified by the NIC, else here), and a whole TCP header. Anything else takes [`Host::parse`].
//! A plain SYN (SYN alone, reserved bits clear, no data) is what the SYN
//! lane takes.

use super::{CsumStatus, Host, RxMeta, TcpInput};
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
            ip,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::host::HostConfig;
    use crate::engine::time::Instant;
    use crate::engine::tx::{TxFrame, TxSink};
    use crate::stats::{Counter, Counters};
    use crate::testkit::clients::syn_frame as write_syn;
    use crate::testkit::frame::{OUR_IP as OURS, OUR_MAC as MAC};
    use proptest::prelude::*;
    use std::sync::Arc;

    struct Drop0;
    impl TxSink for Drop0 {
        fn emit<F: FnOnce(&mut [u8]) -> TxFrame>(&mut self, _: usize, _: F) -> bool {
            false
        }
    }

    fn host() -> Host {
        let cfg = HostConfig { mac: MAC, addrs: vec![OURS], utc_ms_at_zero: 0 };
        Host::new(cfg, Arc::new(Counters::new()))
    }

    fn good() -> RxMeta {
        RxMeta { ip_csum: CsumStatus::Good, l4_csum: CsumStatus::Good, rss_hash: None }
    }

    /// A SYN as Linux sends it (MSS, SACK_PERM, TS, NOP, WS).
    fn syn_frame() -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let n = write_syn(3, &mut buf);
        buf.truncate(n);
        buf
    }

    /// A TCP input's IPv4 bytes, TCP bytes and Ethernet source.
    type Taken = (Vec<u8>, Vec<u8>, EthernetAddress);

    /// What the general path makes of the frame: its TCP input and the
    /// counters it moved.
    fn general(frame: &[u8], meta: RxMeta) -> (Option<Taken>, Vec<u64>) {
        let mut h = host();
        let got = h.parse(Instant::ZERO, frame, meta, &mut Drop0).map(|t| (t.ip.into_inner().to_vec(), t.seg.into_inner().to_vec(), t.eth_src));
        let c = h.counters();
        (got, Counter::ALL.iter().map(|&k| c.get(k)).collect())
    }

    #[test]
    fn a_linux_syn_is_plain_and_its_input_is_the_general_one() {
        let frame = syn_frame();
        let h = host();
        let (plain, syn) = h.plain_tcp(&frame, good()).expect("plain");
        assert!(syn);
        let (want, counters) = general(&frame, good());
        let want = want.expect("the general path takes it");
        assert_eq!(plain.ip.into_inner(), &want.0[..]);
        assert_eq!(plain.seg.into_inner(), &want.1[..]);
        assert_eq!(plain.eth_src, want.2);
        h.count_plain(1);
        let c = h.counters();
        assert_eq!(Counter::ALL.iter().map(|&k| c.get(k)).collect::<Vec<_>>(), counters, "same counters as the general path");
    }

    #[test]
    fn without_the_nics_verdict_the_checksums_are_verified_here() {
        let mut frame = syn_frame();
        let meta = RxMeta { l4_csum: CsumStatus::Unknown, ip_csum: CsumStatus::Unknown, rss_hash: None };
        assert!(host().plain_tcp(&frame, meta).is_some());
        let bad = RxMeta { l4_csum: CsumStatus::Bad, ..good() };
        assert!(host().plain_tcp(&frame, bad).is_none(), "the NIC's bad verdict");
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(host().plain_tcp(&frame, meta).is_none(), "a wrong TCP checksum");
        assert!(host().plain_tcp(&frame, good()).is_some(), "the NIC's word is taken");
    }

    proptest! {
        /// Whatever a plain segment is, the general path hands exactly it to
        /// TCP and counts exactly what count_plain counts; mutations of a
        /// real SYN explore the edges (flags, lengths, addresses, MACs).
        #[test]
        fn plain_means_what_the_general_path_does(
            edits in proptest::collection::vec((0usize..80, any::<u8>()), 0..4),
            cut in 0usize..8,
            software in any::<bool>(),
        ) {
            let meta = if software { RxMeta::default() } else { good() };
            let mut frame = syn_frame();
            for (at, v) in edits {
                if at < frame.len() {
                    frame[at] = v;
                }
            }
            frame.truncate(frame.len().saturating_sub(cut));
            let h = host();
            if let Some((plain, syn)) = h.plain_tcp(&frame, meta) {
                let (want, counters) = general(&frame, meta);
                let want = want.expect("the general path takes every plain segment");
                if syn {
                    prop_assert!(plain.seg.payload().is_empty());
                    prop_assert_eq!(plain.seg.flags(), crate::wire::tcp::TcpFlags::SYN);
                }
                prop_assert_eq!(plain.ip.into_inner(), &want.0[..]);
                prop_assert_eq!(plain.seg.into_inner(), &want.1[..]);
                prop_assert_eq!(plain.eth_src, want.2);
                h.count_plain(1);
                let c = h.counters();
                prop_assert_eq!(Counter::ALL.iter().map(|&k| c.get(k)).collect::<Vec<_>>(), counters);
            }
        }
    }
}
