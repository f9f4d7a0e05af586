//! Scenario files: a named sequence of steps, each with a workload and generation parameters.
//!
//! Built-in scenarios are TOML files under `scenarios/` embedded in the binary; users write their own in
//! the same format (`docs/scenarios.md`). Unknown fields are rejected, and parse errors name the file, the
//! line and the field.

use crate::analysis::AnalysisSpec;
use crate::judge::threshold::Threshold;
use crate::measure::check::Check;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A scenario: steps run in order against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (`standard`).
    pub name: String,
    /// One-line purpose.
    #[serde(default)]
    pub description: String,
    /// What the scenario measures.
    #[serde(default)]
    pub measures: String,
    /// Scenario-level thresholds over analysis figures (e.g. `degradation < 20%`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Figures computed from the steps once they have run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<AnalysisSpec>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// One turn of a conversation step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    /// The user's message. Earlier turns and the model's real answers to them are sent before it.
    pub user: String,
    /// A label used by analyses (`miss`, `hit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Start the message with a unique nonce so that no earlier request shares its prefix (a cache MISS).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub salt: bool,
}

/// How a step uses connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// Reuse each worker's connection while the server keeps it open.
    #[default]
    KeepAlive,
    /// Open a new connection for every request (over https, TLS resumes the previous session when the
    /// server allows it).
    New,
    /// Open a new connection for every request with a full TLS handshake each time (session resumption off):
    /// https only; on plain http the step is skipped with a note.
    NewNoResume,
    /// HTTP/2: one connection shared by every worker of the step, requests multiplexed as streams (ALPN `h2`
    /// over https, falling back to HTTP/1.1 when the server does not offer it; prior knowledge (h2c) over
    /// plain http). Runs only with `--http2`, since many servers (llama-server among them) speak HTTP/1.1 only.
    Http2,
    /// A WebSocket session per worker, kept for the step: each request one message on it, each stream event
    /// one message back (the session `velollm proxy` offers on its generation routes). Runs only with
    /// `--websocket`, since model servers themselves do not offer one.
    #[serde(rename = "websocket")]
    WebSocket,
}

impl ConnectionMode {
    /// The name used in scenario files (`keep-alive`, `new`, `new-no-resume`, `http2`, `websocket`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionMode::KeepAlive => "keep-alive",
            ConnectionMode::New => "new",
            ConnectionMode::NewNoResume => "new-no-resume",
            ConnectionMode::Http2 => "http2",
            ConnectionMode::WebSocket => "websocket",
        }
    }

    /// True for the modes that open a new connection for every request.
    pub fn is_new(self) -> bool {
        matches!(self, ConnectionMode::New | ConnectionMode::NewNoResume)
    }
}

/// Where an explicit prompt-cache breakpoint goes (Anthropic `cache_control`): the end of one block of the
/// request, numbered in the order they are sent. Everything up to a breakpoint can be cached and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breakpoint {
    /// `1`: the end of the system prompt.
    System,
    /// `2`: the end of the step's reusable `context`.
    Context,
    /// `3`: the end of the last user message (the whole prompt).
    Prompt,
}

impl Breakpoint {
    /// Every breakpoint, in send order.
    pub const ALL: [Breakpoint; 3] = [Breakpoint::System, Breakpoint::Context, Breakpoint::Prompt];

    /// The number used on the command line (`--cache-breakpoints 1,2`).
    pub fn number(self) -> u8 {
        match self {
            Breakpoint::System => 1,
            Breakpoint::Context => 2,
            Breakpoint::Prompt => 3,
        }
    }

    /// The breakpoint numbered `n` (1 system, 2 context, 3 prompt).
    pub fn from_number(n: u8) -> Option<Breakpoint> {
        Breakpoint::ALL.into_iter().find(|b| b.number() == n)
    }
}

/// Explicit prompt-cache hints for dialects that take them (Anthropic `cache_control`); servers that cache
/// prefixes on their own (OpenAI, vLLM, SGLang, llama.cpp, Ollama) ignore them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheHints {
    /// Blocks to mark with a cache breakpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakpoints: Vec<Breakpoint>,
    /// Cache lifetime asked for at each breakpoint (Anthropic accepts `5m` and `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CacheHints {
    /// True when no hint is given.
    pub fn is_empty(&self) -> bool {
        self.breakpoints.is_empty() && self.ttl.is_none()
    }
}

/// A step's own load profile and bounds (command-line flags override them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepLoad {
    /// Closed-loop workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Open-loop rate, requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `constant`, `poisson` or `gamma`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// Gamma shape for `arrival = "gamma"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Measured requests (conversations for multi-turn steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Measurement duration (`30s`, `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Warm-up: a request count (`"2"`) or a duration (`"10s"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
}

/// One step of a scenario: a workload sent `iterations` times (or under the run's load profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Step name, used in reports (`short_completion`).
    pub name: String,
    /// A single user prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Several user prompts, used in turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// A file of prompts, one per non-empty line (relative to the scenario file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_file: Option<String>,
    /// Synthetic prompts of about this many tokens, each one different (no accidental prefix caching). With
    /// `shared_prefix`, the length of each request's own suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    /// Synthetic prompts whose lengths are drawn per request from a distribution (exclusive with
    /// `prompt_tokens`): `{ kind = "normal", mean = 512, stddev = 128, min = 16, max = 2048 }`. With
    /// `shared_prefix`, the distribution of the suffix length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_dist: Option<LengthDist>,
    /// Synthetic prompts in groups that share a prefix, for prefix-cache studies; needs `prompt_tokens` or
    /// `prompt_tokens_dist` for the distinct suffix of each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefix>,
    /// A conversation dataset, JSON Lines (relative to the scenario file): one conversation per line in
    /// ShareGPT (`{"conversations": [{"from": "human", "value": …}, …]}`), OpenAI
    /// (`{"messages": [{"role": "user", "content": …}, …]}`) or `{"prompt": …}` form (a file starting with
    /// `[` is one JSON array of such records). Each conversation replays one record's user turns in order,
    /// each with the model's real previous answers; the dataset's own answers and system messages are not
    /// sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// A conversation: the turns are sent in order, each with the real previous answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<Turn>,
    /// An optional system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A stable, reusable context (a document, instructions) sent at the start of every request's user
    /// message, before the prompt: the part a prompt cache can reuse across requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// A synthetic reusable context of about this many tokens instead of `context` (same for every request
    /// of the step, new in every step and every run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// Start every request with its own unique marker, so that nothing of it can be served from a prompt
    /// cache: the uncached baseline of a prompt-cache study.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fresh_context: bool,
    /// Explicit prompt-cache hints, for dialects that take them (Anthropic `cache_control`).
    #[serde(default, skip_serializing_if = "CacheHints::is_empty")]
    pub cache: CacheHints,
    /// Maximum tokens to generate.
    pub max_tokens: u32,
    /// Ask the server to generate exactly `max_tokens` (`ignore_eos`/`min_tokens` where supported).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_output: bool,
    /// Sampling temperature (server default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Sequential repetitions (conversations, for multi-turn steps) when no other load is given.
    #[serde(default = "one")]
    pub iterations: u32,
    /// The step's own load profile and bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<StepLoad>,
    /// How requests get their connection: `keep-alive` (default), `new`, `new-no-resume`, `http2` or
    /// `websocket`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub connection: ConnectionMode,
    /// Unload the model before the step (Ollama `keep_alive: 0`), so its first request is a cold start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold: bool,
    /// Tool definitions (OpenAI `tools` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// Checks applied to every answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// After an answer fails a check, send up to this many correction turns with the failure.
    #[serde(default, skip_serializing_if = "is_default")]
    pub retries: u32,
    /// Thresholds over this step's aggregates (e.g. `ttft.p95 < 2s`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<String>,
    /// Tags for plan breakdowns (`provider`, `task`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn one() -> u32 {
    1
}

/// The prompts a step sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Fixed prompts, used round-robin.
    Prompts(Vec<String>),
    /// Synthetic prompts of about this many tokens each, distinct per request.
    Synthetic {
        /// Target prompt length in tokens.
        prompt_tokens: u32,
    },
    /// A multi-turn conversation.
    Conversation(Vec<Turn>),
    /// Synthetic prompts, distinct per request, whose lengths are drawn from a distribution.
    SyntheticDist(LengthDist),
    /// Synthetic prompts made of a group's shared prefix and a distinct suffix.
    SharedPrefix {
        /// The groups and their prefixes.
        prefix: SharedPrefix,
        /// Length of each request's own suffix.
        suffix: LengthDist,
    },
    /// Conversations (from a dataset): session `i` replays the user turns of `sessions[i % len]`, each with
    /// the model's real previous answers.
    Sessions(Vec<Vec<Turn>>),
    /// Agent sessions from a trace ([`crate::workload::trace`]): session `i` replays the recorded calls of
    /// `sessions[i % len]` as they were sent (the recorded history, not the model's answers), with the
    /// recorded pauses between them.
    Trace(crate::workload::trace::TraceReplay),
}

/// The shape of a prompt-length distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DistKind {
    /// Always `mean`.
    Fixed,
    /// Every length in `[min, max]` equally likely.
    Uniform,
    /// Normal with `mean` and `stddev`.
    Normal,
    /// Log-normal whose lengths have this `mean` and `stddev` (not those of the logarithm): right-skewed, like
    /// real prompt lengths.
    #[serde(alias = "log-normal", alias = "log_normal")]
    Lognormal,
}

/// A token-length distribution, sampled per request with the step's seed. Samples are rounded and clamped
/// to `[min, max]`, and are never below 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthDist {
    /// `fixed`, `uniform`, `normal` or `lognormal`.
    pub kind: DistKind,
    /// Mean length (`fixed`, `normal`, `lognormal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation of the length (`normal`, `lognormal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stddev: Option<f64>,
    /// Smallest length (required for `uniform`; at least 1 in any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Largest length (required for `uniform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

impl LengthDist {
    /// Always `n` tokens.
    pub fn fixed(n: u32) -> LengthDist {
        LengthDist { kind: DistKind::Fixed, mean: Some(f64::from(n)), stddev: None, min: None, max: None }
    }

    /// Check that the parameters the kind needs are present and sensible; the error says which to fix.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: Option<f64>, positive: bool| -> Result<f64, String> {
            match v {
                None => Err(format!("a {} distribution needs `{name}`", self.kind_name())),
                Some(x) if !x.is_finite() || x < 0.0 || (positive && x == 0.0) => Err(format!(
                    "`{name}` must be a {} number, got {x}",
                    if positive { "positive" } else { "non-negative" }
                )),
                Some(x) => Ok(x),
            }
        };
        let unused = |name: &str, present: bool| -> Result<(), String> {
            if present { Err(format!("a {} distribution does not use `{name}`", self.kind_name())) } else { Ok(()) }
        };
        match self.kind {
            DistKind::Fixed => {
                finite("mean", self.mean, true)?;
                unused("stddev", self.stddev.is_some())?;
            }
            DistKind::Uniform => {
                unused("mean", self.mean.is_some())?;
                unused("stddev", self.stddev.is_some())?;
                if self.min.is_none() || self.max.is_none() {
                    return Err("a uniform distribution needs `min` and `max`".to_string());
                }
            }
            DistKind::Normal | DistKind::Lognormal => {
                finite("mean", self.mean, true)?;
                finite("stddev", self.stddev, false)?;
            }
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            return Err(format!("`min` ({lo}) is above `max` ({hi})"));
        }
        if self.max == Some(0) {
            return Err("`max` must be at least 1".to_string());
        }
        Ok(())
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            DistKind::Fixed => "fixed",
            DistKind::Uniform => "uniform",
            DistKind::Normal => "normal",
            DistKind::Lognormal => "lognormal",
        }
    }

    /// The bounds samples are clamped to.
    pub fn bounds(&self) -> (u32, u32) {
        (self.min.unwrap_or(1).max(1), self.max.unwrap_or(u32::MAX).max(1))
    }

    /// The length every sample has, when the distribution has a single value.
    pub fn constant(&self) -> Option<u32> {
        let (lo, hi) = self.bounds();
        match self.kind {
            DistKind::Fixed => Some(self.clamp(self.mean.unwrap_or(1.0))),
            _ if self.stddev == Some(0.0) => Some(self.clamp(self.mean.unwrap_or(1.0))),
            _ if lo == hi => Some(lo),
            _ => None,
        }
    }

    fn clamp(&self, x: f64) -> u32 {
        let (lo, hi) = self.bounds();
        let x = if x.is_finite() { x.round() } else { f64::from(lo) };
        (x.clamp(0.0, f64::from(u32::MAX)) as u32).clamp(lo, hi)
    }

    /// One length; call [`LengthDist::validate`] first (invalid parameters give the lower bound).
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        use rand_distr::Distribution;
        let (lo, hi) = self.bounds();
        let mean = self.mean.unwrap_or(1.0);
        let sd = self.stddev.unwrap_or(0.0);
        let x = match self.kind {
            DistKind::Fixed => mean,
            DistKind::Uniform => return rng.random_range(lo..=hi),
            DistKind::Normal => rand_distr::Normal::new(mean, sd).map_or(f64::from(lo), |d| d.sample(rng)),
            DistKind::Lognormal => {
                // The lengths have mean m and standard deviation s when ln(length) ~ N(mu, sigma²) with
                // sigma² = ln(1 + s²/m²) and mu = ln(m) − sigma²/2.
                let sigma2 = (1.0 + (sd / mean).powi(2)).ln();
                rand_distr::LogNormal::new(mean.ln() - sigma2 / 2.0, sigma2.sqrt())
                    .map_or(f64::from(lo), |d| d.sample(rng))
            }
        };
        self.clamp(x)
    }

    /// A short description (`normal(mean 512, stddev 128) in [16, 2048]`).
    pub fn describe(&self) -> String {
        if self.kind == DistKind::Fixed {
            return format!("{} tokens", self.clamp(self.mean.unwrap_or(1.0)));
        }
        let num = |x: f64| if x.fract() == 0.0 { format!("{x:.0}") } else { format!("{x}") };
        let mut s = match self.kind {
            DistKind::Uniform => "uniform".to_string(),
            _ => format!(
                "{}(mean {}, stddev {})",
                self.kind_name(),
                num(self.mean.unwrap_or(1.0)),
                num(self.stddev.unwrap_or(0.0))
            ),
        };
        match (self.min, self.max) {
            (None, None) => {}
            _ => {
                let (lo, hi) = self.bounds();
                let hi = if self.max.is_some() { hi.to_string() } else { "∞".to_string() };
                s.push_str(&format!(" in [{lo}, {hi}]"));
            }
        }
        s + " tokens"
    }
}

/// Groups of synthetic prompts sharing a prefix: each request picks a group by Zipf popularity; its prompt is
/// the group's fixed prefix followed by a suffix of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefix {
    /// Number of groups (distinct prefixes).
    pub groups: u32,
    /// Length of each group's prefix in tokens.
    pub prefix_tokens: u32,
    /// Zipf exponent of group popularity: group *g* (from 0) is picked with probability ∝ 1/(g+1)^zipf;
    /// 0 picks groups uniformly.
    #[serde(default = "one_f64")]
    pub zipf: f64,
    /// Start each prefix with a per-run nonce, so that no earlier run can have cached it (the cache starts
    /// cold). Without it the prefixes depend only on the seed and are the same in every run with that seed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub salt: bool,
}

fn one_f64() -> f64 {
    1.0
}

impl SharedPrefix {
    /// Check the parameters; the error says which to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.groups == 0 {
            return Err("shared_prefix.groups must be at least 1".to_string());
        }
        if self.prefix_tokens == 0 {
            return Err("shared_prefix.prefix_tokens must be at least 1".to_string());
        }
        if !(self.zipf.is_finite() && self.zipf >= 0.0) {
            return Err(format!("shared_prefix.zipf must be a non-negative number, got {}", self.zipf));
        }
        Ok(())
    }

    /// Pick a group (0 is the most popular); call [`SharedPrefix::validate`] first.
    pub fn pick_group<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        use rand_distr::Distribution;
        match rand_distr::Zipf::new(f64::from(self.groups.max(1)), self.zipf) {
            // Zipf samples are 1..=n.
            Ok(z) => (z.sample(rng) as u32).clamp(1, self.groups.max(1)) - 1,
            Err(_) => 0,
        }
    }

    /// A short description.
    pub fn describe(&self) -> String {
        format!(
            "{} groups × {}-token shared prefix (Zipf s={}{})",
            self.groups,
            self.prefix_tokens,
            self.zipf,
            if self.salt { ", salted per run" } else { "" }
        )
    }
}

/// A conversation dataset read from JSON Lines: one session (a list of user turns) per record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// The sessions, in file order.
    pub sessions: Vec<Vec<Turn>>,
}

/// A dataset record that could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DatasetError {
    /// 1-based line number (for a JSON array file: the 1-based record number).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Dataset {
    /// Parse a dataset: JSON Lines, one record per non-empty line, each in ShareGPT form
    /// (`{"conversations": [{"from": "human"|"user", "value": …}, {"from": "gpt", …}, …]}`), OpenAI form
    /// (`{"messages": [{"role": "user", "content": …}, …]}`; content a string or a list of text parts) or
    /// `{"prompt": …}`. Only the user turns are kept, in order: the dataset's answers are replaced by the
    /// model's real ones when the session is replayed, and system messages are ignored (use the step's
    /// `system`). A file whose first character is `[` is read as one JSON array of such records.
    pub fn parse(text: &str) -> Result<Dataset, DatasetError> {
        let mut sessions = Vec::new();
        if text.trim_start().starts_with('[') {
            let records: Vec<serde_json::Value> = serde_json::from_str(text)
                .map_err(|e| DatasetError { line: e.line(), message: format!("not a JSON array of records: {e}") })?;
            for (i, r) in records.iter().enumerate() {
                sessions.push(Self::record(r).map_err(|message| DatasetError {
                    line: i + 1,
                    message: format!("record {}: {message}", i + 1),
                })?);
            }
            return Ok(Dataset { sessions });
        }
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let err = |message: String| DatasetError { line: i + 1, message };
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
            sessions.push(Self::record(&v).map_err(err)?);
        }
        Ok(Dataset { sessions })
    }

    /// The user turns of one record.
    fn record(v: &serde_json::Value) -> Result<Vec<Turn>, String> {
        let turn = |user: String| Turn { user, label: None, salt: false };
        let Some(obj) = v.as_object() else { return Err("expected a JSON object".to_string()) };
        let users: Vec<String> = if let Some(c) = obj.get("conversations") {
            let list = c.as_array().ok_or("`conversations` must be a list")?;
            let mut users = Vec::new();
            for (k, m) in list.iter().enumerate() {
                let from =
                    m.get("from").and_then(|f| f.as_str()).ok_or(format!("conversations[{k}] has no \"from\""))?;
                if from.eq_ignore_ascii_case("human") || from.eq_ignore_ascii_case("user") {
                    let value = m
                        .get("value")
                        .and_then(|f| f.as_str())
                        .ok_or(format!("conversations[{k}] has no \"value\" text"))?;
                    users.push(value.to_string());
                }
            }
            users
        } else if let Some(ms) = obj.get("messages") {
            let list = ms.as_array().ok_or("`messages` must be a list")?;
            let mut users = Vec::new();
            for (k, m) in list.iter().enumerate() {
                let role = m.get("role").and_then(|f| f.as_str()).ok_or(format!("messages[{k}] has no \"role\""))?;
                if role == "user" {
                    users.push(Self::content(m.get("content")).ok_or(format!("messages[{k}] has no text content"))?);
                }
            }
            users
        } else if let Some(p) = obj.get("prompt") {
            vec![p.as_str().ok_or("`prompt` must be a string")?.to_string()]
        } else {
            return Err("unknown record: expected \"conversations\" (ShareGPT), \"messages\" (OpenAI) or \"prompt\""
                .to_string());
        };
        if users.is_empty() {
            return Err("the record has no user turn".to_string());
        }
        Ok(users.into_iter().map(turn).collect())
    }

    /// OpenAI message content: a string, or the text parts of a list joined by newlines.
    fn content(c: Option<&serde_json::Value>) -> Option<String> {
        match c? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(parts) => {
                let texts: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.get("type").and_then(|t| t.as_str()).is_none_or(|t| t == "text"))
                    .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                    .collect();
                (!texts.is_empty()).then(|| texts.join("\n"))
            }
            _ => None,
        }
    }
}

impl Step {
    /// The step's workload; an error names what is wrong. Files are read by the caller (this crate does no
    /// I/O): `prompt_file` lines are added to the prompts, and for `dataset` the sessions are left empty for
    /// the caller to fill with [`Dataset::parse`].
    pub fn workload(&self) -> Result<Workload, String> {
        let mut prompts = self.prompts.clone();
        if let Some(p) = &self.prompt {
            prompts.insert(0, p.clone());
        }
        let kinds = [
            !prompts.is_empty() || self.prompt_file.is_some(),
            self.prompt_tokens.is_some() || self.prompt_tokens_dist.is_some(),
            !self.turns.is_empty(),
            self.dataset.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                return Err(format!(
                    "step '{}' has no workload: set `prompt`, `prompts`, `prompt_file`, `prompt_tokens`, \
                     `prompt_tokens_dist`, `turns` or `dataset`",
                    self.name
                ));
            }
            1 => {}
            _ => {
                return Err(format!(
                    "step '{}' mixes workloads: keep one of prompts, prompt_tokens, turns and dataset",
                    self.name
                ));
            }
        }
        if self.prompt_tokens.is_some() && self.prompt_tokens_dist.is_some() {
            return Err(format!("step '{}': prompt_tokens and prompt_tokens_dist are exclusive: keep one", self.name));
        }
        if self.context.is_some() && self.context_tokens.is_some() {
            return Err(format!("step '{}': context and context_tokens are exclusive: keep one", self.name));
        }
        if self.context_tokens == Some(0) {
            return Err(format!("step '{}': context_tokens must be at least 1", self.name));
        }
        if self.shared_prefix.is_some() && !kinds[1] {
            return Err(format!(
                "step '{}': shared_prefix needs prompt_tokens or prompt_tokens_dist (the length of each request's \
                 own suffix)",
                self.name
            ));
        }
        if !self.turns.is_empty() {
            return Ok(Workload::Conversation(self.turns.clone()));
        }
        if self.dataset.is_some() {
            return Ok(Workload::Sessions(Vec::new()));
        }
        if self.prompt_tokens == Some(0) {
            return Err(format!("step '{}': prompt_tokens must be at least 1", self.name));
        }
        if let Some(d) = &self.prompt_tokens_dist {
            d.validate().map_err(|e| format!("step '{}': prompt_tokens_dist: {e}", self.name))?;
        }
        let dist = self.prompt_tokens.map(LengthDist::fixed).or_else(|| self.prompt_tokens_dist.clone());
        match (dist, &self.shared_prefix) {
            (Some(suffix), Some(prefix)) => {
                prefix.validate().map_err(|e| format!("step '{}': {e}", self.name))?;
                Ok(Workload::SharedPrefix { prefix: prefix.clone(), suffix })
            }
            (Some(d), None) => Ok(match self.prompt_tokens {
                Some(prompt_tokens) => Workload::Synthetic { prompt_tokens },
                None => Workload::SyntheticDist(d),
            }),
            (None, _) => Ok(Workload::Prompts(prompts)),
        }
    }
}

/// A scenario file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// TOML syntax or a field of the wrong type / unknown field.
    #[error("{source_name}: {message}")]
    Parse {
        /// File name or `built-in NAME`.
        source_name: String,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// The file parsed but is not usable.
    #[error("{source_name}: {message}")]
    Invalid {
        /// File name or `built-in NAME`.
        source_name: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The built-in scenarios: `(name, TOML text)`.
pub const BUILTINS: &[(&str, &str)] = &[
    ("standard", include_str!("../../../../scenarios/standard.toml")),
    ("warm", include_str!("../../../../scenarios/warm.toml")),
    ("cold-start", include_str!("../../../../scenarios/cold-start.toml")),
    ("context-size", include_str!("../../../../scenarios/context-size.toml")),
    ("max-tokens", include_str!("../../../../scenarios/max-tokens.toml")),
    ("prefix-cache", include_str!("../../../../scenarios/prefix-cache.toml")),
    ("long-conversation", include_str!("../../../../scenarios/long-conversation.toml")),
    ("reasoning", include_str!("../../../../scenarios/reasoning.toml")),
    ("tool-calling", include_str!("../../../../scenarios/tool-calling.toml")),
    ("stability", include_str!("../../../../scenarios/stability.toml")),
    ("load", include_str!("../../../../scenarios/load.toml")),
    ("connections", include_str!("../../../../scenarios/connections.toml")),
    ("prompt-cache", include_str!("../../../../scenarios/prompt-cache.toml")),
    ("speculative", include_str!("../../../../scenarios/speculative.toml")),
];

/// The TOML text of a built-in scenario.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

impl Scenario {
    /// Parse and validate a scenario; `source_name` is used in error messages (a path or `built-in X`).
    pub fn parse(source_name: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |message: String| ScenarioError::Invalid { source_name: source_name.to_string(), message };
        if scenario.steps.is_empty() {
            return Err(invalid("the scenario has no [[steps]]".to_string()));
        }
        let names: Vec<&str> = scenario.steps.iter().map(|s| s.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(invalid(format!("two steps are named '{n}': step names must be unique")));
            }
        }
        for t in &scenario.thresholds {
            t.parse::<Threshold>().map_err(|e| invalid(e.to_string()))?;
        }
        for a in &scenario.analyses {
            a.validate().map_err(&invalid)?;
            for step in a.steps() {
                if !names.contains(&step) {
                    return Err(invalid(format!("an analysis names step '{step}', which the scenario does not have")));
                }
            }
        }
        for step in &scenario.steps {
            step.workload().map_err(&invalid)?;
            for t in &step.thresholds {
                t.parse::<Threshold>().map_err(|e| invalid(format!("step '{}': {e}", step.name)))?;
            }
            for c in &step.checks {
                c.validate().map_err(|e| invalid(format!("step '{}': {e}", step.name)))?;
            }
            if step.max_tokens == 0 {
                return Err(invalid(format!("step '{}': max_tokens must be at least 1", step.name)));
            }
            if step.iterations == 0 {
                return Err(invalid(format!("step '{}': iterations must be at least 1", step.name)));
            }
        }
        Ok(scenario)
    }

    /// A built-in scenario by name.
    pub fn builtin(name: &str) -> Option<Scenario> {
        builtin(name).map(|text| Scenario::parse(&format!("built-in {name}"), text).expect("built-ins are valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_is_the_seed_suite() {
        let s = Scenario::builtin("standard").unwrap();
        let steps: Vec<_> = s.steps.iter().map(|s| (s.name.as_str(), s.max_tokens, s.iterations)).collect();
        assert_eq!(
            steps,
            vec![("short_completion", 50, 5), ("medium_completion", 150, 3), ("code_generation", 200, 3)]
        );
        assert_eq!(
            s.steps[0].workload().unwrap(),
            Workload::Prompts(vec!["Write a hello world program in Python".into()])
        );
    }

    #[test]
    fn every_builtin_parses() {
        for (name, _) in BUILTINS {
            assert!(Scenario::builtin(name).is_some());
        }
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let text = "name = \"x\"\n[[steps]]\nname = \"a\"\nprompt = \"hi\"\nmax_token = 5\n";
        let e = Scenario::parse("mine.toml", text).unwrap_err().to_string();
        assert!(e.starts_with("mine.toml:"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("max_token"), "{e}");
        let e = Scenario::parse("m.toml", "name = \"x\"\n[[steps]]\nname = \"a\"\nmax_tokens = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no workload"), "{e}");
    }

    fn step(extra: &str) -> Result<Workload, String> {
        let text = format!("name = \"x\"\n[[steps]]\nname = \"a\"\nmax_tokens = 5\n{extra}\n");
        let s = Scenario::parse("t.toml", &text).map_err(|e| e.to_string())?;
        s.steps[0].workload()
    }

    #[test]
    fn new_workload_fields_parse_from_toml() {
        assert_eq!(
            step("prompt_tokens_dist = { kind = \"normal\", mean = 512, stddev = 128, min = 16, max = 2048 }"),
            Ok(Workload::SyntheticDist(LengthDist {
                kind: DistKind::Normal,
                mean: Some(512.0),
                stddev: Some(128.0),
                min: Some(16),
                max: Some(2048)
            }))
        );
        assert_eq!(
            step("prompt_tokens = 64\nshared_prefix = { groups = 8, prefix_tokens = 1024 }"),
            Ok(Workload::SharedPrefix {
                prefix: SharedPrefix { groups: 8, prefix_tokens: 1024, zipf: 1.0, salt: false },
                suffix: LengthDist::fixed(64)
            })
        );
        let w = step(
            "prompt_tokens_dist = { kind = \"lognormal\", mean = 100, stddev = 50 }\n\
             shared_prefix = { groups = 2, prefix_tokens = 10, zipf = 0.5, salt = true }",
        )
        .unwrap();
        assert!(matches!(w, Workload::SharedPrefix { prefix: SharedPrefix { salt: true, .. }, .. }), "{w:?}");
        assert_eq!(step("dataset = \"chats.jsonl\""), Ok(Workload::Sessions(Vec::new())));
        assert_eq!(step("prompt_tokens = 7"), Ok(Workload::Synthetic { prompt_tokens: 7 }));
    }

    #[test]
    fn invalid_workloads_say_what_to_fix() {
        let cases = [
            ("prompt_tokens = 5\nprompt_tokens_dist = { kind = \"fixed\", mean = 5 }", "exclusive"),
            ("prompt = \"hi\"\ndataset = \"d.jsonl\"", "mixes workloads"),
            ("prompt = \"hi\"\nshared_prefix = { groups = 2, prefix_tokens = 8 }", "shared_prefix needs prompt_tokens"),
            ("prompt_tokens = 5\nshared_prefix = { groups = 0, prefix_tokens = 8 }", "groups must be at least 1"),
            ("prompt_tokens = 5\nshared_prefix = { groups = 2, prefix_tokens = 8, zipf = -1 }", "zipf"),
            ("prompt_tokens_dist = { kind = \"uniform\", min = 5 }", "needs `min` and `max`"),
            ("prompt_tokens_dist = { kind = \"uniform\", mean = 5, min = 1, max = 9 }", "does not use `mean`"),
            ("prompt_tokens_dist = { kind = \"normal\", mean = 5 }", "needs `stddev`"),
            ("prompt_tokens_dist = { kind = \"normal\", mean = 5, stddev = 1, min = 9, max = 3 }", "above `max`"),
            ("prompt_tokens_dist = { kind = \"gamma\", mean = 5 }", "gamma"),
        ];
        for (extra, want) in cases {
            let e = step(extra).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    fn samples(d: &LengthDist, seed: u64, n: usize) -> Vec<u32> {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    #[test]
    fn fixed_and_uniform_lengths() {
        assert!(samples(&LengthDist::fixed(42), 1, 50).iter().all(|&n| n == 42));
        assert_eq!(LengthDist::fixed(42).constant(), Some(42));
        let u = LengthDist { kind: DistKind::Uniform, mean: None, stddev: None, min: Some(10), max: Some(20) };
        let s = samples(&u, 1, 2000);
        assert!(s.iter().all(|n| (10..=20).contains(n)));
        assert!(s.contains(&10) && s.contains(&20));
        assert_eq!(u.constant(), None);
        assert_eq!(samples(&u, 9, 100), samples(&u, 9, 100));
        assert_ne!(samples(&u, 9, 100), samples(&u, 10, 100));
        // Never below one token, even when the distribution reaches zero.
        let n = LengthDist { kind: DistKind::Normal, mean: Some(2.0), stddev: Some(5.0), min: None, max: None };
        assert!(samples(&n, 3, 1000).iter().all(|&x| x >= 1));
        assert_eq!(n.describe(), "normal(mean 2, stddev 5) tokens");
        assert_eq!(u.describe(), "uniform in [10, 20] tokens");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn sampled_lengths_are_seeded_bounded_and_near_the_mean(
            mean in 50.0f64..4000.0,
            cv in 0.0f64..0.3,
            log in proptest::bool::ANY,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let kind = if log { DistKind::Lognormal } else { DistKind::Normal };
            let d = LengthDist { kind, mean: Some(mean), stddev: Some(mean * cv), min: None, max: None };
            proptest::prop_assert!(d.validate().is_ok());
            let s = samples(&d, seed, 3000);
            proptest::prop_assert_eq!(&s, &samples(&d, seed, 3000));
            let avg = s.iter().map(|&x| f64::from(x)).sum::<f64>() / s.len() as f64;
            // Standard error ≤ 0.3·mean/√3000 ≈ 0.55 %; allow 3 % plus rounding.
            proptest::prop_assert!((avg - mean).abs() <= 0.03 * mean + 0.5, "mean {} for {}", avg, mean);
            let bounded = LengthDist { min: Some((mean * 0.9) as u32), max: Some((mean * 1.1) as u32), ..d };
            let (lo, hi) = bounded.bounds();
            proptest::prop_assert!(samples(&bounded, seed, 500).iter().all(|n| (lo..=hi).contains(n)));
        }
    }

    #[test]
    fn zipf_popularity_falls_with_the_group_index() {
        use rand::SeedableRng;
        let p = SharedPrefix { groups: 5, prefix_tokens: 10, zipf: 1.0, salt: false };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = [0u32; 5];
        for _ in 0..20_000 {
            counts[p.pick_group(&mut rng) as usize] += 1;
        }
        assert!(counts.windows(2).all(|w| w[0] > w[1]), "{counts:?}");
        // Zipf(1): group 0 is picked with probability 1/H(5) ≈ 0.438, twice as often as group 1.
        let share = f64::from(counts[0]) / 20_000.0;
        assert!((share - 0.438).abs() < 0.02, "{share}");
        let flat = SharedPrefix { zipf: 0.0, ..p };
        let mut counts = [0u32; 5];
        for _ in 0..20_000 {
            counts[flat.pick_group(&mut rng) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (3600..4400).contains(&c)), "{counts:?}");
        let one = SharedPrefix { groups: 1, ..p };
        assert!((0..100).all(|_| one.pick_group(&mut rng) == 0));
    }

    #[test]
    fn dataset_records_in_three_formats() {
        let text = r#"{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "h1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "h2"}]}

{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "u2"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}
{"prompt": "just one"}
"#;
        let d = Dataset::parse(text).unwrap();
        let users: Vec<Vec<&str>> = d.sessions.iter().map(|s| s.iter().map(|t| t.user.as_str()).collect()).collect();
        assert_eq!(users, vec![vec!["h1", "h2"], vec!["u1", "u2"], vec!["just one"]]);
        assert!(d.sessions.iter().flatten().all(|t| t.label.is_none() && !t.salt));
        let array = r#"[{"prompt": "a"}, {"conversations": [{"from": "human", "value": "b"}]}]"#;
        assert_eq!(Dataset::parse(array).unwrap().sessions.len(), 2);
    }

    #[test]
    fn bad_dataset_lines_name_the_line() {
        let cases = [
            ("{\"prompt\": \"a\"}\n{not json}\n", 2, "not JSON"),
            ("{\"prompt\": \"a\"}\n\n{\"text\": \"b\"}\n", 3, "expected \"conversations\""),
            ("{\"conversations\": [{\"from\": \"gpt\", \"value\": \"x\"}]}", 1, "no user turn"),
            ("{\"messages\": [{\"content\": \"x\"}]}", 1, "messages[0] has no \"role\""),
            ("{\"prompt\": 5}", 1, "must be a string"),
            ("[{\"prompt\": \"a\"}, 3]", 2, "record 2"),
        ];
        for (text, line, want) in cases {
            let e = Dataset::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")) && e.message.contains(want), "{text}: {e}");
        }
    }
}
