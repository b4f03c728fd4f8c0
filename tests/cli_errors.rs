//! Bad command lines and bad `--config` files, through the binary: each is
//! one line on stderr after `dlisten: `, exit status 2, nothing on stdout,
//! no panic, no backtrace; and nothing starts (no EAL: no root needed).

use std::process::Command;

fn dlisten(argv: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dlisten"))
        .args(argv)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run dlisten");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// `argv` is refused in one line containing `says`.
fn refused(argv: &[&str], says: &str) {
    let (code, stdout, stderr) = dlisten(argv);
    assert_eq!(code, Some(2), "{argv:?}: {stderr}");
    assert_eq!(stdout, "", "{argv:?}");
    assert_eq!(stderr.lines().count(), 1, "{argv:?}: not one line:\n{stderr}");
    assert!(stderr.starts_with("dlisten: ") && stderr.ends_with('\n'), "{argv:?}: {stderr}");
    assert!(stderr.contains(says), "{argv:?}: {stderr:?} does not say {says:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{argv:?}: {stderr}");
}

#[test]
fn bad_flags_are_one_line_and_status_2() {
    let a = ["serve", "--addr", "198.18.0.1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { a.iter().copied().chain(extra.iter().copied()).collect() };
    refused(&["srve"], "unrecognized subcommand 'srve' (did you mean 'serve'?)");
    refused(&[], "a subcommand is required: serve, stats, set, capture, flood (see dlisten --help)");
    refused(&with(&["--wrokers", "2"]), "unexpected argument '--wrokers' found (did you mean '--workers'?)");
    refused(&with(&["--workers", "0"]), "0 is not in 1..=128 (see dlisten serve --help)");
    refused(&with(&["--workers", "many"]), "invalid value 'many' for '--workers <WORKERS>'");
    refused(&with(&["--listen", "198.18.0.1"]), "invalid value '198.18.0.1' for '--listen <ADDR:PORT>'");
    refused(&["serve", "--addr", "198.18.0.300"], "invalid value '198.18.0.300' for '--addr <IP>'");
    refused(&with(&["--syncookies", "3"]), "3 is not in 0..=2");
    refused(&with(&["--local-port-range", "20-10"]), "need 1 <= LOW <= HIGH");
    refused(&with(&["--tfo-key", "nothex"]), "--tfo-key");
    refused(&with(&["--app", "htp"]), "(did you mean 'http'?)");
    refused(&with(&["--rx-desc", "70000"]), "invalid value '70000' for '--rx-desc <RX_DESC>'");
    refused(&with(&["--workers"]), "a value is required for '--workers <WORKERS>'");
    refused(&["stats", "--bogus"], "unexpected argument '--bogus' found");
    refused(&["flood", "--rate", "fast"], "invalid value 'fast'");
    refused(&["capture"], "the following required arguments were not provided: --write <FILE>");
    refused(&["capture", "-w", "/nonexistent/x", "--direction", "up"], "rx, tx or both");
    refused(&["capture", "-w", "/nonexistent/x", "--duration=0"], "--duration 0: expected seconds in (0, 3600]");
    refused(&["capture", "-w", "/nonexistent/x", "--count", "0"], "0 is not in 1..=100000000");
}

#[test]
fn bad_configurations_are_one_line_and_status_2() {
    refused(&["serve", "--listen", "198.18.0.1:80"], "no address to own: pass --addr");
    refused(&["serve", "--addr", "ff02::1"], "--addr ff02::1: not an address a host owns on a link");
    refused(&["serve", "--addr", "198.18.0.1", "--mbufs", "100"], "--mbufs 100 is too few for --rx-desc 1024");
    refused(&["serve", "--addr", "198.18.0.1", "--workers", "2", "--cores", "1"], "--cores names 1 core(s) for --workers 2");
    refused(&["serve", "--config", "/nonexistent/dlisten.toml"], "--config /nonexistent/dlisten.toml: ");
    let path = std::env::temp_dir().join(format!("dlisten-cli-errors-{}.toml", std::process::id()));
    std::fs::write(&path, "addr = [\"198.18.0.1\"]\nworkers = 0\n").unwrap();
    let p = path.to_str().unwrap();
    refused(&["serve", "--config", p], ":2: workers: invalid value '0'");
    std::fs::write(&path, "addr = [\"198.18.0.1\"]\nworkerz = 1\n").unwrap();
    refused(&["serve", "--config", p], ":2: unknown key `workerz`");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_good_command_line_passes_the_same_way() {
    // What the refusals above are measured against: --check makes the
    // configuration and exits 0 without starting.
    let (code, stdout, stderr) = dlisten(&["serve", "--addr", "198.18.0.1", "--listen", "198.18.0.1:80", "--check"]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (Some(0), "dlisten: configuration ok\n", ""));
    let (code, stdout, _) = dlisten(&["serve", "--help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("--workers"), "{stdout}");
}
