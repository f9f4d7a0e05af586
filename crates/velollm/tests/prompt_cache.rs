//! The `prompt-cache` scenario end to end against the fakes' prompt-cache simulation: hit rates, TTFT and cost
//! from an automatic prefix cache (OpenAI), and the breakpoint and TTL studies on Anthropic's explicit cache.

use crate::common;

use common::{assert_valid, json, text};
use serde_json::Value;
use std::time::Duration;
use velollm_testkit::{CacheSim, FakeServer, Flavor, Script};

fn cached_script() -> Script {
    let cache = CacheSim { prefill_per_token: Duration::from_micros(200), ..CacheSim::default() };
    Script {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        tokens: 4,
        cache: Some(cache),
        ..Script::default()
    }
}

/// Run `velollm bench ARGS -o run.json`; returns the document and stdout.
async fn bench(args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"*\"]\ninput = 3.0\noutput = 15.0\ncache_write = 3.75\n").unwrap();
    let mut all: Vec<String> = vec!["bench".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--no-progress", "--prices", prices.to_str().unwrap(), "-o", out.to_str().unwrap()].map(String::from));
    let o = tokio::task::spawn_blocking(move || common::command().args(&all).output().unwrap()).await.unwrap();
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "velollm failed:\n{stdout}\n{stderr}");
    let doc = json(&out);
    assert_valid(&doc);
    (doc, stdout)
}

fn figure(doc: &Value, name: &str) -> f64 {
    doc["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "prompt_cache")
        .flat_map(|a| a["figures"].as_array().unwrap())
        .find(|f| f["name"] == name)
        .and_then(|f| f["value"].as_f64())
        .unwrap_or_else(|| panic!("no figure {name}: {:#}", doc["analyses"]))
}

fn notes(doc: &Value) -> Vec<String> {
    let a = doc["analyses"].as_array().unwrap().iter().find(|a| a["kind"] == "prompt_cache").unwrap();
    a["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

fn step<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_prefix_cache_hit_rate_ttft_and_cost() {
    let server = FakeServer::start(Flavor::OpenAi, cached_script()).await;
    let (doc, stdout) =
        bench(&["--url", &server.url(), "--backend", "openai-chat", "--scenario", "prompt-cache", "--iterations", "3"])
            .await;
    // The first cached request writes; the two others read the system prompt and the context back.
    assert!((figure(&doc, "hit_rate") - 200.0 / 3.0).abs() < 1e-9);
    assert!(figure(&doc, "token_hit_rate") > 60.0);
    // The fake's prefill costs 0.2 ms per uncached token: about 1150 tokens uncached, a few with the cache.
    assert!(figure(&doc, "ttft_reduction") > 80.0, "{}", figure(&doc, "ttft_reduction"));
    // Reads at 0.1 × input: the cached step costs less per request than the baseline.
    let cost = |s: &str| step(&doc, s)["cost"]["per_request"].as_f64().unwrap();
    assert!(cost("cached") < cost("uncached"));
    assert!(figure(&doc, "cost_reduction") > 40.0);
    assert!(
        notes(&doc).iter().any(|n| n.starts_with("seed criterion cache hit rate > 60 %: 66.7 %") && n.ends_with('✅'))
    );
    assert!(stdout.contains("cost: $"), "{stdout}");
    let verdicts = doc["verdicts"].as_array().unwrap();
    assert!(verdicts.iter().all(|v| v["passed"] == true), "{verdicts:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_breakpoint_and_ttl_studies() {
    let server = FakeServer::start(Flavor::Anthropic, cached_script()).await;
    let url = server.url();
    let (doc, _) = bench(&[
        "--url",
        &url,
        "--backend",
        "anthropic",
        "--model",
        "fake-model",
        "--scenario",
        "prompt-cache",
        "--iterations",
        "3",
        "--cache-breakpoints",
        "1,2,1+2",
        "--ttl",
        "1s,6s",
        "--ttl-gap",
        "2s",
        "--ttl-requests",
        "2",
    ])
    .await;
    let names: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["uncached", "cached@bp1", "cached@bp2", "cached@bp1+2", "cached@ttl1s", "cached@ttl6s"],
        "one step per placement and per lifetime"
    );
    // Breakpoint 1 caches the system prompt only; 2 the system prompt and the context.
    let read = |s: &str| step(&doc, s)["cost"]["tokens"]["cache_read"].as_u64().unwrap();
    let written = |s: &str| step(&doc, s)["cost"]["tokens"]["cache_write"].as_u64().unwrap();
    assert!(read("cached@bp1") > 0 && read("cached@bp1") < 200, "system only: {}", read("cached@bp1"));
    assert!(read("cached@bp2") > 2000, "system and context, twice: {}", read("cached@bp2"));
    assert_eq!(read("cached@bp1+2"), read("cached@bp2"));
    assert!(written("cached@bp2") > 1000 && written("uncached") == 0, "the baseline has no breakpoint");
    // The TTL study: requests 2 s apart miss a 1 s entry and hit a 6 s one.
    let n = notes(&doc);
    assert!(n.iter().any(|x| x == "TTL 1s, requests 2s apart: 0 of 1 hit after the gap"), "{n:#?}");
    assert!(n.iter().any(|x| x == "TTL 6s, requests 2s apart: 1 of 1 hit after the gap"), "{n:#?}");
    // The ttl reached the server in every cache_control marker.
    let bodies = server.requests();
    let ttl: Vec<String> =
        bodies.iter().filter_map(|(_, b)| b["system"][0]["cache_control"]["ttl"].as_str().map(String::from)).collect();
    assert_eq!(ttl, ["1s", "1s", "6s", "6s"], "ttl markers: {ttl:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_options_need_a_scenario_with_a_context() {
    let o = tokio::task::spawn_blocking(|| {
        common::velollm(&["bench", "--url", "http://127.0.0.1:9", "--scenario", "standard", "--ttl", "5m"])
    })
    .await
    .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("use --scenario prompt-cache"), "{stderr}");
    let o = tokio::task::spawn_blocking(|| {
        common::velollm(&[
            "bench",
            "--url",
            "http://127.0.0.1:9",
            "--scenario",
            "prompt-cache",
            "--cache-breakpoints",
            "4",
        ])
    })
    .await
    .unwrap();
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'4' is not a breakpoint"), "{stderr}");
}
