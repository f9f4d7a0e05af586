//! The `slices` analysis: a long run cut into equal time slices (`--slice 10s`), so that drift, warm-up and
//! saturation show instead of averaging out.
//!
//! Each request belongs to the slice in which it ended (its `done`, or its scheduled instant when it never
//! ended), counted from the step's first scheduled request. Per slice (table): requests ended, failed,
//! requests/s, output tokens/s, TTFT p50 and p99, E2E p50. Figure: `ttft_p50_change`, the last full slice's
//! TTFT p50 against the first's, in percent.

use super::{AnalysisResult, StepData, Table, TableRow, fig, median};
use crate::measure::names::Unit;
use crate::stats::Summary;
use std::collections::BTreeMap;

#[derive(Default)]
struct Slice {
    ended: usize,
    failed: usize,
    output_tokens: u64,
    ttft: Vec<f64>,
    e2e: Vec<f64>,
}

pub(super) fn slices(s: &StepData<'_>, width_s: f64) -> AnalysisResult {
    let mut notes = Vec::new();
    let mut figures = Vec::new();
    let width_ns = (width_s * 1e9) as u64;
    let t0 = s.samples.iter().map(|x| x.scheduled).min().unwrap_or(0);
    let mut by: BTreeMap<u64, Slice> = BTreeMap::new();
    for x in s.samples {
        let Some(k) = x.done.unwrap_or(x.scheduled).saturating_sub(t0).checked_div(width_ns) else { break };
        let slice = by.entry(k).or_default();
        slice.ended += 1;
        if !x.ok {
            slice.failed += 1;
            continue;
        }
        slice.output_tokens += x.metrics.output_tokens;
        slice.ttft.extend(x.metrics.ttft_ms);
        slice.e2e.extend(x.metrics.e2e_ms);
    }
    let p99 = |v: &[f64]| Summary::of(v.iter().copied()).map(|s| s.p99);
    let rows: Vec<TableRow> = by
        .iter()
        .map(|(k, sl)| TableRow {
            label: format!("{}–{} s", fmt(*k as f64 * width_s), fmt((*k + 1) as f64 * width_s)),
            values: vec![
                Some(sl.ended as f64),
                Some(sl.failed as f64),
                Some(sl.ended as f64 / width_s),
                Some(sl.output_tokens as f64 / width_s),
                median(&sl.ttft),
                p99(&sl.ttft),
                median(&sl.e2e),
            ],
        })
        .collect();
    // The last slice is usually cut short by the end of the step: compare the first with the last full one.
    let all: Vec<&Slice> = by.values().collect();
    let last_full = if all.len() > 2 { all.get(all.len() - 2) } else { all.last() };
    let first_p50 = all.first().and_then(|f| median(&f.ttft));
    match (first_p50, last_full.and_then(|l| median(&l.ttft))) {
        (Some(a), Some(b)) if all.len() > 1 && a > 0.0 => {
            let change = (b - a) / a * 100.0;
            figures.push(fig("ttft_p50_change", change, Unit::Percent, "TTFT p50, last full slice vs first"));
        }
        _ => notes.push(format!("fewer than two slices of {} s: no change to report", fmt(width_s))),
    }
    AnalysisResult {
        kind: "slices".into(),
        title: format!("'{}' in slices of {} s (by the instant each request ended)", s.name, fmt(width_s)),
        figures,
        table: Some(Table {
            columns: [
                "slice",
                "ended",
                "failed",
                "requests/s",
                "output tok/s",
                "TTFT p50 ms",
                "TTFT p99 ms",
                "E2E p50 ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }),
        notes,
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::metrics::Sample;
    use crate::measure::record::{Channel, Chunk, RequestRecord};

    /// A request that ended at `done_s`, 50 ms after it was sent, its first token `ttft_ms` after sending.
    fn at(done_s: f64, ttft_ms: u64) -> Sample {
        let done = (done_s * 1e9) as u64;
        let sent = done - 50_000_000;
        let first =
            Chunk { t: sent + ttft_ms * 1_000_000, channel: Channel::Content, events: 1, tokens: Some(4), bytes: 4 };
        Sample::of(&RequestRecord {
            scheduled: sent,
            sent: Some(sent),
            done: Some(done),
            chunks: vec![first],
            finish_reason: Some("stop".into()),
            ..Default::default()
        })
    }

    #[test]
    fn requests_fall_in_the_slice_they_ended_in() {
        // 4 requests end in 0–10 s at TTFT 10 ms, 2 in 10–20 s at 20 ms, 1 in 20–30 s.
        let mut samples: Vec<Sample> = (0..4).map(|i| at(1.0 + f64::from(i), 10)).collect();
        samples.extend((0..2).map(|i| at(12.0 + f64::from(i), 20)));
        samples.push(at(25.0, 30));
        let result = crate::fixtures::step("x", &[]);
        let tags = Default::default();
        let a = slices(&StepData { name: "x", tags: &tags, result: &result, samples: &samples, aborted: &[] }, 10.0);
        let table = a.table.unwrap();
        let labels: Vec<&str> = table.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["0–10 s", "10–20 s", "20–30 s"]);
        assert_eq!(table.rows[0].values[..3], [Some(4.0), Some(0.0), Some(0.4)]);
        assert_eq!(table.rows[1].values[4], Some(20.0));
        // The last full slice (10–20 s) against the first: 20 vs 10 ms.
        assert_eq!(a.figures[0].value, 100.0);
    }
}
