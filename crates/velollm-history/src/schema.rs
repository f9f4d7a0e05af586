//! The database schema and its migrations, guarded by `PRAGMA user_version` and marked as velollm's with
//! `PRAGMA application_id`.

use crate::HistoryError;
use rusqlite::Connection;
use std::path::Path;

/// `PRAGMA application_id` of a velollm history database (`velo` in ASCII).
pub const APPLICATION_ID: i64 = 0x7665_6c6f;

/// Migrations in order: the database's `user_version` is the number applied. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their per-step metric values.
    "CREATE TABLE runs (
        run_id          TEXT PRIMARY KEY NOT NULL,
        started_at      TEXT NOT NULL,
        started_ms      INTEGER NOT NULL,
        finished_at     TEXT,
        status          TEXT NOT NULL,
        status_reason   TEXT,
        tool_version    TEXT NOT NULL,
        result_schema   TEXT NOT NULL,
        target_url      TEXT NOT NULL,
        model           TEXT NOT NULL,
        dialect         TEXT NOT NULL,
        server          TEXT,
        server_version  TEXT,
        scenario        TEXT NOT NULL,
        host            TEXT NOT NULL,
        json_path       TEXT,
        steps           INTEGER NOT NULL,
        requests        INTEGER NOT NULL,
        succeeded       INTEGER NOT NULL,
        prompt_tokens   REAL,
        output_tokens   REAL,
        ttft_p50_ms     REAL,
        ttft_p95_ms     REAL,
        e2e_p50_ms      REAL,
        cost_usd        REAL,
        indexed_at      TEXT NOT NULL
    ) STRICT;
    CREATE INDEX runs_by_time ON runs (started_ms);
    CREATE TABLE step_metrics (
        run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        step_index  INTEGER NOT NULL,
        step        TEXT NOT NULL,
        metric      TEXT NOT NULL,
        stat        TEXT NOT NULL,
        value       REAL NOT NULL,
        PRIMARY KEY (run_id, step_index, metric, stat)
    ) STRICT;
    CREATE INDEX step_metrics_by_metric ON step_metrics (metric, stat);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring a freshly opened database to [`SCHEMA_VERSION`]: create it when empty, migrate it when older, refuse
/// it when newer or when it is someone else's database.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), HistoryError> {
    let open = |source| HistoryError::Open { path: path.to_path_buf(), source };
    // The first read also tells whether the file is a database at all.
    let version: i64 =
        conn.query_row("SELECT user_version FROM pragma_user_version", [], |r| r.get(0)).map_err(open)?;
    let app: i64 =
        conn.query_row("SELECT application_id FROM pragma_application_id", [], |r| r.get(0)).map_err(open)?;
    let foreign = || HistoryError::Foreign { path: path.to_path_buf() };
    if app != APPLICATION_ID {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(open)?;
        if app != 0 || tables > 0 || version != 0 {
            return Err(foreign());
        }
    }
    if version > SCHEMA_VERSION {
        return Err(HistoryError::NewerSchema { path: path.to_path_buf(), found: version, known: SCHEMA_VERSION });
    }
    let applied = usize::try_from(version).map_err(|_| foreign())?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction().map_err(open)?;
    for sql in &MIGRATIONS[applied..] {
        tx.execute_batch(sql).map_err(open)?;
    }
    tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"))
        .map_err(open)?;
    tx.commit().map_err(open)
}
