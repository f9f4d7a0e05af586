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
        self.made_if_missing(query.len(), || self.nearest_once(context, query)).await
    }

    /// Stores a question; a shared store's write happens in the background.
    pub fn insert(self: &Arc<Self>, context: CacheKey, vector: Vec<f32>, text: String, answer: CacheKey) {
        if let VectorStore::Embedded(index) = &**self {
            return index.insert(context, vector, text, answer);
        }
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let _ = store.write(&context, &vector, &text, &answer).await;
        });
    }

    /// Stores a question and waits until the store has it (the benchmark's loads; the proxy uses
    /// [`VectorStore::insert`]).
    pub async fn write(&self, context: &CacheKey, vector: &[f32], text: &str, answer: &CacheKey) -> Result<(), String> {
        self.made_if_missing(vector.len(), || self.write_once(context, vector, text, answer)).await
    }

    /// Forgets a question whose answer is gone.
    pub async fn remove(&self, context: &CacheKey, answer: &CacheKey) {
        let _ = match self {
            VectorStore::Embedded(index) => {
                index.remove(context, answer);
                Ok(())
            }
            VectorStore::Redis(r) => r.remove(context, answer).await,
            VectorStore::Postgres(p) => p.remove(context, answer).await,
            VectorStore::Milvus(m) => m.remove(context, answer).await,
        };
    }

    /// `call` on a shared store, and once more after making its index (table, collection) when the server says
    /// it is not there: the server came up empty, or it was dropped.
    async fn made_if_missing<T, F, Fut>(&self, dimension: usize, call: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        match call().await {
            Err(e) if self.missing(&e) => {
                self.ensure(dimension).await?;
                call().await
            }
            other => other,
        }
    }

    /// Whether a shared store's error says its index (table, collection) is not there.
    fn missing(&self, error: &str) -> bool {
        match self {
            VectorStore::Embedded(_) => false,
            VectorStore::Redis(_) => error.contains("Unknown index") || error.contains("no such index"),
            VectorStore::Postgres(_) => error.contains("does not exist"),
            VectorStore::Milvus(_) => {
                let e = error.to_ascii_lowercase();
                e.contains("collection")
                    && (e.contains("not found") || e.contains("not exist") || e.contains("not loaded"))
            }
        }
    }

    /// Makes a shared store's index (table, collection) for `dimension`-long vectors, or checks that the one
    /// there has that dimension.
    pub async fn ensure(&self, dimension: usize) -> Result<(), String> {
        match self {
            VectorStore::Embedded(_) => Ok(()),
            VectorStore::Redis(r) => r.ensure(dimension).await,
            VectorStore::Postgres(p) => p.ensure(dimension).await,
            VectorStore::Milvus(m) => m.ensure(dimension).await,
        }
    }

    async fn nearest_once(&self, context: &CacheKey, query: &[f32]) -> Result<Option<Nearest>, String> {
        match self {
            VectorStore::Embedded(index) => Ok(index.nearest(context, query)),
            VectorStore::Redis(r) => r.nearest(context, query).await,
            VectorStore::Postgres(p) => p.nearest(context, query).await,
            VectorStore::Milvus(m) => m.nearest(context, query).await,
        }
    }

    async fn write_once(
        &self,
        context: &CacheKey,
        vector: &[f32],
        text: &str,
        answer: &CacheKey,
    ) -> Result<(), String> {
        match self {
            VectorStore::Embedded(index) => {
                index.insert(*context, vector.to_vec(), text.to_owned(), *answer);
                Ok(())
            }
            VectorStore::Redis(r) => r.insert(context, vector, text, answer).await,
            VectorStore::Postgres(p) => p.insert(context, vector, text, answer).await,
            VectorStore::Milvus(m) => m.insert(context, vector, text, answer).await,
        }
    }
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
