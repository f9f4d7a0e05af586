//! Executing one request: connect if needed, send, stamp headers and every body frame, decode, classify.
//!
//! Failures are data: whatever happens, the result is a [`RequestRecord`] with an error class, never a
//! panic or an early return that loses what was measured.

use crate::dialect::{DialectKind, GenRequest};
use crate::h1::Head;
use crate::pool::Slot;
use crate::request::http_request;
use crate::rxstamp::Arrivals;
use crate::target::{Aborts, Target};
use crate::transport::Connection;
use crate::wire::Decoder;
use std::time::Duration;
use tokio::time::{Instant, timeout_at};
use velollm_core::measure::record::{
    Channel, Chunk, ErrorClass, HttpProtocol, Nanos, RequestError, RequestRecord, Usage,
};

fn within(deadline: Instant, d: Duration) -> Instant {
    after(Instant::now(), d, deadline)
}

/// `d` after `from`, but no later than `deadline`.
fn after(from: Instant, d: Duration, deadline: Instant) -> Instant {
    from.checked_add(d).map_or(deadline, |t| t.min(deadline))
}

/// The timeout error of a wait that ended at a deadline: the total timeout when that is what passed, else
/// `phase` (which names its own timeout and option).
fn timed_out(target: &Target, deadline: Instant, phase: String) -> RequestError {
    let message = if Instant::now() >= deadline {
        format!("request exceeded the total timeout of {:?} (--timeout)", target.timeouts.total)
    } else {
        phase
    };
    RequestError::new(ErrorClass::Timeout, message)
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
    tools: Vec<velollm_core::measure::check::ToolCall>,
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
        _ = cancel.wait_for(|c| *c) => Err(RequestError::new(ErrorClass::Cancelled, "cancelled")),
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
    let body = target.dialect.body(req);
    let (head, sent, first_token) = send(target, slot, &body, record, deadline).await?;
    let Some(conn) = slot.connection() else {
        return Err(RequestError::new(
            ErrorClass::StreamBroken,
            "the connection went away before its response was read",
        ));
    };
    // Chunks are stamped at their kernel arrival, when the socket has them (see `rxstamp`).
    let arrivals = conn.arrivals();
    record.sent = Some(sent);
    let headers = arrivals.stamp(target.clock.now()).max(sent);
    record.headers = Some(headers);
    let status = head.status;
    check_status(target, conn, &head, record, deadline).await?;
    let stream = Stream { sent, headers, first_token, deadline, abort };
    let (st, received) = read_stream(target, conn, &arrivals, record, stream).await?;
    finish(target, record, st, received, status.as_u16())
}

/// Connect (or reuse the slot's connection) and send the request; a kept-alive connection the server closed
/// while idle is retried once on a fresh one. Returns the response head, when the request was sent, and the
/// first-token deadline (its clock starts when the request is sent, the connection open).
async fn send(
    target: &Target,
    slot: &mut Slot,
    body: &serde_json::Value,
    record: &mut RequestRecord,
    deadline: Instant,
) -> Result<(Head, Nanos, Instant), RequestError> {
    let clock = target.clock;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (conn, info) = slot.acquire(target, deadline).await?;
        let (reused, conn_protocol) = (info.reused, info.protocol);
        record.connection = Some(info);
        let http = http_request(target, hyper::Method::POST, target.dialect.path(), Some(body));
        let first_token = within(deadline, target.timeouts.first_token);
        match timeout_at(first_token, conn.send(http, clock)).await {
            Ok(Ok((head, sent))) => return Ok((head, sent, first_token)),
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
                return Err(RequestError::new(
                    ErrorClass::StreamBroken,
                    format!("request failed before a response: {e}{hint}"),
                ));
            }
            Err(_) => {
                let phase = format!(
                    "no response headers within {:?} of sending the request (--first-token-timeout)",
                    target.timeouts.first_token
                );
                return Err(timed_out(target, deadline, phase));
            }
        }
    }
}

/// The response head: its status and a caching proxy's verdict recorded; an error status read (with its body
/// and `Retry-After`) and returned as the request's error.
async fn check_status(
    target: &Target,
    conn: &mut Connection,
    head: &Head,
    record: &mut RequestRecord,
    deadline: Instant,
) -> Result<(), RequestError> {
    let status = head.status;
    record.status = Some(status.as_u16());
    // A caching proxy's verdict (`velollm ab --b-proxies-a` counts only misses).
    let named = target.cache_header.as_ref().and_then(|h| head.headers.get(h));
    record.proxy_cache = named
        .into_iter()
        .chain(
            ["x-velollm-cache", "x-cache", "x-cache-status", "cf-cache-status"]
                .iter()
                .filter_map(|h| head.headers.get(*h)),
        )
        .find_map(|v| v.to_str().ok().map(|v| v.trim().to_string()));
    // A hedging proxy's race (extra requests and their prompt tokens are counted per step).
    record.proxy_hedge =
        head.headers.get("x-velollm-hedge").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    if status.is_success() {
        return Ok(());
    }
    let retry_after = head
        .headers
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let text = read_error_body(conn, within(deadline, target.timeouts.idle)).await;
    record.done = Some(target.clock.now());
    let class = velollm_core::measure::metrics::classify_status(status.as_u16());
    let hint = match status.as_u16() {
        401 | 403 => " (the server refused the credentials: pass the API key with --api-key-env VAR)",
        _ => "",
    };
    Err(RequestError {
        class,
        message: format!("HTTP {}: {}{hint}", status.as_u16(), text),
        retry_after_s: retry_after,
    })
}

/// The instants a response is read against.
struct Stream {
    /// When the request was sent.
    sent: Nanos,
    /// When its response head arrived: no chunk is stamped earlier.
    headers: Nanos,
    /// The first-token deadline.
    first_token: Instant,
    /// The whole request's deadline.
    deadline: Instant,
    /// Whether and when this request is aborted on purpose.
    abort: Option<Aborts>,
}

/// Read the body frame by frame until the dialect's end (or the stream's): every frame stamped at its
/// arrival, its messages decoded into chunks; the first-token, idle and total timeouts, and a chosen abort,
/// enforced. Returns what the messages said and how many body bytes came.
async fn read_stream(
    target: &Target,
    conn: &mut Connection,
    arrivals: &Arrivals,
    record: &mut RequestRecord,
    stream: Stream,
) -> Result<(StreamState, usize), RequestError> {
    let Stream { sent, headers, first_token, deadline, abort } = stream;
    let clock = target.clock;
    let dialect = target.dialect;
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
    // Stamps never run backwards (a stepped wall clock cannot reorder them).
    let mut last_stamp = headers;
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
        RequestError::new(
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
                    format!(
                        "no first token within {:?} of sending the request (--first-token-timeout)",
                        target.timeouts.first_token
                    )
                };
                return Err(timed_out(target, deadline, phase));
            }
            Some(Ok(None)) => {
                ended = true;
                None
            }
            Some(Err(e)) => {
                record.done = Some(clock.now());
                return Err(RequestError::new(
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
            return Err(RequestError::new(
                ErrorClass::ParseError,
                format!("{e} (after {} chunks)", record.chunks.len()),
            ));
        }
        if messages.is_empty() {
            if ended {
                record.done = Some(t);
            }
            continue;
        }
        let frame_chunks = parse_messages(dialect, &messages, t, &mut st, record)?;
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
    Ok((st, received))
}

/// The messages one frame completed, arrived at `t`: their output merged into chunks per channel, the text,
/// reasoning, tool calls, usage, native timings and finish reason added to the stream's state.
fn parse_messages(
    dialect: DialectKind,
    messages: &[Vec<u8>],
    t: Nanos,
    st: &mut StreamState,
    record: &mut RequestRecord,
) -> Result<FrameChunks, RequestError> {
    let mut frame_chunks = FrameChunks { chunks: Vec::new() };
    // An event whose data is blank (`data:` alone) carries nothing: a keep-alive, not a malformed chunk.
    for m in messages.iter().filter(|m| !m.trim_ascii().is_empty()) {
        let p = dialect.parse(m).map_err(|e| {
            record.done = Some(t);
            RequestError::new(ErrorClass::ParseError, e)
        })?;
        if let Some(e) = p.error {
            record.done = Some(t);
            return Err(RequestError::new(ErrorClass::Http5xx, format!("server error in stream: {e}")));
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
    Ok(frame_chunks)
}

/// What the stream said, into the record: usage, finish reason, local token count, tool calls, the text; and
/// whether the answer is complete (a body, an end, some output).
fn finish(
    target: &Target,
    record: &mut RequestRecord,
    st: StreamState,
    received: usize,
    status: u16,
) -> Result<(), RequestError> {
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
        return Err(RequestError::new(
            ErrorClass::EmptyOutput,
            format!("HTTP {status} with an empty body: the server sent no stream"),
        ));
    }
    if !st.done && record.finish_reason.is_none() {
        return Err(RequestError::new(
            ErrorClass::StreamBroken,
            format!("stream ended after {} chunks before the server said it was done", record.chunks.len()),
        ));
    }
    if record.output_chunks().next().is_none() {
        return Err(RequestError::new(ErrorClass::EmptyOutput, "the server answered but generated no output"));
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
        Ok(Err(e)) => return Err(RequestError::new(ErrorClass::StreamBroken, e.to_string())),
        Err(_) => return Err(RequestError::new(ErrorClass::Timeout, format!("{path} timed out"))),
    };
    let status = resp.status.as_u16();
    let mut buf = Vec::new();
    while buf.len() < 4 << 20 {
        match timeout_at(deadline, conn.data()).await {
            Ok(Ok(Some(d))) => buf.extend_from_slice(d),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(RequestError::new(ErrorClass::StreamBroken, e.to_string())),
            Err(_) => return Err(RequestError::new(ErrorClass::Timeout, format!("{path} timed out"))),
        }
    }
    Ok((status, buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_merges_field_by_field() {
        let start =
            Usage { prompt_tokens: Some(30), cached_tokens: Some(20), completion_tokens: Some(1), ..Usage::default() };
        let delta = Usage { completion_tokens: Some(15), ..Usage::default() };
        let merged = merge_usage(Some(start), delta);
        let counts = (merged.prompt_tokens, merged.cached_tokens, merged.completion_tokens);
        assert_eq!(counts, (Some(30), Some(20), Some(15)));
    }
}
