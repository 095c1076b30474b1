#!/usr/bin/env bash
# Checks the Vagrant lab without a hypervisor, boxes or network access:
#
#   - `vagrant validate --ignore-provider`: the Vagrantfile's machines,
#     networks, synced folder and provisioners, for all six VMs;
#   - `vagrant validate` with the VirtualBox provider: its provider settings.
#     Where VirtualBox is not installed, a stand-in VBoxManage that only
#     answers `--version` lets Vagrant load the provider (it refuses every
#     other command, so nothing is ever created);
#   - with the vagrant-libvirt plugin installed, `vagrant validate` with the
#     libvirt provider too (without it, the Vagrantfile skips the libvirt
#     block, which this then says);
#   - lab.env: every address in 198.18.0.0/15;
#   - the provisioning scripts and scripts/rs-config.sh: bash -n, and the
#     ShellCheck linter where it is installed;
#   - both directors' keepalived.conf as provisioning writes it: DPDK backend,
#     TAP interface, VRRP priorities, and `ferrovs check` when a ferrovs
#     binary is at hand (FERROVS_BIN, else target/release or target/debug).
#
# Installs Debian's vagrant package if vagrant is missing (as root). Vagrant's
# state goes to a temporary directory (VAGRANT_HOME, VAGRANT_DOTFILE_PATH):
# nothing is written to the checkout or to ~/.vagrant.d.
#
# Last line: "vagrant: N passed, M failed"; the exit status is non-zero when
# M > 0.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
HERE=$PWD
ROOT=$(cd .. && pwd)

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
note() { echo "note - $*"; }
finish() {
    echo "vagrant: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

if ! command -v vagrant >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        bad "vagrant is not installed (run as root on Debian to install it: apt-get install vagrant)"
        finish
    fi
    echo "installing Debian's vagrant package" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends vagrant >&2
    command -v vagrant >/dev/null 2>&1 || { bad "vagrant still missing after apt-get install vagrant"; finish; }
fi

TMP=$(mktemp -d /tmp/ferrovs-vagrant-validate.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
export VAGRANT_HOME=$TMP/home VAGRANT_DOTFILE_PATH=$TMP/dot
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_PLUGINS_WARNING=1
unset VAGRANT_DEFAULT_PROVIDER VAGRANT_CWD VAGRANT_VAGRANTFILE
echo "# $(vagrant --version 2>/dev/null)"

# run_validate DESC LOG [env...] -- [validate args...]
run_validate() {
    local desc=$1 logf=$2; shift 2
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    if env "${envs[@]}" timeout 300 vagrant validate --no-color "$@" >"$logf" 2>&1 &&
        grep -q 'validated successfully' "$logf"; then
        ok "$desc"
    else
        bad "$desc: $(tail -n 8 "$logf" | tr '\n' ' ')"
    fi
}

# 1. Everything but provider settings, every machine.
run_validate "vagrant validate --ignore-provider" "$TMP/generic.log" -- --ignore-provider
want="rs1 rs2 rs3 director1 director2 client"
got=$(sed -n 's/^==> \([a-z0-9]*\): Ignoring provider config.*/\1/p' "$TMP/generic.log" | tr '\n' ' ' | sed 's/ $//')
if [ "$got" = "$want" ]; then ok "machines: $got"; else bad "machines: want '$want', got '$got'"; fi

# 2. VirtualBox's provider settings.
vbox_path=$PATH
if command -v VBoxManage >/dev/null 2>&1; then
    vbox_desc="vagrant validate (virtualbox provider, VirtualBox installed)"
else
    mkdir -p "$TMP/bin"
    cat >"$TMP/bin/VBoxManage" <<'EOF'
#!/bin/sh
# Stand-in for validate.sh: a version for Vagrant's provider, nothing else.
[ "$1" = --version ] && { echo 7.0.14r161095; exit 0; }
echo "stand-in VBoxManage (vagrant/validate.sh): refusing '$*'" >&2
exit 1
EOF
    chmod +x "$TMP/bin/VBoxManage"
    vbox_path=$TMP/bin:$PATH
    vbox_desc="vagrant validate (virtualbox provider settings; stand-in VBoxManage)"
fi
run_validate "$vbox_desc" "$TMP/vbox.log" PATH="$vbox_path" VAGRANT_DEFAULT_PROVIDER=virtualbox --

# 3. libvirt's, where the plugin is installed.
if vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt'; then
    run_validate "vagrant validate (libvirt provider)" "$TMP/libvirt.log" VAGRANT_DEFAULT_PROVIDER=libvirt --
else
    note "vagrant-libvirt is not installed: its provider block is skipped by the Vagrantfile, not checked here"
fi

# 4. Lab addresses: the benchmarking range only.
outside=""
while IFS='=' read -r k v; do
    case $k in '' | \#*) continue ;; esac
    for a in ${v//-/ }; do
        [[ $a =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || continue
        case $a in 198.18.* | 198.19.*) ;; *) outside="$outside $k=$a" ;; esac
    done
done <lab.env
if [ -z "$outside" ]; then ok "lab.env: every address in 198.18.0.0/15"; else bad "lab.env: outside 198.18.0.0/15:$outside"; fi

# 5. Shell scripts.
scripts=("$HERE"/validate.sh "$HERE"/provision/*.sh "$ROOT"/scripts/rs-config.sh)
for s in "${scripts[@]}"; do
    if bash -n "$s" 2>"$TMP/bashn.log"; then ok "bash -n ${s#"$ROOT"/}"; else bad "bash -n ${s#"$ROOT"/}: $(cat "$TMP/bashn.log")"; fi
done
if command -v shellcheck >/dev/null 2>&1; then
    if (cd "$HERE/provision" && shellcheck -x "${scripts[@]}") >"$TMP/sc.log" 2>&1; then
        ok "shellcheck (${#scripts[@]} scripts)"
    else
        bad "shellcheck: $(head -n 20 "$TMP/sc.log")"
    fi
else
    note "shellcheck is not installed: not run"
fi

# 6. The directors' keepalived.conf, as director.sh writes it (PCI address
#    as a VM would have it).
FERROVS=${FERROVS_BIN:-}
if [ -z "$FERROVS" ]; then
    for f in "$ROOT/target/release/ferrovs" "$ROOT/target/debug/ferrovs"; do
        [ -x "$f" ] && { FERROVS=$f; break; }
    done
fi
for n in 1 2; do
    conf=$TMP/director$n.conf
    if ! LAB_ROOT=$ROOT "$HERE/provision/director-conf.sh" "$n" 0000:00:06.0 >"$conf" 2>"$TMP/conf.err"; then
        bad "director$n: director-conf.sh failed: $(cat "$TMP/conf.err")"
        continue
    fi
    prio=150; [ "$n" = 2 ] && prio=100
    missing=""
    for want in "backend dpdk" "interface fvs0" 'eal_args "-l 0-1 -a 0000:00:06.0"' "priority $prio" \
        "lb_kind DR" "lb_kind FNAT"; do
        grep -qF -- "$want" "$conf" || missing="$missing [$want]"
    done
    [ "$(grep -c 'real_server ' "$conf")" = 6 ] || missing="$missing [6 real_server]"
    if [ -z "$missing" ]; then ok "director$n: keepalived.conf has the DPDK port, fvs0, priority $prio, DR and FULLNAT"; else bad "director$n: keepalived.conf lacks$missing"; fi
    if [ -n "$FERROVS" ]; then
        if "$FERROVS" check -f "$conf" >"$TMP/check.log" 2>&1; then
            ok "director$n: ferrovs check"
        else
            bad "director$n: ferrovs check: $(head -n 10 "$TMP/check.log")"
        fi
    fi
done
[ -n "$FERROVS" ] || note "no ferrovs binary (FERROVS_BIN, target/release, target/debug): ferrovs check not run"

finish
