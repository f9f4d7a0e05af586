//! Secrets never leave velollm: a known API key, given through --api-key-env, in the URL's userinfo and
//! query, and repeated in a --launch command, appears in no output — standard output and error, results,
//! records, server logs, reports, comparisons, the history database — whether the run succeeds, is refused
//! (401) or talks to a server that echoes the request's headers in its error messages.

use crate::common;

use common::{fake_server_bin, text, unique_marker};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

const KEY: &str = "sk-velollm-SECRET-1234567890";
const VAR: &str = "VELOLLM_TEST_SECRET_KEY";

fn quick() -> Script {
    Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 4, ..Script::default() }
}

/// Everything a test wrote and printed, searched for the key.
struct Outputs {
    dir: tempfile::TempDir,
    printed: Vec<(String, String)>,
}

impl Outputs {
    fn new() -> Outputs {
        Outputs { dir: tempfile::tempdir().unwrap(), printed: Vec::new() }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// Run `velollm ARGS` with the key in the environment and a history database in the folder.
    async fn velollm(&mut self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let db = self.dir.path().join("history.db");
        let o = tokio::task::spawn_blocking(move || {
            common::command().args(&args).env(VAR, KEY).env("VELOLLM_DB", db).env_remove("VELOLLM_NO_HISTORY").output()
        })
        .await
        .unwrap()
        .unwrap();
        let (stdout, stderr) = text(&o);
        self.printed.push((stdout, stderr));
        o
    }

    /// No output, and no file under the folder, contains the key or a bearer token.
    fn assert_clean(&self) {
        let mut files = Vec::new();
        walk(self.dir.path(), &mut files);
        let mut searched: Vec<(String, String)> = self
            .printed
            .iter()
            .flat_map(|(o, e)| [("stdout".into(), o.clone()), ("stderr".into(), e.clone())])
            .collect();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            searched.push((f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
        for (name, content) in &searched {
            assert!(!content.contains(KEY), "the key leaked into {name}:\n{content}");
            assert!(!content.contains("Bearer sk-"), "a bearer token leaked into {name}:\n{content}");
            assert!(!content.contains("SECRET-12345"), "part of the key leaked into {name}:\n{content}");
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_key_appears_in_no_output() {
    let server = FakeServer::start(Flavor::OpenAi, Script { api_key: Some(KEY.into()), ..quick() }).await;
    let mut o = Outputs::new();
    // The key in the URL's userinfo and query, and as the API key.
    let url = server.url().replace("http://", &format!("http://user:{KEY}@")) + &format!("/v1?api_key={KEY}");
    let (a, b) = (o.path("a.json"), o.path("b.json"));
    let records = o.path("a.jsonl");
    let run = o
        .velollm(&[
            "bench",
            "--url",
            &url,
            "--api-key-env",
            VAR,
            "--prompt",
            "hi",
            "-n",
            "3",
            "--keep-text",
            "--no-progress",
            "-o",
            &a,
            "--records",
            &records,
        ])
        .await;
    assert!(run.status.success(), "{}", text(&run).1);
    assert_eq!(server.request_headers().len(), 3);
    assert!(server.request_headers().iter().all(|h| h.iter().any(|(k, v)| k == "authorization" && v.contains(KEY))));
    // The `--flag=value` form of the URL.
    let run = o
        .velollm(&[
            "bench",
            &format!("--url={url}"),
            "--api-key-env",
            VAR,
            "--prompt",
            "hi",
            "-n",
            "2",
            "--no-progress",
            "-o",
            &b,
        ])
        .await;
    assert!(run.status.success(), "{}", text(&run).1);
    let (md, html, csv, rcsv) = (o.path("r.md"), o.path("r.html"), o.path("r.csv"), o.path("records.csv"));
    let report = o.velollm(&["report", &a, "--md", &md, "--html", &html, "--csv", &csv, "--records-csv", &rcsv]).await;
    assert!(report.status.success(), "{}", text(&report).1);
    let compare = o.velollm(&["compare", &a, &b]).await;
    assert!(compare.status.code().is_some(), "{}", text(&compare).1);
    let history = o.velollm(&["history"]).await;
    assert!(history.status.success(), "{}", text(&history).1);
    assert!(Path::new(&o.path("history.db")).exists(), "the runs were indexed");
    let doc = common::json(Path::new(&b));
    assert!(doc["meta"]["command"].to_string().contains("--url=http://127.0.0.1"), "{}", doc["meta"]["command"]);
    o.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_not_repeated_in_errors() {
    let server = FakeServer::start(Flavor::OpenAi, Script { api_key: Some("sk-another-key".into()), ..quick() }).await;
    let mut o = Outputs::new();
    let (out, records) = (o.path("run.json"), o.path("run.jsonl"));
    let run = o
        .velollm(&[
            "bench",
            "--url",
            &server.url(),
            "--api-key-env",
            VAR,
            "--prompt",
            "hi",
            "-n",
            "2",
            "--no-progress",
            "-o",
            &out,
            "--records",
            &records,
        ])
        .await;
    let (_, stderr) = text(&run);
    assert_eq!(run.status.code(), Some(5), "{stderr}");
    let doc = common::json(Path::new(&out));
    assert_eq!(doc["steps"][0]["errors"]["http_4xx"]["count"], 2, "{}", doc["steps"][0]["errors"]);
    o.assert_clean();
}

/// A server that answers every request with `status` and a JSON error whose message is the request's head
/// (its headers included), as some proxies and debug servers do.
async fn echo_server(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::task::spawn_blocking(move || {
                let mut stream = stream.into_std().unwrap();
                stream.set_nonblocking(false).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).split("\r\n\r\n").next().unwrap_or_default().to_string();
                let body = serde_json::json!({"error": {"message": format!("bad request: {head}")}}).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Echo\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_echoes_the_headers_does_not_leak_the_key() {
    for (status, backend) in [(400, "openai-chat"), (500, "auto")] {
        let (url, task) = echo_server(status).await;
        let mut o = Outputs::new();
        let (out, records) = (o.path("run.json"), o.path("run.jsonl"));
        let run = o
            .velollm(&[
                "bench",
                "--url",
                &url,
                "--backend",
                backend,
                "--model",
                "m",
                "--api-key-env",
                VAR,
                "--prompt",
                "hi",
                "-n",
                "2",
                "--no-progress",
                "-o",
                &out,
                "--records",
                &records,
            ])
            .await;
        let (_, stderr) = text(&run);
        assert_ne!(run.status.code(), Some(0), "{stderr}");
        if backend != "auto" {
            // The error reached the result, redacted.
            let written = std::fs::read_to_string(&records).unwrap();
            assert!(written.contains("[REDACTED]"), "{written}");
        }
        o.assert_clean();
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_command_that_repeats_the_key_is_redacted() {
    let mut o = Outputs::new();
    let marker = unique_marker("secrets");
    // The key on the server's command line, as `llama-server --api-key KEY` would have it.
    let launch = format!("'{}' --port {{port}} --flavor openai --tag {marker}-{KEY}", fake_server_bin().display());
    let (out, records, log) = (o.path("run.json"), o.path("run.jsonl"), o.path("server.log"));
    let run = o
        .velollm(&[
            "bench",
            "--launch",
            &launch,
            "--server-log",
            &log,
            "--api-key-env",
            VAR,
            "--prompt",
            "hi",
            "-n",
            "2",
            "--no-progress",
            "-o",
            &out,
            "--records",
            &records,
        ])
        .await;
    assert!(run.status.success(), "{}", text(&run).1);
    let doc = common::json(Path::new(&out));
    let command = doc["server"]["launch"]["command"].as_str().unwrap();
    assert!(command.contains(&marker) && command.contains("[REDACTED]"), "{command}");
    o.assert_clean();
    common::assert_no_process(&[&marker], Duration::from_secs(2));
}
