//! # velollm-core — the measurement model, with no I/O
//!
//! Everything velollm reports is derived here from raw events, so the formulas exist exactly once:
//!
//! * [`record`] — what the engine observes per request: monotonic timestamps (nanoseconds since the run
//!   started) for *scheduled*, *sent*, *headers*, every chunk and *done*; connection phases; server usage and
//!   engine-native timings; the error class.
//! * [`metrics`] — the single home of every metric formula (TTFT, TPOT, ITL, E2E, throughput, goodput…),
//!   mirrored in `docs/metrics.md`.
//! * [`names`] — the vocabulary of metrics: units, better direction, `metric.stat` names.
//! * [`registry`] — the metric registry: every metric once, with its aliases, label, unit, direction and how
//!   to read it from a step, a step's samples and a request. A new metric is one entry there.
//! * [`stats`] — percentiles (one documented interpolation) and summaries.
//! * [`load`] — load profiles and seeded arrival schedules (constant, Poisson, gamma).
//! * [`aggregate`] — turns a step's records into the aggregates of the result document.
//! * [`step`] — one step's aggregates, which judging and analyses read.
//! * [`result`] — the versioned result document: the run, its steps, analyses, verdicts and server report.
//! * [`scenario`] — scenario files (TOML) and the built-in scenarios.
//! * [`trace`] — agent traces (one recorded model call per line) and their validation.
//! * [`slo`] — service-level objectives used for goodput.
//! * [`check`] — quality checks on answers (regex, contains, number, tool-call schema, command).
//! * [`threshold`] — `ttft.p95 < 2s`-style thresholds and their ✅/❌ verdicts.
//! * [`compare`] — before/after comparison: Δ, bootstrap intervals, rank-test p-values, verdicts.
//! * [`paired`] and [`ab`] — paired A/B statistics (signed-rank test, bootstrap intervals, speedup) and the
//!   `velollm ab` result document.
//! * [`criteria`] — the source documents' success criteria as presets (`--criteria prompt-caching`).
//! * [`gate`] — `--fail-if` CI gates: absolute, relative or delta conditions on a candidate.
//! * [`analysis`] — scenario figures: fits, per-turn degradation, cache acceleration, comparisons, drift.
//! * [`speculative`] — speculative-decoding acceptance, normalised across engines.
//! * [`proxy_cache`] — what a caching proxy in front of the server said about a step's answers.
//! * [`semantic_eval`] and [`routing_eval`] — the semantic cache's and the router's labelled evaluations.
//! * [`learned_threshold`] — a semantic cache's thresholds learned per entry under a bound on wrong answers,
//!   used by the proxy and replayed by the evaluation.
//! * [`cost`] — token prices, the cost of requests and steps, the return on investment of an optimization.
//! * [`sweep`] — load sweeps: the throughput/latency curve, its knee, over-saturation.
//! * [`tune`] — a grid of server configurations turned into one table of trade-offs and the best one.
//! * [`selfcheck`] — the client's own cost and whether a run's figures can be trusted given it.
//! * [`server`], [`resources`] and [`prom`] — what was observed of the server: launch, cold start, resource
//!   timeline, its Prometheus metrics per step.
//! * [`hardware`], [`gguf`] and [`optimize`] — the machine, a model file's header, and the settings
//!   recommended for them (`velollm detect`, `velollm optimize`).
//!
//! This crate has no async code and performs no I/O, so it is fast to compile and property-testable.

pub mod ab;
pub mod aggregate;
pub mod analysis;
pub mod check;
pub mod compare;
pub mod cost;
pub mod criteria;
#[cfg(test)]
mod fixtures;
pub mod gate;
pub mod gguf;
pub mod hardware;
pub mod learned_threshold;
pub mod load;
pub mod metrics;
pub mod names;
pub mod optimize;
pub mod paired;
pub mod prom;
pub mod proxy_cache;
pub mod record;
pub mod registry;
pub mod resources;
pub mod result;
pub mod routing_eval;
pub mod scenario;
pub mod selfcheck;
pub mod semantic_eval;
pub mod server;
pub mod slo;
pub mod speculative;
pub mod stats;
pub mod step;
pub mod sweep;
pub mod threshold;
pub mod trace;
pub mod tune;
