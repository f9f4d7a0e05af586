//! Fault survival (issue 7, item 3): the engine against in-process fake servers that misbehave, one test per
//! fault. Each test checks that the failed request is counted under the right class in the step's `errors`,
//! that the run goes on (the later requests succeed when the fault is per request or temporary, see
//! `Script::fault_first`), and that the step result stays valid: every request is accounted for and the
//! result serializes and reads back.
//!
//! The requests go straight to a [`Target`] (no probe), so a target that refuses connections or never
//! answers can be measured like any other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::scenario::Workload;
use velollm_core::measure::record::{ErrorClass, RequestRecord};
use velollm_core::workload::load::{Arrival, Bounds, LoadProfile};
use velollm_engine::dialect::DialectKind;
use velollm_engine::plan::StepPlan;
use velollm_engine::runner::{Observer, Runner};
use velollm_engine::target::{Target, Timeouts};
use velollm_engine::transport::{Clock, Endpoint};
use velollm_testkit::{FakeServer, Fault, Flavor, Script};

/// Generous timeouts: each test shortens the one it exercises.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    first_token: Duration::from_secs(2),
    idle: Duration::from_secs(2),
    total: Duration::from_secs(20),
};

fn script() -> Script {
    Script { ttft: Duration::from_millis(20), itl: Duration::from_millis(5), tokens: 6, ..Script::default() }
}

/// `script()` with `fault` on the first `first` requests only.
fn burst(fault: Fault, first: usize) -> Script {
    Script { fault, fault_first: Some(first), ..script() }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Collects every record of a run.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<RequestRecord>>>);

impl Observer for Records {
    fn record(&mut self, r: &RequestRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

impl Records {
    fn sorted(&self) -> Vec<RequestRecord> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by_key(|r| r.id);
        v
    }
}

fn target(url: &str, dialect: DialectKind, timeouts: Timeouts) -> Target {
    let mut t = Target::new(Endpoint::parse(url).unwrap(), dialect, Clock::start());
    t.timeouts = timeouts;
    t.keep_text = true;
    t
}

fn sequential(requests: u64) -> StepPlan {
    let bounds = Bounds { requests: Some(requests), ..Bounds::default() };
    StepPlan::simple("faults", Workload::Prompts(vec!["hello".into()]), 6, LoadProfile::Sequential, bounds)
}

/// Run `plan` on `target`; the step result and every record, in request order.
async fn run_on(target: Target, plan: StepPlan) -> (StepResult, Vec<RequestRecord>) {
    let records = Records::default();
    let mut observer = records.clone();
    let (_tx, cancel) = watch::channel(false);
    let mut runner = Runner::new(Arc::new(target), "fake-model".into(), 1, None);
    let (result, _) = runner.run_step(0, &plan, &mut observer, &cancel).await.expect("the step runs");
    assert_valid(&result);
    (result, records.sorted())
}

/// `requests` sequential requests to `server` in `dialect`.
async fn run(
    server: &FakeServer,
    dialect: DialectKind,
    timeouts: Timeouts,
    requests: u64,
) -> (StepResult, Vec<RequestRecord>) {
    run_on(target(&server.url(), dialect, timeouts), sequential(requests)).await
}

/// The result is complete and consistent: every request counted once, every failure under one class, and the
/// document serializes and reads back (no NaN, no lost field).
fn assert_valid(r: &StepResult) {
    assert!(!r.partial, "the step ran to its end");
    assert_eq!(r.succeeded + r.failed, r.requests, "{r:?}");
    assert_eq!(r.errors.values().map(|e| e.count).sum::<u64>(), r.failed, "{:?}", r.errors);
    let json = serde_json::to_value(r).expect("the result serializes");
    let back: StepResult = serde_json::from_value(json.clone()).expect("the result reads back");
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
}

/// The only error class of a step, with its count and example message.
fn only_error(r: &StepResult) -> (ErrorClass, u64, String) {
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let (class, e) = r.errors.iter().next().unwrap();
    (*class, e.count, e.example.clone())
}

/// The error classes of the records, in request order (`None` for a success).
fn classes(records: &[RequestRecord]) -> Vec<Option<ErrorClass>> {
    records.iter().map(|r| r.error.as_ref().map(|e| e.class)).collect()
}

/// A local address where nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_error() {
    let (r, records) = run_on(target(&closed_port(), DialectKind::OpenAiChat, TIMEOUTS), sequential(3)).await;
    assert_eq!(r.requests, 3, "every request was tried");
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count), (ErrorClass::Connect, 3));
    assert!(example.contains("cannot connect to 127.0.0.1:") && example.contains("refused"), "{example}");
    assert!(records.iter().all(|r| r.done.is_some() && r.chunks.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_stream_is_stream_broken() {
    for dialect in [DialectKind::OpenAiChat, DialectKind::OllamaChat] {
        let server = FakeServer::start(Flavor::OpenAi, burst(Fault::ResetAfter(2), 1)).await;
        let (r, records) = run(&server, dialect, TIMEOUTS, 3).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::StreamBroken, 1, 2), "{dialect}");
        assert!(example.contains("stream broke after") && example.contains("reset"), "{dialect}: {example}");
        assert_eq!(records[0].output_chunks().count(), 2, "{dialect}: what came before the reset is kept");
    }
}

/// A listener whose accept queue is full: the kernel drops new SYNs, so connecting hangs. The returned
/// streams keep the queue full.
async fn full_backlog() -> (SocketAddr, tokio::net::TcpListener, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(ms(200), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => return (addr, listener, held),
        }
    }
    panic!("the accept queue never filled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_fires_when_the_server_never_accepts() {
    let (addr, _listener, _held) = full_backlog().await;
    let timeouts = Timeouts { connect: ms(300), ..TIMEOUTS };
    let t0 = std::time::Instant::now();
    let (r, _) = run_on(target(&format!("http://{addr}"), DialectKind::OpenAiChat, timeouts), sequential(2)).await;
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count), (ErrorClass::Timeout, 2));
    assert!(example.contains("connect timeout") && example.contains("300ms"), "{example}");
    assert!(example.contains("--connect-timeout"), "the message names the option: {example}");
    assert!(t0.elapsed() < Duration::from_secs(2), "each attempt gave up after 300 ms: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_timeout_is_its_own_option() {
    // Headers and the role chunk arrive, then nothing: only the first-token clock fires.
    let server = FakeServer::start(Flavor::OpenAi, burst(Fault::StallAfter(0), 1)).await;
    let timeouts = Timeouts { first_token: ms(300), idle: Duration::from_secs(5), ..TIMEOUTS };
    let (r, records) = run(&server, DialectKind::OpenAiChat, timeouts, 2).await;
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count, r.succeeded), (ErrorClass::Timeout, 1, 1));
    assert!(example.contains("no first token within 300ms") && example.contains("--first-token-timeout"), "{example}");
    assert!(records[0].headers.is_some() && !records[0].chunks.is_empty(), "headers and the role chunk came");
    let waited = (records[0].done.unwrap() - records[0].sent.unwrap()) as f64 / 1e6;
    assert!((300.0..1000.0).contains(&waited), "{waited} ms");

    // A first token later than the idle timeout is fine: before it only the first-token timeout applies.
    let slow = Script { ttft: ms(300), ..script() };
    let server = FakeServer::start(Flavor::OpenAi, slow).await;
    let timeouts = Timeouts { first_token: Duration::from_secs(2), idle: ms(100), ..TIMEOUTS };
    let (r, _) = run(&server, DialectKind::OpenAiChat, timeouts, 1).await;
    assert_eq!(r.failed, 0, "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_fires_between_chunks() {
    let server = FakeServer::start(Flavor::OpenAi, burst(Fault::StallAfter(2), 1)).await;
    let timeouts = Timeouts { idle: ms(200), ..TIMEOUTS };
    let started = std::time::Instant::now();
    let (r, records) = run(&server, DialectKind::OllamaGenerate, timeouts, 2).await;
    // After the first token the idle timeout (200 ms) applies, not the first-token one (2 s).
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count, r.succeeded), (ErrorClass::Timeout, 1, 1));
    assert!(example.contains("no data for 200ms while waiting for the next chunk"), "{example}");
    assert!(example.contains("--idle-timeout"), "{example}");
    assert_eq!(records[0].output_chunks().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_bounds_the_whole_request() {
    // The first response stalls after two chunks; the idle timeout is longer than the total one.
    let server = FakeServer::start(Flavor::OpenAi, burst(Fault::StallAfter(2), 1)).await;
    let timeouts = Timeouts { idle: Duration::from_secs(5), total: ms(400), ..TIMEOUTS };
    let (r, records) = run(&server, DialectKind::OpenAiChat, timeouts, 2).await;
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count, r.succeeded), (ErrorClass::Timeout, 1, 1));
    assert!(example.contains("total timeout of 400ms") && example.contains("--timeout"), "{example}");
    let waited = (records[0].done.unwrap() - records[0].scheduled) as f64 / 1e6;
    assert!((400.0..1000.0).contains(&waited), "{waited} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_measured_below_the_timeout_and_fail_above() {
    let slow = Script { fault: Fault::SlowHeaders(ms(200)), ..script() };
    let server = FakeServer::start(Flavor::OpenAi, slow.clone()).await;
    let (r, _) =
        run(&server, DialectKind::OpenAiChat, Timeouts { first_token: Duration::from_secs(1), ..TIMEOUTS }, 2).await;
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    let ttfb = r.metrics.ttfb_ms.as_ref().unwrap();
    assert!(ttfb.min >= 199.0 && ttfb.max <= 230.0, "TTFB is the header delay: {ttfb:?}");

    let server = FakeServer::start(Flavor::OpenAi, Script { fault_first: Some(1), ..slow }).await;
    let (r, records) = run(&server, DialectKind::OpenAiChat, Timeouts { first_token: ms(100), ..TIMEOUTS }, 2).await;
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count), (ErrorClass::Timeout, 1));
    assert!(
        example.contains("no response headers within 100ms") && example.contains("--first-token-timeout"),
        "{example}"
    );
    assert!(records[0].headers.is_none());
    // The next request (no fault) succeeds on a new connection.
    assert_eq!(classes(&records), [Some(ErrorClass::Timeout), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_is_rate_limited_with_retry_after() {
    let body = r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.to_owned();
    let fault = Fault::Status { code: 429, body, retry_after: Some(7) };
    let server = FakeServer::start(Flavor::OpenAi, burst(fault, 1)).await;
    let (r, records) = run(&server, DialectKind::OpenAiChat, TIMEOUTS, 3).await;
    let (class, count, example) = only_error(&r);
    assert_eq!((class, count, r.succeeded), (ErrorClass::RateLimited, 1, 2));
    assert!(example.contains("HTTP 429: slow down"), "{example}");
    let e = records[0].error.as_ref().unwrap();
    assert_eq!((e.retry_after_s, records[0].status), (Some(7.0), Some(429)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5xx_is_counted_and_the_server_recovers() {
    for code in [500, 503] {
        let fault = Fault::Status { code, body: r#"{"error":"overloaded"}"#.into(), retry_after: None };
        let server = FakeServer::start(Flavor::OpenAi, burst(fault, 3)).await;
        let (r, records) = run(&server, DialectKind::OllamaChat, TIMEOUTS, 6).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::Http5xx, 3, 3), "{code}");
        assert_eq!(example, format!("HTTP {code}: overloaded"));
        let want = [Some(ErrorClass::Http5xx); 3].into_iter().chain([None; 3]).collect::<Vec<_>>();
        assert_eq!(classes(&records), want, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_in_a_chunk_is_a_parse_error() {
    for dialect in DialectKind::ALL {
        let server = FakeServer::start(Flavor::OpenAi, burst(Fault::MalformedJsonAt(1), 1)).await;
        let (r, records) = run(&server, dialect, TIMEOUTS, 2).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::ParseError, 1, 1), "{dialect}");
        assert!(example.contains("invalid JSON in stream"), "{dialect}: {example}");
        assert_eq!(records[0].output_chunks().count(), 1, "{dialect}: the chunk before it is kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_a_parse_error() {
    // velollm does not repair the text (as peers, it fails the request): the bytes are not the model's output.
    for dialect in DialectKind::ALL {
        let server = FakeServer::start(Flavor::OpenAi, burst(Fault::InvalidUtf8At(1), 1)).await;
        let (r, _) = run(&server, dialect, TIMEOUTS, 2).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::ParseError, 1, 1), "{dialect}");
        assert!(example.contains("invalid JSON in stream") && example.contains("unicode"), "{dialect}: {example}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_split_at_every_byte_reads_the_same() {
    let tools = vec![("get_weather".to_string(), r#"{"city":"Paris"}"#.to_string())];
    let base = Script { reasoning_tokens: 2, tool_calls: tools, ..script() };
    for dialect in DialectKind::ALL {
        let whole = FakeServer::start(Flavor::OpenAi, base.clone()).await;
        let split = FakeServer::start(Flavor::OpenAi, Script { byte_frames: true, ..base.clone() }).await;
        let (a, ra) = run(&whole, dialect, TIMEOUTS, 1).await;
        let (b, rb) = run(&split, dialect, TIMEOUTS, 1).await;
        assert_eq!((a.failed, b.failed), (0, 0), "{dialect}: {:?} {:?}", a.errors, b.errors);
        let (x, y) = (&ra[0], &rb[0]);
        assert!(!x.text.as_deref().unwrap_or("").is_empty(), "{dialect}");
        assert_eq!((&x.text, &x.usage, &x.finish_reason), (&y.text, &y.usage, &y.finish_reason), "{dialect}");
        assert_eq!(x.tool_calls, y.tool_calls, "{dialect}");
        assert_eq!(x.output_chunks().count(), y.output_chunks().count(), "{dialect}: one arrival per event");
        assert_eq!(a.metrics.output_tokens, b.metrics.output_tokens, "{dialect}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_done_marker_is_fine_after_a_finish_reason_else_stream_broken() {
    // Servers that omit `[DONE]` (or Anthropic's `message_stop`) after the finish reason: a success.
    for dialect in [DialectKind::OpenAiChat, DialectKind::OpenAiCompletions, DialectKind::Anthropic] {
        let server = FakeServer::start(Flavor::OpenAi, Script { fault: Fault::NoDoneMarker, ..script() }).await;
        let (r, records) = run(&server, dialect, TIMEOUTS, 2).await;
        assert_eq!(r.failed, 0, "{dialect}: {:?}", r.errors);
        assert!(records.iter().all(|r| r.finish_reason.is_some() && r.usage.is_some()), "{dialect}");
    }
    // A stream that ends cleanly before any finish reason or end marker: broken.
    for dialect in DialectKind::ALL {
        let server = FakeServer::start(Flavor::OpenAi, burst(Fault::EndAfter(2), 1)).await;
        let (r, records) = run(&server, dialect, TIMEOUTS, 2).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::StreamBroken, 1, 1), "{dialect}");
        assert!(example.contains("before the server said it was done"), "{dialect}: {example}");
        assert_eq!(records[0].output_chunks().count(), 2, "{dialect}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_200_is_empty_output() {
    for dialect in [DialectKind::OpenAiChat, DialectKind::OllamaGenerate, DialectKind::Anthropic] {
        let server = FakeServer::start(Flavor::OpenAi, burst(Fault::EmptyBody, 1)).await;
        let (r, records) = run(&server, dialect, TIMEOUTS, 2).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::EmptyOutput, 1, 1), "{dialect}");
        assert_eq!(example, "HTTP 200 with an empty body: the server sent no stream", "{dialect}");
        assert_eq!(records[0].status, Some(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_chunk_succeeds_and_a_message_over_the_cap_is_a_parse_error() {
    const TEN_MB: usize = 10 << 20;
    let server =
        FakeServer::start(Flavor::OpenAi, Script { fault: Fault::LargeChunk { at: 1, bytes: TEN_MB }, ..script() })
            .await;
    for dialect in [DialectKind::OpenAiChat, DialectKind::OllamaChat] {
        let (r, records) = run(&server, dialect, TIMEOUTS, 1).await;
        assert_eq!(r.failed, 0, "{dialect}: {:?}", r.errors);
        let text = records[0].text.as_deref().unwrap();
        assert_eq!(text.bytes().filter(|b| *b == b'x').count(), TEN_MB, "{dialect}");
        let bytes: u64 = records[0].output_chunks().map(|c| u64::from(c.bytes)).sum();
        assert!(bytes >= TEN_MB as u64, "{dialect}: {bytes}");
    }

    // Over the cap (1 MiB here; 64 MiB by default): refused without buffering it, and the run goes on.
    let fault = Fault::LargeChunk { at: 1, bytes: 2 << 20 };
    for (dialect, what) in [(DialectKind::OpenAiChat, "event"), (DialectKind::OllamaGenerate, "line")] {
        let server = FakeServer::start(Flavor::OpenAi, burst(fault.clone(), 1)).await;
        let mut t = target(&server.url(), dialect, TIMEOUTS);
        t.max_message_bytes = 1 << 20;
        let (r, _) = run_on(t, sequential(2)).await;
        let (class, count, example) = only_error(&r);
        assert_eq!((class, count, r.succeeded), (ErrorClass::ParseError, 1, 1), "{dialect}");
        assert!(example.starts_with(&format!("{what} larger than 1 MiB")), "{dialect}: {example}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_and_comes_back() {
    let quick = Script { ttft: ms(5), itl: ms(3), tokens: 4, ..Script::default() };
    let mut server = FakeServer::start(Flavor::OpenAi, quick).await;
    let target = Arc::new(target(&server.url(), DialectKind::OpenAiChat, TIMEOUTS));
    let clock = target.clock;
    // 20 requests per second, one at a time, for 1.6 s; the server is down from 0.4 s to 0.9 s.
    let load = LoadProfile::Rate { rate: 20.0, arrival: Arrival::Constant, max_concurrency: Some(1) };
    let bounds = Bounds { duration_s: Some(1.6), ..Bounds::default() };
    let plan = StepPlan::simple("faults", Workload::Prompts(vec!["hello".into()]), 4, load, bounds);
    let records = Records::default();
    let mut observer = records.clone();
    let (_tx, cancel) = watch::channel(false);
    let run = tokio::spawn(async move {
        let mut runner = Runner::new(target, "fake-model".into(), 1, None);
        runner.run_step(0, &plan, &mut observer, &cancel).await.map(|(r, _)| r)
    });
    tokio::time::sleep(ms(400)).await;
    let down = clock.now();
    server.stop().await;
    tokio::time::sleep(ms(500)).await;
    server.restart().await.expect("the same port is free again");
    let up = clock.now();
    let r = run.await.unwrap().expect("the step runs");
    assert_valid(&r);

    let records = records.sorted();
    assert_eq!(records.len() as u64, r.requests);
    for rec in &records {
        let failed = rec.error.as_ref().map(|e| e.class);
        if rec.done.unwrap() < down {
            assert_eq!(failed, None, "before the death: {rec:?}");
        } else if rec.scheduled > down + 50_000_000 && rec.done.unwrap() < up {
            assert_eq!(failed, Some(ErrorClass::Connect), "while down: {rec:?}");
        } else if rec.scheduled > up {
            assert_eq!(failed, None, "after the restart: {rec:?}");
        } else if let Some(class) = failed {
            // In flight when it died, or sent while it was coming back.
            assert!(matches!(class, ErrorClass::Connect | ErrorClass::StreamBroken), "{rec:?}");
        }
    }
    let connect = r.errors.get(&ErrorClass::Connect).map_or(0, |e| e.count);
    assert!(connect >= 5, "about 10 requests fell in the 0.5 s down: {:?}", r.errors);
    assert!(r.succeeded >= 15, "{} succeeded", r.succeeded);
}

/// A server that closes every kept-alive connection 30 ms after answering on it, as servers with a short
/// keep-alive timeout do (and without `Connection: close`): the next request finds its connection closed and
/// is sent again, once, on a fresh one. Nothing fails and each request opens its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_replaced_without_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then the body its content-length announces.
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let events = concat!(
                    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
                    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                    "data: [DONE]\n\n"
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{events}",
                    events.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                tokio::time::sleep(ms(30)).await;
            });
        }
    });
    let load = LoadProfile::Rate { rate: 10.0, arrival: Arrival::Constant, max_concurrency: Some(1) };
    let bounds = Bounds { requests: Some(4), ..Bounds::default() };
    let plan = StepPlan::simple("faults", Workload::Prompts(vec!["hello".into()]), 4, load, bounds);
    let (r, records) = run_on(target(&url, DialectKind::OpenAiChat, TIMEOUTS), plan).await;
    assert_valid(&r);
    assert_eq!((r.succeeded, r.errors.len()), (4, 0), "{:?}", r.errors);
    let fresh = records.iter().filter(|rec| rec.connection.as_ref().is_some_and(|c| !c.reused)).count();
    assert_eq!(fresh, 4, "each request found the previous connection closed");
}
