#!/bin/sh
# make demo: freshrecd end to end on this machine, all on 127.0.0.1.
# Starts redis-server (no persistence) and `freshrecd --embedded` (librdkafka's
# mock Kafka cluster in-process) on free loopback ports, generates a stream
# with planted preferences (or reads DATA=path, MovieLens format), replays it
# to Kafka with `freshrec replay` while printing the daemon's own figures once
# a second, then shows what it learned: a metrics summary, one user's top 10
# read back from Redis beside that user's history, a raw vector and the meta
# hash. Stops the daemon with SIGTERM (and reports its exit code) and Redis;
# whatever happens, everything it started is stopped on the way out.
# Knobs: DATA=path, EVENTS (200000), RATE (events/s of the replay, 25000),
# DEMO_USER (the user shown; default the most active one).
set -eu
B=${BUILD:-build}
FR="$B/freshrec"
FRD="$B/freshrecd"
FB="$B/fr-bench"
EVENTS=${EVENTS:-200000}
RATE=${RATE:-25000}
MODEL=neumf

for f in "$FR" "$FRD" "$FB"; do
    [ -x "$f" ] || { echo "demo: $f is missing; run make demo" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "demo: redis-server not found (make deps)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "demo: redis-cli not found (make deps)" >&2; exit 1; }

tmp=$(mktemp -d)
rpid=""; dpid=""; ppid_=""
. "$(dirname "$0")/lib.sh" # stop_pid, start_redis
cleanup() {
    [ -n "$ppid_" ] && stop_pid "$ppid_" 2
    [ -n "$dpid" ] && stop_pid "$dpid" 10
    [ -n "$rpid" ] && stop_pid "$rpid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
t_start=$(date +%s)

# ---------------------------------------------------------------- servers
RP=$("$FB" --free-port)
SP=$("$FB" --free-port)
while [ "$SP" = "$RP" ]; do SP=$("$FB" --free-port); done
start_redis demo "$RP"
echo "demo: redis-server on 127.0.0.1:$RP (no persistence)"

"$FRD" --embedded --set redis.host=127.0.0.1 --set redis.port="$RP" \
    --set stats.listen=127.0.0.1 --set stats.port="$SP" 2>"$tmp/freshrecd.log" &
dpid=$!
i=0
while :; do
    BR=$(sed -n 's/.*embedded mock cluster at \([0-9.:]*\).*/\1/p' "$tmp/freshrecd.log" | head -n 1)
    if [ -n "$BR" ] && "$FB" --get "$SP" /healthz >/dev/null 2>&1; then break; fi
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$dpid" 2>/dev/null; then
        echo "demo: freshrecd did not become healthy in 15 s:" >&2; cat "$tmp/freshrecd.log" >&2; exit 1
    fi
    sleep 0.05
done
echo "demo: freshrecd --embedded: mock Kafka at $BR (topic events), stats on http://127.0.0.1:$SP/metrics"
echo "      NeuMF-32 (BCE, 4 uniform negatives), vectors to Redis every 50 ms under fr:$MODEL:u:<user>"

# ---------------------------------------------------------------- data
if [ -n "${DATA:-}" ]; then
    data=$DATA; fmt=movielens
    [ -r "$data" ] || { echo "demo: DATA=$data is not readable" >&2; exit 1; }
    echo "demo: replaying $data (MovieLens) as a stream"
else
    data="$tmp/stream.tsv"; fmt=synthetic
    echo "demo: generating $EVENTS events (2,000 users, 3,000 items, planted topic preferences)"
    "$FR" gen --users 2000 --items 3000 --events "$EVENTS" --seed 42 --out "$data"
fi
# user item rating ts, separated by tabs, blanks or "::"; # comments
awk -F'::|[ \t]+' '!/^#/ && NF >= 2 { print $1 "\t" $2 "\t" (NF >= 4 ? $4 : NR) }' "$data" >"$tmp/pairs.tsv"
total=$(wc -l <"$tmp/pairs.tsv")

# ---------------------------------------------------------------- replay, live
echo "demo: \$ $FR replay --data $data --format $fmt --brokers $BR --rate $RATE"
"$FR" replay --data "$data" --format "$fmt" --brokers "$BR" --rate "$RATE" --quiet \
    >"$tmp/replay.out" 2>"$tmp/replay.err" &
ppid_=$!

m() { sed -n "s/^$1 \([-0-9.e+naNIf]*\)$/\1/p" "$tmp/metrics.txt" | head -n 1; }
msum() { grep "^$1[{ ]" "$tmp/metrics.txt" | awk '{ s += $NF } END { printf "%.0f", s }'; }
scrape() { "$FB" --get "$SP" /metrics >"$tmp/metrics.txt" 2>/dev/null; }
live_line() { # seconds since start, events/s
    printf '%5ss  in Kafka %7s/%s  learned %7s  %6s ev/s  loss %6.4f  HR@10 %5.3f  publish rounds %4s  keys %7s  dirty %5s\n' \
        "$1" "$(( $(msum freshrec_events_consumed_total) + $(msum freshrec_consumer_lag) ))" "$total" \
        "$(m freshrec_events_learned_total)" "$2" "$(m freshrec_loss)" "$(m freshrec_hr_at_10)" \
        "$(m freshrec_publish_total)" "$(m freshrec_publish_keys_total)" "$(m freshrec_dirty_keys)"
}
echo "demo: the daemon's figures, once a second (GET /metrics). In Kafka: consumed + consumer"
echo "      lag, as the daemon knows it; HR@10 is prequential (sampled events ranked before they"
echo "      are learned, an EWMA):"
prev=0; sec=0; done_at=""
while :; do
    sleep 1
    sec=$((sec + 1))
    scrape || { echo "demo: /metrics did not answer" >&2; exit 1; }
    learned=$(m freshrec_events_learned_total); learned=${learned:-0}
    handled=$(( learned + $(msum freshrec_events_skipped_total) + $(msum freshrec_events_learner_refused_total) ))
    live_line "$sec" "$((learned - prev))"
    prev=$learned
    if [ -n "$ppid_" ] && ! kill -0 "$ppid_" 2>/dev/null; then
        rrc=0; wait "$ppid_" || rrc=$?
        ppid_=""
        sed 's/^/      /' "$tmp/replay.err"
        [ "$rrc" -eq 0 ] || { echo "demo: freshrec replay failed (exit $rrc)" >&2; exit 1; }
    fi
    if [ -z "$ppid_" ] && [ "$handled" -ge "$total" ] && [ "$(m freshrec_dirty_keys)" = 0 ]; then
        done_at=$sec; break
    fi
    if [ "$sec" -ge 90 ]; then
        echo "demo: not everything was learned and published after $sec s; showing what there is" >&2
        break
    fi
done
[ -n "$done_at" ] && echo "demo: all $total events learned and published within ${done_at} s of the start of the replay"

# ---------------------------------------------------------------- what it learned
scrape || true
echo
echo "demo: metrics summary (selected lines of /metrics)"
grep -E '^freshrec_(events_consumed_total|events_invalid_total|events_learned_total|pairs_learned_total|events_skipped_total|loss|hr_at_10|ndcg_at_10|publish_total|publish_keys_total|publish_bytes_total|publish_errors_total|dirty_keys|table_rows|consumer_lag|redis_connected|consuming|process_resident_memory_bytes)[{ ]' \
    "$tmp/metrics.txt" | grep -v 'invalid_total.* 0$' | sed 's/^/    /'
awk '/^freshrec_publish_latency_seconds_sum / { s = $2 } /^freshrec_publish_latency_seconds_count / { c = $2 }
     END { if (c > 0) printf "    publish rounds took %.1f ms on average (freshrec_publish_latency_seconds_sum / _count)\n", 1000 * s / c }' \
    "$tmp/metrics.txt"

# DEMO_USER, or the most active user; ids are written as the stream has them
user=${DEMO_USER:-$(cut -f1 "$tmp/pairs.tsv" | sort | uniq -c | sort -k1,1nr -k2 | head -n 1 | awk '{ print $2 }')}
nuser=$(awk -F'\t' -v u="$user" '$1 == u' "$tmp/pairs.tsv" | wc -l)
[ "$nuser" -gt 0 ] || { echo "demo: user $user is not in the stream" >&2; exit 1; }
awk -F'\t' -v u="$user" '$1 == u { print $2 }' "$tmp/pairs.tsv" | sort | uniq -c | sort -k1,1nr -k2 \
    >"$tmp/history.txt"
# beside the top 10: the user's most frequent items, or the latest when each came once (MovieLens)
if [ "$(head -n 1 "$tmp/history.txt" | awk '{ print $1 }')" -gt 1 ]; then
    side="most frequent items of $user in the stream"
    awk '{ printf "%-10s %3d times\n", $2, $1 }' "$tmp/history.txt" | head -n 10 >"$tmp/side.txt"
else
    side="latest items of $user (each came once)"
    awk -F'\t' -v u="$user" '$1 == u { print $3 "\t" $2 }' "$tmp/pairs.tsv" | sort -k1,1nr |
        head -n 10 | cut -f2 >"$tmp/side.txt"
fi
cut -f2 "$tmp/pairs.tsv" | sort | uniq -c | sort -k1,1nr -k2 | head -n 10 >"$tmp/popular.txt"
echo
echo "demo: user $user ($nuser events in the stream): top 10 read back from Redis"
echo "      \$ $FR recommend --redis 127.0.0.1:$RP --user $user -k 10"
"$FR" recommend --redis "127.0.0.1:$RP" --user "$user" -k 10 >"$tmp/rec.txt" 2>&1 ||
    { cat "$tmp/rec.txt" >&2; echo "demo: freshrec recommend failed" >&2; exit 1; }
# recommended items are printed with the "i" of the key schema only when the stream had it
awk 'NR > 1 { print $2 }' "$tmp/rec.txt" >"$tmp/rec_items.txt"
{
    printf '      %-36s   %s\n' "recommended (retrieval score)" "$side"
    awk 'NR > 1' "$tmp/rec.txt" >"$tmp/rec_lines.txt"
    i=1
    while [ $i -le 10 ]; do
        r=$(sed -n "${i}p" "$tmp/rec_lines.txt" | awk '{ printf "%2s  %-10s %s", $1, $2, $3 }')
        it=$(sed -n "${i}p" "$tmp/rec_items.txt")
        mark=" "
        if [ -n "$it" ] && awk -v it="$it" '$2 == it { f = 1 } END { exit !f }' "$tmp/history.txt"; then mark="*"; fi
        h=$(sed -n "${i}p" "$tmp/side.txt")
        printf '      %-34s %s   %s\n' "$r" "$mark" "$h"
        i=$((i + 1))
    done
}
hits=0
while read -r it; do
    awk -v it="$it" '$2 == it { f = 1 } END { exit !f }' "$tmp/history.txt" && hits=$((hits + 1))
done <"$tmp/rec_items.txt"
pop_hits=0
while read -r _ it; do
    awk -v it="$it" '$2 == it { f = 1 } END { exit !f }' "$tmp/history.txt" && pop_hits=$((pop_hits + 1))
done <"$tmp/popular.txt"
nitems=$(wc -l <"$tmp/history.txt")
echo "      * = an item $user interacted with in the stream ($nitems distinct items)."
echo "      $hits of the 10 recommended items are in $user's history; of the 10 most popular items"
echo "      overall, $pop_hits are (that is what ranking by popularity alone would give this user)."
echo "      (Items already seen are not excluded: a product service filters by its own history.)"

key="fr:$MODEL:u:$user"
echo
echo "demo: the raw vector, as any reader sees it"
echo "      \$ redis-cli -p $RP STRLEN $key; TTL $key"
echo "      $(redis-cli -h 127.0.0.1 -p "$RP" STRLEN "$key") bytes, TTL $(redis-cli -h 127.0.0.1 -p "$RP" TTL "$key") s"
echo "      \$ redis-cli -p $RP --no-raw GET $key | head -c 200"
printf '      '; redis-cli -h 127.0.0.1 -p "$RP" --no-raw GET "$key" | head -c 200; echo " ..."
echo "      first 8 little-endian float32 values (od -t f4 on the bytes):"
redis-cli -h 127.0.0.1 -p "$RP" --raw GET "$key" | od -A n -t f4 -N 32 | sed 's/^/     /'
echo "      \$ redis-cli -p $RP --raw HGET fr:$MODEL:meta <field>   (the meta hash; dense is binary)"
for f in kind dim layout version updated_ms dense_floats dense_layout; do
    printf '      %-13s %s\n' "$f" "$(redis-cli -h 127.0.0.1 -p "$RP" --raw HGET "fr:$MODEL:meta" "$f")"
done
printf '      %-13s %s bytes of float32 (HSTRLEN)\n' dense "$(redis-cli -h 127.0.0.1 -p "$RP" HSTRLEN "fr:$MODEL:meta" dense)"
echo "      $(redis-cli -h 127.0.0.1 -p "$RP" DBSIZE) keys in Redis"

# ---------------------------------------------------------------- stop
echo
echo "demo: SIGTERM to freshrecd"
ts=$(date +%s)
stop_pid "$dpid" 15
dpid=""
grep -E 'stopping|stopped|not published|warn|error' "$tmp/freshrecd.log" | tail -n 4 | sed 's/^/      /'
echo "demo: freshrecd exit code $stopped_rc after $(( $(date +%s) - ts )) s"
stop_pid "$rpid" 5
rpid=""
echo "demo: redis-server stopped; done in $(( $(date +%s) - t_start )) s"
[ "$stopped_rc" -eq 0 ]
