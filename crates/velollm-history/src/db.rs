//! [`History`]: the open database, indexing runs and answering listings and trends.

use crate::flatten::{metric_rows, run_facts};
use crate::query::{Filter, RunRow, count, status};
use crate::trend::{Trend, TrendPoint};
use crate::{HistoryError, MetricSpec, schema};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_core::document::result::RunResult;

/// An open history database.
#[derive(Debug)]
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// A signed SQLite integer from a count.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl History {
    /// Open the database at `path`, creating it (and its folder) when missing and migrating it to the current
    /// schema.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io { path: dir.to_path_buf(), source })?;
        }
        let open = |source| HistoryError::Open { path: path.to_path_buf(), source };
        let mut conn = Connection::open(path).map_err(open)?;
        // Two benchmarks finishing together wait for each other instead of failing.
        conn.busy_timeout(Duration::from_secs(10)).map_err(open)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;").map_err(open)?;
        schema::migrate(&mut conn, path)?;
        Ok(History { conn, path: path.to_path_buf() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::Db { path: self.path.clone(), source }
    }

    /// Index a run, replacing what was stored under its run id (its cost and a known JSON path are kept when
    /// the new call does not know them). `json_path` is stored absolute.
    pub fn index(&mut self, run: &RunResult, json_path: Option<&Path>) -> Result<(), HistoryError> {
        let facts = run_facts(run)?;
        let rows = metric_rows(run);
        let json_path = json_path.map(|p| absolute(p).display().to_string());
        let path = self.path.clone();
        let db = |source| HistoryError::Db { path: path.clone(), source };
        // A savepoint, so that indexing nests inside a batch.
        let tx = self.conn.savepoint().map_err(db)?;
        let m = &run.meta;
        tx.execute(
            "INSERT INTO runs (run_id, started_at, started_ms, finished_at, status, status_reason, tool_version,
                result_schema, target_url, model, dialect, server, server_version, scenario, host, json_path, steps,
                requests, succeeded, prompt_tokens, output_tokens, ttft_p50_ms, ttft_p95_ms, e2e_p50_ms, cost_usd,
                indexed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                ?22, ?23, ?24, ?26, ?25)
             ON CONFLICT (run_id) DO UPDATE SET started_at = excluded.started_at, started_ms = excluded.started_ms,
                finished_at = excluded.finished_at, status = excluded.status, status_reason = excluded.status_reason,
                tool_version = excluded.tool_version, result_schema = excluded.result_schema,
                target_url = excluded.target_url, model = excluded.model, dialect = excluded.dialect,
                server = excluded.server, server_version = excluded.server_version, scenario = excluded.scenario,
                host = excluded.host, json_path = coalesce(excluded.json_path, runs.json_path),
                steps = excluded.steps, requests = excluded.requests, succeeded = excluded.succeeded,
                prompt_tokens = excluded.prompt_tokens, output_tokens = excluded.output_tokens,
                ttft_p50_ms = excluded.ttft_p50_ms, ttft_p95_ms = excluded.ttft_p95_ms,
                e2e_p50_ms = excluded.e2e_p50_ms, cost_usd = coalesce(excluded.cost_usd, runs.cost_usd),
                indexed_at = excluded.indexed_at",
            params![
                m.run_id,
                m.started_at,
                facts.started_ms,
                m.finished_at,
                facts.status,
                run.status_reason,
                m.tool_version,
                run.schema_version,
                m.target.url,
                m.target.model,
                m.target.dialect,
                m.target.server,
                m.target.server_version,
                m.scenario,
                m.host.hostname,
                json_path,
                int(run.steps.len() as u64),
                int(facts.requests),
                int(facts.succeeded),
                facts.prompt_tokens,
                facts.output_tokens,
                facts.ttft_p50_ms,
                facts.ttft_p95_ms,
                facts.e2e_p50_ms,
                jiff::Timestamp::now().to_string(),
                recorded_cost_usd(run),
            ],
        )
        .map_err(db)?;
        tx.execute("DELETE FROM step_metrics WHERE run_id = ?1", [&m.run_id]).map_err(db)?;
        {
            let mut insert = tx
                .prepare("INSERT INTO step_metrics (run_id, step_index, step, metric, stat, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .map_err(db)?;
            for r in &rows {
                insert
                    .execute(params![m.run_id, int(r.step_index as u64), r.step, r.metric, r.stat, r.value])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Record what a run cost in US dollars (`None` forgets it). Returns false when the run is not indexed.
    pub fn set_cost(&mut self, run_id: &str, cost_usd: Option<f64>) -> Result<bool, HistoryError> {
        if let Some(c) = cost_usd.filter(|c| !c.is_finite() || *c < 0.0) {
            return Err(HistoryError::BadPrice(c));
        }
        let n = self.conn.execute("UPDATE runs SET cost_usd = ?1 WHERE run_id = ?2", params![cost_usd, run_id]);
        Ok(n.map_err(self.db())? > 0)
    }

    /// Remove a run. Returns false when it was not indexed.
    pub fn remove(&mut self, run_id: &str) -> Result<bool, HistoryError> {
        let n = self.conn.execute("DELETE FROM runs WHERE run_id = ?1", [run_id]).map_err(self.db())?;
        Ok(n > 0)
    }

    /// Number of indexed runs.
    pub fn len(&self) -> Result<u64, HistoryError> {
        self.conn.query_row("SELECT count(*) FROM runs r", [], |r| count(r, 0)).map_err(self.db())
    }

    /// True when no run is indexed.
    pub fn is_empty(&self) -> Result<bool, HistoryError> {
        Ok(self.len()? == 0)
    }

    /// One run by id.
    pub fn get(&self, run_id: &str) -> Result<Option<RunRow>, HistoryError> {
        let sql = format!("SELECT {} FROM runs r WHERE r.run_id = ?1", RunRow::COLUMNS);
        self.conn.query_row(&sql, [run_id], RunRow::from_row).optional().map_err(self.db())
    }

    /// The runs `filter` selects, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<RunRow>, HistoryError> {
        let (cond, mut params) = filter.conditions();
        params.push(filter.limit_sql().into());
        let sql = format!(
            "SELECT {} FROM runs r WHERE {cond} ORDER BY r.started_ms DESC, r.run_id DESC LIMIT ?",
            RunRow::COLUMNS
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.db())?;
        let rows = stmt.query_map(params_from_iter(params), RunRow::from_row).map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    /// `metric` over time in the runs `filter` selects (the newest `filter.limit` runs), in one `step` or in
    /// every step; points oldest first.
    pub fn trend(&self, metric: &MetricSpec, step: Option<&str>, filter: &Filter) -> Result<Trend, HistoryError> {
        let (cond, mut params) = filter.conditions();
        params.push(filter.limit_sql().into());
        params.push(metric.metric.to_string().into());
        params.push(metric.stat.to_string().into());
        params.push(step.map(str::to_string).into());
        params.push(step.map(str::to_string).into());
        let sql = format!(
            "SELECT r.started_at, r.run_id, m.step, m.value, r.target_url, r.model, r.scenario, r.status,
                r.succeeded, r.prompt_tokens, r.output_tokens, r.cost_usd
             FROM step_metrics m JOIN runs r ON r.run_id = m.run_id
             WHERE r.run_id IN (SELECT r.run_id FROM runs r WHERE {cond}
                                ORDER BY r.started_ms DESC, r.run_id DESC LIMIT ?)
               AND m.metric = ? AND m.stat = ? AND (? IS NULL OR m.step = ?)
             ORDER BY r.started_ms, r.run_id, m.step_index"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.db())?;
        let rows = stmt
            .query_map(params_from_iter(params), |row| {
                Ok(TrendPoint {
                    started_at: row.get(0)?,
                    run_id: row.get(1)?,
                    step: row.get(2)?,
                    value: row.get(3)?,
                    target_url: row.get(4)?,
                    model: row.get(5)?,
                    scenario: row.get(6)?,
                    status: status(row, 7)?,
                    run_succeeded: count(row, 8)?,
                    run_prompt_tokens: row.get(9)?,
                    run_output_tokens: row.get(10)?,
                    run_cost_usd: row.get(11)?,
                })
            })
            .map_err(self.db())?;
        let points = rows.collect::<Result<_, _>>().map_err(self.db())?;
        Ok(Trend { metric: *metric, points })
    }

    /// The SQLite connection, for queries this API does not offer.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Start a transaction for many [`History::index`] calls at once (see [`crate::rebuild`]).
    pub(crate) fn batch<T>(&mut self, f: impl FnOnce(&mut History) -> T) -> Result<T, HistoryError> {
        self.conn.execute_batch("BEGIN").map_err(self.db())?;
        let out = f(self);
        self.conn.execute_batch("COMMIT").map_err(self.db())?;
        Ok(out)
    }
}

/// `p` made absolute (resolving links when it exists).
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_path_buf())
}

/// The cost a run recorded (`--prices` in US dollars): the sum over its steps, when every step was priced.
fn recorded_cost_usd(run: &RunResult) -> Option<f64> {
    let mut total = 0.0;
    for s in &run.steps {
        let c = s.cost.as_ref().filter(|c| c.currency == "USD")?;
        total += c.total;
    }
    (!run.steps.is_empty()).then_some(total)
}
