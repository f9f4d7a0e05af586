//! Routing and hedging in the proxy, against in-process fake upstreams with exact models, delays and faults:
//! which tier a request goes to and why, the fallback when a tier fails, and a hedged branch that cuts an
//! injected tail. The vote of the nearest examples runs on the real all-MiniLM-L6-v2
//! (`VELOLLM_EMBEDDER_MODEL`, fetched by `scripts/embedder.sh`); hedging also runs in front of the real
//! llama-server of `scripts/test.sh`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Running, post, send, start};
use serde_json::{Value, json};
use velollm_proxy::ProxyConfig;
use velollm_proxy::config::TierConfig;
use velollm_testkit::{FakeServer, Fault, Flavor, Script};

fn required(what: &str, fix: &str) -> Option<String> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but {what} is missing: {fix}");
    }
    eprintln!("skipped: {what} is missing ({fix})");
    None
}

fn tier(name: &str, upstream: &str, model: &str) -> TierConfig {
    TierConfig { name: name.into(), upstream: upstream.into(), model: Some(model.into()), timeout: None }
}

async fn fake(model: &str, script: Script) -> FakeServer {
    FakeServer::start(Flavor::OpenAi, Script { model: model.into(), ..script }).await
}

/// A quick upstream: first token after 5 ms, then one every millisecond.
fn quick() -> Script {
    Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), ..Script::default() }
}

/// A proxy with a `small` and a `large` tier on two fake upstreams.
fn tiers(small: &FakeServer, large: &FakeServer) -> ProxyConfig {
    let mut c = ProxyConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ProxyConfig::default() };
    c.add_upstream_flag(&format!("local={}", small.url())).unwrap();
    c.add_upstream_flag(&format!("cloud={}", large.url())).unwrap();
    c.routing.tiers = vec![tier("small", "local", "small-m"), tier("large", "cloud", "large-m")];
    let small = ["validation", "formatting", "linting", "classification"];
    c.routing.tasks = small.map(|t| (t.to_owned(), "small".to_owned())).into();
    c
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "temperature": 0, "stream": true, "messages": [{"role": "user", "content": text}]})
}

async fn ask(proxy: &Running, headers: &[(&str, &str)], body: &Value) -> common::Reply {
    send(proxy.addr, "POST", "/v1/chat/completions", headers, &body.to_string()).await
}

#[tokio::test]
async fn rules_and_the_task_header_pick_the_tier_and_say_why() {
    let (small, large) = (fake("small-m", quick()).await, fake("large-m", quick()).await);
    let proxy = start(tiers(&small, &large)).await;
    let r = ask(&proxy, &[("x-velollm-task", "linting")], &chat("auto", "find the bug")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let route = r.header("x-velollm-route");
    assert!(route.starts_with("tier=small; reason=header; task=linting; ms="), "{route}");
    assert_eq!(r.header("x-velollm-upstream"), "local");
    assert_eq!(small.requests()[0].1["model"], "small-m", "the tier's model is sent");
    assert!(small.request_headers()[0].iter().all(|(k, _)| k != "x-velollm-task"), "the task header stays here");

    let mut tools = chat("auto", "what is the weather");
    tools["tools"] = json!([{"type": "function", "function": {"name": "weather"}}]);
    let r = ask(&proxy, &[], &tools).await;
    assert!(r.header("x-velollm-route").starts_with("tier=large; reason=tools"), "{}", r.header("x-velollm-route"));
    assert_eq!(large.requests()[0].1["model"], "large-m");

    // No examples: nothing votes, the large tier answers.
    let r = ask(&proxy, &[], &chat("auto", "reformat this")).await;
    assert!(r.header("x-velollm-route").starts_with("tier=large; reason=abstain"), "{}", r.header("x-velollm-route"));
    // A type the router does not route goes large; an unknown one is the caller's error.
    let r = ask(&proxy, &[("x-velollm-task", "reasoning")], &chat("auto", "why")).await;
    assert!(r.header("x-velollm-route").starts_with("tier=large; reason=header; task=reasoning"));
    let r = ask(&proxy, &[("x-velollm-task", "poetry")], &chat("auto", "a poem")).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown task type \\\"poetry\\\"") && r.text().contains("validation"), "{}", r.text());

    // Another model name is not routed: the first upstream, as sent, no route header.
    let r = ask(&proxy, &[], &chat("small-m", "hi")).await;
    assert_eq!((r.status, r.header("x-velollm-route")), (200, ""));

    // A routed answer is cached under the routed name: the same request again is an exact hit.
    let r = ask(&proxy, &[("x-velollm-task", "linting")], &chat("auto", "find the bug")).await;
    assert_eq!(r.header("x-velollm-cache"), "hit");
    let metrics = proxy.metrics.render();
    assert!(metrics.contains("velollm_proxy_route_decisions_total{tier=\"small\",reason=\"header\"} 1"), "{metrics}");
    assert!(metrics.contains("velollm_proxy_route_decisions_total{tier=\"large\",reason=\"tools\"} 1"), "{metrics}");
    assert!(metrics.contains("velollm_proxy_route_decision_seconds_count 4"), "{metrics}");
}

#[tokio::test]
async fn a_tier_that_fails_is_skipped_for_the_next_and_counted() {
    let failing = Fault::Status { code: 503, body: "{\"error\":\"overloaded\"}".into(), retry_after: None };
    let small = fake("small-m", Script { fault: failing, ..quick() }).await;
    let large = fake("large-m", quick()).await;
    let proxy = start(tiers(&small, &large)).await;
    let r = ask(&proxy, &[("x-velollm-task", "linting")], &chat("auto", "find the bug")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let route = r.header("x-velollm-route");
    assert!(
        route.starts_with("tier=large; reason=header; task=linting") && route.ends_with("fallback_from=small"),
        "{route}"
    );
    assert_eq!((small.request_count(), large.request_count()), (1, 1));

    // A tier that is down, and one slower than its timeout, are skipped the same way.
    let slow = fake("small-m", Script { ttft: Duration::from_secs(5), ..quick() }).await;
    let mut down = fake("small-m", quick()).await;
    down.stop().await;
    for small in [&down, &slow] {
        let mut c = tiers(small, &large);
        c.routing.tiers[0].timeout = Some(Duration::from_millis(200));
        let proxy = start(c).await;
        let r = ask(&proxy, &[("x-velollm-task", "formatting")], &chat("auto", "indent this")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-velollm-route").ends_with("fallback_from=small"), "{}", r.header("x-velollm-route"));
        let metrics = proxy.metrics.render();
        assert!(metrics.contains("velollm_proxy_route_fallbacks_total{from=\"small\",to=\"large\"} 1"), "{metrics}");
    }
    // The last tier failing is the caller's answer (in its dialect), never a hang.
    let mut c = tiers(&large, &down);
    c.routing.tasks.clear();
    let proxy = start(c).await;
    let r = ask(&proxy, &[], &chat("auto", "anything")).await;
    assert_eq!(r.status, 502);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("cannot connect to upstream \"cloud\""),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn the_nearest_labelled_examples_vote_with_the_real_embedder() {
    let Some(model) = std::env::var_os("VELOLLM_EMBEDDER_MODEL") else {
        required("VELOLLM_EMBEDDER_MODEL", "run scripts/test.sh, or export $(scripts/embedder.sh env)");
        return;
    };
    let (small, large) = (fake("small-m", quick()).await, fake("large-m", quick()).await);
    let mut c = tiers(&small, &large);
    c.semantic.model_dir = Some(PathBuf::from(model));
    c.routing.examples = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/routing-examples.jsonl"));
    let proxy = start(c).await;
    let r = ask(
        &proxy,
        &[],
        &chat("auto", "Reformat this date as YYYY-MM-DD: March 4th, 2021. Answer with the date only."),
    )
    .await;
    let route = r.header("x-velollm-route");
    assert!(route.starts_with("tier=small; reason=knn; task=formatting; confidence="), "{route}");
    let r = ask(
        &proxy,
        &[],
        &chat("auto", "A train leaves at 3 pm going 60 km/h, another at 4 pm going 90 km/h on the same track. When does the second catch up? Think step by step."),
    )
    .await;
    let route = r.header("x-velollm-route");
    assert!(route.starts_with("tier=large; reason=knn; task=reasoning"), "{route}");
    // Far from every example: the router abstains to the large tier.
    let r = ask(&proxy, &[], &chat("auto", "zxqv blorp fnord")).await;
    let route = r.header("x-velollm-route");
    assert!(
        route.starts_with("tier=large; reason=unfamiliar") || route.starts_with("tier=large; reason=abstain"),
        "{route}"
    );
}

#[tokio::test]
async fn a_hedged_branch_cuts_the_injected_tail_and_its_cost_is_counted() {
    // Every 4th request is 20× slower (5 ms → 100 ms... made 400 ms to stand clear of scheduling noise).
    let script = Script { ttft: Duration::from_millis(20), slow_every: Some((4, 20)), ..Script::default() };
    let upstream = FakeServer::start(Flavor::OpenAi, Script { model: "m".into(), ..script }).await;
    let mut c = common::config(&upstream.url());
    c.cache.store = "off".into();
    c.hedging.enabled = true;
    c.hedging.after = "100ms".into();
    let proxy = start(c).await;
    let mut slowest = Duration::ZERO;
    let mut hedged = 0;
    for i in 0..8 {
        let r = post(proxy.addr, "/v1/chat/completions", &chat("m", &format!("q{i}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().ends_with("data: [DONE]\n\n"), "a whole stream: {}", r.text());
        slowest = slowest.max(r.frames[0].0);
        let note = r.header("x-velollm-hedge").to_owned();
        if note.starts_with("branches=2; winner=1") {
            hedged += 1;
        } else {
            assert!(note.starts_with("branches=1; winner=0; after_ms=100.0"), "{note}");
        }
    }
    // Arrivals 4 and 8 were the slow ones: each was hedged, and the hedge won.
    assert_eq!(hedged, 2);
    assert_eq!(upstream.request_count(), 10);
    assert!(slowest < Duration::from_millis(300), "the 400 ms tail was cut: slowest first frame {slowest:?}");
    let metrics = proxy.metrics.render();
    assert!(metrics.contains("velollm_proxy_hedges_total{upstream=\"up\"} 2"), "{metrics}");
    assert!(metrics.contains("velollm_proxy_hedge_wins_total{branch=\"1\"} 2"), "{metrics}");
    assert!(metrics.contains("velollm_proxy_hedge_cancelled_total 2"), "{metrics}");
}

#[tokio::test]
async fn a_branch_that_cannot_connect_sends_the_next_at_once() {
    let mut down = FakeServer::start(Flavor::OpenAi, Script { model: "m".into(), ..Script::default() }).await;
    down.stop().await;
    let up = FakeServer::start(
        Flavor::OpenAi,
        Script { model: "m".into(), ttft: Duration::from_millis(5), ..Script::default() },
    )
    .await;
    let mut c = common::config(&down.url());
    c.add_upstream_flag(&format!("spare={}", up.url())).unwrap();
    c.hedging.enabled = true;
    c.hedging.after = "10s".into();
    c.hedging.upstreams = vec!["spare".into()];
    let proxy = start(c).await;
    let r = post(proxy.addr, "/v1/chat/completions", &chat("m", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-velollm-upstream"), "spare");
    assert!(r.header("x-velollm-hedge").starts_with("branches=2; winner=1"), "{}", r.header("x-velollm-hedge"));
    assert!(r.frames[0].0 < Duration::from_secs(2), "not after the 10 s delay: {:?}", r.frames[0].0);
}

#[tokio::test]
async fn hedging_in_front_of_the_real_llama_server_streams_a_valid_answer() {
    let url = std::env::var("VELOLLM_TEST_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    if tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.is_err() {
        required(&format!("a llama-server at {url}"), "run scripts/test.sh, or scripts/llama-server.sh start");
        return;
    }
    let mut c = common::config(&url);
    c.cache.store = "off".into();
    c.hedging.enabled = true;
    c.hedging.after = "1ms".into(); // always hedged: two branches race on the one server
    let proxy = start(c).await;
    let body = json!({"model": "smollm2", "max_tokens": 8, "stream": true, "messages": [{"role": "user", "content": "Say hi."}]});
    for _ in 0..3 {
        let r = post(proxy.addr, "/v1/chat/completions", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-velollm-hedge").starts_with("branches=2"), "{}", r.header("x-velollm-hedge"));
        assert!(r.text().trim_end().ends_with("data: [DONE]"), "{}", r.text());
    }
    // The loser is cancelled: the server is free for the next request (no answer waits behind a ghost).
    let health = send(proxy.addr, "GET", "/upstream/up/health", &[], "").await;
    assert_eq!(health.status, 200);
}
