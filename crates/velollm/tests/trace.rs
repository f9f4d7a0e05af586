//! `velollm bench --trace FILE`: agent sessions replayed from a request-per-turn trace, through the real
//! binary, against the in-process fake (exact bodies and timings) and the real llama-server (prefix reuse).

use crate::common;

use common::{json, jsonl, server_url, text, velollm_async};
use serde_json::{Value, json};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

/// A two-session agent trace: session `a` lists files, reads one (tool calls and results in its history),
/// then answers; session `b` starts `b_start_ms` later with one call.
fn agent_trace(delay_ms: u64, b_start_ms: u64) -> (String, Vec<Vec<Value>>) {
    let tools = json!([{"type": "function", "function": {"name": "ls", "description": "List files",
        "parameters": {"type": "object", "properties": {}}}}]);
    let system = json!({"role": "system", "content": "You are a coding agent."});
    let user = json!({"role": "user", "content": "What is in this folder?"});
    let call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "ls", "arguments": "{}"}}]});
    let result = json!({"role": "tool", "tool_call_id": "c1", "content": "README.md\nsrc/"});
    let answer = json!({"role": "assistant", "content": "A README and a src folder."});
    let follow = json!({"role": "user", "content": "Summarise the README in one line."});
    let turns = vec![
        vec![system.clone(), user.clone()],
        vec![system.clone(), user.clone(), call.clone(), result.clone()],
        vec![system, user, call, result, answer, follow],
    ];
    let mut lines = Vec::new();
    for (k, messages) in turns.iter().enumerate() {
        let mut line = json!({"session_id": "a", "turn": k, "messages": messages, "tools": tools,
            "output_tokens": 4, "delay_ms": delay_ms});
        if k == 0 {
            line["timestamp_ms"] = json!(1000);
        }
        lines.push(line.to_string());
    }
    let b = vec![json!({"role": "user", "content": "hello"})];
    lines.push(json!({"session_id": 2, "timestamp_ms": 1000 + b_start_ms, "messages": b}).to_string());
    let mut all = turns;
    all.push(b);
    (lines.join("\n") + "\n", all)
}

type Run = common::Ran;

async fn bench(url: &str, trace: &str, args: &[&str]) -> Run {
    let b = common::Bench::new(url);
    let file = b.dir().join("trace.jsonl");
    std::fs::write(&file, trace).unwrap();
    b.args(&["--trace", file.to_str().unwrap()]).args(args).run().await
}

fn ms(ns: &Value) -> f64 {
    ns.as_u64().unwrap() as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_replays_its_recorded_histories_and_pauses() {
    let script =
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 4, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let (trace, histories) = agent_trace(150, 100);
    let run = bench(&server.url(), &trace, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.doc["steps"][0]["name"], "trace");
    assert_eq!(run.doc["steps"][0]["succeeded"], 4, "{}", run.doc["steps"][0]);

    // Every call went out with its history exactly as recorded, tools and output length included.
    let bodies: Vec<Value> = server.requests().into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies.len(), 4);
    for h in &histories {
        let sent = bodies.iter().find(|b| b["messages"].as_array().unwrap()[..] == h[..]);
        let sent = sent.unwrap_or_else(|| panic!("no request carried {h:?}: {bodies:#?}"));
        if h.len() > 1 {
            assert_eq!(sent["tools"][0]["function"]["name"], "ls");
            assert_eq!(sent["max_tokens"], 4, "the recorded output length: {sent}");
        }
    }

    // Session a: three turns in order, each after the recorded 150 ms pause that followed the previous one.
    let mut a: Vec<&Value> = run.records.iter().filter(|r| r["label"] == "session a").collect();
    a.sort_by_key(|r| r["turn"].as_u64());
    assert_eq!(a.iter().map(|r| r["turn"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    for w in a.windows(2) {
        let pause = ms(&w[1]["scheduled"]) - ms(&w[0]["done"]);
        assert!((150.0..160.0).contains(&pause), "scheduled {pause:.1} ms after the previous answer");
        let late = ms(&w[1]["sent"]) - ms(&w[1]["scheduled"]);
        assert!((0.0..50.0).contains(&late), "sent {late:.1} ms after its schedule");
    }
    // Session 2 starts 100 ms after session a, as recorded.
    let b = run.records.iter().find(|r| r["label"] == "session 2").unwrap();
    let start = ms(&b["scheduled"]) - ms(&a[0]["scheduled"]);
    assert!((99.0..101.0).contains(&start), "session 2 scheduled {start:.1} ms after session a");
    let agent = analysis(&run.doc, "agent");
    let rows: Vec<&str> =
        agent["table"]["rows"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap()).collect();
    // By turn, then by context length: the fake reports 12 prompt tokens for every call.
    assert_eq!(rows, ["turn 1", "turn 2", "turn 3", "context 1–256 tokens"]);
    let lateness = figure(agent, "schedule_lateness_p99_ms").unwrap();
    assert!((0.0..50.0).contains(&lateness), "{agent:#}");
    assert!(figure(agent, "model_time_share").is_some_and(|s| s > 0.0 && s < 100.0), "{agent:#}");
    // Session a's calls asked for their recorded 4 tokens and got them; session 2's asked for the default 128.
    assert_eq!(figure(agent, "output_target_reached"), Some(75.0), "{agent:#}");
    assert!(agent["notes"].to_string().contains("1 of 4 calls answered fewer tokens than asked"), "{agent:#}");
}

fn analysis<'a>(doc: &'a Value, kind: &str) -> &'a Value {
    doc["analyses"].as_array().unwrap().iter().find(|x| x["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {doc}"))
}

fn figure(a: &Value, name: &str) -> Option<f64> {
    a["figures"].as_array()?.iter().find(|f| f["name"] == name).and_then(|f| f["value"].as_f64())
}

/// A scenario step whose `dataset` is a trace replays it the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_dataset_can_be_a_trace() {
    let server = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (trace, _) = agent_trace(10, 0);
    std::fs::write(dir.path().join("agent.jsonl"), trace).unwrap();
    let scenario = dir.path().join("agent.toml");
    std::fs::write(
        &scenario,
        "name = \"agent\"\n[[analyses]]\nkind = \"agent\"\nstep = \"replay\"\n[[steps]]\nname = \"replay\"\ndataset = \"agent.jsonl\"\nmax_tokens = 8\n",
    )
    .unwrap();
    let out = dir.path().join("run.json");
    let args = [
        "bench",
        "--url",
        &server.url(),
        "--scenario",
        scenario.to_str().unwrap(),
        "--no-progress",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = velollm_async(args.iter().map(|s| s.to_string()).collect()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let doc = json(&out);
    assert_eq!(doc["steps"][0]["succeeded"], 4, "every call of both sessions: {}", doc["steps"][0]);
    assert_eq!(analysis(&doc, "agent")["table"]["rows"].as_array().unwrap().len(), 4, "3 turns and 1 context bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_scale_and_together_change_the_schedule() {
    let script =
        Script { ttft: Duration::from_millis(2), itl: Duration::from_millis(1), tokens: 2, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let (trace, _) = agent_trace(400, 600);
    let run = bench(&server.url(), &trace, &["--time-scale", "0.25", "--sessions-together"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let a: Vec<&Value> = run.records.iter().filter(|r| r["label"] == "session a").collect();
    let b = run.records.iter().find(|r| r["label"] == "session 2").unwrap();
    assert!((ms(&b["scheduled"]) - ms(&a[0]["scheduled"])).abs() < 5.0, "together: both start at once");
    let pause = ms(&a[1]["scheduled"]) - ms(&a[0]["done"]);
    assert!((100.0..110.0).contains(&pause), "400 ms × 0.25: {pause:.1}");
    let run = bench(&server.url(), &trace, &["--max-delay", "20ms"]).await;
    let a: Vec<&Value> = run.records.iter().filter(|r| r["label"] == "session a").collect();
    let pause = ms(&a[1]["scheduled"]) - ms(&a[0]["done"]);
    assert!((20.0..30.0).contains(&pause), "capped at 20 ms: {pause:.1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_trace_is_refused_before_anything_is_sent() {
    let server = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let (good, _) = agent_trace(0, 0);
    let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
    // Turn 1 of session a rewrites turn 0's history.
    lines[1] = lines[1].replace("What is in this folder?", "Something else");
    let run = bench(&server.url(), &(lines.join("\n") + "\n"), &[]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("trace.jsonl': line 2 (session 'a'): the history does not extend turn 0 (line 1)"),
        "{}",
        run.stderr
    );
    let run = bench(
        &server.url(),
        "{\"session_id\": \"x\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\nnot json\n",
        &[],
    )
    .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("line 2: not JSON"), "{}", run.stderr);
    assert_eq!(server.request_count(), 0, "nothing was sent");

    // Recorded OpenAI chat histories need the OpenAI chat dialect.
    let anthropic = FakeServer::start(Flavor::Anthropic, Script::default()).await;
    let run = bench(&anthropic.url(), &good, &["--backend", "anthropic", "--model", "m"]).await;
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("--backend openai-chat"), "{}", run.stderr);
    assert_eq!(anthropic.request_count(), 0);
}

/// Against llama-server: a trace with tool calls in its history replays end to end, every call reports its
/// cached prompt tokens, and the later calls of a session reuse the prefix its earlier calls left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_reuses_the_prefix_of_a_sessions_earlier_calls() {
    let Some((url, _real)) = server_url() else { return };
    let (trace, _) = agent_trace(50, 0);
    let run = bench(&url, &trace, &["--sessions-together"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.doc["steps"][0]["succeeded"], 4, "{}", run.doc["steps"][0]);
    for r in &run.records {
        assert!(r["usage"]["cached_tokens"].is_u64(), "every call reports its cached tokens: {r}");
    }
    let mut a: Vec<&Value> = run.records.iter().filter(|r| r["label"] == "session a").collect();
    a.sort_by_key(|r| r["turn"].as_u64());
    for later in &a[1..] {
        let (cached, prompt) =
            (later["usage"]["cached_tokens"].as_u64().unwrap(), later["usage"]["prompt_tokens"].as_u64().unwrap());
        assert!(cached > 0 && cached < prompt, "turn {} reused {cached} of {prompt} prompt tokens", later["turn"]);
    }
    let reuse = figure(analysis(&run.doc, "agent"), "prefix_reuse").unwrap();
    assert!(reuse > 0.0 && reuse < 100.0, "{reuse}");
}

/// Against llama-server: an agent replay with tool calls in its history exports as an llm-d Benchmark Report
/// that llm-d's own schema and model accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_against_llama_server_is_an_llm_d_benchmark_report() {
    let Some(package) = common::llmd_report_package() else { return };
    let Some((url, _real)) = server_url() else { return };
    let (trace, _) = agent_trace(20, 0);
    let run = bench(&url, &trace, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.dir.path().join("llmd.json");
    let o = common::velollm(&[
        "report",
        run.dir.path().join("run.json").to_str().unwrap(),
        "--llm-d",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    common::assert_llmd_valid(&package, &report);
    let r = json(&report);
    let agg = &r["results"]["request_performance"]["aggregate"];
    assert_eq!(agg["requests"]["total"], 4);
    assert_eq!(agg["requests"]["failures"], 0);
    assert!(
        agg["requests"]["input_length"]["max"].as_f64().unwrap()
            > agg["requests"]["input_length"]["min"].as_f64().unwrap(),
        "the history grows: {}",
        agg["requests"]["input_length"]
    );
    assert!(agg["latency"]["time_to_first_token"]["mean"].as_f64().unwrap() > 0.0);
    let sessions = &r["results"]["session_performance"]["sessions"];
    assert_eq!((sessions["total"].as_u64(), sessions["failed"].as_u64()), (Some(2), Some(0)), "{sessions}");
    assert_eq!((sessions["total_events"].as_u64(), sessions["total_events_completed"].as_u64()), (Some(4), Some(4)));
    assert_eq!(sessions["events_per_session"]["max"], 3.0);
    assert!(sessions["session_duration"]["max"].as_f64().unwrap() > 0.04, "two 20 ms pauses: {sessions}");
    let reuse = &r["results"]["observability"]["components"][0]["aggregate"]["cache_hit_rate"];
    let mean = reuse["mean"].as_f64().unwrap();
    assert!(reuse["units"] == "percent" && mean > 0.0 && mean < 100.0, "prefix reuse {reuse}");
}

/// A Mooncake trace: prompts synthesised from block ids, equal leading ids giving byte-identical prefixes,
/// each request at its timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mooncake_trace_shares_prefixes_block_by_block() {
    let server = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let trace = [
        r#"{"timestamp": 1000, "input_length": 600, "output_length": 4, "hash_ids": [11, 12]}"#,
        r#"{"timestamp": 1040, "input_length": 700, "output_length": 4, "hash_ids": [11, 13]}"#,
        r#"{"timestamp": 1080, "input_length": 100, "output_length": 4, "hash_ids": [14]}"#,
    ]
    .join("\n");
    let run = bench(&server.url(), &trace, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.doc["steps"][0]["succeeded"], 3);
    let prompts: Vec<String> = server
        .requests()
        .into_iter()
        .map(|(_, b)| b["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string())
        .collect();
    let words = |p: &str| p.split(' ').map(str::to_string).collect::<Vec<_>>();
    let (a, b, c) = (words(&prompts[0]), words(&prompts[1]), words(&prompts[2]));
    assert_eq!((a.len(), b.len(), c.len()), (600, 700, 100), "one word per token without a tokenizer");
    assert_eq!(a[..512], b[..512], "block 11 is the same text in both requests");
    assert_ne!(a[512..], b[512..600], "blocks 12 and 13 differ");
    assert_ne!(a[..100], c[..], "block 14 shares nothing with block 11");
    assert_eq!(run.records.iter().map(|r| r["max_tokens"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 4, 4]);
    let mut starts: Vec<f64> = run.records.iter().map(|r| ms(&r["scheduled"])).collect();
    starts.sort_by(f64::total_cmp);
    assert!((starts[1] - starts[0] - 40.0).abs() < 1.0 && (starts[2] - starts[0] - 80.0).abs() < 1.0, "{starts:?}");
}

/// `--slice D` cuts each step into slices of D by the instant its requests ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_cut_a_step_by_time() {
    let script =
        Script { ttft: Duration::from_millis(20), itl: Duration::from_millis(5), tokens: 4, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let args =
        ["bench", "--url", &server.url(), "--prompt", "hi", "-n", "12", "--slice", "100ms", "--no-progress", "-o"];
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push(out.to_str().unwrap().to_string());
    let o = velollm_async(all).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let doc = json(&out);
    let a = analysis(&doc, "slices");
    let rows = a["table"]["rows"].as_array().unwrap();
    // 12 sequential requests of about 35 ms each: about 0.4 s, in slices of 100 ms, every request in one.
    assert!(rows.len() >= 3, "{a:#}");
    let ended: f64 = rows.iter().map(|r| r["values"][0].as_f64().unwrap()).sum();
    assert_eq!(ended, 12.0, "{a:#}");
    assert!(rows[0]["label"].as_str().unwrap().starts_with("0–0.1 s"), "{a:#}");
    let bad = velollm_async(vec!["bench".into(), "--url".into(), server.url(), "--slice".into(), "soon".into()]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad).1);
    assert!(text(&bad).1.contains("--slice"), "{}", text(&bad).1);
}

/// Sub-agents (`parent_id`, `parent_turn`) start when their parent's call has answered, run concurrently,
/// and the parent's next call waits for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_agents_fork_from_their_parent_and_rejoin() {
    let script =
        Script { ttft: Duration::from_millis(10), itl: Duration::from_millis(2), tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let user = |text: &str| json!({"role": "user", "content": text});
    let answer = json!({"role": "assistant", "content": "ok"});
    let lines = [
        json!({"session_id": "lead", "messages": [user("plan")], "delay_ms": 20}),
        json!({"session_id": "w1", "parent_id": "lead", "parent_turn": 0, "messages": [user("part 1")], "delay_ms": 60}),
        json!({"session_id": "w1", "messages": [user("part 1"), answer.clone(), user("more")]}),
        json!({"session_id": "w2", "parent_id": "lead", "parent_turn": 0, "messages": [user("part 2")]}),
        json!({"session_id": "lead", "messages": [user("plan"), answer, user("merge")]}),
    ];
    let trace = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    let run = bench(&server.url(), &trace, &[]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(server.request_count(), 5, "2 calls of the lead, 2 of w1, 1 of w2");
    assert!(run.records.iter().all(|r| r["conversation"] == 0), "one agent task: {:#?}", run.records);
    let call = |label: &str, turn: u64| {
        run.records
            .iter()
            .find(|r| r["label"] == label && r["turn"] == turn)
            .unwrap_or_else(|| panic!("{label} {turn}"))
    };
    let lead0_done = ms(&call("session lead", 0)["done"]);
    for worker in ["session w1", "session w2"] {
        let start = ms(&call(worker, 0)["scheduled"]);
        assert!((0.0..5.0).contains(&(start - lead0_done)), "{worker} starts when the lead's call answered");
    }
    let w1_last = ms(&call("session w1", 1)["done"]);
    let lead1 = ms(&call("session lead", 1)["scheduled"]);
    assert!((20.0..30.0).contains(&(lead1 - w1_last)), "the lead waits for its sub-agents, then its own 20 ms pause");

    // A sub-agent whose parent is not defined before it is refused.
    let orphan =
        json!({"session_id": "w", "parent_id": "nobody", "parent_turn": 0, "messages": [user("x")]}).to_string();
    let run = bench(&server.url(), &orphan, &[]).await;
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("parent_id 'nobody' names no session on an earlier line"), "{}", run.stderr);
}

fn aborted(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["error"]["class"] == "aborted").collect()
}

/// `--cancel-share F` aborts that share of the requests mid-stream (at the first token, or `--cancel-after`
/// the send): counted as `aborted`, not measured, and the aborts analysis compares the requests after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_aborts_a_share_of_requests_mid_stream() {
    let script =
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(10), tokens: 8, ..Script::default() };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
        let mut args: Vec<String> =
            ["bench", "--url", &server.url(), "--prompt", "hi", "-n", "20", "--cancel-share", "0.5"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--no-progress".into(), "-o".into(), out.display().to_string()]);
        args.extend(["--records".into(), records.display().to_string()]);
        async move {
            let o = velollm_async(args).await;
            assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
            (json(&out), jsonl(&records))
        }
    };
    let (doc, records) = run(&[]).await;
    let cut = aborted(&records);
    assert!((4..=16).contains(&cut.len()), "about half of 20: {}", cut.len());
    let step = &doc["steps"][0];
    assert_eq!(step["succeeded"].as_u64().unwrap() as usize + cut.len(), 20, "{step}");
    for r in &cut {
        // Cut at the first token: one output chunk, long before the 8 tokens' 80 ms.
        let content = r["chunks"].as_array().unwrap().iter().filter(|c| c["channel"] == "content").count();
        assert_eq!(content, 1, "{r}");
        assert!(r["error"]["message"].as_str().unwrap().contains("aborted by the client"), "{r}");
    }
    let a = analysis(&doc, "aborts");
    assert_eq!(figure(a, "aborted"), Some(cut.len() as f64), "{a:#}");
    assert!(figure(a, "ttft_after_abort_ratio").is_some(), "sequential: every abort is followed by a request: {a:#}");

    let (_, records) = run(&["--cancel-after", "30ms"]).await;
    for r in aborted(&records) {
        let lived = ms(&r["done"]) - ms(&r["sent"]);
        assert!((30.0..45.0).contains(&lived), "aborted 30 ms after the send: {lived:.1}");
    }
    let bad =
        velollm_async(vec!["bench".into(), "--url".into(), server.url(), "--cancel-share".into(), "2".into()]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("--cancel-share must be a share in (0, 1]"), "{}", text(&bad).1);
}

/// Against llama-server: aborted streams free their slot, and the requests after them are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_serves_the_requests_after_an_abort() {
    let Some((url, _real)) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let args = [
        "bench",
        "--url",
        &url,
        "--prompt",
        "Count from one to fifty.",
        "--max-tokens",
        "32",
        "-n",
        "8",
        "--cancel-share",
        "0.5",
        "--no-progress",
    ];
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(["-o".into(), out.display().to_string(), "--records".into(), records.display().to_string()]);
    let o = velollm_async(all).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let (doc, records) = (json(&out), jsonl(&records));
    let cut = aborted(&records).len();
    assert!(cut > 0 && cut < 8, "{cut}");
    assert_eq!(doc["steps"][0]["succeeded"].as_u64().unwrap() as usize + cut, 8, "{}", doc["steps"][0]);
    let a = analysis(&doc, "aborts");
    assert_eq!(figure(a, "aborted"), Some(cut as f64));
    // llama-server stops generating for a client that has gone: of the 32 tokens each aborted request asked
    // for, its /metrics counts only the few generated before it saw the connection close.
    let unreceived = figure(a, "unreceived_tokens").expect("llama-server's /metrics counts generated tokens");
    assert!(unreceived / (cut as f64) < 16.0, "{unreceived} tokens generated for {cut} aborted requests: {a:#}");
}
