//! velollm's history database: every run indexed in an embedded SQLite file, to list and filter runs, follow a
//! metric over time, and weigh latency saved against cost.
//!
//! The result JSON stays the canonical artifact; the database is an index that [`History::rebuild`] can
//! recreate from a folder of results. It lives at [`default_path`] unless told otherwise, and needs nothing
//! installed (SQLite is compiled in).
//!
//! # Modules
//!
//! * [`History`] (module `db`) — the open database: indexing runs, listings, trends; `flatten` turns a result
//!   document into the rows it stores, `rebuild` re-indexes a folder of results.
//! * [`metric`] — which metrics are stored and how `ttft.p95` maps to a stored `(metric, stat)`.
//! * [`schema`] — the tables and their migrations.
//! * [`Filter`] and [`RunRow`] (module `query`), [`Trend`] and [`Series`] (module `trend`), [`Roi`] (module
//!   `roi`) — what a listing or a trend covers and returns; `since` parses `--since`.
//! * [`default_path`] (module `path`) and [`HistoryError`] (module `error`).
//!
//! # Schema
//!
//! Guarded by `PRAGMA user_version` ([`SCHEMA_VERSION`]) and marked by `PRAGMA application_id`
//! ([`schema::APPLICATION_ID`]):
//!
//! - `runs`: one row per run id — start and end times (`started_at` as recorded, `started_ms` for ordering),
//!   status, tool version, target URL, model, dialect, server and its version, scenario, host, the result
//!   file's path, step/request/success counts, token totals, headline TTFT p50/p95 and E2E p50, and
//!   `cost_usd` (the sum of the steps' costs when the run was priced with `--prices` in USD, else NULL until a
//!   cost is recorded with [`History::set_cost`]).
//! - `step_metrics`: long and narrow, `(run_id, step_index, step, metric, stat, value)` — every statistic
//!   ([`metric::STATS`]) of every per-request distribution and every per-step scalar of
//!   [`velollm_core::aggregate::registry`] (stat `value`) of every step, so a trend of any metric is one query.
//!   Metric names are the canonical names of the registry; values are read with
//!   [`velollm_core::judge::threshold::Lookup`].
//!
//! # ROI
//!
//! Over a trend window, for each series of the same target URL, scenario and step ([`Series`]) of a latency
//! metric (milliseconds, lower is better), the earliest run is compared with the latest:
//!
//! - **latency saved per request** = earlier − later value of the metric, in ms; × 1000 requests ÷ 1000 ms
//!   per second, that is also the **seconds saved per 1000 requests**.
//! - **cost per request** of each run = its cost ÷ its successful requests. The cost is computed from
//!   [`Prices`] when given (measured prompt and output tokens — mean per successful request × successful
//!   requests, summed over steps — times US dollars per million tokens), otherwise it is the run's recorded
//!   `cost_usd`. When either run has no cost, the ROI is "no cost data in these runs": a cost is never
//!   invented.
//! - **ROI** = seconds saved per 1000 requests ÷ extra dollars per 1000 requests, in seconds saved per extra
//!   dollar, when the later run is faster and dearer; "saves time and money" when it is faster and cheaper
//!   ("at no extra cost" when the cost is the same); "cheaper but slower" or "no return" otherwise
//!   ([`RoiOutcome`]).

mod db;
mod error;
mod flatten;
pub mod metric;
mod path;
mod query;
mod rebuild;
mod roi;
pub mod schema;
mod since;
mod trend;

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use db::History;
pub use error::HistoryError;
pub use metric::MetricSpec;
pub use path::{default_path, default_path_for, path_or_default};
pub use query::{Filter, RunRow};
pub use rebuild::{RebuildReport, Skipped};
pub use roi::{CostChange, CostSource, Prices, Roi, RoiOutcome};
pub use schema::SCHEMA_VERSION;
pub use since::parse_since;
pub use trend::{Direction, Series, Trend, TrendPoint};
