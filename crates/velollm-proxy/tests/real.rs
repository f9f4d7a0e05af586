//! The proxy against real parts started by the project's scripts: llama-server with SmolLM2
//! (`VELOLLM_TEST_SERVER_URL`) and Debian's redis-server (`VELOLLM_TEST_REDIS_URL`, and instances this file
//! starts itself). Without them the tests are skipped with a message — except with `CI=true`, where a missing
//! part is a failure.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, post, start};
use serde_json::{Value, json};
use velollm_proxy::metrics::Lookup;
use velollm_testkit::{FakeServer, Flavor, Script};

fn required(what: &str, fix: &str) -> Option<String> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {what} is missing: {fix}");
    }
    eprintln!("skipped: {what} is missing ({fix})");
    None
}

/// The llama-server of `scripts/test.sh`, if it answers `/health`.
async fn llama_server() -> Option<String> {
    let url = std::env::var("VELOLLM_TEST_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let healthy = tokio::net::TcpStream::connect(&addr).await.is_ok();
    if healthy {
        Some(url)
    } else {
        required(&format!("a llama-server at {url}"), "run scripts/test.sh, or scripts/llama-server.sh start")
    }
}

/// The redis-server of `scripts/test.sh`.
async fn redis_url() -> Option<String> {
    let Ok(url) = std::env::var("VELOLLM_TEST_REDIS_URL") else {
        return required("VELOLLM_TEST_REDIS_URL", "run scripts/test.sh, which starts redis-server");
    };
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or("").to_owned();
    if tokio::net::TcpStream::connect(&addr).await.is_ok() {
        Some(url)
    } else {
        required(&format!("a redis-server at {url}"), "scripts/redis.sh start 16379")
    }
}

/// A request no earlier run has cached (the shared store outlives test runs).
fn unique(text: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{text} [{nanos}]")
}

fn chat(model: &str, content: &str, stream: bool) -> Value {
    json!({
        "model": model, "temperature": 0, "max_tokens": 16, "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": content}],
    })
}

#[tokio::test]
async fn llama_server_through_the_proxy_streams_and_repeats_are_hits() {
    let Some(url) = llama_server().await else { return };
    let proxy = start(config(&url)).await;
    let prompt = unique("Name a colour.");
    let miss = post(proxy.addr, "/v1/chat/completions", &chat("smollm2", &prompt, true)).await;
    assert_eq!((miss.status, miss.header("x-velollm-cache")), (200, "miss"), "{}", miss.text());
    assert!(miss.text().ends_with("data: [DONE]\n\n"), "{}", miss.text());
    assert!(miss.frames.len() > 3, "passed through frame by frame, not buffered: {} frames", miss.frames.len());
    let hit = post(proxy.addr, "/v1/chat/completions", &chat("smollm2", &prompt, true)).await;
    assert_eq!(hit.header("x-velollm-cache"), "hit");
    assert_eq!(hit.body(), miss.body());
    assert!(hit.frames[0].0 < miss.frames[0].0, "the hit's first byte comes before the miss's");
    // llama-server closes the connection after every stream: the next requests go out on fresh ones.
    for i in 0..3 {
        let r =
            post(proxy.addr, "/v1/chat/completions", &chat("smollm2", &unique(&format!("Count to {i}.")), true)).await;
        assert_eq!((r.status, r.header("x-velollm-cache")), (200, "miss"), "{}", r.text());
    }
    // Its own routes: non-streamed chat, /completion, /tokenize, and its /health under the upstream prefix.
    let body = chat("smollm2", &unique("Say yes."), false);
    let first = post(proxy.addr, "/v1/chat/completions", &body).await;
    assert!(first.json()["choices"][0]["message"]["content"].is_string(), "{}", first.text());
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &body).await.body(), first.body());
    let completion = json!({"prompt": unique("The sky is"), "n_predict": 8, "temperature": 0, "stream": true});
    let r = post(proxy.addr, "/completion", &completion).await;
    assert_eq!((r.status, r.header("x-velollm-cache")), (200, "miss"), "{}", r.text());
    assert_eq!(post(proxy.addr, "/completion", &completion).await.header("x-velollm-cache"), "hit");
    let r = post(proxy.addr, "/tokenize", &json!({"content": "hello world"})).await;
    assert!(r.json()["tokens"].is_array(), "{}", r.text());
    let r = common::send(proxy.addr, "GET", "/upstream/up/health", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn two_replicas_share_answers_through_redis() {
    let Some(redis) = redis_url().await else { return };
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(5), ..Script::default() }).await;
    let mut c = config(&fake.url());
    c.cache.store = redis;
    let a = start(c.clone()).await;
    let b = start(c).await;
    let body = chat("fake-model", &unique("shared"), true);
    let miss = post(a.addr, "/v1/chat/completions", &body).await;
    assert_eq!(miss.header("x-velollm-cache"), "miss");
    // The write to Redis follows the end of the answer.
    let deadline = Instant::now() + Duration::from_secs(2);
    let hit = loop {
        let r = post(b.addr, "/v1/chat/completions", &body).await;
        if r.header("x-velollm-cache") == "hit" || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(hit.header("x-velollm-cache"), "hit", "replica B serves replica A's answer");
    assert_eq!(hit.body(), miss.body());
    assert_eq!(fake.request_count(), 1);
}

/// A redis-server of this test's own, on a free port.
fn own_redis() -> Option<(Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Some((c, port)),
        Err(_) => {
            required("redis-server", "scripts/redis.sh start installs it");
            None
        }
    }
}

#[tokio::test]
async fn when_redis_goes_away_requests_are_served_from_upstream_and_counted() {
    let Some((mut redis, port)) = own_redis() else { return };
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(2), ..Script::default() }).await;
    let mut c = config(&fake.url());
    c.cache.store = format!("redis://127.0.0.1:{port}");
    let proxy = start(c).await;
    let body = chat("fake-model", "hello", false);
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &body).await.header("x-velollm-cache"), "miss");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(post(proxy.addr, "/v1/chat/completions", &body).await.header("x-velollm-cache"), "hit");
    redis.kill().unwrap();
    redis.wait().unwrap();
    let started = Instant::now();
    let r = post(proxy.addr, "/v1/chat/completions", &body).await;
    assert_eq!((r.status, r.header("x-velollm-cache")), (200, "miss"));
    assert!(started.elapsed() < Duration::from_secs(2), "a store that is gone costs at most its deadline");
    assert_eq!(proxy.metrics.lookups("exact", Lookup::Error), 1);
    assert_eq!(fake.request_count(), 2);
}
