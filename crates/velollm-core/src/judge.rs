//! Layer 5, **judging**: pass/fail conditions on a step's aggregates and decision rules. Imports only the
//! layers below.
//!
//! * [`threshold`] — `ttft.p95 < 2s`-style thresholds and their ✅/❌ verdicts.
//! * [`gate`] — `--fail-if` CI gates: absolute, relative or delta conditions on a candidate.
//! * [`selfcheck`] — the client's own cost and whether a run's figures can be trusted given it.
//! * [`learned_threshold`] — a semantic cache's thresholds learned per entry under a bound on wrong answers,
//!   used by the proxy and replayed by the evaluation.

pub mod gate;
pub mod learned_threshold;
pub mod selfcheck;
pub mod threshold;
