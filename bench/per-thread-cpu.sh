#!/usr/bin/env bash
# Where a running sealtrail server's CPU goes, per event: runs one bench workload on the
# embedded store and, in the middle of it, reads every server thread's CPU time
# (/proc/PID/task/*/stat) and the events ingested (/metrics) twice, SECS apart. Prints the
# µs of CPU per ingested event of each thread name (writer, index, monitor, gaps, the HTTP
# workers, ...) and their sum.
#
#   bench/per-thread-cpu.sh target/release/sealtrail batch 8
#   bench/per-thread-cpu.sh target/release/sealtrail single 8
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
#       bench/per-thread-cpu.sh target/release/sealtrail batch 8
#
# With DATABASE_URL set, the workload runs on PostgreSQL instead, and the CPU of the
# database's processes (every `postgres` process of the machine, its backends and its WAL
# writer) is counted as one more line. The last line says how much of the machine was idle:
# on two cores, an idle share means the server waited for something other than CPU.
#
# Linux only. Run it on an idle machine: the figures are CPU time, but a busy machine
# changes how far behind the followers fall and so how many events each round covers.
set -euo pipefail

bin=${1:?usage: per-thread-cpu.sh SEALTRAIL_BINARY WORKLOAD [SECS]}
workload=${2:?usage: per-thread-cpu.sh SEALTRAIL_BINARY WORKLOAD [SECS]}
secs=${3:-8}
bin=$(realpath "$bin")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [[ -n "${DATABASE_URL:-}" ]]; then
    store=(--store postgres --database-url "$DATABASE_URL")
else
    store=(--store embedded)
fi
"$bin" bench --rounds 1 --only "$workload" "${store[@]}" --skip-baseline --no-limit \
    --seconds $((secs + 12)) >"$out/bench.txt" 2>&1 &
bench=$!

# The server is the bench's child `serve` process; wait for it to listen and warm up.
sleep 6
pid=$(pgrep -P "$bench" -f "serve" | head -1)
port=$(ss -ltnp | grep "pid=$pid," | grep -o '127.0.0.1:[0-9]*' | head -1)
ingested() {
    curl -s "http://$port/metrics" |
        awk '/^sealtrail_events_ingested_total\{.*outcome="created"/ { n += $2 } END { print n + 0 }'
}
threads() {
    for task in /proc/"$pid"/task/*; do
        read -r stat <"$task/stat"
        # Fields after the command name: utime and stime are the 12th and 13th.
        set -- ${stat#*) }
        echo "${task##*/} $(cat "$task/comm") $((${12} + ${13}))"
    done
    if [[ -n "${DATABASE_URL:-}" ]]; then
        for proc in $(pgrep -x postgres); do
            read -r stat <"/proc/$proc/stat" 2>/dev/null || continue
            set -- ${stat#*) }
            echo "db$proc postgres-processes $((${12} + ${13}))"
        done
    fi
}
idle() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
first=$(ingested)
threads | sort >"$out/before"
idle_before=$(idle)
sleep "$secs"
last=$(ingested)
threads | sort >"$out/after"
idle_after=$(idle)
events=$((last - first))
ticks=$(getconf CLK_TCK)
echo "$workload: $events events in $secs s ($((events / secs)) events/s)"
join "$out/before" "$out/after" |
    awk -v n="$events" -v hz="$ticks" '
        { d = ($5 - $3) * 1e6 / hz; if (d > 0) { by[$2] += d; all += d } }
        END {
            for (name in by) printf "  %-18s %7.2f µs of CPU per event\n", name, by[name] / n
            printf "  %-18s %7.2f µs of CPU per event\n", "(all)", all / n
        }' | sort -k2 -rn
awk -v a="$idle_before" -v b="$idle_after" -v hz="$ticks" -v s="$secs" -v cores="$(nproc)" \
    'BEGIN { printf "  machine idle (and waiting on I/O): %.0f%% of %d cores\n", (b - a) / hz / s / cores * 100, cores }'
wait "$bench" || true
