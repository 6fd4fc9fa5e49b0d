#!/usr/bin/env python3
"""What each b-tree of sealtrail's query index costs to maintain, per event.

Builds the index schema of crates/sealtrail-store/src/index/mod.rs (same tables, indexes, FTS5 table and
pragmas) in a scratch SQLite file, fills it with 200,000 synthetic rows shaped like the bench's
clinic events (skewed actors and patients, a few actions, 1-2 targets, five words of details
text), in transactions of 10,000 rows as the indexer writes them, and prints the CPU time per
event with everything, then with each index left out in turn. The difference is what that index
costs. It uses Python's sqlite3 module (the system's SQLite, not the copy sealtrail bundles), so
read the differences, not the absolute figures. It models the index of schema version 6, in
which action, activity, outcome and source were secondary indexes of `events`; since version 7
they are postings (BENCHMARKS.md, change 48), the layout `bench/postings-cost.py` measures.

    python3 bench/index-cost.py [rows]
    python3 bench/index-cost.py [rows] bulk   # batch by batch against a bulk load

A bulk load (how the index catches up when far behind the log) writes the rows into tables
without indexes, in transactions of 200,000, then moves them into the indexed tables in key
order and creates the secondary indexes afterwards, each in one sorted pass.
"""
import os
import random
import sqlite3
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
BATCH = 10_000
SEQ_BITS = 44
BLOCK_BITS = 13

TABLE = """CREATE TABLE events (key INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,
    at INTEGER NOT NULL, action TEXT NOT NULL, activity TEXT, outcome INTEGER NOT NULL,
    actor TEXT NOT NULL, ip TEXT, source TEXT);"""
LOAD = """CREATE TABLE load_events (key INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,
    at INTEGER NOT NULL, action TEXT NOT NULL, activity TEXT, outcome INTEGER NOT NULL,
    actor TEXT NOT NULL, ip TEXT, source TEXT);
CREATE TABLE load_targets (id TEXT NOT NULL, key INTEGER NOT NULL, type TEXT NOT NULL);"""
LOAD_BATCH = 200_000
INDEXES = {
    "time": f"CREATE INDEX events_by_block ON events ((key >> {BLOCK_BITS}), at);",
    "action": "CREATE INDEX events_by_action ON events (action, outcome);",
    "activity": "CREATE INDEX events_by_activity ON events (activity, outcome) WHERE activity IS NOT NULL;",
    "outcome": "CREATE INDEX events_by_outcome ON events (outcome);",
    "actor": "CREATE INDEX events_by_actor ON events (actor, outcome);",
    "ip": "CREATE INDEX events_by_ip ON events (ip, outcome) WHERE ip IS NOT NULL;",
    "source": "CREATE INDEX events_by_source ON events (source, outcome) WHERE source IS NOT NULL;",
}
TARGETS = """CREATE TABLE targets (id TEXT NOT NULL, key INTEGER NOT NULL, type TEXT NOT NULL,
    PRIMARY KEY (id, key, type)) WITHOUT ROWID;"""
TARGETS_BY_TYPE = "CREATE INDEX targets_by_type ON targets (type, key);"
DETAILS = "CREATE VIRTUAL TABLE details USING fts5 (text, content = '', columnsize = 0);"


def rows():
    rng = random.Random(1)
    actions = ["patient.record.read"] * 6 + ["patient.record.update"] * 2 + [
        "user.login", "user.login", "records.export", "record.disclose"]
    activity = {"patient.record.read": "access", "patient.record.update": "update",
                "user.login": "authentication", "records.export": "export",
                "record.disclose": "disclosure"}
    words = [f"w{i}" for i in range(3000)]
    skewed = lambda n: int(n * rng.random() ** 3)
    events, targets, texts = [], [], []
    start = 1_700_000_000_000_000
    for seq in range(N):
        key = (1 << SEQ_BITS) | seq
        action = rng.choice(actions)
        failed = action == "user.login" and rng.random() < 0.2
        events.append((key, 1, start + seq * 1000 - rng.randint(0, 5_000_000), action,
                       activity[action], 1 if failed else 0,
                       f"user-{skewed(5000)}", f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}",
                       f"app-{rng.randint(0, 7)}"))
        targets.append((f"patient-{skewed(100_000)}", key, "patient"))
        if rng.random() < 0.3:
            targets.append((f"doc-{rng.randint(0, 1_000_000)}", key, "document"))
        texts.append((key, " ".join(rng.choice(words) for _ in range(5)) + f" claim-{seq}"))
    return events, targets, texts


def connect(scratch):
    conn = sqlite3.connect(os.path.join(scratch, "index.db"), isolation_level=None)
    for pragma in ("page_size = 16384", "journal_mode = WAL", "synchronous = NORMAL",
                   "cache_size = -32768", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def measure_bulk(name, details=DETAILS):
    """A bulk load of every row, as the indexer catches up from an empty index."""
    with tempfile.TemporaryDirectory() as scratch:
        conn = connect(scratch)
        conn.executescript(TABLE + TARGETS + details + LOAD)
        started = time.process_time()
        for b in range(0, N, LOAD_BATCH):
            conn.execute("BEGIN")
            for c in range(b, min(N, b + LOAD_BATCH), BATCH):
                conn.executemany("INSERT INTO load_events VALUES (?,?,?,?,?,?,?,?,?)", EVENTS[c:c + BATCH])
                conn.executemany("INSERT INTO load_targets VALUES (?,?,?)", TARGETS_BY_BATCH[c // BATCH])
                conn.executemany("INSERT INTO details (rowid, text) VALUES (?,?)", TEXTS[c:c + BATCH])
            conn.execute("COMMIT")
        loaded = time.process_time()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events SELECT * FROM load_events ORDER BY key")
        conn.execute("INSERT INTO targets SELECT id, key, type FROM load_targets ORDER BY id, key, type")
        conn.execute("DELETE FROM load_events")
        conn.execute("DELETE FROM load_targets")
        for statement in list(INDEXES.values()) + [TARGETS_BY_TYPE]:
            conn.execute(statement)
        conn.execute("COMMIT")
        spent = time.process_time() - started
        conn.close()
    print(f"{name:26} {spent / N * 1e6:6.2f} µs/event (load {(loaded - started) / N * 1e6:.2f}, "
          f"move and index {(spent - (loaded - started)) / N * 1e6:.2f})", flush=True)
    return spent / N * 1e6


def measure(name, indexes, with_targets=True, with_details=True):
    with tempfile.TemporaryDirectory() as scratch:
        conn = connect(scratch)
        schema = TABLE + "".join(INDEXES[i] for i in indexes)
        if with_targets:
            schema += TARGETS + TARGETS_BY_TYPE
        if with_details:
            schema += DETAILS
        conn.executescript(schema)
        started = time.process_time()
        for b in range(0, N, BATCH):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", EVENTS[b:b + BATCH])
            if with_targets:
                conn.executemany("INSERT INTO targets VALUES (?,?,?)", TARGETS_BY_BATCH[b // BATCH])
            if with_details:
                conn.executemany("INSERT INTO details (rowid, text) VALUES (?,?)", TEXTS[b:b + BATCH])
            conn.execute("COMMIT")
        spent = time.process_time() - started
        conn.close()
    print(f"{name:26} {spent / N * 1e6:6.2f} µs/event", flush=True)
    return spent / N * 1e6


EVENTS, ALL_TARGETS, TEXTS = rows()
TARGETS_BY_BATCH = [[] for _ in range((N + BATCH - 1) // BATCH)]
for target in ALL_TARGETS:
    TARGETS_BY_BATCH[(target[1] & ((1 << SEQ_BITS) - 1)) // BATCH].append(target)

if __name__ == "__main__":
    print(f"{N:,} events, sqlite {sqlite3.sqlite_version}")
    everything = list(INDEXES)
    if sys.argv[2:3] == ["bulk"]:
        measure("batch by batch", everything)
        measure_bulk("bulk load")
        measure("batch by batch", everything)
        measure_bulk("bulk load")
        sys.exit(0)
    measure("events table alone", [], False, False)
    measure("everything", everything)
    measure("without details (FTS5)", everything, with_details=False)
    measure("without targets (2 trees)", everything, with_targets=False)
    for index in everything:
        measure(f"without {index}", [i for i in everything if i != index])
