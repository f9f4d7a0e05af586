//! `velollm` — the command-line tool. Thin: arguments → plan → engine → report.

mod ab;
mod cli;
mod compare;
mod detect;
mod history;
mod optimize;
mod plan;
mod progress;
mod proxy;
mod report;
mod resume;
mod selfcheck;
mod server;
mod tune;

use anyhow::Result;
use clap::Parser;
use cli::{Cli, Command};
use plan::{InputError, Plan};
use std::process::ExitCode;
use tokio::sync::watch;
use velollm_core::load::Arrival;
use velollm_core::result::RunStatus;
use velollm_core::sweep::SweepMode;
use velollm_engine::observe::{Completions, ServerWatch, WatchOptions};
use velollm_engine::output::ResultWriter;
use velollm_engine::sweep::{SweepPlan, run_sweep};
use velollm_engine::{BenchError, Session};

/// Documented exit codes.
mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const INPUT: u8 = 2;
    pub const THRESHOLD: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const ALL_FAILED: u8 = 5;
    pub const INTERRUPTED: u8 = 130;
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::INPUT } else { exit::OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = runtime.block_on(async {
        match run(cli).await {
            Ok(code) => code,
            Err(e) => {
                // A server's error may echo the key: nothing printed carries it.
                eprintln!("error: {}", plan::redact(&format!("{e:#}")));
                if e.downcast_ref::<InputError>().is_some() {
                    exit::INPUT
                } else if let Some(l) = e.downcast_ref::<velollm_engine::launch::LaunchError>() {
                    match l {
                        velollm_engine::launch::LaunchError::Template(_) => exit::INPUT,
                        velollm_engine::launch::LaunchError::Io(_) => exit::ERROR,
                        _ => exit::UNREACHABLE,
                    }
                } else if let Some(b) = e.downcast_ref::<BenchError>() {
                    match b {
                        BenchError::Probe(_) => exit::UNREACHABLE,
                        BenchError::Model(_)
                        | BenchError::Url(_)
                        | BenchError::Tokenizer(_)
                        | BenchError::CaCert(_) => exit::INPUT,
                        BenchError::Run(_) => exit::ERROR,
                    }
                } else {
                    exit::ERROR
                }
            }
        }
    });
    // Do not wait for in-flight connections to wind down.
    runtime.shutdown_background();
    ExitCode::from(code)
}

async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Bench(args) => {
            let baseline = baseline(&args)?;
            let watch = server::watch_options(&args.server, args.output.as_deref())?;
            let code = match args.sweep {
                Some(_) if args.resume => return Err(resume::no_sweep().into()),
                Some(k) => {
                    let (plan, sweep) = sweep_plan(&args, k)?;
                    bench(plan, Some(sweep), watch).await?
                }
                None => {
                    let plan = plan::bench(&args)?;
                    let resumed = if args.resume { Some(resume::load(&args, &plan)?) } else { None };
                    bench_or_resume(plan, None, watch, resumed).await?
                }
            };
            match baseline {
                Some(b) if matches!(code, exit::OK | exit::THRESHOLD) => compare_run(b, &args, code),
                _ => Ok(code),
            }
        }
        Command::Benchmark(args) => bench(plan::bench(&plan::legacy(&args)?)?, None, Default::default()).await,
        Command::Scenario { command } => scenario(command),
        Command::Compare(args) => compare::run(args),
        Command::Report(args) => report::run(args),
        Command::History(args) => history::run(args),
        Command::Tune(args) => tune::run(*args).await,
        Command::Detect(args) => detect::run(args),
        Command::Optimize(args) => optimize::run(args).await,
        Command::Ab(args) => ab::run(*args).await,
        Command::Selfcheck(args) => selfcheck::run(args).await,
        Command::Proxy(args) => proxy::run(*args).await,
    }
}

/// The baseline of `bench --compare-to`, read and checked (with the gates) before anything is sent.
fn baseline(args: &cli::BenchArgs) -> Result<Option<Baseline>> {
    let Some(path) = &args.compare_to else {
        if !args.gates.fail_if.is_empty() || !args.gates.criteria.is_empty() || args.gates.fail_on_regression {
            return Err(InputError(anyhow::anyhow!(
                "--fail-if, --fail-on-regression and --criteria need a baseline: add --compare-to BASELINE.json"
            ))
            .into());
        }
        return Ok(None);
    };
    if args.output.is_none() {
        return Err(
            InputError(anyhow::anyhow!("--compare-to needs the run's own result file: add -o RESULT.json")).into()
        );
    }
    let gates = args.gates.parse()?;
    Ok(Some(Baseline { path: path.clone(), result: compare::read_result(path)?, gates }))
}

/// A baseline read for `bench --compare-to`.
struct Baseline {
    path: std::path::PathBuf,
    result: velollm_core::result::RunResult,
    gates: Vec<velollm_core::gate::Gate>,
}

/// Compare the run just written with the baseline; the worse of the run's and the comparison's exit codes.
fn compare_run(b: Baseline, args: &cli::BenchArgs, code: u8) -> Result<u8> {
    let path = args.output.as_deref().expect("checked by baseline()");
    let run = compare::read_result(path)?;
    let name = report::file_name;
    println!();
    let d =
        compare::decide((&name(&b.path), &b.result), &[(name(path), run)], &b.gates, &args.gates, &Default::default());
    Ok(code.max(compare::verdict_code(&d)))
}

/// `velollm scenario list|show`.
fn scenario(command: cli::ScenarioCommand) -> Result<u8> {
    use velollm_core::scenario::{BUILTINS, Scenario, builtin};
    match command {
        cli::ScenarioCommand::List => {
            let scenarios: Vec<Scenario> = BUILTINS.iter().filter_map(|(n, _)| Scenario::builtin(n)).collect();
            print!("{}", velollm_report::terminal::render_scenarios(&scenarios));
            Ok(exit::OK)
        }
        cli::ScenarioCommand::Show { name } => match builtin(&name) {
            Some(text) => {
                print!("{text}");
                Ok(exit::OK)
            }
            None => {
                let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
                Err(InputError(anyhow::anyhow!(
                    "no built-in scenario '{name}'; the built-ins are: {}",
                    names.join(", ")
                ))
                .into())
            }
        },
    }
}

/// The command line as recorded in results. Keys come from the environment, but URLs may carry credentials
/// (`--url https://user:KEY@host`, also as `--url=…`) and a --launch command may repeat the key: both are
/// redacted.
fn recorded_command() -> Vec<String> {
    let url = |a: &str| match a.split_once('=').filter(|(flag, _)| flag.starts_with("--")) {
        Some((flag, value)) => format!("{flag}={}", velollm_engine::transport::redact_url(value)),
        None => velollm_engine::transport::redact_url(a),
    };
    std::env::args().map(|a| plan::redact(&if a.contains("://") { url(&a) } else { a })).collect()
}

/// The server report without the key (a --launch command may pass it to the server).
fn redact_server(mut report: velollm_core::server::ServerReport) -> velollm_core::server::ServerReport {
    if let Some(l) = report.launch.as_mut() {
        l.template = plan::redact(&l.template);
        l.command = plan::redact(&l.command);
    }
    report
}

/// The signal that interrupted the run, once one did.
static SIGNALLED: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Why the run was interrupted, for the result's `status_reason`: the signal's name.
fn interruption() -> String {
    format!("interrupted by {}", SIGNALLED.get().copied().unwrap_or("the user"))
}

/// The next Ctrl-C (SIGINT) or SIGTERM, by name.
async fn next_signal(#[cfg(unix)] term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    #[cfg(unix)]
    {
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT (Ctrl-C)",
            _ = term => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Ctrl-C (and SIGTERM), once per process: the first stops runs cleanly, the second exits at once (after
/// killing any launched server). The result file then keeps its last update, which is whole (every update is
/// an atomic rename) and says `partial`; every finished request is already in the records file.
fn interrupted() -> watch::Receiver<bool> {
    static SIGNAL: std::sync::OnceLock<watch::Receiver<bool>> = std::sync::OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                #[cfg(unix)]
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                #[cfg(unix)]
                let first = next_signal(&mut term).await;
                #[cfg(not(unix))]
                let first = next_signal().await;
                let _ = SIGNALLED.set(first);
                eprintln!(
                    "\ninterrupted: stopping ({first}), keeping what was measured (Ctrl-C again to quit at once)"
                );
                let _ = tx.send(true);
                #[cfg(unix)]
                let second = next_signal(&mut term).await;
                #[cfg(not(unix))]
                let second = next_signal().await;
                eprintln!("velollm: {second} again: quitting now (the result file keeps its last update)");
                velollm_engine::launch::kill_all();
                std::process::exit(i32::from(exit::INTERRUPTED));
            });
            rx
        })
        .clone()
}

/// A cancellation for one run: set by Ctrl-C, or through the returned sender (a server that died).
fn cancel_on_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(*interrupted().borrow());
    let (forward, mut signal) = (tx.clone(), interrupted());
    tokio::spawn(async move {
        if signal.wait_for(|s| *s).await.is_ok() {
            let _ = forward.send(true);
        }
    });
    (tx, rx)
}

/// The plan of `velollm bench --sweep K`: one workload (the plan's only step) swept in K steps after a
/// capacity probe, every step bounded by `--requests`/`--duration`.
fn sweep_plan(args: &cli::BenchArgs, k: u32) -> Result<(Plan, SweepPlan), InputError> {
    let input = |msg: String| InputError(anyhow::anyhow!(msg));
    if k == 0 {
        return Err(input("--sweep must be at least 1 (the number of load steps after the probe)".into()));
    }
    if args.sweep_max_concurrency == 0 {
        return Err(input("--sweep-max-concurrency must be at least 1".into()));
    }
    if args.rate.is_some() || args.concurrency.is_some() {
        return Err(input(
            "--sweep chooses the load of each step itself: drop --rate/--concurrency (use --sweep-mode rate|concurrency \
             and --sweep-max-concurrency N)"
                .into(),
        ));
    }
    if args.requests.is_none() && args.duration.is_none() {
        return Err(input("--sweep needs a bound for every step: add --requests N or --duration D".into()));
    }
    let mode = match args.sweep_mode {
        cli::SweepModeArg::Rate => SweepMode::Rate,
        cli::SweepModeArg::Concurrency => SweepMode::Concurrency,
    };
    let arrival = match (args.arrival.as_deref().map(str::to_ascii_lowercase).as_deref(), mode) {
        (None, _) => Arrival::Poisson,
        (Some(_), SweepMode::Concurrency) => {
            return Err(input("--arrival applies to a rate sweep: drop it or use --sweep-mode rate".into()));
        }
        (Some("constant" | "uniform"), _) => Arrival::Constant,
        (Some("poisson"), _) => Arrival::Poisson,
        (Some("gamma"), _) => match args.burstiness.unwrap_or(1.0) {
            k if k.is_finite() && k > 0.0 => Arrival::Gamma { burstiness: k },
            _ => return Err(input("--burstiness must be a positive number (1 = Poisson)".into())),
        },
        (Some(other), _) => return Err(input(format!("--arrival '{other}': use constant, poisson or gamma"))),
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
        probe_concurrency: args.sweep_max_concurrency,
        arrival,
        thresholds: std::mem::take(&mut plan.thresholds),
    };
    plan.scenario = format!("{} ({mode} sweep, {k} steps)", plan.scenario);
    Ok((plan, sweep))
}

/// Run a plan — or, with `sweep`, a sweep of its only step — writing and printing the result.
async fn bench(plan: Plan, sweep: Option<SweepPlan>, watch_opts: WatchOptions) -> Result<u8> {
    bench_or_resume(plan, sweep, watch_opts, None).await
}

/// [`bench`], or with `resumed`, continue that interrupted run.
async fn bench_or_resume(
    mut plan: Plan,
    sweep: Option<SweepPlan>,
    watch_opts: WatchOptions,
    resumed: Option<resume::Resumed>,
) -> Result<u8> {
    let (cancel_tx, cancel) = cancel_on_signal();
    if let Some(r) = &resumed {
        plan.records = Some(r.records.clone());
        // The clock goes on after the interrupted run's last instant, so a step's rate counts the time it ran
        // (not the pause) and its records stay in order.
        let end = std::time::Duration::from_nanos(r.state.end()) + std::time::Duration::from_millis(1);
        plan.options.origin = std::time::Instant::now().checked_sub(end);
        let left: u64 = plan.steps.iter().skip(r.finished().len()).filter_map(|s| s.bounds.requests).sum();
        eprintln!(
            "velollm: resuming {} ({} of {} steps finished, {} requests kept; at most {left} requests to go)",
            r.stored.meta.run_id,
            r.finished().len(),
            plan.steps.len(),
            r.state.records.len()
        );
    }
    for note in &plan.notes {
        eprintln!("velollm: note: {note}");
    }
    if let Some(l) = &watch_opts.launch {
        eprintln!("velollm: launching the server (log: {})", l.log.display());
    }
    let mut server = match ServerWatch::launch(watch_opts, &cancel).await {
        Ok(s) => s,
        Err(velollm_engine::launch::LaunchError::Interrupted) => {
            eprintln!("velollm: interrupted while the server was starting; it was stopped, nothing was measured");
            return Ok(exit::INTERRUPTED);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(url) = &server.url {
        plan.options.url = url.clone();
        plan.options.origin = Some(server.origin);
        plan.options.gate = server.gate();
        let c = server.report().cold_start.map(|c| c.spawn_to_ready_ms).unwrap_or_default();
        eprintln!(
            "velollm: server ready on {url} after {}",
            velollm_report::format::value(c, velollm_core::names::Unit::Ms)
        );
    }
    let mut session = Session::connect(&plan.options).await?;
    let t = session.target_info();
    eprintln!(
        "velollm: {} · dialect {} ({}) · model {}{}",
        t.url,
        t.dialect,
        t.dialect_reason,
        t.model,
        match (&t.server, &t.server_version) {
            (Some(s), Some(v)) => format!(" · server {s} {v}"),
            (Some(s), None) => format!(" · server {s}"),
            _ => String::new(),
        }
    );
    // A cold step needs a server velollm can unload: say so before anything is sent.
    if let Some(step) = plan.steps.iter().find(|s| s.cold).filter(|_| !session.target.dialect.is_ollama()) {
        let e = velollm_engine::runner::RunError::ColdUnsupported(step.name.clone());
        return Err(InputError(anyhow::anyhow!("{e} (this target speaks {})", t.dialect)).into());
    }
    if let Some(prices) = plan.prices.take() {
        if prices.get(&session.model).is_none() {
            let e = anyhow::anyhow!(
                "--prices: no price for model '{}': add [models.\"{}\"] (or [models.\"*\"]) to the prices file",
                session.model,
                session.model
            );
            return Err(InputError(e).into());
        }
        session.prices = Some(std::sync::Arc::new(prices));
    }
    if plan.steps.iter().any(|s| s.exact_output) && !session.target.dialect.supports_exact_output() {
        eprintln!("velollm: note: {} cannot force an exact output length; the achieved length is reported", t.dialect);
    }
    if let Some(r) = &resumed {
        let was = &r.stored.meta.target;
        if (was.model.as_str(), was.dialect.as_str()) != (session.model.as_str(), t.dialect.as_str()) {
            return Err(InputError(anyhow::anyhow!(
                "--resume: the interrupted run measured model {} over {}, this target serves {} over {}: resume                  against the same server",
                was.model,
                was.dialect,
                session.model,
                t.dialect
            ))
            .into());
        }
    }
    let mut doc = session.new_result(recorded_command(), &plan.scenario, plan.seed, plan.slo.as_ref());
    if let Some(r) = &resumed {
        // The same run, continued: its id (from which its prompts' nonce derives), start and finished steps.
        doc.meta.run_id = r.stored.meta.run_id.clone();
        doc.meta.started_at = r.stored.meta.started_at.clone();
        doc.steps = r.finished().to_vec();
        doc.benchmarks = r.stored.benchmarks.iter().take(r.finished().len()).cloned().collect();
        session.resume = Some(std::sync::Arc::new(r.state.clone()));
    }
    session.nonce = Some(velollm_engine::bench::run_nonce(&doc.meta.run_id));
    doc.meta.tokenizer = plan.options.tokenizer.as_ref().map(|p| p.display().to_string());
    doc.meta.hardware = Some(velollm_engine::detect::detect());
    let stop = cancel_tx.clone();
    server.attach(&mut session, plan.steps.first(), plan.seed, cancel_tx).await;
    for note in server.notes() {
        eprintln!("velollm: note: {note}");
    }
    if let Some(c) = server.report().cold_start.filter(|c| c.first_ttft_ms.is_some() || c.first_error.is_some()) {
        match (&c.first_error, c.spawn_to_first_token_ms) {
            (Some(e), _) => eprintln!("velollm: the cold first request failed: {e}"),
            (None, Some(t)) => eprintln!(
                "velollm: cold start: first token {} after spawn",
                velollm_report::format::value(t, velollm_core::names::Unit::Ms)
            ),
            _ => {}
        }
    }
    let server_report = redact_server(server.report());
    doc.server = (!server_report.is_empty()).then_some(server_report);
    if plan.selfcheck {
        doc.selfcheck = selfcheck::before_run(&cancel).await;
    }
    let writer = match (&resumed, &plan.records) {
        (Some(r), Some(records)) => ResultWriter::resume(doc, plan.output.clone(), records.clone(), &r.state.records)?,
        _ => ResultWriter::create(doc, plan.output.clone(), plan.records.clone())?,
    };
    // A write that fails (a full disk) stops the run: what cannot be kept is not measured.
    let writer = writer.stop_on_error(stop);
    let completions = Completions::when(server.samples_resources());
    let mut observers = ((writer, progress::Progress::new(plan.progress)), completions);
    // Ok(true) when the run ended without running every step it planned.
    let outcome = match &sweep {
        None => session
            .run_scenario(
                &plan.steps,
                &plan.analyses,
                &plan.thresholds,
                plan.seed,
                plan.slo.clone(),
                &mut observers,
                &cancel,
            )
            .await
            .map(|out| out.steps.len() < plan.steps.len()),
        // A sweep that stops at over-saturation is complete: stopping there is its purpose.
        Some(sweep) => {
            run_sweep(&session, sweep, plan.seed, plan.slo.clone(), &mut observers, &cancel).await.map(|_| false)
        }
    };
    let ((mut writer, _), completions) = observers;
    let death = server.death();
    writer.set_server(redact_server(server.finish(&mut session, completions.times_s()).await));
    let interrupted = *cancel.borrow() && death.is_none();
    let (status, reason) = match (&outcome, interrupted) {
        (Err(e @ BenchError::Run(velollm_engine::runner::RunError::Internal(_))), _) => {
            (RunStatus::Interrupted, Some(e.to_string()))
        }
        (Err(e), _) => (RunStatus::Interrupted, Some(format!("stopped by an error: {e}"))),
        (Ok(_), _) if death.is_some() => (RunStatus::Interrupted, death.clone()),
        (Ok(_), true) => (RunStatus::Interrupted, Some(interruption())),
        (Ok(true), false) => (RunStatus::Partial, Some("not every step ran".into())),
        (Ok(_), false) => (RunStatus::Complete, None),
    };
    let doc = writer.finish(status, reason.map(|r| plan::redact(&r)))?;
    history::record(&doc, plan.output.as_deref());
    println!("{}", velollm_report::render_run(&doc));
    if let Some(p) = &plan.output {
        eprintln!("velollm: result written to {}", p.display());
    }
    outcome?;
    if let Some(d) = death {
        eprintln!("velollm: {d}");
        return Ok(exit::ERROR);
    }
    if interrupted {
        return Ok(exit::INTERRUPTED);
    }
    let measured: u64 = doc.steps.iter().map(|s| s.requests).sum();
    let ok: u64 = doc.steps.iter().map(|s| s.succeeded).sum();
    if measured > 0 && ok == 0 {
        eprintln!("velollm: every measured request failed; see the errors above");
        return Ok(exit::ALL_FAILED);
    }
    let failed = doc.verdicts.iter().filter(|v| !v.passed).count();
    if plan.check && failed > 0 {
        eprintln!("velollm: {failed} threshold(s) failed (--check)");
        return Ok(exit::THRESHOLD);
    }
    Ok(exit::OK)
}
