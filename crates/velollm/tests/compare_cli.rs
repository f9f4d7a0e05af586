//! `velollm compare` and `velollm bench --compare-to` end to end: two runs against fake servers with
//! different, exactly injected latencies; verdicts, gates, criteria, JSON output and exit codes.

use crate::common;

use common::{text, velollm, velollm_async};
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

/// A fast server reports a cache hit (as a server with a warm prefix cache would); a slow one does not.
fn script(ttft_ms: u64) -> Script {
    Script {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(1),
        tokens: 4,
        cached_tokens: if ttft_ms < 30 { 16 } else { 0 },
        ..Script::default()
    }
}

/// Run 12 sequential requests against a server with this TTFT and write the result to `dir/name`.
async fn run(dir: &Path, name: &str, ttft_ms: u64, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let server = FakeServer::start(Flavor::LlamaCpp, script(ttft_ms)).await;
    let out = dir.join(name);
    let mut args: Vec<String> =
        ["bench", "--url", &server.url(), "--prompt", "hi", "--requests", "12", "--no-progress"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(["-o".to_string(), out.to_str().unwrap().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = velollm_async(args).await;
    (out, o)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_the_faster_run_and_gates_fail_the_slower() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, o) = run(dir.path(), "slow.json", 60, &[]).await;
    assert!(o.status.success(), "{:?}", text(&o));
    let (fast, o) = run(dir.path(), "fast.json", 15, &[]).await;
    assert!(o.status.success(), "{:?}", text(&o));

    // Faster candidate: TTFT improved, significantly, with an interval below zero.
    let json_out = dir.path().join("cmp.json");
    let o = velollm(&["compare", p(&slow), p(&fast), "--json", p(&json_out)]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("slow.json → fast.json"), "{stdout}");
    let ttft_line = stdout.lines().find(|l| l.trim_start().starts_with("TTFT p50")).expect(&stdout);
    assert!(ttft_line.contains("✅ improved"), "{ttft_line}");
    let doc = common::json(&json_out);
    let rows = doc["comparisons"][0]["steps"][0]["rows"].as_array().unwrap();
    let ttft = rows.iter().find(|r| r["metric"] == "ttft" && r["stat"] == "p50").unwrap();
    assert_eq!(ttft["change"], "improved");
    let (lo, hi) = (ttft["ci"][0].as_f64().unwrap(), ttft["ci"][1].as_f64().unwrap());
    assert!(lo < -30.0 && hi < 0.0, "{ttft}");
    assert!(ttft["p_value"].as_f64().unwrap() < 0.001);
    assert_eq!(doc["failed"], false);
    assert!(!stderr.contains("stamped chunk arrivals"), "{stderr}");

    // A result stamped differently (here: one older than kernel arrival stamps) is compared, with a warning.
    let mut older = common::json(&fast);
    assert_eq!(older["meta"]["chunk_stamps"], "kernel-arrival", "{}", older["meta"]);
    older["meta"].as_object_mut().unwrap().remove("chunk_stamps");
    let old_fast = dir.path().join("old-fast.json");
    std::fs::write(&old_fast, older.to_string()).unwrap();
    let o = velollm(&["compare", p(&slow), p(&old_fast)]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("old-fast.json stamped chunk arrivals by 'read', the baseline by 'kernel-arrival'"),
        "{stderr}"
    );

    // The same comparison reversed, gated: a 10 % TTFT budget fails with exit 3, naming the gate.
    let o =
        velollm(&["compare", p(&fast), p(&slow), "--fail-if", "ttft.p95 > +10%", "--fail-if", "success_rate < 0.99"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("❌ FAIL  ttft.p95 > +10%"), "{stdout}");
    assert!(stdout.contains("✅ pass  success_rate < 0.99"), "{stdout}");
    assert!(stderr.contains("gate 'ttft.p95 > +10%' failed"), "{stderr}");
    let o = velollm(&["compare", p(&fast), p(&slow), "--fail-on-regression"]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));

    // Criteria: the 4× faster run meets the prompt-caching TTFT target; cost is not measured, not guessed.
    let o = velollm(&["compare", p(&slow), p(&fast), "--criteria", "prompt-caching"]);
    let (stdout, _) = text(&o);
    assert!(stdout.contains("✅ TTFT reduced by 30–60 %"), "{stdout}");
    assert!(stdout.contains("✅ cache hit rate > 60 % — 12 of 12 requests reused cached prompt tokens"), "{stdout}");
    assert!(
        stdout.contains("➖ cost reduced by 40–50 % — no cost in both results: run both with --prices FILE"),
        "{stdout}"
    );
    assert_eq!(o.status.code(), Some(0), "{stdout}");

    // The slow run misses the hit-rate criterion: exit 3.
    let o = velollm(&["compare", p(&fast), p(&slow), "--criteria", "prompt-caching"]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(text(&o).0.contains("❌ cache hit rate > 60 % — 0 of 12"), "{:?}", text(&o));

    // Three runs: each candidate against the baseline, as terminal tables and as reports.
    let (md, html) = (dir.path().join("cmp.md"), dir.path().join("cmp.html"));
    let o = velollm(&[
        "compare",
        p(&slow),
        p(&fast),
        p(&slow),
        "--md",
        p(&md),
        "--html",
        p(&html),
        "--fail-if",
        "ttft.p50 > +10%",
    ]);
    let (stdout, _) = text(&o);
    assert!(stdout.contains("slow.json → fast.json") && stdout.contains("slow.json → slow.json"), "{stdout}");
    let md_text = std::fs::read_to_string(&md).unwrap();
    for want in [
        "## slow.json → fast.json",
        "| TTFT p50 |",
        "✅ improved",
        "![Before and after: prompts](cmp-before-after-1.svg)",
        "## 🚦 Gates",
    ] {
        assert!(md_text.contains(want), "{want} missing from:\n{md_text}");
    }
    let svg = std::fs::read_to_string(dir.path().join("cmp-before-after-1.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("fast.json"), "{svg}");
    let html_text = std::fs::read_to_string(&html).unwrap();
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html_text.contains(external), "the HTML fetches something: {external}");
    }
    if let Some(bin) = common::chromium() {
        let url = format!("file://{}", html.display());
        assert_eq!(common::rendered_charts(&bin, dir.path(), &url), 1);
        common::screenshot(&bin, dir.path(), &url, "comparison.png");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_compare_to_runs_then_compares() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = run(dir.path(), "base.json", 15, &[]).await;
    let (_, o) = run(dir.path(), "new.json", 60, &["--compare-to", p(&base), "--fail-if", "ttft.p50 > +20%"]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("base.json → new.json"), "{stdout}");
    assert!(stdout.contains("❌ regressed"), "{stdout}");
    // The run itself was written in full before the comparison.
    assert_eq!(common::json(&dir.path().join("new.json"))["status"], "complete");
}

#[test]
fn bad_inputs_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"not\": \"a result\"}").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["compare", "missing.json", "other.json"], "cannot read missing.json"),
        (&["compare", p(&junk), p(&junk)], "is not a velollm result document"),
        (&["compare", p(&junk), p(&junk), "--fail-if", "ttft.p95 >> 10"], "invalid threshold"),
        (&["compare", p(&junk), p(&junk), "--criteria", "speed"], "unknown criteria preset 'speed'"),
        (&["bench", "--prompt", "x", "--fail-if", "ttft.p50 > +1%"], "add --compare-to"),
    ];
    for (args, want) in cases {
        let o = velollm(args);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
