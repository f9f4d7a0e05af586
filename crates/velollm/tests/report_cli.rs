//! `velollm report` end to end: a real run against a fake server, then every export from its result file; bad
//! input; and the HTML report opened in headless Chromium (charts rendered, no script errors, a screenshot kept
//! as a test artifact).

use crate::common;

use common::{json, text, velollm, velollm_async};
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

/// Distributions, conversation turns, several max_tokens and concurrency levels, thresholds and analyses: every
/// chart that the fake server's data supports.
const SCENARIO: &str = r#"
name = "report-demo"
description = "every chart of a report"
measures = "distributions, turns, fits, throughput"
thresholds = ["degradation < 500%"]

[[analyses]]
kind = "fit"
x = "output_tokens"
y = "e2e"

[[analyses]]
kind = "turns"
step = "chat"

[[steps]]
name = "short"
prompt_tokens = 16
max_tokens = 4
iterations = 4
thresholds = ["ttft.p95 < 2s", "success_rate > 0.95"]

[[steps]]
name = "concurrent_2"
prompt = "Explain what a load balancer does."
max_tokens = 8
load = { concurrency = 2, requests = 6 }

[[steps]]
name = "concurrent_4"
prompt = "Explain what a load balancer does."
max_tokens = 8
load = { concurrency = 4, requests = 8 }

[[steps]]
name = "chat"
max_tokens = 6
iterations = 2

[[steps.turns]]
user = "Hello"

[[steps.turns]]
user = "And then?"

[[steps.turns]]
user = "Summarise."
"#;

/// The charts the scenario's data supports (the fake server reports one prompt length, so no
/// latency-against-prompt-length chart).
const CHARTS: [&str; 11] = [
    "ttft-histogram",
    "ttft-cdf",
    "e2e-histogram",
    "e2e-cdf",
    "time-split",
    "ttft-per-turn",
    "e2e-per-turn",
    "decode-speed-per-turn",
    "e2e-vs-max-tokens",
    "throughput-tokens",
    "throughput-requests",
];

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Run the scenario against a fake llama.cpp server; the result file's path.
async fn bench(dir: &Path) -> PathBuf {
    let server = FakeServer::start(
        Flavor::LlamaCpp,
        Script { ttft: Duration::from_millis(15), itl: Duration::from_millis(2), tokens: 6, ..Script::default() },
    )
    .await;
    let scenario = dir.join("demo.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.join("run.json");
    let o = velollm_async(s(&["bench", "--url", &server.url(), "--scenario", p(&scenario), "-o", p(&out)])).await;
    assert!(o.status.success(), "{}", text(&o).1);
    out
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_export_from_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = bench(dir.path()).await;
    let d = |name: &str| dir.path().join(name);

    // The terminal summary, like bench prints it.
    let o = velollm(&["report", p(&run)]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    for step in ["short", "concurrent_2", "concurrent_4", "chat", "TTFT (ms)", "thresholds: 3/3 passed"] {
        assert!(stdout.contains(step), "{step} missing from:\n{stdout}");
    }

    let o = velollm(&[
        "report",
        p(&run),
        "--html",
        p(&d("report.html")),
        "--md",
        p(&d("report.md")),
        "--csv",
        p(&d("steps.csv")),
        "--records-csv",
        p(&d("requests.csv")),
    ]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");

    let md = std::fs::read_to_string(d("report.md")).unwrap();
    assert!(md.starts_with("# 📊 velollm report: report-demo on fake-model"), "{md}");
    for section in ["## Summary", "## 🎯 Thresholds: ✅ 3/3 passed", "## 📈 Charts", "## Steps", "## Analyses"] {
        assert!(md.contains(section), "{section} missing from:\n{md}");
    }
    for id in CHARTS {
        let file = format!("report-{id}.svg");
        assert!(md.contains(&format!("]({file})")), "{file} not referenced");
        let svg = std::fs::read_to_string(d(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.trim_end().ends_with("</svg>"));
    }

    let html = std::fs::read_to_string(d("report.html")).unwrap();
    assert_eq!(html.matches("<svg xmlns").count(), CHARTS.len());
    for banned in ["src=", "href=", "@import", "url("] {
        assert!(!html.contains(banned), "the HTML must be self-contained: found {banned}");
    }

    let doc = json(&run);
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(lines(&d("steps.csv")), 1 + steps.len());
    let succeeded: u64 = steps.iter().map(|s| s["succeeded"].as_u64().unwrap()).sum();
    assert_eq!(lines(&d("requests.csv")) as u64, 1 + succeeded);
    let head = std::fs::read_to_string(d("requests.csv")).unwrap().lines().next().unwrap().to_string();
    assert!(head.starts_with("step,index,end_s,ttft_ms,e2e_ms,"), "{head}");

    // Two result files overlay in the charts, told apart by file name (same model, same URL).
    let copy = d("again.json");
    std::fs::copy(&run, &copy).unwrap();
    let o = velollm(&["report", p(&run), p(&copy), "--html", p(&d("both.html"))]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let both = std::fs::read_to_string(d("both.html")).unwrap();
    assert!(both.contains("<h1>📊 velollm report: 2 runs</h1>"));
    assert!(both.contains(">run.json</text>") && both.contains(">again.json</text>"), "legends name both runs");

    // A schema 1.0 document (no per-request samples) still renders: the charts that need samples are absent.
    let mut old = doc.clone();
    old["schema_version"] = "1.0".into();
    for step in old["steps"].as_array_mut().unwrap() {
        step.as_object_mut().unwrap().remove("samples");
    }
    std::fs::write(d("old.json"), serde_json::to_string(&old).unwrap()).unwrap();
    let o = velollm(&["report", p(&d("old.json")), "--md", p(&d("old.md")), "--records-csv", p(&d("old.csv"))]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let old_md = std::fs::read_to_string(d("old.md")).unwrap();
    assert!(old_md.contains("old-time-split.svg") && !old_md.contains("old-ttft-cdf.svg"), "{old_md}");
    assert_eq!(lines(&d("old.csv")), 1);
}

/// Every step of a run as an llm-d Benchmark Report, one file per step, each valid against llm-d's own schema
/// and model, with velollm's figures in the schema's units.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_is_an_llm_d_benchmark_report() {
    let Some(package) = common::llmd_report_package() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = bench(dir.path()).await;
    let doc = json(&run);
    let out = dir.path().join("llmd.json");
    let o = velollm(&["report", p(&run), "--llm-d", p(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let steps = doc["steps"].as_array().unwrap();
    assert!(steps.len() > 1 && !out.exists(), "a run of several steps is written one file per step");
    for (stage, step) in steps.iter().enumerate() {
        let file = dir.path().join(format!("llmd-{stage}.json"));
        common::assert_llmd_valid(&package, &file);
        let r = json(&file);
        assert_eq!(r["version"], "0.2.1");
        assert_eq!(r["run"]["eid"], doc["meta"]["run_id"]);
        assert_eq!(r["scenario"]["load"]["standardized"]["stage"], stage);
        assert_eq!(r["scenario"]["load"]["standardized"]["tool"], "velollm");
        let agg = &r["results"]["request_performance"]["aggregate"];
        assert_eq!(agg["requests"]["total"], step["requests"]);
        assert_eq!(agg["requests"]["failures"], step["failed"]);
        let ttft = &agg["latency"]["time_to_first_token"];
        assert_eq!(ttft["units"], "s");
        let ms = step["metrics"]["ttft_ms"]["p99"].as_f64().unwrap();
        assert!((ttft["p99"].as_f64().unwrap() - ms / 1e3).abs() < 1e-9, "TTFT p99 {ms} ms → {}", ttft["p99"]);
        assert_eq!(agg["throughput"]["request_rate"]["mean"], step["rates"]["request_throughput"]);
    }
    let concurrent = json(&dir.path().join("llmd-1.json"));
    assert_eq!(concurrent["scenario"]["load"]["standardized"]["concurrency"], 2);

    // One step: the file named.
    let mut one = doc.clone();
    one["steps"].as_array_mut().unwrap().truncate(1);
    std::fs::write(dir.path().join("one.json"), one.to_string()).unwrap();
    let single = dir.path().join("single.json");
    let o = velollm(&["report", p(&dir.path().join("one.json")), "--llm-d", p(&single)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    common::assert_llmd_valid(&package, &single);

    // The reports of one run only.
    let o = velollm(&["report", p(&run), p(&run), "--llm-d", p(&single)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("give one result document"), "{}", text(&o).1);
}

#[test]
fn bad_input_names_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    std::fs::write(d("notes.txt"), "not json").unwrap();
    std::fs::write(d("other.json"), r#"{"hello": "world"}"#).unwrap();
    std::fs::write(
        d("future.json"),
        r#"{"schema_version": "2.0", "meta": {"tool": "velollm"}, "status": "complete", "steps": []}"#,
    )
    .unwrap();
    std::fs::write(d("broken.json"), r#"{"schema_version": "1.1", "meta": {"tool": "velollm"}, "steps": 3}"#).unwrap();
    for (file, expected) in [
        ("missing.json", "missing.json does not exist: pass a result file written by `velollm bench -o FILE`"),
        ("notes.txt", "notes.txt is not JSON"),
        ("other.json", "other.json is not a velollm result document"),
        ("future.json", "has result schema 2.0, which this velollm"),
        ("broken.json", "broken.json does not match the velollm result format"),
    ] {
        let o = velollm(&["report", p(&d(file))]);
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(expected), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let o = velollm(&["report"]);
    assert_eq!(o.status.code(), Some(2), "a result file is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_output_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let run = bench(dir.path()).await;
    let target = dir.path().join("no-such-folder").join("r.html");
    let o = velollm(&["report", p(&run), "--html", p(&target)]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write") && stderr.contains("no-such-folder"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_a_browser() {
    let Some(bin) = common::chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = bench(dir.path()).await;
    let html = dir.path().join("report.html");
    let o = velollm(&["report", p(&run), "--html", p(&html)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let url = format!("file://{}", html.display());

    let charts = common::rendered_charts(&bin, dir.path(), &url);
    assert!(charts >= CHARTS.len(), "{charts} charts rendered, expected {}", CHARTS.len());
    common::screenshot(&bin, dir.path(), &url, "report.png");
}
