//! Every committed fuzz input replayed through its harness on the stable
//! toolchain (no libFuzzer): the seed corpora (`fuzz/corpus/<target>/`)
//! and the inputs that once crashed (`fuzz/regressions/<target>/`). A
//! harness panics on a bug, so this is the fuzzers' regression suite.

use dlisten::testkit::fuzz::{harness, TARGETS};
use std::path::Path;

fn replay(dir: &Path, run: fn(&[u8])) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{} fails its harness", f.display());
    }
    files.len()
}

#[test]
fn every_corpus_and_regression_input_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in TARGETS {
        let run = harness(target).expect("every target has a harness");
        let seeds = replay(&root.join("corpus").join(target), run);
        let crashes = replay(&root.join("regressions").join(target), run);
        println!("{target}: {seeds} corpus inputs, {crashes} regression inputs");
        assert!(seeds > 0, "{target} has no seed corpus in fuzz/corpus/{target}");
    }
}
