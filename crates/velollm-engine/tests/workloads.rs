//! Workload sources end to end in the engine: synthetic lengths calibrated with a server's `/tokenize`
//! (a hand-written stand-in with a known tokenizer), dataset sessions and shared-prefix groups recorded by
//! the runner.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use velollm_core::document::scenario::{DistKind, LengthDist, SharedPrefix, Turn, Workload};
use velollm_core::measure::record::RequestRecord;
use velollm_core::workload::load::{Bounds, LoadProfile};
use velollm_engine::dialect::DialectKind;
use velollm_engine::plan::StepPlan;
use velollm_engine::prompts::{PromptSource, server_lengths};
use velollm_engine::runner::Observer;
use velollm_engine::target::Target;
use velollm_engine::transport::{Clock, Endpoint};
use velollm_engine::{Backend, BenchOptions, Session};
use velollm_testkit::{FakeServer, Flavor, Script};

/// The stand-in tokenizer: a word of more than four letters is two tokens ("wor" + "ds"), others one; a
/// space belongs to the token after it.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, w) in text.split(' ').enumerate() {
        let sp = if k == 0 { "" } else { " " };
        if w.len() > 4 {
            out.push(format!("{sp}{}", &w[..3]));
            out.push(w[3..].to_string());
        } else {
            out.push(format!("{sp}{w}"));
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// llama.cpp with `with_pieces`: `{"tokens": [{"id", "piece"}]}`.
    Pieces,
    /// Token ids only: `{"tokens": [ids]}`.
    Ids,
    /// No `/tokenize` route.
    Missing,
}

/// A one-route HTTP server answering `POST /tokenize`; counts the requests it gets.
async fn tokenize_server(mode: Mode) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let body: serde_json::Value = serde_json::from_slice(&buf[head_end..]).unwrap_or_default();
                let text = body["content"].as_str().unwrap_or_default();
                let p = pieces(text);
                let (status, reply) = match mode {
                    Mode::Missing => ("404 Not Found", "{\"error\":\"not found\"}".to_string()),
                    Mode::Ids => {
                        ("200 OK", serde_json::json!({ "tokens": (0..p.len()).collect::<Vec<_>>() }).to_string())
                    }
                    Mode::Pieces => {
                        let tokens: Vec<_> = p
                            .iter()
                            .enumerate()
                            .map(|(id, piece)| serde_json::json!({"id": id, "piece": piece}))
                            .collect();
                        ("200 OK", serde_json::json!({ "tokens": tokens }).to_string())
                    }
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, hits)
}

fn target(url: &str) -> Arc<Target> {
    Arc::new(Target::new(Endpoint::parse(url).unwrap(), DialectKind::OpenAiChat, Clock::start()))
}

fn normal(mean: f64, stddev: f64) -> LengthDist {
    LengthDist { kind: DistKind::Normal, mean: Some(mean), stddev: Some(stddev), min: Some(8), max: Some(4000) }
}

#[tokio::test]
async fn server_token_pieces_make_synthetic_lengths_exact() {
    let (url, hits) = tokenize_server(Mode::Pieces).await;
    let t = target(&url);
    let cal = server_lengths(&t, "m").await.expect("calibrated");
    assert!(cal.exact());
    assert_eq!(cal.check, Some((256, 256)));
    assert_eq!(hits.load(Ordering::SeqCst), 2, "one calibration and one check request");
    // Once per run: the same target is answered from the cache.
    assert_eq!(server_lengths(&t, "m").await.unwrap(), cal);
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let src = PromptSource::new(Workload::SyntheticDist(normal(300.0, 120.0)), 5).with_server_lengths(Ok(cal));
    for i in 0..40 {
        let want = src.length(i).unwrap() as usize;
        let got = pieces(&src.prompt(i, None)).len();
        assert_eq!(got, want, "request {i}");
    }
    let note = src.counting(false).unwrap();
    assert!(note.contains("counted with the server's /tokenize") && note.contains("measured 256 (+0.0 %)"), "{note}");
}

#[tokio::test]
async fn token_ids_alone_scale_the_word_count_within_two_percent() {
    let (url, _) = tokenize_server(Mode::Ids).await;
    let cal = server_lengths(&target(&url), "m").await.expect("calibrated");
    assert!(!cal.exact());
    let err = cal.check_error().unwrap();
    assert!(err.abs() <= 0.02, "{err}");
    let src = PromptSource::new(Workload::Synthetic { prompt_tokens: 2000 }, 1).with_server_lengths(Ok(cal));
    // With token ids only, the word count is scaled by the mean tokens per word, so each prompt's length is
    // a random sum: here ~1,430 words costing 1 or 2 tokens, a standard deviation of about 0.9 %. The
    // calibration error above is the measured ±2 % claim; single prompts are held to 4 % (over 4 sigma) and
    // their mean to 1 %.
    let got: Vec<f64> = (0..10).map(|i| pieces(&src.prompt(i, None)).len() as f64).collect();
    for g in &got {
        assert!((g - 2000.0).abs() / 2000.0 <= 0.04, "{got:?}");
    }
    let mean = got.iter().sum::<f64>() / got.len() as f64;
    assert!((mean - 2000.0).abs() / 2000.0 <= 0.01, "{mean} from {got:?}");
    assert!(src.counting(false).unwrap().contains("tokens per word"));
}

#[tokio::test]
async fn without_tokenize_the_approximation_is_declared() {
    let (url, hits) = tokenize_server(Mode::Missing).await;
    let why = server_lengths(&target(&url), "m").await.unwrap_err();
    assert!(why.contains("HTTP 404"), "{why}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let src = PromptSource::new(Workload::Synthetic { prompt_tokens: 50 }, 1).with_server_lengths(Err(why));
    assert_eq!(src.prompt(0, None).split(' ').count(), 50);
    let note = src.counting(false).unwrap();
    assert!(note.contains("approximate") && note.contains("HTTP 404") && note.contains("no --tokenizer"), "{note}");
}

/// Against a real llama-server when one runs (`scripts/llama-server.sh start`); skipped otherwise.
#[tokio::test]
async fn real_llama_server_calibration_is_within_two_percent() {
    let url = std::env::var("VELOLLM_TEST_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let t = target(&url);
    if velollm_engine::exec::get(&t, "/health").await.map(|(s, _)| s) != Ok(200) {
        eprintln!("skipped: no llama-server at {url}");
        return;
    }
    let cal = server_lengths(&t, "smollm2").await.expect("llama-server has /tokenize");
    assert!(cal.exact(), "llama-server returns token pieces");
    eprintln!("llama-server calibration: ratio {:.3}, check {:?}", cal.ratio(), cal.check);
    assert!(cal.check_error().unwrap().abs() <= 0.02, "{:?}", cal.check);
    let src = PromptSource::new(Workload::SyntheticDist(normal(600.0, 400.0)), 9).with_server_lengths(Ok(cal));
    for i in 0..8 {
        let want = f64::from(src.length(i).unwrap());
        let body = serde_json::json!({ "content": src.prompt(i, None) });
        let (_, reply) = velollm_engine::exec::send_json(&t, hyper::Method::POST, "/tokenize", &body).await.unwrap();
        let got =
            serde_json::from_slice::<serde_json::Value>(&reply).unwrap()["tokens"].as_array().unwrap().len() as f64;
        assert!((got - want).abs() <= (0.02 * want).max(1.0), "request {i}: {got} tokens for {want}");
    }
}

#[derive(Default)]
struct Collect(Arc<Mutex<Vec<RequestRecord>>>);

impl Observer for Collect {
    fn record(&mut self, r: &RequestRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

async fn run(workload: Workload, requests: u64) -> (FakeServer, Vec<RequestRecord>, String) {
    let script =
        Script { ttft: Duration::from_millis(5), itl: Duration::from_millis(1), tokens: 3, ..Script::default() };
    let server = FakeServer::start(Flavor::LlamaCpp, script).await;
    let opts = BenchOptions {
        backend: Backend::Dialect(DialectKind::OpenAiChat),
        model: Some("fake-model".into()),
        ..BenchOptions::new(server.url())
    };
    let session = Session::connect(&opts).await.unwrap();
    let plan = StepPlan::simple(
        "w",
        workload,
        3,
        LoadProfile::Sequential,
        Bounds { requests: Some(requests), ..Bounds::default() },
    );
    let records = Arc::new(Mutex::new(Vec::new()));
    let (_tx, cancel) = watch::channel(false);
    let result = session.run(&[plan], 1, None, &mut Collect(records.clone()), &cancel).await.unwrap().remove(0);
    let records = records.lock().unwrap().clone();
    (server, records, result.config.prompt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_sessions_are_conversations_with_turn_numbers() {
    let t = |u: &str| Turn { user: u.into(), label: None, salt: false };
    let (server, records, prompt) = run(Workload::Sessions(vec![vec![t("a1"), t("a2")], vec![t("b1")]]), 3).await;
    let turns: Vec<(Option<u64>, Option<u32>)> = records.iter().map(|r| (r.conversation, r.turn)).collect();
    assert_eq!(
        turns,
        vec![(Some(0), Some(0)), (Some(0), Some(1)), (Some(1), Some(0)), (Some(2), Some(0)), (Some(2), Some(1))]
    );
    assert!(prompt.starts_with("dataset, 2 conversations, 3 user turns; first: a1"), "{prompt}");
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_prefix_requests_are_labelled_by_group() {
    let w = Workload::SharedPrefix {
        prefix: SharedPrefix { groups: 3, prefix_tokens: 20, zipf: 1.0, salt: true },
        suffix: LengthDist::fixed(5),
    };
    let (_server, records, prompt) = run(w, 12).await;
    assert_eq!(records.len(), 12);
    assert!(records.iter().all(|r| r.label.as_deref().is_some_and(|l| l.starts_with("group-"))));
    assert!(records.iter().all(|r| r.conversation.is_none()));
    assert!(prompt.contains("3 groups × 20-token shared prefix (Zipf s=1, salted per run)"), "{prompt}");
    // The fake server has no /tokenize: the step says how lengths were counted instead.
    assert!(prompt.contains("lengths approximate"), "{prompt}");
}
