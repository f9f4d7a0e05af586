//! # velollm-core — the measurement model, with no I/O
//!
//! Everything velollm reports is derived here from raw events, so the formulas exist exactly once. The
//! modules sit in folders by layer, and a layer imports only the layers above it in this list (a test,
//! `tests/layers.rs`, holds the crate to it):
//!
//! 1. [`stats`] — percentiles (one documented interpolation), summaries, rank tests, bootstrap, line fits.
//! 2. [`measure`] — one request's record, the metric formulas and their vocabulary, quality checks, SLOs,
//!    prices, the server's Prometheus metrics, speculative decoding, what a caching proxy said.
//! 3. [`workload`] — load profiles, arrival schedules, agent traces; and [`server`] — the server's launch,
//!    cold start and resources, the machine, a model file's header, recommended settings.
//! 4. [`aggregate`] — a step's aggregates from its records, and the metric registry that reads them.
//! 5. [`judge`] — thresholds, CI gates, the client's self-check, learned thresholds.
//! 6. [`analysis`] — scenario figures (fits, turns, caches, drift, agents…), load sweeps, the semantic
//!    cache's and the router's labelled evaluations.
//! 7. [`document`] — the files velollm reads and writes (result, scenario, `ab` documents) and the
//!    operations on whole runs (compare, criteria, tune).
//!
//! This crate has no async code and performs no I/O, so it is fast to compile and property-testable.

pub mod aggregate;
pub mod analysis;
pub mod document;
#[cfg(test)]
mod fixtures;
pub mod judge;
pub mod measure;
pub mod server;
pub mod stats;
pub mod workload;
