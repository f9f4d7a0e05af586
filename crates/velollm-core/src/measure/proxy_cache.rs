//! What a caching proxy in front of the server said about a step's answers, from its own response header
//! (`x-velollm-cache`, `x-cache`, `x-cache-status`, `cf-cache-status`): hits and the rest counted apart, each
//! with its mean TTFT, so that a proxy's effect on a `bench` run is measured, not assumed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::measure::record::RequestRecord;

/// Whether the proxy declared the answer a cache hit; `None` when no proxy said anything.
pub fn declared_hit(r: &RequestRecord) -> Option<bool> {
    r.proxy_cache.as_deref().map(is_hit)
}

/// Whether a cache's header value says hit: it starts with `hit` (any case: `hit`, `HIT`, `Hit from
/// cloudfront`, `hit; layer=semantic; …`), or its first word ends with `_hit` (`TCP_HIT`, `TCP_MEM_HIT`).
pub fn is_hit(value: &str) -> bool {
    let v = value.trim_start();
    let first = v.split([';', ',', ' ']).next().unwrap_or("");
    v.get(..3).is_some_and(|h| h.eq_ignore_ascii_case("hit")) || first.to_ascii_lowercase().ends_with("_hit")
}

/// A step's successful answers as a caching proxy declared them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProxyCacheStats {
    /// Answers declared cache hits.
    pub hits: u64,
    /// Answers declared anything else (miss, bypass, …).
    pub others: u64,
    /// Mean TTFT of the hits, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_hit_ms: Option<f64>,
    /// Mean TTFT of the others, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_other_ms: Option<f64>,
}

/// Counts as requests arrive (constant memory).
#[derive(Debug, Clone, Default)]
pub struct ProxyCacheAccumulator {
    hits: (u64, f64, u64),
    others: (u64, f64, u64),
}

impl ProxyCacheAccumulator {
    /// Adds a successful request and its TTFT.
    pub fn push(&mut self, r: &RequestRecord, ttft_ms: Option<f64>) {
        let Some(hit) = declared_hit(r) else { return };
        let slot = if hit { &mut self.hits } else { &mut self.others };
        slot.0 += 1;
        if let Some(t) = ttft_ms {
            slot.1 += t;
            slot.2 += 1;
        }
    }

    /// The step's figures; `None` when no answer carried a proxy's verdict.
    pub fn stats(&self) -> Option<ProxyCacheStats> {
        let mean = |(_, sum, n): (u64, f64, u64)| (n > 0).then(|| sum / n as f64);
        (self.hits.0 + self.others.0 > 0).then(|| ProxyCacheStats {
            hits: self.hits.0,
            others: self.others.0,
            ttft_hit_ms: mean(self.hits),
            ttft_other_ms: mean(self.others),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_and_the_rest_are_counted_apart() {
        let rec = |v: Option<&str>| RequestRecord { proxy_cache: v.map(str::to_string), ..Default::default() };
        let mut acc = ProxyCacheAccumulator::default();
        assert_eq!(acc.stats(), None);
        acc.push(&rec(None), Some(5.0));
        assert_eq!(acc.stats(), None, "no proxy, no figures");
        acc.push(&rec(Some("hit")), Some(0.1));
        acc.push(&rec(Some("HIT from cache")), Some(0.3));
        acc.push(&rec(Some("miss")), Some(100.0));
        acc.push(&rec(Some("bypass")), None);
        let s = acc.stats().unwrap();
        assert_eq!((s.hits, s.others), (2, 2));
        assert!((s.ttft_hit_ms.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(s.ttft_other_ms, Some(100.0));
    }
}
