//! The client's own overhead and throughput ceiling, measured against the in-process fake server.
//!
//! Run with `cargo bench -p velollm-engine --bench client_overhead`; set `VELOLLM_BENCH_JSON=path` to also
//! write the figures as JSON. Figures are recorded in `docs/performance.md`.
//!
//! 1. **Timing accuracy at concurrency 1**: the server sends the first token 50 ms after the request arrives
//!    and one token every 5 ms after it (64 tokens); 20 sequential requests after 2 of warm-up.
//!    * (a) against the testkit `FakeServer`: measured − injected. This includes the fake server's own
//!      lateness: tokio's timer rounds every deadline up to a millisecond tick (1–2 ms late in all).
//!    * (b) against [`ExactServer`], a plain-thread server in this file that sleeps then spins to each
//!      deadline and records the instant of every `write()`. Besides measured − injected, it gives the
//!      **stamp lag**: velollm's timestamp of a chunk minus the server's write of it (same process, same
//!      monotonic clock), i.e. loopback delivery plus the client's own reaction time, per chunk.
//! 2. **Ceiling**: the fake server emits all 64 chunks at once; 64 workers send as many requests as fit in
//!    10 s (after 1 s of warm-up). Reported: requests/s, tokens/s, output chunks/s (HTTP body chunks that
//!    carry output, as velollm stamps them) and CPU time per request, read from `/proc/self/stat` (whole
//!    process: client **and** fake server) and split by thread (the fake server runs on its own runtime,
//!    whose threads are named `fake-server`, so the client's share is the process total minus those
//!    threads).
//! 3. **The same ceiling with 8 SSE events per body frame.**
//!
//! The client and the server share the machine's cores, so the ceiling is a lower bound of what the
//! client alone can drive, and everything runs over loopback.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::scenario::Workload;
use velollm_core::measure::record::RequestRecord;
use velollm_core::stats::Summary;
use velollm_core::workload::load::{Bounds, LoadProfile, Warmup};
use velollm_engine::dialect::DialectKind;
use velollm_engine::plan::StepPlan;
use velollm_engine::runner::{NoObserver, Observer, Runner};
use velollm_engine::target::{Target, Timeouts};
use velollm_engine::transport::{Clock, Endpoint};
use velollm_engine::{Backend, BenchOptions, Session};
use velollm_testkit::{FakeServer, Flavor, Script};

/// Name of the fake server's runtime threads (at most 15 bytes: Linux truncates thread names).
const SERVER_THREAD: &str = "fake-server";
const TOKENS: usize = 64;
/// The prompt length of the comparable peer measurements (docs/performance.md).
const PROMPT_TOKENS: u32 = 128;

const ACC_TTFT_MS: f64 = 50.0;
const ACC_ITL_MS: f64 = 5.0;
const ACC_REQUESTS: u64 = 20;
const ACC_WARMUP: u64 = 2;

const CEIL_CONCURRENCY: u32 = 64;
const CEIL_SECONDS: f64 = 10.0;
const CEIL_WARMUP_S: f64 = 1.0;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ, 100 on every mainstream Linux architecture).
const TICKS_PER_S: f64 = 100.0;

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let server_rt = runtime(SERVER_THREAD, cores);
    let client_rt = runtime("velollm-client", cores);
    let cpu = cpu_model();
    println!("velollm client overhead benchmark");
    println!(
        "machine: {cores} CPUs ({cpu}); client runtime {cores} workers, fake server runtime {cores} workers \
         (same process, loopback)"
    );
    let load = load_average();
    println!("load average at start (1/5/15 min): {}", load.as_deref().unwrap_or("n/a"));
    println!("prompt: synthetic, {PROMPT_TOKENS} tokens; output: {TOKENS} tokens, one token per chunk");
    println!();

    // 1. Timing accuracy at concurrency 1.
    println!(
        "1. Timing accuracy, concurrency 1: injected TTFT {ACC_TTFT_MS} ms, ITL {ACC_ITL_MS} ms, {TOKENS} tokens, \
         {ACC_REQUESTS} requests after {ACC_WARMUP} warm-up"
    );
    println!("   added = measured − injected, ms; lag = velollm's stamp of a chunk − the server's write() of it, ms");
    println!(
        "   {:<12} {:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "server",
        "dialect",
        "TTFT p50",
        "TTFT p99",
        "TTFT max",
        "ITL mean",
        "ITL p99",
        "E2E p50",
        "lag 1st",
        "lag p50",
        "lag p99",
        "lag max"
    );
    let mut accuracy = Vec::new();
    let mut checks = Vec::new();
    for exact in [false, true] {
        for dialect in [DialectKind::OpenAiChat, DialectKind::OllamaChat] {
            let (r, lag) = if exact {
                let (r, lag) = run_exact(&client_rt, dialect);
                (r, Some(lag))
            } else {
                let script = Script {
                    ttft: Duration::from_millis(ACC_TTFT_MS as u64),
                    itl: Duration::from_millis(ACC_ITL_MS as u64),
                    tokens: TOKENS,
                    ..Script::default()
                };
                (run_step(&server_rt, &client_rt, script, dialect, accuracy_plan()).0, None)
            };
            let server = if exact { "exact" } else { "testkit-fake" };
            check(&r, dialect.name());
            let m = &r.metrics;
            let (ttft, itl, e2e) = (summary(&m.ttft_ms), summary(&m.itl_chunk_ms), summary(&m.e2e_ms));
            let e2e_injected = ACC_TTFT_MS + (TOKENS - 1) as f64 * ACC_ITL_MS;
            let lag_first = lag.as_ref().map(|l| l.first.p50);
            let lag_all = lag.as_ref().map(|l| &l.all);
            println!(
                "   {:<12} {:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>8} {:>8} {:>8}",
                server,
                dialect.name(),
                ttft.p50 - ACC_TTFT_MS,
                ttft.p99 - ACC_TTFT_MS,
                ttft.max - ACC_TTFT_MS,
                itl.mean - ACC_ITL_MS,
                itl.p99 - ACC_ITL_MS,
                e2e.p50 - e2e_injected,
                opt(lag_first, 3),
                opt(lag_all.map(|l| l.p50), 3),
                opt(lag_all.map(|l| l.p99), 3),
                opt(lag_all.map(|l| l.max), 3),
            );
            if let Some(l) = &lag {
                checks.push(format!(
                    "   exact/{}: request delivery p50 {:.3} max {:.3} ms; server write lateness p50 {:.3} max {:.3} ms",
                    dialect.name(),
                    l.delivery.p50,
                    l.delivery.max,
                    l.server_late.p50,
                    l.server_late.max
                ));
            }
            accuracy.push(json!({
                "server": server,
                "dialect": dialect.name(),
                "requests": r.succeeded,
                "ttft_p50_added_ms": ttft.p50 - ACC_TTFT_MS,
                "ttft_p99_added_ms": ttft.p99 - ACC_TTFT_MS,
                "ttft_max_added_ms": ttft.max - ACC_TTFT_MS,
                "itl_mean_added_ms": itl.mean - ACC_ITL_MS,
                "itl_p99_added_ms": itl.p99 - ACC_ITL_MS,
                "itl_gaps": itl.count,
                "e2e_p50_added_ms": e2e.p50 - e2e_injected,
                "lag_first_chunk_ms": lag.as_ref().map(|l| summary_json(&l.first)),
                "lag_all_chunks_ms": lag.as_ref().map(|l| summary_json(&l.all)),
                "lag_unpaired_requests": lag.as_ref().map(|l| l.unpaired),
                "request_delivery_ms": lag.as_ref().map(|l| summary_json(&l.delivery)),
                "exact_server_write_lateness_ms": lag.as_ref().map(|l| summary_json(&l.server_late)),
            }));
        }
    }
    println!(
        "   testkit-fake: tokio's timer rounds each deadline up to the next ms, so its rows include 1–2 ms of \
         server lateness"
    );
    println!("   exact: plain threads that sleep, then spin to each deadline; lag is measured against its write()");
    println!("   exact server self-check (TTFT added = request delivery + server lateness + lag 1st):");
    for line in &checks {
        println!("{line}");
    }
    println!();

    // 2. and 3. Ceiling.
    println!(
        "2./3. Ceiling: TTFT 0, ITL 0 (all chunks at once), concurrency {CEIL_CONCURRENCY}, {CEIL_SECONDS} s after \
         {CEIL_WARMUP_S} s warm-up, openai-chat"
    );
    println!("   CPU per request: process = client + fake server (same process); client = process − server threads");
    println!(
        "   {:<16} {:>9} {:>9} {:>11} {:>11} {:>10} {:>10} {:>8} {:>8}",
        "events/frame", "requests", "req/s", "tokens/s", "chunks/s", "CPU ms/req", "client ms", "failed", "RSS MB"
    );
    let mut ceiling = Vec::new();
    for events_per_frame in [1, 8] {
        let script =
            Script { ttft: Duration::ZERO, itl: Duration::ZERO, tokens: TOKENS, events_per_frame, ..Script::default() };
        let plan = plan(
            LoadProfile::Concurrency { concurrency: CEIL_CONCURRENCY },
            Bounds { duration_s: Some(CEIL_SECONDS), warmup: Warmup::Seconds(CEIL_WARMUP_S), ..Bounds::default() },
        );
        let (r, cost) = run_step(&server_rt, &client_rt, script, DialectKind::OpenAiChat, plan);
        let sent = r.requests + r.warmup_requests;
        let chunks = r.metrics.itl_chunk_ms.as_ref().map_or(0, |s| s.count) + r.succeeded;
        let chunks_per_s = chunks as f64 / r.rates.duration_s;
        let per_req = |ticks: Option<u64>| ticks.map(|t| t as f64 / TICKS_PER_S * 1e3 / sent.max(1) as f64);
        let (cpu_ms, client_ms) = (per_req(cost.process_ticks), per_req(cost.client_ticks()));
        let rss_mb = max_rss_bytes().map(|b| b as f64 / (1 << 20) as f64);
        println!(
            "   {:<16} {:>9} {:>9.0} {:>11.0} {:>11.0} {:>10} {:>10} {:>8} {:>8}",
            events_per_frame,
            r.requests,
            r.rates.request_throughput,
            r.rates.output_token_throughput,
            chunks_per_s,
            opt(cpu_ms, 3),
            opt(client_ms, 3),
            r.failed,
            opt(rss_mb, 0),
        );
        ceiling.push(json!({
            "events_per_frame": events_per_frame,
            "concurrency": CEIL_CONCURRENCY,
            "requests": r.requests,
            "warmup_requests": r.warmup_requests,
            "failed": r.failed,
            "duration_s": r.rates.duration_s,
            "requests_per_s": r.rates.request_throughput,
            "output_tokens_per_s": r.rates.output_token_throughput,
            "output_chunks": chunks,
            "output_chunks_per_s": chunks_per_s,
            "wall_s": cost.wall.as_secs_f64(),
            "cpu_ms_per_request_process": cpu_ms,
            "cpu_ms_per_request_client_threads": client_ms,
            "cpu_utilisation_process": cost.process_ticks.map(|t| t as f64 / TICKS_PER_S / cost.wall.as_secs_f64()),
            "max_rss_mb_process": rss_mb,
            "connections_opened": r.connections.opened,
        }));
        if r.failed > 0 {
            println!("   failures: {:?}", r.errors);
        }
    }
    println!(
        "   RSS: process high-water mark (client + fake server); it grows with the request count, since the \
         fake server logs every request body and the step keeps per-request samples"
    );

    if let Some(path) = std::env::var_os("VELOLLM_BENCH_JSON") {
        let doc = json!({
            "benchmark": "client_overhead",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "machine": { "cpus": cores, "cpu_model": cpu, "load_average_at_start": load },
            "runtimes": { "client_workers": cores, "server_workers": cores },
            "accuracy": {
                "injected_ttft_ms": ACC_TTFT_MS,
                "injected_itl_ms": ACC_ITL_MS,
                "tokens": TOKENS,
                "requests": ACC_REQUESTS,
                "rows": accuracy,
            },
            "ceiling": ceiling,
        });
        write_json(Path::new(&path), &doc);
    }
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn plan(load: LoadProfile, bounds: Bounds) -> StepPlan {
    StepPlan::simple("bench", Workload::Synthetic { prompt_tokens: PROMPT_TOKENS }, TOKENS as u32, load, bounds)
}

fn accuracy_plan() -> StepPlan {
    plan(
        LoadProfile::Sequential,
        Bounds { requests: Some(ACC_REQUESTS), warmup: Warmup::Requests(ACC_WARMUP), ..Bounds::default() },
    )
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        first_token: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_secs(30),
    }
}

/// CPU and wall time spent during one step.
struct Cost {
    wall: Duration,
    process_ticks: Option<u64>,
    server_ticks: Option<u64>,
}

impl Cost {
    fn client_ticks(&self) -> Option<u64> {
        Some(self.process_ticks?.saturating_sub(self.server_ticks?))
    }
}

/// Start a fake server on `server_rt`, connect and run `plan` on `client_rt`; the CPU time is measured around
/// the step only (server start, probe and connect excluded).
fn run_step(
    server_rt: &Runtime,
    client_rt: &Runtime,
    script: Script,
    dialect: DialectKind,
    plan: StepPlan,
) -> (StepResult, Cost) {
    let server = server_rt.block_on(FakeServer::start(Flavor::OpenAi, script));
    let opts = BenchOptions {
        backend: Backend::Dialect(dialect),
        model: Some("fake-model".into()),
        timeouts: timeouts(),
        ..BenchOptions::new(server.url())
    };
    let session = client_rt.block_on(Session::connect(&opts)).expect("connect to the fake server");
    let (_tx, cancel) = watch::channel(false);
    let (p0, s0, t0) = (process_ticks(), thread_ticks(SERVER_THREAD), Instant::now());
    let mut results = client_rt
        .block_on(session.run(std::slice::from_ref(&plan), 1, None, &mut NoObserver, &cancel))
        .expect("run the step");
    let (p1, s1, wall) = (process_ticks(), thread_ticks(SERVER_THREAD), t0.elapsed());
    let cost = Cost { wall, process_ticks: delta(p0, p1), server_ticks: delta(s0, s1) };
    drop(server);
    (results.remove(0), cost)
}

/// Stamp lag of the measured requests against [`ExactServer`], in ms.
struct Lag {
    /// First output chunk of each request.
    first: Summary,
    /// Every output chunk.
    all: Summary,
    /// Requests whose output chunks could not be paired one to one with the server's writes.
    unpaired: usize,
    /// Request delivery: velollm's stamp of the request's first byte written → the server has read it all.
    delivery: Summary,
    /// How late the server wrote each content chunk after its due instant (its own accuracy).
    server_late: Summary,
}

/// Collects every record of a step.
struct Records(Vec<RequestRecord>);

impl Observer for Records {
    fn record(&mut self, record: &RequestRecord) {
        self.0.push(record.clone());
    }
}

/// Run the accuracy step against an [`ExactServer`] (no probe: the target is built directly) and pair each
/// output chunk's stamp with the server's write of it.
fn run_exact(client_rt: &Runtime, dialect: DialectKind) -> (StepResult, Lag) {
    let ttft = Duration::from_millis(ACC_TTFT_MS as u64);
    let itl = Duration::from_millis(ACC_ITL_MS as u64);
    let server = ExactServer::start(dialect, ttft, itl, TOKENS);
    let clock = Clock::start();
    let mut target = Target::new(Endpoint::parse(&server.url()).expect("server URL"), dialect, clock);
    target.timeouts = timeouts();
    let mut runner = Runner::new(Arc::new(target), "fake-model".into(), 1, None);
    let mut records = Records(Vec::new());
    let (_tx, cancel) = watch::channel(false);
    let result =
        client_rt.block_on(runner.run_step(0, &accuracy_plan(), &mut records, &cancel)).expect("run the step").0;
    let writes = server.writes.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut recs = records.0;
    recs.sort_by_key(|r| r.id);
    let (mut first, mut all, mut unpaired) = (Vec::new(), Vec::new(), 0);
    let (mut delivery, mut server_late) = (Vec::new(), Vec::new());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    // One connection, sequential requests: the server's i-th request is the client's i-th.
    for (rec, (start, stamps)) in recs.iter().zip(&writes).filter(|(r, _)| !r.warmup) {
        if let Some(sent) = rec.sent {
            delivery.push(ms(start.saturating_duration_since(clock.instant(sent))));
        }
        for (j, wrote) in stamps.iter().enumerate() {
            server_late.push(ms(wrote.saturating_duration_since(*start + ttft + itl * j as u32)));
        }
        let chunks: Vec<_> = rec.output_chunks().collect();
        if chunks.len() != stamps.len() {
            unpaired += 1;
            continue;
        }
        for (j, (c, wrote)) in chunks.iter().zip(stamps).enumerate() {
            let lag = ms(clock.instant(c.t).saturating_duration_since(*wrote));
            if j == 0 {
                first.push(lag);
            }
            all.push(lag);
        }
    }
    unpaired += recs.len().saturating_sub(writes.len());
    let lag = Lag {
        first: Summary::of(first).expect("paired requests"),
        all: Summary::of(all).expect("paired chunks"),
        unpaired,
        delivery: Summary::of(delivery).expect("requests"),
        server_late: Summary::of(server_late).expect("writes"),
    };
    (result, lag)
}

/// Per request: when the server had read it, and when it wrote each content chunk.
type WriteLog = Mutex<Vec<(Instant, Vec<Instant>)>>;

/// A minimal HTTP/1.1 streaming server on plain threads (one per connection) that writes every content
/// chunk at its exact due instant (sleep, then spin for the last 300 µs) and records when it called
/// `write()` for it. Speaks OpenAI chat (SSE) and Ollama chat (NDJSON), one event per HTTP chunk.
struct ExactServer {
    addr: SocketAddr,
    /// Per request, in arrival order: when it was read in full, and the instant each content chunk was
    /// written.
    writes: Arc<WriteLog>,
}

impl ExactServer {
    fn start(dialect: DialectKind, ttft: Duration, itl: Duration, tokens: usize) -> ExactServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let writes = Arc::new(Mutex::new(Vec::new()));
        let log = writes.clone();
        let spec = ExactSpec { dialect, ttft, itl, tokens };
        std::thread::Builder::new()
            .name("exact-server".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let log = log.clone();
                    let _ = std::thread::Builder::new().name("exact-server".into()).spawn(move || {
                        let _ = spec.serve(stream, &log);
                    });
                }
            })
            .expect("spawn the exact server");
        ExactServer { addr, writes }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Clone, Copy)]
struct ExactSpec {
    dialect: DialectKind,
    ttft: Duration,
    itl: Duration,
    tokens: usize,
}

impl ExactSpec {
    /// Serve requests on one kept-alive connection until the client closes it.
    fn serve(self, stream: TcpStream, log: &WriteLog) -> std::io::Result<()> {
        stream.set_nodelay(true)?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut out = stream;
        let mut line = String::new();
        loop {
            let mut content_length = 0;
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let header = line.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            let start = Instant::now();
            let content_type = if self.dialect.is_ollama() { "application/x-ndjson" } else { "text/event-stream" };
            out.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n")
                    .as_bytes(),
            )?;
            let mut stamps = Vec::with_capacity(self.tokens);
            for j in 0..self.tokens {
                let chunk = http_chunk(&self.content(j));
                wait_until(start + self.ttft + self.itl * j as u32);
                stamps.push(Instant::now());
                out.write_all(&chunk)?;
            }
            // Logged before the last write, so the log is complete when the client sees the end.
            log.lock().unwrap_or_else(PoisonError::into_inner).push((start, stamps));
            let mut last = http_chunk(&self.trailer());
            last.extend_from_slice(b"0\r\n\r\n");
            out.write_all(&last)?;
        }
    }

    fn content(&self, j: usize) -> String {
        if self.dialect.is_ollama() {
            format!(
                "{{\"model\":\"fake-model\",\"created_at\":\"2026-01-01T00:00:00Z\",\
                 \"message\":{{\"role\":\"assistant\",\"content\":\"tok{j} \"}},\"done\":false}}\n"
            )
        } else {
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":0,\
                 \"model\":\"fake-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{j} \"}},\
                 \"finish_reason\":null}}]}}\n\n"
            )
        }
    }

    fn trailer(&self) -> String {
        let n = self.tokens;
        if self.dialect.is_ollama() {
            format!(
                "{{\"model\":\"fake-model\",\"created_at\":\"2026-01-01T00:00:00Z\",\
                 \"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"length\",\
                 \"prompt_eval_count\":{PROMPT_TOKENS},\"eval_count\":{n}}}\n"
            )
        } else {
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":0,\
                 \"model\":\"fake-model\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"length\"}}]}}\n\n\
                 data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":0,\
                 \"model\":\"fake-model\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\
                 \"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
                PROMPT_TOKENS as usize + n
            )
        }
    }
}

/// One HTTP/1.1 chunk (chunked transfer encoding) carrying `data`.
fn http_chunk(data: &str) -> Vec<u8> {
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// Sleep until shortly before `deadline`, then spin to it.
fn wait_until(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(300);
    let now = Instant::now();
    if deadline > now + SPIN {
        std::thread::sleep(deadline - now - SPIN);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

fn summary_json(s: &Summary) -> Value {
    json!({ "count": s.count, "mean": s.mean, "p50": s.p50, "p99": s.p99, "max": s.max })
}

fn delta(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b?.saturating_sub(a?))
}

fn check(r: &StepResult, label: &str) {
    assert_eq!(r.failed, 0, "{label}: {:?}", r.errors);
    let out = summary(&r.metrics.output_tokens);
    assert_eq!((out.min, out.max), (TOKENS as f64, TOKENS as f64), "{label}: output tokens");
}

fn summary(s: &Option<Summary>) -> Summary {
    s.clone().expect("the step measured this metric")
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

/// utime + stime (fields 14 and 15) of a `/proc/.../stat` line; the name field may contain spaces.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU time of the whole process (all threads, alive or exited), in clock ticks.
fn process_ticks() -> Option<u64> {
    stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?).map(|(_, t)| t)
}

/// CPU time of the live threads named `name`, in clock ticks.
fn thread_ticks(name: &str) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("stat");
        if let Some((n, t)) = std::fs::read_to_string(path).ok().as_deref().and_then(stat_ticks)
            && n == name
        {
            total += t;
        }
    }
    Some(total)
}

/// Peak resident set size of the process (`VmHWM`).
fn max_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn write_json(path: &Path, doc: &Value) {
    let text = serde_json::to_string_pretty(doc).expect("serialize the figures");
    match std::fs::write(path, text + "\n") {
        Ok(()) => println!("\nfigures written to {}", path.display()),
        Err(e) => {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
