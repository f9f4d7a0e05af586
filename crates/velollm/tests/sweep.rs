//! `velollm bench --sweep`: a capacity probe, then a ladder of rates or concurrency levels, against an
//! in-process fake server; and the input errors of a sweep.

use crate::common;

use common::{assert_valid, json, text, velollm, velollm_async};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

fn fast() -> Script {
    Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 4, ..Script::default() }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The analysis of kind `sweep` in a result document.
fn sweep_analysis(doc: &serde_json::Value) -> &serde_json::Value {
    doc["analyses"].as_array().unwrap().iter().find(|a| a["kind"] == "sweep").expect("a sweep analysis")
}

fn figure(analysis: &serde_json::Value, name: &str) -> Option<f64> {
    analysis["figures"].as_array().unwrap().iter().find(|f| f["name"] == name).and_then(|f| f["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_sweep_probes_then_steps_the_rate() {
    let server = FakeServer::start(Flavor::OpenAi, fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.json");
    let url = server.url();
    let o = velollm_async(s(&[
        "bench",
        "--url",
        &url,
        "--model",
        "fake-model",
        "--sweep",
        "3",
        "--requests",
        "20",
        "--prompt",
        "hi",
        "--no-progress",
        "-o",
        out.to_str().unwrap(),
    ]))
    .await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    let steps = doc["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["probe", "rate_0.40", "rate_0.80", "rate_1.20"], "{stdout}");
    assert!(steps.iter().all(|s| s["requests"] == 20), "{steps:?}");
    assert_eq!(steps[0]["config"]["load"], serde_json::json!({"mode": "concurrency", "concurrency": 32}));
    // The ladder is anchored on the probe's throughput: 0.4×, 0.8×, 1.2× of it (4 significant digits), at
    // most 64 in flight.
    let probe = steps[0]["rates"]["request_throughput"].as_f64().unwrap();
    for (step, fraction) in steps[1..].iter().zip([0.4, 0.8, 1.2]) {
        let load = &step["config"]["load"];
        assert_eq!(load["mode"], "rate");
        assert_eq!(load["arrival"]["kind"], "poisson");
        assert_eq!(load["max_concurrency"], 64);
        let rate = load["rate"].as_f64().unwrap();
        assert!((rate / probe / fraction - 1.0).abs() < 1e-3, "rate {rate} for probe {probe}");
    }
    let a = sweep_analysis(&doc);
    let table = &a["table"];
    assert_eq!(table["rows"].as_array().unwrap().len(), 4);
    assert_eq!(table["rows"][0]["label"], "probe");
    assert_eq!(table["columns"][1], "offered req/s");
    let max = figure(a, "max_throughput").expect("max_throughput");
    assert!(max > 0.0 && max >= probe, "{a}");
    assert!(matches!(figure(a, "saturated"), Some(x) if x == 0.0 || x == 1.0), "{a}");
    assert!(stdout.contains("rate sweep: throughput/latency curve"), "{stdout}");
    assert!(stdout.contains("max_throughput"), "{stdout}");
    // Every step sent 20 requests to the server.
    assert_eq!(server.requests().len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_sweep_steps_the_workers() {
    let server = FakeServer::start(Flavor::OpenAi, fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.json");
    let url = server.url();
    let o = velollm_async(s(&[
        "bench",
        "--url",
        &url,
        "--model",
        "fake-model",
        "--sweep",
        "3",
        "--sweep-mode",
        "concurrency",
        "--sweep-max-concurrency",
        "4",
        "--requests",
        "8",
        "--prompt-tokens",
        "16",
        "--no-progress",
        "-o",
        out.to_str().unwrap(),
    ]))
    .await;
    assert!(o.status.success(), "{}", text(&o).1);
    let doc = json(&out);
    assert_valid(&doc);
    let names: Vec<&str> = doc["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["probe", "conc_1", "conc_2", "conc_4"]);
    assert_eq!(doc["steps"][1]["config"]["load"], serde_json::json!({"mode": "sequential"}));
    assert_eq!(doc["steps"][3]["config"]["load"], serde_json::json!({"mode": "concurrency", "concurrency": 4}));
    let a = sweep_analysis(&doc);
    assert_eq!(a["table"]["columns"][1], "workers");
    assert_eq!(a["table"]["rows"].as_array().unwrap().len(), 4);
    assert!(figure(a, "max_throughput").unwrap() > 0.0);
}

#[test]
fn sweep_input_errors_name_the_fix() {
    let cases: [(&[&str], &str); 5] = [
        (&["--prompt", "hi"], "--sweep needs a bound for every step: add --requests N or --duration D"),
        (&["--requests", "5"], "--sweep works on one workload: pass --prompt/--prompt-file/--prompt-tokens"),
        (&["--prompt", "hi", "--requests", "5", "--rate", "3"], "drop --rate/--concurrency"),
        (&["--prompt", "hi", "--requests", "5", "--sweep-mode", "concurrency", "--arrival", "constant"], "--arrival"),
        (&["--prompt", "hi", "--requests", "5", "--arrival", "bursty"], "possible values: constant, poisson, gamma"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["bench", "--url", "http://127.0.0.1:9", "--sweep", "3"];
        args.extend_from_slice(extra);
        let o = velollm(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // The sweep's own flags need --sweep.
    let o = velollm(&["bench", "--url", "http://127.0.0.1:9", "--prompt", "hi", "--sweep-mode", "concurrency"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    let o = velollm(&["bench", "--url", "http://127.0.0.1:9", "--prompt", "hi", "--requests", "5", "--sweep", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--sweep must be at least 1"), "{}", text(&o).1);
}
