//! Executing one request: connect if needed, send, stamp headers and every body frame, decode, classify.
//!
//! Failures are data: whatever happens, the result is a [`RequestRecord`] with an error class, never a
//! panic or an early return that loses what was measured.

use crate::dialect::{DialectKind, GenRequest};
use crate::tokenize::TokenCounter;
use crate::transport::{Clock, ConnectError, Connection, Endpoint, OpenOptions, Phases};
use crate::wire::{Decoder, MAX_MESSAGE_BYTES};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};
use velollm_core::record::{
    Channel, Chunk, ConnectionInfo, ErrorClass, HttpProtocol, Nanos, RequestError, RequestRecord, Usage,
};
use velollm_core::scenario::ConnectionMode;

/// Request timeouts. Each one that fires fails the request with [`ErrorClass::Timeout`] and a message naming
/// it and the option that changes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Opening a connection (DNS + TCP + TLS + HTTP handshake): `--connect-timeout`.
    pub connect: Duration,
    /// From sending the request to its first output token (content, reasoning or tool call): the response
    /// headers and chunks without output (a role chunk, a ping) do not stop this clock, and no idle timeout
    /// applies before the first token, so a long prefill only needs this one raised: `--first-token-timeout`.
    pub first_token: Duration,
    /// After the first token, no data for this long between chunks: `--idle-timeout`.
    pub idle: Duration,
    /// The whole request, connection included: `--timeout`.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// The earlier of `deadline` and `d` from now (`deadline` when `d` is too large to add).
fn within(deadline: Instant, d: Duration) -> Instant {
    after(Instant::now(), d, deadline)
}

/// `d` after `from`, but no later than `deadline`.
fn after(from: Instant, d: Duration, deadline: Instant) -> Instant {
    from.checked_add(d).map_or(deadline, |t| t.min(deadline))
}

/// Everything a worker needs to send requests to one target.
pub struct Target {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// How they are written and read.
    pub dialect: DialectKind,
    /// API key, sent as `Authorization: Bearer …` (as `x-api-key` to Anthropic); never stored or printed.
    pub api_key: Option<Secret>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Local tokenizer for token counts when the server reports none.
    pub tokenizer: Option<Arc<TokenCounter>>,
    /// Keep the generated text in each record.
    pub keep_text: bool,
    /// The run's clock.
    pub clock: Clock,
    /// The longest stream message (SSE line or event, NDJSON line) accepted: a longer one fails the request
    /// as a parse error instead of being buffered without bound (default [`MAX_MESSAGE_BYTES`], 64 MiB).
    pub max_message_bytes: usize,
    /// While this is false the server is being restarted and no request is sent (see `health`).
    pub gate: Option<tokio::sync::watch::Receiver<bool>>,
    /// Abort a share of the requests mid-stream (`--cancel-share`).
    pub aborts: Option<Aborts>,
    next_conn: AtomicU64,
}

/// Requests the client aborts mid-stream on purpose, as agents do (`--cancel-share`, `--cancel-after`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aborts {
    /// The share of requests aborted, in `(0, 1]`; which ones is drawn from `seed` and the request's id.
    pub share: f64,
    /// How long after sending a chosen request is aborted; `None`: as soon as its first token arrives.
    pub after: Option<Duration>,
    /// The run's seed.
    pub seed: u64,
}

impl Aborts {
    /// Whether request `id` is one of those aborted.
    pub fn chosen(&self, id: u64) -> bool {
        // A uniform draw in [0, 1) per request from the seed and the id: the same requests in every run.
        let z = crate::prompts::mix(self.seed, id, crate::prompts::TAG_ABORT);
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.share
    }
}

impl Target {
    /// A target with default options.
    pub fn new(endpoint: Endpoint, dialect: DialectKind, clock: Clock) -> Target {
        Target {
            endpoint,
            dialect,
            api_key: None,
            timeouts: Timeouts::default(),
            tokenizer: None,
            keep_text: false,
            clock,
            max_message_bytes: MAX_MESSAGE_BYTES,
            gate: None,
            aborts: None,
            next_conn: AtomicU64::new(1),
        }
    }
}

impl Target {
    /// A target for control-plane requests (readiness, health, metrics): short timeouts, so a wedged server
    /// never holds up the watcher for long.
    pub fn control(endpoint: Endpoint) -> Target {
        let mut t = Target::new(endpoint, DialectKind::OpenAiChat, Clock::start());
        t.timeouts.connect = Duration::from_secs(2);
        t.timeouts.first_token = Duration::from_secs(5);
        t.timeouts.idle = Duration::from_secs(5);
        t
    }
}

/// An API key. Its `Debug` output is redacted so it cannot leak through logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a key.
    pub fn new(key: String) -> Secret {
        register_secret(&key);
        Secret(key)
    }

    /// `text` with every occurrence of the key replaced by `[REDACTED]` (a server may echo the key, e.g.
    /// the request's headers in an error body).
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.0.is_empty() || !text.contains(self.0.as_str()) {
            return std::borrow::Cow::Borrowed(text);
        }
        std::borrow::Cow::Owned(text.replace(self.0.as_str(), "[REDACTED]"))
    }
}

/// The secrets of this process (every [`Secret`], URL credentials), which [`redact_secrets`] removes.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remember `secret` (an API key, a password in a URL) so that [`redact_secrets`] removes it; empty ones are
/// ignored.
pub fn register_secret(secret: &str) {
    let mut all = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secret.is_empty() && !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
    }
}

/// `text` with every registered secret replaced by `[REDACTED]`: for what velollm prints or writes that may
/// repeat one (a --launch command that passes the key to the server, a server's error message).
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let all = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "[REDACTED]"));
        }
    }
    out
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

fn error(class: ErrorClass, message: impl Into<String>) -> RequestError {
    RequestError { class, message: message.into(), retry_after_s: None }
}

fn connect_error(e: &ConnectError) -> RequestError {
    error(ErrorClass::Connect, e.to_string())
}

/// Build the HTTP request for a generation.
pub fn http_request(
    target: &Target,
    method: hyper::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> hyper::Request<Bytes> {
    let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default())).unwrap_or_default();
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target.endpoint.path(path))
        .header(hyper::header::HOST, target.endpoint.authority())
        .header(hyper::header::USER_AGENT, concat!("velollm/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::ACCEPT, "*/*");
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if target.dialect == DialectKind::Anthropic {
        builder = builder.header("anthropic-version", crate::dialect::anthropic::API_VERSION);
    }
    match &target.api_key {
        // Anthropic takes the key in `x-api-key` only.
        Some(Secret(key)) if target.dialect == DialectKind::Anthropic => {
            builder = builder.header("x-api-key", key.as_str());
        }
        Some(Secret(key)) => {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
            if target.endpoint.is_https() || !key.is_empty() {
                builder = builder.header("x-api-key", key.as_str());
            }
        }
        None => {}
    }
    builder.body(bytes).expect("a valid request")
}

/// The connections of one step: its [`ConnectionMode`] and, for HTTP/2, the one connection every worker of
/// the step shares (a WebSocket session, like an HTTP/1.1 connection, belongs to one worker).
#[derive(Default)]
pub struct StepConnections {
    mode: ConnectionMode,
    shared: tokio::sync::Mutex<SharedH2>,
}

/// The step's HTTP/2 connection, once opened.
#[derive(Default)]
struct SharedH2 {
    conn: Option<Connection>,
    /// The server answered ALPN with `http/1.1`: every worker opens its own HTTP/1.1 connection instead.
    h1_only: bool,
}

impl StepConnections {
    /// The connections of a step in `mode`.
    pub fn new(mode: ConnectionMode) -> Arc<StepConnections> {
        Arc::new(StepConnections { mode, shared: Default::default() })
    }

    /// The step's mode.
    pub fn mode(&self) -> ConnectionMode {
        self.mode
    }

    /// A worker's slot in this step.
    pub fn slot(self: &Arc<Self>) -> Slot {
        Slot { conn: None, step: Some(self.clone()) }
    }

    fn open_options(&self) -> OpenOptions {
        OpenOptions { http2: self.mode == ConnectionMode::Http2, no_resume: self.mode == ConnectionMode::NewNoResume }
    }
}

/// The transports asked for on the command line: `--http2`, `--websocket`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transports {
    /// `--http2`.
    pub http2: bool,
    /// `--websocket`.
    pub websocket: bool,
}

/// Apply the target's scheme, `--http2` and `--websocket` to the steps' connection modes, before anything is
/// sent. Returns a note for every step skipped or changed:
///
/// * a scenario with `http2` steps runs them only with `--http2` (many servers, llama-server among them,
///   speak HTTP/1.1 only), the other steps keeping their modes; otherwise they are skipped;
/// * likewise `websocket` steps with `--websocket` (model servers offer no WebSocket session; `velollm proxy`
///   does);
/// * a scenario with neither runs every step over HTTP/2 with `--http2`, or over WebSocket sessions with
///   `--websocket` (both flags: WebSocket, and a note says `--http2` was not used);
/// * `new-no-resume` steps need https (plain http has no TLS handshake to repeat): skipped on http.
pub fn connection_plan(steps: &mut Vec<crate::runner::StepPlan>, https: bool, asked: Transports) -> Vec<String> {
    let mut notes = Vec::new();
    let has = |mode| steps.iter().any(|s| s.connection == mode);
    let (has_h2, has_ws) = (has(ConnectionMode::Http2), has(ConnectionMode::WebSocket));
    let every_step = if has_h2 || has_ws {
        None
    } else if asked.websocket {
        if asked.http2 {
            notes.push("--http2 not used: --websocket runs every step over WebSocket sessions".into());
        }
        Some((ConnectionMode::WebSocket, "--websocket: every step runs over one WebSocket session per worker"))
    } else if asked.http2 {
        Some((ConnectionMode::Http2, "--http2: every step shares one HTTP/2 connection among its workers"))
    } else {
        None
    };
    if let Some((mode, note)) = every_step {
        for s in steps.iter_mut() {
            s.connection = mode;
        }
        notes.push(note.into());
    }
    steps.retain(|s| {
        let why = match s.connection {
            ConnectionMode::Http2 if !asked.http2 => {
                "it needs HTTP/2, which many servers (llama-server among them) do not speak: add --http2 to run it"
            }
            ConnectionMode::WebSocket if !asked.websocket => {
                "it needs a server that offers WebSocket sessions (velollm proxy does; model servers do not): add \
                 --websocket to run it"
            }
            ConnectionMode::NewNoResume if !https => {
                "a full TLS handshake per request needs an https:// target (plain http has no TLS to resume or not)"
            }
            _ => return true,
        };
        notes.push(format!("step '{}' ({}) skipped: {why}", s.name, s.connection.as_str()));
        false
    });
    notes
}

/// A worker's connection slot: reused across requests while the server keeps it open (HTTP/1.1 keep-alive
/// by default; see [`StepConnections`] for the other modes).
#[derive(Default)]
pub struct Slot {
    conn: Option<Connection>,
    step: Option<Arc<StepConnections>>,
}

impl Slot {
    /// Get a usable connection, opening one if needed, and describe how it was obtained.
    async fn acquire(
        &mut self,
        target: &Target,
        deadline: Instant,
    ) -> Result<(&mut Connection, ConnectionInfo), RequestError> {
        if let Some(c) = self.conn.as_mut().filter(|c| c.is_usable()) {
            // A closed connection fails `ready` at once; an idle one becomes ready as soon as its connection
            // task has seen the end of the previous response, which can take a scheduler tick on a busy machine.
            if matches!(tokio::time::timeout(target.timeouts.connect, c.ready()).await, Ok(Ok(()))) {
                let info = reused_info(c);
                return Ok((self.conn.as_mut().expect("just checked"), info));
            }
        }
        self.conn = None;
        let connect_deadline = deadline.min(Instant::now() + target.timeouts.connect);
        let step = self.step.clone();
        let opts = step.as_ref().map(|s| s.open_options()).unwrap_or_default();
        if step.as_ref().is_some_and(|s| s.mode == ConnectionMode::WebSocket) {
            let (conn, info) = open_websocket(target, connect_deadline).await?;
            return Ok((self.conn.insert(conn), info));
        }
        if let Some(step) = step.filter(|_| opts.http2) {
            // One HTTP/2 connection for the whole step: the first worker opens it while the others wait.
            let Ok(mut shared) = timeout_at(connect_deadline, step.shared.lock()).await else {
                return Err(connect_timeout(target));
            };
            if !shared.h1_only {
                if let Some(c) = shared.conn.as_ref().filter(|c| c.is_usable()).and_then(Connection::share) {
                    let info = reused_info(&c);
                    return Ok((self.conn.insert(c), info));
                }
                let (conn, info) = open(target, connect_deadline, opts).await?;
                match conn.share() {
                    Some(handle) => shared.conn = Some(handle),
                    None => shared.h1_only = true,
                }
                return Ok((self.conn.insert(conn), info));
            }
        }
        let (conn, info) = open(target, connect_deadline, opts).await?;
        Ok((self.conn.insert(conn), info))
    }

    /// Drop the connection (after a failure that may leave it unusable).
    pub fn discard(&mut self) {
        self.conn = None;
    }
}

fn reused_info(c: &Connection) -> ConnectionInfo {
    ConnectionInfo { id: c.id, reused: true, protocol: Some(c.protocol()), ..Default::default() }
}

fn connect_timeout(target: &Target) -> RequestError {
    error(
        ErrorClass::Timeout,
        format!(
            "connect timeout: no connection to {} within {:?} (--connect-timeout)",
            target.endpoint.display(),
            target.timeouts.connect
        ),
    )
}

/// The timeout error of a wait that ended at a deadline: the total timeout when that is what passed, else
/// `phase` (which names its own timeout and option).
fn timed_out(target: &Target, deadline: Instant, phase: String) -> RequestError {
    let message = if Instant::now() >= deadline {
        format!("request exceeded the total timeout of {:?} (--timeout)", target.timeouts.total)
    } else {
        phase
    };
    error(ErrorClass::Timeout, message)
}

/// An error and its sources, `: `-joined (hyper's own message leaves out the cause, e.g. "connection reset").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Open a new connection for `target` before `deadline`.
async fn open(
    target: &Target,
    deadline: Instant,
    opts: OpenOptions,
) -> Result<(Connection, ConnectionInfo), RequestError> {
    let id = target.next_conn.fetch_add(1, Ordering::Relaxed);
    let opened = timeout_at(deadline, Connection::open_with(&target.endpoint, target.clock, id, opts)).await;
    connection_info(target, id, opened)
}

/// Open a WebSocket session for `target` before `deadline`, on its dialect's generation route.
async fn open_websocket(target: &Target, deadline: Instant) -> Result<(Connection, ConnectionInfo), RequestError> {
    let id = target.next_conn.fetch_add(1, Ordering::Relaxed);
    let upgrade = http_request(target, hyper::Method::GET, target.dialect.path(), None);
    let framing = target.dialect.framing();
    let opening = Connection::open_websocket(&target.endpoint, target.clock, id, upgrade, framing);
    connection_info(target, id, timeout_at(deadline, opening).await)
}

/// A connection just opened (or why not), with what its opening took.
fn connection_info(
    target: &Target,
    id: u64,
    opened: Result<Result<(Connection, Phases), ConnectError>, tokio::time::error::Elapsed>,
) -> Result<(Connection, ConnectionInfo), RequestError> {
    let (conn, phases) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(connect_error(&e)),
        Err(_) => return Err(connect_timeout(target)),
    };
    let info = ConnectionInfo {
        id,
        reused: false,
        dns_ns: Some(phases.dns_ns),
        connect_ns: Some(phases.connect_ns),
        tls_ns: phases.tls_ns,
        tls_resumed: phases.tls_resumed,
        upgrade_ns: phases.upgrade_ns,
        protocol: Some(phases.protocol),
    };
    Ok((conn, info))
}

/// Per-frame accumulation: events of one arrival merged per channel.
struct FrameChunks {
    chunks: Vec<Chunk>,
}

impl FrameChunks {
    fn add(&mut self, t: Nanos, channel: Channel, bytes: usize, tokens: Option<u32>) {
        match self.chunks.iter_mut().find(|c| c.channel == channel) {
            Some(c) => {
                c.events += 1;
                c.bytes += bytes as u32;
                c.tokens = match (c.tokens, tokens) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
            None => self.chunks.push(Chunk { t, channel, events: 1, tokens, bytes: bytes as u32 }),
        }
    }
}

/// Stream state of one response.
struct StreamState {
    done: bool,
    finish: Option<String>,
    usage: Option<Usage>,
    text: String,
    reasoning: String,
    tools: Vec<velollm_core::check::ToolCall>,
}

impl StreamState {
    fn tool_delta(&mut self, index: usize, name: Option<String>, args: &str) {
        if self.tools.len() <= index {
            self.tools.resize_with(index.min(64) + 1, Default::default);
        }
        if let Some(t) = self.tools.get_mut(index) {
            if let Some(n) = name {
                t.name = n;
            }
            t.arguments.push_str(args);
        }
    }
}

/// Execute one generation request on `slot`, scheduled at `scheduled`; never fails, always returns a record.
pub async fn execute(
    target: &Target,
    slot: &mut Slot,
    req: &GenRequest,
    mut record: RequestRecord,
    cancel: &tokio::sync::watch::Receiver<bool>,
) -> RequestRecord {
    record.max_tokens = Some(req.max_tokens);
    if let Some(tok) = &target.tokenizer {
        // The prompt as written, without the server's chat template.
        let system = req.system.as_deref().map_or(0, |s| tok.count(s));
        let context = req.context.as_deref().map_or(0, |c| tok.count(c));
        record.tokenizer_prompt_tokens = Some(system + context + tok.count(&req.prompt));
    }
    let mut cancel = cancel.clone();
    let deadline = Instant::now() + target.timeouts.total;
    let abort = target.aborts.filter(|a| !record.warmup && a.chosen(record.id));
    let fut = execute_inner(target, slot, req, &mut record, deadline, abort);
    let outcome = tokio::select! {
        r = fut => r,
        _ = cancel.wait_for(|c| *c) => Err(error(ErrorClass::Cancelled, "cancelled")),
    };
    if let Err(e) = outcome {
        if record.done.is_none() {
            record.done = Some(target.clock.now());
        }
        slot.discard();
        record.error = Some(e);
    }
    record
}

async fn execute_inner(
    target: &Target,
    slot: &mut Slot,
    req: &GenRequest,
    record: &mut RequestRecord,
    deadline: Instant,
    abort: Option<Aborts>,
) -> Result<(), RequestError> {
    let clock = target.clock;
    let dialect = target.dialect;
    let body = dialect.body(req);
    let first_token_phase = || {
        format!(
            "no first token within {:?} of sending the request (--first-token-timeout)",
            target.timeouts.first_token
        )
    };
    let mut attempt = 0;
    // The first-token clock starts when the request is sent, the connection open.
    let mut first_token;
    let (resp, sent) = loop {
        attempt += 1;
        let (conn, info) = slot.acquire(target, deadline).await?;
        let (reused, conn_protocol) = (info.reused, info.protocol);
        record.connection = Some(info);
        let http = http_request(target, hyper::Method::POST, dialect.path(), Some(&body));
        first_token = within(deadline, target.timeouts.first_token);
        match timeout_at(first_token, conn.send(http, clock)).await {
            Ok(Ok(x)) => break x,
            // A kept-alive connection the server closed while idle: retry once on a fresh one.
            Ok(Err(e)) if reused && attempt == 1 && e.is_stale_connection() => {
                slot.discard();
                continue;
            }
            Ok(Err(e)) => {
                record.sent = Some(clock.now());
                let hint = if !reused && !target.endpoint.is_https() && conn_protocol == Some(HttpProtocol::H2) {
                    " (the server may not speak HTTP/2 over plain http (h2c): run without --http2)"
                } else {
                    ""
                };
                let e = chain(&e);
                return Err(error(ErrorClass::StreamBroken, format!("request failed before a response: {e}{hint}")));
            }
            Err(_) => {
                let phase = format!(
                    "no response headers within {:?} of sending the request (--first-token-timeout)",
                    target.timeouts.first_token
                );
                return Err(timed_out(target, deadline, phase));
            }
        }
    };
    let Some(conn) = slot.conn.as_mut() else {
        return Err(error(ErrorClass::StreamBroken, "the connection went away before its response was read"));
    };
    // Chunks are stamped at their kernel arrival, when the socket has them (see `rxstamp`).
    let arrivals = conn.arrivals();
    record.sent = Some(sent);
    let headers = arrivals.stamp(clock.now()).max(sent);
    record.headers = Some(headers);
    // Stamps never run backwards (a stepped wall clock cannot reorder them).
    let mut last_stamp = headers;
    let status = resp.status;
    record.status = Some(status.as_u16());
    // A caching proxy's verdict (`velollm ab --b-proxies-a` counts only misses).
    record.proxy_cache = ["x-velollm-cache", "x-cache", "x-cache-status", "cf-cache-status"]
        .iter()
        .find_map(|h| resp.headers.get(*h)?.to_str().ok().map(|v| v.trim().to_string()));
    if !status.is_success() {
        let retry_after = resp
            .headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let text = read_error_body(conn, within(deadline, target.timeouts.idle)).await;
        record.done = Some(clock.now());
        let class = velollm_core::metrics::classify_status(status.as_u16());
        let hint = match status.as_u16() {
            401 | 403 => " (the server refused the credentials: pass the API key with --api-key-env VAR)",
            _ => "",
        };
        return Err(RequestError {
            class,
            message: format!("HTTP {}: {}{hint}", status.as_u16(), text),
            retry_after_s: retry_after,
        });
    }

    let mut decoder = Decoder::with_limit(dialect.framing(), target.max_message_bytes);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut st = StreamState {
        done: false,
        finish: None,
        usage: None,
        text: String::new(),
        reasoning: String::new(),
        tools: Vec::new(),
    };
    let mut ended = false;
    // Body bytes received: none at all is an empty answer, not a broken stream.
    let mut received = 0usize;
    let mut first_output = false;
    // Before the first token only the first-token clock runs; after it, the idle one between chunks. One
    // timer serves the whole response and is re-armed only when it fires early: a timer per chunk would
    // cost a timer-wheel insertion and removal (under a lock) for every chunk.
    let idle = target.timeouts.idle;
    let idle_due = |from: Instant| after(from, idle, deadline);
    let mut last_frame = Instant::now();
    let mut timer = std::pin::pin!(tokio::time::sleep_until(first_token));
    // A request chosen to be aborted at a time: cut then, whatever it has received.
    let abort_at = abort.and_then(|a| a.after).map(|after| clock.instant(sent) + after);
    let mut abort_timer = std::pin::pin!(crate::timer::sleep_until(abort_at.unwrap_or_else(|| clock.instant(sent))));
    let aborted = |record: &RequestRecord, t: Nanos| {
        error(
            ErrorClass::Aborted,
            format!(
                "aborted by the client after {:.1} ms and {} chunks (--cancel-share)",
                t.saturating_sub(sent) as f64 / 1e6,
                record.chunks.len()
            ),
        )
    };
    while !ended {
        let frame = tokio::select! {
            biased;
            () = &mut abort_timer, if abort_at.is_some() => {
                let t = clock.now();
                record.done = Some(t);
                return Err(aborted(record, t));
            }
            frame = conn.data() => Some(frame),
            () = &mut timer => None,
        };
        let frame = match frame {
            None => {
                let due = if first_output { idle_due(last_frame) } else { first_token };
                if Instant::now() < due {
                    timer.as_mut().reset(due);
                    continue;
                }
                let phase = if first_output {
                    format!("no data for {:?} while waiting for the next chunk (--idle-timeout)", target.timeouts.idle)
                } else {
                    first_token_phase()
                };
                return Err(timed_out(target, deadline, phase));
            }
            Some(Ok(None)) => {
                ended = true;
                None
            }
            Some(Err(e)) => {
                record.done = Some(clock.now());
                return Err(error(
                    ErrorClass::StreamBroken,
                    format!("stream broke after {} chunks: {}", record.chunks.len(), chain(&e)),
                ));
            }
            Some(Ok(Some(data))) => Some(data),
        };
        last_frame = Instant::now();
        let t = arrivals.stamp(clock.now()).max(last_stamp);
        last_stamp = t;
        messages.clear();
        let decoded = match frame {
            Some(data) => {
                received += data.len();
                decoder.push(data, &mut messages)
            }
            None => {
                messages.extend(decoder.finish());
                Ok(())
            }
        };
        if let Err(e) = decoded {
            record.done = Some(t);
            return Err(error(ErrorClass::ParseError, format!("{e} (after {} chunks)", record.chunks.len())));
        }
        if messages.is_empty() {
            if ended {
                record.done = Some(t);
            }
            continue;
        }
        let mut frame_chunks = FrameChunks { chunks: Vec::new() };
        // An event whose data is blank (`data:` alone) carries nothing: a keep-alive, not a malformed chunk.
        for m in messages.iter().filter(|m| !m.trim_ascii().is_empty()) {
            let p = dialect.parse(m).map_err(|e| {
                record.done = Some(t);
                error(ErrorClass::ParseError, e)
            })?;
            if let Some(e) = p.error {
                record.done = Some(t);
                return Err(error(ErrorClass::Http5xx, format!("server error in stream: {e}")));
            }
            if p.pieces.iter().all(|(c, _)| !c.is_output()) {
                frame_chunks.add(t, p.empty_channel(), 0, None);
            }
            for (channel, text) in &p.pieces {
                if channel.is_output() {
                    frame_chunks.add(t, *channel, text.len(), p.tokens);
                    // The answer is what conversations carry and checks judge; reasoning only counts as output.
                    match channel {
                        Channel::Content => st.text.push_str(text),
                        Channel::Reasoning => st.reasoning.push_str(text),
                        _ => {}
                    }
                }
            }
            for (index, name, args) in p.tool_deltas {
                st.tool_delta(index, name, &args);
            }
            if let Some(u) = p.usage {
                st.usage = Some(merge_usage(st.usage.take(), u));
            }
            if let Some(n) = p.native {
                record.native = Some(n);
            }
            if p.finish_reason.is_some() {
                st.finish = p.finish_reason;
            }
            st.done |= p.done;
        }
        if !first_output && frame_chunks.chunks.iter().any(|c| c.channel.is_output()) {
            first_output = true;
            timer.as_mut().reset(idle_due(last_frame));
        }
        record.chunks.extend(frame_chunks.chunks);
        if first_output && abort.is_some_and(|a| a.after.is_none()) && !st.done {
            record.done = Some(t);
            return Err(aborted(record, t));
        }
        if st.done {
            record.done = Some(t);
            conn.finish();
            // Drain what is left (normally nothing) so the connection can be reused.
            let _ = timeout_at(deadline.min(Instant::now() + Duration::from_millis(200)), drain(conn)).await;
            break;
        }
        if ended {
            record.done = Some(t);
        }
    }
    record.usage = st.usage;
    record.finish_reason = st.finish;
    if let Some(tok) = &target.tokenizer {
        record.tokenizer_output_tokens = Some(tok.count(&st.reasoning) + tok.count(&st.text));
    }
    record.tool_calls = st.tools.into_iter().filter(|t| !t.name.is_empty() || !t.arguments.is_empty()).collect();
    // The text is always returned: conversations and checks need it. The runner drops it from the record
    // unless `keep_text` is set.
    record.text = Some(st.text);
    if received == 0 {
        return Err(error(
            ErrorClass::EmptyOutput,
            format!("HTTP {} with an empty body: the server sent no stream", status.as_u16()),
        ));
    }
    if !st.done && record.finish_reason.is_none() {
        return Err(error(
            ErrorClass::StreamBroken,
            format!("stream ended after {} chunks before the server said it was done", record.chunks.len()),
        ));
    }
    if record.output_chunks().next().is_none() {
        return Err(error(ErrorClass::EmptyOutput, "the server answered but generated no output"));
    }
    Ok(())
}

/// Usage reported in several messages (Anthropic `message_start` then `message_delta`), merged field by field:
/// a later value wins, a field the later message leaves out keeps its earlier value.
fn merge_usage(earlier: Option<Usage>, later: Usage) -> Usage {
    let Some(e) = earlier else {
        return later;
    };
    Usage {
        prompt_tokens: later.prompt_tokens.or(e.prompt_tokens),
        completion_tokens: later.completion_tokens.or(e.completion_tokens),
        cached_tokens: later.cached_tokens.or(e.cached_tokens),
        cache_write_tokens: later.cache_write_tokens.or(e.cache_write_tokens),
        reasoning_tokens: later.reasoning_tokens.or(e.reasoning_tokens),
    }
}

/// Read the rest of a response body, so that its connection can carry the next request.
async fn drain(conn: &mut Connection) {
    while let Ok(Some(_)) = conn.data().await {}
}

async fn read_error_body(conn: &mut Connection, deadline: Instant) -> String {
    let mut buf = Vec::new();
    while buf.len() < 4096 {
        match timeout_at(deadline, conn.data()).await {
            Ok(Ok(Some(d))) => buf.extend_from_slice(d),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&buf[..buf.len().min(4096)]).trim().to_string();
    // Prefer the server's own error message when the body is JSON.
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| match v.get("error") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(e) => e.get("message").and_then(|m| m.as_str()).map(str::to_string),
            None => None,
        })
        .unwrap_or(if text.is_empty() { "(empty body)".to_string() } else { text })
}

/// A simple GET returning the status and body, used by the probe. Opens its own connection.
pub async fn get(target: &Target, path: &str) -> Result<(u16, Vec<u8>), RequestError> {
    request(target, hyper::Method::GET, path, None).await
}

/// A non-streaming JSON request (e.g. Ollama's unload), returning the status and body.
pub async fn send_json(
    target: &Target,
    method: hyper::Method,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, Vec<u8>), RequestError> {
    request(target, method, path, Some(body)).await
}

async fn request(
    target: &Target,
    method: hyper::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, Vec<u8>), RequestError> {
    let deadline = Instant::now() + target.timeouts.connect + target.timeouts.idle;
    let mut slot = Slot::default();
    let (conn, _) = slot.acquire(target, deadline).await?;
    let req = http_request(target, method, path, body);
    let (resp, _) = match timeout_at(deadline, conn.send(req, target.clock)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(error(ErrorClass::StreamBroken, e.to_string())),
        Err(_) => return Err(error(ErrorClass::Timeout, format!("{path} timed out"))),
    };
    let status = resp.status.as_u16();
    let mut buf = Vec::new();
    while buf.len() < 4 << 20 {
        match timeout_at(deadline, conn.data()).await {
            Ok(Ok(Some(d))) => buf.extend_from_slice(d),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(error(ErrorClass::StreamBroken, e.to_string())),
            Err(_) => return Err(error(ErrorClass::Timeout, format!("{path} timed out"))),
        }
    }
    Ok((status, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dialect: DialectKind) -> Target {
        let mut t = Target::new(Endpoint::parse("http://127.0.0.1:9").unwrap(), dialect, Clock::start());
        t.api_key = Some(Secret::new("k-123".into()));
        t
    }

    #[test]
    fn the_key_header_depends_on_the_dialect() {
        let r = http_request(&target(DialectKind::Anthropic), hyper::Method::POST, "/v1/messages", None);
        let h = r.headers();
        assert_eq!(h["x-api-key"].to_str().unwrap(), "k-123");
        assert_eq!(h["anthropic-version"].to_str().unwrap(), "2023-06-01");
        assert!(h.get(hyper::header::AUTHORIZATION).is_none());
        let r = http_request(&target(DialectKind::OpenAiChat), hyper::Method::POST, "/v1/chat/completions", None);
        assert_eq!(r.headers()[hyper::header::AUTHORIZATION].to_str().unwrap(), "Bearer k-123");
        assert!(r.headers().get("anthropic-version").is_none());
    }

    #[test]
    fn aborts_choose_their_share_of_requests_the_same_way_every_run() {
        let a = Aborts { share: 0.2, after: None, seed: 42 };
        let chosen: Vec<u64> = (0..10_000).filter(|&id| a.chosen(id)).collect();
        assert!((1_800..2_200).contains(&chosen.len()), "{}", chosen.len());
        assert_eq!(chosen, (0..10_000).filter(|&id| a.chosen(id)).collect::<Vec<_>>());
        assert!((0..1_000).all(|id| Aborts { share: 1.0, ..a }.chosen(id)));
        let other_seed = Aborts { seed: 7, ..a };
        assert_ne!(chosen, (0..10_000).filter(|&id| other_seed.chosen(id)).collect::<Vec<_>>());
    }

    #[test]
    fn usage_merges_field_by_field() {
        let start =
            Usage { prompt_tokens: Some(30), cached_tokens: Some(20), completion_tokens: Some(1), ..Usage::default() };
        let delta = Usage { completion_tokens: Some(15), ..Usage::default() };
        let merged = merge_usage(Some(start), delta);
        let counts = (merged.prompt_tokens, merged.cached_tokens, merged.completion_tokens);
        assert_eq!(counts, (Some(30), Some(20), Some(15)));
    }

    #[test]
    fn connection_plan_skips_and_switches_steps() {
        use crate::runner::StepPlan;
        use velollm_core::load::{Bounds, LoadProfile};
        let step = |name: &str, mode| {
            let w = velollm_core::scenario::Workload::Prompts(vec!["hi".into()]);
            let mut s = StepPlan::simple(name, w, 1, LoadProfile::Sequential, Bounds::default());
            s.connection = mode;
            s
        };
        let modes = |steps: &[StepPlan]| steps.iter().map(|s| (s.name.clone(), s.connection)).collect::<Vec<_>>();
        use ConnectionMode::*;
        let scenario = || {
            vec![step("k", KeepAlive), step("n", New), step("f", NewNoResume), step("h", Http2), step("w", WebSocket)]
        };
        let none = Transports::default();
        let h2 = Transports { http2: true, websocket: false };
        let ws = Transports { http2: false, websocket: true };
        // Plain http with neither flag: the full-TLS, HTTP/2 and WebSocket steps are skipped, each with its reason.
        let mut steps = scenario();
        let notes = connection_plan(&mut steps, false, none);
        assert_eq!(modes(&steps), [("k".into(), KeepAlive), ("n".into(), New)]);
        assert!(notes[0].contains("step 'f' (new-no-resume) skipped") && notes[0].contains("https://"), "{notes:?}");
        assert!(notes[1].contains("step 'h' (http2) skipped") && notes[1].contains("add --http2"), "{notes:?}");
        assert!(notes[2].contains("step 'w' (websocket) skipped") && notes[2].contains("add --websocket"), "{notes:?}");
        // https with both flags: everything runs, the modes as written.
        let mut steps = scenario();
        assert!(connection_plan(&mut steps, true, Transports { http2: true, websocket: true }).is_empty());
        assert_eq!(modes(&steps).len(), 5);
        // --http2 (or --websocket) on a scenario without such a step: every step over it.
        let mut steps = vec![step("a", KeepAlive), step("b", New)];
        let notes = connection_plan(&mut steps, false, h2);
        assert_eq!(modes(&steps), [("a".into(), Http2), ("b".into(), Http2)]);
        assert_eq!(notes.len(), 1);
        let mut steps = vec![step("a", KeepAlive)];
        let notes = connection_plan(&mut steps, false, ws);
        assert_eq!((modes(&steps), notes.len()), (vec![("a".into(), WebSocket)], 1));
        assert_eq!(notes.len(), 1);
    }
}
