//! Workload sources through the `velollm` binary against a fake server (`tests/data/workloads.toml`): a
//! JSONL dataset replayed with the model's real answers, shared-prefix groups, sampled prompt lengths, and
//! dataset errors that name the file and line.

use crate::common;

use common::{assert_valid, json, jsonl, text, velollm_async};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The fake's answer with 3 tokens.
const ANSWER: &str = "tok0 tok1 tok2 ";

/// `(role, content)` of each message of a chat request.
fn messages(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn m(role: &str, content: &str) -> (String, String) {
    (role.to_string(), content.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_shared_prefix_and_length_distribution() {
    let script =
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::LlamaCpp, script).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let scenario = data("workloads.toml");
    let args = [
        "bench",
        "--url",
        &server.url(),
        "--model",
        "fake-model",
        "--scenario",
        scenario.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
        "--no-progress",
    ];
    let o = velollm_async(args.iter().map(|s| s.to_string()).collect()).await;
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let requests: Vec<Value> = server.requests().into_iter().map(|(_, body)| body).collect();
    assert_eq!(requests.len(), 8 + 24 + 8);

    // Dataset: sessions 0, 1, 2, 0; user turns in order, each after the model's real answers (never the
    // dataset's), the step's system prompt first, the dataset's system message dropped.
    let sys = m("system", "be brief");
    let expected = vec![
        vec![sys.clone(), m("user", "What is Rust?")],
        vec![sys.clone(), m("user", "What is Rust?"), m("assistant", ANSWER), m("user", "Show an example.")],
        vec![sys.clone(), m("user", "Name a prime.")],
        vec![sys.clone(), m("user", "Name a prime."), m("assistant", ANSWER), m("user", "Another one?")],
        vec![
            sys.clone(),
            m("user", "Name a prime."),
            m("assistant", ANSWER),
            m("user", "Another one?"),
            m("assistant", ANSWER),
            m("user", "And their sum?"),
        ],
        vec![sys.clone(), m("user", "A single prompt.")],
        vec![sys.clone(), m("user", "What is Rust?")],
        vec![sys.clone(), m("user", "What is Rust?"), m("assistant", ANSWER), m("user", "Show an example.")],
    ];
    let got: Vec<_> = requests[..8].iter().map(messages).collect();
    assert_eq!(got, expected);

    let recs = jsonl(&records);
    let step = |i: u64| recs.iter().filter(move |r| r["step"] == i);
    let turns: Vec<(u64, u64)> =
        step(0).map(|r| (r["conversation"].as_u64().unwrap(), r["turn"].as_u64().unwrap())).collect();
    assert_eq!(turns, vec![(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (3, 0), (3, 1)]);

    // Shared prefix: 12 prefix words identical within a group, different between groups, 4 suffix words of
    // each request's own; the group is the record's label.
    let mut groups: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (r, body) in step(1).zip(&requests[8..32]) {
        let label = r["label"].as_str().expect("a group label").to_string();
        let msgs = messages(body);
        assert_eq!(msgs.len(), 1, "one user message: {msgs:?}");
        groups.entry(label).or_default().push(msgs[0].1.split(' ').map(str::to_string).collect());
    }
    assert!(groups.keys().all(|g| ["group-0", "group-1", "group-2"].contains(&g.as_str())), "{groups:?}");
    assert!(groups.len() >= 2, "24 Zipf picks over 3 groups use more than one: {groups:?}");
    assert!(groups["group-0"].len() >= groups.values().map(Vec::len).max().unwrap() / 2, "group 0 is popular");
    let mut prefixes = BTreeSet::new();
    let mut suffixes = BTreeSet::new();
    for (g, prompts) in &groups {
        for p in prompts {
            assert_eq!(p.len(), 16, "{g}: {p:?}");
            assert_eq!(p[..12], prompts[0][..12], "{g}: the prefix is shared within the group");
            assert!(suffixes.insert(p[12..].join(" ")), "suffixes are distinct");
        }
        prefixes.insert(prompts[0][..12].join(" "));
    }
    assert_eq!(prefixes.len(), groups.len(), "each group has its own prefix");

    // Lengths drawn from uniform [5, 9] (no tokenizer here: one word per token).
    let lengths: Vec<usize> = requests[32..].iter().map(|b| messages(b)[0].1.split(' ').count()).collect();
    assert!(lengths.iter().all(|n| (5..=9).contains(n)), "{lengths:?}");
    assert!(lengths.iter().collect::<BTreeSet<_>>().len() > 1, "{lengths:?}");

    let doc = json(&out);
    assert_valid(&doc);
    let config = |i: usize| doc["steps"][i]["config"].clone();
    assert!(config(0)["prompt"].as_str().unwrap().starts_with("dataset, 3 conversations, 6 user turns"));
    assert_eq!(config(0).get("turns"), None, "conversations of different lengths");
    let shared = config(1)["prompt"].as_str().unwrap().to_string();
    assert!(shared.contains("3 groups × 12-token shared prefix") && shared.contains("lengths approximate"), "{shared}");
    assert_eq!(config(1)["prompt_tokens"], 16);
    assert!(config(2)["prompt"].as_str().unwrap().starts_with("synthetic, uniform in [5, 9] tokens"));
}

async fn run_scenario(dir: &Path, dataset: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("chats.jsonl"), dataset).unwrap();
    let scenario = dir.join("s.toml");
    std::fs::write(&scenario, "name = \"s\"\n[[steps]]\nname = \"d\"\ndataset = \"chats.jsonl\"\nmax_tokens = 3\n")
        .unwrap();
    let o = velollm_async(
        ["bench", "--url", "http://127.0.0.1:9", "--scenario", scenario.to_str().unwrap(), "--no-progress"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
    .await;
    (o.status.code(), text(&o).1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = run_scenario(dir.path(), "{\"prompt\": \"ok\"}\n\n{\"text\": \"no\"}\n").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("chats.jsonl:3:") && err.contains("expected \"conversations\" (ShareGPT)"), "{err}");
    let (code, err) = run_scenario(dir.path(), "{broken\n").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("chats.jsonl:1: not JSON"), "{err}");
    let (code, err) = run_scenario(dir.path(), "\n\n").await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no conversations"), "{err}");
}
