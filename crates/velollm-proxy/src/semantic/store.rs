//! Where the questions live, behind one interface: the embedded index (in this process, the default) or Redis
//! Stack's vector search (shared by replicas). A store that fails makes the lookup a miss, counted.

use std::sync::Arc;

use super::index::{Index, Nearest};
use super::redis_vectors::RedisVectors;
use crate::normalize::CacheKey;

/// A vector store.
#[derive(Debug)]
pub enum VectorStore {
    /// In this process.
    Embedded(Index),
    /// A Redis Stack server.
    Redis(RedisVectors),
}

impl VectorStore {
    /// The store's kind, as a label.
    pub fn kind(&self) -> &'static str {
        match self {
            VectorStore::Embedded(_) => "memory",
            VectorStore::Redis(_) => "redis-stack",
        }
    }

    /// The question of `context` nearest to `query`.
    pub async fn nearest(&self, context: &CacheKey, query: &[f32]) -> Result<Option<Nearest>, String> {
        match self {
            VectorStore::Embedded(index) => Ok(index.nearest(context, query)),
            VectorStore::Redis(r) => match r.nearest(context, query).await {
                // The server came up empty (or was flushed): create the index, then ask again.
                Err(e) if e.contains("Unknown index") || e.contains("no such index") => {
                    r.ensure(query.len()).await?;
                    r.nearest(context, query).await
                }
                other => other,
            },
        }
    }

    /// Stores a question; a shared store's write happens in the background.
    pub fn insert(self: &Arc<Self>, context: CacheKey, vector: Vec<f32>, text: String, answer: CacheKey) {
        match &**self {
            VectorStore::Embedded(index) => index.insert(context, vector, text, answer),
            VectorStore::Redis(_) => {
                let store = Arc::clone(self);
                tokio::spawn(async move {
                    if let VectorStore::Redis(r) = &*store {
                        let _ = r.insert(&context, &vector, &text, &answer).await;
                    }
                });
            }
        }
    }

    /// Forgets a question whose answer is gone.
    pub async fn remove(&self, context: &CacheKey, answer: &CacheKey) {
        match self {
            VectorStore::Embedded(index) => index.remove(context, answer),
            VectorStore::Redis(r) => {
                let _ = r.remove(context, answer).await;
            }
        }
    }
}
