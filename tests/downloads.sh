# Long-lived curl downloads for the failover tests (tests/e2e_sync.sh,
# tests/e2e_upgrade.sh), sourced.
#
#   downloads_start NS DIR N RATE URL [CURL_ARG...]
#                                          start N downloads of URL (the lab's
#                                          /big) at RATE in namespace NS, each
#                                          held before it connects
#   downloads_go                           let them all connect at once
#   downloads_done                         how many have ended (DIR/I.sum)
#   downloads_wait                         wait for every one to end
#
# Each download writes the sha256 of what it received (or of nothing) to
# DIR/I.sum. They are held so that their time starts when the last one is
# ready: starting a client (`ip netns exec`, a shell, sha256sum) is a few
# processes, and 200 of them on the one vCPU that a director's polling
# worker leaves free took longer than the first download lasted, so the
# event met finished downloads. Only curl itself starts after the go.
#
# RATE is paced at both ends: curl's --limit-rate keeps the client's
# window small, so that data is in flight at the event, and the server
# paces /big?rate=RATE (scripts/lab-rs-httpd.py), so that a download lasts
# its size / RATE: curl's limit alone let a 1 MiB download at 32k end in
# 17 s instead of 32.

# The downloads, each in a session of its own (setsid): a cleanup kills
# its group whole (bash, curl, sha256sum) by that id.
DL_PIDS=()
DL_DIR=""
DL_GO=""
DL_GO_AT=""

downloads_start() {
    local ns=$1 dir=$2 n=$3 rate=$4 url=$5 i
    shift 5
    DL_DIR=$dir
    mkdir -p "$dir"
    rm -f "$dir"/*
    mkfifo "$dir/go"
    : >"$dir/ready"
    # Held open read-write here, so that the clients' opens of the FIFO
    # do not wait for a writer and the go's bytes stay until read.
    exec {DL_GO}<>"$dir/go"
    for i in $(seq "$n"); do
        # shellcheck disable=SC2016 # expanded by the client's shell
        setsid ip netns exec "$ns" bash -c '
            dir=$1 i=$2; shift 2
            { printf x >>"$dir/ready"; read -r _ <"$dir/go"
              printf "%s " "$EPOCHREALTIME" >"$dir/$i.time"
              exec curl -w "%{stderr}%{time_connect} %{time_total} %{exitcode}\n" "$@" 2>>"$dir/$i.time"; } |
                sha256sum | cut -d" " -f1 >"$dir/$i.sum"' _ "$dir" "$i" \
            -s --max-time 120 --limit-rate "$rate" "$@" "$url?rate=$rate" &
        DL_PIDS+=($!)
    done
    for i in $(seq 600); do
        [ "$(stat -c %s "$dir/ready")" -ge "$n" ] && return 0
        sleep 0.1
    done
    echo "    only $(stat -c %s "$dir/ready") of $n downloads ready after 60 s"
    return 1
}

downloads_go() {
    local n=${#DL_PIDS[@]}
    # One line per client: bash's `read` takes a pipe byte by byte, so
    # each client consumes exactly its own line.
    DL_GO_AT=$EPOCHREALTIME
    head -c "$n" /dev/zero | tr '\0' '\n' >&"$DL_GO"
}

downloads_done() {
    find "$DL_DIR" -name '*.sum' -size +0 | wc -l
}

downloads_wait() {
    local p
    for p in "${DL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    DL_PIDS=()
    [ -n "$DL_GO" ] && exec {DL_GO}>&-
    DL_GO=""
}

# One line on the downloads' times: when the last curl started after the
# go, the slowest connect, the shortest and longest transfer (curl's -w),
# and how many curl saw fail.
downloads_times() {
    cat "$DL_DIR"/*.time 2>/dev/null | awk -v go="$DL_GO_AT" '
        NF >= 4 { n++; if ($1 - go > s) s = $1 - go; if ($2 > c) c = $2
                  if (!m || $3 < m) m = $3; if ($3 > x) x = $3; if ($4 != 0) f++ }
        END { printf "%d timed: started within %.1f s of the go, connected within %.3f s, transfers %.1f-%.1f s, %d failed\n", n, s, c, m, x, f }'
}
