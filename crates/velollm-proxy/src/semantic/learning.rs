//! Where learned thresholds' observations live: in this process, or in the Redis server of the exact cache
//! (`--cache redis://…`), shared by the replicas that share that cache and a vector store.
//!
//! The rule is core's ([`Learned`]); this module only keeps its observations. Shared, an entry's observations
//! are a Redis list under `velollm:learn:v1:INDEX:ENTRY` (`INDEX`: the semantic layer's index name, which the
//! replicas of one deployment share; `ENTRY`: the answer's exact key, which already holds the tenant
//! partition), newest first, trimmed to [`PER_ENTRY`], living as long as the answer; the pooled ones, which
//! make every entry's prior, a list under `velollm:learn:v1:INDEX:pooled` trimmed to [`POOLED`] and read again
//! at most once every [`POOLED_REFRESH`]. An observation is its similarity and whether the answers agreed
//! (`0.93125:1`): no text, no key of the caller's. Redis failing, the process decides and records with its own
//! observations (every record is kept locally too), and counts the error.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use velollm_core::judge::learned_threshold::{Decision, Learned, Observation, PER_ENTRY, POOLED};

use crate::metrics::Metrics;
use crate::normalize::CacheKey;
use crate::resp::{Client, Reply};

const PREFIX: &str = "velollm:learn:v1:";
/// How often the pooled observations are read again from a shared store.
pub const POOLED_REFRESH: Duration = Duration::from_secs(1);

/// Learned thresholds and where their observations are kept.
#[derive(Debug)]
pub struct Learning {
    /// The rule, with this process's observations.
    rule: Learned<CacheKey>,
    shared: Option<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    /// `velollm:learn:v1:INDEX:`.
    prefix: String,
    /// How long an entry's observations live (the answer's lifetime).
    ttl: Duration,
    /// When the pooled observations were last read.
    pooled_at: Mutex<Option<Instant>>,
}

impl Learning {
    /// Observations in this process only.
    pub fn local(rule: Learned<CacheKey>) -> Learning {
        Learning { rule, shared: None }
    }

    /// Observations shared through the Redis server at `url` (the exact cache's) by the replicas whose
    /// semantic index is `index`, each entry's kept for `ttl`.
    pub fn shared(
        rule: Learned<CacheKey>,
        url: &str,
        index: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Learning, String> {
        let client = Client::new(url, timeout, "--cache")?;
        let prefix = format!("{PREFIX}{index}:");
        Ok(Learning { rule, shared: Some(Shared { client, prefix, ttl, pooled_at: Mutex::new(None) }) })
    }

    /// Serve or explore the entry `answer` at `score` ([`Learned::decide`]), from the shared observations when
    /// there are, else from this process's.
    pub async fn decide(&self, answer: &CacheKey, score: f32, coin: f32, metrics: &Metrics) -> Decision {
        let Some(shared) = &self.shared else { return self.rule.decide(answer, score, coin) };
        match shared.read(&self.rule, answer).await {
            Ok(own) => self.rule.decide_with(&own, score, coin),
            Err(_) => {
                metrics.semantic_learning("shared-error");
                self.rule.decide(answer, score, coin)
            }
        }
    }

    /// Records what a request that explored the entry `answer` found: here, and in the shared store.
    pub async fn record(&self, answer: CacheKey, score: f32, agreed: bool, metrics: &Metrics) {
        self.rule.record(answer, score, agreed);
        if let Some(shared) = &self.shared
            && shared.write(&answer, Observation { score, agreed }).await.is_err()
        {
            metrics.semantic_learning("shared-error");
        }
    }
}

impl Shared {
    fn entry_key(&self, answer: &CacheKey) -> String {
        format!("{}{}", self.prefix, answer.hex())
    }

    fn pooled_key(&self) -> String {
        format!("{}pooled", self.prefix)
    }

    /// The entry's observations, after reading the pooled ones again if they are older than
    /// [`POOLED_REFRESH`].
    async fn read(&self, rule: &Learned<CacheKey>, answer: &CacheKey) -> Result<Vec<Observation>, String> {
        let due =
            self.pooled_at.lock().unwrap_or_else(PoisonError::into_inner).is_none_or(|t| t.elapsed() >= POOLED_REFRESH);
        if due {
            let pooled = self.list(&self.pooled_key(), POOLED).await?;
            rule.set_pooled(&pooled);
            *self.pooled_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        self.list(&self.entry_key(answer), PER_ENTRY).await
    }

    /// Pushes one observation onto the entry's list and the pooled one, each trimmed to its size.
    async fn write(&self, answer: &CacheKey, o: Observation) -> Result<(), String> {
        let value = encode(o);
        let ttl = self.ttl.as_millis().max(1).to_string();
        for (key, keep) in [(self.entry_key(answer), PER_ENTRY), (self.pooled_key(), POOLED)] {
            let last = (keep - 1).to_string();
            self.client.call(&[b"LPUSH", key.as_bytes(), value.as_bytes()]).await?;
            self.client.call(&[b"LTRIM", key.as_bytes(), b"0", last.as_bytes()]).await?;
            self.client.call(&[b"PEXPIRE", key.as_bytes(), ttl.as_bytes()]).await?;
        }
        Ok(())
    }

    /// The newest `keep` observations of a list (unreadable items skipped).
    async fn list(&self, key: &str, keep: usize) -> Result<Vec<Observation>, String> {
        let last = (keep - 1).to_string();
        match self.client.call(&[b"LRANGE", key.as_bytes(), b"0", last.as_bytes()]).await? {
            Reply::Array(Some(items)) => Ok(items.iter().filter_map(|i| decode(&i.text()?)).collect()),
            Reply::Array(None) => Ok(Vec::new()),
            other => Err(format!("redis LRANGE answered {other:?}")),
        }
    }
}

/// `0.93125:1` (agreed) or `0.93125:0`.
fn encode(o: Observation) -> String {
    format!("{:.5}:{}", o.score, u8::from(o.agreed))
}

fn decode(s: &str) -> Option<Observation> {
    let (score, agreed) = s.split_once(':')?;
    let score: f32 = score.parse().ok().filter(|s: &f32| s.is_finite())?;
    let agreed = match agreed {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some(Observation { score, agreed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_round_trip_and_bad_ones_are_skipped() {
        let o = Observation { score: 0.93125, agreed: true };
        assert_eq!(encode(o), "0.93125:1");
        assert_eq!(decode(&encode(o)), Some(o));
        assert_eq!(decode("0.5:0"), Some(Observation { score: 0.5, agreed: false }));
        for bad in ["", "0.5", "x:1", "0.5:2", "NaN:1", "inf:0"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_store_that_is_down_decides_from_this_process() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("redis://127.0.0.1:{port}");
        let learning =
            Learning::shared(Learned::new(0.25, 10), &url, "t", Duration::from_secs(60), Duration::from_secs(1))
                .unwrap();
        let metrics = Metrics::default();
        let entry = CacheKey([7; 32]);
        for _ in 0..8 {
            learning.record(entry, 0.9, true, &metrics).await;
        }
        // Every agreement was kept here: (0 + 4 × 1/10) / (8 + 4) = 1/30, under δ.
        assert!(matches!(learning.decide(&entry, 0.95, 0.99, &metrics).await, Decision::Serve(_)));
        assert_eq!(metrics.semantic_learned("shared-error"), 9);
    }
}
