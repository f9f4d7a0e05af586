//! Server-side metrics from Prometheus `/metrics` scrapes: what the *server* says happened during a step.
//!
//! * [`parse`](fn@parse) — a tolerant parser of the Prometheus / OpenMetrics text format into a [`Scrape`].
//! * [`detect_engine`] — llama.cpp, vLLM, SGLang or TGI, from the metric-name prefixes.
//! * [`MAPPING`] — the one table from each engine's metric names to canonical [`ServerMetric`]s, with sources.
//! * [`step_metrics`] — counter deltas, gauge summaries and derived rates for one step, as [`ServerMetrics`].
//!
//! Pure: the HTTP scraping lives in the engine crate.

mod map;
mod parse;
mod step;

pub use map::{Engine, MAPPING, Mapping, ServerMetric, SourceKind, detect_engine, mappings_for, scrape_value};
pub use parse::{MetricType, PromError, Sample, Scrape, parse};
pub use step::{ServerMetrics, step_metrics};
