//! EAL and its memory: brought up after the control plane, torn down last.

use super::{ServeConfig, ServeError};
use crate::dpdk::runtime_dir::{RuntimeDir, RuntimeDirState};
use crate::dpdk::{self, Eal, Mempool};
use core_affinity::CoreId;
use std::sync::Arc;

/// EAL, the chosen port and one mempool per worker. The port and the workers
/// hold clones of these; this struct outlives them, and its fields drop in
/// order: mempools, then EAL, then EAL's runtime files.
pub(super) struct Dpdk {
    pub pools: Vec<Arc<Mempool>>,
    pub eal: Eal,
    pub port_id: u16,
    /// The cores workers may be pinned to.
    pub cores: Vec<CoreId>,
    _runtime_files: RuntimeFiles,
}

/// EAL's runtime directory, ours once [`take_runtime_dir`] found it free or
/// stale. EAL leaves its files there even after `rte_eal_cleanup`; removed
/// on drop, so that only a crash leaves any, for the next start to name.
struct RuntimeFiles(RuntimeDir);

impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            eprintln!("dlisten: removing the DPDK runtime files in {}: {e}", self.0);
        }
    }
}

impl Dpdk {
    pub fn init(cfg: &ServeConfig) -> Result<Dpdk, ServeError> {
        // Before EAL init: EAL pins this thread to the main lcore, and the
        // core list is read from this thread's affinity mask.
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        check_cores(cfg.cores.as_deref(), &cores)?;
        // Plain words for a wrong --vdev, before EAL's "probe failed".
        dpdk::devargs::check_eal_args(&cfg.eal_args, cfg.workers).map_err(dpdk::DpdkError::from)?;
        let runtime_files = take_runtime_dir(&cfg.eal_args)?;
        let eal = Eal::init(&cfg.eal_args)?;
        println!("dlisten: {}", dpdk::version());
        let port_id = eal.choose_port(cfg.port)?;
        let socket = eal.socket_id();
        let pools = (0..cfg.workers)
            .map(|w| {
                let n = cfg.mbufs_per_worker;
                Mempool::new(&eal, &format!("dl_rx{port_id}_{w}"), n, cache_size(n), dpdk::DEFAULT_DATA_ROOM, socket)
                    .map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Dpdk { pools, eal, port_id, cores, _runtime_files: runtime_files })
    }

    /// Worker `w`'s core: the `--cores` entry, or the w-th core we may run on.
    pub fn core_for(&self, cfg: &ServeConfig, w: u16) -> Option<CoreId> {
        match &cfg.cores {
            Some(list) => list.get(w as usize).and_then(|c| self.cores.iter().find(|id| id.id == *c).copied()),
            None => self.cores.get(w as usize % self.cores.len().max(1)).copied(),
        }
    }
}

/// Every `--cores` entry must be a core this process may run on (its
/// affinity mask, as `taskset -p` shows it): a worker is never pinned to
/// "any" core behind the operator's back. Unknown affinity: not checked.
fn check_cores(wanted: Option<&[usize]>, allowed: &[CoreId]) -> Result<(), ServeError> {
    let Some(wanted) = wanted else { return Ok(()) };
    if allowed.is_empty() {
        return Ok(());
    }
    match wanted.iter().find(|c| !allowed.iter().any(|id| id.id == **c)) {
        Some(&core) => Err(ServeError::NoSuchCore { core, allowed: allowed.iter().map(|c| c.id).collect() }),
        None => Ok(()),
    }
}

/// The per-lcore mempool cache: 256, or less for a small pool, which DPDK
/// refuses a cache above two thirds of (`cache_size * 1.5 <= n`).
fn cache_size(n_mbufs: u32) -> u32 {
    256.min(n_mbufs * 2 / 3)
}

/// EAL's runtime directory for our `--file-prefix`: a live process's is
/// refused in plain words (EAL would only say it cannot lock `config`), a
/// dead one's files are removed and named. Anything unexpected is left to
/// EAL, which says what it thinks.
fn take_runtime_dir(eal_args: &[String]) -> Result<RuntimeFiles, ServeError> {
    let dir = RuntimeDir::for_eal_args(eal_args);
    match dir.state() {
        Ok(RuntimeDirState::Free) => {}
        Ok(RuntimeDirState::InUse { pid }) => {
            return Err(ServeError::RuntimeDirInUse { dir: dir.path, prefix: dir.prefix, pid });
        }
        Ok(RuntimeDirState::Stale) => match dir.remove_files() {
            Ok(files) => println!(
                "dlisten: removed stale DPDK runtime files in {dir} (no process holds them: left by one that is gone): {}",
                files.join(" ")
            ),
            Err(e) => eprintln!("dlisten: cannot remove the stale DPDK runtime files in {dir}: {e}"),
        },
        Err(e) => eprintln!("dlisten: cannot look at the DPDK runtime directory {dir}: {e}"),
    }
    Ok(RuntimeFiles(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_outside_the_affinity_mask_are_refused() {
        let allowed = [CoreId { id: 0 }, CoreId { id: 1 }];
        assert!(check_cores(None, &allowed).is_ok());
        assert!(check_cores(Some(&[1, 0]), &allowed).is_ok());
        let e = check_cores(Some(&[1, 7]), &allowed).unwrap_err().to_string();
        assert_eq!(e, "--cores: core 7 is not one this process may run on (its affinity: 0,1)");
        assert!(check_cores(Some(&[7]), &[]).is_ok(), "unknown affinity: not checked");
    }

    #[test]
    fn the_cache_fits_the_pool() {
        assert_eq!(cache_size(8191), 256);
        assert_eq!(cache_size(384), 256);
        assert_eq!(cache_size(300), 200);
        assert!(cache_size(100) * 3 / 2 <= 100);
        assert_eq!(cache_size(1), 0);
    }
}
