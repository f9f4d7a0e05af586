//! Layer 2, **measurement**: what one request and one server scrape look like, and the formulas that turn them
//! into metrics. Imports only [`crate::stats`].
//!
//! * [`record`] — what the engine observes per request: monotonic timestamps (nanoseconds since the run
//!   started) for *scheduled*, *sent*, *headers*, every chunk and *done*; connection phases; server usage and
//!   engine-native timings; the error class.
//! * [`metrics`] — the single home of every metric formula (TTFT, TPOT, ITL, E2E, throughput, goodput…),
//!   mirrored in `docs/metrics.md`.
//! * [`names`] — the vocabulary of metrics: units, better direction, `metric.stat` names.
//! * [`check`] — quality checks on answers (regex, contains, number, tool-call schema, command).
//! * [`slo`] — service-level objectives used for goodput.
//! * [`cost`] — token prices, the cost of requests and steps, the return on investment of an optimization.
//! * [`prom`] — the server's Prometheus metrics, parsed and mapped per engine, and their change over a step.
//! * [`speculative`] — speculative-decoding acceptance, normalised across engines.
//! * [`proxy_cache`] and [`proxy_hedge`] — what a caching or hedging proxy in front of the server said about
//!   a step's answers.
//! * [`sessions`] — a step's sessions (calls sharing a conversation id): counts, durations, calls and tokens
//!   per session.

pub mod check;
pub mod cost;
pub mod metrics;
pub mod names;
pub mod prom;
pub mod proxy_cache;
pub mod proxy_hedge;
pub mod record;
pub mod sessions;
pub mod slo;
pub mod speculative;
