//! Commands of DPDK's telemetry socket (`rte_telemetry_register_cmd`), so
//! `dpdk-telemetry.py` reads dlisten's own values next to `/ethdev/stats`.
//!
//! EAL's telemetry thread calls the commands. They answer from whatever
//! [`TelemetrySource`] is installed ([`set_source`]): the control thread
//! keeps its data fresh, so neither the callback nor the source touches a
//! worker. EAL cannot unregister a command: without a source (before
//! serving, after stopping) a command answers `null`.
//!
//! DPDK 22.11's limits, checked here: a reply is a dictionary of at most
//! [`MAX_DICT_ENTRIES`] entries, each a number, a string of fewer than
//! [`MAX_STRING_LEN`] bytes, or one more level of such a dictionary; names
//! are ASCII letters, digits, `_` and `/` (`valid_name` in telemetry_data.c).

use super::ffi;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Arc, RwLock};

/// `RTE_TEL_MAX_DICT_ENTRIES`.
pub const MAX_DICT_ENTRIES: usize = 256;
/// `RTE_TEL_MAX_STRING_LEN`, the terminating NUL included.
pub const MAX_STRING_LEN: usize = 128;

/// A value in a reply's inner dictionary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelScalar {
    U64(u64),
    Str(String),
}

/// A value of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TelValue {
    Scalar(TelScalar),
    Dict(Vec<(String, TelScalar)>),
}

/// What a command answers: a dictionary.
pub type TelReply = Vec<(String, TelValue)>;

/// Answers the commands registered with [`register`].
pub trait TelemetrySource: Send + Sync {
    /// The reply to `cmd` (as registered) with `params` (what followed the
    /// comma, or ""); `None`: no such value (e.g. a worker id out of range).
    fn answer(&self, cmd: &str, params: &str) -> Option<TelReply>;
}

/// A command: its name (starts with `/`) and its help line.
#[derive(Clone, Copy, Debug)]
pub struct TelCommand {
    pub name: &'static CStr,
    pub help: &'static CStr,
}

/// Why a command was not registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rte_telemetry_register_cmd {cmd}: {}", crate::dpdk::errno_text(*.errno))]
pub struct TelemetryError {
    pub cmd: String,
    pub errno: i32,
}

static SOURCE: RwLock<Option<Arc<dyn TelemetrySource>>> = RwLock::new(None);

/// Install (or, with `None`, remove) what the commands answer from.
pub fn set_source(source: Option<Arc<dyn TelemetrySource>>) {
    *SOURCE.write().unwrap_or_else(|e| e.into_inner()) = source;
}

/// Register `commands` with EAL's telemetry (after EAL init; a process
/// registers them once, a second call for the same names fails).
pub fn register(commands: &[TelCommand]) -> Result<(), TelemetryError> {
    for c in commands {
        // SAFETY: both strings are NUL-terminated and 'static (DPDK copies
        // them anyway); `answer` has the telemetry_cb signature and may be
        // called from EAL's telemetry thread at any time, which it allows:
        // it reads only the RwLock'd source.
        let rc = unsafe { ffi::rte_telemetry_register_cmd(c.name.as_ptr(), Some(answer), c.help.as_ptr()) };
        if rc != 0 {
            return Err(TelemetryError { cmd: c.name.to_string_lossy().into_owned(), errno: -rc });
        }
    }
    Ok(())
}

/// DPDK's `valid_name`: what a dictionary key may hold.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < MAX_STRING_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
}

/// The telemetry_cb: fill `d` with the source's reply. A negative return
/// makes DPDK answer `null`.
unsafe extern "C" fn answer(cmd: *const c_char, params: *const c_char, d: *mut ffi::rte_tel_data) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -1;
    }
    // SAFETY: DPDK passes the NUL-terminated command it matched and the
    // parameters after the comma (or NULL), both alive for this call.
    let (cmd, params) = unsafe {
        let params = if params.is_null() { "" } else { CStr::from_ptr(params).to_str().unwrap_or("") };
        (CStr::from_ptr(cmd).to_str().unwrap_or(""), params)
    };
    // No unwinding into C: a panic answers null.
    let reply = std::panic::catch_unwind(|| {
        let source = SOURCE.read().unwrap_or_else(|e| e.into_inner()).clone();
        source.and_then(|s| s.answer(cmd, params))
    });
    let Ok(Some(reply)) = reply else { return -1 };
    // SAFETY: `d` is the reply container DPDK allocated for this call, ours
    // to fill until we return.
    unsafe { fill(d, &reply) }
}

/// Write `reply` into `d` as a dictionary. Entries DPDK would refuse (bad
/// names, strings too long, past the entry limit) are left out.
///
/// # Safety
/// `d` must be a valid `rte_tel_data` this thread may write.
unsafe fn fill(d: *mut ffi::rte_tel_data, reply: &TelReply) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        if ffi::rte_tel_data_start_dict(d) != 0 {
            return -1;
        }
        for (name, value) in reply.iter().take(MAX_DICT_ENTRIES) {
            let Some(cname) = c_name(name) else { continue };
            match value {
                TelValue::Scalar(v) => add_scalar(d, &cname, v),
                TelValue::Dict(entries) => {
                    let inner = ffi::rte_tel_data_alloc();
                    if inner.is_null() {
                        continue;
                    }
                    ffi::rte_tel_data_start_dict(inner);
                    for (n, v) in entries.iter().take(MAX_DICT_ENTRIES) {
                        if let Some(n) = c_name(n) {
                            add_scalar(inner, &n, v);
                        }
                    }
                    // keep = 0: DPDK frees `inner` with `d`; on failure it
                    // did not take it.
                    if ffi::rte_tel_data_add_dict_container(d, cname.as_ptr(), inner, 0) != 0 {
                        ffi::rte_tel_data_free(inner);
                    }
                }
            }
        }
    }
    0
}

/// # Safety
/// `d` must be a valid dictionary `rte_tel_data` this thread may write.
unsafe fn add_scalar(d: *mut ffi::rte_tel_data, name: &CStr, v: &TelScalar) {
    match v {
        // SAFETY: the caller's contract; `name` is NUL-terminated.
        TelScalar::U64(x) => unsafe {
            ffi::rte_tel_data_add_dict_u64(d, name.as_ptr(), *x);
        },
        TelScalar::Str(s) => {
            if s.len() < MAX_STRING_LEN {
                if let Ok(s) = CString::new(s.as_str()) {
                    // SAFETY: the caller's contract; both strings NUL-terminated, copied by DPDK.
                    unsafe { ffi::rte_tel_data_add_dict_string(d, name.as_ptr(), s.as_ptr()) };
                }
            }
        }
    }
}

fn c_name(name: &str) -> Option<CString> {
    valid_name(name).then(|| CString::new(name).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_dpdk_allows_them() {
        for ok in ["TcpPassiveOpens", "0", "rx_frames", "a/b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "198.18.0.1:80", "p99.9_us", "a b", "é", &"x".repeat(MAX_STRING_LEN)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
