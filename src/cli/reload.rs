//! SIGHUP and `dlisten set` for `serve`: the configuration made anew the
//! way the command line made it at start (the `--config` file, the command
//! line over it, and the keys set since, over both), compared key by key
//! with the running one. A key outside [`LIVE_KEYS`] that would change is
//! refused by name, and then nothing changes.

use super::config_file::{self, FileFlag, NOT_IN_FILE};
use super::serve::{merge_argv, resolve, serve_command, Effective, ServeArgsError};
use crate::serve::{Change, Reconfigure, Reconfigured, LIVE_KEYS};
use std::ffi::OsString;
use std::path::PathBuf;

pub(super) struct Reloader {
    /// (flag id, raw values) the command line gave.
    command_line: Vec<(String, Vec<OsString>)>,
    config: Option<PathBuf>,
    /// The file as last read.
    file: Vec<FileFlag>,
    /// `dlisten set` since the file was last read: (key, value).
    sets: Vec<(String, String)>,
    /// Every key's values in the running configuration.
    running: Effective,
}

impl Reloader {
    /// The reloader of a `serve` command line (what SIGHUP and `dlisten set`
    /// make the configuration anew with).
    pub fn of(args: &super::ServeArgs) -> Result<Reloader, ServeArgsError> {
        let (command_line, config) = args.sources();
        Reloader::new(command_line, config)
    }

    pub fn new(command_line: Vec<(String, Vec<OsString>)>, config: Option<PathBuf>) -> Result<Reloader, ServeArgsError> {
        let file = match &config {
            Some(path) => config_file::read(path, &serve_command())?,
            None => Vec::new(),
        };
        let mut r = Reloader { command_line, config, file, sets: Vec::new(), running: Effective::new() };
        let (_, running) = r.make(&r.file, &r.sets).map_err(|message| ServeArgsError::Merge {
            path: r.config.clone().unwrap_or_default(),
            message,
        })?;
        r.running = running;
        Ok(r)
    }

    fn make(
        &self,
        file: &[FileFlag],
        sets: &[(String, String)],
    ) -> Result<(crate::serve::ServeConfig, Effective), String> {
        let cmd = serve_command();
        resolve(&cmd, merge_argv(&cmd, file, &self.command_line, sets))
    }

    /// The keys that differ from the running configuration; an error
    /// naming those that cannot change live.
    fn changes(&self, new: &Effective) -> Result<Vec<Change>, String> {
        let mut changes = Vec::new();
        let mut fixed = Vec::new();
        for (key, to) in new {
            let from = self.running.get(key);
            if from == Some(to) {
                continue;
            }
            let from = from.map(|v| spell(v)).unwrap_or_default();
            let change = Change { key: key.clone(), from, to: spell(to) };
            if LIVE_KEYS.contains(&key.as_str()) {
                changes.push(change);
            } else {
                fixed.push(change);
            }
        }
        if fixed.is_empty() {
            return Ok(changes);
        }
        let named: Vec<String> = fixed.iter().map(|c| format!("{} ({:?} -> {:?})", c.key, c.from, c.to)).collect();
        Err(format!("{} cannot change while serving: restart dlisten for that; {}", named.join(", "), live_keys()))
    }
}

fn live_keys() -> String {
    format!("what can: {}", LIVE_KEYS.join(", "))
}

fn spell(values: &[OsString]) -> String {
    values.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

impl Reconfigure for Reloader {
    fn reload(&mut self) -> Result<Reconfigured, String> {
        let Some(path) = self.config.clone() else { return Err("no --config file to read again".into()) };
        let file = config_file::read(&path, &serve_command()).map_err(|e| e.to_string())?;
        let (config, running) = self.make(&file, &[]).map_err(|e| format!("--config {}: {e}", path.display()))?;
        let changed = self.changes(&running).map_err(|e| format!("--config {}: {e}", path.display()))?;
        (self.file, self.running) = (file, running);
        self.sets.clear();
        Ok(Reconfigured { config, changed })
    }

    fn set(&mut self, key: &str, value: &str) -> Result<Reconfigured, String> {
        let cmd = serve_command();
        let known = key == config_file::EAL_ID
            || (!NOT_IN_FILE.contains(&key) && cmd.get_arguments().any(|a| a.get_long() == Some(key)));
        if !known {
            return Err(format!("unknown key {key:?} (the keys are the `dlisten serve` flags without the dashes; {})", live_keys()));
        }
        if !LIVE_KEYS.contains(&key) {
            return Err(format!("{key} cannot change while serving: restart dlisten for that; {}", live_keys()));
        }
        let mut sets = self.sets.clone();
        sets.retain(|(k, _)| k != key);
        sets.push((key.to_string(), value.to_string()));
        let (config, running) = self.make(&self.file, &sets)?;
        let changed = self.changes(&running)?;
        (self.sets, self.running) = (sets, running);
        Ok(Reconfigured { config, changed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn reloader(argv: &[&str]) -> Reloader {
        let cli = Cli::try_parse_from(["dlisten", "serve"].iter().chain(argv)).unwrap();
        let Command::Serve(a) = cli.command else { panic!("not serve") };
        Reloader::of(&a).unwrap()
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dlisten-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dlisten.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn set_changes_one_live_key_and_refuses_the_rest_by_name() {
        let mut r = reloader(&["--addr", "198.18.0.1", "--listen", "198.18.0.1:80", "--somaxconn", "1024"]);
        let got = r.set("somaxconn", "512").unwrap();
        assert_eq!(got.changed, vec![Change { key: "somaxconn".into(), from: "1024".into(), to: "512".into() }]);
        assert_eq!(got.config.sysctls.somaxconn, 512);
        // The same value again: nothing to change.
        assert!(r.set("somaxconn", "512").unwrap().changed.is_empty());
        let got = r.set("http-body", "new body\n").unwrap();
        assert_eq!(got.changed[0].key, "http-body");
        assert_eq!(got.config.sysctls.somaxconn, 512, "earlier sets stay");
        let got = r.set("backlog", "64").unwrap();
        assert_eq!(got.config.listens[0].backlog, 64);

        let e = r.set("workers", "2").unwrap_err();
        assert!(e.starts_with("workers cannot change while serving: restart dlisten"), "{e}");
        assert!(e.contains("what can: somaxconn,"), "{e}");
        let e = r.set("listen", "198.18.0.1:81").unwrap_err();
        assert!(e.starts_with("listen cannot change"), "{e}");
        let e = r.set("wrokers", "2").unwrap_err();
        assert!(e.starts_with("unknown key \"wrokers\""), "{e}");
        assert!(r.set("config", "/x").unwrap_err().starts_with("unknown key"));
        let e = r.set("syncookies", "7").unwrap_err();
        assert!(e.contains("7 is not in 0..=2"), "{e}");
        // A refused value changed nothing.
        assert!(r.set("syncookies", "1").unwrap().changed.is_empty());
        assert!(r.reload().unwrap_err().contains("no --config file"));
    }

    #[test]
    fn reload_reads_the_file_again_under_the_command_line() {
        let path = temp_file(
            "reload",
            "addr = [\"198.18.0.1\"]\nlisten = [\"198.18.0.1:80\"]\nhttp-body = \"one\\n\"\nsomaxconn = 100\n",
        );
        let p = path.display().to_string();
        let mut r = reloader(&["--config", &p, "--synack-retries", "3"]);
        std::fs::write(&path, "addr = [\"198.18.0.1\"]\nlisten = [\"198.18.0.1:80\"]\nhttp-body = \"two\\n\"\nsynack-retries = 9\n")
            .unwrap();
        let got = r.reload().unwrap();
        let keys: Vec<&str> = got.changed.iter().map(|c| c.key.as_str()).collect();
        // somaxconn went back to its default; the command line's synack-retries wins.
        assert_eq!(keys, vec!["http-body", "somaxconn"], "{:?}", got.changed);
        assert_eq!(got.config.sysctls.somaxconn, 4096);
        assert_eq!(got.config.sysctls.tcp_synack_retries, 3);

        // A set is undone by the next reload (the file is the truth).
        r.set("somaxconn", "10").unwrap();
        let got = r.reload().unwrap();
        assert_eq!(got.changed, vec![Change { key: "somaxconn".into(), from: "10".into(), to: "4096".into() }]);

        // A fixed key changed in the file: refused by name, nothing applied.
        std::fs::write(&path, "addr = [\"198.18.0.1\"]\nlisten = [\"198.18.0.1:81\"]\nhttp-body = \"three\\n\"\nworkers = 2\n").unwrap();
        let e = r.reload().unwrap_err();
        assert!(e.contains("listen (\"198.18.0.1:80\" -> \"198.18.0.1:81\"), workers (\"1\" -> \"2\") cannot change while serving"), "{e}");
        // A broken file: its line, nothing applied.
        std::fs::write(&path, "somaxconn = \"many\"\n").unwrap();
        let e = r.reload().unwrap_err();
        assert!(e.contains(":1: somaxconn"), "{e}");
        // Put right: only what differs from the running configuration.
        std::fs::write(&path, "addr = [\"198.18.0.1\"]\nlisten = [\"198.18.0.1:80\"]\nhttp-body = \"three\\n\"\n").unwrap();
        let got = r.reload().unwrap();
        assert_eq!(got.changed, vec![Change { key: "http-body".into(), from: "two\n".into(), to: "three\n".into() }]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
