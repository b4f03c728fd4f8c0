# shellcheck shell=bash
# Shared helpers for the deploy/ scripts. Source it, do not run it:
#   . "$(dirname "$(readlink -f "$0")")/lib.sh"

# Where nic.sh remembers a device's original kernel driver.
DLISTEN_STATE_DIR=${DLISTEN_STATE_DIR:-/var/lib/dlisten}

dl_prog=$(basename "$0")

dl_info() { printf '%s: %s\n' "$dl_prog" "$*"; }
dl_warn() { printf '%s: warning: %s\n' "$dl_prog" "$*" >&2; }
dl_die() {
    printf '%s: error: %s\n' "$dl_prog" "$*" >&2
    exit 1
}

dl_need_root() {
    [ "$(id -u)" -eq 0 ] || dl_die "must run as root (try: sudo $0 $*)"
}

# dl_need_cmd CMD PACKAGE: fail with a hint when CMD is missing.
dl_need_cmd() {
    command -v "$1" >/dev/null 2>&1 ||
        dl_die "'$1' not found; install the Debian package '$2' (deploy/setup.sh does)"
}

# dl_pkg_installed PKG: true when dpkg has PKG fully installed.
dl_pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# dl_find_cargo: print the path of cargo, also looking in rustup's default
# place (~/.cargo/bin), which sudo and CI often leave out of PATH.
dl_find_cargo() {
    local c
    c=$(command -v cargo 2>/dev/null) && { printf '%s\n' "$c"; return 0; }
    for c in "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" /root/.cargo/bin/cargo; do
        [ -x "$c" ] && { printf '%s\n' "$c"; return 0; }
    done
    return 1
}

# dl_size_kib SIZE: "2G", "512M", "2048K", "1073741824" -> KiB on stdout.
dl_size_kib() {
    local s=$1 n unit
    [[ $s =~ ^([0-9]+)([KkMmGg]?)$ ]] || return 1
    n=${BASH_REMATCH[1]}
    unit=${BASH_REMATCH[2]}
    case $unit in
        K | k) echo "$n" ;;
        M | m) echo $((n * 1024)) ;;
        G | g) echo $((n * 1024 * 1024)) ;;
        *) echo $((n / 1024)) ;; # plain bytes
    esac
}

# dl_pci_normalize ADDR: "03:00.0" -> "0000:03:00.0"; fails on anything else.
dl_pci_normalize() {
    local a=${1,,}
    if [[ $a =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then
        a="0000:$a"
    fi
    [[ $a =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 1
    printf '%s\n' "$a"
}
