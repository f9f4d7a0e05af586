//! From parsed arguments to a validated run plan, in one place. Every input error is reported here with
//! the flag or file to fix, before anything is sent.

use crate::args::BenchArgs;
use crate::exit::InputError;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_core::analysis::AnalysisSpec;
use velollm_core::document::scenario::{Breakpoint, ConnectionMode, Dataset, Scenario, Step, StepLoad, Workload};
use velollm_core::judge::threshold::Threshold;
use velollm_core::measure::cost::PriceTable;
use velollm_core::measure::slo::Slo;
use velollm_core::workload::load::{Arrival, Bounds, LoadProfile, Warmup};
use velollm_engine::plan::StepPlan;
use velollm_engine::secrets::Secret;
use velollm_engine::target::Timeouts;
use velollm_engine::{Backend, BenchOptions};

/// Everything `bench` needs, validated.
pub struct Plan {
    /// How to reach the target.
    pub options: BenchOptions,
    /// Steps to run.
    pub steps: Vec<StepPlan>,
    /// Scenario name or file, for the result.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// SLOs for goodput.
    pub slo: Option<Slo>,
    /// Result document path.
    pub output: Option<PathBuf>,
    /// Records path.
    pub records: Option<PathBuf>,
    /// The history database (`--db`; else `VELOLLM_DB`, else the default).
    pub db: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Run the quick self-check before the run.
    pub selfcheck: bool,
    /// Scenario analyses.
    pub analyses: Vec<AnalysisSpec>,
    /// Scenario-level thresholds.
    pub thresholds: Vec<Threshold>,
    /// Exit 3 when a threshold fails.
    pub check: bool,
    /// Token prices (`--prices`).
    pub prices: Option<PriceTable>,
    /// What was adjusted or skipped before the run (e.g. an `http2` step without `--http2`), for the user.
    pub notes: Vec<String>,
}

/// Remember `secret` so that [`redact`] removes it (empty ones are ignored).
fn keep_secret(secret: &str) {
    velollm_engine::secrets::register_secret(secret);
}

/// `text` without any secret of this run (the API key, URL credentials; each replaced by `[REDACTED]`).
pub fn redact(text: &str) -> String {
    velollm_engine::secrets::redact_secrets(text).into_owned()
}

/// The credentials of a URL's userinfo (`scheme://user:password@host`): the password, or a lone user name
/// (`https://TOKEN@host`), which are kept as secrets.
fn url_credentials(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(match userinfo.split_once(':') {
        Some((_, password)) if !password.is_empty() => password,
        Some((user, _)) => user,
        None => userinfo,
    })
}

fn duration(flag: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .or_else(|_| text.trim().parse::<f64>().map(Duration::from_secs_f64).map_err(|_| ()))
        .map_err(|_| anyhow!("{flag} '{text}' is not a duration (e.g. 500ms, 10s, 5m)"))
}

/// Load the scenario named by `--scenario` (built-in name or file), with the folder its relative paths
/// start from (none for built-ins).
fn scenario(name: &str) -> Result<(Scenario, Option<PathBuf>)> {
    if let Some(s) = Scenario::builtin(name) {
        return Ok((s, None));
    }
    let path = PathBuf::from(name);
    if !path.exists() {
        let names: Vec<_> = velollm_core::document::scenario::BUILTINS.iter().map(|(n, _)| *n).collect();
        bail!("--scenario '{name}' is neither a built-in scenario ({}) nor an existing file", names.join(", "));
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read scenario file '{name}'"))?;
    Ok((Scenario::parse(name, &text)?, path.parent().map(PathBuf::from)))
}

/// `--cancel-share F` and `--cancel-after D`: the requests the client aborts mid-stream.
fn aborts(args: &BenchArgs) -> Result<Option<velollm_engine::target::Aborts>> {
    let Some(share) = args.load.cancel_share else {
        if args.load.cancel_after.is_some() {
            bail!("--cancel-after needs --cancel-share F (the share of requests to abort)");
        }
        return Ok(None);
    };
    if !(share > 0.0 && share <= 1.0) {
        bail!("--cancel-share must be a share in (0, 1], e.g. 0.2 for one request in five");
    }
    let after = args.load.cancel_after.map(|d| d.0);
    Ok(Some(velollm_engine::target::Aborts { share, after, seed: args.workload.seed }))
}

/// `--trace FILE` with its replay options; errors name the file, the line and the session.
fn trace(args: &BenchArgs, file: &Path) -> Result<Workload> {
    if args.workload.has_prompts() {
        bail!("--trace replays the recorded calls: leave out --prompt, --prompt-file and --prompt-tokens");
    }
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow!("--trace '{}': cannot read it: {e}", file.display()))?;
    let sessions =
        velollm_core::workload::trace::parse(&text).map_err(|e| anyhow!("--trace '{}': {e}", file.display()))?;
    if sessions.is_empty() {
        bail!("--trace '{}' has no call (one JSON object per line, with session_id and messages)", file.display());
    }
    let mut replay = velollm_core::workload::trace::TraceReplay::new(sessions);
    if let Some(f) = args.trace.time_scale {
        if !(f.is_finite() && f >= 0.0) {
            bail!("--time-scale must be a number ≥ 0 (1 = recorded speed, 0 = no pauses)");
        }
        replay.time_scale = f;
    }
    replay.max_delay_ms = args.trace.max_delay.map(|d| d.0.as_secs_f64() * 1e3);
    replay.together = args.trace.sessions_together;
    Ok(Workload::Trace(replay))
}

fn workload(args: &BenchArgs) -> Result<Option<Workload>> {
    if let Some(file) = &args.trace.trace {
        return trace(args, file).map(Some);
    }
    let w = &args.workload;
    let mut prompts = w.prompt.clone();
    if let Some(file) = &w.prompt_file {
        prompts.extend(prompt_lines(file).context("--prompt-file")?);
    }
    match (prompts.is_empty(), w.prompt_tokens) {
        (false, Some(_)) => bail!("--prompt/--prompt-file and --prompt-tokens are exclusive: keep one"),
        (false, None) => Ok(Some(Workload::Prompts(prompts))),
        (true, Some(0)) => bail!("--prompt-tokens must be at least 1"),
        (true, Some(n)) => Ok(Some(Workload::Synthetic { prompt_tokens: n })),
        (true, None) => Ok(None),
    }
}

/// Load flags from the command line, which override a step's own `load`.
fn cli_load(args: &BenchArgs) -> StepLoad {
    let l = &args.load;
    StepLoad {
        concurrency: l.concurrency,
        rate: l.rate,
        arrival: l.arrival.map(|a| a.name().to_string()),
        burstiness: l.burstiness,
        requests: l.requests,
        duration: l.duration.map(|d| d.to_string()),
        warmup: l.warmup.clone(),
    }
}

/// The effective load of a step: the command line's profile if it gives one, else the step's; each bound
/// likewise.
fn merge_load(cli: &StepLoad, step: Option<&StepLoad>) -> StepLoad {
    let step = step.cloned().unwrap_or_default();
    let profile_from_cli = cli.concurrency.is_some() || cli.rate.is_some();
    let p = if profile_from_cli { cli } else { &step };
    StepLoad {
        concurrency: p.concurrency,
        rate: p.rate,
        arrival: cli.arrival.clone().or(step.arrival.clone()),
        burstiness: cli.burstiness.or(step.burstiness),
        requests: cli.requests.or(step.requests),
        duration: cli.duration.clone().or(step.duration.clone()),
        warmup: cli.warmup.clone().or(step.warmup.clone()),
    }
}

fn load(l: &StepLoad) -> Result<LoadProfile> {
    if l.concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    Ok(match (l.rate, l.concurrency) {
        (Some(rate), max_concurrency) => {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("--rate must be a positive number of requests per second");
            }
            let arrival = match l.arrival.as_deref().unwrap_or("poisson").to_ascii_lowercase().as_str() {
                "constant" | "uniform" => Arrival::Constant,
                "poisson" => Arrival::Poisson,
                "gamma" => {
                    let k = l.burstiness.unwrap_or(1.0);
                    if !(k.is_finite() && k > 0.0) {
                        bail!("--burstiness must be a positive number (1 = Poisson)");
                    }
                    Arrival::Gamma { burstiness: k }
                }
                other => bail!("--arrival '{other}': use constant, poisson or gamma"),
            };
            LoadProfile::Rate { rate, arrival, max_concurrency }
        }
        (None, Some(1)) | (None, None) => LoadProfile::Sequential,
        (None, Some(concurrency)) => LoadProfile::Concurrency { concurrency },
    })
}

fn bounds(l: &StepLoad, load: &LoadProfile, iterations: u32) -> Result<Bounds> {
    let duration_s = l.duration.as_deref().map(|d| duration("--duration", d)).transpose()?.map(|d| d.as_secs_f64());
    let warmup = match l.warmup.as_deref() {
        None => Warmup::None,
        Some(w) => match w.trim().parse::<u64>() {
            Ok(0) => Warmup::None,
            Ok(n) => Warmup::Requests(n),
            Err(_) => Warmup::Seconds(duration("--warmup", w)?.as_secs_f64()),
        },
    };
    if l.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    let mut requests = l.requests;
    if requests.is_none() && duration_s.is_none() {
        let iterations = u64::from(iterations.max(1));
        requests = Some(match load {
            LoadProfile::Sequential => iterations,
            LoadProfile::Concurrency { concurrency } => iterations * u64::from(*concurrency),
            LoadProfile::Rate { .. } => bail!("--rate needs a bound: add --requests N or --duration D"),
        });
    }
    Ok(Bounds { requests, duration_s, warmup })
}

/// Read a step's `prompt_file` (relative to the scenario file) into its prompts.
fn read_prompt_file(step: &Step, base: Option<&PathBuf>) -> Result<Vec<String>> {
    let Some(file) = &step.prompt_file else { return Ok(Vec::new()) };
    let path = match base {
        Some(dir) => dir.join(file),
        None => PathBuf::from(file),
    };
    prompt_lines(&path).with_context(|| format!("step '{}': prompt_file", step.name))
}

/// The prompts of a file, one per non-empty line; an empty file is an error.
fn prompt_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let prompts: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if prompts.is_empty() {
        bail!("'{}' has no prompts (one per non-empty line)", path.display());
    }
    Ok(prompts)
}

/// Read a step's `dataset` (JSON Lines, relative to the scenario file): conversations, or a trace (request per
/// turn or Mooncake, judged by its first record). An error names the file and the line.
fn read_dataset(step: &Step, file: &str, base: Option<&PathBuf>) -> Result<Workload> {
    let path = base.map_or_else(|| PathBuf::from(file), |dir| dir.join(file));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("step '{}': cannot read dataset '{}'", step.name, path.display()))?;
    if velollm_core::workload::trace::looks_like_trace(&text) {
        let sessions = velollm_core::workload::trace::parse(&text)
            .map_err(|e| anyhow!("step '{}': trace {}: {e}", step.name, path.display()))?;
        return Ok(Workload::Trace(velollm_core::workload::trace::TraceReplay::new(sessions)));
    }
    let dataset = Dataset::parse(&text)
        .map_err(|e| anyhow!("step '{}': dataset {}:{}: {}", step.name, path.display(), e.line, e.message))?;
    if dataset.sessions.is_empty() {
        bail!("step '{}': dataset '{}' has no conversations (one JSON record per line)", step.name, path.display());
    }
    Ok(Workload::Sessions(dataset.sessions))
}

/// A scenario step as a runnable plan, with the command line's overrides applied.
fn scenario_step(args: &BenchArgs, s: &Step, base: Option<&PathBuf>, cli: &StepLoad) -> Result<StepPlan> {
    let w = &args.workload;
    let mut workload = s.workload().map_err(|e| anyhow!("{}: {e}", w.scenario))?;
    if let (Workload::Sessions(_), Some(file)) = (&workload, &s.dataset) {
        workload = read_dataset(s, file, base)?;
    }
    if let Workload::Prompts(p) = &mut workload {
        p.extend(read_prompt_file(s, base)?);
    }
    if let (Workload::Conversation(_) | Workload::Sessions(_), Some(0)) = (&workload, w.turns) {
        bail!("--turns must be at least 1");
    }
    match (&mut workload, w.turns) {
        (Workload::Conversation(turns), Some(n)) => *turns = turns.iter().cycle().take(n as usize).cloned().collect(),
        // A dataset's conversations are cut to at most N turns, never repeated.
        (Workload::Sessions(sessions), Some(n)) => sessions.iter_mut().for_each(|t| t.truncate(n as usize)),
        _ => {}
    }
    let mut l = merge_load(cli, s.load.as_ref());
    if let Workload::Trace(t) = &workload {
        // A trace's sessions run at their recorded times: one replay of every session unless told otherwise.
        l.requests = l.requests.or(Some(t.roots.len() as u64));
    }
    let profile = load(&l)?;
    let thresholds = s
        .thresholds
        .iter()
        .map(|t| t.parse::<Threshold>().map_err(|e| anyhow!("step '{}': {e}", s.name)))
        .collect::<Result<Vec<_>>>()?;
    Ok(StepPlan {
        name: s.name.clone(),
        workload,
        system: w.system.clone().or_else(|| s.system.clone()),
        context: s.context.clone(),
        context_tokens: s.context_tokens,
        fresh_context: s.fresh_context,
        cache: s.cache.clone(),
        max_tokens: w.max_tokens.unwrap_or(s.max_tokens),
        exact_output: w.exact_output || s.exact_output,
        temperature: w.temperature.or(s.temperature),
        load: profile,
        bounds: bounds(&l, &profile, args.load.iterations.unwrap_or(s.iterations))?,
        tools: s.tools.clone(),
        checks: s.checks.clone(),
        retries: s.retries,
        connection: s.connection,
        cold: s.cold,
        tags: s.tags.clone(),
        thresholds,
    })
}

/// Read a prices file (`--prices`).
pub fn prices(path: &Path) -> Result<PriceTable> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("--prices '{}': {e}", path.display()))?;
    PriceTable::parse(&text).map_err(|e| anyhow!("--prices '{}': {e}", path.display()))
}

/// The breakpoint placements of `--cache-breakpoints` (`1,2,1+2`): each with its label.
fn breakpoint_variants(text: &str) -> Result<Vec<(String, Vec<Breakpoint>)>> {
    text.split(',')
        .map(|v| {
            let v = v.trim();
            let points = v
                .split('+')
                .map(|n| {
                    n.trim().parse::<u8>().ok().and_then(Breakpoint::from_number).ok_or_else(|| {
                        anyhow!(
                            "--cache-breakpoints: '{n}' is not a breakpoint (use 1 = system prompt, 2 = context, \
                             3 = prompt; join with + and separate placements with commas, e.g. 1,2,1+2)"
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((v.to_string(), points))
        })
        .collect()
}

/// The cache-study variants asked on the command line: every step with a reusable context (and no fresh
/// context) becomes one step per breakpoint placement, and gains one TTL step per lifetime.
fn cache_variants(steps: Vec<StepPlan>, args: &BenchArgs) -> Result<Vec<StepPlan>> {
    let study = &args.cache_study;
    let placements = study.cache_breakpoints.as_deref().map(breakpoint_variants).transpose()?;
    let ttls = match study.ttl.as_deref() {
        Some(list) => Some(
            list.split(',')
                .map(|t| Ok((t.trim().to_string(), duration("--ttl", t)?)))
                .collect::<Result<Vec<(String, Duration)>>>()?,
        ),
        None => None,
    };
    if placements.is_none() && ttls.is_none() {
        return Ok(steps);
    }
    let studied = |s: &StepPlan| !s.fresh_context && (s.context.is_some() || s.context_tokens.is_some());
    if !steps.iter().any(studied) {
        bail!(
            "--cache-breakpoints and --ttl study steps with a reusable context (`context` or `context_tokens` in \
             the scenario), and this workload has none: use --scenario prompt-cache"
        );
    }
    let gap = match (study.ttl_gap, &ttls) {
        (Some(g), _) => g.0,
        (None, Some(t)) => t.iter().map(|(_, d)| *d).min().unwrap_or_default().mul_f64(1.1),
        (None, None) => Duration::ZERO,
    };
    if ttls.is_some() && gap.is_zero() {
        bail!("--ttl-gap must be longer than 0");
    }
    let mut out = Vec::new();
    for s in steps {
        if !studied(&s) {
            out.push(s);
            continue;
        }
        match &placements {
            Some(variants) => {
                for (label, points) in variants {
                    let mut v = s.clone();
                    v.name = format!("{}@bp{label}", s.name);
                    v.cache.breakpoints = points.clone();
                    v.tags.insert("cache_breakpoints".into(), label.clone());
                    out.push(v);
                }
            }
            None => out.push(s.clone()),
        }
        for (text, _) in ttls.iter().flatten() {
            let mut v = s.clone();
            v.name = format!("{}@ttl{text}", s.name);
            v.cache.ttl = Some(text.clone());
            v.load = LoadProfile::Rate {
                rate: 1.0 / gap.as_secs_f64(),
                arrival: Arrival::Constant,
                max_concurrency: Some(1),
            };
            v.bounds = Bounds {
                requests: Some(study.ttl_requests.unwrap_or(3).max(2)),
                duration_s: None,
                warmup: Warmup::None,
            };
            v.tags.insert("cache_ttl".into(), text.clone());
            v.tags.insert("ttl_gap".into(), humantime::format_duration(gap).to_string());
            out.push(v);
        }
    }
    Ok(out)
}

/// Build the plan of `velollm bench`.
pub fn bench(args: &BenchArgs) -> Result<Plan, InputError> {
    bench_inner(args).map_err(InputError)
}

/// How `bench` reaches its target (URL, dialect, key, timeouts, certificate), from the command line: what
/// a run of any workload shares, and all that the semantic cache's evaluation needs.
pub fn options(args: &BenchArgs) -> Result<BenchOptions, InputError> {
    options_inner(args).map_err(InputError)
}

fn options_inner(args: &BenchArgs) -> Result<BenchOptions> {
    let (target, w, out) = (&args.target, &args.workload, &args.output);
    let backend = target.backend.backend();
    let url = args.url.clone().unwrap_or_else(|| match backend {
        Backend::Dialect(d) if d.is_ollama() => "http://127.0.0.1:11434".into(),
        _ => "http://127.0.0.1:8080".into(),
    });
    let api_key = match &target.api_key_env {
        Some(var) => {
            let key = std::env::var(var).map_err(|_| {
                anyhow!("--api-key-env {var}: the environment variable {var} is not set (export {var}=… first)")
            })?;
            keep_secret(&key);
            Some(Secret::new(key))
        }
        None => None,
    };
    if let Some(c) = url_credentials(&url) {
        keep_secret(c);
    }
    let c = &args.client;
    let timeouts = Timeouts {
        connect: c.connect_timeout.0,
        first_token: c.first_token_timeout.0,
        idle: c.idle_timeout.0,
        total: c.timeout.0,
    };
    if let Some(path) = &target.ca_cert {
        velollm_engine::transport::read_ca_cert(path).map_err(|e| anyhow!(e))?;
    }
    Ok(BenchOptions {
        url,
        backend,
        model: target.model.clone(),
        api_key,
        timeouts,
        tokenizer: w.tokenizer.clone(),
        keep_text: out.keep_text,
        origin: None,
        gate: None,
        ca_cert: target.ca_cert.clone(),
        aborts: aborts(args)?,
        headers: Vec::new(),
        cache_header: None,
    })
}

fn bench_inner(args: &BenchArgs) -> Result<Plan> {
    let (w, load_args, out) = (&args.workload, &args.load, &args.output);
    let options = options_inner(args)?;
    let mut slo: Option<Slo> = None;
    for spec in &load_args.slo {
        let parsed: Slo = spec.parse().map_err(|e| anyhow!("--slo: {e}"))?;
        slo.get_or_insert_with(Slo::default).extend(parsed);
    }
    if let Some(t) = w.temperature.filter(|t| !(t.is_finite() && *t >= 0.0)) {
        bail!("--temperature must be a non-negative number, got {t}");
    }
    if w.max_tokens == Some(0) {
        bail!("--max-tokens must be at least 1");
    }
    if let Some(p) = w.tokenizer.as_ref().filter(|p| !p.exists()) {
        bail!("--tokenizer '{}' does not exist (give the path of a Hugging Face tokenizer.json)", p.display());
    }
    let cli = cli_load(args);
    let (steps, scenario_name, analyses, thresholds) = match workload(args)? {
        Some(workload) => {
            let name = match &workload {
                Workload::Synthetic { prompt_tokens } => format!("synthetic-{prompt_tokens}"),
                Workload::Trace(_) => "trace".to_string(),
                _ => "prompts".to_string(),
            };
            let profile = load(&cli)?;
            let mut bounds = bounds(&cli, &profile, load_args.iterations.unwrap_or(1))?;
            let mut analyses = Vec::new();
            if let Workload::Trace(t) = &workload {
                if load_args.rate.is_some() || load_args.concurrency.is_some() || load_args.duration.is_some() {
                    bail!(
                        "--trace runs its sessions at their recorded times (or together with --sessions-together): \
                         leave out --rate, --concurrency and --duration; -n N replays N sessions"
                    );
                }
                bounds.requests = Some(load_args.requests.unwrap_or(t.roots.len() as u64));
                analyses.push(AnalysisSpec::Agent { step: name.clone() });
            }
            let mut step = StepPlan::simple(name.clone(), workload, w.max_tokens.unwrap_or(128), profile, bounds);
            step.system = w.system.clone();
            step.exact_output = w.exact_output;
            step.temperature = w.temperature;
            (vec![step], name, analyses, Vec::new())
        }
        None => {
            let (sc, base) = scenario(&w.scenario)?;
            let steps =
                sc.steps.iter().map(|s| scenario_step(args, s, base.as_ref(), &cli)).collect::<Result<Vec<_>>>()?;
            let thresholds = sc
                .thresholds
                .iter()
                .map(|t| t.parse::<Threshold>().map_err(|e| anyhow!("{e}")))
                .collect::<Result<_>>()?;
            (steps, sc.name, sc.analyses, thresholds)
        }
    };
    let mut steps = cache_variants(steps, args)?;
    let https = options.url.trim_start().to_ascii_lowercase().starts_with("https://");
    let asked = velollm_engine::plan::Transports { http2: args.target.http2, websocket: args.target.websocket };
    let mut notes = velollm_engine::plan::connection_plan(&mut steps, https, asked);
    if steps.is_empty() {
        bail!("every step was skipped: {}", notes.join("; "));
    }
    let scenario_workload = args.trace.trace.is_none() && !w.has_prompts();
    if steps.len() > 1 && scenario_workload {
        // `-n N` bounds each step: say what the whole run sends before it starts.
        let total: Option<u64> = steps.iter().map(StepPlan::expected_requests).sum();
        let all = total.map_or_else(String::new, |n| format!(", {n} requests in all"));
        notes.push(format!(
            "scenario '{}': {} steps{all} (--requests and --iterations apply to each step; --prompt or \
             --prompt-tokens runs a single step)",
            scenario_name,
            steps.len()
        ));
    }
    let mut analyses = analyses;
    if options.aborts.is_some() {
        analyses.extend(steps.iter().map(|s| AnalysisSpec::Aborts { step: s.name.clone() }));
    }
    if let Some(width) = load_args.slice {
        let width_s = width.0.as_secs_f64();
        if width_s <= 0.0 {
            bail!("--slice must be longer than 0 (e.g. 10s)");
        }
        analyses.extend(steps.iter().map(|s| AnalysisSpec::Slices { step: s.name.clone(), width_s }));
    }
    let mut thresholds = thresholds;
    // The HTTP/2 figures (`h2_…`) and the WebSocket ones (`ws_…`) exist only when such a step ran.
    for (mode, prefix) in [(ConnectionMode::Http2, "h2_"), (ConnectionMode::WebSocket, "ws_")] {
        if !steps.iter().any(|s| s.connection == mode) {
            thresholds.retain(|t: &Threshold| !t.target.starts_with(prefix));
        }
    }
    let prices = match &args.cache_study.prices {
        Some(path) => Some(prices(path)?),
        None => None,
    };
    Ok(Plan {
        prices,
        options,
        steps,
        scenario: scenario_name,
        seed: w.seed,
        slo,
        output: out.output.clone(),
        records: out.records.clone(),
        db: out.db.clone(),
        progress: !out.no_progress,
        selfcheck: !args.client.no_selfcheck,
        analyses,
        thresholds,
        check: out.check,
        notes,
    })
}
