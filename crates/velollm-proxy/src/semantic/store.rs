//! Where the questions live, behind one interface: the embedded index (in this process, the default), Redis
//! Stack's vector search, Postgres with pgvector or Milvus (shared by replicas). A store that fails makes the
//! lookup a miss, counted.

use std::sync::Arc;

use super::index::{Index, Nearest};
use super::milvus_vectors::MilvusVectors;
use super::pg_vectors::PgVectors;
use super::redis_vectors::RedisVectors;
use crate::normalize::CacheKey;

/// A vector store.
#[derive(Debug)]
pub enum VectorStore {
    /// In this process.
    Embedded(Index),
    /// A Redis Stack server.
    Redis(RedisVectors),
    /// A Postgres server with pgvector.
    Postgres(PgVectors),
    /// A Milvus server (or Milvus Lite).
    Milvus(MilvusVectors),
}

impl VectorStore {
    /// The store's kind, as a label.
    pub fn kind(&self) -> &'static str {
        match self {
            VectorStore::Embedded(_) => "memory",
            VectorStore::Redis(_) => "redis-stack",
            VectorStore::Postgres(_) => "pgvector",
            VectorStore::Milvus(_) => "milvus",
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
            VectorStore::Postgres(p) => match p.nearest(context, query).await {
                // The table is not there yet (or was dropped): create it, then ask again.
                Err(e) if e.contains("does not exist") => {
                    p.ensure(query.len()).await?;
                    p.nearest(context, query).await
                }
                other => other,
            },
            VectorStore::Milvus(m) => match m.nearest(context, query).await {
                // The collection is not there yet (or was dropped): create it, then ask again.
                Err(e) if missing(&e) => {
                    m.ensure(query.len()).await?;
                    m.nearest(context, query).await
                }
                other => other,
            },
        }
    }

    /// Stores a question; a shared store's write happens in the background.
    pub fn insert(self: &Arc<Self>, context: CacheKey, vector: Vec<f32>, text: String, answer: CacheKey) {
        match &**self {
            VectorStore::Embedded(index) => index.insert(context, vector, text, answer),
            VectorStore::Redis(_) | VectorStore::Postgres(_) | VectorStore::Milvus(_) => {
                let store = Arc::clone(self);
                tokio::spawn(async move {
                    match &*store {
                        VectorStore::Redis(r) => drop(r.insert(&context, &vector, &text, &answer).await),
                        VectorStore::Postgres(p) => {
                            if let Err(e) = p.insert(&context, &vector, &text, &answer).await
                                && e.contains("does not exist")
                                && p.ensure(vector.len()).await.is_ok()
                            {
                                let _ = p.insert(&context, &vector, &text, &answer).await;
                            }
                        }
                        VectorStore::Milvus(m) => {
                            if let Err(e) = m.insert(&context, &vector, &text, &answer).await
                                && missing(&e)
                                && m.ensure(vector.len()).await.is_ok()
                            {
                                let _ = m.insert(&context, &vector, &text, &answer).await;
                            }
                        }
                        VectorStore::Embedded(_) => {}
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
            VectorStore::Postgres(p) => {
                let _ = p.remove(context, answer).await;
            }
            VectorStore::Milvus(m) => {
                let _ = m.remove(context, answer).await;
            }
        }
    }
}

/// Whether a Milvus error says the collection is not there.
fn missing(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("collection") && (e.contains("not found") || e.contains("not exist") || e.contains("not loaded"))
}

/// Checks a shared store's index name (a Redis key prefix, a Postgres table, a Milvus collection): letters, digits,
/// '-', '_'.
pub fn check_index(index: &str) -> Result<(), String> {
    if index.is_empty() || !index.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("semantic index {index:?}: use letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// A store's URL with any password hidden, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_show() {
        assert_eq!(super::redact("postgres://u:secret@h:5432/db"), "postgres://u:****@h:5432/db");
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
        assert_eq!(super::redact("memory"), "memory");
    }
}
