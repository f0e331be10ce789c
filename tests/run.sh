#!/bin/sh
# Runs each test binary given, prints its output, and closes with one
# summary line: "N passed, N failed".
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $(basename "$t")"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $(basename "$t")"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
