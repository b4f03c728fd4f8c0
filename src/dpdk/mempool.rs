//! Packet buffer pools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::eal::{rte_errno, Eal, MEMORY_STILL_IN_USE};
use super::error::{mempool_hint, DpdkError};
use super::ffi;
use super::mbuf::{Mbuf, MbufBatch};

/// Data room that holds a 1500-byte-MTU frame plus DPDK's headroom
/// (RTE_MBUF_DEFAULT_BUF_SIZE = 2048 + 128).
pub const DEFAULT_DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// A pool of packet buffers on one NUMA socket. Shared by the port (RX
/// queues refill from it) and the workers (replies are allocated from it).
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    _eal: Eal,
}

// SAFETY: DPDK mempools made by rte_pktmbuf_pool_create use the default
// multi-producer/multi-consumer ring ops, so get/put are thread-safe; the
// per-lcore caches are indexed by the calling thread's lcore id.
unsafe impl Send for Mempool {}
// SAFETY: as above; all methods take &self and DPDK synchronises.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Create a pool of `n_mbufs` buffers with `data_room` bytes each
    /// (including RTE_PKTMBUF_HEADROOM) and a per-lcore cache of
    /// `cache_size` (at most 512). `socket` is a NUMA socket id or -1 for any.
    /// Names must be unique in the process.
    pub fn new(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, DpdkError> {
        let Ok(c_name) = CString::new(name) else {
            return Err(DpdkError::MempoolCreate {
                name: name.to_string(),
                errno: libc::EINVAL,
                hint: "the name contains a NUL byte",
            });
        };
        // SAFETY: EAL is initialised (eal exists); c_name is a valid C
        // string that DPDK copies.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(c_name.as_ptr(), n_mbufs, cache_size, 0, data_room, socket)
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Mempool {
                raw,
                name: name.to_string(),
                _eal: eal.clone(),
            }),
            None => {
                let errno = rte_errno();
                Err(DpdkError::MempoolCreate {
                    name: name.to_string(),
                    errno,
                    hint: mempool_hint(errno),
                })
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One fresh buffer (empty, default headroom), or None when the pool is
    /// exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while self lives; alloc returns NULL
        // when empty.
        let raw = unsafe { ffi::dl_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf nobody else owns.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    /// Fill `n` more slots of `batch` with fresh buffers, all or nothing (as
    /// DPDK does). False when `n` exceeds the batch's room or the pool.
    pub fn alloc_bulk(&self, batch: &mut MbufBatch, n: usize) -> bool {
        if n > batch.room() {
            return false;
        }
        let (ptr, _) = batch.spare_ptr();
        // SAFETY: ptr has room for n pointers (checked above); on success
        // DPDK writes n fresh mbufs there, on failure none.
        let ret = unsafe { ffi::dl_rte_pktmbuf_alloc_bulk(self.raw.as_ptr(), ptr, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: the n slots now hold fresh mbufs owned by the batch.
        unsafe { batch.filled(n) };
        true
    }

    /// Fill `n` more slots of `batch` with fresh `len`-byte packets, each
    /// written by `write(i, bytes)` (i from 0; the bytes hold old buffer
    /// contents until written): a burst of frames with one call into DPDK.
    /// All or nothing, as [`Mempool::alloc_bulk`].
    pub fn alloc_frames(&self, batch: &mut MbufBatch, n: usize, len: u16, mut write: impl FnMut(usize, &mut [u8])) -> bool {
        if n > batch.room() {
            return false;
        }
        let mut data = [std::ptr::null_mut::<std::ffi::c_void>(); super::BURST];
        let (ptr, _) = batch.spare_ptr();
        // SAFETY: ptr has room for n pointers and data for n <= BURST
        // (checked above); on success DPDK writes n fresh mbufs and their
        // data pointers, on failure nothing stays allocated.
        let ret = unsafe { ffi::dl_rte_pktmbuf_alloc_frames(self.raw.as_ptr(), ptr, n as u32, len, data.as_mut_ptr()) };
        if ret != 0 {
            return false;
        }
        for (i, &p) in data[..n].iter().enumerate() {
            // SAFETY: p points at the len data bytes of the i-th fresh mbuf
            // (the shim checked they fit its buffer); the mbufs are distinct
            // and not yet in the batch, so this is the only access to them.
            write(i, unsafe { std::slice::from_raw_parts_mut(p as *mut u8, usize::from(len)) });
        }
        // SAFETY: the n slots now hold fresh mbufs owned by the batch.
        unsafe { batch.filled(n) };
        true
    }

    /// Buffers free in the pool (including per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Buffers handed out (in NIC rings, in flight, held by workers).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is valid while self lives.
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub(super) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Mbufs carry no reference to their Mempool handle, so one may still
        // be alive (held by a thread, or leaked). Freeing the pool would then
        // leave it dangling: keep the memory, and keep EAL from cleaning up.
        if self.in_use_count() != 0 {
            MEMORY_STILL_IN_USE.store(true, Ordering::Release);
            return;
        }
        // SAFETY: no mbuf of this pool is out (checked above) and no port
        // uses it (ports hold an Arc<Mempool>, so they are gone).
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("name", &self.name).finish()
    }
}
