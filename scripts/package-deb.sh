#!/usr/bin/env bash
# Builds the Debian package of ferrovs with dpkg-deb:
#
#   scripts/package-deb.sh [--no-build] [--version V] [--out DIR]
#
# Contents: /usr/sbin/ferrovs and ferrovsadm, /usr/bin/ferrovs-perf and
# ferrovs-pktgen, manual pages (ferrovs(8), ferrovsadm(8), ferrovs.conf(5)),
# bash, zsh and fish completions of ferrovs, the systemd unit (packaging/systemd/ferrovs.service), a
# default /etc/ferrovs/ferrovs.conf (packaging/ferrovs.conf: it includes
# /etc/keepalived/keepalived.conf when there is one) and /etc/ferrovs/conf.d,
# the README and the Grafana dashboard under /usr/share/doc/ferrovs. The
# dependencies are read off the binaries (the Debian packages of the shared
# libraries they link: libc, and DPDK's when built with it), as
# dpkg-shlibdeps would. The unit is installed but neither enabled nor
# started: a director starts serving when its operator says so
# (`systemctl enable --now ferrovs`), after `ferrovs check`.
#
# --no-build packs the binaries already in target/release. The version is
# the workspace's (Cargo.toml) unless --version gives one. Prints the path of
# the .deb on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/target/debian
BUILD=1
VERSION=""
while [ $# -gt 0 ]; do
    case $1 in
    --no-build) BUILD=0; shift ;;
    --version) VERSION=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
log() { echo "package-deb.sh: $*" >&2; }

[ -n "$VERSION" ] || VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")
[ -n "$VERSION" ] || { log "no version in Cargo.toml"; exit 1; }
ARCH=$(dpkg --print-architecture)
BINS=(ferrovs ferrovsadm ferrovs-perf ferrovs-pktgen)

if [ "$BUILD" = 1 ]; then
    features=()
    # DPDK's backend where its development files are (scripts/test.sh
    # installs them); the package then depends on DPDK's libraries.
    pkg-config --exists libdpdk 2>/dev/null && features=(--features dpdk)
    log "cargo build --release ${features[*]}"
    (cd "$ROOT" && cargo build --release -q -p ferrovs-controlplane "${features[@]}" &&
        cargo build --release -q -p ferrovs-perf --bin ferrovs-perf --bin ferrovs-pktgen) >&2
fi
for b in "${BINS[@]}"; do
    [ -x "$ROOT/target/release/$b" ] || { log "target/release/$b missing (build first, or drop --no-build)"; exit 1; }
done

STAGE=$(mktemp -d /tmp/ferrovs-deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/ferrovs
install -d "$P/DEBIAN" "$P/usr/sbin" "$P/usr/bin" "$P/lib/systemd/system" \
    "$P/etc/ferrovs/conf.d" "$P/usr/share/doc/ferrovs" "$P/usr/share/man/man8" "$P/usr/share/man/man5" \
    "$P/usr/share/bash-completion/completions" "$P/usr/share/zsh/vendor-completions" \
    "$P/usr/share/fish/vendor_completions.d"
# Without debug information: the release profile keeps it for profiling
# (perf, callgrind), a package does not need it.
for b in ferrovs ferrovsadm; do
    objcopy --strip-debug "$ROOT/target/release/$b" "$P/usr/sbin/$b"
done
for b in ferrovs-perf ferrovs-pktgen; do
    objcopy --strip-debug "$ROOT/target/release/$b" "$P/usr/bin/$b"
done
chmod 0755 "$P"/usr/sbin/* "$P"/usr/bin/*
install -m 0644 "$ROOT/packaging/systemd/ferrovs.service" "$P/lib/systemd/system/ferrovs.service"
install -m 0644 "$ROOT/packaging/ferrovs.conf" "$P/etc/ferrovs/ferrovs.conf"
install -m 0644 "$ROOT/README.md" "$P/usr/share/doc/ferrovs/README.md"
install -m 0644 "$ROOT/grafana/ferrovs-dashboard.json" "$P/usr/share/doc/ferrovs/ferrovs-dashboard.json"
install -m 0644 "$ROOT/examples/keepalived-dr.conf" "$P/usr/share/doc/ferrovs/keepalived-dr.conf.example"
# Manual pages: ferrovs(8) from the parser's own definitions, the others
# written by hand (packaging/man); shell completions of ferrovs.
"$P/usr/sbin/ferrovs" man | gzip -9n >"$P/usr/share/man/man8/ferrovs.8.gz"
gzip -9nc "$ROOT/packaging/man/ferrovsadm.8" >"$P/usr/share/man/man8/ferrovsadm.8.gz"
gzip -9nc "$ROOT/packaging/man/ferrovs.conf.5" >"$P/usr/share/man/man5/ferrovs.conf.5.gz"
"$P/usr/sbin/ferrovs" completions bash >"$P/usr/share/bash-completion/completions/ferrovs"
"$P/usr/sbin/ferrovs" completions zsh >"$P/usr/share/zsh/vendor-completions/_ferrovs"
"$P/usr/sbin/ferrovs" completions fish >"$P/usr/share/fish/vendor_completions.d/ferrovs.fish"
chmod 0644 "$P"/usr/share/man/man*/* "$P"/usr/share/bash-completion/completions/* \
    "$P"/usr/share/zsh/vendor-completions/* "$P"/usr/share/fish/vendor_completions.d/*
cat >"$P/usr/share/doc/ferrovs/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ferrovs

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

# Dependencies: the packages that own the shared libraries the binaries
# link (what dpkg-shlibdeps finds), at least the installed version's
# upstream part.
deps=$(for b in "$P"/usr/sbin/* "$P"/usr/bin/*; do
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
    real=$(readlink -f "$lib")
    dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true
done | cut -d: -f1 | sort -u | while read -r pkg; do
    v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null | sed 's/-[^-]*$//; s/^[0-9]*://')
    if [ -n "$v" ]; then echo "$pkg (>= $v)"; else echo "$pkg"; fi
done | paste -sd, | sed 's/,/, /g')

SIZE=$(du -sk "$P" | cut -f1)
cat >"$P/DEBIAN/control" <<EOF
Package: ferrovs
Version: $VERSION
Architecture: $ARCH
Maintainer: ferrovs developers <ferrovs@localhost>
Installed-Size: $SIZE
Depends: ${deps:-libc6}
Recommends: iproute2
Suggests: keepalived
Section: net
Priority: optional
Homepage: https://localhost/ferrovs
Description: userspace layer-4 load balancer compatible with LVS and keepalived
 ferrovs forwards traffic for virtual IPs to real servers in DR, NAT,
 FULLNAT or TUN mode on AF_XDP, AF_PACKET or DPDK poll-mode cores, and runs
 VRRP failover, health checks, reload without dropping flows, an
 ipvsadm-compatible CLI (ferrovsadm) and Prometheus metrics in the same
 process. It reads keepalived.conf as it is.
EOF
cat >"$P/DEBIAN/conffiles" <<'EOF'
/etc/ferrovs/ferrovs.conf
EOF
cat >"$P/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
# The unit is installed, neither enabled nor started: the operator starts
# the director once its configuration is right (`ferrovs check`).
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    # An upgrade hands a running director over to the new binary without
    # losing a flow (`ferrovs upgrade`: same process, the connection table
    # read back, VRRP kept). When the new binary cannot take the table
    # over, the old one keeps running and the operator chooses.
    if [ -n "$2" ] && systemctl is-active --quiet ferrovs.service; then
        if ! /usr/sbin/ferrovs upgrade /usr/sbin/ferrovs; then
            echo "ferrovs: the running director keeps its old binary; 'ferrovs upgrade --force' or 'systemctl restart ferrovs' starts the new one" >&2
        fi
    fi
fi
exit 0
EOF
cat >"$P/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop ferrovs.service >/dev/null 2>&1 || true
    systemctl disable ferrovs.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$P/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # dpkg removes the conffile; what is left is the operator's conf.d and
    # the runtime directory.
    rm -rf /etc/ferrovs /run/ferrovs
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$P/DEBIAN/postinst" "$P/DEBIAN/prerm" "$P/DEBIAN/postrm"

mkdir -p "$OUT"
DEB=$OUT/ferrovs_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$P" "$DEB" >&2
log "built $DEB (depends: ${deps:-libc6})"
echo "$DEB"
