//! `velollm bench --resume`: continue an interrupted run from its result and records files.
//!
//! The run must be count-bounded (a request count per step, no duration, no timed warm-up) and must have
//! written its records (`--records`): the steps that finished keep their stored results, and the interrupted
//! step is rebuilt from its records, then sends only the request indices that did not finish — with the
//! prompts an uninterrupted run would have sent, since prompts are seeded by the run's seed, its nonce
//! (derived from the stored run id) and the request index. Everything that decides what is measured must
//! be the same as in the stored command; anything else is refused with exit code 2 before a request is sent.

use crate::args::BenchArgs;
use crate::exit::InputError;
use crate::plan::Plan;
use anyhow::anyhow;
use clap::Parser;
use std::path::PathBuf;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::workload::load::Warmup;
use velollm_engine::runner::Resume;

/// An interrupted run, read and checked, ready to be continued.
pub struct Resumed {
    /// The stored result document.
    pub stored: RunResult,
    /// The records file: read, rewritten with the records kept, then appended to.
    pub records: PathBuf,
    /// The finished steps and the records kept.
    pub state: Resume,
}

impl Resumed {
    /// The steps that finished before the interruption (not run again).
    pub fn finished(&self) -> &[StepResult] {
        &self.state.steps
    }
}

fn input(message: String) -> InputError {
    InputError(anyhow!("--resume: {message}"))
}

/// The refusal of `--resume --sweep`.
pub fn no_sweep() -> InputError {
    input("a sweep cannot be resumed (its steps depend on the capacity probe): run it again".into())
}

/// Read the run that `args.output` holds and check that `plan` continues it.
pub fn load(args: &BenchArgs, plan: &Plan) -> Result<Resumed, InputError> {
    let Some(path) = args.output.output.as_deref() else {
        return Err(input("give the interrupted run's result file with -o RESULT.json".into()));
    };
    if args.sweep.sweep.is_some() {
        return Err(no_sweep());
    }
    if args.server.launch.is_some() {
        return Err(input(
            "a launched server would start cold and change what the rest of the run measures: start the server \
             yourself, then resume with --url"
                .into(),
        ));
    }
    if !path.exists() {
        return Err(input(format!(
            "'{}' does not exist: there is no interrupted run to continue (drop --resume to start one)",
            path.display()
        )));
    }
    let stored = crate::documents::read_result(path).map_err(|e| input(format!("{e}")))?;
    if stored.status == RunStatus::Complete {
        return Err(input(format!(
            "'{}' is a complete run: nothing to resume (drop --resume to measure again, into another file)",
            path.display()
        )));
    }
    let before = stored_args(&stored)?;
    if let Some(((flag, was), (_, now))) =
        fingerprint(&before).into_iter().zip(fingerprint(args)).find(|(a, b)| a.1 != b.1)
    {
        return Err(input(format!(
            "{flag} differs from the interrupted run's ({was} there, {now} now): resume with the same workload, \
             load and target options (see meta.command in '{}')",
            path.display()
        )));
    }
    let Some(records) = before.output.records.clone() else {
        return Err(input(format!(
            "the interrupted run wrote no records, which --resume needs to rebuild its aggregates: run it again \
             from the start with --records FILE (e.g. -o {} --records {})",
            path.display(),
            path.with_extension("jsonl").display()
        )));
    };
    if let Some(now) = args.output.records.as_ref().filter(|r| **r != records) {
        return Err(input(format!(
            "--records {} is not the interrupted run's records file ({}): drop --records or pass that file",
            now.display(),
            records.display()
        )));
    }
    for step in &plan.steps {
        let timed_warmup = matches!(step.bounds.warmup, Warmup::Seconds(_));
        if step.bounds.duration_s.is_some() || step.bounds.requests.is_none() || timed_warmup {
            return Err(input(format!(
                "--resume needs count-bounded steps, and step '{}' is bounded by a duration{}: only a run of \
                 --requests N (and a warm-up given as a request count) can be continued",
                step.name,
                if timed_warmup { " (its warm-up)" } else { "" }
            )));
        }
    }
    let finished: Vec<StepResult> = stored.steps.iter().take_while(|s| !s.partial).cloned().collect();
    if stored.steps.len() > plan.steps.len() || stored.steps.iter().zip(&plan.steps).any(|(s, p)| s.name != p.name) {
        return Err(input(format!(
            "the steps of '{}' are not those of this plan: resume with the same scenario and options",
            path.display()
        )));
    }
    let (all, dropped) = velollm_engine::output::read_records(&records)
        .map_err(|e| input(format!("cannot read the interrupted run's records: {e}")))?;
    if dropped > 0 {
        eprintln!("velollm: note: the last line of {} was cut short; it is dropped", records.display());
    }
    let interrupted = plan.steps.get(finished.len());
    let state = Resume::new(finished, all, interrupted).map_err(input)?;
    Ok(Resumed { stored, records, state })
}

/// The arguments of the stored run's command line.
fn stored_args(stored: &RunResult) -> Result<BenchArgs, InputError> {
    let unreadable = |why: String| input(format!("cannot read the interrupted run's command line ({why})"));
    /// A recorded `velollm bench …` command line.
    #[derive(clap::Parser)]
    #[command(name = "velollm")]
    struct Recorded {
        #[command(subcommand)]
        command: RecordedCommand,
    }
    #[derive(clap::Subcommand)]
    enum RecordedCommand {
        Bench(Box<BenchArgs>),
    }
    match Recorded::try_parse_from(&stored.meta.command) {
        Ok(Recorded { command: RecordedCommand::Bench(args) }) => Ok(*args),
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            Err(unreadable("it is not `velollm bench`".into()))
        }
        Err(e) => Err(unreadable(e.kind().to_string())),
    }
}

/// What decides what a run measures, flag by flag, as text (URLs without credentials, as stored).
fn fingerprint(a: &BenchArgs) -> Vec<(&'static str, String)> {
    let url = a.url.as_deref().map(velollm_engine::transport::redact_url);
    let show = |v: &dyn std::fmt::Debug| format!("{v:?}");
    vec![
        ("--url", show(&url)),
        ("--model", show(&a.target.model)),
        ("--backend", show(&a.target.backend)),
        ("--http2", show(&a.target.http2)),
        ("--websocket", show(&a.target.websocket)),
        ("--scenario", show(&a.workload.scenario)),
        ("--prompt", show(&a.workload.prompt)),
        ("--prompt-file", show(&a.workload.prompt_file)),
        ("--prompt-tokens", show(&a.workload.prompt_tokens)),
        ("--trace", show(&a.trace.trace)),
        ("--slice", show(&a.load.slice)),
        ("--cancel-share", show(&a.load.cancel_share)),
        ("--cancel-after", show(&a.load.cancel_after)),
        ("--time-scale", show(&a.trace.time_scale)),
        ("--max-delay", show(&a.trace.max_delay)),
        ("--sessions-together", show(&a.trace.sessions_together)),
        ("--system", show(&a.workload.system)),
        ("--max-tokens", show(&a.workload.max_tokens)),
        ("--exact-output", show(&a.workload.exact_output)),
        ("--temperature", show(&a.workload.temperature)),
        ("--tokenizer", show(&a.workload.tokenizer)),
        ("--cache-breakpoints", show(&a.cache_study.cache_breakpoints)),
        ("--ttl", show(&a.cache_study.ttl)),
        ("--ttl-gap", show(&a.cache_study.ttl_gap)),
        ("--ttl-requests", show(&a.cache_study.ttl_requests)),
        ("--prices", show(&a.cache_study.prices)),
        ("--concurrency", show(&a.load.concurrency)),
        ("--rate", show(&a.load.rate)),
        ("--arrival", show(&a.load.arrival)),
        ("--burstiness", show(&a.load.burstiness)),
        ("--iterations", show(&a.load.iterations)),
        ("--turns", show(&a.workload.turns)),
        ("--requests", show(&a.load.requests)),
        ("--duration", show(&a.load.duration)),
        ("--warmup", show(&a.load.warmup)),
        ("--seed", show(&a.workload.seed)),
        ("--slo", show(&a.load.slo)),
        ("--keep-text", show(&a.output.keep_text)),
        ("--connect-timeout", show(&a.client.connect_timeout)),
        ("--first-token-timeout", show(&a.client.first_token_timeout)),
        ("--idle-timeout", show(&a.client.idle_timeout)),
        ("--timeout", show(&a.client.timeout)),
    ]
}
