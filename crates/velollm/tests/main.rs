//! The command-line tests: one program, one module per area, each running the real `velollm` binary
//! against fake servers (in-process, exact delays and faults) and, where a test says so, a real llama-server
//! (`VELOLLM_TEST_SERVER_URL`, started by `scripts/test.sh`).
//!
//! `cargo test -p velollm --test cli` runs them all; `cargo test -p velollm --test cli trace::` one module.
//! Without a llama-server the real-server tests say they were skipped, except under `CI=true`, where they
//! fail.

#[allow(dead_code)]
mod common;

mod ab;
mod anthropic;
mod cli;
mod compare_cli;
mod connections;
mod detect_optimize;
mod faults;
mod hedging;
mod help;
mod history_cli;
mod interrupt;
mod launch;
mod plans;
mod probe_gateway;
mod prompt_cache;
mod proxy_cli;
mod real_compare;
mod real_launch;
mod real_scenarios;
mod real_server;
mod report_cli;
mod routing_eval;
mod scenario_schema;
mod scenarios;
mod schema;
mod secrets;
mod selfcheck;
mod semantic_eval;
mod sweep;
mod trace;
mod tune;
mod workloads;
