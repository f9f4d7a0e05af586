//! `velollm benchmark`: the original velollm command, kept for its users — the standard suite against
//! Ollama (or `-b llamacpp`), run as `velollm bench` with the same arguments built in code.

use crate::args::{BackendArg, BenchArgs, OutputArgs, TargetArgs};
use crate::exit::input;
use crate::{execute, plan};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `velollm benchmark` — the original CLI.
#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// Model to benchmark.
    #[arg(short, long, default_value = "llama3.2:3b")]
    pub model: String,
    /// Save results to this JSON file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Backend: ollama or llamacpp.
    #[arg(short, long, default_value = "ollama")]
    pub backend: String,
    /// Base URL [default: the backend's usual local address].
    #[arg(long, env = "VELOLLM_URL")]
    pub url: Option<String>,
}

/// The arguments of `velollm bench` equivalent to the original `velollm benchmark`.
pub fn bench_args(args: &LegacyArgs) -> Result<BenchArgs> {
    let (backend, url, model) = match args.backend.to_ascii_lowercase().as_str() {
        "ollama" => (BackendArg::OllamaChat, "http://127.0.0.1:11434", Some(args.model.clone())),
        // The default model name is Ollama's; llama-server serves whatever model it loaded.
        "llamacpp" | "llama.cpp" | "llama-server" => {
            (BackendArg::Auto, "http://127.0.0.1:8080", Some(args.model.clone()).filter(|m| m != "llama3.2:3b"))
        }
        other => return Err(input(format!("-b/--backend '{other}': use ollama or llamacpp")).into()),
    };
    Ok(BenchArgs {
        url: Some(args.url.clone().unwrap_or_else(|| url.to_string())),
        target: TargetArgs { model, backend, ..TargetArgs::default() },
        output: OutputArgs { output: args.output.clone(), ..OutputArgs::default() },
        ..BenchArgs::default()
    })
}

/// Run `velollm benchmark`.
pub async fn run(args: LegacyArgs) -> Result<u8> {
    let plan = plan::bench(&bench_args(&args)?)?;
    execute::run(plan, None, Default::default()).await
}
