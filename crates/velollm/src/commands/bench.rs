//! `velollm bench`: a scenario or prompts under a load profile, every request recorded; or a load sweep;
//! resumable; optionally compared with a baseline right after the run.

use crate::args::{ArrivalArg, BenchArgs, SweepModeArg};
use crate::decide::{decide, gates, verdict_code};
use crate::documents::{file_name, read_result};
use crate::exit::{self, InputError, input};
use crate::plan::{self, Plan};
use crate::{execute, resume, server};
use anyhow::Result;
use velollm_core::analysis::sweep::SweepMode;
use velollm_core::workload::load::Arrival;
use velollm_engine::sweep::SweepPlan;

/// Run `velollm bench`.
pub async fn run(args: BenchArgs) -> Result<u8> {
    let w = &args.workload;
    if w.scenario == crate::semantic_eval::SCENARIO && !w.has_prompts() && args.trace.trace.is_none() {
        return crate::semantic_eval::run(&args).await;
    }
    if w.scenario == crate::routing_eval::SCENARIO && !w.has_prompts() && args.trace.trace.is_none() {
        return crate::routing_eval::run(&args).await;
    }
    if w.scenario == crate::vector_eval::SCENARIO && !w.has_prompts() && args.trace.trace.is_none() {
        return crate::vector_eval::run(&args).await;
    }
    let baseline = baseline(&args)?;
    let watch = server::watch_options(&args.server, args.output.output.as_deref())?;
    let code = match args.sweep.sweep {
        Some(_) if args.output.resume => return Err(resume::no_sweep().into()),
        Some(k) => {
            let (plan, sweep) = sweep_plan(&args, k)?;
            execute::run(plan, Some(sweep), watch).await?
        }
        None => {
            let plan = plan::bench(&args)?;
            let resumed = if args.output.resume { Some(resume::load(&args, &plan)?) } else { None };
            execute::run_or_resume(plan, None, watch, resumed).await?
        }
    };
    match baseline {
        Some(b) if matches!(code, exit::OK | exit::THRESHOLD) => compare_run(b, &args, code),
        _ => Ok(code),
    }
}

/// The baseline of `bench --compare-to`, read and checked (with the gates) before anything is sent.
fn baseline(args: &BenchArgs) -> Result<Option<Baseline>> {
    let Some(path) = &args.output.compare_to else {
        if !args.gates.fail_if.is_empty() || !args.gates.criteria.is_empty() || args.gates.fail_on_regression {
            return Err(input(
                "--fail-if, --fail-on-regression and --criteria need a baseline: add --compare-to BASELINE.json",
            )
            .into());
        }
        return Ok(None);
    };
    if args.output.output.is_none() {
        return Err(input("--compare-to needs the run's own result file: add -o RESULT.json").into());
    }
    let gates = gates(&args.gates)?;
    Ok(Some(Baseline { path: path.clone(), result: read_result(path)?, gates }))
}

/// A baseline read for `bench --compare-to`.
struct Baseline {
    path: std::path::PathBuf,
    result: velollm_core::document::result::RunResult,
    gates: Vec<velollm_core::judge::gate::Gate>,
}

/// Compare the run just written with the baseline; the worse of the run's and the comparison's exit codes.
fn compare_run(b: Baseline, args: &BenchArgs, code: u8) -> Result<u8> {
    let path = args.output.output.as_deref().expect("checked by baseline()");
    let run = read_result(path)?;
    println!();
    let d = decide(
        (&file_name(&b.path), &b.result),
        &[(file_name(path), run)],
        &b.gates,
        &args.gates,
        &Default::default(),
        true,
    );
    Ok(code.max(verdict_code(&d)))
}

/// The plan of `velollm bench --sweep K`: one workload (the plan's only step) swept in K steps after a
/// capacity probe, every step bounded by `--requests`/`--duration`.
fn sweep_plan(args: &BenchArgs, k: u32) -> Result<(Plan, SweepPlan), InputError> {
    let (load, sw) = (&args.load, &args.sweep);
    if k == 0 {
        return Err(input("--sweep must be at least 1 (the number of load steps after the probe)"));
    }
    if sw.sweep_max_concurrency == 0 {
        return Err(input("--sweep-max-concurrency must be at least 1"));
    }
    if load.rate.is_some() || load.concurrency.is_some() {
        return Err(input(
            "--sweep chooses the load of each step itself: drop --rate/--concurrency (use --sweep-mode rate|concurrency \
             and --sweep-max-concurrency N)",
        ));
    }
    if load.requests.is_none() && load.duration.is_none() {
        return Err(input("--sweep needs a bound for every step: add --requests N or --duration D"));
    }
    let mode = match sw.sweep_mode {
        SweepModeArg::Rate => SweepMode::Rate,
        SweepModeArg::Concurrency => SweepMode::Concurrency,
    };
    let arrival = match (load.arrival, mode) {
        (None, _) => Arrival::Poisson,
        (Some(_), SweepMode::Concurrency) => {
            return Err(input("--arrival applies to a rate sweep: drop it or use --sweep-mode rate"));
        }
        (Some(ArrivalArg::Constant), _) => Arrival::Constant,
        (Some(ArrivalArg::Poisson), _) => Arrival::Poisson,
        (Some(ArrivalArg::Gamma), _) => match load.burstiness.unwrap_or(1.0) {
            k if k.is_finite() && k > 0.0 => Arrival::Gamma { burstiness: k },
            _ => return Err(input("--burstiness must be a positive number (1 = Poisson)")),
        },
    };
    let mut plan = plan::bench(args)?;
    if plan.steps.len() != 1 {
        return Err(input(format!(
            "--sweep works on one workload: pass --prompt/--prompt-file/--prompt-tokens (scenario '{}' has {} steps)",
            plan.scenario,
            plan.steps.len()
        )));
    }
    if !plan.analyses.is_empty() {
        eprintln!("velollm: note: the scenario's analyses do not apply to a sweep; the sweep analysis replaces them");
    }
    let sweep = SweepPlan {
        base: plan.steps[0].clone(),
        steps: k,
        mode,
        probe_concurrency: sw.sweep_max_concurrency,
        arrival,
        thresholds: std::mem::take(&mut plan.thresholds),
    };
    plan.scenario = format!("{} ({mode} sweep, {k} steps)", plan.scenario);
    Ok((plan, sweep))
}
