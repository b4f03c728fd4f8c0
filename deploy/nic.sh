#!/usr/bin/env bash
# Hand a NIC to DPDK (vfio-pci) and give it back, with Debian's dpdk-devbind.py
# (package `dpdk`).
#
#   nic.sh status             NICs and their drivers, IOMMU state, remembered drivers
#   nic.sh bind PCI [--force] [--noiommu]
#                             bind PCI (0000:03:00.0, 03:00.0 or an interface
#                             name) to vfio-pci. Refuses when its interface is
#                             up with addresses or routes unless --force. The
#                             original driver is kept in /var/lib/dlisten/PCI.driver.
#   nic.sh unbind PCI [--driver NAME]
#                             give PCI back to its original kernel driver (or NAME)
#
# vfio-pci needs an IOMMU: on bare metal enable it on the kernel command line,
# `intel_iommu=on iommu=pt` (Intel; AMD has it on by default) and the firmware's
# VT-d/AMD-Vi. In a VM without a virtual IOMMU, --noiommu sets vfio's
# enable_unsafe_noiommu_mode=1: DMA is then unprotected, acceptable only in a
# throw-away VM. Then pass the device to dlisten's EAL: `-a 0000:03:00.0`.
set -euo pipefail

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit "${1:-2}"
}

# devbind ARGS...: dpdk-devbind.py without lspci's libkmod noise (containers).
devbind() {
    dpdk-devbind.py "$@" 2> >(grep -v 'Unable to load libkmod' >&2)
}

# current_driver PCI: the kernel driver bound to PCI, or "none".
current_driver() {
    local link=/sys/bus/pci/devices/$1/driver
    if [ -e "$link" ]; then
        basename "$(readlink -f "$link")"
    else
        echo none
    fi
}

# resolve_pci ARG: a PCI address, or the device behind an interface name.
resolve_pci() {
    local pci path
    if [ -e "/sys/class/net/$1/device" ]; then
        # A virtio NIC's device is virtioN under the PCI function: walk up.
        path=$(readlink -f "/sys/class/net/$1/device")
        while [ "$path" != / ]; do
            if pci=$(dl_pci_normalize "$(basename "$path")"); then
                echo "$pci"
                return 0
            fi
            path=$(dirname "$path")
        done
        dl_die "interface $1 is not on a PCI device"
    fi
    [ ! -e "/sys/class/net/$1" ] || dl_die "interface $1 is not on a PCI device"
    pci=$(dl_pci_normalize "$1") || dl_die "'$1' is neither a PCI address (0000:03:00.0) nor an interface"
    [ -d "/sys/bus/pci/devices/$pci" ] || dl_die "no PCI device $pci"
    echo "$pci"
}

# iface_in_use IFACE: true when IFACE is up and carries a global address or a
# route other than the IPv6 link-local one every up interface has. This is
# what taking it from the kernel would break (e.g. the SSH session).
iface_in_use() {
    local i=$1
    ip -o link show dev "$i" 2>/dev/null | grep -q '[<,]UP[,>]' || return 1
    [ -n "$(ip -o addr show dev "$i" scope global 2>/dev/null)" ] && return 0
    [ -n "$(ip -4 route show dev "$i" 2>/dev/null)" ] && return 0
    ip -6 route show dev "$i" 2>/dev/null | grep -qv '^fe80::/64' && return 0
    return 1
}

iommu_enabled() {
    [ -n "$(ls -A /sys/kernel/iommu_groups 2>/dev/null)" ]
}

noiommu_param=/sys/module/vfio/parameters/enable_unsafe_noiommu_mode

cmd_status() {
    local f
    [ $# -eq 0 ] || usage
    dl_need_cmd dpdk-devbind.py dpdk
    devbind --status-dev net
    echo
    if iommu_enabled; then
        echo "IOMMU: on ($(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 | wc -l) groups)"
    elif [ "$(cat "$noiommu_param" 2>/dev/null)" = Y ]; then
        echo "IOMMU: off; vfio no-IOMMU mode is on (unsafe, VMs only)"
    else
        echo "IOMMU: off (vfio-pci needs intel_iommu=on iommu=pt, or nic.sh bind --noiommu in a VM)"
    fi
    for f in "$DLISTEN_STATE_DIR"/*.driver; do
        [ -e "$f" ] || continue
        echo "bound by nic.sh: $(basename "$f" .driver) (original driver: $(<"$f"))"
    done
}

cmd_bind() {
    local arg="" force=0 noiommu=0 pci drv i
    while [ $# -gt 0 ]; do
        case $1 in
            --force) force=1; shift ;;
            --noiommu) noiommu=1; shift ;;
            -*) dl_die "unknown option $1" ;;
            *) [ -z "$arg" ] || dl_die "one device only"; arg=$1; shift ;;
        esac
    done
    [ -n "$arg" ] || dl_die "usage: nic.sh bind PCI [--force] [--noiommu]"
    dl_need_root bind "$arg"
    dl_need_cmd dpdk-devbind.py dpdk
    dl_need_cmd ip iproute2
    pci=$(resolve_pci "$arg")
    drv=$(current_driver "$pci")
    if [ "$drv" = vfio-pci ]; then
        dl_info "$pci is already bound to vfio-pci"
        return 0
    fi

    for i in "/sys/bus/pci/devices/$pci/net/"*; do
        [ -e "$i" ] || continue
        i=$(basename "$i")
        if iface_in_use "$i"; then
            [ "$force" -eq 1 ] ||
                dl_die "$pci is $i, which is up with addresses or routes; taking it from the kernel cuts them (use --force if you mean it)"
            dl_warn "$i is in use; binding anyway (--force)"
        fi
    done

    dl_need_cmd modprobe kmod
    if ! iommu_enabled; then
        [ "$noiommu" -eq 1 ] ||
            dl_die "no IOMMU: boot with intel_iommu=on iommu=pt (and VT-d on in the firmware), or in a VM without vIOMMU use --noiommu"
        modprobe vfio enable_unsafe_noiommu_mode=1 || dl_die "modprobe vfio failed"
        # Already loaded: modprobe ignores parameters, set it directly.
        echo 1 >"$noiommu_param" || dl_die "cannot enable vfio no-IOMMU mode (kernel without CONFIG_VFIO_NOIOMMU?)"
        dl_warn "vfio no-IOMMU mode on: device DMA is unprotected"
    fi
    modprobe vfio-pci || dl_die "modprobe vfio-pci failed"

    mkdir -p "$DLISTEN_STATE_DIR"
    echo "$drv" >"$DLISTEN_STATE_DIR/$pci.driver"
    local args=(-b vfio-pci)
    [ "$force" -eq 0 ] || args+=(--force)
    if ! devbind "${args[@]}" "$pci"; then
        rm -f "$DLISTEN_STATE_DIR/$pci.driver"
        dl_die "dpdk-devbind.py could not bind $pci to vfio-pci"
    fi
    [ "$(current_driver "$pci")" = vfio-pci ] || dl_die "$pci is not on vfio-pci after binding"
    dl_info "$pci bound to vfio-pci (was $drv); use it with EAL's -a $pci"
}

cmd_unbind() {
    local arg="" drv="" pci state
    while [ $# -gt 0 ]; do
        case $1 in
            --driver) drv=${2:?--driver needs a value}; shift 2 ;;
            -*) dl_die "unknown option $1" ;;
            *) [ -z "$arg" ] || dl_die "one device only"; arg=$1; shift ;;
        esac
    done
    [ -n "$arg" ] || dl_die "usage: nic.sh unbind PCI [--driver NAME]"
    dl_need_root unbind "$arg"
    dl_need_cmd dpdk-devbind.py dpdk
    pci=$(resolve_pci "$arg")
    state=$DLISTEN_STATE_DIR/$pci.driver
    if [ -z "$drv" ]; then
        if [ -r "$state" ]; then
            drv=$(<"$state")
        elif [ "$(current_driver "$pci")" != vfio-pci ]; then
            dl_info "$pci is on $(current_driver "$pci"), not vfio-pci: nothing to do"
            return 0
        else
            dl_die "no record of $pci's original driver; name it: nic.sh unbind $pci --driver NAME"
        fi
    fi
    if [ "$drv" = none ]; then
        devbind -u "$pci" || dl_die "dpdk-devbind.py could not unbind $pci"
    else
        # dpdk-devbind.py refuses a driver whose module is not loaded.
        dl_need_cmd modprobe kmod
        modprobe "$drv" || dl_die "modprobe $drv failed"
        devbind -b "$drv" "$pci" || dl_die "dpdk-devbind.py could not bind $pci to $drv (is dlisten still running?)"
    fi
    rm -f "$state"
    dl_info "$pci is back on $drv"
    local i
    for i in "/sys/bus/pci/devices/$pci/net/"*; do
        [ -e "$i" ] && dl_info "interface: $(basename "$i")"
    done
    return 0
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1
    shift
    case $cmd in
        status) cmd_status "$@" ;;
        bind) cmd_bind "$@" ;;
        unbind) cmd_unbind "$@" ;;
        -h | --help | help) usage 0 ;;
        *) dl_die "unknown command '$cmd' (status, bind, unbind)" ;;
    esac
}

# Sourcing the file (for tests) defines the functions without running main.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
