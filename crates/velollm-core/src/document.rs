//! Layer 7, **documents**: what velollm reads and writes as files, and the operations on whole runs. Imports
//! every layer below; nothing imports it inside the crate.
//!
//! * [`result`] — the versioned result document: the run, its steps, analyses, verdicts and server report.
//! * [`scenario`] — scenario files (TOML) and the built-in scenarios.
//! * [`compare`] — before/after comparison of two runs: Δ, bootstrap intervals, rank-test p-values, verdicts.
//! * [`paired`] and [`ab`] — paired A/B statistics (signed-rank test, bootstrap intervals, speedup) and the
//!   `velollm ab` result document.
//! * [`criteria`] — the source documents' success criteria as presets (`--criteria prompt-caching`).
//! * [`tune`] — a grid of server configurations turned into one table of trade-offs and the best one.

pub mod ab;
pub mod compare;
pub mod criteria;
pub mod paired;
pub mod result;
pub mod scenario;
pub mod tune;
