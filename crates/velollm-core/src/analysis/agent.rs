//! The `agent` analysis: what an agent trace's replay measured ([`crate::workload::trace`]).
//!
//! * Per turn index, then per context length (prompt tokens in power-of-two buckets from 256; table): calls,
//!   mean prompt tokens, prefix reuse (cached ÷ prompt tokens, as the server reports them), TTFT and E2E p50,
//!   decode speed (tokens/s after the first token) mean.
//! * Per session: wall time (first call scheduled → last answer), split into model time (the time at least
//!   one of its calls — its sub-agents' included — was waiting for the model) and the rest (the recorded
//!   tool and think pauses, and any lateness).
//! * Figures: `prefix_reuse` over every call, `computed_share` (prompt tokens the server had to compute),
//!   `schedule_lateness_p99_ms` (sent − scheduled: how late the replay sent a call against the trace's own
//!   schedule), `model_time_share` (model time ÷ wall time, over sessions), `output_target_reached` (calls
//!   whose answer reached the length asked: the recorded `output_tokens`, else the cap), with a note when some
//!   fell short (a server that does not hold the length: `ignore_eos` unsupported).

use super::{AnalysisResult, StepData, Table, TableRow, fig, mean, median};
use crate::measure::metrics::Sample;
use crate::measure::names::Unit;
use crate::stats::Summary;
use std::collections::BTreeMap;

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64 * 100.0)
}

/// Calls of one turn index, or of one context length.
#[derive(Default)]
struct Turn {
    calls: usize,
    prompt: u64,
    cached: u64,
    reported: usize,
    ttft: Vec<f64>,
    e2e: Vec<f64>,
    decode: Vec<f64>,
}

impl Turn {
    fn add(&mut self, m: &crate::measure::metrics::RequestMetrics) {
        self.calls += 1;
        if let (Some(p), Some(c)) = (m.prompt_tokens, m.cached_tokens) {
            self.prompt += p;
            self.cached += c;
            self.reported += 1;
        }
        self.ttft.extend(m.ttft_ms);
        self.e2e.extend(m.e2e_ms);
        self.decode.extend(m.decode_tokens_per_s);
    }

    fn row(&self, label: String) -> TableRow {
        TableRow {
            label,
            values: vec![
                Some(self.calls as f64),
                (self.reported > 0).then(|| self.prompt as f64 / self.reported as f64),
                ratio(self.cached, self.prompt),
                median(&self.ttft),
                median(&self.e2e),
                mean(&self.decode),
            ],
        }
    }
}

/// The context-length bucket of a call: the smallest power of two, at least 256, holding its prompt tokens.
fn bucket(prompt_tokens: u64) -> u64 {
    prompt_tokens.max(256).next_power_of_two()
}

/// One session (with its sub-agents): first scheduled, last done, the calls' `[sent, done]` intervals (ns).
type Session = (u64, u64, Vec<(u64, u64)>);

/// The time covered by at least one of `intervals` (ns), in ms: concurrent sub-agents count once.
fn union_ms(intervals: &mut [(u64, u64)]) -> f64 {
    intervals.sort_unstable();
    let (mut total, mut end) = (0u64, 0u64);
    for &(a, b) in intervals.iter() {
        let a = a.max(end);
        if b > a {
            total += b - a;
        }
        end = end.max(b);
    }
    total as f64 / 1e6
}

pub(super) fn agent(s: &StepData<'_>) -> AnalysisResult {
    let mut turns: BTreeMap<u32, Turn> = BTreeMap::new();
    let mut sessions: BTreeMap<u64, Session> = BTreeMap::new();
    let mut late = Vec::new();
    let (mut prompt, mut cached) = (0u64, 0u64);
    let ok: Vec<&Sample> = s.samples.iter().filter(|x| x.ok).collect();
    let mut contexts: BTreeMap<u64, Turn> = BTreeMap::new();
    for x in &ok {
        let m = &x.metrics;
        turns.entry(x.turn.unwrap_or(0)).or_default().add(m);
        if let Some(p) = m.prompt_tokens {
            contexts.entry(bucket(p)).or_default().add(m);
        }
        if let (Some(p), Some(c)) = (m.prompt_tokens, m.cached_tokens) {
            prompt += p;
            cached += c;
        }
        late.extend(m.queue_delay_ms);
        if let (Some(c), Some(done)) = (x.conversation, x.done) {
            let e = sessions.entry(c).or_insert((x.scheduled, done, Vec::new()));
            e.0 = e.0.min(x.scheduled);
            e.1 = e.1.max(done);
            let sent = done.saturating_sub((m.e2e_ms.unwrap_or(0.0) * 1e6) as u64);
            e.2.push((sent, done));
        }
    }
    let mut rows: Vec<TableRow> = turns.iter().map(|(k, t)| t.row(format!("turn {}", k + 1))).collect();
    let mut lower = 0;
    for (upper, t) in &contexts {
        rows.push(t.row(format!("context {}–{upper} tokens", lower + 1)));
        lower = *upper;
    }
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    if let Some(r) = ratio(cached, prompt) {
        figures.push(fig("prefix_reuse", r, Unit::Percent, "prompt tokens the server read from its prefix cache"));
        figures.push(fig("computed_share", 100.0 - r, Unit::Percent, "prompt tokens the server had to compute"));
    } else if !ok.is_empty() {
        notes.push("the server reported no cached prompt tokens: prefix reuse is not measured".into());
    }
    let asked: Vec<(u64, u32)> = ok.iter().filter_map(|x| Some((x.metrics.output_tokens, x.max_tokens?))).collect();
    if !asked.is_empty() {
        let short = asked.iter().filter(|(got, want)| *got < u64::from(*want)).count();
        let reached = (asked.len() - short) as f64 / asked.len() as f64 * 100.0;
        figures.push(fig(
            "output_target_reached",
            reached,
            Unit::Percent,
            "calls whose answer reached the length asked",
        ));
        if short > 0 {
            notes.push(format!(
                "{short} of {} calls answered fewer tokens than asked: the server did not hold the recorded length \
                 (it may not support ignore_eos/min_tokens), so their decode time is shorter than the trace's",
                asked.len()
            ));
        }
    }
    if let Some(l) = Summary::of(late.iter().copied()) {
        figures.push(fig("schedule_lateness_p99_ms", l.p99, Unit::Ms, "p99 of sent − scheduled (replay accuracy)"));
    }
    let (wall, model): (f64, f64) = sessions
        .values_mut()
        .map(|(a, b, calls)| (b.saturating_sub(*a) as f64 / 1e6, union_ms(calls)))
        .fold((0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1));
    if wall > 0.0 {
        figures.push(fig("model_time_share", model / wall * 100.0, Unit::Percent, "model time ÷ session wall time"));
        notes.push(format!(
            "{} sessions: {:.1} s of wall time, {:.1} s waiting for the model, {:.1} s of recorded tool/think time \
             and lateness",
            sessions.len(),
            wall / 1e3,
            model / 1e3,
            (wall - model).max(0.0) / 1e3
        ));
    }
    AnalysisResult {
        kind: "agent".into(),
        title: format!("agent sessions ('{}'): by turn, prefix reuse, model vs tool time", s.name),
        figures,
        table: Some(Table {
            columns: [
                "turn",
                "calls",
                "prompt tokens mean",
                "prefix reuse %",
                "TTFT p50 ms",
                "E2E p50 ms",
                "decode tok/s mean",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }),
        notes,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn contexts_fall_in_power_of_two_buckets() {
        assert_eq!([1, 256, 257, 600, 4096, 4097].map(super::bucket), [256, 256, 512, 1024, 4096, 8192]);
    }

    #[test]
    fn overlapping_calls_count_once() {
        let mut calls = [(5_000_000, 9_000_000), (0, 2_000_000), (1_000_000, 3_000_000), (8_000_000, 8_500_000)];
        assert_eq!(super::union_ms(&mut calls), 7.0);
    }
}
