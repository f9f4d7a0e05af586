//! `velollm history`: every run indexed in an embedded SQLite database; list, filter, trends, ROI, rebuild.
//! Also `record`, which indexes each finished `velollm bench` run.

mod render;

use crate::args::JsonArg;
use crate::exit::InputError;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use velollm_core::document::result::RunStatus;
use velollm_history::{Filter, History, HistoryError, MetricSpec, Prices, parse_since, path_or_default};

const EXAMPLES: &str = "Examples:
  velollm history                                    every run stored, newest first
  velollm history --model llama3.2:3b --since 30d    filtered
  velollm history --trend ttft.p95 --since 30d       a metric over time, with ROI
  velollm history --trend e2e.p50 --price-in 0.15 --price-out 0.60
                                                     ROI with token prices (USD per million)
  velollm history --rebuild runs/                    index every result file under runs/
See docs/history.md.";

/// `velollm history`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct HistoryArgs {
    /// The history database [default: velollm/history.db under the user's data directory].
    #[arg(long, env = "VELOLLM_DB")]
    pub db: Option<PathBuf>,
    /// Only runs whose target URL contains this text (any case).
    #[arg(long, help_heading = "Filters")]
    pub target: Option<String>,
    /// Only runs of this model.
    #[arg(long, help_heading = "Filters")]
    pub model: Option<String>,
    /// Only runs of this scenario (name or file, as recorded).
    #[arg(long, help_heading = "Filters")]
    pub scenario: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_enum, help_heading = "Filters")]
    pub status: Option<StatusArg>,
    /// Only runs started since: a duration back from now (30d, 2w, 12h) or a date (2026-01-31, UTC).
    #[arg(long, value_name = "30d|DATE", help_heading = "Filters")]
    pub since: Option<String>,
    /// At most N runs, the newest [default: 20 for the list; every run for --trend].
    #[arg(long, value_name = "N", help_heading = "Filters")]
    pub limit: Option<usize>,
    /// A metric over time instead of the list: ttft.p95, e2e.p50, tpot.mean, success_rate, output_throughput, …
    #[arg(long, value_name = "METRIC[.STAT]", help_heading = "Trend")]
    pub trend: Option<String>,
    /// Only this step of each run (default: every step, one series each).
    #[arg(long, value_name = "NAME", requires = "trend", help_heading = "Trend")]
    pub step: Option<String>,
    /// Price of prompt tokens in US dollars per million, to compute ROI from the measured tokens.
    #[arg(long, value_name = "USD_PER_MTOK", requires_all = ["trend", "price_out"], help_heading = "Trend")]
    pub price_in: Option<f64>,
    /// Price of output tokens in US dollars per million, to compute ROI from the measured tokens.
    #[arg(long, value_name = "USD_PER_MTOK", requires_all = ["trend", "price_in"], help_heading = "Trend")]
    pub price_out: Option<f64>,
    /// Also write the trend as a self-contained HTML report.
    #[arg(long, value_name = "PATH", requires = "trend", help_heading = "Trend")]
    pub html: Option<PathBuf>,
    /// Also write the trend as a Markdown report (its chart as an SVG file beside it).
    #[arg(long, value_name = "PATH", requires = "trend", help_heading = "Trend")]
    pub md: Option<PathBuf>,
    /// First index every velollm result (*.json) under DIR, recursively; other files are skipped.
    #[arg(long, value_name = "DIR")]
    pub rebuild: Option<PathBuf>,
    /// The runs (or the trend) as JSON.
    #[command(flatten)]
    pub json: JsonArg,
}

/// A run status on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Every step ran to its end.
    Complete,
    /// Killed, or not every step ran.
    Partial,
    /// Stopped by Ctrl-C or an error.
    Interrupted,
}

impl From<StatusArg> for RunStatus {
    fn from(s: StatusArg) -> RunStatus {
        match s {
            StatusArg::Complete => RunStatus::Complete,
            StatusArg::Partial => RunStatus::Partial,
            StatusArg::Interrupted => RunStatus::Interrupted,
        }
    }
}

/// What to say when there is nothing to show.
const EMPTY: &str = "no runs indexed yet: run `velollm bench … -o result.json`, or `velollm history --rebuild DIR`";

/// A history error as the exit code wants it: the user's to fix (exit 2) or not (exit 1).
fn classify(e: HistoryError) -> anyhow::Error {
    if e.is_input() { InputError(e.into()).into() } else { e.into() }
}

/// Run `velollm history`.
pub fn run(args: HistoryArgs) -> Result<u8> {
    // Check everything typed before touching the database.
    let path = path_or_default(args.db.as_deref()).map_err(classify)?;
    let since = args.since.as_deref().map(|s| parse_since(s, jiff::Timestamp::now())).transpose().map_err(classify)?;
    let metric = args.trend.as_deref().map(MetricSpec::parse).transpose().map_err(classify)?;
    let prices = match (args.price_in, args.price_out) {
        (Some(i), Some(o)) => Some(Prices::new(i, o).map_err(classify)?),
        _ => None,
    };
    let filter = Filter {
        target: args.target.clone(),
        model: args.model.clone(),
        scenario: args.scenario.clone(),
        status: args.status.map(RunStatus::from),
        since,
        limit: match (args.limit, &metric) {
            (Some(0), _) => return Err(InputError(anyhow::anyhow!("--limit must be at least 1")).into()),
            (Some(n), _) => Some(n),
            (None, None) => Some(20),
            (None, Some(_)) => None,
        },
    };

    if let Some(dir) = args.rebuild.as_deref().filter(|d| !d.is_dir()) {
        let msg = format!("--rebuild {}: not a folder; pass the folder that holds the result files", dir.display());
        return Err(InputError(anyhow::anyhow!(msg)).into());
    }

    let history = match &args.rebuild {
        Some(dir) => {
            let mut history = History::open(&path).map_err(classify)?;
            let report = history.rebuild(dir).map_err(classify)?;
            eprint!("{}", render::rebuild_summary(&report, dir, &path));
            history
        }
        // Listing creates nothing: say how to fill the database instead.
        None if !path.exists() => return nothing(&args, &path, EMPTY),
        None => History::open(&path).map_err(classify)?,
    };
    if history.is_empty().map_err(classify)? {
        return nothing(&args, &path, EMPTY);
    }
    match metric {
        None => list(&history, &filter, &args),
        Some(metric) => trend(&history, &metric, &filter, &args, prices.as_ref()),
    }
}

/// Report an empty answer: the message on the terminal, or an empty JSON answer with the message on stderr.
fn nothing(args: &HistoryArgs, path: &Path, message: &str) -> Result<u8> {
    if args.json.on_stdout() {
        eprintln!("velollm: {message}");
    } else {
        println!("{message}");
    }
    let key = if args.trend.is_some() { "points" } else { "runs" };
    args.json.write(&serde_json::json!({ "database": path, key: [] }))?;
    Ok(0)
}

/// `velollm history` without `--trend`.
fn list(history: &History, filter: &Filter, args: &HistoryArgs) -> Result<u8> {
    let runs = history.list(filter).map_err(classify)?;
    if runs.is_empty() {
        let total = history.len().map_err(classify)?;
        return nothing(args, history.path(), &format!("no run matches these filters ({total} runs indexed)"));
    }
    args.json.write(&serde_json::json!({ "database": history.path(), "runs": runs }))?;
    if !args.json.on_stdout() {
        print!("{}", render::runs_table(&runs));
        let total = history.len().map_err(classify)?;
        if (runs.len() as u64) < total {
            eprintln!("velollm: {} of {total} runs shown (--limit N to see more, filters to narrow)", runs.len());
        }
    }
    Ok(0)
}

/// `velollm history --trend METRIC`.
fn trend(
    history: &History,
    metric: &MetricSpec,
    filter: &Filter,
    args: &HistoryArgs,
    prices: Option<&Prices>,
) -> Result<u8> {
    let trend = history.trend(metric, args.step.as_deref(), filter).map_err(classify)?;
    if trend.points.is_empty() {
        let step = args.step.as_deref().map(|s| format!(" in step '{s}'")).unwrap_or_default();
        let msg = format!("no run matching these filters has {}{step}", metric.name());
        return nothing(args, history.path(), &msg);
    }
    let report = render::TrendReport::new(&trend, prices, filter);
    let mut doc = report.json();
    doc["database"] = serde_json::json!(history.path());
    args.json.write(&doc)?;
    if !args.json.on_stdout() {
        print!("{}", report.terminal());
    }
    if let Some(p) = &args.html {
        write(p, &report.html())?;
        eprintln!("velollm: trend report written to {}", p.display());
    }
    if let Some(p) = &args.md {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "trend".into());
        let md = report.markdown(&stem);
        write(p, &md.text)?;
        // The chart files the text links to, beside it: `{stem}-trend.svg`.
        for (name, svg) in &md.charts {
            write(&p.with_file_name(name), svg)?;
        }
        let names: Vec<&str> = md.charts.iter().map(|(name, _)| name.as_str()).collect();
        eprintln!("velollm: trend report written to {} (chart: {})", p.display(), names.join(", "));
    }
    Ok(0)
}

/// Write a report file.
fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
