#!/bin/sh
# bench/publish.sh: how many vectors a second freshrecd's publisher writes
# to one Redis and to a Redis Cluster of 3 masters and 3 replicas, in the
# same run on this machine, all on 127.0.0.1 (build/fr-pub-bench,
# bench/publish.c: rounds of PUB_ROUND item vectors of NeuMF-32's 32 floats,
# SET with a TTL, the item index kept, the meta hash; PUB_VECTORS in all).
# The runs against the two alternate, REPEAT of each; the median of each is
# printed with the ratio. Every redis-server here shares the machine's cores
# with the bench: the cluster's figure is its cost on one machine, not what
# three machines would do. Used by bench/run.sh (make bench); BENCH_ONLY=publish
# runs it alone. Everything it started is stopped on the way out.
set -eu
B=${BUILD:-build}
PB="$B/fr-pub-bench"
FB="$B/fr-bench"
N=${PUB_VECTORS:-500000}
K=${PUB_ROUND:-20000}
REPEAT=${REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "publish: REPEAT must be a positive integer, not '$REPEAT'" >&2; exit 2 ;; esac
for f in "$PB" "$FB"; do
    [ -x "$f" ] || { echo "publish: $f is missing; run make bench" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "publish: redis-server not found (make deps)" >&2; exit 1; }

tmp=$(mktemp -d)
rpid=""; cpids=""
. "$(dirname "$0")/lib.sh" # stop_pid, start_redis, median_run
cleanup() {
    for p in $cpids; do stop_pid "$p" 5; done
    [ -n "$rpid" ] && stop_pid "$rpid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
trap 'exit 141' PIPE

# free PORTS-SO-FAR: a free loopback port not among them
free() {
    while :; do
        p=$("$FB" --free-port)
        case " $1 " in *" $p "*) continue ;; esac
        echo "$p"
        return
    done
}

RP=$(free "")
start_redis publish "$RP"
used="$RP"
nodes=""
for i in 1 2 3 4 5 6; do
    port=$(free "$used"); used="$used $port"
    bus=$(free "$used"); used="$used $bus"
    mkdir -p "$tmp/n$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --protected-mode yes \
        --loglevel warning --cluster-enabled yes --cluster-port "$bus" \
        --cluster-config-file nodes.conf --dir "$tmp/n$port" >"$tmp/n$port.log" 2>&1 &
    cpids="$cpids $!"
    nodes="$nodes 127.0.0.1:$port"
    [ "$i" = 1 ] && CP=$port
done
for n in $nodes; do
    i=0
    until [ "$(redis-cli -h 127.0.0.1 -p "${n#*:}" ping 2>/dev/null)" = PONG ]; do
        i=$((i + 1)); [ $i -le 100 ] || { echo "publish: a cluster node did not start" >&2; exit 1; }
        sleep 0.05
    done
done
# shellcheck disable=SC2086 # nodes is split on purpose
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$tmp/create.log" 2>&1 ||
    { echo "publish: redis-cli --cluster create failed" >&2; cat "$tmp/create.log" >&2; exit 1; }
i=0
until redis-cli -h 127.0.0.1 -p "$CP" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; do
    i=$((i + 1)); [ $i -le 300 ] || { echo "publish: the cluster did not come up" >&2; exit 1; }
    sleep 0.1
done

echo "publish throughput — $N item vectors of 32 floats in rounds of $K, $(redis-server --version | cut -d' ' -f1-3); $(nproc) CPUs"
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2"; }
: >"$tmp/one.rates"; : >"$tmp/cl.rates"
for k in $(seq "$REPEAT"); do
    for side in one cl; do
        redis-cli -h 127.0.0.1 -p "$RP" flushall >/dev/null
        for n in $nodes; do redis-cli -h 127.0.0.1 -p "${n#*:}" flushall >/dev/null 2>&1 || true; done
        if [ $side = one ]; then
            cmd="$PB --redis 127.0.0.1:$RP --vectors $N --round $K"
        else
            cmd="$PB --redis 127.0.0.1:$CP --cluster --vectors $N --round $K"
        fi
        $cmd >"$tmp/$side.$k.json" || { echo "publish: $cmd failed" >&2; exit 1; }
        r=$(field vectors_per_s "$tmp/$side.$k.json")
        echo "$r $k" >>"$tmp/$side.rates"
        printf '  run %d  %-32s %10.0f vectors/s   %s\n' "$k" \
            "$([ $side = one ] && echo 'one Redis (reference)' || echo 'Redis Cluster, 3 masters')" "$r" "$cmd"
    done
done
mo=$(median_run "$tmp/one.rates"); mc=$(median_run "$tmp/cl.rates")
ro=$(field vectors_per_s "$tmp/one.$mo.json"); rc=$(field vectors_per_s "$tmp/cl.$mc.json")
printf '%-34s %10.0f vectors/s (median of %d)\n' "one Redis (reference)" "$ro" "$REPEAT"
printf '%-34s %10.0f vectors/s (median of %d), %.2fx the reference\n' "Redis Cluster, 3 masters + 3 replicas" "$rc" "$REPEAT" "$(echo "$rc $ro" | awk '{ print $1 / $2 }')"
