#!/usr/bin/env bash
# End-to-end benchmark of issue 8: the gateway against the broker's own
# limits, like with like, in one run on one broker, in a vhost of its own,
# always on the gateway's input queue (declared by tocsin-amqp's topology:
# the same quorum queue type and arguments for every client).
#
#   bench/run.sh                 # N=100000 messages per drain
#   N=20000 bench/run.sh         # a quicker run
#   SKIP_PG=1 bench/run.sh       # without the PostgreSQL runs
#   SKIP_SINGLE=1 bench/run.sh   # without the events-on run in the single
#                                # format (the default is ndjson)
#   SKIP_LATENCY=1 bench/run.sh  # without the latency run
#   ONLY_LATENCY=1 bench/run.sh  # the latency run alone
#
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest, rabbitmqctl on the PATH)
# and PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres). Prints one
# `bench ...` line per figure and the ratios at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
SEED=${SEED:-1}
VHOST=${VHOST:-tocsin-bench}
PGDB=${PGDB:-tocsin_bench}
PGUSER=${PGUSER:-postgres}
HTTP_PORT=${HTTP_PORT:-19860}
BROKER=${BROKER:-127.0.0.1:5672}
export TOCSIN_AMQP_URL="amqp://guest:guest@${BROKER}/${VHOST}"
export TOCSIN_LOG=${TOCSIN_LOG:-warn}
EVENTS_QUEUE=tocsin.bench.events
WORK=$(mktemp -d)
GW_PID=

cleanup() {
    if [ -n "$GW_PID" ]; then kill -TERM "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; fi
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
    if [ -z "${SKIP_PG:-}" ]; then psql -q -h 127.0.0.1 -U "$PGUSER" -d postgres -c "DROP DATABASE IF EXISTS $PGDB" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench machine cpus=$(nproc) model=\"$(lscpu | sed -n 's/^Model name: *//p')\" mem=$(free -g | awk '/Mem:/{print $2}')G kernel=$(uname -r) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" n=$N"

if [ -z "${SKIP_BUILD:-}" ]; then
    # One invocation, so that every binary is built with the same feature
    # set (two invocations unify features differently and rebuild
    # tocsin-fhir, about ten CPU-minutes, for the second).
    cargo build -q --release -p tocsin -p tocsin-amqp -p tocsin-loadgen --bins --examples
fi
B=${CARGO_TARGET_DIR:-target}/release
TOCSIN=$B/tocsin

rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
rabbitmqctl -q add_vhost "$VHOST" >/dev/null
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }

# Fill the input queue with N loadgen messages (publisher confirms).
fill() {
    local line
    line=$($TOCSIN loadgen --publish --seed "$SEED" --count "$N")
    echo "bench fill rate=$(echo "$line" | field rate) bytes=$(echo "$line" | field bytes)" >&2
}

metric_sum() { # name: sum of a metric over its labels, from the gateway
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s+=$2} END {printf "%d\n", s}'
}

# The live phases (publishing beside the gateway, then the latency run)
# meet a gateway that catches up: once its input queue is empty its clock
# follows the wall clock, and traffic older than the 30-day duplicate
# horizon is counted stale and not tracked. They publish traffic that
# starts RECENT_DAYS ago (and, at some 14,000 messages a day, ends before
# today), so that every message is judged as live traffic would be. The
# drains of a full queue keep the clock on the messages' own times, and
# use loadgen's fixed default start.
RECENT_DAYS=${RECENT_DAYS:-25}
RECENT=$(date -u -d "$RECENT_DAYS days ago" +%F)

declare -A R

# gateway NAME STORE_URL EVENTS(true|false) [FORMAT]: drain the backlog
# through `tocsin run`, timed from the first committed input to the N-th.
# FORMAT is the events format (ndjson, the default, or single).
gateway() {
    local name=$1 store=$2 events=$3 format=${4:-ndjson}
    fill
    if [ "$events" = true ]; then $B/examples/bench_queue subscribe --queue "$EVENTS_QUEUE" >/dev/null; fi
    TOCSIN_STORE_URL=$store TOCSIN_EVENTS_PUBLISH=$events TOCSIN_EVENTS_FORMAT=$format \
        TOCSIN_HTTP_ADDR=127.0.0.1:$HTTP_PORT \
        $TOCSIN run >"$WORK/$name.log" 2>&1 &
    GW_PID=$!
    local done=0 start= end now first=0
    while [ "$done" -lt "$N" ]; do
        sleep 0.05
        kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; echo "gateway $name died" >&2; exit 1; }
        done=$(metric_sum tocsin_batch_size_sum 2>/dev/null || echo 0)
        now=$(date +%s.%N)
        if [ -z "$start" ] && [ "${done:-0}" -gt 0 ]; then start=$now; first=$done; fi
    done
    end=$(date +%s.%N)
    local hwm stages
    hwm=$(awk '/VmHWM/{print $2}' "/proc/$GW_PID/status")
    # Seconds spent in each pipeline stage over the drain (batch sums).
    stages=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -F'[{}" ]+' \
        '$1 == "tocsin_pipeline_stage_seconds_sum" { printf "%s%s=%.2f", sep, $3, $NF; sep="," }')
    kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=
    local rate
    rate=$(awk -v n="$N" -v f="$first" -v s="$start" -v e="$end" 'BEGIN{printf "%.0f", (n-f)/(e-s)}')
    local extra=""
    if [ "$events" = true ]; then extra=" events_queued=$($B/examples/bench_queue depth --queue "$EVENTS_QUEUE" | field messages)"; fi
    echo "bench gateway=$name messages=$N rate=$rate peak_rss_kib=$hwm stage_seconds=$stages$extra"
    R[$name]=$rate
}

# (1) null consumer, (2) null relay, on the same backlog.
if [ -z "${ONLY_LATENCY:-}" ]; then
fill; line=$($B/examples/null_consumer --count "$N"); echo "bench $line"; R[null_consumer]=$(echo "$line" | field rate)
fill; line=$($B/examples/null_relay --count "$N"); echo "bench $line"; R[null_relay]=$(echo "$line" | field rate)

# (3) the gateway: SQLite, then PostgreSQL; events off, then on.
gateway sqlite_events_off "sqlite://$WORK/off.sqlite" false
gateway sqlite_events_on "sqlite://$WORK/on.sqlite" true
if [ -z "${SKIP_SINGLE:-}" ]; then
    gateway sqlite_events_on_single "sqlite://$WORK/single.sqlite" true single
fi
if [ -z "${SKIP_PG:-}" ]; then
    for ev in false true; do
        psql -q -h 127.0.0.1 -U "$PGUSER" -d postgres -c "DROP DATABASE IF EXISTS $PGDB" -c "CREATE DATABASE $PGDB" >/dev/null
        name=postgres_events_$([ $ev = true ] && echo on || echo off)
        gateway "$name" "postgres://$PGUSER@127.0.0.1/$PGDB" $ev
    done
fi

fi

# (4) receive-to-commit latency at half the maximum rate (SQLite, events on),
# from the gateway's tocsin_processing_seconds histogram (per batch, receive
# of its first input to its commit), interpolated within buckets as
# Prometheus's histogram_quantile does.
#
# "The maximum rate" here is what the gateway sustains while the load
# generator publishes beside it: on two shared cores the publisher (and the
# broker taking its messages) cost CPU the drains above did not pay, so
# half the drain rate can be more than the gateway keeps up with, and the
# figure then measures a growing queue. So the gateway first takes an
# unlimited publisher's stream of N messages (rate from its own counter),
# then, still running, half that rate for LATENCY_SECONDS; the latency is
# read from the histogram's growth during that second phase only.
if [ -z "${SKIP_LATENCY:-}" ]; then
seconds=${LATENCY_SECONDS:-30}
$B/examples/bench_queue subscribe --queue "$EVENTS_QUEUE" >/dev/null
TOCSIN_STORE_URL="sqlite://$WORK/lat.sqlite" TOCSIN_EVENTS_PUBLISH=true TOCSIN_EVENTS_FORMAT=ndjson TOCSIN_HTTP_ADDR=127.0.0.1:$HTTP_PORT \
    $TOCSIN run >"$WORK/latency.log" 2>&1 &
GW_PID=$!
until curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >/dev/null; do sleep 0.1; done
$TOCSIN loadgen --publish --seed $((SEED + 1)) --start "$RECENT" --count "$N" >/dev/null &
LG_PID=$!
done=0; start=; first=0
while [ "$done" -lt "$N" ]; do
    sleep 0.05
    done=$(metric_sum tocsin_batch_size_sum 2>/dev/null || echo 0)
    now=$(date +%s.%N)
    if [ -z "$start" ] && [ "${done:-0}" -gt 0 ]; then start=$now; first=$done; fi
done
end=$(date +%s.%N)
wait "$LG_PID"
concurrent=$(awk -v n="$N" -v f="$first" -v s="$start" -v e="$end" 'BEGIN{printf "%.0f", (n-f)/(e-s)}')
echo "bench gateway=sqlite_events_on_beside_publisher messages=$N rate=$concurrent"
R[concurrent]=$concurrent
half=$(( concurrent / 2 ))
[ "$half" -gt 0 ] || half=1
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep '^tocsin_processing_seconds_bucket' >"$WORK/buckets.before"
$TOCSIN loadgen --publish --seed $((SEED + 2)) --start "$RECENT" --count $((half * seconds)) --rate "$half" >/dev/null
want=$((N + half * seconds))
until [ "$(metric_sum tocsin_batch_size_sum)" -ge "$want" ]; do sleep 0.2; done
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep '^tocsin_processing_seconds_bucket' >"$WORK/buckets.after"
# The second phase's own histogram: after minus before, bucket by bucket.
paste -d' ' "$WORK/buckets.after" "$WORK/buckets.before" | awk '{ $2 = $2 - $4; print $1, $2 }' >"$WORK/buckets"
hwm=$(awk '/VmHWM/{print $2}' "/proc/$GW_PID/status")
# Messages the tracker counted stale instead of judging: 0 when the live
# phases' traffic is recent enough (RECENT_DAYS).
stale=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^tocsin_tracker_notices_total\{notice="stale_event"\}/ {print $2}')
kill -TERM "$GW_PID"; wait "$GW_PID" || true; GW_PID=
quantile() {
    awk -v q="$1" -F'[{}" ]+' '
        { le=$3; c=$NF; les[NR]=le; cs[NR]=c }
        END { total=cs[NR]; want=q*total; prev_le=0; prev_c=0
              for (i=1;i<=NR;i++) { if (cs[i] >= want) {
                  if (les[i]=="+Inf") { printf "%.1f", prev_le*1000; exit }
                  d = cs[i] - prev_c; if (d == 0) d = 1
                  printf "%.1f", (prev_le + (les[i]-prev_le)*(want-prev_c)/d)*1000; exit }
                  prev_le=les[i]; prev_c=cs[i] } }' "$WORK/buckets"
}
echo "bench latency rate=$half messages=$((half * seconds)) p50_ms=$(quantile 0.5) p99_ms=$(quantile 0.99) batches=$(tail -1 "$WORK/buckets" | awk '{print $NF}') peak_rss_kib=$hwm stale_events=${stale:-0}"
fi

# Ratios.
ratio() { awk -v a="${R[$1]:-0}" -v b="${R[$2]:-0}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
echo "bench ratio sqlite_events_off/null_consumer=$(ratio sqlite_events_off null_consumer) (target >= 0.8, goal 0.9)"
echo "bench ratio sqlite_events_on/null_relay=$(ratio sqlite_events_on null_relay) (target >= 0.8, goal 0.9)"
if [ -z "${SKIP_SINGLE:-}" ]; then
    echo "bench ratio sqlite_events_on_single/null_relay=$(ratio sqlite_events_on_single null_relay) (events format single)"
fi
if [ -z "${SKIP_PG:-}" ]; then
    echo "bench ratio postgres_events_off/null_consumer=$(ratio postgres_events_off null_consumer) (target >= 0.5)"
    echo "bench ratio postgres_events_on/null_relay=$(ratio postgres_events_on null_relay) (target >= 0.5)"
fi
