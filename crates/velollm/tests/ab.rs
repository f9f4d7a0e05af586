//! `velollm ab` end to end: the real binary against two in-process fake servers (a slower B, identical
//! twins, the alternating order seen from the servers, a proxy in front of A), against two launched
//! `velollm-fake-server` programs, with bad input — and against two real llama-servers.

use crate::common;

use common::{
    assert_no_process, fake_server_bin, json, jsonl, llama_server, text, unique_marker, velollm, velollm_async,
};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use velollm_testkit::{FakeServer, Flavor, Script};

fn script(ttft_ms: u64) -> Script {
    Script { ttft: Duration::from_millis(ttft_ms), itl: Duration::from_millis(2), tokens: 5, ..Script::default() }
}

/// What one `velollm ab` run left behind.
struct Run {
    out: Output,
    stdout: String,
    stderr: String,
    doc: Value,
    records: Vec<Value>,
    dir: tempfile::TempDir,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.out.status.code(), Some(0), "stderr: {}\nstdout: {}", self.stderr, self.stdout);
        assert_eq!(self.doc["status"], "complete", "{}", self.doc);
        self
    }

    fn step(&self) -> &Value {
        &self.doc["steps"][0]
    }

    /// The paired row of a metric in the first step.
    fn row(&self, metric: &str) -> &Value {
        let rows = self.step()["rows"].as_array().unwrap();
        rows.iter().find(|r| r["metric"] == metric).unwrap_or_else(|| panic!("no row {metric} in {rows:#?}"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `velollm ab --a A --b B ARGS… -o DIR/ab.json`.
async fn ab(a: &str, b: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let mut all: Vec<String> = ["ab", "--a", a, "--b", b].map(String::from).to_vec();
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(["-o".into(), out.to_str().unwrap().to_string()]);
    let o = velollm_async(all).await;
    let (stdout, stderr) = text(&o);
    let doc = if out.exists() { json(&out) } else { Value::Null };
    let rec = dir.path().join("ab.records.jsonl");
    let records = if rec.exists() { jsonl(&rec) } else { Vec::new() };
    Run { out: o, stdout, stderr, doc, records, dir }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_b_regresses_with_the_right_sign() {
    let (fa, fb) =
        (FakeServer::start(Flavor::OpenAi, script(10)).await, FakeServer::start(Flavor::OpenAi, script(30)).await);
    let r = ab(&fa.url(), &fb.url(), &["--prompt-tokens", "16", "--max-tokens", "5", "--pairs", "12"]).await.ok();
    let ttft = r.row("ttft");
    assert_eq!(ttft["change"], "regressed", "{ttft:#}");
    assert_eq!(ttft["pairs"], 12);
    assert!(f(&ttft["mean_diff"]) > 15.0 && f(&ttft["median_diff"]) > 15.0, "{ttft:#}");
    let (lo, hi) = (f(&ttft["mean_diff_ci"][0]), f(&ttft["mean_diff_ci"][1]));
    assert!(0.0 < lo && lo <= hi, "{ttft:#}");
    assert!(f(&ttft["ratio"]) > 1.5 && f(&ttft["p_value"]) < 0.01, "{ttft:#}");
    assert!(f(&ttft["b_median"]) > f(&ttft["a_median"]));
    assert_eq!(r.row("e2e")["change"], "regressed");
    let speedup = f(&r.step()["speedup"]["value"]);
    assert!(speedup < 0.9, "B is slower: speedup {speedup}");
    // Every request of both sides is in the records, with its side; the report says the verdict.
    assert_eq!(r.records.len(), 2 * 13);
    assert_eq!(r.records.iter().filter(|l| l["side"] == "b" && l["warmup"] != true).count(), 12);
    assert!(r.stdout.contains("❌ regressed") && r.stdout.contains("B regressed TTFT"), "{}", r.stdout);
    let md = std::fs::read_to_string(r.path("ab.md")).unwrap();
    assert!(md.contains("| TTFT | 12 |") && md.contains("speedup: B is"), "{md}");
    assert_eq!(r.step()["a"]["requests"], 12);
    assert_eq!(r.step()["b"]["warmup_requests"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_runs_before_the_pairs_and_judges_both_sides() {
    let (fa, fb) =
        (FakeServer::start(Flavor::OpenAi, script(100)).await, FakeServer::start(Flavor::OpenAi, script(100)).await);
    let dir = tempfile::tempdir().unwrap();
    for (flag, checked) in [(None, true), (Some("--no-selfcheck"), false)] {
        let out = dir.path().join("ab.json");
        let (a, b) = (fa.url(), fb.url());
        let o = tokio::task::spawn_blocking({
            let out = out.clone();
            move || {
                common::command()
                    .env_remove("VELOLLM_NO_SELFCHECK")
                    .args(["ab", "--a", &a, "--b", &b, "-p", "hello", "--max-tokens", "5", "--pairs", "6", "-o"])
                    .arg(&out)
                    .args(flag)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{flag:?}: {stdout}\n{stderr}");
        let doc = json(&out);
        let md = std::fs::read_to_string(dir.path().join("ab.md")).unwrap();
        if !checked {
            assert!(doc.get("selfcheck").is_none() && doc.get("trust").is_none(), "{doc}");
            assert!(!stdout.contains("client overhead") && !md.contains("Client overhead"), "{stdout}");
            continue;
        }
        assert!(stderr.contains("self-check ("), "{stderr}");
        assert_eq!(doc["selfcheck"]["mode"], "quick");
        let trust = &doc["trust"];
        let names: Vec<&str> = trust["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
        assert_eq!(names, ["prompts (A)", "prompts (B)"], "{trust}");
        // Pairs go one at a time: each side is judged at the least loaded level. (The verdict itself depends
        // on the machine's load; tests/selfcheck.rs checks it with servers made to pass and to fail.)
        for s in trust["steps"].as_array().unwrap() {
            assert_eq!(s["level"], 1, "{s}");
            assert!(s["ttft_share"].as_f64().unwrap() < 0.05, "TTFT 100 ms: {s}");
        }
        assert!(stdout.contains("client overhead · prompts (A): "), "{stdout}");
        assert!(md.contains("Client overhead"), "{md}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_targets_show_no_significant_change() {
    let (fa, fb) =
        (FakeServer::start(Flavor::OpenAi, script(12)).await, FakeServer::start(Flavor::OpenAi, script(12)).await);
    // α = 0.001: the fakes are identical, so a verdict here would be a false positive (0.1 % per metric).
    let r =
        ab(&fa.url(), &fb.url(), &["-p", "hello", "--max-tokens", "5", "--pairs", "16", "--alpha", "0.001"]).await.ok();
    for metric in ["ttft", "e2e"] {
        let row = r.row(metric);
        assert_eq!(row["change"], "no_significant_change", "{row:#}");
        assert!(f(&row["p_value"]) >= 0.001, "{row:#}");
        assert!((f(&row["ratio"]) - 1.0).abs() < 0.1, "{row:#}");
    }
    assert!(r.stdout.contains("· no significant change"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_alternate_as_the_servers_see_them() {
    let (fa, fb) =
        (FakeServer::start(Flavor::OpenAi, script(10)).await, FakeServer::start(Flavor::OpenAi, script(10)).await);
    let (fa, fb) = (Arc::new(fa), Arc::new(fb));
    // Watch both servers' request logs while velollm runs: each new request is appended to the sequence.
    let seen = Arc::new(Mutex::new(String::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (fa, fb, seen, stop) = (fa.clone(), fb.clone(), seen.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut na, mut nb) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b) = (fa.request_count(), fb.request_count());
                {
                    let mut s = seen.lock().unwrap();
                    // Requests never overlap: at most one new one between two looks.
                    for _ in na..a {
                        s.push('A');
                    }
                    for _ in nb..b {
                        s.push('B');
                    }
                }
                (na, nb) = (a, b);
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    };
    let r = ab(&fa.url(), &fb.url(), &["--prompt-tokens", "12", "--max-tokens", "5", "--pairs", "6"]).await.ok();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.await.unwrap();
    // The warm-up pair (A→B), then A→B, B→A, A→B, B→A, A→B, B→A.
    assert_eq!(seen.lock().unwrap().as_str(), "ABABBAABBAABBA");
    assert_eq!(r.step()["first"], "ABABAB");
    // The same request, built once, went to both sides: the same messages, pair by pair.
    let messages =
        |s: &FakeServer| -> Vec<String> { s.requests().iter().map(|(_, b)| b["messages"].to_string()).collect() };
    let (ma, mb) = (messages(&fa), messages(&fb));
    assert_eq!(ma, mb);
    assert_eq!(ma.iter().collect::<HashSet<_>>().len(), 7, "synthetic prompts differ from pair to pair");
    // The records say who went first.
    let first: Vec<(String, bool)> = r
        .records
        .iter()
        .filter(|l| l["warmup"] != true && l["side"] == "a")
        .map(|l| (l["pair"].to_string(), l["first"] == true))
        .collect();
    assert_eq!(first.iter().map(|(_, f)| *f).collect::<Vec<_>>(), [true, false, true, false, true, false]);
}

/// A caching proxy in front of `upstream`, closing every connection after its response: a request whose
/// number (from 1) is a multiple of 3 is a cache "HIT" forwarded at once; every other one is a "MISS",
/// forwarded after `delay`. Its response carries `x-cache: HIT|MISS`.
async fn caching_proxy(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, counter) = (upstream.clone(), counter.clone());
            tokio::spawn(async move {
                let _ = proxy_one(client, &upstream, &counter, delay).await;
            });
        }
    });
    url
}

async fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    counter: &std::sync::atomic::AtomicU64,
    delay: Duration,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    // The request head, then its Content-Length body.
    let Some((head, buf)) = common::read_request(&mut client).await? else { return Ok(()) };
    let mut chunk = [0u8; 4096];
    let is_generation = head.starts_with("POST");
    let hit = is_generation && counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 3 == 2;
    if is_generation && !hit {
        tokio::time::sleep(delay).await;
    }
    // Upstream, one request per connection.
    let first_line_end = head.find("\r\n").unwrap();
    let mut request = buf[..first_line_end + 2].to_vec();
    request.extend_from_slice(b"connection: close\r\n");
    request.extend_from_slice(&buf[first_line_end + 2..]);
    let mut up = TcpStream::connect(upstream).await?;
    let _ = up.set_nodelay(true);
    up.write_all(&request).await?;
    // The response, streamed through, with the cache header after the status line.
    let mut injected = false;
    let mut pending = Vec::new();
    loop {
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        if injected {
            client.write_all(&chunk[..n]).await?;
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
            let verdict = if hit { "HIT" } else { "MISS" };
            let mut out = pending[..i + 2].to_vec();
            out.extend_from_slice(format!("x-cache: {verdict}\r\nconnection: close\r\n").as_bytes());
            out.extend_from_slice(&pending[i + 2..]);
            client.write_all(&out).await?;
            injected = true;
        }
    }
    client.shutdown().await
}

/// Both sides on one server with a prefix cache (as with a proxy in front of A): as-is, the second side of
/// every pair finds the prompt cached; `--pair-cache miss` salts each side, `hit` primes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_cache_puts_both_sides_of_a_pair_in_one_cache_state() {
    let script = Script { cache: Some(velollm_testkit::CacheSim::default()), ..script(5) };
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let url = server.url();
    let base = ["--prompt-tokens", "64", "--max-tokens", "5", "--pairs", "8", "--warmup", "0", "--no-selfcheck"];
    let cached = |r: &Run, side: &str| -> Vec<u64> {
        r.records
            .iter()
            .filter(|l| l["side"] == side && l["warmup"] != true)
            .map(|l| l["usage"]["cached_tokens"].as_u64().unwrap_or_else(|| panic!("no cached tokens: {l}")))
            .collect()
    };
    let as_is = ab(&url, &url, &base).await.ok();
    assert_eq!(as_is.step()["cache_mismatched"], 8, "{}", as_is.stderr);
    assert!(as_is.stderr.contains("8 pair(s) whose sides found the upstream cache in different states"));
    assert_eq!(as_is.row("ttft")["pairs"], 8, "as-is keeps them in");

    let mut args = base.to_vec();
    args.extend(["--pair-cache", "miss"]);
    let miss = ab(&url, &url, &args).await.ok();
    assert!(miss.step().get("cache_mismatched").is_none(), "{}", miss.step());
    assert_eq!(miss.doc["meta"]["pair_cache"], "miss");
    for side in ["a", "b"] {
        assert!(cached(&miss, side).iter().all(|&c| c <= 2), "{side}: {:?}", cached(&miss, side));
    }
    assert_eq!(miss.row("ttft")["pairs"], 8);
    let prompts: HashSet<String> = server
        .requests()
        .iter()
        .skip(16)
        .map(|(_, body)| body["messages"].as_array().unwrap().last().unwrap()["content"].to_string())
        .collect();
    assert_eq!(prompts.len(), 16, "each side its own salted prompt");

    let mut args = base.to_vec();
    args.extend(["--pair-cache", "hit"]);
    let hit = ab(&url, &url, &args).await.ok();
    assert!(hit.step().get("cache_mismatched").is_none(), "{}", hit.step());
    for side in ["a", "b"] {
        assert!(cached(&hit, side).iter().all(|&c| c >= 60), "{side}: {:?}", cached(&hit, side));
    }
    assert_eq!(hit.records.len(), 16, "the priming requests are not recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_in_front_of_a_costs_its_delay_on_misses() {
    let fa = FakeServer::start(Flavor::OpenAi, script(10)).await;
    let proxy = caching_proxy(fa.url(), Duration::from_millis(15)).await;
    let args = ["--prompt-tokens", "12", "--max-tokens", "5", "--pairs", "12", "--b-proxies-a", "--warmup", "0"];
    let r = ab(&fa.url(), &proxy, &args).await.ok();
    let p = &r.step()["proxy_overhead"];
    // B's requests 3, 6, 9 and 12 were "hits" (by the proxy's count, the probe's GETs aside): left out.
    assert_eq!((p["misses"].as_u64(), p["hits"].as_u64(), p["repeats"].as_u64()), (Some(8), Some(4), Some(0)), "{p:#}");
    let ttft = p["rows"].as_array().unwrap().iter().find(|r| r["metric"] == "ttft").unwrap();
    assert_eq!(ttft["pairs"], 8);
    assert!(f(&ttft["mean_diff"]) >= 14.0, "the proxy's 15 ms delay on misses: {ttft:#}");
    assert_eq!(ttft["change"], "regressed", "{ttft:#}");
    // Over all pairs, the hits make B's TTFT a mix; the records carry the header's verdict.
    let verdicts: HashSet<&str> = r.records.iter().filter_map(|l| l["proxy_cache"].as_str()).collect();
    assert_eq!(verdicts, HashSet::from(["HIT", "MISS"]));
    assert!(r.records.iter().filter(|l| l["side"] == "a").all(|l| l["proxy_cache"].is_null()));
    assert!(r.stdout.contains("proxy overhead (B − A) on 8 cache misses: TTFB"), "{}", r.stdout);

    // Prompts used in turn: only the first sending of each is a miss, repeats are left out.
    let args = ["-p", "one", "-p", "two", "--max-tokens", "5", "--pairs", "6", "--b-proxies-a", "--warmup", "0"];
    let r = ab(&fa.url(), &proxy, &args).await.ok();
    let p = &r.step()["proxy_overhead"];
    assert_eq!(p["repeats"], 4, "{p:#}");
    assert_eq!(f(&p["misses"]) + f(&p["hits"]), 2.0, "{p:#}");
}

#[cfg(unix)]
#[test]
fn launched_sides_start_before_the_first_pair_and_stop_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let marker = unique_marker("ab");
    let cmd = |ttft: u32| {
        format!(
            "'{}' --port {{port}} --tag {marker} --ttft-ms {ttft} --itl-ms 1 --tokens 4",
            fake_server_bin().display()
        )
    };
    let o = velollm(&[
        "ab",
        "--a",
        &cmd(5),
        "--b",
        &cmd(25),
        "--prompt-tokens",
        "8",
        "--max-tokens",
        "4",
        "--pairs",
        "8",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc = json(&out);
    for side in ["a", "b"] {
        let launch = &doc[side]["launch"];
        assert!(launch["command"].as_str().unwrap().contains(&marker), "{launch}");
        assert!(launch["stop"].as_str().is_some_and(|s| s.contains("SIGTERM")), "{launch}");
        assert!(doc[side]["ready_ms"].as_f64().is_some());
        assert!(Path::new(launch["log"].as_str().unwrap()).ends_with(format!("ab.{side}.server.log")));
        // The fake speaks llama.cpp's /metrics: scraped before and after the step.
        assert_eq!(doc["steps"][0][side]["server_metrics"]["engine"], "llamacpp", "{}", doc["steps"][0][side]);
    }
    assert_eq!(
        doc["steps"][0]["rows"].as_array().unwrap().iter().find(|r| r["metric"] == "ttft").unwrap()["change"],
        "regressed"
    );
    assert_no_process(&[&marker], Duration::from_secs(5));
}

#[test]
fn a_bad_target_is_an_input_error() {
    let o = velollm(&["ab", "--a", "localhost:8080", "--b", "http://127.0.0.1:9"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("--a 'localhost:8080' is neither an http(s) URL nor a launch command with {port}"),
        "{stderr}"
    );
    let o = velollm(&["ab", "--a", "http://127.0.0.1:9", "--b", "srv --port {port} -m {model}"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--b: the launch command uses {model}"), "{}", text(&o).1);
    let o = velollm(&["ab", "--a", "http://127.0.0.1:9", "--b", "http://127.0.0.1:9", "--pairs", "0"]);
    assert_eq!(o.status.code(), Some(2));
    // A side nobody answers: unreachable (4), named.
    let o = velollm(&["ab", "--a", "http://127.0.0.1:9", "--b", "http://127.0.0.1:9", "--pairs", "2"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o).1);
    assert!(text(&o).1.contains("--a: cannot reach"), "{}", text(&o).1);
}

/// Both sides launched from the real llama-server (`LLAMA_SERVER_BIN`, SmolLM2), one thread each.
#[cfg(unix)]
#[test]
fn real_llama_servers_side_by_side() {
    let Some((bin, model, _real)) = llama_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let cmd = format!(
        "'{}' -m '{}' --host 127.0.0.1 --port {{port}} -c 1024 -t 1 -tb 1 -np 1 --metrics --no-webui",
        bin.display(),
        model.display()
    );
    let o = velollm(&[
        "ab",
        "--a",
        &cmd,
        "--b",
        &cmd,
        "--prompt-tokens",
        "16",
        "--max-tokens",
        "8",
        "--pairs",
        "6",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc = json(&out);
    assert_eq!(doc["status"], "complete");
    let step = &doc["steps"][0];
    assert_eq!((step["pairs"].as_u64(), step["both_succeeded"].as_u64()), (Some(6), Some(6)), "{step:#}");
    for side in ["a", "b"] {
        assert_eq!(step[side]["failed"], 0, "{}", step[side]);
        assert_eq!(doc[side]["target"]["server"], "llama.cpp");
        assert_eq!(step[side]["server_metrics"]["engine"], "llamacpp");
    }
    let rows = step["rows"].as_array().unwrap();
    for metric in ["ttft", "e2e", "server_prefill", "server_decode"] {
        let row = rows.iter().find(|r| r["metric"] == metric).unwrap_or_else(|| panic!("no {metric}: {rows:#?}"));
        assert!(row["p_value"].as_f64().is_some(), "{row:#}");
    }
    assert!(stdout.contains("verdict:"), "{stdout}");
}

/// Speculative decoding on the real llama-server: A normal, B with a draft model (SmolLM2 drafting for itself,
/// the only model the project installs). Acceptance comes from B's counters; the speedup is measured, whatever
/// it is (a draft as large as the target makes B slower on 2 cores: that is the finding, not a failure).
#[cfg(unix)]
#[test]
fn real_speculative_decoding_acceptance_and_speedup() {
    let Some((bin, model, _real)) = llama_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spec.json");
    let base = format!(
        "'{}' -m '{}' --host 127.0.0.1 --port {{port}} -c 1024 -t 1 -tb 1 -np 1 --metrics --no-webui",
        bin.display(),
        model.display()
    );
    let spec = format!("{base} -md '{}' --spec-type draft-simple -td 1", model.display());
    let o = velollm(&[
        "ab",
        "--a",
        &base,
        "--b",
        &spec,
        "--scenario",
        "speculative",
        "--max-tokens",
        "24",
        "--pairs",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc = json(&out);
    let names: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["code", "counting", "prose"]);
    for step in doc["steps"].as_array().unwrap() {
        let (a, b) = (&step["a"]["server_metrics"], &step["b"]["server_metrics"]);
        assert!(a["spec_draft_tokens"].as_f64().unwrap_or(0.0) == 0.0, "A does not draft: {a:#}");
        let drafted = b["spec_draft_tokens"].as_f64().unwrap_or(0.0);
        assert!(drafted > 0.0, "B drafted nothing: {b:#}");
        let rate = b["spec_acceptance_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "{b:#}");
        // A model drafting for itself at temperature 0 agrees with itself.
        assert!(rate > 0.9, "acceptance {rate}: {b:#}");
        assert!(b["spec_mean_acceptance_length"].as_f64().unwrap() > 1.0);
        assert!(step["speedup"]["value"].as_f64().unwrap() > 0.0, "{step:#}");
    }
    assert!(stdout.contains("speculative decoding: B accepts"), "{stdout}");
    assert!(stdout.contains("seed criteria: acceptance > 70 % ✅"), "{stdout}");
}
