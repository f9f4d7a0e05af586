//! The `velollm` binary against the in-process Anthropic fake (`/v1/messages`, `x-api-key`, cache
//! breakpoints), and the prompt-cache simulation of the other fakes: cached tokens reach the result records.

use crate::common;

use common::{assert_valid, json, jsonl, text};
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use velollm_testkit::{CacheSim, FakeServer, Flavor, Script};

const KEY: &str = "sk-ant-velollm-test-7373737373";

fn quick() -> Script {
    Script { ttft: Duration::from_millis(10), itl: Duration::from_millis(1), tokens: 4, ..Script::default() }
}

fn cached(script: Script) -> Script {
    let cache = CacheSim { prefill_per_token: Duration::from_micros(100), ..CacheSim::default() };
    Script { cache: Some(cache), ..script }
}

/// `n` words `{prefix}0 {prefix}1 …`.
fn words(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(" ")
}

/// Run `velollm` with `args`, the key in `VELOLLM_TEST_ANTHROPIC_KEY` when `key` is given.
async fn run(args: Vec<String>, key: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = common::command();
        c.args(&args).env_remove("VELOLLM_TEST_ANTHROPIC_KEY");
        if let Some(k) = key {
            c.env("VELOLLM_TEST_ANTHROPIC_KEY", k);
        }
        c.output().expect("velollm runs")
    })
    .await
    .expect("join")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The header `name` of generation request `i`, as the fake saw it.
fn header(server: &FakeServer, i: usize, name: &str) -> Option<String> {
    server.request_headers()[i].iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// `(prompt, cached, cache_write)` tokens of every measured record, in order.
fn usages(records: &Path) -> Vec<(Option<u64>, Option<u64>, Option<u64>)> {
    jsonl(records)
        .iter()
        .filter(|r| r["usage"].is_object())
        .map(|r| {
            let u = &r["usage"];
            (u["prompt_tokens"].as_u64(), u["cached_tokens"].as_u64(), u["cache_write_tokens"].as_u64())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_bench_sends_the_key_as_x_api_key_and_records_cache_usage() {
    let script = cached(Script { api_key: Some(KEY.into()), ..quick() });
    let server = FakeServer::start(Flavor::Anthropic, script).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("cache.toml");
    // system 10 words + context 50 words, both breakpoints; the prompt is 3 words.
    std::fs::write(
        &scenario,
        format!(
            "name = \"anthropic-cache\"\n\n[[steps]]\nname = \"cached\"\nsystem = \"{}\"\ncontext = \"{}\"\n\
             prompt = \"what is it\"\nmax_tokens = 4\niterations = 3\n\n[steps.cache]\n\
             breakpoints = [\"system\", \"context\"]\n",
            words("s", 10),
            words("c", 50)
        ),
    )
    .unwrap();
    let out = dir.path().join("run.json");
    let records = dir.path().join("run.jsonl");
    let url = server.url();
    let o = run(
        s(&[
            "bench",
            "--url",
            &url,
            "--backend",
            "anthropic",
            "--api-key-env",
            "VELOLLM_TEST_ANTHROPIC_KEY",
            "--model",
            "fake-model",
            "--scenario",
            scenario.to_str().unwrap(),
            "--no-progress",
            "-o",
            out.to_str().unwrap(),
            "--records",
            records.to_str().unwrap(),
        ]),
        Some(KEY),
    )
    .await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["meta"]["target"]["dialect"], "anthropic");

    // The fake saw Anthropic's headers on every request, and no bearer token.
    let n = server.request_count();
    assert_eq!(n, 3, "{stderr}");
    for i in 0..n {
        assert_eq!(header(&server, i, "x-api-key").as_deref(), Some(KEY));
        assert_eq!(header(&server, i, "anthropic-version").as_deref(), Some("2023-06-01"));
        assert_eq!(header(&server, i, "authorization"), None);
    }
    let (path, body) = &server.requests()[0];
    assert_eq!(path, "/v1/messages");
    assert_eq!(body["system"][0]["cache_control"], serde_json::json!({"type": "ephemeral"}));
    assert_eq!(body["messages"][0]["content"][1], serde_json::json!({"type": "text", "text": "what is it"}));

    // The first request writes both breakpoint prefixes (everything but the 3-word prompt), the next ones read
    // them. The system prompt also carries the step's session marker, so the prompt has at least 63 tokens.
    let u = usages(&records);
    let prompt = u[0].0.unwrap();
    assert!(prompt >= 63, "{u:?}");
    let prefix = prompt - 3;
    assert_eq!(
        u,
        vec![
            (Some(prompt), Some(0), Some(prefix)),
            (Some(prompt), Some(prefix), Some(0)),
            (Some(prompt), Some(prefix), Some(0))
        ]
    );

    // The key is written nowhere.
    let files = [std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&records).unwrap()];
    for written in [stdout, stderr].iter().chain(&files) {
        assert!(!written.contains(KEY), "the API key leaked: {written}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_detects_an_anthropic_api_and_says_so() {
    let script = Script { prompt_tokens: 30, cached_tokens: 20, ..quick() };
    let server = FakeServer::start(Flavor::Anthropic, script).await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("run.jsonl");
    let url = server.url();
    let args = ["bench", "--url", &url, "--model", "fake-model", "--prompt", "hi", "-n", "2", "--no-progress"];
    let mut args = s(&args);
    args.extend(s(&["--records", records.to_str().unwrap()]));
    let o = run(args, None).await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("dialect anthropic (auto: /v1/models answered like Anthropic's API"), "{stderr}");
    assert_eq!(usages(&records).last(), Some(&(Some(30), Some(20), Some(0))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_refused_key_is_a_clear_error() {
    let server = FakeServer::start(Flavor::Anthropic, Script { api_key: Some(KEY.into()), ..quick() }).await;
    let url = server.url();
    let base = ["bench", "--url", &url, "--backend", "anthropic", "--model", "fake-model", "--prompt", "hi"];
    let mut with_key = s(&base);
    with_key.extend(s(&["-n", "2", "--no-progress", "--api-key-env", "VELOLLM_TEST_ANTHROPIC_KEY"]));

    // The variable is not set.
    let o = run(with_key.clone(), None).await;
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains("VELOLLM_TEST_ANTHROPIC_KEY is not set"), "{stderr}");
    assert_eq!(server.request_count(), 0);

    // No key at all, or a wrong one: the server's 401 message is shown and the run fails.
    let mut no_key = s(&base);
    no_key.extend(s(&["-n", "2", "--no-progress"]));
    for (args, key, message) in
        [(no_key, None, "x-api-key header is required"), (with_key, Some("sk-wrong"), "invalid x-api-key")]
    {
        let o = run(args, key).await;
        let (stdout, stderr) = text(&o);
        assert!(!o.status.success(), "{stdout}\n{stderr}");
        let all = format!("{stdout}\n{stderr}");
        assert!(all.contains("HTTP 401") && all.contains(message), "{all}");
        assert!(all.contains("--api-key-env"), "the error names the fix: {all}");
        assert!(!all.contains("sk-wrong"), "{all}");
    }
}

/// Two requests sharing a 200-word prefix, through `--backend backend` against `flavor` with the cache
/// simulation: the second one's `usage.cached_tokens` covers the prefix.
async fn second_request_is_a_cache_hit(flavor: Flavor, backend: &str) {
    let server = FakeServer::start(flavor, cached(quick())).await;
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("run.jsonl");
    let doc = words("d", 200);
    let (first, second) = (format!("{doc} first question"), format!("{doc} second question"));
    let url = server.url();
    let args = s(&[
        "bench",
        "--url",
        &url,
        "--backend",
        backend,
        "--model",
        "fake-model",
        "--prompt",
        &first,
        "--prompt",
        &second,
        "-n",
        "2",
        "--no-progress",
        "--records",
        records.to_str().unwrap(),
    ]);
    let o = run(args, None).await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{backend}: {stdout}\n{stderr}");
    let u = usages(&records);
    assert_eq!(u.len(), 2, "{backend}: {u:?}");
    assert_eq!(u[0].1, Some(0), "{backend}: the first request finds an empty cache: {u:?}");
    assert!(u[1].1.is_some_and(|c| c >= 200), "{backend}: the second reads the shared prefix: {u:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_reports_cached_tokens_of_a_shared_prefix() {
    second_request_is_a_cache_hit(Flavor::OpenAi, "openai-chat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamacpp_reports_cache_n_of_a_shared_prefix() {
    second_request_is_a_cache_hit(Flavor::LlamaCpp, "llamacpp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_reports_cached_tokens_of_a_shared_prefix() {
    second_request_is_a_cache_hit(Flavor::Ollama, "ollama-chat").await;
}
