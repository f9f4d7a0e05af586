//! The command line: every command and where its arguments are declared (clap derive). Nothing here runs
//! anything; `main` dispatches each command to its file under `commands/`.

use crate::args::BenchArgs;
use crate::commands;
use clap::{Parser, Subcommand};

/// Measure LLM inference latency correctly and prove whether an optimization helped.
#[derive(Debug, Parser)]
#[command(name = "velollm", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok · 1 error during the run · 2 invalid input · 3 a threshold failed \
(bench --check) or a compare gate failed · 4 server unreachable, unrecognised, or a launched server did not start · 5 every measured request failed · 130 interrupted (partial result kept)")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark an endpoint: a scenario or prompts under a load profile, every request recorded.
    Bench(Box<BenchArgs>),
    /// The original velollm command: the standard suite against Ollama (or -b llamacpp).
    Benchmark(commands::benchmark::LegacyArgs),
    /// Built-in scenarios: list them, or print one as an editable TOML file.
    Scenario {
        /// What to do.
        #[command(subcommand)]
        command: commands::scenario::ScenarioCommand,
    },
    /// Compare runs: per step and metric, Δ, 95 % confidence interval, p-value and a verdict; CI gates.
    Compare(commands::compare::CompareArgs),
    /// Paired A/B experiment: the same requests to two targets (URLs or launch commands) in alternating order
    /// (A→B, B→A, …); per metric the paired difference with its confidence interval, a signed-rank test and a
    /// verdict; the speedup; with --b-proxies-a, the proxy overhead.
    Ab(Box<commands::ab::AbArgs>),
    /// Render a result document: Markdown, self-contained HTML with charts, CSV exports.
    Report(commands::report::ReportArgs),
    /// Every run indexed in the history database: list, filter, trends over time.
    History(commands::history::HistoryArgs),
    /// Launch the server in every configuration of a grid, benchmark each on the same workload and seed,
    /// and name the best by an objective (trade-off table, margin with its confidence interval; resumable).
    Tune(Box<commands::tune::TuneArgs>),
    /// This machine's hardware: GPUs, CPU, memory, OS (text, or --json).
    Detect(commands::detect::DetectArgs),
    /// Recommended settings for Ollama, llama.cpp or vLLM on this machine, each with its reason.
    Optimize(commands::optimize::OptimizeArgs),
    /// velollm's own cost against its built-in loopback server: added latency per request and per chunk,
    /// the request and chunk rate it sustains, CPU per request (--serve: run that server for other clients).
    Selfcheck(commands::selfcheck::SelfcheckArgs),
    /// A gateway in front of model servers: every dialect passed through as it streams, an exact response
    /// cache on the path, and in every response what it did (x-velollm-cache) and what it cost
    /// (x-velollm-overhead-ms); /health, /ready, /metrics.
    Proxy(Box<commands::proxy::ProxyArgs>),
}

impl Command {
    /// The threads the async runtime should serve with, when the command says (`proxy --workers`); else one per
    /// core.
    pub fn worker_threads(&self) -> Option<usize> {
        match self {
            Command::Proxy(args) => args.workers.map(usize::from),
            _ => None,
        }
    }
}
