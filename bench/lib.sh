# lib.sh — shell helpers shared by bench/demo.sh, bench/e2e.sh,
# bench/members.sh and bench/run.sh (sourced).

# median_run RATES: of a file of lines "rate k", one a run (rate nan for a
# run without a figure: it sorts as the slowest), prints the k of the median
# rate (the lower middle one when the runs are even in number).
median_run() {
    sort -g "$1" | awk '{ k[NR] = $NF } END { print k[int((NR + 1) / 2)] }'
}

# stop_pid PID SECONDS: TERM, then KILL after the grace period; the exit
# status lands in $stopped_rc.
stop_pid() {
    stopped_rc=0
    kill -TERM "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || stopped_rc=$?
}

# start_redis WHO PORT: redis-server on 127.0.0.1:PORT without persistence,
# logging to $tmp/redis.log; sets rpid and waits for PONG (exits on failure,
# WHO naming the script in the message).
start_redis() {
    redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no --protected-mode yes \
        --loglevel warning >"$tmp/redis.log" 2>&1 &
    rpid=$!
    i=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$2" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$rpid" 2>/dev/null; then
            echo "$1: redis-server did not start on 127.0.0.1:$2" >&2; cat "$tmp/redis.log" >&2; exit 1
        fi
        sleep 0.05
    done
}
