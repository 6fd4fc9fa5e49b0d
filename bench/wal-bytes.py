#!/usr/bin/env python3
"""WAL bytes a group commit of the embedded store writes per event, by what the group holds.

A model of the writer's log tables (`crates/sealtrail-store/src/sqlite/layout.sql`: `entries`
with `entries_by_id`, `hashes`, `idempotency`) in a SQLite database of its own, filled the
way `sealtrail bench --only single` fills the real one: groups of 40 events of about 1 KiB,
UUIDv7 ids, two stored hashes per event on average, and an idempotency key on 9 events of 10
(the clinic's interactive apps send one). Each commit's WAL growth is what SQLite writes and
fsyncs for that group; the figure is its mean over the last 500 groups, after the tables have
grown for the rest.

Layouts compared:
  today     every key inserted into the `idempotency` b-tree in the group that claims it
  no-keys   the same events without idempotency keys (the floor for the rest of the row)
  journal   keys appended to a rowid table in their group, and moved into the b-tree in
            sorted chunks of CHUNK keys once the journal holds MERGE_AT (a lookup would read
            an in-memory map of the journal); the merging commits are counted too
Key shapes: `clinic` is the bench's (64 streams, each counting up), `random` a UUIDv4 each.

    python3 bench/wal-bytes.py            # groups=4000
    python3 bench/wal-bytes.py 20000      # a larger tree

Round nine of BENCHMARKS.md quotes its output.
"""
import os
import random
import sqlite3
import sys
import tempfile
import uuid

GROUP = 40
STREAMS = 64
MERGE_AT = 8192
CHUNK = 2048
SCHEMA = """
CREATE TABLE entries (key INTEGER PRIMARY KEY, id BLOB NOT NULL, entry BLOB NOT NULL,
    tenant_number INTEGER GENERATED ALWAYS AS (key >> 44) VIRTUAL);
CREATE UNIQUE INDEX entries_by_id ON entries (tenant_number, id);
CREATE TABLE hashes (key INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE idempotency (tenant_number INTEGER NOT NULL, key TEXT NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (tenant_number, key)) WITHOUT ROWID;
CREATE TABLE journal (id INTEGER PRIMARY KEY, tenant_number INTEGER NOT NULL,
    key TEXT NOT NULL, seq INTEGER NOT NULL);
"""


def run(layout, shape, groups, directory):
    path = os.path.join(directory, f"{layout}-{shape}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.executescript(SCHEMA)
    rng = random.Random(7)
    base = 1 << 44
    seq = hash_index = counter = journal_rows = 0
    counts = [0] * STREAMS
    measured = 0
    for group in range(groups):
        db.execute("BEGIN IMMEDIATE")
        for _ in range(GROUP):
            counter += 1
            # UUIDv7: the millisecond, a counter, random bits.
            uid = group.to_bytes(6, "big") + counter.to_bytes(4, "big") + rng.randbytes(6)
            db.execute("INSERT INTO entries (key, id, entry) VALUES (?, ?, ?)",
                       (base + seq, uid, rng.randbytes(1000)))
            for _ in range(2 if seq % 2 else 1):
                db.execute("INSERT INTO hashes VALUES (?, ?)", (base + hash_index, rng.randbytes(32)))
                hash_index += 1
            if layout != "no-keys" and rng.random() < 0.9:
                stream = rng.randrange(STREAMS)
                counts[stream] += 1
                if shape == "clinic":
                    key = f"req-{stream:x}-{counts[stream]:x}:ehr.record.read"
                else:
                    key = str(uuid.UUID(bytes=rng.randbytes(16), version=4))
                if layout == "today":
                    db.execute("INSERT INTO idempotency VALUES (1, ?, ?)", (key, seq))
                else:
                    db.execute("INSERT INTO journal VALUES (?, 1, ?, ?)", (base + seq, key, seq))
                    journal_rows += 1
            seq += 1
        if layout == "journal" and journal_rows >= MERGE_AT:
            db.execute(f"""INSERT INTO idempotency (tenant_number, key, seq)
                SELECT tenant_number, key, seq FROM
                    (SELECT * FROM journal ORDER BY id LIMIT {CHUNK}) ORDER BY tenant_number, key""")
            db.execute(f"DELETE FROM journal WHERE id IN (SELECT id FROM journal ORDER BY id LIMIT {CHUNK})")
            journal_rows -= CHUNK
        before = os.path.getsize(path + "-wal")
        db.execute("COMMIT")
        grown = os.path.getsize(path + "-wal") - before
        if group >= groups - 500:
            measured += grown
        elif group % 500 == 0:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return measured / (500 * GROUP)


def main():
    groups = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    with tempfile.TemporaryDirectory() as directory:
        print(f"{groups} groups of {GROUP} events; WAL bytes per event over the last 500 groups")
        for layout, shape in [("no-keys", "-"), ("today", "clinic"), ("journal", "clinic"),
                              ("today", "random"), ("journal", "random")]:
            print(f"  {layout:8} {shape:7} {run(layout, shape, groups, directory):8,.0f}")


if __name__ == "__main__":
    main()
