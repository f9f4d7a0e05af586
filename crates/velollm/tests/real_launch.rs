//! velollm's server launcher and metrics scraping against llama.cpp's real `llama-server` with
//! SmolLM2-135M-Instruct (`LLAMA_SERVER_BIN`, `SMOLLM2_MODEL`: see `scripts/llama-server.sh env`).
//!
//! Every server here is started on a free port, with one thread and a small context (the machine may have
//! two cores, shared with other tests), and stopped at the end. Without the binary and the model these tests
//! are skipped with a message — except in CI (`CI=true`), where they are required.

#![cfg(unix)]

use crate::common;

use common::{assert_no_process, assert_valid, json, jsonl, listening, llama_server, text, velollm};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use velollm_core::measure::prom::{Engine, MetricType, parse, step_metrics};

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The llama-server flags of these tests (as `scripts/llama-server.sh` starts it, smaller).
fn llama_args(model: &Path, port: &str, n_ctx: &str) -> Vec<String> {
    let model = model.to_str().expect("a UTF-8 model path").to_string();
    let args = ["--alias", "smollm2", "--host", "127.0.0.1", "--port", port, "-c", n_ctx, "-t", "1", "-tb", "1"];
    let mut all = vec!["-m".to_string(), model];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(["-np", "2", "--metrics", "--no-webui"].map(String::from));
    all
}

#[test]
fn launched_llama_server_cold_start_resources_and_metrics() {
    let Some((bin, model, _real)) = llama_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
    let template = format!("'{}' {}", bin.display(), llama_args(&model, "{port}", "{n_ctx}").join(" "));
    let o = velollm(&[
        "bench",
        "--launch",
        &template,
        "--param",
        "n_ctx=2048",
        "--prompt",
        "Name three colours.",
        "--prompt",
        "Count from one to five.",
        "-n",
        "6",
        "--max-tokens",
        "16",
        "--sample-interval",
        "100ms",
        "--no-progress",
        "-o",
        out.to_str().unwrap(),
        "--records",
        records.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["meta"]["target"]["server"], "llama.cpp");

    let server = &doc["server"];
    let launch = &server["launch"];
    let port = launch["port"].as_u64().unwrap() as u16;
    assert!(launch["command"].as_str().unwrap().contains(&format!("--port {port} -c 2048 ")), "{launch}");
    assert_eq!(launch["ready_route"], "/health");
    assert!(launch["stop"].as_str().is_some_and(|s| s.contains("SIGTERM")), "{launch}");

    // Cold start: listening ≤ ready ≤ first token, and the first request produced tokens.
    let cold = &server["cold_start"];
    let (listen, ready) = (f(&cold["spawn_to_listen_ms"]), f(&cold["spawn_to_ready_ms"]));
    let first = f(&cold["spawn_to_first_token_ms"]);
    assert!(0.0 < listen && listen <= ready && ready <= first, "{cold}");
    assert!(f(&cold["first_ttft_ms"]) > 0.0 && cold["first_output_tokens"].as_u64().unwrap() >= 1, "{cold}");

    // The model (~100 MB) is mapped and resident.
    let rss_peak = f(&server["resources"]["rss_peak_bytes"]);
    assert!(rss_peak > 50e6, "RSS peak {rss_peak} bytes: {}", server["resources"]);

    // The server's own token count for the step is velollm's: the sum of the records' output tokens.
    let records = jsonl(&records);
    assert_eq!(records.len(), 6);
    let output: u64 = records
        .iter()
        .map(|r| {
            assert!(r.get("error").is_none(), "request failed: {r}");
            r["usage"]["completion_tokens"].as_u64().expect("server usage")
        })
        .sum();
    let sm = &doc["steps"][0]["server_metrics"];
    assert_eq!(sm["engine"], "llamacpp", "{sm}");
    assert_eq!(f(&sm["generation_tokens"]), output as f64, "{sm}");
    assert!(f(&sm["prompt_tokens"]) + f(&sm["cached_prompt_tokens"]) > 0.0, "{sm}");
    assert_eq!(server["metrics_url"].as_str().unwrap(), format!("http://127.0.0.1:{port}/metrics"));

    assert_no_process(&["llama-server", &format!("--port {port} ")], Duration::from_secs(2));
    assert!(!listening(port), "something still listens on port {port}");
}

/// A llama-server this test started; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`: the status and the body.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes())).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP response: {raw}"));
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "chunked answer: {head}");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

fn scrape(port: u16) -> velollm_core::measure::prom::Scrape {
    let (status, body) = http(port, "GET", "/metrics", None);
    assert_eq!(status, 200, "{body}");
    parse(&body).unwrap_or_else(|e| panic!("llama-server's /metrics does not parse: {e}\n{body}"))
}

#[test]
fn real_llama_server_metrics_map_to_step_metrics() {
    let Some((bin, model, _real)) = llama_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("llama-server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&bin)
        .args(llama_args(&model, &port.to_string(), "2048"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("llama-server.err")).unwrap())
        .spawn()
        .expect("llama-server starts");
    let mut server = Running(child);
    let start = Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.path().join("llama-server.err")).unwrap_or_default();
            panic!("llama-server exited ({status}) before it was ready:\n{err}");
        }
        if listening(port) && http(port, "GET", "/health", None).0 == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "llama-server not ready after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }

    let before = scrape(port);
    assert_eq!(before.malformed_lines, 0);
    assert_eq!(before.type_of("llamacpp:prompt_tokens_total"), Some(MetricType::Counter));
    assert_eq!(before.type_of("llamacpp:tokens_predicted_total"), Some(MetricType::Counter));
    let mut generated = 0;
    for prompt in ["Name three colours.", "Say hello in French."] {
        let request = serde_json::json!({
            "model": "smollm2",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 8,
        });
        let (status, body) = http(port, "POST", "/v1/chat/completions", Some(&request));
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        generated += answer["usage"]["completion_tokens"].as_u64().expect("usage");
    }
    let after = scrape(port);

    let m = step_metrics(&before, &after, &[]);
    assert_eq!(m.engine, Engine::Llamacpp, "{m:?}");
    assert!(!m.counter_reset, "{m:?}");
    assert!(m.prompt_tokens.is_some_and(|p| p > 0.0), "{m:?}");
    assert_eq!(m.generation_tokens, Some(generated as f64), "{m:?}");
    assert!(m.decode_time_s.is_some_and(|t| t > 0.0), "{m:?}");
    drop(server);
    assert!(!listening(port));
}
