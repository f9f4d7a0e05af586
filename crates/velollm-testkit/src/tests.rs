use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::*;

/// A response read by the minimal HTTP/1.1 test client.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    /// `(arrival time since the request was written, data)` of every body chunk (chunked encoding)
    /// or the whole body as a single entry (content-length / EOF-delimited).
    chunks: Vec<(Duration, Vec<u8>)>,
    /// Whether the body ended properly (terminating chunk, or content-length reached).
    complete: bool,
    /// Time the response head was fully received.
    head_at: Duration,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, c)| c.iter().copied()).collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).expect("JSON body")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn addr(server: &FakeServer) -> String {
    server.url().trim_start_matches("http://").to_owned()
}

/// Sends one request with `Connection: close` and reads the response, timestamping each chunk.
/// Gives up (returning what was read, `complete == false`) after `limit`.
async fn send(server: &FakeServer, method: &str, path: &str, body: Option<&Value>, limit: Duration) -> Resp {
    send_with(server, method, path, body, &[], limit).await
}

/// [`send`] with extra request headers.
async fn send_with(
    server: &FakeServer,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Resp {
    let mut stream = TcpStream::connect(addr(server)).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", addr(server));
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let t0 = Instant::now();
    stream.write_all(req.as_bytes()).await.expect("write request");
    let deadline = t0 + limit;

    let mut buf: Vec<u8> = Vec::new();
    let mut eof = false;
    // Reads more data; returns false on EOF, error or deadline.
    async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> bool {
        let mut tmp = [0u8; 16384];
        match tokio::time::timeout_at(deadline, stream.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => false,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        assert!(fill(&mut stream, &mut buf, deadline).await, "connection ended before the response head");
    };
    let head_at = t0.elapsed();
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("ASCII head");
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());

    let mut chunks = Vec::new();
    let mut complete = false;
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        'outer: loop {
            // Parse as many complete chunks as buffered.
            while let Some(line_end) = find(&buf, b"\r\n") {
                let size_line = std::str::from_utf8(&buf[..line_end]).unwrap();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
                if buf.len() < line_end + 2 + size + 2 {
                    break;
                }
                if size == 0 {
                    complete = true;
                    break 'outer;
                }
                chunks.push((t0.elapsed(), buf[line_end + 2..line_end + 2 + size].to_vec()));
                buf.drain(..line_end + 2 + size + 2);
            }
            if eof || !fill(&mut stream, &mut buf, deadline).await {
                eof = true;
                if find(&buf, b"\r\n").is_none() {
                    break;
                }
            }
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            if !fill(&mut stream, &mut buf, deadline).await {
                break;
            }
        }
        complete = buf.len() >= len;
        chunks.push((t0.elapsed(), buf.clone()));
    } else {
        while fill(&mut stream, &mut buf, deadline).await {}
        chunks.push((t0.elapsed(), buf.clone()));
    }
    Resp { status, headers, chunks, complete, head_at }
}

async fn post(server: &FakeServer, path: &str, body: Value) -> Resp {
    send(server, "POST", path, Some(&body), Duration::from_secs(5)).await
}

async fn get_path(server: &FakeServer, path: &str) -> Resp {
    send(server, "GET", path, None, Duration::from_secs(5)).await
}

/// Payloads of the SSE events in one frame.
fn sse_events(frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = frame;
    while let Some(end) = find(rest, b"\n\n") {
        let ev = &rest[..end];
        out.push(ev.strip_prefix(b"data: ").expect("data: prefix").to_vec());
        rest = &rest[end + 2..];
    }
    assert!(rest.is_empty(), "trailing bytes in SSE frame: {:?}", String::from_utf8_lossy(rest));
    out
}

fn sse_json(frame: &[u8]) -> Value {
    let evs = sse_events(frame);
    assert_eq!(evs.len(), 1, "expected exactly one event per frame");
    serde_json::from_slice(&evs[0]).expect("event JSON")
}

fn ndjson_lines(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn openai_chat_stream_events_usage_and_timing() {
    let script =
        Script { ttft: ms(50), itl: ms(10), tokens: 4, prompt_tokens: 12, cached_tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let req = json!({
        "model": "fake-model",
        "messages": [{ "role": "user", "content": "hi" }],
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let resp = post(&server, "/v1/chat/completions", req.clone()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    // role + 4 content + finish + usage + [DONE], each in its own frame.
    assert_eq!(resp.chunks.len(), 8, "{:?}", resp.chunks);

    let role = sse_json(&resp.chunks[0].1);
    assert_eq!(role["choices"][0]["delta"], json!({ "role": "assistant", "content": "" }));
    assert!(resp.chunks[0].0 < ms(40), "role chunk must come with the headers");

    for i in 0..4 {
        let (at, frame) = &resp.chunks[1 + i];
        let v = sse_json(frame);
        assert_eq!(v["object"], "chat.completion.chunk");
        assert_eq!(v["model"], "fake-model");
        assert_eq!(v["choices"][0]["delta"]["content"], format!("tok{i} "));
        assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
        let due = ms(50) + ms(10) * i as u32;
        assert!(*at >= due, "content chunk {i} arrived at {at:?}, before {due:?}");
        assert!(*at < due + ms(40), "content chunk {i} arrived late at {at:?}");
    }
    let finish = sse_json(&resp.chunks[5].1);
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage = sse_json(&resp.chunks[6].1);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({ "prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16,
                "prompt_tokens_details": { "cached_tokens": 3 } })
    );
    assert_eq!(sse_events(&resp.chunks[7].1), vec![b"[DONE]".to_vec()]);

    assert_eq!(server.request_count(), 1);
    assert_eq!(server.requests(), vec![("/v1/chat/completions".to_owned(), req)]);
}

#[tokio::test]
async fn openai_chat_without_usage_with_reasoning_and_no_role() {
    let script =
        Script { ttft: ms(20), itl: ms(5), tokens: 2, reasoning_tokens: 2, role_chunk: false, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/chat/completions", json!({ "stream": true })).await;
    let events: Vec<Value> = resp.chunks.iter().map(|(_, f)| sse_events(f)).flatten_frames();
    // r0, r1, tok0, tok1, finish, [DONE]
    assert_eq!(events.len(), 6);
    assert_eq!(events[0]["choices"][0]["delta"]["reasoning_content"], "r0 ");
    assert_eq!(events[1]["choices"][0]["delta"]["reasoning_content"], "r1 ");
    assert_eq!(events[2]["choices"][0]["delta"]["content"], "tok0 ");
    assert_eq!(events[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[5], json!("[DONE]"));
    assert!(resp.chunks[0].0 >= ms(20));
    assert!(resp.chunks[2].0 >= ms(30));
}

trait FlattenFrames {
    fn flatten_frames(self) -> Vec<Value>;
}

impl<I: Iterator<Item = Vec<Vec<u8>>>> FlattenFrames for I {
    fn flatten_frames(self) -> Vec<Value> {
        self.flatten()
            .map(|e| if e == b"[DONE]" { json!("[DONE]") } else { serde_json::from_slice(&e).unwrap() })
            .collect()
    }
}

#[tokio::test]
async fn openai_completions_and_tokens_per_chunk() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 5, tokens_per_chunk: 2, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let req =
        json!({ "model": "fake-model", "prompt": "x", "stream": true, "stream_options": { "include_usage": true } });
    let resp = post(&server, "/v1/completions", req).await;
    let events: Vec<Value> = resp.chunks.iter().map(|(_, f)| sse_events(f)).flatten_frames();
    let texts: Vec<&str> = events[..3].iter().map(|e| e["choices"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["tok0 tok1 ", "tok2 tok3 ", "tok4 "]);
    assert_eq!(events[0]["object"], "text_completion");
    assert_eq!(events[3]["choices"][0]["text"], "");
    assert_eq!(events[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[4]["usage"]["completion_tokens"], 5);
    assert_eq!(events[4]["choices"], json!([]));
    assert_eq!(events[5], json!("[DONE]"));
    assert_eq!(events.len(), 6);
}

#[tokio::test]
async fn ollama_generate_final_line_has_ns_durations() {
    let script = Script { ttft: ms(20), itl: ms(5), tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::Ollama, script).await;
    let resp = post(&server, "/api/generate", json!({ "model": "fake-model", "prompt": "hi" })).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    assert!(resp.complete);
    assert_eq!(resp.chunks.len(), 4, "one frame per line");
    let lines = ndjson_lines(&resp.body());
    for (i, line) in lines[..3].iter().enumerate() {
        assert_eq!(
            *line,
            json!({ "model": "fake-model", "created_at": "2026-01-01T00:00:00Z", "response": format!("tok{i} "), "done": false })
        );
    }
    assert_eq!(
        lines[3],
        json!({
            "model": "fake-model",
            "created_at": "2026-01-01T00:00:00Z",
            "response": "",
            "done": true,
            "done_reason": "length",
            "total_duration": 30_000_000u64,
            "load_duration": 1_000_000u64,
            "prompt_eval_count": 12,
            "prompt_eval_duration": 20_000_000u64,
            "eval_count": 3,
            "eval_duration": 10_000_000u64,
        })
    );
}

#[tokio::test]
async fn ollama_chat_thinking_and_non_streaming() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 2, reasoning_tokens: 1, ..Script::default() };
    let server = FakeServer::start(Flavor::Ollama, script).await;
    let resp = post(&server, "/api/chat", json!({ "model": "fake-model", "messages": [] })).await;
    let lines = ndjson_lines(&resp.body());
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["message"], json!({ "role": "assistant", "content": "", "thinking": "r0 " }));
    assert_eq!(lines[1]["message"], json!({ "role": "assistant", "content": "tok0 " }));
    assert_eq!(lines[3]["message"], json!({ "role": "assistant", "content": "" }));
    assert_eq!(lines[3]["done"], true);
    assert_eq!(lines[3]["eval_count"], 3);
    assert_eq!(lines[3]["eval_duration"], 10_000_000u64);

    let resp = post(&server, "/api/chat", json!({ "model": "fake-model", "stream": false })).await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v["message"]["content"], "tok0 tok1 ");
    assert_eq!(v["message"]["thinking"], "r0 ");
    assert_eq!(v["done"], true);
    assert_eq!(v["prompt_eval_duration"], 10_000_000u64);
    assert!(resp.head_at >= ms(20));
}

#[tokio::test]
async fn llama_cpp_completion_final_event() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 3, cached_tokens: 4, ..Script::default() };
    let server = FakeServer::start(Flavor::LlamaCpp, script).await;
    let resp = post(&server, "/completion", json!({ "prompt": "x", "stream": true })).await;
    let events: Vec<Value> = resp.chunks.iter().map(|(_, f)| sse_events(f)).flatten_frames();
    assert_eq!(events.len(), 4);
    assert_eq!(events[1], json!({ "content": "tok1 ", "stop": false, "tokens": [1] }));
    let last = &events[3];
    assert_eq!(last["stop"], true);
    assert_eq!(last["stop_type"], "limit");
    assert_eq!(last["tokens_predicted"], 3);
    assert_eq!(last["tokens_evaluated"], 12);
    assert_eq!(last["timings"]["cache_n"], 4);
    assert_eq!(last["timings"]["prompt_ms"], 10.0);
    assert_eq!(last["timings"]["predicted_ms"], 10.0);
    assert_eq!(last["timings"]["predicted_per_second"], 300.0);
}

#[tokio::test]
async fn openai_non_streaming_chat() {
    let script = Script { ttft: ms(20), itl: ms(5), tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/chat/completions", json!({ "model": "fake-model", "stream": false })).await;
    assert!(resp.head_at >= ms(30));
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "tok0 tok1 tok2 ");
    assert_eq!(v["usage"]["total_tokens"], 15);
}

#[tokio::test]
async fn status_fault_returns_code_and_retry_after() {
    let body = r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.to_owned();
    let fault = Fault::Status { code: 429, body: body.clone(), retry_after: Some(7) };
    let server = FakeServer::start(Flavor::OpenAi, Script { fault, ..Script::default() }).await;
    let resp = post(&server, "/v1/chat/completions", json!({ "model": "fake-model", "stream": true })).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.body(), body.as_bytes());
    assert_eq!(server.request_count(), 1);

    let fault = Fault::Status { code: 503, body: "{}".into(), retry_after: None };
    let server = FakeServer::start(Flavor::Ollama, Script { fault, ..Script::default() }).await;
    let resp = post(&server, "/api/generate", json!({"model": "fake-model"})).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after"), None);
}

#[tokio::test]
async fn wrong_model_is_404() {
    let server = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let resp = post(&server, "/v1/chat/completions", json!({ "model": "nope", "stream": true })).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json(), json!({ "error": { "message": "model 'nope' not found", "type": "not_found_error" } }));

    let resp = post(&server, "/api/chat", json!({ "model": "nope" })).await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json(), json!({ "error": "model \"nope\" not found, try pulling it first" }));
    assert_eq!(server.request_count(), 2);
    assert_eq!(server.requests()[1].0, "/api/chat");
}

#[tokio::test]
async fn discovery_routes_per_flavor() {
    let openai = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let v = get_path(&openai, "/v1/models").await;
    assert_eq!(v.status, 200);
    assert_eq!(
        v.json(),
        json!({ "object": "list", "data": [{ "id": "fake-model", "object": "model", "owned_by": "fake" }] })
    );
    for p in ["/api/version", "/api/tags", "/props"] {
        assert_eq!(get_path(&openai, p).await.status, 404, "{p}");
    }

    let llama = FakeServer::start(Flavor::LlamaCpp, Script::default()).await;
    assert_eq!(get_path(&llama, "/v1/models").await.status, 200);
    assert_eq!(get_path(&llama, "/health").await.json(), json!({ "status": "ok" }));
    assert_eq!(get_path(&llama, "/props").await.json()["build_info"], "b9999-fake");
    assert_eq!(get_path(&llama, "/api/version").await.status, 404);

    let ollama = FakeServer::start(Flavor::Ollama, Script { model: "m:1b".into(), ..Script::default() }).await;
    assert_eq!(get_path(&ollama, "/api/version").await.json(), json!({ "version": "0.12.0" }));
    assert_eq!(
        get_path(&ollama, "/api/tags").await.json(),
        json!({ "models": [{ "name": "m:1b", "model": "m:1b", "size": 1, "digest": "abc" }] })
    );
    assert_eq!(get_path(&ollama, "/v1/models").await.status, 404);
    assert_eq!(ollama.request_count(), 0, "discovery requests are not recorded");
}

#[tokio::test]
async fn drop_after_aborts_mid_body() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 6, fault: Fault::DropAfter(2), ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/chat/completions", json!({ "stream": true })).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "body must not terminate properly");
    // role + 2 content chunks were delivered before the reset.
    assert_eq!(resp.chunks.len(), 3);
    assert_eq!(sse_json(&resp.chunks[2].1)["choices"][0]["delta"]["content"], "tok1 ");

    let server = FakeServer::start(
        Flavor::Ollama,
        Script { ttft: ms(10), itl: ms(5), tokens: 2, fault: Fault::DropAfter(5), ..Script::default() },
    )
    .await;
    let resp = post(&server, "/api/generate", json!({"model": "fake-model"})).await;
    assert!(!resp.complete);
    let lines = ndjson_lines(&resp.body());
    assert_eq!(lines.len(), 2, "all content but no done line");
}

#[tokio::test]
async fn stall_after_sends_nothing_more() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 6, fault: Fault::StallAfter(1), ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = send(&server, "POST", "/v1/completions", Some(&json!({})), ms(200)).await;
    assert_eq!(resp.status, 200);
    assert!(!resp.complete);
    assert_eq!(resp.chunks.len(), 1);
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_faults() {
    let script = Script { ttft: ms(5), itl: ms(2), tokens: 3, fault: Fault::MalformedJsonAt(1), ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/chat/completions", json!({})).await;
    assert_eq!(sse_events(&resp.chunks[2].1), vec![br#"{"choices":[{"#.to_vec()]);
    assert!(sse_json(&resp.chunks[1].1).is_object());
    assert!(sse_json(&resp.chunks[3].1).is_object());

    let script = Script { ttft: ms(5), itl: ms(2), tokens: 3, fault: Fault::InvalidUtf8At(0), ..Script::default() };
    let server = FakeServer::start(Flavor::Ollama, script).await;
    let resp = post(&server, "/api/chat", json!({"model": "fake-model"})).await;
    let first = &resp.chunks[0].1;
    assert!(std::str::from_utf8(first).is_err());
    let pos = find(first, &[0xFF, 0xFE]).expect("invalid bytes present");
    assert!(first[..pos].ends_with(b"\"content\":\"tok0 "), "{:?}", String::from_utf8_lossy(first));
    assert!(std::str::from_utf8(&resp.chunks[1].1).is_ok());
}

#[tokio::test]
async fn events_per_frame_packs_events() {
    let script = Script { ttft: ms(10), itl: ms(10), tokens: 4, events_per_frame: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/chat/completions", json!({})).await;
    // role, tok0..tok3, finish, [DONE] = 7 events -> frames of 3, 3, 1.
    let sizes: Vec<usize> = resp.chunks.iter().map(|(_, f)| sse_events(f).len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    // The first frame (role, tok0, tok1) is sent when tok1 is due.
    assert!(resp.chunks[0].0 >= ms(20), "{:?}", resp.chunks[0].0);
    assert!(resp.chunks[1].0 >= ms(40));
}

#[tokio::test]
async fn slow_headers_delays_the_head() {
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 2, fault: Fault::SlowHeaders(ms(40)), ..Script::default() };
    let server = FakeServer::start(Flavor::LlamaCpp, script).await;
    let resp = post(&server, "/completion", json!({})).await;
    assert!(resp.head_at >= ms(40), "{:?}", resp.head_at);
    assert!(resp.complete);
    assert_eq!(resp.chunks.len(), 3);
}

#[tokio::test]
async fn invalid_json_body_is_recorded_and_rejected() {
    let server = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let resp = post(&server, "/v1/chat/completions", json!("not an object")).await;
    assert_eq!(resp.status, 400);
    assert_eq!(server.request_count(), 1);
}

fn weather_call() -> (String, String) {
    ("get_weather".to_owned(), r#"{"city":"Paris","unit":"celsius"}"#.to_owned())
}

#[tokio::test]
async fn openai_chat_streams_tool_call_deltas() {
    let tool_calls = vec![weather_call(), ("get_time".to_owned(), "{}".to_owned())];
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 2, tool_calls, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let req = json!({ "model": "fake-model", "stream": true, "stream_options": { "include_usage": true } });
    let resp = post(&server, "/v1/chat/completions", req).await;
    assert!(resp.complete);
    let frames: Vec<(Duration, Value)> = resp
        .chunks
        .iter()
        .flat_map(|(at, f)| sse_events(f).into_iter().map(move |e| (*at, e)))
        .map(|(at, e)| (at, if e == b"[DONE]" { json!("[DONE]") } else { serde_json::from_slice(&e).unwrap() }))
        .collect();
    // role, tok0, tok1, call 0 (name + 3 fragments), call 1 (name + 2 fragments), finish, usage, [DONE]
    assert_eq!(frames.len(), 13, "{frames:#?}");
    assert_eq!(frames[2].1["choices"][0]["delta"]["content"], "tok1 ");
    let delta = |k: usize| frames[k].1["choices"][0]["delta"]["tool_calls"].clone();
    assert_eq!(
        delta(3),
        json!([{ "index": 0, "id": "call_0", "type": "function",
                 "function": { "name": "get_weather", "arguments": "" } }])
    );
    let args0: String = (4..7)
        .map(|k| {
            let d = delta(k);
            assert_eq!(d[0]["index"], 0);
            assert!(d[0].get("id").is_none() && d[0]["function"].get("name").is_none(), "{d}");
            d[0]["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(args0, weather_call().1);
    assert_eq!(delta(7)[0]["id"], "call_1");
    assert_eq!(delta(7)[0]["function"]["name"], "get_time");
    let frags1: Vec<Value> = (8..10).map(|k| delta(k)[0]["function"]["arguments"].clone()).collect();
    assert_eq!(frags1, [json!("{"), json!("}")]);
    assert!(frames[3..10].iter().all(|(_, f)| f["choices"][0]["finish_reason"].is_null()));
    assert_eq!(frames[10].1["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(frames[11].1["usage"]["completion_tokens"], 2);
    assert_eq!(frames[12].1, json!("[DONE]"));
    // One itl apart: tool chunk k (k = 0..7) is due at ttft + (2 + k) * itl; the trailers with the last one.
    for k in 0..7 {
        let due = ms(10) + ms(5) * (2 + k) as u32;
        assert!(frames[3 + k].0 >= due, "tool chunk {k} at {:?} before {due:?}", frames[3 + k].0);
    }
    assert!(frames[10].0 >= ms(40));

    let resp = post(&server, "/v1/chat/completions", json!({ "stream": false })).await;
    let v = resp.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0],
        json!({ "id": "call_0", "type": "function",
                "function": { "name": "get_weather", "arguments": weather_call().1 } })
    );

    // Without tool calls nothing changes, and other dialects ignore them.
    let resp = post(&server, "/v1/completions", json!({ "stream": true })).await;
    let events: Vec<Value> = resp.chunks.iter().map(|(_, f)| sse_events(f)).flatten_frames();
    assert_eq!(events.len(), 4);
    assert_eq!(events[2]["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn ollama_chat_puts_tool_calls_in_a_line_before_done() {
    let tool_calls = vec![weather_call(), ("raw".to_owned(), "not json".to_owned())];
    let script = Script { ttft: ms(10), itl: ms(5), tokens: 2, tool_calls, ..Script::default() };
    let server = FakeServer::start(Flavor::Ollama, script).await;
    let resp = post(&server, "/api/chat", json!({ "model": "fake-model", "messages": [] })).await;
    assert!(resp.complete);
    assert_eq!(resp.chunks.len(), 4, "tok0, tok1, tool calls, done");
    let lines = ndjson_lines(&resp.body());
    assert_eq!(lines[1]["message"], json!({ "role": "assistant", "content": "tok1 " }));
    assert_eq!(
        lines[2],
        json!({
            "model": "fake-model",
            "created_at": "2026-01-01T00:00:00Z",
            "message": { "role": "assistant", "content": "", "tool_calls": [
                { "function": { "name": "get_weather", "arguments": { "city": "Paris", "unit": "celsius" } } },
                { "function": { "name": "raw", "arguments": "not json" } },
            ] },
            "done": false,
        })
    );
    assert!(resp.chunks[2].0 >= ms(20), "{:?}", resp.chunks[2].0);
    assert_eq!(lines[3]["done"], true);
    assert_eq!(lines[3]["message"], json!({ "role": "assistant", "content": "" }));
    assert_eq!(lines[3]["eval_count"], 2);
    assert_eq!(lines[3]["eval_duration"], 10_000_000u64);

    let resp = post(&server, "/api/chat", json!({ "stream": false })).await;
    let v = resp.json();
    assert_eq!(v["message"]["content"], "tok0 tok1 ");
    assert_eq!(v["message"]["tool_calls"][0]["function"]["arguments"]["city"], "Paris");

    // /api/generate has no tool calls.
    let lines = ndjson_lines(&post(&server, "/api/generate", json!({"model": "fake-model"})).await.body());
    assert_eq!(lines.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages
// ---------------------------------------------------------------------------------------------

/// `(event name, data JSON)` of every Anthropic SSE event in a body, with the arrival time of its frame.
fn anthropic_events(resp: &Resp) -> Vec<(Duration, String, Value)> {
    let mut out = Vec::new();
    for (at, frame) in &resp.chunks {
        let text = std::str::from_utf8(frame).expect("UTF-8 frame");
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let (name, data) = event.split_once('\n').expect("event and data lines");
            let name = name.strip_prefix("event: ").expect("event: line").to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data: line")).unwrap();
            assert_eq!(data["type"], name.as_str(), "the event line repeats the type");
            out.push((*at, name, data));
        }
    }
    out
}

fn messages_body(blocks: Value) -> Value {
    json!({ "model": "fake-model", "max_tokens": 8, "stream": true,
            "messages": [{ "role": "user", "content": blocks }] })
}

#[tokio::test]
async fn anthropic_stream_has_the_documented_event_sequence() {
    let script =
        Script { ttft: ms(40), itl: ms(5), tokens: 3, prompt_tokens: 30, cached_tokens: 20, ..Script::default() };
    let server = FakeServer::start(Flavor::Anthropic, script).await;
    let resp = post(&server, "/v1/messages", messages_body(json!("hi"))).await;
    assert_eq!((resp.status, resp.header("content-type")), (200, Some("text/event-stream")));
    assert!(resp.complete);
    let events = anthropic_events(&resp);
    let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].2["message"];
    assert_eq!((start["role"].as_str(), start["model"].as_str()), (Some("assistant"), Some("fake-model")));
    assert_eq!(
        start["usage"],
        json!({ "input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20,
                "output_tokens": 1 })
    );
    assert!(events[0].0 < ms(30), "message_start comes with the headers");
    assert_eq!(events[1].2["content_block"], json!({ "type": "text", "text": "" }));
    for i in 0..3 {
        let (at, _, d) = &events[3 + i];
        assert_eq!(d["delta"], json!({ "type": "text_delta", "text": format!("tok{i} ") }));
        assert!(*at >= ms(40) + ms(5) * i as u32, "delta {i} at {at:?}");
    }
    assert_eq!(
        events[7].2,
        json!({ "type": "message_delta", "delta": { "stop_reason": "max_tokens", "stop_sequence": null },
                "usage": { "output_tokens": 3 } })
    );
    assert_eq!(events[8].2, json!({ "type": "message_stop" }));

    // Not streaming: one message object.
    let body = json!({ "model": "fake-model", "max_tokens": 8, "stream": false, "messages": [] });
    let v = post(&server, "/v1/messages", body).await.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"], json!([{ "type": "text", "text": "tok0 tok1 tok2 " }]));
    assert_eq!(v["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn anthropic_thinking_and_tool_use_blocks() {
    let script = Script {
        ttft: ms(10),
        itl: ms(2),
        tokens: 1,
        reasoning_tokens: 2,
        tool_calls: vec![weather_call()],
        ..Script::default()
    };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let events = anthropic_events(&post(&server, "/v1/messages", messages_body(json!("hi"))).await);
    let summary: Vec<String> = events
        .iter()
        .map(|(_, n, d)| {
            let kind = d.pointer("/delta/type").or_else(|| d.pointer("/content_block/type"));
            format!("{n}:{}{}", d["index"], kind.and_then(Value::as_str).map_or(String::new(), |k| format!(":{k}")))
        })
        .collect();
    assert_eq!(
        summary,
        [
            "message_start:null",
            "content_block_start:0:thinking",
            "ping:null",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:thinking_delta",
            "content_block_delta:0:signature_delta",
            "content_block_stop:0",
            "content_block_start:1:text",
            "content_block_delta:1:text_delta",
            "content_block_stop:1",
            "content_block_start:2:tool_use",
            "content_block_delta:2:input_json_delta",
            "content_block_delta:2:input_json_delta",
            "content_block_delta:2:input_json_delta",
            "content_block_stop:2",
            "message_delta:null",
            "message_stop:null"
        ]
    );
    assert_eq!(events[10].2["content_block"]["name"], "get_weather");
    let args: String = events[11..14].iter().map(|(_, _, d)| d["delta"]["partial_json"].as_str().unwrap()).collect();
    assert_eq!(args, weather_call().1);
    assert_eq!(events[15].2["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[15].2["usage"]["output_tokens"], 3, "reasoning counts as output");
}

#[tokio::test]
async fn api_key_is_checked_in_each_dialects_header_and_shape() {
    let script = Script { api_key: Some("sk-test".into()), ..Script::default() };
    let server = FakeServer::start(Flavor::Anthropic, script).await;
    let limit = Duration::from_secs(5);
    let body = messages_body(json!("hi"));
    let missing = send_with(&server, "POST", "/v1/messages", Some(&body), &[], limit).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.json(),
        json!({ "type": "error", "error": { "type": "authentication_error", "message": "x-api-key header is required" },
                "request_id": "req_fake" })
    );
    let wrong = send_with(&server, "POST", "/v1/messages", Some(&body), &[("x-api-key", "nope")], limit).await;
    assert_eq!((wrong.status, wrong.json()["error"]["message"].clone()), (401, json!("invalid x-api-key")));
    // A bearer token is not Anthropic's header.
    let bearer = [("Authorization", "Bearer sk-test")];
    assert_eq!(send_with(&server, "POST", "/v1/messages", Some(&body), &bearer, limit).await.status, 401);
    let headers = [("x-api-key", "sk-test"), ("anthropic-version", "2023-06-01")];
    let ok = send_with(&server, "POST", "/v1/messages", Some(&body), &headers, limit).await;
    assert_eq!(ok.status, 200);
    let seen = server.request_headers();
    assert_eq!(seen.len(), 4);
    let get = |i: usize, name: &str| seen[i].iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!((get(3, "x-api-key"), get(3, "anthropic-version")), (Some("sk-test".into()), Some("2023-06-01".into())));
    assert_eq!(get(0, "x-api-key"), None);

    // OpenAI-style dialects take a bearer token.
    let chat = json!({ "stream": true });
    let r = send_with(&server, "POST", "/v1/chat/completions", Some(&chat), &[("x-api-key", "sk-test")], limit).await;
    assert_eq!((r.status, r.json()["error"]["type"].clone()), (401, json!("authentication_error")));
    assert_eq!(send_with(&server, "POST", "/v1/chat/completions", Some(&chat), &bearer, limit).await.status, 200);

    // Discovery: the model list needs the key; unknown routes are Anthropic 404s.
    assert_eq!(get_path(&server, "/v1/models").await.status, 401);
    let models = send_with(&server, "GET", "/v1/models", None, &headers, limit).await;
    assert_eq!(models.status, 200);
    let m = models.json();
    assert_eq!((m["data"][0]["type"].clone(), m["data"][0]["id"].clone()), (json!("model"), json!("fake-model")));
    assert_eq!(m["has_more"], false);
    let v = get_path(&server, "/api/version").await;
    assert_eq!((v.status, v.json()["error"]["type"].clone()), (404, json!("not_found_error")));
}

// ---------------------------------------------------------------------------------------------
// Prompt cache simulation
// ---------------------------------------------------------------------------------------------

/// A text of `n` words `w0 w1 …`, after `prefix` words.
fn words(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(" ")
}

fn cached_script(prefill_us: u64) -> Script {
    let cache = CacheSim { prefill_per_token: Duration::from_micros(prefill_us), ..CacheSim::default() };
    Script { ttft: ms(5), itl: ms(1), tokens: 2, cache: Some(cache), ..Script::default() }
}

#[test]
fn durations_parse_like_humantime() {
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("250ms"), Some(ms(250)));
    assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
    for bad in ["", "5", "m", "5x", "-1s", "1.5h"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn automatic_prefix_cache_in_openai_llamacpp_and_ollama_fields() {
    let server = FakeServer::start(Flavor::OpenAi, cached_script(500)).await;
    let doc = words("d", 100);
    let chat = |q: &str| {
        json!({ "model": "fake-model", "stream": true, "stream_options": { "include_usage": true },
                "messages": [{ "role": "system", "content": "be brief" },
                             { "role": "user", "content": format!("{doc} {q}") }] })
    };
    let usage = |resp: &Resp| {
        let events: Vec<Value> = resp.chunks.iter().map(|(_, f)| sse_events(f)).flatten_frames();
        events.iter().find(|e| e.get("usage").is_some()).unwrap()["usage"].clone()
    };
    let first = post(&server, "/v1/chat/completions", chat("what is a")).await;
    let u = usage(&first);
    assert_eq!(
        (u["prompt_tokens"].clone(), u["prompt_tokens_details"]["cached_tokens"].clone()),
        (json!(105), json!(0))
    );
    let second = post(&server, "/v1/chat/completions", chat("what is b")).await;
    let u = usage(&second);
    // "be brief" + 100 document words + "what is" are shared.
    assert_eq!(
        (u["prompt_tokens"].clone(), u["prompt_tokens_details"]["cached_tokens"].clone()),
        (json!(105), json!(104))
    );
    // TTFT: 5 ms + 105 × 0.5 ms cold, 5 ms + 1 × 0.5 ms warm (frame 1 is the first content chunk).
    assert!(first.chunks[1].0 >= ms(57), "{:?}", first.chunks[1].0);
    assert!(second.chunks[1].0 < ms(40), "{:?}", second.chunks[1].0);

    // llama.cpp /completion: cache_n and prompt_n (uncached).
    let server = FakeServer::start(Flavor::LlamaCpp, cached_script(0)).await;
    let complete = |q: &str| json!({ "prompt": format!("{doc} {q}"), "stream": true });
    post(&server, "/completion", complete("one")).await;
    let resp = post(&server, "/completion", complete("two three")).await;
    let last = sse_json(&resp.chunks.last().unwrap().1);
    assert_eq!(last["tokens_evaluated"], 102);
    assert_eq!((last["timings"]["cache_n"].clone(), last["timings"]["prompt_n"].clone()), (json!(100), json!(2)));
    let metrics = String::from_utf8(get_path(&server, "/metrics").await.body()).unwrap();
    assert!(metrics.contains("llamacpp:prompt_tokens_total 103\n"), "{metrics}");
    assert!(metrics.contains("llamacpp:prompt_tokens_cached_total 100\n"), "{metrics}");

    // Ollama: prompt_eval_cached_count and prompt_eval_count (uncached); system then prompt.
    let server = FakeServer::start(Flavor::Ollama, cached_script(0)).await;
    let generate = |q: &str| json!({ "model": "fake-model", "system": "sys", "prompt": format!("{doc} {q}") });
    post(&server, "/api/generate", generate("x")).await;
    let lines = ndjson_lines(&post(&server, "/api/generate", generate("y z")).await.body());
    let done = lines.last().unwrap();
    assert_eq!((done["prompt_eval_cached_count"].clone(), done["prompt_eval_count"].clone()), (json!(101), json!(2)));
}

#[tokio::test]
async fn automatic_cache_entries_expire_after_the_ttl() {
    let cache = CacheSim { ttl: ms(300), prefill_per_token: Duration::ZERO };
    let server = FakeServer::start(Flavor::LlamaCpp, Script { cache: Some(cache), ..cached_script(0) }).await;
    let body = json!({ "prompt": words("w", 20), "stream": true });
    let cache_n = |resp: Resp| sse_json(&resp.chunks.last().unwrap().1)["timings"]["cache_n"].clone();
    assert_eq!(cache_n(post(&server, "/completion", body.clone()).await), 0);
    assert_eq!(cache_n(post(&server, "/completion", body.clone()).await), 20);
    tokio::time::sleep(ms(450)).await;
    assert_eq!(cache_n(post(&server, "/completion", body).await), 0, "expired");
}

#[tokio::test]
async fn anthropic_caches_only_at_breakpoints_with_their_ttl() {
    let server = FakeServer::start(Flavor::Anthropic, cached_script(0)).await;
    let bp = |ttl: Option<&str>| match ttl {
        Some(t) => json!({ "type": "ephemeral", "ttl": t }),
        None => json!({ "type": "ephemeral" }),
    };
    // system (10 words, breakpoint), context (50 words, breakpoint with ttl), prompt (5 words).
    let request = |ctx_ttl: Option<&str>, prompt: &str| {
        json!({ "model": "fake-model", "max_tokens": 8, "stream": true,
                "system": [{ "type": "text", "text": words("s", 10), "cache_control": bp(None) }],
                "messages": [{ "role": "user", "content": [
                    { "type": "text", "text": words("c", 50), "cache_control": bp(ctx_ttl) },
                    { "type": "text", "text": prompt },
                ] }] })
    };
    let usage = |resp: Resp| anthropic_events(&resp)[0].2["message"]["usage"].clone();
    let counts = |u: Value| {
        (u["input_tokens"].as_u64(), u["cache_creation_input_tokens"].as_u64(), u["cache_read_input_tokens"].as_u64())
    };
    // Cold: both breakpoint prefixes are written (60 tokens), the prompt is input.
    let u = usage(post(&server, "/v1/messages", request(Some("400ms"), &words("p", 5))).await);
    assert_eq!(counts(u), (Some(5), Some(60), Some(0)));
    // Warm: the context breakpoint (60 tokens) is read.
    let u = usage(post(&server, "/v1/messages", request(Some("400ms"), &words("q", 5))).await);
    assert_eq!(counts(u), (Some(5), Some(0), Some(60)));
    // Past the context entry's short TTL, only the system prefix (default 5 min) is still cached.
    tokio::time::sleep(ms(600)).await;
    let u = usage(post(&server, "/v1/messages", request(Some("400ms"), &words("r", 5))).await);
    assert_eq!(counts(u), (Some(5), Some(50), Some(10)));
    // A read renews the entry: three reads 250 ms apart stay within a 400 ms TTL.
    for _ in 0..3 {
        tokio::time::sleep(ms(250)).await;
        let u = usage(post(&server, "/v1/messages", request(Some("400ms"), &words("t", 5))).await);
        assert_eq!(counts(u), (Some(5), Some(0), Some(60)));
    }
    // A different context shares nothing at a breakpoint beyond the system prompt.
    let other = json!({ "model": "fake-model", "max_tokens": 8, "stream": true,
        "system": [{ "type": "text", "text": words("s", 10), "cache_control": bp(None) }],
        "messages": [{ "role": "user", "content": "no breakpoint here" }] });
    let u = usage(post(&server, "/v1/messages", other).await);
    assert_eq!(counts(u), (Some(3), Some(0), Some(10)));
    // Without any breakpoint nothing is cached, even an identical prompt.
    let plain = messages_body(json!(words("s", 10)));
    post(&server, "/v1/messages", plain.clone()).await;
    assert_eq!(counts(usage(post(&server, "/v1/messages", plain).await)), (Some(10), Some(0), Some(0)));
    // An invalid TTL is refused as the API refuses it.
    let bad = post(&server, "/v1/messages", request(Some("soon"), "x")).await;
    assert_eq!((bad.status, bad.json()["error"]["type"].clone()), (400, json!("invalid_request_error")));
}

#[tokio::test]
async fn anthropic_cache_hit_has_a_shorter_ttft() {
    let server = FakeServer::start(Flavor::Anthropic, cached_script(400)).await;
    let body = json!({ "model": "fake-model", "max_tokens": 8, "stream": true,
        "messages": [{ "role": "user", "content": [
            { "type": "text", "text": words("c", 100), "cache_control": { "type": "ephemeral" } },
            { "type": "text", "text": "question" }] }] });
    let first_delta =
        |resp: &Resp| anthropic_events(resp).iter().find(|(_, n, _)| n == "content_block_delta").unwrap().0;
    let cold = first_delta(&post(&server, "/v1/messages", body.clone()).await);
    let warm = first_delta(&post(&server, "/v1/messages", body).await);
    // 5 ms + 101 × 0.4 ms cold; 5 ms + 1 × 0.4 ms warm.
    assert!(cold >= ms(45), "{cold:?}");
    assert!(warm < ms(35) && warm + ms(10) < cold, "cold {cold:?} warm {warm:?}");
}

#[tokio::test]
async fn byte_frames_send_every_byte_as_its_own_chunk() {
    let script = Script { ttft: ms(5), itl: ms(2), tokens: 3, ..Script::default() };
    for (flavor, path) in [(Flavor::OpenAi, "/v1/chat/completions"), (Flavor::Ollama, "/api/chat")] {
        let body = json!({"model": "fake-model"});
        let whole = post(&FakeServer::start(flavor, script.clone()).await, path, body.clone()).await;
        let split = FakeServer::start(flavor, Script { byte_frames: true, ..script.clone() }).await;
        let resp = post(&split, path, body).await;
        assert!(resp.complete, "{path}");
        assert!(resp.chunks.iter().all(|(_, c)| c.len() == 1), "{path}: one byte per chunk");
        assert_eq!(resp.body(), whole.body(), "{path}: the same bytes as unsplit");
    }
}

#[tokio::test]
async fn fault_first_makes_a_burst_the_server_recovers_from() {
    let fault = Fault::Status { code: 503, body: "{}".into(), retry_after: None };
    let script = Script { ttft: ms(5), itl: ms(2), tokens: 2, fault, fault_first: Some(2), ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(&server, "/v1/completions", json!({})).await.status);
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
}

#[tokio::test]
async fn reset_after_closes_with_a_tcp_reset() {
    let script = Script { ttft: ms(5), itl: ms(2), tokens: 6, fault: Fault::ResetAfter(1), ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    let req =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.expect("no hang") {
            Ok(0) => panic!("the connection ended with a FIN, not a reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
}

#[tokio::test]
async fn end_after_and_no_done_marker_end_the_body_cleanly() {
    let quick = Script { ttft: ms(5), itl: ms(2), tokens: 4, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, Script { fault: Fault::EndAfter(1), ..quick.clone() }).await;
    let resp = post(&server, "/v1/chat/completions", json!({})).await;
    assert!(resp.complete, "a clean end");
    // The role chunk and one content chunk, nothing after.
    assert_eq!(resp.chunks.len(), 2);
    assert_eq!(sse_json(&resp.chunks[1].1)["choices"][0]["delta"]["content"], "tok0 ");

    let server = FakeServer::start(Flavor::OpenAi, Script { fault: Fault::NoDoneMarker, ..quick.clone() }).await;
    let resp = post(&server, "/v1/chat/completions", json!({})).await;
    assert!(resp.complete);
    let last = resp.chunks.last().unwrap();
    assert_eq!(sse_json(&last.1)["choices"][0]["finish_reason"], "length", "the finish chunk ends it, no [DONE]");
    assert!(find(&resp.body(), b"[DONE]").is_none());

    let server = FakeServer::start(Flavor::Anthropic, Script { fault: Fault::NoDoneMarker, ..quick }).await;
    let resp = post(&server, "/v1/messages", messages_body(json!("hi"))).await;
    let names: Vec<String> = anthropic_events(&resp).into_iter().map(|(_, n, _)| n).collect();
    assert_eq!(names.last().map(String::as_str), Some("message_delta"), "{names:?}");
}

#[tokio::test]
async fn empty_body_and_large_chunk_faults() {
    let server = FakeServer::start(Flavor::Ollama, Script { fault: Fault::EmptyBody, ..Script::default() }).await;
    let resp = post(&server, "/api/generate", json!({"model": "fake-model"})).await;
    assert_eq!((resp.status, resp.header("content-length")), (200, Some("0")));
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    assert!(resp.body().is_empty());

    let fault = Fault::LargeChunk { at: 1, bytes: 100_000 };
    let script = Script { ttft: ms(5), itl: ms(2), tokens: 3, fault, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let resp = post(&server, "/v1/completions", json!({})).await;
    let texts: Vec<usize> =
        completion_texts(&resp).iter().map(|t| if t.bytes().all(|b| b == b'x') { t.len() } else { 0 }).collect();
    assert_eq!(texts, [0, 100_000, 0], "chunk 1 is the large one");
}

/// The `choices[0].text` of every completions event with text.
fn completion_texts(resp: &Resp) -> Vec<String> {
    sse_events(&resp.body())
        .iter()
        .filter_map(|e| serde_json::from_slice::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test]
async fn a_stopped_server_refuses_and_drops_then_restarts_on_the_same_port() {
    let script = Script { ttft: ms(5), itl: ms(200), tokens: 20, ..Script::default() };
    let mut server = FakeServer::start(Flavor::OpenAi, script).await;
    let url = server.url();
    // A response in flight when the server dies ends at once, without its terminating chunk.
    let in_flight = {
        let addr = addr(&server);
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
            stream.write_all(req.as_bytes()).await.unwrap();
            let mut body = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body)).await.expect("closed");
            body
        })
    };
    sleep(ms(50)).await;
    server.stop().await;
    let body = in_flight.await.unwrap();
    assert!(find(&body, b"200 OK").is_some() && find(&body, b"\r\n0\r\n\r\n").is_none());
    let refused = TcpStream::connect(addr(&server)).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    server.stop().await;

    server.restart().await.unwrap();
    assert_eq!(server.url(), url, "the same port");
    let resp = get_path(&server, "/v1/models").await;
    assert_eq!(resp.status, 200);
    assert_eq!(server.request_count(), 1, "the request log survives the restart");
}
