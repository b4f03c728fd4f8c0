//! The workers' side of a capture: a hub shared by every worker and the
//! control thread, and one [`CaptureTap`] per worker.
//!
//! Off, a tap costs a worker one relaxed load of the hub's `armed` flag per
//! burst (received, or handed to the port). On, the worker copies each
//! frame that passes the filter into its own bounded ring (one producer:
//! the worker; one consumer: the control thread); a full ring drops the
//! copy and counts it, the worker never waits. The copies' buffers go back
//! to the worker through a second ring, so a steady capture allocates
//! nothing after its first frames.

use super::filter::{CaptureFilter, Direction};
use arc_swap::ArcSwapOption;
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Frames a worker's ring holds before it drops copies.
pub const RING_FRAMES: usize = 4096;

/// The way one frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Received from the port.
    In,
    /// Handed to the port for transmission.
    Out,
}

/// One frame's copy.
#[derive(Debug)]
pub struct CapturedFrame {
    /// The TSC when the worker copied it.
    pub tsc: u64,
    pub way: Way,
    pub worker: u16,
    /// The frame's length on the wire (the copy may be shorter: snaplen).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// The port a capture describes in its interface block.
#[derive(Clone, Debug, Default)]
pub struct CaptureInterface {
    /// The kernel-visible name when the port has one (net_tap's iface), else `dpdk<port id>`.
    pub name: String,
    /// Port id, driver and queues, for `if_description`.
    pub description: String,
    pub mac: [u8; 6],
}

/// The TSC and the wall clock, read together when a capture starts, so
/// that a frame's TSC becomes a time of day.
#[derive(Clone, Copy, Debug)]
pub struct TscEpoch {
    pub tsc: u64,
    pub tsc_hz: u64,
    /// Nanoseconds since the Unix epoch at `tsc`.
    pub unix_ns: u64,
}

impl TscEpoch {
    /// Nanoseconds since the Unix epoch at TSC `tsc` (before the epoch: at it).
    pub fn unix_ns(&self, tsc: u64) -> u64 {
        let ticks = u128::from(tsc.saturating_sub(self.tsc));
        let ns = ticks * 1_000_000_000 / u128::from(self.tsc_hz.max(1));
        self.unix_ns.saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// One worker's rings and drop count.
struct WorkerRing {
    full: ArrayQueue<CapturedFrame>,
    /// Buffers the control thread has written out, for reuse.
    free: ArrayQueue<Vec<u8>>,
    dropped: CachePadded<AtomicU64>,
}

/// A running capture: what to copy and where the copies go.
pub struct Session {
    pub filter: CaptureFilter,
    pub direction: Direction,
    pub snaplen: usize,
    pub epoch: TscEpoch,
    rings: Vec<WorkerRing>,
}

impl Session {
    fn new(workers: usize, filter: CaptureFilter, direction: Direction, snaplen: usize, epoch: TscEpoch) -> Session {
        let rings = (0..workers)
            .map(|_| WorkerRing {
                full: ArrayQueue::new(RING_FRAMES),
                free: ArrayQueue::new(RING_FRAMES),
                dropped: CachePadded::new(AtomicU64::new(0)),
            })
            .collect();
        Session { filter, direction, snaplen, epoch, rings }
    }

    /// Copy the frames of one burst of worker `w` that pass the filter.
    fn copy<'a>(&self, w: u16, way: Way, tsc: u64, frames: impl Iterator<Item = (&'a [u8], usize)>) {
        let Some(ring) = self.rings.get(usize::from(w)) else { return };
        for (data, wire_len) in frames {
            if !self.filter.matches(data) {
                continue;
            }
            if ring.full.is_full() {
                ring.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mut buf = ring.free.pop().unwrap_or_else(|| Vec::with_capacity(self.snaplen));
            buf.clear();
            buf.extend_from_slice(&data[..data.len().min(self.snaplen)]);
            let frame = CapturedFrame { tsc, way, worker: w, orig_len: u32::try_from(wire_len).unwrap_or(u32::MAX), data: buf };
            if let Err(frame) = ring.full.push(frame) {
                ring.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = ring.free.push(frame.data);
            }
        }
    }

    /// Everything the workers have copied so far, oldest first per worker.
    pub fn drain_into(&self, out: &mut Vec<CapturedFrame>) {
        for ring in &self.rings {
            while let Some(f) = ring.full.pop() {
                out.push(f);
            }
        }
    }

    /// Give a written frame's buffer back to its worker.
    pub fn recycle(&self, frame: CapturedFrame) {
        if let Some(ring) = self.rings.get(usize::from(frame.worker)) {
            let _ = ring.free.push(frame.data);
        }
    }

    /// Copies dropped because a worker's ring was full.
    pub fn dropped(&self) -> u64 {
        self.rings.iter().map(|r| r.dropped.load(Ordering::Relaxed)).sum()
    }
}

/// Why a capture cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaptureError {
    #[error("a capture is already running on this server (one at a time)")]
    Busy,
}

/// Shared by the workers' taps and the control thread.
pub struct CaptureHub {
    /// The one flag a worker reads per burst.
    armed: CachePadded<AtomicBool>,
    session: ArcSwapOption<Session>,
    /// Taken by the control client whose capture runs.
    running: AtomicBool,
    workers: usize,
    tsc: fn() -> u64,
    tsc_hz: u64,
    pub interface: CaptureInterface,
}

impl CaptureHub {
    /// For `workers` workers whose TSC is read with `tsc` at `tsc_hz`.
    pub fn new(workers: usize, tsc: fn() -> u64, tsc_hz: u64, interface: CaptureInterface) -> Arc<CaptureHub> {
        Arc::new(CaptureHub {
            armed: CachePadded::new(AtomicBool::new(false)),
            session: ArcSwapOption::empty(),
            running: AtomicBool::new(false),
            workers,
            tsc,
            tsc_hz,
            interface,
        })
    }

    /// Worker `w`'s tap.
    pub fn tap(self: &Arc<Self>, w: u16) -> CaptureTap {
        CaptureTap { hub: self.clone(), worker: w }
    }

    /// Start copying: from the workers' next burst on. One capture at a time.
    pub fn arm(self: &Arc<Self>, filter: CaptureFilter, direction: Direction, snaplen: usize) -> Result<Armed, CaptureError> {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err(CaptureError::Busy);
        }
        let unix_ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        let epoch = TscEpoch { tsc: (self.tsc)(), tsc_hz: self.tsc_hz, unix_ns };
        let session = Arc::new(Session::new(self.workers, filter, direction, snaplen.max(1), epoch));
        self.session.store(Some(session.clone()));
        // Release: a worker that sees the flag sees the session stored before it.
        self.armed.store(true, Ordering::Release);
        Ok(Armed { hub: self.clone(), session, disarmed: false })
    }

    fn disarm(&self, session: &Arc<Session>) {
        self.armed.store(false, Ordering::Relaxed);
        self.session.store(None);
        // A worker that loaded the session just before keeps it for the rest
        // of its burst: wait for those (a burst is microseconds; bounded).
        let deadline = std::time::Instant::now() + Duration::from_millis(200);
        while Arc::strong_count(session) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A capture in progress; dropping it disarms the workers.
pub struct Armed {
    hub: Arc<CaptureHub>,
    pub session: Arc<Session>,
    disarmed: bool,
}

impl Armed {
    /// Stop the workers copying and wait for the last copies to land.
    pub fn disarm(&mut self) {
        if !self.disarmed {
            self.disarmed = true;
            self.hub.disarm(&self.session);
        }
    }

    /// The TSC now, on the hub's clock.
    pub fn tsc(&self) -> u64 {
        (self.hub.tsc)()
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.disarm();
        self.hub.running.store(false, Ordering::Release);
    }
}

/// One worker's tap.
#[derive(Clone)]
pub struct CaptureTap {
    hub: Arc<CaptureHub>,
    worker: u16,
}

impl CaptureTap {
    /// A burst received from the port: `(frame, its length on the wire)`.
    #[inline]
    pub fn rx<'a>(&self, frames: impl Iterator<Item = (&'a [u8], usize)>) {
        if self.hub.armed.load(Ordering::Relaxed) {
            self.copy(Way::In, frames);
        }
    }

    /// A burst about to be handed to the port.
    #[inline]
    pub fn tx<'a>(&self, frames: impl Iterator<Item = (&'a [u8], usize)>) {
        if self.hub.armed.load(Ordering::Relaxed) {
            self.copy(Way::Out, frames);
        }
    }

    #[cold]
    fn copy<'a>(&self, way: Way, frames: impl Iterator<Item = (&'a [u8], usize)>) {
        // A counted reference, which `disarm` waits for.
        let Some(session) = self.hub.session.load_full() else { return };
        let wanted = match way {
            Way::In => session.direction.rx(),
            Way::Out => session.direction.tx(),
        };
        if wanted {
            session.copy(self.worker, way, (self.hub.tsc)(), frames);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::AtomicU64;

    static FAKE_TSC: AtomicU64 = AtomicU64::new(1_000);

    fn fake_tsc() -> u64 {
        FAKE_TSC.load(Ordering::Relaxed)
    }

    fn hub(workers: usize) -> Arc<CaptureHub> {
        CaptureHub::new(workers, fake_tsc, 1_000_000_000, CaptureInterface::default())
    }

    fn frames(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 60]).collect()
    }

    fn burst(f: &[Vec<u8>]) -> impl Iterator<Item = (&[u8], usize)> {
        f.iter().map(|v| (v.as_slice(), v.len()))
    }

    #[test]
    fn off_copies_nothing_and_on_copies_per_direction() {
        let hub = hub(2);
        let (t0, t1) = (hub.tap(0), hub.tap(1));
        let f = frames(3);
        t0.rx(burst(&f));
        assert!(hub.session.load().is_none());

        let armed = hub.arm(CaptureFilter::default(), Direction::Rx, 2048).unwrap();
        t0.rx(burst(&f));
        t1.tx(burst(&f)); // rx only: not copied
        t1.rx(burst(&f[..1]));
        let mut out = Vec::new();
        armed.session.drain_into(&mut out);
        let got: Vec<(u16, Way, u8)> = out.iter().map(|c| (c.worker, c.way, c.data[0])).collect();
        assert_eq!(got, vec![(0, Way::In, 0), (0, Way::In, 1), (0, Way::In, 2), (1, Way::In, 0)]);
        assert_eq!(armed.session.dropped(), 0);
        drop(armed);
        t0.rx(burst(&f));
        assert!(hub.session.load().is_none(), "disarmed on drop");
    }

    #[test]
    fn one_capture_at_a_time() {
        let hub = hub(1);
        let a = hub.arm(CaptureFilter::default(), Direction::Both, 64).unwrap();
        assert_eq!(hub.arm(CaptureFilter::default(), Direction::Both, 64).err(), Some(CaptureError::Busy));
        drop(a);
        assert!(hub.arm(CaptureFilter::default(), Direction::Both, 64).is_ok());
    }

    #[test]
    fn a_full_ring_drops_and_counts_and_snaplen_cuts() {
        let hub = hub(1);
        let tap = hub.tap(0);
        let armed = hub.arm(CaptureFilter::default(), Direction::Tx, 16).unwrap();
        let f = frames(RING_FRAMES + 5);
        tap.tx(burst(&f));
        assert_eq!(armed.session.dropped(), 5);
        let mut out = Vec::new();
        armed.session.drain_into(&mut out);
        assert_eq!(out.len(), RING_FRAMES);
        assert!(out.iter().all(|c| c.data.len() == 16 && c.orig_len == 60 && c.way == Way::Out));
        // Written-out buffers come back to the worker.
        for c in out.drain(..) {
            armed.session.recycle(c);
        }
        tap.tx(burst(&f[..1]));
        armed.session.drain_into(&mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].data.capacity() >= 16);
    }

    #[test]
    fn the_filter_applies_in_the_worker() {
        let hub = hub(1);
        let tap = hub.tap(0);
        let filter = CaptureFilter { host: Some(Ipv4Addr::new(198, 18, 0, 1)), port: None };
        let armed = hub.arm(filter, Direction::Both, 2048).unwrap();
        tap.rx(burst(&frames(4))); // not IPv4: no match
        let mut out = Vec::new();
        armed.session.drain_into(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn tsc_to_time_of_day() {
        let e = TscEpoch { tsc: 1_000, tsc_hz: 2_000_000_000, unix_ns: 5_000_000_000 };
        assert_eq!(e.unix_ns(1_000), 5_000_000_000);
        assert_eq!(e.unix_ns(3_000), 5_000_001_000);
        assert_eq!(e.unix_ns(0), 5_000_000_000, "before the epoch: at it");
        FAKE_TSC.store(7, Ordering::Relaxed);
        let hub = hub(1);
        let armed = hub.arm(CaptureFilter::default(), Direction::Both, 64).unwrap();
        assert_eq!(armed.session.epoch.tsc, 7);
    }
}
