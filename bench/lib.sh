# lib.sh — shell helpers shared by bench/demo.sh and bench/e2e.sh (sourced).

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
