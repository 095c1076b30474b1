#!/usr/bin/env bash
# End-to-end IPv4 fragments (issue 18 item 8), outside in: for a lab of
# each mode in turn (scripts/lab.sh), `ferrovs run` with one UDP service on
# VIP:5300 and a UDP echo server on every real server (receive buffer
# 64 KiB: the real server's kernel reassembles), then
#
#   - a real client sends datagrams of 1000, 3000 and 6000 bytes to the VIP
#     through an ordinary UDP socket: its kernel fragments the larger ones
#     at MTU 1500; the director forwards each fragment, the real server's
#     kernel reassembles, echoes, and fragments its answer, which in NAT
#     and FULLNAT comes back through the director (the reverse rewrite on
#     every fragment); every answer must equal what was sent;
#   - hostile: while such exchanges run, a raw socket in the client
#     namespace sends non-first fragments with random IP ids to the VIP
#     (no first fragment ever comes): they fill the hold and are dropped,
#     counted (frag_hold_full, frag_timeout, frag_evicted), and every
#     legitimate exchange still succeeds. They come from the client's own
#     address, so now and then one shares a real datagram's id and spoils
#     it (as it would Linux's reassembly): the client asks again, as DNS
#     resolvers do, and every exchange must be answered within 3 tries;
#   - TCP: uploads to a TCP service on VIP:5301 from the client, routed
#     through the lab's router whose route to the VIP has MTU 1000, and the
#     client's path MTU discovery off (DF clear), as behind a tunnel or an
#     old router: the router fragments the client's full-sized segments,
#     the director forwards each fragment of each segment with the flow
#     (the first fragment's flags move the connection's state), the real
#     server reassembles and answers with the sha256 of what it got, which
#     must be what was sent. Two workers: a fragment that the veth's queue
#     steering (addresses only) gives to the worker not holding the flow is
#     passed to the other (frag_chained);
#   - /metrics shows the fragment counters.
# Today's code (before item 8) drops every fragment: the exchanges fail.
#
#   tests/e2e_frag.sh
#   BACKEND=afpacket tests/e2e_frag.sh          (default afxdp)
#   MODES="nat" tests/e2e_frag.sh               (default "dr nat fullnat tun")
# Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
BACKEND=${BACKEND:-afxdp}
MODES=${MODES:-dr nat fullnat tun}
WORKERS=${WORKERS:-2}
PORT=5300
TPORT=5301
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-frag.XXXXXX)
LAB_NAME=""
FPID=""
ECHO_PIDS=""

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
stop_echo() {
    local p
    for p in $ECHO_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ECHO_PIDS=""
}
teardown() {
    stop_echo
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
    metrics | awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"(\\{|$)" && index($1, f) {s += $2} END {printf "%d\n", s + 0}'
}
drops() { metric ferrovs_worker_drops_total "reason=\"$1\""; }

cat >"$WORK/frag.py" <<'EOF'
import json, os, random, select, socket, struct, sys, time

cmd = sys.argv[1]
if cmd == "echo":
    # echo PORT ADDR... — answers every datagram to one of the addresses
    # (those held here) with the same bytes, from the address it was sent
    # to (the VIP in DR and TUN).
    port, socks = int(sys.argv[2]), []
    for a in sys.argv[3:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((a, port))
        except OSError:
            continue
        socks.append(s)
    open(os.environ["READY"], "w").write("ready\n")
    while True:
        for s in select.select(socks, [], [])[0]:
            data, peer = s.recvfrom(65535)
            s.sendto(data, peer)
elif cmd == "tcpsum":
    # tcpsum PORT ADDR... — for every connection to one of the addresses:
    # read to EOF, answer the hex sha256 of what came, close.
    import hashlib, threading
    port, socks = int(sys.argv[2]), []
    for a in sys.argv[3:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((a, port))
        except OSError:
            continue
        s.listen(64)
        socks.append(s)
    def serve(c):
        with c:
            c.settimeout(20)
            h = hashlib.sha256()
            try:
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    h.update(b)
                c.sendall(h.hexdigest().encode())
            except OSError:
                pass
    open(os.environ["READY"], "w").write("ready\n")
    while True:
        for s in select.select(socks, [], [])[0]:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
elif cmd == "upload":
    # upload VIP PORT SIZE COUNT — COUNT connections, each sending SIZE
    # random bytes and checking the sha256 the server answers; prints
    # {"sent": n, "intact": n}.
    import hashlib
    vip, port, size, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    r = {"sent": count, "intact": 0}
    for i in range(count):
        payload = os.urandom(size)
        try:
            s = socket.create_connection((vip, port), timeout=10)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = s.recv(256)
                if not b:
                    break
                got += b
            s.close()
            r["intact"] += got.decode() == hashlib.sha256(payload).hexdigest()
        except OSError as e:
            print(f"upload {i}: {e}", file=sys.stderr)
    print(json.dumps(r))
elif cmd == "exchange":
    # exchange VIP PORT SIZE COUNT — COUNT datagrams of SIZE bytes, each
    # from a fresh socket, each asked up to 3 times (1 s apart); prints
    # {"sent": n, "answered": n, "first_try": n}.
    vip, port, size, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    r = {"sent": count, "answered": 0, "first_try": 0}
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((vip, port))
        payload = os.urandom(size)
        for attempt in range(3):
            s.send(payload)
            end, got = time.time() + 1.0, False
            while time.time() < end:
                if not select.select([s], [], [], max(0, end - time.time()))[0]:
                    break
                if s.recv(65535) == payload:
                    got = True
                    break
            if got:
                r["answered"] += 1
                r["first_try"] += attempt == 0
                break
        s.close()
    print(json.dumps(r))
elif cmd == "flood":
    # flood SRC VIP PORT SECONDS PPS — non-first fragments of UDP
    # datagrams that never had a first one, random ids and offsets, at
    # most PPS a second for SECONDS; prints how many were sent.
    src, vip, port, secs, pps = sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    a, b = socket.inet_aton(src), socket.inet_aton(vip)
    body = os.urandom(512)
    n, t0 = 0, time.time()
    while time.time() - t0 < secs:
        for _ in range(50):
            off = random.randint(1, 7000)  # in 8-byte units, never 0
            mf = random.random() < 0.5
            frag = (0x2000 if mf else 0) | off
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), random.randint(1, 65535),
                             frag, 64, 17, 0, a, b)
            s.sendto(ip + body, (vip, 0))
            n += 1
        ahead = n / pps - (time.time() - t0)
        if ahead > 0:
            time.sleep(ahead)
    print(n)
EOF

start_echo() {
    local i ns ip
    for i in 1 2 3; do
        ns=FVS_NS_RS$i ip=FVS_RS${i}_IP
        READY=$WORK/echo$i.ready ip netns exec "${!ns}" python3 "$WORK/frag.py" echo "$PORT" "$FVS_VIP" "${!ip}" \
            </dev/null >"$WORK/echo$i.log" 2>&1 &
        ECHO_PIDS="$ECHO_PIDS $!"
        READY=$WORK/sum$i.ready ip netns exec "${!ns}" python3 "$WORK/frag.py" tcpsum "$TPORT" "$FVS_VIP" "${!ip}" \
            </dev/null >"$WORK/sum$i.log" 2>&1 &
        ECHO_PIDS="$ECHO_PIDS $!"
    done
    for _ in $(seq 50); do
        [ "$(ls "$WORK"/*.ready 2>/dev/null | wc -l)" -eq 6 ] && return 0
        sleep 0.1
    done
    return 1
}

# The client reaches the VIP through the router, whose route to it has a
# smaller MTU, with path MTU discovery off (no DF): the router fragments
# the client's full-sized TCP segments on their way to the director.
fragmenting_path() {
    in_ns "$FVS_NS_CLIENT" sysctl -qw net.ipv4.ip_no_pmtu_disc=1 &&
        in_ns "$FVS_NS_CLIENT" sysctl -qw net.ipv4.conf.all.accept_redirects=0 &&
        in_ns "$FVS_NS_CLIENT" sysctl -qw "net.ipv4.conf.$FVS_CLIENT_IF.accept_redirects=0" &&
        in_ns "$FVS_NS_ROUTER" sysctl -qw net.ipv4.conf.all.send_redirects=0 &&
        in_ns "$FVS_NS_ROUTER" sysctl -qw "net.ipv4.conf.$FVS_ROUTER_IF_CLIENT.send_redirects=0" &&
        in_ns "$FVS_NS_ROUTER" ip route replace "$FVS_VIP/32" via "$FVS_DIRECTOR_IP_CLIENT" mtu 1000 &&
        in_ns "$FVS_NS_CLIENT" ip route replace "$FVS_VIP/32" via "$FVS_ROUTER_IP_CLIENT"
}

exchange() { in_ns "$FVS_NS_CLIENT" python3 "$WORK/frag.py" exchange "$FVS_VIP" "$PORT" "$@"; }
jget() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

run_mode() {
    local mode=$1 kind
    case $mode in nat) kind=NAT ;; dr) kind=DR ;; fullnat) kind=FNAT ;; tun) kind=TUN ;; *) bad "unknown mode $mode"; return ;; esac
    rm -f "$WORK/ctl.sock" "$WORK"/*.ready
    local env_text
    env_text=$("$LAB" up --mode "$mode" --name "fvs-fr$$" 2>"$WORK/lab.err") ||
        { bad "$mode: lab: $(tail -2 "$WORK/lab.err")"; return; }
    eval "$env_text"
    LAB_NAME=$FVS_LAB_NAME

    {
        echo "ferrovs {"
        echo "    backend $BACKEND"
        echo "    interface $FVS_DIRECTOR_IF_CLIENT"
        echo "    interface $FVS_DIRECTOR_IF_SERVER"
        echo "    workers $WORKERS"
        echo "    control_socket $WORK/ctl.sock"
        echo "}"
        if [ "$mode" = fullnat ]; then
            echo "local_address_group LAG1 {"
            echo "    $FVS_LIP_RANGE"
            echo "}"
        fi
        echo "virtual_server $FVS_VIP $PORT {"
        echo "    lb_algo rr"
        echo "    lb_kind $kind"
        echo "    protocol UDP"
        [ "$mode" = fullnat ] && echo "    laddr_group_name LAG1"
        for ip in $FVS_RS_IPS; do
            echo "    real_server $ip $PORT {"
            echo "        weight 1"
            echo "    }"
        done
        echo "}"
        echo "virtual_server $FVS_VIP $TPORT {"
        echo "    lb_algo rr"
        echo "    lb_kind $kind"
        echo "    protocol TCP"
        [ "$mode" = fullnat ] && echo "    laddr_group_name LAG1"
        for ip in $FVS_RS_IPS; do
            echo "    real_server $ip $TPORT {"
            echo "        weight 1"
            echo "    }"
        done
        echo "}"
    } >"$WORK/$mode.conf"

    start_echo || { bad "$mode: echo servers did not start: $(cat "$WORK"/echo*.log)"; teardown; return; }
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

    local r size
    # Unfragmented first (also warms ARP on both sides).
    r=$(exchange 1000 5)
    check "$mode: 1000-byte datagrams (not fragmented) are echoed ($r)" [ "$(echo "$r" | jget answered)" = 5 ]
    for size in 3000 6000; do
        r=$(exchange "$size" 20)
        check "$mode: $size-byte datagrams, fragmented both ways, are echoed intact ($r)" \
            [ "$(echo "$r" | jget answered)" = 20 ]
    done
    local fwd
    fwd=$(metric ferrovs_worker_frag_forwarded_total)
    # 20 × (3 + 5) fragments inbound, as many back in NAT and FULLNAT.
    check "$mode: /metrics counts the fragments forwarded ($fwd)" [ "$fwd" -ge 160 ]

    # Hostile: first-less fragments while real exchanges run.
    local h0 f0 t0 e0 n
    h0=$(drops frag_hold_full)
    in_ns "$FVS_NS_CLIENT" python3 "$WORK/frag.py" flood "$FVS_CLIENT_IP" "$FVS_VIP" "$PORT" 4 5000 >"$WORK/flood.n" &
    local gpid=$!
    sleep 0.5
    r=$(exchange 6000 20)
    wait "$gpid"
    n=$(cat "$WORK/flood.n")
    check "$mode: during a flood of $n first-less fragments, 6000-byte exchanges still succeed ($r)" \
        [ "$(echo "$r" | jget answered)" = 20 ]
    sleep 3.5 # the held ones time out (3 s)
    f0=$(drops frag_hold_full)
    t0=$(drops frag_timeout)
    e0=$(metric ferrovs_worker_frag_evicted_total)
    check "$mode: the flood is dropped and counted (frag_hold_full +$((f0 - h0)), frag_timeout $t0, evicted $e0)" \
        [ $((f0 - h0 + t0)) -ge $((n / 2)) ]
    echo "# $mode: frag counters: held $(metric ferrovs_worker_frag_held_total), released $(metric ferrovs_worker_frag_released_total), expired $(metric ferrovs_worker_frag_expired_total), datagrams $(metric ferrovs_worker_frag_datagrams_total)"
    r=$(exchange 3000 5)
    check "$mode: after the flood, fragmented exchanges work ($r)" [ "$(echo "$r" | jget answered)" = 5 ]

    # TCP, fragmented on its way by a router.
    local d0 c0
    d0=$(metric ferrovs_worker_frag_datagrams_total)
    r=$(in_ns "$FVS_NS_CLIENT" python3 "$WORK/frag.py" upload "$FVS_VIP" "$TPORT" 20000 2)
    check "$mode: TCP uploads not fragmented arrive intact ($r)" [ "$(echo "$r" | jget intact)" = 2 ]
    if fragmenting_path; then
        r=$(in_ns "$FVS_NS_CLIENT" python3 "$WORK/frag.py" upload "$FVS_VIP" "$TPORT" 200000 10 2>>"$WORK/upload.err")
        check "$mode: TCP uploads fragmented by a router on the way arrive intact ($r)" \
            [ "$(echo "$r" | jget intact)" = 10 ]
        n=$(( $(metric ferrovs_worker_frag_datagrams_total) - d0 ))
        c0=$(metric ferrovs_worker_frag_chained_total)
        check "$mode: the director saw them as fragments ($n segments, $c0 fragments passed between workers)" \
            [ "$n" -ge 1000 ]
        check "$mode: no TCP fragment dropped as unforwardable ($(drops fragment), orphans $(drops frag_orphan))" \
            [ "$(drops fragment)" = 0 ]
    else
        bad "$mode: could not set up the fragmenting path"
    fi
    teardown
}

for mode in $MODES; do
    run_mode "$mode"
done

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
