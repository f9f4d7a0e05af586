//! `velollm compare`: runs compared per step and metric with confidence intervals and significance; gates
//! and success criteria for CI.

use crate::plan::InputError;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use velollm_core::compare::{Change, CompareOptions, Comparison, compare};
use velollm_core::criteria::{CriterionOutcome, Outcome};
use velollm_core::gate::{Gate, GateOutcome};
use velollm_core::result::RunResult;

/// `velollm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result documents: the baseline first, then one or more candidates.
    #[arg(required = true, num_args = 2..)]
    pub results: Vec<PathBuf>,
    #[command(flatten)]
    pub gates: GateArgs,
    /// Significance level of each test.
    #[arg(long, default_value_t = 0.05, help_heading = "Statistics")]
    pub alpha: f64,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 2000, help_heading = "Statistics")]
    pub resamples: usize,
    /// Seed of the bootstrap (same seed, same intervals).
    #[arg(long, default_value_t = 0x5EED, help_heading = "Statistics")]
    pub seed: u64,
    /// Compare only these per-request metrics (ttft, e2e, tpot, decode, tok_s, network, queue, …); repeatable.
    #[arg(long = "metric", value_name = "NAME", help_heading = "Statistics")]
    pub metrics: Vec<String>,
    /// Write the comparison as JSON (`-` for standard output).
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub json: Option<PathBuf>,
    /// Write the comparison as a Markdown report; its charts are written beside it as SVG files.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub md: Option<PathBuf>,
    /// Write the comparison as a self-contained HTML report with before/after charts.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub html: Option<PathBuf>,
}

/// Gates and criteria, shared by `velollm compare` and `velollm bench --compare-to`.
#[derive(Debug, Clone, Args, Default)]
pub struct GateArgs {
    /// Fail (exit 3) when this holds for a candidate, e.g. 'ttft.p95 > +10%' (relative to the baseline),
    /// 'e2e.p50 > +50ms' (absolute change), 'success_rate < 0.99' (the candidate's value); repeatable.
    #[arg(long = "fail-if", value_name = "EXPR", help_heading = "Gates")]
    pub fail_if: Vec<String>,
    /// Fail (exit 3) when any compared metric significantly regressed.
    #[arg(long, help_heading = "Gates")]
    pub fail_on_regression: bool,
    /// Evaluate the source documents' success criteria: prompt-caching, small-models, speculative,
    /// semantic-cache, persistent-connections (exit 3 when one is missed); repeatable.
    #[arg(long, value_name = "PRESET", help_heading = "Gates")]
    pub criteria: Vec<String>,
}

impl GateArgs {
    /// Parse the gate expressions, checking presets, before anything runs.
    pub fn parse(&self) -> Result<Vec<Gate>, InputError> {
        for c in &self.criteria {
            if !velollm_core::criteria::PRESETS.iter().any(|(n, _)| n == c) {
                return Err(InputError(velollm_core::criteria::UnknownPreset(c.clone()).into()));
            }
        }
        self.fail_if.iter().map(|g| g.parse::<Gate>().map_err(|e| InputError(e.into()))).collect()
    }
}

use crate::report::file_name as label;
pub use crate::report::read_result;

/// What a comparison decided.
pub struct Decision {
    /// The comparisons, one per candidate.
    pub comparisons: Vec<Comparison>,
    /// Gate outcomes of every candidate.
    pub gates: Vec<GateOutcome>,
    /// Criteria outcomes of every candidate.
    pub criteria: Vec<CriterionOutcome>,
    /// Why the comparison fails, when it does.
    pub failures: Vec<String>,
}

/// Compare each candidate with the baseline, print the tables, evaluate gates and criteria.
pub fn decide(
    baseline: (&str, &RunResult),
    candidates: &[(String, RunResult)],
    gates: &[Gate],
    args: &GateArgs,
    options: &CompareOptions,
) -> Decision {
    let mut d = Decision { comparisons: Vec::new(), gates: Vec::new(), criteria: Vec::new(), failures: Vec::new() };
    for (name, cand) in candidates {
        let c = compare(baseline.1, cand, (baseline.0, name), options);
        println!("{}", velollm_report::comparison::render_comparison(&c));
        let pairs = velollm_core::compare::match_steps(baseline.1, cand).0;
        let mut outcomes = Vec::new();
        for g in gates {
            for (a, b) in &pairs {
                outcomes.push(g.evaluate(&b.name, a, b));
            }
        }
        if !outcomes.is_empty() {
            println!("{}", velollm_report::comparison::render_gates(&outcomes));
        }
        for o in outcomes.iter().filter(|o| o.failed) {
            d.failures.push(format!("{name}: gate '{}' failed on step {}", o.gate, o.step));
        }
        let mut crit = Vec::new();
        for preset in &args.criteria {
            // Presets were checked by `GateArgs::parse`.
            crit.extend(velollm_core::criteria::evaluate(preset, baseline.1, cand, options.alpha).unwrap_or_default());
        }
        if !crit.is_empty() {
            println!("{}", velollm_report::comparison::render_criteria(&crit));
        }
        for o in crit.iter().filter(|o| o.outcome == Outcome::Fail) {
            d.failures.push(format!("{name}: criterion '{}' ({}) missed", o.criterion, o.preset));
        }
        if args.fail_on_regression {
            for (step, r) in c.rows_with(Change::Regressed) {
                d.failures.push(format!("{name}: {} {} regressed on step {step}", r.metric, r.stat));
            }
        }
        d.gates.extend(outcomes);
        d.criteria.extend(crit);
        d.comparisons.push(c);
    }
    d
}

/// Run `velollm compare`.
pub fn run(args: CompareArgs) -> Result<u8> {
    let gates = args.gates.parse()?;
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        return Err(InputError(anyhow::anyhow!("--alpha must be between 0 and 1 (e.g. 0.05)")).into());
    }
    if args.resamples < 100 {
        return Err(InputError(anyhow::anyhow!("--resamples must be at least 100 (default 2000)")).into());
    }
    for m in &args.metrics {
        if velollm_core::names::metric(m).is_none() {
            return Err(InputError(anyhow::anyhow!(
                "unknown metric '{m}': use ttft, e2e, tpot, itl, decode, tok_s, network, queue, server_prefill, …"
            ))
            .into());
        }
    }
    let baseline = read_result(&args.results[0])?;
    let candidates: Vec<(String, RunResult)> =
        args.results[1..].iter().map(|p| Ok((label(p), read_result(p)?))).collect::<Result<_, InputError>>()?;
    let runs =
        std::iter::once((label(&args.results[0]), &baseline)).chain(candidates.iter().map(|(l, r)| (l.clone(), r)));
    for (name, run) in runs {
        if let Some(t) = run.trust.as_ref().filter(|t| !t.trustworthy) {
            let steps: Vec<&str> = t.steps.iter().filter(|s| !s.trustworthy).map(|s| s.step.as_str()).collect();
            eprintln!(
                "velollm: warning: {name}: the client's own overhead is not negligible in {} (its self-check \
                 flagged the run): a difference there may be the client's, not the server's",
                steps.join(", ")
            );
        }
    }
    // Results from before kernel arrival stamps were stamped at the read.
    let stamps = |r: &RunResult| r.meta.chunk_stamps.clone().unwrap_or_else(|| "read".into());
    for (name, run) in &candidates {
        if stamps(run) != stamps(&baseline) {
            eprintln!(
                "velollm: warning: {name} stamped chunk arrivals by '{}', the baseline by '{}': under load, \
                 stamping at the read adds the client's delays to TTFT and ITL, so part of a difference there may \
                 be the client's",
                stamps(run),
                stamps(&baseline)
            );
        }
    }
    let options = CompareOptions {
        alpha: args.alpha,
        resamples: args.resamples,
        seed: args.seed,
        metrics: args.metrics.clone(),
        ..CompareOptions::default()
    };
    let d = decide((&label(&args.results[0]), &baseline), &candidates, &gates, &args.gates, &options);
    if let Some(path) = &args.json {
        write_json(path, &d)?;
    }
    let report = velollm_report::compare_report::ComparisonReport {
        comparisons: &d.comparisons,
        gates: &d.gates,
        criteria: &d.criteria,
    };
    if let Some(path) = &args.html {
        write(path, &velollm_report::compare_report::render_comparison_html(&report))?;
    }
    if let Some(path) = &args.md {
        let stem = path.file_stem().map_or("comparison".into(), |s| s.to_string_lossy().into_owned());
        let md = velollm_report::compare_report::render_comparison_markdown(&report, &stem);
        write(path, &md.text)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for (name, svg) in &md.charts {
            write(&dir.join(name), svg)?;
        }
    }
    Ok(verdict_code(&d))
}

/// Write the comparisons, gates and criteria as one JSON document.
pub fn write_json(path: &Path, d: &Decision) -> Result<()> {
    let doc = serde_json::json!({
        "comparisons": d.comparisons,
        "gates": d.gates,
        "criteria": d.criteria,
        "failed": !d.failures.is_empty(),
        "failures": d.failures,
    });
    let text = serde_json::to_string_pretty(&doc)?;
    if path == Path::new("-") {
        println!("{text}");
    } else {
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("velollm: wrote {}", path.display());
    Ok(())
}

/// Exit code of a decision, with the failures printed.
pub fn verdict_code(d: &Decision) -> u8 {
    if d.failures.is_empty() {
        return crate::exit::OK;
    }
    for f in &d.failures {
        eprintln!("velollm: {f}");
    }
    crate::exit::THRESHOLD
}
