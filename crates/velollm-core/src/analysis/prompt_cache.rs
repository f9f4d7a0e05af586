//! The `prompt_cache` analysis: hit rates by requests and by tokens from every dialect's usage fields, TTFT with
//! and without the cache, cost with and without it, the breakpoint and TTL variants side by side, and the seed's
//! phase-1 criteria (`seeds/000_…txt`: TTFT −30…60 %, hit rate > 60 %, cost −40…50 %).
//!
//! Per step:
//! - a request **hits** when its server reported cached prompt tokens (OpenAI `cached_tokens`, Anthropic
//!   `cache_read_input_tokens`, llama.cpp `cache_n`, Ollama's cached count) covering at least
//!   [`HIT_SHARE`] of its prompt: below that, what an automatic prefix cache shares is a chat template or a
//!   marker, not the reusable context. Requests whose server reported no count are *unreported* and left out of
//!   both rates;
//! - **hit rate by requests** = hits ÷ reporting requests; **by tokens** = Σ cached ÷ Σ prompt tokens of those
//!   requests;
//! - **TTFT of hits / misses**: the median TTFT of the step's hits and misses.
//!
//! Run figures: `hit_rate` and `token_hit_rate` over the cached steps (every step but the baseline, pooled);
//! `ttft_reduction` = 1 − median TTFT of the cached steps' hits ÷ median TTFT of the baseline step (whose every
//! request starts with a unique salt, so nothing can be cached); `cost_reduction` = 1 − cost per request of the
//! cached steps ÷ cost per request of the baseline, when a prices file priced the model. TTL variants (steps
//! tagged `cache_ttl`) report the hits among their requests spaced `ttl_gap` apart.

use super::{AnalysisResult, StepData, Table, TableRow, fig};
use crate::measure::names::Unit;
use crate::stats::percentile_select;

/// Share of the prompt the cached tokens must cover for a request to count as a hit.
pub const HIT_SHARE: f64 = 0.1;

/// Seed 000 phase 1 criteria.
const TTFT_REDUCTION: (f64, f64) = (30.0, 60.0);
const HIT_RATE: f64 = 60.0;
const COST_REDUCTION: (f64, f64) = (40.0, 50.0);

#[derive(Default)]
struct Counts {
    reporting: u64,
    hits: u64,
    cached: u64,
    prompt: u64,
    hit_ttft: Vec<f64>,
    miss_ttft: Vec<f64>,
    all_ttft: Vec<f64>,
}

impl Counts {
    fn add(&mut self, s: &StepData<'_>, skip_first: bool) {
        for (i, x) in s.samples.iter().filter(|x| x.ok).enumerate() {
            let m = &x.metrics;
            if let Some(t) = m.ttft_ms {
                self.all_ttft.push(t);
            }
            if skip_first && i == 0 {
                continue;
            }
            let Some(cached) = m.cached_tokens else { continue };
            self.reporting += 1;
            self.cached += cached;
            self.prompt += m.prompt_tokens.unwrap_or(cached);
            let prompt = m.prompt_tokens.unwrap_or(cached);
            let hit = cached > 0 && cached as f64 >= HIT_SHARE * prompt as f64;
            self.hits += u64::from(hit);
            if let Some(t) = m.ttft_ms {
                if hit { self.hit_ttft.push(t) } else { self.miss_ttft.push(t) }
            }
        }
    }

    fn hit_rate(&self) -> Option<f64> {
        (self.reporting > 0).then(|| self.hits as f64 / self.reporting as f64 * 100.0)
    }

    fn token_hit_rate(&self) -> Option<f64> {
        (self.prompt > 0).then(|| self.cached as f64 / self.prompt as f64 * 100.0)
    }
}

fn median(v: &[f64]) -> Option<f64> {
    percentile_select(&mut v.to_vec(), 0.5)
}

fn mark(pass: bool) -> &'static str {
    if pass { "✅" } else { "❌" }
}

/// The analysis over every step; `baseline` names the uncached step.
pub(super) fn prompt_cache(steps: &[StepData<'_>], baseline: Option<&str>) -> AnalysisResult {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut pooled = Counts::default();
    let mut cached_cost = (0.0, 0u64);
    let mut base: Option<&StepData<'_>> = None;
    let mut ttl_rows = Vec::new();
    for s in steps {
        let is_base = baseline == Some(s.name);
        let ttl = s.tags.get("cache_ttl");
        let mut c = Counts::default();
        // In a TTL step the first request writes the cache; the rate is over the requests after each gap.
        c.add(s, ttl.is_some());
        let cost = s.result.cost.as_ref();
        rows.push(TableRow {
            label: s.name.to_string(),
            values: vec![
                Some(c.reporting as f64),
                c.hit_rate(),
                c.token_hit_rate(),
                median(&c.hit_ttft),
                median(&c.miss_ttft),
                cost.map(|c| c.per_request * 1000.0),
                cost.map(|c| c.cache_saving * 100.0),
            ],
        });
        if let Some(ttl) = ttl {
            let gap = s.tags.get("ttl_gap").map_or("?", String::as_str);
            ttl_rows.push(format!("TTL {ttl}, requests {gap} apart: {} of {} hit after the gap", c.hits, c.reporting));
            continue;
        }
        if is_base {
            base = Some(s);
            continue;
        }
        pooled.add(s, false);
        if let Some(cost) = cost.filter(|c| c.priced_requests > 0) {
            cached_cost.0 += cost.total;
            cached_cost.1 += cost.priced_requests;
        }
    }
    let mut figures = Vec::new();
    if let Some(r) = pooled.hit_rate() {
        figures.push(fig("hit_rate", r, Unit::Percent, "requests served with cached prompt tokens"));
        notes.push(format!(
            "seed criterion cache hit rate > {HIT_RATE} %: {r:.1} % ({} of {} requests) {}",
            pooled.hits,
            pooled.reporting,
            mark(r > HIT_RATE)
        ));
    } else {
        notes.push("the server reported no cached-token count: hit rates cannot be measured".into());
    }
    if let Some(r) = pooled.token_hit_rate() {
        figures.push(fig("token_hit_rate", r, Unit::Percent, "prompt tokens read from the cache"));
    }
    let base_ttft = base.and_then(|b| {
        let mut c = Counts::default();
        c.add(b, false);
        median(&c.all_ttft)
    });
    let hit_ttft = median(&pooled.hit_ttft);
    if let Some(t) = hit_ttft {
        figures.push(fig("ttft_hit", t, Unit::Ms, "median TTFT of cache hits"));
    }
    if let Some(t) = base_ttft {
        figures.push(fig("ttft_uncached", t, Unit::Ms, "median TTFT of the uncached baseline"));
    }
    match (base_ttft, hit_ttft) {
        (Some(b), Some(h)) if b > 0.0 => {
            let red = (1.0 - h / b) * 100.0;
            figures.push(fig("ttft_reduction", red, Unit::Percent, "1 − TTFT of hits ÷ TTFT uncached"));
            notes.push(format!(
                "seed criterion TTFT reduced by {}–{} %: {red:.1} % {}",
                TTFT_REDUCTION.0,
                TTFT_REDUCTION.1,
                mark(red >= TTFT_REDUCTION.0)
            ));
        }
        _ if baseline.is_some() => notes.push(format!(
            "TTFT reduction needs hits in the cached steps and successful requests in '{}'",
            baseline.unwrap_or_default()
        )),
        _ => {}
    }
    let base_cost = base.and_then(|b| b.result.cost.as_ref()).filter(|c| c.priced_requests > 0);
    match (base_cost, cached_cost) {
        (Some(b), (total, n)) if n > 0 && b.per_request > 0.0 => {
            let red = (1.0 - total / n as f64 / b.per_request) * 100.0;
            figures.push(fig("cost_reduction", red, Unit::Percent, "1 − cost per request cached ÷ uncached"));
            notes.push(format!(
                "seed criterion cost reduced by {}–{} %: {red:.1} % {}",
                COST_REDUCTION.0,
                COST_REDUCTION.1,
                mark(red >= COST_REDUCTION.0)
            ));
        }
        _ => notes.push("cost reduction not measured: give --prices FILE with the model's prices".into()),
    }
    notes.extend(ttl_rows);
    AnalysisResult {
        kind: "prompt_cache".into(),
        title: "prompt cache: hit rate, TTFT and cost".into(),
        figures,
        table: Some(Table {
            columns: vec![
                "step".into(),
                "requests reporting".into(),
                "hit rate %".into(),
                "token hit rate %".into(),
                "TTFT hits ms".into(),
                "TTFT misses ms".into(),
                "cost per 1000 requests".into(),
                "cache saving %".into(),
            ],
            rows,
        }),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use crate::aggregate::accumulator::StepAccumulator;
    use crate::analysis::{AnalysisSpec, StepData, run};
    use crate::measure::cost::Price;
    use crate::measure::record::{Channel, Chunk, RequestRecord, Usage};
    use std::collections::BTreeMap;

    /// A request with `prompt` tokens of which `cached` were read from the cache, and the TTFT in ms.
    fn request(i: u64, ttft_ms: u64, prompt: u64, cached: u64) -> RequestRecord {
        let start = i * 10_000_000_000;
        let first = start + ttft_ms * 1_000_000;
        let chunk = |t| Chunk { t, channel: Channel::Content, events: 1, tokens: None, bytes: 1 };
        RequestRecord {
            scheduled: start,
            sent: Some(start),
            done: Some(first + 1_000_000),
            chunks: vec![chunk(first), chunk(first + 1_000_000)],
            usage: Some(Usage {
                prompt_tokens: Some(prompt),
                completion_tokens: Some(2),
                cached_tokens: Some(cached),
                ..Usage::default()
            }),
            ..RequestRecord::default()
        }
    }

    fn step(name: &str, requests: &[(u64, u64, u64)]) -> StepAccumulator {
        let price = Price { input: 3.0, output: 15.0, cache_write: None, cache_read: None };
        let mut acc = StepAccumulator::new(name, crate::fixtures::config()).with_price("USD", price);
        for (i, &(ttft, prompt, cached)) in requests.iter().enumerate() {
            acc.push(&request(i as u64, ttft, prompt, cached));
        }
        acc
    }

    #[test]
    fn hit_rates_ttft_and_cost_against_the_uncached_baseline() {
        let base = step("uncached", &[(800, 1000, 0), (820, 1000, 4), (780, 1000, 0)]);
        // One miss writes the cache; three hits read 900 of 1000 tokens; a 4-token template match is no hit.
        let cached = step("cached", &[(790, 1000, 4), (200, 1000, 900), (210, 1000, 900), (190, 1000, 900)]);
        let tags = BTreeMap::new();
        let results = [base.result(None, false), cached.result(None, false)];
        let data = [
            StepData { name: "uncached", tags: &tags, result: &results[0], samples: base.samples(), aborted: &[] },
            StepData { name: "cached", tags: &tags, result: &results[1], samples: cached.samples(), aborted: &[] },
        ];
        let a = run(&AnalysisSpec::PromptCache { baseline: Some("uncached".into()) }, &data);
        let f = |n: &str| a.figures.iter().find(|f| f.name == n).unwrap_or_else(|| panic!("{n}: {a:#?}")).value;
        assert_eq!(f("hit_rate"), 75.0);
        assert!((f("token_hit_rate") - 2704.0 / 4000.0 * 100.0).abs() < 1e-9);
        assert_eq!((f("ttft_hit"), f("ttft_uncached")), (200.0, 800.0));
        assert_eq!(f("ttft_reduction"), 75.0);
        // Uncached: 2996 input tokens at $3/M and 4 read at $0.3/M over 3 requests. Cached: reads at $0.3/M.
        let base_cost = (2996.0 * 3.0 + 4.0 * 0.3 + 6.0 * 15.0) / 1e6 / 3.0;
        let cached_cost = ((4000.0 - 2704.0) * 3.0 + 2704.0 * 0.3 + 8.0 * 15.0) / 1e6 / 4.0;
        assert!((f("cost_reduction") - (1.0 - cached_cost / base_cost) * 100.0).abs() < 1e-9);
        assert!(a.notes.iter().any(|n| n.contains("hit rate > 60 %: 75.0 %") && n.ends_with('✅')), "{:?}", a.notes);
        assert!(a.notes.iter().any(|n| n.contains("TTFT reduced by 30–60 %: 75.0 %") && n.ends_with('✅')));
    }

    #[test]
    fn ttl_steps_count_the_hits_after_each_gap_and_no_prices_is_said() {
        let acc = StepAccumulator::new("cached@ttl1s", crate::fixtures::config());
        let mut acc = acc;
        for (i, cached) in [0, 0, 0].into_iter().enumerate() {
            acc.push(&request(i as u64, 500, 1000, cached));
        }
        let result = acc.result(None, false);
        let tags = BTreeMap::from([("cache_ttl".to_string(), "1s".to_string()), ("ttl_gap".into(), "2s".into())]);
        let data =
            [StepData { name: "cached@ttl1s", tags: &tags, result: &result, samples: acc.samples(), aborted: &[] }];
        let a = run(&AnalysisSpec::PromptCache { baseline: None }, &data);
        assert!(a.notes.iter().any(|n| n == "TTL 1s, requests 2s apart: 0 of 2 hit after the gap"), "{:?}", a.notes);
        assert!(a.notes.iter().any(|n| n.contains("give --prices FILE")));
    }
}
