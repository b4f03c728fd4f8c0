//! The CPU's time-stamp counter, which a worker counts its stages' cycles
//! with (VPP's clocks per packet).

use super::ffi;
use super::Eal;

/// The TSC now: a register read of a few tens of cycles, constant-rate on
/// the CPUs DPDK supports.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC takes no operands and has no preconditions; it only reads
    // the counter.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: dl_rte_rdtsc wraps DPDK's rte_rdtsc, which takes nothing and
    // only reads the cycle counter.
    unsafe {
        ffi::dl_rte_rdtsc()
    }
}

/// TSC ticks per second, as EAL measured them when it started.
pub fn tsc_hz(_eal: &Eal) -> u64 {
    // SAFETY: EAL is initialised (an `Eal` exists), which is what
    // rte_get_tsc_hz needs; it takes nothing and returns a number.
    unsafe { ffi::rte_get_tsc_hz() }
}
