//! Layer 6, **analyses**: the figures the source documents computed by hand, computed from the measured
//! requests of one or more steps, and the studies built on them. Imports only the layers below.
//!
//! * [`sweep`] — load sweeps: the throughput/latency curve, its knee, over-saturation.
//! * [`semantic_eval`] and [`routing_eval`] — the semantic cache's and the router's labelled evaluations.
//!
//! Scenario analyses, by `kind`:
//!
//! | kind | figures |
//! |---|---|
//! | `fit` | least-squares line `y = intercept + slope·x` over requests (x = prompt or output tokens, y = TTFT or E2E): slope (ms per token), intercept, R²; for output tokens also the speed `1000 / slope` tok/s |
//! | `turns` | TTFT per turn and per third of the conversation; degradation % = (last third − first third) ÷ first third, overall and worst conversation |
//! | `cache` | TTFT of the salted first turn (MISS), of the continued turn (HIT) and of independent messages; acceleration = TTFT_miss ÷ TTFT_hit per conversation, with its dispersion; each HIT verified from the cached-token count |
//! | `compare` | mean of each metric in a baseline and a candidate step, their ratio and difference |
//! | `drift` | TTFT and E2E trend over the run (ms per minute, % over the run), errors, and outages (a server that stopped answering and came back) |
//! | `plan` | latency by tag (provider, task type): p50, p95, p99; the largest contributors to latency |
//! | `stats` | mean, median, min, max and standard deviation of E2E, TTFT and tokens/s of one step |
//! | `prompt_cache` | hit rate by requests and by tokens, TTFT of hits vs the uncached baseline, cost with and without the cache, breakpoint and TTL variants, seed criteria (`analysis/prompt_cache.rs`) |
//! | `speculative` | acceptance rate and mean acceptance length normalised across engines, TPOT next to per-chunk ITL, tokens per chunk (`analysis/speculative.rs`) |
//! | `aborts` | requests the client aborted mid-stream (`--cancel-share`): how many, and the TTFT of the requests sent right after an abort against the others, to tell whether the server freed the aborted request's slot (`analysis/aborts.rs`) |
//! | `agent` | an agent trace's replay by turn index: prefix reuse (cached ÷ prompt tokens), TTFT, E2E; session wall time split into model time and tool/think time; how late the replay sent calls (`analysis/agent.rs`) |
//! | `slices` | a step cut into equal time slices: requests ended and failed, requests/s, output tokens/s, TTFT p50/p99, E2E p50 per slice (`analysis/slices.rs`) |
//! | `connections` | keep-alive and HTTP/2 vs a new connection per request: connections opened/reused, DNS/TCP/TLS split, TLS resumption, network overhead and TTFT reductions vs the seed criteria (`analysis/connections.rs`) |

mod aborts;
mod agent;
mod connections;
mod prompt_cache;
pub mod routing_eval;
pub mod semantic_eval;
mod slices;
mod speculative;
pub mod sweep;

use crate::aggregate::step::StepResult;
use crate::judge::threshold::{Lookup, Unit};
use crate::measure::metrics::Sample;
use crate::measure::record::ErrorClass;
use crate::stats::{Summary, fit_line};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What to analyse, as written in a scenario file (`[[analyses]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AnalysisSpec {
    /// Latency against a token count, fitted with a line.
    Fit {
        /// `prompt_tokens` or `output_tokens`.
        x: String,
        /// `ttft` or `e2e`.
        y: String,
        /// Steps to include (default: all).
        #[serde(default)]
        steps: Vec<String>,
    },
    /// Requests aborted by the client and what the requests after them saw (`--cancel-share`).
    Aborts {
        /// The step.
        step: String,
    },
    /// A step in equal time slices (`--slice 10s`).
    Slices {
        /// The step.
        step: String,
        /// The width of a slice, in seconds.
        width_s: f64,
    },
    /// An agent trace's replay: by turn index, prefix reuse, model vs tool time.
    Agent {
        /// The trace step.
        step: String,
    },
    /// Per-turn latency of a multi-turn step.
    Turns {
        /// The conversation step.
        step: String,
    },
    /// Prefix-cache MISS / HIT / independent comparison.
    Cache {
        /// The conversation step whose turns are labelled `miss` and `hit`.
        step: String,
        /// The step of independent messages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        independent: Option<String>,
    },
    /// A baseline step against a candidate step.
    Compare {
        /// Baseline step.
        baseline: String,
        /// Candidate step.
        candidate: String,
    },
    /// Trend and outages over a long step.
    Drift {
        /// The step.
        step: String,
    },
    /// Latency broken down by step tags.
    Plan,
    /// Descriptive statistics of one step.
    Stats {
        /// The step.
        step: String,
    },
    /// Prompt cache: hit rates by requests and tokens, TTFT and cost with and without the cache, breakpoint and
    /// TTL variants, against the seed's criteria.
    PromptCache {
        /// The step whose requests can never be cached (each starts with a unique salt).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<String>,
    },
    /// Speculative decoding: acceptance rate and length, token-normalised ITL, per step.
    Speculative,
    /// Connections: persistent (keep-alive, HTTP/2, WebSocket) vs a new connection per request, and TLS resumption.
    Connections {
        /// The step opening a new connection for every request (the reference).
        new: String,
        /// The keep-alive step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_alive: Option<String>,
        /// The HTTP/2 step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http2: Option<String>,
        /// The WebSocket step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        websocket: Option<String>,
        /// The step with TLS resumption off (a full handshake per request).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full_tls: Option<String>,
    },
}

impl AnalysisSpec {
    /// Check the spec's own values; the error names the field and the accepted values.
    pub fn validate(&self) -> Result<(), String> {
        if let AnalysisSpec::Fit { x, y, .. } = self {
            if !matches!(x.as_str(), "prompt_tokens" | "output_tokens") {
                return Err(format!(
                    "fit analysis: x = \"{x}\" is not supported (use \"prompt_tokens\" or \"output_tokens\")"
                ));
            }
            if !matches!(y.as_str(), "ttft" | "e2e") {
                return Err(format!("fit analysis: y = \"{y}\" is not supported (use \"ttft\" or \"e2e\")"));
            }
        }
        Ok(())
    }

    /// The steps the analysis names.
    pub fn steps(&self) -> Vec<&str> {
        match self {
            AnalysisSpec::Fit { steps, .. } => steps.iter().map(String::as_str).collect(),
            AnalysisSpec::Turns { step }
            | AnalysisSpec::Agent { step }
            | AnalysisSpec::Aborts { step }
            | AnalysisSpec::Slices { step, .. }
            | AnalysisSpec::Drift { step }
            | AnalysisSpec::Stats { step } => vec![step],
            AnalysisSpec::Cache { step, independent } => {
                std::iter::once(step.as_str()).chain(independent.as_deref()).collect()
            }
            AnalysisSpec::Compare { baseline, candidate } => vec![baseline, candidate],
            AnalysisSpec::Plan | AnalysisSpec::Speculative => vec![],
            AnalysisSpec::PromptCache { baseline } => baseline.iter().map(String::as_str).collect(),
            AnalysisSpec::Connections { new, keep_alive, http2, websocket, full_tls } => {
                let others = [keep_alive, http2, websocket, full_tls].into_iter().flatten().map(String::as_str);
                std::iter::once(new.as_str()).chain(others).collect()
            }
        }
    }
}

/// A step's data for analysis.
pub struct StepData<'a> {
    /// Step name.
    pub name: &'a str,
    /// Tags of the step (provider, task, …).
    pub tags: &'a BTreeMap<String, String>,
    /// Its aggregates.
    pub result: &'a StepResult,
    /// Its measured requests.
    pub samples: &'a [Sample],
    /// The requests the client aborted on purpose (`--cancel-share`): `done` and the output tokens received.
    pub aborted: &'a [(crate::measure::record::Nanos, u64)],
}

/// A named figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Figure {
    /// Name, usable in thresholds (`degradation`, `acceleration`, `slope`).
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: Unit,
    /// What it is, for people.
    pub label: String,
}

/// A table of numbers (rows of optional values), for reports and charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Table {
    /// Column names, the first one naming the row labels.
    pub columns: Vec<String>,
    /// Rows.
    pub rows: Vec<TableRow>,
}

/// One table row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TableRow {
    /// Row label.
    pub label: String,
    /// Values, one per column after the first.
    pub values: Vec<Option<f64>>,
}

/// The outcome of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisResult {
    /// The spec's kind (`fit`, `turns`, …).
    pub kind: String,
    /// A title for reports.
    pub title: String,
    /// Figures.
    pub figures: Vec<Figure>,
    /// A table, when the analysis has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    /// Observations generated from the data (e.g. a HIT that did not hit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Lookup for Vec<AnalysisResult> {
    fn lookup(&self, name: &str) -> Option<(f64, Unit)> {
        self.iter().flat_map(|a| &a.figures).find(|f| f.name == name).map(|f| (f.value, f.unit))
    }
}

/// A figure from its parts.
pub(crate) fn fig(name: &str, value: f64, unit: Unit, label: &str) -> Figure {
    Figure { name: name.into(), value, unit, label: label.into() }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The p50 of `v` ([`Summary`]'s interpolation), when it has values.
fn median(v: &[f64]) -> Option<f64> {
    Summary::of(v.iter().copied()).map(|s| s.p50)
}

/// Run one analysis over the run's steps. An analysis that names a missing step, or has too little data,
/// returns a result whose notes say so (never a made-up figure).
pub fn run(spec: &AnalysisSpec, steps: &[StepData<'_>]) -> AnalysisResult {
    let find = |name: &str| steps.iter().find(|s| s.name == name);
    let missing = |kind: &str, name: &str| AnalysisResult {
        kind: kind.into(),
        title: format!("{kind}: step '{name}' did not run"),
        figures: vec![],
        table: None,
        notes: vec![format!("no measured requests for step '{name}'")],
    };
    match spec {
        AnalysisSpec::Fit { x, y, steps: names } => {
            let chosen: Vec<&StepData> =
                steps.iter().filter(|s| names.is_empty() || names.iter().any(|n| n == s.name)).collect();
            fit(x, y, &chosen)
        }
        AnalysisSpec::Turns { step } => find(step).map_or_else(|| missing("turns", step), turns),
        AnalysisSpec::Agent { step } => find(step).map_or_else(|| missing("agent", step), agent::agent),
        AnalysisSpec::Aborts { step } => find(step).map_or_else(|| missing("aborts", step), aborts::aborts),
        AnalysisSpec::Slices { step, width_s } => {
            find(step).map_or_else(|| missing("slices", step), |s| slices::slices(s, *width_s))
        }
        AnalysisSpec::Cache { step, independent } => match find(step) {
            Some(s) => cache(s, independent.as_deref().and_then(find)),
            None => missing("cache", step),
        },
        AnalysisSpec::Compare { baseline, candidate } => match (find(baseline), find(candidate)) {
            (Some(b), Some(c)) => compare(b, c),
            (None, _) => missing("compare", baseline),
            (_, None) => missing("compare", candidate),
        },
        AnalysisSpec::Drift { step } => find(step).map_or_else(|| missing("drift", step), drift),
        AnalysisSpec::Plan => plan(steps),
        AnalysisSpec::Stats { step } => find(step).map_or_else(|| missing("stats", step), stats),
        AnalysisSpec::PromptCache { baseline } => prompt_cache::prompt_cache(steps, baseline.as_deref()),
        AnalysisSpec::Speculative => speculative::speculative(steps),
        AnalysisSpec::Connections { new, keep_alive, http2, websocket, full_tls } => {
            let persistent = connections::Persistent {
                keep_alive: keep_alive.as_deref(),
                http2: http2.as_deref(),
                websocket: websocket.as_deref(),
            };
            connections::connections(steps, new, persistent, full_tls.as_deref())
        }
    }
}

fn stats(s: &StepData<'_>) -> AnalysisResult {
    let mut figures = Vec::new();
    for (name, label, unit) in
        [("e2e", "latency", Unit::Ms), ("ttft", "TTFT", Unit::Ms), ("tokens_per_s", "tokens/s", Unit::Plain)]
    {
        let Some((m, _)) = crate::judge::threshold::step_metric(s.result, name) else { continue };
        for (stat, v) in [("mean", m.mean), ("median", m.p50), ("min", m.min), ("max", m.max), ("stddev", m.stddev)] {
            figures.push(fig(&format!("{name}_{stat}"), v, unit, &format!("{label} {stat}")));
        }
    }
    let mut notes = Vec::new();
    if let Some((m, _)) = crate::judge::threshold::step_metric(s.result, "e2e").filter(|(m, _)| m.mean > 0.0) {
        notes.push(format!(
            "latency varies by {:.1}% (stddev ÷ mean) over {} requests",
            m.stddev / m.mean * 100.0,
            m.count
        ));
    }
    AnalysisResult { kind: "stats".into(), title: format!("{}: statistics", s.name), figures, table: None, notes }
}

fn x_value(s: &Sample, x: &str) -> Option<f64> {
    match x {
        "prompt_tokens" => s.metrics.prompt_tokens.map(|v| v as f64),
        "output_tokens" => Some(s.metrics.output_tokens as f64),
        _ => None,
    }
}

fn y_value(s: &Sample, y: &str) -> Option<f64> {
    match y {
        "ttft" => s.metrics.ttft_ms,
        "e2e" => s.metrics.e2e_ms,
        _ => None,
    }
}

fn fit(x: &str, y: &str, steps: &[&StepData<'_>]) -> AnalysisResult {
    let mut points = Vec::new();
    let mut rows = Vec::new();
    for s in steps {
        let p: Vec<(f64, f64)> =
            s.samples.iter().filter(|s| s.ok).filter_map(|s| Some((x_value(s, x)?, y_value(s, y)?))).collect();
        let xs: Vec<f64> = p.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = p.iter().map(|p| p.1).collect();
        rows.push(TableRow { label: s.name.to_string(), values: vec![mean(&xs), mean(&ys), Some(p.len() as f64)] });
        points.extend(p);
    }
    let title = format!("{y} against {x}");
    let table = Table {
        columns: vec!["step".into(), format!("{x} (mean)"), format!("{y} ms (mean)"), "requests".into()],
        rows,
    };
    let mut result = AnalysisResult { kind: "fit".into(), title, figures: vec![], table: Some(table), notes: vec![] };
    match fit_line(&points) {
        Some(line) => {
            result.figures.push(fig("slope", line.slope, Unit::Plain, &format!("ms of {y} per {x} token")));
            result.figures.push(fig(
                "intercept_ms",
                line.intercept,
                Unit::Ms,
                &format!("{y} at 0 tokens (fixed overhead)"),
            ));
            result.figures.push(fig("r2", line.r2, Unit::Plain, "R² of the fit"));
            if x == "output_tokens" && line.slope > 0.0 {
                result.figures.push(fig(
                    "speed",
                    1000.0 / line.slope,
                    Unit::Plain,
                    "generation speed from the slope, tok/s",
                ));
            }
            result.notes.push(format!(
                "{y} ≈ {:.1} ms + {:.3} ms × {x} (R² {:.3}, {} requests)",
                line.intercept,
                line.slope,
                line.r2,
                points.len()
            ));
        }
        None => result.notes.push(format!("not enough distinct {x} values to fit a line")),
    }
    result
}

fn turns(s: &StepData<'_>) -> AnalysisResult {
    let mut by_turn: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut by_conv: BTreeMap<u64, Vec<(u32, f64)>> = BTreeMap::new();
    let mut tps: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for x in s.samples.iter().filter(|x| x.ok) {
        let (Some(turn), Some(ttft)) = (x.turn, x.metrics.ttft_ms) else { continue };
        by_turn.entry(turn).or_default().push(ttft);
        tps.entry(turn).or_default().extend(x.metrics.tokens_per_s);
        if let Some(c) = x.conversation {
            by_conv.entry(c).or_default().push((turn, ttft));
        }
    }
    let n_turns = by_turn.keys().max().map_or(0, |t| t + 1);
    let third = |t: u32| if n_turns < 3 { 0 } else { (3 * t / n_turns).min(2) };
    let thirds = |points: &mut dyn Iterator<Item = (u32, f64)>| {
        let mut acc = [(0.0, 0u32); 3];
        for (t, v) in points {
            let k = third(t) as usize;
            acc[k].0 += v;
            acc[k].1 += 1;
        }
        acc.map(|(s, n)| (n > 0).then(|| s / f64::from(n)))
    };
    let degradation = |th: [Option<f64>; 3]| match (th[0], th[2]) {
        (Some(a), Some(c)) if a > 0.0 => Some((c - a) / a * 100.0),
        _ => None,
    };
    let overall = thirds(&mut by_turn.iter().flat_map(|(t, v)| v.iter().map(move |x| (*t, *x))));
    let mut rows: Vec<TableRow> = by_turn
        .iter()
        .map(|(t, v)| TableRow { label: format!("turn {}", t + 1), values: vec![mean(v), mean(&tps[t])] })
        .collect();
    let per_conv: Vec<(u64, [Option<f64>; 3], Option<f64>)> = by_conv
        .iter()
        .map(|(c, pts)| {
            let th = thirds(&mut pts.iter().copied());
            (*c, th, degradation(th))
        })
        .collect();
    for (c, th, d) in &per_conv {
        rows.push(TableRow { label: format!("conversation {} thirds", c + 1), values: vec![th[0], th[1], th[2], *d] });
    }
    let mut figures = Vec::new();
    let all: Vec<f64> = by_turn.values().flatten().copied().collect();
    if let Some(sum) = Summary::of(all.iter().copied()) {
        figures.push(fig("ttft_mean", sum.mean, Unit::Ms, "mean TTFT over every turn"));
        figures.push(fig("ttft_stddev", sum.stddev, Unit::Ms, "TTFT standard deviation over every turn"));
    }
    let labels = ["first", "middle", "last"];
    for (k, v) in overall.iter().enumerate() {
        if let Some(v) = v {
            figures.push(fig(
                &format!("ttft_{}_third", labels[k]),
                *v,
                Unit::Ms,
                &format!("mean TTFT, {} third of the turns", labels[k]),
            ));
        }
    }
    let mut notes = Vec::new();
    if let Some(d) = degradation(overall) {
        figures.push(fig("degradation", d, Unit::Percent, "TTFT of the last third vs the first third"));
    } else {
        notes.push("fewer than 3 turns: no degradation figure".into());
    }
    if let Some(worst) = per_conv.iter().filter_map(|c| c.2).max_by(f64::total_cmp) {
        figures.push(fig("degradation_max", worst, Unit::Percent, "worst conversation's degradation"));
    }
    if let Some(t) = s.result.metrics.tokens_per_s.as_ref() {
        figures.push(fig("tokens_per_s", t.mean, Unit::Plain, "mean output tokens/s per request"));
    }
    figures.push(fig("success", s.result.success_rate * 100.0, Unit::Percent, "turns that succeeded"));
    AnalysisResult {
        kind: "turns".into(),
        title: format!("{}: TTFT per turn ({n_turns} turns, {} conversations)", s.name, by_conv.len()),
        figures,
        table: Some(Table {
            columns: vec![
                "turn".into(),
                "TTFT ms (mean) / first third".into(),
                "tok/s / middle third".into(),
                "last third".into(),
                "degradation %".into(),
            ],
            rows,
        }),
        notes,
    }
}

fn cache(s: &StepData<'_>, independent: Option<&StepData<'_>>) -> AnalysisResult {
    #[derive(Default)]
    struct Conv {
        miss: Option<(f64, Option<u64>, Option<u64>)>,
        hit: Option<(f64, Option<u64>, Option<u64>)>,
    }
    let mut convs: BTreeMap<u64, Conv> = BTreeMap::new();
    for x in s.samples.iter().filter(|x| x.ok) {
        let (Some(c), Some(label), Some(ttft)) = (x.conversation, x.label.as_deref(), x.metrics.ttft_ms) else {
            continue;
        };
        let entry = (ttft, x.metrics.cached_tokens, x.metrics.prompt_tokens);
        match label {
            "miss" => convs.entry(c).or_default().miss = Some(entry),
            "hit" => convs.entry(c).or_default().hit = Some(entry),
            _ => {}
        }
    }
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    let mut notes = Vec::new();
    let (mut verified, mut unconfirmed, mut unverifiable) = (0, 0, 0);
    for (c, v) in &convs {
        let (Some(m), Some(h)) = (v.miss, v.hit) else { continue };
        let ratio = if h.0 > 0.0 { m.0 / h.0 } else { f64::NAN };
        ratios.push(ratio);
        // A real HIT reuses at least half of the previous turn's prompt from the cache, and more than the
        // MISS turn did (which shares only the chat template with earlier requests).
        match (h.1, m.2) {
            (Some(cached), Some(prev_prompt)) => {
                let miss_cached = m.1.unwrap_or(0);
                if cached as f64 >= 0.5 * prev_prompt as f64 && cached > miss_cached {
                    verified += 1;
                } else if cached <= miss_cached && miss_cached > 0 {
                    notes.push(format!(
                        "conversation {}: the MISS turn already had {miss_cached} cached tokens and the HIT {cached}: \
                         the server's count cannot tell them apart (is the salt reaching the prompt?)",
                        c + 1
                    ));
                    unconfirmed += 1;
                } else {
                    notes.push(format!(
                        "conversation {}: the HIT turn did not hit the cache ({cached} cached of {} prompt tokens)",
                        c + 1,
                        h.2.map_or("?".into(), |p| p.to_string())
                    ));
                    unconfirmed += 1;
                }
            }
            _ => unverifiable += 1,
        }
        rows.push(TableRow {
            label: format!("iteration {}", c + 1),
            values: vec![Some(m.0), Some(h.0), Some(ratio), m.1.map(|x| x as f64), h.1.map(|x| x as f64)],
        });
    }
    if unverifiable > 0 {
        notes.push(format!("{unverifiable} HIT turns could not be verified: the server reports no cached-token count"));
    }
    let miss: Vec<f64> = convs.values().filter_map(|v| v.miss.map(|m| m.0)).collect();
    let hit: Vec<f64> = convs.values().filter_map(|v| v.hit.map(|h| h.0)).collect();
    let mut figures = Vec::new();
    if let (Some(sm), Some(sh)) = (Summary::of(miss.iter().copied()), Summary::of(hit.iter().copied())) {
        figures.push(fig("ttft_miss", sm.mean, Unit::Ms, "mean TTFT of the salted first turn (cache MISS)"));
        figures.push(fig("ttft_miss_stddev", sm.stddev, Unit::Ms, "MISS TTFT standard deviation"));
        figures.push(fig("ttft_hit", sh.mean, Unit::Ms, "mean TTFT of the continued turn (cache HIT)"));
        figures.push(fig("ttft_hit_stddev", sh.stddev, Unit::Ms, "HIT TTFT standard deviation"));
        figures.push(fig("gain_ms", sm.mean - sh.mean, Unit::Ms, "MISS − HIT mean TTFT"));
    }
    if let Some(r) = Summary::of(ratios.iter().copied()) {
        figures.push(fig("acceleration", r.mean, Unit::Plain, "mean of TTFT_miss ÷ TTFT_hit per iteration"));
        figures.push(fig("acceleration_min", r.min, Unit::Plain, "lowest acceleration"));
        figures.push(fig("acceleration_max", r.max, Unit::Plain, "highest acceleration"));
        figures.push(fig("acceleration_stddev", r.stddev, Unit::Plain, "acceleration standard deviation"));
    }
    let checked = verified + unconfirmed;
    if checked > 0 {
        figures.push(fig(
            "hit_rate",
            verified as f64 / checked as f64 * 100.0,
            Unit::Percent,
            "HIT turns the server confirmed as cache hits",
        ));
    }
    if let Some(ind) = independent.and_then(|i| i.result.metrics.ttft_ms.as_ref()) {
        figures.push(fig("ttft_independent", ind.mean, Unit::Ms, "mean TTFT of independent messages"));
    }
    if ratios.is_empty() {
        notes.push("no conversation had both a successful MISS and HIT turn".into());
    }
    AnalysisResult {
        kind: "cache".into(),
        title: format!("{}: prefix cache MISS vs HIT", s.name),
        figures,
        table: Some(Table {
            columns: vec![
                "iteration".into(),
                "TTFT MISS ms".into(),
                "TTFT HIT ms".into(),
                "acceleration ×".into(),
                "MISS cached tokens".into(),
                "HIT cached tokens".into(),
            ],
            rows,
        }),
        notes,
    }
}

fn compare(b: &StepData<'_>, c: &StepData<'_>) -> AnalysisResult {
    let metrics = [
        ("ttft", "TTFT ms"),
        ("e2e", "E2E ms"),
        ("network_overhead", "network overhead ms"),
        ("tokens_per_s", "tokens/s"),
        ("server_load", "model load ms (server)"),
    ];
    let mut figures = Vec::new();
    let mut rows = Vec::new();
    for (name, label) in metrics {
        let get = |s: &StepData| crate::judge::threshold::step_metric(s.result, name).map(|(m, _)| m.mean);
        let (x, y) = (get(b), get(c));
        if let (Some(x), Some(y)) = (x, y) {
            if x > 0.0 {
                figures.push(fig(
                    &format!("{name}_ratio"),
                    y / x,
                    Unit::Plain,
                    &format!("{label}: {} ÷ {}", c.name, b.name),
                ));
            }
            figures.push(fig(
                &format!("{name}_delta"),
                y - x,
                if name == "tokens_per_s" { Unit::Plain } else { Unit::Ms },
                &format!("{label}: {} − {}", c.name, b.name),
            ));
        }
        if x.is_some() || y.is_some() {
            rows.push(TableRow { label: label.into(), values: vec![x, y, x.zip(y).map(|(x, y)| y - x)] });
        }
    }
    AnalysisResult {
        kind: "compare".into(),
        title: format!("{} vs {}", c.name, b.name),
        figures,
        table: Some(Table {
            columns: vec!["metric (mean)".into(), b.name.into(), c.name.into(), "difference".into()],
            rows,
        }),
        notes: vec![],
    }
}

fn drift(s: &StepData<'_>) -> AnalysisResult {
    let mut ordered: Vec<&Sample> = s.samples.iter().collect();
    ordered.sort_by_key(|x| x.scheduled);
    let t0 = ordered.first().map_or(0, |x| x.scheduled);
    let minutes = |x: &Sample| (x.scheduled - t0) as f64 / 60e9;
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for (name, get) in [
        ("ttft", (|x: &Sample| x.metrics.ttft_ms) as fn(&Sample) -> Option<f64>),
        ("e2e", |x: &Sample| x.metrics.e2e_ms),
    ] {
        let pts: Vec<(f64, f64)> =
            ordered.iter().filter(|x| x.ok).filter_map(|x| Some((minutes(x), get(x)?))).collect();
        if let Some(line) = fit_line(&pts) {
            figures.push(fig(
                &format!("{name}_drift_ms_per_min"),
                line.slope,
                Unit::Plain,
                &format!("{name} trend, ms per minute"),
            ));
            let span = pts.last().map_or(0.0, |p| p.0) - pts.first().map_or(0.0, |p| p.0);
            let start = line.intercept + line.slope * pts[0].0;
            if start > 0.0 {
                figures.push(fig(
                    &format!("{name}_drift"),
                    line.slope * span / start * 100.0,
                    Unit::Percent,
                    &format!("{name} change over the run"),
                ));
            }
        }
    }
    // Outages: a run of connection failures between successes means the server stopped answering.
    let mut outages = 0;
    let mut in_outage: Option<u64> = None;
    for x in &ordered {
        let down = !x.ok && x.error == Some(ErrorClass::Connect);
        match (down, in_outage) {
            (true, None) => in_outage = Some(x.scheduled),
            (false, Some(start)) if x.ok => {
                outages += 1;
                notes.push(format!(
                    "the server stopped answering at {:.1} s and was back at {:.1} s (it died or restarted)",
                    (start - t0) as f64 / 1e9,
                    (x.scheduled - t0) as f64 / 1e9
                ));
                in_outage = None;
            }
            _ => {}
        }
    }
    if let Some(start) = in_outage {
        notes.push(format!("the server stopped answering at {:.1} s and did not come back", (start - t0) as f64 / 1e9));
        outages += 1;
    }
    let timeouts = s.samples.iter().filter(|x| x.error == Some(ErrorClass::Timeout)).count();
    figures.push(fig("errors", s.result.failed as f64, Unit::Plain, "failed requests"));
    figures.push(fig("timeouts", timeouts as f64, Unit::Plain, "requests that timed out"));
    figures.push(fig("outages", f64::from(outages), Unit::Plain, "times the server stopped answering"));
    AnalysisResult {
        kind: "drift".into(),
        title: format!("{}: stability over time", s.name),
        figures,
        table: None,
        notes,
    }
}

fn plan(steps: &[StepData<'_>]) -> AnalysisResult {
    let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in steps {
        for (k, v) in s.tags {
            groups.entry(format!("{k}={v}")).or_default().extend(s.samples.iter().filter(|x| x.ok));
        }
    }
    let rows = groups
        .iter()
        .map(|(g, xs)| {
            let e2e = Summary::of(xs.iter().filter_map(|x| x.metrics.e2e_ms));
            TableRow {
                label: g.clone(),
                values: vec![
                    Some(xs.len() as f64),
                    e2e.as_ref().map(|s| s.p50),
                    e2e.as_ref().map(|s| s.p95),
                    e2e.as_ref().map(|s| s.p99),
                ],
            }
        })
        .collect();
    // Where the time goes, over every successful request: mean per component. The engine's own prefill and
    // decode times are used where the server reports them; otherwise the client's split (waiting for the first
    // token = server queue + prefill, then generation) stands in.
    let all: Vec<&Sample> = steps.iter().flat_map(|s| s.samples.iter().filter(|x| x.ok)).collect();
    let avg = |f: &dyn Fn(&Sample) -> Option<f64>| mean(&all.iter().filter_map(|x| f(x)).collect::<Vec<_>>());
    let queue =
        |x: &Sample| x.metrics.queue_delay_ms.map(|q| (q - x.metrics.network_overhead_ms.unwrap_or(0.0)).max(0.0));
    let server_split = all.iter().any(|x| x.server_prefill_ms.is_some());
    let mut parts: Vec<(&str, f64)> = if server_split {
        vec![
            ("network", avg(&|x| x.metrics.network_overhead_ms)),
            ("client queue", avg(&queue)),
            ("server queue and transfer", avg(&|x| Some((x.metrics.ttft_ms? - x.server_prefill_ms?).max(0.0)))),
            ("prefill", avg(&|x| x.server_prefill_ms)),
            ("decode", avg(&|x| x.server_decode_ms)),
        ]
    } else {
        vec![
            ("network", avg(&|x| x.metrics.network_overhead_ms)),
            ("client queue", avg(&queue)),
            ("waiting for the first token", avg(&|x| x.metrics.ttft_ms)),
            ("generation after the first token", avg(&|x| Some(x.metrics.e2e_ms? - x.metrics.ttft_ms?))),
        ]
    }
    .into_iter()
    .filter_map(|(n, v)| Some((n, v?)))
    .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut notes = Vec::new();
    let top: Vec<String> = parts.iter().take(3).map(|(n, v)| format!("{n} {v:.1} ms")).collect();
    if !top.is_empty() {
        notes.push(format!("largest contributors to latency (mean per request): {}", top.join(", ")));
    }
    if !server_split {
        notes.push(
            "the server reports no prefill/decode times: the split is the client's (TTFT, then generation)".into(),
        );
    }
    let figures = parts
        .iter()
        .map(|(n, v)| fig(&format!("{}_ms", n.replace(' ', "_")), *v, Unit::Ms, &format!("mean {n} time per request")))
        .collect();
    AnalysisResult {
        kind: "plan".into(),
        title: "latency by tag".into(),
        figures,
        table: Some(Table {
            columns: vec![
                "tag".into(),
                "requests".into(),
                "E2E p50 ms".into(),
                "E2E p95 ms".into(),
                "E2E p99 ms".into(),
            ],
            rows,
        }),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|x| (f64::from(x), 3.0 + 2.0 * f64::from(x))).collect();
        let l = fit_line(&pts).unwrap();
        assert!((l.slope - 2.0).abs() < 1e-12 && (l.intercept - 3.0).abs() < 1e-12 && (l.r2 - 1.0).abs() < 1e-12);
        assert!(fit_line(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    proptest! {
        #[test]
        fn r2_is_at_most_one(pts in prop::collection::vec((0f64..1e4, 0f64..1e4), 3..50)) {
            if let Some(l) = fit_line(&pts) {
                prop_assert!(l.r2 <= 1.0 + 1e-9);
            }
        }
    }
}
