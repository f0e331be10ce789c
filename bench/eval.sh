#!/bin/bash
# make eval: `freshrec eval` (every arm) on the real
# streams of ../shared/data, each only when it is there (they are never
# committed), and on two generated streams with planted drift: a taste shift
# at the middle, and items reborn at the middle under new ids. Each run's
# table goes to build/eval/NAME.txt and to the terminal once every run has
# ended, its progress to the terminal as it goes (NAME: ...), its JSON to
# build/eval/NAME.json, its recall@20 series per period and arm to
# build/eval/NAME-recall20.tsv, and the picture of it to .png when gnuplot
# is installed. EVAL_JOBS runs (default: the number of CPUs, at most 4) go
# at once, each on one thread, in the order below as slots free up; with 2
# the whole set takes about as long as movielens-latest-small alone. The
# learner of the online and retrained arms is EVAL_MODEL, the same on every
# stream: history MF with its transition map (at 0.0003), sampled softmax
# over 64 popularity negatives, 128 factors, rows at 0.1; the retrained arms
# learn without the map (README, Streaming evaluation). Knobs: DATA_DIR
# (../shared/data), EVAL_MODEL, EVAL_ARGS (options added to every run, e.g.
# "--retrain-hours 168"), EVAL_JOBS.
set -u
B=${BUILD:-build}
FR="$B/freshrec"
OUT="$B/eval"
DATA_DIR=${DATA_DIR:-../shared/data}
EVAL_MODEL=${EVAL_MODEL:---model hmf --dim 128 --loss softmax --sampler popularity --negatives 64 --lr-sparse 0.1 --transition-lr 0.0003}
EVAL_ARGS=${EVAL_ARGS:-}
EVAL_JOBS=${EVAL_JOBS:-$(n=$(nproc 2>/dev/null || echo 1); [ "$n" -gt 4 ] && n=4; echo "$n")}
case $EVAL_JOBS in '' | *[!0-9]* | 0) echo "eval: EVAL_JOBS '$EVAL_JOBS': expected a count of 1 or more" >&2; exit 2 ;; esac
[ -x "$FR" ] || { echo "eval: $FR is missing; run make eval" >&2; exit 1; }
mkdir -p "$OUT"

# each run is a job of its own process group (set -m), so that whatever is
# still running goes with the script, however it ends (an interrupt, a
# closed pipe, an error): the group of each job still running is killed
set -m
cleanup() {
    trap - EXIT INT TERM PIPE HUP
    for j in $(jobs -pr); do
        kill -- "-$j" 2>/dev/null
    done
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 141' PIPE
trap 'cleanup; exit 129' HUP

names=()
# run NAME ARGS...: one evaluation in the background once a slot is free;
# its table and progress in $OUT/NAME.txt, its exit code in $OUT/NAME.rc
run() {
    name=$1
    shift
    names+=("$name")
    while [ "$(jobs -pr | wc -l)" -ge "$EVAL_JOBS" ]; do
        wait -n
    done
    rm -f "$OUT/$name.rc"
    echo "$name: freshrec eval $* $EVAL_MODEL $EVAL_ARGS" >&2
    # shellcheck disable=SC2086 # EVAL_MODEL, EVAL_ARGS: words on purpose
    ( { "$FR" eval --name "$name" --plot "$OUT" --json "$@" $EVAL_MODEL $EVAL_ARGS 2>&1 >"$OUT/$name.json"
        echo $? >"$OUT/$name.rc"; } | tee "$OUT/$name.txt" |
        sed -nu "s/^eval: /$name: /p" >&2 ) &
}

# real data, when present
data() {
    name=$1
    path="$DATA_DIR/$2"
    if [ -r "$path" ]; then
        run "$name" --data "$path"
    else
        echo "### $name: $path is not there: skipped"
        echo
    fi
}

t0=$(date +%s)
data ml-100k movielens-100k/u.data
data ml-latest-small movielens-latest-small/ratings.csv
run gen-shift --gen --gen-shift
run gen-births --gen --gen-births 0.2
wait
failed=""
for name in "${names[@]}"; do
    echo "### $name"
    grep -v "^eval: " "$OUT/$name.txt"
    echo
    [ "$(cat "$OUT/$name.rc" 2>/dev/null)" = 0 ] || failed="$failed $name"
done
echo "make eval: $(($(date +%s) - t0)) s with $EVAL_JOBS at once; results in $OUT/"
[ -z "$failed" ] || { echo "make eval: failed:$failed" >&2; exit 1; }
