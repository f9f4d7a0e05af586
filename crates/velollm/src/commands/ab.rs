//! `velollm ab`: a paired A/B experiment. Two targets — URLs, or commands velollm launches — get the same
//! requests, pair by pair, one after the other in alternating order (A→B, B→A, …); every step ends with
//! paired differences, their confidence intervals, a Wilcoxon signed-rank test and a verdict per metric
//! (`velollm_core::document::paired`), the speedup, and — when B is a proxy in front of A — the proxy overhead.
//!
//! With `-o x.json`: the result document `x.json` (rewritten as the run goes), every request of both sides
//! in `x.records.jsonl` (one line per request, with its side and pair, written as it completes), the report
//! in `x.md`, and the launched servers' logs in `x.a.server.log` / `x.b.server.log`.

use crate::args::{BenchArgs, ClientArgs, Dur, LAUNCH_TIMEOUT, TargetArgs, WorkloadArgs};
use crate::exit::{self, InputError};
use crate::{execute, server, signal};
use anyhow::{Context, Result, anyhow};
use clap::Args;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use velollm_core::document::ab::{
    AB_VERSION, AbMeta, AbRecord, AbResult, AbStep, AbTarget, PairCache, Side, analyse, cache_mismatched,
};
use velollm_core::document::paired::{METRICS, PairedOptions};
use velollm_core::document::result::RunStatus;
use velollm_engine::Session;
use velollm_engine::ab::{AbSide, PairObserver, PairedRun};
use velollm_engine::launch::{LaunchError, LaunchSpec, Server};
use velollm_engine::scrape::Scraper;
use velollm_engine::transport::{Endpoint, redact_url};

/// `velollm ab`.
#[derive(Debug, Args)]
pub struct AbArgs {
    /// Target A, the baseline: a URL (http://127.0.0.1:8080) or a command that starts the server, with
    /// {port} where its port goes ('llama-server -m model.gguf --port {port}').
    #[arg(long, value_name = "URL|CMD", help_heading = "Target")]
    pub a: String,
    /// Target B, the candidate: a URL or a launch command, as for --a.
    #[arg(long, value_name = "URL|CMD", help_heading = "Target")]
    pub b: String,
    /// B is a proxy in front of A: also report the proxy overhead, B − A over the requests sent for the
    /// first time whose B response did not declare a cache hit (x-velollm-cache, x-cache, x-cache-status,
    /// cf-cache-status), and what a hit saves over those that did.
    #[arg(long, help_heading = "Target")]
    pub b_proxies_a: bool,
    /// Put both sides of a pair in the same upstream cache state: miss (each side its own salted request of
    /// equal length), hit (the request sent once to each side before the pair) or as-is (the same request to
    /// both). Checked from the cached tokens the servers report; pairs whose states differ are counted, and
    /// left out unless as-is [default: miss with --b-proxies-a, else as-is].
    #[arg(long, value_enum, value_name = "MODE", help_heading = "Pairs")]
    pub pair_cache: Option<PairCacheArg>,
    /// The dialect, model and key of both sides.
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to send, as for `velollm bench`.
    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// Measured pairs per step (conversations, for multi-turn steps).
    #[arg(long, default_value_t = 30, value_name = "N", help_heading = "Pairs")]
    pub pairs: u64,
    /// Warm-up pairs per step, sent to both sides and not measured.
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Pairs")]
    pub warmup: u64,
    /// Significance level of the signed-rank test.
    #[arg(long, default_value_t = 0.05, help_heading = "Pairs")]
    pub alpha: f64,

    /// Write the result document (JSON) here, with the records (NAME.records.jsonl) and the report (NAME.md)
    /// beside it.
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Do not scrape the servers' Prometheus /metrics around each step.
    #[arg(long, help_heading = "Output")]
    pub no_metrics: bool,
    /// How long a launched server may take to become ready.
    #[arg(long, default_value_t = LAUNCH_TIMEOUT, value_name = "DURATION", help_heading = "Server")]
    pub launch_timeout: Dur,
    /// Timeouts and the self-check, as for `velollm bench`.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `--pair-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PairCacheArg {
    /// The same request to both sides.
    AsIs,
    /// Each side its own salted request: both miss.
    Miss,
    /// The request sent once to each side before the pair: both hit.
    Hit,
}

impl AbArgs {
    /// The cache-state mode, with its default.
    fn pair_cache(&self) -> PairCache {
        match self.pair_cache {
            Some(PairCacheArg::AsIs) => PairCache::AsIs,
            Some(PairCacheArg::Miss) => PairCache::Miss,
            Some(PairCacheArg::Hit) => PairCache::Hit,
            None if self.b_proxies_a => PairCache::Miss,
            None => PairCache::AsIs,
        }
    }
}

/// What `--a` or `--b` names.
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    /// A running server.
    Url(String),
    /// A command template to launch, with `{port}`.
    Launch(String),
}

fn input(msg: String) -> anyhow::Error {
    InputError(anyhow!(msg)).into()
}

/// Parse `--a`/`--b`: an http(s) URL without spaces, else a launch command with `{port}` (and no other
/// placeholder: ab fills only the port).
fn spec(flag: &str, text: &str) -> Result<Spec> {
    let t = text.trim();
    if t.is_empty() {
        return Err(input(format!(
            "{flag} is empty: give a URL (http://127.0.0.1:8080) or a launch command with {{port}}"
        )));
    }
    let lower = t.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://")) && !t.contains(char::is_whitespace) {
        Endpoint::parse(t).map_err(|e| input(format!("{flag} '{}': {e}", redact_url(t))))?;
        return Ok(Spec::Url(t.to_string()));
    }
    let keys = velollm_engine::launch::placeholders(t).map_err(|e| input(format!("{flag}: {e}")))?;
    if !keys.iter().any(|k| k == "port") {
        return Err(input(format!(
            "{flag} '{t}' is neither an http(s) URL nor a launch command with {{port}}: give the server's URL \
             (http://127.0.0.1:8080), or the command that starts it with {{port}} where its port goes"
        )));
    }
    if let Some(k) = keys.iter().find(|k| *k != "port") {
        return Err(input(format!(
            "{flag}: the launch command uses {{{k}}}, but ab fills only {{port}}: write the value into the command"
        )));
    }
    Ok(Spec::Launch(t.to_string()))
}

/// The `bench` arguments of the same workload, so that the scenario, prompts and options are read and
/// checked by the same code as `bench`'s.
fn bench_args(a: &AbArgs) -> BenchArgs {
    BenchArgs {
        target: a.target.clone(),
        workload: a.workload.clone(),
        client: a.client.clone(),
        ..BenchArgs::default()
    }
}

/// Writes every request of both sides to the records file as it completes.
struct Records {
    file: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
}

impl PairObserver for Records {
    fn pair_done(&mut self, _index: usize, done: u64, total: u64) {
        if total >= 10 && done < total && done.is_multiple_of((total / 5).max(1)) {
            eprintln!("velollm ab:   {done}/{total} pairs");
        }
    }

    fn record(&mut self, line: &AbRecord) {
        if let Some(f) = self.file.as_mut() {
            let res = serde_json::to_writer(&mut *f, line)
                .map_err(std::io::Error::other)
                .and_then(|_| f.write_all(b"\n"))
                .and_then(|_| f.flush());
            if let Err(e) = res {
                self.error.get_or_insert(e);
            }
        }
    }
}

/// `NAME.json` → `NAME.<ext>` beside it.
fn beside(output: &Path, ext: &str) -> PathBuf {
    output.with_extension(ext)
}

fn write_doc(doc: &AbResult, output: Option<&Path>) -> Result<()> {
    let Some(path) = output else { return Ok(()) };
    let bytes = serde_json::to_vec_pretty(doc)?;
    velollm_engine::output::write_atomic(path, &bytes)
        .with_context(|| format!("cannot write the result file '{}'", path.display()))
}

fn run_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-ab-{:08x}", now.strftime("%Y%m%dT%H%M%SZ"), (now.as_nanosecond() as u64 as u32) ^ std::process::id())
}

/// Run `velollm ab`.
pub async fn run(args: AbArgs) -> Result<u8> {
    let specs = [spec("--a", &args.a)?, spec("--b", &args.b)?];
    if args.pairs == 0 {
        return Err(input("--pairs must be at least 1 (a verdict needs at least 6)".into()));
    }
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        return Err(input(format!("--alpha {} must be between 0 and 1 (e.g. 0.05)", args.alpha)));
    }
    let plan = crate::plan::bench(&bench_args(&args))?;
    let cold: Vec<&str> = plan.steps.iter().filter(|s| s.cold).map(|s| s.name.as_str()).collect();
    if !cold.is_empty() {
        return Err(input(format!(
            "step(s) {} need a cold model, which ab cannot arrange on both sides: pick another scenario",
            cold.join(", ")
        )));
    }
    for note in &plan.notes {
        eprintln!("velollm ab: note: {note}");
    }
    for s in &plan.steps {
        if s.retries > 0 {
            eprintln!("velollm ab: note: step '{}': correction turns (retries) are not sent in ab", s.name);
        }
        if s.load.workers().is_some_and(|w| w > 1)
            || matches!(s.load, velollm_core::workload::load::LoadProfile::Rate { .. })
        {
            eprintln!(
                "velollm ab: note: step '{}': its load profile does not apply, pairs are sent one at a time",
                s.name
            );
        }
    }
    let ready = server::positive("--launch-timeout", args.launch_timeout)?;
    let (_cancel_tx, cancel) = signal::cancel_on_signal();
    let mut servers: [Option<Server>; 2] = [None, None];
    let outcome = experiment(&args, &specs, plan, ready, &mut servers, &cancel).await;
    // Every launched server is stopped, whatever happened.
    let mut stops: [Option<String>; 2] = [None, None];
    for (i, s) in servers.iter_mut().enumerate() {
        if let Some(server) = s.take() {
            let stop = server.stop(Duration::from_secs(10)).await;
            stops[i] = Some(match (stop.terminated, stop.killed) {
                (false, _) => format!("it had already exited: {}", stop.status),
                (true, false) => format!("SIGTERM → {} after {:.1} s", stop.status, stop.took.as_secs_f64()),
                (true, true) => format!("SIGTERM, then SIGKILL after the grace period → {}", stop.status),
            });
        }
    }
    let Some(mut doc) = outcome? else {
        eprintln!("velollm ab: interrupted while a server was starting; it was stopped, nothing was measured");
        return Ok(exit::INTERRUPTED);
    };
    for (t, stop) in [&mut doc.a, &mut doc.b].into_iter().zip(stops) {
        if let Some(l) = t.launch.as_mut() {
            l.stop = stop;
        }
    }
    let output = args.output.as_deref();
    write_doc(&doc, output)?;
    println!("{}", velollm_report::ab::render_ab(&doc));
    if let Some(o) = output {
        let md = beside(o, "md");
        velollm_engine::output::write_atomic(&md, velollm_report::ab::render_ab_markdown(&doc).as_bytes())
            .with_context(|| format!("cannot write the report '{}'", md.display()))?;
        eprintln!(
            "velollm ab: result written to {} (records: {}, report: {})",
            o.display(),
            beside(o, "records.jsonl").display(),
            md.display()
        );
    }
    if doc.status == RunStatus::Interrupted {
        return Ok(exit::INTERRUPTED);
    }
    for side in [Side::A, Side::B] {
        let of =
            |s: &AbStep| if side == Side::A { (s.a.requests, s.a.succeeded) } else { (s.b.requests, s.b.succeeded) };
        let (measured, ok) = doc.steps.iter().map(of).fold((0, 0), |t, x| (t.0 + x.0, t.1 + x.1));
        if measured > 0 && ok == 0 {
            eprintln!("velollm ab: every measured request to {} failed; see the errors above", side.letter());
            return Ok(exit::ALL_FAILED);
        }
    }
    Ok(exit::OK)
}

/// Launch what must be launched, connect both sides, run every step; the finished document, or `None`
/// when interrupted while a server was starting.
async fn experiment(
    args: &AbArgs,
    specs: &[Spec; 2],
    plan: crate::plan::Plan,
    ready: Duration,
    servers: &mut [Option<Server>; 2],
    cancel: &watch::Receiver<bool>,
) -> Result<Option<AbResult>> {
    let output = args.output.as_deref();
    let origin = Instant::now();
    let mut targets = Vec::new();
    let mut urls = Vec::new();
    for (i, (side, spec)) in [Side::A, Side::B].into_iter().zip(specs).enumerate() {
        let flag = format!("--{}", side.letter().to_ascii_lowercase());
        let mut target =
            AbTarget { side, spec: String::new(), launch: None, ready_ms: None, target: None, metrics_url: None };
        match spec {
            Spec::Url(u) => {
                target.spec = redact_url(u);
                urls.push(u.clone());
            }
            Spec::Launch(template) => {
                target.spec = template.clone();
                let log = match output {
                    Some(o) => beside(o, &format!("{}.server.log", side.letter().to_ascii_lowercase())),
                    None => std::env::temp_dir().join(format!(
                        "velollm-ab-{}-{}.server.log",
                        std::process::id(),
                        side.letter()
                    )),
                };
                eprintln!("velollm ab: launching {} (log: {})", side.letter(), log.display());
                let spec = LaunchSpec {
                    template: template.clone(),
                    params: BTreeMap::new(),
                    port: None,
                    log,
                    ready_timeout: ready,
                };
                let mut s = Server::start(&spec).map_err(|e| anyhow::Error::from(e).context(flag.clone()))?;
                match s.wait_ready_or_cancel(ready, cancel).await {
                    Ok(()) => {}
                    Err(LaunchError::Interrupted) => return Ok(None),
                    Err(e) => return Err(anyhow::Error::from(e).context(format!("{flag}: the server did not start"))),
                }
                let ready_ms = s.readiness.ready_after.as_secs_f64() * 1e3;
                eprintln!(
                    "velollm ab: {} ready on {} after {}",
                    side.letter(),
                    s.url,
                    velollm_report::format::duration_ms(ready_ms)
                );
                target.ready_ms = Some(ready_ms);
                target.launch = Some(s.launch_report(template));
                urls.push(s.url.clone());
                servers[i] = Some(s);
            }
        }
        targets.push(target);
    }
    let mut sides = Vec::new();
    for ((target, url), side) in targets.iter_mut().zip(&urls).zip([Side::A, Side::B]) {
        let flag = format!("--{}", side.letter().to_ascii_lowercase());
        let mut opts = plan.options.clone();
        opts.url = url.clone();
        opts.origin = Some(origin);
        let session = Session::connect(&opts).await.map_err(|e| anyhow::Error::from(e).context(flag))?;
        let t = session.target_info();
        eprintln!(
            "velollm ab: {}: {} · dialect {} ({}) · model {}{}",
            side.letter(),
            t.url,
            t.dialect,
            t.dialect_reason,
            t.model,
            t.server.as_deref().map(|s| format!(" · server {s}")).unwrap_or_default()
        );
        target.target = Some(t);
        let scraper = if args.no_metrics { None } else { scraper(url, target.launch.is_some(), side).await };
        target.metrics_url = scraper.as_ref().map(|s| s.url().to_string());
        sides.push(AbSide::new(side, session, scraper));
    }
    let (Some(mut b), Some(mut a)) = (sides.pop(), sides.pop()) else { unreachable!("two sides") };
    let options = PairedOptions { alpha: args.alpha, ..PairedOptions::default() };
    let records_path = output.map(|o| beside(o, "records.jsonl"));
    let [ta, tb]: [AbTarget; 2] = targets.try_into().map_err(|_| anyhow!("internal: two targets"))?;
    let selfcheck = if plan.selfcheck { execute::selfcheck(cancel).await } else { None };
    let mut doc = AbResult {
        ab_version: AB_VERSION.into(),
        status: RunStatus::Partial,
        status_reason: None,
        meta: AbMeta {
            tool: "velollm".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            run_id: run_id(),
            command: execute::recorded_command(),
            started_at: jiff::Timestamp::now().to_string(),
            finished_at: None,
            host: velollm_engine::host::host_info(),
            scenario: plan.scenario.clone(),
            seed: plan.seed,
            pairs: args.pairs,
            warmup_pairs: args.warmup,
            order: "alternating within each step: A→B, B→A, A→B, … (warm-up pairs likewise, on their own)".into(),
            b_proxies_a: args.b_proxies_a,
            pair_cache: args.pair_cache(),
            options: options.clone(),
            records: records_path.as_ref().map(|p| p.display().to_string()),
        },
        a: ta,
        b: tb,
        steps: Vec::new(),
        selfcheck,
        trust: None,
    };
    write_doc(&doc, output)?;
    let file = match &records_path {
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("cannot write the records file '{}'", p.display()))?,
        )),
        None => None,
    };
    let mut records = Records { file, error: None };
    let mut run = PairedRun::new(plan.seed).with_pair_cache(args.pair_cache());
    let total = plan.steps.len();
    for (i, step) in plan.steps.iter().enumerate() {
        if *cancel.borrow() {
            break;
        }
        eprintln!(
            "velollm ab: [{}/{total}] {}: {} pair(s) after {} warm-up",
            i + 1,
            step.name,
            args.pairs,
            args.warmup
        );
        let started = Instant::now();
        let out = run.run_step(&mut a, &mut b, i, step, args.pairs, args.warmup, &mut records, cancel).await;
        let (rows, speedup, proxy_overhead) =
            analyse(&out.pairs, METRICS, args.b_proxies_a, args.pair_cache(), &options);
        let mismatched = cache_mismatched(&out.pairs);
        if mismatched > 0 {
            let what = if args.pair_cache().is_as_is() {
                "kept in the rows; --pair-cache miss or hit puts both sides in one state"
            } else {
                "left out of the rows"
            };
            eprintln!(
                "velollm ab: {}: {mismatched} pair(s) whose sides found the upstream cache in different states \
                 (cached tokens reported) — {what}",
                step.name
            );
        }
        let both = out.pairs.iter().filter(|p| p.a.succeeded() && p.b.succeeded()).count() as u64;
        eprintln!(
            "velollm ab: {}: {} pairs ({both} with both sides successful) in {:.1} s",
            step.name,
            out.pairs.len(),
            started.elapsed().as_secs_f64()
        );
        doc.steps.push(AbStep {
            name: step.name.clone(),
            pairs: out.pairs.len() as u64,
            both_succeeded: both,
            first: out.first,
            a: out.a,
            b: out.b,
            rows,
            speedup,
            proxy_overhead,
            cache_mismatched: mismatched,
            partial: out.partial,
        });
        doc.trust = doc.assess_trust();
        write_doc(&doc, output)?;
    }
    if let Some(e) = records.error.take() {
        eprintln!("velollm ab: the records file could not be written completely: {e}");
    }
    if let Some(f) = records.file.as_mut() {
        let _ = f.flush();
    }
    let interrupted = *cancel.borrow();
    doc.status = if interrupted { RunStatus::Interrupted } else { RunStatus::Complete };
    doc.status_reason = interrupted.then(|| "interrupted by the user (Ctrl-C)".to_string());
    doc.meta.finished_at = Some(jiff::Timestamp::now().to_string());
    Ok(Some(doc))
}

/// The side's metrics endpoint (`URL/metrics`), when it answers.
async fn scraper(url: &str, launched: bool, side: Side) -> Option<Scraper> {
    let s = Scraper::new(&format!("{}/metrics", url.trim_end_matches('/'))).ok()?;
    match s.scrape().await {
        Ok(_) => Some(s),
        Err(e) => {
            if launched {
                eprintln!("velollm ab: note: no server metrics for {}: {e}", side.letter());
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_urls_or_launch_commands() {
        assert_eq!(spec("--a", "http://127.0.0.1:8080").unwrap(), Spec::Url("http://127.0.0.1:8080".into()));
        assert_eq!(
            spec("--b", "llama-server -m m.gguf --port {port}").unwrap(),
            Spec::Launch("llama-server -m m.gguf --port {port}".into())
        );
        let e = format!("{:#}", spec("--a", "localhost:8080").unwrap_err());
        assert!(e.contains("--a 'localhost:8080' is neither an http(s) URL nor a launch command"), "{e}");
        let e = format!("{:#}", spec("--b", "srv --port {port} -c {ctx}").unwrap_err());
        assert!(e.contains("{ctx}") && e.contains("only {port}"), "{e}");
        assert!(format!("{:#}", spec("--a", " ").unwrap_err()).contains("--a is empty"));
        assert!(spec("--a", "http://").is_err());
    }
}
