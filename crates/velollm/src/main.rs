//! `velollm` — the command-line tool. `main` only parses and dispatches: each command lives in its own file
//! under `commands/`, and a command imports only the shared leaves below it, never another command.
//!
//! | module | what it is for |
//! |---|---|
//! | `cli` | the command line: every command and its arguments |
//! | `args` | argument groups shared by commands, typed values (durations, dialects, arrivals) |
//! | `plan` | `bench` arguments → one validated run plan, every input error named before anything is sent |
//! | `execute` | running a plan: launch, connect, self-check, steps or sweep, result, history, summary |
//! | `resume` | continuing an interrupted run |
//! | `semantic_eval` | `bench --scenario semantic-cache`: a semantic cache's labelled evaluation |
//! | `vector_eval` | `bench --scenario vector-stores`: the semantic cache's vector stores compared |
//! | `routing_eval` | `bench --scenario routing`: the router's labelled evaluation, tier by tier |
//! | `server` | the Server options → what the engine launches and watches |
//! | `decide` | a comparison decided: tables, gates, criteria, exit code |
//! | `documents` | reading result documents |
//! | `progress` | the progress bar |
//! | `signal` | Ctrl-C and SIGTERM |
//! | `exit` | exit codes and the input error |
//! | `commands` | one file per command (`commands/*.rs`) |

mod args;
mod cli;
mod commands;
mod decide;
mod documents;
mod execute;
mod exit;
mod plan;
mod progress;
mod resume;
mod routing_eval;
mod semantic_eval;
mod server;
mod signal;
mod vector_eval;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::INPUT } else { exit::OK });
        }
    };
    // Before the runtime's threads start, so that growing the table stalls nothing.
    velollm_engine::host::reserve_descriptors(velollm_engine::host::DESCRIPTORS_RESERVED);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.command.worker_threads() {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // On a worker, not on this thread: a command that collects what its tasks send (bench's records) would
    // otherwise be woken across threads once per message.
    let code = runtime.block_on(async {
        let outcome = match tokio::spawn(dispatch(cli.command)).await {
            Ok(outcome) => outcome,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Err(anyhow::anyhow!("the command's task ended early: {e}")),
            },
        };
        outcome.unwrap_or_else(|e| {
            // A server's error may echo the key: nothing printed carries it.
            eprintln!("error: {}", plan::redact(&format!("{e:#}")));
            exit::code_of(&e)
        })
    });
    // Do not wait for in-flight connections to wind down.
    runtime.shutdown_background();
    ExitCode::from(code)
}

async fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Bench(args) => commands::bench::run(*args).await,
        Command::Benchmark(args) => commands::benchmark::run(args).await,
        Command::Scenario { command } => commands::scenario::run(command),
        Command::Compare(args) => commands::compare::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::History(args) => commands::history::run(args),
        Command::Tune(args) => commands::tune::run(*args).await,
        Command::Detect(args) => commands::detect::run(args),
        Command::Optimize(args) => commands::optimize::run(args).await,
        Command::Ab(args) => commands::ab::run(*args).await,
        Command::Selfcheck(args) => commands::selfcheck::run(args).await,
        Command::Proxy(args) => commands::proxy::run(*args).await,
    }
}
