-- 6: idempotency keys are first appended to a journal, in the transaction of the group that
-- claims them, and moved into the `idempotency` b-tree later in sorted chunks (see
-- `sqlite/keys.rs`). A journal row is filed under its entry's key, (tenant number << 44) | seq,
-- so a group's keys are appended at the end of their tenant's range.
CREATE TABLE idempotency_journal (
    entry_key INTEGER PRIMARY KEY,
    key       TEXT    NOT NULL
);
