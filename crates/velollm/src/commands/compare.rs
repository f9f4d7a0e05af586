//! `velollm compare`: runs compared per step and metric with confidence intervals and significance; gates
//! and success criteria for CI.

use crate::args::{GateArgs, JsonArg};
use crate::decide::{decide, gates, json, verdict_code};
use crate::documents::{file_name as label, read_result};
use crate::exit::InputError;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use velollm_core::document::compare::CompareOptions;
use velollm_core::document::result::RunResult;

/// `velollm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result documents: the baseline first, then one or more candidates.
    #[arg(required = true, num_args = 2..)]
    pub results: Vec<PathBuf>,
    /// Gates and success criteria.
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
    /// The comparison as JSON (gates, criteria and failures included).
    #[command(flatten)]
    pub json: JsonArg,
    /// Write the comparison as a Markdown report; its charts are written beside it as SVG files.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub md: Option<PathBuf>,
    /// Write the comparison as a self-contained HTML report with before/after charts.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub html: Option<PathBuf>,
}

/// Run `velollm compare`.
pub fn run(args: CompareArgs) -> Result<u8> {
    let gates = gates(&args.gates)?;
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        return Err(InputError(anyhow::anyhow!("--alpha must be between 0 and 1 (e.g. 0.05)")).into());
    }
    if args.resamples < 100 {
        return Err(InputError(anyhow::anyhow!("--resamples must be at least 100 (default 2000)")).into());
    }
    for m in &args.metrics {
        if velollm_core::aggregate::registry::metric(m).is_none() {
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
    let print = !args.json.on_stdout();
    let d = decide((&label(&args.results[0]), &baseline), &candidates, &gates, &args.gates, &options, print);
    args.json.write(&json(&d))?;
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

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("velollm: wrote {}", path.display());
    Ok(())
}
