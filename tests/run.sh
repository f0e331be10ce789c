#!/bin/sh
# Runs each test binary given, prints its output and how long it took, and
# closes with one summary line: "N passed, N failed".
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $(basename "$t")"
    t0=$(date +%s)
    if "$t"; then pass=$((pass + 1)); r=ok; else fail=$((fail + 1)); r=FAILED; failed="$failed $(basename "$t")"; fi
    echo "== $(basename "$t"): $r in $(( $(date +%s) - t0 )) s"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
