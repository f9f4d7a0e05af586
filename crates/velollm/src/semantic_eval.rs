//! `velollm bench --scenario semantic-cache`: the labelled evaluation of a semantic cache in front of any
//! endpoint. The seeds go first (they fill the cache), one seed is repeated (an endpoint with no cache at all
//! shows here), then every probe, sent with `Cache-Control: no-store` so that probes never fill the cache and
//! each is judged against the seeds alone. A probe's verdict is read from the cache's response header (or
//! `--hit-header`); which seed answered is read from velollm proxy's `entry` ids, else from the answer's text.
//! The figures are computed in `velollm_core::analysis::semantic_eval`.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use velollm_core::analysis::semantic_eval::{BUILTIN_LABELS, Labels, Note, Observation, SemanticReport, evaluate};
use velollm_core::measure::metrics::RequestMetrics;
use velollm_engine::bench::Session;
use velollm_report::document::Table;

use crate::args::BenchArgs;
use crate::exit::{self, InputError, input};

/// The scenario name that runs this evaluation.
pub const SCENARIO: &str = "semantic-cache";

/// The system prompt of every question: the same for all, so that they share one context.
const SYSTEM: &str = "Answer in one short sentence.";

/// Runs the evaluation; exit code 3 with `--check` when a criterion fails.
pub async fn run(args: &BenchArgs) -> Result<u8> {
    let labels = labels(args)?;
    let e = &args.semantic_eval;
    let target = e.false_hit_target.unwrap_or(2.0);
    if !(0.0..=100.0).contains(&target) {
        return Err(input(format!("--false-hit-target {target}: give a percentage between 0 and 100")).into());
    }
    let mut options = crate::plan::options(args)?;
    options.keep_text = true;
    options.cache_header = e.hit_header.clone();
    let max_tokens = args.workload.max_tokens.unwrap_or(16);
    let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let seeds = Session::connect(&options).await?;
    options.headers.push(("cache-control".into(), "no-store".into()));
    let probes = Session::connect(&options).await?;
    eprintln!(
        "semantic cache evaluation: {} seeds, then {} probes (Cache-Control: no-store), against {} (model {})",
        labels.seeds.len(),
        labels.probes.len(),
        options.url,
        seeds.model
    );

    // Seeds: each one's entry id (velollm proxy's `key`) and answer text identify it when a probe is served.
    let mut by_entry: HashMap<String, usize> = HashMap::new();
    let mut by_text: HashMap<String, Vec<usize>> = HashMap::new();
    let mut seed_ttft = Vec::new();
    for (i, seed) in labels.seeds.iter().enumerate() {
        let r = seeds.ask(Some(SYSTEM), &seed.text, max_tokens, &cancel).await;
        if let Some(err) = &r.error {
            return Err(anyhow!("seed {:?} (line {}) failed: {}", seed.text, seed.line, err.message));
        }
        let note = Note::parse(r.proxy_cache.as_deref().unwrap_or(""));
        if let Some(key) = note.key {
            by_entry.insert(key, i);
        }
        by_text.entry(r.text.clone().unwrap_or_default()).or_default().push(i);
        if !note.hit {
            seed_ttft.extend(RequestMetrics::of(&r).ttft_ms);
        }
    }
    let repeat = seeds.ask(Some(SYSTEM), &labels.seeds[0].text, max_tokens, &cancel).await;
    let exact_repeat_hit = Note::parse(repeat.proxy_cache.as_deref().unwrap_or("")).hit;

    let mut observations = Vec::with_capacity(labels.probes.len());
    for probe in &labels.probes {
        let r = probes.ask(Some(SYSTEM), &probe.text, max_tokens, &cancel).await;
        let note = Note::parse(r.proxy_cache.as_deref().unwrap_or(""));
        let nearest = note.entry.as_ref().and_then(|e| by_entry.get(e).copied());
        let by_answer = || match by_text.get(r.text.as_deref().unwrap_or("")) {
            Some(seeds) if seeds.len() == 1 => Some(seeds[0]),
            _ => None,
        };
        let served = if note.hit { nearest.or_else(by_answer) } else { None };
        observations.push(Observation {
            ttft_ms: RequestMetrics::of(&r).ttft_ms,
            failed: r.error.is_some(),
            note,
            served,
            nearest,
        });
    }
    let report = evaluate(&labels, &observations, &seed_ttft, exact_repeat_hit, target / 100.0);
    print!("{}", render(&report));
    if let Some(path) = &args.output.output {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
        if let Some(svg) = chart(&report) {
            let chart_path = path.with_extension("svg");
            std::fs::write(&chart_path, svg).with_context(|| format!("cannot write {}", chart_path.display()))?;
            eprintln!("threshold sweep chart written to {}", chart_path.display());
        }
    }
    let failed = report.criteria.iter().any(|c| c.pass == Some(false));
    Ok(if failed && args.output.check { exit::THRESHOLD } else { exit::OK })
}

/// The labels: `--labels FILE` or the shipped ones.
fn labels(args: &BenchArgs) -> Result<Labels, InputError> {
    match &args.semantic_eval.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| input(format!("--labels {}: cannot read it: {e}", path.display())))?;
            Labels::parse(&path.display().to_string(), &text).map_err(|e| input(e.to_string()))
        }
        None => Ok(Labels::parse("built-in semantic-cache labels", BUILTIN_LABELS).expect("the shipped labels parse")),
    }
}

/// The threshold sweep as a chart: hit rate and false-hit rate against the threshold, the operating point
/// marked; `None` without a sweep.
pub fn chart(r: &SemanticReport) -> Option<String> {
    use velollm_report::svg::{Axis, Style, XyChart, XySeries, xy_chart};
    if r.sweep.is_empty() {
        return None;
    }
    let series =
        |name: &str, colour: usize, f: &dyn Fn(&velollm_core::analysis::semantic_eval::Point) -> f64| XySeries {
            name: name.to_owned(),
            colour,
            style: Style::LineMarkers,
            points: r.sweep.iter().map(|p| (p.threshold.unwrap_or(0.0), f(p) * 100.0)).collect(),
            legend: true,
        };
    let mut all = vec![
        series("hit rate (% of probes)", 0, &|p| p.hit_rate),
        series("false-hit rate (% of hits)", 1, &|p| p.false_hit_rate),
        series("recall (% of paraphrases)", 2, &|p| p.recall),
    ];
    let mut notes = vec![format!(
        "{} seeds, {} probes; the endpoint's scores and guard replayed at every threshold",
        r.seeds, r.probes
    )];
    if let Some(o) = &r.operating {
        notes.push(format!(
            "operating point for false hits ≤ {}: threshold {:.2}, hit rate {}",
            pct(r.target_false_hit_rate),
            o.threshold.unwrap_or(0.0),
            pct(o.hit_rate)
        ));
        all.push(XySeries {
            name: "operating point".into(),
            colour: 3,
            style: Style::Markers,
            points: vec![(o.threshold.unwrap_or(0.0), o.hit_rate * 100.0)],
            legend: true,
        });
    }
    Some(xy_chart(&XyChart {
        title: "Semantic cache: hits and false hits against the similarity threshold".into(),
        notes,
        x: Axis::new("similarity threshold (cosine)").range(0.5, 1.0),
        y: Axis::new("%").range(0.0, 100.0),
        series: all,
    }))
}

/// One line per criterion: `  PASS  name: value (goal …)`, the value with `decimals` decimals.
pub fn criteria_lines(criteria: &[velollm_core::analysis::semantic_eval::Criterion], decimals: usize) -> String {
    let mut out = String::new();
    for c in criteria {
        let mark = match c.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let value = c.value.map_or("not measured".to_owned(), |v| format!("{v:.decimals$}"));
        out.push_str(&format!("  {mark}  {}: {value} (goal {})\n", c.name, c.goal));
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The report for the terminal.
pub fn render(r: &SemanticReport) -> String {
    let mut out = String::new();
    let p = &r.at_endpoint;
    out.push_str(&format!(
        "\nAt the endpoint's own setting: hit rate {} ({} of {} probes), false-hit rate {} ({} of {} hits), \
         recall {}{}\n",
        pct(p.hit_rate),
        p.hits,
        r.probes - r.failed,
        pct(p.false_hit_rate),
        p.false_hits,
        p.hits,
        pct(p.recall),
        if r.failed > 0 { format!("; {} probes failed", r.failed) } else { String::new() }
    ));
    for f in &r.false_hits {
        let score = f.score.map_or(String::new(), |s| format!(" at {s:.3}"));
        let served = f.served.as_deref().map_or(String::new(), |s| format!(", given the answer to {s:?}"));
        out.push_str(&format!("  false hit ({}){score}: {:?}{served}\n", f.kind.name(), f.text));
    }
    let mut kinds = Table::new(&["kind", "probes", "hits", "false hits"], 1);
    for k in &r.by_kind {
        kinds.rows.push(vec![k.kind.name().into(), k.probes.to_string(), k.hits.to_string(), k.false_hits.to_string()]);
    }
    out.push_str(&kinds.terminal("  "));
    let ms = |s: &Option<velollm_core::stats::Summary>| {
        s.as_ref().map_or("not reported".to_owned(), |s| format!("p50 {:.2} ms, p99 {:.2} ms", s.p50, s.p99))
    };
    out.push_str(&format!(
        "Lookup: embedding {}; search {}; both {}\nTTFT: hits {}; misses (the seeds) {}\n",
        ms(&r.embed_ms),
        ms(&r.search_ms),
        ms(&r.lookup_ms),
        ms(&r.ttft_hit_ms),
        ms(&r.ttft_miss_ms)
    ));
    if !r.sweep.is_empty() {
        out.push_str("\nThreshold sweep (the endpoint's scores and guard, every probe):\n");
        let mut sweep = Table::new(&["threshold", "hit rate", "false-hit rate", "recall", "hits", "false hits"], 1);
        for s in r.sweep.iter().filter(|s| (s.threshold.unwrap_or(0.0) * 100.0).round() as i64 % 5 == 0) {
            sweep.rows.push(vec![
                format!("{:.2}", s.threshold.unwrap_or(0.0)),
                pct(s.hit_rate),
                pct(s.false_hit_rate),
                pct(s.recall),
                s.hits.to_string(),
                s.false_hits.to_string(),
            ]);
        }
        out.push_str(&sweep.terminal("  "));
        match &r.operating {
            Some(o) => out.push_str(&format!(
                "Operating point for false hits ≤ {}: threshold {:.2}, hit rate {}, false-hit rate {}, recall {}\n",
                pct(r.target_false_hit_rate),
                o.threshold.unwrap_or(0.0),
                pct(o.hit_rate),
                pct(o.false_hit_rate),
                pct(o.recall)
            )),
            None => out
                .push_str(&format!("No threshold keeps false hits ≤ {} with any hit.\n", pct(r.target_false_hit_rate))),
        }
    }
    if !r.learned.is_empty() {
        out.push_str(&format!(
            "\nThresholds learned per entry, replayed on the same scores (floor {:.2}; the labels verify):\n",
            r.learned[0].point.threshold.unwrap_or(0.0)
        ));
        let columns =
            ["δ", "hit rate", "false-hit rate", "recall", "hits", "false hits", "explored", "wrong ÷ candidates"];
        let mut table = Table::new(&columns, 1);
        for l in &r.learned {
            let p = &l.point;
            table.rows.push(vec![
                pct(l.delta),
                pct(p.hit_rate),
                pct(p.false_hit_rate),
                pct(p.recall),
                p.hits.to_string(),
                p.false_hits.to_string(),
                l.explored.to_string(),
                pct(p.false_hits as f64 / (p.hits + l.explored).max(1) as f64),
            ]);
        }
        out.push_str(&table.terminal("  "));
        out.push_str("  (δ bounds the wrong answers among candidates, served or explored, not among hits)\n");
    }
    out.push_str("\nCriteria:\n");
    out.push_str(&criteria_lines(&r.criteria, 2));
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
