//! The semantic cache layer, consulted after an exact miss: the last user turn is embedded and compared with
//! the questions already answered *in the same context* (every other field of the request equal, same tenant
//! partition, same embedding model and dimension); the nearest one above the threshold, unless the lexical
//! guard objects, lends its answer, which is replayed from the exact cache and stored under the new request's
//! key as well.
//!
//! | module | what it is for |
//! |---|---|
//! | [`probe`] | what is compared (the last user turn) and what must match (the rest); who bypasses |
//! | [`embedder`] | text to vector: in process, or an OpenAI-compatible `/v1/embeddings` |
//! | [`index`] | the embedded vector index, grouped by context: exact scan while small, a graph beyond |
//! | [`hnsw`] | the graph: a hierarchical navigable small world |
//! | [`redis_vectors`] | Redis Stack's vector search, shared by replicas |
//! | [`pg_vectors`] | Postgres with pgvector, shared by replicas |
//! | [`milvus_vectors`] and [`milvus_proto`] | Milvus (Milvus Lite) over gRPC, shared by replicas, and the messages it takes |
//! | [`store`] | the stores behind one interface |
//! | [`guard`] | negations, antonyms, numbers, identifiers, entities that must agree |
//! | [`answer`] | the text of a stored answer, and whether two answers agree |
//! | [`learning`] | where learned thresholds' observations live: this process, or Redis shared by replicas |
//!
//! Any failure here (the embedder down or slow, a dimension that changed) makes the request a miss, counted,
//! never an error.

pub mod answer;
pub mod embedder;
pub mod guard;
pub mod hnsw;
pub mod index;
pub mod learning;
pub mod milvus_proto;
pub mod milvus_vectors;
pub mod pg_vectors;
pub mod probe;
pub mod redis_vectors;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use velollm_core::judge::learned_threshold as learned;

use crate::cache::Cache;
use crate::dialect::Generate;
use crate::metrics::{Lookup, Metrics};
use crate::normalize::{CacheKey, Normalized};

pub use embedder::Embedder;
pub use index::Index;
pub use learning::Learning;
pub use store::VectorStore;

/// The layer's settings and state.
#[derive(Debug)]
pub struct Semantic {
    /// Text to vector (shared with the router).
    pub embedder: Arc<Embedder>,
    /// The questions answered so far.
    pub store: Arc<VectorStore>,
    /// The least cosine similarity that counts as the same question.
    pub threshold: f32,
    /// Apply the lexical guard.
    pub guard: bool,
    /// Earlier turns (system prompts not counted) beyond which a request bypasses the layer.
    pub max_turns: usize,
    /// Characters of the last turn beyond which a request bypasses the layer.
    pub max_chars: usize,
    /// The embedder's deadline; past it the request is a miss.
    pub timeout: Duration,
    /// Thresholds learned per entry (`delta` set): candidates from `threshold` up are served or explore.
    pub learned: Option<Arc<Learning>>,
    /// With learned thresholds, the least cosine similarity at which two answers count as agreeing when their
    /// texts differ.
    pub answer_similarity: f32,
}

/// A request the layer will look up: its context's key and the text compared.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Everything but the last turn, hashed in the request's partition; the embedder's name and the vector's
    /// length are added once the text is embedded ([`generation`]).
    pub context: CacheKey,
    /// The last user turn.
    pub text: String,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Found {
    /// A stored question close enough: its answer's exact key.
    Hit {
        /// Where the answer is.
        answer: CacheKey,
        /// The index group it was found in.
        context: CacheKey,
        /// How close.
        score: f32,
        /// The learned estimate that it is wrong, when thresholds are learned.
        p_err: Option<f32>,
        /// The lookup's times, for the response header.
        times: Times,
    },
    /// Nothing close enough (or the guard objected): the question, to index once its answer is stored.
    Miss {
        /// The nearest stored question's similarity, if any.
        score: Option<f32>,
        /// Where the nearest question's answer is.
        nearest: Option<CacheKey>,
        /// Why the guard blocked the nearest one, if it did.
        blocked: Option<guard::Block>,
        /// The learned estimate that the nearest one would have been wrong, when this request explores.
        explored: Option<f32>,
        /// To index with the answer.
        pending: Pending,
        /// The lookup's times.
        times: Times,
    },
    /// The embedder failed: a plain miss.
    Failed(String),
}

/// Embedding and search times of one lookup.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// Embedding the text.
    pub embed: Duration,
    /// Searching the index.
    pub search: Duration,
}

/// A question waiting for its answer to be stored.
#[derive(Debug, Clone)]
pub struct Pending {
    context: CacheKey,
    text: String,
    vector: Vec<f32>,
    /// The entry this request explored instead of being served (its answer's key, and the similarity).
    explored: Option<(CacheKey, f32)>,
}

impl Pending {
    /// Whether the request explored an entry, so that its answer teaches that entry even when it is not stored.
    pub fn explores(&self) -> bool {
        self.explored.is_some()
    }
}

impl Semantic {
    /// The probe for a normalized request, or why it bypasses the layer.
    pub fn probe(&self, route: Generate, normalized: &Normalized) -> Result<Probe, probe::Skip> {
        let split = probe::split(route, normalized.body(), self.max_turns, self.max_chars)?;
        Ok(Probe { context: normalized.key_of(b"semantic\0", &split.context), text: split.text })
    }

    /// Embeds the probe's text and searches its context; `own` is the request's exact key (its coin, when
    /// thresholds are learned).
    pub async fn lookup(&self, probe: Probe, own: &CacheKey, metrics: &Metrics) -> Found {
        let started = Instant::now();
        let vector = match self.embedder.embed(&probe.text, self.timeout).await {
            Ok(v) => v,
            Err(e) => {
                metrics.lookup("semantic", Lookup::Error);
                return Found::Failed(e);
            }
        };
        let embedded = Instant::now();
        let context = generation(&probe.context, &self.embedder.name(), vector.len());
        let nearest = match self.store.nearest(&context, &vector).await {
            Ok(n) => n,
            Err(e) => {
                metrics.lookup("semantic", Lookup::Error);
                return Found::Failed(format!("vector store: {e}"));
            }
        };
        let times = Times { embed: embedded - started, search: embedded.elapsed() };
        metrics.semantic_times(times.embed, times.search);
        let score = nearest.as_ref().map(|n| n.score);
        // The guard is asked about the nearest question whatever its score, so that the header tells an
        // evaluation what any threshold would have done.
        let blocked = nearest.as_ref().and_then(|n| if self.guard { guard::check(&probe.text, &n.text) } else { None });
        let near = nearest.as_ref().map(|n| n.answer);
        let mut explored = None;
        if let Some(n) = nearest.filter(|n| n.score >= self.threshold) {
            match (blocked, &self.learned) {
                (None, None) => {
                    metrics.lookup("semantic", Lookup::Hit);
                    return Found::Hit { answer: n.answer, context, score: n.score, p_err: None, times };
                }
                (None, Some(learning)) => {
                    match learning.decide(&n.answer, n.score, learned::coin(&own.0), metrics).await {
                        learned::Decision::Serve(p) => {
                            metrics.lookup("semantic", Lookup::Hit);
                            return Found::Hit { answer: n.answer, context, score: n.score, p_err: Some(p), times };
                        }
                        learned::Decision::Explore(p) => {
                            metrics.semantic_learning("explore");
                            explored = Some((n.answer, n.score, p));
                        }
                    }
                }
                (Some(b), _) => metrics.semantic_block(b.as_str()),
            }
        }
        metrics.lookup("semantic", Lookup::Miss);
        let pending = Pending { context, text: probe.text, vector, explored: explored.map(|(a, s, _)| (a, s)) };
        Found::Miss { score, nearest: near, blocked, explored: explored.map(|(_, _, p)| p), pending, times }
    }

    /// Indexes a question once its answer (`body`) is stored under `key` (`None`: the answer was not stored,
    /// `Cache-Control: no-store`, and the question is never indexed). A request that explored compares its
    /// answer with the stored one first: an agreement is recorded on that entry and the question is not indexed
    /// (the entry already stands for it); a disagreement is recorded and the question gets its own entry.
    pub fn answered(
        self: &Arc<Self>,
        pending: Pending,
        key: Option<CacheKey>,
        body: Bytes,
        cache: &Arc<Cache>,
        metrics: &Arc<Metrics>,
    ) {
        let index = move |semantic: &Semantic, pending: Pending| {
            if let Some(key) = key {
                semantic.store.insert(pending.context, pending.vector, pending.text, key);
            }
        };
        let (Some((stored, score)), Some(learned)) = (pending.explored, self.learned.clone()) else {
            index(self, pending);
            return;
        };
        let (semantic, cache, metrics) = (Arc::clone(self), Arc::clone(cache), Arc::clone(metrics));
        tokio::spawn(async move {
            let Ok(Some(entry)) = cache.store.get(&stored).await else {
                metrics.semantic_learning("gone");
                index(&semantic, pending);
                return;
            };
            let agreed = semantic.agree(&answer::text(&entry.body), &answer::text(&body)).await;
            learned.record(stored, score, agreed, &metrics).await;
            metrics.semantic_learning(if agreed { "agree" } else { "disagree" });
            if !agreed {
                index(&semantic, pending);
            }
        });
    }

    /// Whether two answers say the same: the same words, or embeddings at `answer_similarity` or closer. An
    /// embedder that fails says they differ (the entry is then explored again, never served wrongly).
    async fn agree(&self, a: &str, b: &str) -> bool {
        if answer::same_text(a, b) {
            return true;
        }
        if a.trim().is_empty() || b.trim().is_empty() {
            return false;
        }
        match (self.embedder.embed(a, self.timeout).await, self.embedder.embed(b, self.timeout).await) {
            (Ok(x), Ok(y)) => velollm_embed::bert::dot(&x, &y) >= self.answer_similarity,
            _ => false,
        }
    }

    /// Forgets a question whose answer is no longer in the exact cache.
    pub async fn forget(&self, context: &CacheKey, answer: &CacheKey) {
        self.store.remove(context, answer).await;
    }
}

/// The first 12 hex digits of a key.
fn short(key: &CacheKey) -> String {
    key.hex()[..12].to_owned()
}

/// The index group of a context under one embedding space (model and dimension): changing either starts a
/// new generation of entries instead of comparing vectors that do not belong together.
pub fn generation(context: &CacheKey, model: &str, dimension: usize) -> CacheKey {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&context.0);
    ctx.update(model.as_bytes());
    ctx.update(&[0]);
    ctx.update(&(dimension as u64).to_le_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    CacheKey(out)
}

impl Found {
    /// The `x-velollm-cache` value: `hit; layer=semantic; score=0.934; entry=…; embed_ms=…; search_ms=…`, or
    /// the miss with the nearest question's score, its entry and what the guard said of it. `entry` is the
    /// first 12 hex digits of the answer's exact key (a hash: nothing of the request): the answer served, or
    /// the nearest one, which an evaluation matches with the `entry` its seed requests were stored under.
    pub fn header(&self, own: &CacheKey) -> String {
        let times = |t: &Times| {
            format!("embed_ms={:.3}; search_ms={:.3}", t.embed.as_secs_f64() * 1e3, t.search.as_secs_f64() * 1e3)
        };
        match self {
            Found::Hit { score, answer, p_err, times: t, .. } => {
                let learned = p_err.map(|p| format!("p_err={p:.4}; ")).unwrap_or_default();
                format!("hit; layer=semantic; score={score:.4}; entry={}; {learned}{}", short(answer), times(t))
            }
            Found::Miss { score, nearest, blocked, explored, times: t, .. } => {
                let mut s = format!("miss; layer=semantic; key={}", short(own));
                if let (Some(score), Some(nearest)) = (score, nearest) {
                    s.push_str(&format!("; score={score:.4}; entry={}", short(nearest)));
                }
                if let Some(b) = blocked {
                    s.push_str(&format!("; guard={}", b.as_str()));
                }
                if let Some(p) = explored {
                    s.push_str(&format!("; explore; p_err={p:.4}"));
                }
                format!("{s}; {}", times(t))
            }
            Found::Failed(_) => "miss; layer=semantic; error".to_owned(),
        }
    }
}
