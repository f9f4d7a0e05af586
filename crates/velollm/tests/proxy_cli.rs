//! `velollm proxy` as a user runs it: flags, a configuration file, a clear error for a bad one, and a clean
//! drain on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::Duration;

use velollm_testkit::{FakeServer, Flavor, Script};

fn velollm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_velollm"))
}

/// `velollm proxy --config FILE ARGS…` started, with the address its first line names and its stderr.
fn spawn_proxy(file: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Child, BufReader<ChildStderr>, String) {
    let mut command = velollm();
    command.args(["proxy", "--config"]).arg(file).args(args).stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    (child, stderr, addr)
}

/// One HTTP/1.1 request on a new connection; the whole response as text.
fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("the proxy accepts");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn the_proxy_serves_caches_and_drains_on_sigterm() {
    let fake = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"fake\"\nurl = \"{}\"\n[cache]\nttl = \"10m\"\n",
            fake.url()
        ),
    )
    .unwrap();
    let (child, mut stderr, addr) = spawn_proxy(&file, &["--alias", "fast=fake-model", "--workers", "1"], &[]);
    // One runtime thread serves (Linux names them; a thread names itself once it runs, so wait a moment).
    let workers = || {
        std::fs::read_dir(format!("/proc/{}/task", child.id())).ok().map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "tokio-rt-worker")
                .count()
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while workers().is_some_and(|n| n == 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Some(workers) = workers() {
        assert_eq!(workers, 1, "--workers 1");
    }

    let body = r#"{"model":"fast","temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-cli-secret\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let addr_owned = addr.clone();
    let first = tokio::task::spawn_blocking(move || http(&addr_owned, &request)).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("x-velollm-cache: miss"), "{first}");
    let request2 = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-cli-secret\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let addr_owned = addr.clone();
    let second = tokio::task::spawn_blocking(move || http(&addr_owned, &request2)).await.unwrap();
    assert!(second.contains("x-velollm-cache: hit"), "{second}");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(fake.requests()[0].1["model"], "fake-model", "the alias was resolved");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut child = child;
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("SIGTERM: draining"), "{rest}");
    assert!(!rest.contains("sk-cli-secret"), "the key never reaches the log");
}

#[test]
fn a_bad_configuration_names_the_fix_and_exits_2() {
    let out = velollm().args(["proxy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --upstream URL"));
    let out = velollm().args(["proxy", "--upstream", "ftp://x", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use http://HOST:PORT"));
    let out = velollm().args(["proxy", "--upstream", "http://127.0.0.1:1", "--cache-ttl", "soon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = velollm().args(["proxy", "--upstream", "http://127.0.0.1:1", "--workers", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "[cache]\nstore = 3\n").unwrap();
    let out = velollm().args(["proxy", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("p.toml"), "{}", String::from_utf8_lossy(&out.stderr));
    // A bound on wrong answers outside (0, 1), and a store URL that is neither, name the fix; a password in
    // the URL is never printed.
    let out = velollm().args(["proxy", "--upstream", "http://127.0.0.1:1", "--semantic-delta", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("e.g. 0.02"), "{}", String::from_utf8_lossy(&out.stderr));
    let store = "mysql://u:hunter2@db/x";
    let out =
        velollm().args(["proxy", "--upstream", "http://127.0.0.1:1", "--semantic-store", store]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("postgres://") && err.contains("u:****@db") && !err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn the_proxy_sends_its_own_key_to_an_https_upstream_and_never_logs_it() {
    let script = Script { api_key: Some("sk-upstream-key".into()), ..Script::default() };
    let (fake, pem) = FakeServer::start_tls(Flavor::OpenAi, script).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"cloud\"\nurl = \"{}\"\nca_cert = \"{}\"\napi_key_env = \"UPSTREAM_KEY\"\n",
            fake.url(),
            ca.display()
        ),
    )
    .unwrap();
    let (child, mut stderr, addr) = spawn_proxy(&file, &[], &[("UPSTREAM_KEY", "sk-upstream-key")]);
    let body = r#"{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer caller-key\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = tokio::task::spawn_blocking(move || http(&addr, &request)).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let sent = fake.request_headers();
    assert!(sent[0].iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-upstream-key"), "{sent:?}");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut child = child;
    let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("sk-upstream-key"), "the key never reaches the log");

    // A key variable that is not set is refused at start, by name.
    let out = velollm().args(["proxy", "--config"]).arg(&file).env_remove("UPSTREAM_KEY").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UPSTREAM_KEY, which is not set"));
}

#[tokio::test]
async fn bench_through_the_proxy_counts_its_hits_from_the_header() {
    let fake = FakeServer::start(Flavor::OpenAi, Script { ttft: Duration::from_millis(30), ..Script::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!("listen = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"fake\"\nurl = \"{}\"\n", fake.url()),
    )
    .unwrap();
    let (mut child, _stderr, addr) = spawn_proxy(&file, &[], &[]);
    let out = dir.path().join("run.json");
    let args = ["bench", "--url", &format!("http://{addr}"), "--prompt", "hi", "--temperature", "0"];
    let o = tokio::task::spawn_blocking({
        let out = out.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        move || velollm().args(&args).args(["--iterations", "6", "--no-selfcheck", "-o"]).arg(&out).output().unwrap()
    })
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let p = &doc["steps"][0]["proxy_cache"];
    assert_eq!((p["hits"].as_u64(), p["others"].as_u64()), (Some(5), Some(1)), "{p}");
    assert!(p["ttft_hit_ms"].as_f64().unwrap() < p["ttft_other_ms"].as_f64().unwrap(), "{p}");
    assert!(stdout.contains("proxy cache (as its header says): 5 hit, 1 other"), "{stdout}");
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn tiers_tasks_and_hedging_from_flags() {
    let quick = |model: &str| Script { model: model.into(), ttft: Duration::from_millis(5), ..Script::default() };
    let small = FakeServer::start(Flavor::OpenAi, quick("small-m")).await;
    let large = FakeServer::start(Flavor::OpenAi, quick("large-m")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n").unwrap();
    let (local, cloud) = (format!("local={}", small.url()), format!("cloud={}", large.url()));
    let flags = [
        "--upstream",
        &local,
        "--upstream",
        &cloud,
        "--tier",
        "small=local:small-m",
        "--tier",
        "large=cloud:large-m",
        "--route-task",
        "linting=small",
        "--hedge",
        "2s",
    ];
    let (child, mut stderr, addr) = spawn_proxy(&file, &flags, &[]);
    // Killed however the test ends: a proxy left running would hold the harness's output open.
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
        }
    }
    let _child = Killed(child);
    let mut banner = String::new();
    while !banner.contains("hedging:") && stderr.read_line(&mut banner).unwrap() > 0 {}
    assert!(banner.contains("routing: model \"auto\" to small=local:small-m, large=cloud:large-m"), "{banner}");
    assert!(banner.contains("hedging: after 2s, 2 branches, extra ones to the same upstream"), "{banner}");
    let body = r#"{"model":"auto","stream":false,"messages":[{"role":"user","content":"lint this"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-velollm-task: linting\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = tokio::task::spawn_blocking(move || http(&addr, &request)).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("x-velollm-route: tier=small; reason=header; task=linting"), "{response}");
    assert!(response.contains("x-velollm-hedge: branches=1; winner=0; after_ms=2000.0"), "{response}");
    assert_eq!(small.requests()[0].1["model"], "small-m");
    // A tier spec or a task that cannot be used is refused at start, by name.
    for (flags, message) in [
        (vec!["--upstream", "http://127.0.0.1:1", "--tier", "small"], "--tier takes NAME=UPSTREAM[:MODEL]"),
        (vec!["--upstream", "a=http://127.0.0.1:1", "--tier", "small=b"], "no upstream is named \"b\""),
        (vec!["--upstream", "a=http://127.0.0.1:1", "--tier", "s=a", "--route-task", "poetry=s"], "unknown task type"),
        (vec!["--upstream", "http://127.0.0.1:1", "--hedge", "soon"], "use p95 or a time such as 250ms"),
    ] {
        let out = velollm().args(["proxy", "--listen", "127.0.0.1:0"]).args(&flags).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
}
