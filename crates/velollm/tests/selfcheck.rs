//! `velollm selfcheck` and the self-check before every bench: the loopback server's stamps read back, the
//! figures stored in the result, a run made untrustworthy by the client's own overhead flagged, and the
//! loopback server served to other clients (`--serve`).

use crate::common;

use common::{assert_valid, command, json, text};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};
use velollm_testkit::{FakeServer, Flavor, Script};

fn levels(check: &serde_json::Value) -> &Vec<serde_json::Value> {
    check["levels"].as_array().expect("levels")
}

/// Causality: the server writes a chunk before the client can stamp its arrival, on the same clock, so no added
/// latency is negative; a stamp read against the wrong chunk would break this.
fn assert_causal(check: &serde_json::Value) {
    for l in levels(check) {
        for key in ["added_request_ms", "added_chunk_ms"] {
            let min = l[key]["min"].as_f64().unwrap_or_else(|| panic!("{key} in {l}"));
            assert!(min >= 0.0, "{key} min {min} < 0 at {l}");
        }
        assert_eq!(l["failed"], 0, "{l}");
        assert!(l["requests"].as_u64().unwrap() > 0, "{l}");
    }
}

#[test]
fn selfcheck_prints_every_level_and_writes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("check.json");
    let o = command()
        .args(["selfcheck", "--levels", "1,4", "--ceiling", "4", "--duration", "300ms", "--tokens", "8"])
        .args(["--ttft", "2ms", "--itl", "1ms", "--json", out.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    for row in ["paced c1", "paced c4", "ceiling c4", "ceiling:"] {
        assert!(stdout.contains(row), "{row} in\n{stdout}");
    }
    let check = json(&out);
    assert_eq!(levels(&check).len(), 3);
    assert_eq!(check["tokens"], 8);
    assert_causal(&check);
    let ceiling = &levels(&check)[2];
    assert_eq!(ceiling["ceiling"], true);
    assert!(check["max_request_rate"].as_f64().unwrap() >= ceiling["request_rate"].as_f64().unwrap());
    assert!(ceiling["cpu_ms_per_request"].as_f64().unwrap() > 0.0, "{ceiling}");
    // Each paced request lasts at least its injected 2 + 7 × 1 ms: the rate cannot exceed what that allows.
    let c1 = &levels(&check)[0];
    assert!(c1["request_rate"].as_f64().unwrap() < 1000.0 / 9.0, "{c1}");
}

#[test]
fn bad_selfcheck_options_are_input_errors() {
    for args in [&["selfcheck", "--tokens", "0"][..], &["selfcheck", "--levels", "0"], &["selfcheck", "--itl", "x"]] {
        let o = command().args(args).output().unwrap();
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error:"), "{stderr}");
    }
}

/// `bench` with its self-check; `env` is added to its environment.
async fn bench_with_selfcheck(script: Script, env: &'static [(&'static str, &'static str)]) -> serde_json::Value {
    let server = FakeServer::start(Flavor::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let url = server.url();
    let path = out.clone();
    let o = tokio::task::spawn_blocking(move || {
        command()
            .env_remove("VELOLLM_NO_SELFCHECK")
            .envs(env.iter().copied())
            .args(["bench", "--url", &url, "--prompt", "hi", "-n", "4", "--no-progress", "-o"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("self-check ("), "{stderr}");
    assert!(stdout.contains("client overhead · "), "{stdout}");
    let doc = json(&out);
    assert_valid(&doc);
    assert_eq!(doc["selfcheck"]["mode"], "quick");
    assert_causal(&doc["selfcheck"]);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_run_is_trustworthy() {
    // 100 ms between tokens: the quick self-check would have to find the client 5 ms late at p99 to flag it
    // (it can, on a machine this loaded: the chunks of its 2 ms levels then arrive together and are stamped
    // with the newest one's arrival).
    let script =
        Script { ttft: Duration::from_millis(300), itl: Duration::from_millis(100), tokens: 4, ..Script::default() };
    let doc = bench_with_selfcheck(script, &[]).await;
    let trust = &doc["trust"];
    assert_eq!(trust["trustworthy"], true, "{trust}");
    let step = &trust["steps"][0];
    assert!(step["ttft_share"].as_f64().unwrap() < 0.05, "{step}");
    assert_eq!(step["level"], 1, "a sequential step is judged at the least loaded level: {step}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_client_overhead_distorts_is_flagged() {
    // A server that answers at once, and chunks stamped when read (not at their kernel arrival): the
    // client's own tenths of a millisecond are then a visible share of a TTFT of about one millisecond.
    // (With kernel stamps the overhead is tens of microseconds, and the same run is trustworthy.)
    let script = Script { ttft: Duration::ZERO, itl: Duration::ZERO, tokens: 4, ..Script::default() };
    let doc = bench_with_selfcheck(script, &[("VELOLLM_USER_STAMPS", "1")]).await;
    let trust = &doc["trust"];
    assert_eq!(trust["trustworthy"], false, "{trust}");
    let reasons = trust["steps"][0]["reasons"].to_string();
    assert!(reasons.contains("of the median TTFT (limit 5.0 %)"), "{reasons}");

    // Comparing a flagged run says so.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flagged.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let o = command().arg("compare").arg(&path).arg(&path).output().unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("the client's own overhead is not negligible in"), "{stderr}");
}

#[test]
fn serve_runs_the_loopback_server_for_other_clients() {
    // Token by token, 1 ms apart; and with no delay, whole responses in one write.
    for extra in [&["--itl", "1ms"][..], &["--events-per-write", "64"]] {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut server = command()
            .args(["selfcheck", "--serve", &addr, "--tokens", "7"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !common::listening(port) {
            assert!(Instant::now() < deadline, "the loopback server did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run.json");
        // Chat and completions, streamed, with the token count of the request's max_tokens.
        for backend in ["openai-chat", "openai-completions"] {
            let o = command()
                .args(["bench", "--url", &format!("http://{addr}"), "--backend", backend, "--prompt", "hi", "-n", "3"])
                .args(["--max-tokens", "5", "--no-progress", "-o"])
                .arg(&out)
                .output()
                .unwrap();
            let (stdout, stderr) = text(&o);
            assert_eq!(o.status.code(), Some(0), "{extra:?} {backend}: {stdout}\n{stderr}");
            let doc = json(&out);
            let step = &doc["steps"][0];
            assert_eq!(step["succeeded"], 3, "{extra:?} {backend}: {step}");
            assert_eq!(step["metrics"]["output_tokens"]["max"], 5.0, "{extra:?} {backend}: {}", step["metrics"]);
            assert_eq!(step["token_sources"]["server_usage"], 3, "{extra:?} {backend}: {}", step["token_sources"]);
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

#[test]
fn events_per_write_needs_serve_and_at_least_one() {
    for args in [
        &["selfcheck", "--events-per-write", "8"][..],
        &["selfcheck", "--serve", "127.0.0.1:1", "--events-per-write", "0"],
    ] {
        let o = command().args(args).output().unwrap();
        let (_, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--events-per-write"), "{stderr}");
    }
}
