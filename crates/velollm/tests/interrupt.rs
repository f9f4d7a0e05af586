//! Nothing is lost: Ctrl-C, SIGTERM, a panic in a request task and a full disk each leave a result that
//! parses and says what happened, with every finished request in the records; `--resume` continues an
//! interrupted count-bounded run with the prompts an uninterrupted run would have sent.

use crate::common;

use common::{assert_valid, json, text};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use velollm_testkit::{FakeServer, Flavor, Script};

/// About 200 ms per request: a run of 20 at concurrency 2 lasts about two seconds.
fn slow() -> Script {
    Script { ttft: Duration::from_millis(60), itl: Duration::from_millis(25), tokens: 6, ..Script::default() }
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run { dir: tempfile::tempdir().unwrap() }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("run.json")
    }

    fn records(&self) -> PathBuf {
        self.dir.path().join("run.jsonl")
    }

    /// `bench --url URL --prompt-tokens 16 -n N -c 2 --no-progress -o run.json --records run.jsonl EXTRA…`.
    fn args(&self, url: &str, n: u32, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> =
            ["bench", "--url", url, "--prompt-tokens", "16", "--max-tokens", "6", "-c", "2"].map(String::from).to_vec();
        a.extend(["-n".into(), n.to_string(), "--no-progress".into(), "-o".into(), path(&self.out())]);
        a.extend(["--records".into(), path(&self.records())]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn spawn(&self, args: &[String], env: &[(&str, &str)]) -> Child {
        let mut c = common::command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("velollm starts")
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("temporary paths are UTF-8").to_string()
}

/// Every line of a records file, each of which must parse.
fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a records line does not parse ({e}): {l}")))
        .collect()
}

fn is_cancelled(r: &Value) -> bool {
    r["error"]["class"] == "cancelled"
}

async fn wait_for_records(path: &Path, n: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0) < n {
        assert!(start.elapsed() < Duration::from_secs(30), "fewer than {n} records appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success(), "kill -{name}");
}

async fn wait(child: Child) -> Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap()
}

async fn run_to_end(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || common::command().args(&args).output().unwrap()).await.unwrap()
}

/// The result parses and matches the schema; every finished request of the records is counted in it.
fn check_kept(run: &Run) -> Value {
    let doc = json(&run.out());
    assert_valid(&doc);
    let recs = records(&run.records());
    let finished = recs.iter().filter(|r| !is_cancelled(r) && r["warmup"] != true).count() as u64;
    let step = &doc["steps"][0];
    assert_eq!(step["requests"].as_u64(), Some(finished), "every finished request is counted: {step}");
    let cancelled = recs.iter().filter(|r| is_cancelled(r)).count() as u64;
    assert_eq!(step["errors"]["cancelled"]["count"].as_u64().unwrap_or(0), cancelled, "{step}");
    doc
}

async fn interrupted_by(name: &str, reason: &str) {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let child = run.spawn(&run.args(&server.url(), 200, &[]), &[]);
    wait_for_records(&run.records(), 5).await;
    signal(&child, name);
    let o = wait(child).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains(&format!("interrupted: stopping ({reason}")), "{stderr}");
    assert!(stdout.contains("Interrupted run"), "{stdout}");
    let doc = check_kept(&run);
    assert_eq!(doc["status"], "interrupted");
    assert!(doc["status_reason"].as_str().unwrap().contains(reason), "{}", doc["status_reason"]);
    assert_eq!(doc["steps"][0]["partial"], true);
    assert!(doc["steps"][0]["requests"].as_u64().unwrap() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_keeps_every_finished_request_and_names_the_signal() {
    interrupted_by("INT", "SIGINT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_every_finished_request_and_names_the_signal() {
    interrupted_by("TERM", "SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_quits_at_once_and_the_result_still_parses() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let child = run.spawn(&run.args(&server.url(), 200, &[]), &[]);
    wait_for_records(&run.records(), 3).await;
    signal(&child, "TERM");
    signal(&child, "INT");
    let o = wait(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", text(&o).1);
    // Whichever update was last, it is whole: `partial` (quit at once) or `interrupted` (stopped first).
    let doc = json(&run.out());
    assert_valid(&doc);
    assert!(doc["status"] == "partial" || doc["status"] == "interrupted", "{}", doc["status"]);
    let recs = records(&run.records());
    assert!(recs.len() >= 3);
    // The last update may predate the first step's progress; the records hold every finished request.
    let step = &doc["steps"][0];
    let finished = recs.iter().filter(|r| !is_cancelled(r)).count() as u64;
    assert!(
        step["requests"].as_u64().unwrap_or(0) <= finished,
        "the result never counts more than the records: {step}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_request_task_stops_the_run_as_an_internal_error() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let child = run.spawn(&run.args(&server.url(), 20, &[]), &[("VELOLLM_TEST_PANIC_AT", "6")]);
    let o = wait(child).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("internal error") && stderr.contains("please report"), "{stderr}");
    let doc = check_kept(&run);
    assert_eq!(doc["status"], "interrupted");
    let reason = doc["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("internal error:") && reason.contains("VELOLLM_TEST_PANIC_AT=6"), "{reason}");
    let step = &doc["steps"][0];
    assert_eq!(step["partial"], true);
    // The request that panicked is cancelled — never a server failure.
    let example = step["errors"]["cancelled"]["example"].as_str().unwrap_or_default();
    assert!(step["errors"]["cancelled"]["count"].as_u64().unwrap() >= 1, "{step}");
    assert!(step["failed"] == 0, "no request is blamed on the server: {step}");
    let recs = records(&run.records());
    let panicked: Vec<&Value> = recs.iter().filter(|r| r["index"] == 6).collect();
    assert_eq!(panicked.len(), 1, "{recs:?}");
    assert!(panicked[0]["error"]["message"].as_str().unwrap().contains("internal error"), "{example}");
    assert!(recs.len() < 20, "the run stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_naming_the_file_and_the_error() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let mut args = run.args(&server.url(), 20, &[]);
    let at = args.iter().position(|a| a == "--records").unwrap();
    args[at + 1] = "/dev/full".into();
    let started = Instant::now();
    let o = run_to_end(args).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/dev/full") && stderr.contains("No space left on device"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(3), "the run stopped at the first failed write");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "interrupted");
    let reason = doc["status_reason"].as_str().unwrap();
    assert!(reason.contains("/dev/full") && reason.contains("No space left"), "{reason}");
    assert!(doc["steps"][0]["requests"].as_u64().unwrap_or(0) < 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_result_file_is_an_error_and_a_device_is_never_replaced() {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full");
        return;
    }
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let mut args = run.args(&server.url(), 2, &[]);
    let at = args.iter().position(|a| a == "-o").unwrap();
    args[at + 1] = "/dev/full".into();
    let o = run_to_end(args).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write result file '/dev/full'") && stderr.contains("No space left"), "{stderr}");
    #[cfg(unix)]
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device(), "/dev/full was replaced");
}

/// The user prompt of a generation request the fake server received.
fn prompt(body: &Value) -> String {
    body["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_an_interrupted_run_with_the_same_prompts() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let child = run.spawn(&run.args(&server.url(), 20, &[]), &[]);
    wait_for_records(&run.records(), 8).await;
    signal(&child, "INT");
    let o = wait(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", text(&o).1);
    let first = json(&run.out());
    let measured = first["steps"][0]["requests"].as_u64().unwrap();
    assert!((8..20).contains(&measured), "{measured}");
    let cancelled = records(&run.records()).iter().filter(|r| is_cancelled(r)).count();
    let sent_first = server.request_count();

    let o = run_to_end(run.args(&server.url(), 20, &["--resume"])).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    assert!(!stdout.contains("Interrupted run"), "{stdout}");
    let doc = json(&run.out());
    assert_valid(&doc);
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["meta"]["run_id"], first["meta"]["run_id"], "the same run, continued");
    let step = &doc["steps"][0];
    assert_eq!(step["requests"], 20, "{step}");
    assert_eq!(step["succeeded"], 20, "{step}");
    assert_ne!(step["partial"], true);
    assert!(step["errors"].get("cancelled").is_none(), "the cancelled request was sent again: {step}");
    assert_eq!(step["samples"]["ttft_ms"].as_array().unwrap().len(), 20);
    // The records: one line per request of the step, indices 0..20 once each, ids unique.
    let recs = records(&run.records());
    assert_eq!(recs.len(), 20, "{recs:#?}");
    let indices: BTreeSet<u64> = recs.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..20).collect());
    let ids: HashSet<u64> = recs.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 20);
    // The server saw 20 distinct prompts: the cancelled ones again, the finished ones never twice. A request
    // cancelled by the interruption may not have reached the server yet, so it is seen at most twice.
    let sent = server.requests();
    assert!(
        (20..=20 + cancelled).contains(&sent.len()),
        "{} requests, {sent_first} before the interruption",
        sent.len()
    );
    let prompts: HashSet<String> = sent.iter().map(|(_, b)| prompt(b)).collect();
    assert_eq!(prompts.len(), 20, "the resumed requests carry the prompts of their indices");
    // The step's rate counts the time it ran, not the pause before the resume.
    let throughput = step["rates"]["request_throughput"].as_f64().unwrap_or_default();
    assert!(throughput > 2.0, "{}", step["rates"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_what_it_cannot_continue() {
    let server = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(5), ..slow() }).await;
    let url = server.url();
    let run = Run::new();
    let refused = |o: &Output, needle: &str| {
        let (_, stderr) = text(o);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--resume") && stderr.contains(needle), "expected '{needle}': {stderr}");
    };
    // No result file yet.
    refused(&run_to_end(run.args(&url, 4, &["--resume"])).await, "does not exist");
    // A complete run.
    assert!(run_to_end(run.args(&url, 4, &[])).await.status.success());
    refused(&run_to_end(run.args(&url, 4, &["--resume"])).await, "complete run");
    // An interrupted run resumed with another count or seed.
    let mut doc = json(&run.out());
    doc["status"] = "interrupted".into();
    std::fs::write(run.out(), serde_json::to_string(&doc).unwrap()).unwrap();
    refused(&run_to_end(run.args(&url, 5, &["--resume"])).await, "--requests differs");
    refused(&run_to_end(run.args(&url, 4, &["--resume", "--seed", "7"])).await, "--seed differs");
    // A run bounded by a duration.
    let timed = Run::new();
    let mut args = timed.args(&url, 4, &[]);
    let n = args.iter().position(|a| a == "-n").unwrap();
    args.splice(n..n + 2, ["--duration".to_string(), "1s".to_string()]);
    let o = run_to_end(args.clone()).await;
    assert!(o.status.success(), "{}", text(&o).1);
    let mut doc = json(&timed.out());
    doc["status"] = "partial".into();
    std::fs::write(timed.out(), serde_json::to_string(&doc).unwrap()).unwrap();
    args.push("--resume".into());
    refused(&run_to_end(args).await, "needs count-bounded steps");
    // A run without records.
    let bare = Run::new();
    let mut args = bare.args(&url, 4, &[]);
    let r = args.iter().position(|a| a == "--records").unwrap();
    args.drain(r..r + 2);
    assert!(run_to_end(args.clone()).await.status.success());
    let mut doc = json(&bare.out());
    doc["status"] = "partial".into();
    std::fs::write(bare.out(), serde_json::to_string(&doc).unwrap()).unwrap();
    args.push("--resume".into());
    refused(&run_to_end(args).await, "wrote no records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_drops_a_records_line_cut_short() {
    let server = FakeServer::start(Flavor::OpenAi, slow()).await;
    let run = Run::new();
    let child = run.spawn(&run.args(&server.url(), 12, &[]), &[]);
    wait_for_records(&run.records(), 4).await;
    signal(&child, "INT");
    assert_eq!(wait(child).await.status.code(), Some(130));
    // A crash mid-line: the last record is cut in half.
    let text_before = std::fs::read_to_string(run.records()).unwrap();
    let cut = &text_before[..text_before.trim_end().len() - 10];
    std::fs::write(run.records(), cut).unwrap();
    let o = run_to_end(run.args(&server.url(), 12, &["--resume"])).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    let doc = json(&run.out());
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["steps"][0]["requests"], 12);
    let recs = records(&run.records());
    let indices: BTreeSet<u64> = recs.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!((recs.len(), indices), (12, (0..12).collect()));
}
