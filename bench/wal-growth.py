#!/usr/bin/env python3
"""How large the embedded store's and the query index's write-ahead logs grow under sustained
batched ingest, and what is left of them once the server is idle.

Starts `sealtrail serve` from the given binary on a scratch data directory, makes a token with
`sealtrail tokens create`, then for --seconds sends 1,000-event batches from --clients
connections (POST /v1/events/batch) while one more client searches (GET /v1/events, a page of
100) every half second, so that the index's readers run beside the indexer as they do in
service. Every --sample seconds it prints the size of DIR/sealtrail.db-wal and DIR/index.db-wal
and the events acknowledged in that window; then it stops sending, keeps sampling for --idle
seconds, and stops the server (SIGTERM). The summary gives the largest WAL sizes under load,
the sizes at the end of the idle time, and the median ingest rate of the windows.

    python3 bench/wal-growth.py target/release/sealtrail [--seconds 60] [--idle 30]

With SEALTRAIL_LOG=warn,sealtrail_store::sqlite::checkpoint=debug and --keep-log FILE, serve's
log has a line per restart or truncation of a WAL: which thread ran it, and how long it took.

Uses only Python's standard library. Client and server share the machine, as in
`sealtrail bench`; on two cores the driver takes some of the server's CPU, so compare two
builds with this script rather than with the bench's figures.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TENANT = "clinic"
MIB = 1024 * 1024


def batch_body(size, offset):
    events = []
    for i in range(offset, offset + size):
        events.append({
            "action": "patient.record.update" if i % 3 else "patient.record.read",
            "activity": "update" if i % 3 else "read",
            "outcome": "success" if i % 11 else "failure",
            "actor": {"id": f"clinician-{i % 97}", "type": "user",
                      "email": f"clinician-{i % 97}@clinic.example"},
            "targets": [{"type": "patient", "id": f"p-{i % 5003}", "name": "J. Doe"}],
            "context": {"ip": f"10.1.{i % 250}.{i % 7}", "user_agent": "ehr-web/4.2",
                        "request_id": f"req-{i}"},
            "source": {"app": "ehr-web", "instance": "pod-7"},
            "details": {"fields": ["name", "dob", "allergies"], "reason": "treatment",
                        "note": "x" * (i % 64)},
        })
    return json.dumps(events).encode()


def wal_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("exe", help="the sealtrail binary to serve with")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=float, default=30)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--sample", type=float, default=5)
    parser.add_argument("--keep-log", metavar="FILE", help="copy serve's stderr here")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="sealtrail-wal-")
    data = os.path.join(scratch, "data")
    env = dict(os.environ)
    env.setdefault("SEALTRAIL_LOG", "warn")
    log = open(os.path.join(scratch, "serve.log"), "w")
    server = subprocess.Popen(
        [args.exe, "serve", "--data", data, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    try:
        address = None
        for line in server.stdout:
            if line.startswith("sealtrail listening on"):
                address = next(w for w in line.split() if w.startswith("http://"))
                break
        if address is None:
            sys.exit(f"serve printed no address; see {log.name}")
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        host, port = address[len("http://"):].rstrip("/").split(":")
        created = subprocess.run(
            [args.exe, "tokens", "create", "--data", data, "--tenant", TENANT,
             "--scope", "events:write", "--scope", "events:read", "--json"],
            capture_output=True, text=True, env=env, check=True)
        token = json.loads(created.stdout)["token"]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        run(args, host, int(port), headers, data)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if args.keep_log:
            shutil.copyfile(log.name, args.keep_log)
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, host, port, headers, data):
    wals = {name: os.path.join(data, name + "-wal") for name in ("sealtrail.db", "index.db")}
    acknowledged = [0]
    failures = [0]
    lock = threading.Lock()
    sending = threading.Event()
    sending.set()

    def ingest(client):
        body = batch_body(args.batch, client * args.batch)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while sending.is_set():
            conn.request("POST", "/v1/events/batch", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            with lock:
                if response.status in (200, 201, 207):
                    acknowledged[0] += answer.count(b'"seq"')
                else:
                    failures[0] += 1

    def search():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while sending.is_set():
            conn.request("GET", "/v1/events?limit=100&activity=read", headers=headers)
            conn.getresponse().read()
            time.sleep(0.5)

    threads = [threading.Thread(target=ingest, args=(c,)) for c in range(args.clients)]
    threads.append(threading.Thread(target=search))
    start = time.monotonic()
    for t in threads:
        t.start()
    print(f"{'t (s)':>6} {'phase':>5} {'sealtrail.db-wal':>17} {'index.db-wal':>13} {'events/s':>9}")
    rates = []
    largest = {name: 0 for name in wals}
    last_count, last_at = 0, start
    phase = "load"
    while True:
        time.sleep(args.sample)
        now = time.monotonic()
        with lock:
            count = acknowledged[0]
        rate = (count - last_count) / (now - last_at)
        last_count, last_at = count, now
        sizes = {name: wal_size(path) for name, path in wals.items()}
        if phase == "load":
            rates.append(rate)
            for name, size in sizes.items():
                largest[name] = max(largest[name], size)
        print(f"{now - start:6.0f} {phase:>5} {sizes['sealtrail.db'] / MIB:13.1f} MiB"
              f" {sizes['index.db'] / MIB:9.1f} MiB {rate:9.0f}", flush=True)
        if phase == "load" and now - start >= args.seconds:
            sending.clear()
            for t in threads:
                t.join()
            phase = "idle"
            idle_from = time.monotonic()
            last_at = idle_from
            with lock:
                last_count = acknowledged[0]
        elif phase == "idle" and now - idle_from >= args.idle:
            break
    print(f"events acknowledged: {acknowledged[0]} ({failures[0]} failed requests)")
    print(f"median ingest rate of the {args.sample:.0f}-s windows: {statistics.median(rates):.0f} events/s")
    for name in wals:
        print(f"{name}-wal: largest under load {largest[name] / MIB:.1f} MiB,"
              f" after {args.idle:.0f} s idle {sizes[name] / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
