//! `velollm history` end to end on temporary databases: benchmarks indexed automatically, listing newest first,
//! filters, trends with ROI, HTML/Markdown trend reports, rebuilding from a folder, and bad input.

use crate::common;

use common::{json, text};
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

fn quick(model: &str) -> Script {
    Script {
        model: model.into(),
        ttft: Duration::from_millis(15),
        itl: Duration::from_millis(2),
        tokens: 4,
        ..Script::default()
    }
}

/// Run `velollm` with only the history variables of `env` (never the user's own database).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = common::command();
    c.args(args).env_remove("VELOLLM_NO_HISTORY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("velollm runs")
}

/// `velollm history --db DB ARGS…`.
fn history(db: &Path, args: &[&str]) -> Output {
    let mut all = vec!["history", "--db", db.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, &[])
}

/// Benchmark `url` with `n` requests into `out`, indexing into `db` through `VELOLLM_DB`; returns the run id.
async fn bench(url: &str, out: &Path, db: &Path, n: &str) -> String {
    let args: Vec<String> =
        ["bench", "--url", url, "--prompt", "hi", "-n", n, "--no-progress", "-o", out.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let db = db.to_str().unwrap().to_string();
    let o = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &[("VELOLLM_DB", &db)])
    })
    .await
    .unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("note: this run was not added"), "{err}");
    json(out)["meta"]["run_id"].as_str().unwrap().to_string()
}

fn short(id: &str) -> &str {
    id.rsplit_once('-').unwrap().1
}

/// Positions of `needles` in `hay`, panicking with the text when one is missing.
fn positions(hay: &str, needles: &[&str]) -> Vec<usize> {
    needles.iter().map(|n| hay.find(n).unwrap_or_else(|| panic!("'{n}' not in:\n{hay}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmarks_are_indexed_listed_filtered_trended_and_rebuilt() {
    let a = FakeServer::start(Flavor::LlamaCpp, quick("fake-model")).await;
    let b = FakeServer::start(Flavor::OpenAi, quick("other-model")).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/history.db");
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(runs.join("nested")).unwrap();
    let a1 = bench(&a.url(), &runs.join("a1.json"), &db, "3").await;
    let a2 = bench(&a.url(), &runs.join("a2.json"), &db, "3").await;
    let b1 = bench(&b.url(), &runs.join("nested/b1.json"), &db, "2").await;

    // Every run, newest first.
    let o = history(&db, &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for col in ["started", "run", "scenario", "model", "target", "status", "TTFT p95 (ms)", "E2E p50 (ms)"] {
        assert!(out.contains(col), "{out}");
    }
    let p = positions(&out, &[short(&b1), short(&a2), short(&a1)]);
    assert!(p[0] < p[1] && p[1] < p[2], "newest first:\n{out}");
    assert!(out.contains("other-model") && out.contains("complete"), "{out}");

    // Machine output.
    let o = history(&db, &["--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    let listed = doc["runs"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [b1.as_str(), a2.as_str(), a1.as_str()]);
    assert_eq!(listed[2]["requests"], 3);
    assert_eq!(listed[2]["succeeded"], 3);
    assert_eq!(listed[2]["scenario"], "prompts");
    assert!(listed[2]["json_path"].as_str().unwrap().ends_with("a1.json"));
    assert!(listed[2]["ttft_p95_ms"].as_f64().unwrap() >= 15.0);
    assert!(listed[2]["cost_usd"].is_null(), "no cost is ever invented");

    // Filters.
    let ids_of = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = history(&db, &all);
        assert!(o.status.success(), "{}", text(&o).1);
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        doc["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect()
    };
    let a_host = a.url().trim_start_matches("http://").to_string();
    assert_eq!(ids_of(&["--model", "other-model"]), [b1.as_str()]);
    assert_eq!(ids_of(&["--target", &a_host]), [a2.clone(), a1.clone()]);
    assert_eq!(ids_of(&["--scenario", "prompts", "--status", "complete", "--since", "1d"]).len(), 3);
    assert_eq!(ids_of(&["--limit", "1"]), [b1.as_str()]);
    assert!(ids_of(&["--status", "interrupted"]).is_empty());
    assert!(ids_of(&["--since", "2999-01-01"]).is_empty());
    let (out, _) = text(&history(&db, &["--model", "nope"]));
    assert!(out.contains("no run matches these filters (3 runs indexed)"), "{out}");

    // A trend of the metric over time, one series per target, scenario and step; VELOLLM_DB works too.
    let o = run(&["history", "--trend", "ttft.p95"], &[("VELOLLM_DB", db.to_str().unwrap())]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("ttft.p95 (ms) · 3 run(s)"), "{out}");
    let p = positions(&out, &[short(&a1), short(&a2), short(&b1)]);
    assert!(p[0] < p[1], "oldest first within a series:\n{out}");
    assert!(out.contains("first → last:") && out.contains("over 2 runs"), "{out}");
    assert!(out.contains("no cost data in these runs") && out.contains("--price-in"), "{out}");

    // Prices make an ROI from the measured tokens; JSON carries points, series and ROI.
    let o =
        history(&db, &["--trend", "ttft.p95", "--target", &a_host, "--price-in", "1", "--price-out", "2", "--json"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["metric"], "ttft.p95");
    assert_eq!(t["unit"], "ms");
    let points = t["points"].as_array().unwrap();
    assert_eq!(points.iter().map(|p| p["run_id"].as_str().unwrap()).collect::<Vec<_>>(), [a1.as_str(), a2.as_str()]);
    let roi = &t["series"][0]["roi"];
    assert_eq!(roi["earlier_run"], a1.as_str());
    assert_eq!(roi["cost"]["source"], "prices");
    assert_ne!(roi["outcome"], "no_cost_data", "{roi}");

    // Scalars trend too, in one step.
    let o = history(&db, &["--trend", "success_rate", "--step", "prompts", "--json"]);
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(t["points"].as_array().unwrap().iter().all(|p| p["value"] == 1.0), "{t}");

    // HTML and Markdown trend reports.
    let html = dir.path().join("trend.html");
    let md = dir.path().join("trend.md");
    let o = history(&db, &["--trend", "e2e.p50", "--html", html.to_str().unwrap(), "--md", md.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o).1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg") && page.contains(short(&a2)), "{page}");
    assert!(!page.contains("<script src") && !page.contains("<link"), "self-contained");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("# Trend: e2e.p50 (ms)") && markdown.contains("](trend-trend.svg)"), "{markdown}");
    assert!(std::fs::read_to_string(dir.path().join("trend-trend.svg")).unwrap().contains("<svg"));

    // The database is an index: a fresh one is rebuilt from the result files, other JSON skipped.
    std::fs::write(runs.join("nested/package.json"), r#"{"name": "not a result"}"#).unwrap();
    let fresh = dir.path().join("fresh.db");
    let o = history(&fresh, &["--rebuild", runs.to_str().unwrap(), "--json"]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("indexed 3 result(s)") && err.contains("4 .json file(s) found, 1 skipped"), "{err}");
    assert!(err.contains("package.json: not a velollm result"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rebuilt: Vec<&str> = doc["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(rebuilt, [b1.as_str(), a2.as_str(), a1.as_str()]);

    // VELOLLM_NO_HISTORY=1 keeps a benchmark out of the database.
    let off = dir.path().join("off.db");
    let o = run(
        &["bench", "--url", &a.url(), "--prompt", "hi", "-n", "1", "--no-progress"],
        &[("VELOLLM_DB", off.to_str().unwrap()), ("VELOLLM_NO_HISTORY", "1")],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!off.exists());

    // `bench --db FILE` indexes there, as `history --db FILE` reads, ahead of VELOLLM_DB.
    let flag = dir.path().join("flag.db");
    let o = run(
        &["bench", "--url", &a.url(), "--prompt", "hi", "-n", "1", "--no-progress", "--db", flag.to_str().unwrap()],
        &[("VELOLLM_DB", off.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(!off.exists(), "--db wins over VELOLLM_DB");
    let o = history(&flag, &["--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["runs"].as_array().map(Vec::len), Some(1), "{doc}");
}

#[test]
fn empty_corrupt_and_bad_input_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let o = history(&missing, &[]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("no runs indexed yet: run `velollm bench … -o result.json`, or `velollm history --rebuild DIR`")
    );
    assert!(!missing.exists(), "listing creates nothing");
    let o = history(&missing, &["--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["runs"], serde_json::json!([]));

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let o = history(&junk, &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("junk.db") && err.contains("--db") && err.contains("--rebuild"), "{err}");

    for (args, want) in [
        (&["--trend", "nope.p95"][..], "unknown metric 'nope.p95'"),
        (&["--trend", "ttft.p42"][..], "unknown statistic 'p42'"),
        (&["--trend", "success_rate.p95"][..], "no statistics"),
        (&["--since", "soon"][..], "--since 'soon'"),
        (&["--limit", "0"][..], "--limit must be at least 1"),
        (&["--trend", "ttft.p95", "--price-in=-1", "--price-out", "1"][..], "prices must be"),
        (&["--step", "x"][..], "--trend"),
        (&["--trend", "ttft", "--price-in", "1"][..], "--price-out"),
        (&["--rebuild", "/nonexistent/velollm-results"][..], "/nonexistent/velollm-results"),
    ] {
        let o = history(&missing, args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
