#!/usr/bin/env python3
"""What the query index would cost per event with postings per block instead of a b-tree
entry per event and filter.

The index today (crates/sealtrail-store/src/index/mod.rs) writes, for every event, a row of
`events`, an entry in each of seven secondary indexes of it, two b-tree entries per target and
its details text into FTS5. `bench/index-cost.py` measures each of those parts. This script
measures the layout that would replace the name indexes and the target trees: every event
still gets its `events` row, its entry in the time index and its text, but the filters' names
go into *postings*: for each block of 2^13 seqs, one row per distinct (filter, value) pair
holding the offsets in the block of the events that have it, written once, when the block is
complete. A block that is not complete yet is searched by reading its rows (at most 8,192).

Two orders of the postings table are measured:

- `(field, value, block)`: all blocks of a value are one range, so a search for a rare value
  reads exactly the blocks that hold it; a new block's rows go in at each value's place in the
  tree;
- `(block, field, value)`: a new block's rows go in at the end of the tree; a search for a
  value seeks it in every block.

Both are compared with the layout of today, on the same rows as `bench/index-cost.py` (same
generator, same pragmas, transactions of 10,000). The postings of each block are computed
before the clock starts, so that only SQLite's work is timed, as it would be the Rust side's
to build them in memory. It uses Python's sqlite3 module (the system's SQLite, not the copy
sealtrail bundles): read the ratios, not the absolute figures.

    python3 bench/postings-cost.py [rows]

It also prints, for each filter, how many postings rows and how many bytes the log's rows
turn into, and how many postings rows a first page of 100 reads for values drawn from the
rows, rare and popular: what a search would read where today it reads index entries.
"""
import importlib.util
import os
import struct
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("index_cost", os.path.join(HERE, "index-cost.py"))
cost = importlib.util.module_from_spec(spec)
sys.argv = sys.argv[:2]
spec.loader.exec_module(cost)

N = cost.N
BATCH = cost.BATCH
BLOCK_BITS = cost.BLOCK_BITS
SEQ_MASK = (1 << cost.SEQ_BITS) - 1
# Filters, in the order of the columns of an `events` row from index-cost.py.
FIELDS = {"action": 3, "activity": 4, "outcome": 5, "actor": 6, "ip": 7, "source": 8}
TARGET_TYPE, TARGET_ID = 20, 21

EVENTS_TABLE = """CREATE TABLE events (key INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,
    at INTEGER NOT NULL, action TEXT NOT NULL, activity TEXT, outcome INTEGER NOT NULL,
    actor TEXT NOT NULL, ip TEXT, source TEXT);"""
TIME_INDEX = cost.INDEXES["time"]
POSTINGS = {
    "value first": """CREATE TABLE postings (field INTEGER NOT NULL, value NOT NULL,
        block INTEGER NOT NULL, seqs BLOB NOT NULL, PRIMARY KEY (field, value, block)) WITHOUT ROWID;""",
    "block first": """CREATE TABLE postings (block INTEGER NOT NULL, field INTEGER NOT NULL,
        value NOT NULL, seqs BLOB NOT NULL, PRIMARY KEY (block, field, value)) WITHOUT ROWID;""",
}


def block_postings():
    """Per block, its postings rows: (field, value, block, offsets as little-endian u16)."""
    by_block = defaultdict(lambda: defaultdict(list))
    for event in cost.EVENTS:
        seq = event[0] & SEQ_MASK
        block, offset = seq >> BLOCK_BITS, seq & ((1 << BLOCK_BITS) - 1)
        for name, column in FIELDS.items():
            value = event[column]
            if value is not None:
                by_block[block][(column, value)].append(offset)
    for target_id, key, kind in cost.ALL_TARGETS:
        seq = key & SEQ_MASK
        block, offset = seq >> BLOCK_BITS, seq & ((1 << BLOCK_BITS) - 1)
        by_block[block][(TARGET_TYPE, kind)].append(offset)
        by_block[block][(TARGET_ID, target_id)].append(offset)
    rows = {}
    for block, lists in by_block.items():
        rows[block] = sorted(
            (field, value, block, struct.pack(f"<{len(o)}H", *sorted(set(o))))
            for (field, value), o in lists.items()
        )
    return rows


def measure(name, schema, write_batch):
    """Writes every row in transactions of BATCH with `write_batch(conn, first_row)` into a
    scratch index of `schema`; prints and returns the CPU time per event."""
    with tempfile.TemporaryDirectory() as scratch:
        conn = cost.connect(scratch)
        conn.executescript(schema)
        started = time.process_time()
        for b in range(0, N, BATCH):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", cost.EVENTS[b:b + BATCH])
            conn.executemany("INSERT INTO details (rowid, text) VALUES (?,?)", cost.TEXTS[b:b + BATCH])
            write_batch(conn, b)
            conn.execute("COMMIT")
        spent = time.process_time() - started
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = os.path.getsize(os.path.join(scratch, "index.db"))
        conn.close()
    print(f"{name:34} {spent / N * 1e6:6.2f} µs/event, file {size / N:6.1f} bytes/event", flush=True)
    return spent / N * 1e6


def measure_postings(name, order, postings):
    insert = ("INSERT INTO postings VALUES (?,?,?,?)" if order == "value first"
              else "INSERT INTO postings (field, value, block, seqs) VALUES (?,?,?,?)")
    per_block = 1 << BLOCK_BITS

    def write_batch(conn, b):
        # The postings of the blocks this batch completes.
        for block in range(b // per_block, min(N, b + BATCH) // per_block):
            conn.executemany(insert, postings[block])

    return measure(name, EVENTS_TABLE + TIME_INDEX + POSTINGS[order] + cost.DETAILS, write_batch)


def measure_today(name):
    def write_batch(conn, b):
        conn.executemany("INSERT INTO targets VALUES (?,?,?)", cost.TARGETS_BY_BATCH[b // BATCH])

    schema = (cost.TABLE + "".join(cost.INDEXES.values()) + cost.TARGETS
              + cost.TARGETS_BY_TYPE + cost.DETAILS)
    return measure(name, schema, write_batch)


def reads_per_page(postings):
    """Postings rows a first page of 100 reads, for the rarest, a middle and the commonest
    value of each filter (value-first order: the value's blocks in order until 100)."""
    blocks_of = defaultdict(list)
    for rows in postings.values():
        for field, value, block, seqs in rows:
            blocks_of[(field, value)].append(len(seqs) // 2)
    names = {v: k for k, v in FIELDS.items()} | {TARGET_TYPE: "target type", TARGET_ID: "target id"}
    print(f"\n{'filter':12} {'values':>8} {'rows':>9} {'rows/block':>10}  rows a page of 100 reads: rarest / median / commonest value")
    for field in sorted(names):
        counts = [(sum(c), c) for (f, _), c in blocks_of.items() if f == field]
        counts.sort(key=lambda x: x[0])
        def page(c):
            got, read = 0, 0
            for n in c:
                read += 1
                got += n
                if got >= 100:
                    break
            return read
        rows = sum(len(c) for _, c in counts)
        blocks = max(1, N >> BLOCK_BITS)
        picks = [counts[0][1], counts[len(counts) // 2][1], counts[-1][1]]
        print(f"{names[field]:12} {len(counts):8,} {rows:9,} {rows / blocks:10,.0f}  "
              + " / ".join(str(page(c)) for c in picks))


if __name__ == "__main__":
    print(f"{N:,} events, sqlite {cost.sqlite3.sqlite_version}, blocks of {1 << BLOCK_BITS:,} seqs")
    postings = block_postings()
    for _ in range(2):
        measure_today("today: 7 indexes, 2 target trees")
        measure_postings("postings (field, value, block)", "value first", postings)
        measure_postings("postings (block, field, value)", "block first", postings)
    reads_per_page(postings)
