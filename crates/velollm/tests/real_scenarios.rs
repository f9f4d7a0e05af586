//! The built-in scenarios end to end against a real llama.cpp `llama-server` with SmolLM2-135M-Instruct,
//! started by `scripts/llama-server.sh` (and by `scripts/test.sh`, which sets `VELOLLM_TEST_SERVER_URL`).
//!
//! Each test shrinks its scenario with `--iterations`/`--turns` so it runs in seconds on a slow CPU, and checks
//! what the scenario claims against the server's own figures (usage, `timings.cache_n`, exact lengths) and,
//! where it matters, against the request bodies velollm actually sent (captured by a small recording proxy).
//!
//! Without a reachable server these tests are skipped with a message — except in CI (`CI=true`), where a
//! missing server is a failure. The tests take a lock so that they never load the one-thread server at the same
//! time: concurrent requests would distort each other's timings.

use crate::common;

use common::{assert_valid, server_url, text};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use velollm_core::document::scenario::Scenario;

/// Run `velollm bench` with a result file and records; returns the process output, the document and the records.
fn bench(args: &[&str]) -> (Output, Value, Vec<Value>) {
    let r = common::Bench::bare().args(args).run_blocking();
    (r.out, r.doc, r.records)
}

/// [`bench`] that must succeed with a complete, schema-valid result.
fn run(args: &[&str]) -> (Value, Vec<Value>) {
    let (o, doc, records) = bench(args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "velollm {args:?} failed:\n{stdout}\n{stderr}");
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    (doc, records)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The figure `name` of the first analysis of `kind` whose title contains `title`.
fn figure(doc: &Value, kind: &str, title: &str, name: &str) -> Option<f64> {
    doc["analyses"]
        .as_array()?
        .iter()
        .find(|a| a["kind"] == kind && a["title"].as_str().is_some_and(|t| t.contains(title)))?["figures"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| num(&f["value"]))
}

fn step<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["steps"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no step {name}"))
}

/// Records of step `index` (warm-up excluded), in request order.
fn records_of(records: &[Value], index: u64) -> Vec<&Value> {
    let mut v: Vec<&Value> =
        records.iter().filter(|r| r["step"].as_u64() == Some(index) && r.get("warmup").is_none()).collect();
    v.sort_by_key(|r| r["id"].as_u64());
    v
}

fn usage(r: &Value, field: &str) -> u64 {
    r["usage"][field].as_u64().unwrap_or_else(|| panic!("no usage.{field} in {r}"))
}

/// A seed no earlier run used. Synthetic prompts are a function of the seed only, so a second run with the
/// same seed sends the very same prompts, and llama-server (which keeps its slots' KV and a prompt cache in
/// RAM) serves them from its prefix cache.
fn fresh_seed() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(40)).to_string()
}

/// What went through one proxied connection, in each direction.
#[derive(Default)]
struct Exchange {
    sent: Vec<u8>,
    received: Vec<u8>,
}

/// A recording TCP proxy in front of the server: everything that goes through it is kept, per connection, so
/// a test can read the exact request bodies velollm sent.
struct Proxy {
    url: String,
    conns: Arc<Mutex<Vec<Arc<Mutex<Exchange>>>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<Arc<Mutex<Exchange>>>>> = Arc::default();
        let all = conns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let log: Arc<Mutex<Exchange>> = Arc::default();
                all.lock().unwrap().push(log.clone());
                let (from, to, sent) = (client.try_clone().unwrap(), server.try_clone().unwrap(), log.clone());
                std::thread::spawn(move || pump(from, to, &sent, |e| &mut e.sent));
                std::thread::spawn(move || pump(server, client, &log, |e| &mut e.received));
            }
        });
        Proxy { url, conns }
    }

    /// Every request the server answered, in order: `(request line, JSON body)` for requests with a JSON body.
    ///
    /// llama-server closes the connection after a streamed response. A client that writes its next request
    /// on that connection before it sees the close has that request retried on a new connection, so the
    /// proxy sees it twice; only requests that got a response are kept (HTTP/1.1 answers in order).
    fn json_requests(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for conn in self.conns.lock().unwrap().iter() {
            let (buf, answered) = {
                let e = conn.lock().unwrap();
                (e.sent.clone(), e.received.windows(9).filter(|w| w == b"HTTP/1.1 ").count())
            };
            let mut pos = 0;
            let mut requests = 0;
            while let Some(end) = buf[pos..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| pos + i) {
                if requests == answered {
                    break;
                }
                requests += 1;
                let head = String::from_utf8_lossy(&buf[pos..end]).into_owned();
                let len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.trim().parse::<usize>().unwrap());
                let body = &buf[end + 4..(end + 4 + len).min(buf.len())];
                if let Ok(v) = serde_json::from_slice::<Value>(body) {
                    out.push((head.lines().next().unwrap_or_default().to_string(), v));
                }
                pos = end + 4 + len;
                if pos >= buf.len() {
                    break;
                }
            }
        }
        out
    }

    /// The `messages` of every chat request, in the order the requests were sent.
    fn chats(&self) -> Vec<Vec<Value>> {
        self.json_requests()
            .into_iter()
            .filter(|(line, _)| line.starts_with("POST /v1/chat/completions"))
            .map(|(_, body)| body["messages"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// Copy `from` to `to`, keeping a copy in `log`; then close `to` for writing, as `from` did.
fn pump(mut from: TcpStream, mut to: TcpStream, log: &Mutex<Exchange>, side: fn(&mut Exchange) -> &mut Vec<u8>) {
    let mut buf = [0u8; 16384];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        side(&mut log.lock().unwrap()).extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn content(m: &Value) -> &str {
    m["content"].as_str().unwrap_or_else(|| panic!("no content in {m}"))
}

#[test]
fn prefix_cache_miss_then_verified_hit() {
    let Some((url, _real)) = server_url() else { return };
    let proxy = Proxy::start(&url);
    let (doc, records) = run(&["--url", &proxy.url, "--scenario", "prefix-cache", "--iterations", "3"]);

    // Records: each conversation is a salted MISS then a HIT that the server served from its cache.
    let conv = records_of(&records, 0);
    assert_eq!(conv.len(), 6, "3 conversations × 2 turns");
    for pair in conv.chunks(2) {
        let (miss, hit) = (pair[0], pair[1]);
        assert_eq!((miss["label"].as_str(), hit["label"].as_str()), (Some("miss"), Some("hit")));
        assert_eq!(miss["conversation"], hit["conversation"]);
        let cached = usage(hit, "cached_tokens");
        assert!(cached > 0, "HIT without cached tokens: {hit}");
        assert_eq!(hit["native"]["cache_n"].as_u64(), Some(cached), "usage and timings.cache_n disagree: {hit}");
        assert!(
            cached as f64 >= 0.5 * usage(miss, "prompt_tokens") as f64 && cached > usage(miss, "cached_tokens"),
            "the HIT reused little of the MISS prompt: MISS {miss} HIT {hit}"
        );
    }

    // Analysis: every HIT verified, and the HIT is faster than the MISS in every iteration.
    let f = |name| figure(&doc, "cache", "conversation", name).unwrap_or_else(|| panic!("no figure {name}"));
    assert_eq!(f("hit_rate"), 100.0);
    assert!(f("ttft_hit") < f("ttft_miss"), "HIT {} ms ≥ MISS {} ms", f("ttft_hit"), f("ttft_miss"));
    assert!(f("acceleration") > 1.0 && f("acceleration_min") > 1.0, "acceleration {}", f("acceleration"));
    assert!(f("ttft_independent") > 0.0);
    let verdicts = doc["verdicts"].as_array().unwrap();
    assert!(verdicts.iter().all(|v| v["passed"] == true), "{verdicts:#?}");

    // What was sent: the MISS message starts with a unique salt; the HIT carries that salted message and the
    // real first answer, then the second question; independent messages are never salted.
    let chats = proxy.chats();
    assert_eq!(chats.len(), 6 + 3, "{chats:#?}");
    let mut salts = Vec::new();
    for (i, pair) in chats[..6].chunks(2).enumerate() {
        let (miss, hit) = (&pair[0], &pair[1]);
        assert_eq!(miss.len(), 1, "{miss:?}");
        let first = content(&miss[0]);
        assert!(first.starts_with("[session "), "MISS not salted: {first}");
        let (salt, rest) = first.split_once("] ").unwrap();
        assert_eq!(salt.len(), "[session ".len() + 16, "{salt}");
        assert!(rest.starts_with("You are reviewing the design"), "{rest}");
        salts.push(salt.to_string());
        assert_eq!(hit.len(), 3, "{hit:?}");
        assert_eq!(hit[0], miss[0], "conversation {i}: the HIT does not repeat the MISS message");
        assert_eq!(hit[1]["role"], "assistant");
        assert!(!content(&hit[1]).trim().is_empty(), "no real answer carried: {hit:?}");
        assert!(content(&hit[2]).starts_with("Now suggest one concrete change"));
    }
    salts.sort();
    salts.dedup();
    assert_eq!(salts.len(), 3, "salts repeat: {salts:?}");
    // Independent messages are single-turn and all different (so none is served from the cache).
    let independent: Vec<String> = chats[6..].iter().map(|c| content(&c[0]).to_string()).collect();
    assert!(chats[6..].iter().all(|c| c.len() == 1), "{chats:?}");
    let mut distinct = independent.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), independent.len(), "independent prompts repeat: {independent:?}");
}

#[test]
fn long_conversation_carries_real_answers() {
    let Some((url, _real)) = server_url() else { return };
    let proxy = Proxy::start(&url);
    let (doc, records) = run(&[
        "--url",
        &proxy.url,
        "--scenario",
        "long-conversation",
        "--turns",
        "4",
        "--iterations",
        "1",
        "--keep-text",
    ]);
    let s = step(&doc, "conversation");
    assert_eq!(s["config"]["turns"], 4);
    assert_eq!((s["requests"].as_u64(), s["succeeded"].as_u64(), num(&s["success_rate"])), (Some(4), Some(4), 1.0));

    let turns = records_of(&records, 0);
    assert_eq!(turns.iter().map(|r| r["turn"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    for (k, r) in turns.iter().enumerate() {
        assert!(r.get("error").is_none(), "turn {k} failed: {r}");
        assert_eq!(r["conversation"], 0);
        if k > 0 {
            // The context grows by at least the previous answer (plus the new question and the template).
            let (prev, now) = (turns[k - 1], r);
            let growth = usage(now, "prompt_tokens") - usage(prev, "prompt_tokens");
            assert!(
                growth > usage(prev, "completion_tokens"),
                "turn {k}: prompt grew by {growth} tokens, less than the previous answer: {prev} {now}"
            );
        }
    }

    // The requests themselves: turn k sends the system prompt, then every earlier question with the model's
    // real answer (as recorded), then question k.
    let chats = proxy.chats();
    assert_eq!(chats.len(), 4);
    for (k, messages) in chats.iter().enumerate() {
        assert_eq!(messages.len(), 2 + 2 * k, "turn {k}: {messages:?}");
        assert_eq!(messages[0]["role"], "system");
        for j in 0..k {
            assert_eq!(messages[2 + 2 * j]["role"], "assistant");
            assert_eq!(
                messages[2 + 2 * j]["content"],
                turns[j]["text"],
                "turn {k} does not carry the real answer of turn {j}"
            );
        }
    }

    for name in ["degradation", "ttft_first_third", "ttft_last_third", "ttft_mean", "success"] {
        assert!(figure(&doc, "turns", "conversation", name).is_some(), "no {name} figure: {:#}", doc["analyses"]);
    }
    assert_eq!(figure(&doc, "turns", "conversation", "success"), Some(100.0));
}

#[test]
fn reasoning_checks_run_on_the_real_answers() {
    let Some((url, _real)) = server_url() else { return };
    let (doc, records) = run(&["--url", &url, "--scenario", "reasoning", "--keep-text"]);
    let scenario = Scenario::builtin("reasoning").unwrap();
    for (i, spec) in scenario.steps.iter().enumerate() {
        let s = step(&doc, &spec.name);
        let quality = &s["quality"];
        assert!(quality.is_object(), "step {} has no quality block: {s}", spec.name);
        let criteria = quality["criteria"].as_array().unwrap();
        assert_eq!(criteria.len(), spec.checks.len());
        assert!(criteria.iter().all(|c| c["total"] == 1), "{criteria:?}");
        let score = num(&quality["score"]);
        assert!((0.0..=1.0).contains(&score), "score {score}");

        // The outcomes are those of the checks applied to the text the model wrote (a tiny model: whether
        // they pass is not the point).
        let recs = records_of(&records, i as u64);
        assert_eq!(recs.len(), 1);
        let answer = recs[0]["text"].as_str().expect("--keep-text keeps the answer");
        assert!(!answer.is_empty());
        let outcomes = recs[0]["checks"].as_array().unwrap();
        let mut passed = 0;
        for (check, outcome) in spec.checks.iter().zip(outcomes) {
            let expected = velollm_core::measure::check::evaluate(check, answer, &[]).unwrap();
            assert_eq!(outcome["name"], expected.name.as_str());
            assert_eq!(outcome["passed"], expected.passed, "{} on {answer:?}", expected.name);
            let c = criteria.iter().find(|c| c["name"] == expected.name.as_str()).unwrap();
            assert_eq!(c["passed"], u64::from(expected.passed));
            passed += u32::from(expected.passed);
        }
        assert!((score - f64::from(passed) / spec.checks.len() as f64).abs() < 1e-9, "score {score}");
    }
}

#[test]
fn context_size_fit_on_real_prompt_tokens() {
    let Some((url, _real)) = server_url() else { return };
    let seed = fresh_seed();
    let (doc, records) = run(&["--url", &url, "--scenario", "context-size", "--iterations", "1", "--seed", &seed]);
    // The server prefilled (almost) the whole synthetic prompt: nothing beyond its chat template came from the
    // prefix cache.
    for (i, requested) in [16, 128, 512, 1024].into_iter().enumerate() {
        let r = records_of(&records, i as u64);
        assert_eq!(r.len(), 1);
        let (prompt, cached) = (usage(r[0], "prompt_tokens"), r[0]["usage"]["cached_tokens"].as_u64().unwrap_or(0));
        assert!(prompt - cached >= requested, "step {i}: {cached} of {prompt} prompt tokens were cached");
    }
    assert!(num(&step(&doc, "very_long")["metrics"]["prompt_tokens"]["min"]) > 1000.0);
    let ttft = |name| figure(&doc, "fit", "ttft against prompt_tokens", name);
    assert!(ttft("slope").unwrap() > 0.0, "{:#}", doc["analyses"]);
    assert!(ttft("r2").is_some());
    assert!(ttft("speed").is_none(), "speed is only for output tokens");
    let e2e = |name| figure(&doc, "fit", "e2e against prompt_tokens", name);
    assert!(e2e("slope").unwrap() > 0.0 && e2e("r2").is_some());
}

#[test]
fn max_tokens_exact_lengths_and_speed() {
    let Some((url, _real)) = server_url() else { return };
    let (doc, records) = run(&["--url", &url, "--scenario", "max-tokens", "--iterations", "1"]);
    for (i, n) in [25u64, 50, 100, 150].into_iter().enumerate() {
        let r = records_of(&records, i as u64);
        assert_eq!(r.len(), 1);
        // ignore_eos: llama-server generates exactly max_tokens.
        assert_eq!(usage(r[0], "completion_tokens"), n, "{}", r[0]);
        assert_eq!(r[0]["finish_reason"], "length");
        let out = &step(&doc, &format!("tokens_{n}"))["metrics"]["output_tokens"];
        assert_eq!((num(&out["min"]), num(&out["max"])), (n as f64, n as f64));
    }
    let f = |name| figure(&doc, "fit", "e2e against output_tokens", name);
    let (speed, r2, slope) = (f("speed").unwrap(), f("r2").unwrap(), f("slope").unwrap());
    assert!(speed > 0.0 && slope > 0.0, "{:#}", doc["analyses"]);
    assert!((speed - 1000.0 / slope).abs() < 1e-6);
    // Four single requests: a build or test beside it on 2 cores moves one point (R² 0.886 seen, 0.97+ quiet),
    // so this says "linear", not "exactly linear"; the slope's sign is checked above.
    assert!(r2 > 0.7, "latency is not linear in output tokens: R² {r2}: {:#}", doc["analyses"]);
}

/// Send one streamed chat request on a raw keep-alive connection and report whether the server closed the
/// connection after the response (EOF within 5 s) rather than keeping it open.
fn server_closes_after_stream(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = r#"{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":3,"stream":true}"#;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nConnection: keep-alive\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut response = Vec::new();
    s.read_to_end(&mut response).is_ok() && response.starts_with(b"HTTP/1.1 200")
}

#[test]
fn connections_against_a_server_that_closes_streams() {
    let Some((url, _real)) = server_url() else { return };
    // llama-server closes the connection after every streamed response, although it answers with
    // `Keep-Alive: timeout=5, max=100` (curl sees the same). So even the keep_alive step cannot reuse a
    // connection: both steps open one connection per request, and velollm reports exactly that rather than a
    // difference that does not exist. Against a server that keeps connections open, keep_alive would show
    // `reused = requests − 1` and network overhead 0 on the reused ones.
    assert!(server_closes_after_stream(&url), "llama-server kept the connection open after a stream");
    let (doc, records) = run(&["--url", &url, "--scenario", "connections", "--iterations", "5"]);
    for (i, name) in ["keep_alive", "new_connection"].into_iter().enumerate() {
        let s = step(&doc, name);
        assert_eq!(s["succeeded"], 5, "{s}");
        assert_eq!((s["connections"]["opened"].as_u64(), s["connections"]["reused"].as_u64()), (Some(5), Some(0)));
        let recs = records_of(&records, i as u64);
        let mut ids: Vec<u64> = recs
            .iter()
            .map(|r| {
                assert_eq!(r["connection"]["reused"], false, "{r}");
                assert!(r["connection"]["connect_ns"].as_u64().is_some(), "a new connection is timed: {r}");
                r["connection"]["id"].as_u64().unwrap()
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 5, "{name}: one connection per request");
        assert!(num(&s["metrics"]["network_overhead_ms"]["min"]) > 0.0, "{s}");
    }
    let cmp = |name| figure(&doc, "compare", "new_connection vs keep_alive", name);
    assert!(cmp("network_overhead_delta").is_some() && cmp("ttft_ratio").is_some(), "{:#}", doc["analyses"]);
}

#[test]
fn cold_start_needs_ollama() {
    let Some((url, _real)) = server_url() else { return };
    let o = common::velollm(&["bench", "--url", &url, "--scenario", "cold-start", "--no-progress"]);
    let (stdout, stderr) = text(&o);
    // An input error for this server, found right after connecting: nothing is sent.
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("step 'cold' needs a cold model, which velollm can only arrange on Ollama (keep_alive: 0)"),
        "{stderr}"
    );
}

#[test]
fn prompt_cache_hit_rate_ttft_and_cost_on_the_real_server() {
    let Some((url, _real)) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"*\"]\ninput = 3.0\noutput = 15.0\n").unwrap();
    let (doc, records) =
        run(&["--url", &url, "--scenario", "prompt-cache", "--iterations", "3", "--prices", prices.to_str().unwrap()]);

    // The baseline's requests each start with their own marker: only a chat template's worth can be cached.
    for r in records_of(&records, 0) {
        let (prompt, cached) = (usage(r, "prompt_tokens"), usage(r, "cached_tokens"));
        assert!(prompt > 1000 && (cached as f64) < 0.1 * prompt as f64, "uncached request hit the cache: {r}");
    }
    // The cached step: the first request writes, the next ones read the system prompt and the context back.
    let cached = records_of(&records, 1);
    for r in &cached[1..] {
        let (prompt, hit) = (usage(r, "prompt_tokens"), usage(r, "cached_tokens"));
        assert!(hit as f64 > 0.8 * prompt as f64, "no cache hit after the first request: {r}");
        assert_eq!(r["native"]["cache_n"].as_u64(), Some(hit), "usage and timings.cache_n disagree: {r}");
    }
    let f = |name| figure(&doc, "prompt_cache", "prompt cache", name).unwrap_or_else(|| panic!("no figure {name}"));
    assert!((f("hit_rate") - 200.0 / 3.0).abs() < 1e-6, "hit rate {}", f("hit_rate"));
    assert!(f("token_hit_rate") > 50.0);
    assert!(f("ttft_hit") < f("ttft_uncached"), "hits {} ms vs uncached {} ms", f("ttft_hit"), f("ttft_uncached"));
    assert!(f("ttft_reduction") > 30.0, "TTFT reduction {}", f("ttft_reduction"));
    // Cost: cache reads at 0.1 × input make the cached step cheaper per request than the baseline.
    let cost = |i: usize| &doc["steps"][i]["cost"];
    assert_eq!(cost(0)["priced_requests"], 3);
    assert!(num(&cost(1)["per_request"]) < num(&cost(0)["per_request"]), "{} vs {}", cost(1), cost(0));
    assert!(f("cost_reduction") > 0.0);
}
