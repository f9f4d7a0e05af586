//! `velollm report`: result documents rendered as a terminal summary, Markdown, self-contained HTML with SVG
//! charts, CSV, and llm-d Benchmark Reports. Several result files overlay as targets in the charts.

use crate::documents::{file_name, read_result};
use crate::exit::InputError;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use velollm_core::document::result::RunResult;
use velollm_report::Target;

/// `velollm report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Result documents (JSON written by `velollm bench -o`); several are overlaid in the charts, one series per
    /// run.
    #[arg(required = true, value_name = "RESULT")]
    pub results: Vec<PathBuf>,
    /// Write a self-contained HTML report (inline charts, no network access needed to view it).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a Markdown report; its charts are written beside it as SVG files (`report.md` →
    /// `report-ttft-cdf.svg`, …).
    #[arg(long, value_name = "FILE")]
    pub md: Option<PathBuf>,
    /// Write per-step aggregates as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write one CSV row per successful measured request.
    #[arg(long, value_name = "FILE")]
    pub records_csv: Option<PathBuf>,
    /// Write the run as an llm-d Benchmark Report (JSON, schema 0.2), one per step: a one-step run to FILE, a
    /// longer one to FILE's name with the step's number (`report.json` → `report-0.json`, `report-1.json`, …).
    /// Takes one result document.
    #[arg(long = "llm-d", value_name = "FILE")]
    pub llm_d: Option<PathBuf>,
}

/// Run `velollm report`.
pub fn run(args: ReportArgs) -> Result<u8> {
    let runs: Vec<RunResult> = args.results.iter().map(|p| read_result(p)).collect::<Result<_, InputError>>()?;
    let names: Vec<String> = args.results.iter().map(|p| file_name(p)).collect();
    let pairs: Vec<(&RunResult, &str)> = runs.iter().zip(&names).map(|(r, n)| (r, n.as_str())).collect();
    let labels = velollm_report::target::labels(&pairs);
    let targets: Vec<Target<'_>> = runs.iter().zip(&labels).map(|(run, label)| Target { label, run }).collect();

    if args.llm_d.is_some() && runs.len() > 1 {
        return Err(InputError(anyhow::anyhow!(
            "--llm-d writes the reports of one run: give one result document ({} given)",
            runs.len()
        ))
        .into());
    }
    let writes_files = args.html.is_some()
        || args.md.is_some()
        || args.csv.is_some()
        || args.records_csv.is_some()
        || args.llm_d.is_some();
    if !writes_files {
        for (i, t) in targets.iter().enumerate() {
            if i > 0 {
                println!();
            }
            if targets.len() > 1 {
                println!("── {} ({})", t.label, args.results[i].display());
            }
            print!("{}", velollm_report::render_run(t.run));
        }
        return Ok(crate::exit::OK);
    }
    if let Some(path) = &args.html {
        write(path, &velollm_report::render_html(&targets))?;
    }
    if let Some(path) = &args.md {
        let stem = path.file_stem().map_or("report".into(), |s| s.to_string_lossy().into_owned());
        let report = velollm_report::render_markdown(&targets, &stem);
        write(path, &report.text)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for (name, svg) in &report.charts {
            let path = dir.join(name);
            std::fs::write(&path, svg)
                .with_context(|| format!("cannot write {} (check that its folder is writable)", path.display()))?;
        }
        if !report.charts.is_empty() {
            eprintln!("velollm: {} charts written beside {}", report.charts.len(), path.display());
        }
    }
    if let Some(path) = &args.csv {
        write(path, &velollm_report::csv::steps_csv(&targets))?;
    }
    if let Some(path) = &args.records_csv {
        write(path, &velollm_report::csv::records_csv(&targets))?;
    }
    if let Some(path) = &args.llm_d {
        write_llm_d(path, &runs[0])?;
    }
    Ok(crate::exit::OK)
}

/// One llm-d Benchmark Report per step of `run`.
fn write_llm_d(path: &Path, run: &RunResult) -> Result<()> {
    if run.steps.is_empty() {
        return Err(InputError(anyhow::anyhow!("--llm-d: the result has no step to report")).into());
    }
    for stage in 0..run.steps.len() {
        let Some(report) = velollm_report::llmd::report(run, stage) else { continue };
        let path = if run.steps.len() == 1 { path.to_path_buf() } else { numbered(path, stage) };
        write(&path, &(serde_json::to_string_pretty(&report)? + "\n"))?;
    }
    Ok(())
}

/// `report.json` → `report-2.json`.
fn numbered(path: &Path, stage: usize) -> PathBuf {
    let stem = path.file_stem().map_or("report".into(), |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{stage}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{stage}"),
    };
    path.with_file_name(name)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .with_context(|| format!("cannot write {} (check that its folder exists and is writable)", path.display()))?;
    eprintln!("velollm: wrote {}", path.display());
    Ok(())
}
