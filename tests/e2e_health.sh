#!/usr/bin/env bash
# End-to-end tests of real-server health checks in the namespace lab:
# TCP_CHECK (a server's port closes, then opens again), HTTP_GET (a server
# answers 500, with and without inhibit_on_failure), MISC_CHECK (a script's
# exit code), and the notify_down/notify_up scripts. Prints "N passed, M failed".
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$ROOT/scripts/lab.sh
FERROVS=${FERROVS:-$ROOT/target/release/ferrovs}
FERROVSADM=${FERROVSADM:-$ROOT/target/release/ferrovsadm}
PASS=0
FAIL=0
WORK=$(mktemp -d /tmp/ferrovs-health.XXXXXX)
LAB_NAME=""
FPID=""

[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -x "$FERROVS" ] || { echo "build first" >&2; echo "0 passed, 1 failed"; exit 1; }

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

cleanup() {
    [ -n "$FPID" ] && kill -TERM "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
    pkill -f "$WORK/" 2>/dev/null
    [ -n "$LAB_NAME" ] && "$LAB" down "$LAB_NAME" >/dev/null 2>&1
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

adm() { FERROVS_CTL=$WORK/ctl.sock "$FERROVSADM" "$@"; }
listed() { adm -Ln | grep -Eq "^  -> $1:[0-9]+ "; }
weight_of() { adm -Ln | awk -v a="$1" '$1 == "->" && index($2, a ":") == 1 {print $4}'; }
# wait_until SECONDS CMD... — polls every 200 ms.
wait_until() {
    local limit=$1; shift
    local n=$((limit * 5))
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
    return 1
}
not() { ! "$@"; }
answers() { for _ in $(seq "$1"); do ip netns exec "$FVS_NS_CLIENT" curl -s --max-time 2 "http://$FVS_VIP/" || echo ERROR; done; }

env_text=$("$LAB" up --mode dr --name "fvs-hc$$" --big-mib 1 2>"$WORK/lab.err") || { bad "lab: $(tail -2 "$WORK/lab.err")"; echo "$PASS passed, $FAIL failed"; exit 1; }
eval "$env_text"
LAB_NAME=$FVS_LAB_NAME

# Stop and start rs1's real HTTP server (the lab records its pid).
httpd_pid() { awk '$2 == "rs1" && $3 ~ /python/ {print $1}' "$FVS_RUN_DIR/pids" | while read -r p; do kill -0 "$p" 2>/dev/null && echo "$p"; done | tail -1; }
httpd_stop() {
    local p
    p=$(httpd_pid)
    [ -n "$p" ] || return 1
    tr '\0' '\n' <"/proc/$p/cmdline" >"$WORK/httpd.argv"
    kill "$p"
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$p"
}
httpd_start() {
    local argv=()
    mapfile -t argv <"$WORK/httpd.argv"
    ip netns exec "$FVS_NS_RS1" setsid "${argv[@]}" </dev/null >>"$WORK/httpd.log" 2>&1 &
    echo "$! rs1 ${argv[0]}" >>"$FVS_RUN_DIR/pids"
}

cat >"$WORK/notify.sh" <<EOF
#!/bin/sh
echo "\$0 \$*" >> $WORK/notes
EOF
printf '#!/bin/sh\ntest ! -f %s\n' "$WORK/misc-fail" >"$WORK/misc.sh"
chmod 755 "$WORK/notify.sh" "$WORK/misc.sh"

cat >"$WORK/k.conf" <<EOF
global_defs {
    router_id FVS_HC
    script_user root
}
ferrovs {
    interface $FVS_DIRECTOR_IF_CLIENT
    interface $FVS_DIRECTOR_IF_SERVER
    workers 1
    control_socket $WORK/ctl.sock
    http_listen 0.0.0.0:19190
}
virtual_server $FVS_VIP 80 {
    delay_loop 2
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server $FVS_RS1_IP 80 {
        weight 1
        notify_down "$WORK/notify.sh down rs1"
        notify_up "$WORK/notify.sh up rs1"
        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server $FVS_RS2_IP 80 {
        weight 2
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
    }
    real_server $FVS_RS3_IP 80 {
        weight 3
        inhibit_on_failure
        MISC_CHECK {
            misc_path "$WORK/misc.sh"
            misc_timeout 2
        }
        HTTP_GET {
            url {
                path /health
            }
            connect_timeout 1
            retry 0
        }
    }
}
EOF

FERROVS_CTL=$WORK/ctl.sock ip netns exec "$FVS_NS_DIRECTOR" "$FERROVS" run -f "$WORK/k.conf" >"$WORK/ferrovs.log" 2>&1 &
FPID=$!
wait_until 10 adm -Ln >/dev/null 2>&1
check "all three servers listed at start" bash -c "[ \$(FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | grep -c '^  -> 198') -eq 3 ]"

# TCP_CHECK: rs1's HTTP server stops; after the retries rs1 leaves.
check "rs1's HTTP server stopped" httpd_stop
if wait_until 15 not listed "$FVS_RS1_IP"; then ok "TCP_CHECK: rs1 leaves the rotation when its HTTP server stops"; else bad "TCP_CHECK: rs1 still listed"; fi
check "keepalived's log line" grep -q "Removing service \[$FVS_RS1_IP\]:tcp:80 from VS \[$FVS_VIP\]:tcp:80" "$WORK/ferrovs.log"
answers 12 >"$WORK/a1"
check "requests go to the others ($(sort "$WORK/a1" | uniq -c | tr -s ' \n' ' '))" bash -c "! grep -q -e rs1 -e ERROR '$WORK/a1'"
check "notify_down ran with its arguments" grep -q "notify.sh down rs1" "$WORK/notes"
httpd_start
if wait_until 15 listed "$FVS_RS1_IP"; then ok "TCP_CHECK: rs1 comes back when its HTTP server starts again"; else bad "TCP_CHECK: rs1 did not come back"; fi
answers 9 >"$WORK/a1b"
check "rs1 serves again ($(sort "$WORK/a1b" | uniq -c | tr -s ' \n' ' '))" grep -q rs1 "$WORK/a1b"
check "notify_up ran" grep -q "notify.sh up rs1" "$WORK/notes"

# HTTP_GET: 500 takes rs2 out, 200 brings it back.
"$LAB" rs-fail "$LAB_NAME" rs2 500 >/dev/null
if wait_until 15 not listed "$FVS_RS2_IP"; then ok "HTTP_GET: rs2 answering 500 leaves the rotation"; else bad "HTTP_GET: rs2 still listed"; fi
answers 10 >"$WORK/a2"
check "no request reaches rs2 ($(sort "$WORK/a2" | uniq -c | tr -s ' \n' ' '))" bash -c "! grep -q -e rs2 -e ERROR '$WORK/a2'"
"$LAB" rs-ok "$LAB_NAME" rs2 >/dev/null
if wait_until 15 listed "$FVS_RS2_IP"; then ok "HTTP_GET: rs2 answering 200 comes back"; else bad "HTTP_GET: rs2 did not come back"; fi

# MISC_CHECK with inhibit_on_failure: weight 0, still listed.
touch "$WORK/misc-fail"
if wait_until 15 bash -c "[ \"\$(FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | awk -v a=$FVS_RS3_IP '\$1 == \"->\" && index(\$2, a \":\") == 1 {print \$4}')\" = 0 ]"; then
    ok "MISC_CHECK failing with inhibit_on_failure: rs3 stays listed with weight 0"
else
    bad "MISC_CHECK: rs3 weight is $(weight_of "$FVS_RS3_IP")"
fi
answers 10 >"$WORK/a3"
check "a weight-0 server gets no new connections ($(sort "$WORK/a3" | uniq -c | tr -s ' \n' ' '))" bash -c "! grep -q -e rs3 -e ERROR '$WORK/a3'"
rm -f "$WORK/misc-fail"
if wait_until 15 bash -c "[ \"\$(FERROVS_CTL=$WORK/ctl.sock $FERROVSADM -Ln | awk -v a=$FVS_RS3_IP '\$1 == \"->\" && index(\$2, a \":\") == 1 {print \$4}')\" = 3 ]"; then
    ok "MISC_CHECK passing again: rs3 back to weight 3"
else
    bad "MISC_CHECK: rs3 weight is $(weight_of "$FVS_RS3_IP")"
fi

# The same state in the API.
api=$(ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19190/api/v1/health)
check "health state in /api/v1/health" bash -c "echo '$api' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert all(r[\"alive\"] for v in d for r in v[\"real_servers\"]), d'"
ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19190/metrics >"$WORK/metrics"
check "health state in /metrics" grep -qF "ferrovs_real_server_up{virtual_server=\"[$FVS_VIP]:tcp:80\",real_server=\"$FVS_RS1_IP\",real_port=\"80\"} 1" "$WORK/metrics"

# The HTTP endpoint under a connection flood from outside (the client's
# namespace, http_listen 0.0.0.0): 2,000 connections, half of them
# trickling a request head a byte a second. The endpoint holds at most
# 128, closes the rest at once (counted), drops the held ones after the
# 10 s header timeout, and the health checks keep every server in.
hold_http() { # N SECONDS: prints "opened refused closed-by-server"
    ip netns exec "$FVS_NS_CLIENT" python3 - "$FVS_DIRECTOR_IP_CLIENT" 19190 "$1" "$2" <<'PY'
import resource, socket, sys, time
host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, refused = [], 0
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=2)
        if i % 2:
            s.send(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        socks.append(s)
    except OSError:
        refused += 1
end = time.time() + secs
while time.time() < end:
    for s in socks[1::2]:
        try:
            s.send(b"a")
        except OSError:
            pass
    time.sleep(1)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(len(socks), refused, closed)
PY
}
removed0=$(grep -c 'Removing service' "$WORK/ferrovs.log")
hold_http 2000 15 >"$WORK/hold" 2>&1 &
HOLD=$!
sleep 6
fds=$(ls "/proc/$FPID/fd" | wc -l)
check "HTTP flood: ferrovs holds few descriptors meanwhile ($fds)" [ "$fds" -lt 400 ]
check "HTTP flood: every server still in the table, at its weight" bash -c "[ '$(weight_of "$FVS_RS1_IP")/$(weight_of "$FVS_RS2_IP")/$(weight_of "$FVS_RS3_IP")' = 1/2/3 ]"
wait "$HOLD"
read -r opened refused closed <"$WORK/hold"
check "HTTP flood: every held connection was closed by the endpoint ($closed of $opened; $refused refused at connect)" \
    bash -c "[ '${opened:-0}' -gt 1000 ] && [ '$closed' = '$opened' ]"
check "HTTP flood: the health checks kept every server in" \
    bash -c "[ \$(grep -c 'Removing service' '$WORK/ferrovs.log') = $removed0 ] && [ '$(weight_of "$FVS_RS1_IP")/$(weight_of "$FVS_RS2_IP")/$(weight_of "$FVS_RS3_IP")' = 1/2/3 ]"
ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19190/metrics >"$WORK/metrics-flood"
refused_metric=$(awk '/^ferrovs_http_refused_connections_total /{print $2}' "$WORK/metrics-flood")
check "HTTP flood: connections over the cap are counted (${refused_metric:-none})" bash -c "[ '${refused_metric:-0}' -gt 0 ]"
check "the descriptor limit was raised to the hard limit" \
    bash -c "awk '/^Max open files/ {exit !(\$4 == \$5)}' /proc/$FPID/limits"
# http_api local: the JSON API (VRIDs, VIPs, servers) is not served to
# the outside; /metrics is.
code=$(ip netns exec "$FVS_NS_CLIENT" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$FVS_DIRECTOR_IP_CLIENT:19190/api/v1/vrrp")
check "http_api local: /api/v1/vrrp refused to a remote client ($code)" [ "$code" = 403 ]
code=$(ip netns exec "$FVS_NS_CLIENT" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$FVS_DIRECTOR_IP_CLIENT:19190/metrics")
check "http_api local: /metrics served to a remote client ($code)" [ "$code" = 200 ]

# Prometheus: promtool accepts /metrics, and a real Prometheus server that
# scrapes ferrovs returns the per-real-server packet counts ferrovsadm shows.
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 http://127.0.0.1:19190/metrics >"$WORK/metrics.txt"
    check "promtool check metrics accepts /metrics" promtool check metrics <"$WORK/metrics.txt"
    cat >"$WORK/prometheus.yml" <<EOP
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ferrovs
    static_configs:
      - targets: ['127.0.0.1:19190']
EOP
    ip netns exec "$FVS_NS_DIRECTOR" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
        --web.listen-address=127.0.0.1:19191 >"$WORK/prometheus.log" 2>&1 &
    PROM=$!
    answers 30 >/dev/null
    sleep 4
    want=$(adm -Ln --stats --exact | awk -v a="$FVS_RS2_IP:80" '$1 == "->" && $2 == a {print $4}')
    q='sum(ferrovs_real_server_packets_total{real_server="'"$FVS_RS2_IP"'",direction="in"})'
    got=""
    for _ in $(seq 20); do
        got=$(ip netns exec "$FVS_NS_DIRECTOR" curl -s --max-time 2 -G http://127.0.0.1:19191/api/v1/query --data-urlencode "query=$q" |
            python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null)
        [ -n "$got" ] && [ "$got" = "$want" ] && break
        sleep 0.5
    done
    check "Prometheus scraped rs2's inbound packets: $got (ferrovsadm says $want)" bash -c "[ -n '$want' ] && [ '$got' = '$want' ] && [ '$want' -gt 0 ]"
    kill "$PROM" 2>/dev/null
    wait "$PROM" 2>/dev/null
else
    bad "promtool/prometheus not installed (Debian package prometheus)"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
