#!/usr/bin/env bash
# Replay benchmark of issue 4: a generated year of a large trust's traffic
# (the default loadgen profile: about 400,000 discharges and 1,000,000
# outpatient attendances with their documents and acknowledgements) through
# `tocsin replay` with the SQLite store; then memory and cost per message
# with 1,000 to 1,000,000 open expectations.
#
#   bench/replay-year.sh              # the full year and 1k/10k/100k/1M open
#   DAYS=30 OPEN="1000 100000" bench/replay-year.sh   # quicker
#   SKIP_BUILD=1 TOCSIN=/path/to/tocsin bench/replay-year.sh   # a given binary
#   STORE=none bench/replay-year.sh   # replay's default: no store, the report
#                                     # built in memory (`scratch`, its former
#                                     # name, still works) instead of a kept
#                                     # --store file
#
# The year is written packed (one HL7 file and one NDJSON file per 5-minute
# window, --pack-seconds 300), which the tracker judges exactly as one file
# per message (see crates/tocsin-loadgen/src/files.rs). Prints `bench ...`
# lines. Needs about 8 GB of disk for the year under $WORK (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
DAYS=${DAYS:-365}
OPEN=${OPEN:-"1000 10000 100000 1000000"}
SEED=${SEED:-1}
STORE=${STORE:-kept}
case "$STORE" in kept|none) ;; scratch) STORE=none ;; *) echo "STORE must be kept or none, not $STORE" >&2; exit 2 ;; esac
WORK=${WORK:-$(mktemp -d)}
KEEP=${KEEP:-}
[ -n "$KEEP" ] || trap 'rm -rf "$WORK"' EXIT

[ -n "${SKIP_BUILD:-}" ] || cargo build -q --release -p tocsin
TOCSIN=${TOCSIN:-target/release/tocsin}
echo "bench machine cpus=$(nproc) model=\"$(lscpu | sed -n 's/^Model name: *//p')\" kernel=$(uname -r) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }

# replay NAME DIR UNTIL MESSAGES: time a replay, peak RSS from GNU time.
replay() {
    local name=$1 dir=$2 until=$3 messages=$4
    rm -f "$WORK/$name.sqlite"*
    local store=()
    [ "$STORE" = none ] || store=(--store "sqlite://$WORK/$name.sqlite")
    /usr/bin/time -f "elapsed=%e user=%U sys=%S maxrss_kib=%M" -o "$WORK/$name.time" \
        $TOCSIN replay --until "$until" --alerts "$WORK/$name.alerts" --report "$WORK/$name.report" --format csv \
        "${store[@]}" "$dir" 2>"$WORK/$name.stderr"
    local t elapsed rss cpu
    t=$(cat "$WORK/$name.time"); elapsed=$(echo "$t" | field elapsed); rss=$(echo "$t" | field maxrss_kib)
    cpu=$(awk -v u="$(echo "$t" | field user)" -v s="$(echo "$t" | field sys)" 'BEGIN{printf "%.2f", u+s}')
    # cpu_seconds beside seconds: on a shared machine, wall time above CPU
    # time / cores means the replay waited for CPU, not for itself.
    echo "bench replay=$name store=$STORE messages=$messages seconds=$elapsed cpu_seconds=$cpu load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" rate=$(awk -v m="$messages" -v s="$elapsed" 'BEGIN{printf "%.0f", m/s}') peak_rss_kib=$rss alerts=$(wc -l <"$WORK/$name.alerts") rejected=$(grep -c . "$WORK/$name.stderr" | awk '{print $1-1}')"
}

# The year.
start=$(date +%s.%N)
line=$($TOCSIN loadgen --seed "$SEED" --days "$DAYS" --out "$WORK/year" --pack-seconds 300)
gen=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
messages=$(echo "$line" | field messages)
echo "bench generate days=$DAYS seconds=$gen $line files=$(ls "$WORK/year" | wc -l) bytes_on_disk=$(du -sb "$WORK/year" | cut -f1)"
end=$(date -u -d "2025-01-06 +$((DAYS + 60)) days" +%Y-%m-%dT00:00:00Z)
replay year "$WORK/year" "$end" "$messages"
[ -n "$KEEP" ] || rm -rf "$WORK/year"

# N open expectations: N discharges over 10 days whose summaries never come,
# replayed with --until before the first deadline, so every expectation is
# still open at the end (the clock cannot pass --until).
for n in $OPEN; do
    dir="$WORK/open-$n"
    line=$($TOCSIN loadgen --seed "$SEED" --days 10 --discharges-per-day "$((n / 10))" --attendances-per-day 0 \
        --missing-share 1 --late-share 0 --out "$dir" --pack-seconds 300)
    replay "open-$n" "$dir" 2025-01-06T00:00:00Z "$(echo "$line" | field messages)"
    echo "bench open expectations=$(echo "$line" | field encounters)"
    rm -rf "$dir"
done
