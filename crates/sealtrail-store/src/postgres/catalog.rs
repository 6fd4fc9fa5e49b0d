//! The PostgreSQL store's integrity check ([`Store::integrity_problems`]): what its catalog
//! says about the schema sealtrail created. PostgreSQL checks its pages as it reads them (with
//! data checksums on); what it does not notice by itself is a schema someone changed: a table
//! gone, a primary key or unique constraint dropped (then two entries could share a seq or an
//! id), an index left invalid by a failed `CREATE INDEX CONCURRENTLY` or `REINDEX`. With
//! [`Integrity::Full`], and when the database has the `amcheck` extension (`CREATE EXTENSION
//! amcheck`, by its owner), each b-tree index of the schema is also checked against its own
//! invariants.
//!
//! [`Store::integrity_problems`]: crate::Store::integrity_problems

use postgres::error::SqlState;

use super::{PgStore, describe};
use crate::{Integrity, Result};

/// The tables of the schema and the constraints each must keep, by the names PostgreSQL
/// gives them (`0001_init.sql` leaves the default names, except `entries_by_id`).
const CONSTRAINTS: [(&str, &str); 11] = [
    ("tenants", "tenants_pkey"),
    ("tenants", "tenants_origin_key"),
    ("entries", "entries_pkey"),
    ("entries", "entries_by_id"),
    ("hashes", "hashes_pkey"),
    ("checkpoints", "checkpoints_pkey"),
    ("idempotency", "idempotency_pkey"),
    ("tokens", "tokens_pkey"),
    ("tokens", "tokens_secret_sha256_key"),
    ("settings", "settings_pkey"),
    ("seals", "seals_pkey"),
];

/// For each `(table, constraint)`: whether the table exists, and whether the constraint does
/// with a valid, ready index behind it.
const SELECT_CONSTRAINTS: &str = "SELECT
        to_regclass(quote_ident(w.tbl)) IS NOT NULL,
        EXISTS (
            SELECT 1 FROM pg_constraint c JOIN pg_index i ON i.indexrelid = c.conindid
            WHERE c.conrelid = to_regclass(quote_ident(w.tbl)) AND c.conname = w.con
              AND c.contype IN ('p', 'u') AND i.indisvalid AND i.indisready
        )
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w(tbl, con, ord)
    ORDER BY w.ord";

/// Every index on the schema's tables that is not valid and ready, with its table.
const SELECT_INVALID_INDEXES: &str = "SELECT c.relname, t.relname
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    WHERE i.indrelid = ANY (SELECT to_regclass(quote_ident(n)) FROM unnest($1::text[]) AS n)
      AND NOT (i.indisvalid AND i.indisready)
    ORDER BY 1";

/// The b-tree indexes of the schema's tables, when `amcheck` is installed (none otherwise).
const SELECT_BTREES: &str = "SELECT c.oid::regclass::text
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am a ON a.oid = c.relam
    WHERE a.amname = 'btree' AND i.indisvalid
      AND i.indrelid = ANY (SELECT to_regclass(quote_ident(n)) FROM unnest($1::text[]) AS n)
      AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'amcheck')
    ORDER BY 1";

const BT_INDEX_CHECK: &str = "SELECT bt_index_check($1::text::regclass)";

/// What the catalog (and `amcheck`, with [`Integrity::Full`]) finds wrong, empty when nothing.
pub(super) fn problems(store: &PgStore, depth: Integrity) -> Result<Vec<String>> {
    let tables: Vec<&str> = CONSTRAINTS.iter().map(|(table, _)| *table).collect();
    let names: Vec<&str> = CONSTRAINTS.iter().map(|(_, name)| *name).collect();
    let found = store.query_map(SELECT_CONSTRAINTS, &[&tables, &names], |row| {
        Ok((row.try_get::<_, bool>(0)?, row.try_get::<_, bool>(1)?))
    })?;
    let mut problems = Vec::new();
    let mut gone: Vec<&str> = Vec::new();
    for ((table, name), (table_exists, constraint_holds)) in CONSTRAINTS.iter().zip(found) {
        if !table_exists {
            if !gone.contains(table) {
                gone.push(table);
                problems.push(format!("table {table} is missing"));
            }
        } else if !constraint_holds {
            problems.push(format!(
                "constraint {name} on {table} is missing or its index is not valid"
            ));
        }
    }
    let invalid = store.query_map(SELECT_INVALID_INDEXES, &[&tables], |row| {
        Ok((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?))
    })?;
    for (index, table) in invalid {
        let problem = format!("index {index} on {table} is not valid (REINDEX it)");
        if !problems.iter().any(|p| p.contains(&index)) {
            problems.push(problem);
        }
    }
    if depth == Integrity::Full {
        let btrees = store.query_map(SELECT_BTREES, &[&tables], |row| row.try_get(0))?;
        for index in btrees {
            let index: String = index;
            let checked = store.with_statement(BT_INDEX_CHECK, |client, statement| {
                match client.query(statement, &[&index]) {
                    Ok(_) => Ok(Checked::Sound),
                    Err(error) if error.code() == Some(&SqlState::INDEX_CORRUPTED) => {
                        Ok(Checked::Damaged(describe(&error)))
                    }
                    // amcheck's functions are not granted to every role: then they cannot
                    // tell, which is not a finding.
                    Err(error) if error.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                        Ok(Checked::NotAllowed)
                    }
                    Err(error) => Err(error),
                }
            })?;
            match checked {
                Checked::Sound => {}
                Checked::Damaged(why) => problems.push(format!("index {index}: {why}")),
                Checked::NotAllowed => break,
            }
        }
    }
    Ok(problems)
}

enum Checked {
    Sound,
    Damaged(String),
    NotAllowed,
}
