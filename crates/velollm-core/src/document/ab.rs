//! The result document of `velollm ab`: two targets measured on the same requests, pair by pair, in
//! alternating order, and the paired statistics of every step (formulas in [`crate::document::paired`]).
//!
//! The document is rewritten atomically as the run goes (`status: "partial"` until it ends); every request
//! of both sides is also written to a JSON Lines file as it completes ([`AbRecord`]), so a crash loses
//! nothing that was measured.

use crate::aggregate::step::StepResult;
use crate::document::compare::Change;
use crate::document::paired::{PROXY_METRICS, PairedOptions, PairedRow, Speedup, proxy_cache_hit, rows};
use crate::document::result::{HostInfo, RunStatus, TargetInfo};
use crate::measure::record::RequestRecord;
use crate::server::launch::LaunchReport;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the `ab` document format.
pub const AB_VERSION: &str = "1.0";

/// One of the two targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The baseline, `--a`.
    A,
    /// The candidate, `--b`.
    B,
}

impl Side {
    /// `A` or `B`.
    pub fn letter(self) -> char {
        match self {
            Side::A => 'A',
            Side::B => 'B',
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// The side sent first in the `k`-th pair of a step (0-based): A, B, A, B … — so the order of each
    /// pair alternates (A→B, B→A, A→B …) and a slow drift of the machine weighs on both sides alike.
    pub fn first_of_pair(k: u64) -> Side {
        if k.is_multiple_of(2) { Side::A } else { Side::B }
    }
}

/// The whole `ab` result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AbResult {
    /// Format version ([`AB_VERSION`]).
    pub ab_version: String,
    /// `partial` while running or after a kill, `interrupted`, or `complete`.
    pub status: RunStatus,
    /// Why the run did not complete, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Who ran what, where, how.
    pub meta: AbMeta,
    /// The baseline.
    pub a: AbTarget,
    /// The candidate.
    pub b: AbTarget,
    /// One entry per scenario step, in order (steps not yet run are absent).
    pub steps: Vec<AbStep>,
    /// The client's own overhead, measured against velollm's loopback server just before the pairs (absent
    /// with `--no-selfcheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selfcheck: Option<crate::judge::selfcheck::SelfCheck>,
    /// Whether the client's overhead is negligible in each side's steps (named `STEP (A)`, `STEP (B)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::judge::selfcheck::Trust>,
}

impl AbResult {
    /// Judge both sides' steps against the self-check (see [`crate::judge::selfcheck::assess`]); `None` without one.
    pub fn assess_trust(&self) -> Option<crate::judge::selfcheck::Trust> {
        let check = self.selfcheck.as_ref()?;
        let mut steps = Vec::with_capacity(self.steps.len() * 2);
        for s in &self.steps {
            for (side, r) in [("A", &s.a), ("B", &s.b)] {
                let mut r = r.clone();
                r.name = format!("{} ({side})", s.name);
                steps.push(r);
            }
        }
        Some(crate::judge::selfcheck::assess(check, &steps))
    }
}

/// Run metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AbMeta {
    /// `velollm`.
    pub tool: String,
    /// velollm version.
    pub tool_version: String,
    /// Unique identifier of the run.
    pub run_id: String,
    /// The command line, with secrets removed.
    pub command: Vec<String>,
    /// Wall-clock start (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock end (RFC 3339, UTC), once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The machine velollm ran on.
    pub host: HostInfo,
    /// Scenario name or file.
    pub scenario: String,
    /// Seed of every random choice (synthetic prompts).
    pub seed: u64,
    /// Measured pairs per step (per conversation turn for multi-turn steps: conversations).
    pub pairs: u64,
    /// Warm-up pairs per step, sent to both sides and not measured.
    pub warmup_pairs: u64,
    /// How the order alternates within pairs.
    pub order: String,
    /// Whether B is a proxy in front of A (`--b-proxies-a`): the proxy overhead is reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub b_proxies_a: bool,
    /// How both sides of a pair were put in the same upstream cache state (absent: as they were).
    #[serde(default, skip_serializing_if = "PairCache::is_as_is")]
    pub pair_cache: PairCache,
    /// How the pairs are tested.
    pub options: PairedOptions,
    /// The JSON Lines file of every request of both sides, when written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
}

/// How `ab` puts both sides of a pair in the same upstream cache state (`--pair-cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PairCache {
    /// Both sides get the very same request: the second side of a pair may find it in a cache the first one
    /// filled (both sides on one server, a proxy in front of A). Pairs whose states differ are counted.
    #[default]
    AsIs,
    /// Each side gets its own salted copy of the request, the salt at the very start, of equal length: both
    /// miss. Pairs whose states still differ are left out of the rows and counted.
    Miss,
    /// The request is sent once to each side, unmeasured, before the pair: both hit. Pairs whose states
    /// differ are left out of the rows and counted.
    Hit,
}

impl PairCache {
    /// True for the default, which the result document leaves out.
    pub fn is_as_is(&self) -> bool {
        *self == PairCache::AsIs
    }
}

/// Whether the two requests of a pair found their upstream in the same prefix-cache state, from the cached
/// prompt tokens each server reported: equal within 8 tokens or a tenth of the prompt. `None` when it cannot
/// be told: a side reported no cached-token count, or a proxy declared a response-cache hit (that side never
/// reached the upstream).
pub fn same_cache_state(a: &RequestRecord, b: &RequestRecord) -> Option<bool> {
    if proxy_cache_hit(a) || proxy_cache_hit(b) {
        return None;
    }
    let (ca, cb) = (crate::measure::metrics::cached_tokens(a)?, crate::measure::metrics::cached_tokens(b)?);
    let prompt = crate::measure::metrics::prompt_tokens(a).max(crate::measure::metrics::prompt_tokens(b)).unwrap_or(0);
    Some(ca.abs_diff(cb) <= (prompt / 10).max(8))
}

/// One target as given and as found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AbTarget {
    /// Which side.
    pub side: Side,
    /// The URL (credentials removed) or the launch command, as given.
    pub spec: String,
    /// How velollm launched it, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchReport>,
    /// Spawn → ready of a launched server, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<f64>,
    /// The endpoint, dialect and model found when connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetInfo>,
    /// The Prometheus endpoint scraped around every step, when the target has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
}

/// One step: both sides' aggregates and the paired statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AbStep {
    /// Step name.
    pub name: String,
    /// Measured request pairs sent (each request of a pair to a different side).
    pub pairs: u64,
    /// Pairs where both requests succeeded.
    pub both_succeeded: u64,
    /// The side sent first in each measured pair, one letter per pair (`ABAB…`).
    pub first: String,
    /// A's aggregates (and server metrics, scraped before and after the step), as `bench` reports them.
    pub a: StepResult,
    /// B's aggregates.
    pub b: StepResult,
    /// Paired statistics per metric.
    pub rows: Vec<PairedRow>,
    /// How many times faster B is end to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speedup: Option<Speedup>,
    /// B − A on cache misses, when B is a proxy in front of A.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_overhead: Option<ProxyOverhead>,
    /// Pairs whose two sides found the upstream in different prefix-cache states (from the cached tokens the
    /// servers reported); with `--pair-cache miss|hit` they are left out of the rows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_mismatched: u64,
    /// True when the step did not run to its end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl AbStep {
    /// Rows with a given verdict.
    pub fn rows_with(&self, change: Change) -> impl Iterator<Item = &PairedRow> {
        self.rows.iter().filter(move |r| r.change == change)
    }

    /// The row of a metric (canonical name).
    pub fn row(&self, metric: &str) -> Option<&PairedRow> {
        self.rows.iter().find(|r| r.metric == metric)
    }
}

/// The cost of a proxy in front of A: B − A over the pairs whose request was sent for the first time in the
/// run and whose B response did not declare a cache hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProxyOverhead {
    /// Pairs counted (first sending, no cache hit, both succeeded).
    pub misses: u64,
    /// Pairs left out because B's response declared a cache hit.
    pub hits: u64,
    /// Pairs left out because the same request had been sent before in the run.
    pub repeats: u64,
    /// B − A per metric over the misses.
    pub rows: Vec<PairedRow>,
    /// B − A per metric over the pairs whose B response was a cache hit: what a hit saves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hit_rows: Vec<PairedRow>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One measured (or warm-up) request pair, as the runner hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRecords {
    /// A's record.
    pub a: RequestRecord,
    /// B's record.
    pub b: RequestRecord,
    /// The side sent first.
    pub first: Side,
    /// True when this request (system, context, history and prompt) was sent for the first time in the run.
    pub first_time: bool,
    /// Whether both requests found the upstream in the same cache state ([`same_cache_state`]).
    pub same_cache: Option<bool>,
}

/// The paired statistics of a step's measured pairs: rows over `metrics`, the speedup, and (when B proxies A)
/// the proxy overhead. With `pair_cache` other than as-is, the pairs whose sides found the upstream in different
/// cache states are left out.
pub fn analyse(
    pairs: &[PairRecords],
    metrics: &[&str],
    b_proxies_a: bool,
    pair_cache: PairCache,
    o: &PairedOptions,
) -> (Vec<PairedRow>, Option<Speedup>, Option<ProxyOverhead>) {
    let kept: Vec<&PairRecords> =
        pairs.iter().filter(|p| pair_cache.is_as_is() || p.same_cache != Some(false)).collect();
    let refs: Vec<(&RequestRecord, &RequestRecord)> = kept.iter().map(|p| (&p.a, &p.b)).collect();
    let rows = rows(&refs, metrics, o);
    let speedup = rows.iter().find(|r| r.metric == "e2e").and_then(PairedRow::speedup);
    let proxy = b_proxies_a.then(|| {
        let ok: Vec<&PairRecords> = kept.iter().copied().filter(|p| p.a.succeeded() && p.b.succeeded()).collect();
        let repeats = ok.iter().filter(|p| !p.first_time).count() as u64;
        let hit_pairs: Vec<(&RequestRecord, &RequestRecord)> =
            ok.iter().filter(|p| p.first_time && proxy_cache_hit(&p.b)).map(|p| (&p.a, &p.b)).collect();
        let misses: Vec<(&RequestRecord, &RequestRecord)> =
            ok.iter().filter(|p| p.first_time && !proxy_cache_hit(&p.b)).map(|p| (&p.a, &p.b)).collect();
        ProxyOverhead {
            misses: misses.len() as u64,
            hits: hit_pairs.len() as u64,
            repeats,
            rows: crate::document::paired::rows(&misses, PROXY_METRICS, o),
            hit_rows: crate::document::paired::rows(&hit_pairs, PROXY_METRICS, o),
        }
    });
    (rows, speedup, proxy)
}

/// Pairs whose sides found the upstream in different cache states.
pub fn cache_mismatched(pairs: &[PairRecords]) -> u64 {
    pairs.iter().filter(|p| p.same_cache == Some(false)).count() as u64
}

/// One line of the records file: a request of one side, with its place in the pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AbRecord {
    /// Which side the request went to.
    pub side: Side,
    /// Index of the step.
    pub step_index: u32,
    /// Index of the pair within the step (warm-up pairs first, then measured pairs, each from 0).
    pub pair: u64,
    /// True when this side was sent first in its pair.
    pub first: bool,
    /// The request, as `velollm bench` records it.
    #[serde(flatten)]
    pub record: RequestRecord,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::record::{Channel, Chunk};

    fn rec(ttft_ms: u64, cache: Option<&str>) -> RequestRecord {
        let ms = 1_000_000;
        RequestRecord {
            sent: Some(0),
            headers: Some(ms),
            done: Some((ttft_ms + 10) * ms),
            chunks: vec![
                Chunk { t: ttft_ms * ms, channel: Channel::Content, events: 1, tokens: None, bytes: 3 },
                Chunk { t: (ttft_ms + 10) * ms, channel: Channel::Content, events: 1, tokens: None, bytes: 3 },
            ],
            status: Some(200),
            proxy_cache: cache.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn alternation_starts_with_a() {
        let order: String = (0..5).map(|k| Side::first_of_pair(k).letter()).collect();
        assert_eq!(order, "ABABA");
        assert_eq!(Side::A.other(), Side::B);
        assert_eq!(serde_json::to_value(Side::B).unwrap(), "b");
    }

    #[test]
    fn proxy_overhead_counts_only_first_time_misses() {
        let mut pairs = Vec::new();
        for i in 0..12u64 {
            // B adds 5 ms on misses; hits are fast; repeats are left out too.
            let (b, first_time) = match i {
                0..8 => (rec(25 + i, Some("MISS")), true),
                8..10 => (rec(2, Some("HIT from proxy")), true),
                _ => (rec(2, None), false),
            };
            pairs.push(PairRecords {
                a: rec(20 + i, None),
                b,
                first: Side::first_of_pair(i),
                first_time,
                same_cache: None,
            });
        }
        let (rows, speedup, proxy) =
            analyse(&pairs, crate::document::paired::METRICS, true, PairCache::AsIs, &PairedOptions::default());
        let p = proxy.unwrap();
        assert_eq!((p.misses, p.hits, p.repeats), (8, 2, 2));
        let ttft = p.rows.iter().find(|r| r.metric == "ttft").unwrap();
        assert!((ttft.mean_diff - 5.0).abs() < 1e-9 && ttft.change == Change::Regressed, "{ttft:?}");
        assert!(rows.iter().any(|r| r.metric == "e2e") && speedup.is_some());
        let (_, _, none) =
            analyse(&pairs, crate::document::paired::METRICS, false, PairCache::AsIs, &PairedOptions::default());
        assert!(none.is_none());
        assert!(p.hit_rows.iter().any(|r| r.metric == "ttft"), "what a hit saves is its own row");
    }

    fn cached(ttft_ms: u64, prompt: u64, cached: u64) -> RequestRecord {
        let mut r = rec(ttft_ms, None);
        r.usage = Some(crate::measure::record::Usage {
            prompt_tokens: Some(prompt),
            cached_tokens: Some(cached),
            ..Default::default()
        });
        r
    }

    #[test]
    fn pairs_in_different_cache_states_are_counted_and_left_out_unless_as_is() {
        assert_eq!(same_cache_state(&cached(1, 100, 24), &cached(1, 100, 93)), Some(false));
        assert_eq!(same_cache_state(&cached(1, 100, 3), &cached(1, 100, 3)), Some(true));
        assert_eq!(same_cache_state(&cached(1, 100, 90), &cached(1, 100, 95)), Some(true));
        assert_eq!(same_cache_state(&rec(1, None), &cached(1, 100, 3)), None);
        assert_eq!(same_cache_state(&cached(1, 100, 3), &rec(1, Some("hit"))), None);
        let pairs: Vec<PairRecords> = (0..10u64)
            .map(|i| {
                let (a, b) = if i < 7 {
                    (cached(20, 100, 3), cached(21, 100, 3))
                } else {
                    (cached(20, 100, 3), cached(5, 100, 97))
                };
                PairRecords {
                    same_cache: same_cache_state(&a, &b),
                    a,
                    b,
                    first: Side::first_of_pair(i),
                    first_time: true,
                }
            })
            .collect();
        assert_eq!(cache_mismatched(&pairs), 3);
        let o = PairedOptions::default();
        let pairs_of = |rows: &[PairedRow]| rows.iter().find(|r| r.metric == "ttft").unwrap().pairs;
        assert_eq!(pairs_of(&analyse(&pairs, crate::document::paired::METRICS, false, PairCache::Miss, &o).0), 7);
        assert_eq!(pairs_of(&analyse(&pairs, crate::document::paired::METRICS, false, PairCache::AsIs, &o).0), 10);
    }

    #[test]
    fn records_flatten_the_request() {
        let line = AbRecord { side: Side::A, step_index: 0, pair: 3, first: true, record: rec(5, None) };
        let v = serde_json::to_value(&line).unwrap();
        assert_eq!((v["side"].as_str(), v["pair"].as_u64(), v["status"].as_u64()), (Some("a"), Some(3), Some(200)));
        assert_eq!(serde_json::from_value::<AbRecord>(v).unwrap(), line);
    }
}
