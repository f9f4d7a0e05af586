//! Argument groups shared by the commands, and the typed values they parse. A flag is declared once, here,
//! and flattened into every command that takes it (`bench`, `ab`, `tune`), so it is spelled, parsed and
//! explained the same way everywhere. Each group's `Default` is what an empty command line gives, so a command
//! can build another's arguments in code (`optimize --verify`, `benchmark`) without writing an argv.

use clap::{Args, ValueEnum};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use velollm_engine::Backend;
use velollm_engine::dialect::DialectKind;

/// A duration flag: `500ms`, `30s`, `5m`, `1h 30m`, or a plain number of seconds (`30`, `0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Dur(Duration::from_secs(n))
    }

    /// `n` milliseconds.
    pub const fn millis(n: u64) -> Self {
        Dur(Duration::from_millis(n))
    }
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(d) = humantime::parse_duration(t) {
            return Ok(Dur(d));
        }
        match t.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Ok(Dur(Duration::from_secs_f64(s))),
            _ => Err(format!("'{text}' is not a duration: write 500ms, 30s, 5m or a number of seconds")),
        }
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The API dialect (`--backend`): one of velollm's dialects, or `auto` to detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum BackendArg {
    /// Detect the dialect from the server's routes.
    #[default]
    Auto,
    /// OpenAI chat completions (vLLM, SGLang, TGI, llama-server, cloud APIs).
    #[value(name = "openai-chat", alias = "openai", alias = "chat", alias = "vllm", alias = "sglang", alias = "tgi")]
    OpenAiChat,
    /// OpenAI text completions.
    #[value(name = "openai-completions", alias = "completions")]
    OpenAiCompletions,
    /// Ollama's /api/chat.
    #[value(name = "ollama-chat", alias = "ollama")]
    OllamaChat,
    /// Ollama's /api/generate.
    #[value(name = "ollama-generate")]
    OllamaGenerate,
    /// llama.cpp's native /completion.
    #[value(name = "llamacpp", alias = "llama.cpp", alias = "llama-cpp", alias = "llama-server")]
    LlamaCpp,
    /// Anthropic's Messages API.
    #[value(name = "anthropic", alias = "claude")]
    Anthropic,
}

impl BackendArg {
    /// The engine's dialect choice.
    pub fn backend(self) -> Backend {
        match self {
            BackendArg::Auto => Backend::Auto,
            BackendArg::OpenAiChat => Backend::Dialect(DialectKind::OpenAiChat),
            BackendArg::OpenAiCompletions => Backend::Dialect(DialectKind::OpenAiCompletions),
            BackendArg::OllamaChat => Backend::Dialect(DialectKind::OllamaChat),
            BackendArg::OllamaGenerate => Backend::Dialect(DialectKind::OllamaGenerate),
            BackendArg::LlamaCpp => Backend::Dialect(DialectKind::LlamaCpp),
            BackendArg::Anthropic => Backend::Dialect(DialectKind::Anthropic),
        }
    }
}

/// The arrival process of an open-loop load (`--arrival`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalArg {
    /// Evenly spaced arrivals.
    #[value(alias = "uniform")]
    Constant,
    /// Exponential gaps (the default).
    Poisson,
    /// Gamma gaps of shape --burstiness.
    Gamma,
}

impl ArrivalArg {
    /// The name a scenario file uses for it.
    pub fn name(self) -> &'static str {
        match self {
            ArrivalArg::Constant => "constant",
            ArrivalArg::Poisson => "poisson",
            ArrivalArg::Gamma => "gamma",
        }
    }
}

/// What `--sweep` varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SweepModeArg {
    /// Open-loop arrival rates anchored on the probe's throughput.
    #[default]
    Rate,
    /// Closed-loop worker counts.
    Concurrency,
}

/// The built-in scenario run when no workload is given.
pub const DEFAULT_SCENARIO: &str = "standard";
/// The default seed.
pub const DEFAULT_SEED: u64 = 42;

/// How to talk to the server (the URL aside: `ab` has two targets).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct TargetArgs {
    /// Model name (default: the server's only model).
    #[arg(short, long, help_heading = "Target")]
    pub model: Option<String>,
    /// API dialect [aliases: openai, ollama, llama.cpp, claude, vllm, …].
    #[arg(short, long, value_enum, default_value_t, ignore_case = true, help_heading = "Target")]
    pub backend: BackendArg,
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
}

/// What to send: a scenario, or prompts, and how the answers are asked for.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct WorkloadArgs {
    /// Built-in scenario name or scenario TOML file.
    #[arg(short, long, default_value = DEFAULT_SCENARIO, help_heading = "Workload")]
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
    #[arg(long, alias = "ignore-eos", help_heading = "Workload")]
    pub exact_output: bool,
    /// Sampling temperature.
    #[arg(long, help_heading = "Workload")]
    pub temperature: Option<f64>,
    /// Turns per conversation in multi-turn steps (the scenario's turns are cycled to this length).
    #[arg(long, value_name = "N", help_heading = "Workload")]
    pub turns: Option<u32>,
    /// Local tokenizer.json for token counts when the server reports no usage.
    #[arg(long, value_name = "FILE", help_heading = "Workload")]
    pub tokenizer: Option<PathBuf>,
    /// Seed for arrivals and synthetic prompts (recorded in the result).
    #[arg(long, default_value_t = DEFAULT_SEED, help_heading = "Workload")]
    pub seed: u64,
}

impl Default for WorkloadArgs {
    fn default() -> Self {
        WorkloadArgs {
            scenario: DEFAULT_SCENARIO.into(),
            prompt: Vec::new(),
            prompt_file: None,
            prompt_tokens: None,
            system: None,
            max_tokens: None,
            exact_output: false,
            temperature: None,
            turns: None,
            tokenizer: None,
            seed: DEFAULT_SEED,
        }
    }
}

impl WorkloadArgs {
    /// Prompts (or synthetic ones) were given instead of a scenario.
    pub fn has_prompts(&self) -> bool {
        !self.prompt.is_empty() || self.prompt_file.is_some() || self.prompt_tokens.is_some()
    }
}

/// An agent trace to replay (`bench`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct TraceArgs {
    /// Replay an agent trace (JSON Lines, one recorded model call per line with its whole history): its
    /// sessions at their recorded starts, each call after its recorded pause; `-n N` replays N sessions.
    #[arg(long, value_name = "FILE", help_heading = "Agent trace")]
    pub trace: Option<PathBuf>,
    /// Multiply every recorded time of --trace by F (0.5 = twice as fast; 0 = no pauses) [default: 1].
    #[arg(long, value_name = "F", requires = "trace", help_heading = "Agent trace")]
    pub time_scale: Option<f64>,
    /// Cap any single pause of --trace (after scaling), e.g. 5s.
    #[arg(long, value_name = "DURATION", requires = "trace", help_heading = "Agent trace")]
    pub max_delay: Option<Dur>,
    /// Start every session of --trace at once instead of at its recorded time.
    #[arg(long, requires = "trace", help_heading = "Agent trace")]
    pub sessions_together: bool,
}

/// The prompt-cache study and token prices (`bench`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct CacheStudyArgs {
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
    pub ttl_gap: Option<Dur>,
    /// Requests per TTL step, the first one writing the cache [default: 3].
    #[arg(long, value_name = "N", requires = "ttl", help_heading = "Prompt cache")]
    pub ttl_requests: Option<u64>,
    /// Token prices (TOML: per model input, output, cache_write, cache_read, per million tokens): every step
    /// then reports its cost, and comparisons the ROI.
    #[arg(long, value_name = "FILE", help_heading = "Prompt cache")]
    pub prices: Option<PathBuf>,
}

/// The semantic cache's evaluation (`bench --scenario semantic-cache`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct SemanticEvalArgs {
    /// Labelled data for a labelled evaluation: --scenario semantic-cache (JSONL: family, kind, text per
    /// line) or --scenario routing (JSONL: id, type, prompt, check) [default: the set shipped with velollm].
    #[arg(long, value_name = "FILE", help_heading = "Semantic cache evaluation")]
    pub labels: Option<PathBuf>,
    /// A response header that says whether a cache answered, read before x-velollm-cache, x-cache,
    /// x-cache-status and cf-cache-status.
    #[arg(long, value_name = "NAME", help_heading = "Semantic cache evaluation")]
    pub hit_header: Option<String>,
    /// The false-hit rate, in percent of hits, under which the operating point is chosen [default: 2].
    #[arg(long, value_name = "PERCENT", help_heading = "Semantic cache evaluation")]
    pub false_hit_target: Option<f64>,
    /// Sizes loaded into each store by --scenario vector-stores [default: 10000,100000].
    #[arg(long, value_name = "LIST", help_heading = "Semantic cache evaluation")]
    pub vectors: Option<String>,
    /// Queries per store and size in --scenario vector-stores [default: 200].
    #[arg(long, value_name = "N", help_heading = "Semantic cache evaluation")]
    pub queries: Option<usize>,
    /// Candidates the graph searches of the embedded index and of Redis Stack (its EF_RUNTIME) look at in
    /// --scenario vector-stores, one row each (e.g. 32,64) [default: the proxy's defaults: embedded 32 up to
    /// 100,000 vectors and 512 at 1,000,000, Redis Stack 64 up to 100,000 and 256 at 1,000,000].
    #[arg(long, value_name = "LIST", help_heading = "Semantic cache evaluation")]
    pub ef_search: Option<String>,
    /// Measure only the shared stores given (--redis-stack, --pgvector, --milvus) in --scenario vector-stores,
    /// not the embedded index (whose graph takes most of an hour to build at 1,000,000 vectors).
    #[arg(long, help_heading = "Semantic cache evaluation")]
    pub skip_embedded: bool,
    /// Writers loading each shared store at once in --scenario vector-stores, each on its own connection, each
    /// inserting one question at a time as a proxy replica does [default: 1].
    #[arg(long, value_name = "N", help_heading = "Semantic cache evaluation")]
    pub writers: Option<usize>,
    /// A Redis Stack server (redis://HOST:PORT) to compare too in --scenario vector-stores
    /// (scripts/redis-stack.sh start).
    #[arg(long, value_name = "URL", help_heading = "Semantic cache evaluation")]
    pub redis_stack: Option<String>,
    /// A Postgres server with pgvector (postgres://USER@HOST:PORT/DB) to compare too in --scenario
    /// vector-stores (scripts/pgvector.sh start).
    #[arg(long, value_name = "URL", help_heading = "Semantic cache evaluation")]
    pub pgvector: Option<String>,
    /// A Milvus server (milvus://HOST:PORT) to compare too in --scenario vector-stores (scripts/milvus-lite.sh
    /// start).
    #[arg(long, value_name = "URL", help_heading = "Semantic cache evaluation")]
    pub milvus: Option<String>,
}

/// The routing evaluation's tiers and settings (`bench --scenario routing`; the small tier is --url/--model).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct RoutingEvalArgs {
    /// The large tier's URL in --scenario routing.
    #[arg(long, value_name = "URL", help_heading = "Routing evaluation")]
    pub large_url: Option<String>,
    /// The large tier's model [default: what its server reports].
    #[arg(long, value_name = "NAME", help_heading = "Routing evaluation")]
    pub large_model: Option<String>,
    /// Labelled examples whose nearest ones vote (JSONL: id, type, prompt) [default: the 90 shipped with
    /// velollm, none of them a task; a task found among them is left out of its own vote].
    #[arg(long, value_name = "FILE", help_heading = "Routing evaluation")]
    pub route_examples: Option<PathBuf>,
    /// The vote share under which the router abstains to the large tier, at the operating point [default: 0.6].
    #[arg(long, value_name = "SHARE", help_heading = "Routing evaluation")]
    pub route_confidence: Option<f32>,
    /// Requests in flight in the load phase, per tier [default: 10].
    #[arg(long, value_name = "N", help_heading = "Routing evaluation")]
    pub route_parallel: Option<usize>,
}

/// The load profile and its bounds (`bench`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct LoadArgs {
    /// Closed-loop workers (with --rate: the most requests in flight).
    #[arg(short, long, value_name = "N", alias = "max-concurrency", help_heading = "Load")]
    pub concurrency: Option<u32>,
    /// Open-loop arrival rate in requests per second.
    #[arg(short, long, value_name = "R", alias = "request-rate", help_heading = "Load")]
    pub rate: Option<f64>,
    /// Arrival process for --rate [default: poisson].
    #[arg(long, value_enum, ignore_case = true, help_heading = "Load")]
    pub arrival: Option<ArrivalArg>,
    /// Gamma shape for --arrival gamma (1 = Poisson; < 1 burstier) [default: 1].
    #[arg(long, help_heading = "Load")]
    pub burstiness: Option<f64>,
    /// Sequential repetitions per step (conversations, for multi-turn steps; overrides the scenario's).
    #[arg(short, long, value_name = "N", help_heading = "Load")]
    pub iterations: Option<u32>,
    /// Measured requests per step.
    #[arg(short = 'n', long, value_name = "N", alias = "num-prompts", help_heading = "Load")]
    pub requests: Option<u64>,
    /// Measurement duration per step (e.g. 60s, 5m).
    #[arg(short, long, value_name = "DURATION", help_heading = "Load")]
    pub duration: Option<Dur>,
    /// Warm-up per step, excluded from results: a request count (3) or a duration (10s).
    #[arg(long, value_name = "N|DURATION", help_heading = "Load")]
    pub warmup: Option<String>,
    /// Abort this share of the requests mid-stream, as agents do (e.g. 0.2): they are counted as `aborted`, not
    /// measured, and the aborts analysis compares the requests sent right after an abort with the others.
    #[arg(long, value_name = "F", help_heading = "Load")]
    pub cancel_share: Option<f64>,
    /// Abort the chosen requests this long after sending them (e.g. 500ms) [default: at their first token].
    #[arg(long, value_name = "DURATION", help_heading = "Load")]
    pub cancel_after: Option<Dur>,
    /// Cut every step into time slices of this width (e.g. 10s) and report each slice's throughput and
    /// latency, so that drift over a long run shows.
    #[arg(long, value_name = "DURATION", help_heading = "Load")]
    pub slice: Option<Dur>,
    /// Service-level objectives for goodput, e.g. ttft=2s,tpot=50ms,e2e=30s (repeatable).
    #[arg(long, value_name = "SPEC", help_heading = "Load")]
    pub slo: Vec<String>,
}

/// The default number of workers of a sweep's capacity probe.
pub const SWEEP_MAX_CONCURRENCY: u32 = 32;

/// A load sweep (`bench --sweep`).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SweepArgs {
    /// Sweep the load in K steps after a capacity probe and report the throughput/latency curve, its knee
    /// and over-saturation (one workload; --requests or --duration bound every step).
    #[arg(long, value_name = "K", help_heading = "Sweep")]
    pub sweep: Option<u32>,
    /// What the sweep varies: rate (open-loop arrivals up to 1.2× the probe's throughput; --arrival applies)
    /// or concurrency (workers from 1 to --sweep-max-concurrency).
    #[arg(long, value_enum, default_value_t, requires = "sweep", help_heading = "Sweep")]
    pub sweep_mode: SweepModeArg,
    /// Workers of the sweep's capacity probe, the top of a concurrency sweep (a rate sweep allows twice as
    /// many requests in flight).
    #[arg(long, default_value_t = SWEEP_MAX_CONCURRENCY, value_name = "N", requires = "sweep", help_heading = "Sweep")]
    pub sweep_max_concurrency: u32,
}

impl Default for SweepArgs {
    fn default() -> Self {
        SweepArgs { sweep: None, sweep_mode: SweepModeArg::Rate, sweep_max_concurrency: SWEEP_MAX_CONCURRENCY }
    }
}

/// Where the run's documents go, and what is checked after it (`bench`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct OutputArgs {
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
    /// Exit with code 3 when a scenario threshold fails (the scenario becomes an acceptance test).
    #[arg(long, help_heading = "Output")]
    pub check: bool,
    /// The history database every finished run is indexed in [default: velollm's data directory].
    #[arg(long, env = "VELOLLM_DB", value_name = "FILE", help_heading = "Output")]
    pub db: Option<PathBuf>,
    /// After the run, compare it with this baseline result (as `velollm compare BASELINE RESULT`).
    #[arg(long, value_name = "FILE", help_heading = "Compare")]
    pub compare_to: Option<PathBuf>,
}

/// The client's own limits: timeouts, and the self-check of its overhead.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ClientArgs {
    /// Timeout to open a connection.
    #[arg(long, default_value_t = Dur::secs(10), value_name = "DURATION", help_heading = "Timeouts")]
    pub connect_timeout: Dur,
    /// Timeout from sending a request to its first output token (headers and role chunks do not count).
    #[arg(long, default_value_t = Dur::secs(60), value_name = "DURATION", help_heading = "Timeouts")]
    pub first_token_timeout: Dur,
    /// Timeout without any data between chunks, after the first token.
    #[arg(long, default_value_t = Dur::secs(60), value_name = "DURATION", help_heading = "Timeouts")]
    pub idle_timeout: Dur,
    /// Timeout for a whole request.
    #[arg(long, default_value_t = Dur::secs(600), value_name = "DURATION", help_heading = "Timeouts")]
    pub timeout: Dur,
    /// Skip the self-check (about 2 s against velollm's loopback server before the run) that measures the
    /// client's own overhead and flags a run it makes untrustworthy (also VELOLLM_NO_SELFCHECK=1).
    #[arg(long, env = "VELOLLM_NO_SELFCHECK", value_parser = clap::builder::FalseyValueParser::new(), help_heading = "Output")]
    pub no_selfcheck: bool,
}

impl Default for ClientArgs {
    fn default() -> Self {
        ClientArgs {
            connect_timeout: Dur::secs(10),
            first_token_timeout: Dur::secs(60),
            idle_timeout: Dur::secs(60),
            timeout: Dur::secs(600),
            // As on the command line, the environment may turn the self-check off (read by clap's own parser).
            no_selfcheck: std::env::var_os("VELOLLM_NO_SELFCHECK").is_some_and(|v| {
                use clap::builder::{FalseyValueParser, TypedValueParser};
                FalseyValueParser::new().parse_ref(&clap::Command::new("velollm"), None, &v).unwrap_or(false)
            }),
        }
    }
}

/// The default of `--launch-timeout`.
pub const LAUNCH_TIMEOUT: Dur = Dur::secs(300);
/// The default of `--sample-interval`.
pub const SAMPLE_INTERVAL: Dur = Dur::millis(500);

/// Launching and watching the server under test (`bench`, `tune`).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ServerArgs {
    /// Start the server with this command, benchmark it, stop it: `{port}` becomes a free port, `{key}` a
    /// --param value; its output goes to a log beside the result. Measures cold start and samples RSS/CPU.
    #[arg(long, value_name = "CMD", conflicts_with = "url", help_heading = "Server")]
    pub launch: Option<String>,
    /// A value for a {key} of the --launch command (repeatable): --param n_ctx=2048.
    #[arg(long, value_name = "KEY=VALUE", requires = "launch", help_heading = "Server")]
    pub param: Vec<String>,
    /// How long the launched server may take to become ready.
    #[arg(long, default_value_t = LAUNCH_TIMEOUT, value_name = "DURATION", help_heading = "Server")]
    pub launch_timeout: Dur,
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
    #[arg(long, default_value_t = SAMPLE_INTERVAL, value_name = "DURATION", help_heading = "Server")]
    pub sample_interval: Dur,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            launch: None,
            param: Vec::new(),
            launch_timeout: LAUNCH_TIMEOUT,
            server_log: None,
            restart_on_failure: false,
            no_cold_start: false,
            server_pid: None,
            metrics_url: None,
            no_metrics: false,
            sample_interval: SAMPLE_INTERVAL,
        }
    }
}

/// Gates and success criteria applied to a comparison (`compare`, `bench --compare-to`).
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct GateArgs {
    /// Fail (exit 3) when this holds for a candidate, e.g. 'ttft.p95 > +10%' (relative to the baseline),
    /// 'e2e.p50 > +50ms' (absolute change), 'success_rate < 0.99' (the candidate's value); repeatable.
    #[arg(long = "fail-if", value_name = "EXPR", help_heading = "Gates")]
    pub fail_if: Vec<String>,
    /// Fail (exit 3) when any compared metric significantly regressed.
    #[arg(long, help_heading = "Gates")]
    pub fail_on_regression: bool,
    /// Evaluate the source documents' success criteria: prompt-caching, small-models, speculative,
    /// semantic-cache, persistent-connections (exit 3 when one is missed); repeatable.
    #[arg(long, value_name = "PRESET", help_heading = "Gates")]
    pub criteria: Vec<String>,
}

/// `--json [FILE]`, with one meaning in every command that has it: the command's answer as JSON — on standard
/// output, instead of the text, when no FILE (or `-`) is given; in FILE, beside the text, otherwise.
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct JsonArg {
    /// The answer as JSON: on standard output instead of the text (`--json` or `--json -`), or in FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-", help_heading = "Output")]
    pub json: Option<PathBuf>,
}

impl JsonArg {
    /// JSON replaces the text on standard output.
    pub fn on_stdout(&self) -> bool {
        self.json.as_deref().is_some_and(|p| p == std::path::Path::new("-"))
    }

    /// Write `value` where `--json` says (nothing without `--json`).
    pub fn write(&self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        use anyhow::Context;
        let Some(path) = &self.json else { return Ok(()) };
        let text = serde_json::to_string_pretty(value)?;
        if self.on_stdout() {
            println!("{text}");
            return Ok(());
        }
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write --json {}", path.display()))
    }
}

/// `velollm bench`: every group above, and the URL.
#[derive(Debug, Clone, PartialEq, Default, Args)]
pub struct BenchArgs {
    /// Base URL of the server [default: http://127.0.0.1:11434 for Ollama, else http://127.0.0.1:8080].
    #[arg(long, env = "VELOLLM_URL", alias = "base-url", help_heading = "Target")]
    pub url: Option<String>,
    /// The server and how to talk to it.
    #[command(flatten)]
    pub target: TargetArgs,
    /// What to send.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// An agent trace instead of the workload.
    #[command(flatten)]
    pub trace: TraceArgs,
    /// The prompt-cache study.
    #[command(flatten)]
    pub cache_study: CacheStudyArgs,

    #[command(flatten)]
    pub semantic_eval: SemanticEvalArgs,
    /// The routing evaluation.
    #[command(flatten)]
    pub routing_eval: RoutingEvalArgs,
    /// How the requests are sent.
    #[command(flatten)]
    pub load: LoadArgs,
    /// A load sweep instead of one load.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Where the documents go.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Gates of `--compare-to`.
    #[command(flatten)]
    pub gates: GateArgs,
    /// Launch the server, watch it and stop it.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Timeouts and the self-check.
    #[command(flatten)]
    pub client: ClientArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Bench {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn defaults_are_what_an_empty_command_line_gives() {
        let parsed = Bench::try_parse_from(["bench"]).unwrap().args;
        // Environment-backed flags take the test environment's value.
        let expected = BenchArgs {
            url: parsed.url.clone(),
            output: OutputArgs { db: parsed.output.db.clone(), ..OutputArgs::default() },
            ..BenchArgs::default()
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn durations_take_every_form() {
        for (text, ms) in [("30", 30_000), ("0.5", 500), ("500ms", 500), ("5m", 300_000), ("1h 30m", 5_400_000)] {
            assert_eq!(text.parse::<Dur>().unwrap().0, Duration::from_millis(ms), "{text}");
        }
        for bad in ["", "-1", "fast", "nan", "10 parsecs"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
        assert_eq!(Dur::secs(300).to_string(), "5m");
    }

    #[test]
    fn every_dialect_name_and_alias_is_a_backend() {
        for d in DialectKind::ALL {
            let b = BackendArg::from_str(d.name(), true).unwrap();
            assert_eq!(b.backend(), Backend::Dialect(d));
        }
        for (alias, d) in [
            ("openai", DialectKind::OpenAiChat),
            ("OLLAMA", DialectKind::OllamaChat),
            ("llama.cpp", DialectKind::LlamaCpp),
            ("claude", DialectKind::Anthropic),
            ("vllm", DialectKind::OpenAiChat),
        ] {
            assert_eq!(BackendArg::from_str(alias, true).unwrap().backend(), Backend::Dialect(d), "{alias}");
        }
    }

    #[test]
    fn vllm_bench_flags_are_accepted() {
        let a = Bench::try_parse_from([
            "bench",
            "--base-url",
            "http://h:1",
            "--request-rate",
            "4",
            "--max-concurrency",
            "8",
            "--num-prompts",
            "100",
            "--ignore-eos",
        ])
        .unwrap()
        .args;
        assert_eq!(a.url.as_deref(), Some("http://h:1"));
        assert_eq!((a.load.rate, a.load.concurrency, a.load.requests), (Some(4.0), Some(8), Some(100)));
        assert!(a.workload.exact_output);
    }
}
