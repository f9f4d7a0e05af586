//! `velollm compare`, `report` and `history` on two real runs against llama-server (SmolLM2-135M): a long
//! prompt against a short one. Prefill time grows with the prompt, so the short-prompt run must come out
//! significantly faster to the first token — the comparison has to see a real effect, with a confidence
//! interval below zero. Both runs are indexed in a temporary history database and rendered as reports.

use crate::common;

use common::{json, server_url, text, velollm};
use std::process::Output;

#[test]
fn a_shorter_prompt_is_a_significant_ttft_improvement() {
    let Some((url, _real)) = server_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let indexed = |args: &[&str]| -> Output {
        common::command().env_remove("VELOLLM_NO_HISTORY").env("VELOLLM_DB", &db).args(args).output().unwrap()
    };
    let run = |name: &str, prompt_tokens: &str| {
        let out = dir.path().join(name);
        let o = indexed(&[
            "bench",
            "--url",
            &url,
            "--prompt-tokens",
            prompt_tokens,
            "--max-tokens",
            "4",
            "--requests",
            "8",
            "--no-progress",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{:?}", text(&o));
        out
    };
    let long = run("long.json", "300");
    let short = run("short.json", "20");
    let cmp = dir.path().join("cmp.json");
    let o = velollm(&["compare", long.to_str().unwrap(), short.to_str().unwrap(), "--json", cmp.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}{stderr}");
    let doc = json(&cmp);
    let rows = doc["comparisons"][0]["steps"][0]["rows"].as_array().unwrap();
    let ttft = rows.iter().find(|r| r["metric"] == "ttft" && r["stat"] == "p50").unwrap();
    assert_eq!(ttft["change"], "improved", "{stdout}");
    assert!(ttft["ci"][1].as_f64().unwrap() < 0.0, "{ttft}");
    // Reversed and gated, the long prompt fails a 0 % TTFT budget.
    let o = velollm(&["compare", short.to_str().unwrap(), long.to_str().unwrap(), "--fail-if", "ttft.p50 > +0%"]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));

    // Every bench run was indexed; the trend shows both, oldest first.
    let o = indexed(&["history", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("history --json");
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(2), "{list}");
    let o = indexed(&["history", "--trend", "ttft.p50"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}{stderr}");

    // The report of both runs overlays them in charts the browser renders.
    let html = dir.path().join("report.html");
    let o = velollm(&["report", long.to_str().unwrap(), short.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    if let Some(bin) = common::chromium() {
        let charts = common::rendered_charts(&bin, dir.path(), &format!("file://{}", html.display()));
        assert!(charts >= 4, "{charts} charts");
    }
}
