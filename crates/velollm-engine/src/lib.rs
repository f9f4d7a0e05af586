//! # velollm-engine — the load engine
//!
//! Everything that touches the network lives here; every number is computed by `velollm-core` from the
//! raw records this crate produces.
//!
//! * [`transport`] — hyper HTTP/1.1 connections owned by one worker each; DNS, TCP connect and TLS timed;
//!   the first request byte stamped as it is written.
//! * [`ws`] — WebSocket client sessions (one message per request, one per stream event), for
//!   `velollm proxy`'s sessions.
//! * [`wire`] — SSE and NDJSON framing; every message completed by one HTTP body frame shares its instant.
//! * [`dialect`] — one file per API: OpenAI chat/completions, Ollama chat/generate, llama.cpp `/completion`.
//! * [`exec`] — one request from connect to last byte, with timeouts and error classes.
//! * [`runner`] — sequential, closed-loop and open-loop (constant / Poisson / gamma) load.
//! * [`timer`] — precise waits for schedules (a thread on the kernel's timers, not tokio's 1 ms wheel).
//! * [`sweep`] — a capacity probe, then a ladder of rates or concurrency levels up to saturation.
//! * [`probe`] — which API an endpoint speaks, which server it is, which models it has.
//! * [`output`] — the result document and per-request records, written as the run goes.
//! * [`ab`] — paired A/B runs: the same requests to two targets in alternating order.
//! * [`bench`] and [`api`] — a session end to end, and the original velollm's `BenchmarkRunner` API.

pub mod ab;
pub mod api;
pub mod bench;
pub mod checks;
pub mod detect;
pub mod dialect;
pub mod exec;
pub mod h1;
pub mod health;
pub mod host;
pub mod launch;
pub mod loopback;
pub mod observe;
pub mod output;
pub mod probe;
pub mod prompts;
pub mod resources;
pub mod runner;
pub mod rxstamp;
pub mod scrape;
pub mod selfcheck;
pub mod sweep;
pub mod timer;
pub mod tokenize;
pub mod transport;
pub mod wire;
pub mod ws;

pub use api::{BenchmarkConfig, BenchmarkResult, BenchmarkRunner};
pub use bench::{Backend, BenchError, BenchOptions, Session};
