//! `velollm bench --scenario routing` as a user runs it: against two fake tiers whose answers are known (the
//! small one right on the small types only, the large one right everywhere: the plan's criteria must hold,
//! and the learned task map must keep the small tier off the types it fails), against the real llama-server as
//! both tiers, and with inputs that are wrong (exit 2, naming the file, line and field).

use serde_json::Value;
use velollm_testkit::{FakeServer, Flavor, Script};

use crate::common::{json, server_url, text, velollm_async};

/// Tasks like the shipped ones, in other words (the router's examples are the shipped ones).
const TASKS: &str = r#"{"id": "v1", "type": "validation", "prompt": "Is {\"a\": 1, \"b\": [2, 3]} valid JSON? Answer with one word: valid or invalid.", "check": {"choice": ["valid", "invalid"], "answer": "valid"}}
{"id": "v2", "type": "validation", "prompt": "Is 10.0.0.256 a valid IPv4 address? Answer with one word: valid or invalid.", "check": {"choice": ["valid", "invalid"], "answer": "invalid"}}
{"id": "f1", "type": "formatting", "prompt": "Convert this text to upper case: good morning. Answer with the result only.", "check": {"contains": ["GOOD MORNING"]}}
{"id": "f2", "type": "formatting", "prompt": "Rewrite this identifier in snake_case: maxRetryCount. Answer with the result only.", "check": {"contains": ["max_retry_count"]}}
{"id": "c1", "type": "classification", "prompt": "Is the sentiment of this review positive or negative? \"Terrible service, I want a refund.\" Answer with one word: positive or negative.", "check": {"choice": ["positive", "negative"], "answer": "negative"}}
{"id": "c2", "type": "classification", "prompt": "Is this message spam or ham? \"CONGRATULATIONS you won 1000 dollars, reply now\" Answer with one word: spam or ham.", "check": {"choice": ["spam", "ham"], "answer": "spam"}}
{"id": "r1", "type": "reasoning", "prompt": "What is the sum of all integers from 1 to 10? Think step by step, then give the final answer on the last line.", "check": {"number": 55}}
{"id": "r2", "type": "reasoning", "prompt": "If 3 machines make 3 widgets in 3 minutes, how many minutes do 60 machines take to make 60 widgets? Think step by step, then give the final answer on the last line.", "check": {"number": 3}}
{"id": "g1", "type": "codegen", "prompt": "Write a Python function square(n) that returns n times n. Answer with the Python code only.", "check": {"command": ["python3", "routing_check.py", "assert square(4) == 16"]}}
{"id": "g2", "type": "codegen", "prompt": "Write a Python function double(n) that returns 2 times n. Answer with the Python code only.", "check": {"command": ["python3", "routing_check.py", "assert double(4) == 8"]}}
"#;

/// Each task's distinctive words and its right answer.
const RIGHT: [(&str, &str); 10] = [
    ("\\\"b\\\": [2, 3]", "valid"),
    ("10.0.0.256", "invalid"),
    ("good morning", "GOOD MORNING"),
    ("maxRetryCount", "max_retry_count"),
    ("Terrible service", "negative"),
    ("CONGRATULATIONS", "spam"),
    ("from 1 to 10", "1 + 2 + ... + 10 = 55"),
    ("60 machines", "Each machine makes one widget in 3 minutes, so 3"),
    ("square(n)", "square = lambda n: n * n"),
    ("double(n)", "double = lambda n: 2 * n"),
];

fn script(model: &str, right: &[(&str, &str)], wrong: &[(&str, &str)]) -> Script {
    let mut replies: Vec<(String, String)> = right.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    replies.extend(wrong.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Script {
        model: model.into(),
        replies,
        ttft: std::time::Duration::from_millis(5),
        itl: std::time::Duration::from_millis(1),
        ..Script::default()
    }
}

fn embedder_present() -> bool {
    match std::env::var("VELOLLM_EMBEDDER_MODEL") {
        Ok(_) => true,
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but VELOLLM_EMBEDDER_MODEL is not set: run the tests with scripts/test.sh")
        }
        Err(_) => {
            eprintln!("skipped: VELOLLM_EMBEDDER_MODEL is not set (export $(scripts/embedder.sh env))");
            false
        }
    }
}

fn write(dir: &std::path::Path, tasks: &str) -> std::path::PathBuf {
    let path = dir.join("tasks.jsonl");
    std::fs::write(&path, tasks).unwrap();
    std::fs::write(dir.join("routing_check.py"), velollm_core::analysis::routing_eval::BUILTIN_CHECKER).unwrap();
    path
}

/// `velollm bench --scenario routing` of `tasks` on two tiers, with `extra` flags: its exit code, output and
/// report.
async fn evaluate(small: &str, large: &str, tasks: &str, extra: &[&str]) -> (Option<i32>, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let tasks = write(dir.path(), tasks);
    let out = dir.path().join("routing.json");
    let mut args: Vec<String> =
        ["bench", "--scenario", "routing", "--url", small, "--large-url", large, "--labels"].map(String::from).to_vec();
    args.extend([tasks.display().to_string(), "-o".into(), out.display().to_string()]);
    args.extend(extra.iter().map(|a| a.to_string()));
    let o = velollm_async(args).await;
    let (stdout, stderr) = text(&o);
    let doc = if out.exists() { json(&out) } else { Value::Null };
    if doc.is_object() {
        let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("quality against the share"), "{svg}");
    }
    (o.status.code(), format!("{stdout}\n{stderr}"), doc)
}

fn criterion<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["criteria"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name}: {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_with_known_answers_meet_the_plans_criteria() {
    if !embedder_present() {
        return;
    }
    // The small tier is right on the four small types and wrong on reasoning and code; the large one is right.
    let wrong = [("from 1 to 10", "45"), ("60 machines", "60"), ("square(n)", "print(4)"), ("double(n)", "print(8)")];
    let small = FakeServer::start(Flavor::OpenAi, script("small-m", &RIGHT[..6], &wrong)).await;
    let large = FakeServer::start(Flavor::OpenAi, script("large-m", &RIGHT, &[])).await;
    let (code, output, doc) = evaluate(&small.url(), &large.url(), TASKS, &["--route-parallel", "10", "--check"]).await;
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(doc["tasks"], 10);
    assert_eq!(doc["tiers"][0]["accuracy"], 0.6);
    assert_eq!(doc["tiers"][1]["accuracy"], 1.0);
    let op = &doc["operating"];
    assert_eq!(op["routing_accuracy"], 1.0, "every task to its type's tier: {doc:#}");
    assert_eq!((op["routed_share"].as_f64(), op["routed_accuracy"].as_f64()), (Some(0.6), Some(1.0)), "{op:#}");
    assert_eq!(op["system_accuracy"], 1.0);
    for name in [
        "routed share",
        "calls saved",
        "small-tier latency (E2E p50, alone)",
        "accuracy of routed answers",
        "routing accuracy",
    ] {
        assert_eq!(criterion(&doc, name)["pass"], true, "{name}: {doc:#}");
    }
    // Under load every task went to each tier; the sweep runs from everything routed to nothing.
    assert_eq!(small.request_count(), 20);
    assert_eq!(doc["tiers"][0]["load_e2e_ms"]["count"], 10);
    let sweep = doc["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 21);
    assert!(sweep[20]["routed_share"].as_f64().unwrap() <= op["routed_share"].as_f64().unwrap());
    assert!(doc["decision_ms"]["rules"]["p50"].as_f64().unwrap() < 1.0);
    assert!(output.contains("PASS  routing accuracy"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tier_that_fails_a_type_is_learned_off_it() {
    if !embedder_present() {
        return;
    }
    // The small tier also gets classification wrong: routed answers fail the plan's 95 %, and the learned
    // task map keeps classification on the large tier.
    let wrong =
        [("Terrible service", "positive"), ("CONGRATULATIONS", "ham"), ("from 1 to 10", "45"), ("60 machines", "60")];
    let small = FakeServer::start(Flavor::OpenAi, script("small-m", &RIGHT[..4], &wrong)).await;
    let large = FakeServer::start(Flavor::OpenAi, script("large-m", &RIGHT, &[])).await;
    let (code, output, doc) = evaluate(&small.url(), &large.url(), TASKS, &["--check"]).await;
    assert_eq!(code, Some(3), "a failed criterion with --check: {output}");
    assert_eq!(criterion(&doc, "accuracy of routed answers")["pass"], false);
    let learned: Vec<&str> = doc["learned_small_types"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(learned, ["validation", "formatting"]);
    assert_eq!(doc["learned"]["routed_accuracy"], 1.0, "{doc:#}");
    let classification = doc["by_type"].as_array().unwrap().iter().find(|t| t["task"] == "classification").unwrap();
    assert_eq!(classification["small_accuracy"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_llama_server_as_both_tiers_gives_a_whole_report() {
    let Some((url, _real)) = server_url() else { return };
    if !embedder_present() {
        return;
    }
    // One task per type from the shipped set, judged for real; SmolLM2 is both tiers here.
    let shipped = velollm_core::analysis::routing_eval::BUILTIN_LABELS;
    let ids =
        ["\"val-json-key\"", "\"fmt-upper\"", "\"lint-sql\"", "\"cls-spam\"", "\"rsn-sum\"", "\"code-factorial\""];
    let six: String =
        shipped.lines().filter(|l| ids.iter().any(|id| l.contains(id))).map(|l| format!("{l}\n")).collect();
    let extra = ["--route-parallel", "4", "--max-tokens", "48"];
    let (code, output, doc) = evaluate(&url, &url, &six, &extra).await;
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(doc["tasks"], 6);
    assert_eq!(doc["by_type"].as_array().unwrap().len(), 6);
    for tier in doc["tiers"].as_array().unwrap() {
        assert_eq!(tier["failed"], 0, "{tier:#}");
        assert_eq!(tier["load_failed"], 0, "{tier:#}");
        assert!(tier["e2e_ms"]["p50"].as_f64().unwrap() > tier["ttft_ms"]["p50"].as_f64().unwrap());
    }
    // Reasoning and code are never routed small by the vote (their examples are the shipped ones).
    for t in doc["by_type"].as_array().unwrap().iter().filter(|t| t["labelled_tier"] == "large") {
        assert_eq!(t["routed_share"], 0.0, "{t:#}");
    }
    assert!(output.contains("Criteria (the plan's"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_inputs_name_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: Vec<String>| {
        let mut all: Vec<String> =
            ["bench", "--scenario", "routing", "--url", "http://127.0.0.1:9"].map(String::from).to_vec();
        all.extend(extra);
        velollm_async(all)
    };
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": \"a\", \"type\": \"poetry\", \"prompt\": \"p\", \"check\": {\"number\": 1}}\n")
        .unwrap();
    let o = run(vec!["--labels".into(), bad.display().to_string(), "--large-url".into(), "http://127.0.0.1:9".into()])
        .await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.jsonl:1: field \"type\": unknown task type \"poetry\""), "{stderr}");
    let missing = dir.path().join("missing.jsonl");
    std::fs::write(&missing, "{\"id\": \"a\", \"type\": \"codegen\", \"prompt\": \"p\", \"check\": {\"command\": [\"no-such-checker-velollm\"]}}\n").unwrap();
    let o =
        run(vec!["--labels".into(), missing.display().to_string(), "--large-url".into(), "http://127.0.0.1:9".into()])
            .await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing.jsonl:1: field \"check.command\": \"no-such-checker-velollm\" is not a program"),
        "{stderr}"
    );
    let o = run(vec![]).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give --large-url URL"), "{stderr}");
}
