#!/usr/bin/env bash
# End-to-end L2 filtering and neighbour sanity (issue 18 items 5 and 6),
# attacked from outside: from the client's namespace, a raw-socket sender
# puts TCP SYNs for the VIP on the wire addressed to another host's MAC (as
# a flooding switch delivers them) and tagged with VLAN 100 on the
# director's untagged port: neither makes a connection, both are counted.
# Then it tries to poison the director's entry for the client with ARP (a
# zero sender MAC for the client's address, the VIP as sender address):
# refused and counted, and NAT replies still reach the client.
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-l2.XXXXXX)
LAB_NAME=""
FPID=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

cleanup() {
    [ -n "$FPID" ] && kill -TERM "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }
metric() { # NAME LABEL-FILTER: summed over workers
    ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19192/metrics |
        awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"\\{" && index($1, f) {s += $2} END {printf "%d\n", s + 0}'
}

env_text=$("$LAB" up --mode nat --name "fvs-l2$$" --big-mib 1 2>"$WORK/lab.err") || { bad "lab: $(tail -2 "$WORK/lab.err")"; echo "$PASS passed, $FAIL failed"; exit 1; }
eval "$env_text"
LAB_NAME=$FVS_LAB_NAME

cat >"$WORK/k.conf" <<EOF
ferrovs {
    interface $FVS_DIRECTOR_IF_CLIENT
    interface $FVS_DIRECTOR_IF_SERVER
    workers 1
    control_socket $WORK/ctl.sock
    http_listen 127.0.0.1:19192
}
virtual_server $FVS_VIP 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server $FVS_RS1_IP 80 { weight 1 }
    real_server $FVS_RS2_IP 80 { weight 1 }
}
EOF
ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$WORK/k.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!
for _ in $(seq 50); do adm -Ln >/dev/null 2>&1 && break; sleep 0.2; done

# send_syns DST-MAC VLAN(0: none) SPORT-BASE COUNT
send_syns() {
    ip netns exec "$FVS_NS_CLIENT" python3 "$ROOT/scripts/lab-probe.py" send-syn --dev "$FVS_CLIENT_IF" \
        --dst-mac "$1" --vlan "$2" --src "$FVS_CLIENT_IP" --dst "$FVS_VIP" --sport "$3" --count "$4"
}
conns_from() { adm -Lnc | grep -c "$FVS_CLIENT_IP:$1" || true; }

check "a request through the VIP is served" bash -c "ip netns exec '$FVS_NS_CLIENT' curl -s --max-time 3 'http://$FVS_VIP/' | grep -q '^rs'"
o0=$(metric ferrovs_worker_drops_total 'reason="other_host"')
send_syns 02:00:00:00:99:99 0 41000 20
sleep 0.5
o1=$(metric ferrovs_worker_drops_total 'reason="other_host"')
n=0
for p in $(seq 41000 41019); do n=$((n + $(conns_from "$p"))); done
check "SYNs for another host's MAC make no connection ($n)" [ "$n" = 0 ]
check "and are counted as other_host ($((o1 - o0)) of 20)" [ $((o1 - o0)) -eq 20 ]
# On a wire the tag is in the frame; the lab's bridge keeps it in the skb's
# metadata, which the switch's port hands to the director's veth as such
# (and an AF_XDP frame does not carry). With tx VLAN offload off on that
# port, the tag goes in the frame, as a NIC receives it (ferrovs turns the
# NIC's rx VLAN offload off so that it stays there).
ip netns exec "$FVS_NS_SWITCH" ethtool -K "p$FVS_DIRECTOR_IF_CLIENT" txvlan off >/dev/null 2>&1
v0=$(metric ferrovs_worker_drops_total 'reason="vlan_tagged"')
send_syns "$FVS_DIRECTOR_MAC_CLIENT" 100 42000 20
sleep 0.5
n=0
for p in $(seq 42000 42019); do n=$((n + $(conns_from "$p"))); done
check "SYNs tagged with VLAN 100 on the untagged port make no connection ($n)" [ "$n" = 0 ]
v1=$(metric ferrovs_worker_drops_total 'reason="vlan_tagged"')
check "and are counted as vlan_tagged ($((v1 - v0)) of 20)" [ $((v1 - v0)) -eq 20 ]
# The control: the same SYNs, untagged and to the director's MAC, do.
send_syns "$FVS_DIRECTOR_MAC_CLIENT" 0 43000 20
sleep 0.5
n=0
for p in $(seq 43000 43019); do n=$((n + $(conns_from "$p"))); done
check "control: the same SYNs, untagged to the director's MAC, make 20 connections ($n)" [ "$n" = 20 ]
check "a request through the VIP is still served" bash -c "ip netns exec '$FVS_NS_CLIENT' curl -s --max-time 3 'http://$FVS_VIP/' | grep -q '^rs'"

# send_arp SENDER-MAC SENDER-IP TARGET-IP: an ARP request on the wire.
send_arp() {
    ip netns exec "$FVS_NS_CLIENT" python3 "$ROOT/scripts/lab-probe.py" send-arp --dev "$FVS_CLIENT_IF" \
        --sender-mac "$1" --sender "$2" --target "$3"
}
r0=$(metric ferrovs_worker_drops_total 'reason="neigh_refused"')
# A zero MAC for the client's address (replies would go nowhere), and the
# VIP claimed as a sender's address.
send_arp 00:00:00:00:00:00 "$FVS_CLIENT_IP" "$FVS_VIP"
send_arp 02:00:00:00:66:66 "$FVS_VIP" "$FVS_DIRECTOR_IP_CLIENT"
sleep 0.5
r1=$(metric ferrovs_worker_drops_total 'reason="neigh_refused"')
check "ARP with a zero sender MAC or our own address as sender is refused and counted ($((r1 - r0)) of 2)" [ $((r1 - r0)) -eq 2 ]
check "NAT replies still reach the client (its entry was not poisoned)" bash -c "ip netns exec '$FVS_NS_CLIENT' curl -s --max-time 3 'http://$FVS_VIP/' | grep -q '^rs'"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
