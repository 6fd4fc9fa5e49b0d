#!/usr/bin/env bash
# How promptly the monitor raises alerts under batched ingest: runs the batch workload on the
# embedded store for 20 s and, every 2 s, prints the events ingested and the alerts raised
# (both from /metrics) and the monitor thread's CPU time in clock ticks (/proc/PID/task/*/stat).
# The clinic events plant incidents in proportion to the events, so a monitor that keeps up
# raises alerts in step with the events; one that stalls shows flat alerts and flat CPU.
#
#   bench/alerts-during-ingest.sh target/release/sealtrail
#
# Linux only.
set -euo pipefail

bin=$(realpath "${1:?usage: alerts-during-ingest.sh SEALTRAIL_BINARY}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" bench --rounds 1 --only batch --store embedded --skip-baseline --no-limit --seconds 20 \
    >"$out/bench.txt" 2>&1 &
bench=$!
sleep 4
pid=$(pgrep -P "$bench" -f "serve" | head -1)
port=$(ss -ltnp | grep "pid=$pid," | grep -o '127.0.0.1:[0-9]*' | head -1)
for i in $(seq 0 7); do
    metrics=$(curl -s "http://$port/metrics")
    events=$(awk '/^sealtrail_events_ingested_total\{.*outcome="created"/ { n += $2 } END { print n + 0 }' <<<"$metrics")
    alerts=$(awk '/^sealtrail_alerts_total/ { n += $2 } END { print n + 0 }' <<<"$metrics")
    ticks=0
    for task in /proc/"$pid"/task/*; do
        if [ "$(cat "$task/comm")" = "sealtrail-monit" ]; then
            read -r stat <"$task/stat"
            set -- ${stat#*) }
            ticks=$((${12} + ${13}))
        fi
    done
    echo "t=$((4 + 2 * i))s events=$events alerts=$alerts monitor_cpu_ticks=$ticks"
    sleep 2
done
wait "$bench"
