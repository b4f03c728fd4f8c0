//! The Environment Abstraction Layer: process-wide DPDK initialisation.

use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{eal_init_hint, thread_register_hint, DpdkError};
use super::ffi;

/// `rte_eal_init` runs at most once per process: DPDK itself refuses a
/// second call, and after `rte_eal_cleanup` it cannot be initialised again.
static EAL_INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Set when a mempool could not be freed because mbufs were still out: then
/// `rte_eal_cleanup` must not run, or those mbufs would point into freed memory.
pub(super) static MEMORY_STILL_IN_USE: AtomicBool = AtomicBool::new(false);

/// A handle on the initialised EAL. Cheap to clone; mempools and ports keep
/// one, so `rte_eal_cleanup` runs only after the last of them is gone.
#[derive(Clone)]
pub struct Eal {
    _inner: Arc<EalInner>,
}

struct EalInner;

impl Drop for EalInner {
    fn drop(&mut self) {
        if MEMORY_STILL_IN_USE.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: EAL was initialised (an EalInner exists only after a
        // successful rte_eal_init) and every DPDK object made through this
        // module holds an `Eal` clone, so none is alive any more.
        unsafe {
            ffi::rte_eal_cleanup();
        }
    }
}

impl Eal {
    /// Initialise DPDK with `args` passed verbatim to `rte_eal_init`
    /// (`args[0]` is the program name; "dlisten" if `args` is empty). Fails
    /// on the second call in a process. Note that EAL pins the calling
    /// thread to the main lcore's CPU set (`-l`/`--main-lcore`).
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let program = ["dlisten".to_string()];
        let args = if args.is_empty() { &program[..] } else { args };
        let mut c_args = Vec::with_capacity(args.len());
        for (index, arg) in args.iter().enumerate() {
            match CString::new(arg.as_str()) {
                Ok(c) => c_args.push(c),
                Err(_) => return Err(DpdkError::EalArgument { index }),
            }
        }
        if EAL_INIT_CALLED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::EalAlreadyInitialised);
        }
        // EAL keeps pointers into argv (the program name for its log, device
        // arguments) for the life of the process, so the strings are leaked.
        let mut argv: Vec<*mut c_char> = c_args.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as i32;
        argv.push(std::ptr::null_mut());
        let argv = Box::leak(argv.into_boxed_slice());
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all leaked so they outlive EAL, which may permute the array.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = rte_errno();
            return Err(DpdkError::EalInit {
                errno,
                hint: eal_init_hint(errno),
            });
        }
        Ok(Eal {
            _inner: Arc::new(EalInner),
        })
    }

    /// The usable ethdev ports, as `RTE_ETH_FOREACH_DEV` lists them (valid
    /// and not owned by another driver such as bonding).
    pub fn ports(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        let mut next = 0u16;
        loop {
            // SAFETY: EAL is initialised (self exists); the call only reads
            // the ethdev table and returns RTE_MAX_ETHPORTS past the end.
            let port = unsafe {
                ffi::rte_eth_find_next_owned_by(next, u64::from(ffi::RTE_ETH_DEV_NO_OWNER))
            };
            // It returns a u64; anything at or past RTE_MAX_ETHPORTS is the end.
            let port = match u16::try_from(port) {
                Ok(p) if u32::from(p) < ffi::RTE_MAX_ETHPORTS => p,
                _ => return ports,
            };
            ports.push(port);
            next = port + 1;
        }
    }

    /// The port to use: `wanted` if EAL found it, else the first one. With
    /// none at all, say whether a missing privilege is the likely reason.
    pub fn choose_port(&self, wanted: Option<u16>) -> Result<u16, DpdkError> {
        let ports = self.ports();
        match (wanted, ports.first()) {
            (Some(p), _) if ports.contains(&p) => Ok(p),
            (Some(port), _) => Err(DpdkError::NoSuchPort { port, available: ports }),
            (None, Some(p)) => Ok(*p),
            (None, None) if !running_as_root() => Err(DpdkError::NotRoot),
            (None, None) => Err(DpdkError::NoPorts),
        }
    }

    /// The NUMA socket of the calling thread (`SOCKET_ID_ANY` (-1) when it
    /// is unknown, e.g. for an unregistered thread on some builds).
    pub fn socket_id(&self) -> i32 {
        // SAFETY: reads the calling thread's per-lcore socket id.
        let id = unsafe { ffi::rte_socket_id() };
        i32::try_from(id).unwrap_or(ffi::SOCKET_ID_ANY)
    }

    /// The NUMA socket a port's device is attached to (-1 when unknown, as
    /// for virtual devices).
    pub fn port_socket_id(&self, port: u16) -> i32 {
        // SAFETY: EAL is initialised; an invalid port id returns -1 with
        // rte_errno set, it is not undefined behaviour.
        unsafe { ffi::rte_eth_dev_socket_id(port) }
    }

    /// Give the calling (non-EAL) thread an lcore id, so it gets per-lcore
    /// mempool caches and DPDK's per-lcore state. Our pinned workers are
    /// std threads, not EAL lcores, so each calls this first. Returns the
    /// lcore id. Call [`Eal::unregister_thread`] before the thread ends.
    pub fn register_thread(&self) -> Result<u32, DpdkError> {
        // SAFETY: EAL is initialised; registering a thread twice is a no-op
        // in DPDK (it keeps the lcore id it has).
        let ret = unsafe { ffi::rte_thread_register() };
        if ret < 0 {
            let errno = rte_errno();
            return Err(DpdkError::ThreadRegister {
                errno,
                hint: thread_register_hint(errno),
            });
        }
        lcore_id().ok_or(DpdkError::ThreadRegister {
            errno: libc::ENOMEM,
            hint: thread_register_hint(libc::ENOMEM),
        })
    }

    /// Release the lcore id the calling thread got from `register_thread`.
    pub fn unregister_thread(&self) {
        // SAFETY: EAL is initialised; on a thread without an lcore id it
        // does nothing.
        unsafe { ffi::rte_thread_unregister() }
    }
}

/// The calling thread's lcore id, or None for a thread EAL does not know.
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local variable; valid on any thread.
    let id = unsafe { ffi::dl_rte_lcore_id() };
    (id != ffi::LCORE_ID_ANY).then_some(id)
}

/// DPDK's version string, e.g. "DPDK 22.11.11". Needs no EAL.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    let ptr = unsafe { ffi::rte_version() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, static and NUL-terminated (see above).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's `rte_errno`.
pub(super) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local variable; valid on any thread.
    unsafe { ffi::dl_rte_errno() }
}

/// The effective uid is the owner of /proc/self (no libc call needed).
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_dpdk_22_11() {
        let v = version();
        assert!(v.starts_with("DPDK 22.11"), "{v}");
    }

    #[test]
    fn no_lcore_id_outside_eal() {
        // Unit tests never initialise EAL (tests/dpdk_smoke.rs does, in its own process).
        assert_eq!(lcore_id(), None);
    }

    #[test]
    fn nul_in_argument_is_rejected_before_init() {
        let args = vec!["dlisten".to_string(), "bad\0arg".to_string()];
        assert!(matches!(
            Eal::init(&args),
            Err(DpdkError::EalArgument { index: 1 })
        ));
        // The guard was not consumed by the rejected call.
        assert!(!EAL_INIT_CALLED.load(Ordering::Acquire));
    }
}
