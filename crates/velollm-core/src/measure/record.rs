//! The raw per-request record: what was observed, never what was derived.
//!
//! All instants are nanoseconds on a monotonic clock, counted from the start of the run, so a record is
//! self-contained and metrics can be recomputed from it at any time (see [`crate::measure::metrics`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the start of the run, on a monotonic clock.
pub type Nanos = u64;

/// What a streamed chunk carried. Only [`Channel::Content`], [`Channel::Reasoning`] and [`Channel::Tool`] are
/// generated output; a role-only or usage chunk never starts the TTFT clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Answer text (`delta.content`, Ollama `response`/`message.content`, llama.cpp `content`).
    Content,
    /// Reasoning text (`delta.reasoning_content` / `delta.reasoning`, Ollama `thinking`).
    Reasoning,
    /// Tool-call deltas (`delta.tool_calls`, Ollama `message.tool_calls`).
    Tool,
    /// A chunk that only announces the assistant role (or is otherwise empty).
    Role,
    /// A chunk that only carries usage, timings or the end-of-stream marker.
    Usage,
}

impl Channel {
    /// True for chunks that carry generated output (content, reasoning or tool call).
    pub fn is_output(self) -> bool {
        matches!(self, Channel::Content | Channel::Reasoning | Channel::Tool)
    }
}

/// One arrival of stream data, as stamped by the transport.
///
/// Several protocol events that arrive in the same network read share one arrival instant; they are
/// recorded as one chunk per channel with `events` counting them (no spacing is invented).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Chunk {
    /// Arrival instant (ns since run start).
    pub t: Nanos,
    /// What the chunk carried.
    pub channel: Channel,
    /// Protocol events (SSE events / NDJSON lines) merged into this chunk.
    pub events: u32,
    /// Tokens in this chunk when the server says (llama.cpp's per-event `tokens` array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
    /// Bytes of generated text in this chunk.
    pub bytes: u32,
}

/// How the request's connection was obtained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionInfo {
    /// Identifier of the connection within the run.
    pub id: u64,
    /// True when an already-open connection was reused (then the phases below are absent).
    pub reused: bool,
    /// DNS resolution time (ns), for a new connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_ns: Option<u64>,
    /// TCP connect time (ns), for a new connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ns: Option<u64>,
    /// TLS handshake time (ns), for a new https connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ns: Option<u64>,
    /// For a new https connection: true when the TLS handshake resumed an earlier session (fewer round trips,
    /// no certificate), false for a full handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_resumed: Option<bool>,
    /// WebSocket upgrade time (ns), for a new WebSocket session: from the upgrade request's first byte to the
    /// server's `101 Switching Protocols`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_ns: Option<u64>,
    /// The HTTP version spoken on the connection (absent in records written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<HttpProtocol>,
}

/// The HTTP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum HttpProtocol {
    /// HTTP/1.1: one request at a time per connection.
    #[serde(rename = "http/1.1")]
    Http1,
    /// HTTP/2 (`h2` by ALPN over https, or by prior knowledge over plain http): streams multiplexed on one
    /// connection.
    #[serde(rename = "h2")]
    H2,
    /// A WebSocket session (RFC 6455) opened by an HTTP/1.1 upgrade on the generation route: each request is
    /// one message, each stream event one message back, many requests on one session.
    #[serde(rename = "websocket")]
    WebSocket,
}

impl HttpProtocol {
    /// The name used in records and reports (`http/1.1`, `h2`, `websocket`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpProtocol::Http1 => "http/1.1",
            HttpProtocol::H2 => "h2",
            HttpProtocol::WebSocket => "websocket",
        }
    }
}

/// Token usage reported by the server for one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Prompt (input) tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// Completion (output) tokens, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// Prompt tokens served from the server's prefix cache (Anthropic `cache_read_input_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the prompt cache by this request (Anthropic `cache_creation_input_tokens`);
    /// included in `prompt_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens, when the server splits them out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// Timings measured by the inference engine itself, stored next to the client timings of the same request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NativeTimings {
    /// Which engine reported them: `ollama` or `llama.cpp`.
    pub source: String,
    /// Prompt tokens evaluated (Ollama `prompt_eval_count`, llama.cpp `prompt_n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_n: Option<u64>,
    /// Prefill time in ms (Ollama `prompt_eval_duration`, llama.cpp `prompt_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// Generated tokens (Ollama `eval_count`, llama.cpp `predicted_n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_n: Option<u64>,
    /// Decode time in ms (Ollama `eval_duration`, llama.cpp `predicted_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<f64>,
    /// Prompt tokens reused from the cache (llama.cpp `cache_n`, Ollama `prompt_eval_cached_count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<u64>,
    /// Model load time in ms (Ollama `load_duration`; > 0 means the model was cold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    /// Total server-side time in ms (Ollama `total_duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<f64>,
    /// Draft tokens proposed by speculative decoding (llama.cpp `draft_n`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_n: Option<u64>,
    /// Draft tokens accepted (llama.cpp `draft_n_accepted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_accepted: Option<u64>,
}

/// Why a request failed. Failures are data: they are counted per class and the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection could not be opened (refused, DNS failure, TLS failure).
    Connect,
    /// A timeout fired (connect, first token, idle between chunks, or total).
    Timeout,
    /// HTTP 4xx other than 429 (and any other non-2xx status that is not 429 or 5xx).
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// HTTP 429, with `Retry-After` when the server sent one.
    RateLimited,
    /// HTTP 5xx.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// The stream broke or ended before the server said it was done.
    StreamBroken,
    /// A chunk could not be parsed (invalid JSON, invalid UTF-8, unexpected shape).
    ParseError,
    /// The server answered successfully but generated nothing.
    EmptyOutput,
    /// The request was cancelled (Ctrl-C / SIGTERM). Counted, but not part of the measured requests.
    Cancelled,
    /// The client aborted the request mid-stream on purpose (`--cancel-share`), as agents do. Counted, but not
    /// part of the measured requests; the `aborts` analysis reports what the requests after it saw.
    Aborted,
}

impl ErrorClass {
    /// The snake_case name used in results and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::StreamBroken => "stream_broken",
            ErrorClass::ParseError => "parse_error",
            ErrorClass::EmptyOutput => "empty_output",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Aborted => "aborted",
        }
    }
}

/// A failed request's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestError {
    /// The class the failure is counted under.
    pub class: ErrorClass,
    /// A human-readable description (never contains secrets).
    pub message: String,
    /// Seconds the server asked to wait (HTTP `Retry-After`), for rate-limited requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<f64>,
}

impl RequestError {
    /// An error of `class` with `message` (no `Retry-After`).
    pub fn new(class: ErrorClass, message: impl Into<String>) -> RequestError {
        RequestError { class, message: message.into(), retry_after_s: None }
    }
}

/// Everything observed for one request. Metrics are derived from it by [`crate::measure::metrics::RequestMetrics`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestRecord {
    /// Sequence number of the request within the run.
    pub id: u64,
    /// Index of the scenario step the request belongs to.
    pub step: u32,
    /// The request's index within its step (for multi-turn steps, its conversation's), which seeds its
    /// prompt: `bench --resume` sends exactly the indices an interrupted run did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The conversation (session) this request belongs to, for multi-turn steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<u64>,
    /// Turn index within the conversation (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// The turn's label in the scenario (`miss`, `hit`, `correction`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// True for warm-up requests, which are recorded but excluded from aggregates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
    /// When the load profile wanted the request sent.
    pub scheduled: Nanos,
    /// When the first request byte was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Nanos>,
    /// When the response headers were received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Nanos>,
    /// When the last byte was received (or the failure was observed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Nanos>,
    /// Every stream arrival, in order.
    #[serde(default)]
    pub chunks: Vec<Chunk>,
    /// The connection that carried the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionInfo>,
    /// HTTP status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A caching proxy's verdict on the response, as its header said (`x-velollm-cache`, `x-cache`,
    /// `x-cache-status` or `cf-cache-status`: `hit`, `HIT`, `MISS`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_cache: Option<String>,
    /// A hedging proxy's race for the response, as its `x-velollm-hedge` header said
    /// (`branches=2; winner=1; after_ms=100.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_hedge: Option<String>,
    /// Server-reported usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Engine-native timings (Ollama durations, llama.cpp `timings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeTimings>,
    /// Output tokens counted by the local tokenizer, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_output_tokens: Option<u64>,
    /// Prompt tokens counted by the local tokenizer, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer_prompt_tokens: Option<u64>,
    /// `max_tokens` requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Why generation stopped, as the server said (`stop`, `length`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The failure, if the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RequestError>,
    /// Tool calls the model made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<crate::measure::check::ToolCall>,
    /// Outcomes of the step's checks on this request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<crate::measure::check::CheckOutcome>,
    /// The generated text, when asked to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl RequestRecord {
    /// True when the request completed without error.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// Chunks that carry generated output, in arrival order.
    pub fn output_chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.chunks.iter().filter(|c| c.channel.is_output())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::*;

    #[test]
    fn error_class_names_agree_with_serde() {
        for c in
            [Connect, Timeout, Http4xx, RateLimited, Http5xx, StreamBroken, ParseError, EmptyOutput, Cancelled, Aborted]
        {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
