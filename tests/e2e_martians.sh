#!/usr/bin/env bash
# End-to-end martian sources and TTL (issue 18 item 7), outside in: for a
# NAT lab and a DR lab in turn (scripts/lab.sh), `ferrovs run` with one
# service of that kind on VIP:80, and a Python sender in the client
# namespace that writes raw Ethernet frames (AF_PACKET, so the client's
# kernel neither routes nor filters them) straight to the director's MAC:
#
#   - SYNs from martian sources (0.0.0.0, 0/8, 127/8, 224/4, 240/4,
#     255.255.255.255, the VIP itself, the director's own address), each
#     three times: /metrics counts them as drops{reason="martian_source"},
#     no connection is created (connections_created unchanged) and
#     `ferrovsadm -Lnc` lists none from those sources — as Linux drops
#     them in ip_route_input before IPVS;
#   - a SYN with TTL 9 reaches the real server with TTL 8 (sniffed in the
#     real servers' namespaces): IPVS's decrement_ttl, NAT and DR alike;
#   - a SYN with TTL 1 is answered with ICMP time exceeded (type 11 code
#     0) from the VIP quoting the SYN, and counted as
#     drops{reason="ttl_exceeded"};
#   - a real curl from the client is still served.
#
#   tests/e2e_martians.sh
#   BACKEND=afpacket tests/e2e_martians.sh      (default afxdp)
#   MODES="nat" tests/e2e_martians.sh           (default "nat dr")
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
BACKEND=${BACKEND:-afxdp}
MODES=${MODES:-nat dr}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-martians.XXXXXX)
LAB_NAME=""
FPID=""
SNIFF_PIDS=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
for b in "$FERROVS" "$FERROVSADM"; do
    [ -x "$b" ] || { echo "build first: cargo build --release -p ferrovs-controlplane ($b missing)" >&2; echo "0 passed, 1 failed"; exit 1; }
done
command -v python3 >/dev/null || { echo "needs python3" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

stop_ferrovs() {
    if [ -n "$FPID" ]; then
        kill -TERM "$FPID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$FPID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FPID" 2>/dev/null
        wait "$FPID" 2>/dev/null
        FPID=""
    fi
}
stop_sniffers() {
    local p
    for p in $SNIFF_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    SNIFF_PIDS=""
}
teardown() {
    stop_sniffers
    stop_ferrovs
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    LAB_NAME=""
}
cleanup() {
    teardown
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }
metrics() { in_ns "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:9180/metrics; }
# metric NAME [LABEL_FILTER] — summed over the samples whose labels match.
metric() {
    metrics | awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"\\{" && index($1, f) {s += $2} END {printf "%d\n", s + 0}'
}
drops() { metric ferrovs_worker_drops_total "reason=\"$1\""; }

# The sender and sniffer: raw frames, checksums computed here.
cat >"$WORK/raw.py" <<'EOF'
import os, select, socket, struct, sys, time

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))

def syn(src, dst, sport, dport, ttl):
    a, b = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0x12345678, 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(a + b + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0x1234, 0x4000, ttl, 6, 0, a, b)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp

def send(ifname, dmac, ip):
    smac = mac(os.environ["SMAC"]) if "SMAC" in os.environ else mac(open("/sys/class/net/%s/address" % ifname).read().strip())
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    s.send(mac(dmac) + smac + b"\x08\x00" + ip)

cmd = sys.argv[1]
if cmd == "martians":
    # martians IF DMAC VIP SRC... — three SYNs from each source.
    ifname, dmac, vip = sys.argv[2:5]
    for i, src in enumerate(sys.argv[5:]):
        for k in range(3):
            send(ifname, dmac, syn(src, vip, 50000 + i, 80, 64))
            time.sleep(0.01)
elif cmd == "ttl":
    # ttl IF DMAC SRC VIP SPORT TTL — one SYN.
    ifname, dmac, src, vip, sport, ttl = sys.argv[2:8]
    send(ifname, dmac, syn(src, vip, int(sport), 80, int(ttl)))
elif cmd == "expect-time-exceeded":
    # expect-time-exceeded IF DMAC SRC VIP SPORT — a TTL-1 SYN, then waits
    # up to 3 s for ICMP 11/0 from VIP quoting it.
    ifname, dmac, src, vip, sport = sys.argv[2:7]
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    orig = syn(src, vip, int(sport), 80, 1)
    send(ifname, dmac, orig)
    end = time.time() + 3
    while time.time() < end:
        if not select.select([r], [], [], max(0, end - time.time()))[0]:
            break
        pkt, (frm, _) = r.recvfrom(2048)
        hl = (pkt[0] & 15) * 4
        icmp = pkt[hl:]
        if frm != vip or icmp[0] != 11 or icmp[1] != 0:
            continue
        quote = icmp[8:]
        if quote[:len(orig)] == orig and csum(icmp) == 0:
            print("time exceeded from %s, type 11 code 0, quoting the whole SYN" % frm)
            sys.exit(0)
        print("time exceeded from %s with another quote: %s" % (frm, quote.hex()))
        sys.exit(1)
    print("no time exceeded")
    sys.exit(1)
elif cmd == "sniff":
    # sniff IF SPORT OUT — writes the TTL of the first TCP SYN with that
    # source port seen on IF.
    ifname, sport, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    while True:
        f = s.recv(4096)
        if f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        ip = f[14:]
        hl = (ip[0] & 15) * 4
        if struct.unpack("!H", ip[hl:hl + 2])[0] == sport and ip[hl + 13] & 0x12 == 0x02:
            open(out, "w").write("%d\n" % ip[8])
            break
EOF

run_mode() {
    local mode=$1 kind env_text
    case $mode in nat) kind=NAT ;; dr) kind=DR ;; *) bad "unknown mode $mode"; return ;; esac
    rm -f "$WORK/ctl.sock"
    env_text=$("$LAB" up --mode "$mode" --name "fvs-mt$$" --big-mib 1 2>"$WORK/lab.err") ||
        { bad "$mode: lab: $(tail -2 "$WORK/lab.err")"; return; }
    eval "$env_text"
    LAB_NAME=$FVS_LAB_NAME
    export SMAC=$FVS_CLIENT_MAC
    # On the client segment, and routed back through the director in NAT
    # (FVS_CLIENT_DIRECT_IP is not).
    local client_ip=$FVS_CLIENT_IP

    {
        echo "ferrovs {"
        echo "    backend $BACKEND"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers 1"
        echo "    control_socket $WORK/ctl.sock"
        echo "}"
        echo "virtual_server $FVS_VIP 80 {"
        echo "    lb_algo rr"
        echo "    lb_kind $kind"
        echo "    protocol TCP"
        for i in 1 2 3; do
            local v="FVS_RS${i}_IP"
            echo "    real_server ${!v} $FVS_RS_PORT {"
            echo "        weight 1"
            echo "    }"
        done
        echo "}"
    } >"$WORK/$mode.conf"

    # ip netns exec execs ferrovs: $! is its pid (for signals).
    FERROVS_CTL=$WORK/ctl.sock ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$WORK/$mode.conf" >>"$WORK/ferrovs.log" 2>&1 &
    FPID=$!
    local up=0
    for _ in $(seq 100); do
        [ -S "$WORK/ctl.sock" ] && adm -Ln >/dev/null 2>&1 && { up=1; break; }
        kill -0 "$FPID" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" != 1 ]; then
        bad "$mode: ferrovs did not start: $(tail -3 "$WORK/ferrovs.log")"
        teardown
        return
    fi
    # Warm up: a real request (and the director's ARP for the client).
    in_ns "$FVS_NS_CLIENT" curl -s -o /dev/null --max-time 5 "http://$FVS_VIP/"

    # Martian sources.
    local martians="0.0.0.0 0.1.2.3 127.0.0.1 224.0.0.1 240.0.0.1 255.255.255.255 $FVS_VIP $FVS_DIRECTOR_IP_CLIENT"
    local m0 c0 m1 c1 nm
    nm=$(($(echo "$martians" | wc -w) * 3))
    m0=$(drops martian_source)
    c0=$(metric ferrovs_worker_connections_created_total)
    # shellcheck disable=SC2086
    in_ns "$FVS_NS_CLIENT" python3 "$WORK/raw.py" martians "$FVS_CLIENT_IF" "$FVS_DIRECTOR_MAC_CLIENT" "$FVS_VIP" $martians
    sleep 0.5
    m1=$(drops martian_source)
    c1=$(metric ferrovs_worker_connections_created_total)
    check "$mode: $nm SYNs from martian sources counted as martian_source drops ($((m1 - m0)))" [ $((m1 - m0)) -ge "$nm" ]
    check "$mode: no connection created for them ($((c1 - c0)) created)" [ "$c1" -eq "$c0" ]
    # The source column only (the VIP is every line's virtual address).
    adm -Lnc | awk '$1 == "TCP" || $1 == "UDP" {print $4}' >"$WORK/$mode.lnc"
    local listed=0 s
    for s in $martians; do
        grep -qxF "$s:" <(sed 's/:[0-9]*$/:/' "$WORK/$mode.lnc") && listed=$((listed + 1))
    done
    check "$mode: ferrovsadm -Lnc lists no connection from a martian source" [ "$listed" -eq 0 ]

    # TTL 9 leaves the director as 8 (sniffed on every real server).
    rm -f "$WORK"/ttl.*
    for i in 1 2 3; do
        local ns="FVS_NS_RS$i" rif="FVS_RS${i}_IF"
        in_ns "${!ns}" python3 "$WORK/raw.py" sniff "${!rif}" 45678 "$WORK/ttl.$i" &
        SNIFF_PIDS="$SNIFF_PIDS $!"
    done
    sleep 0.5
    in_ns "$FVS_NS_CLIENT" python3 "$WORK/raw.py" ttl "$FVS_CLIENT_IF" "$FVS_DIRECTOR_MAC_CLIENT" "$client_ip" "$FVS_VIP" 45678 9
    for _ in $(seq 20); do ls "$WORK"/ttl.* >/dev/null 2>&1 && break; sleep 0.1; done
    stop_sniffers
    local seen
    seen=$(cat "$WORK"/ttl.* 2>/dev/null | head -1)
    check "$mode: a SYN sent with TTL 9 reaches the real server with TTL ${seen:-?} (want 8)" [ "${seen:-0}" = 8 ]

    # TTL 1: time exceeded from the VIP.
    local t0 t1 out
    t0=$(drops ttl_exceeded)
    out=$(in_ns "$FVS_NS_CLIENT" python3 "$WORK/raw.py" expect-time-exceeded "$FVS_CLIENT_IF" "$FVS_DIRECTOR_MAC_CLIENT" "$client_ip" "$FVS_VIP" 45679)
    local rc=$?
    check "$mode: a SYN with TTL 1 is answered: $out" [ "$rc" -eq 0 ]
    t1=$(drops ttl_exceeded)
    check "$mode: counted as ttl_exceeded ($((t1 - t0)))" [ $((t1 - t0)) -ge 1 ]

    # Real traffic is still served.
    local code
    code=$(in_ns "$FVS_NS_CLIENT" curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$FVS_VIP/")
    check "$mode: a real curl is still served (HTTP $code)" [ "$code" = 200 ]

    teardown
}

for mode in $MODES; do
    run_mode "$mode"
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
