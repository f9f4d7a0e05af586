//! A fake LLM server as a separate program, for tests of velollm's server launcher.
//!
//! ```text
//! velollm-fake-server --port P [--flavor llamacpp|openai|ollama|anthropic] [--mode serve|exit|hang]
//!     [--loading-ms N] [--ttft-ms N] [--itl-ms N] [--tokens N] [--die-after-requests N]
//!     [--grow-mb-per-request N] [--exit-code N] [--slow-every N --slow-factor F] [--model NAME] [--tag TEXT]
//! ```
//!
//! * `serve` (default): the scripted fake server ([`velollm_testkit::FakeServer`]); with `--loading-ms`,
//!   `/health` answers 503 "Loading model" that long, as llama-server does while loading.
//! * `exit`: print a line to stdout and stderr, then exit with `--exit-code` (default 1) — a server that
//!   dies at start.
//! * `hang`: accept connections and never answer — a server that is wedged.
//! * `--die-after-requests N`: exit (code 1) once N generation requests have arrived — a server that dies
//!   mid-run.
//! * `--grow-mb-per-request N`: keep N MiB more memory (touched) for every request served — a leak with
//!   a known slope.
//! * `--slow-every N --slow-factor F`: every N-th generation request's TTFT is F times longer (default 10) —
//!   a heavy tail with an exact share, for hedging.
//! * `--model NAME`: the model served (default `fake-model`).
//! * `--tag TEXT`: ignored — a marker on the command line by which a test finds the process (and checks
//!   that it is gone).

use std::time::Duration;
use velollm_testkit::{FakeServer, Flavor, Script};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: u64| -> u64 {
        value(name).map(|v| v.parse().unwrap_or_else(|_| fail(&format!("{name} {v}: not a number")))).unwrap_or(default)
    };
    let port = number("--port", 0);
    let mode = value("--mode").unwrap_or_else(|| "serve".into());
    match mode.as_str() {
        "exit" => {
            println!("fake server: loading");
            eprintln!("fake server: error: cannot load the model (simulated)");
            std::process::exit(number("--exit-code", 1) as i32);
        }
        "hang" | "serve" => {}
        other => fail(&format!("--mode {other}: use serve, exit or hang")),
    }
    let flavor = match value("--flavor").as_deref().unwrap_or("llamacpp") {
        "llamacpp" => Flavor::LlamaCpp,
        "openai" => Flavor::OpenAi,
        "ollama" => Flavor::Ollama,
        "anthropic" => Flavor::Anthropic,
        other => fail(&format!("--flavor {other}: use llamacpp, openai, ollama or anthropic")),
    };
    let script = Script {
        ttft: Duration::from_millis(number("--ttft-ms", 20)),
        itl: Duration::from_millis(number("--itl-ms", 2)),
        tokens: number("--tokens", 8) as usize,
        loading: Duration::from_millis(number("--loading-ms", 0)),
        slow_every: match number("--slow-every", 0) {
            0 => None,
            n => Some((n as usize, number("--slow-factor", 10) as u32)),
        },
        model: value("--model").unwrap_or_else(|| Script::default().model),
        ..Script::default()
    };
    let die_after = number("--die-after-requests", 0) as usize;
    let grow_mb = number("--grow-mb-per-request", 0) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let runtime = runtime.unwrap_or_else(|e| fail(&format!("cannot start a runtime: {e}")));
    runtime.block_on(async move {
        let addr = format!("127.0.0.1:{port}");
        if mode == "hang" {
            let listener = tokio::net::TcpListener::bind(&addr).await.unwrap_or_else(|e| fail(&e.to_string()));
            println!("fake server: hanging on {addr}");
            let mut open = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                open.push(sock);
            }
            return;
        }
        let server = FakeServer::bind(&addr, flavor, script).await.unwrap_or_else(|e| fail(&format!("{addr}: {e}")));
        println!("fake server: listening on {}", server.url());
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let n = server.request_count();
            while grow_mb > 0 && kept.len() < n {
                // Touch every page so the memory is resident.
                kept.push(vec![1u8; grow_mb << 20]);
            }
            if die_after > 0 && n >= die_after {
                eprintln!("fake server: dying after {n} requests (simulated crash)");
                std::process::exit(1);
            }
        }
    });
}

fn fail(msg: &str) -> ! {
    eprintln!("velollm-fake-server: {msg}");
    std::process::exit(2)
}
