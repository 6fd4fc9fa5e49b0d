#!/usr/bin/env bash
# How the query index keeps up with sustained batched ingest: runs `sealtrail bench --only
# batch` on the embedded store for SECS seconds and prints the server's
# sealtrail_index_lag_seconds every 5 s. The bench's own index-lag figure covers its 10 s run;
# a cost that grows with the log shows only in a longer one.
#
#   bench/index-lag-trend.sh target/release/sealtrail 60
#
# Linux only; run it on an idle machine.
set -euo pipefail

bin=${1:?usage: index-lag-trend.sh SEALTRAIL_BINARY [SECS]}
secs=${2:-60}
bin=$(realpath "$bin")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin" bench --rounds 1 --only batch --store embedded --skip-baseline --no-limit \
    --seconds "$secs" >"$out/bench.txt" 2>&1 &
bench=$!

# The server is the bench's child `serve` process; wait for it to listen.
sleep 3
pid=$(pgrep -P "$bench" -f "serve" | head -1)
port=$(ss -ltnp | grep "pid=$pid," | grep -o '127.0.0.1:[0-9]*' | head -1)
lags=""
for _ in $(seq 5 5 $((secs - 5))); do
    sleep 5
    lag=$(curl -s "http://$port/metrics" |
        awk '/^sealtrail_index_lag_seconds/ { printf "%.1f", $2 }')
    lags="$lags ${lag:-?}"
done
wait "$bench"
echo "index lag every 5 s (s):$lags"
grep '^round' "$out/bench.txt"
