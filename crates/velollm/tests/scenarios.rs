//! Every built-in scenario end to end: the real `velollm` binary against an in-process fake server, with the
//! result validated against the committed schema and each scenario's own figures checked — exactly where the
//! fake makes them exact (token counts, request bodies, connection counts, check outcomes), as lower bounds
//! where they are timings.

use crate::common;

use common::{assert_valid, text, velollm};
use serde_json::Value;
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

/// Fake timings: small, so every scenario runs in well under a second or two.
const TTFT_MS: u64 = 5;
const ITL_MS: u64 = 1;
const TOKENS: usize = 5;
/// The fake's answer to every request.
const ANSWER: &str = "tok0 tok1 tok2 tok3 tok4 ";

fn quick() -> Script {
    Script {
        ttft: Duration::from_millis(TTFT_MS),
        itl: Duration::from_millis(ITL_MS),
        tokens: TOKENS,
        ..Script::default()
    }
}

type Run = common::Ran;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// The value of a named figure of an analysis.
fn figure(a: &Value, name: &str) -> Option<f64> {
    a["figures"].as_array()?.iter().find(|f| f["name"] == name).and_then(|f| f["value"].as_f64())
}

fn fig(a: &Value, name: &str) -> f64 {
    figure(a, name).unwrap_or_else(|| panic!("no figure '{name}' in {a:#}"))
}

fn figure_names(a: &Value) -> Vec<String> {
    a["figures"].as_array().map_or(vec![], |f| f.iter().map(|f| s(&f["name"])).collect())
}

fn notes(a: &Value) -> Vec<String> {
    a["notes"].as_array().map_or(vec![], |n| n.iter().map(s).collect())
}

/// A table row's values, by label.
fn row(a: &Value, label: &str) -> Vec<Option<f64>> {
    let r = a["table"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == label)
        .unwrap_or_else(|| panic!("no row '{label}' in {a:#}"));
    r["values"].as_array().unwrap().iter().map(Value::as_f64).collect()
}

/// A summary statistic of a step metric (`ttft_ms`, `mean`).
fn metric(step: &Value, name: &str, stat: &str) -> f64 {
    step["metrics"][name][stat].as_f64().unwrap_or_else(|| panic!("no {name}.{stat} in {}", step["metrics"]))
}

/// Run `velollm bench --url FAKE --scenario NAME -o run.json --no-progress EXTRA…`.
async fn bench(server: &FakeServer, scenario: &str, extra: &[&str]) -> Run {
    common::Bench::new(&server.url()).args(&["--scenario", scenario]).args(extra).run().await
}

/// The JSON bodies of every generation request the fake received on `path`.
fn bodies(server: &FakeServer, path: &str) -> Vec<Value> {
    server.requests().into_iter().filter(|(p, _)| p == path).map(|(_, b)| b).collect()
}

/// The roles and contents of a chat request's messages.
fn messages(body: &Value) -> Vec<(String, String)> {
    body["messages"].as_array().unwrap().iter().map(|m| (s(&m["role"]), s(&m["content"]))).collect()
}

/// How far below the fake's deadlines a client timing may fall. The client stamps a request as sent when
/// the write call has returned, and on a busy machine it can be descheduled between the write and the stamp
/// while the server already starts its clock: latencies can then read up to that delay short.
const SLACK_MS: f64 = 1.0;

/// The fake's TTFT, less the slack: a lower bound of every measured TTFT.
fn min_ttft_ms() -> f64 {
    TTFT_MS as f64 - SLACK_MS
}

/// The fake's minimum end-to-end latency for one request (the last chunk's deadline), less the slack.
fn min_e2e_ms() -> f64 {
    (TTFT_MS + (TOKENS as u64 - 1) * ITL_MS) as f64 - SLACK_MS
}

// ---------------------------------------------------------------------------------------------
// scenario list / show
// ---------------------------------------------------------------------------------------------

const BUILTINS: [&str; 12] = [
    "standard",
    "warm",
    "cold-start",
    "context-size",
    "max-tokens",
    "prefix-cache",
    "long-conversation",
    "reasoning",
    "tool-calling",
    "stability",
    "load",
    "connections",
];

#[test]
fn scenario_list_names_every_builtin() {
    let o = velollm(&["scenario", "list"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    for name in BUILTINS {
        assert!(stdout.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing:\n{stdout}");
    }
    insta::assert_snapshot!("scenario_list", stdout);
}

#[test]
fn scenario_show_prints_the_file_byte_for_byte() {
    for name in BUILTINS {
        let o = velollm(&["scenario", "show", name]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o).1);
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/{name}.toml"));
        let committed = std::fs::read(&file).unwrap();
        assert!(o.stdout == committed, "`velollm scenario show {name}` differs from {}", file.display());
    }
}

#[test]
fn scenario_show_unknown_exits_2_listing_the_builtins() {
    let o = velollm(&["scenario", "show", "nope"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("no built-in scenario 'nope'"), "{stderr}");
    assert!(stderr.contains(&BUILTINS.join(", ")), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Each built-in scenario
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_runs() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "standard", &[]).await.ok();
    assert_eq!(run.step_names(), ["short_completion", "medium_completion", "code_generation"]);
    assert_eq!(server.request_count(), 11);
    assert!(run.doc.get("analyses").is_none() && run.doc.get("verdicts").is_none(), "{}", run.doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_excludes_the_warmup_and_reports_stats() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "warm", &[]).await.ok();
    let step = run.step("warm");
    assert_eq!(step["warmup_requests"], 1);
    assert_eq!((step["requests"].as_u64(), step["succeeded"].as_u64()), (Some(10), Some(10)));
    assert_eq!(server.request_count(), 11, "10 measured + 1 warm-up");
    assert_eq!(metric(step, "output_tokens", "mean"), TOKENS as f64);
    assert_eq!(step["token_sources"]["server_usage"], 10);
    // The warm-up opened the connection; every measured request reused it.
    assert_eq!(step["connections"], serde_json::json!({"opened": 0, "reused": 10}));

    let stats = run.analysis("stats");
    let mut want = Vec::new();
    for m in ["e2e", "ttft", "tokens_per_s"] {
        for st in ["mean", "median", "min", "max", "stddev"] {
            want.push(format!("{m}_{st}"));
        }
    }
    assert_eq!(figure_names(stats), want);
    // The figures are the step's own aggregates (warm-up excluded), not recomputed differently.
    for (fig_name, m, st) in [
        ("e2e_mean", "e2e_ms", "mean"),
        ("e2e_median", "e2e_ms", "p50"),
        ("e2e_min", "e2e_ms", "min"),
        ("e2e_max", "e2e_ms", "max"),
        ("e2e_stddev", "e2e_ms", "stddev"),
        ("ttft_mean", "ttft_ms", "mean"),
        ("tokens_per_s_mean", "tokens_per_s", "mean"),
    ] {
        assert_eq!(fig(stats, fig_name), metric(step, m, st), "{fig_name}");
    }
    assert!(fig(stats, "e2e_min") >= min_e2e_ms(), "{stats:#}");
    assert!(fig(stats, "ttft_min") >= min_ttft_ms(), "{stats:#}");
    assert!(fig(stats, "e2e_min") <= fig(stats, "e2e_median") && fig(stats, "e2e_median") <= fig(stats, "e2e_max"));
    assert!(notes(stats).iter().any(|n| n.contains("over 10 requests")), "{stats:#}");
    assert_eq!(run.verdicts(), [("success_rate >= 100%".to_string(), "warm".to_string(), true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_fails_on_a_server_velollm_cannot_unload() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "cold-start", &[]).await;
    // An input error for this server, found before anything is sent or written.
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("Ollama") && run.stderr.contains("keep_alive"), "{}", run.stderr);
    assert!(run.stderr.contains("step 'cold' needs a cold model"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(server.request_count(), 0, "nothing is sent");
    assert!(run.doc.is_null(), "no result document for a run that could not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_unloads_ollama_first_and_compares_load_times() {
    let server = FakeServer::start(Flavor::Ollama, quick()).await;
    let run = bench(&server, "cold-start", &[]).await.ok();
    assert_eq!(run.doc["meta"]["target"]["dialect"], "ollama-chat");
    let reqs = server.requests();
    assert_eq!(reqs[0].0, "/api/generate", "the unload comes first: {reqs:?}");
    assert_eq!(reqs[0].1, serde_json::json!({"model": "fake-model", "keep_alive": 0}));
    let rest: Vec<&str> = reqs[1..].iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(rest, ["/api/chat"; 6], "1 cold + 5 warm chat requests, no other unload");
    assert_eq!((run.step("cold")["requests"].as_u64(), run.step("warm")["requests"].as_u64()), (Some(1), Some(5)));

    let cmp = run.analysis("compare");
    assert_eq!(s(&cmp["title"]), "cold vs warm");
    // The fake reports load_duration = 1 ms on every request: the server-reported load is exact.
    assert_eq!(metric(run.step("cold"), "server_load_ms", "mean"), 1.0);
    assert_eq!(row(cmp, "model load ms (server)"), [Some(1.0), Some(1.0), Some(0.0)]);
    assert_eq!(fig(cmp, "server_load_ratio"), 1.0);
    assert_eq!(fig(cmp, "server_load_delta"), 0.0);
    for f in ["ttft_ratio", "ttft_delta", "e2e_ratio", "e2e_delta", "tokens_per_s_ratio"] {
        assert!(figure(cmp, f).is_some_and(f64::is_finite), "{f}: {cmp:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_size_fits_only_what_the_server_reports() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "context-size", &[]).await.ok();
    assert_eq!(run.step_names(), ["short", "medium", "long", "very_long"]);
    // The synthetic prompts do grow…
    let words: Vec<usize> =
        bodies(&server, "/v1/chat/completions").iter().map(|b| messages(b)[0].1.split_whitespace().count()).collect();
    assert_eq!(words.len(), 12);
    assert!(words[0] < words[3] && words[3] < words[6] && words[6] < words[9], "{words:?}");
    // …but the fake reports a fixed 12 prompt tokens, and velollm fits what the server counted.
    let fits = run.analyses("fit");
    assert_eq!(fits.len(), 2);
    for (a, y) in fits.iter().zip(["ttft", "e2e"]) {
        assert_eq!(s(&a["title"]), format!("{y} against prompt_tokens"));
        for step in ["short", "medium", "long", "very_long"] {
            let r = row(a, step);
            assert_eq!((r[0], r[2]), (Some(12.0), Some(3.0)), "{step}: {a:#}");
        }
        assert!(figure_names(a).is_empty(), "no made-up slope: {a:#}");
        assert_eq!(notes(a), ["not enough distinct prompt_tokens values to fit a line"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_asks_for_exact_lengths_and_reports_what_came() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "max-tokens", &[]).await.ok();
    let sent: Vec<(u64, bool, u64)> = bodies(&server, "/v1/chat/completions")
        .iter()
        .map(|b| (b["max_tokens"].as_u64().unwrap(), b["ignore_eos"] == true, b["min_tokens"].as_u64().unwrap()))
        .collect();
    let want: Vec<(u64, bool, u64)> = [25, 50, 100, 150].iter().flat_map(|&n| [(n, true, n); 3]).collect();
    assert_eq!(sent, want);
    for name in ["tokens_25", "tokens_50", "tokens_100", "tokens_150"] {
        let step = run.step(name);
        assert_eq!(step["config"]["exact_output"], true);
        // The fake always produces TOKENS: the achieved length is reported, not the requested one.
        assert_eq!(metric(step, "output_tokens", "max"), TOKENS as f64, "{name}");
    }
    let fit = run.analysis("fit");
    assert_eq!(s(&fit["title"]), "e2e against output_tokens");
    assert_eq!(row(fit, "tokens_150")[0], Some(TOKENS as f64));
    assert!(figure(fit, "slope").is_none() && figure(fit, "speed").is_none(), "{fit:#}");
    assert_eq!(notes(fit), ["not enough distinct output_tokens values to fit a line"]);
}

/// Checks shared by the prefix-cache runs: MISS/HIT labelling, the salt, and the real answer carried over.
fn check_prefix_cache_requests(bodies: &[Value]) {
    // 5 conversations of (miss, hit), then 5 independent messages.
    assert_eq!(bodies.len(), 15);
    let mut salts = std::collections::HashSet::new();
    for conv in bodies[..10].chunks(2) {
        let (miss, hit) = (messages(&conv[0]), messages(&conv[1]));
        assert_eq!(miss.len(), 1);
        assert_eq!(miss[0].0, "user");
        assert!(miss[0].1.starts_with("[session "), "{}", miss[0].1);
        assert!(miss[0].1.contains("] You are reviewing the design"), "{}", miss[0].1);
        salts.insert(miss[0].1.clone());
        assert_eq!(hit.len(), 3);
        assert_eq!(hit[0], miss[0], "the HIT repeats the salted first turn");
        assert_eq!(hit[1], ("assistant".to_string(), ANSWER.to_string()), "the first turn's real answer");
        assert_eq!(hit[2].1, "Now suggest one concrete change that removes that risk, in two sentences.");
    }
    assert_eq!(salts.len(), 5, "every conversation has its own salt");
    // Independent messages: single-turn, all different (none served from the cache).
    let independent: std::collections::HashSet<_> = bodies[10..].iter().map(messages).collect();
    assert_eq!(independent.len(), 5, "{independent:?}");
    assert!(independent.iter().all(|m| m.len() == 1 && m[0].0 == "user"));
    assert!(independent.iter().any(|m| m[0].1 == "Name three colours of the rainbow."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_reports_a_hit_that_did_not_hit() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "prefix-cache", &[]).await.ok();
    check_prefix_cache_requests(&bodies(&server, "/v1/chat/completions"));
    assert_eq!(run.step("conversation")["requests"], 10);
    assert_eq!(run.step("conversation")["config"]["turns"], 2);

    let cache = run.analysis("cache");
    for f in [
        "ttft_miss",
        "ttft_miss_stddev",
        "ttft_hit",
        "ttft_hit_stddev",
        "gain_ms",
        "acceleration",
        "acceleration_min",
        "acceleration_max",
        "acceleration_stddev",
        "ttft_independent",
    ] {
        assert!(figure(cache, f).is_some_and(f64::is_finite), "{f}: {cache:#}");
    }
    assert!(fig(cache, "ttft_miss") >= min_ttft_ms() && fig(cache, "ttft_hit") >= min_ttft_ms(), "{cache:#}");
    // The fake reports cached_tokens = 0 of 12 prompt tokens: no HIT is confirmed.
    assert_eq!(fig(cache, "hit_rate"), 0.0);
    let n = notes(cache);
    assert_eq!(n.len(), 5, "{n:?}");
    for (i, note) in n.iter().enumerate() {
        assert_eq!(
            *note,
            format!("conversation {}: the HIT turn did not hit the cache (0 cached of 12 prompt tokens)", i + 1)
        );
    }
    for i in 1..=5 {
        let r = row(cache, &format!("iteration {i}"));
        assert_eq!((r[3], r[4]), (Some(0.0), Some(0.0)), "cached tokens of MISS and HIT: {cache:#}");
    }
    let v = run.verdicts();
    assert!(v.contains(&("hit_rate >= 80%".to_string(), "run".to_string(), false)), "{v:?}");
    assert!(v.iter().any(|(t, scope, _)| t == "acceleration > 1" && scope == "run"), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_does_not_confirm_a_hit_when_the_miss_was_cached_too() {
    // The fake reports the same cached count on every request: the salted MISS claims its whole prompt was
    // cached as well, so the HIT cannot be told apart from it and is not confirmed.
    let server = FakeServer::start(Flavor::OpenAi, Script { cached_tokens: 12, ..quick() }).await;
    let run = bench(&server, "prefix-cache", &[]).await.ok();
    let cache = run.analysis("cache");
    for i in 1..=5 {
        let r = row(cache, &format!("iteration {i}"));
        assert_eq!((r[3], r[4]), (Some(12.0), Some(12.0)), "{cache:#}");
    }
    assert_eq!(fig(cache, "hit_rate"), 0.0);
    assert_eq!(notes(cache).len(), 5, "{cache:#}");
    assert_eq!(metric(run.step("conversation"), "cached_tokens", "mean"), 12.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_on_a_server_without_cached_counts_is_unverified() {
    // Ollama reports no cached-token count at all.
    let server = FakeServer::start(Flavor::Ollama, quick()).await;
    let run = bench(&server, "prefix-cache", &[]).await.ok();
    check_prefix_cache_requests(&bodies(&server, "/api/chat"));
    let cache = run.analysis("cache");
    assert!(figure(cache, "hit_rate").is_none(), "no hit rate without a count: {cache:#}");
    assert!(figure(cache, "acceleration").is_some());
    assert_eq!(notes(cache), ["5 HIT turns could not be verified: the server reports no cached-token count"]);
    // `hit_rate` was not produced and is no step metric either: one run-level verdict fails and says so,
    // rather than passing silently.
    let failed: Vec<_> = run.verdicts().into_iter().filter(|v| v.0 == "hit_rate >= 80%").collect();
    assert_eq!(failed, vec![("hit_rate >= 80%".to_string(), "run".to_string(), false)], "{failed:?}");
    let detail = run.doc["verdicts"].as_array().unwrap().iter().find(|v| v["threshold"] == "hit_rate >= 80%").unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("not measured"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_turns_a_failed_threshold_into_exit_3() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "prefix-cache", &["--check"]).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("threshold(s) failed (--check)"), "{}", run.stderr);
    assert_valid(&run.doc);
    assert_eq!(run.doc["status"], "complete");
    // Without --check the same failures are reported but the run exits 0.
    let run = bench(&server, "prefix-cache", &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.verdicts().iter().any(|v| v.0 == "hit_rate >= 80%" && !v.2));
    // And --check passes when every threshold holds.
    let run = bench(&server, "warm", &["--check"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_conversation_carries_every_real_answer() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "long-conversation", &["--turns", "6", "--iterations", "2"]).await.ok();
    let step = run.step("conversation");
    assert_eq!((step["requests"].as_u64(), step["succeeded"].as_u64()), (Some(12), Some(12)));
    assert_eq!(step["config"]["turns"], 6);
    let sent = bodies(&server, "/v1/chat/completions");
    assert_eq!(sent.len(), 12);
    for (k, body) in sent.iter().enumerate() {
        let turn = k % 6;
        let m = messages(body);
        assert_eq!(m[0].0, "system");
        assert_eq!(m.len(), 2 + 2 * turn, "request {k}");
        let answers: Vec<&str> = m.iter().filter(|(r, _)| r == "assistant").map(|(_, c)| c.as_str()).collect();
        assert_eq!(answers, vec![ANSWER; turn], "request {k} carries the {turn} previous answers");
    }
    // Turn 7 would cycle back to the first message; with 6 turns the last one is the sixth.
    assert!(messages(&sent[5])[11].1.starts_with("What is a sensible limit"), "{:?}", messages(&sent[5]));

    let turns = run.analysis("turns");
    assert_eq!(s(&turns["title"]), "conversation: TTFT per turn (6 turns, 2 conversations)");
    for f in ["ttft_mean", "ttft_stddev", "ttft_first_third", "ttft_middle_third", "ttft_last_third", "degradation"] {
        assert!(figure(turns, f).is_some_and(f64::is_finite), "{f}: {turns:#}");
    }
    let (first, last) = (fig(turns, "ttft_first_third"), fig(turns, "ttft_last_third"));
    assert!((fig(turns, "degradation") - (last - first) / first * 100.0).abs() < 1e-9);
    assert!(figure(turns, "degradation_max").is_some());
    assert_eq!(fig(turns, "success"), 100.0);
    for t in 1..=6 {
        assert!(row(turns, &format!("turn {t}"))[0].is_some_and(|v| v >= min_ttft_ms()));
    }
    let thresholds: Vec<String> = run.verdicts().into_iter().map(|v| v.0).collect();
    assert_eq!(thresholds, ["ttft_mean < 4s", "ttft_stddev < 200ms", "degradation < 20%", "success > 95%"]);
    let v = run.verdicts();
    assert!(v[0].2 && v[3].2, "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_checks_fail_on_the_fake_text() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "reasoning", &[]).await.ok();
    let criteria = [
        ("planning", ["numbered steps", "technologies named", "durations estimated", "testing or deployment covered"]),
        ("logic", ["identifies C = 5", "computes A = 10", "bounds B between 5 and 10", "final answer 10"]),
        (
            "code_review",
            ["flags '== True'", "suggests a list comprehension", "suggests a dict literal", "gives improved code"],
        ),
    ];
    for (name, names) in criteria {
        let q = &run.step(name)["quality"];
        assert_eq!(q["score"], 0.0, "{name}: {q}");
        assert_eq!(q["first_try_rate"], 0.0, "{name}: {q}");
        let got: Vec<(String, u64, u64)> = q["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (s(&c["name"]), c["passed"].as_u64().unwrap(), c["total"].as_u64().unwrap()))
            .collect();
        let want: Vec<(String, u64, u64)> = names.iter().map(|n| (n.to_string(), 0, 1)).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calling_checks_the_calls_the_server_made() {
    let weather = ("get_weather".to_string(), r#"{"city":"Paris","unit":"celsius"}"#.to_string());
    let server = FakeServer::start(Flavor::OpenAi, Script { tool_calls: vec![weather], ..quick() }).await;
    let run = bench(&server, "tool-calling", &[]).await.ok();
    let sent = bodies(&server, "/v1/chat/completions");
    assert_eq!(sent.len(), 9);
    let tool_names = |b: &Value| -> Vec<String> {
        b["tools"].as_array().unwrap().iter().map(|t| s(&t["function"]["name"])).collect()
    };
    assert_eq!(tool_names(&sent[0]), ["get_weather"]);
    assert_eq!(sent[0]["tools"][0]["function"]["parameters"]["required"], serde_json::json!(["city"]));
    assert_eq!(tool_names(&sent[3]), ["get_weather", "get_time"]);
    assert_eq!(tool_names(&sent[6]), ["convert_currency", "get_weather"]);

    let criteria = |step: &str| -> Vec<(String, u64, u64, String)> {
        run.step(step)["quality"]["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let example = c["example"].as_str().unwrap_or("").to_string();
                (s(&c["name"]), c["passed"].as_u64().unwrap(), c["total"].as_u64().unwrap(), example)
            })
            .collect()
    };
    assert_eq!(criteria("single_tool"), [("tool call get_weather".to_string(), 3, 3, String::new())]);
    assert_eq!(run.step("single_tool")["quality"]["score"], 1.0);
    assert_eq!(
        criteria("multiple_tools"),
        [
            ("tool call get_weather".to_string(), 3, 3, String::new()),
            ("tool call get_time".to_string(), 0, 3, "called get_weather".to_string()),
        ]
    );
    assert_eq!(run.step("multiple_tools")["quality"]["score"], 0.5);
    assert_eq!(
        criteria("compositional"),
        [("tool call convert_currency".to_string(), 0, 3, "called get_weather".to_string())]
    );
    assert_eq!(run.step("compositional")["quality"]["score"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stability_reports_no_drift_errors_or_outages() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "stability", &["--rate", "20", "--requests", "5"]).await.ok();
    let step = run.step("stability");
    assert_eq!((step["requests"].as_u64(), step["succeeded"].as_u64()), (Some(5), Some(5)));
    assert_eq!(
        step["config"]["load"],
        serde_json::json!({"mode": "rate", "rate": 20.0, "arrival": {"kind": "constant"}})
    );
    let drift = run.analysis("drift");
    assert_eq!((fig(drift, "errors"), fig(drift, "timeouts"), fig(drift, "outages")), (0.0, 0.0, 0.0));
    for f in ["ttft_drift_ms_per_min", "e2e_drift_ms_per_min"] {
        assert!(figure(drift, f).is_some_and(f64::is_finite), "{f}: {drift:#}");
    }
    // The % change needs a positive fitted start, which one late outlier among 5 points can prevent.
    assert!(figure(drift, "e2e_drift").is_none_or(f64::is_finite), "{drift:#}");
    assert!(notes(drift).is_empty(), "{drift:#}");
    assert_eq!(
        run.verdicts(),
        [("outages < 1".to_string(), "run".to_string(), true), ("errors < 1".to_string(), "run".to_string(), true)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_compares_alone_with_ten_in_parallel() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "load", &[]).await.ok();
    let (alone, parallel) = (run.step("alone"), run.step("parallel"));
    assert_eq!(alone["config"]["load"], serde_json::json!({"mode": "sequential"}));
    assert_eq!(parallel["config"]["load"], serde_json::json!({"mode": "concurrency", "concurrency": 10}));
    assert_eq!((alone["requests"].as_u64(), parallel["requests"].as_u64()), (Some(5), Some(20)));
    assert_eq!(parallel["succeeded"], 20);
    // Ten workers, each with its own connection.
    assert_eq!(parallel["connections"]["opened"], 10);
    let cmp = run.analysis("compare");
    assert_eq!(s(&cmp["title"]), "parallel vs alone");
    assert_eq!(cmp["table"]["columns"], serde_json::json!(["metric (mean)", "alone", "parallel", "difference"]));
    let ttft = row(cmp, "TTFT ms");
    assert_eq!(ttft[0], Some(metric(alone, "ttft_ms", "mean")));
    assert_eq!(ttft[1], Some(metric(parallel, "ttft_ms", "mean")));
    // Within an ulp or two: the means went through JSON before this division.
    let ratio = ttft[1].unwrap() / ttft[0].unwrap();
    assert!((fig(cmp, "ttft_ratio") - ratio).abs() <= 1e-12 * ratio, "{cmp:#}");
    assert!(figure(cmp, "e2e_ratio").is_some() && figure(cmp, "tokens_per_s_delta").is_some());
    assert!(figure(cmp, "server_load_ratio").is_none(), "OpenAI servers report no load time: {cmp:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_counts_opened_and_reused() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server, "connections", &[]).await.ok();
    let (keep, new) = (run.step("keep_alive"), run.step("new_connection"));
    assert_eq!(new["requests"], 10);
    assert_eq!(new["connections"], serde_json::json!({"opened": 10, "reused": 0}));
    assert_eq!(keep["connections"], serde_json::json!({"opened": 1, "reused": 9}));
    // Reused connections have no network overhead: only the first request paid for one.
    assert_eq!(metric(keep, "network_overhead_ms", "p50"), 0.0);
    assert!(metric(new, "network_overhead_ms", "min") > 0.0);
    let cmp = run.analysis("compare");
    assert_eq!(s(&cmp["title"]), "new_connection vs keep_alive");
    // Both means are measured; their sign is left alone: one slow first connect could flip it.
    let net = row(cmp, "network overhead ms");
    assert_eq!(net[0], Some(metric(keep, "network_overhead_ms", "mean")));
    assert_eq!(net[1], Some(metric(new, "network_overhead_ms", "mean")));
    assert!(figure(cmp, "network_overhead_delta").is_some(), "{cmp:#}");
}
