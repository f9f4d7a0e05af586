//! Scripted in-process fake LLM servers for velollm's tests.
//!
//! A [`FakeServer`] listens on `127.0.0.1` (random port) and speaks every generation dialect velollm
//! supports: OpenAI chat / completions (SSE), llama.cpp `/completion` (SSE), Ollama
//! `/api/generate` / `/api/chat` (NDJSON) and Anthropic `/v1/messages` (SSE with named events). Which
//! *discovery* routes exist depends on the [`Flavor`].
//!
//! The response timeline is driven by a [`Script`]: every content chunk is sent as its own HTTP body
//! frame (chunked transfer encoding) exactly when its deadline elapses. Deadlines are absolute and
//! anchored at request arrival, so scheduling jitter never accumulates:
//!
//! * message `j` (reasoning messages first, then content messages) is due at `ttft + j * itl`;
//! * the OpenAI chat role chunk, and Anthropic's `message_start`, first `content_block_start` and `ping`,
//!   are due at `0` (sent together with the headers);
//! * tool-call messages ([`Script::tool_calls`], chat dialects only) follow the content on the same
//!   `itl` grid;
//! * trailing messages (finish chunk, usage, `[DONE]`, final `done`/`stop` object) are due together
//!   with the last message (or at `ttft` when there is no message at all).
//!
//! Faults ([`Fault`]) simulate HTTP errors, connection drops and resets, malformed payloads, stalls, empty
//! and oversized answers; [`Script::fault_first`] limits a fault to the first requests (a burst the server
//! recovers from), [`Script::byte_frames`] splits every event at every byte, and [`FakeServer::stop`] /
//! [`FakeServer::restart`] make the server die and come back on the same port.
//!
//! With [`Script::cache`] set, the server simulates a prompt cache (see [`CacheSim`]): prompt tokens are
//! counted from the request, cached tokens are reported in each dialect's own usage fields, and the first
//! token comes later the more prompt tokens are not cached. With [`Script::api_key`] set, generation
//! requests without the key are refused with 401, in the dialect's own error shape.
//!
//! The module `tls` serves the same routes over https and HTTP/2 ([`FakeServer::start_tls`],
//! [`FakeServer::start_h2c`], [`TlsOptions`]).

#![deny(missing_docs)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

/// Which server product the fake imitates; this only selects the *discovery* routes.
///
/// Every flavor serves all generation routes (`/v1/chat/completions`, `/v1/completions`,
/// `/completion`, `/api/generate`, `/api/chat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenAI-compatible server: `GET /v1/models`; `/api/version`, `/api/tags`, `/props` are 404.
    OpenAi,
    /// Ollama: `GET /api/version` and `GET /api/tags`; `/v1/models` is 404.
    Ollama,
    /// llama.cpp `llama-server`: `GET /v1/models`, `GET /health`, `GET /props`; `/api/*` is 404.
    LlamaCpp,
    /// Anthropic API: `GET /v1/models` in Anthropic's shape (`{"data": [{"type": "model", "id", …}],
    /// "has_more", "first_id", "last_id"}`, 401 without the key when [`Script::api_key`] is set); every
    /// other unknown route is a 404 with Anthropic's error shape (`{"type": "error", "error": {…}}`).
    Anthropic,
}

/// A fault injected into every generation response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No fault: the scripted response is delivered in full.
    None,
    /// Answer immediately with this status code and `body` (sent verbatim as `application/json`),
    /// plus a `Retry-After` header (seconds) when `retry_after` is `Some`.
    Status {
        /// HTTP status code.
        code: u16,
        /// Response body, sent as-is with content type `application/json`.
        body: String,
        /// Value of the `Retry-After` header in seconds, if any.
        retry_after: Option<u32>,
    },
    /// After sending this many content chunks, abort the connection mid-body (no final/done
    /// message, no terminating zero-length chunk). The abort happens when the next content chunk
    /// would have been due (or, when all content was sent, when the final message would have been).
    DropAfter(usize),
    /// The content chunk with this 0-based index carries truncated JSON (`{"choices":[{`).
    MalformedJsonAt(usize),
    /// The content chunk with this 0-based index has the bytes `0xFF 0xFE` inside its content string.
    InvalidUtf8At(usize),
    /// After this many content chunks, send nothing more and never finish (the body stalls for an hour).
    StallAfter(usize),
    /// Wait this long (measured from request arrival) before sending the response headers. The body
    /// timeline stays anchored at request arrival; chunks already due go out right after the headers.
    SlowHeaders(Duration),
    /// Like [`Fault::DropAfter`], but the connection is reset: every socket the server accepts has
    /// `SO_LINGER` 0, so closing it sends a TCP RST instead of a FIN (the client reads "connection reset").
    ResetAfter(usize),
    /// After this many content chunks, end the body cleanly (terminating zero-length chunk) with no finish
    /// reason, usage or end marker: a stream that stops early without an error.
    EndAfter(usize),
    /// The stream is complete except for its end marker: OpenAI dialects send no `data: [DONE]`, Anthropic
    /// no `message_stop`. The other dialects' end marker is the final message that carries the finish
    /// reason, so they are unchanged.
    NoDoneMarker,
    /// Answer `200 OK` with the dialect's content type and an empty body (`content-length: 0`).
    EmptyBody,
    /// The content chunk with index `at` carries `bytes` bytes of text (`x` repeated) instead of its tokens.
    LargeChunk {
        /// 0-based index of the content chunk.
        at: usize,
        /// Bytes of text it carries.
        bytes: usize,
    },
}

/// The scripted behaviour of a [`FakeServer`].
#[derive(Debug, Clone)]
pub struct Script {
    /// Model name served and reported (default `"fake-model"`).
    pub model: String,
    /// Delay from request arrival to the first reasoning/content chunk (default 50 ms).
    pub ttft: Duration,
    /// Delay between consecutive reasoning/content chunks (default 10 ms).
    pub itl: Duration,
    /// Number of content tokens to emit (default 8); token `i` has the text `"tok{i} "` (see
    /// [`Script::replies`] for answers that depend on the question).
    pub tokens: usize,
    /// Content tokens merged into one chunk/message (default 1; `0` counts as 1). The final chunk may
    /// carry fewer.
    pub tokens_per_chunk: usize,
    /// Reasoning tokens emitted before the content, one per message (default 0); reasoning token `i`
    /// has the text `"r{i} "`. Emitted as `delta.reasoning_content` on OpenAI chat and
    /// `message.thinking` on Ollama chat; other dialects ignore them entirely (not emitted, not
    /// counted, no delay).
    pub reasoning_tokens: usize,
    /// OpenAI chat only: send a role-only first chunk together with the headers (default `true`).
    pub role_chunk: bool,
    /// How many SSE events / NDJSON lines are packed into one body frame (default 1; `0` counts as
    /// 1). A packed frame is sent when the last of its events is due.
    pub events_per_frame: usize,
    /// Reported prompt token count (default 12).
    pub prompt_tokens: u64,
    /// Reported cached prompt token count (default 0).
    pub cached_tokens: u64,
    /// Tool calls made after the content, as `(function name, arguments JSON text)` (default none).
    ///
    /// On OpenAI chat streams, call `i` is a first delta `{"index":i,"id":"call_i","type":"function",
    /// "function":{"name":NAME,"arguments":""}}` followed by the arguments split into 2–3 fragment
    /// deltas, each chunk one `itl` after the previous one, and the finish reason becomes
    /// `"tool_calls"`. On Ollama `/api/chat` streams, one extra line (one `itl` after the content, before
    /// the `done` line) carries every call as `message.tool_calls[].function{name, arguments}` with the
    /// arguments parsed as JSON (kept as a string when they are not JSON). Non-streaming chat answers
    /// carry them in `message.tool_calls`. Other dialects ignore them. Token counts are unchanged.
    pub tool_calls: Vec<(String, String)>,
    /// Fault injected into every generation response (default [`Fault::None`]), or only into the first
    /// ones, see [`Script::fault_first`].
    pub fault: Fault,
    /// When set, the fault applies to the first this-many generation requests only (counted in arrival
    /// order, as [`FakeServer::requests`] lists them); later requests are served normally: a burst of
    /// errors after which the server recovers (default none: every request).
    pub fault_first: Option<usize>,
    /// Send every byte of a streamed body as its own HTTP chunk (body frame), each flushed on its own,
    /// at the time its event is due: an event split at every byte (default false).
    pub byte_frames: bool,
    /// llama.cpp flavor: for this long after start, `/health` and generation answer 503 "Loading model"
    /// as llama-server does while it loads (default zero).
    pub loading: Duration,
    /// The API key generation requests must carry (default none: no key needed). Anthropic
    /// `/v1/messages` (and the Anthropic flavor's `/v1/models`) read it from `x-api-key`, the other
    /// dialects from `Authorization: Bearer`. A missing or wrong key is answered with 401 in the
    /// dialect's error shape (Anthropic: `{"type": "error", "error": {"type": "authentication_error",
    /// "message": …}}`).
    pub api_key: Option<String>,
    /// Simulate a prompt cache (default none: `prompt_tokens` and `cached_tokens` are reported as set).
    pub cache: Option<CacheSim>,
    /// A heavy tail, `(n, factor)`: every `n`-th generation request (in arrival order, 1-based) has its TTFT
    /// multiplied by `factor` (default none). `(100, 10)` is "1 % of requests 10× slower", exactly.
    pub slow_every: Option<(usize, u32)>,
    /// Answers that depend on the question: the first `(needle, answer)` whose needle occurs in the request
    /// body's JSON text sets the content to `answer`, one token per whitespace-separated word (each followed
    /// by a space), in place of `tokens` `"tok{i} "` tokens (default none).
    pub replies: Vec<(String, String)>,
}

/// A simulated prompt cache, shared by every dialect of one server.
///
/// Prompt tokens are counted deterministically: one per whitespace-separated word of the request's text
/// parts, in send order (system prompt, then each message's text; `prompt` for the completion
/// dialects; tool definitions are not counted).
///
/// * OpenAI, llama.cpp and Ollama cache prefixes on their own: a request's cached tokens are the longest
///   token prefix it shares with an earlier prompt whose entry has not expired, and every prompt becomes
///   an entry. Reported as `usage.prompt_tokens_details.cached_tokens` (OpenAI), `timings.cache_n` with
///   `prompt_n` = uncached tokens (llama.cpp), `prompt_eval_cached_count` with `prompt_eval_count` =
///   uncached tokens (Ollama).
/// * Anthropic caches only prefixes that end at a block carrying `cache_control`: a request reads the
///   longest live cached breakpoint prefix (`cache_read_input_tokens`), writes each of its longer
///   breakpoint prefixes (`cache_creation_input_tokens` = tokens from the read prefix to the last
///   breakpoint), and `input_tokens` is the rest. An entry lives for its block's `cache_control.ttl` (any
///   duration such as `500ms`, `2s`, `5m`, `1h`; an invalid one is a 400), else [`CacheSim::ttl`]; a read
///   renews it.
///
/// Entries of the automatic caches live [`CacheSim::ttl`] after their last use. The first token is due
/// at `Script::ttft + uncached prompt tokens × prefill_per_token`, so a hit is measurably faster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSim {
    /// How long an entry lives after its last use (default 5 minutes).
    pub ttl: Duration,
    /// Time added to the TTFT per prompt token that is not read from the cache (default 200 µs).
    pub prefill_per_token: Duration,
}

impl Default for CacheSim {
    fn default() -> Self {
        CacheSim { ttl: Duration::from_secs(300), prefill_per_token: Duration::from_micros(200) }
    }
}

impl Default for Script {
    fn default() -> Self {
        Script {
            model: "fake-model".to_owned(),
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            tokens: 8,
            tokens_per_chunk: 1,
            reasoning_tokens: 0,
            role_chunk: true,
            events_per_frame: 1,
            prompt_tokens: 12,
            cached_tokens: 0,
            tool_calls: Vec::new(),
            fault: Fault::None,
            fault_first: None,
            byte_frames: false,
            loading: Duration::ZERO,
            api_key: None,
            cache: None,
            slow_every: None,
            replies: Vec::new(),
        }
    }
}

/// A running fake LLM server bound to `127.0.0.1` on a random port.
///
/// The server task is aborted when the value is dropped (a plain server's open connections close with it).
pub struct FakeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// `http`, or `https` for [`FakeServer::start_tls`].
    scheme: &'static str,
    flavor: Flavor,
    /// Tells the plain server's accept loop to close its listener and every connection (`None` once used,
    /// and for the servers of [`tls`]).
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer").field("addr", &self.addr).field("script", &self.shared.script).finish()
    }
}

impl FakeServer {
    /// Binds `127.0.0.1:0`, spawns the server task (with `TCP_NODELAY` on accepted sockets) and
    /// returns once the listener is bound.
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound.
    pub async fn start(flavor: Flavor, script: Script) -> FakeServer {
        FakeServer::bind("127.0.0.1:0", flavor, script).await.expect("bind fake server on 127.0.0.1:0")
    }

    /// Like [`FakeServer::start`], on a given address (`"127.0.0.1:8080"`).
    pub async fn bind(addr: &str, flavor: Flavor, script: Script) -> io::Result<FakeServer> {
        let shared = Arc::new(Shared {
            script,
            requests: Mutex::new(Vec::new()),
            headers: Mutex::new(Vec::new()),
            cache: Mutex::new(CacheState::default()),
            started: Instant::now(),
        });
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_plain(listener, router(flavor, shared.clone()), reset(&shared.script), stopped));
        Ok(FakeServer { addr, shared, task, scheme: "http", flavor, stop: Some(stop) })
    }

    /// The server dies: its listener closes (new connections are refused) and every open connection is
    /// closed at once, in-flight responses included. Returns once they are closed. Idempotent; see
    /// [`FakeServer::restart`].
    pub async fn stop(&mut self) {
        // A server of `tls` runs its own accept loop, which has no stop signal: abort it.
        let signalled = self.stop.take().is_some_and(|tx| tx.send(()).is_ok());
        if !signalled {
            self.task.abort();
        }
        if !self.task.is_finished() {
            let _ = (&mut self.task).await;
        }
    }

    /// The server comes back on the same address, with the same script and state (request log, cache)
    /// after [`FakeServer::stop`] (which it calls first if needed). Plain-http servers only (HTTP/1.1 and
    /// h2c are both served again): an https server answers an `Unsupported` error.
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.scheme != "http" {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "only a plain-http fake server can restart"));
        }
        self.stop().await;
        let socket = tokio::net::TcpSocket::new_v4()?;
        // The address was ours a moment ago; connections in TIME_WAIT must not keep it.
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(1024)?;
        let (stop, stopped) = oneshot::channel();
        let app = router(self.flavor, self.shared.clone());
        self.task = tokio::spawn(accept_plain(listener, app, reset(&self.shared.script), stopped));
        self.stop = Some(stop);
        Ok(())
    }

    /// Base URL of the server, e.g. `"http://127.0.0.1:40123"` (no trailing slash; `https://` for
    /// [`FakeServer::start_tls`]).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `(path, parsed JSON body)` of every generation request received so far, in arrival order.
    ///
    /// A body that is not valid JSON is recorded as a JSON string holding its (lossy UTF-8) text.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Number of generation requests received so far.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The headers of every generation request received so far, in the order of [`FakeServer::requests`]:
    /// `(lower-case name, value)` pairs as sent.
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        self.shared.headers.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the server's sockets close with a reset ([`Fault::ResetAfter`]).
fn reset(script: &Script) -> bool {
    matches!(script.fault, Fault::ResetAfter(_))
}

/// The plain server: HTTP/1.1 and h2c (prior knowledge) on every accepted connection, `TCP_NODELAY` on (and
/// `SO_LINGER` 0 when `reset`). When `stop` fires (or its sender is dropped) the listener closes and every
/// connection with it.
async fn accept_plain(listener: TcpListener, app: Router, reset: bool, mut stop: oneshot::Receiver<()>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => {
                drop(listener);
                conns.shutdown().await;
                return;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    // Out of file descriptors or similar: do not spin.
                    sleep(Duration::from_millis(5)).await;
                    continue;
                };
                // Best effort: a failure only costs latency accuracy.
                let _ = tcp.set_nodelay(true);
                if reset {
                    let _ = tcp.set_zero_linger();
                }
                let service = TowerToHyperService::new(app.clone());
                conns.spawn(async move {
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service).await;
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

struct Shared {
    script: Script,
    requests: Mutex<Vec<(String, Value)>>,
    headers: Mutex<Vec<Vec<(String, String)>>>,
    cache: Mutex<CacheState>,
    started: Instant,
}

impl Shared {
    fn loading(&self) -> bool {
        self.started.elapsed() < self.script.loading
    }
}

fn loading_response() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({ "error": { "code": 503, "message": "Loading model", "type": "unavailable_error" } }),
    )
}

/// llama.cpp-style Prometheus counters derived from the requests served so far.
fn metrics_text(s: &Shared) -> String {
    let n = s.requests.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
    let (prompt, cached) = if s.script.cache.is_some() {
        let c = s.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (c.uncached_total, c.cached_total)
    } else {
        (n * s.script.prompt_tokens.saturating_sub(s.script.cached_tokens), n * s.script.cached_tokens)
    };
    let predicted = n * s.script.tokens as u64;
    format!(
        "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens\n\
         # TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total {prompt}\n\
         # HELP llamacpp:prompt_tokens_cached_total Number of prompt tokens reused from the cache\n\
         # TYPE llamacpp:prompt_tokens_cached_total counter\nllamacpp:prompt_tokens_cached_total {cached}\n\
         # HELP llamacpp:tokens_predicted_total Number of generation tokens processed\n\
         # TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total {predicted}\n\
         # HELP llamacpp:requests_processing Number of requests processing\n\
         # TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0\n"
    )
}

type AppState = Arc<Shared>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAiChat,
    OpenAiCompletions,
    LlamaCompletion,
    OllamaGenerate,
    OllamaChat,
    AnthropicMessages,
}

impl Dialect {
    fn is_ollama(self) -> bool {
        matches!(self, Dialect::OllamaGenerate | Dialect::OllamaChat)
    }

    fn supports_reasoning(self) -> bool {
        matches!(self, Dialect::OpenAiChat | Dialect::OllamaChat | Dialect::AnthropicMessages)
    }

    /// An error body in the dialect's shape; `kind` is the OpenAI/Anthropic error type.
    fn error(self, kind: &str, message: &str) -> Value {
        match self {
            Dialect::OllamaGenerate | Dialect::OllamaChat => json!({ "error": message }),
            Dialect::AnthropicMessages => anthropic_error(kind, message),
            _ => json!({ "error": { "message": message, "type": kind } }),
        }
    }
}

/// Anthropic's error shape.
fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": kind, "message": message }, "request_id": "req_fake" })
}

/// The key check of [`Script::api_key`]: `None` when the request may go on, else the 401 answer.
fn unauthorized(script: &Script, dialect: Dialect, headers: &axum::http::HeaderMap) -> Option<Response> {
    let key = script.api_key.as_deref()?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (given, missing, wrong) = if dialect == Dialect::AnthropicMessages {
        (header("x-api-key"), "x-api-key header is required", "invalid x-api-key")
    } else {
        let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
        (bearer, "missing API key (Authorization: Bearer)", "incorrect API key provided")
    };
    let message = match given {
        Some(k) if k == key => return None,
        Some(_) => wrong,
        None => missing,
    };
    Some(json_response(StatusCode::UNAUTHORIZED, &dialect.error("authentication_error", message)))
}

fn router(flavor: Flavor, shared: AppState) -> Router {
    let mut app = Router::new()
        .route("/v1/chat/completions", post(|s: State<AppState>, r: Request| generate(s, Dialect::OpenAiChat, r)))
        .route("/v1/completions", post(|s: State<AppState>, r: Request| generate(s, Dialect::OpenAiCompletions, r)))
        .route("/completion", post(|s: State<AppState>, r: Request| generate(s, Dialect::LlamaCompletion, r)))
        .route("/api/generate", post(|s: State<AppState>, r: Request| generate(s, Dialect::OllamaGenerate, r)))
        .route("/api/chat", post(|s: State<AppState>, r: Request| generate(s, Dialect::OllamaChat, r)))
        .route("/v1/messages", post(|s: State<AppState>, r: Request| generate(s, Dialect::AnthropicMessages, r)));

    let models = |State(s): State<AppState>| async move {
        axum::Json(json!({
            "object": "list",
            "data": [{ "id": s.script.model, "object": "model", "owned_by": "fake" }],
        }))
    };
    match flavor {
        Flavor::OpenAi => {
            app = app.route("/v1/models", get(models));
        }
        Flavor::LlamaCpp => {
            app = app
                .route("/v1/models", get(models))
                .route(
                    "/health",
                    get(|State(s): State<AppState>| async move {
                        if s.loading() {
                            loading_response()
                        } else {
                            axum::Json(json!({ "status": "ok" })).into_response()
                        }
                    }),
                )
                .route(
                    "/metrics",
                    get(|State(s): State<AppState>| async move {
                        raw_response(StatusCode::OK, "text/plain; version=0.0.4", Body::from(metrics_text(&s)))
                    }),
                )
                .route(
                    "/props",
                    get(|| async {
                        axum::Json(json!({
                            "build_info": "b9999-fake",
                            "model_path": "/models/fake.gguf",
                            "total_slots": 4,
                        }))
                    }),
                );
        }
        Flavor::Anthropic => {
            let models = |State(s): State<AppState>, headers: axum::http::HeaderMap| async move {
                if let Some(r) = unauthorized(&s.script, Dialect::AnthropicMessages, &headers) {
                    return r;
                }
                let m = &s.script.model;
                let model = json!({ "type": "model", "id": m, "display_name": "Fake", "created_at": CREATED_AT });
                axum::Json(json!({ "data": [model], "has_more": false, "first_id": m, "last_id": m })).into_response()
            };
            app = app.route("/v1/models", get(models)).fallback(|| async {
                json_response(StatusCode::NOT_FOUND, &anthropic_error("not_found_error", "Not found"))
            });
        }
        Flavor::Ollama => {
            app = app.route("/api/version", get(|| async { axum::Json(json!({ "version": "0.12.0" })) })).route(
                "/api/tags",
                get(|State(s): State<AppState>| async move {
                    let m = &s.script.model;
                    axum::Json(json!({ "models": [{ "name": m, "model": m, "size": 1, "digest": "abc" }] }))
                }),
            );
        }
    }
    app.with_state(shared)
}

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";
const NDJSON: &str = "application/x-ndjson";
const CREATED_AT: &str = "2026-01-01T00:00:00Z";
/// Replaced by `0xFF 0xFE` after serialization for [`Fault::InvalidUtf8At`].
const BAD_UTF8_MARKER: &str = "\u{1}__VELOLLM_BAD_UTF8__\u{1}";
const MALFORMED_JSON: &[u8] = b"{\"choices\":[{";
const STALL: Duration = Duration::from_secs(3600);

fn raw_response(status: StatusCode, content_type: &str, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).expect("content type"));
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    raw_response(status, JSON, Body::from(value.to_string()))
}

async fn generate(State(shared): State<AppState>, dialect: Dialect, req: Request) -> Response {
    let start = Instant::now();
    if shared.loading() {
        return loading_response();
    }
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let raw = match axum::body::to_bytes(req.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let body: Value =
        serde_json::from_slice(&raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
    // Ollama refuses an empty request (no model) before doing anything; velollm's probe sends `{}` to confirm
    // the route exists. Such a request is not a generation and is not recorded.
    if matches!(dialect, Dialect::OllamaGenerate | Dialect::OllamaChat)
        && body.as_object().is_some_and(|o| o.is_empty())
    {
        return json_response(StatusCode::BAD_REQUEST, &json!({ "error": "model is required" }));
    }
    let index = {
        // Both locks in one order, so `requests` and `request_headers` always line up.
        let mut requests = shared.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let names = headers.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()));
        shared.headers.lock().unwrap_or_else(PoisonError::into_inner).push(names.collect());
        requests.push((path, body.clone()));
        requests.len() - 1
    };
    let script = &shared.script;
    // The fault of this request: none once the burst of `fault_first` requests is over.
    let fault = match script.fault_first {
        Some(n) if index >= n => &Fault::None,
        _ => &script.fault,
    };

    if let Some(r) = unauthorized(script, dialect, &headers) {
        return r;
    }
    if !body.is_object() {
        let err = dialect.error("invalid_request_error", "request body is not a JSON object");
        return json_response(StatusCode::BAD_REQUEST, &err);
    }
    if let Some(m) = body.get("model").and_then(Value::as_str)
        && m != script.model
    {
        let err = match dialect {
            Dialect::OllamaGenerate | Dialect::OllamaChat => {
                json!({ "error": format!("model \"{m}\" not found, try pulling it first") })
            }
            Dialect::AnthropicMessages => anthropic_error("not_found_error", &format!("model: {m}")),
            _ => json!({ "error": { "message": format!("model '{m}' not found"), "type": "not_found_error" } }),
        };
        return json_response(StatusCode::NOT_FOUND, &err);
    }
    if let Fault::Status { code, body, retry_after } = fault {
        let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = raw_response(status, JSON, Body::from(body.clone()));
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
        }
        return resp;
    }

    let prompt = match shared.count_prompt(dialect, &body) {
        Ok(p) => p,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &dialect.error("invalid_request_error", &e)),
    };
    let mut generator = Gen::new(script, fault, dialect, &body, prompt);
    if let Some((n, factor)) = script.slow_every
        && n > 0
        && (index + 1) % n == 0
    {
        generator.ttft = generator.ttft.saturating_mul(factor);
    }
    let streaming = body.get("stream").and_then(Value::as_bool) != Some(false);
    let resp = if *fault == Fault::EmptyBody {
        let ct = if !streaming {
            JSON
        } else if dialect.is_ollama() {
            NDJSON
        } else {
            SSE
        };
        raw_response(StatusCode::OK, ct, Body::empty())
    } else if !streaming {
        generator.non_streaming(start).await
    } else {
        let ct = if dialect.is_ollama() { NDJSON } else { SSE };
        let mut resp = raw_response(StatusCode::OK, ct, generator.streaming_body(start));
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    };
    if let Fault::SlowHeaders(d) = *fault {
        sleep_until(start + d).await;
    }
    resp
}

// ---------------------------------------------------------------------------------------------
// Prompt cache simulation
// ---------------------------------------------------------------------------------------------

/// Prompt token counts reported for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PromptCount {
    /// Every prompt token.
    total: u64,
    /// Tokens read from the cache.
    cached: u64,
    /// Tokens written to the cache (Anthropic `cache_creation_input_tokens`; included in `total`).
    written: u64,
}

impl PromptCount {
    /// Tokens the server had to evaluate.
    fn uncached(self) -> u64 {
        self.total.saturating_sub(self.cached)
    }
}

/// One cached prefix.
struct CacheEntry {
    tokens: Vec<String>,
    ttl: Duration,
    expires: Instant,
}

/// The simulated cache, with the totals the llama.cpp `/metrics` counters report.
#[derive(Default)]
struct CacheState {
    entries: Vec<CacheEntry>,
    uncached_total: u64,
    cached_total: u64,
}

/// Entries kept at most; the one closest to expiry goes first.
const MAX_CACHE_ENTRIES: usize = 4096;

/// A text block of a request: its words and, when it carries `cache_control`, its breakpoint's TTL
/// (`Some(None)`: the default).
struct TextBlock {
    words: Vec<String>,
    breakpoint: Option<Option<Duration>>,
}

/// Parse a duration such as `500ms`, `2s`, `5m`, `1h`, `1h 30m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u32 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match rest[..unit_len].trim() {
            "ms" => Duration::from_millis(1),
            "s" | "sec" | "secs" => Duration::from_secs(1),
            "m" | "min" | "mins" => Duration::from_secs(60),
            "h" | "hr" | "hour" | "hours" => Duration::from_secs(3600),
            "d" | "day" | "days" => Duration::from_secs(86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(n)?)?;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

/// The text blocks of a message `content` (a string, or an array of blocks with `text`) or of a `system`
/// field, with their `cache_control`.
fn content_blocks(content: &Value, out: &mut Vec<TextBlock>) -> Result<(), String> {
    let words = |t: &str| t.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    match content {
        Value::String(t) => out.push(TextBlock { words: words(t), breakpoint: None }),
        Value::Array(parts) => {
            for part in parts {
                let Some(text) = part.get("text").and_then(Value::as_str) else {
                    continue;
                };
                let breakpoint = match part.get("cache_control").filter(|c| c.is_object()) {
                    None => None,
                    Some(c) => match c.get("ttl").and_then(Value::as_str) {
                        None => Some(None),
                        Some(t) => Some(Some(
                            parse_duration(t).ok_or_else(|| format!("cache_control.ttl: invalid duration '{t}'"))?,
                        )),
                    },
                };
                out.push(TextBlock { words: words(text), breakpoint });
            }
        }
        _ => {}
    }
    Ok(())
}

/// The text blocks of a generation request, in send order.
fn request_blocks(dialect: Dialect, body: &Value) -> Result<Vec<TextBlock>, String> {
    let mut out = Vec::new();
    let field = |name: &str| body.get(name).unwrap_or(&Value::Null);
    match dialect {
        Dialect::OpenAiCompletions | Dialect::LlamaCompletion => content_blocks(field("prompt"), &mut out)?,
        Dialect::OllamaGenerate => {
            content_blocks(field("system"), &mut out)?;
            content_blocks(field("prompt"), &mut out)?;
        }
        Dialect::OpenAiChat | Dialect::OllamaChat | Dialect::AnthropicMessages => {
            if dialect == Dialect::AnthropicMessages {
                content_blocks(field("system"), &mut out)?;
            }
            for m in field("messages").as_array().into_iter().flatten() {
                content_blocks(m.get("content").unwrap_or(&Value::Null), &mut out)?;
            }
        }
    }
    Ok(out)
}

impl CacheState {
    /// Drop expired entries, then the ones closest to expiry beyond the size limit.
    fn purge(&mut self, now: Instant) {
        self.entries.retain(|e| e.expires > now);
        if self.entries.len() > MAX_CACHE_ENTRIES {
            self.entries.sort_by_key(|e| std::cmp::Reverse(e.expires));
            self.entries.truncate(MAX_CACHE_ENTRIES);
        }
    }

    /// Keep `tokens` as an entry (or renew the one there is).
    fn store(&mut self, tokens: &[String], ttl: Duration, now: Instant) {
        match self.entries.iter_mut().find(|e| e.tokens == tokens) {
            Some(e) => e.expires = now + e.ttl,
            None => self.entries.push(CacheEntry { tokens: tokens.to_vec(), ttl, expires: now + ttl }),
        }
    }

    /// Automatic prefix caching: the longest prefix shared with a live entry is read (and renewed).
    fn automatic(&mut self, tokens: &[String], ttl: Duration, now: Instant) -> PromptCount {
        let shared = |e: &CacheEntry| e.tokens.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        let best = self.entries.iter_mut().map(|e| (shared(e), e)).max_by_key(|(n, _)| *n);
        let cached = match best {
            Some((n, e)) if n > 0 => {
                e.expires = now + e.ttl;
                n
            }
            _ => 0,
        };
        self.store(tokens, ttl, now);
        PromptCount { total: tokens.len() as u64, cached: cached as u64, written: 0 }
    }

    /// Anthropic's explicit caching: only prefixes ending at a breakpoint are read or written.
    fn explicit(&mut self, blocks: &[TextBlock], default_ttl: Duration, now: Instant) -> PromptCount {
        let tokens: Vec<String> = blocks.iter().flat_map(|b| b.words.iter().cloned()).collect();
        let mut end = 0;
        let mut breakpoints = Vec::new();
        for b in blocks {
            end += b.words.len();
            if let Some(ttl) = b.breakpoint {
                breakpoints.push((end, ttl.unwrap_or(default_ttl)));
            }
        }
        let mut read = 0;
        for &(end, _) in &breakpoints {
            if end > read && self.entries.iter().any(|e| e.tokens[..] == tokens[..end]) {
                read = end;
            }
        }
        if let Some(e) = self.entries.iter_mut().find(|e| read > 0 && e.tokens[..] == tokens[..read]) {
            e.expires = now + e.ttl;
        }
        let last = breakpoints.iter().map(|(end, _)| *end).max().unwrap_or(0);
        for &(end, ttl) in breakpoints.iter().filter(|(end, _)| *end > read) {
            self.store(&tokens[..end], ttl, now);
        }
        PromptCount { total: tokens.len() as u64, cached: read as u64, written: last.saturating_sub(read) as u64 }
    }
}

impl Shared {
    /// The prompt token counts of a request, through the cache simulation when there is one.
    fn count_prompt(&self, dialect: Dialect, body: &Value) -> Result<PromptCount, String> {
        let Some(sim) = &self.script.cache else {
            let (total, cached) = (self.script.prompt_tokens, self.script.cached_tokens);
            return Ok(PromptCount { total, cached, written: 0 });
        };
        let blocks = request_blocks(dialect, body)?;
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.purge(now);
        let count = if dialect == Dialect::AnthropicMessages {
            cache.explicit(&blocks, sim.ttl, now)
        } else {
            let tokens: Vec<String> = blocks.into_iter().flat_map(|b| b.words).collect();
            cache.automatic(&tokens, sim.ttl, now)
        };
        cache.uncached_total += count.uncached();
        cache.cached_total += count.cached;
        Ok(count)
    }
}

// ---------------------------------------------------------------------------------------------
// Response generation
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Role chunk or reasoning message: precedes the content, never counted as content.
    Lead,
    /// A content chunk.
    Content,
    /// A tool-call chunk: follows the content, not counted as content by faults.
    Tool,
    /// Finish chunk, usage chunk, `[DONE]`, final `done`/`stop` object.
    Trailer,
}

struct Event {
    at: Duration,
    data: Vec<u8>,
    kind: Kind,
}

enum Step {
    Data(Duration, Bytes),
    Fail(Duration),
    Stall,
}

struct Gen<'a> {
    s: &'a Script,
    /// The fault of this request (see [`Script::fault_first`]).
    fault: &'a Fault,
    dialect: Dialect,
    /// Prompt token counts reported for this request.
    prompt: PromptCount,
    /// When the first reasoning/content message is due.
    ttft: Duration,
    include_usage: bool,
    /// Reasoning tokens actually emitted by this dialect.
    reasoning: usize,
    /// Number of content messages.
    content_msgs: usize,
    /// Number of tool-call messages emitted by this dialect (after the content).
    tool_msgs: usize,
    /// The content tokens' texts.
    words: Vec<String>,
}

fn token_text(i: usize) -> String {
    format!("tok{i} ")
}

fn reasoning_text(i: usize) -> String {
    format!("r{i} ")
}

/// `arguments` split into 3 fragments (2 when it has fewer than 3 characters), on character boundaries.
fn argument_fragments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    let n = if chars.len() >= 3 { 3 } else { 2 };
    let size = chars.len().div_ceil(n).max(1);
    (0..n).map(|k| chars.iter().skip(k * size).take(size).collect()).collect()
}

/// Tool-call arguments as Ollama sends them: a JSON value, or the raw text when it is not JSON.
fn parsed_arguments(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

impl<'a> Gen<'a> {
    fn new(s: &'a Script, fault: &'a Fault, dialect: Dialect, body: &Value, prompt: PromptCount) -> Self {
        let include_usage = body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
        let reasoning = if dialect.supports_reasoning() { s.reasoning_tokens } else { 0 };
        let text = body.to_string();
        let words: Vec<String> = match s.replies.iter().find(|(needle, _)| text.contains(needle.as_str())) {
            Some((_, answer)) => answer.split_whitespace().map(|w| format!("{w} ")).collect(),
            None => (0..s.tokens).map(token_text).collect(),
        };
        let content_msgs = words.len().div_ceil(s.tokens_per_chunk.max(1));
        let tool_msgs = match dialect {
            Dialect::OpenAiChat | Dialect::AnthropicMessages => {
                s.tool_calls.iter().map(|(_, args)| 1 + argument_fragments(args).len()).sum()
            }
            Dialect::OllamaChat => usize::from(!s.tool_calls.is_empty()),
            _ => 0,
        };
        let prefill = s.cache.as_ref().map_or(Duration::ZERO, |c| {
            c.prefill_per_token.saturating_mul(u32::try_from(prompt.uncached()).unwrap_or(u32::MAX))
        });
        let ttft = s.ttft.saturating_add(prefill);
        Gen { s, fault, dialect, prompt, ttft, include_usage, reasoning, content_msgs, tool_msgs, words }
    }

    /// Whether this response carries tool calls.
    fn has_tool_calls(&self) -> bool {
        self.tool_msgs > 0
    }

    /// OpenAI finish reason.
    fn finish_reason(&self) -> &'static str {
        if self.has_tool_calls() { "tool_calls" } else { "length" }
    }

    /// Completion tokens reported in usage/counters.
    fn completion_tokens(&self) -> usize {
        self.words.len() + self.reasoning
    }

    /// Total number of reasoning + content + tool-call messages.
    fn messages(&self) -> usize {
        self.reasoning + self.content_msgs + self.tool_msgs
    }

    /// Due time of message `j`.
    fn at(&self, j: usize) -> Duration {
        self.ttft + self.s.itl * u32::try_from(j).unwrap_or(u32::MAX)
    }

    /// Due time of the last message (or `ttft` when nothing is emitted); trailers are sent then.
    fn last_at(&self) -> Duration {
        self.at(self.messages().saturating_sub(1))
    }

    /// Time between the first and the last message, reported as generation time.
    fn gen_time(&self) -> Duration {
        self.last_at() - self.ttft
    }

    fn content_range(&self, c: usize) -> std::ops::Range<usize> {
        let k = self.s.tokens_per_chunk.max(1);
        c * k..((c + 1) * k).min(self.words.len())
    }

    fn wrap(&self, json: &[u8]) -> Vec<u8> {
        if self.dialect.is_ollama() {
            let mut v = json.to_vec();
            v.push(b'\n');
            v
        } else {
            let mut v = Vec::with_capacity(json.len() + 40);
            if self.dialect == Dialect::AnthropicMessages {
                // The `event:` line repeats the payload's `type` (a faulty payload replaces a content delta).
                let kind = serde_json::from_slice::<Value>(json)
                    .ok()
                    .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                    .unwrap_or_else(|| "content_block_delta".to_owned());
                v.extend_from_slice(format!("event: {kind}\n").as_bytes());
            }
            v.extend_from_slice(b"data: ");
            v.extend_from_slice(json);
            v.extend_from_slice(b"\n\n");
            v
        }
    }

    /// Anthropic: the index of the text block (the thinking block, when there is one, is block 0).
    fn text_index(&self) -> usize {
        usize::from(self.reasoning > 0)
    }

    /// Anthropic `stop_reason`.
    fn stop_reason(&self) -> &'static str {
        if self.has_tool_calls() { "tool_use" } else { "max_tokens" }
    }

    /// Anthropic `message_start`.
    fn message_start(&self) -> Value {
        json!({
            "type": "message_start",
            "message": {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": self.s.model,
                "stop_reason": null,
                "stop_sequence": null,
                "usage": self.anthropic_usage(1),
            },
        })
    }

    fn wrap_value(&self, v: &Value) -> Vec<u8> {
        self.wrap(v.to_string().as_bytes())
    }

    fn openai_chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.s.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    }

    fn completions_chunk(&self, text: &str, finish: Option<&str>) -> Value {
        json!({
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": self.s.model,
            "choices": [{ "index": 0, "text": text, "finish_reason": finish }],
        })
    }

    fn ollama_line(&self, response_or_message: (&str, Value), done: bool) -> Value {
        let mut v = json!({ "model": self.s.model, "created_at": CREATED_AT });
        v[response_or_message.0] = response_or_message.1;
        v["done"] = Value::Bool(done);
        v
    }

    /// Ollama `message.tool_calls` of every scripted call.
    fn ollama_tool_calls(&self) -> Value {
        self.s
            .tool_calls
            .iter()
            .map(|(name, args)| json!({ "function": { "name": name, "arguments": parsed_arguments(args) } }))
            .collect()
    }

    fn chat_message(content: &str, thinking: Option<&str>) -> Value {
        let mut m = json!({ "role": "assistant", "content": content });
        if let Some(t) = thinking {
            m["thinking"] = Value::String(t.to_owned());
        }
        m
    }

    fn usage(&self) -> Value {
        let p = self.prompt.total;
        let n = self.completion_tokens() as u64;
        json!({
            "prompt_tokens": p,
            "completion_tokens": n,
            "total_tokens": p + n,
            "prompt_tokens_details": { "cached_tokens": self.prompt.cached },
        })
    }

    /// Anthropic `usage` (`input_tokens` excludes the tokens read from or written to the cache).
    fn anthropic_usage(&self, output_tokens: usize) -> Value {
        let PromptCount { total, cached, written } = self.prompt;
        json!({
            "input_tokens": total.saturating_sub(cached).saturating_sub(written),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached,
            "output_tokens": output_tokens,
        })
    }

    fn ollama_stats(&self, v: &mut Value) {
        v["done_reason"] = json!("length");
        v["total_duration"] = json!(ns(self.last_at()));
        v["load_duration"] = json!(1_000_000u64);
        if self.s.cache.is_some() {
            v["prompt_eval_count"] = json!(self.prompt.uncached());
            v["prompt_eval_cached_count"] = json!(self.prompt.cached);
        } else {
            v["prompt_eval_count"] = json!(self.prompt.total);
        }
        v["prompt_eval_duration"] = json!(ns(self.ttft));
        v["eval_count"] = json!(self.completion_tokens());
        v["eval_duration"] = json!(ns(self.gen_time()));
    }

    fn llama_final(&self, content: &str) -> Value {
        let p = self.prompt.total;
        // With the cache simulation `prompt_n` counts the evaluated (uncached) tokens, as llama-server does.
        let prompt_n = if self.s.cache.is_some() { self.prompt.uncached() } else { p };
        let n = self.completion_tokens();
        let prompt_ms = ms(self.ttft);
        let predicted_ms = ms(self.gen_time());
        json!({
            "content": content,
            "stop": true,
            "stop_type": "limit",
            "model": self.s.model,
            "tokens_predicted": n,
            "tokens_evaluated": p,
            "timings": {
                "cache_n": self.prompt.cached,
                "prompt_n": prompt_n,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": ratio(prompt_ms, prompt_n as f64),
                "prompt_per_second": ratio(prompt_n as f64 * 1000.0, prompt_ms),
                "predicted_n": n,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": ratio(predicted_ms, n as f64),
                "predicted_per_second": ratio(n as f64 * 1000.0, predicted_ms),
            },
        })
    }

    /// JSON value of content chunk `c` whose text is `text`.
    fn content_value(&self, c: usize, text: &str) -> Value {
        match self.dialect {
            Dialect::OpenAiChat => self.openai_chunk(json!({ "content": text }), None),
            Dialect::OpenAiCompletions => self.completions_chunk(text, None),
            Dialect::LlamaCompletion => {
                let ids: Vec<usize> = self.content_range(c).collect();
                json!({ "content": text, "stop": false, "tokens": ids })
            }
            Dialect::OllamaGenerate => self.ollama_line(("response", json!(text)), false),
            Dialect::OllamaChat => self.ollama_line(("message", Self::chat_message(text, None)), false),
            Dialect::AnthropicMessages => json!({
                "type": "content_block_delta",
                "index": self.text_index(),
                "delta": { "type": "text_delta", "text": text },
            }),
        }
    }

    /// Serialized payload (without SSE/NDJSON framing) for content chunk `c`, faults applied.
    fn content_payload(&self, c: usize) -> Vec<u8> {
        let text: String = match *self.fault {
            Fault::LargeChunk { at, bytes } if at == c => "x".repeat(bytes),
            _ => self.content_range(c).map(|i| self.words[i].as_str()).collect(),
        };
        match *self.fault {
            Fault::MalformedJsonAt(n) if n == c => MALFORMED_JSON.to_vec(),
            Fault::InvalidUtf8At(n) if n == c => {
                let marked = format!("{text}{BAD_UTF8_MARKER}");
                inject_bad_utf8(self.content_value(c, &marked).to_string())
            }
            _ => self.content_value(c, &text).to_string().into_bytes(),
        }
    }

    fn events(&self) -> Vec<Event> {
        let mut ev = Vec::new();
        let mut push = |at: Duration, data: Vec<u8>, kind: Kind| ev.push(Event { at, data, kind });
        if self.dialect == Dialect::OpenAiChat && self.s.role_chunk {
            let v = self.openai_chunk(json!({ "role": "assistant", "content": "" }), None);
            push(Duration::ZERO, self.wrap_value(&v), Kind::Lead);
        }
        let anthropic = self.dialect == Dialect::AnthropicMessages;
        if anthropic {
            push(Duration::ZERO, self.wrap_value(&self.message_start()), Kind::Lead);
            let first = if self.reasoning > 0 {
                json!({ "type": "thinking", "thinking": "" })
            } else {
                json!({ "type": "text", "text": "" })
            };
            let start = json!({ "type": "content_block_start", "index": 0, "content_block": first });
            push(Duration::ZERO, self.wrap_value(&start), Kind::Lead);
            push(Duration::ZERO, self.wrap_value(&json!({ "type": "ping" })), Kind::Lead);
        }
        for r in 0..self.reasoning {
            let t = reasoning_text(r);
            let v = match self.dialect {
                Dialect::OpenAiChat => self.openai_chunk(json!({ "reasoning_content": t }), None),
                Dialect::AnthropicMessages => json!({
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": { "type": "thinking_delta", "thinking": t },
                }),
                _ => self.ollama_line(("message", Self::chat_message("", Some(&t))), false),
            };
            push(self.at(r), self.wrap_value(&v), Kind::Lead);
        }
        if anthropic && self.reasoning > 0 {
            // The thinking block ends (with its signature) and the text block starts when the text is due.
            let at = self.at(self.reasoning).min(self.last_at());
            let signature = json!({ "type": "signature_delta", "signature": "fake-signature" });
            let events = [
                json!({ "type": "content_block_delta", "index": 0, "delta": signature }),
                json!({ "type": "content_block_stop", "index": 0 }),
                json!({ "type": "content_block_start", "index": 1, "content_block": { "type": "text", "text": "" } }),
            ];
            for e in &events {
                push(at, self.wrap_value(e), Kind::Lead);
            }
        }
        for c in 0..self.content_msgs {
            push(self.at(self.reasoning + c), self.wrap(&self.content_payload(c)), Kind::Content);
        }
        if self.has_tool_calls() {
            let mut j = self.reasoning + self.content_msgs;
            let mut next = || {
                j += 1;
                self.at(j - 1)
            };
            if self.dialect == Dialect::OpenAiChat {
                for (i, (name, args)) in self.s.tool_calls.iter().enumerate() {
                    let first = json!({ "tool_calls": [{
                        "index": i,
                        "id": format!("call_{i}"),
                        "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }] });
                    push(next(), self.wrap_value(&self.openai_chunk(first, None)), Kind::Tool);
                    for fragment in argument_fragments(args) {
                        let delta = json!({ "tool_calls": [{ "index": i, "function": { "arguments": fragment } }] });
                        push(next(), self.wrap_value(&self.openai_chunk(delta, None)), Kind::Tool);
                    }
                }
            } else if anthropic {
                let mut index = self.text_index();
                for (i, (name, args)) in self.s.tool_calls.iter().enumerate() {
                    let at = next();
                    push(at, self.wrap_value(&json!({ "type": "content_block_stop", "index": index })), Kind::Tool);
                    index += 1;
                    let block = json!({ "type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {} });
                    let start = json!({ "type": "content_block_start", "index": index, "content_block": block });
                    push(at, self.wrap_value(&start), Kind::Tool);
                    for fragment in argument_fragments(args) {
                        let delta = json!({
                            "type": "content_block_delta",
                            "index": index,
                            "delta": { "type": "input_json_delta", "partial_json": fragment },
                        });
                        push(next(), self.wrap_value(&delta), Kind::Tool);
                    }
                }
            } else {
                let mut message = Self::chat_message("", None);
                message["tool_calls"] = self.ollama_tool_calls();
                push(next(), self.wrap_value(&self.ollama_line(("message", message), false)), Kind::Tool);
            }
        }
        let end = self.last_at();
        match self.dialect {
            Dialect::OpenAiChat | Dialect::OpenAiCompletions => {
                let finish = if self.dialect == Dialect::OpenAiChat {
                    self.openai_chunk(json!({}), Some(self.finish_reason()))
                } else {
                    self.completions_chunk("", Some("length"))
                };
                push(end, self.wrap_value(&finish), Kind::Trailer);
                if self.include_usage {
                    let (id, object) = if self.dialect == Dialect::OpenAiChat {
                        ("chatcmpl-1", "chat.completion.chunk")
                    } else {
                        ("cmpl-1", "text_completion")
                    };
                    let v = json!({
                        "id": id,
                        "object": object,
                        "created": 0,
                        "model": self.s.model,
                        "choices": [],
                        "usage": self.usage(),
                    });
                    push(end, self.wrap_value(&v), Kind::Trailer);
                }
                if *self.fault != Fault::NoDoneMarker {
                    push(end, self.wrap(b"[DONE]"), Kind::Trailer);
                }
            }
            Dialect::LlamaCompletion => push(end, self.wrap_value(&self.llama_final("")), Kind::Trailer),
            Dialect::OllamaGenerate | Dialect::OllamaChat => {
                let mut v = if self.dialect == Dialect::OllamaGenerate {
                    self.ollama_line(("response", json!("")), true)
                } else {
                    self.ollama_line(("message", Self::chat_message("", None)), true)
                };
                self.ollama_stats(&mut v);
                push(end, self.wrap_value(&v), Kind::Trailer);
            }
            Dialect::AnthropicMessages => {
                let last = self.text_index() + if self.has_tool_calls() { self.s.tool_calls.len() } else { 0 };
                let delta = json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": self.stop_reason(), "stop_sequence": null },
                    "usage": { "output_tokens": self.completion_tokens() },
                });
                let mut trailer = vec![json!({ "type": "content_block_stop", "index": last }), delta];
                if *self.fault != Fault::NoDoneMarker {
                    trailer.push(json!({ "type": "message_stop" }));
                }
                for v in &trailer {
                    push(end, self.wrap_value(v), Kind::Trailer);
                }
            }
        }
        ev
    }

    /// The frame schedule: events packed `events_per_frame` at a time (or one byte per frame with
    /// [`Script::byte_frames`]), truncated by drop/reset/stall/end faults.
    fn steps(&self) -> Vec<Step> {
        let mut events = self.events();
        let cut_at = |events: &[Event], n: usize| {
            let pos = events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == Kind::Content)
                .nth(n)
                .map(|(i, _)| i)
                .or_else(|| events.iter().position(|e| e.kind == Kind::Trailer))
                .unwrap_or(events.len());
            let at = events.get(pos).map_or(self.last_at(), |e| e.at);
            (pos, at)
        };
        let tail = match *self.fault {
            Fault::DropAfter(n) | Fault::ResetAfter(n) => {
                let (pos, at) = cut_at(&events, n);
                events.truncate(pos);
                Some(Step::Fail(at))
            }
            Fault::StallAfter(n) => {
                let (pos, _) = cut_at(&events, n);
                events.truncate(pos);
                Some(Step::Stall)
            }
            Fault::EndAfter(n) => {
                let (pos, _) = cut_at(&events, n);
                events.truncate(pos);
                None
            }
            _ => None,
        };
        let per_frame = self.s.events_per_frame.max(1);
        let mut steps: Vec<Step> = events
            .chunks(per_frame)
            .map(|group| {
                let at = group.last().map_or(Duration::ZERO, |e| e.at);
                let data: Vec<u8> = group.iter().flat_map(|e| e.data.iter().copied()).collect();
                Step::Data(at, Bytes::from(data))
            })
            .collect();
        if self.s.byte_frames {
            steps = steps
                .into_iter()
                .flat_map(|step| match step {
                    Step::Data(at, bytes) => (0..bytes.len()).map(|i| Step::Data(at, bytes.slice(i..i + 1))).collect(),
                    other => vec![other],
                })
                .collect();
        }
        steps.extend(tail);
        steps
    }

    fn streaming_body(&self, start: Instant) -> Body {
        body_from_steps(start, self.steps(), self.s.byte_frames)
    }

    /// Single JSON answer (`"stream": false`), sent when the last message would have been due.
    async fn non_streaming(&self, start: Instant) -> Response {
        let content: String = self.words.concat();
        let reasoning: String = (0..self.reasoning).map(reasoning_text).collect();
        let content = match *self.fault {
            Fault::InvalidUtf8At(_) => format!("{content}{BAD_UTF8_MARKER}"),
            _ => content,
        };
        let value = match self.dialect {
            Dialect::OpenAiChat => {
                let mut message = json!({ "role": "assistant", "content": content });
                if self.reasoning > 0 {
                    message["reasoning_content"] = json!(reasoning);
                }
                if self.has_tool_calls() {
                    let calls: Vec<Value> = self
                        .s
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, (name, args))| {
                            json!({
                                "id": format!("call_{i}"),
                                "type": "function",
                                "function": { "name": name, "arguments": args },
                            })
                        })
                        .collect();
                    message["tool_calls"] = Value::Array(calls);
                }
                json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": self.s.model,
                    "choices": [{ "index": 0, "message": message, "finish_reason": self.finish_reason() }],
                    "usage": self.usage(),
                })
            }
            Dialect::OpenAiCompletions => json!({
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 0,
                "model": self.s.model,
                "choices": [{ "index": 0, "text": content, "finish_reason": "length" }],
                "usage": self.usage(),
            }),
            Dialect::LlamaCompletion => self.llama_final(&content),
            Dialect::OllamaGenerate | Dialect::OllamaChat => {
                let mut v = if self.dialect == Dialect::OllamaGenerate {
                    self.ollama_line(("response", json!(content)), true)
                } else {
                    let thinking = (self.reasoning > 0).then_some(reasoning.as_str());
                    let mut message = Self::chat_message(&content, thinking);
                    if self.has_tool_calls() {
                        message["tool_calls"] = self.ollama_tool_calls();
                    }
                    self.ollama_line(("message", message), true)
                };
                self.ollama_stats(&mut v);
                v
            }
            Dialect::AnthropicMessages => {
                let mut blocks = Vec::new();
                if self.reasoning > 0 {
                    blocks.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "fake-signature" }));
                }
                blocks.push(json!({ "type": "text", "text": content }));
                if self.has_tool_calls() {
                    for (i, (name, args)) in self.s.tool_calls.iter().enumerate() {
                        let input = parsed_arguments(args);
                        blocks.push(
                            json!({ "type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": input }),
                        );
                    }
                }
                json!({
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": self.s.model,
                    "content": blocks,
                    "stop_reason": self.stop_reason(),
                    "stop_sequence": null,
                    "usage": self.anthropic_usage(self.completion_tokens()),
                })
            }
        };
        let payload = match *self.fault {
            Fault::MalformedJsonAt(_) => MALFORMED_JSON.to_vec(),
            Fault::InvalidUtf8At(_) => inject_bad_utf8(value.to_string()),
            _ => value.to_string().into_bytes(),
        };
        let due = self.last_at();
        match *self.fault {
            Fault::DropAfter(_) | Fault::ResetAfter(_) | Fault::EndAfter(_) => {
                // Headers and half of the body at the due time, then an abort (a clean end for `EndAfter`).
                sleep_until(start + due).await;
                let half = Bytes::from(payload[..payload.len() / 2].to_vec());
                let mut steps = vec![Step::Data(due, half)];
                if !matches!(self.fault, Fault::EndAfter(_)) {
                    steps.push(Step::Fail(due));
                }
                raw_response(StatusCode::OK, JSON, body_from_steps(start, steps, false))
            }
            Fault::StallAfter(_) => {
                raw_response(StatusCode::OK, JSON, body_from_steps(start, vec![Step::Stall], false))
            }
            _ => {
                sleep_until(start + due).await;
                raw_response(StatusCode::OK, JSON, Body::from(payload))
            }
        }
    }
}

/// Replaces [`BAD_UTF8_MARKER`] (as serialized by serde_json) with the bytes `0xFF 0xFE`.
fn inject_bad_utf8(serialized: String) -> Vec<u8> {
    let marker = serde_json::to_string(BAD_UTF8_MARKER).expect("serialize marker");
    let marker = &marker[1..marker.len() - 1];
    let Some(pos) = serialized.find(marker) else {
        return serialized.into_bytes();
    };
    let mut out = serialized.as_bytes()[..pos].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&serialized.as_bytes()[pos + marker.len()..]);
    out
}

/// Body stream yielding one frame per [`Step::Data`] exactly at `start + at`; with `flush_each`, each frame
/// is written to the socket on its own (the stream is pending once before each, so hyper flushes).
fn body_from_steps(start: Instant, steps: Vec<Step>, flush_each: bool) -> Body {
    let stream = futures_util::stream::unfold(VecDeque::from(steps), move |mut queue| async move {
        let item = match queue.pop_front()? {
            Step::Data(at, bytes) => {
                sleep_until(start + at).await;
                if flush_each {
                    tokio::task::yield_now().await;
                }
                Ok(bytes)
            }
            Step::Fail(at) => {
                sleep_until(start + at).await;
                // Return `Pending` at least once so hyper flushes the frames already written
                // before it sees the error and aborts the connection.
                tokio::task::yield_now().await;
                queue.clear();
                Err(io::Error::other("fake server: connection dropped mid-stream"))
            }
            Step::Stall => {
                sleep(STALL).await;
                queue.clear();
                Err(io::Error::other("fake server: stalled stream gave up"))
            }
        };
        Some((item, queue))
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests;

mod tls;
pub use tls::TlsOptions;
