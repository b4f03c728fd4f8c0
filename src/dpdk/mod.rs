//! DPDK binding.
