//! Which runs a listing or a trend covers ([`Filter`]), and a listed run ([`RunRow`]).

use crate::flatten::{status_from_name, status_name};
use rusqlite::types::Value;
use serde::Serialize;
use velollm_core::document::result::RunStatus;

/// Which runs to list or trend. Every field left `None` matches every run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Part of the target URL, any case (`8080`, `vllm-box`).
    pub target: Option<String>,
    /// Model name, exactly.
    pub model: Option<String>,
    /// Scenario name or file, exactly as recorded.
    pub scenario: Option<String>,
    /// Run status.
    pub status: Option<RunStatus>,
    /// Runs started at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// At most this many runs, the newest.
    pub limit: Option<usize>,
}

impl Filter {
    /// The `WHERE` conditions (ANDed, on the `runs` table aliased `r`) and their parameters, without the limit.
    pub(crate) fn conditions(&self) -> (String, Vec<Value>) {
        let mut clauses = vec!["1 = 1".to_string()];
        let mut params = Vec::new();
        if let Some(t) = &self.target {
            clauses.push("instr(lower(r.target_url), lower(?)) > 0".into());
            params.push(Value::Text(t.clone()));
        }
        if let Some(m) = &self.model {
            clauses.push("r.model = ?".into());
            params.push(Value::Text(m.clone()));
        }
        if let Some(s) = &self.scenario {
            clauses.push("r.scenario = ?".into());
            params.push(Value::Text(s.clone()));
        }
        if let Some(s) = self.status {
            clauses.push("r.status = ?".into());
            params.push(Value::Text(status_name(s).into()));
        }
        if let Some(t) = self.since {
            clauses.push("r.started_ms >= ?".into());
            params.push(Value::Integer(t.as_millisecond()));
        }
        (clauses.join(" AND "), params)
    }

    /// The limit as SQL (`-1` is no limit).
    pub(crate) fn limit_sql(&self) -> i64 {
        self.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// One indexed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Run identifier.
    pub run_id: String,
    /// Wall-clock start (RFC 3339, as recorded).
    pub started_at: String,
    /// Wall-clock end (RFC 3339), when recorded.
    pub finished_at: Option<String>,
    /// `complete`, `partial` or `interrupted`.
    pub status: RunStatus,
    /// Why the run did not complete, when it did not.
    pub status_reason: Option<String>,
    /// velollm version that ran it.
    pub tool_version: String,
    /// Result document format version.
    pub result_schema: String,
    /// Target base URL.
    pub target_url: String,
    /// Model.
    pub model: String,
    /// API dialect.
    pub dialect: String,
    /// Server software, when identified.
    pub server: Option<String>,
    /// Server version, when reported.
    pub server_version: Option<String>,
    /// Scenario name or file.
    pub scenario: String,
    /// Host name of the load-generating machine.
    pub host: String,
    /// The result document's path, when known.
    pub json_path: Option<String>,
    /// Steps run.
    pub steps: u64,
    /// Measured requests over all steps.
    pub requests: u64,
    /// Successful measured requests over all steps.
    pub succeeded: u64,
    /// Prompt tokens of the successful requests (mean per request × successful requests, summed over steps).
    pub prompt_tokens: Option<f64>,
    /// Output tokens of the successful requests (mean per request × successful requests, summed over steps).
    pub output_tokens: Option<f64>,
    /// Median TTFT, ms (the step's for a one-step run; pooled over every step's requests otherwise).
    pub ttft_p50_ms: Option<f64>,
    /// 95th-percentile TTFT, ms (as `ttft_p50_ms`).
    pub ttft_p95_ms: Option<f64>,
    /// Median E2E latency, ms (as `ttft_p50_ms`).
    pub e2e_p50_ms: Option<f64>,
    /// What the run cost in US dollars, when known.
    pub cost_usd: Option<f64>,
}

impl RunRow {
    /// succeeded ÷ requests, when any request was measured.
    pub fn success_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.succeeded as f64 / self.requests as f64)
    }

    /// The columns [`RunRow::from_row`] reads, on the `runs` table aliased `r`.
    pub(crate) const COLUMNS: &'static str = "r.run_id, r.started_at, r.finished_at, r.status, r.status_reason, \
        r.tool_version, r.result_schema, r.target_url, r.model, r.dialect, r.server, r.server_version, r.scenario, \
        r.host, r.json_path, r.steps, r.requests, r.succeeded, r.prompt_tokens, r.output_tokens, r.ttft_p50_ms, \
        r.ttft_p95_ms, r.e2e_p50_ms, r.cost_usd";

    /// A row selected with [`RunRow::COLUMNS`].
    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: row.get(0)?,
            started_at: row.get(1)?,
            finished_at: row.get(2)?,
            status: status(row, 3)?,
            status_reason: row.get(4)?,
            tool_version: row.get(5)?,
            result_schema: row.get(6)?,
            target_url: row.get(7)?,
            model: row.get(8)?,
            dialect: row.get(9)?,
            server: row.get(10)?,
            server_version: row.get(11)?,
            scenario: row.get(12)?,
            host: row.get(13)?,
            json_path: row.get(14)?,
            steps: count(row, 15)?,
            requests: count(row, 16)?,
            succeeded: count(row, 17)?,
            prompt_tokens: row.get(18)?,
            output_tokens: row.get(19)?,
            ttft_p50_ms: row.get(20)?,
            ttft_p95_ms: row.get(21)?,
            e2e_p50_ms: row.get(22)?,
            cost_usd: row.get(23)?,
        })
    }
}

/// A stored run status.
pub(crate) fn status(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<RunStatus> {
    let s: String = row.get(i)?;
    status_from_name(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown run status '{s}'").into(),
        )
    })
}

/// A stored non-negative count.
pub(crate) fn count(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let n: i64 = row.get(i)?;
    u64::try_from(n).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, e.into()))
}
