//! The semantic layer against real parts: llama-server with SmolLM2 (`VELOLLM_TEST_SERVER_URL`) upstream and
//! the real all-MiniLM-L6-v2 (`VELOLLM_EMBEDDER_MODEL`, fetched by `scripts/embedder.sh`), in process and
//! behind an OpenAI-compatible `/v1/embeddings`. Without them the tests are skipped with a message — except
//! with `CI=true`, where a missing part is a failure.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::routing::post as route_post;
use common::{Running, config, post, send, start};
use serde_json::{Value, json};
use velollm_embed::SentenceEncoder;
use velollm_proxy::ProxyConfig;
use velollm_proxy::metrics::Lookup;

fn required(what: &str, fix: &str) -> Option<String> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {what} is missing: {fix}");
    }
    eprintln!("skipped: {what} is missing ({fix})");
    None
}

/// The llama-server of `scripts/test.sh` and the embedding model's directory.
async fn parts() -> Option<(String, PathBuf)> {
    let url = std::env::var("VELOLLM_TEST_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    if tokio::net::TcpStream::connect(&addr).await.is_err() {
        required(&format!("a llama-server at {url}"), "run scripts/test.sh, or scripts/llama-server.sh start")?;
    }
    let Some(model) = std::env::var_os("VELOLLM_EMBEDDER_MODEL") else {
        required("VELOLLM_EMBEDDER_MODEL", "run scripts/test.sh, or export $(scripts/embedder.sh env)")?;
        return None;
    };
    Some((url, PathBuf::from(model)))
}

fn semantic(url: &str, model: &std::path::Path, threshold: f32) -> ProxyConfig {
    let mut c = config(url);
    c.semantic.enabled = true;
    c.semantic.model_dir = Some(model.to_owned());
    c.semantic.threshold = threshold;
    c
}

/// A question no earlier run asked (the llama-server's own prompt cache does not matter, the proxy's is new
/// per test; the marker keeps answers distinct between tests that share a proxy).
fn chat(system: &str, question: &str, stream: bool) -> Value {
    json!({
        "model": "smollm2", "temperature": 0, "max_tokens": 12, "stream": stream,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    })
}

fn score(note: &str) -> f32 {
    note.split("; ").find_map(|p| p.strip_prefix("score=")).and_then(|s| s.parse().ok()).unwrap_or(f32::NAN)
}

async fn ask(proxy: &Running, body: &Value) -> (String, Vec<u8>) {
    let r = post(proxy.addr, "/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (r.header("x-velollm-cache").to_owned(), r.body())
}

#[tokio::test]
async fn a_paraphrase_gets_the_answer_as_a_valid_stream_and_then_hits_exactly() {
    let Some((url, model)) = parts().await else { return };
    let proxy = start(semantic(&url, &model, 0.85)).await;
    let (seed, answer) = ask(&proxy, &chat("Answer briefly.", "How do I reset my password?", true)).await;
    assert!(seed.starts_with("miss; layer=semantic; key=") && !seed.contains("score="), "{seed}");
    let key = seed.split("; ").find_map(|p| p.strip_prefix("key=")).unwrap().to_owned();
    let paraphrase = chat("Answer briefly.", "I forgot my password, how can I reset it?", true);
    let (note, body) = ask(&proxy, &paraphrase).await;
    assert!(note.starts_with("hit; layer=semantic; score=0.9"), "{note}");
    assert!(note.contains("embed_ms=") && note.contains("search_ms="), "{note}");
    assert!(note.contains(&format!("entry={key}")), "the hit names the seed's entry: {note}");
    assert_eq!(body, answer, "the neighbour's answer, replayed byte for byte");
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"), "a complete OpenAI stream");
    // The hit filled the exact layer under the paraphrase's own key.
    assert_eq!(ask(&proxy, &paraphrase).await.0, "hit");
    assert_eq!(proxy.metrics.lookups("semantic", Lookup::Hit), 1);
    // Non-streaming requests are another context (`stream` is part of it): a JSON question never gets a stream.
    let (json_note, json_body) = ask(&proxy, &chat("Answer briefly.", "How can I reset my password?", false)).await;
    assert!(json_note.starts_with("miss; layer=semantic"), "{json_note}");
    assert!(serde_json::from_slice::<Value>(&json_body).is_ok());
}

#[tokio::test]
async fn near_misses_other_contexts_tenants_and_tools_never_share_an_answer() {
    let Some((url, model)) = parts().await else { return };
    // A low threshold, so that the guard and the context are what keep these apart.
    let proxy = start(semantic(&url, &model, 0.6)).await;
    ask(&proxy, &chat("Be brief.", "How do I enable 2FA on my account?", false)).await;
    let (note, _) = ask(&proxy, &chat("Be brief.", "How do I disable 2FA on my account?", false)).await;
    assert!(note.contains("guard=antonym"), "{note}");
    assert!(score(&note) >= 0.6, "{note}");
    ask(&proxy, &chat("Be brief.", "What is 15% of 80?", false)).await;
    let (note, _) = ask(&proxy, &chat("Be brief.", "What is 15% of 90?", false)).await;
    assert!(note.contains("guard=number"), "{note}");
    // Another system prompt is another context: nothing to compare with.
    let (note, _) = ask(&proxy, &chat("Be very brief.", "How do I enable 2FA on my account?", false)).await;
    assert!(note.starts_with("miss; layer=semantic; key=") && !note.contains("score="), "an empty context: {note}");
    // Another tenant likewise.
    let body = chat("Be brief.", "How can I enable 2FA on my account?", false).to_string();
    let r = send(proxy.addr, "POST", "/v1/chat/completions", &[("authorization", "Bearer other")], &body).await;
    let note = r.header("x-velollm-cache");
    assert!(note.starts_with("miss; layer=semantic; key=") && !note.contains("score="), "another tenant: {note}");
    // Tool results bypass the layer.
    let tools = json!({
        "model": "smollm2", "temperature": 0, "max_tokens": 8,
        "messages": [
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": "sunny"},
            {"role": "user", "content": "So, what is the weather?"},
        ],
    });
    let r = post(proxy.addr, "/v1/chat/completions", &tools).await;
    assert_eq!(r.header("x-velollm-cache"), "miss; layer=semantic; skip=tools", "{}", r.text());
    assert!(proxy.metrics.render().contains("velollm_proxy_semantic_guard_blocks_total{reason=\"antonym\"} 1"));
}

#[tokio::test]
async fn a_remote_embedder_works_and_one_that_is_down_makes_misses_not_errors() {
    let Some((url, model)) = parts().await else { return };
    // The same model behind an OpenAI-compatible /v1/embeddings, in this process.
    let encoder = Arc::new(SentenceEncoder::load(&model).expect("the model loads"));
    let app = axum::Router::new().route(
        "/v1/embeddings",
        route_post(move |Json(body): Json<Value>| {
            let encoder = Arc::clone(&encoder);
            async move {
                let text = body["input"].as_str().unwrap_or("").to_owned();
                let v = tokio::task::spawn_blocking(move || encoder.embed(&text).unwrap()).await.unwrap();
                Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": v}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let embed_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut c = semantic(&url, &model, 0.85);
    c.semantic.embedder = embed_url.clone();
    c.semantic.model = "all-MiniLM-L6-v2".into();
    let proxy = start(c).await;
    ask(&proxy, &chat("Answer briefly.", "What is the capital of France?", false)).await;
    let (note, _) = ask(&proxy, &chat("Answer briefly.", "Which city is the capital of France?", false)).await;
    assert!(note.starts_with("hit; layer=semantic"), "{note}");

    // An embedder that is down: every request is served from upstream, and counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut c = semantic(&url, &model, 0.85);
    c.semantic.embedder = dead;
    let proxy = start(c).await;
    for _ in 0..2 {
        let (note, body) = ask(&proxy, &chat("Answer briefly.", "What is the capital of Spain?", false)).await;
        assert!(note == "miss; layer=semantic; error" || note == "hit", "{note}");
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
    }
    assert_eq!(proxy.metrics.lookups("semantic", Lookup::Error), 1);
}

#[tokio::test]
async fn a_missing_model_or_a_bad_setting_is_refused_at_start_with_the_fix() {
    let mut c = config("http://127.0.0.1:9");
    c.semantic.enabled = true;
    c.semantic.model_dir = Some(PathBuf::from("/nonexistent/model"));
    let Err(err) = velollm_proxy::Proxy::bind(c).await else { panic!("a missing model is refused") };
    let err = err.to_string();
    assert!(err.contains("scripts/embedder.sh"), "{err}");
    let mut c = config("http://127.0.0.1:9");
    c.semantic.enabled = true;
    c.semantic.threshold = 1.5;
    assert!(c.validate().unwrap_err().0.contains("(0, 1]"));
    c.semantic.threshold = 0.9;
    c.cache.store = "off".into();
    assert!(c.validate().unwrap_err().0.contains("exact cache"));
}

/// The Redis Stack server of `scripts/test.sh` (`VELOLLM_TEST_REDIS_STACK_URL`).
async fn redis_stack() -> Option<String> {
    let Ok(url) = std::env::var("VELOLLM_TEST_REDIS_STACK_URL") else {
        required("VELOLLM_TEST_REDIS_STACK_URL", "run scripts/test.sh, which starts scripts/redis-stack.sh")?;
        return None;
    };
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or("").to_owned();
    if tokio::net::TcpStream::connect(&addr).await.is_ok() {
        Some(url)
    } else {
        required(&format!("a Redis Stack server at {url}"), "scripts/redis-stack.sh start 16380")
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A replica that keeps its answers in Redis (`answers`) and its questions in `questions`, under `index`.
fn replica(url: &str, model: &std::path::Path, answers: &str, questions: &str, index: String) -> ProxyConfig {
    let mut c = semantic(url, model, 0.85);
    c.cache.store = answers.to_owned();
    c.semantic.store = questions.to_owned();
    c.semantic.index = index;
    c
}

/// Two replicas of `config`: B lends A's answer to a paraphrase, once A's question has landed in the shared
/// store (it is written in the background). A system prompt no earlier run used, since the exact answers in
/// Redis outlive a run. Returns replica B and the system prompt.
async fn lend(config: &ProxyConfig, run: u128) -> (Running, String) {
    let a = start(config.clone()).await;
    let b = start(config.clone()).await;
    let system = format!("Answer briefly. [{run}]");
    let (seed, answer) = ask(&a, &chat(&system, "How do I reset my password?", false)).await;
    assert!(seed.starts_with("miss; layer=semantic"), "{seed}");
    let paraphrase = chat(&system, "I forgot my password, how can I reset it?", false).to_string();
    let mut note = String::new();
    for _ in 0..100 {
        // no-store: a miss stores nothing, so only A's question can make this a hit.
        let r = send(b.addr, "POST", "/v1/chat/completions", &[("cache-control", "no-store")], &paraphrase).await;
        note = r.header("x-velollm-cache").to_owned();
        if note.starts_with("hit") {
            assert_eq!(r.body(), answer, "replica B lends replica A's answer");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(note.starts_with("hit; layer=semantic; score="), "{note}");
    (b, system)
}

#[tokio::test]
async fn replicas_lend_each_other_answers_through_redis_stack() {
    let Some((url, model)) = parts().await else { return };
    let Some(stack) = redis_stack().await else { return };
    let run = nanos();
    let replica = |index: String| replica(&url, &model, &stack, &stack, index);
    lend(&replica(format!("velollm-test-{run}")), run).await;

    // An index built for another dimension is refused at start, naming both.
    let other = format!("velollm-test-dim-{run}");
    let r = velollm_proxy::semantic::redis_vectors::RedisVectors::new(
        &stack,
        &other,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    r.ensure(8).await.unwrap();
    let Err(err) = velollm_proxy::Proxy::bind(replica(other)).await else { panic!("another dimension is refused") };
    let err = err.to_string();
    assert!(err.contains("8-dimension") && err.contains("384"), "{err}");
}

/// The Postgres with pgvector of `scripts/test.sh` (`VELOLLM_TEST_PGVECTOR_URL`).
async fn pgvector() -> Option<String> {
    let Ok(url) = std::env::var("VELOLLM_TEST_PGVECTOR_URL") else {
        required("VELOLLM_TEST_PGVECTOR_URL", "run scripts/test.sh, which starts scripts/pgvector.sh")?;
        return None;
    };
    let addr = url.trim_start_matches("postgres://").split('@').nth(1).and_then(|a| a.split('/').next());
    if tokio::net::TcpStream::connect(addr.unwrap_or("")).await.is_ok() {
        Some(url)
    } else {
        required(&format!("a Postgres with pgvector at {url}"), "scripts/pgvector.sh start 15433")
    }
}

/// A unit vector along `v`.
fn unit(v: [f32; 3]) -> [f32; 3] {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.map(|x| x / n)
}

/// The round trip every shared store passes, through the proxy's own `VectorStore`, on 3-dimension vectors:
/// `store` keeps questions a minute, `expired` is the same index keeping them not at all. The nearest question
/// within its context; the same question again replaces its row; a removed one is gone; another context's never
/// shows; an expired one never shows.
async fn finds_forgets_and_expires(
    store: &velollm_proxy::semantic::VectorStore,
    expired: &velollm_proxy::semantic::VectorStore,
) {
    use velollm_proxy::normalize::CacheKey;
    store.ensure(3).await.unwrap();
    store.ensure(3).await.expect("the same dimension again is fine");
    let (ctx, other) = (CacheKey([1; 32]), CacheKey([2; 32]));
    store.write(&ctx, &unit([1.0, 0.0, 0.0]), "east", &CacheKey([10; 32])).await.unwrap();
    store.write(&ctx, &unit([0.0, 1.0, 0.0]), "north", &CacheKey([11; 32])).await.unwrap();
    store.write(&other, &unit([1.0, 0.1, 0.0]), "elsewhere", &CacheKey([12; 32])).await.unwrap();
    let near = nearest_text(store, &ctx, "east").await.expect("a question");
    assert_eq!((near.text.as_str(), near.answer), ("east", CacheKey([10; 32])));
    assert!((near.score - 0.976).abs() < 0.01, "{}", near.score);
    store.write(&ctx, &unit([1.0, 0.0, 0.0]), "east, again", &CacheKey([10; 32])).await.unwrap();
    let near = nearest_text(store, &ctx, "east, again").await.expect("a question");
    assert_eq!(near.text, "east, again", "one row per context and answer");
    store.remove(&ctx, &CacheKey([10; 32])).await;
    let near = nearest_text(store, &ctx, "north").await.expect("a question");
    assert_eq!(near.text, "north", "the removed one is gone, and the other context's never shows");
    assert!(store.nearest(&CacheKey([3; 32]), &unit([1.0, 0.0, 0.0])).await.unwrap().is_none());
    expired.write(&CacheKey([4; 32]), &unit([1.0, 0.0, 0.0]), "gone", &CacheKey([13; 32])).await.unwrap();
    // Long enough for a Milvus server to have applied the write (its time tick is 200 ms).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(expired.nearest(&CacheKey([4; 32]), &unit([1.0, 0.0, 0.0])).await.unwrap().is_none(), "expired");
}

/// The question of `ctx` nearest to (0.9, 0.2, 0), once its text is `expected` or after 5 s: a Milvus server's
/// searches (bounded consistency) see a write or a removal a moment after it, the other stores at once.
async fn nearest_text(
    store: &velollm_proxy::semantic::VectorStore,
    ctx: &velollm_proxy::normalize::CacheKey,
    expected: &str,
) -> Option<velollm_proxy::semantic::index::Nearest> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let near = store.nearest(ctx, &unit([0.9, 0.2, 0.0])).await.unwrap();
        if near.as_ref().is_some_and(|n| n.text == expected) || std::time::Instant::now() > deadline {
            return near;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_pgvector_store_finds_forgets_and_expires_questions_within_their_context() {
    use std::time::Duration;
    use velollm_proxy::semantic::VectorStore;
    use velollm_proxy::semantic::pg_vectors::PgVectors;
    let Some(pg) = pgvector().await else { return };
    let table = format!("velollm-test-store-{}", nanos());
    let new = |ttl| PgVectors::new(&pg, &table, ttl, Duration::from_secs(5)).unwrap();
    let (store, expired) =
        (VectorStore::Postgres(new(Duration::from_secs(60))), VectorStore::Postgres(new(Duration::ZERO)));
    finds_forgets_and_expires(&store, &expired).await;
    let VectorStore::Postgres(store) = store else { unreachable!() };
    assert!(store.table_bytes().await.is_some_and(|b| b > 0));
    store.drop_table().await.unwrap();
}

#[tokio::test]
async fn replicas_lend_each_other_answers_through_pgvector() {
    let Some((url, model)) = parts().await else { return };
    // The answers themselves are shared through Redis (the exact layer); the questions through Postgres.
    let Some(stack) = redis_stack().await else { return };
    let Some(pg) = pgvector().await else { return };
    let run = nanos();
    let replica = |index: String| replica(&url, &model, &stack, &pg, index);
    let index = format!("velollm-test-{run}");
    let (b, _) = lend(&replica(index.clone()), run).await;
    // Another system prompt is another context: the same question misses there.
    let (other, _) = ask(&b, &chat(&format!("Answer in French. [{run}]"), "How do I reset my password?", false)).await;
    assert!(other.starts_with("miss; layer=semantic"), "{other}");

    // A table built for another dimension is refused at start, naming both; the benchmark's cleanup drops it.
    let other = format!("velollm-test-dim-{run}");
    let table = velollm_proxy::semantic::pg_vectors::PgVectors::new(
        &pg,
        &other,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    table.ensure(8).await.unwrap();
    let Err(err) = velollm_proxy::Proxy::bind(replica(other)).await else { panic!("another dimension is refused") };
    let err = err.to_string();
    assert!(err.contains("8-dimension") && err.contains("384"), "{err}");
    table.drop_table().await.unwrap();
    velollm_proxy::semantic::pg_vectors::PgVectors::new(
        &pg,
        &index,
        std::time::Duration::from_secs(60),
        std::time::Duration::from_secs(5),
    )
    .unwrap()
    .drop_table()
    .await
    .unwrap();
}

/// The two Milvus servers of `scripts/test.sh`: Milvus Lite (Python) and Milvus itself.
#[derive(Debug, Clone, Copy)]
enum Milvus {
    /// `VELOLLM_TEST_MILVUS_URL`, started by `scripts/milvus-lite.sh`.
    Lite,
    /// `VELOLLM_TEST_MILVUS_SERVER_URL`, started by `scripts/milvus.sh`.
    Server,
}

/// The URL of `which`, if it answers.
async fn milvus(which: Milvus) -> Option<String> {
    let (var, fix) = match which {
        Milvus::Lite => ("VELOLLM_TEST_MILVUS_URL", "scripts/milvus-lite.sh start 19531"),
        Milvus::Server => ("VELOLLM_TEST_MILVUS_SERVER_URL", "scripts/milvus.sh start 19541"),
    };
    let Ok(url) = std::env::var(var) else {
        required(var, &format!("run scripts/test.sh, or {fix}"))?;
        return None;
    };
    if tokio::net::TcpStream::connect(url.trim_start_matches("milvus://")).await.is_ok() {
        Some(url)
    } else {
        required(&format!("a {which:?} Milvus at {url}"), fix)
    }
}

#[tokio::test]
async fn the_milvus_lite_store_finds_forgets_and_expires_questions_within_their_context() {
    milvus_store_round_trip(Milvus::Lite).await;
}

#[tokio::test]
async fn the_milvus_server_store_finds_forgets_and_expires_questions_within_their_context() {
    milvus_store_round_trip(Milvus::Server).await;
}

#[tokio::test]
async fn replicas_lend_each_other_answers_through_milvus_lite() {
    replicas_through_milvus(Milvus::Lite).await;
}

#[tokio::test]
async fn replicas_lend_each_other_answers_through_a_milvus_server() {
    replicas_through_milvus(Milvus::Server).await;
}

async fn milvus_store_round_trip(which: Milvus) {
    use std::time::Duration;
    use velollm_proxy::normalize::CacheKey;
    use velollm_proxy::semantic::VectorStore;
    use velollm_proxy::semantic::milvus_vectors::MilvusVectors;
    let Some(url) = milvus(which).await else { return };
    let collection = format!("velollm-test-store-{}", nanos());
    let new = |ttl| MilvusVectors::new(&url, &collection, ttl, Duration::from_secs(10)).unwrap();
    let (store, expired) =
        (VectorStore::Milvus(new(Duration::from_secs(60))), VectorStore::Milvus(new(Duration::ZERO)));
    finds_forgets_and_expires(&store, &expired).await;
    let e = store.ensure(4).await.unwrap_err();
    assert!(e.contains("3-dimension") && e.contains("makes 4"), "{e}");
    let VectorStore::Milvus(milvus) = &store else { unreachable!() };
    // Milvus Lite says `milvus_lite-3.2.2`, the server `v2.3.5-lite` (the name PyPI's launcher gives it).
    let version = milvus.server_version().await.unwrap();
    let expected = match which {
        Milvus::Lite => "milvus_lite-3.",
        Milvus::Server => "v2.3.",
    };
    assert!(version.starts_with(expected), "{version}");
    milvus.drop_collection().await.unwrap();
    // A collection that is gone says so, and the proxy's store makes it again on the next lookup.
    let ctx = CacheKey([1; 32]);
    let e = milvus.nearest(&ctx, &unit([1.0, 0.0, 0.0])).await.unwrap_err();
    assert!(e.contains("does not exist") || e.contains("not found"), "{e}");
    assert!(store.nearest(&ctx, &unit([1.0, 0.0, 0.0])).await.unwrap().is_none(), "made again, empty");
    milvus.drop_collection().await.unwrap();
}

async fn replicas_through_milvus(which: Milvus) {
    let Some((url, model)) = parts().await else { return };
    // The answers themselves are shared through Redis (the exact layer); the questions through Milvus.
    let Some(stack) = redis_stack().await else { return };
    let Some(milvus) = milvus(which).await else { return };
    let run = nanos();
    let replica = |index: String| replica(&url, &model, &stack, &milvus, index);
    let index = format!("velollm-test-{run}");
    let (b, _) = lend(&replica(index.clone()), run).await;
    let (other, _) = ask(&b, &chat(&format!("Answer in French. [{run}]"), "How do I reset my password?", false)).await;
    assert!(other.starts_with("miss; layer=semantic"), "{other}");

    // A collection built for another dimension is refused at start, naming both.
    let other = format!("velollm-test-dim-{run}");
    let timeout = std::time::Duration::from_secs(10);
    let new = |name: &str| {
        velollm_proxy::semantic::milvus_vectors::MilvusVectors::new(&milvus, name, timeout, timeout).unwrap()
    };
    new(&other).ensure(8).await.unwrap();
    let Err(err) = velollm_proxy::Proxy::bind(replica(other.clone())).await else {
        panic!("another dimension is refused")
    };
    let err = err.to_string();
    assert!(err.contains("8-dimension") && err.contains("384"), "{err}");
    new(&other).drop_collection().await.unwrap();
    new(&index).drop_collection().await.unwrap();
}

#[tokio::test]
async fn a_vector_store_that_is_down_makes_misses_and_is_counted() {
    let Some((url, model)) = parts().await else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("redis://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut c = semantic(&url, &model, 0.85);
    c.semantic.store = dead;
    let proxy = start(c).await;
    let (note, body) = ask(&proxy, &chat("Answer briefly.", "What is the capital of Italy?", false)).await;
    assert_eq!(note, "miss; layer=semantic; error");
    assert!(serde_json::from_slice::<Value>(&body).is_ok(), "served from upstream");
    assert_eq!(proxy.metrics.lookups("semantic", Lookup::Error), 1);

    // The same with a Postgres store that is down (and a password, which no message shows).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("postgres://velollm:hunter2@{}/db", closed.local_addr().unwrap());
    drop(closed);
    let mut c = semantic(&url, &model, 0.85);
    c.semantic.store = dead;
    let proxy = start(c).await;
    let (note, body) = ask(&proxy, &chat("Answer briefly.", "What is the capital of Spain?", false)).await;
    assert_eq!(note, "miss; layer=semantic; error");
    assert!(serde_json::from_slice::<Value>(&body).is_ok(), "served from upstream");
    assert_eq!(proxy.metrics.lookups("semantic", Lookup::Error), 1);

    // And with a Milvus store that is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("milvus://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut c = semantic(&url, &model, 0.85);
    c.semantic.store = dead;
    let proxy = start(c).await;
    let (note, body) = ask(&proxy, &chat("Answer briefly.", "What is the capital of Portugal?", false)).await;
    assert_eq!(note, "miss; layer=semantic; error");
    assert!(serde_json::from_slice::<Value>(&body).is_ok(), "served from upstream");
    assert_eq!(proxy.metrics.lookups("semantic", Lookup::Error), 1);
}

/// Learned thresholds against the real embedder, with an upstream whose answer depends on the question, so
/// that agreement is known: every paraphrase of the password question gets the same answer, the username
/// question another.
#[tokio::test]
async fn learned_thresholds_serve_once_entries_have_agreed_and_never_lend_a_disagreeing_answer() {
    use velollm_testkit::{FakeServer, Flavor, Script};
    let Some(model) = std::env::var_os("VELOLLM_EMBEDDER_MODEL") else {
        let _ = required("VELOLLM_EMBEDDER_MODEL", "run scripts/test.sh, or export $(scripts/embedder.sh env)");
        return;
    };
    let replies = vec![
        ("password".to_owned(), "Open Settings, then choose Reset password.".to_owned()),
        ("username".to_owned(), "Usernames cannot be changed.".to_owned()),
    ];
    let script = Script { replies, model: "smollm2".into(), ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let learning = |delta: f32| {
        let mut c = semantic(&fake.url(), std::path::Path::new(&model), 0.7);
        c.semantic.delta = Some(delta);
        c
    };
    let paraphrases = [
        "How can I reset my password?",
        "How do I reset my password please?",
        "How to reset my password?",
        "What are the steps to reset my password?",
        "how do i reset my password",
        "Help me reset my password.",
        "Can you tell me how to reset my password?",
        "How would I reset my password?",
        "Tell me how to reset my password.",
        "I need to reset my password: how do I do it?",
        "Please explain how to reset my password.",
        "Show me how to reset my password.",
    ];

    // δ = 25 %: an entry starts at an estimated one half, so half its candidates explore; each agreement
    // lowers the estimate for candidates at least as close, until they are all served.
    let proxy = start(learning(0.25)).await;
    let (_, answer) = ask(&proxy, &chat("Be brief.", "How do I reset my password?", false)).await;
    let mut hits = 0;
    for p in paraphrases {
        let (note, body) = ask(&proxy, &chat("Be brief.", p, false)).await;
        if note.starts_with("hit; layer=semantic") {
            assert!(note.contains("p_err="), "{note}");
            assert_eq!(body, answer, "{p}");
            hits += 1;
        } else {
            assert!(note.contains("; explore; p_err="), "{p}: {note}");
        }
        // The comparison runs once the answer is stored: let it land before the next question.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let m = &proxy.metrics;
    assert!(m.semantic_learned("explore") >= 1, "a new entry explores");
    assert_eq!(m.semantic_learned("agree"), m.semantic_learned("explore"), "every paraphrase agreed");
    assert!(hits >= paraphrases.len() / 2, "{hits} of {} served once the entry had agreed", paraphrases.len());

    // δ = 1 %: a question whose answer differs explores (1 chance in 50 of being served at one half); the
    // disagreement is recorded on the password entry, and the question gets an entry of its own, which its
    // paraphrase finds next (and explores: a new entry).
    let proxy = start(learning(0.01)).await;
    ask(&proxy, &chat("Be brief.", "How do I reset my password?", false)).await;
    let (note, body) = ask(&proxy, &chat("Be brief.", "How do I reset my username?", false)).await;
    assert!(note.contains("; explore; p_err=0.5000"), "{note}");
    assert!(String::from_utf8_lossy(&body).contains("Usernames cannot be changed."));
    let entry = note.split("; ").find_map(|p| p.strip_prefix("key=")).unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(proxy.metrics.semantic_learned("disagree"), 1);
    let (note, body) = ask(&proxy, &chat("Be brief.", "How can I reset my username?", false)).await;
    assert!(note.contains(&format!("entry={entry}")) && note.contains("; explore;"), "{note}");
    assert!(String::from_utf8_lossy(&body).contains("Usernames cannot be changed."));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(proxy.metrics.semantic_learned("agree"), 1);

    // A request sent with no-store that explores still teaches the entry: its answer is read and compared,
    // and neither kept nor indexed.
    let proxy = start(learning(0.01)).await;
    ask(&proxy, &chat("Be brief.", "How do I reset my password?", false)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut explored = None;
    for p in paraphrases {
        let body = chat("Be brief.", p, false).to_string();
        let r = send(proxy.addr, "POST", "/v1/chat/completions", &[("cache-control", "no-store")], &body).await;
        if r.header("x-velollm-cache").contains("; explore;") {
            explored = Some(body);
            break;
        }
    }
    let explored = explored.expect("at δ = 1 %, a new entry's candidates explore");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(proxy.metrics.semantic_learned("agree"), 1, "the no-store answer taught the entry");
    let again = send(proxy.addr, "POST", "/v1/chat/completions", &[], &explored).await;
    assert_ne!(again.header("x-velollm-cache"), "hit", "the no-store answer was not stored");
}

/// Learned thresholds shared by two replicas through the exact cache's Redis: what replica A learned by
/// exploring, replica B decides with, without having explored anything itself.
#[tokio::test]
async fn replicas_share_what_their_learned_thresholds_observed_through_redis() {
    use velollm_testkit::{FakeServer, Flavor, Script};
    let Some(model) = std::env::var_os("VELOLLM_EMBEDDER_MODEL") else {
        let _ = required("VELOLLM_EMBEDDER_MODEL", "run scripts/test.sh, or export $(scripts/embedder.sh env)");
        return;
    };
    let Some(stack) = redis_stack().await else { return };
    let replies = vec![("password".to_owned(), "Open Settings, then choose Reset password.".to_owned())];
    let script = Script { replies, model: "smollm2".into(), ..Script::default() };
    let fake = FakeServer::start(Flavor::OpenAi, script).await;
    let run = nanos();
    let mut c = replica(&fake.url(), std::path::Path::new(&model), &stack, &stack, format!("velollm-test-learn-{run}"));
    c.semantic.threshold = 0.7;
    c.semantic.delta = Some(0.25);
    let (a, b) = (start(c.clone()).await, start(c).await);
    let system = format!("Be brief. [{run}]");
    let (seed, answer) = ask(&a, &chat(&system, "How do I reset my password?", false)).await;
    assert!(seed.starts_with("miss; layer=semantic"), "{seed}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let paraphrases = [
        "How can I reset my password?",
        "What are the steps to reset my password?",
        "Help me reset my password.",
        "Can you tell me how to reset my password?",
        "How would I reset my password?",
        "Tell me how to reset my password.",
        "I need to reset my password: how do I do it?",
        "Please explain how to reset my password.",
        "Show me how to reset my password.",
        "How to reset my password?",
    ];
    // δ = 25 %: an entry starts at one half, so its first candidates explore half the time; once one has
    // agreed, the rest are mostly served.
    for p in paraphrases {
        ask(&a, &chat(&system, p, false)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let agreed = a.metrics.semantic_learned("agree");
    assert!(agreed >= 1, "replica A explored and agreed {agreed} times");
    assert_eq!(a.metrics.semantic_learned("disagree"), 0);
    assert_eq!(a.metrics.semantic_learned("shared-error"), 0);

    // B has explored nothing: alone, its estimate for the seed would be one half. With A's observations read
    // from Redis, the entry's and the pooled ones, it is A's: (0 + 4 × 1/(k + 2)) / (k + 4) for k agreements
    // (all at a similarity at or below B's). The same question in lower case: another exact key, the same
    // embedding (the model is uncased).
    let (note, body) = ask(&b, &chat(&system, "how do i reset my password?", false)).await;
    let p_err: f32 = note.split("; ").find_map(|p| p.strip_prefix("p_err=")).unwrap().parse().unwrap();
    let k = agreed as f32;
    assert!((p_err - 4.0 / (k + 2.0) / (k + 4.0)).abs() < 1e-3, "B decided with A's {agreed} agreements: {note}");
    if note.starts_with("hit; layer=semantic") {
        assert_eq!(body, answer);
    } else {
        assert!(note.contains("; explore;"), "{note}");
    }
    assert_eq!(b.metrics.semantic_learned("shared-error"), 0);

    // What Redis holds is similarities and agreements, nothing of the questions or answers.
    let client = velollm_proxy::resp::Client::new(&stack, std::time::Duration::from_secs(2), "--cache").unwrap();
    let pooled = format!("velollm:learn:v1:velollm-test-learn-{run}:pooled");
    let reply = client.call(&[b"LRANGE", pooled.as_bytes(), b"0", b"-1"]).await.unwrap();
    let velollm_proxy::resp::Reply::Array(Some(items)) = reply else { panic!("{reply:?}") };
    assert!(items.len() as u64 >= agreed);
    for item in items {
        let text = item.text().unwrap();
        let (score, bit) = text.split_once(':').unwrap();
        assert!(score.parse::<f32>().is_ok() && (bit == "0" || bit == "1"), "{text}");
    }
}
