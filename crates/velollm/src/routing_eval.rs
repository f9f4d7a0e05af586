//! `velollm bench --scenario routing`: the labelled evaluation of small-model routing. Every task goes to the
//! small tier (`--url`, `--model`) and to the large tier (`--large-url`, `--large-model`), one at a time, and
//! each answer is judged by the task's checker; then every task goes to each tier again with `--route-parallel`
//! requests in flight (latency under load). The router's decision for every task is the proxy's own: its
//! rules, then the vote of the nearest labelled examples (all-MiniLM-L6-v2 in process): the shipped examples,
//! which are not tasks, or `--route-examples`, leaving each task out of its own vote when they are the tasks. The figures are computed in `velollm_core::analysis::routing_eval`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use velollm_core::analysis::routing_eval::{
    BUILTIN_CHECKER, BUILTIN_EXAMPLES, BUILTIN_LABELS, Check, Inputs, RoutingReport, Task, TierRun, evaluate, parse,
    parse_examples,
};
use velollm_core::measure::metrics::RequestMetrics;
use velollm_engine::bench::Session;
use velollm_proxy::routing::knn::{self, Classifier};
use velollm_proxy::semantic::Embedder;
use velollm_report::document::Table;

use crate::args::BenchArgs;
use crate::exit::{self, InputError, input};

/// The scenario name that runs this evaluation.
pub const SCENARIO: &str = "routing";

/// The system prompt of every task.
const SYSTEM: &str = "You are a careful assistant. Follow the instructions exactly.";

/// Runs the evaluation; exit code 3 with `--check` when a criterion fails.
pub async fn run(args: &BenchArgs) -> Result<u8> {
    let r = &args.routing_eval;
    let (tasks, source, checker_dir) = tasks(args)?;
    let Some(large_url) = r.large_url.clone() else {
        return Err(
            input("--scenario routing needs the large tier: give --large-url URL (and --large-model NAME)").into()
        );
    };
    let parallel = r.route_parallel.unwrap_or(10).max(1);
    let confidence = r.route_confidence.unwrap_or(0.6);
    if !(0.0..=1.0).contains(&confidence) {
        return Err(input(format!("--route-confidence {confidence}: give a vote share between 0 and 1")).into());
    }
    let max_tokens = args.workload.max_tokens.unwrap_or(96);
    let min_similarity = 0.3;

    // The router: its examples (the shipped ones by default, which no task is; with --route-examples tasks,
    // each task is left out of its own vote), embedded.
    let model_dir = velollm_proxy::config::SemanticConfig::default().model_dir();
    let embedder = Embedder::local(&model_dir)
        .map_err(|e| input(format!("{e}: run scripts/embedder.sh install, or export $(scripts/embedder.sh env)")))?;
    let examples = match &r.route_examples {
        Some(path) => knn::load(path).map_err(|e| input(format!("--route-examples: {e}")))?,
        None => parse_examples("built-in routing examples", BUILTIN_EXAMPLES).expect("the shipped examples parse"),
    };
    let leave_out = examples.iter().any(|e| tasks.iter().any(|t| t.id == e.id && t.prompt == e.prompt));
    let timeout = std::time::Duration::from_secs(30);
    let defaults = velollm_proxy::config::RoutingConfig::default();
    let (words, tokens) = (defaults.max_words, defaults.max_tokens);
    let mut embedded = Vec::with_capacity(examples.len());
    for e in examples {
        let v = embedder
            .embed_prefix(&knn::head(&e.prompt, words), tokens, timeout)
            .await
            .map_err(|err| anyhow!("embedding {:?}: {err}", e.id))?;
        embedded.push((e, v));
    }
    let classifier = Classifier::new(embedded, 5);
    let (mut votes, mut rules_ms, mut decision_ms) = (Vec::new(), Vec::new(), Vec::new());
    for t in &tasks {
        let body = json!({"model": "auto", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": t.prompt}]});
        let start = Instant::now();
        let ruled = velollm_proxy::routing::rules::check(&body, 8000).is_some();
        rules_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let vote = if ruled {
            None
        } else {
            let v = embedder
                .embed_prefix(&knn::head(&t.prompt, words), tokens, timeout)
                .await
                .map_err(|err| anyhow!("embedding {:?}: {err}", t.id))?;
            classifier.vote(&v, leave_out.then_some(t.id.as_str()))
        };
        decision_ms.push(start.elapsed().as_secs_f64() * 1e3);
        votes.push((vote, ruled));
    }

    let mut options = crate::plan::options(args)?;
    options.keep_text = true;
    let small = Session::connect(&options).await?;
    options.url = large_url;
    if let Some(m) = &r.large_model {
        options.model = Some(m.clone());
    }
    let large = Session::connect(&options).await?;
    eprintln!(
        "routing evaluation: {} tasks from {source}; small tier {} ({}), large tier {} ({}); then {parallel} in parallel",
        tasks.len(),
        small.target.endpoint.display(),
        small.model,
        large.target.endpoint.display(),
        large.model
    );
    let small = Arc::new(small);
    let large = Arc::new(large);
    let mut runs = Vec::new();
    for (name, session) in [("small", &small), ("large", &large)] {
        let mut run = TierRun { name: name.into(), model: session.model.clone(), ..TierRun::default() };
        let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
        for t in &tasks {
            let record = session.ask(Some(SYSTEM), &t.prompt, max_tokens, &cancel).await;
            let m = RequestMetrics::of(&record);
            let answer = record.text.clone().unwrap_or_default();
            let correct = match &record.error {
                Some(_) => None,
                None => Some(judge(&t.check, &answer, &checker_dir, t, &source).await?),
            };
            run.correct.push(correct);
            run.ttft_ms.push(m.ttft_ms);
            run.e2e_ms.push(m.e2e_ms);
        }
        load(session, &tasks, parallel, max_tokens, &mut run).await;
        eprintln!(
            "  {name}: {} of {} answers pass their checker",
            run.correct.iter().filter(|c| **c == Some(true)).count(),
            tasks.len()
        );
        runs.push(run);
    }
    let report = evaluate(&Inputs {
        tasks: &tasks,
        small: &runs[0],
        large: &runs[1],
        votes: &votes,
        confidence,
        min_similarity,
        rules_ms: &rules_ms,
        decision_ms: &decision_ms,
        parallel,
        target: 0.95,
    });
    print!("{}", render(&report));
    if let Some(path) = &args.output.output {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
        let chart_path = path.with_extension("svg");
        std::fs::write(&chart_path, chart(&report))
            .with_context(|| format!("cannot write {}", chart_path.display()))?;
        eprintln!("quality-versus-share chart written to {}", chart_path.display());
    }
    let failed = report.criteria.iter().any(|c| c.pass == Some(false));
    Ok(if failed && args.output.check { exit::THRESHOLD } else { exit::OK })
}

/// Every task sent `parallel` at a time; latencies and failures into `run`.
async fn load(session: &Arc<Session>, tasks: &[Task], parallel: usize, max_tokens: u32, run: &mut TierRun) {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(parallel));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in tasks {
        let (session, semaphore, prompt) = (Arc::clone(session), Arc::clone(&semaphore), t.prompt.clone());
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await.ok();
            let (_tx, cancel) = tokio::sync::watch::channel(false);
            session.ask(Some(SYSTEM), &prompt, max_tokens, &cancel).await
        });
    }
    while let Some(done) = set.join_next().await {
        match done {
            Ok(record) if record.error.is_none() => {
                let m = RequestMetrics::of(&record);
                run.load_e2e_ms.extend(m.e2e_ms);
                run.load_ttft_ms.extend(m.ttft_ms);
            }
            _ => run.load_failed += 1,
        }
    }
    run.load_wall_s = start.elapsed().as_secs_f64();
}

/// The tasks (`--labels FILE` or the shipped ones), their source's name, and the directory commands run in.
fn tasks(args: &BenchArgs) -> Result<(Vec<Task>, String, PathBuf), InputError> {
    let (tasks, source, dir) = match &args.semantic_eval.labels {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| input(format!("--labels {}: cannot read it: {e}", path.display())))?;
            let source = path.display().to_string();
            let tasks = parse(&source, &text).map_err(|e| input(e.to_string()))?;
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
            (tasks, source, dir)
        }
        None => {
            let tasks = parse("built-in routing tasks", BUILTIN_LABELS).expect("the shipped tasks parse");
            // The shipped code tasks' checker, written where their commands find it.
            let dir = std::env::temp_dir().join(format!("velollm-routing-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("routing_check.py"), BUILTIN_CHECKER))
                .map_err(|e| input(format!("cannot write the code checker under {}: {e}", dir.display())))?;
            (tasks, "built-in routing tasks".to_owned(), dir)
        }
    };
    for t in &tasks {
        if let Check::Command(argv) = &t.check
            && !runnable(&argv[0], &dir)
        {
            return Err(input(format!(
                "{source}:{}: field \"check.command\": {:?} is not a program on PATH or in {}: install it, or fix the command",
                t.line,
                argv[0],
                dir.display()
            )));
        }
    }
    Ok((tasks, source, dir))
}

/// Whether `program` can be run: a path that exists (relative to `dir`), or a name on `PATH`.
fn runnable(program: &str, dir: &Path) -> bool {
    if program.contains('/') {
        return dir.join(program).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// Judges one answer; a command gets the answer on its standard input, in `dir`, and passes with exit 0. A
/// checker that hangs fails after 30 s (it is killed), and never hangs the evaluation.
async fn judge(check: &Check, answer: &str, dir: &Path, task: &Task, source: &str) -> Result<bool> {
    use tokio::io::AsyncWriteExt as _;
    if let Some(verdict) = check.judge(answer) {
        return Ok(verdict);
    }
    let Check::Command(argv) = check else { return Ok(false) };
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            input(format!("{source}:{}: field \"check.command\": cannot run {:?}: {e}", task.line, argv[0]))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A checker that exits without reading its input closes the pipe: its exit status still decides.
        let _ = stdin.write_all(answer.as_bytes()).await;
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await {
        Ok(status) => Ok(status?.success()),
        Err(_) => Ok(false),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The quality-versus-share curve: system accuracy (and the routed answers' accuracy) against the share routed
/// small, one point per confidence threshold.
pub fn chart(r: &RoutingReport) -> String {
    use velollm_report::svg::{Axis, Style, XyChart, XySeries, xy_chart};
    let series =
        |name: &str, colour: usize, f: &dyn Fn(&velollm_core::analysis::routing_eval::Point) -> Option<f64>| XySeries {
            name: name.to_owned(),
            colour,
            style: Style::LineMarkers,
            points: r.sweep.iter().filter_map(|p| Some((p.routed_share * 100.0, f(p)? * 100.0))).collect(),
            legend: true,
        };
    let operating = XySeries {
        name: format!("operating point (confidence {:.2})", r.confidence),
        colour: 3,
        style: Style::Markers,
        points: vec![(r.operating.routed_share * 100.0, r.operating.system_accuracy * 100.0)],
        legend: true,
    };
    xy_chart(&XyChart {
        title: "Routing: quality against the share routed to the small tier".into(),
        notes: vec![format!(
            "{} tasks; small tier {}, large tier {}; one point per confidence threshold 0.00–1.00",
            r.tasks, r.tiers[0].model, r.tiers[1].model
        )],
        x: Axis::new("routed to the small tier (% of tasks)").range(0.0, 100.0),
        y: Axis::new("answers that pass their checker (%)").range(0.0, 100.0),
        series: vec![
            series("system accuracy", 0, &|p| Some(p.system_accuracy)),
            series("accuracy of routed answers", 1, &|p| p.routed_accuracy),
            operating,
        ],
    })
}

/// The report for the terminal.
pub fn render(r: &RoutingReport) -> String {
    let ms = |s: &Option<velollm_core::stats::Summary>| {
        s.as_ref().map_or("-".to_owned(), |s| format!("{:.0} / {:.0}", s.p50, s.p95))
    };
    let mut out = String::new();
    let mut tiers = Table::new(
        &["tier", "model", "accuracy", "TTFT p50/p95 ms", "E2E p50/p95 ms", "under load E2E p50/p95 ms", "req/s"],
        2,
    );
    for t in &r.tiers {
        tiers.rows.push(vec![
            t.name.clone(),
            t.model.clone(),
            pct(t.accuracy),
            ms(&t.ttft_ms),
            ms(&t.e2e_ms),
            ms(&t.load_e2e_ms),
            format!("{:.2}", t.load_req_per_s),
        ]);
    }
    out.push_str(&format!("\nTiers, alone and with {} requests in parallel:\n", r.parallel));
    out.push_str(&tiers.terminal("  "));
    out.push_str(&format!("Agreement of the small tier with the large one: {}\n", pct(r.agreement)));
    let mut types = Table::new(
        &["type", "tasks", "labelled tier", "routed small", "routing accuracy", "small accuracy", "large accuracy"],
        1,
    );
    for t in &r.by_type {
        types.rows.push(vec![
            t.task.clone(),
            t.tasks.to_string(),
            t.labelled_tier.clone(),
            pct(t.routed_share),
            pct(t.routing_accuracy),
            pct(t.small_accuracy),
            pct(t.large_accuracy),
        ]);
    }
    out.push_str(&format!("\nBy task type, at confidence {:.2}:\n", r.confidence));
    out.push_str(&types.terminal("  "));
    let point = |p: &velollm_core::analysis::routing_eval::Point| {
        format!(
            "routed {}, calls saved {}, routed answers right {}, system accuracy {}, routing accuracy {}",
            pct(p.routed_share),
            pct(p.calls_saved),
            p.routed_accuracy.map_or("-".into(), pct),
            pct(p.system_accuracy),
            pct(p.routing_accuracy)
        )
    };
    out.push_str(&format!("Operating point: {}\n", point(&r.operating)));
    for d in &r.decisions {
        let labelled_small = velollm_core::analysis::routing_eval::SMALL_TYPES.contains(&d.task.as_str());
        if d.small != labelled_small {
            let vote = d.vote.as_ref().map_or("a rule".to_owned(), |v| {
                format!("vote {} at {:.2}, nearest example {:.2}", v.task, v.confidence, v.nearest)
            });
            let tier = if d.small { "small" } else { "large" };
            out.push_str(&format!("  misrouted: {} ({}) went {tier}: {vote}\n", d.id, d.task));
        }
    }
    out.push_str(&format!(
        "Learned (types whose small accuracy ≥ {}): [{}]: {}\n",
        pct(r.target_accuracy),
        r.learned_small_types.join(", "),
        point(&r.learned)
    ));
    let dms = |s: &Option<velollm_core::stats::Summary>| {
        s.as_ref().map_or("-".to_owned(), |s| format!("p50 {:.3} ms, p99 {:.3} ms", s.p50, s.p99))
    };
    out.push_str(&format!(
        "Decision: rules {}; rules + embedding + vote {}\n",
        dms(&r.decision_ms.rules),
        dms(&r.decision_ms.embedding)
    ));
    out.push_str("\nCriteria (the plan's, at the operating point):\n");
    out.push_str(&crate::semantic_eval::criteria_lines(&r.criteria, 3));
    out
}
