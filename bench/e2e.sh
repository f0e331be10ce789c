#!/bin/sh
# bench/e2e.sh: end-to-end figures of freshrecd on this machine, all on
# 127.0.0.1. Starts redis-server (no persistence) and `freshrecd --embedded`
# (librdkafka's mock cluster in-process) on free loopback ports, then runs
# build/fr-bench (bench/freshness.c) three times:
#   reference   produce only, to a topic nobody consumes: the raw rate of the
#               same producer to the same mock cluster with nobody learning
#   sustained   N events produced first into a mock cluster that fr-bench
#               hosts (8 partitions), no daemon consuming; then a fresh
#               freshrecd (not --embedded) is started against it and timed
#               from the first /metrics scrape that shows consumed events
#               until all are learned and their vectors written to Redis,
#               over the events not consumed at that scrape (the daemon
#               answers between turns): the daemon's own rate, with
#               no load generator on the cores; with one learner thread
#               (the default) and with one per core, REPEAT times each
#               (default 3; every drain is printed, and their median)
#   end to end  --rate 0: N events as fast as possible, timed until all are
#               learned and their vectors written to Redis, the producer
#               running on the same two cores meanwhile
#   freshness   --rate R for 10 s at R = 10000, 50000 and 100000, every 100th
#               event a probe, a new user clicking a new item: produce ->
#               the SET of the user's vector announced by Redis, and of the
#               item's first vector; beside the first, the probes' Kafka leg
#               alone (plain consumers; not beside the others, where they
#               would take CPU from the daemon)
# and prints a table with the command behind each figure. Everything it
# started is stopped on the way out, whatever the outcome.
# Used by bench/run.sh (make bench). Knobs: E2E_EVENTS (200000), REPEAT (3), FRESH_RATES
# ("10000 50000 100000"), FRESH_SECONDS (10), DAEMON_ARGS (more freshrecd arguments, e.g.
# "--set redis.publish_interval_ms=50"; without it the figures are the defaults').
set -eu
B=${BUILD:-build}
FB="$B/fr-bench"
FRD="$B/freshrecd"
N=${E2E_EVENTS:-200000}
RATES=${FRESH_RATES:-10000 50000 100000}
SECS=${FRESH_SECONDS:-10}
REPEAT=${REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "e2e: REPEAT must be a positive integer, not '$REPEAT'" >&2; exit 2 ;; esac
EVERY=100

for f in "$FB" "$FRD"; do
    [ -x "$f" ] || { echo "e2e: $f is missing; run make bench" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "e2e: redis-server not found (make deps)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "e2e: redis-cli not found (make deps)" >&2; exit 1; }

tmp=$(mktemp -d)
rpid=""; dpid=""; spid=""; fpid=""
. "$(dirname "$0")/lib.sh" # stop_pid, start_redis, median_run
cleanup() {
    [ -n "$spid" ] && stop_pid "$spid" 10
    [ -n "$fpid" ] && { rm -f "$tmp/sustained.brokers"; stop_pid "$fpid" 5; }
    [ -n "$dpid" ] && stop_pid "$dpid" 10
    [ -n "$rpid" ] && stop_pid "$rpid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

RP=$("$FB" --free-port)
SP=$("$FB" --free-port)
while [ "$SP" = "$RP" ]; do SP=$("$FB" --free-port); done

start_redis e2e "$RP"

# sustained: preload, then a fresh daemon drains it (fr-bench hosts the
# brokers); with one learner thread (the default) and with one per core,
# REPEAT drains each. Files: $tmp/sustained-THREADS-K.{cmd,out,err,json},
# and $tmp/sustained-THREADS.json the drain of median rate (its K in
# sustained-THREADS.median); srcode: fr-bench's exit code of the last run
SP2=$("$FB" --free-port)
while [ "$SP2" = "$RP" ] || [ "$SP2" = "$SP" ]; do SP2=$("$FB" --free-port); done
ready="$tmp/sustained.brokers"
sustained() { # threads, run
    f="$tmp/sustained-$1-$2"
    echo "\$ $FB --mock-cluster 8 --ready-file $ready --redis 127.0.0.1:$RP --stats $SP2 --rate 0 --events $N --drain 60 --timeout 180 (freshrecd: model.threads=$1)" >"$f.cmd"
    "$FB" --mock-cluster 8 --ready-file "$ready" --redis "127.0.0.1:$RP" --stats "$SP2" --rate 0 \
        --events "$N" --drain 60 --timeout 180 >"$f.out" 2>"$f.err" &
    fpid=$!
    i=0
    until [ -s "$ready" ]; do
        i=$((i + 1))
        if [ $i -gt 1200 ] || ! kill -0 "$fpid" 2>/dev/null; then
            echo "e2e: fr-bench did not preload the events:" >&2; cat "$f.err" >&2; exit 1
        fi
        sleep 0.1
    done
    SARGS="--set kafka.brokers=$(cat "$ready") --set redis.host=127.0.0.1 --set redis.port=$RP --set stats.listen=127.0.0.1 --set stats.port=$SP2 --set model.threads=$1 ${DAEMON_ARGS:-}"
    # shellcheck disable=SC2086 # SARGS is split on purpose
    "$FRD" $SARGS 2>"$tmp/freshrecd-sustained-$1-$2.log" &
    spid=$!
    # fr-bench keeps its brokers up until the file goes: the daemon stops first
    i=0
    until grep -q '^{' "$f.out" 2>/dev/null || ! kill -0 "$fpid" 2>/dev/null || [ $i -gt 2000 ]; do
        sleep 0.1; i=$((i + 1))
    done
    stop_pid "$spid" 15
    spid=""
    rm -f "$ready"
    srcode=0
    wait "$fpid" 2>/dev/null || srcode=$?
    fpid=""
    grep '^{' "$f.out" | tail -n 1 >"$f.json" || true
}
NP=$(nproc)
STHREADS="1"
[ "$NP" -gt 1 ] && STHREADS="1 $NP"
sfailed=0
jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | tail -n 1; }
for th in $STHREADS; do : >"$tmp/sustained-$th.rates"; done
# thread counts alternate, drain by drain: this VM's speed drifts. In this
# shell, not a pipeline: the cleanup must see fpid and spid.
for k in $(seq "$REPEAT"); do
    for th in $STHREADS; do
        sustained "$th" "$k"
        [ "$srcode" -eq 0 ] || sfailed=$th
        r=$(jget e2e_events_per_s "$tmp/sustained-$th-$k.json")
        echo "${r:-nan} $k" >>"$tmp/sustained-$th.rates" # no rate: the slowest (nan sorts first)
    done
done
for th in $STHREADS; do # the median drain
    median_run "$tmp/sustained-$th.rates" >"$tmp/sustained-$th.median"
    cp "$tmp/sustained-$th-$(cat "$tmp/sustained-$th.median").json" "$tmp/sustained-$th.json"
done

DARGS="--embedded --set redis.host=127.0.0.1 --set redis.port=$RP --set stats.listen=127.0.0.1 --set stats.port=$SP ${DAEMON_ARGS:-}"
# shellcheck disable=SC2086 # DARGS is split on purpose
"$FRD" $DARGS 2>"$tmp/freshrecd.log" &
dpid=$!
i=0
while :; do
    BR=$(sed -n 's/.*embedded mock cluster at \([0-9.:]*\).*/\1/p' "$tmp/freshrecd.log" | head -n 1)
    if [ -n "$BR" ] && "$FB" --get "$SP" /healthz >/dev/null 2>&1; then break; fi
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$dpid" 2>/dev/null; then
        echo "e2e: freshrecd did not become healthy in 15 s:" >&2; cat "$tmp/freshrecd.log" >&2; exit 1
    fi
    sleep 0.05
done
# shellcheck disable=SC2086
"$FRD" $DARGS --print-config >"$tmp/config.ini"
PI=$(sed -n 's/^publish_interval_ms = //p' "$tmp/config.ini")
PARTS=$(sed -n 's/^embedded_partitions = //p' "$tmp/config.ini")

leg() { # file, fetch wait, field
    sed -n "s/.*{\"fetch_wait_max_ms\":$2,\([^}]*\)}.*/\1/p" "$1" | sed -n "s/.*\"$3\":\([-0-9.e+]*\).*/\1/p"
}
bench() { # name, args...: runs fr-bench, shows its lines, keeps its JSON line
    name=$1; shift
    echo "\$ $FB $*" >"$tmp/$name.cmd"
    rc=0
    "$FB" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    sed -e '/^{/d' -e 's/^/    /' "$tmp/$name.out" "$tmp/$name.err"
    tail -n 1 "$tmp/$name.out" >"$tmp/$name.json"
    [ $rc -eq 0 ] || { echo "e2e: $name: fr-bench exited with $rc" >&2; failed=1; }
}
failed=0
echo "freshrec end to end — freshrecd --embedded (librdkafka mock cluster, $PARTS partitions),"
echo "$(redis-server --version | cut -d' ' -f1-3), all on 127.0.0.1; $(nproc) CPUs; publish interval $PI ms"
[ -z "${DAEMON_ARGS:-}" ] || echo "freshrecd with DAEMON_ARGS: $DAEMON_ARGS (not the defaults)"
for th in $STHREADS; do
    for k in $(seq "$REPEAT"); do
        echo "sustained, drain $k of $REPEAT: $N events preloaded into a mock cluster fr-bench hosts, then a fresh freshrecd ($th learner thread(s)) drains them"
        sed -e '/^{/d' -e 's/^/    /' "$tmp/sustained-$th-$k.out" "$tmp/sustained-$th-$k.err"
    done
done
[ "$sfailed" -eq 0 ] || { echo "e2e: sustained ($sfailed threads): fr-bench failed" >&2; failed=1; }
echo "reference: raw produce rate, same producer, same mock cluster, topic nobody consumes"
bench reference --brokers "$BR" --topic bench.produce-only --produce-only --events "$N" --timeout 120
echo "end to end: $N events as fast as possible, until learned and written to Redis"
bench e2e --brokers "$BR" --redis "127.0.0.1:$RP" --stats "$SP" --rate 0 --events "$N" \
    --drain 60 --timeout 180
first=""
for RATE in $RATES; do
    echo "freshness: $RATE events/s for $SECS s, every ${EVERY}th event a new user clicking a new item"
    legs=""
    [ -n "$first" ] || { first=$RATE; legs="--kafka-leg 500,10"; }
    # shellcheck disable=SC2086 # legs is split on purpose
    bench "fresh-$RATE" --brokers "$BR" --redis "127.0.0.1:$RP" --stats "$SP" --rate "$RATE" \
        --seconds "$SECS" --probe-every "$EVERY" $legs --drain 15 --timeout 120
done

ref=$(jget acked_events_per_s "$tmp/reference.json")
e2e=$(jget e2e_events_per_s "$tmp/e2e.json")
num() { [ -n "$1" ] && printf '%.0f' "$1" || printf 'n/a'; }
ms() { [ -n "$1" ] && printf '%.1f' "$1" || printf 'n/a'; }
echo
printf '%-46s %-28s %s\n' "figure" "value" "command"
printf '%-46s %-28s %s\n' "produce only (reference, nobody learning)" "$(num "$ref") events/s" \
    "$(cat "$tmp/reference.cmd")"
for th in $STHREADS; do
    for k in $(seq "$REPEAT"); do
        printf '%-46s %-28s %s\n' "sustained, $th thread(s), drain $k of $REPEAT" \
            "$(num "$(jget e2e_events_per_s "$tmp/sustained-$th-$k.json")") events/s" \
            "$(cat "$tmp/sustained-$th-$k.cmd")"
    done
    printf '%-46s %-28s %s\n' "sustained, $th thread(s): preloaded -> in Redis" \
        "$(num "$(jget e2e_events_per_s "$tmp/sustained-$th.json")") events/s" \
        "(the median drain: $(cat "$tmp/sustained-$th.median") above)"
done
printf '%-46s %-28s %s\n' "end to end: produced -> learned -> in Redis" "$(num "$e2e") events/s" \
    "$(cat "$tmp/e2e.cmd")"
for RATE in $RATES; do
    f="$tmp/fresh-$RATE.json"
    p50=$(jget fresh_p50_ms "$f"); p99=$(jget fresh_p99_ms "$f"); pmax=$(jget fresh_max_ms "$f")
    seen=$(jget probes_seen "$f"); probes=$(jget probes "$f")
    made=$(jget acked_events_per_s "$f")
    printf '%-46s %-28s %s\n' "freshness p50 / p99 / max at $RATE events/s" \
        "$(ms "$p50") / $(ms "$p99") / $(ms "$pmax") ms" "$(cat "$tmp/fresh-$RATE.cmd")"
    printf '%-46s %-28s %s\n' "  probes whose vector reached Redis" "${seen:-0} of ${probes:-?}" \
        "(same run; produced at $(num "$made") events/s)"
    printf '%-46s %-28s %s\n' "  new item's first vector p50 / p99 / max" \
        "$(ms "$(jget item_fresh_p50_ms "$f")") / $(ms "$(jget item_fresh_p99_ms "$f")") / $(ms "$(jget item_fresh_max_ms "$f")") ms" \
        "(same run, the probes' items)"
    if [ "$RATE" = "$first" ]; then
        for w in 500 10; do
            l50=$(leg "$f" $w p50_ms); l99=$(leg "$f" $w p99_ms); lmax=$(leg "$f" $w max_ms)
            printf '%-46s %-28s %s\n' "  Kafka leg alone, fetch.wait.max.ms $w" \
                "$(ms "$l50") / $(ms "$l99") / $(ms "$lmax") ms" "(same run, a plain consumer)"
        done
    fi
done
pil="publish interval (freshrecd default)"
[ -z "${DAEMON_ARGS:-}" ] || pil="publish interval (with DAEMON_ARGS)"
printf '%-46s %-28s\n' "$pil" "$PI ms"
for RATE in $RATES; do
    p99=$(jget fresh_p99_ms "$tmp/fresh-$RATE.json")
    [ -n "$p99" ] || continue
    awk -v p="$p99" -v i="$PI" -v r="$RATE" 'BEGIN {
        printf "freshness at %d events/s: p99 %.1f ms; publish interval + 100 ms = %d ms: %s\n",
            r, p, i + 100, (p <= i + 100) ? "met" : "NOT met" }'
    ip99=$(jget item_fresh_p99_ms "$tmp/fresh-$RATE.json")
    [ -n "$ip99" ] || continue
    awk -v p="$ip99" -v r="$RATE" 'BEGIN {
        printf "new item in Redis at %d events/s: p99 %.1f ms after its first click; 100 ms: %s\n",
            r, p, (p <= 100) ? "met" : "NOT met" }'
done
echo "note: librdkafka's mock broker holds a fetch that finds no data for the consumer's"
echo "      fetch.wait.max.ms (librdkafka's default: 500 ms) even when data arrives meanwhile;"
echo "      a real broker answers as soon as data arrives. The two Kafka-leg rows show what"
echo "      that costs a consumer. Freshness = the daemon's own Kafka leg + learning + waiting"
echo "      for the publish timer + the Redis write."

# the daemon's own word on the run
echo "freshrecd's /metrics after the three runs:"
"$FB" --get "$SP" /metrics >"$tmp/metrics.txt" 2>/dev/null || true
grep -E '^freshrec_(events_learned_total|events_skipped_total|publish_total|publish_errors_total|dirty_keys) ' \
    "$tmp/metrics.txt" | sed 's/^/    /' || true
stop_pid "$dpid" 15
dpid=""
if [ "$stopped_rc" -eq 0 ] && grep -q "stopped:" "$tmp/freshrecd.log"; then
    echo "freshrecd stopped on SIGTERM, exit code 0: $(sed -n 's/.*stopped: //p' "$tmp/freshrecd.log" | tail -n 1)"
else
    echo "e2e: freshrecd exited with $stopped_rc after SIGTERM; its last lines:" >&2
    tail -n 5 "$tmp/freshrecd.log" >&2
    failed=1
fi
[ "$failed" -eq 0 ] || { echo "e2e: some figures are missing or incomplete (see above)" >&2; exit 1; }
