//! The engine against in-process fake servers with exact injected delays (faults: `tests/faults.rs`).
//!
//! Tolerances: the fake server schedules each event at an exact offset from the request's arrival; on a
//! loopback socket the client observes it within a few milliseconds even on a busy 2-core machine. TTFT
//! is asserted within [injected, injected + 25 ms] and mean per-chunk ITL within ±5 ms.

use std::time::Duration;
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::scenario::Workload;
use velollm_core::workload::load::{Arrival, Bounds, LoadProfile};
use velollm_engine::dialect::DialectKind;
use velollm_engine::plan::StepPlan;
use velollm_engine::runner::NoObserver;
use velollm_engine::target::Timeouts;
use velollm_engine::{Backend, BenchError, BenchOptions, BenchmarkConfig, BenchmarkRunner, Session};
use velollm_testkit::{FakeServer, Flavor, Script};

const TTFT_MS: f64 = 80.0;
const ITL_MS: f64 = 20.0;
const TOLERANCE_MS: f64 = 25.0;

fn script() -> Script {
    Script {
        ttft: Duration::from_millis(TTFT_MS as u64),
        itl: Duration::from_millis(ITL_MS as u64),
        tokens: 6,
        ..Script::default()
    }
}

fn step(requests: u64, load: LoadProfile) -> StepPlan {
    StepPlan::simple(
        "s",
        Workload::Prompts(vec!["hello".into()]),
        6,
        load,
        Bounds { requests: Some(requests), ..Bounds::default() },
    )
}

async fn session(server: &FakeServer, backend: Backend) -> Session {
    let opts = BenchOptions {
        backend,
        model: Some("fake-model".into()),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_token: Duration::from_secs(2),
            idle: Duration::from_millis(500),
            total: Duration::from_secs(10),
        },
        ..BenchOptions::new(server.url())
    };
    Session::connect(&opts).await.expect("session")
}

async fn run(server: &FakeServer, dialect: DialectKind, plan: StepPlan) -> StepResult {
    let s = session(server, Backend::Dialect(dialect)).await;
    let (_tx, cancel) = watch::channel(false);
    s.run(&[plan], 1, None, &mut NoObserver, &cancel).await.unwrap().remove(0)
}

fn assert_timing(r: &StepResult, label: &str) {
    assert_eq!(r.failed, 0, "{label}: {:?}", r.errors);
    let ttft = r.metrics.ttft_ms.as_ref().unwrap();
    assert!(ttft.min >= TTFT_MS - 1.0 && ttft.max <= TTFT_MS + TOLERANCE_MS, "{label}: ttft {ttft:?}");
    let itl = r.metrics.itl_chunk_ms.as_ref().unwrap();
    assert!((itl.mean - ITL_MS).abs() <= 5.0, "{label}: itl {itl:?}");
    let out = r.metrics.output_tokens.as_ref().unwrap();
    assert_eq!((out.min, out.max), (6.0, 6.0), "{label}");
    assert_eq!(r.token_sources.get("server_usage"), Some(&r.succeeded), "{label}");
    let e2e = r.metrics.e2e_ms.as_ref().unwrap();
    let want = TTFT_MS + 5.0 * ITL_MS;
    assert!(e2e.min >= want - 1.0 && e2e.max <= want + TOLERANCE_MS, "{label}: e2e {e2e:?}");
    let tpot = r.metrics.tpot_ms.as_ref().unwrap();
    assert!((tpot.mean - ITL_MS).abs() <= 5.0, "{label}: tpot {tpot:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_measures_injected_ttft_and_itl() {
    for dialect in DialectKind::ALL {
        let server = FakeServer::start(Flavor::OpenAi, script()).await;
        let r = run(&server, dialect, step(3, LoadProfile::Sequential)).await;
        assert_timing(&r, dialect.name());
        assert_eq!(server.requests()[0].0, dialect.path());
        // One connection, reused for the following requests.
        assert_eq!((r.connections.opened, r.connections.reused), (1, 2), "{dialect}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_only_chunk_does_not_start_ttft_and_reasoning_does() {
    let server = FakeServer::start(Flavor::OpenAi, Script { reasoning_tokens: 2, ..script() }).await;
    let r = run(&server, DialectKind::OpenAiChat, step(1, LoadProfile::Sequential)).await;
    let ttft = r.metrics.ttft_ms.as_ref().unwrap().p50;
    let content = r.metrics.ttft_content_ms.as_ref().unwrap().p50;
    assert!((TTFT_MS - 1.0..=TTFT_MS + TOLERANCE_MS).contains(&ttft), "{ttft}");
    assert!((content - ttft - 2.0 * ITL_MS).abs() <= 8.0, "content {content} ttft {ttft}");
    assert!(r.metrics.reasoning_ms.is_some());
    // The role chunk came with the headers, long before TTFT.
    assert!(r.metrics.ttfb_ms.as_ref().unwrap().p50 < 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_one_frame_are_one_arrival() {
    let server = FakeServer::start(Flavor::OpenAi, Script { events_per_frame: 3, ..script() }).await;
    let r = run(&server, DialectKind::OllamaGenerate, step(1, LoadProfile::Sequential)).await;
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    // 6 tokens in frames of 3 → at most 3 distinct arrivals of output, so at most 2 gaps, each ≈ 3 × ITL.
    let itl = r.metrics.itl_chunk_ms.as_ref().unwrap();
    assert!(itl.count <= 2, "{itl:?}");
    assert!(itl.max >= 2.0 * ITL_MS, "{itl:?}");
    assert_eq!(r.metrics.output_tokens.as_ref().unwrap().p50, 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_durations_are_stored_next_to_client_timings() {
    let server = FakeServer::start(Flavor::Ollama, script()).await;
    let s = session(&server, Backend::Auto).await;
    assert_eq!(s.target.dialect, DialectKind::OllamaChat);
    assert_eq!(s.server.server.as_deref(), Some("ollama"));
    let (_tx, cancel) = watch::channel(false);
    let r = s.run(&[step(2, LoadProfile::Sequential)], 1, None, &mut NoObserver, &cancel).await.unwrap().remove(0);
    assert_timing(&r, "ollama auto");
    let prefill = r.metrics.server_prefill_ms.as_ref().unwrap();
    assert!((prefill.mean - TTFT_MS).abs() < 1.0, "{prefill:?}");
    assert!(r.metrics.server_load_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_recognises_each_flavor() {
    let s = session(&FakeServer::start(Flavor::LlamaCpp, script()).await, Backend::Auto).await;
    assert_eq!((s.target.dialect, s.server.server.as_deref()), (DialectKind::OpenAiChat, Some("llama.cpp")));
    assert_eq!(s.server.version.as_deref(), Some("b9999-fake"));
    let s = session(&FakeServer::start(Flavor::OpenAi, script()).await, Backend::Auto).await;
    assert_eq!(s.target.dialect, DialectKind::OpenAiChat);
    assert_eq!(s.model, "fake-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_lists_what_the_server_has() {
    let server = FakeServer::start(Flavor::Ollama, script()).await;
    let opts = BenchOptions { model: Some("llama3.2:3b".into()), ..BenchOptions::new(server.url()) };
    let e = Session::connect(&opts).await.err().unwrap().to_string();
    assert!(e.contains("model 'llama3.2:3b' is not served") && e.contains("fake-model"), "{e}");
    assert!(e.contains("ollama pull llama3.2:3b"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_names_the_url_and_how_to_start_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let e = Session::connect(&BenchOptions::new(url.clone())).await.err().unwrap();
    assert!(matches!(e, BenchError::Probe(_)));
    let msg = e.to_string();
    assert!(msg.contains(&url) && msg.contains("ollama serve") && msg.contains("llama-server"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_runs_workers_on_their_own_connections() {
    let server = FakeServer::start(Flavor::OpenAi, script()).await;
    let r = run(&server, DialectKind::OpenAiChat, step(8, LoadProfile::Concurrency { concurrency: 4 })).await;
    assert_timing(&r, "concurrency 4");
    assert_eq!((r.requests, r.connections.opened, r.connections.reused), (8, 4, 4));
    // Four at a time, two rounds: the window is about two request durations.
    let one = TTFT_MS + 5.0 * ITL_MS;
    assert!(r.rates.duration_s * 1e3 < 3.0 * one, "{}", r.rates.duration_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_rate_is_measured_from_the_schedule() {
    let server = FakeServer::start(Flavor::OpenAi, script()).await;
    let plan = StepPlan {
        bounds: Bounds { requests: None, duration_s: Some(1.0), ..Bounds::default() },
        ..step(0, LoadProfile::Rate { rate: 20.0, arrival: Arrival::Constant, max_concurrency: Some(1) })
    };
    let r = run(&server, DialectKind::OpenAiChat, plan).await;
    assert_eq!(r.requests, 20, "one second at 20/s");
    // One in flight at a time and each takes ~180 ms: later requests queue, and that wait is reported.
    let queue = r.metrics.queue_delay_ms.as_ref().unwrap();
    assert!(queue.max > 1000.0, "{queue:?}");
    let from_schedule = r.metrics.e2e_from_scheduled_ms.as_ref().unwrap();
    let e2e = r.metrics.e2e_ms.as_ref().unwrap();
    assert!(from_schedule.max > e2e.max + 1000.0, "{from_schedule:?} vs {e2e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_requests_are_excluded() {
    let server = FakeServer::start(Flavor::OpenAi, script()).await;
    let plan = StepPlan {
        bounds: Bounds {
            requests: Some(2),
            warmup: velollm_core::workload::load::Warmup::Requests(1),
            ..Bounds::default()
        },
        ..step(0, LoadProfile::Sequential)
    };
    let r = run(&server, DialectKind::OpenAiChat, plan).await;
    assert_eq!((r.requests, r.warmup_requests, server.request_count()), (2, 1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_library_api_still_works() {
    let server = FakeServer::start(Flavor::OpenAi, script()).await;
    let runner = BenchmarkRunner::new(&server.url());
    let config = BenchmarkConfig {
        name: "custom_test".into(),
        model: "fake-model".into(),
        prompt: "hi".into(),
        max_tokens: 6,
        iterations: 2,
    };
    let r = runner.run(&config).await.unwrap();
    assert_eq!((r.total_tokens, r.eval_count, r.step.requests), (12, 6, 2));
    assert!(r.time_to_first_token_ms >= TTFT_MS - 1.0);
    assert!((r.tokens_per_second - 1000.0 / ITL_MS).abs() < 15.0, "{}", r.tokens_per_second);
}
