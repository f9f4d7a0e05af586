//! The proxy's Prometheus metrics (`GET /metrics`, text format 0.0.4): requests by route and status, cache
//! lookups by layer and outcome, cache writes, upstream errors, upstream latency to the response head, and
//! the proxy's own added time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Histogram bucket bounds in seconds: fine below a millisecond, where a proxy's overhead lives.
const BOUNDS: [f64; 20] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BOUNDS.iter().position(|&b| s <= b).unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BOUNDS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BOUNDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Counters keyed by their rendered label set.
#[derive(Debug, Default)]
struct Family(Mutex<BTreeMap<String, u64>>);

impl Family {
    fn inc(&self, labels: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(labels).or_default() += 1;
    }

    fn get(&self, labels: &str) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(labels).copied().unwrap_or(0)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Every metric the proxy exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by (route, status): counted without formatting a label per request.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Cache lookups by (layer, outcome).
    lookups: Mutex<BTreeMap<(&'static str, Lookup), u64>>,
    writes: Family,
    upstream_errors: Family,
    upstream_latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    overhead: Histogram,
    in_flight: AtomicI64,
    semantic_skips: Family,
    semantic_blocks: Family,
    semantic_learning: Family,
    semantic_embed: Histogram,
    semantic_search: Histogram,
    route_decisions: Family,
    route_fallbacks: Family,
    route_time: Histogram,
    hedges: Family,
    hedge_bytes: AtomicU64,
    hedge_wins: Family,
    hedge_cancelled: AtomicU64,
}

/// The outcome of one cache lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lookup {
    /// Served from the cache.
    Hit,
    /// Looked up, not found: served from upstream (and stored if it qualifies).
    Miss,
    /// Not looked up: not deterministic, `Cache-Control: no-cache`, cache off, not a generation route.
    Bypass,
    /// The store failed: served from upstream.
    Error,
}

impl Lookup {
    /// The outcome as in `x-velollm-cache` and the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Bypass => "bypass",
            Lookup::Error => "error",
        }
    }
}

impl Metrics {
    /// Counts a response by route and status.
    pub fn request(&self, route: &'static str, status: u16) {
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner).entry((route, status)).or_default() += 1;
    }

    /// Counts a cache lookup.
    pub fn lookup(&self, layer: &'static str, outcome: Lookup) {
        *self.lookups.lock().unwrap_or_else(PoisonError::into_inner).entry((layer, outcome)).or_default() += 1;
    }

    /// Lookups so far with this layer and outcome.
    pub fn lookups(&self, layer: &'static str, outcome: Lookup) -> u64 {
        self.lookups.lock().unwrap_or_else(PoisonError::into_inner).get(&(layer, outcome)).copied().unwrap_or(0)
    }

    /// Counts a cache write: `stored`, `incomplete` (the answer did not end normally) or `error`.
    pub fn write(&self, store: &str, outcome: &str) {
        self.writes.inc(format!("store=\"{store}\",outcome=\"{outcome}\""));
    }

    /// Counts an upstream failure: `connect`, `timeout`, `stream`.
    pub fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors.inc(format!("upstream=\"{upstream}\",kind=\"{kind}\""));
    }

    /// Records the time from sending a request upstream to its response head.
    pub fn upstream_latency(&self, upstream: &str, d: Duration) {
        let h = {
            let mut map = self.upstream_latency.lock().unwrap_or_else(PoisonError::into_inner);
            std::sync::Arc::clone(map.entry(upstream.to_owned()).or_default())
        };
        h.observe(d);
    }

    /// Records the proxy's own time for one response (total to the response head, minus upstream time).
    pub fn overhead(&self, d: Duration) {
        self.overhead.observe(d);
    }

    /// Counts a request the semantic layer did not look at, by reason (`tools`, `history`, `too_long`, …).
    pub fn semantic_skip(&self, reason: &str) {
        self.semantic_skips.inc(format!("reason=\"{reason}\""));
    }

    /// Counts a semantic hit the lexical guard blocked, by reason (`negation`, `number`, …).
    pub fn semantic_block(&self, reason: &str) {
        self.semantic_blocks.inc(format!("reason=\"{reason}\""));
    }

    /// Counts a learned-threshold decision or its outcome: `explore`, then `agree` or `disagree` once the
    /// upstream's answer was compared with the stored one (`gone` when the stored one had left the cache).
    pub fn semantic_learning(&self, event: &str) {
        self.semantic_learning.inc(format!("event=\"{event}\""));
    }

    /// How many times a learned-threshold `event` was counted.
    pub fn semantic_learned(&self, event: &str) -> u64 {
        self.semantic_learning.get(&format!("event=\"{event}\""))
    }

    /// Records one semantic lookup's embedding time and search time.
    pub fn semantic_times(&self, embed: Duration, search: Duration) {
        self.semantic_embed.observe(embed);
        self.semantic_search.observe(search);
    }

    /// Counts a routing decision by tier and reason, and records its time.
    pub fn route(&self, tier: &str, reason: &str, d: Duration) {
        self.route_decisions.inc(format!("tier=\"{tier}\",reason=\"{reason}\""));
        self.route_time.observe(d);
    }

    /// Counts a tier that failed and the tier tried next.
    pub fn route_fallback(&self, from: &str, to: &str) {
        self.route_fallbacks.inc(format!("from=\"{from}\",to=\"{to}\""));
    }

    /// Counts an extra (hedged) request to `upstream`, of `bytes` request bytes.
    pub fn hedge_sent(&self, upstream: &str, bytes: usize) {
        self.hedges.inc(format!("upstream=\"{upstream}\""));
        self.hedge_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts the branch that won a race and the branches cancelled with it.
    pub fn hedge_won(&self, branch: usize, cancelled: usize) {
        self.hedge_wins.inc(format!("branch=\"{branch}\""));
        self.hedge_cancelled.fetch_add(cancelled as u64, Ordering::Relaxed);
    }

    /// Response bodies being sent now.
    pub fn streams_in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A response body started (+1) or ended (−1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let name = "velollm_proxy_requests_total";
        let _ = writeln!(out, "# HELP {name} Responses by route and status.\n# TYPE {name} counter");
        for ((route, status), v) in self.requests.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "{name}{{route=\"{route}\",status=\"{status}\"}} {v}");
        }
        let name = "velollm_proxy_cache_lookups_total";
        let _ = writeln!(
            out,
            "# HELP {name} Cache lookups by layer and outcome (hit, miss, bypass, error).\n# TYPE {name} counter"
        );
        for ((layer, outcome), v) in self.lookups.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "{name}{{layer=\"{layer}\",outcome=\"{}\"}} {v}", outcome.as_str());
        }
        self.writes.render(
            "velollm_proxy_cache_writes_total",
            "Answers offered to the cache: stored, incomplete (not stored), error.",
            &mut out,
        );
        self.upstream_errors.render(
            "velollm_proxy_upstream_errors_total",
            "Upstream failures by upstream and kind (connect, timeout, stream).",
            &mut out,
        );
        let name = "velollm_proxy_upstream_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From sending a request upstream to its response head.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (upstream, h) in self.upstream_latency.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            h.render(name, &format!("upstream=\"{upstream}\""), &mut out);
        }
        let name = "velollm_proxy_overhead_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} The proxy's own time per response: to the response head, minus upstream time."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.overhead.render(name, "", &mut out);
        self.semantic_skips.render(
            "velollm_proxy_semantic_skips_total",
            "Requests the semantic layer did not look at, by reason.",
            &mut out,
        );
        self.semantic_blocks.render(
            "velollm_proxy_semantic_guard_blocks_total",
            "Semantic hits the lexical guard turned into misses, by reason.",
            &mut out,
        );
        self.semantic_learning.render(
            "velollm_proxy_semantic_learning_total",
            "Learned-threshold candidates that explored, and how their answers compared with the stored ones.",
            &mut out,
        );
        for (name, help, h) in [
            ("velollm_proxy_semantic_embed_seconds", "Embedding the last user turn.", &self.semantic_embed),
            ("velollm_proxy_semantic_search_seconds", "Searching the vector index.", &self.semantic_search),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            h.render(name, "", &mut out);
        }
        self.route_decisions.render(
            "velollm_proxy_route_decisions_total",
            "Routed requests by tier and reason (header, tools, schema, long, knn, abstain, unfamiliar, no_text, \
             embed_error).",
            &mut out,
        );
        self.route_fallbacks.render(
            "velollm_proxy_route_fallbacks_total",
            "Tiers that failed or timed out, and the tier tried next.",
            &mut out,
        );
        let name = "velollm_proxy_route_decision_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} The routing decision's time (rules, embedding, vote).\n# TYPE {name} histogram"
        );
        self.route_time.render(name, "", &mut out);
        self.hedges.render("velollm_proxy_hedges_total", "Extra (hedged) requests sent, by upstream.", &mut out);
        self.hedge_wins.render(
            "velollm_proxy_hedge_wins_total",
            "Hedged races by the branch that won (0: the first request).",
            &mut out,
        );
        for (name, help, v) in [
            ("velollm_proxy_hedge_request_bytes_total", "Request bytes of the extra requests.", &self.hedge_bytes),
            ("velollm_proxy_hedge_cancelled_total", "Branches cancelled because another won.", &self.hedge_cancelled),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let name = "velollm_proxy_streams_in_flight";
        let _ = writeln!(out, "# HELP {name} Response bodies being sent.\n# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {}", self.in_flight.load(Ordering::Relaxed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.request("/v1/chat/completions", 200);
        m.request("/v1/chat/completions", 200);
        m.lookup("exact", Lookup::Hit);
        m.overhead(Duration::from_micros(80));
        m.overhead(Duration::from_secs(100));
        let text = m.render();
        assert!(text.contains("velollm_proxy_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2"));
        assert!(text.contains("velollm_proxy_cache_lookups_total{layer=\"exact\",outcome=\"hit\"} 1"));
        assert!(text.contains("velollm_proxy_overhead_seconds_bucket{le=\"0.0001\"} 1"));
        assert!(text.contains("velollm_proxy_overhead_seconds_bucket{le=\"60\"} 1"));
        assert!(text.contains("velollm_proxy_overhead_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("velollm_proxy_overhead_seconds_count 2"));
        assert_eq!(m.lookups("exact", Lookup::Hit), 1);
    }
}
