//! Layer 4, **aggregates**: from a step's request records to the figures of the result document, and the
//! metric registry that reads them. Imports only the layers below (a step records its load profile).
//!
//! * [`accumulator`] — turns a step's records into its aggregates, streaming.
//! * [`step`] — one step's aggregates, which judging, analyses and documents read.
//! * [`registry`] — the metric registry: every metric once, with its aliases, label, unit, direction and how
//!   to read it from a step, a step's samples and a request. A new metric is one entry there.

pub mod accumulator;
pub mod registry;
pub mod step;
