//! User plans: steps tagged by provider and task get a latency breakdown; quality hooks run a command on each
//! answer, send failures back as correction turns, and report score, first-try success and corrections.

use crate::common;

use common::{assert_valid, json, text, velollm_async};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

const PLAN: &str = r#"
name = "plans"
description = "two providers, two task types"

[[steps]]
name = "validate_local"
prompt = "Is this JSON valid? {\"a\": 1}"
max_tokens = 5
iterations = 3
tags = { provider = "local", task = "validation" }
thresholds = ["ttft.p95 < 5s", "success_rate >= 100%"]

[[steps]]
name = "format_cloud"
prompt = "Format this list as Markdown: a, b, c"
max_tokens = 5
iterations = 2
tags = { provider = "cloud", task = "formatting" }

[[steps]]
name = "code_with_hook"
prompt = "Write a Python function that returns 42."
max_tokens = 5
iterations = 1
retries = 2
checks = [
  { name = "answer mentions tok0", contains = "tok0" },
  { name = "tests pass", command = "grep -q 'def answer'" },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_break_latency_down_and_hooks_drive_corrections() {
    let server = FakeServer::start(
        Flavor::LlamaCpp,
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 5, ..Script::default() },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plans.toml");
    std::fs::write(&plan, PLAN).unwrap();
    let out = dir.path().join("run.json");
    let url = server.url();
    let args: Vec<String> =
        ["bench", "--url", &url, "--scenario", plan.to_str().unwrap(), "-o", out.to_str().unwrap(), "--no-progress"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let o = velollm_async(args).await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let doc = json(&out);
    assert_valid(&doc);

    // The breakdown by tag.
    let plan = doc["analyses"].as_array().unwrap().iter().find(|a| a["kind"] == "plan").expect("a plan analysis");
    let rows: Vec<&str> =
        plan["table"]["rows"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(rows, vec!["provider=cloud", "provider=local", "task=formatting", "task=validation"]);
    let local = &plan["table"]["rows"][1]["values"];
    assert_eq!(local[0], 3.0, "three requests tagged provider=local");
    assert!(plan["notes"][0].as_str().unwrap().contains("largest contributors"), "{plan}");
    assert!(stdout.contains("latency by tag"), "{stdout}");

    // Step thresholds, each with its verdict.
    let verdicts = doc["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts.iter().all(|v| v["passed"] == true && v["scope"] == "validate_local"), "{verdicts:?}");
    assert!(stdout.contains("✅ validate_local"), "{stdout}");

    // The quality hook: the command fails every time, so the first answer and both corrections fail.
    let hook = &doc["steps"][2];
    assert_eq!(hook["requests"], 3, "one answer and two corrections");
    let q = &hook["quality"];
    assert_eq!(q["corrections"], 2);
    assert_eq!(q["first_try_rate"], 0.0);
    assert_eq!(q["score"], 0.5, "one of two criteria passes on every answer");
    let tests = &q["criteria"][1];
    assert_eq!(
        (tests["name"].as_str(), tests["passed"].as_u64(), tests["total"].as_u64()),
        (Some("tests pass"), Some(0), Some(3))
    );
    assert!(tests["example"].as_str().unwrap().starts_with("exit 1"), "{tests}");
    // Each correction carried the failure back to the model, after the real previous answer.
    let bodies: Vec<serde_json::Value> = server.requests().into_iter().map(|(_, b)| b).collect();
    let last = bodies.last().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(last.len(), 5, "user, assistant, correction, assistant, correction: {last:?}");
    assert_eq!(last[1]["role"], "assistant");
    assert!(last[1]["content"].as_str().unwrap().starts_with("tok0"));
    assert!(last[4]["content"].as_str().unwrap().contains("tests pass"), "{last:?}");
}
