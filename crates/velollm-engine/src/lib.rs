//! # velollm-engine — the load engine
//!
//! Everything that touches the network lives here; every number is computed by `velollm-core` from the
//! raw records this crate produces.
//!
//! Sending requests, from the wire up:
//!
//! * [`transport`] — hyper HTTP/1.1 and HTTP/2 connections; DNS, TCP connect and TLS timed; the first request
//!   byte stamped as it is written. [`h1`] is velollm's own HTTP/1.1 client connection.
//! * [`rxstamp`] — kernel receive timestamps: when a response's bytes reached this host.
//! * [`ws`] — WebSocket client sessions (one message per request, one per stream event), for
//!   `velollm proxy`'s sessions.
//! * [`wire`] — SSE and NDJSON framing; every message completed by one HTTP body frame shares its instant.
//! * [`dialect`] — one file per API: OpenAI chat/completions, Ollama chat/generate, llama.cpp `/completion`,
//!   Anthropic messages: request bodies and stream messages.
//! * [`secrets`] — the API key, never printed, and every secret of the process redacted from output.
//! * [`target`] — the server as a worker sees it: endpoint, dialect, key, timeouts, aborts.
//! * [`request`] — the HTTP request of a call: path, headers, body.
//! * [`pool`] — connection slots, a step's shared HTTP/2 connection, WebSocket sessions.
//! * [`exec`] — one request from connect to last byte, with timeouts and error classes.
//! * [`tokenize`] — local token counts from a `tokenizer.json` when the server reports no usage.
//! * [`checks`] — a step's checks run on an answer (command checks here, pure ones in core).
//!
//! Running steps:
//!
//! * [`plan`] — what a run sends, step by step, and the connection modes the target allows.
//! * [`prompts`] — prompts in turn, dataset conversations, synthetic prompts, traces' histories.
//! * [`runner`] — sequential, closed-loop and open-loop (constant / Poisson / gamma) load; conversations
//!   and agent traces.
//! * [`timer`] — precise waits for schedules (a thread on the kernel's timers, not tokio's 1 ms wheel).
//! * [`sweep`] — a capacity probe, then a ladder of rates or concurrency levels up to saturation.
//! * [`ab`] — paired A/B runs: the same requests to two targets in alternating order.
//! * [`output`] — the result document and per-request records, written as the run goes.
//! * [`bench`](mod@bench) and [`api`] — a session end to end, and the original velollm's `BenchmarkRunner` API.
//!
//! The server and the machine:
//!
//! * [`probe`] — which API an endpoint speaks, which server it is, which models it has.
//! * [`launch`] — starting the server under test from a command template, and stopping it.
//! * [`health`], [`scrape`], [`resources`] and [`observe`] — watching the server during a run: health,
//!   Prometheus metrics, its processes' resources, all tied together.
//! * [`detect`] and [`host`] — this machine's hardware and the load-generating host.
//! * [`loopback`] and [`selfcheck`] — velollm's zero-cost server and the client's own cost measured on it.

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
pub mod plan;
pub mod pool;
pub mod probe;
pub mod prompts;
pub mod request;
pub mod resources;
pub mod runner;
pub mod rxstamp;
pub mod scrape;
pub mod secrets;
pub mod selfcheck;
pub mod sweep;
pub mod target;
pub mod timer;
pub mod tokenize;
pub mod transport;
pub mod wire;
pub mod ws;

pub use api::{BenchmarkConfig, BenchmarkResult, BenchmarkRunner};
pub use bench::{Backend, BenchError, BenchOptions, Session};
