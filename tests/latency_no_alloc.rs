//! `WorkerLatency::record` must not allocate once a listener's histograms
//! exist: a counting global allocator (this test binary only) checks it.
//! Kept alone in its binary so no other test's allocations are counted.

use dlisten::stats::Metric;
use dlisten::telemetry::WorkerLatency;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn record_does_not_allocate_after_warm_up() {
    let mut w = WorkerLatency::new();
    // Warm-up: the first sample of each listener creates its histograms.
    for listener in 0..8u64 {
        w.record(listener, Metric::SynToSynAck, 1);
    }
    let _ = w.take();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut v = 1u64;
    for i in 0..100_000u64 {
        v = v.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let m = Metric::ALL[(i % 4) as usize];
        // Every magnitude from 1 ns to beyond 60 s (clamped).
        w.record(i % 8, m, v >> (v % 64));
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "record allocated {} times", after - before);
    // The samples are there: take() (which may allocate) returns them all.
    assert_eq!(w.take().count(), 100_000);
}
