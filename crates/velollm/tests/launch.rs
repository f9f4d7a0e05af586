//! `velollm bench --launch` end to end against the `velollm-fake-server` program: launch, readiness, cold
//! start, the log, a clean stop, servers that never get ready, die or leak, `--restart-on-failure`, Ctrl-C,
//! template errors — and metrics scraping (`--metrics-url`, `--no-metrics`) of a server velollm did not
//! launch.
//!
//! Every launched command carries `--tag MARKER` (ignored by the fake server), so a test can check that no
//! process of its own outlived velollm.

#![cfg(unix)]

use crate::common;

use common::{
    assert_no_process, assert_valid, command, fake_server_bin, json, jsonl, listening, text, unique_marker, velollm,
    velollm_async,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};
use velollm_testkit::{FakeServer, Flavor, Script};

/// A test's files and the marker of the server it launches.
struct Run {
    dir: tempfile::TempDir,
    marker: String,
}

impl Run {
    fn new(what: &str) -> Run {
        Run { dir: tempfile::tempdir().unwrap(), marker: unique_marker(what) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn out(&self) -> PathBuf {
        self.path("run.json")
    }

    fn records(&self) -> PathBuf {
        self.path("run.jsonl")
    }

    /// The default server log: beside `-o run.json`.
    fn log(&self) -> PathBuf {
        self.path("run.server.log")
    }

    /// The fake server's command template with `{port}`, this run's marker and `extra` options.
    fn template(&self, extra: &str) -> String {
        format!("'{}' --port {{port}} --tag {} {extra}", fake_server_bin().display(), self.marker)
    }

    /// `bench --launch TEMPLATE(extra) ARGS… -o run.json --records run.jsonl --no-progress`.
    fn args(&self, extra: &str, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = ["bench", "--launch", &self.template(extra)].map(String::from).to_vec();
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(["--no-progress".into(), "-o".into(), path_arg(&self.out())]);
        all.extend(["--records".into(), path_arg(&self.records())]);
        all
    }

    fn bench(&self, extra: &str, args: &[&str]) -> Output {
        let all = self.args(extra, args);
        velollm(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Start the run in the background, its output going to files (read with [`Run::stderr`]).
    fn spawn(&self, extra: &str, args: &[&str]) -> Child {
        command()
            .args(self.args(extra, args))
            .stdout(std::fs::File::create(self.path("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(self.path("stderr.txt")).unwrap())
            .spawn()
            .expect("velollm starts")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.txt")).unwrap_or_default()
    }

    /// No process with this run's marker is alive (the server, its group, a restarted one).
    fn assert_server_gone(&self) {
        assert_no_process(&[&self.marker], Duration::from_secs(2));
    }
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_string()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Wait for `child` to exit within `limit`; kills it and fails otherwise.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("velollm did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll until `ready` holds, for at most `limit`.
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success(), "kill -INT {pid}");
}

/// The result document, once it exists and parses (it is rewritten as the run goes).
fn try_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

// ---------------------------------------------------------------------------------------------------------
// Launch → ready → bench → stop
// ---------------------------------------------------------------------------------------------------------

#[test]
fn launched_server_is_benchmarked_then_stopped() {
    let run = Run::new("ok");
    let o = run.bench("--loading-ms 400 --tokens {tokens}", &["--param", "tokens=6", "--prompt", "hi", "-n", "5"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("velollm: launching the server (log: "), "{stderr}");
    assert!(stderr.contains("server ready on http://127.0.0.1:"), "{stderr}");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");

    let launch = &doc["server"]["launch"];
    let port = launch["port"].as_u64().expect("launch.port") as u16;
    assert_eq!(launch["template"].as_str().unwrap(), run.template("--loading-ms 400 --tokens {tokens}"));
    let command = launch["command"].as_str().unwrap();
    assert!(command.contains(&format!("--port {port} ")) && command.contains("--tokens 6"), "{command}");
    assert!(!command.contains('{'), "every placeholder is filled: {command}");
    assert_eq!(launch["ready_route"], "/health");
    assert_eq!(launch["restarts"], 0);
    assert_eq!(launch["log"].as_str().unwrap(), run.log().to_str().unwrap());
    let stop = launch["stop"].as_str().expect("launch.stop");
    assert!(stop.contains("SIGTERM"), "{stop}");

    // Cold start: /health said 503 for the 400 ms of "loading"; listen ≤ ready ≤ first token.
    let cold = &doc["server"]["cold_start"];
    let (listen, ready) = (f(&cold["spawn_to_listen_ms"]), f(&cold["spawn_to_ready_ms"]));
    let first = f(&cold["spawn_to_first_token_ms"]);
    assert!(ready >= 400.0, "ready after {ready} ms, before the 400 ms of loading ended: {cold}");
    assert!(listen <= ready && ready <= first, "{cold}");
    assert_eq!(cold["first_output_tokens"], 6);
    assert!(f(&cold["first_ttft_ms"]) > 0.0 && cold.get("first_error").is_none(), "{cold}");

    // The steps are the warm requests only; the server's own counters agree (5 requests × 6 tokens).
    let step = &doc["steps"][0];
    assert_eq!((step["requests"].as_u64(), step["succeeded"].as_u64()), (Some(5), Some(5)), "{step}");
    assert_eq!(step["server_metrics"]["engine"], "llamacpp");
    assert_eq!(step["server_metrics"]["generation_tokens"], 30.0, "{}", step["server_metrics"]);
    assert_eq!(doc["server"]["metrics_url"].as_str().unwrap(), format!("http://127.0.0.1:{port}/metrics"));
    assert!(doc["server"]["resources"]["rss_peak_bytes"].as_u64().unwrap() > 0);

    let log = std::fs::read_to_string(run.log()).expect("the server log beside -o");
    assert!(log.starts_with("# velollm: ") && log.contains(&format!("starting: {command}")), "{log}");
    assert!(log.contains(&format!("fake server: listening on http://127.0.0.1:{port}")), "{log}");

    run.assert_server_gone();
    assert!(!listening(port), "something still listens on the launched server's port {port}");
}

#[test]
fn server_log_goes_where_asked() {
    let run = Run::new("log");
    let log = run.path("logs/server.txt");
    let o = run.bench("", &["--server-log", log.to_str().unwrap(), "--prompt", "hi", "-n", "1", "--no-cold-start"]);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&log).expect("the log where --server-log says");
    assert!(text.contains("fake server: listening"), "{text}");
    assert!(!run.log().exists(), "nothing beside -o when --server-log is given");
    let doc = json(&run.out());
    assert!(doc["server"].get("cold_start").is_some_and(|c| c.get("spawn_to_first_token_ms").is_none()), "{doc}");
    run.assert_server_gone();
}

// ---------------------------------------------------------------------------------------------------------
// Servers that never get ready
// ---------------------------------------------------------------------------------------------------------

/// A launch that fails before the run: exit 4 (unreachable), no result document, the log kept.
fn assert_launch_failed(run: &Run, o: &Output) -> String {
    let (stdout, stderr) = text(o);
    assert_eq!(o.status.code(), Some(4), "a server that never got ready is unreachable (exit 4):\n{stdout}\n{stderr}");
    assert!(!run.out().exists(), "no result document for a run that never started");
    assert!(!run.records().exists() || jsonl(&run.records()).is_empty(), "no request was measured");
    assert!(run.log().exists(), "the server log is kept for the post-mortem");
    run.assert_server_gone();
    stderr
}

#[test]
fn server_that_exits_at_start_fails_with_its_log_tail() {
    let run = Run::new("exit");
    let o = run.bench("--mode exit", &["--prompt", "hi", "-n", "3"]);
    let stderr = assert_launch_failed(&run, &o);
    assert!(stderr.contains("the server exited before it was ready (exit code 1)"), "{stderr}");
    assert!(stderr.contains("fake server: error: cannot load the model (simulated)"), "{stderr}");
    assert!(stderr.contains("fake server: loading"), "stdout goes to the log too: {stderr}");
}

#[test]
fn server_that_never_gets_ready_times_out_and_is_killed() {
    let run = Run::new("loading");
    let start = Instant::now();
    let o = run.bench("--loading-ms 600000", &["--launch-timeout", "2s", "--prompt", "hi", "-n", "3"]);
    let took = start.elapsed();
    let stderr = assert_launch_failed(&run, &o);
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "took {took:?}");
    assert!(stderr.contains("not ready after 2s") && stderr.contains("--launch-timeout"), "{stderr}");
    assert!(stderr.contains("/health answered 503") && stderr.contains("Loading model"), "{stderr}");
}

#[test]
fn hung_server_times_out_and_is_killed() {
    let run = Run::new("hang");
    let start = Instant::now();
    let o = run.bench("--mode hang", &["--launch-timeout", "2s", "--prompt", "hi", "-n", "3"]);
    let took = start.elapsed();
    let stderr = assert_launch_failed(&run, &o);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(stderr.contains("--launch-timeout") && stderr.contains("no answer"), "{stderr}");
    assert!(stderr.contains("fake server: hanging on"), "{stderr}");
}

#[test]
fn hung_server_launch_timeout_is_honoured() {
    let run = Run::new("hang-deadline");
    let start = Instant::now();
    let o = run.bench("--mode hang", &["--launch-timeout", "2s", "--prompt", "hi", "-n", "3"]);
    let took = start.elapsed();
    assert_launch_failed(&run, &o);
    assert!(took < Duration::from_millis(4500), "--launch-timeout 2s took {took:?}");
}

// ---------------------------------------------------------------------------------------------------------
// Deaths during the run
// ---------------------------------------------------------------------------------------------------------

#[test]
fn server_death_stops_the_run_and_keeps_what_was_measured() {
    let run = Run::new("die");
    // The cold request is the 1st; the server dies when the 8th arrives.
    let o = run.bench("--die-after-requests 8", &["--prompt", "hi", "-n", "30"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("the server died during the run"), "{stderr}");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "interrupted");
    let reason = doc["status_reason"].as_str().unwrap();
    assert!(reason.contains("the server died during the run (exit code 1)"), "{reason}");
    assert!(reason.contains("--restart-on-failure"), "{reason}");
    assert!(reason.contains("dying after 8 requests (simulated crash)"), "the log tail: {reason}");

    let events = doc["server"]["events"].as_array().expect("server events");
    assert_eq!(events[0]["kind"], "exited", "{events:#?}");
    assert!(events[0]["detail"].as_str().unwrap().starts_with("exit code 1"), "{events:#?}");
    assert_eq!(events[0]["step"], "prompts");
    assert!(!events.iter().any(|e| e["kind"] == "relaunched"), "{events:#?}");
    assert_eq!(doc["server"]["launch"]["restarts"], 0);

    // The requests answered before the death are kept, and only those.
    let step = &doc["steps"][0];
    let ok = step["succeeded"].as_u64().unwrap();
    assert!((5..=7).contains(&ok), "6 or 7 warm requests were answered before the death: {step}");
    assert!(step["requests"].as_u64().unwrap() < 30);
    let records = jsonl(&run.records());
    assert_eq!(records.iter().filter(|r| r.get("error").is_none()).count() as u64, ok);
    run.assert_server_gone();
}

#[test]
fn restart_on_failure_relaunches_and_completes() {
    let run = Run::new("restart");
    let o = run.bench(
        "--die-after-requests 8 --loading-ms 200",
        &["--restart-on-failure", "--prompt", "hi", "-n", "16", "--sample-interval", "100ms"],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    let launch = &doc["server"]["launch"];
    let restarts = launch["restarts"].as_u64().unwrap();
    assert!(restarts >= 1, "{launch}");

    let events = doc["server"]["events"].as_array().expect("server events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let deaths = kinds.iter().filter(|k| **k == "exited").count();
    assert_eq!(kinds[..2], ["exited", "relaunched"], "{events:#?}");
    assert_eq!(deaths as u64, restarts, "every death was followed by a relaunch: {kinds:?}");
    for relaunch in events.iter().filter(|e| e["kind"] == "relaunched") {
        // The gap covers the new process's 200 ms of loading.
        let gap = f(&relaunch["gap_s"]);
        assert!((0.2..10.0).contains(&gap), "{relaunch}");
        assert_eq!(relaunch["detail"], "ready via /health");
    }
    assert!(f(&events[1]["t_s"]) > f(&events[0]["t_s"]));

    // The run went on on the same port: most requests succeeded (the one in flight at a death fails).
    let step = &doc["steps"][0];
    let (requests, ok) = (step["requests"].as_u64().unwrap(), step["succeeded"].as_u64().unwrap());
    assert_eq!(requests, 16, "{step}");
    assert!(ok >= 10, "{ok} of {requests} succeeded: {step}");
    let log = std::fs::read_to_string(run.log()).unwrap();
    let port = launch["port"].as_u64().unwrap();
    assert_eq!(log.matches("starting: ").count() as u64, restarts + 1, "{log}");
    assert_eq!(log.matches(&format!("listening on http://127.0.0.1:{port}")).count() as u64, restarts + 1, "{log}");
    run.assert_server_gone();
}

// ---------------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------------

#[test]
fn memory_growth_per_request_is_measured() {
    let run = Run::new("grow");
    let o = run.bench(
        "--grow-mb-per-request 4 --loading-ms 150",
        &["--sample-interval", "20ms", "--prompt", "hi", "-n", "40"],
    );
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let doc = json(&run.out());
    assert_valid(&doc);
    let r = &doc["server"]["resources"];
    const MIB: f64 = 1024.0 * 1024.0;
    let slope = f(&r["growth_per_request"]["bytes_per_request"]);
    assert!((slope - 4.0 * MIB).abs() <= 0.25 * 4.0 * MIB, "{} MiB per request: {r}", slope / MIB);
    let first = f(&r["first_request_growth_bytes"]);
    assert!(first >= 3.0 * MIB, "the cold request kept {} MiB: {r}", first / MIB);
    // 41 requests × 4 MiB were kept (and touched) by the end.
    assert!(f(&r["rss_peak_bytes"]) >= 150.0 * MIB, "{r}");
    assert_eq!(r["processes_peak"], 1, "`sh -c exec` leaves only the server: {r}");
    run.assert_server_gone();
}

// ---------------------------------------------------------------------------------------------------------
// Input errors: nothing is launched
// ---------------------------------------------------------------------------------------------------------

#[test]
fn template_errors_exit_2_before_anything_is_launched() {
    let run = Run::new("template");
    let cases: [(Vec<String>, &str); 4] = [
        (run.args("-c {n_ctx}", &["--prompt", "hi"]), "add --param n_ctx=VALUE"),
        (run.args("", &["--param", "n_ctx=2048", "--prompt", "hi"]), "no {n_ctx} placeholder"),
        (run.args("", &["--url", "http://127.0.0.1:9", "--prompt", "hi"]), "cannot be used with"),
        (run.args("--tokens {n", &["--prompt", "hi"]), "unclosed '{'"),
    ];
    for (args, message) in cases {
        let o = velollm(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}:\n{stdout}\n{stderr}");
        assert!(stderr.contains(message), "{args:?}: expected '{message}' in:\n{stderr}");
        assert!(!stderr.contains("launching the server"), "{stderr}");
        assert!(!run.log().exists() && !run.out().exists(), "{args:?}: something was launched or written");
    }
    let o = velollm(&["bench", "--param", "n_ctx=1", "--prompt", "hi"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--launch"), "--param needs --launch: {}", text(&o).1);
    assert!(common::processes_with(&[&run.marker]).is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------------------------------------

#[test]
fn ctrl_c_stops_the_run_and_the_server() {
    let run = Run::new("ctrl-c");
    let mut child = run.spawn("--itl-ms 20", &["--prompt", "hi", "-d", "30s"]);
    // Running: the result document (with the server) exists and a few requests were measured.
    wait_until("the run to start", Duration::from_secs(20), || {
        try_json(&run.out()).is_some_and(|d| d.get("server").is_some())
            && std::fs::read_to_string(run.records()).map(|t| t.lines().count()).unwrap_or(0) >= 3
    });
    sigint(&child);
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: stopping"), "{stderr}");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "interrupted");
    assert!(doc["status_reason"].as_str().unwrap().contains("Ctrl-C"), "{}", doc["status_reason"]);
    assert!(doc["steps"][0]["succeeded"].as_u64().unwrap() >= 3, "{}", doc["steps"][0]);
    let launch = &doc["server"]["launch"];
    assert!(launch["stop"].as_str().is_some_and(|s| s.contains("SIGTERM")), "{launch}");
    run.assert_server_gone();
    assert!(!listening(launch["port"].as_u64().unwrap() as u16));
}

#[test]
fn second_ctrl_c_while_loading_kills_everything_at_once() {
    let run = Run::new("ctrl-c-twice");
    let mut child = run.spawn("--loading-ms 600000", &["--prompt", "hi", "-n", "3", "--launch-timeout", "60s"]);
    wait_until("the server to listen", Duration::from_secs(20), || {
        std::fs::read_to_string(run.log()).is_ok_and(|l| l.contains("fake server: listening"))
    });
    sigint(&child);
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    run.assert_server_gone();
}

#[test]
fn first_ctrl_c_while_loading_stops_at_once() {
    let run = Run::new("ctrl-c-loading");
    let mut child = run.spawn("--loading-ms 600000", &["--prompt", "hi", "-n", "3", "--launch-timeout", "10s"]);
    wait_until("the server to listen", Duration::from_secs(20), || {
        std::fs::read_to_string(run.log()).is_ok_and(|l| l.contains("fake server: listening"))
    });
    sigint(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    run.assert_server_gone();
}

#[test]
fn first_ctrl_c_during_the_cold_request_stops_at_once() {
    let run = Run::new("ctrl-c-cold");
    // The cold request takes 10 s (5000 tokens, 2 ms apart).
    let mut child = run.spawn("--tokens 5000 --itl-ms 2", &["--prompt", "hi", "-n", "3"]);
    wait_until("the server to be ready", Duration::from_secs(20), || run.stderr().contains("server ready on"));
    std::thread::sleep(Duration::from_millis(300));
    sigint(&child);
    let start = Instant::now();
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(start.elapsed() < Duration::from_secs(3), "Ctrl-C took {:?} to stop the run", start.elapsed());
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    run.assert_server_gone();
}

// ---------------------------------------------------------------------------------------------------------
// Metrics of a server velollm did not launch
// ---------------------------------------------------------------------------------------------------------

fn quick() -> Script {
    Script { ttft: Duration::from_millis(10), itl: Duration::from_millis(2), tokens: 5, ..Script::default() }
}

fn bench_args(url: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["bench", "--url", url, "--prompt", "hi", "-n", "4", "--no-progress", "-o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(path_arg(out));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_url_of_a_running_server_gives_step_metrics() {
    let server = FakeServer::start(Flavor::LlamaCpp, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let metrics = format!("{url}/metrics");

    let out = dir.path().join("scraped.json");
    let o = velollm_async(bench_args(&url, &out, &["--metrics-url", &metrics])).await;
    assert!(o.status.success(), "{}", text(&o).1);
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["server"]["metrics_url"].as_str(), Some(metrics.as_str()));
    assert!(doc["server"].get("launch").is_none() && doc["server"].get("cold_start").is_none());
    let sm = &doc["steps"][0]["server_metrics"];
    assert_eq!(sm["engine"], "llamacpp", "{sm}");
    assert_eq!(sm["generation_tokens"], 20.0, "4 requests × 5 tokens: {sm}");
    assert_eq!(sm["prompt_tokens"], 48.0, "4 requests × 12 prompt tokens: {sm}");
    assert!(sm["scrapes"].as_u64().unwrap() >= 2, "{sm}");
    assert_eq!(doc["server"]["metrics"]["generation_tokens"], 20.0, "{}", doc["server"]["metrics"]);

    let out = dir.path().join("unscraped.json");
    let o = velollm_async(bench_args(&url, &out, &["--no-metrics"])).await;
    assert!(o.status.success(), "{}", text(&o).1);
    let doc = json(&out);
    assert_valid(&doc);
    assert!(doc["steps"][0].get("server_metrics").is_none(), "{}", doc["steps"][0]);
    assert!(doc.get("server").is_none_or(|s| s.get("metrics_url").is_none() && s.get("metrics").is_none()), "{doc}");
    assert_eq!(server.request_count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_url_that_answers_404_is_a_note_not_a_failure() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let metrics = format!("{}/metrics", server.url());
    let o = velollm_async(bench_args(&server.url(), &out, &["--metrics-url", &metrics])).await;
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("note: no server metrics") && stderr.contains("answered 404"), "{stderr}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["steps"][0]["succeeded"], 4);
    assert!(doc["steps"][0].get("server_metrics").is_none(), "{}", doc["steps"][0]);
}
