//! The proxy against scripted fake upstreams with exact delays and faults: pass-through, the exact cache,
//! bad input, failures, shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{config, post, send, start};
use serde_json::{Value, json};
use velollm_proxy::metrics::Lookup;
use velollm_testkit::{FakeServer, Fault, Flavor, Script};

fn chat(content: &str, stream: bool) -> Value {
    json!({
        "model": "fake-model", "temperature": 0, "stream": stream, "max_tokens": 8,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
    })
}

#[tokio::test]
async fn streams_pass_through_frame_by_frame_and_a_repeat_is_a_hit() {
    let script =
        Script { ttft: Duration::from_millis(50), itl: Duration::from_millis(40), tokens: 6, ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let proxy = start(config(&fake.url())).await;

    let miss = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.header("x-velollm-cache"), "miss");
    assert_eq!(miss.header("x-velollm-upstream"), "up");
    assert!(miss.header("x-velollm-overhead-ms").parse::<f64>().unwrap() >= 0.0);
    // Not buffered: the first content frame comes about 200 ms (5 × 40 ms) before the last one.
    let content: Vec<Duration> =
        miss.frames.iter().filter(|(_, b)| b.windows(4).any(|w| w == b"\"tok")).map(|(t, _)| *t).collect();
    assert_eq!(content.len(), 6, "{}", miss.text());
    assert!(content[5] - content[0] >= Duration::from_millis(150), "frames arrived together: {content:?}");
    assert!(miss.text().ends_with("data: [DONE]\n\n"));

    let hit = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(hit.header("x-velollm-cache"), "hit");
    assert_eq!(hit.header("content-type"), miss.header("content-type"));
    assert_eq!(hit.body(), miss.body(), "a hit replays the stream as it was, usage included");
    assert!(hit.text().contains("\"usage\""));
    assert_eq!(fake.request_count(), 1);
    assert_eq!(proxy.metrics.lookups("exact", Lookup::Hit), 1);
    assert_eq!(proxy.metrics.lookups("exact", Lookup::Miss), 1);
}

#[tokio::test]
async fn every_generation_dialect_is_cached_and_replayed_in_its_own_shape() {
    let script = Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), ..Script::default() };
    let cases: Vec<(Flavor, &str, Value)> = vec![
        (
            Flavor::OpenAi,
            "/v1/completions",
            json!({"model": "fake-model", "prompt": "p", "temperature": 0, "stream": true}),
        ),
        (Flavor::OpenAi, "/v1/completions", json!({"model": "fake-model", "prompt": "p", "temperature": 0})),
        (Flavor::OpenAi, "/v1/chat/completions", chat("hello", false)),
        (
            Flavor::Anthropic,
            "/v1/messages",
            json!({"model": "fake-model", "max_tokens": 8, "temperature": 0, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            Flavor::Ollama,
            "/api/chat",
            json!({"model": "fake-model", "options": {"temperature": 0},
                                             "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            Flavor::Ollama,
            "/api/generate",
            json!({"model": "fake-model", "prompt": "p", "stream": false, "options": {"seed": 3}}),
        ),
        (Flavor::LlamaCpp, "/completion", json!({"prompt": "p", "temperature": 0, "stream": true})),
        (Flavor::LlamaCpp, "/completion", json!({"prompt": "p", "temperature": 0, "n_predict": 4})),
    ];
    for (flavor, path, body) in cases {
        let fake = FakeServer::start(flavor, script.clone()).await;
        let proxy = start(config(&fake.url())).await;
        let first = post(proxy.addr, path, &body).await;
        assert_eq!((first.status, first.header("x-velollm-cache")), (200, "miss"), "{path} {body}: {}", first.text());
        let second = post(proxy.addr, path, &body).await;
        assert_eq!(second.header("x-velollm-cache"), "hit", "{path} {body}: {}", first.text());
        assert_eq!(second.body(), first.body(), "{path} {body}");
        assert_eq!(fake.request_count(), 1, "{path} {body}");
    }
}

#[tokio::test]
async fn only_deterministic_requests_are_stored_and_cache_control_is_honoured() {
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    let proxy = start(config(&fake.url())).await;
    let mut warm = chat("hi", false);
    warm["temperature"] = json!(0.7);
    for _ in 0..2 {
        assert_eq!(post(proxy.addr, "/v1/chat/completions", &warm).await.header("x-velollm-cache"), "bypass");
    }
    let body = chat("hi", false).to_string();
    let no_store = [("cache-control", "no-store")];
    let r = send(proxy.addr, "POST", "/v1/chat/completions", &no_store, &body).await;
    assert_eq!(r.header("x-velollm-cache"), "miss");
    // no-store stored nothing: the next plain request misses and stores.
    assert_eq!(send(proxy.addr, "POST", "/v1/chat/completions", &[], &body).await.header("x-velollm-cache"), "miss");
    assert_eq!(send(proxy.addr, "POST", "/v1/chat/completions", &[], &body).await.header("x-velollm-cache"), "hit");
    // no-cache goes upstream even though an answer is stored.
    let no_cache = [("cache-control", "no-cache")];
    assert_eq!(
        send(proxy.addr, "POST", "/v1/chat/completions", &no_cache, &body).await.header("x-velollm-cache"),
        "bypass"
    );
    assert_eq!(fake.request_count(), 5);
    // Pass-through routes are never cached.
    let models = send(proxy.addr, "GET", "/v1/models", &[], "").await;
    assert_eq!((models.status, models.header("x-velollm-cache")), (200, "bypass"));
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event_and_is_not_stored() {
    let script = Script {
        fault: Fault::DropAfter(2),
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(5),
        ..Script::default()
    };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let proxy = start(config(&fake.url())).await;
    let r = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(r.status, 200);
    assert!(r.error.is_none(), "the caller's stream closes cleanly: {:?}", r.error);
    let last = r.text().trim_end().rsplit("\n\n").next().unwrap().to_owned();
    assert!(last.starts_with("data: {\"error\""), "{last}");
    assert!(last.contains("failed mid-stream"), "{last}");
    let again = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(again.header("x-velollm-cache"), "miss", "nothing was stored");
    assert_eq!(fake.request_count(), 2);

    // A stream that ends without its end marker is not stored either.
    let script = Script { fault: Fault::NoDoneMarker, ttft: Duration::from_millis(2), ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let proxy = start(config(&fake.url())).await;
    post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await.header("x-velollm-cache"), "miss");
    // An Anthropic stream's error event has Anthropic's shape.
    let script = Script { fault: Fault::DropAfter(1), ttft: Duration::from_millis(2), ..Script::default() };
    let fake = FakeServer::start(Flavor::Anthropic, script).await;
    let proxy = start(config(&fake.url())).await;
    let body = json!({"model": "fake-model", "max_tokens": 8, "temperature": 0, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = post(proxy.addr, "/v1/messages", &body).await;
    assert!(r.text().contains("event: error\ndata: {\"error\":{\"message\""), "{}", r.text());
}

#[tokio::test]
async fn an_upstream_that_falls_silent_is_failed_after_the_idle_limit() {
    let script = Script { fault: Fault::StallAfter(1), ttft: Duration::from_millis(5), ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let mut c = config(&fake.url());
    c.limits.idle_timeout = Duration::from_millis(300);
    let proxy = start(c).await;
    let started = Instant::now();
    let r = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(r.text().contains("no data for 300ms"), "{}", r.text());
}

#[tokio::test]
async fn bad_input_gets_the_right_status_in_the_callers_dialect() {
    let fake = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let mut c = config(&fake.url());
    c.limits.max_body_bytes = 1000;
    let proxy = start(c).await;
    let r = send(proxy.addr, "POST", "/v1/chat/completions", &[], "{\"model\": ").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    let r = send(proxy.addr, "POST", "/v1/messages", &[], "[1, 2]").await;
    assert_eq!((r.status, r.json()["type"].as_str()), (400, Some("error")));
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = send(proxy.addr, "POST", "/api/chat", &[], "nope").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string(), "Ollama's shape: {}", r.text());
    let big = json!({"model": "fake-model", "prompt": "x".repeat(2000)}).to_string();
    let r = send(proxy.addr, "POST", "/v1/completions", &[], &big).await;
    assert_eq!(r.status, 413);
    let r = send(proxy.addr, "POST", "/v2/unknown", &[], "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("serves no route POST /v2/unknown"));
    assert_eq!(fake.request_count(), 0, "nothing bad reached the upstream");
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_at_once_and_ready_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = start(config(&format!("http://127.0.0.1:{port}"))).await;
    let started = Instant::now();
    let r = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.status, 502);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("cannot connect to upstream \"up\""),
        "{}",
        r.text()
    );
    let ready = send(proxy.addr, "GET", "/ready", &[], "").await;
    assert_eq!(ready.status, 503);
    assert!(ready.json()["upstreams"]["up"].as_str().unwrap().starts_with("down"));
    assert_eq!(send(proxy.addr, "GET", "/health", &[], "").await.status, 200);
    // A route whose dialect no upstream speaks says how to add one.
    let mut c = config(&format!("http://127.0.0.1:{port}"));
    c.upstreams[0].dialects = vec![velollm_proxy::dialect::Dialect::Openai];
    let proxy = start(c).await;
    let r = send(proxy.addr, "POST", "/api/chat", &[], "{}").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no upstream speaks the ollama dialect"));
}

#[tokio::test]
async fn identical_misses_at_the_same_time_share_one_upstream_call() {
    let fake =
        FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(100), ..Script::default() }).await;
    let proxy = start(config(&fake.url())).await;
    let addr = proxy.addr;
    let replies =
        futures_join(5, move || async move { post(addr, "/v1/chat/completions", &chat("same", true)).await }).await;
    assert_eq!(fake.request_count(), 1);
    let first = replies[0].body();
    for r in &replies {
        assert_eq!(r.status, 200);
        assert_eq!(r.body(), first);
    }
    let hits = replies.iter().filter(|r| r.header("x-velollm-cache") == "hit").count();
    assert_eq!(hits, 4, "one leader, four followers served from its answer");
}

async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<common::Reply>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = common::Reply> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn credentials_partition_the_cache_are_forwarded_and_never_exposed() {
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    let proxy = start(config(&fake.url())).await;
    let body = chat("hi", false).to_string();
    let a = [("authorization", "Bearer sk-secret-a")];
    let b = [("authorization", "Bearer sk-secret-b")];
    let cache = |r: common::Reply| r.header("x-velollm-cache").to_owned();
    assert_eq!(cache(send(proxy.addr, "POST", "/v1/chat/completions", &a, &body).await), "miss");
    assert_eq!(cache(send(proxy.addr, "POST", "/v1/chat/completions", &b, &body).await), "miss");
    assert_eq!(cache(send(proxy.addr, "POST", "/v1/chat/completions", &a, &body).await), "hit");
    assert_eq!(cache(send(proxy.addr, "POST", "/v1/chat/completions", &[], &body).await), "miss");
    let tenant = [("x-velollm-tenant", "team-1")];
    assert_eq!(cache(send(proxy.addr, "POST", "/v1/chat/completions", &tenant, &body).await), "miss");
    let forwarded = fake.request_headers();
    assert!(forwarded[0].iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-secret-a"));
    assert!(forwarded[3].iter().all(|(k, _)| k != "x-velollm-tenant"), "the tenant header stays in the proxy");
    let metrics = send(proxy.addr, "GET", "/metrics", &[], "").await.text();
    assert!(!metrics.contains("sk-secret"));
}

#[tokio::test]
async fn aliases_are_resolved_before_forwarding_and_hashing() {
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    let mut c = config(&fake.url());
    c.add_alias_flag("fast=fake-model").unwrap();
    let proxy = start(c).await;
    let mut aliased = chat("hi", false);
    aliased["model"] = json!("fast");
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &aliased).await.header("x-velollm-cache"), "miss");
    assert_eq!(fake.requests()[0].1["model"], "fake-model");
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &chat("hi", false)).await.header("x-velollm-cache"), "hit");
}

#[tokio::test]
async fn shutdown_lets_streams_in_flight_finish_and_refuses_new_connections() {
    let script =
        Script { ttft: Duration::from_millis(20), itl: Duration::from_millis(50), tokens: 8, ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let mut proxy = start(config(&fake.url())).await;
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { post(addr, "/v1/chat/completions", &chat("long", true)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "new connections are refused while draining");
    let r = in_flight.await.unwrap();
    assert!(r.text().ends_with("data: [DONE]\n\n"), "the stream in flight finished: {}", r.text());
    tokio::time::timeout(Duration::from_secs(5), &mut proxy.task).await.expect("drained").unwrap();
}

#[tokio::test]
async fn a_cache_store_that_is_down_serves_from_upstream_and_counts_the_error() {
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = config(&fake.url());
    c.cache.store = format!("redis://127.0.0.1:{port}");
    let proxy = start(c).await;
    for _ in 0..2 {
        let r = post(proxy.addr, "/v1/chat/completions", &chat("hi", false)).await;
        assert_eq!((r.status, r.header("x-velollm-cache")), (200, "miss"));
    }
    assert_eq!(proxy.metrics.lookups("exact", Lookup::Error), 2);
    tokio::time::sleep(Duration::from_millis(300)).await; // the failed writes run after the responses
    assert!(proxy.metrics.render().contains("velollm_proxy_cache_writes_total{store=\"redis\",outcome=\"error\"}"));
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_trusted_authorities() {
    let (fake, pem) =
        FakeServer::start_tls(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    // Not trusted: 502 naming the certificate problem.
    let proxy = start(config(&fake.url())).await;
    let r = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().to_lowercase().contains("certificate"), "{}", r.text());
    // Trusted through ca_cert: streamed and cached as over http.
    let dir = std::env::temp_dir().join(format!("velollm-proxy-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let mut c = config(&fake.url());
    c.upstreams[0].ca_cert = Some(ca.clone());
    let proxy = start(c).await;
    let miss = post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await;
    assert_eq!((miss.status, miss.header("x-velollm-cache")), (200, "miss"), "{}", miss.text());
    assert!(miss.text().ends_with("data: [DONE]\n\n"));
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &chat("hi", true)).await.header("x-velollm-cache"), "hit");
    // A CA file that is not one is refused at start.
    std::fs::write(&ca, "not a certificate").unwrap();
    let mut c = config(&fake.url());
    c.upstreams[0].ca_cert = Some(ca);
    let err = velollm_proxy::Proxy::bind(c).await.unwrap_err().to_string();
    assert!(err.contains("holds no certificate"), "{err}");
}

/// An upstream that answers one request per connection, says nothing of closing, and closes 30 ms later: the
/// next request, sent on the pooled connection meanwhile, gets no answer (llama-server after a stream).
async fn closing_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await; // the body has arrived by now
                let body = r#"{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}]}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                // Closed a moment later, unread: a request sent on it meanwhile gets no answer.
                tokio::time::sleep(Duration::from_millis(30)).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced_without_an_error() {
    let proxy = start(config(&closing_upstream().await)).await;
    let mut body = chat("hi", false);
    body["temperature"] = json!(0.5); // not cached: every request goes upstream
    for i in 0..20 {
        let r = post(proxy.addr, "/v1/chat/completions", &body).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_websocket_session_carries_many_requests_one_message_per_event() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let script =
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(2), tokens: 4, ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let proxy = start(config(&fake.url())).await;
    let url = format!("ws://{}/v1/chat/completions", proxy.addr);
    let (mut ws, response) = tokio_tungstenite::connect_async(url.as_str()).await.expect("the upgrade succeeds");
    assert_eq!(response.status(), 101);
    let mut answers = Vec::new();
    for content in ["one", "two", "one"] {
        ws.send(Message::text(chat(content, true).to_string())).await.unwrap();
        let mut events = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
            let text = message.into_text().unwrap().to_string();
            let done = text == "[DONE]";
            events.push(text);
            if done {
                break;
            }
        }
        answers.push(events);
    }
    // The role chunk, 4 tokens, the finish chunk, the usage chunk, [DONE]: one message each.
    assert_eq!(answers[0].len(), 8, "{:?}", answers[0]);
    let first: Value = serde_json::from_str(&answers[0][1]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "tok0 ");
    assert_eq!(answers[2], answers[0], "the repeat is replayed from the cache, event for event");
    assert_eq!(fake.request_count(), 2, "two upstream calls for three requests on one connection");
    assert_eq!(proxy.metrics.lookups("exact", Lookup::Hit), 1);
    // A bad message gets an error message in the dialect's shape, and the session goes on.
    ws.send(Message::text("{not json")).await.unwrap();
    let text = ws.next().await.unwrap().unwrap().into_text().unwrap().to_string();
    assert!(text.contains("not valid JSON"), "{text}");
    ws.send(Message::text(chat("two", false).to_string())).await.unwrap();
    let text = ws.next().await.unwrap().unwrap().into_text().unwrap().to_string();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(answer["choices"][0]["message"]["content"].is_string(), "{text}");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_hold_its_stream_for_ever() {
    use tokio::io::AsyncWriteExt;
    let script = Script {
        fault: Fault::LargeChunk { at: 0, bytes: 32 << 20 },
        ttft: Duration::from_millis(2),
        ..Script::default()
    };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let mut c = config(&fake.url());
    c.limits.client_timeout = Duration::from_millis(300);
    let proxy = start(c).await;
    let body = chat("hi", true).to_string();
    let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    // The client reads nothing; 32 MB cannot fit in the socket buffers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.metrics.streams_in_flight() != 1 {
        assert!(Instant::now() < deadline, "the stream never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    while proxy.metrics.streams_in_flight() != 0 {
        assert!(Instant::now() < deadline, "the stalled stream was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(250), "released by the write deadline, not at once");
    drop(client);
}
