#!/bin/sh
# make eval: `freshrec eval` (every arm) on the real
# streams of ../shared/data, each only when it is there (they are never
# committed), and on two generated streams with planted drift: a taste shift
# at the middle, and items reborn at the middle under new ids. Each run's
# table and progress go to the terminal and build/eval/NAME.txt, its JSON to
# build/eval/NAME.json, its recall@20 series per period and arm to
# build/eval/NAME-recall20.tsv, and the picture of it to .png when gnuplot
# is installed. The learner of the online and retrained arms is EVAL_MODEL,
# the same on every stream: history MF, sampled softmax over 64 popularity
# negatives, 128 factors, rows at 0.1 (README, Streaming evaluation). Knobs:
# DATA_DIR (../shared/data), EVAL_MODEL, EVAL_ARGS (options added to every
# run, e.g. "--retrain-hours 168").
set -u
B=${BUILD:-build}
FR="$B/freshrec"
OUT="$B/eval"
DATA_DIR=${DATA_DIR:-../shared/data}
EVAL_MODEL=${EVAL_MODEL:---model hmf --dim 128 --loss softmax --sampler popularity --negatives 64 --lr-sparse 0.1}
EVAL_ARGS=${EVAL_ARGS:-}
[ -x "$FR" ] || { echo "eval: $FR is missing; run make eval" >&2; exit 1; }
mkdir -p "$OUT"
failed=""

# run NAME ARGS...: one evaluation; its exit code is kept in $OUT/NAME.rc
run() {
    name=$1
    shift
    echo "### $name: freshrec eval $* $EVAL_MODEL $EVAL_ARGS"
    # shellcheck disable=SC2086 # EVAL_MODEL, EVAL_ARGS: words on purpose
    { "$FR" eval --name "$name" --plot "$OUT" --json "$@" $EVAL_MODEL $EVAL_ARGS 2>&1 >"$OUT/$name.json"
      echo $? >"$OUT/$name.rc"; } | tee "$OUT/$name.txt"
    [ "$(cat "$OUT/$name.rc")" = 0 ] || failed="$failed $name"
    echo
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
echo "make eval: $(($(date +%s) - t0)) s; results in $OUT/"
[ -z "$failed" ] || { echo "make eval: failed:$failed" >&2; exit 1; }
