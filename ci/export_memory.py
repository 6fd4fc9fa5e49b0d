"""Exports of 100,000 and 1,000,000 events in bounded memory: `sealtrail export` is run on one
log of 1,000,000 events, once for its last 100,000 (after a cursor) and once for all of it, and
its peak RSS (the child's ru_maxrss, i.e. VmHWM) is measured each time. It fails when the
1 M export needs more than MARGIN_MIB above the 100 K export (memory must not grow with the
size of the export) or more than LIMIT_MIB at all, and when any NDJSON line does not verify:
every line's `entry` bytes must hash (RFC 9162 leaf hash, SHA-256 of 0x00 || entry) to its
`event_hash`, its `event` must be the same entry, its `prev_hash` must be the previous line's
`event_hash`, the seqs must be consecutive, and the stored log must pass `sealtrail verify`.
Timing is printed, never judged.

The log is built by `sealtrail bench --only large-build` (in-process, through the writer) and
cached under target/ci-tools/export-log, rebuilt only when the build of sealtrail changes.

Usage: python3 ci/export_memory.py SEALTRAIL_BINARY [EVENTS [CACHE_DIR]]   (run by .ci/run; about 3-5 min)
"""

import base64
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

LIMIT_MIB = 64
MARGIN_MIB = 8
TENANT = "clinic"


def seed(binary, cache, events):
    """The log of `events` clinic events, tenant `clinic`, built in-process through the writer
    by `sealtrail bench`'s large-log builder (far faster than HTTP ingest) and kept in `cache`,
    so a later run of the same build reuses it. Returns its data directory."""
    subprocess.run(
        [binary, "bench", "--only", "large-build", "--store", "embedded", "--skip-baseline",
         "--large-events", str(events), "--large-cache", cache],
        check=True, stdout=subprocess.DEVNULL,
    )
    found = [os.path.join(cache, d, "data") for d in os.listdir(cache)
             if d.endswith(f"-{events}") and os.path.isdir(os.path.join(cache, d, "data"))]
    if len(found) != 1:
        raise SystemExit(f"expected one built log of {events} events in {cache}, found {found}")
    return found[0]


def peak_of(binary, data, out, cursor=None):
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far; measure each export in a
    # fresh Python child so the figures are independent.
    code = (
        "import resource,subprocess,sys,time;"
        "t=time.monotonic();subprocess.run(sys.argv[1:],check=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic()-t)"
    )
    command = [binary, "export", "--data", data, "--tenant", TENANT, "--format", "ndjson",
               "--out", out, "--quiet"]
    if cursor:
        command += ["--cursor", cursor]
    output = subprocess.check_output([sys.executable, "-c", code] + command).split()
    return int(output[0]) / 1024, float(output[1])


def verify_lines(path, first_seq, count):
    seq = first_seq
    previous = None
    with open(path, "rb") as lines:
        for raw in lines:
            line = json.loads(raw)
            entry = line["entry"].encode("utf-8")
            if line["seq"] != seq or line["tenant"] != TENANT:
                raise SystemExit(f"line for seq {seq}: {line['seq']} of {line['tenant']}")
            leaf = hashlib.sha256(b"\x00" + entry).hexdigest()
            if leaf != line["event_hash"]:
                raise SystemExit(f"seq {seq}: the entry does not hash to event_hash")
            event = json.loads(entry)
            if event != line["event"] or event["seq"] != seq:
                raise SystemExit(f"seq {seq}: event is not the entry")
            if previous is not None and event["prev_hash"] != previous:
                raise SystemExit(f"seq {seq}: prev_hash is not the previous line's event_hash")
            previous = line["event_hash"]
            seq += 1
    if seq - first_seq != count:
        raise SystemExit(f"{path}: {seq - first_seq} lines, expected {count}")


def main():
    binary = os.path.abspath(sys.argv[1])
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    small = events // 10
    cache = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else os.path.abspath("target/ci-tools/export-log")
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sealtrail-export-memory-")
    try:
        started = time.monotonic()
        data = seed(binary, cache, events)
        print(f"log of {events} events ready in {time.monotonic() - started:.1f} s ({data})")
        cursor = base64.urlsafe_b64encode(f"v1:asc:{events - small - 1}".encode()).decode().rstrip("=")
        small_out = os.path.join(work, "small.ndjson")
        full_out = os.path.join(work, "full.ndjson")
        small_peak, small_secs = peak_of(binary, data, small_out, cursor)
        full_peak, full_secs = peak_of(binary, data, full_out)
        verify_lines(small_out, events - small, small)
        verify_lines(full_out, 0, events)
        size = os.path.getsize(full_out) / 2**20
        print(f"export of {small} events: peak RSS {small_peak:.1f} MiB, {small_secs:.1f} s")
        print(f"export of {events} events: peak RSS {full_peak:.1f} MiB, {full_secs:.1f} s, "
              f"{events / full_secs:,.0f} events/s, {size:.0f} MiB of NDJSON")
        print(f"every line of both exports verifies ({small + events} lines)")
        if full_peak > LIMIT_MIB:
            raise SystemExit(f"the export of {events} events peaked at {full_peak:.1f} MiB, over {LIMIT_MIB} MiB")
        if full_peak > small_peak + MARGIN_MIB:
            raise SystemExit(f"memory grows with the export: {small_peak:.1f} MiB for {small}, {full_peak:.1f} MiB for {events}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
