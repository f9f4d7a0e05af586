//! What the server says happened during one benchmark step: counter deltas between the scrape before and the
//! scrape after (with the ones taken during the step in between), gauges summarised over all of them, and the
//! derived rates — each computed here and nowhere else.

use super::map::{Engine, Mapping, ServerMetric, detect_engine, mappings_for, scrape_value, series_key};
use super::parse::Scrape;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Server-side metrics for one step, from its Prometheus scrapes.
///
/// Counter fields are deltas over the step; `None` when the engine does not expose the metric. Counter deltas
/// are computed per series (label set) over each pair of consecutive scrapes, like Prometheus `increase()`:
/// when a value goes *down* between two scrapes the server restarted, the counter is taken to have restarted
/// from 0 (the later value is the increase over that interval) and [`ServerMetrics::counter_reset`] is set,
/// because the increase before the restart, since the previous scrape, is lost. A series that first appears
/// after the first scrape was created during the step and counts from 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerMetrics {
    /// The engine the metric names identify.
    pub engine: Engine,
    /// How many scrapes the figures come from (before + during + after).
    pub scrapes: u32,
    /// A mapped counter went down between two consecutive scrapes: the server restarted during the step and the
    /// deltas miss what it counted between the last scrape before the restart and the restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub counter_reset: bool,

    /// Prompt tokens processed (llama.cpp: excluding cached tokens; vLLM, SGLang: including them; TGI: the sum of
    /// validated input lengths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<f64>,
    /// Prompt tokens served from the prefix cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_prompt_tokens: Option<f64>,
    /// Prefix-cache lookups, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_queries: Option<f64>,
    /// Prefix-cache hits, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hits: Option<f64>,
    /// Speculative-decoding drafts (verification steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_drafts: Option<f64>,
    /// Speculative draft tokens proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_draft_tokens: Option<f64>,
    /// Speculative draft tokens accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_accepted_tokens: Option<f64>,
    /// Sum of the queue times of the requests the server reported, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time_sum_s: Option<f64>,
    /// Number of requests whose queue time the server reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time_count: Option<f64>,
    /// Prompt-processing time summed over requests, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_time_s: Option<f64>,
    /// Generation time summed over requests, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_time_s: Option<f64>,

    /// Prefix-cache hit rate over the step, 0–1: hits ÷ queries where the server counts both, else cached prompt
    /// tokens ÷ all prompt tokens (for llama.cpp, whose prompt counter excludes cached tokens,
    /// cached ÷ (cached + prompt)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Speculative acceptance rate, 0–1: accepted ÷ draft tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_acceptance_rate: Option<f64>,
    /// Mean acceptance length, 1 + accepted ÷ drafts: vLLM's definition, which counts the bonus token
    /// (vllm-project/vllm `vllm/v1/spec_decode/metrics.py`, `SpecDecodingProm` and `SpecDecodingLogging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_mean_acceptance_length: Option<f64>,
    /// Mean queue time of the step's requests, in milliseconds: Δsum ÷ Δcount of the server's histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time_mean_ms: Option<f64>,

    /// Mean KV-cache usage (0–1) over the scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage_mean: Option<f64>,
    /// Highest KV-cache usage (0–1) seen in a scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage_max: Option<f64>,
    /// Most requests waiting in the server's queue in a scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_waiting_max: Option<f64>,
    /// Most requests running in a scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_running_max: Option<f64>,
    /// The prefix-cache hit rate the server itself reports (SGLang, vLLM V0), at the last scrape; its own window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cache_hit_rate: Option<f64>,
    /// The mean acceptance length the server itself reports (SGLang), at the last scrape; its own window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_spec_accept_length: Option<f64>,
    /// The acceptance rate the server itself reports (SGLang, vLLM V0), at the last scrape; its own window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_spec_accept_rate: Option<f64>,

    /// Extra (hedged) requests a gateway sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedged_requests: Option<f64>,
    /// Hedged branches a gateway cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedges_cancelled: Option<f64>,

    /// Every mapped counter's delta by its name on the server (including renamed aliases the figures above do
    /// not use), for a raw appendix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_deltas: BTreeMap<String, f64>,
}

impl ServerMetrics {
    fn empty(engine: Engine, scrapes: u32) -> ServerMetrics {
        ServerMetrics {
            engine,
            scrapes,
            counter_reset: false,
            prompt_tokens: None,
            generation_tokens: None,
            cached_prompt_tokens: None,
            prefix_cache_queries: None,
            prefix_cache_hits: None,
            spec_drafts: None,
            spec_draft_tokens: None,
            spec_accepted_tokens: None,
            queue_time_sum_s: None,
            queue_time_count: None,
            prompt_time_s: None,
            decode_time_s: None,
            prefix_cache_hit_rate: None,
            spec_acceptance_rate: None,
            spec_mean_acceptance_length: None,
            queue_time_mean_ms: None,
            kv_cache_usage_mean: None,
            kv_cache_usage_max: None,
            requests_waiting_max: None,
            requests_running_max: None,
            server_cache_hit_rate: None,
            server_spec_accept_length: None,
            server_spec_accept_rate: None,
            hedged_requests: None,
            hedges_cancelled: None,
            source_deltas: BTreeMap::new(),
        }
    }

    fn counter_slot(&mut self, metric: ServerMetric) -> Option<&mut Option<f64>> {
        Some(match metric {
            ServerMetric::PromptTokens => &mut self.prompt_tokens,
            ServerMetric::GenerationTokens => &mut self.generation_tokens,
            ServerMetric::CachedPromptTokens => &mut self.cached_prompt_tokens,
            ServerMetric::PrefixCacheQueries => &mut self.prefix_cache_queries,
            ServerMetric::PrefixCacheHits => &mut self.prefix_cache_hits,
            ServerMetric::SpecDrafts => &mut self.spec_drafts,
            ServerMetric::SpecDraftTokens => &mut self.spec_draft_tokens,
            ServerMetric::SpecAcceptedTokens => &mut self.spec_accepted_tokens,
            ServerMetric::QueueSecondsSum => &mut self.queue_time_sum_s,
            ServerMetric::QueueCount => &mut self.queue_time_count,
            ServerMetric::PromptSeconds => &mut self.prompt_time_s,
            ServerMetric::DecodeSeconds => &mut self.decode_time_s,
            ServerMetric::HedgedRequests => &mut self.hedged_requests,
            ServerMetric::HedgesCancelled => &mut self.hedges_cancelled,
            _ => return None,
        })
    }

    /// The derived figures; the only place their formulas live.
    fn derive(&mut self) {
        self.prefix_cache_hit_rate = if self.prefix_cache_hits.is_some() && self.prefix_cache_queries.is_some() {
            ratio(self.prefix_cache_hits, self.prefix_cache_queries)
        } else if self.engine.prompt_tokens_include_cached() {
            ratio(self.cached_prompt_tokens, self.prompt_tokens)
        } else {
            let all = self.cached_prompt_tokens.zip(self.prompt_tokens).map(|(cached, prompt)| cached + prompt);
            ratio(self.cached_prompt_tokens, all)
        };
        self.spec_acceptance_rate = ratio(self.spec_accepted_tokens, self.spec_draft_tokens);
        self.spec_mean_acceptance_length = ratio(self.spec_accepted_tokens, self.spec_drafts).map(|r| 1.0 + r);
        self.queue_time_mean_ms = ratio(self.queue_time_sum_s, self.queue_time_count).map(|s| s * 1e3);
    }
}

/// `n ÷ d`, or `None` when either is missing or not finite, or `d` is not positive.
fn ratio(n: Option<f64>, d: Option<f64>) -> Option<f64> {
    let (n, d) = (n?, d?);
    (n.is_finite() && d.is_finite() && d > 0.0).then(|| n / d)
}

/// The server metrics of one step from the scrape taken `before` it, those taken `during` it (in order) and
/// the one taken `after` it. See [`ServerMetrics`] for how counters, resets and gauges are treated.
pub fn step_metrics(before: &Scrape, after: &Scrape, during: &[Scrape]) -> ServerMetrics {
    let scrapes: Vec<&Scrape> = std::iter::once(before).chain(during).chain(std::iter::once(after)).collect();
    let engine = [after, before]
        .into_iter()
        .chain(during)
        .map(detect_engine)
        .find(|e| *e != Engine::Unknown)
        .unwrap_or(Engine::Unknown);
    let mut out = ServerMetrics::empty(engine, u32::try_from(scrapes.len()).unwrap_or(u32::MAX));

    // The first row (table order) present in any scrape feeds each metric; later aliases are only listed raw.
    let mut chosen: BTreeMap<ServerMetric, &Mapping> = BTreeMap::new();
    for mapping in mappings_for(engine) {
        if scrapes.iter().any(|s| s.has(mapping.source)) {
            chosen.entry(mapping.metric).or_insert(mapping);
            if mapping.metric.is_counter() {
                let (delta, reset) = counter_delta(&scrapes, mapping.source);
                out.counter_reset |= reset;
                out.source_deltas.insert(mapping.source.to_string(), delta);
            }
        }
    }

    for (metric, mapping) in chosen {
        if metric.is_counter() {
            let delta = out.source_deltas.get(mapping.source).copied();
            if let Some(slot) = out.counter_slot(metric) {
                *slot = delta;
            }
            continue;
        }
        let values: Vec<f64> = scrapes.iter().filter_map(|s| scrape_value(s, mapping)).collect();
        let Some(&last) = values.last() else { continue };
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        match metric {
            ServerMetric::KvCacheUsage => {
                out.kv_cache_usage_mean = Some(mean);
                out.kv_cache_usage_max = Some(max);
            }
            ServerMetric::RequestsWaiting => out.requests_waiting_max = Some(max),
            ServerMetric::RequestsRunning => out.requests_running_max = Some(max),
            ServerMetric::ServerCacheHitRate => out.server_cache_hit_rate = Some(last),
            ServerMetric::ServerSpecAcceptLength => out.server_spec_accept_length = Some(last),
            ServerMetric::ServerSpecAcceptRate => out.server_spec_accept_rate = Some(last),
            _ => {}
        }
    }
    out.derive();
    out
}

/// The increase of counter `source` over the scrapes, summed over its series, and whether any series went down.
fn counter_delta(scrapes: &[&Scrape], source: &str) -> (f64, bool) {
    let mut last: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
    let mut total = 0.0;
    let mut reset = false;
    for (i, scrape) in scrapes.iter().enumerate() {
        let current: BTreeMap<_, _> =
            scrape.samples_named(source).filter(|s| s.value.is_finite()).map(|s| (series_key(s), s.value)).collect();
        for (key, value) in current {
            match last.insert(key, value) {
                Some(previous) if value >= previous => total += value - previous,
                Some(_) => {
                    reset = true;
                    total += value;
                }
                // A series first seen after the first scrape was created during the step, from 0.
                None if i > 0 => total += value,
                None => {}
            }
        }
    }
    (total, reset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::prom::parse;

    const LLAMACPP: &str = include_str!("../../../testdata/prometheus/llamacpp.txt");
    const VLLM: &str = include_str!("../../../testdata/prometheus/vllm.txt");
    const SGLANG: &str = include_str!("../../../testdata/prometheus/sglang.txt");
    const TGI: &str = include_str!("../../../testdata/prometheus/tgi.txt");

    fn close(actual: Option<f64>, expected: f64) {
        let a = actual.unwrap_or_else(|| panic!("expected {expected}, got None"));
        assert!((a - expected).abs() <= 1e-9 * expected.abs().max(1.0), "expected {expected}, got {a}");
    }

    /// Replace the value of the unlabelled sample `name` in a capture.
    fn with_value(text: &str, name: &str, value: f64) -> String {
        text.lines()
            .map(|line| match line.split_once(' ') {
                Some((n, _)) if n == name => format!("{name} {value}"),
                _ => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A second llama.cpp capture: the real one after 100 more prompt tokens, 500 more cached, 100 more
    /// generated, 10 drafts of 40 tokens with 30 accepted.
    fn llamacpp_later() -> String {
        let mut text = LLAMACPP.to_string();
        for (name, value) in [
            ("llamacpp:prompt_tokens_total", 133.0),
            ("llamacpp:prompt_tokens_cached_total", 531.0),
            ("llamacpp:tokens_predicted_total", 116.0),
            ("llamacpp:prompt_seconds_total", 1.145543),
            ("llamacpp:tokens_predicted_seconds_total", 2.102114),
            ("llamacpp:spec_decode_num_drafts_total", 10.0),
            ("llamacpp:spec_decode_num_draft_tokens_total", 40.0),
            ("llamacpp:spec_decode_num_accepted_tokens_total", 30.0),
        ] {
            text = with_value(&text, name, value);
        }
        text
    }

    #[test]
    fn fixtures_parse_cleanly() {
        for (name, text, engine) in [
            ("llamacpp", LLAMACPP, Engine::Llamacpp),
            ("vllm", VLLM, Engine::Vllm),
            ("sglang", SGLANG, Engine::Sglang),
            ("tgi", TGI, Engine::Tgi),
        ] {
            let scrape = parse(text).unwrap();
            assert_eq!(scrape.malformed_lines, 0, "{name}");
            assert!(scrape.samples.len() >= 10, "{name}");
            assert!(scrape.samples.iter().all(|s| scrape.type_of(&s.name).is_some()), "{name}: an untyped sample");
            assert_eq!(detect_engine(&scrape), engine, "{name}");
        }
        let llama = parse(LLAMACPP).unwrap();
        assert!(llama.help["llamacpp:prompt_tokens_total"].contains("excluding cached tokens"));
    }

    /// From an empty "before", every counter's delta is its total in the fixture.
    fn totals(text: &str) -> ServerMetrics {
        step_metrics(&Scrape::default(), &parse(text).unwrap(), &[])
    }

    #[test]
    fn llamacpp_mapping() {
        let m = totals(LLAMACPP);
        assert_eq!(m.engine, Engine::Llamacpp);
        assert_eq!(m.prompt_tokens, Some(33.0));
        assert_eq!(m.cached_prompt_tokens, Some(31.0));
        assert_eq!(m.generation_tokens, Some(16.0));
        close(m.prompt_time_s, 0.145543);
        close(m.decode_time_s, 0.102114);
        assert_eq!((m.spec_drafts, m.spec_draft_tokens, m.spec_accepted_tokens), (Some(0.0), Some(0.0), Some(0.0)));
        // The prompt counter excludes cached tokens: 31 ÷ (31 + 33).
        close(m.prefix_cache_hit_rate, 31.0 / 64.0);
        assert_eq!(m.spec_acceptance_rate, None, "no drafts, no rate");
        assert_eq!(m.spec_mean_acceptance_length, None);
        assert_eq!((m.requests_waiting_max, m.requests_running_max), (Some(0.0), Some(0.0)));
        assert_eq!(m.kv_cache_usage_mean, None, "this build does not expose KV usage");
        assert_eq!((m.prefix_cache_queries, m.queue_time_mean_ms), (None, None));
        assert!(!m.counter_reset);
        assert_eq!(m.scrapes, 2);
        assert_eq!(m.source_deltas.len(), 8);
    }

    #[test]
    fn vllm_mapping_sums_engines_and_prefers_new_names() {
        let m = totals(VLLM);
        assert_eq!(m.engine, Engine::Vllm);
        assert_eq!(m.prompt_tokens, Some(10_000.0));
        assert_eq!(m.generation_tokens, Some(2_600.0));
        assert_eq!(m.cached_prompt_tokens, Some(4_000.0));
        assert_eq!((m.prefix_cache_queries, m.prefix_cache_hits), (Some(10_000.0), Some(4_000.0)));
        close(m.prefix_cache_hit_rate, 0.4);
        assert_eq!(
            (m.spec_drafts, m.spec_draft_tokens, m.spec_accepted_tokens),
            (Some(700.0), Some(2100.0), Some(1360.0))
        );
        close(m.spec_acceptance_rate, 1360.0 / 2100.0);
        close(m.spec_mean_acceptance_length, 1.0 + 1360.0 / 700.0);
        close(m.queue_time_sum_s, 3.0);
        assert_eq!(m.queue_time_count, Some(40.0));
        close(m.queue_time_mean_ms, 75.0);
        close(m.prompt_time_s, 2.5);
        close(m.decode_time_s, 52.0);
        close(m.kv_cache_usage_mean, 0.2);
        close(m.kv_cache_usage_max, 0.2);
        assert_eq!((m.requests_waiting_max, m.requests_running_max), (Some(1.0), Some(5.0)));
        // The deprecated alias is listed raw but not double-counted.
        assert_eq!(m.source_deltas.get("vllm:gpu_prefix_cache_queries_total"), Some(&10_000.0));
        assert_eq!(m.source_deltas.get("vllm:prefix_cache_queries_total"), Some(&10_000.0));
    }

    #[test]
    fn sglang_mapping() {
        let m = totals(SGLANG);
        assert_eq!(m.engine, Engine::Sglang);
        assert_eq!((m.prompt_tokens, m.cached_prompt_tokens), (Some(8_000.0), Some(6_000.0)));
        // SGLang's prompt counter includes cached tokens: 6000 ÷ 8000.
        close(m.prefix_cache_hit_rate, 0.75);
        close(m.queue_time_mean_ms, 150.0);
        close(m.kv_cache_usage_max, 0.32);
        assert_eq!((m.requests_waiting_max, m.requests_running_max), (Some(2.0), Some(4.0)));
        close(m.server_cache_hit_rate, 0.74);
        close(m.server_spec_accept_length, 2.6);
        close(m.server_spec_accept_rate, 0.53);
        assert_eq!((m.spec_drafts, m.spec_acceptance_rate), (None, None), "SGLang exposes no draft counters");
    }

    #[test]
    fn tgi_mapping() {
        let m = totals(TGI);
        assert_eq!(m.engine, Engine::Tgi);
        assert_eq!((m.prompt_tokens, m.generation_tokens), (Some(2_400.0), Some(1_800.0)));
        close(m.queue_time_mean_ms, 75.0);
        assert_eq!((m.requests_waiting_max, m.requests_running_max), (Some(3.0), Some(4.0)));
        assert_eq!((m.kv_cache_usage_mean, m.prefix_cache_hit_rate, m.spec_drafts), (None, None, None));
    }

    #[test]
    fn llamacpp_step_deltas() {
        let before = parse(LLAMACPP).unwrap();
        let after = parse(&llamacpp_later()).unwrap();
        let busy = parse(&with_value(
            &with_value(LLAMACPP, "llamacpp:requests_processing", 2.0),
            "llamacpp:requests_deferred",
            5.0,
        ))
        .unwrap();
        let m = step_metrics(&before, &after, &[busy]);
        assert_eq!(m.scrapes, 3);
        assert!(!m.counter_reset);
        assert_eq!(m.prompt_tokens, Some(100.0));
        assert_eq!(m.cached_prompt_tokens, Some(500.0));
        assert_eq!(m.generation_tokens, Some(100.0));
        close(m.prompt_time_s, 1.0);
        close(m.decode_time_s, 2.0);
        close(m.prefix_cache_hit_rate, 500.0 / 600.0);
        close(m.spec_acceptance_rate, 0.75);
        close(m.spec_mean_acceptance_length, 4.0);
        assert_eq!((m.requests_running_max, m.requests_waiting_max), (Some(2.0), Some(5.0)));
        assert_eq!(m.source_deltas["llamacpp:spec_decode_num_draft_tokens_total"], 40.0);
    }

    #[test]
    fn counter_reset_counts_from_zero() {
        let high = parse(&llamacpp_later()).unwrap(); // prompt 133
        let restarted = parse(LLAMACPP).unwrap(); // prompt 33: went down
        let after = parse(&with_value(LLAMACPP, "llamacpp:prompt_tokens_total", 50.0)).unwrap();
        let m = step_metrics(&high, &after, &[restarted]);
        assert!(m.counter_reset);
        // 33 since the restart, then 17 more.
        assert_eq!(m.prompt_tokens, Some(50.0));
        // No reset without a decrease.
        let m = step_metrics(&parse(LLAMACPP).unwrap(), &parse(LLAMACPP).unwrap(), &[]);
        assert!(!m.counter_reset);
        assert_eq!(m.prompt_tokens, Some(0.0));
    }

    #[test]
    fn reset_is_per_series() {
        // Engine 1 restarts while engine 0 grows more: the sum grows, the reset is still seen.
        let before =
            parse("vllm:prompt_tokens_total{engine=\"0\"} 100\nvllm:prompt_tokens_total{engine=\"1\"} 50\n").unwrap();
        let after =
            parse("vllm:prompt_tokens_total{engine=\"0\"} 300\nvllm:prompt_tokens_total{engine=\"1\"} 10\n").unwrap();
        let m = step_metrics(&before, &after, &[]);
        assert!(m.counter_reset);
        assert_eq!(m.prompt_tokens, Some(210.0));
    }

    #[test]
    fn gauges_over_before_during_after() {
        let g = |v: f64| parse(&format!("vllm:kv_cache_usage_perc{{engine=\"0\"}} {v}\n")).unwrap();
        let m = step_metrics(&g(0.1), &g(0.3), &[g(0.8), Scrape::default(), g(0.4)]);
        close(m.kv_cache_usage_mean, 0.4);
        close(m.kv_cache_usage_max, 0.8);
        assert_eq!(m.scrapes, 5);
    }

    #[test]
    fn unknown_engine_maps_nothing() {
        let s = parse("process_cpu_seconds_total 3\nhttp_requests_total{code=\"200\"} 9\n").unwrap();
        let m = step_metrics(&s, &s, &[]);
        assert_eq!(m.engine, Engine::Unknown);
        assert_eq!(m, ServerMetrics::empty(Engine::Unknown, 2));
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"engine":"unknown","scrapes":2}"#);
    }

    #[test]
    fn serde_round_trip_and_schema() {
        let m = totals(VLLM);
        let json = serde_json::to_string(&m).unwrap();
        let back: ServerMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let schema = serde_json::to_value(schemars::schema_for!(ServerMetrics)).unwrap();
        assert!(schema["properties"]["prefix_cache_hit_rate"].is_object());
    }
}
