//! The `velollm` binary against in-process fake servers: output, result file, records, exit codes, bad
//! input, interruption, secrets.

use crate::common;

use common::{assert_valid, json, jsonl, text, velollm, velollm_async};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use velollm_testkit::{FakeServer, Fault, Flavor, Script};

fn quick() -> Script {
    Script { ttft: Duration::from_millis(20), itl: Duration::from_millis(2), tokens: 5, ..Script::default() }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_scenario_prints_a_summary_and_writes_a_valid_result() {
    let server = FakeServer::start(Flavor::LlamaCpp, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let records = dir.path().join("run.jsonl");
    let url = server.url();
    let o = velollm_async(s(&[
        "bench",
        "--url",
        &url,
        "--model",
        "fake-model",
        "--scenario",
        "standard",
        "-o",
        out.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]))
    .await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("dialect openai-chat (auto: /v1/models answered"), "{stderr}");
    // Before the run, what the whole suite sends: its steps' 5 + 3 + 3 iterations.
    assert!(stderr.contains("scenario 'standard': 3 steps, 11 requests in all"), "{stderr}");
    for step in ["short_completion", "medium_completion", "code_generation"] {
        assert!(stdout.contains(step), "{stdout}");
    }
    for row in ["TTFT (ms)", "TPOT (ms)", "ITL/chunk (ms)", "E2E (ms)", "throughput:"] {
        assert!(stdout.contains(row), "{stdout}");
    }
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["schema_version"], "1.2");
    // The fake llama.cpp server exposes /metrics: each step carries the server's own token counts.
    let sm = &doc["steps"][0]["server_metrics"];
    assert_eq!(sm["engine"], "llamacpp", "{sm}");
    assert_eq!(sm["generation_tokens"], 25.0, "5 requests × 5 tokens, as the server counted them: {sm}");
    assert!(doc["meta"]["hardware"]["cpu"]["threads"].as_u64().unwrap() >= 1);
    let samples = &doc["steps"][0]["samples"];
    assert_eq!(samples["ttft_ms"].as_array().unwrap().len(), 5, "one sample per request");
    assert_eq!(doc["meta"]["target"]["server"], "llama.cpp");
    let requests: Vec<u64> = doc["steps"].as_array().unwrap().iter().map(|s| s["requests"].as_u64().unwrap()).collect();
    assert_eq!(requests, vec![5, 3, 3]);
    // The original velollm's fields, one entry per step.
    let b = &doc["benchmarks"][0];
    assert_eq!(b["config"]["name"], "short_completion");
    assert_eq!(b["config"]["prompt"], "Write a hello world program in Python");
    assert_eq!((b["config"]["max_tokens"].as_u64(), b["config"]["iterations"].as_u64()), (Some(50), Some(5)));
    assert_eq!(b["total_tokens"], 25);
    for key in
        ["tokens_per_second", "time_to_first_token_ms", "total_time_ms", "prompt_eval_count", "eval_count", "timestamp"]
    {
        assert!(b.get(key).is_some(), "missing {key}");
    }
    let recs = jsonl(&records);
    assert_eq!(recs.len(), 11);
    assert!(recs.iter().all(|r| r["chunks"].as_array().unwrap().len() >= 5));
    assert_eq!(server.requests()[0].1["max_tokens"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_synthetic_prompts_and_ollama() {
    let server = FakeServer::start(Flavor::Ollama, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let url = server.url();
    let o = velollm_async(s(&[
        "bench",
        "--url",
        &url,
        "--backend",
        "ollama",
        "--model",
        "fake-model",
        "--concurrency",
        "4",
        "--requests",
        "12",
        "--prompt-tokens",
        "64",
        "--max-tokens",
        "5",
        "-o",
        out.to_str().unwrap(),
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o).1);
    let doc = json(&out);
    assert_valid(&doc);
    let step = &doc["steps"][0];
    assert_eq!((step["requests"].as_u64(), step["succeeded"].as_u64()), (Some(12), Some(12)));
    assert_eq!(step["config"]["load"], serde_json::json!({"mode": "concurrency", "concurrency": 4}));
    assert_eq!(doc["meta"]["target"]["dialect"], "ollama-chat");
    let prompts: std::collections::HashSet<String> =
        server.requests().iter().map(|(_, b)| b["messages"][0]["content"].as_str().unwrap().to_string()).collect();
    assert_eq!(prompts.len(), 12, "synthetic prompts are distinct");
    assert!(prompts.iter().all(|p| p.split(' ').count() == 64));
    assert_eq!(server.requests()[0].1["options"]["num_predict"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_benchmark_command_still_works() {
    let server = FakeServer::start(Flavor::Ollama, Script { model: "llama3.2:3b".into(), ..quick() }).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let url = server.url();
    let o = velollm_async(s(&["benchmark", "-m", "llama3.2:3b", "-o", out.to_str().unwrap(), "--url", &url])).await;
    assert!(o.status.success(), "{}", text(&o).1);
    let doc = json(&out);
    assert_eq!(doc["benchmarks"].as_array().unwrap().len(), 3);
    assert_eq!(doc["meta"]["target"]["dialect"], "ollama-chat");
    assert_eq!(server.requests()[0].0, "/api/chat");
}

#[test]
fn unreachable_server_exits_4_with_instructions() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let o = velollm(&["bench", "--url", &url]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach {url}")), "{stderr}");
    assert!(stderr.contains("scripts/llama-server.sh start") && stderr.contains("ollama serve"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_input_exits_2_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[[steps]]\nname = \"a\"\nprompt = \"hi\"\nmax_tokenz = 5\n").unwrap();
    let o = velollm(&["bench", "--url", "http://127.0.0.1:9", "--scenario", bad.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 5") && err.contains("max_tokenz"), "{err}");

    for (args, needle) in [
        (vec!["bench", "--scenario", "nope"], "neither a built-in scenario"),
        (vec!["bench", "--rate", "5", "--prompt", "x"], "--rate needs a bound"),
        (vec!["bench", "--slo", "speed=1"], "unknown metric 'speed'"),
        (vec!["bench", "--backend", "grpc"], "possible values: auto, openai-chat"),
        (vec!["bench", "--api-key-env", "VELOLLM_TEST_NO_SUCH_VAR"], "VELOLLM_TEST_NO_SUCH_VAR is not set"),
        (vec!["bench", "--duration", "soon", "--prompt", "x"], "'soon' is not a duration: write 500ms, 30s"),
        (
            vec!["bench", "--launch", "x {port}", "--launch-timeout", "0"],
            "--launch-timeout 0s: write a positive duration",
        ),
        (vec!["ab", "--a", "http://127.0.0.1:9", "--b", "http://127.0.0.1:9", "--backend", "grpc"], "possible values"),
        (vec!["bench", "--concurrency", "0"], "--concurrency must be at least 1"),
    ] {
        let o = velollm(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_exits_2_listing_the_models() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let url = server.url();
    let o = velollm_async(s(&["bench", "--url", &url, "--model", "gpt-9"])).await;
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("model 'gpt-9' is not served") && err.contains("It has: fake-model"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_counted_and_every_failure_exits_5() {
    let fault = Fault::Status { code: 503, body: "{\"error\":\"overloaded\"}".into(), retry_after: None };
    let server = FakeServer::start(Flavor::OpenAi, Script { fault, ..quick() }).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let url = server.url();
    let o = velollm_async(s(&["bench", "--url", &url, "--prompt", "hi", "-n", "3", "-o", out.to_str().unwrap()])).await;
    let (stdout, err) = text(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(stdout.contains("http_5xx ×3 (HTTP 503: overloaded)"), "{stdout}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["steps"][0]["errors"]["http_5xx"]["count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_sent_but_never_written() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let records = dir.path().join("run.jsonl");
    let url = server.url();
    let secret = "sk-velollm-test-4242424242";
    let args = s(&[
        "bench",
        "--url",
        &url,
        "--prompt",
        "hi",
        "-n",
        "2",
        "--api-key-env",
        "VELOLLM_TEST_KEY",
        "--keep-text",
        "-o",
        out.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    let o = tokio::task::spawn_blocking(move || {
        common::command().args(&args).env("VELOLLM_TEST_KEY", secret).output().unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success());
    let (stdout, stderr) = text(&o);
    for written in [stdout, stderr, std::fs::read_to_string(&out).unwrap(), std::fs::read_to_string(&records).unwrap()]
    {
        assert!(!written.contains(secret), "the API key leaked: {written}");
    }
}

/// Start `velollm` in the background against a slow server and return the child once it is running.
fn spawn_slow_run(url: &str, out: &std::path::Path, records: &std::path::Path) -> std::process::Child {
    common::command()
        .args(["bench", "--url", url, "--prompt", "hi", "-n", "50", "--no-progress", "-o"])
        .arg(out)
        .arg("--records")
        .arg(records)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn slow() -> Script {
    Script { ttft: Duration::from_millis(100), itl: Duration::from_millis(50), tokens: 6, ..Script::default() }
}

async fn wait_for_records(records: &std::path::Path, n: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(records).map(|t| t.lines().count()).unwrap_or(0) < n {
        assert!(start.elapsed() < Duration::from_secs(20), "no records appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_leaves_a_valid_partial_result() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let mut child = spawn_slow_run(&server.url(), &out, &records);
    wait_for_records(&records, 4).await;
    // The result document is rewritten at least a second apart while the step runs: wait until it holds
    // the 4 requests (on a busy machine that takes longer than a second), then kill.
    let start = Instant::now();
    let written = |doc: &serde_json::Value| doc["steps"][0]["requests"].as_u64().unwrap_or(0);
    while std::fs::read_to_string(&out).ok().and_then(|t| serde_json::from_str(&t).ok()).map_or(0, |d| written(&d)) < 4
    {
        assert!(start.elapsed() < Duration::from_secs(30), "the partial result never held 4 requests");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "partial");
    let step = &doc["steps"][0];
    assert_eq!(step["partial"], true);
    assert!(step["requests"].as_u64().unwrap() >= 4, "{step}");
    assert!(jsonl(&records).len() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_keeps_what_was_measured_and_exits_130() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let child = spawn_slow_run(&server.url(), &out, &records);
    wait_for_records(&records, 3).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stdout.contains("Interrupted run"), "{stdout}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "interrupted");
    assert!(doc["steps"][0]["succeeded"].as_u64().unwrap() >= 3);
    // The request in flight was cancelled: counted, not measured.
    assert_eq!(doc["steps"][0]["errors"]["cancelled"]["count"], 1);
}
