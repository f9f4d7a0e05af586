//! Running a validated [`Plan`]: launch and watch the server, connect, self-check, send every step (or a
//! sweep), write the result and records as the run goes, index it in the history, print the summary, and
//! say with the exit code how it went. `bench`, `benchmark`, `tune` and `optimize --verify` all run here.

use crate::exit::{self, InputError};
use crate::plan::{Plan, redact};
use crate::{progress, resume, signal};
use anyhow::Result;
use std::path::{Path, PathBuf};
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_engine::observe::{Completions, ServerWatch, WatchOptions};
use velollm_engine::output::ResultWriter;
use velollm_engine::selfcheck::SelfCheckOptions;
use velollm_engine::sweep::{SweepPlan, run_sweep};
use velollm_engine::{BenchError, Session};

/// The command line as recorded in results. Keys come from the environment, but URLs may carry credentials
/// (`--url https://user:KEY@host`, also as `--url=…`) and a --launch command may repeat the key: both are
/// redacted.
pub fn recorded_command() -> Vec<String> {
    let url = |a: &str| match a.split_once('=').filter(|(flag, _)| flag.starts_with("--")) {
        Some((flag, value)) => format!("{flag}={}", velollm_engine::transport::redact_url(value)),
        None => velollm_engine::transport::redact_url(a),
    };
    std::env::args().map(|a| redact(&if a.contains("://") { url(&a) } else { a })).collect()
}

/// The server report without the key (a --launch command may pass it to the server).
fn redact_server(mut report: velollm_core::server::launch::ServerReport) -> velollm_core::server::launch::ServerReport {
    if let Some(l) = report.launch.as_mut() {
        l.template = redact(&l.template);
        l.command = redact(&l.command);
    }
    report
}

/// Run a plan — or, with `sweep`, a sweep of its only step — writing and printing the result.
pub async fn run(plan: Plan, sweep: Option<SweepPlan>, watch_opts: WatchOptions) -> Result<u8> {
    run_or_resume(plan, sweep, watch_opts, None).await
}

/// [`run`], or with `resumed`, continue that interrupted run.
pub async fn run_or_resume(
    mut plan: Plan,
    sweep: Option<SweepPlan>,
    watch_opts: WatchOptions,
    resumed: Option<resume::Resumed>,
) -> Result<u8> {
    let (cancel_tx, cancel) = signal::cancel_on_signal();
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
            velollm_report::format::value(c, velollm_core::measure::names::Unit::Ms)
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
                velollm_report::format::value(t, velollm_core::measure::names::Unit::Ms)
            ),
            _ => {}
        }
    }
    let server_report = redact_server(server.report());
    doc.server = (!server_report.is_empty()).then_some(server_report);
    if plan.selfcheck {
        doc.selfcheck = selfcheck(&cancel).await;
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
        (Ok(_), true) => (RunStatus::Interrupted, Some(signal::interruption())),
        (Ok(true), false) => (RunStatus::Partial, Some("not every step ran".into())),
        (Ok(_), false) => (RunStatus::Complete, None),
    };
    let doc = writer.finish(status, reason.map(|r| redact(&r)))?;
    record(&doc, plan.output.as_deref(), plan.db.as_deref());
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

/// The quick self-check before a benchmark: one line on stderr, the figures for the result. A self-check that
/// cannot run is a note, never a reason not to benchmark.
pub async fn selfcheck(
    cancel: &tokio::sync::watch::Receiver<bool>,
) -> Option<velollm_core::judge::selfcheck::SelfCheck> {
    match velollm_engine::selfcheck::run(&SelfCheckOptions::quick(), cancel).await {
        Ok(check) => {
            let top = check.levels.iter().filter(|l| !l.ceiling).max_by_key(|l| l.concurrency);
            let p99 = |s: Option<&velollm_core::stats::Summary>| s.map_or("–".into(), |s| format!("{:.3} ms", s.p99));
            eprintln!(
                "velollm: self-check ({:.1} s; --no-selfcheck skips it): the client adds p99 {} per request and {} \
                 per chunk at {} chunks/s; ceiling {} req/s",
                check.took_s,
                p99(top.and_then(|l| l.added_request_ms.as_ref())),
                p99(top.and_then(|l| l.added_chunk_ms.as_ref())),
                velollm_report::format::num(top.map_or(0.0, |l| l.chunk_rate)),
                velollm_report::format::num(check.max_request_rate),
            );
            Some(check)
        }
        Err(e) => {
            eprintln!("velollm: note: the self-check did not run ({e}); client overhead is not assessed");
            None
        }
    }
}

/// Index a finished benchmark in the history database (`--db`, else `VELOLLM_DB`, else the default path).
/// Never fails the benchmark: a problem is one note on stderr. `VELOLLM_NO_HISTORY=1` turns it off.
fn record(doc: &RunResult, json_path: Option<&Path>, db: Option<&Path>) {
    if std::env::var_os("VELOLLM_NO_HISTORY").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    // A plan built in code (`optimize --verify`, `benchmark`) has no `--db`: the variable still applies.
    let db = db.map(PathBuf::from).or_else(|| std::env::var_os("VELOLLM_DB").map(PathBuf::from));
    let outcome = velollm_history::path_or_default(db.as_deref())
        .and_then(|path| velollm_history::History::open(&path)?.index(doc, json_path));
    if let Err(e) = outcome {
        eprintln!("velollm: note: this run was not added to the history database: {e} (VELOLLM_NO_HISTORY=1 skips it)");
    }
}
