//! End to end against a real llama.cpp `llama-server` with SmolLM2-135M-Instruct, started by
//! `scripts/llama-server.sh` (and by `scripts/test.sh`, which sets `VELOLLM_TEST_SERVER_URL`).
//!
//! Without a reachable server these tests are skipped with a message — except in CI (`CI=true`), where a
//! missing server is a failure.

use crate::common;

use common::server_url;
use serde_json::Value;

/// `velollm ARGS…` (a `bench` command line) that must end with a complete, schema-valid result.
fn run(args: &[&str]) -> (Value, Vec<Value>, String) {
    let args = args.strip_prefix(&["bench"]).expect("a bench command line");
    let r = common::Bench::bare().args(args).run_blocking();
    assert!(r.out.status.success(), "velollm {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
    let r = r.ok();
    (r.doc, r.records, r.stdout)
}

fn ns(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every record against the server's own figures: token counts equal the server's usage and its native
/// count, the client never sees the first token before the server finished the prompt, and the whole request
/// takes at least the server's prefill plus decode time.
fn check_against_server(records: &[Value]) {
    assert!(!records.is_empty());
    for r in records {
        assert!(r.get("error").is_none(), "request failed: {r}");
        let usage = r["usage"]["completion_tokens"].as_u64().expect("server usage");
        let native = &r["native"];
        assert_eq!(native["source"], "llama.cpp", "{r}");
        assert_eq!(native["predicted_n"].as_u64(), Some(usage), "usage and timings disagree: {r}");
        let chunks = r["chunks"].as_array().unwrap();
        let output: Vec<&Value> =
            chunks.iter().filter(|c| matches!(c["channel"].as_str(), Some("content" | "reasoning" | "tool"))).collect();
        let events: u64 = output.iter().map(|c| c["events"].as_u64().unwrap()).sum();
        assert!(events >= 1 && events <= usage, "{events} output events for {usage} tokens");
        let sent = ns(&r["sent"]);
        let ttft_ms = (ns(&output[0]["t"]) - sent) / 1e6;
        let e2e_ms = (ns(&r["done"]) - sent) / 1e6;
        let prompt_ms = ns(&native["prompt_ms"]);
        let predicted_ms = ns(&native["predicted_ms"]);
        assert!(ttft_ms >= prompt_ms, "TTFT {ttft_ms} ms is below the server's prompt_ms {prompt_ms}: {r}");
        assert!(e2e_ms + 1.0 >= prompt_ms + predicted_ms, "E2E {e2e_ms} < prefill {prompt_ms} + decode {predicted_ms}");
    }
}

/// velollm's per-step token totals are the server's.
fn check_step_tokens(doc: &Value, records: &[Value]) {
    for (i, step) in doc["steps"].as_array().unwrap().iter().enumerate() {
        let server_total: u64 = records
            .iter()
            .filter(|r| r["step"].as_u64() == Some(i as u64) && r.get("warmup").is_none())
            .map(|r| r["usage"]["completion_tokens"].as_u64().unwrap())
            .sum();
        let out = &step["metrics"]["output_tokens"];
        let velollm_total = (ns(&out["mean"]) * ns(&out["count"])).round() as u64;
        assert_eq!(velollm_total, server_total, "step {i}");
        assert_eq!(step["token_sources"]["server_usage"], step["succeeded"]);
    }
}

#[test]
fn standard_suite_against_llama_server() {
    let Some((url, _real)) = server_url() else { return };
    let (doc, records, stdout) = run(&["bench", "--url", &url, "--model", "smollm2", "--scenario", "standard"]);
    assert_eq!(doc["meta"]["target"]["server"], "llama.cpp");
    assert_eq!(doc["meta"]["target"]["dialect"], "openai-chat");
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.iter().map(|s| s["succeeded"].as_u64().unwrap()).collect::<Vec<_>>(), vec![5, 3, 3]);
    for step in steps {
        assert_eq!(step["success_rate"], 1.0);
        let out = &step["metrics"]["output_tokens"];
        assert!(ns(&out["max"]) <= ns(&step["config"]["max_tokens"]));
    }
    check_against_server(&records);
    check_step_tokens(&doc, &records);
    assert!(stdout.contains("short_completion") && stdout.contains("TTFT (ms)"), "{stdout}");
}

#[test]
fn concurrency_4_with_synthetic_prompts_and_exact_output() {
    let Some((url, _real)) = server_url() else { return };
    let (doc, records, _) = run(&[
        "bench",
        "--url",
        &url,
        "--concurrency",
        "4",
        "--requests",
        "8",
        "--prompt-tokens",
        "48",
        "--max-tokens",
        "12",
        "--exact-output",
        "--warmup",
        "2",
    ]);
    let step = &doc["steps"][0];
    assert_eq!(
        (step["requests"].as_u64(), step["succeeded"].as_u64(), step["warmup_requests"].as_u64()),
        (Some(8), Some(8), Some(2))
    );
    // ignore_eos: every answer has exactly the requested length.
    let out = &step["metrics"]["output_tokens"];
    assert_eq!((ns(&out["min"]), ns(&out["max"])), (12.0, 12.0));
    // The server saw at least the requested prompt length (plus its chat template).
    assert!(ns(&step["metrics"]["prompt_tokens"]["min"]) >= 48.0, "{step}");
    check_against_server(&records);
    check_step_tokens(&doc, &records);
}

#[test]
fn poisson_rate_run() {
    let Some((url, _real)) = server_url() else { return };
    let (doc, records, stdout) = run(&[
        "bench",
        "--url",
        &url,
        "--rate",
        "4",
        "--arrival",
        "poisson",
        "--duration",
        "3s",
        "--prompt",
        "Say hi.",
        "--max-tokens",
        "8",
        "--seed",
        "7",
    ]);
    let step = &doc["steps"][0];
    assert!(step["requests"].as_u64().unwrap() >= 3, "{step}");
    assert_eq!(step["success_rate"], 1.0);
    assert_eq!(step["config"]["load"]["arrival"]["kind"], "poisson");
    assert_eq!(doc["meta"]["seed"], 7);
    // Open loop: scheduled instants are set by the seed, not by when answers came back.
    let mut by_id: Vec<&Value> = records.iter().collect();
    by_id.sort_by_key(|r| r["id"].as_u64());
    let scheduled: Vec<f64> = by_id.iter().map(|r| ns(&r["scheduled"])).collect();
    assert!(scheduled.windows(2).all(|w| w[0] <= w[1]), "{scheduled:?}");
    let gaps: std::collections::HashSet<u64> = scheduled.windows(2).map(|w| ((w[1] - w[0]) / 1e6) as u64).collect();
    assert!(gaps.len() > 1, "Poisson gaps vary: {gaps:?}");
    assert!(step["metrics"]["e2e_from_scheduled_ms"].is_object());
    assert!(stdout.contains("E2E from schedule (ms)"), "{stdout}");
    check_against_server(&records);
}

#[test]
fn native_and_completions_dialects() {
    let Some((url, _real)) = server_url() else { return };
    for backend in ["llamacpp", "openai-completions"] {
        let (doc, records, _) = run(&[
            "bench",
            "--url",
            &url,
            "--backend",
            backend,
            "--prompt",
            "Once upon a time",
            "-n",
            "2",
            "--max-tokens",
            "10",
        ]);
        assert_eq!(doc["meta"]["target"]["dialect"], backend);
        assert_eq!(doc["steps"][0]["succeeded"], 2, "{backend}");
        check_against_server(&records);
    }
}
