#!/usr/bin/env bash
# Ingest over HTTP into two `sealtrail serve` instances sharing one PostgreSQL database, beside
# the hand-built baseline (../shared/baseline/run.sh) measured in the same run.
#
#   PGURL=postgres://postgres@127.0.0.1:5432/postgres bench/pg-two-instances.sh
#
# Prints, per round, the events/s acknowledged by both instances together for
#   single: 64 connections (32 per instance), one event per request (wrk, SECS seconds)
#   batch:  4 connections (2 per instance), 1000 events per request
# and the baseline's own lines. Needs wrk (installed with apt-get when missing) and pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
command -v wrk >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p sealtrail
bin=target/release/sealtrail
work=$(mktemp -d)
db=sealtrail_bench_$$
psql -q "$PGURL" -c "CREATE DATABASE $db" >/dev/null
url="${PGURL%/*}/$db"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PGURL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

$bin keys generate --name sealtrail-root --out "$work/keys" >/dev/null 2>&1
$bin migrate --database-url "$url" >/dev/null
ports=()
for i in 1 2; do
  $bin serve --database-url "$url" --data "$work/data$i" --listen 127.0.0.1:0 \
    --signing-key "$work/keys/sealtrail-root.key" --verify-interval-secs 0 \
    >"$work/serve$i.out" 2>"$work/serve$i.err" &
  pids+=($!)
done
for i in 1 2; do
  for _ in $(seq 1 100); do grep -q "listening on" "$work/serve$i.out" && break; sleep 0.1; done
  ports+=("$(grep -o 'http://[0-9.:]*' "$work/serve$i.out")")
done
export SEALTRAIL_TOKEN=$($bin tokens create --database-url "$url" --data "$work/data1" \
  --signing-key "$work/keys/sealtrail-root.key" --tenant bench --scope events:write --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# Both instances at once; the rate is the sum of what each acknowledged (2xx) per second.
run() { # script connections
  local script=$1 conns=$2 per=$3 outs=()
  for i in 0 1; do
    wrk -t1 -c"$conns" -d"${SECS}s" --latency -s "bench/$script" "${ports[$i]}" >"$work/wrk$i.txt" 2>&1 &
    outs+=($!)
  done
  wait "${outs[@]}"
  python3 - "$work/wrk0.txt" "$work/wrk1.txt" "$per" <<'PY'
import re, sys
total = 0.0
p99 = []
for path in sys.argv[1:3]:
    text = open(path).read()
    if "Non-2xx" in text:
        sys.exit(f"{path}: non-2xx responses:\n{text}")
    total += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", text)
    p99.append(float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)])
print(f"{total * int(sys.argv[3]):.0f} events/s (p99 {max(p99):.1f} ms)")
PY
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round sealtrail_2x_pg single_events_per_s $(run single.lua 32 1)"
  echo "round $round sealtrail_2x_pg batch_events_per_s $(run batch.lua 2 1000)"
done
# Every acknowledged event went into one log that verifies end to end.
$bin verify --database-url "$url" --data "$work/data1" --tenant bench | tail -n 2
if [ -x ../shared/baseline/run.sh ] || [ -f ../shared/baseline/run.sh ]; then
  for round in $(seq 1 "$ROUNDS"); do
    PGURL="$PGURL" SECS="$SECS" bash ../shared/baseline/run.sh | sed "s/^/round $round /"
  done
else
  echo "../shared/baseline/run.sh not found: baseline not measured"
fi
