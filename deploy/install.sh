#!/usr/bin/env bash
# Build dlisten (release) and install it with its systemd unit and scripts.
#
#   ./deploy/install.sh [--no-build]      (as root, from a checkout)
#
#   /usr/local/bin/dlisten                 the binary
#   /etc/systemd/system/dlisten.service    the unit
#   /etc/dlisten/dlisten.toml              the example configuration and the unit's
#   /etc/dlisten/dlisten.env               environment, each only when absent (else
#                                          as dlisten.toml.example, dlisten.env.example)
#   /usr/local/lib/dlisten/                setup.sh, hugepages.sh, nic.sh, lib.sh
#   /usr/local/share/doc/dlisten/README.md
#
# --no-build installs the binary already in target/release (e.g. built as your
# own user with `cargo build --release`, so that target/ stays yours).
# DESTDIR=/some/dir installs under that directory instead (packaging, tests):
# no root needed, systemd left alone. Enables and starts nothing.
set -euo pipefail

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
repo=$(dirname "$here")

build=1
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) build=0; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) dl_die "unknown argument $1 (only --no-build)" ;;
    esac
done

dest=${DESTDIR:-}
[ -n "$dest" ] || dl_need_root "$@"

bin=${CARGO_TARGET_DIR:-$repo/target}/release/dlisten
if [ "$build" -eq 1 ]; then
    cargo=$(dl_find_cargo) || dl_die "cargo not found; run deploy/setup.sh first"
    dl_info "building dlisten (cargo build --release)"
    (cd "$repo" && "$cargo" build --release --bin dlisten) || dl_die "cargo build --release failed"
fi
[ -x "$bin" ] || dl_die "$bin not found; build it (cargo build --release) or drop --no-build"

install -D -m 0755 "$bin" "$dest/usr/local/bin/dlisten"
install -D -m 0644 "$here/dlisten.service" "$dest/etc/systemd/system/dlisten.service"
install -d -m 0755 "$dest/etc/dlisten"
for f in dlisten.toml dlisten.env; do
    if [ -e "$dest/etc/dlisten/$f" ]; then
        install -m 0644 "$here/$f" "$dest/etc/dlisten/$f.example"
        dl_info "kept your /etc/dlisten/$f; the new example is $f.example"
    else
        install -m 0644 "$here/$f" "$dest/etc/dlisten/$f"
    fi
done
install -d -m 0755 "$dest/usr/local/lib/dlisten"
install -m 0755 "$here/setup.sh" "$here/hugepages.sh" "$here/nic.sh" "$dest/usr/local/lib/dlisten/"
install -m 0644 "$here/lib.sh" "$dest/usr/local/lib/dlisten/"
install -D -m 0644 "$repo/README.md" "$dest/usr/local/share/doc/dlisten/README.md"

if [ -z "$dest" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || dl_warn "systemctl daemon-reload failed"
fi

dl_info "installed $("$dest/usr/local/bin/dlisten" --version 2>/dev/null || echo dlisten)"
cat <<EOT
next steps:
  /usr/local/lib/dlisten/hugepages.sh reserve 2G
  /usr/local/lib/dlisten/nic.sh bind 0000:03:00.0
  edit /etc/dlisten/dlisten.toml (addresses, listeners, cores, eal's -a PCI, metrics)
  dlisten serve --config /etc/dlisten/dlisten.toml --check
  systemctl enable --now dlisten && journalctl -u dlisten -f
EOT
