//! `velollm proxy`: the gateway in front of model servers (the `velollm-proxy` crate), configured from a TOML
//! file and the flags that override it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use velollm_proxy::config::{ConfigError, TierConfig};
use velollm_proxy::{Proxy, ProxyConfig, StartError};

use crate::args::Dur;
use crate::exit::InputError;

/// `velollm proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on [default: 127.0.0.1:8000, or the file's `listen`].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// An upstream server, optionally named (repeatable; a route goes to the first that speaks its dialect):
    /// --upstream http://127.0.0.1:8080, --upstream ollama=http://127.0.0.1:11434.
    #[arg(long, value_name = "[NAME=]URL")]
    pub upstream: Vec<String>,
    /// A TOML file with everything (upstreams and their dialects, aliases, cache, limits); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Threads serving requests [default: one per core]. 1 adds the least latency when requests come one at a
    /// time (no hand-off between threads: added E2E p99 0.04-0.07 ms against 0.10-0.20 ms on 2 cores); more
    /// serve more requests a second where cores are to spare.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// The exact response cache: memory (in process), off, or redis://HOST:PORT[/DB] (shared by replicas).
    #[arg(long, value_name = "STORE")]
    pub cache: Option<String>,
    /// How long a cached answer lives [default: 1h].
    #[arg(long, value_name = "DURATION")]
    pub cache_ttl: Option<Dur>,
    /// The in-process cache's byte budget; least recently used answers go first [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub cache_max_bytes: Option<usize>,
    /// Also cache answers to requests that are not deterministic (temperature above 0 and no seed).
    #[arg(long)]
    pub cache_nondeterministic: bool,
    /// A model alias (repeatable): requests for NAME are sent, and cached, as MODEL.
    #[arg(long, value_name = "NAME=MODEL")]
    pub alias: Vec<String>,
    /// Turn on the semantic cache layer: after an exact miss, a question close in meaning to one already
    /// answered in the same context gets that answer (all-MiniLM-L6-v2 in process, from scripts/embedder.sh).
    #[arg(long)]
    pub semantic: bool,
    /// The semantic layer's embedder: local (in process) or the URL of an OpenAI-compatible /v1/embeddings
    /// (llama-server --embedding, vLLM, TEI, Ollama); implies --semantic.
    #[arg(long, value_name = "local|URL")]
    pub embedder: Option<String>,
    /// The `model` sent to a remote embedder.
    #[arg(long, value_name = "NAME")]
    pub embedder_model: Option<String>,
    /// The least cosine similarity that counts as the same question [default: 0.9]; implies --semantic.
    #[arg(long, value_name = "COSINE")]
    pub semantic_threshold: Option<f32>,
    /// Where the semantic layer keeps its questions: memory (this process, the default), the redis:// URL of a
    /// Redis Stack server (scripts/redis-stack.sh start), the postgres:// URL of a Postgres server with
    /// pgvector (scripts/pgvector.sh start) or the milvus:// URL of a Milvus server (scripts/milvus-lite.sh
    /// start), shared by replicas; implies --semantic.
    #[arg(long, value_name = "STORE")]
    pub semantic_store: Option<String>,
    /// Learn a threshold per entry, serving at most this fraction of wrong answers (vCache's δ, e.g. 0.02):
    /// candidates from --semantic-threshold up are served or sent upstream, and the upstream's answer, compared
    /// with the stored one, teaches the entry; implies --semantic.
    #[arg(long, value_name = "FRACTION")]
    pub semantic_delta: Option<f32>,
    /// Turn off the lexical guard (negations, antonyms, numbers, identifiers, entities that differ block a hit).
    #[arg(long)]
    pub no_semantic_guard: bool,
    /// A routing tier, small to large (repeatable): requests for the routed model (`auto`) go to a tier's
    /// upstream, with its model: --tier small=local:smollm2 --tier large=cloud:gpt-4o-mini.
    #[arg(long, value_name = "NAME=UPSTREAM[:MODEL]")]
    pub tier: Vec<String>,
    /// Labelled examples whose nearest ones vote a request's task type (JSON Lines: id, type, prompt), e.g.
    /// scenarios/routing-examples.jsonl.
    #[arg(long, value_name = "FILE")]
    pub route_examples: Option<PathBuf>,
    /// The tier a task type goes to (repeatable): --route-task linting=small. Unlisted types go to the last tier.
    #[arg(long, value_name = "TYPE=TIER")]
    pub route_task: Vec<String>,
    /// Hedge generation requests: one more branch after this long without data, `p95` (the running p95 of
    /// the first data's arrival) or a time such as 250ms; the first branch to start wins.
    #[arg(long, value_name = "p95|DURATION")]
    pub hedge: Option<String>,
    /// Branches at most, the first included [default: 2].
    #[arg(long, value_name = "2|3")]
    pub hedge_branches: Option<usize>,
    /// An upstream (by name) the extra branches go to, in turn (repeatable) [default: the first branch's].
    #[arg(long, value_name = "NAME")]
    pub hedge_to: Vec<String>,
    /// The largest request body accepted; larger ones get 413 [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
}

/// Builds the configuration: the file (if any), then the flags.
fn config(args: &ProxyArgs) -> Result<ProxyConfig, ConfigError> {
    let mut config = match &args.config {
        Some(path) => ProxyConfig::from_file(path)?,
        None => ProxyConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    for spec in &args.upstream {
        config.add_upstream_flag(spec)?;
    }
    for spec in &args.alias {
        config.add_alias_flag(spec)?;
    }
    if let Some(store) = &args.cache {
        config.cache.store = store.clone();
    }
    if let Some(Dur(ttl)) = args.cache_ttl {
        config.cache.ttl = ttl;
    }
    if let Some(bytes) = args.cache_max_bytes {
        config.cache.max_bytes = bytes;
    }
    config.cache.nondeterministic |= args.cache_nondeterministic;
    if let Some(bytes) = args.max_body_bytes {
        config.limits.max_body_bytes = bytes;
    }
    let semantic = &mut config.semantic;
    semantic.enabled |= args.semantic
        || args.embedder.is_some()
        || args.semantic_threshold.is_some()
        || args.semantic_store.is_some()
        || args.semantic_delta.is_some();
    if let Some(delta) = args.semantic_delta {
        semantic.delta = Some(delta);
    }
    if let Some(store) = &args.semantic_store {
        semantic.store = store.clone();
    }
    if let Some(embedder) = &args.embedder {
        semantic.embedder = embedder.clone();
    }
    if let Some(model) = &args.embedder_model {
        semantic.model = model.clone();
    }
    if let Some(threshold) = args.semantic_threshold {
        semantic.threshold = threshold;
    }
    semantic.guard &= !args.no_semantic_guard;
    for spec in &args.tier {
        let bad = || ConfigError(format!("--tier takes NAME=UPSTREAM[:MODEL], not {spec:?}"));
        let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
        let (upstream, model) = match rest.split_once(':') {
            Some((u, m)) => (u, Some(m.to_owned())),
            None => (rest, None),
        };
        if name.is_empty() || upstream.is_empty() {
            return Err(bad());
        }
        let tier = TierConfig { name: name.into(), upstream: upstream.into(), model, timeout: None };
        config.routing.tiers.push(tier);
    }
    if let Some(path) = &args.route_examples {
        config.routing.examples = Some(path.clone());
    }
    for spec in &args.route_task {
        let (task, tier) =
            spec.split_once('=').ok_or_else(|| ConfigError(format!("--route-task takes TYPE=TIER, not {spec:?}")))?;
        config.routing.tasks.insert(task.into(), tier.into());
    }
    if let Some(after) = &args.hedge {
        config.hedging.enabled = true;
        config.hedging.after = after.clone();
    }
    if let Some(n) = args.hedge_branches {
        config.hedging.enabled = true;
        config.hedging.branches = n;
    }
    if !args.hedge_to.is_empty() {
        config.hedging.enabled = true;
        config.hedging.upstreams.clone_from(&args.hedge_to);
    }
    Ok(config)
}

/// Runs the proxy until SIGINT or SIGTERM, then drains.
pub async fn run(args: ProxyArgs) -> Result<u8> {
    let config = config(&args).map_err(|e| InputError(anyhow!(e)))?;
    let summary = describe(&config);
    let proxy = Proxy::bind(config).await.map_err(|e| match e {
        StartError::Config(c) => anyhow::Error::new(InputError(anyhow!(c))),
        other => anyhow!(other),
    })?;
    eprintln!("velollm proxy: listening on http://{}", proxy.local_addr());
    eprint!("{summary}");
    match proxy.check_embedder().await {
        Ok(Some(dimension)) => eprintln!("  embedder answers: {dimension} dimensions"),
        Ok(None) => {}
        Err(why) => eprintln!(
            "velollm proxy: warning: the embedder does not answer ({why}); semantic lookups are misses until it does"
        ),
    }
    if let Err(why) = proxy.check_store().await {
        eprintln!(
            "velollm proxy: warning: a shared store does not answer ({why}); requests are served from upstream until it does"
        );
    }
    let shutdown = async {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        #[cfg(unix)]
        let name = crate::signal::next_signal(&mut term).await;
        #[cfg(not(unix))]
        let name = crate::signal::next_signal().await;
        eprintln!("velollm proxy: {name}: draining (no new connections; streams in flight finish)");
    };
    proxy.run(shutdown).await?;
    eprintln!("velollm proxy: stopped");
    Ok(crate::exit::OK)
}

/// What the proxy will do, one line per upstream.
fn describe(config: &ProxyConfig) -> String {
    let mut out = String::new();
    for u in &config.upstreams {
        let dialects: Vec<&str> =
            if u.dialects.is_empty() { vec!["every dialect"] } else { u.dialects.iter().map(|d| d.name()).collect() };
        out.push_str(&format!("  upstream {} = {} ({})\n", u.name, u.url, dialects.join(", ")));
    }
    let cache = &config.cache;
    let store = if cache.store.starts_with("redis://") { "redis" } else { cache.store.as_str() };
    out.push_str(&format!(
        "  cache: {store}, ttl {}, {}\n",
        humantime::format_duration(cache.ttl),
        if cache.nondeterministic { "every answer" } else { "deterministic requests only (temperature 0 or a seed)" }
    ));
    let semantic = &config.semantic;
    if semantic.enabled {
        let embedder = if semantic.embedder == "local" {
            format!("in process, {}", semantic.model_dir().display())
        } else {
            semantic.embedder.clone()
        };
        out.push_str(&format!(
            "  semantic: threshold {}{}, guard {}, embedder {embedder}, store {}\n",
            semantic.threshold,
            semantic
                .delta
                .map(|d| {
                    let shared = if store == "redis" { ", shared through redis" } else { "" };
                    format!(" (floor; thresholds learned per entry, δ {d}{shared})")
                })
                .unwrap_or_default(),
            if semantic.guard { "on" } else { "off" },
            if semantic.store.starts_with("redis://") {
                "redis-stack"
            } else if semantic.is_postgres() {
                "pgvector"
            } else if semantic.is_milvus() {
                "milvus"
            } else {
                semantic.store.as_str()
            }
        ));
    }
    let routing = &config.routing;
    if !routing.tiers.is_empty() {
        let tiers: Vec<String> = routing
            .tiers
            .iter()
            .map(|t| {
                format!("{}={}{}", t.name, t.upstream, t.model.as_deref().map(|m| format!(":{m}")).unwrap_or_default())
            })
            .collect();
        let examples = routing.examples.as_ref().map_or("none".into(), |p| p.display().to_string());
        out.push_str(&format!(
            "  routing: model {:?} to {}; examples {examples}, confidence {}\n",
            routing.model,
            tiers.join(", "),
            routing.confidence
        ));
    }
    if config.hedging.enabled {
        let h = &config.hedging;
        let to = if h.upstreams.is_empty() { "the same upstream".to_owned() } else { h.upstreams.join(", ") };
        out.push_str(&format!("  hedging: after {}, {} branches, extra ones to {to}\n", h.after, h.branches));
    }
    out
}
