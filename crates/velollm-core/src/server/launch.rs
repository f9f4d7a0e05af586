//! What velollm observed of the server under test: how it was launched, its cold start, its resources, the
//! metrics it exposes and its health over the run (DESIGN §8).
//!
//! Times on the server timeline (`t_s`) are seconds since the run's clock origin: the server's spawn when
//! velollm launched it, else the start of the run.

use crate::measure::prom::ServerMetrics;
use crate::server::resources::ResourceReport;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Everything velollm observed of the server, when it launched it, sampled it or scraped its metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerReport {
    /// How the server was launched, when velollm launched it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchReport>,
    /// Process start → ready → first token, when velollm launched it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStart>,
    /// RSS and CPU of the server's process tree (and GPUs) over the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceReport>,
    /// The Prometheus endpoint scraped, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// Server metrics over the whole run (first scrape → last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ServerMetrics>,
    /// Deaths, restarts, outages and recoveries, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ServerEvent>,
}

impl ServerReport {
    /// Nothing was observed.
    pub fn is_empty(&self) -> bool {
        *self == ServerReport::default()
    }

    /// Seconds the server was unavailable, summed over every outage that ended (`down` → `up`).
    pub fn downtime_s(&self) -> f64 {
        self.events.iter().filter_map(|e| e.gap_s).sum()
    }
}

/// How velollm launched the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaunchReport {
    /// The command template as given.
    pub template: String,
    /// The command that ran (placeholders filled).
    pub command: String,
    /// The port it was given.
    pub port: u16,
    /// The file its stdout and stderr went to.
    pub log: String,
    /// The route that answered 200 first (`/health`, `/v1/models`, `/api/version`).
    pub ready_route: String,
    /// Wall-clock spawn time (RFC 3339).
    pub spawned_at: String,
    /// How many times velollm restarted it after a death (`--restart-on-failure`).
    #[serde(default)]
    pub restarts: u32,
    /// How it was stopped at the end: exit status, and whether SIGKILL was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<String>,
}

/// Cold start: the launched process from spawn to ready and to its first generated token.
///
/// The first request is sent by velollm as soon as the server is ready, before any step (and its
/// warm-up), with the first step's first prompt; it is reported here and never mixed into a step's
/// (warm) statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ColdStart {
    /// Spawn → the port accepted a connection, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_to_listen_ms: Option<f64>,
    /// Spawn → ready (the readiness route answered 200), ms.
    pub spawn_to_ready_ms: f64,
    /// Spawn → first token of the first request, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_to_first_token_ms: Option<f64>,
    /// TTFT of the first request (its send → its first token), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ttft_ms: Option<f64>,
    /// E2E latency of the first request, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_e2e_ms: Option<f64>,
    /// Output tokens of the first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_output_tokens: Option<u64>,
    /// Why the first request failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl ColdStart {
    /// Fill in the first request's figures from its record (times on a clock whose zero is the spawn).
    pub fn record_first(&mut self, r: &crate::measure::record::RequestRecord) {
        let m = crate::measure::metrics::RequestMetrics::of(r);
        self.spawn_to_first_token_ms = r.output_chunks().next().map(|c| crate::measure::metrics::ms(c.t));
        self.first_ttft_ms = m.ttft_ms;
        self.first_e2e_ms = m.e2e_ms;
        self.first_output_tokens = r.succeeded().then_some(m.output_tokens);
        self.first_error = r.error.as_ref().map(|e| format!("{}: {}", e.class.as_str(), e.message));
    }

    /// How much slower the first (cold) request's TTFT was than a warm median TTFT, ms.
    pub fn ttft_penalty_ms(&self, warm_median_ttft_ms: f64) -> Option<f64> {
        self.first_ttft_ms.map(|c| c - warm_median_ttft_ms)
    }
}

/// What happened to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerEventKind {
    /// The launched process exited.
    Exited,
    /// The health route stopped answering 200.
    Down,
    /// The health route answers 200 again.
    Up,
    /// The server restarted on its own (its metrics counters went back down).
    Restarted,
    /// velollm started the launched server again (`--restart-on-failure`).
    Relaunched,
}

/// One event on the server timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerEvent {
    /// When, in seconds on the run's clock.
    pub t_s: f64,
    /// What happened.
    pub kind: ServerEventKind,
    /// The step running at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Details: exit status, the log's last lines, the health answer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// For `up` and `relaunched`: seconds since the server went away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_s: Option<f64>,
}
