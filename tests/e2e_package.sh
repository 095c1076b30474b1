#!/usr/bin/env bash
# The Debian package (scripts/package-deb.sh), installed, upgraded, removed
# and purged in a throwaway copy of this machine: a mount namespace with an
# overlay over / (writes go to a temporary upper layer, the machine itself
# is untouched) and a chroot into it, where no ferrovs was ever installed.
#
#   tests/e2e_package.sh            (packs target/release's binaries)
#   DEB=path.deb tests/e2e_package.sh
#
# Checks: dpkg installs it with its dependencies met; the binaries run; the
# manual pages render (groff, no warning) and the completions are there; the
# default /etc/ferrovs/ferrovs.conf loads with and without a keepalived.conf
# (whose services it then shows); the unit is where systemd looks and is
# neither enabled nor started; started as the unit starts it (its
# ExecStartPre and ExecStart), with the lab's interfaces named in the
# default configuration, it serves keepalived.conf's service to a client
# of the lab (scripts/lab.sh, DR); an upgrade to a newer version keeps the
# operator's changes to the conffile and replaces the binaries; remove
# keeps the configuration, purge takes it away.
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-pkg.XXXXXX)
LAB_NAME=""
trap '[ -n "$LAB_NAME" ] && "$ROOT/scripts/lab.sh" down "$LAB_NAME" >/dev/null 2>&1; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"' EXIT

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

mkdir -p "$WORK/debs"
if [ -n "${DEB:-}" ]; then
    cp "$DEB" "$WORK/debs/old.deb"
else
    d=$("$ROOT/scripts/package-deb.sh" --no-build --out "$WORK/build") || { bad "package-deb.sh"; echo "$PASS passed, $FAIL failed"; exit 1; }
    cp "$d" "$WORK/debs/old.deb"
fi
v=$(dpkg-deb -f "$WORK/debs/old.deb" Version)
d=$("$ROOT/scripts/package-deb.sh" --no-build --version "$v+up1" --out "$WORK/build2") || { bad "package-deb.sh --version"; echo "$PASS passed, $FAIL failed"; exit 1; }
cp "$d" "$WORK/debs/new.deb"
echo "# $(dpkg-deb -f "$WORK/debs/old.deb" Package) $v, depends: $(dpkg-deb -f "$WORK/debs/old.deb" Depends); $(du -h "$WORK/debs/old.deb" | cut -f1)"

# What runs inside the chroot: one line per check, "ok - ..." or "FAIL - ...".
cat >"$WORK/debs/inside.sh" <<'EOF'
#!/bin/sh
ok() { echo "ok - $*"; }
bad() { echo "FAIL - $*"; }
check() { d=$1; shift; if "$@" >/tmp/out 2>&1; then ok "$d"; else bad "$d: $(tail -3 /tmp/out)"; fi; }
cd /mnt/debs
[ ! -e /usr/sbin/ferrovs ] && ok "a copy of the machine without ferrovs" || bad "ferrovs already there"
check "dpkg -i installs it (dependencies met)" dpkg -i old.deb
check "dpkg says it is installed" sh -c 'dpkg -s ferrovs | grep -q "^Status: install ok installed"'
check "ferrovs runs" sh -c '/usr/sbin/ferrovs --help >/dev/null'
# Without a running ferrovs it says so, as ipvsadm does without IPVS.
check "ferrovsadm runs" sh -c '/usr/sbin/ferrovsadm -Ln 2>&1 | grep -q "Is ferrovs running?"'
check "ferrovs-perf runs" sh -c '/usr/bin/ferrovs-perf --help >/dev/null'
check "the unit is where systemd looks" test -f /lib/systemd/system/ferrovs.service
check "man ferrovs, ferrovsadm and ferrovs.conf render" sh -c \
    'for p in 8/ferrovs.8 8/ferrovsadm.8 5/ferrovs.conf.5; do zcat /usr/share/man/man$p.gz | groff -man -Tutf8 -ww -z 2>&1 | grep . && exit 1; zcat /usr/share/man/man$p.gz | grep -q "^.SH SEE ALSO" || exit 1; done; exit 0'
check "bash completes ferrovs's commands" sh -c 'grep -q "check" /usr/share/bash-completion/completions/ferrovs'
check "and is not enabled" test ! -e /etc/systemd/system/multi-user.target.wants/ferrovs.service
rm -f /etc/keepalived/keepalived.conf
check "the default configuration loads without a keepalived.conf" ferrovs check -f /etc/ferrovs/ferrovs.conf
mkdir -p /etc/keepalived
cat >/etc/keepalived/keepalived.conf <<'KA'
virtual_server 198.18.0.100 80 {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server 198.18.1.11 80 {
        weight 3
    }
}
KA
check "with one, it serves keepalived.conf's services" sh -c \
    'ferrovs check -f /etc/ferrovs/ferrovs.conf --dump-rules | grep -qx -- "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -g -w 3"'
echo "! the operator's line" >>/etc/ferrovs/ferrovs.conf
echo 'virtual_server 198.18.0.101 80 {
    lb_kind DR
    protocol TCP
    real_server 198.18.1.12 80
}' >/etc/ferrovs/conf.d/extra.conf
check "conf.d files are read" sh -c 'ferrovs check -f /etc/ferrovs/ferrovs.conf --dump-rules | grep -q 198.18.0.101'
# The lab (DR, its real servers on 198.18.1.11-13:80, as keepalived.conf
# above): the operator names the interfaces, then runs what the unit runs.
. /mnt/debs/lab.env
sed -i -e "s/^    ! interface eth0$/    interface $FVS_DIRECTOR_IF_CLIENT/" \
    -e "s/^    ! interface eth1$/    interface $FVS_DIRECTOR_IF_SERVER/" /etc/ferrovs/ferrovs.conf
check "the operator names the lab's interfaces in the default configuration" grep -q "^    interface $FVS_DIRECTOR_IF_SERVER$" /etc/ferrovs/ferrovs.conf
pre=$(sed -n 's/^ExecStartPre=//p' /lib/systemd/system/ferrovs.service)
start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/ferrovs.service)
check "the unit's ExecStartPre passes ($pre)" ip netns exec "$FVS_NS_DIRECTOR" $pre
ip netns exec "$FVS_NS_DIRECTOR" $start >/tmp/ferrovs.log 2>&1 &
pid=$!
i=0
while [ $i -lt 100 ] && ! ferrovsadm -Ln 2>/dev/null | grep -q "198.18.1.11:80"; do sleep 0.1; i=$((i + 1)); done
check "its ExecStart runs ferrovs ($start)" kill -0 $pid
check "ferrovsadm -Ln shows keepalived.conf's service" sh -c 'ferrovsadm -Ln | grep -q "198.18.0.100:80 wrr"'
check "a client of the lab gets the real server's page through it" sh -c \
    "ip netns exec '$FVS_NS_CLIENT' curl -s --max-time 5 http://198.18.0.100/ | grep -q ."
check "its metrics count the connection" sh -c 'ferrovsadm -Ln --stats | grep -q "198.18.1.11:80 *[1-9]"'
kill -TERM $pid
i=0
while [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
check "dpkg -i of a newer version upgrades it" dpkg -i --force-confold new.deb
check "to the new version" sh -c 'dpkg-query -W -f="\${Version}" ferrovs | grep -q "+up1$"'
check "keeping the operator's change to the conffile" grep -qx "! the operator's line" /etc/ferrovs/ferrovs.conf
check "and conf.d" test -f /etc/ferrovs/conf.d/extra.conf
check "the new package owns the binaries" sh -c 'dpkg -L ferrovs | grep -qx /usr/sbin/ferrovs && [ -x /usr/sbin/ferrovs ]'
check "dpkg -r removes it" dpkg -r ferrovs
check "the binaries are gone" test ! -e /usr/sbin/ferrovs
check "the configuration stays" test -f /etc/ferrovs/ferrovs.conf
check "dpkg -P purges it" dpkg -P ferrovs
check "the configuration is gone" test ! -e /etc/ferrovs
check "dpkg forgets it" sh -c '! dpkg -s ferrovs 2>/dev/null | grep -q "^Status: install"'
EOF
chmod +x "$WORK/debs/inside.sh"

# The demo's lab, for the installed ferrovs to serve.
"$ROOT/scripts/lab.sh" up --mode dr --directors 1 --name "fvs-pkg$$" >"$WORK/debs/lab.env" 2>"$WORK/lab.err" || bad "lab: $(tail -2 "$WORK/lab.err")"
LAB_NAME=fvs-pkg$$

mkdir -p "$WORK/upper" "$WORK/work" "$WORK/root"
unshare -m --propagation private sh -c '
    set -e
    W=$1
    mount -t overlay overlay -o "lowerdir=/,upperdir=$W/upper,workdir=$W/work" "$W/root"
    mount --bind /proc "$W/root/proc"
    mount --bind /dev "$W/root/dev"
    mount -t tmpfs tmpfs "$W/root/run"
    mkdir -p "$W/root/run/netns"
    mount --rbind /run/netns "$W/root/run/netns"
    mount -t tmpfs tmpfs "$W/root/tmp"
    mkdir -p "$W/root/mnt/debs"
    mount --bind "$W/debs" "$W/root/mnt/debs"
    chroot "$W/root" /mnt/debs/inside.sh
' sh "$WORK" >"$WORK/inside.out" 2>&1
cat "$WORK/inside.out" | grep -E '^(ok|FAIL) - ' || true
PASS=$((PASS + $(grep -c '^ok - ' "$WORK/inside.out")))
FAIL=$((FAIL + $(grep -c '^FAIL - ' "$WORK/inside.out")))
n=$((PASS + FAIL))
if [ "$n" -lt 31 ]; then
    bad "the chroot ran $n checks of 31: $(grep -vE '^(ok|FAIL) - ' "$WORK/inside.out" | tail -5)"
fi
# The machine itself was not touched.
if [ ! -e /usr/sbin/ferrovs ] && ! dpkg -s ferrovs >/dev/null 2>&1; then
    ok "the machine itself has no ferrovs installed (the overlay took every write)"
else
    bad "ferrovs is installed on the machine itself"
fi
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
