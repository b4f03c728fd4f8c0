#!/usr/bin/env bash
# Hugepages for dlisten on a bare-metal server, with Debian's dpdk-hugepages.py
# (package `dpdk`).
#
#   hugepages.sh reserve SIZE [--pagesize 2M|1G] [--node N]
#                         reserve SIZE of hugepages and mount hugetlbfs
#                         (dpdk-hugepages.py -p 2M --setup SIZE: clear, unmount,
#                         reserve, mount on /dev/hugepages). On a NUMA machine
#                         SIZE is reserved on every node unless --node is given.
#   hugepages.sh show     print the reservation and the hugetlbfs mounts
#   hugepages.sh clear    release every reserved hugepage (fails while a DPDK
#                         process still holds some)
#   hugepages.sh check [SIZE|none]
#                         exit 0 when hugetlbfs is mounted and at least SIZE
#                         (default: one page) is reserved; `none` always passes
#                         (EAL runs with --no-huge). Used by dlisten.service's
#                         ExecStartPre. Needs no root.
#
# A runtime reservation is lost at reboot, and 1G pages rarely fit once memory
# is fragmented. For both, reserve at boot on the kernel command line, e.g. in
# /etc/default/grub:
#   GRUB_CMDLINE_LINUX="default_hugepagesz=1G hugepagesz=1G hugepages=4"
# then `update-grub` and reboot; systemd mounts hugetlbfs on /dev/hugepages by
# itself. 1G pages need the CPU flag pdpe1gb (grep pdpe1gb /proc/cpuinfo).
set -euo pipefail

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit "${1:-2}"
}

# reserved_kib: KiB of hugepages reserved, every page size summed.
# free_kib: KiB of those not in use. Both from /sys (all nodes summed).
sum_pages_kib() {
    local field=$1 dir kb n total=0
    for dir in /sys/kernel/mm/hugepages/hugepages-*kB; do
        [ -r "$dir/$field" ] || continue
        kb=${dir##*/hugepages-}
        kb=${kb%kB}
        n=$(<"$dir/$field")
        total=$((total + n * kb))
    done
    echo "$total"
}

hugetlbfs_mounts() {
    awk '$3 == "hugetlbfs" { print $2 }' /proc/mounts
}

cmd_reserve() {
    local size="" pagesize=2M node="" args size_kib page_kib
    while [ $# -gt 0 ]; do
        case $1 in
            --pagesize | -p) pagesize=${2:?--pagesize needs a value}; shift 2 ;;
            --node | -n) node=${2:?--node needs a value}; shift 2 ;;
            -*) dl_die "unknown option $1" ;;
            *) [ -z "$size" ] || dl_die "one SIZE only"; size=$1; shift ;;
        esac
    done
    [ -n "$size" ] || dl_die "usage: hugepages.sh reserve SIZE [--pagesize 2M|1G] [--node N]"
    size_kib=$(dl_size_kib "$size") || dl_die "bad SIZE '$size' (examples: 512M, 2G)"
    case $pagesize in
        2M | 2m) pagesize=2M page_kib=2048 ;;
        1G | 1g)
            pagesize=1G page_kib=1048576
            grep -qw pdpe1gb /proc/cpuinfo || dl_die "this CPU has no 1G pages (no pdpe1gb flag)"
            ;;
        *) dl_die "--pagesize must be 2M or 1G" ;;
    esac
    if [ "$size_kib" -le 0 ] || [ $((size_kib % page_kib)) -ne 0 ]; then
        dl_die "SIZE $size is not a positive multiple of the page size $pagesize"
    fi
    dl_need_root "reserve $size"
    dl_need_cmd dpdk-hugepages.py dpdk
    args=(-p "$pagesize" --setup "$size")
    [ -z "$node" ] || args+=(-n "$node")
    # dpdk-hugepages.py itself fails when the kernel grants fewer pages than asked.
    dpdk-hugepages.py "${args[@]}" ||
        dl_die "reservation failed: pages in use by a DPDK process, or memory too fragmented (reserve at boot, see the top of this script)"
    # dpdk-hugepages.py ignores a failed mount.
    [ -n "$(hugetlbfs_mounts)" ] || dl_die "pages reserved but hugetlbfs could not be mounted"
    dpdk-hugepages.py --show
}

cmd_show() {
    dl_need_cmd dpdk-hugepages.py dpdk
    dpdk-hugepages.py --show
    printf 'reserved %s KiB, free %s KiB\n' "$(sum_pages_kib nr_hugepages)" "$(sum_pages_kib free_hugepages)"
}

cmd_clear() {
    [ $# -eq 0 ] || usage
    dl_need_root clear
    dl_need_cmd dpdk-hugepages.py dpdk
    dpdk-hugepages.py --clear ||
        dl_die "could not release every page: a DPDK process (dlisten?) still holds some; stop it first"
}

cmd_check() {
    local size=${1:-} want_kib=1 have_kib free_kib
    case $size in
        none | no | 0) return 0 ;;
        "") ;;
        *) want_kib=$(dl_size_kib "$size") || dl_die "bad SIZE '$size' (examples: 512M, 2G)" ;;
    esac
    [ -n "$(hugetlbfs_mounts)" ] ||
        dl_die "hugetlbfs is not mounted; run: hugepages.sh reserve ${size:-2G}"
    have_kib=$(sum_pages_kib nr_hugepages)
    [ "$have_kib" -ge "$want_kib" ] ||
        dl_die "only $have_kib KiB of hugepages reserved, want ${size:-some}; run: hugepages.sh reserve ${size:-2G}"
    free_kib=$(sum_pages_kib free_hugepages)
    # Pages held by another DPDK process (or a stale file prefix) are not free;
    # EAL reclaims its own prefix's files at start, so only warn.
    [ "$free_kib" -ge "$want_kib" ] ||
        dl_warn "only $free_kib KiB of the reserved hugepages are free"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
    reserve) cmd_reserve "$@" ;;
    show) cmd_show "$@" ;;
    clear) cmd_clear "$@" ;;
    check) cmd_check "$@" ;;
    -h | --help | help) usage 0 ;;
    *) dl_die "unknown command '$cmd' (reserve, show, clear, check)" ;;
esac
