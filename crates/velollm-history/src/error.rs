//! What can go wrong with the history database, each message naming the fix.

use std::path::PathBuf;

/// A history database error.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database file could not be opened or is not an SQLite database.
    #[error(
        "cannot open the history database {}: {source}; pass another --db PATH (or set VELOLLM_DB), or delete the file \
         and rebuild it with `velollm history --rebuild DIR`",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is an SQLite database, but not one velollm made.
    #[error(
        "{} is an SQLite database but not a velollm history database; pass another --db PATH (or set VELOLLM_DB)",
        path.display()
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer velollm.
    #[error(
        "the history database {} has schema version {found}, newer than this velollm knows ({known}); upgrade velollm, \
         or pass another --db PATH, or delete the file and rebuild it with `velollm history --rebuild DIR`",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// A query or update failed.
    #[error(
        "history database {}: {source}; if the file is damaged, delete it and rebuild it with \
         `velollm history --rebuild DIR`",
        path.display()
    )]
    Db {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A file or folder could not be read or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No data directory could be found for the default database path.
    #[error("cannot find your data directory ({0} is not set): pass --db PATH or set VELOLLM_DB")]
    NoDataDir(&'static str),
    /// A result document has a start time that is not RFC 3339.
    #[error("run {run_id}: started_at '{value}' is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z)")]
    BadTime {
        /// The run.
        run_id: String,
        /// The value found.
        value: String,
    },
    /// A metric name that is not known.
    #[error("unknown metric '{0}': use one of {known}, optionally with a statistic (ttft.p95, e2e.p50, tpot.mean)", known = crate::metric::known_names())]
    UnknownMetric(String),
    /// A statistic that is not known.
    #[error(
        "unknown statistic '{stat}' in '{text}': use one of mean, stddev, min, p50, p90, p95, p99, p99.9, max, count"
    )]
    UnknownStat {
        /// The metric as written.
        text: String,
        /// The statistic as written.
        stat: String,
    },
    /// A statistic written after a per-step scalar.
    #[error("'{metric}' is one value per step and has no statistics: write it without '.{stat}'")]
    ScalarWithStat {
        /// The metric.
        metric: String,
        /// The statistic as written.
        stat: String,
    },
    /// A `--since` value that is neither a duration nor a date.
    #[error(
        "--since '{0}': write a duration back from now (30d, 2w, 12h) or a date (2026-01-31) or an RFC 3339 time \
         (2026-01-31T12:00:00Z)"
    )]
    BadSince(String),
    /// Prices that are not finite non-negative numbers.
    #[error("prices must be finite numbers of US dollars per million tokens, 0 or more (got {0})")]
    BadPrice(f64),
}

impl HistoryError {
    /// True when the error comes from what the user typed or pointed at (a bad name, a bad file), so the fix is
    /// theirs; false for failures inside a database that opened fine.
    pub fn is_input(&self) -> bool {
        !matches!(self, HistoryError::Db { .. })
    }
}
