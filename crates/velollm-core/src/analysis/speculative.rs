//! The `speculative` analysis: speculative-decoding acceptance normalised across engines, and the
//! token-normalised inter-token latency next to the per-chunk one (a speculative server emits several tokens per
//! verification step, so per-chunk gaps alone mislead).
//!
//! Acceptance, best source first (see [`crate::measure::speculative::Acceptance`]): the server's counters over the step
//! (llama.cpp `spec_decode_*`, vLLM `spec_decode_*`: rate = accepted ÷ draft tokens, mean acceptance length =
//! 1 + accepted ÷ drafts), then the per-request timings (llama.cpp `draft_n` / `draft_n_accepted`: rate only),
//! then the server's own gauges (SGLang `spec_accept_length`, `spec_accept_rate`). The speedup over the normal
//! configuration needs both configurations on the same prompts: `velollm ab` reports it.

use super::{AnalysisResult, StepData, Table, TableRow, fig};
use crate::measure::names::Unit;

/// Seed 000 phase 3 criterion: acceptance rate > 70 %.
const ACCEPT_RATE: f64 = 70.0;

pub(super) fn speculative(steps: &[StepData<'_>]) -> AnalysisResult {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let (mut accepted, mut drafted) = (0.0, 0.0);
    let mut lengths = Vec::new();
    let mut sources = Vec::new();
    for s in steps {
        let a = s.result.acceptance();
        let m = &s.result.metrics;
        let p50 = |x: &Option<crate::stats::Summary>| x.as_ref().map(|s| s.p50);
        let chunks: Vec<f64> = s
            .samples
            .iter()
            .filter(|x| x.ok)
            .map(|x| x.metrics.output_tokens as f64 / x.metrics.output_chunks.max(1) as f64)
            .collect();
        let tokens_per_chunk = (!chunks.is_empty()).then(|| chunks.iter().sum::<f64>() / chunks.len() as f64);
        rows.push(TableRow {
            label: s.name.to_string(),
            values: vec![
                a.as_ref().and_then(|a| a.rate).map(|r| r * 100.0),
                a.as_ref().and_then(|a| a.mean_length),
                p50(&m.decode_tokens_per_s),
                p50(&m.tpot_ms),
                p50(&m.itl_chunk_ms),
                tokens_per_chunk,
            ],
        });
        if let Some(a) = a {
            if let (Some(acc), Some(dr)) = (a.accepted_tokens, a.draft_tokens) {
                accepted += acc;
                drafted += dr;
            }
            lengths.extend(a.mean_length);
            if !sources.contains(&a.source) {
                sources.push(a.source);
            }
        }
    }
    let mut figures = Vec::new();
    if drafted > 0.0 {
        let rate = accepted / drafted * 100.0;
        figures.push(fig("acceptance_rate", rate, Unit::Percent, "draft tokens accepted ÷ proposed"));
        notes.push(format!(
            "seed criterion acceptance rate > {ACCEPT_RATE} %: {rate:.1} % ({accepted:.0} of {drafted:.0} draft tokens) {}",
            if rate > ACCEPT_RATE { "✅" } else { "❌" }
        ));
    } else if let Some(r) = rows.iter().find_map(|r| r.values[0]) {
        figures.push(fig("acceptance_rate", r, Unit::Percent, "acceptance rate the server reports"));
    } else {
        notes.push(
            "no speculative decoding seen: the server proposed no draft tokens (is a draft model or \
             --spec-type configured?) or reports no acceptance"
                .into(),
        );
    }
    if !lengths.is_empty() {
        let mean = lengths.iter().sum::<f64>() / lengths.len() as f64;
        figures.push(fig(
            "mean_acceptance_length",
            mean,
            Unit::Plain,
            "tokens per verification step (1 + accepted ÷ drafts)",
        ));
    }
    if !sources.is_empty() {
        notes.push(format!("acceptance from {}", sources.join(", ")));
    }
    notes.push(
        "draft and verify speeds: llama.cpp, vLLM and SGLang report no separate draft/verify timings; decode \
         tokens/s is the combined speed"
            .into(),
    );
    AnalysisResult {
        kind: "speculative".into(),
        title: "speculative decoding: acceptance and token-normalised ITL".into(),
        figures,
        table: Some(Table {
            columns: vec![
                "step".into(),
                "acceptance %".into(),
                "mean acceptance length".into(),
                "decode tok/s p50".into(),
                "TPOT ms p50 (per token)".into(),
                "ITL ms p50 (per chunk)".into(),
                "tokens per chunk".into(),
            ],
            rows,
        }),
        notes,
    }
}
