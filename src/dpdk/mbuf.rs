//! Packet buffers: an owned `rte_mbuf` and a burst-sized batch of them.
//!
//! dlisten never chains segments (no scatter RX, frames fit one data room),
//! so the data accessors cover the first segment, which is the whole packet.

use std::ptr::NonNull;

use super::ffi;

/// The most packets one `rx_burst`/`tx_burst` moves: DPDK's customary burst.
pub const BURST: usize = 32;

/// What the NIC says about a received packet's checksum (RTE_MBUF_F_RX_*_CKSUM_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsumStatus {
    /// The PMD gives no information: check in software.
    Unknown,
    /// Verified correct by the NIC.
    Good,
    /// Verified wrong by the NIC: drop (Linux counts InCsumErrors).
    Bad,
    /// Not verified, but the data is intact (e.g. a virtual device that
    /// never computed it): it is as good as a correct one.
    None,
}

impl CsumStatus {
    fn from_bits(bits: u64, good: u64, bad: u64) -> CsumStatus {
        match (bits & good != 0, bits & bad != 0) {
            (false, false) => CsumStatus::Unknown,
            (true, false) => CsumStatus::Good,
            (false, true) => CsumStatus::Bad,
            (true, true) => CsumStatus::None,
        }
    }
}

/// Decode the IP checksum status from `ol_flags`.
pub fn rx_ip_csum_status(ol_flags: u64) -> CsumStatus {
    CsumStatus::from_bits(
        ol_flags,
        u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_GOOD),
        u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_BAD),
    )
}

/// Decode the L4 (TCP/UDP) checksum status from `ol_flags`.
pub fn rx_l4_csum_status(ol_flags: u64) -> CsumStatus {
    CsumStatus::from_bits(
        ol_flags,
        u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_GOOD),
        u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_BAD),
    )
}

/// One packet buffer, owned: dropping it returns it to its mempool.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf is the only owner of its rte_mbuf (refcount 1, never
// cloned by dlisten); rte_pktmbuf_free from any thread is thread-safe
// (the mempool is multi-producer/multi-consumer).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf, e.g. one a PMD handed out.
    ///
    /// # Safety
    /// `raw` must point to a valid, single-segment or chained mbuf that
    /// nobody else owns or will free.
    pub(super) unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Give up ownership without freeing (for handing to DPDK).
    pub(super) fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    fn ptr(&self) -> *const ffi::rte_mbuf {
        self.raw.as_ptr()
    }

    /// Bytes in this (first) segment.
    pub fn len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { ffi::dl_rte_pktmbuf_data_len(self.ptr()) })
    }

    /// True when the segment holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the whole packet (all segments).
    pub fn pkt_len(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        unsafe { ffi::dl_rte_pktmbuf_pkt_len(self.ptr()) as usize }
    }

    /// Number of segments (1 for everything dlisten builds or receives).
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { ffi::dl_rte_pktmbuf_nb_segs(self.ptr()) }
    }

    /// The port the packet arrived on.
    pub fn port(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { ffi::dl_rte_pktmbuf_port(self.ptr()) }
    }

    /// The packet bytes of the first segment.
    pub fn data(&self) -> &[u8] {
        let mut len = 0u16;
        // SAFETY: self owns a valid mbuf; len is writable. The result points
        // at data_len initialised bytes inside the mbuf's buffer, which
        // lives while self does; the shared borrow of self keeps it unwritten.
        unsafe {
            let p = ffi::dl_rte_pktmbuf_data(self.ptr(), &mut len) as *const u8;
            std::slice::from_raw_parts(p, usize::from(len))
        }
    }

    /// The packet bytes of the first segment, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let mut len = 0u16;
        // SAFETY: as in `data`; the exclusive borrow of self (the only
        // owner, refcount 1) makes this the only access to the bytes.
        unsafe {
            let p = ffi::dl_rte_pktmbuf_data(self.ptr(), &mut len) as *mut u8;
            std::slice::from_raw_parts_mut(p, usize::from(len))
        }
    }

    /// Free bytes before the data (for prepending headers).
    pub fn headroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { ffi::dl_rte_pktmbuf_headroom(self.ptr()) })
    }

    /// Free bytes after the data of the last segment.
    pub fn tailroom(&self) -> usize {
        // SAFETY: self owns a valid mbuf.
        usize::from(unsafe { ffi::dl_rte_pktmbuf_tailroom(self.ptr()) })
    }

    /// Grow the packet by `n` bytes at the end and return them (not
    /// initialised by DPDK: old buffer contents), or None without tailroom.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: self owns the mbuf exclusively; append checks tailroom
        // and returns NULL when there is not enough.
        let p = unsafe { ffi::dl_rte_pktmbuf_append(self.raw.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at n bytes of this mbuf's buffer that now belong
        // to the packet; the exclusive borrow of self covers them.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n) })
    }

    /// Grow the packet by `n` bytes at the front (into the headroom).
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: exclusive owner; prepend checks headroom, NULL if short.
        let p = unsafe { ffi::dl_rte_pktmbuf_prepend(self.raw.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at the n new bytes at the front of the packet.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n) })
    }

    /// Remove `n` bytes from the front (e.g. strip a header). False if the
    /// segment is shorter than `n`.
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusive owner; adj checks the length, NULL if too long.
        !unsafe { ffi::dl_rte_pktmbuf_adj(self.raw.as_ptr(), n16) }.is_null()
    }

    /// Remove `n` bytes from the end. False if the packet is shorter.
    pub fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: exclusive owner; trim checks the length, -1 if too long.
        unsafe { ffi::dl_rte_pktmbuf_trim(self.raw.as_ptr(), n16) == 0 }
    }

    /// Set the packet length of a single-segment mbuf in place (to rewrite a
    /// received packet into a reply of another size). New bytes hold old
    /// buffer contents. False if it does not fit or the mbuf is chained.
    pub fn set_len(&mut self, len: usize) -> bool {
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        // SAFETY: exclusive owner; the shim checks nb_segs and buffer room.
        unsafe { ffi::dl_rte_pktmbuf_set_len(self.raw.as_ptr(), len16) == 0 }
    }

    /// Back to a fresh empty packet (default headroom, no flags).
    pub fn reset(&mut self) {
        // SAFETY: exclusive owner of a direct, single-owner mbuf.
        unsafe { ffi::dl_rte_pktmbuf_reset(self.raw.as_ptr()) }
    }

    /// The offload flags (RTE_MBUF_F_*).
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: self owns a valid mbuf.
        unsafe { ffi::dl_rte_pktmbuf_ol_flags(self.ptr()) }
    }

    /// The NIC's RSS hash (Toeplitz over the 4-tuple), when it computed one.
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & u64::from(ffi::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: self owns a valid mbuf; the flag says hash.rss is set.
        Some(unsafe { ffi::dl_rte_pktmbuf_rss_hash(self.ptr()) })
    }

    /// The NIC's verdict on the IPv4 header checksum.
    pub fn rx_ip_csum(&self) -> CsumStatus {
        rx_ip_csum_status(self.ol_flags())
    }

    /// The NIC's verdict on the TCP/UDP checksum.
    pub fn rx_l4_csum(&self) -> CsumStatus {
        rx_l4_csum_status(self.ol_flags())
    }

    /// Ask the NIC to fill the IPv4 header checksum and the TCP checksum.
    /// As DPDK requires, the caller leaves the IPv4 checksum 0 and puts the
    /// pseudo-header checksum (not complemented) in the TCP checksum field.
    /// Only valid on a port whose `PortInfo::tx_csum_offload` is true.
    pub fn request_tx_csum_ipv4_tcp(&mut self, l2_len: u8, l3_len: u16) {
        self.set_tx_offload(
            ffi::RTE_MBUF_F_TX_IPV4 | ffi::RTE_MBUF_F_TX_IP_CKSUM | ffi::RTE_MBUF_F_TX_TCP_CKSUM,
            l2_len,
            l3_len,
        );
    }

    /// Ask the NIC to fill the TCP checksum of an IPv6 packet (which has no
    /// header checksum); the TCP field holds the IPv6 pseudo-header sum.
    pub fn request_tx_csum_ipv6_tcp(&mut self, l2_len: u8, l3_len: u16) {
        self.set_tx_offload(ffi::RTE_MBUF_F_TX_IPV6 | ffi::RTE_MBUF_F_TX_TCP_CKSUM, l2_len, l3_len);
    }

    /// As [`Mbuf::request_tx_csum_ipv4_tcp`], for UDP.
    pub fn request_tx_csum_ipv4_udp(&mut self, l2_len: u8, l3_len: u16) {
        self.set_tx_offload(
            ffi::RTE_MBUF_F_TX_IPV4 | ffi::RTE_MBUF_F_TX_IP_CKSUM | ffi::RTE_MBUF_F_TX_UDP_CKSUM,
            l2_len,
            l3_len,
        );
    }

    /// Ask the NIC for the IPv4 header checksum only (e.g. ICMP replies).
    pub fn request_tx_csum_ip_only(&mut self, l2_len: u8, l3_len: u16) {
        self.set_tx_offload(
            ffi::RTE_MBUF_F_TX_IPV4 | ffi::RTE_MBUF_F_TX_IP_CKSUM,
            l2_len,
            l3_len,
        );
    }

    /// Drop every TX offload request (checksums are then the caller's).
    pub fn clear_tx_offload(&mut self) {
        // SAFETY: exclusive owner of a valid mbuf.
        unsafe { ffi::dl_rte_pktmbuf_tx_offload_clear(self.raw.as_ptr()) }
    }

    fn set_tx_offload(&mut self, flags: u64, l2_len: u8, l3_len: u16) {
        // l2_len is a 7-bit field and l3_len a 9-bit one in rte_mbuf.
        debug_assert!(l2_len < 128 && l3_len < 512);
        // SAFETY: exclusive owner of a valid mbuf; the shim masks the flags
        // into the TX part of ol_flags and writes the length bitfields.
        unsafe { ffi::dl_rte_pktmbuf_tx_offload(self.raw.as_ptr(), flags, l2_len, l3_len, 0) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self is the only owner; after this nobody uses the pointer.
        unsafe { ffi::dl_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("ol_flags", &format_args!("{:#x}", self.ol_flags()))
            .finish()
    }
}

/// Up to [`BURST`] owned mbufs, laid out as the `struct rte_mbuf **` array
/// that rx/tx bursts take. Dropping the batch frees what it still holds.
pub struct MbufBatch {
    /// Slots `0..len` are valid owned mbufs; the rest are garbage.
    slots: [*mut ffi::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the batch owns its mbufs exclusively, like `Mbuf` (which is Send).
unsafe impl Send for MbufBatch {}

impl Default for MbufBatch {
    fn default() -> Self {
        MbufBatch::new()
    }
}

impl MbufBatch {
    pub const fn new() -> MbufBatch {
        MbufBatch {
            slots: [std::ptr::null_mut(); BURST],
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        BURST - self.len
    }

    /// Add an mbuf; gives it back when the batch is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.slots[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Take the last mbuf out.
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let raw = NonNull::new(self.slots[self.len])?;
        // SAFETY: slots below the old len are owned valid mbufs; this one
        // leaves the batch (len was lowered) so it has a single owner.
        Some(unsafe { Mbuf::from_raw(raw) })
    }

    /// The held mbufs.
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which
        // has the layout of a non-null *mut rte_mbuf; slots 0..len are
        // non-null valid mbufs owned by the batch.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr() as *const Mbuf, self.len) }
    }

    /// The held mbufs, writable (rewrite a request into its reply in place).
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; swapping Mbufs through this slice keeps
        // every slot a valid owned mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Iterate the held mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterate the held mbufs mutably.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Move every mbuf out, first to last; the batch is empty afterwards
    /// (mbufs the iterator did not yield are freed when it is dropped).
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        // Lowered first: if the Drain is leaked, the rest leak too instead
        // of being owned twice.
        self.len = 0;
        Drain {
            batch: self,
            pos: 0,
            end,
        }
    }

    /// Free every held mbuf.
    pub fn clear(&mut self) {
        let n = self.len;
        self.len = 0;
        if n > 0 {
            // SAFETY: slots 0..n are owned valid mbufs, released here once
            // (len is already 0).
            unsafe { ffi::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), n as u32) }
        }
    }

    /// The free tail of the array, for a PMD to fill.
    pub(super) fn spare_ptr(&mut self) -> (*mut *mut ffi::rte_mbuf, u16) {
        let room = (BURST - self.len) as u16;
        (self.slots[self.len..].as_mut_ptr(), room)
    }

    /// Record that a PMD wrote `n` mbufs after the held ones.
    ///
    /// # Safety
    /// The `n` slots after `len` must now hold valid mbufs owned by the batch.
    pub(super) unsafe fn filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= BURST);
        self.len = (self.len + n).min(BURST);
    }

    /// The held array, for a PMD to take from.
    pub(super) fn held_ptr(&mut self) -> (*mut *mut ffi::rte_mbuf, u16) {
        (self.slots.as_mut_ptr(), self.len as u16)
    }

    /// Record that a PMD took the first `n` mbufs: the rest move to the front.
    ///
    /// # Safety
    /// The first `n` held mbufs must now belong to someone else.
    pub(super) unsafe fn taken(&mut self, n: usize) {
        let n = n.min(self.len);
        self.slots.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Owning iterator from [`MbufBatch::drain`].
pub struct Drain<'a> {
    batch: &'a mut MbufBatch,
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    fn next(&mut self) -> Option<Mbuf> {
        if self.pos >= self.end {
            return None;
        }
        let raw = NonNull::new(self.batch.slots[self.pos])?;
        self.pos += 1;
        // SAFETY: slots pos..end were owned by the batch and are now owned
        // by the Drain alone; each is yielded once.
        Some(unsafe { Mbuf::from_raw(raw) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.pos;
        (n, Some(n))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let rest = self.end - self.pos;
        if rest > 0 {
            // SAFETY: slots pos..end are still owned by the Drain and freed once.
            unsafe {
                ffi::rte_pktmbuf_free_bulk(self.batch.slots[self.pos..].as_mut_ptr(), rest as u32)
            }
        }
        self.pos = self.end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_flags_decode_like_dpdk() {
        let ip_good = u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_GOOD);
        let ip_bad = u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_BAD);
        let l4_good = u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_GOOD);
        let l4_bad = u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_BAD);
        assert_eq!(rx_ip_csum_status(0), CsumStatus::Unknown);
        assert_eq!(rx_ip_csum_status(ip_good), CsumStatus::Good);
        assert_eq!(rx_ip_csum_status(ip_bad), CsumStatus::Bad);
        assert_eq!(
            rx_ip_csum_status(u64::from(ffi::RTE_MBUF_F_RX_IP_CKSUM_NONE)),
            CsumStatus::None
        );
        assert_eq!(rx_l4_csum_status(ip_good | ip_bad), CsumStatus::Unknown);
        assert_eq!(rx_l4_csum_status(l4_good), CsumStatus::Good);
        assert_eq!(rx_l4_csum_status(l4_bad | ip_good), CsumStatus::Bad);
        assert_eq!(
            rx_l4_csum_status(u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_NONE)),
            CsumStatus::None
        );
    }

    #[test]
    fn empty_batch() {
        let mut b = MbufBatch::new();
        assert!(b.is_empty());
        assert_eq!(b.room(), BURST);
        assert!(b.pop().is_none());
        assert_eq!(b.drain().count(), 0);
        assert!(b.as_slice().is_empty());
    }

    #[test]
    fn mbuf_layout_matches_pointer() {
        assert_eq!(
            std::mem::size_of::<Mbuf>(),
            std::mem::size_of::<*mut ffi::rte_mbuf>()
        );
        assert_eq!(
            std::mem::align_of::<Mbuf>(),
            std::mem::align_of::<*mut ffi::rte_mbuf>()
        );
    }
}
