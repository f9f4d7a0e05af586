//! `velollm bench --scenario semantic-cache` as a user runs it: against `velollm proxy --semantic` in front of
//! the real llama-server (the proxy run as its own process, the real embedding model), against the bare
//! llama-server (no cache: the report says so), and with a label file that is wrong (exit 2, file:line:field).

use crate::common::{command, json, server_url, spawn_velollm_proxy, text};

const LABELS: &str = r#"{"family": "reset", "kind": "seed", "text": "How do I reset my password?"}
{"family": "fr", "kind": "seed", "text": "What is the capital of France?"}
{"family": "temp", "kind": "seed", "text": "How do I convert Celsius to Fahrenheit?"}
{"family": "reset", "kind": "paraphrase", "text": "I forgot my password, how can I reset it?"}
{"family": "fr", "kind": "paraphrase", "text": "Which city is the capital of France?"}
{"family": "temp", "kind": "antonym", "text": "How do I convert Fahrenheit to Celsius?"}
{"family": "fr", "kind": "entity", "text": "What is the capital of Germany?"}
{"family": "none", "kind": "unrelated", "text": "Why is the sky blue?"}
"#;

/// The embedding model's directory, or a skip (a failure with `CI=true`).
fn embedder_model() -> Option<String> {
    match std::env::var("VELOLLM_EMBEDDER_MODEL") {
        Ok(dir) => Some(dir),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but VELOLLM_EMBEDDER_MODEL is not set: run the tests with scripts/test.sh")
        }
        Err(_) => {
            eprintln!("skipped: VELOLLM_EMBEDDER_MODEL is not set (export $(scripts/embedder.sh env))");
            None
        }
    }
}

fn labels(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("labels.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn velollm_proxy_is_evaluated_hits_guard_blocks_sweep_and_criteria() {
    let Some((url, _real)) = server_url() else { return };
    let Some(_model) = embedder_model() else { return };
    let (mut child, addr) = spawn_velollm_proxy(&["--upstream", &url, "--semantic"]);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("semantic.json");
    let out = command()
        .args(["bench", "--url", &format!("http://{addr}"), "--scenario", "semantic-cache", "--labels"])
        .arg(labels(dir.path(), LABELS))
        .arg("-o")
        .arg(&report)
        .output()
        .unwrap();
    let _ = child.kill();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Threshold sweep") && stdout.contains("Criteria:"), "{stdout}");
    let r = json(&report);
    assert_eq!((r["seeds"].as_u64(), r["probes"].as_u64()), (Some(3), Some(5)));
    assert_eq!(r["exact_repeat_hit"], true);
    let at = &r["at_endpoint"];
    assert_eq!((at["hits"].as_u64(), at["false_hits"].as_u64()), (Some(2), Some(0)), "{stdout}");
    assert_eq!(at["recall"], 1.0);
    let kinds = r["by_kind"].as_array().unwrap();
    let antonym = kinds.iter().find(|k| k["kind"] == "antonym").unwrap();
    assert_eq!(antonym["hits"], 0, "the guard blocks the swapped conversion (cosine above 0.99)");
    assert_eq!(r["sweep"].as_array().unwrap().len(), 51, "0.50 to 1.00 by 0.01");
    assert!(r["operating"]["threshold"].as_f64().is_some());
    // Learned thresholds, replayed on the same scores: every candidate is served or explores.
    assert!(stdout.contains("Thresholds learned per entry"), "{stdout}");
    let learned = r["learned"].as_array().unwrap();
    assert_eq!(learned.len(), 3, "δ = 2, 5 and 10 %");
    for l in learned {
        assert!(l["explored"].as_u64().unwrap() + l["point"]["hits"].as_u64().unwrap() > 0, "{l}");
    }
    let chart = std::fs::read_to_string(report.with_extension("svg")).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("operating point"), "the sweep's chart");
    assert!(r["lookup_ms"]["p99"].as_f64().unwrap() > 0.0, "embedding and search times read from the header");
    assert!(r["ttft_hit_ms"]["p50"].as_f64().unwrap() < r["ttft_miss_ms"]["p50"].as_f64().unwrap());
    let names: Vec<&str> = r["criteria"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.iter().any(|n| n.contains("source plan")) && names.iter().any(|n| n.contains("velollm")));
}

#[test]
fn a_server_without_a_cache_gets_no_hits_and_is_told_so() {
    let Some((url, _real)) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .args(["bench", "--url", &url, "--scenario", "semantic-cache", "--max-tokens", "4", "--labels"])
        .arg(labels(dir.path(), LABELS))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("hit rate 0.0 %"), "{stdout}");
    assert!(stdout.contains("is there a cache in front of this server?"), "{stdout}");
    assert!(stdout.contains("no threshold sweep"), "{stdout}");
}

#[test]
fn a_bad_label_file_names_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = format!("{LABELS}{{\"family\": \"zz\", \"kind\": \"paraphrase\", \"text\": \"q\"}}\n");
    let path = labels(dir.path(), &bad);
    let out = command()
        .args(["bench", "--url", "http://127.0.0.1:9", "--scenario", "semantic-cache", "--labels"])
        .arg(&path)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}:9: family: unknown family \"zz\"", path.display())), "{stderr}");
    let typo = labels(dir.path(), "{\"family\": \"a\", \"kind\": \"sede\", \"text\": \"q\"}\n");
    let out = command().args(["bench", "--scenario", "semantic-cache", "--labels"]).arg(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains(":1: kind: unknown kind \"sede\""), "{}", text(&out).1);
}

/// A server of `scripts/test.sh` named by `var`, or a skip (a failure with `CI=true`).
fn shared_store(var: &str, start: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but {var} is not set: run the tests with scripts/test.sh")
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set ({start})");
            None
        }
    }
}

/// `velollm bench --scenario vector-stores` at 1,200 vectors and 30 queries with `args`, its report to `report`.
fn vector_stores(args: &[&str], report: &std::path::Path) -> std::process::Output {
    command()
        .args(["bench", "--scenario", "vector-stores", "--vectors", "1200", "--queries", "30"])
        .args(args)
        .arg("-o")
        .arg(report)
        .output()
        .unwrap()
}

#[test]
fn vector_stores_are_compared_on_the_same_vectors_and_bad_sizes_are_refused() {
    let Some(stack) = shared_store("VELOLLM_TEST_REDIS_STACK_URL", "scripts/redis-stack.sh start 16380") else {
        return;
    };
    let Some(pg) = shared_store("VELOLLM_TEST_PGVECTOR_URL", "scripts/pgvector.sh start 15433") else { return };
    let Some(milvus) = shared_store("VELOLLM_TEST_MILVUS_URL", "scripts/milvus-lite.sh start 19531") else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("vectors.json");
    let out = vector_stores(&["--redis-stack", &stack, "--pgvector", &pg, "--milvus", &milvus], &report);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("embedded, HNSW graph") && stdout.contains("Redis Stack 7.4"), "{stdout}");
    assert!(stdout.contains("pgvector") && stdout.contains("Milvus Lite"), "{stdout}");
    let r = json(&report);
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0]["recall_at_1"], 1.0, "the exact scan is the reference");
    for run in &runs[1..] {
        assert!(run["recall_at_1"].as_f64().unwrap() >= 0.9, "{run}");
        if run["store"].as_str().unwrap().starts_with("Milvus") {
            assert!(run["memory_bytes"].is_null(), "Milvus does not say: {run}");
        } else {
            assert!(run["memory_bytes"].as_u64().unwrap() > 0, "the store grew: {run}");
        }
    }
    assert_eq!(r["not_measured"], serde_json::json!([]), "every store was reached");
    assert!(runs.iter().all(|r| r["inserts_per_s"].as_f64().unwrap() > 0.0 && r["query_ms"]["p99"].as_f64().is_some()));
    assert!(std::fs::read_to_string(report.with_extension("svg")).unwrap().starts_with("<svg"));

    // Only the shared stores, loaded by three writers at once, Redis Stack at two search widths (one load).
    let args =
        ["--skip-embedded", "--writers", "3", "--ef-search", "16,64", "--redis-stack", &stack, "--milvus", &milvus];
    let out = vector_stores(&args, &report);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r = json(&report);
    let stores: Vec<&str> = r["runs"].as_array().unwrap().iter().map(|r| r["store"].as_str().unwrap()).collect();
    assert_eq!(stores.len(), 3, "{stores:?}");
    assert!(stores[0].contains("3 writers (EF_RUNTIME 16)") && stores[1].contains("3 writers (EF_RUNTIME 64)"));
    assert!(stores[2].starts_with("Milvus Lite") && stores[2].ends_with("3 writers"), "{stores:?}");
    for run in r["runs"].as_array().unwrap() {
        assert!(run["recall_at_1"].as_f64().unwrap() >= 0.9, "every writer's vectors are there: {run}");
    }

    // A store that fails does not take the others' rows with it: reported as not measured, exit 1.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("milvus://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = vector_stores(&["--skip-embedded", "--redis-stack", &stack, "--milvus", &dead], &report);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let r = json(&report);
    assert_eq!(r["runs"].as_array().unwrap().len(), 1, "Redis Stack's row is kept: {r}");
    let not = r["not_measured"][0].as_str().unwrap();
    assert!(not.contains("Milvus") && not.contains("(at 1200 vectors)"), "{not}");

    for (args, says) in [
        (vec!["--vectors", "ten"], "--vectors \"ten\""),
        (vec!["--skip-embedded"], "--skip-embedded leaves nothing to measure"),
        (vec!["--writers", "0", "--redis-stack", &stack], "--writers must be at least 1"),
    ] {
        let out = command().args(["bench", "--scenario", "vector-stores"]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out).1.contains(says), "{}", text(&out).1);
    }
}

/// The vector indexes of the Redis Stack server at `url` named for velollm's benchmark.
fn bench_indexes(url: &str) -> Vec<String> {
    let client = velollm_proxy::resp::Client::new(url, std::time::Duration::from_secs(10), "test").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match runtime.block_on(client.call(&[b"FT._LIST"])).unwrap() {
        velollm_proxy::resp::Reply::Array(Some(items)) => {
            items.iter().filter_map(|i| i.text()).filter(|i| i.starts_with("velollm-bench-")).collect()
        }
        other => panic!("FT._LIST answered {other:?}"),
    }
}

#[test]
fn an_interrupted_vector_store_load_drops_its_index_and_says_so() {
    let Some(stack) = shared_store("VELOLLM_TEST_REDIS_STACK_URL", "scripts/redis-stack.sh start 16380") else {
        return;
    };
    let before = bench_indexes(&stack);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("vectors.json");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_velollm"))
        .args(["bench", "--scenario", "vector-stores", "--vectors", "50000", "--queries", "10", "--skip-embedded"])
        .args(["--writers", "2", "--redis-stack", &stack])
        .arg("-o")
        .arg(&report)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted while loading: its own index is there (named for its size; other tests make others).
    let ours = || bench_indexes(&stack).into_iter().filter(|i| i.starts_with("velollm-bench-50000-")).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ours() <= before.iter().filter(|i| i.starts_with("velollm-bench-50000-")).count() {
        assert!(std::time::Instant::now() < deadline, "the load never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    let r = json(&report);
    let not: Vec<&str> = r["not_measured"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    assert!(not.iter().any(|n| n.contains("interrupted by SIGTERM") && n.contains("its index dropped")), "{not:?}");
    assert_eq!(ours(), 0, "the interrupted store's index is gone");
}
