//! The exact response cache: what an entry holds, the stores behind one interface (in process by default,
//! Redis when replicas share it), and the single flight that lets identical misses share one upstream call.
//!
//! A store that fails makes the request a miss, never an error: the caller is served from the upstream and the
//! failure is counted.

pub mod flight;
pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::normalize::CacheKey;

/// The cache as the request path sees it: a store, the flights in progress, and the policy.
#[derive(Debug)]
pub struct Cache {
    /// Where entries live.
    pub store: Store,
    /// Identical misses in progress.
    pub flights: Arc<flight::Flights>,
    /// How long an entry lives.
    pub ttl: Duration,
    /// The largest answer stored.
    pub max_entry: usize,
    /// Store answers to requests that are not deterministic too.
    pub nondeterministic: bool,
}

/// A stored answer: replayed to the caller as the upstream sent it (same dialect, same framing, its usage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The upstream's status (only 200 answers are stored).
    pub status: u16,
    /// The upstream's `Content-Type`.
    pub content_type: String,
    /// The whole answer body: a complete stream or a JSON document.
    pub body: Bytes,
}

const MAGIC: &[u8; 4] = b"VLC1";

impl Entry {
    /// Bytes an entry counts against the byte budget.
    pub fn weight(&self) -> usize {
        self.body.len() + self.content_type.len() + 64
    }

    /// The entry as one byte string, for stores that hold bytes.
    pub fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_bytes();
        let mut out = Vec::with_capacity(8 + ct.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&(ct.len() as u16).to_le_bytes());
        out.extend_from_slice(ct);
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads an encoded entry; `None` when the bytes are not one (another writer, another version).
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let status = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?);
        let ct_len = u16::from_le_bytes(rest.get(2..4)?.try_into().ok()?) as usize;
        let content_type = std::str::from_utf8(rest.get(4..4 + ct_len)?).ok()?.to_owned();
        let body = Bytes::copy_from_slice(rest.get(4 + ct_len..)?);
        Some(Entry { status, content_type, body })
    }
}

/// Where entries live.
#[derive(Debug)]
pub enum Store {
    /// In this process: least recently used out past the byte budget.
    Memory(memory::MemoryStore),
    /// A Redis server shared by proxy replicas.
    Redis(redis::RedisStore),
}

/// Why a lookup or a store failed (the request goes on as a miss).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl Store {
    /// The store's kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// The live entry under `key`, if any.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Entry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(key)),
            Store::Redis(r) => r.get(key).await,
        }
    }

    /// Stores `entry` under `key` for `ttl`.
    pub async fn put(&self, key: CacheKey, entry: Entry, ttl: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.put(key, entry, ttl);
                Ok(())
            }
            Store::Redis(r) => r.put(&key, &entry, ttl).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_encoding_and_garbage_is_refused() {
        let e =
            Entry { status: 200, content_type: "text/event-stream".into(), body: Bytes::from_static(b"data: x\n\n") };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b"VLC1\x01"), None);
        assert_eq!(Entry::decode(b"hello"), None);
    }
}
