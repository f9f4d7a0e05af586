//! The listener: HTTP/1.1 and HTTP/2 (h2c) on one port, `TCP_NODELAY` on every accepted socket, deadlines
//! for request heads and for writes to a client that stopped reading, and a graceful shutdown — on the shutdown signal the listener closes (new connections
//! are refused), `/ready` says draining, and streams in flight finish within the grace period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::cache::flight::Flights;
use crate::cache::memory::MemoryStore;
use crate::cache::redis::RedisStore;
use crate::cache::{Cache, Store};
use crate::config::{ConfigError, ProxyConfig};
use crate::deadline::WriteDeadline;
use crate::handler::{State, handle};
use crate::hedge::{After, Hedging};
use crate::metrics::Metrics;
use crate::routing::{Classifier, Router, Tier};
use crate::semantic::milvus_vectors::MilvusVectors;
use crate::semantic::pg_vectors::PgVectors;
use crate::semantic::redis_vectors::RedisVectors;
use crate::semantic::{Embedder, Index, Learning, Semantic, VectorStore};
use crate::upstream::Upstream;

/// The router of a validated configuration: its examples read and embedded (every error names the file).
async fn router(config: &ProxyConfig, embedder: Option<Arc<Embedder>>) -> Result<Router, ConfigError> {
    let routing = &config.routing;
    let index = |name: &str| config.upstreams.iter().position(|u| u.name == name).unwrap_or(0);
    let tiers: Vec<Tier> = routing
        .tiers
        .iter()
        .map(|t| Tier {
            name: Arc::from(t.name.as_str()),
            upstream: index(&t.upstream),
            model: t.model.clone().unwrap_or_default(),
            timeout: t.timeout.unwrap_or(config.limits.upstream_timeout),
        })
        .collect();
    let tasks = routing
        .tasks
        .iter()
        .filter_map(|(task, tier)| {
            let task = crate::routing::knn::task_type(task).ok()?;
            Some((task, tiers.iter().position(|t| &*t.name == tier)?))
        })
        .collect();
    let classifier = match (&routing.examples, &embedder) {
        (Some(path), Some(embedder)) => {
            let examples =
                crate::routing::knn::load(path).map_err(|e| ConfigError(format!("routing examples: {e}")))?;
            let timeout = config.semantic.timeout.max(Duration::from_secs(10));
            let mut embedded = Vec::with_capacity(examples.len());
            for e in examples {
                let v = embedder
                    .embed_prefix(&crate::routing::knn::head(&e.prompt, routing.max_words), routing.max_tokens, timeout)
                    .await
                    .map_err(|err| ConfigError(format!("routing examples: cannot embed {:?}: {err}", e.id)))?;
                embedded.push((e, v));
            }
            Some(Classifier::new(embedded, routing.k))
        }
        _ => None,
    };
    Ok(Router {
        model: routing.model.clone(),
        tiers,
        tasks,
        classifier,
        embedder,
        confidence: routing.confidence,
        min_similarity: routing.min_similarity,
        max_prompt_chars: routing.max_prompt_chars,
        max_words: routing.max_words,
        max_tokens: routing.max_tokens,
        embed_timeout: config.semantic.timeout,
    })
}

/// A proxy bound to its address, ready to run.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    state: Arc<State>,
}

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

impl Proxy {
    /// Validates the configuration and binds its address.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, StartError> {
        config.validate()?;
        let limits = &config.limits;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::new(u, limits.connect_timeout))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError)?;
        let store = match config.cache.store.as_str() {
            "off" => None,
            "memory" => Some(Store::Memory(MemoryStore::new(config.cache.max_bytes))),
            url => Some(Store::Redis(RedisStore::new(url, config.cache.store_timeout).map_err(ConfigError)?)),
        };
        let cache = store.map(|store| {
            Arc::new(Cache {
                store,
                flights: Arc::new(Flights::default()),
                ttl: config.cache.ttl,
                max_entry: config.cache.max_bytes.min(64 << 20),
                nondeterministic: config.cache.nondeterministic,
            })
        });
        let sem = &config.semantic;
        let routed = !config.routing.tiers.is_empty() && config.routing.examples.is_some();
        let embedder = if sem.enabled || routed {
            Some(Arc::new(if sem.embedder == "local" {
                Embedder::local(&sem.model_dir()).map_err(ConfigError)?
            } else {
                Embedder::remote(&sem.embedder, &sem.model, limits.connect_timeout).map_err(ConfigError)?
            }))
        } else {
            None
        };
        let semantic = if let Some(embedder) = embedder.clone().filter(|_| sem.enabled) {
            let store_timeout = config.cache.store_timeout.max(Duration::from_secs(1));
            let store = if sem.store == "memory" {
                VectorStore::Embedded(Index::new(sem.capacity, config.cache.ttl).with_ef_search(sem.ef_search))
            } else if sem.is_postgres() {
                let pg =
                    PgVectors::new(&sem.store, &sem.index, config.cache.ttl, store_timeout).map_err(ConfigError)?;
                if let Some(dimension) = embedder.dimension() {
                    // As for Redis Stack: another dimension is refused now, a server that is down is not.
                    if let Err(e) = pg.ensure(dimension).await
                        && (e.starts_with("the vector store's table") || e.contains("no pgvector"))
                    {
                        return Err(ConfigError(e).into());
                    }
                }
                VectorStore::Postgres(pg)
            } else if sem.is_milvus() {
                let milvus =
                    MilvusVectors::new(&sem.store, &sem.index, config.cache.ttl, store_timeout).map_err(ConfigError)?;
                if let Some(dimension) = embedder.dimension() {
                    // As for the others: another dimension is refused now, a server that is down is not.
                    if let Err(e) = milvus.ensure(dimension).await
                        && e.starts_with("the vector store's collection")
                    {
                        return Err(ConfigError(e).into());
                    }
                }
                VectorStore::Milvus(milvus)
            } else {
                let redis = RedisVectors::new(&sem.store, &sem.index, config.cache.ttl, store_timeout)
                    .map_err(ConfigError)?
                    .with_ef_runtime(sem.ef_search);
                if let Some(dimension) = embedder.dimension() {
                    // A store built for another dimension is refused now; one that is down is not (lookups
                    // are misses until it answers, and the index is created then).
                    if let Err(e) = redis.ensure(dimension).await
                        && e.starts_with("the vector store's index")
                    {
                        return Err(ConfigError(e).into());
                    }
                }
                VectorStore::Redis(redis)
            };
            Some(Arc::new(Semantic {
                embedder,
                store: Arc::new(store),
                threshold: sem.threshold,
                guard: sem.guard,
                max_turns: sem.max_turns,
                max_chars: sem.max_chars,
                timeout: sem.timeout,
                learned: match sem.delta {
                    None => None,
                    Some(d) => {
                        let rule = velollm_core::judge::learned_threshold::Learned::new(d, sem.capacity);
                        // Replicas that share their answers in Redis share what they learned there too.
                        Some(Arc::new(match config.cache.store.as_str() {
                            "off" | "memory" => Learning::local(rule),
                            url => Learning::shared(rule, url, &sem.index, config.cache.ttl, store_timeout)
                                .map_err(ConfigError)?,
                        }))
                    }
                },
                answer_similarity: sem.answer_similarity,
            }))
        } else {
            None
        };
        let router = match config.routing.tiers.is_empty() {
            true => None,
            false => Some(Arc::new(router(&config, embedder).await?)),
        };
        let hedging = match config.hedging.enabled {
            false => None,
            true => {
                let h = &config.hedging;
                let after = match h.fixed_after()? {
                    Some(d) => After::Fixed(d),
                    None => After::P95(h.initial),
                };
                let index = |name: &String| config.upstreams.iter().position(|u| &u.name == name).unwrap_or(0);
                Some(Arc::new(Hedging::new(after, h.branches, h.upstreams.iter().map(index).collect())))
            }
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let state = State {
            config,
            upstreams,
            cache,
            semantic,
            router,
            hedging,
            metrics: Arc::default(),
            draining: AtomicBool::new(false),
        };
        Ok(Proxy { listener, state: Arc::new(state) })
    }

    /// The address it listens on (the port chosen when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.listen)
    }

    /// Its metrics, shared with the running proxy.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.state.metrics)
    }

    /// Checks that a remote embedder answers and learns its dimension; `Err` says why (the proxy still runs:
    /// an embedder that is down makes every semantic lookup a miss).
    pub async fn check_embedder(&self) -> Result<Option<usize>, String> {
        match self.state.semantic.as_deref() {
            Some(s) => {
                s.embedder.embed("dimension check", s.timeout.max(Duration::from_secs(5))).await.map(|v| Some(v.len()))
            }
            None => Ok(None),
        }
    }

    /// Checks that a shared cache store answers; `Err` says why (the proxy still runs: a store that is down
    /// makes every request a miss).
    pub async fn check_store(&self) -> Result<(), String> {
        if let Some(Store::Redis(r)) = self.state.cache.as_deref().map(|c| &c.store) {
            r.ping().await.map_err(|e| e.0)?;
        }
        if let Some(s) = self.state.semantic.as_deref()
            && let VectorStore::Redis(r) = &*s.store
            && let Some(dimension) = s.embedder.dimension()
        {
            r.ensure(dimension).await.map_err(|e| format!("semantic store: {e}"))?;
        }
        Ok(())
    }

    /// Serves until `shutdown` completes, then drains: no new connections, streams in flight finish within
    /// the grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Proxy { listener, state } = self;
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.limits.client_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        let client_timeout = state.config.limits.client_timeout;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => {
                            // Out of descriptors or a connection reset before accept: wait a moment, go on.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    let service = service_fn(move |request| handle(Arc::clone(&state), request));
                    let connection = builder
                        .serve_connection_with_upgrades(WriteDeadline::new(TokioIo::new(stream), client_timeout), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                () = &mut shutdown => break,
            }
        }
        state.draining.store(true, Ordering::Relaxed);
        drop(listener);
        let grace = state.config.limits.shutdown_grace;
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        Ok(())
    }
}
