#!/usr/bin/env bash
# Self-test of the namespace lab (scripts/lab.sh), without a load balancer.
# Builds a lab per forwarding mode (all four side by side, as parallel test
# runs would), checks each the way the end-to-end tests rely on it, tears
# them down and checks that nothing is left. Needs root.
#
# For every mode: the directors hold their own addresses but never the VIP
# or the local addresses, and ip_forward=0; the director reaches every real
# server's HTTP (the health-check path); the client reaches every real server
# directly on every port and gets its name, sees itself as the client, and
# downloads /big with the recorded sha256; the failure switch works.
# DR/TUN: every real server holds the VIP (lo / tunl0) with the ARP sysctls,
# answers HTTP on it locally, nobody answers ARP for the VIP, and a frame
# forwarded by hand the way a DR (MAC rewrite) or TUN (IPIP) director would is
# answered from the VIP to the client through the router, not the director.
# NAT: real servers route the client through the director, whose kernel does
# not forward (so the client's own address cannot reach them), and the
# "direct" client address through the router. FULLNAT: the local addresses are
# on-link for the real servers. Also: two directors, a failing `up` leaves
# nothing behind, and `down` is idempotent.
#
# Last line: "N passed, M failed"; exit status non-zero when M > 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
LAB=$PWD/scripts/lab.sh
PROBE=$PWD/scripts/lab-probe.py
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

if [ "$(id -u)" -ne 0 ]; then
    echo "lab_selftest: must run as root (network namespaces)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
# expect DESC WANT GOT
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi; }
# succeeds DESC cmd...
succeeds() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }
fails() { local d=$1; shift; if "$@" >/dev/null 2>&1; then bad "$d (succeeded)"; else ok "$d"; fi; }

RUN_ID=st$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
LABS=()
cleanup() {
    local n
    for n in "${LABS[@]}"; do "$LAB" down "$n" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Load a lab's env file into FVS_* variables (clearing the previous lab's).
load_env() {
    local v
    for v in $(compgen -v FVS_); do unset "$v"; done
    # shellcheck disable=SC1090
    . "/run/ferrovs-lab/$1.env"
}

cx() { ip netns exec "$FVS_NS_CLIENT" "$@"; }
dx() { ip netns exec "$FVS_NS_DIRECTOR" "$@"; }
rsx() { local i=$1; shift; ip netns exec "$(eval echo "\$FVS_NS_RS$i")" "$@"; }
rsvar() { eval echo "\$FVS_RS$1_$2"; }
get() { curl -sS --max-time 5 "$@" 2>&1; }

check_director() {
    local m=$FVS_MODE ns=$1 a b addrs
    addrs=$(ip -n "$ns" -4 -o addr show | awk '{print $4}' | tr '\n' ' ')
    case " $addrs " in *" $FVS_VIP/"*) bad "$m: $ns holds the VIP" ;; *) ok "$m: $ns does not hold the VIP" ;; esac
    local lip held=""
    for lip in $FVS_LIPS; do case " $addrs " in *" $lip/"*) held="$held $lip" ;; esac; done
    expect "$m: $ns holds no local address" "" "$held"
    expect "$m: $ns ip_forward" 0 "$(ip netns exec "$ns" sysctl -n net.ipv4.ip_forward)"
    a=$(ip -n "$ns" -4 -o addr show dev "$2" | awk '{print $4}')
    b=$(ip -n "$ns" -4 -o addr show dev "$3" | awk '{print $4}')
    expect "$m: $ns client-side address on $2" "$4/24" "$a"
    expect "$m: $ns server-side address on $3" "$5/24" "$b"
}

check_lab() {
    local name=$1 m i ip p src=() got
    load_env "$name"
    m=$FVS_MODE
    echo "# $m lab $name: client $FVS_CLIENT_IF, director $FVS_DIRECTOR_IFS"
    expect "$m: namespaces" 7 "$(ip netns list | awk '{print $1}' | grep -c "^$name-")"

    check_director "$FVS_NS_DIRECTOR" "$FVS_DIRECTOR_IF_CLIENT" "$FVS_DIRECTOR_IF_SERVER" \
        "$FVS_DIRECTOR_IP_CLIENT" "$FVS_DIRECTOR_IP_SERVER"
    expect "$m: director MAC" "$FVS_DIRECTOR_MAC_SERVER" \
        "$(ip -n "$FVS_NS_DIRECTOR" -o link show "$FVS_DIRECTOR_IF_SERVER" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)"
    expect "$m: director offloads off" "tx-checksumming: off" \
        "$(dx ethtool -k "$FVS_DIRECTOR_IF_SERVER" | grep '^tx-checksumming')"
    expect "$m: client TSO off" "tcp-segmentation-offload: off" \
        "$(cx ethtool -k "$FVS_CLIENT_IF" | grep '^tcp-segmentation-offload')"

    # NAT: only the "direct" client address is routed around the director.
    [ "$m" = nat ] && src=(--interface "$FVS_CLIENT_DIRECT_IP")
    for i in 1 2 3; do
        ip=$(rsvar "$i" IP)
        expect "$m: director -> rs$i (health-check path)" "rs$i" "$(dx curl -sS --max-time 5 "http://$ip/health" 2>&1)"
        for p in $FVS_RS_PORTS; do
            expect "$m: client -> rs$i:$p directly" "rs$i" "$(cx curl -sS --max-time 5 "${src[@]}" "http://$ip:$p/" 2>&1)"
        done
        expect "$m: rs$i sees the client" "rs$i client=${src[1]:-$FVS_CLIENT_IP}" \
            "$(cx curl -sS --max-time 5 "${src[@]}" "http://$ip/ip" 2>&1 | cut -d: -f1)"
    done
    got=$(cx curl -sS --max-time 30 "${src[@]}" "http://$FVS_RS1_IP$FVS_BIG_PATH" | sha256sum | cut -d' ' -f1)
    expect "$m: /big from rs1 has the recorded sha256" "$FVS_BIG_SHA256" "$got"
    got=$(cx curl -sS --max-time 5 -I "${src[@]}" "http://$FVS_RS2_IP$FVS_BIG_PATH" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')
    expect "$m: /big size" "$FVS_BIG_SIZE" "$got"

    "$LAB" rs-fail "$name" rs2
    expect "$m: rs-fail makes rs2 answer 500" 500 \
        "$(cx curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${src[@]}" "http://$FVS_RS2_IP/")"
    "$LAB" rs-ok "$name" rs2
    expect "$m: rs-ok makes rs2 answer 200" 200 \
        "$(cx curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${src[@]}" "http://$FVS_RS2_IP/")"
    expect "$m: exec runs in the role's namespace" "$FVS_NS_RS3" "$("$LAB" exec "$name" rs3 ip netns identify)"

    case $m in
    dr | tun)
        local dev=lo
        [ "$m" = tun ] && dev=tunl0
        for i in 1 2 3; do
            expect "$m: rs$i holds the VIP on $dev" "$FVS_VIP/32" \
                "$(rsx "$i" ip -4 -o addr show dev "$dev" | awk -v v="$FVS_VIP/32" '$4==v{print $4}')"
            expect "$m: rs$i arp_ignore/arp_announce" "1 2" \
                "$(rsx "$i" sysctl -n net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce | tr '\n' ' ' | sed 's/ $//')"
            expect "$m: rs$i answers on the VIP locally" "rs$i" "$(rsx "$i" curl -sS --max-time 5 "http://$FVS_VIP/" 2>&1)"
            expect "$m: rs$i default route via the router" "default via $FVS_ROUTER_IP_SERVER" \
                "$(rsx "$i" ip route show default | awk '{print $1, $2, $3}')"
        done
        if [ "$m" = tun ]; then
            for i in 1 2 3; do
                expect "$m: rs$i rp_filter off (all, tunl0, $(rsvar "$i" IF))" "0 0 0" \
                    "$(rsx "$i" sysctl -n net.ipv4.conf.all.rp_filter net.ipv4.conf.tunl0.rp_filter \
                        "net.ipv4.conf.$(rsvar "$i" IF).rp_filter" | tr '\n' ' ' | sed 's/ $//')"
            done
        fi
        fails "$m: nobody answers ARP for the VIP on the server segment" \
            dx "$PY" "$PROBE" arp --dev "$FVS_DIRECTOR_IF_SERVER" --target "$FVS_VIP"
        fails "$m: nobody answers ARP for the VIP on the client segment (no ferrovs)" \
            cx "$PY" "$PROBE" arp --dev "$FVS_CLIENT_IF" --target "$FVS_VIP"
        # What a DR / TUN director does, by hand: a frame to the real server's
        # MAC carrying client -> VIP (TUN: inside IPIP to the real server).
        # The reply must come from the VIP, through the router.
        for i in 1 2 3; do
            local outer=() rpid
            [ "$m" = tun ] && outer=(--outer-src "$FVS_DIRECTOR_IP_SERVER" --outer-dst "$(rsvar "$i" IP)")
            cx "$PY" "$PROBE" recv-echo --dev "$FVS_CLIENT_IF" --src "$FVS_VIP" --ident $((4000 + i)) \
                --timeout 3 >"/tmp/lab_selftest.$$.echo" 2>&1 &
            rpid=$!
            sleep 0.3
            dx "$PY" "$PROBE" send-echo --dev "$FVS_DIRECTOR_IF_SERVER" --dst-mac "$(rsvar "$i" MAC)" \
                --src "$FVS_CLIENT_IP" --dst "$FVS_VIP" --ident $((4000 + i)) "${outer[@]}" >/dev/null 2>&1
            wait "$rpid"
            expect "$m: rs$i answers a forwarded request from the VIP, via the router" \
                "reply from $FVS_VIP via $FVS_ROUTER_MAC_CLIENT" "$(cat "/tmp/lab_selftest.$$.echo")"
            rm -f "/tmp/lab_selftest.$$.echo"
        done
        ;;
    nat)
        for i in 1 2 3; do
            expect "$m: rs$i routes the client via the director" "via $FVS_NAT_GW" \
                "$(rsx "$i" ip route get "$FVS_CLIENT_IP" | grep -o "via [0-9.]*")"
            expect "$m: rs$i routes the direct address via the router" "via $FVS_ROUTER_IP_SERVER" \
                "$(rsx "$i" ip route get "$FVS_CLIENT_DIRECT_IP" | grep -o "via [0-9.]*")"
            expect "$m: rs$i does not hold the VIP" "" "$(rsx "$i" ip -4 -o addr show | grep -F " $FVS_VIP/")"
        done
        expect "$m: NAT gateway is the director" "$FVS_DIRECTOR_IP_SERVER" "$FVS_NAT_GW"
        fails "$m: the director's kernel does not forward (client's own address cannot reach rs1)" \
            cx curl -sS --max-time 2 --interface "$FVS_CLIENT_IP" "http://$FVS_RS1_IP/"
        ;;
    fullnat)
        local lip
        for i in 1 2 3; do
            for lip in $FVS_LIPS; do
                got=$(rsx "$i" ip route get "$lip" | head -1)
                case $got in *" via "*) bad "$m: rs$i reaches $lip through a gateway: $got" ;;
                *" dev $(rsvar "$i" IF) "*) ok "$m: rs$i reaches local address $lip on-link" ;;
                *) bad "$m: rs$i route to $lip: $got" ;; esac
            done
            expect "$m: rs$i default route via the router" "default via $FVS_ROUTER_IP_SERVER" \
                "$(rsx "$i" ip route show default | awk '{print $1, $2, $3}')"
        done
        ;;
    esac
}

check_gone() {
    local name=$1 sfx=$2 leftovers
    expect "$name: no namespace left" "" "$(ip netns list | awk '{print $1}' | grep "^$name-" | tr '\n' ' ')"
    expect "$name: no link left in the root namespace" "" "$(ip -o link show | grep -- "-$sfx" | awk '{print $2}' | tr '\n' ' ')"
    leftovers=$(pgrep -f "/run/ferrovs-lab/$name/" | tr '\n' ' ')
    expect "$name: no process left" "" "$leftovers"
    fails "$name: no env file left" test -e "/run/ferrovs-lab/$name.env"
    fails "$name: no run dir left" test -e "/run/ferrovs-lab/$name"
}

# All four modes, side by side.
declare -A SFX
for m in dr nat fullnat tun; do
    n=fvs-$RUN_ID-$m
    LABS+=("$n")
    if out=$("$LAB" up --mode "$m" --name "$n" 2>/tmp/lab_selftest.$$.err); then
        ok "up --mode $m"
        SFX[$n]=$(echo "$out" | sed -n "s/^FVS_CLIENT_IF='cla-\(.*\)'/\1/p")
        expect "$m: up prints the env file" "$(cat "/run/ferrovs-lab/$n.env")" "$out"
    else
        bad "up --mode $m: $(tail -3 /tmp/lab_selftest.$$.err)"
    fi
    rm -f /tmp/lab_selftest.$$.err
done
for m in dr nat fullnat tun; do
    n=fvs-$RUN_ID-$m
    [ -e "/run/ferrovs-lab/$n.env" ] && check_lab "$n"
done
for m in dr nat fullnat tun; do
    n=fvs-$RUN_ID-$m
    succeeds "down $n" "$LAB" down "$n"
    check_gone "$n" "${SFX[$n]:-none}"
    succeeds "down $n again (idempotent)" "$LAB" down "$n"
done

# Two directors (NAT: the real servers' gateway is the VRRP address).
n=fvs-$RUN_ID-ha
LABS+=("$n")
if "$LAB" up --mode nat --directors 2 --name "$n" >/dev/null 2>&1; then
    ok "up --mode nat --directors 2"
    load_env "$n"
    expect "ha: namespaces" 8 "$(ip netns list | awk '{print $1}' | grep -c "^$n-")"
    check_director "$FVS_NS_DIRECTOR2" "$FVS_DIRECTOR2_IF_CLIENT" "$FVS_DIRECTOR2_IF_SERVER" \
        "$FVS_DIRECTOR2_IP_CLIENT" "$FVS_DIRECTOR2_IP_SERVER"
    expect "ha: director2 -> rs3" rs3 "$(ip netns exec "$FVS_NS_DIRECTOR2" curl -sS --max-time 5 "http://$FVS_RS3_IP/" 2>&1)"
    expect "ha: real servers' gateway is the VRRP address" "default via $FVS_NAT_GW" \
        "$(rsx 1 ip route show default | awk '{print $1, $2, $3}')"
    sfx=${FVS_CLIENT_IF#cla-}
    succeeds "down $n" "$LAB" down "$n"
    check_gone "$n" "$sfx"
else
    bad "up --mode nat --directors 2"
fi

# A failing `up` (the second HTTP server cannot bind the same port) undoes
# everything it built.
n=fvs-$RUN_ID-bad
LABS+=("$n")
fails "up with a real server that cannot start fails" "$LAB" up --mode dr --name "$n" --rs-port 80 --rs-port 80
check_gone "$n" "$(printf '%s' "$n" | sha1sum | cut -c1-6)"
fails "up without --mode fails" "$LAB" up --name "$n"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
