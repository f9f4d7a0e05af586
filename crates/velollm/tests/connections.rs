//! The `connections` scenario end to end through the real `velollm` binary: keep-alive vs a new connection
//! per request vs a full TLS handshake per request vs one HTTP/2 connection vs WebSocket sessions, against
//! the in-process https fake (a certificate issued at start, trusted with `--ca-cert`), the h2c fake,
//! `velollm proxy` (the WebSocket sessions) and the real llama-server.
//!
//! Connection counts, protocols and handshake kinds are exact; timings are only checked to exist and be
//! positive (the fake is on the loopback, where a connection costs well under a millisecond).

use crate::common;

use common::{server_url, text, velollm_async};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script, TlsOptions};

/// Small fake timings: each request takes a few milliseconds.
fn quick() -> Script {
    Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 4, ..Script::default() }
}

type Run = common::Ran;

/// The thresholds of a run's verdicts, in order.
fn verdict_thresholds(run: &Run) -> Vec<String> {
    run.verdicts().into_iter().map(|v| v.0).collect()
}

fn figure(a: &Value, name: &str) -> Option<f64> {
    a["figures"].as_array()?.iter().find(|f| f["name"] == name).and_then(|f| f["value"].as_f64())
}

fn notes(a: &Value) -> Vec<String> {
    a["notes"].as_array().map_or(vec![], |n| n.iter().map(|n| n.as_str().unwrap().to_string()).collect())
}

/// Write the fake's CA certificate to a file for `--ca-cert`.
fn ca_file(dir: &Path, pem: &str) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// `velollm bench --url URL --no-progress -o run.json --records run.jsonl ARGS…`, trusting `pem` as a CA.
async fn bench(url: &str, args: &[&str], pem: Option<&str>) -> Run {
    let mut b = common::Bench::new(url);
    if let Some(pem) = pem {
        let ca = ca_file(b.dir(), pem);
        b = b.args(&["--ca-cert", ca.to_str().unwrap()]);
    }
    b.args(args).run().await
}

fn connection(r: &Value) -> &Value {
    &r["connection"]
}

fn distinct_connections(records: &[&Value]) -> usize {
    records.iter().map(|r| connection(r)["id"].as_u64().unwrap()).collect::<BTreeSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_keep_alive_new_full_tls_and_http2() {
    let (server, pem) = FakeServer::start_tls(Flavor::OpenAi, quick()).await;
    let run = bench(
        &server.url(),
        &["--scenario", "connections", "--http2", "--concurrency", "4", "--iterations", "3"],
        Some(&pem),
    )
    .await
    .ok();
    assert_eq!(run.step_names(), ["keep_alive", "new_connection", "new_connection_full_tls", "http2"]);
    for name in run.step_names() {
        assert_eq!(run.step(name)["succeeded"], 12, "{name}: {}", run.step(name));
    }

    // Keep-alive: one HTTP/1.1 connection per worker, every later request reuses it.
    assert_eq!(run.step("keep_alive")["connections"], serde_json::json!({"opened": 4, "reused": 8}));
    let keep = run.records_of("keep_alive");
    assert_eq!(distinct_connections(&keep), 4);
    for r in &keep {
        let c = connection(r);
        assert_eq!(c["protocol"], "http/1.1", "{r}");
        if c["reused"] == false {
            assert!(c["tls_ns"].as_u64().unwrap() > 0 && c["tls_resumed"].is_boolean(), "{r}");
        } else {
            assert!(c.get("tls_ns").is_none() && c.get("tls_resumed").is_none(), "{r}");
        }
    }

    // A new connection per request: TLS every time, resuming the sessions of earlier connections.
    assert_eq!(run.step("new_connection")["connections"], serde_json::json!({"opened": 12, "reused": 0}));
    let new = run.records_of("new_connection");
    assert_eq!(distinct_connections(&new), 12);
    assert!(new.iter().all(|r| connection(r)["tls_ns"].as_u64().unwrap() > 0), "{new:#?}");
    let resumed = new.iter().filter(|r| connection(r)["tls_resumed"] == true).count();
    assert!(resumed > 0, "no handshake resumed a session: {new:#?}");

    // Resumption off: a full handshake every time.
    assert_eq!(run.step("new_connection_full_tls")["connections"], serde_json::json!({"opened": 12, "reused": 0}));
    let full = run.records_of("new_connection_full_tls");
    assert!(full.iter().all(|r| connection(r)["tls_resumed"] == false), "{full:#?}");

    // HTTP/2: one connection for the whole step, its four workers' requests multiplexed on it.
    assert_eq!(run.step("http2")["connections"], serde_json::json!({"opened": 1, "reused": 11}));
    let h2 = run.records_of("http2");
    assert_eq!(distinct_connections(&h2), 1);
    assert!(h2.iter().all(|r| connection(r)["protocol"] == "h2"), "{h2:#?}");

    let a = run.analysis("connections");
    for name in [
        "network_overhead_reduction",
        "ttft_improvement",
        "h2_network_overhead_reduction",
        "h2_ttft_improvement",
        "tls_resumed_share",
        "tls_resumption_saving_ms",
    ] {
        assert!(figure(a, name).is_some(), "no figure {name}: {a:#}");
    }
    assert_eq!(figure(a, "tls_resumed_share"), Some(resumed as f64 / 12.0 * 100.0));
    // Persistent connections open 4 (keep-alive) or 1 (HTTP/2) connections for 12 requests: most of the
    // per-request overhead is gone. How much is a timing, not asserted here: keep-alive runs first, so its four
    // handshakes are full ones while the new connections resume theirs (24.5 % under a busy CI, above 50 %
    // on a quiet machine); one HTTP/2 connection against twelve leaves room whatever the load.
    assert!(figure(a, "network_overhead_reduction").unwrap() > 0.0, "{a:#}");
    assert!(figure(a, "h2_network_overhead_reduction").unwrap() > 30.0, "{a:#}");
    assert!(notes(a).iter().any(|n| n.contains("12 requests over HTTP/2 on 1 connection")), "{a:#}");
    let rows: Vec<&str> = a["table"]["rows"].as_array().unwrap().iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(rows, ["new_connection", "keep_alive", "new_connection_full_tls", "http2"]);

    // The seed criteria as thresholds, each printed with its mark.
    let thresholds = [
        "network_overhead_reduction > 30%",
        "ttft_improvement > 20%",
        "h2_network_overhead_reduction > 30%",
        "h2_ttft_improvement > 20%",
    ];
    assert_eq!(verdict_thresholds(&run), thresholds);
    for t in thresholds {
        assert!(run.stdout.lines().any(|l| l.contains(t) && (l.contains('✅') || l.contains('❌'))), "{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_naming_ca_cert() {
    let (server, _pem) = FakeServer::start_tls(Flavor::OpenAi, quick()).await;
    let run = bench(&server.url(), &["--scenario", "connections", "--iterations", "1"], None).await;
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stderr.contains("certificate") && run.stderr.contains("--ca-cert FILE"), "{}", run.stderr);
    assert_eq!(server.request_count(), 0);

    // A file with no certificate in it is an input error.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let args = ["bench", "--url", &server.url(), "--ca-cert", bad.to_str().unwrap(), "--no-progress"];
    let o = velollm_async(args.iter().map(|s| s.to_string()).collect()).await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca-cert") && stderr.contains("holds no certificate"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_skips_the_tls_and_http2_steps_with_notes() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server.url(), &["--scenario", "connections", "--iterations", "3"], None).await.ok();
    assert_eq!(run.step_names(), ["keep_alive", "new_connection"]);
    assert!(
        run.stderr.contains("step 'new_connection_full_tls' (new-no-resume) skipped")
            && run.stderr.contains("needs an https:// target"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("step 'http2' (http2) skipped") && run.stderr.contains("add --http2"),
        "{}",
        run.stderr
    );
    // The thresholds on HTTP/2 figures are not evaluated when no HTTP/2 step ran.
    assert_eq!(verdict_thresholds(&run), ["network_overhead_reduction > 30%", "ttft_improvement > 20%"]);
    let a = run.analysis("connections");
    assert!(figure(a, "network_overhead_reduction").is_some(), "{a:#}");
    assert!(figure(a, "tls_resumed_share").is_none(), "plain http has no TLS: {a:#}");
    let n = notes(a);
    assert!(n.iter().any(|n| n.contains("step 'http2' did not run")), "{n:?}");
    for r in run.records_of("new_connection") {
        let c = connection(r);
        assert!(c.get("tls_ns").is_none() && c.get("tls_resumed").is_none() && c["protocol"] == "http/1.1", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_flag_runs_every_step_of_another_workload_over_h2c() {
    let server = FakeServer::start_h2c(Flavor::OpenAi, quick()).await;
    let run =
        bench(&server.url(), &["--prompt", "Say hello.", "-n", "6", "--concurrency", "3", "--http2"], None).await.ok();
    assert!(run.stderr.contains("--http2: every step shares one HTTP/2 connection"), "{}", run.stderr);
    let step = &run.doc["steps"][0];
    assert_eq!(step["succeeded"], 6);
    assert_eq!(step["connections"], serde_json::json!({"opened": 1, "reused": 5}));
    let records: Vec<&Value> = run.records.iter().collect();
    assert_eq!(distinct_connections(&records), 1);
    assert!(records.iter().all(|r| connection(r)["protocol"] == "h2"), "{records:#?}");
    assert_eq!(server.request_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_falls_back_to_http1_when_the_server_does_not_offer_h2() {
    let (server, pem) = FakeServer::start_tls_with(Flavor::OpenAi, quick(), TlsOptions { h2: false }).await;
    let run = bench(
        &server.url(),
        &["--scenario", "connections", "--http2", "--concurrency", "2", "--iterations", "2"],
        Some(&pem),
    )
    .await
    .ok();
    let h2 = run.records_of("http2");
    assert!(h2.iter().all(|r| connection(r)["protocol"] == "http/1.1"), "{h2:#?}");
    // ALPN chose HTTP/1.1: each worker keeps its own connection.
    assert_eq!(run.step("http2")["connections"], serde_json::json!({"opened": 2, "reused": 2}));
    let a = run.analysis("connections");
    assert!(notes(a).iter().any(|n| n.contains("did not offer HTTP/2")), "{a:#}");
}

/// llama-server (plain http) closes the connection after every streamed response: keep-alive cannot help,
/// and the analysis says so instead of claiming a reduction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_closes_every_connection() {
    let Some((url, _real)) = server_url() else { return };
    let run = bench(&url, &["--scenario", "connections", "--iterations", "3"], None).await.ok();
    assert_eq!(run.step_names(), ["keep_alive", "new_connection"]);
    assert_eq!(run.step("keep_alive")["connections"], serde_json::json!({"opened": 3, "reused": 0}));
    let a = run.analysis("connections");
    assert!(
        notes(a).iter().any(|n| n.contains("the server closed every connection")
            && n.contains("step 'keep_alive' opened 3 connections for 3 requests, 0 reused")),
        "{a:#}"
    );
    assert!(figure(a, "network_overhead_reduction").is_none() && figure(a, "ttft_improvement").is_none(), "{a:#}");
    assert!(run.stdout.contains("network_overhead_reduction > 30%"), "{}", run.stdout);
}

/// `velollm proxy --listen 127.0.0.1:0 --upstream URL --cache off`, killed when dropped.
struct Proxy {
    child: std::process::Child,
    url: String,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let (child, addr) = common::spawn_velollm_proxy(&["--upstream", upstream, "--cache", "off"]);
        Proxy { child, url: format!("http://{addr}") }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_through_velollm_proxy() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let proxy = Proxy::start(&server.url());
    let args = ["--scenario", "connections", "--websocket", "--concurrency", "2", "--iterations", "3"];
    let run = bench(&proxy.url, &args, None).await.ok();
    assert_eq!(run.step_names(), ["keep_alive", "new_connection", "websocket"]);
    // One session per worker, every later request a message on it.
    assert_eq!(run.step("websocket")["succeeded"], 6, "{}", run.step("websocket"));
    assert_eq!(run.step("websocket")["connections"], serde_json::json!({"opened": 2, "reused": 4}));
    let ws = run.records_of("websocket");
    assert_eq!(distinct_connections(&ws), 2);
    for r in &ws {
        let c = connection(r);
        assert_eq!(c["protocol"], "websocket", "{r}");
        assert_eq!(c["upgrade_ns"].as_u64().is_some_and(|t| t > 0), c["reused"] == false, "{r}");
        // Events and bytes per channel (how they group into arrivals depends on timing).
        let chunks = |r: &Value| {
            let mut by = std::collections::BTreeMap::<String, (u64, u64)>::new();
            for c in r["chunks"].as_array().unwrap() {
                let e = by.entry(c["channel"].as_str().unwrap().to_string()).or_default();
                (e.0, e.1) = (e.0 + c["events"].as_u64().unwrap(), e.1 + c["bytes"].as_u64().unwrap());
            }
            by
        };
        let over_http = run.records_of("keep_alive")[0];
        assert_eq!(r["finish_reason"], over_http["finish_reason"], "{r}");
        assert_eq!(chunks(r), chunks(over_http), "the same events as over HTTP: {r}");
    }
    assert_eq!(server.request_count(), 18, "every request reached the upstream");
    let a = run.analysis("connections");
    // A session's set-up (TCP + the upgrade round trip) is paid once per worker; how it compares with a new
    // TCP connection per request depends on the machine, so only its presence is checked here.
    assert!(figure(a, "ws_network_overhead_reduction").is_some(), "{a:#}");
    assert!(figure(a, "ws_ttft_improvement").is_some(), "{a:#}");
    assert!(notes(a).iter().any(|n| n.contains("6 requests over 2 WebSocket sessions")), "{a:#}");
    let thresholds = verdict_thresholds(&run);
    assert!(thresholds.iter().any(|t| t == "ws_network_overhead_reduction > 30%"), "{thresholds:?}");
    assert!(!thresholds.iter().any(|t| t.starts_with("h2_")), "no HTTP/2 step ran: {thresholds:?}");
}

/// Each dialect's stream comes back over a session as it does over HTTP: SSE events (OpenAI, Anthropic,
/// llama.cpp) and NDJSON lines (Ollama), each ended by the dialect's own marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_sessions_carry_every_dialect() {
    for (flavor, backend) in [
        (Flavor::Ollama, "ollama-chat"),
        (Flavor::Ollama, "ollama-generate"),
        (Flavor::Anthropic, "anthropic"),
        (Flavor::LlamaCpp, "llamacpp"),
        (Flavor::OpenAi, "openai-completions"),
    ] {
        let server = FakeServer::start(flavor, quick()).await;
        let proxy = Proxy::start(&server.url());
        let args = ["--websocket", "--backend", backend, "--model", "fake-model", "--prompt", "hi", "-n", "3"];
        let run = bench(&proxy.url, &args, None).await.ok();
        assert!(run.stderr.contains("--websocket: every step runs over one WebSocket session"), "{}", run.stderr);
        assert_eq!(run.doc["steps"][0]["succeeded"], 3, "{backend}: {}", run.doc["steps"][0]);
        assert_eq!(run.doc["steps"][0]["connections"], serde_json::json!({"opened": 1, "reused": 2}), "{backend}");
        assert!(run.records.iter().all(|r| connection(r)["protocol"] == "websocket"), "{backend}");
        assert_eq!(server.request_count(), 3, "{backend}");
    }
}

/// A server that offers no WebSocket session: every request fails with a message that names the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_against_a_plain_server_says_what_is_needed() {
    let server = FakeServer::start(Flavor::OpenAi, quick()).await;
    let run = bench(&server.url(), &["--websocket", "--prompt", "hi", "-n", "2"], None).await;
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    let all = format!("{}{}{}", run.stdout, run.stderr, run.doc);
    assert!(all.contains("did not open a WebSocket session") && all.contains("velollm proxy"), "{all}");
    assert_eq!(server.request_count(), 0, "no generation was sent");
}
