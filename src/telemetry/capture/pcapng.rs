//! The pcapng a capture is written as: a section header, one interface
//! (the DPDK port, nanosecond timestamps), an enhanced packet block per
//! frame with its direction in `epb_flags`, and at the end an interface
//! statistics block with what was delivered and what the rings dropped.
//! Written into memory and handed out in whole blocks, so that every
//! prefix of the stream that a reader gets is a valid file.

use super::tap::{CaptureInterface, CapturedFrame, TscEpoch, Way};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::blocks::interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, PcapError};
use std::borrow::Cow;
use std::time::Duration;

/// `epb_flags` bits 0-1: the packet's direction (pcapng, section 4.3.1).
const EPB_INBOUND: u32 = 1;
const EPB_OUTBOUND: u32 = 2;
/// `if_tsresol` 9: timestamps in nanoseconds (what the crate writes).
const TSRESOL_NS: u8 = 9;

pub struct Pcapng {
    w: PcapNgWriter<Vec<u8>>,
}

impl Pcapng {
    /// The section header and the port's interface description.
    pub fn new(iface: &CaptureInterface, snaplen: u32) -> Result<Pcapng, PcapError> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "dlisten {}",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut w = PcapNgWriter::with_section_header(Vec::new(), section)?;
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(iface.name.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(iface.description.clone())),
                InterfaceDescriptionOption::IfMacAddr(Cow::Owned(iface.mac.to_vec())),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NS),
            ],
        })?;
        Ok(Pcapng { w })
    }

    pub fn packet(&mut self, epoch: &TscEpoch, f: &CapturedFrame) -> Result<(), PcapError> {
        let flags = match f.way {
            Way::In => EPB_INBOUND,
            Way::Out => EPB_OUTBOUND,
        };
        self.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(epoch.unix_ns(f.tsc)),
            original_len: f.orig_len,
            data: Cow::Borrowed(&f.data),
            options: vec![EnhancedPacketOption::Flags(flags)],
        })?;
        Ok(())
    }

    /// The closing statistics: from `start_ns` to `end_ns` (Unix ns),
    /// `delivered` frames written, `dropped` lost to full rings.
    pub fn statistics(&mut self, start_ns: u64, end_ns: u64, delivered: u64, dropped: u64) -> Result<(), PcapError> {
        self.w.write_pcapng_block(InterfaceStatisticsBlock {
            interface_id: 0,
            timestamp: end_ns,
            options: vec![
                InterfaceStatisticsOption::IsbStartTime(start_ns),
                InterfaceStatisticsOption::IsbEndTime(end_ns),
                InterfaceStatisticsOption::IsbOsDrop(dropped),
                InterfaceStatisticsOption::IsbUsrDeliv(delivered),
            ],
        })?;
        Ok(())
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.w.get_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn reads_back_with_direction_time_and_statistics() {
        let iface = CaptureInterface { name: "dltap0".into(), description: "dlisten port 0 (net_tap)".into(), mac: [2, 0, 0, 0, 0, 1] };
        let epoch = TscEpoch { tsc: 100, tsc_hz: 1_000_000_000, unix_ns: 1_700_000_000_000_000_000 };
        let mut p = Pcapng::new(&iface, 2048).unwrap();
        let mut bytes = p.take();
        let frame = |tsc, way, data: &[u8]| CapturedFrame { tsc, way, worker: 0, orig_len: 100, data: data.to_vec() };
        p.packet(&epoch, &frame(100, Way::In, &[1; 60])).unwrap();
        p.packet(&epoch, &frame(1_100, Way::Out, &[2; 54])).unwrap();
        p.statistics(epoch.unix_ns, epoch.unix_ns + 5_000, 2, 3).unwrap();
        bytes.extend(p.take());
        assert!(p.take().is_empty());

        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(b) = r.next_block() {
            blocks.push(b.unwrap().into_owned());
        }
        assert_eq!(r.section().options, vec![SectionHeaderOption::UserApplication(format!("dlisten {}", env!("CARGO_PKG_VERSION")).into())]);
        let Block::InterfaceDescription(idb) = &blocks[0] else { panic!("{:?}", blocks[0]) };
        assert_eq!((idb.linktype, idb.snaplen), (DataLink::ETHERNET, 2048));
        assert!(idb.options.contains(&InterfaceDescriptionOption::IfTsResol(9)));
        assert!(idb.options.contains(&InterfaceDescriptionOption::IfName("dltap0".into())));
        let Block::EnhancedPacket(a) = &blocks[1] else { panic!("{:?}", blocks[1]) };
        assert_eq!(a.timestamp, Duration::from_nanos(1_700_000_000_000_000_000));
        assert_eq!((a.original_len, a.data.len()), (100, 60));
        assert_eq!(a.options, vec![EnhancedPacketOption::Flags(EPB_INBOUND)]);
        let Block::EnhancedPacket(b) = &blocks[2] else { panic!("{:?}", blocks[2]) };
        assert_eq!(b.timestamp, Duration::from_nanos(1_700_000_000_000_001_000));
        assert_eq!(b.options, vec![EnhancedPacketOption::Flags(EPB_OUTBOUND)]);
        let Block::InterfaceStatistics(s) = &blocks[3] else { panic!("{:?}", blocks[3]) };
        assert!(s.options.contains(&InterfaceStatisticsOption::IsbOsDrop(3)));
        assert!(s.options.contains(&InterfaceStatisticsOption::IsbUsrDeliv(2)));
        assert_eq!(blocks.len(), 4);
    }
}
