//! EAL's runtime directory (`/var/run/dpdk/<file-prefix>/`), looked at
//! before EAL starts.
//!
//! A primary process keeps a write lock (`fcntl(F_SETLK)`) on the `config`
//! file there for its whole life; the kernel drops it when the process dies,
//! even by `kill -9`, but the files stay. So: a locked `config` is a live
//! primary (refused here in plain words, with its pid), an unlocked one is
//! what a dead process left, and its files are removed and named before
//! EAL makes them anew. With `--no-shconf` (or `--in-memory`) EAL shares
//! nothing and leaves at most the empty directory.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;

/// EAL's default `--file-prefix`.
const DEFAULT_PREFIX: &str = "rte";

/// Who holds a runtime directory.
#[derive(Debug, PartialEq, Eq)]
pub enum RuntimeDirState {
    /// No `config` file (never made, or `--no-shconf`).
    Free,
    /// A live process holds the lock on `config`.
    InUse { pid: i32 },
    /// `config` exists and nobody holds it: a dead process's leftovers.
    Stale,
}

/// The runtime directory EAL will use with `eal_args`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeDir {
    pub path: PathBuf,
    pub prefix: String,
}

impl RuntimeDir {
    /// As `eal_create_runtime_dir` computes it: `/var/run` for root, else
    /// `$XDG_RUNTIME_DIR` or `/tmp`; then `dpdk/<file-prefix>`.
    pub fn for_eal_args(eal_args: &[String]) -> RuntimeDir {
        let base = if super::eal::running_as_root() {
            PathBuf::from("/var/run")
        } else {
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"))
        };
        let prefix = file_prefix(eal_args).unwrap_or_else(|| DEFAULT_PREFIX.to_string());
        RuntimeDir { path: base.join("dpdk").join(&prefix), prefix }
    }

    /// Whether a live process holds the directory.
    pub fn state(&self) -> io::Result<RuntimeDirState> {
        let config = self.path.join("config");
        let file = match OpenOptions::new().read(true).write(true).open(&config) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RuntimeDirState::Free),
            Err(e) => return Err(e),
        };
        Ok(match write_lock_holder(&file)? {
            Some(pid) => RuntimeDirState::InUse { pid },
            None => RuntimeDirState::Stale,
        })
    }

    /// Remove every file in the directory (not the directory, not
    /// subdirectories); return their names, sorted.
    pub fn remove_files(&self) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                continue;
            }
            std::fs::remove_file(entry.path())?;
            removed.push(entry.file_name().to_string_lossy().into_owned());
        }
        removed.sort();
        Ok(removed)
    }
}

impl RuntimeDir {
    /// At a clean exit: EAL leaves its files even after `rte_eal_cleanup`,
    /// and only a crash should leave any (for the next start to name).
    /// The files, then the directory if that empties it.
    pub fn remove(&self) -> io::Result<()> {
        match self.remove_files() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        // Not empty (a subdirectory): left as it is.
        let _ = std::fs::remove_dir(&self.path);
        Ok(())
    }
}

/// The pid of another process holding a lock that conflicts with a write
/// lock over the whole of `file`, if any (`fcntl(F_GETLK)`).
fn write_lock_holder(file: &File) -> io::Result<Option<i32>> {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    // SAFETY: the fd is open for the life of `file`; F_GETLK only writes
    // into `lock`, which is a valid, exclusively borrowed flock.
    let ret = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lock.l_type != libc::F_UNLCK as libc::c_short).then_some(lock.l_pid))
}

/// EAL's `--file-prefix NAME` or `--file-prefix=NAME`.
pub fn file_prefix(eal_args: &[String]) -> Option<String> {
    let mut it = eal_args.iter();
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--file-prefix=") {
            return Some(v.to_string());
        }
    }
    None
}

impl std::fmt::Display for RuntimeDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_directory_follows_file_prefix() {
        let base = if super::super::eal::running_as_root() { "/var/run/dpdk" } else { "" };
        let d = RuntimeDir::for_eal_args(&args(&["dlisten", "--no-huge", "--file-prefix", "a1"]));
        assert_eq!(d.prefix, "a1");
        if !base.is_empty() {
            assert_eq!(d.path, PathBuf::from("/var/run/dpdk/a1"));
        }
        assert_eq!(RuntimeDir::for_eal_args(&args(&["dlisten", "--file-prefix=b2"])).prefix, "b2");
        assert_eq!(RuntimeDir::for_eal_args(&args(&["dlisten"])).prefix, "rte");
        assert_eq!(file_prefix(&args(&["--file-prefix"])), None);
    }

    fn temp_dir(tag: &str) -> RuntimeDir {
        let path = std::env::temp_dir().join(format!("dlisten-rtdir-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        RuntimeDir { path, prefix: tag.into() }
    }

    #[test]
    fn a_locked_config_is_in_use_an_unlocked_one_stale() {
        let d = temp_dir("lock");
        assert_eq!(d.state().unwrap(), RuntimeDirState::Free);
        let config = d.path.join("config");
        std::fs::write(&config, [0u8; 64]).unwrap();
        std::fs::write(d.path.join("mp_socket"), b"").unwrap();
        assert_eq!(d.state().unwrap(), RuntimeDirState::Stale);

        // Another process holds an fcntl write lock, as a live primary does.
        let script = format!(
            "import fcntl,sys,time\nf=open({:?},'r+')\nfcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint('locked',flush=True)\nsys.stdin.read()\n",
            config.display().to_string()
        );
        let mut holder = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "locked");
        assert_eq!(d.state().unwrap(), RuntimeDirState::InUse { pid: holder.id() as i32 });

        // Its death (here: end of input) drops the lock: stale again.
        drop(holder.stdin.take());
        holder.wait().unwrap();
        assert_eq!(d.state().unwrap(), RuntimeDirState::Stale);
        assert_eq!(d.remove_files().unwrap(), ["config", "mp_socket"]);
        assert_eq!(d.state().unwrap(), RuntimeDirState::Free);
        std::fs::write(d.path.join("config"), b"").unwrap();
        d.remove().unwrap();
        assert!(!d.path.exists(), "files and directory removed");
        d.remove().unwrap();
    }
}
