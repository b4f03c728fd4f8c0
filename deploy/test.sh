#!/usr/bin/env bash
# The whole test suite, as root on Debian 12: installs what it needs (deploy/setup.sh),
# then unit, property and deterministic engine tests, the loom model check of the
# accept queue, the end-to-end tests that run real Linux peers against dlisten
# through net_tap inside network namespaces the tests create (198.18.0.0/15 only),
# and the kernel differential suite (dlisten against the live kernel).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "deploy/test.sh: run as root (the end-to-end tests create network namespaces and tap devices)" >&2
  exit 1
fi

./deploy/setup.sh

echo "== cargo test (unit, property, engine scripts, end-to-end)"
# End-to-end tests share 2 cores with busy-polling workers: one test thread.
cargo test --lib --bins --tests --examples -- --test-threads=1

echo "== differential: dlisten serve and the live Linux kernel, frame by frame (tests/differential)"
# The same frames to a kernel listener and to dlisten (net_af_packet on a
# veth), each in a namespace of its own; about 170 s. cargo test built the
# binary; the build is a no-op then.
/usr/bin/python3 -m unittest discover -s tests/differential -p 'test_*.py'
cargo build --bin dlisten
timeout 600 /usr/bin/python3 tests/differential/run.py --dlisten target/debug/dlisten

echo "== doc examples, and each benchmark run once (criterion's test mode)"
cargo test --doc
cargo test --bench listen_path

echo "== loom: accept queue and blocking accept model check"
if grep -rq 'cfg(loom)' src; then
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test --release --lib -- listen::accept_queue:: sync::mpmc_ring:: api::accept:: --test-threads=1
fi
