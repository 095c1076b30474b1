# shellcheck shell=bash source-path=SCRIPTDIR
# Sourced by the Vagrant lab's provisioning and boot-time scripts: the lab's
# addresses (vagrant/lab.env) and helpers to find the lab NIC, which Vagrant
# gives a MAC derived from its address (see lab.env), whatever name the
# guest's kernel gives it.

LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=../lab.env
. "$LAB_ROOT/vagrant/lab.env"

log() { echo "${PROG:-ferrovs-lab}: $*" >&2; }
die() { echo "${PROG:-ferrovs-lab}: error: $*" >&2; exit 1; }

# mac_of IP: 02:00:c6:12:SEG:HOST, as scripts/lab.sh and the Vagrantfile.
mac_of() {
    local ip=$1
    IFS=. read -r _ _ s h <<<"$ip"
    printf '02:00:c6:12:%02x:%02x' "$s" "$h"
}

# iface_of_mac MAC: the network interface with that MAC, or nothing.
iface_of_mac() {
    local f
    for f in /sys/class/net/*/address; do
        [ "$(cat "$f" 2>/dev/null)" = "$1" ] && { basename "$(dirname "$f")"; return 0; }
    done
    return 1
}

# wait_iface_of_mac MAC SECONDS: iface_of_mac, waiting for the NIC to appear.
wait_iface_of_mac() {
    for _ in $(seq 1 $(($2 * 10))); do
        iface_of_mac "$1" && return 0
        sleep 0.1
    done
    return 1
}

# pci_of_iface IFACE: the NIC's PCI address (0000:00:06.0). A virtio NIC's
# device is the virtio device; its parent is the PCI function.
pci_of_iface() {
    local dev
    dev=$(readlink -f "/sys/class/net/$1/device") || return 1
    case ${dev##*/} in virtio*) dev=${dev%/*} ;; esac
    [[ ${dev##*/} =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 1
    echo "${dev##*/}"
}

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root"; }

# apt_install PKG...: installs what is missing.
apt_install() {
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
