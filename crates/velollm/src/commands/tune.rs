//! `velollm tune`: every configuration of a grid launched, benchmarked on the same workload and seed, and
//! stopped; one trade-off table; the best configuration by the objective, with its margin.
//!
//! Each configuration's full result and server log are kept in the output directory (`SLUG.json`,
//! `SLUG.server.log`), with the summary in `tune.json`, `tune.md` and `tune.html`. A configuration whose
//! complete result is already there (same command) is not measured again, so an interrupted tune resumes.

use crate::args::BenchArgs;
use crate::documents::read_result;
use crate::exit::InputError;
use crate::{execute, exit, server};
use anyhow::{Result, anyhow};
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::document::tune::{Grid, Objective, TuneRow, TuneSummary, summarise};

/// `velollm tune`: the bench options (the workload, the load, --launch) plus the grid.
#[derive(Debug, Args)]
#[command(mut_arg("output", |a| a.help("Directory for every configuration's result and log, and the tune summary [default: tune]").value_name("DIR")))]
pub struct TuneArgs {
    /// The workload, the load and the server to launch, as for `velollm bench` (--launch is required).
    #[command(flatten)]
    pub bench: BenchArgs,
    /// A placeholder of --launch and its values (repeatable; every combination runs): --grid n_ctx=1024,2048;
    /// an empty value drops a flag: --grid cache=,--no-cache-prompt.
    #[arg(long, value_name = "KEY=V1,V2,…", required = true, help_heading = "Tune")]
    pub grid: Vec<String>,
    /// What to optimise: a per-request metric and percentile over all of a configuration's requests.
    #[arg(long, default_value = "ttft.p95", help_heading = "Tune")]
    pub objective: String,
    /// Measure every configuration again, even those with a complete result in the directory.
    #[arg(long, help_heading = "Tune")]
    pub rerun: bool,
}

/// Run `velollm tune`.
pub async fn run(args: TuneArgs) -> Result<u8> {
    let input = |m: String| InputError(anyhow!(m));
    let b = &args.bench;
    let Some(template) = b.server.launch.clone() else {
        return Err(
            input("tune launches the server itself: give --launch 'CMD … --port {port} … {key} …'".into()).into()
        );
    };
    if b.sweep.sweep.is_some() || b.output.compare_to.is_some() || b.output.records.is_some() {
        return Err(input("tune runs plain benchmarks: drop --sweep, --compare-to and --records".into()).into());
    }
    if b.output.resume {
        return Err(input(
            "tune resumes on its own: every configuration with a complete result in the directory is kept \
             (--rerun measures them again); drop --resume"
                .into(),
        )
        .into());
    }
    let grid = Grid::parse(&args.grid).map_err(input)?;
    let objective = Objective::parse(&args.objective).map_err(input)?;
    let base = server::params(&b.server.param)?;
    if let Some((k, _)) = grid.axes.iter().find(|(k, _)| base.contains_key(k)) {
        return Err(input(format!("{k} is both a --grid key and a --param: keep one")).into());
    }
    let configs: Vec<BTreeMap<String, String>> = grid
        .configurations()
        .into_iter()
        .map(|c| base.iter().map(|(k, v)| (k.clone(), v.clone())).chain(c).collect())
        .collect();
    // Every configuration's command must be complete before the first one runs.
    for c in &configs {
        velollm_engine::launch::render(&template, c, 0).map_err(|e| input(format!("--launch: {e}")))?;
    }
    crate::plan::bench(b)?; // the workload and load options, checked once
    let dir = b.output.output.clone().unwrap_or_else(|| PathBuf::from("tune"));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow!("cannot create the tune directory '{}': {e}", dir.display()))?;
    let slugs = unique_slugs(&grid, &configs);

    let mut rows = Vec::new();
    let mut runs: Vec<Option<RunResult>> = Vec::new();
    let mut interrupted = false;
    for (i, (config, slug)) in configs.iter().zip(&slugs).enumerate() {
        let label = grid.label(config);
        let result = dir.join(format!("{slug}.json"));
        let name = result.display().to_string();
        if !args.rerun
            && let Some(done) = measured(&result, &template, config)
        {
            eprintln!("velollm tune: [{}/{}] {label}: already measured in {name}", i + 1, configs.len());
            rows.push(TuneRow::of(label, config.clone(), name, &done, &objective));
            runs.push(Some(done));
            continue;
        }
        if interrupted {
            rows.push(TuneRow::failed(label, config.clone(), name, "not run (interrupted)".into()));
            runs.push(None);
            continue;
        }
        eprintln!("\nvelollm tune: [{}/{}] {label}", i + 1, configs.len());
        let mut one = b.clone();
        one.output.output = Some(result.clone());
        one.server.param = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
        one.server.server_log = Some(dir.join(format!("{slug}.server.log")));
        let outcome = async {
            let plan = crate::plan::bench(&one)?;
            let watch = server::watch_options(&one.server, one.output.output.as_deref())?;
            execute::run(plan, None, watch).await
        }
        .await;
        match (outcome, read_result(&result)) {
            (Ok(code), Ok(run)) => {
                interrupted = code == exit::INTERRUPTED;
                rows.push(TuneRow::of(label, config.clone(), name, &run, &objective));
                runs.push(Some(run));
            }
            (Ok(code), Err(e)) => {
                interrupted = code == exit::INTERRUPTED;
                rows.push(TuneRow::failed(label, config.clone(), name, format!("{e:#}")));
                runs.push(None);
            }
            (Err(e), _) => {
                eprintln!("velollm tune: {label}: {e:#}");
                rows.push(TuneRow::failed(label, config.clone(), name, format!("{e:#}")));
                runs.push(None);
            }
        }
    }

    let refs: Vec<Option<&RunResult>> = runs.iter().map(Option::as_ref).collect();
    let summary = summarise(&template, &objective, rows, &refs, 0.95, 2000, b.workload.seed);
    write_summary(&dir, &summary)?;
    println!("\n{}", velollm_report::tune::render_tune(&summary));
    if let Some(best) = summary.best.and_then(|i| summary.rows.get(i)) {
        let command = velollm_engine::launch::render(&template, &best.params, 0).unwrap_or_default();
        println!("best command: {}", command.replace("--port 0", "--port PORT"));
    }
    eprintln!("velollm tune: every result in {}; summary in {}", dir.display(), dir.join("tune.md").display());
    Ok(if interrupted {
        exit::INTERRUPTED
    } else if summary.best.is_none() {
        exit::ERROR
    } else {
        exit::OK
    })
}

/// One file-name slug per configuration, numbered when two would collide.
fn unique_slugs(grid: &Grid, configs: &[BTreeMap<String, String>]) -> Vec<String> {
    let slugs: Vec<String> = configs.iter().map(|c| grid.slug(c)).collect();
    let mut seen = std::collections::HashSet::new();
    let clash = !slugs.iter().all(|s| seen.insert(s.clone()));
    slugs.into_iter().enumerate().map(|(i, s)| if clash { format!("{:02}-{s}", i + 1) } else { s }).collect()
}

/// A complete earlier result of this configuration (the same command, whatever port it had).
fn measured(path: &Path, template: &str, config: &BTreeMap<String, String>) -> Option<RunResult> {
    let run = read_result(path).ok()?;
    let launch = run.server.as_ref()?.launch.as_ref()?;
    let same = launch.template == template
        && velollm_engine::launch::render(template, config, launch.port).ok()? == launch.command;
    (same && run.status == RunStatus::Complete).then_some(run)
}

fn write_summary(dir: &Path, summary: &TuneSummary) -> Result<()> {
    let write = |name: &str, bytes: &[u8]| -> Result<()> {
        let path = dir.join(name);
        velollm_engine::output::write_atomic(&path, bytes).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))
    };
    write("tune.json", &serde_json::to_vec_pretty(summary)?)?;
    let blocks = velollm_report::tune::tune_blocks(summary);
    write("tune.md", velollm_report::markdown::render_blocks(&blocks, Vec::new(), "tune").text.as_bytes())?;
    write("tune.html", velollm_report::html::page(&blocks, &[], "velollm tune").as_bytes())?;
    Ok(())
}
