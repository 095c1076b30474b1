#!/usr/bin/env bash
# Provisions director N (1 or 2) of the Vagrant lab (run by the Vagrantfile,
# as root, from the synced folder /vagrant):
#
#   director.sh N
#
# 1. Debian packages: DPDK 22.11 (libdpdk-dev, dpdk: the virtio PMD and
#    dpdk-devbind.py), libclang-dev and a C toolchain for the bindings.
# 2. A Rust toolchain: cargo from PATH or /opt/rust; else, unless
#    FERROVS_RUSTUP=0, rustup's installer (downloaded from the internet, into
#    /opt/rust, the stable toolchain, minimal profile).
# 3. ferrovs built from /vagrant with the DPDK backend (cargo build --release
#    --locked -p ferrovs-controlplane --features $FERROVS_FEATURES, default
#    "dpdk"; the target directory is /var/cache/ferrovs-lab/target, so the
#    synced folder is never written to) and installed in /usr/local/sbin.
# 4. DPDK's needs, also at every boot: 512 hugepages of 2 MiB
#    (vm.nr_hugepages in /etc/sysctl.d), vfio-pci with vfio's
#    enable_unsafe_noiommu_mode=1 (/etc/modprobe.d, /etc/modules-load.d),
#    ip_forward=0 and rp_filter=0 as on the namespace lab's directors.
# 5. The lab NIC, found by its MAC (vagrant/lab.env), recorded in
#    /etc/ferrovs/lab-nic (PCI address) and bound to vfio-pci.
# 6. /etc/ferrovs/keepalived.conf from director-conf.sh, checked with
#    `ferrovs check`.
# 7. ferrovs.service: director-dpdk.sh before start (hugepages, vfio, bind),
#    `ferrovs run`, then director-tap.sh (the director's address on the TAP
#    exception interface fvs0). Enabled, (re)started and checked.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
PROG=director.sh
LAB_ROOT=${LAB_ROOT:-/vagrant}
# shellcheck source=lib.sh
. "$LAB_ROOT/vagrant/provision/lib.sh"
need_root
[ $# -eq 1 ] || die "usage: $PROG 1|2"
n=$1
case $n in 1) self=$LAB_DIRECTOR1 ;; 2) self=$LAB_DIRECTOR2 ;; *) die "director number 1 or 2" ;; esac
FEATURES=${FERROVS_FEATURES:-dpdk}
HERE=$LAB_ROOT/vagrant/provision

# ------------------------------------------------------------ 1. packages
apt_install iproute2 procps ethtool curl ca-certificates python3 tcpdump pciutils kmod \
    build-essential pkg-config libclang-dev libdpdk-dev dpdk

# ------------------------------------------------------------ 2. Rust
export RUSTUP_HOME=${RUSTUP_HOME:-/opt/rust/rustup} CARGO_HOME=${CARGO_HOME:-/opt/rust/cargo}
export PATH=$CARGO_HOME/bin:$PATH
if ! command -v cargo >/dev/null 2>&1; then
    [ "${FERROVS_RUSTUP:-1}" != 0 ] ||
        die "no cargo, and FERROVS_RUSTUP=0: install a Rust toolchain in $CARGO_HOME (rustup) and run vagrant provision again"
    log "installing the Rust toolchain with rustup into /opt/rust (needs internet access)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y -q --profile minimal --default-toolchain stable --no-modify-path
fi
if [ -x "$CARGO_HOME/bin/cargo" ]; then
    # For shells in the VM too (cargo, rustc; rustup's proxies need RUSTUP_HOME).
    cat >/etc/profile.d/ferrovs-lab-rust.sh <<EOF
export RUSTUP_HOME=$RUSTUP_HOME CARGO_HOME=$CARGO_HOME
case ":\$PATH:" in *":$CARGO_HOME/bin:"*) ;; *) export PATH=$CARGO_HOME/bin:\$PATH ;; esac
EOF
fi
log "$(cargo --version)"

# ------------------------------------------------------------ 3. ferrovs
export CARGO_TARGET_DIR=/var/cache/ferrovs-lab/target
log "building ferrovs (release, features: $FEATURES); the first build takes a while"
(cd "$LAB_ROOT" && cargo build --release --locked -p ferrovs-controlplane --features "$FEATURES") ||
    die "cargo build --features $FEATURES failed (see above)"
install -m 0755 "$CARGO_TARGET_DIR/release/ferrovs" "$CARGO_TARGET_DIR/release/ferrovsadm" /usr/local/sbin/

# ------------------------------------------------------------ 4. boot-time settings
cat >/etc/sysctl.d/80-ferrovs-lab.conf <<'EOF'
# ferrovs lab director (vagrant/provision/director.sh)
vm.nr_hugepages = 512
net.ipv4.ip_forward = 0
net.ipv4.conf.all.rp_filter = 0
net.ipv4.conf.default.rp_filter = 0
EOF
sysctl -q -p /etc/sysctl.d/80-ferrovs-lab.conf || log "warning: some of 80-ferrovs-lab.conf did not apply now (director-dpdk.sh retries the hugepages)"
echo "options vfio enable_unsafe_noiommu_mode=1" >/etc/modprobe.d/ferrovs-lab-vfio.conf
echo vfio-pci >/etc/modules-load.d/ferrovs-lab-vfio.conf

# ------------------------------------------------------------ 5. the lab NIC
mkdir -p /etc/ferrovs
mac=$(mac_of "$self")
if ifn=$(iface_of_mac "$mac"); then
    pci=$(pci_of_iface "$ifn") || die "cannot find the PCI address of $ifn (MAC $mac)"
    log "lab NIC: $ifn, $pci, MAC $mac"
elif [ -r /etc/ferrovs/lab-nic ]; then
    pci=$(sed -n 's/^PCI=//p' /etc/ferrovs/lab-nic)   # bound to vfio-pci already
    log "lab NIC: $pci (no netdev: bound to DPDK already), MAC $mac"
else
    die "no NIC with MAC $mac (the lab NIC of director$n)"
fi
[ "$(cat "/sys/bus/pci/devices/$pci/vendor")" = 0x1af4 ] ||
    log "warning: $pci is not a virtio NIC (vendor $(cat "/sys/bus/pci/devices/$pci/vendor")); DPDK needs a PMD for it"
printf 'PCI=%s\nMAC=%s\n' "$pci" "$mac" >/etc/ferrovs/lab-nic

# ------------------------------------------------------------ 6. keepalived.conf
"$HERE/director-conf.sh" "$n" "$pci" >/etc/ferrovs/keepalived.conf.new
/usr/local/sbin/ferrovs check -f /etc/ferrovs/keepalived.conf.new ||
    die "ferrovs check refused the generated configuration (/etc/ferrovs/keepalived.conf.new)"
mv /etc/ferrovs/keepalived.conf.new /etc/ferrovs/keepalived.conf

# ------------------------------------------------------------ 7. the service
cat >/etc/systemd/system/ferrovs.service <<EOF
[Unit]
Description=ferrovs load balancer (Vagrant lab director$n, DPDK on $pci)
After=network.target
RequiresMountsFor=$LAB_ROOT

[Service]
Type=simple
ExecStartPre=$HERE/director-dpdk.sh
ExecStart=/usr/local/sbin/ferrovs run -f /etc/ferrovs/keepalived.conf
ExecStartPost=$HERE/director-tap.sh $n
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
RestartSec=5
TimeoutStartSec=180
TimeoutStopSec=20
LimitMEMLOCK=infinity
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF
systemctl daemon-reload
systemctl enable ferrovs.service
if ! systemctl restart ferrovs.service; then
    journalctl -u ferrovs.service -n 40 --no-pager >&2 || true
    die "ferrovs.service did not start (journalctl -u ferrovs)"
fi
sleep 3
systemctl is-active -q ferrovs.service || {
    journalctl -u ferrovs.service -n 40 --no-pager >&2 || true
    die "ferrovs.service stopped after starting (journalctl -u ferrovs)"
}
ip -4 -o addr show dev fvs0 >&2
log "director$n ready: ferrovs on $pci, $self on fvs0; ferrovsadm -Ln, ferrovs status"
