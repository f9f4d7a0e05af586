//! The `aborts` analysis: requests the client aborted mid-stream on purpose (`--cancel-share`), as agents do
//! all the time, and whether the server freed their slots.
//!
//! A server that keeps generating for a request whose client has gone holds its slot (and its batch share)
//! until the answer's end: the requests sent right after an abort then wait longer for their first token.
//! So the analysis compares, over the step's successful requests, the TTFT of those sent within
//! [`AFTER_MS`] of an abort with the TTFT of the others. Figures: `aborted`, `ttft_after_abort_p50`,
//! `ttft_other_p50`, and `ttft_after_abort_ratio` (after ÷ others; near 1 when the server freed the slots).
//!
//! When the server's `/metrics` counted the tokens it generated over the step, `unreceived_tokens` is that
//! count minus the tokens the client received (its measured requests' and the aborted ones' before the
//! abort): the tokens the server generated for clients that had gone. Near 0 when it stops at once.

use super::{AnalysisResult, StepData, fig, median};
use crate::measure::names::Unit;

/// A request sent within this many ms after an abort counts as "right after" it.
pub const AFTER_MS: f64 = 100.0;

pub(super) fn aborts(s: &StepData<'_>) -> AnalysisResult {
    let mut figures = vec![fig("aborted", s.aborted.len() as f64, Unit::Plain, "requests aborted by the client")];
    let mut notes = Vec::new();
    let mut aborted: Vec<u64> = s.aborted.iter().map(|a| a.0).collect();
    aborted.sort_unstable();
    let (mut after, mut other) = (Vec::new(), Vec::new());
    for x in s.samples.iter().filter(|x| x.ok) {
        let (Some(ttft), Some(done), Some(e2e)) = (x.metrics.ttft_ms, x.done, x.metrics.e2e_ms) else { continue };
        let sent = done.saturating_sub((e2e * 1e6) as u64);
        // The latest abort at or before this request was sent.
        let k = aborted.partition_point(|&a| a <= sent);
        let follows = k > 0 && (sent - aborted[k - 1]) as f64 / 1e6 <= AFTER_MS;
        if follows { after.push(ttft) } else { other.push(ttft) }
    }
    match (median(&after), median(&other)) {
        (Some(a), Some(o)) => {
            figures.push(fig("ttft_after_abort_p50", a, Unit::Ms, "TTFT p50 of requests sent right after an abort"));
            figures.push(fig("ttft_other_p50", o, Unit::Ms, "TTFT p50 of the other requests"));
            if o > 0.0 {
                figures.push(fig(
                    "ttft_after_abort_ratio",
                    a / o,
                    Unit::Plain,
                    "TTFT p50 right after an abort ÷ others",
                ));
            }
            notes.push(format!(
                "{} requests aborted mid-stream by the client; {} requests sent within {AFTER_MS} ms after one had \
                 TTFT p50 {a:.1} ms, the {} others {o:.1} ms{}",
                s.aborted.len(),
                after.len(),
                other.len(),
                if a > 1.5 * o { ": the server may not free an aborted request's slot at once" } else { "" }
            ));
        }
        _ if s.aborted.is_empty() => notes.push("no request was aborted".into()),
        _ => notes.push(format!(
            "{} requests aborted; too few requests on one side to compare the TTFT right after an abort with the rest",
            s.aborted.len()
        )),
    }
    let generated = s.result.server_metrics.as_ref().and_then(|m| m.generation_tokens);
    let measured = s.result.metrics.output_tokens.as_ref().map(|t| t.mean * t.count as f64);
    if let (Some(generated), Some(measured)) = (generated, measured) {
        let received = measured + s.aborted.iter().map(|a| a.1 as f64).sum::<f64>();
        let unreceived = (generated - received).max(0.0);
        figures.push(fig(
            "unreceived_tokens",
            unreceived,
            Unit::Plain,
            "tokens the server generated (its /metrics) that no client received",
        ));
        if !s.aborted.is_empty() {
            notes.push(format!(
                "the server's /metrics counted {generated:.0} generated tokens over the step, the client received \
                 {received:.0}: {unreceived:.0} tokens ({:.1} per aborted request) were generated for clients that \
                 had gone",
                unreceived / s.aborted.len() as f64
            ));
        }
    }
    AnalysisResult {
        kind: "aborts".into(),
        title: format!("'{}': requests aborted by the client, and the requests right after", s.name),
        figures,
        table: None,
        notes,
    }
}
