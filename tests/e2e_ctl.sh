#!/usr/bin/env bash
# End-to-end tests of the control socket's lock-down: `ferrovs run` started
# under umask 000 in a network namespace of its own (one veth pair,
# AF_PACKET, 198.18.0.0/24). The socket and its directory get 0600/0700; a
# non-root user (nobody) can neither list nor clear the table, also when it
# gets past the file mode (CAP_DAC_OVERRIDE) and meets the credential
# check; CAP_NET_ADMIN is let in; an oversized request and connections past
# the cap are refused with a clear answer; a second ferrovs on the same
# socket is refused, a stale socket replaced; control_socket_group opens it
# to a group (0660/0750). Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PASS=0
FAIL=0
NS=fvs-ctl$$
WORK=$(mktemp -d /tmp/ferrovs-ctl.XXXXXX)
FPID=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

stop_ferrovs() {
    [ -n "$FPID" ] || return 0
    kill -"${1:-TERM}" "$FPID" 2>/dev/null
    wait "$FPID" 2>/dev/null
    FPID=""
}
cleanup() {
    stop_ferrovs
    ip netns del "$NS" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nobody must be able to reach what lies inside $WORK; the socket's own
# directory and mode are what keep it out.
chmod 0711 "$WORK"
SOCK=$WORK/run/ferrovs/ctl.sock
adm() { FERROVS_CTL=$SOCK "$FERROVSADM" "$@"; }
# as_nobody [SETPRIV-OPTIONS...] -- CMD...: uid and gid 65534, no groups.
as_nobody() {
    local opts=()
    while [ "$1" != "--" ]; do opts+=("$1"); shift; done
    shift
    FERROVS_CTL=$SOCK setpriv --reuid=65534 --regid=65534 --clear-groups "${opts[@]}" "$@"
}
wait_until() {
    local n=$(($1 * 5)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
    return 1
}
serving() { adm -Ln 2>/dev/null | grep -q "^TCP  198.18.0.100:80 rr"; }
mode_of() { stat -c %a "$1"; }

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add fvc0 type veth peer name fvc1
ip -n "$NS" addr add 198.18.0.2/24 dev fvc0
ip -n "$NS" link set fvc0 up
ip -n "$NS" link set fvc1 up

write_conf() {
    cat >"$WORK/k.conf" <<EOF
ferrovs {
    backend afpacket
    interface fvc0
    workers 1
    conn_table_size 4096
    control_socket $SOCK
    http_listen 127.0.0.1:19199
$1
}
virtual_server 198.18.0.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 198.18.0.11 80 {
        weight 1
    }
}
EOF
}

# start_ferrovs LOG: under umask 000, as the issue found it.
start_ferrovs() {
    (umask 000; exec ip netns exec "$NS" "$FERROVS" run -f "$WORK/k.conf") >>"$WORK/$1" 2>&1 &
    FPID=$!
    wait_until 15 serving
}

write_conf ""
if ! start_ferrovs ferrovs.log; then
    bad "ferrovs started"
    tail -20 "$WORK/ferrovs.log" >&2
    echo "$PASS passed, $FAIL failed"
    exit 1
fi
ok "ferrovs started under umask 000"
check "socket directory is 0700 (umask 000)" [ "$(mode_of "$WORK/run/ferrovs")" = 700 ]
check "socket is 0600 (umask 000)" [ "$(mode_of "$SOCK")" = 600 ]
check "lock file is 0600 and names the daemon" bash -c "[ \$(stat -c %a '$SOCK.lock') = 600 ] && [ \"\$(cat '$SOCK.lock')\" = $FPID ]"

# refused OUT CODE WHAT: the clear refusal, exit code 2 (ipvsadm's), no output.
refused() {
    [ "$2" -eq 2 ] && grep -q "^ferrovsadm: permission denied: the control socket needs root or CAP_NET_ADMIN" "$1.err" &&
        [ ! -s "$1.out" ]
}
as_nobody -- "$FERROVSADM" -Ln >"$WORK/n1.out" 2>"$WORK/n1.err"
check "nobody: -Ln refused (exit 2, clear message)" refused "$WORK/n1" $? || cat "$WORK/n1.err" >&2
as_nobody -- "$FERROVSADM" -C >"$WORK/n2.out" 2>"$WORK/n2.err"
check "nobody: -C refused (exit 2, clear message)" refused "$WORK/n2" $? || cat "$WORK/n2.err" >&2
check "nobody: the table is unchanged" serving

# Past the file mode (CAP_DAC_OVERRIDE, no CAP_NET_ADMIN): the daemon's
# credential check answers.
DAC=(--inh-caps=+dac_override --ambient-caps=+dac_override)
as_nobody "${DAC[@]}" -- "$FERROVSADM" -C >"$WORK/n3.out" 2>"$WORK/n3.err"
check "nobody+dac_override: -C refused by the daemon (exit 2)" refused "$WORK/n3" $? || cat "$WORK/n3.err" >&2
check "nobody+dac_override: the daemon names the uid" grep -q "(uid 65534, pid [0-9]*)" "$WORK/n3.err"
as_nobody "${DAC[@]}" -- "$FERROVSADM" -Ln >"$WORK/n4.out" 2>"$WORK/n4.err"
check "nobody+dac_override: -Ln refused by the daemon (exit 2)" refused "$WORK/n4" $? || cat "$WORK/n4.err" >&2
check "nobody+dac_override: the table is unchanged" serving
check "the daemon logged the refusal" grep -q "refused a client: permission denied" "$WORK/ferrovs.log"
# CAP_NET_ADMIN, as ipvsadm needs: let in.
ADMIN=(--inh-caps=+dac_override,+net_admin --ambient-caps=+dac_override,+net_admin)
check "nobody+net_admin: -Ln allowed" bash -c "$(declare -f as_nobody); SOCK='$SOCK'; as_nobody ${ADMIN[*]} -- '$FERROVSADM' -Ln | grep -q '^TCP  198.18.0.100:80 rr'"

# An oversized request line (17 MiB; the limit is 16 MiB): refused, not run.
big_request() {
    python3 - "$SOCK" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
rules = "-C\n" + "#" * (17 << 20)
line = json.dumps({"argv": ["-R"], "stdin": rules}).encode() + b"\n"
try:
    s.sendall(line)
except OSError:
    pass  # refused before it read it all
print(json.loads(s.makefile().readline()).get("refused", ""))
EOF
}
check "a 17 MiB request is refused as too large" bash -c "$(declare -f big_request); SOCK='$SOCK'; big_request | grep -q '^request too large (16777217 bytes or more; the limit is 16 MiB)$'"
check "after the oversized request the table is unchanged" serving
head -c $((17 << 20)) /dev/zero | tr '\0' '#' >"$WORK/big.rules"
adm -R <"$WORK/big.rules" >/dev/null 2>"$WORK/big.err"
check "ferrovsadm -R of 17 MiB says the request is too large" grep -q "^ferrovsadm: request too large" "$WORK/big.err"
# A big restore within the limit goes through: 20,000 real servers.
python3 -c '
print("-A -t 198.18.0.101:80 -s wlc")
for i in range(2000):
    print("-a -t 198.18.0.101:80 -r 198.18.%d.%d:%d -m -w 1" % (0, 2 + i % 250, 1000 + i // 250))
' >"$WORK/restore.rules"
check "a 2,000-server restore ($(($(stat -c %s "$WORK/restore.rules") / 1024)) KiB) goes through" bash -c "FERROVS_CTL=$SOCK $FERROVSADM -R <'$WORK/restore.rules' && [ \$(FERROVS_CTL=$SOCK $FERROVSADM -Ln -t 198.18.0.101:80 | grep -c '^  -> 198') -eq 2000 ]"
adm -D -t 198.18.0.101:80

# The connection cap (64): a 65th client is refused at once, with a word.
cap_probe() {
    python3 - "$SOCK" <<'EOF'
import json, socket, sys
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
# The refusal may already be written and the socket closed: a send that
# fails then is the server's answer arriving first, not an error.
try:
    s.sendall(json.dumps({"argv": ["-Ln"]}).encode() + b"\n")
except BrokenPipeError:
    pass
print(json.loads(s.makefile().readline()).get("refused", ""))
EOF
}
check "the 65th control connection is refused" bash -c "$(declare -f cap_probe); SOCK='$SOCK'; cap_probe | grep -q '^too many control connections (64 open)'"
check "once they close, clients are served again" wait_until 5 serving

# A second ferrovs on the same socket: refused before it touches anything.
timeout 20 ip netns exec "$NS" "$FERROVS" run -f "$WORK/k.conf" >"$WORK/second.log" 2>&1
rc=$?
check "a second ferrovs on the socket is refused" bash -c "[ $rc -ne 0 ] && grep -q 'another ferrovs (pid $FPID) serves the control socket' '$WORK/second.log'" ||
    tail -3 "$WORK/second.log" >&2
check "the first one still serves" serving

# A second ferrovs with a control socket of its own, on the same
# interfaces: refused too (both would answer ARP for the VIPs and forward).
sed "s|control_socket $SOCK|control_socket $WORK/other.sock|; s|http_listen 127.0.0.1:19199|http_listen 127.0.0.1:19198|" "$WORK/k.conf" >"$WORK/k2.conf"
timeout 20 ip netns exec "$NS" "$FERROVS" run -f "$WORK/k2.conf" >"$WORK/second2.log" 2>&1
rc=$?
check "a second ferrovs on the same interfaces is refused" bash -c "[ $rc -ne 0 ] && grep -q 'another ferrovs (pid $FPID) already serves interface' '$WORK/second2.log'" ||
    tail -3 "$WORK/second2.log" >&2
check "the first one still serves after it" serving

# SIGKILL leaves the socket behind: the next start replaces it.
stop_ferrovs KILL
check "SIGKILL left the socket" [ -S "$SOCK" ]
if start_ferrovs ferrovs2.log; then
    ok "restarted over the stale socket"
else
    bad "restarted over the stale socket"
    tail -5 "$WORK/ferrovs2.log" >&2
fi
check "the stale socket was replaced (0600)" [ "$(mode_of "$SOCK")" = 600 ]
stop_ferrovs TERM
check "SIGTERM removes the socket" [ ! -e "$SOCK" ]

# control_socket_group: the group's members may use it (0660 / 0750).
rm -rf "$WORK/run"
write_conf "    control_socket_group nogroup"
if start_ferrovs ferrovs3.log; then
    ok "started with control_socket_group"
    check "group: directory 0750, group nogroup" [ "$(stat -c '%a %G' "$WORK/run/ferrovs")" = "750 nogroup" ]
    check "group: socket 0660, group nogroup" [ "$(stat -c '%a %G' "$SOCK")" = "660 nogroup" ]
    check "group member (nobody:nogroup): -Ln allowed" bash -c "FERROVS_CTL=$SOCK setpriv --reuid=65534 --regid=65534 --clear-groups $FERROVSADM -Ln | grep -q '^TCP  198.18.0.100:80 rr'"
    FERROVS_CTL=$SOCK setpriv --reuid=65534 --regid=12345 --clear-groups "$FERROVSADM" -C >"$WORK/g1.out" 2>"$WORK/g1.err"
    check "not a member (nobody:12345): -C refused" refused "$WORK/g1" $? || cat "$WORK/g1.err" >&2
    check "group: the table is unchanged" serving
else
    bad "started with control_socket_group"
    tail -5 "$WORK/ferrovs3.log" >&2
fi
stop_ferrovs TERM

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
