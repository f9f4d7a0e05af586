//! The charts of a report, drawn from result documents with [`crate::svg`]. Several runs ("targets") overlay,
//! one series per run; a single run with several steps gets one series per step instead.
//!
//! | id | chart | drawn when |
//! |---|---|---|
//! | `ttft-histogram`, `ttft-cdf` | TTFT distribution: histogram and cumulative share | per-request samples exist |
//! | `e2e-histogram`, `e2e-cdf` | E2E latency distribution: histogram and cumulative share | per-request samples exist |
//! | `time-split` | mean client queue, network, prefill (TTFT − network) and decode (E2E − TTFT) per step | a step has TTFT and E2E |
//! | `ttft-per-turn` | median and p95 TTFT per conversation turn | a step has samples of ≥ 2 turns |
//! | `ttft-vs-prompt-tokens` | TTFT of each request against its prompt length, with the least-squares line | ≥ 2 distinct prompt lengths |
//! | `e2e-vs-max-tokens` | mean E2E of each step against its `max_tokens`, with the least-squares line | ≥ 2 steps with distinct `max_tokens` |
//! | `throughput-tokens`, `throughput-requests` | output token and request throughput against concurrency | ≥ 2 closed-loop steps with distinct concurrency |
//! | `server-resources` | the server's RSS and CPU over time, server events as vertical lines | the run sampled the server's resources |
//! | `server-gpu` | GPU memory in use and utilisation over time, one line per GPU, server events as vertical lines | the samples hold GPU readings |
//!
//! The server charts belong to one run: with several targets each run gets its own, their ids suffixed with
//! the target's position (`server-resources-2`), see [`server_chart_ids`].
//!
//! Lines are fitted with [`velollm_core::stats::fit_line`] and percentiles come from
//! [`velollm_core::stats`]; this module only arranges measured values. [`before_after_bars`] draws the
//! baseline/candidate comparison of `velollm compare`.

use crate::format::byte_unit;
use crate::svg::{
    self, Axis, Bar, BarGroup, BarPanel, BarPanels, Histogram, Marker, StackedBars, StackedRow, Style, Timeline,
    TimelinePanel, XyChart, XySeries,
};
use crate::target::Target;
use std::collections::{BTreeMap, BTreeSet};
use velollm_core::aggregate::step::{StepResult, StepSamples};
use velollm_core::measure::names::Better;
use velollm_core::stats::fit_line;
use velollm_core::stats::percentile_sorted;
use velollm_core::workload::load::LoadProfile;

/// Most points drawn in a scatter or CDF; larger samples are thinned evenly (fits and percentiles still use
/// every value).
const MAX_POINTS: usize = 2000;

/// One chart of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Stable identifier, usable in a file name (`ttft-cdf`).
    pub id: String,
    /// Title (also the SVG's `<title>`).
    pub title: String,
    /// The standalone SVG document.
    pub svg: String,
}

/// Every chart the targets have data for, in report order (see the module table).
pub fn run_charts(targets: &[Target<'_>]) -> Vec<Chart> {
    let mut charts = Vec::new();
    let groups = distribution_groups(targets);
    for (metric, label, name) in [("ttft", "TTFT (ms)", "TTFT"), ("e2e", "E2E latency (ms)", "E2E latency")] {
        let series: Vec<(String, Vec<f64>)> = groups
            .iter()
            .map(|(l, steps)| {
                (
                    l.clone(),
                    steps
                        .iter()
                        .flat_map(|s| {
                            velollm_core::aggregate::registry::samples(&s.samples, metric).unwrap_or_default()
                        })
                        .collect(),
                )
            })
            .filter(|(_, v): &(String, Vec<f64>)| !v.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        charts.push(distribution_histogram(metric, label, name, &series));
        charts.push(distribution_cdf(metric, label, name, &series));
    }
    charts.extend(time_split(targets));
    charts.extend(CALL_FIGURES.iter().filter_map(|&f| per_turn(targets, f)));
    charts.extend(prefix_reuse_per_turn(targets));
    // TTFT by context length is the scatter against prompt length below.
    charts.extend(CALL_FIGURES[1..].iter().filter_map(|&f| by_context(targets, f)));
    charts.extend(ttft_vs_prompt(targets));
    charts.extend(e2e_vs_max_tokens(targets));
    charts.extend(throughput_vs_concurrency(targets));
    for (i, t) in targets.iter().enumerate() {
        charts.extend(server_charts(t, &server_chart_ids(targets.len(), i), targets.len() > 1));
    }
    charts
}

/// The ids of the server charts (resources, GPU) of target `i` of `n`: `server-resources` and `server-gpu`
/// for one target, `server-resources-{i + 1}` and `server-gpu-{i + 1}` for several.
pub fn server_chart_ids(n: usize, i: usize) -> [String; 2] {
    let suffix = if n > 1 { format!("-{}", i + 1) } else { String::new() };
    [format!("server-resources{suffix}"), format!("server-gpu{suffix}")]
}

/// The server's resources over time, and its GPUs' when sampled, with the server events as markers.
fn server_charts(t: &Target<'_>, ids: &[String; 2], several: bool) -> Vec<Chart> {
    let Some(server) = &t.run.server else { return vec![] };
    let Some(r) = server.resources.as_ref().filter(|r| !r.samples.is_empty()) else { return vec![] };
    let of = if several { format!(" ({})", t.label) } else { String::new() };
    let x = Axis::new(if server.launch.is_some() {
        "time since the server was spawned (s)"
    } else {
        "time since the run started (s)"
    })
    .from_zero();
    let markers: Vec<Marker> = server
        .events
        .iter()
        .map(|e| Marker {
            x: e.t_s,
            label: crate::server::event_label(e.kind).into(),
            detail: crate::server::event_line(e),
        })
        .collect();
    let mut notes = vec![format!("sampled {}", crate::server::sampling_text(r))];
    if !markers.is_empty() {
        notes.push("dashed vertical lines: server events (listed under Events)".into());
    }
    let line = |name: String, colour: usize, points: Vec<(f64, f64)>, legend: bool| XySeries {
        name,
        colour,
        style: Style::Line,
        points,
        legend,
    };
    let (size, unit) = byte_unit(r.samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0) as f64);
    let title = format!("Server memory and CPU over time{of}");
    let resources = svg::timeline(&Timeline {
        title: title.clone(),
        notes: notes.clone(),
        x: x.clone(),
        panels: vec![
            TimelinePanel {
                y: Axis::new(format!("RSS ({unit})")).from_zero(),
                series: vec![line(
                    "RSS of the server's process tree".into(),
                    0,
                    r.samples.iter().map(|s| (s.t_s, s.rss_bytes as f64 / size)).collect(),
                    true,
                )],
            },
            TimelinePanel {
                y: Axis::new("CPU (%)").from_zero(),
                series: vec![line(
                    "CPU (100% = one core)".into(),
                    1,
                    r.samples.iter().map(|s| (s.t_s, s.cpu_percent)).collect(),
                    true,
                )],
            },
        ],
        markers: markers.clone(),
    });
    let mut charts = vec![Chart { id: ids[0].clone(), title, svg: resources }];

    let gpus: BTreeSet<u32> = r.samples.iter().flat_map(|s| s.gpu.iter().map(|g| g.index)).collect();
    if gpus.is_empty() {
        return charts;
    }
    let readings = || r.samples.iter().flat_map(|s| s.gpu.iter().map(move |g| (s.t_s, g)));
    let used_max = readings().filter_map(|(_, g)| g.memory_used_bytes).max().unwrap_or(0);
    let total_max = readings().filter_map(|(_, g)| g.memory_total_bytes).max();
    let (size, unit) = byte_unit(total_max.unwrap_or(used_max).max(used_max) as f64);
    let mut memory = Vec::new();
    let mut utilisation = Vec::new();
    for (k, index) in gpus.iter().enumerate() {
        let of_gpu = || readings().filter(|(_, g)| g.index == *index);
        memory.push(line(
            format!("GPU {index}"),
            k,
            of_gpu().filter_map(|(t, g)| Some((t, g.memory_used_bytes? as f64 / size))).collect(),
            true,
        ));
        utilisation.push(line(
            format!("GPU {index}"),
            k,
            of_gpu().filter_map(|(t, g)| Some((t, g.utilization_percent?))).collect(),
            false,
        ));
    }
    let memory_axis = Axis::new(format!("GPU memory used ({unit})"));
    let memory_axis = match total_max {
        Some(total) => memory_axis.range(0.0, total as f64 / size),
        None => memory_axis.from_zero(),
    };
    notes.push(
        "memory in use on the whole GPU (every process), up to its total; utilisation as nvidia-smi reports it".into(),
    );
    let title = format!("GPU memory and utilisation over time{of}");
    let gpu = svg::timeline(&Timeline {
        title: title.clone(),
        notes,
        x,
        panels: vec![
            TimelinePanel { y: memory_axis, series: memory },
            TimelinePanel { y: Axis::new("GPU utilisation (%)").range(0.0, 100.0), series: utilisation },
        ],
        markers,
    });
    charts.push(Chart { id: ids[1].clone(), title, svg: gpu });
    charts
}

/// One target with several steps: a series per step; otherwise a series per target, its steps pooled.
fn distribution_groups<'a>(targets: &[Target<'a>]) -> Vec<(String, Vec<&'a StepResult>)> {
    let with_samples =
        |t: &Target<'a>| -> Vec<&'a StepResult> { t.run.steps.iter().filter(|s| !s.samples.is_empty()).collect() };
    if let [t] = targets {
        let steps = with_samples(t);
        if (2..=svg::PALETTE.len()).contains(&steps.len()) {
            return steps.into_iter().map(|s| (s.name.clone(), vec![s])).collect();
        }
    }
    targets.iter().map(|t| (t.label.to_string(), with_samples(t))).filter(|(_, s)| !s.is_empty()).collect()
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn distribution_histogram(metric: &str, label: &str, name: &str, series: &[(String, Vec<f64>)]) -> Chart {
    let notes = if series.len() <= 4 {
        series
            .iter()
            .map(|(l, v)| {
                let s = sorted(v);
                let p = |q| percentile_sorted(&s, q).map_or("–".into(), svg::num);
                format!("{l}: {} requests, median {} ms, p95 {} ms", s.len(), p(0.5), p(0.95))
            })
            .collect()
    } else {
        vec![]
    };
    let title = format!("{name} distribution");
    let svg = svg::histogram(&Histogram {
        title: title.clone(),
        notes,
        x_label: label.into(),
        y_label: "requests".into(),
        series: series.to_vec(),
    });
    Chart { id: format!("{metric}-histogram"), title, svg }
}

/// Empirical CDF points `(value, share of requests ≤ value)`, thinned to at most [`MAX_POINTS`].
fn cdf_points(values: &[f64]) -> Vec<(f64, f64)> {
    let s = sorted(values);
    let n = s.len();
    if n == 0 {
        return vec![];
    }
    let ranks: Vec<usize> = if n <= MAX_POINTS {
        (0..n).collect()
    } else {
        (0..MAX_POINTS).map(|k| k * (n - 1) / (MAX_POINTS - 1)).collect()
    };
    let mut pts = vec![(s[0], 0.0)];
    pts.extend(ranks.into_iter().map(|r| (s[r], (r + 1) as f64 / n as f64)));
    pts
}

fn distribution_cdf(metric: &str, label: &str, name: &str, series: &[(String, Vec<f64>)]) -> Chart {
    let title = format!("{name}: cumulative distribution");
    let svg = svg::xy_chart(&XyChart {
        title: title.clone(),
        notes: vec![format!("share of successful requests with a {name} at or below each value")],
        x: Axis::new(label),
        y: Axis::new("cumulative share").range(0.0, 1.0),
        series: series
            .iter()
            .enumerate()
            .map(|(i, (l, v))| XySeries {
                name: l.clone(),
                colour: i,
                style: Style::Step,
                points: cdf_points(v),
                legend: true,
            })
            .collect(),
    });
    Chart { id: format!("{metric}-cdf"), title, svg }
}

/// Row label: the step alone for one target, `target · step` for several.
fn row_label(targets: &[Target<'_>], t: &Target<'_>, step: &StepResult) -> String {
    if targets.len() == 1 { step.name.clone() } else { format!("{} · {}", t.label, step.name) }
}

fn time_split(targets: &[Target<'_>]) -> Option<Chart> {
    let mut rows = Vec::new();
    for t in targets {
        for s in &t.run.steps {
            let m = &s.metrics;
            let (Some(ttft), Some(e2e)) = (&m.ttft_ms, &m.e2e_ms) else { continue };
            let queue = m.queue_delay_ms.as_ref().map_or(0.0, |q| q.mean);
            let network = m.network_overhead_ms.as_ref().map_or(0.0, |n| n.mean);
            rows.push(StackedRow {
                label: row_label(targets, t, s),
                values: vec![queue, network, (ttft.mean - network).max(0.0), (e2e.mean - ttft.mean).max(0.0)],
            });
        }
    }
    if rows.is_empty() {
        return None;
    }
    let title = "Where the time goes, per step".to_string();
    let svg = svg::stacked_bars(&StackedBars {
        title: title.clone(),
        notes: vec![
            "means over successful requests; prefill includes server queueing and the first token's transfer".into(),
        ],
        x_label: "mean time per request (ms)".into(),
        segments: vec![
            "client queue".into(),
            "network (DNS + connect + TLS)".into(),
            "prefill (TTFT − network)".into(),
            "decode (E2E − TTFT)".into(),
        ],
        rows,
    });
    Some(Chart { id: "time-split".into(), title, svg })
}

/// A per-call figure of a conversation or agent replay, charted by turn and by context length.
#[derive(Clone, Copy)]
struct CallFigure {
    /// The chart ids' stem: `ttft` → `ttft-per-turn`, `ttft-by-context`.
    id: &'static str,
    /// Its name in titles and legends.
    name: &'static str,
    /// The y axis.
    axis: &'static str,
    /// The step's sample column.
    column: fn(&StepSamples) -> &[Option<f64>],
}

const CALL_FIGURES: [CallFigure; 3] = [
    CallFigure { id: "ttft", name: "TTFT", axis: "TTFT (ms)", column: |s| &s.ttft_ms },
    CallFigure { id: "e2e", name: "E2E", axis: "E2E latency (ms)", column: |s| &s.e2e_ms },
    CallFigure {
        id: "decode-speed",
        name: "decode speed",
        axis: "decode speed (tok/s)",
        column: |s| &s.decode_tokens_per_s,
    },
];

/// Points of a line.
type Points = Vec<(f64, f64)>;

/// A step's label and its median and 95th-percentile lines of a figure per group (a turn, a context length).
type Lines = (String, Points, Points);

/// The median and 95th percentile of each group, at `x(group)`.
fn median_and_p95(groups: &BTreeMap<u64, Vec<f64>>, x: impl Fn(u64) -> f64) -> (Points, Points) {
    let (mut median, mut p95) = (Vec::new(), Vec::new());
    for (key, v) in groups {
        let v = sorted(v);
        median.extend(percentile_sorted(&v, 0.5).map(|y| (x(*key), y)));
        p95.extend(percentile_sorted(&v, 0.95).map(|y| (x(*key), y)));
    }
    (median, p95)
}

/// Median (solid) and 95th percentile (dashed) lines, one colour per step.
fn median_lines(lines: Vec<Lines>, what: &str) -> Vec<XySeries> {
    let single = lines.len() == 1;
    let mut series = Vec::new();
    for (i, (label, median, p95)) in lines.into_iter().enumerate() {
        let name = |stat: &str| if single { format!("{stat} {what}") } else { format!("{label} {stat}") };
        series.push(XySeries {
            name: name("median"),
            colour: i,
            style: Style::LineMarkers,
            points: median,
            legend: true,
        });
        series.push(XySeries { name: name("p95"), colour: i, style: Style::DashedMarkers, points: p95, legend: true });
    }
    series
}

/// Per step, the median and p95 lines of figure `f` over the groups that `keys` puts the step's calls in (one
/// key per call; a call without one is left out), at `x(key)`; only steps with at least two groups.
fn grouped_lines(
    targets: &[Target<'_>],
    f: CallFigure,
    keys: impl Fn(&StepSamples) -> Vec<Option<u64>>,
    x: impl Fn(u64) -> f64 + Copy,
) -> Vec<Lines> {
    let mut lines = Vec::new();
    for t in targets {
        for s in &t.run.steps {
            let mut groups: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for (k, v) in keys(&s.samples).into_iter().zip((f.column)(&s.samples)) {
                if let (Some(k), Some(v)) = (k, v) {
                    groups.entry(k).or_default().push(*v);
                }
            }
            if groups.len() >= 2 {
                let (median, p95) = median_and_p95(&groups, x);
                lines.push((row_label(targets, t, s), median, p95));
            }
        }
    }
    lines
}

/// One chart of median and p95 lines; `None` without lines.
fn median_chart(lines: Vec<Lines>, f: CallFigure, id: String, title: String, note: &str, x: Axis) -> Option<Chart> {
    if lines.is_empty() {
        return None;
    }
    let svg = svg::xy_chart(&XyChart {
        title: title.clone(),
        notes: vec![note.into()],
        x,
        y: Axis::new(f.axis).from_zero(),
        series: median_lines(lines, f.name),
    });
    Some(Chart { id, title, svg })
}

/// A figure per conversation turn (the steps with at least two turns).
fn per_turn(targets: &[Target<'_>], f: CallFigure) -> Option<Chart> {
    let turns = |x: &StepSamples| x.turn.iter().map(|t| t.map(u64::from)).collect();
    median_chart(
        grouped_lines(targets, f, turns, |turn| turn as f64 + 1.0),
        f,
        format!("{}-per-turn", f.id),
        format!("{} per conversation turn", f.name),
        "solid: median, dashed: 95th percentile; each turn carries the previous answers",
        Axis::new("turn").integer(),
    )
}

/// A figure by context length (prompt tokens, in power-of-two buckets from 256, as the `agent` analysis
/// groups them), for the steps of conversations or agent sessions (at least two turns) whose contexts span at
/// least two buckets.
fn by_context(targets: &[Target<'_>], f: CallFigure) -> Option<Chart> {
    let contexts = |x: &StepSamples| {
        let conversation = x.turn.iter().flatten().any(|&t| t > 0);
        let bucket = |p: &Option<u64>| p.filter(|_| conversation).map(|p| p.max(256).next_power_of_two());
        x.prompt_tokens.iter().map(bucket).collect()
    };
    median_chart(
        grouped_lines(targets, f, contexts, |upper| upper as f64),
        f,
        format!("{}-by-context", f.id),
        format!("{} by context length", f.name),
        "calls by prompt tokens in powers of two (≤ 256, ≤ 512, …); solid: median, dashed: p95",
        Axis::new("prompt tokens (up to)").from_zero(),
    )
}

/// The prefix the server reused at each turn of a multi-turn or agent replay: cached ÷ prompt tokens over the
/// calls of that turn index, as the server reports them. An agent's later turns carry the earlier ones, so a
/// server whose prefix cache works shows the share climbing with the turn.
fn prefix_reuse_per_turn(targets: &[Target<'_>]) -> Option<Chart> {
    let mut series = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for s in &t.run.steps {
            let x = &s.samples;
            // (cached, prompt) token sums per turn index.
            let mut by_turn: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for ((turn, cached), prompt) in x.turn.iter().zip(&x.cached_tokens).zip(&x.prompt_tokens) {
                if let (Some(turn), Some(cached), Some(prompt)) = (turn, cached, prompt) {
                    let e = by_turn.entry(*turn).or_default();
                    e.0 += cached;
                    e.1 += prompt;
                }
            }
            let any_cached = by_turn.values().any(|(c, _)| *c > 0);
            if by_turn.len() < 2 || !any_cached {
                continue;
            }
            let points: Vec<(f64, f64)> = by_turn
                .iter()
                .filter(|(_, (_, p))| *p > 0)
                .map(|(turn, (c, p))| (f64::from(*turn) + 1.0, *c as f64 / *p as f64 * 100.0))
                .collect();
            series.push(XySeries {
                name: row_label(targets, t, s),
                colour: i,
                style: Style::LineMarkers,
                points,
                legend: true,
            });
        }
    }
    if series.is_empty() {
        return None;
    }
    let title = "Prefix reuse per turn".to_string();
    let svg = svg::xy_chart(&XyChart {
        title: title.clone(),
        notes: vec!["cached ÷ prompt tokens of the calls at each turn, as the server reports them".into()],
        x: Axis::new("turn").integer(),
        y: Axis::new("prompt tokens read from the server's cache (%)").range(0.0, 100.0),
        series,
    });
    Some(Chart { id: "prefix-reuse-per-turn".into(), title, svg })
}

/// A slope as a term of a sum: `+ 0.031`, `− 0.002`.
fn signed(v: f64) -> String {
    if v < 0.0 { format!("− {:.3}", -v) } else { format!("+ {v:.3}") }
}

/// Every `k`-th point so that at most [`MAX_POINTS`] remain.
fn thin(points: Vec<(f64, f64)>) -> (Vec<(f64, f64)>, usize) {
    let k = points.len().div_ceil(MAX_POINTS).max(1);
    (points.into_iter().step_by(k).collect(), k)
}

fn fit_series(
    series: &mut Vec<XySeries>,
    notes: &mut Vec<String>,
    colour: usize,
    label: &str,
    points: &[(f64, f64)],
    describe: &dyn Fn(f64, f64) -> String,
) {
    let Some(line) = fit_line(points) else { return };
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    series.push(XySeries {
        name: format!("{label} fit"),
        colour,
        style: Style::Dashed,
        points: vec![(lo, line.intercept + line.slope * lo), (hi, line.intercept + line.slope * hi)],
        legend: true,
    });
    notes.push(format!(
        "{label}: {} (R² {:.3}, {} points)",
        describe(line.intercept, line.slope),
        line.r2,
        points.len()
    ));
}

fn ttft_vs_prompt(targets: &[Target<'_>]) -> Option<Chart> {
    let mut series = Vec::new();
    let mut notes = Vec::new();
    let mut any_fit = false;
    for (i, t) in targets.iter().enumerate() {
        let points: Vec<(f64, f64)> = t
            .run
            .steps
            .iter()
            .flat_map(|s| s.samples.prompt_tokens.iter().zip(&s.samples.ttft_ms))
            .filter_map(|(p, y)| Some((p.as_ref().copied()? as f64, y.as_ref().copied()?)))
            .collect();
        if points.is_empty() {
            continue;
        }
        any_fit |= fit_line(&points).is_some();
        let (shown, k) = thin(points.clone());
        if k > 1 {
            notes.push(format!("{}: 1 request in {k} shown (the fit uses all)", t.label));
        }
        series.push(XySeries {
            name: t.label.to_string(),
            colour: i,
            style: Style::Scatter,
            points: shown,
            legend: true,
        });
        fit_series(&mut series, &mut notes, i, t.label, &points, &|a, b| {
            format!("TTFT ≈ {a:.1} ms {} ms × prompt tokens", signed(b))
        });
    }
    if !any_fit {
        return None;
    }
    let title = "TTFT against prompt length".to_string();
    let svg = svg::xy_chart(&XyChart {
        title: title.clone(),
        notes,
        x: Axis::new("prompt length (tokens)").from_zero(),
        y: Axis::new("TTFT (ms)").from_zero(),
        series,
    });
    Some(Chart { id: "ttft-vs-prompt-tokens".into(), title, svg })
}

fn e2e_vs_max_tokens(targets: &[Target<'_>]) -> Option<Chart> {
    let mut series = Vec::new();
    let mut notes = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let points: Vec<(f64, f64)> = t
            .run
            .steps
            .iter()
            .filter_map(|s| Some((f64::from(s.config.max_tokens), s.metrics.e2e_ms.as_ref()?.mean)))
            .collect();
        let mut distinct: Vec<f64> = points.iter().map(|p| p.0).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() < 2 {
            continue;
        }
        series.push(XySeries {
            name: t.label.to_string(),
            colour: i,
            style: Style::Markers,
            points: points.clone(),
            legend: true,
        });
        fit_series(&mut series, &mut notes, i, t.label, &points, &|a, b| {
            format!("mean E2E ≈ {a:.1} ms {} ms × max_tokens", signed(b))
        });
    }
    if series.is_empty() {
        return None;
    }
    let title = "Latency against max_tokens".to_string();
    let svg = svg::xy_chart(&XyChart {
        title: title.clone(),
        notes,
        x: Axis::new("max_tokens requested (tokens)").from_zero(),
        y: Axis::new("mean E2E latency (ms)").from_zero(),
        series,
    });
    Some(Chart { id: "e2e-vs-max-tokens".into(), title, svg })
}

fn throughput_vs_concurrency(targets: &[Target<'_>]) -> Vec<Chart> {
    // (colour, label, (concurrency, step) sorted by concurrency)
    type Curve<'a> = (usize, &'a str, Vec<(f64, &'a StepResult)>);
    let mut lines: Vec<Curve<'_>> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let mut pts: Vec<(f64, &StepResult)> = t
            .run
            .steps
            .iter()
            .filter_map(|s| match s.config.load {
                LoadProfile::Sequential => Some((1.0, s)),
                LoadProfile::Concurrency { concurrency } => Some((f64::from(concurrency), s)),
                LoadProfile::Rate { .. } => None,
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let closed = pts.iter().any(|(_, s)| matches!(s.config.load, LoadProfile::Concurrency { .. }));
        let mut distinct: Vec<f64> = pts.iter().map(|p| p.0).collect();
        distinct.dedup();
        if closed && distinct.len() >= 2 {
            lines.push((i, t.label, pts));
        }
    }
    if lines.is_empty() {
        return vec![];
    }
    let chart = |id: &str, title: &str, y: &str, f: &dyn Fn(&StepResult) -> f64| {
        let series = lines
            .iter()
            .map(|(i, label, pts)| XySeries {
                name: label.to_string(),
                colour: *i,
                style: Style::LineMarkers,
                points: pts.iter().map(|(c, s)| (*c, f(s))).collect(),
                legend: true,
            })
            .collect();
        let svg = svg::xy_chart(&XyChart {
            title: title.into(),
            notes: vec!["closed-loop steps (sequential = 1 in flight); one point per step".into()],
            x: Axis::new("concurrency (requests in flight)").integer().from_zero(),
            y: Axis::new(y).from_zero(),
            series,
        });
        Chart { id: id.into(), title: title.into(), svg }
    };
    vec![
        chart("throughput-tokens", "Output token throughput against concurrency", "output throughput (tok/s)", &|s| {
            s.rates.output_token_throughput
        }),
        chart("throughput-requests", "Request throughput against concurrency", "request throughput (req/s)", &|s| {
            s.rates.request_throughput
        }),
    ]
}

/// The input of [`before_after_bars`]: a baseline run and one or more candidates, compared on several metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct BeforeAfter {
    /// Chart title.
    pub title: String,
    /// Lines under the title, e.g. what the error bars are (`error bars: 95 % bootstrap confidence interval`).
    pub notes: Vec<String>,
    /// Label of the baseline run (legend).
    pub baseline: String,
    /// Labels of the candidate runs (legend), in the order of [`MetricBars::candidates`].
    pub candidates: Vec<String>,
    /// One panel per metric.
    pub metrics: Vec<MetricBars>,
}

/// One metric of a [`BeforeAfter`] chart, drawn as its own panel with its own axis.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricBars {
    /// Metric and statistic, e.g. `TTFT p95`.
    pub label: String,
    /// Unit for the axis, e.g. `ms`, `tok/s` (empty for none).
    pub unit: String,
    /// Which direction is an improvement (from [`velollm_core::aggregate::registry`]); shown under the panel title.
    pub better: Better,
    /// The baseline's value.
    pub baseline: f64,
    /// The baseline value's confidence interval `(low, high)`, when known.
    pub baseline_ci: Option<(f64, f64)>,
    /// One entry per candidate, same order as [`BeforeAfter::candidates`]; `None` where a candidate lacks the
    /// metric.
    pub candidates: Vec<Option<CandidateValue>>,
}

/// A candidate's value of one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateValue {
    /// The candidate's value.
    pub value: f64,
    /// Confidence interval `(low, high)` of the candidate's value, in the metric's unit. For an interval of the
    /// *difference* candidate − baseline, add the baseline value to both ends.
    pub ci: Option<(f64, f64)>,
}

/// Grouped bars for a before/after comparison: one panel per metric (so each keeps its unit), a baseline bar
/// and one bar per candidate with its confidence interval as an error bar, labelled with the value and the
/// change from the baseline.
pub fn before_after_bars(input: &BeforeAfter) -> String {
    let mut names = vec![input.baseline.clone()];
    names.extend(input.candidates.iter().cloned());
    let panels = input
        .metrics
        .iter()
        .map(|m| {
            let mut bars = vec![Some(Bar { value: m.baseline, ci: m.baseline_ci, labels: vec![svg::num(m.baseline)] })];
            for k in 0..input.candidates.len() {
                let c = m.candidates.get(k).copied().flatten();
                bars.push(c.map(|c| {
                    let mut labels = Vec::new();
                    if m.baseline != 0.0 && m.baseline.is_finite() {
                        let pct = (c.value - m.baseline) / m.baseline.abs() * 100.0;
                        labels.push(format!("{} ({pct:+.1}%)", svg::num(c.value)));
                        labels.push(format!("{pct:+.1}%"));
                    }
                    labels.push(svg::num(c.value));
                    Bar { value: c.value, ci: c.ci, labels }
                }));
            }
            BarPanel {
                title: m.label.clone(),
                subtitle: match m.better {
                    Better::Lower => "lower is better".into(),
                    Better::Higher => "higher is better".into(),
                    Better::Neither => String::new(),
                },
                y_label: if m.unit.is_empty() { m.label.clone() } else { format!("{} ({})", m.label, m.unit) },
                groups: vec![BarGroup { label: String::new(), bars }],
            }
        })
        .collect();
    svg::bar_panels(&BarPanels { title: input.title.clone(), notes: input.notes.clone(), series: names, panels })
}
