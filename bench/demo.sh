#!/bin/sh
# make demo: generates a stream with planted preferences (or reads DATA=path,
# MovieLens format), learns it as a stream with live progress, and shows what
# the model learned against popularity ranking.
set -eu
B=${BUILD:-build}
FR="$B/freshrec"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
if [ -n "${DATA:-}" ]; then
    data=$DATA
    echo "demo: learning $data as a stream"
else
    data="$tmp/stream.tsv"
    echo "demo: generating 200,000 events (2,000 users, 3,000 items, planted topic preferences)"
    "$FR" gen --users 2000 --items 3000 --events 200000 --seed 42 --out "$data"
fi
echo "demo: learning NeuMF-32 online (BCE, 4 uniform negatives), 3 passes;"
echo "      prequential HR@10 ranks each sampled event before it is learned"
"$FR" train --data "$data" --epochs 3 --eval loo
