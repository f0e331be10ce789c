#!/bin/sh
# make bench: training throughput of NeuMF-32 with 4 negatives on one thread
# (and of every model, one thread each),
# on MovieLens-100k when ../shared/data has it (or DATA=path), else on a
# generated stream. The reference, measured in the same run on the same data,
# is the same learner with plain-loop kernels (--naive) instead of OpenBLAS.
# The NeuMF rows that the speed-up and the PyTorch ratio are taken from,
# freshrec's and PyTorch's alike, are each the median of REPEAT runs
# (default 3; every run is printed), and the runs of the two sides of each
# ratio alternate: one run of about a second moves by a third on a shared
# VM, and its speed drifts.
# Then the checkpoint stall of NeuMF-32 with a million users and a million
# items (bench/ckpt_stall.c), freshrecd end to end (bench/e2e.sh), and 1, 2
# and 3 members learning one model beside one daemon alone (bench/members.sh),
# and the publisher's vectors/s to one Redis and to a 3-master Redis Cluster
# (bench/publish.sh).
# BENCH_ONLY=ckpt runs the checkpoint part alone, BENCH_ONLY=members the
# members' part alone, BENCH_ONLY=publish the publisher's; NO_E2E=1,
# NO_MEMBERS=1 and NO_PUBLISH=1 leave those parts out.
set -eu
B=${BUILD:-build}
FR="$B/freshrec"
ML=${DATA:-../shared/data/movielens-100k/u.data}
EPOCHS=${EPOCHS:-5}
REPEAT=${REPEAT:-3}
case $REPEAT in '' | *[!0-9]* | 0) echo "bench: REPEAT must be a positive integer, not '$REPEAT'" >&2; exit 2 ;; esac
tmp=$(mktemp -d)
# checkpoints go to the build directory: /tmp may be a tmpfs (no real fsync)
ckdir="$B/bench-ckpt"
trap 'rm -rf "$tmp" "$ckdir"' EXIT INT TERM
. "$(dirname "$0")/lib.sh" # median_run

# The loop's stall while a checkpoint is written, for NeuMF-32 with
# 1,000,000 users + 1,000,000 items (2,000,000 rows, ~1.1 GB of checkpoint):
# written on the loop (the reference) and by a forked child (store/ckpt.c,
# as freshrecd does). The acceptance figure is the fork's stall, under 50 ms.
ckpt_bench() {
    mkdir -p "$ckdir"
    cmd="$B/fr-ckpt-bench --dir $ckdir --users 1000000 --items 1000000 --rounds 5"
    echo "checkpoint stall — NeuMF-32, 1M users + 1M items, $(nproc) cores"
    echo "command: $cmd"
    $cmd
}

if [ "${BENCH_ONLY:-}" = ckpt ]; then
    ckpt_bench
    exit 0
fi
if [ "${BENCH_ONLY:-}" = members ]; then
    BUILD=$B sh bench/members.sh
    exit 0
fi
if [ "${BENCH_ONLY:-}" = publish ]; then
    BUILD=$B sh bench/publish.sh
    exit 0
fi

if [ -f "$ML" ]; then
    data="$ML"; fmt=movielens; what="MovieLens ($ML)"
else
    data="$tmp/synthetic.tsv"; fmt=synthetic; what="generated stream (1000 users, 2000 items, 100k events)"
    "$FR" gen --users 1000 --items 2000 --events 100000 --seed 1 --out "$data"
fi

field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" "$2" | tail -n 1; }

# once NAME K CMD...: run K of NAME, its JSON into $tmp/NAME.K.json
once() {
    name=$1 k=$2; shift 2
    [ "$k" -gt 1 ] || : > "$tmp/$name.rates"
    "$@" > "$tmp/$name.$k.json"
    r=$(field pairs_per_s "$tmp/$name.$k.json")
    echo "${r:-nan} $k" >> "$tmp/$name.rates" # no rate: the slowest (nan sorts first)
}
# pick NAME: the run of median pairs/s becomes $tmp/NAME.json
pick() {
    median_run "$tmp/$1.rates" > "$tmp/$1.median"
    cp "$tmp/$1.$(cat "$tmp/$1.median").json" "$tmp/$1.json"
}

line() { # label, json, command (a run that printed no figure shows nan)
    p=$(field pairs_per_s "$2") e=$(field events_per_s "$2") h=$(field hr10 "$2")
    printf '%-28s %14.0f %12.0f %8.4f   %s\n' "$1" "${p:-nan}" "${e:-nan}" "${h:-nan}" "$3"
}
# medrows LABEL NAME CMD: the runs of median NAME, then the median
medrows() {
    for k in $(seq "$REPEAT"); do
        line "$1, run $k" "$tmp/$2.$k.json" "$3"
    done
    line "$1, median of $REPEAT" "$tmp/$2.json" "(run $(cat "$tmp/$2.median") above)"
}

# freshrec and the plain-loop reference, their runs alternating
cmd1="$FR train --data $data --format $fmt --model neumf --dim 32 --negatives 4 --sampler uniform --loss bce --epochs $EPOCHS --no-shuffle --eval loo --threads 1 --json --quiet"
for k in $(seq "$REPEAT"); do
    once freshrec "$k" $cmd1
    once reference-naive "$k" $cmd1 --naive
done
pick freshrec
pick reference-naive

echo "freshrec bench — $what, $EPOCHS epochs, NeuMF-32, 4 negatives, 1 thread"
printf '%-28s %14s %12s %8s   %s\n' "run" "pairs/s" "events/s" "HR@10" "command"
medrows freshrec freshrec "$cmd1"
medrows reference-naive reference-naive "$cmd1 --naive"
p1=$(field pairs_per_s "$tmp/freshrec.json"); p0=$(field pairs_per_s "$tmp/reference-naive.json")
awk -v a="$p1" -v b="$p0" 'BEGIN { printf "speed-up over the plain-loop reference: %.2fx\n", a / b }'

# every model on one thread: the pair models on the same stream as above
# (examples = events learned, pairs = forward/backward pairs), the
# click-through models on a generated click-through stream (examples =
# impressions; quality = progressive AUC)
"$FR" gen --ctr --examples 200000 --seed 1 --out "$tmp/ctr.tsv"
echo
echo "single-thread throughput per model (click-through stream: $FR gen --ctr --examples 200000 --seed 1)"
printf '%-10s %14s %12s %9s   %s\n' "model" "pairs/s" "examples/s" "quality" "command"
model_row() { # name, json, quality field, command[, examples field]
    pairs=$(field pairs_per_s "$2")
    [ -n "$pairs" ] && pairs=$(printf '%.0f' "$pairs") || pairs=-
    printf '%-10s %14s %12.0f %9s   %s\n' "$1" "$pairs" "$(field "${5:-events_per_s}" "$2")" \
        "$3=$(printf '%.4f' "$(field "$3" "$2")")" "$4"
}
model_row neumf "$tmp/freshrec.json" hr10 "(the freshrec median above)"
cmd="$FR train --data $data --format $fmt --model dssm --loss softmax --sampler inbatch --negatives 4 --epochs $EPOCHS --no-shuffle --eval loo --threads 1 --json --quiet"
$cmd > "$tmp/dssm.json"
model_row dssm "$tmp/dssm.json" hr10 "$cmd"
for m in lr widedeep dcn; do
    extra=""
    [ "$m" = widedeep ] && extra="--cross item:device"
    cmd="$FR train --data $tmp/ctr.tsv --format criteo --model $m $extra --json --quiet"
    $cmd > "$tmp/$m.json"
    model_row "$m" "$tmp/$m.json" auc "$cmd" examples_per_s
done

# every core: the learner's threads (a micro-batch split among them), and
# the reference: PyTorch NeuMF of the same shape, negatives and batch, on the
# same data, with one thread and with every core (bench/torch_neumf.py).
# freshrec's and PyTorch's runs alternate, run by run: this VM's speed drifts.
# PyTorch streams in time order (--no-shuffle), as freshrec does here: the
# rows compare the work of the same passes (bench/torch_neumf.py without it
# shuffles every pass, the quality reference of README.md).
NP=$(nproc)
PY=/usr/bin/python3
torch=0
"$PY" -c 'import torch' 2>/dev/null && torch=1
fcmd="$FR train --data $data --format $fmt --model neumf --dim 32 --negatives 4 --sampler uniform --loss bce --epochs $EPOCHS --no-shuffle --eval loo --threads $NP --json --quiet"
tcmd() { echo "$PY bench/torch_neumf.py --data $data --epochs $EPOCHS --threads $1 --no-shuffle"; }
for k in $(seq "$REPEAT"); do
    once neumf-all "$k" $fcmd
    if [ $torch -eq 1 ]; then
        for t in 1 "$NP"; do
            once "torch-$t" "$k" $(tcmd "$t")
        done
    fi
done
pick neumf-all
echo
echo "learner threads — 1 thread and all $NP cores, same data, $EPOCHS epochs"
printf '%-28s %14s %12s %8s   %s\n' "run" "pairs/s" "events/s" "HR@10" "command"
line "freshrec neumf 1" "$tmp/freshrec.json" "(the freshrec median above)"
medrows "freshrec neumf $NP" neumf-all "$fcmd"
line "freshrec dssm 1" "$tmp/dssm.json" "(the dssm run above)"
cmd="$FR train --data $data --format $fmt --model dssm --loss softmax --sampler inbatch --negatives 4 --epochs $EPOCHS --no-shuffle --eval loo --threads $NP --json --quiet"
$cmd > "$tmp/dssm-all.json"
line "freshrec dssm $NP" "$tmp/dssm-all.json" "$cmd"
if [ $torch -eq 1 ]; then
    best=0
    for t in 1 "$NP"; do
        pick "torch-$t"
        medrows "pytorch neumf $t" "torch-$t" "$(tcmd "$t")"
        best=$(awk -v a="$best" -v b="$(field pairs_per_s "$tmp/torch-$t.json")" 'BEGIN { print (b > a) ? b : a }')
    done
    awk -v a="$(field pairs_per_s "$tmp/neumf-all.json")" -v b="$best" -v n="$NP" \
        'BEGIN { printf "freshrec (%d threads) / the faster PyTorch run (medians): %.2fx\n", n, a / b }'
else
    echo "pytorch: $PY cannot import torch (Debian's python3-torch; make bench installs it as root)"
fi

echo
ckpt_bench

# freshrecd end to end (Kafka in, learning, Redis out): throughput and
# freshness beside the raw produce rate, all on loopback (bench/e2e.sh)
echo
[ -n "${NO_E2E:-}" ] || BUILD=$B sh bench/e2e.sh

# several members learning one model through the model log: events/s of 1,
# 2 and 3 beside one daemon alone, the log's bytes per event and the shared
# rows' staleness (bench/members.sh)
echo
[ -n "${NO_MEMBERS:-}" ] || BUILD=$B sh bench/members.sh

echo
# the publisher to one Redis and to a Redis Cluster (bench/publish.sh)
[ -n "${NO_PUBLISH:-}" ] || BUILD=$B sh bench/publish.sh
