#!/bin/sh
# bench/members.sh: several freshrecd members learning one model through the
# model log ([cluster] model_topic), on this machine, all on 127.0.0.1: the
# events/s of 1, 2 and 3 members, the model log's bytes per event and the
# 99th percentile of the shared rows' staleness, beside one freshrecd alone
# (no model topic: the reference) in the same run, on the same stream and
# model. Used by bench/run.sh (make bench) after bench/e2e.sh.
#
# Each drain: build/fr-bench (bench/freshness.c) hosts librdkafka's mock
# cluster (topic "events" in 8 partitions and, for members, "model" in one)
# and writes its address to a file; the daemons (one learner thread each)
# are started against it, and once every one consumes (members: every input
# partition live, their claims accepted) fr-bench SIGSTOPs them, preloads N
# events, SIGCONTs them and times them from then until every event is
# learned, every vector written to Redis and (members) every member has
# read the model log to its end: a group that is up when a backlog arrives.
# (Timed from the first consumed event instead, as e2e.sh's sustained drain
# is, a group is not measured: members join and claim a second or more
# apart, and the first drains its share before the last one learns.) Then,
# half a second on, each member's /metrics: bytes and input events of the
# window records it produced (bytes per event = their sums' ratio), the p99
# of its applied records' age (production to application, over its last
# 1024 records: the staleness of shared rows, not counting the window's own
# length), and the model log's gaps. Redis is flushed before every drain.
#
# The model (said beside every figure): the mock cluster keeps about 5 MB of
# a partition, and a member whose reader falls behind by more loses records
# (a log gap: its shared rows differ from the others', its refused windows
# are learned again). The default NeuMF-32 writes about 1,400 bytes per
# event of this stream at the default windows (500 events or 200 ms, one
# member), and three members on two cores fell behind: gaps, and a drain
# that never ended. So by default every daemon here, the reference too,
# learns NeuMF-8 (model.dim=8, model.mlp=16,8, as
# tests/integration/test_cluster.c: about 400 bytes per event with one
# member, 440 with three), with the default windows. Larger windows write fewer
# bytes per event but larger records, and here a reader got nothing at all
# from a log holding two records of 3 MB (librdkafka 2.0.2). A drain whose
# members saw a gap, a resync or a claim while timed is marked, and is not a
# figure (nor the median).
#
# Knobs: E2E_EVENTS (200000), REPEAT (3: the drains of each count alternate,
# and the median is shown beside every drain), MEMBERS ("1 2 3"),
# MEMBERS_MODEL (freshrecd arguments of every daemon, default above; empty:
# the default NeuMF-32), MEMBERS_WINDOW (freshrecd arguments of the members
# only, e.g. "--set cluster.window_max_events=2000"; none by default).
# Everything it started is stopped on the way out, whatever the outcome.
set -eu
B=${BUILD:-build}
FB="$B/fr-bench"
FRD="$B/freshrecd"
N=${E2E_EVENTS:-200000}
REPEAT=${REPEAT:-3}
COUNTS=${MEMBERS:-1 2 3}
MODEL=${MEMBERS_MODEL---set model.dim=8 --set model.mlp=16,8}
WINDOW=${MEMBERS_WINDOW:-}
PARTS=8
case $REPEAT in '' | *[!0-9]* | 0) echo "members: REPEAT must be a positive integer, not '$REPEAT'" >&2; exit 2 ;; esac
for m in $COUNTS; do
    case $m in '' | *[!0-9]* | 0) echo "members: MEMBERS must be counts from 1 to $PARTS, not '$m'" >&2; exit 2 ;; esac
    [ "$m" -le $PARTS ] || { echo "members: at most $PARTS members (input partitions)" >&2; exit 2; }
done

for f in "$FB" "$FRD"; do
    [ -x "$f" ] || { echo "members: $f is missing; run make bench" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "members: redis-server not found (make deps)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "members: redis-cli not found (make deps)" >&2; exit 1; }

tmp=$(mktemp -d)
rpid=""; fpid=""; mpids=""
. "$(dirname "$0")/lib.sh" # stop_pid, start_redis, median_run
# the daemons first (resumed: fr-bench may have left them stopped), then the
# brokers (fr-bench keeps them up until the ready file goes), then Redis
stop_members() {
    for p in $mpids; do kill -CONT "$p" 2>/dev/null || true; done
    for p in $mpids; do kill -TERM "$p" 2>/dev/null || true; done # together: no rebalance each
    for p in $mpids; do stop_pid "$p" 15; done
    mpids=""
}
cleanup() {
    stop_members
    [ -n "$fpid" ] && { rm -f "$tmp/ready"; stop_pid "$fpid" 5; }
    [ -n "$rpid" ] && stop_pid "$rpid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

RP=$("$FB" --free-port)
start_redis members "$RP"

ready="$tmp/ready"
pidf="$tmp/pids"
# free_ports N: N distinct free loopback ports, comma-separated, none Redis's
free_ports() {
    ports=""
    while [ "$(echo "$ports" | tr ',' '\n' | grep -c .)" -lt "$1" ]; do
        p=$("$FB" --free-port)
        case ",$ports,$RP," in *",$p,"*) continue ;; esac
        ports="$ports${ports:+,}$p"
    done
    echo "$ports"
}

label() { if [ "$1" = ref ]; then echo "freshrecd alone (reference)"; else echo "$1 member(s)"; fi; }

# drain NAME K: NAME is ref (one daemon, no model topic) or a member count.
# Files: $tmp/NAME-K.{cmd,out,err,json}, .mI.log and .mI.metrics per daemon.
# (Shell functions share the caller's variables: k and name are the caller's.)
drain() {
    f="$tmp/$1-$2"
    if [ "$1" = ref ]; then
        n=1; mt=""; cl=""
    else
        n=$1; mt="--model-topic model"; cl="--set cluster.model_topic=model $WINDOW"
    fi
    redis-cli -h 127.0.0.1 -p "$RP" flushall >/dev/null
    ports=$(free_ports "$n")
    rm -f "$ready" "$pidf"
    fargs="--mock-cluster $PARTS $mt --ready-file $ready --stop-pids $pidf --redis 127.0.0.1:$RP --stats $ports --rate 0 --events $N --drain 30 --timeout 150"
    dargs="$cl $MODEL --set redis.host=127.0.0.1 --set redis.port=$RP --set stats.listen=127.0.0.1"
    echo "\$ $FB $fargs; and $n x $FRD --set kafka.brokers=(the ready file) $dargs --set stats.port=(one of --stats)" |
        tr -s ' ' >"$f.cmd"
    # shellcheck disable=SC2086 # fargs is split on purpose
    "$FB" $fargs >"$f.out" 2>"$f.err" &
    fpid=$!
    i=0
    until [ -s "$ready" ]; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$fpid" 2>/dev/null; then
            echo "members: fr-bench did not start its brokers:" >&2; cat "$f.err" >&2; exit 1
        fi
        sleep 0.05
    done
    mi=0
    for p in $(echo "$ports" | tr ',' ' '); do
        mi=$((mi + 1))
        # shellcheck disable=SC2086 # dargs is split on purpose
        "$FRD" --set kafka.brokers="$(cat "$ready")" $dargs --set stats.port="$p" 2>"$f.m$mi.log" &
        mpids="$mpids $!"
    done
    # shellcheck disable=SC2086 # one pid a line
    printf '%s\n' $mpids >"$pidf.tmp"
    mv "$pidf.tmp" "$pidf"
    i=0
    until grep -q '^{' "$f.out" 2>/dev/null || ! kill -0 "$fpid" 2>/dev/null; do
        i=$((i + 1))
        for p in $mpids; do
            kill -0 "$p" 2>/dev/null || {
                echo "members: a freshrecd exited during drain $2, $(label "$1"):" >&2
                tail -n 5 "$f".m*.log >&2; exit 1
            }
        done
        [ $i -le 2000 ] || { echo "members: no result from fr-bench in 200 s" >&2; exit 1; }
        sleep 0.1
    done
    # the last windows (200 ms) produced and applied, then each member's word
    sleep 0.5
    mi=0
    for p in $(echo "$ports" | tr ',' ' '); do
        mi=$((mi + 1))
        "$FB" --get "$p" /metrics >"$f.m$mi.metrics" 2>/dev/null || : >"$f.m$mi.metrics"
    done
    stop_members
    rm -f "$ready"
    rc=0
    wait "$fpid" 2>/dev/null || rc=$?
    fpid=""
    grep '^{' "$f.out" | tail -n 1 >"$f.json" || true
    [ "$rc" -eq 0 ] || { echo "members: drain $2, $(label "$1"): fr-bench exited with $rc" >&2; failed=1; }
}

jget() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | tail -n 1; }
# msum NAME RUN / mmax NAME RUN: a metric summed / the largest, over a drain's members
msum() { cat "$tmp/$2".m*.metrics | awk -v n="$1" '$1 == n { s += $2; k++ } END { if (k) print s }'; }
mmax() {
    cat "$tmp/$2".m*.metrics |
        awk -v n="$1" '$1 == n && (!k || $2 > m) { m = $2; k = 1 } END { if (k) print m }'
}
# marks RUN: what makes a drain not a figure
marks() {
    g=$(msum freshrec_cluster_log_gaps_total "$1"); r=$(msum freshrec_cluster_resyncs_total "$1")
    c=$(jget drain_claims "$tmp/$1.json")
    out=""
    [ "${g:-0}" = 0 ] || out="$out log gaps $g;"
    [ "${r:-0}" = 0 ] || out="$out resyncs $r;"
    [ "${c:-0}" = 0 ] || out="$out claims while timed $c;"
    [ -n "$(jget e2e_events_per_s "$tmp/$1.json")" ] || out="$out no rate;"
    echo "$out"
}

failed=0
NAMES="ref $COUNTS"
for name in $NAMES; do : >"$tmp/$name.rates"; done
# the counts alternate, drain by drain: this VM's speed drifts. In this
# shell, not a pipeline: the cleanup must see fpid and mpids.
for k in $(seq "$REPEAT"); do
    for name in $NAMES; do
        drain "$name" "$k"
        r=$(jget e2e_events_per_s "$tmp/$name-$k.json")
        [ -z "$(marks "$name-$k")" ] || r=nan # a marked drain sorts as the slowest
        echo "${r:-nan} $k" >>"$tmp/$name.rates"
    done
done
for name in $NAMES; do median_run "$tmp/$name.rates" >"$tmp/$name.median"; done

num() { [ -n "$1" ] && printf '%.0f' "$1" || printf 'n/a'; }
row() { # label, run (NAME-K), command
    r=$(jget e2e_events_per_s "$tmp/$2.json")
    b=$(msum freshrec_cluster_window_bytes_total "$2"); e=$(msum freshrec_cluster_window_events_total "$2")
    bpe=-; age=-
    if [ -n "$b" ] && [ -n "$e" ] && [ "$e" != 0 ]; then
        bpe=$(awk -v b="$b" -v e="$e" 'BEGIN { printf "%.0f", b / e }')
        age=$(awk -v a="$(mmax freshrec_cluster_record_age_p99_seconds "$2")" 'BEGIN { printf "%.0f ms", a * 1000 }')
    fi
    m=$(marks "$2")
    printf '%-42s %10s %8s %10s %7s   %s\n' "$1" "$(num "$r")" "$bpe" "$age" \
        "$(jget live_after_s "$tmp/$2.json" | awk '{ printf "%.1f s", $1 }')" "${m:+NOT A FIGURE:$m }$3"
}

echo "freshrec members — $N events preloaded into a mock cluster ($PARTS partitions) fr-bench hosts,"
echo "drained by daemons that were up and stopped meanwhile (one learner thread each); $(nproc) CPUs; Redis"
echo "flushed before each drain. Every daemon: ${MODEL:-(the default model)}; members also:"
echo "--set cluster.model_topic=model ${WINDOW:-(the default windows)}"
for k in $(seq "$REPEAT"); do
    for name in $NAMES; do
        echo "drain $k of $REPEAT, $(label "$name"):"
        sed -e '/^{/d' -e 's/^/    /' "$tmp/$name-$k.out" "$tmp/$name-$k.err"
    done
done
echo
printf '%-42s %10s %8s %10s %7s   %s\n' "run" "events/s" "B/event" "p99 age" "join" "command"
for name in $NAMES; do
    for k in $(seq "$REPEAT"); do
        row "$(label "$name"), drain $k" "$name-$k" "$(cat "$tmp/$name-$k.cmd")"
    done
    row "$(label "$name"), median of $REPEAT" "$name-$(cat "$tmp/$name.median")" \
        "(drain $(cat "$tmp/$name.median") above)"
done
ref=$(jget e2e_events_per_s "$tmp/ref-$(cat "$tmp/ref.median").json")
for name in $COUNTS; do
    r=$(jget e2e_events_per_s "$tmp/$name-$(cat "$tmp/$name.median").json")
    if [ -z "$r" ] || [ -z "$ref" ]; then continue; fi
    awk -v a="$r" -v b="$ref" -v m="$name" \
        'BEGIN { printf "%d member(s) / freshrecd alone (medians): %.2fx\n", m, a / b }'
done
echo "events/s: from the SIGCONT until every event is learned, its vectors are in Redis and every"
echo "      member has read the model log to its end. B/event: bytes of the window records over"
echo "      the input events they cover, summed over the members. p99 age: the worst member's 99th"
echo "      percentile of production -> application over the records it applied (its last 1024 at"
echo "      most); a shared row is older by up to a window more. join: from the brokers' address"
echo "      to every daemon consuming (members: claims accepted); not in the events/s."
[ "$failed" -eq 0 ] || { echo "members: some drains failed (see above)" >&2; exit 1; }
