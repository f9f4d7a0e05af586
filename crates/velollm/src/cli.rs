//! Command-line definitions (clap derive). Nothing here runs anything; `plan.rs` turns these into a plan.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Measure LLM inference latency correctly and prove whether an optimization helped.
#[derive(Debug, Parser)]
#[command(name = "velollm", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok · 1 error during the run · 2 invalid input · 3 a threshold failed \
(bench --check) or a compare gate failed · 4 server unreachable, unrecognised, or a launched server did not start · 5 every measured request failed · 130 interrupted (partial result kept)")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark an endpoint: a scenario or prompts under a load profile, every request recorded.
    Bench(Box<BenchArgs>),
    /// The original velollm command: the standard suite against Ollama (or -b llamacpp).
    Benchmark(LegacyArgs),
    /// Built-in scenarios: list them, or print one as an editable TOML file.
    Scenario {
        /// What to do.
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Compare runs: per step and metric, Δ, 95 % confidence interval, p-value and a verdict; CI gates.
    Compare(crate::compare::CompareArgs),
    /// Paired A/B experiment: the same requests to two targets (URLs or launch commands) in alternating order
    /// (A→B, B→A, …); per metric the paired difference with its confidence interval, a signed-rank test and a
    /// verdict; the speedup; with --b-proxies-a, the proxy overhead.
    Ab(Box<crate::ab::AbArgs>),
    /// Render a result document: Markdown, self-contained HTML with charts, CSV exports.
    Report(crate::report::ReportArgs),
    /// Every run indexed in the history database: list, filter, trends over time.
    History(crate::history::HistoryArgs),
    /// Launch the server in every configuration of a grid, benchmark each on the same workload and seed,
    /// and name the best by an objective (trade-off table, margin with its confidence interval; resumable).
    Tune(Box<TuneArgs>),
    /// This machine's hardware: GPUs, CPU, memory, OS (text, or --json).
    Detect(crate::detect::DetectArgs),
    /// Recommended settings for Ollama, llama.cpp or vLLM on this machine, each with its reason.
    Optimize(crate::optimize::OptimizeArgs),
    /// velollm's own cost against its built-in loopback server: added latency per request and per chunk,
    /// the request and chunk rate it sustains, CPU per request (--serve: run that server for other clients).
    Selfcheck(crate::selfcheck::SelfcheckArgs),
    /// A gateway in front of model servers: every dialect passed through as it streams, an exact response
    /// cache on the path, and in every response what it did (x-velollm-cache) and what it cost
    /// (x-velollm-overhead-ms); /health, /ready, /metrics.
    Proxy(Box<crate::proxy::ProxyArgs>),
}

/// `velollm scenario …`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Every built-in scenario: name, purpose, what it measures.
    List,
    /// Print a built-in scenario's TOML (`velollm scenario show long-conversation > mine.toml`).
    Show {
        /// Scenario name.
        name: String,
    },
}

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

/// `velollm bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of the server [default: http://127.0.0.1:11434 for Ollama, else http://127.0.0.1:8080].
    #[arg(long, env = "VELOLLM_URL", help_heading = "Target")]
    pub url: Option<String>,
    /// Model name (default: the server's only model).
    #[arg(short, long, help_heading = "Target")]
    pub model: Option<String>,
    /// API dialect: auto, openai-chat, openai-completions, ollama-chat, ollama-generate, llamacpp, anthropic
    /// (aliases: openai, ollama, llama.cpp, claude).
    #[arg(short, long, default_value = "auto", help_heading = "Target")]
    pub backend: String,
    /// Name of the environment variable holding the API key (sent as a bearer token, as x-api-key to
    /// Anthropic; never stored).
    #[arg(long, value_name = "VAR", help_heading = "Target")]
    pub api_key_env: Option<String>,
    /// Trust this PEM certificate besides the public roots (a self-signed or private-CA https server);
    /// certificates are always verified.
    #[arg(long, value_name = "FILE", help_heading = "Target")]
    pub ca_cert: Option<PathBuf>,
    /// HTTP/2 (ALPN h2 over https, prior knowledge over http): runs a scenario's http2 steps (skipped
    /// otherwise); in a scenario without one, every step shares one HTTP/2 connection among its workers.
    #[arg(long, help_heading = "Target")]
    pub http2: bool,
    /// WebSocket sessions (one per worker, on the generation route; `velollm proxy` offers them): runs a
    /// scenario's websocket steps (skipped otherwise); in a scenario without one, every step.
    #[arg(long, help_heading = "Target")]
    pub websocket: bool,

    /// Built-in scenario name or scenario TOML file.
    #[arg(short, long, default_value = "standard", help_heading = "Workload")]
    pub scenario: String,
    /// A prompt to send instead of the scenario (repeat for several, used in turn).
    #[arg(short, long, help_heading = "Workload")]
    pub prompt: Vec<String>,
    /// A file of prompts, one per non-empty line, instead of the scenario.
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    pub prompt_file: Option<PathBuf>,
    /// Synthetic prompts of this many tokens, each different, instead of the scenario.
    #[arg(long, value_name = "N", help_heading = "Workload")]
    pub prompt_tokens: Option<u32>,
    /// A system prompt.
    #[arg(long, help_heading = "Workload")]
    pub system: Option<String>,
    /// Maximum output tokens (overrides the scenario's) [default for prompts: 128].
    #[arg(long, value_name = "N", help_heading = "Workload")]
    pub max_tokens: Option<u32>,
    /// Ask for exactly --max-tokens output tokens (ignore_eos/min_tokens; not supported by Ollama).
    #[arg(long, help_heading = "Workload")]
    pub exact_output: bool,
    /// Sampling temperature.
    #[arg(long, help_heading = "Workload")]
    pub temperature: Option<f64>,
    /// Replay an agent trace (JSON Lines, one recorded model call per line with its whole history): its
    /// sessions at their recorded starts, each call after its recorded pause; `-n N` replays N sessions.
    #[arg(long, value_name = "FILE", help_heading = "Agent trace")]
    pub trace: Option<PathBuf>,
    /// Multiply every recorded time of --trace by F (0.5 = twice as fast; 0 = no pauses) [default: 1].
    #[arg(long, value_name = "F", requires = "trace", help_heading = "Agent trace")]
    pub time_scale: Option<f64>,
    /// Cap any single pause of --trace (after scaling), e.g. 5s.
    #[arg(long, value_name = "DURATION", requires = "trace", help_heading = "Agent trace")]
    pub max_delay: Option<String>,
    /// Start every session of --trace at once instead of at its recorded time.
    #[arg(long, requires = "trace", help_heading = "Agent trace")]
    pub sessions_together: bool,
    /// Local tokenizer.json for token counts when the server reports no usage.
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    pub tokenizer: Option<PathBuf>,

    /// Prompt-cache breakpoint placements to study, each run as its own step (Anthropic cache_control):
    /// 1 = end of the system prompt, 2 = end of the context, 3 = end of the prompt; `+` joins several in one
    /// placement (e.g. 1,2,1+2).
    #[arg(long, value_name = "LIST", help_heading = "Prompt cache")]
    pub cache_breakpoints: Option<String>,
    /// Cache lifetimes to study (e.g. 5m,1h): per lifetime, a step whose requests are spaced --ttl-gap apart,
    /// asking for that lifetime where the dialect takes one (Anthropic accepts 5m and 1h).
    #[arg(long, value_name = "LIST", help_heading = "Prompt cache")]
    pub ttl: Option<String>,
    /// Spacing of the TTL study's requests [default: 1.1 × the shortest --ttl, just past it].
    #[arg(long, value_name = "DURATION", requires = "ttl", help_heading = "Prompt cache")]
    pub ttl_gap: Option<String>,
    /// Requests per TTL step, the first one writing the cache [default: 3].
    #[arg(long, value_name = "N", requires = "ttl", help_heading = "Prompt cache")]
    pub ttl_requests: Option<u64>,
    /// Token prices (TOML: per model input, output, cache_write, cache_read, per million tokens): every step
    /// then reports its cost, and comparisons the ROI.
    #[arg(long, value_name = "FILE", help_heading = "Prompt cache")]
    pub prices: Option<PathBuf>,

    /// Closed-loop workers (with --rate: the most requests in flight).
    #[arg(short, long, value_name = "N", help_heading = "Load")]
    pub concurrency: Option<u32>,
    /// Open-loop arrival rate in requests per second.
    #[arg(short, long, value_name = "R", help_heading = "Load")]
    pub rate: Option<f64>,
    /// Arrival process for --rate: constant, poisson (default) or gamma.
    #[arg(long, help_heading = "Load")]
    pub arrival: Option<String>,
    /// Gamma shape for --arrival gamma (1 = Poisson; < 1 burstier) [default: 1].
    #[arg(long, help_heading = "Load")]
    pub burstiness: Option<f64>,
    /// Sequential repetitions per step (conversations, for multi-turn steps; overrides the scenario's).
    #[arg(short, long, value_name = "N", help_heading = "Load")]
    pub iterations: Option<u32>,
    /// Turns per conversation in multi-turn steps (the scenario's turns are cycled to this length).
    #[arg(long, value_name = "N", help_heading = "Workload")]
    pub turns: Option<u32>,
    /// Measured requests per step.
    #[arg(short = 'n', long, value_name = "N", help_heading = "Load")]
    pub requests: Option<u64>,
    /// Measurement duration per step (e.g. 60s, 5m).
    #[arg(short, long, value_name = "DURATION", help_heading = "Load")]
    pub duration: Option<String>,
    /// Warm-up per step, excluded from results: a request count (3) or a duration (10s).
    #[arg(long, value_name = "N|DURATION", help_heading = "Load")]
    pub warmup: Option<String>,
    /// Seed for arrivals and synthetic prompts (recorded in the result).
    #[arg(long, default_value_t = 42, help_heading = "Load")]
    pub seed: u64,
    /// Abort this share of the requests mid-stream, as agents do (e.g. 0.2): they are counted as `aborted`, not
    /// measured, and the aborts analysis compares the requests sent right after an abort with the others.
    #[arg(long, value_name = "F", help_heading = "Load")]
    pub cancel_share: Option<f64>,
    /// Abort the chosen requests this long after sending them (e.g. 500ms) [default: at their first token].
    #[arg(long, value_name = "DURATION", help_heading = "Load")]
    pub cancel_after: Option<String>,
    /// Cut every step into time slices of this width (e.g. 10s) and report each slice's throughput and
    /// latency, so that drift over a long run shows.
    #[arg(long, value_name = "DURATION", help_heading = "Load")]
    pub slice: Option<String>,
    /// Service-level objectives for goodput, e.g. ttft=2s,tpot=50ms,e2e=30s (repeatable).
    #[arg(long, value_name = "SPEC", help_heading = "Load")]
    pub slo: Vec<String>,

    /// Sweep the load in K steps after a capacity probe and report the throughput/latency curve, its knee
    /// and over-saturation (one workload; --requests or --duration bound every step).
    #[arg(long, value_name = "K", help_heading = "Sweep")]
    pub sweep: Option<u32>,
    /// What the sweep varies: rate (open-loop arrivals up to 1.2× the probe's throughput; --arrival applies)
    /// or concurrency (workers from 1 to --sweep-max-concurrency).
    #[arg(long, value_enum, default_value_t = SweepModeArg::Rate, requires = "sweep", help_heading = "Sweep")]
    pub sweep_mode: SweepModeArg,
    /// Workers of the sweep's capacity probe, the top of a concurrency sweep (a rate sweep allows twice as
    /// many requests in flight).
    #[arg(long, default_value_t = 32, value_name = "N", requires = "sweep", help_heading = "Sweep")]
    pub sweep_max_concurrency: u32,

    /// Write the result document (JSON) here, updated as the run goes.
    #[arg(short, long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,
    /// Write every request's record (JSONL) here.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub records: Option<PathBuf>,
    /// Continue the interrupted run whose result is --output (count-bounded steps, written with --records):
    /// its finished steps are kept and the interrupted step sends only the requests that did not finish.
    #[arg(long, requires = "output", help_heading = "Output")]
    pub resume: bool,
    /// Keep the generated text in the records.
    #[arg(long, help_heading = "Output")]
    pub keep_text: bool,
    /// No progress bar.
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,
    /// Skip the self-check (about 2 s against velollm's loopback server before the run) that measures the
    /// client's own overhead and flags a run it makes untrustworthy (also VELOLLM_NO_SELFCHECK=1).
    #[arg(long, env = "VELOLLM_NO_SELFCHECK", value_parser = clap::builder::FalseyValueParser::new(), help_heading = "Output")]
    pub no_selfcheck: bool,
    /// Exit with code 3 when a scenario threshold fails (the scenario becomes an acceptance test).
    #[arg(long, help_heading = "Output")]
    pub check: bool,
    /// After the run, compare it with this baseline result (as `velollm compare BASELINE RESULT`).
    #[arg(long, value_name = "FILE", help_heading = "Compare")]
    pub compare_to: Option<PathBuf>,
    /// Gates and success criteria applied to the comparison (with --compare-to).
    #[command(flatten)]
    pub gates: crate::compare::GateArgs,

    /// Launch the server, watch it and stop it (see the Server options).
    #[command(flatten)]
    pub server: ServerArgs,

    /// Timeout to open a connection.
    #[arg(long, default_value = "10s", value_name = "DURATION", help_heading = "Timeouts")]
    pub connect_timeout: String,
    /// Timeout from sending a request to its first output token (headers and role chunks do not count).
    #[arg(long, default_value = "60s", value_name = "DURATION", help_heading = "Timeouts")]
    pub first_token_timeout: String,
    /// Timeout without any data between chunks, after the first token.
    #[arg(long, default_value = "60s", value_name = "DURATION", help_heading = "Timeouts")]
    pub idle_timeout: String,
    /// Timeout for a whole request.
    #[arg(long, default_value = "600s", value_name = "DURATION", help_heading = "Timeouts")]
    pub timeout: String,
}

/// Launching and watching the server under test (`bench`, `tune`).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Start the server with this command, benchmark it, stop it: `{port}` becomes a free port, `{key}` a
    /// --param value; its output goes to a log beside the result. Measures cold start and samples RSS/CPU.
    #[arg(long, value_name = "CMD", conflicts_with = "url", help_heading = "Server")]
    pub launch: Option<String>,
    /// A value for a {key} of the --launch command (repeatable): --param n_ctx=2048.
    #[arg(long, value_name = "KEY=VALUE", requires = "launch", help_heading = "Server")]
    pub param: Vec<String>,
    /// How long the launched server may take to become ready.
    #[arg(long, default_value = "300s", value_name = "DURATION", help_heading = "Server")]
    pub launch_timeout: String,
    /// The launched server's log file [default: beside --output as NAME.server.log, else in the temp dir].
    #[arg(long, value_name = "FILE", requires = "launch", help_heading = "Server")]
    pub server_log: Option<PathBuf>,
    /// Restart the launched server when it dies, and go on with the run (the gap is reported).
    #[arg(long, requires = "launch", help_heading = "Server")]
    pub restart_on_failure: bool,
    /// Do not send the cold first request of a launched server (cold start is then spawn → ready only).
    #[arg(long, requires = "launch", help_heading = "Server")]
    pub no_cold_start: bool,
    /// Sample RSS and CPU of this process and its children (a server velollm did not launch).
    #[arg(long, value_name = "PID", conflicts_with = "launch", help_heading = "Server")]
    pub server_pid: Option<u32>,
    /// The server's Prometheus endpoint [default: URL/metrics when it answers].
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub metrics_url: Option<String>,
    /// Do not scrape server metrics.
    #[arg(long, conflicts_with = "metrics_url", help_heading = "Server")]
    pub no_metrics: bool,
    /// How often resources are sampled and health and metrics are checked.
    #[arg(long, default_value = "500ms", value_name = "DURATION", help_heading = "Server")]
    pub sample_interval: String,
}

/// What `--sweep` varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SweepModeArg {
    /// Open-loop arrival rates anchored on the probe's throughput.
    Rate,
    /// Closed-loop worker counts.
    Concurrency,
}

/// `velollm benchmark` — the original CLI.
#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// Model to benchmark.
    #[arg(short, long, default_value = "llama3.2:3b")]
    pub model: String,
    /// Save results to this JSON file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Backend: ollama or llamacpp.
    #[arg(short, long, default_value = "ollama")]
    pub backend: String,
    /// Base URL [default: the backend's usual local address].
    #[arg(long, env = "VELOLLM_URL")]
    pub url: Option<String>,
}
