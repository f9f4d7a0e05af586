//! Fault survival through the `velollm bench` command: a server that fails a burst of requests and then
//! recovers gives a complete, valid result with the failures counted, and exit code 0 (5 is only for a run in
//! which every request failed). The engine-level tests of each fault are in `velollm-engine/tests/faults.rs`.

use crate::common;

use common::{assert_valid, json, jsonl, text, velollm_async};
use std::time::Duration;
use velollm_testkit::{FakeServer, Fault, Flavor, Script};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_burst_then_recovery_is_a_complete_run_with_the_errors_counted() {
    let fault = Fault::Status { code: 503, body: r#"{"error":"overloaded"}"#.into(), retry_after: Some(2) };
    let script = Script {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(2),
        tokens: 5,
        fault,
        fault_first: Some(2),
        ..Script::default()
    };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let args: Vec<String> = [
        "bench",
        "--url",
        &server.url(),
        "--prompt",
        "hi",
        "-n",
        "5",
        "--first-token-timeout",
        "2s",
        "--idle-timeout",
        "1s",
        "-o",
        out.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let o = velollm_async(args).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "some requests succeeded: exit 0\n{stdout}\n{stderr}");
    assert!(stdout.contains("http_5xx ×2 (HTTP 503: overloaded)"), "{stdout}");

    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    let step = &doc["steps"][0];
    assert_eq!(
        (step["requests"].as_u64(), step["succeeded"].as_u64(), step["failed"].as_u64()),
        (Some(5), Some(3), Some(2))
    );
    assert_eq!(step["errors"]["http_5xx"]["count"], 2, "{}", step["errors"]);

    // The records say which requests failed, with the server's Retry-After.
    let lines = jsonl(&records);
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|r| r.get("error").is_some()).collect();
    assert_eq!(failed.len(), 2, "{lines:?}");
    assert!(
        failed.iter().all(|r| r["error"]["class"] == "http_5xx" && r["error"]["retry_after_s"] == 2.0),
        "{failed:?}"
    );
}
