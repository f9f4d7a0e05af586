//! The hedging evaluation as a user runs it: `velollm ab` with A = `velollm proxy` without hedging and B = the
//! same with `--hedge`, each in front of an upstream with an exact injected tail (every 10th request 10× slower
//! to its first token). The report gives both sides' p95 and p99 with paired intervals, B's extra requests
//! read from its own `/metrics`, and the prompt tokens they carried, from its answers' headers.

use std::time::Duration;

use velollm_testkit::{FakeServer, Flavor, Script};

use crate::common::{json, spawn_velollm_proxy, text, velollm_async};

fn tailed() -> Script {
    Script {
        model: "m".into(),
        ttft: Duration::from_millis(30),
        itl: Duration::from_millis(1),
        tokens: 4,
        slow_every: Some((10, 10)),
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_shows_the_hedged_proxy_cutting_the_tail_and_what_it_cost() {
    let (ua, ub) =
        (FakeServer::start(Flavor::OpenAi, tailed()).await, FakeServer::start(Flavor::OpenAi, tailed()).await);
    let (mut a, a_addr) = spawn_velollm_proxy(&["--upstream", &ua.url(), "--cache", "off"]);
    let (mut b, b_addr) = spawn_velollm_proxy(&["--upstream", &ub.url(), "--cache", "off", "--hedge", "100ms"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ab.json");
    let args = [
        "ab",
        "--a",
        &format!("http://{a_addr}"),
        "--b",
        &format!("http://{b_addr}"),
        "--pairs",
        "40",
        "--max-tokens",
        "4",
        "--prompt-tokens",
        "8",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = velollm_async(args.map(String::from).to_vec()).await;
    let (stdout, stderr) = text(&o);
    let _ = (a.kill(), b.kill());
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc = json(&out);
    let step = &doc["steps"][0];
    let ttft = step["rows"].as_array().unwrap().iter().find(|r| r["metric"] == "ttft").unwrap();
    let p99 = ttft["tails"].as_array().unwrap().iter().find(|t| t["q"] == 0.99).unwrap();
    // A's tail is the injected 300 ms; B's hedge starts at 100 ms and answers 30 ms later.
    assert!(p99["a"].as_f64().unwrap() > 280.0, "{ttft:#}");
    assert!(p99["b"].as_f64().unwrap() < 200.0, "{ttft:#}");
    let (lo, hi) = (p99["diff_ci"][0].as_f64().unwrap(), p99["diff_ci"][1].as_f64().unwrap());
    assert!(lo <= hi && hi < 0.0, "the p99 cut is significant: {p99:#}");
    // B's own counters: one extra request per slow answer, each loser cancelled.
    let extra = step["b"]["server_metrics"]["hedged_requests"].as_f64().unwrap();
    assert!((3.0..=6.0).contains(&extra), "{:#}", step["b"]["server_metrics"]);
    assert_eq!(step["b"]["server_metrics"]["hedges_cancelled"].as_f64(), Some(extra));
    assert!(step["a"]["server_metrics"]["hedged_requests"].as_f64().unwrap_or(0.0) == 0.0);
    // The same cost seen from the answers' `x-velollm-hedge` headers (the warm-up request is not among them),
    // with the prompt tokens each extra request carried (the upstream reports 12 per prompt).
    let hedge = &step["b"]["proxy_hedge"];
    let seen = hedge["extra_requests"].as_f64().unwrap();
    assert!(seen == extra || seen == extra - 1.0, "{hedge:#}");
    assert_eq!(hedge["hedged"].as_f64(), Some(seen), "{hedge:#}");
    assert_eq!(hedge["extra_prompt_tokens"].as_f64(), Some(12.0 * seen), "{hedge:#}");
    assert!(step["a"]["proxy_hedge"].is_null(), "A does not hedge: {:#}", step["a"]["proxy_hedge"]);
    let tokens = 12.0 * seen;
    assert!(stdout.contains(&format!("hedging: B sent {extra} extra requests for 41")), "{stdout}");
    assert!(stdout.contains(&format!("cancelled, {tokens} extra prompt tokens")), "{stdout}");
    assert!(stdout.contains("p99.9") && stdout.contains("Δ %"), "{stdout}");
}
