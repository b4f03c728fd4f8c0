#!/usr/bin/env bash
# Install what dlisten needs to build, run and be tested on Debian 12 (bookworm).
#
#   ./deploy/setup.sh        (as root)
#
# Idempotent and quiet when everything is already there. Downloads nothing
# except Debian packages through apt, runs `apt-get update` only when a package
# is missing, loads no kernel module. Exits non-zero with a message on failure.
set -euo pipefail

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

# Build: DPDK 22.11 headers and libraries (libdpdk-dev pulls every PMD library,
# net_tap, net_memif, net_af_packet, ...), pkg-config, and clang/libclang for
# bindgen. Run: dpdk (dpdk-hugepages.py, dpdk-devbind.py). Tests and demo: real
# Linux clients and packet tools in network namespaces. net_af_xdp: libxdp1 and
# libbpf1 (its PMD links them; libdpdk-dev pulls them in, named here because the
# e2e tests and bench/compare.sh need them) and ethtool (a veth peer's transmit
# checksum offload must be off). Benchmarks: nginx-light, the kernel's HTTP
# server in bench/compare.sh.
# The differential suite also turns the veth offloads off with ethtool (checksums
# really checked). Prometheus's Python client: its text-format parser reads what
# `serve --metrics` serves in the e2e tests. slowhttptest: the slow-client e2e
# test (slowloris against the http timeouts and the per-source cap). bird2:
# the fleet test parses deploy/fleet/bird.conf with `bird -p` (installing it
# starts no daemon in a container; on a host, `systemctl disable --now bird`
# unless it announces the service address). dpdk-dev: dpdk-telemetry.py, the
# client of EAL's telemetry socket, which the telemetry test runs.
packages=(
    libdpdk-dev dpdk dpdk-dev pkg-config clang libclang-dev build-essential
    iproute2 iputils-ping hping3 netcat-openbsd curl wrk
    python3 python3-scapy python3-prometheus-client tcpdump procps
    libxdp1 libbpf1 ethtool nginx-light
    slowhttptest bird2
)

dl_need_root "$@"
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
    dl_die "apt-get/dpkg-query not found: this script is for Debian 12"
fi
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
        dl_warn "written for Debian 12, this is ${PRETTY_NAME:-unknown}; trying anyway"
    fi
fi

export DEBIAN_FRONTEND=noninteractive
updated=0
apt_update() {
    [ "$updated" -eq 1 ] && return 0
    dl_info "apt-get update"
    apt-get update -qq || dl_die "apt-get update failed (network? /etc/apt/sources.list?)"
    updated=1
}

# apt_install PKG...: install the given packages (updating the lists first).
apt_install() {
    apt_update
    dl_info "installing: $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
        dl_die "apt-get install failed for: $*"
}

missing=()
for p in "${packages[@]}"; do
    dl_pkg_installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
    # bench/compare.sh runs its own nginx inside a namespace; the service the
    # package just started in the host namespace is not wanted (an nginx that
    # was there before is left alone).
    if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
fi

# Rust. CI and developers use rustup's toolchain; only when cargo is absent do
# we fall back to Debian's. Debian 12's plain `cargo`/`rustc` (1.63) is older
# than our rust-version, so we take `cargo-web`, Debian's newer toolchain
# (>= 1.85, "Provides: cargo"), which conflicts with Debian's rustup package
# but not with a rustup install in ~/.cargo.
if ! cargo=$(dl_find_cargo); then
    apt_install cargo-web
    cargo=$(dl_find_cargo) || dl_die "cargo-web installed but cargo is still not found"
    dl_info "note: installed Debian's Rust toolchain (cargo-web: $("$cargo" --version))"
    dl_info "note: for another toolchain, remove it first (apt-get remove cargo-web rustc-web)"
elif ! command -v cargo >/dev/null 2>&1; then
    dl_info "note: cargo is at $cargo but not on PATH; add $(dirname "$cargo") to PATH"
fi

# The crate's minimum Rust version (only when run from the source tree).
if [ -r "$here/../Cargo.toml" ]; then
    want=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$here/../Cargo.toml")
    rustc=$(dirname "$cargo")/rustc
    [ -x "$rustc" ] || rustc=rustc
    have=$("$rustc" --version 2>/dev/null | awk '{print $2}') ||
        dl_die "rustc not found next to $cargo"
    if [ -n "$want" ] && [ "$(printf '%s\n%s\n' "$want" "${have%%-*}" | sort -V | head -1)" != "$want" ]; then
        dl_die "rustc $have is older than the crate's rust-version $want; install a newer toolchain"
    fi
fi

# DPDK checks what the build needs from its pkg-config file.
pkg-config --exists libdpdk ||
    dl_die "pkg-config does not find libdpdk although libdpdk-dev is installed"

# net_tap opens /dev/net/tun; minimal containers lack the node. Opening it
# autoloads the tun module where needed, so no modprobe here.
if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    mknod /dev/net/tun c 10 200 || dl_die "cannot create /dev/net/tun (mknod failed)"
    chmod 0666 /dev/net/tun
    dl_info "created /dev/net/tun"
fi
