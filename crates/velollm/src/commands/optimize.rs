//! `velollm optimize`: recommended Ollama, llama.cpp or vLLM settings for this machine (and a model, when
//! given), each with its reason; printed, or written as a POSIX sh script to source. velollm never changes
//! the system itself.

use crate::args::{BenchArgs, LoadArgs, OutputArgs, ServerArgs, WorkloadArgs};
use crate::decide::{decide, verdict_code};
use crate::documents::read_result;
use crate::exit::{self, InputError};
use crate::{execute, server};
use anyhow::{Result, anyhow};
use clap::Args;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use velollm_core::server::hardware::Hardware;
use velollm_core::server::optimize::{Advice, Engine, ModelInfo, SettingKind, parse_model_size, recommend};

/// `velollm optimize` arguments.
#[derive(Debug, Args)]
#[command(after_help = "velollm never changes the system itself: it prints the settings (the default, and \
--dry-run), or writes them as a script with -o, which you source before starting the server.")]
pub struct OptimizeArgs {
    /// The server to tune: ollama, llama.cpp or vllm.
    #[arg(long = "for", value_name = "ENGINE")]
    pub engine: String,
    /// A GGUF model file: its parameter count, quantisation, layers, heads and trained context are read.
    #[arg(long, value_name = "FILE.gguf", conflicts_with = "model_size")]
    pub model: Option<PathBuf>,
    /// The model's parameter count when there is no GGUF file at hand, e.g. 135m, 3b, 70b.
    #[arg(long, value_name = "SIZE")]
    pub model_size: Option<String>,
    /// The quantisation of --model-size (llama.cpp names: Q4_K_M, Q8_0, F16, …).
    #[arg(long, value_name = "QUANT", default_value = "Q4_K_M", requires = "model_size")]
    pub quant: String,
    /// Print the settings and their reasons (also what happens without -o).
    #[arg(long)]
    pub dry_run: bool,
    /// Write the settings as a POSIX sh script to `source` before starting the server.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Prove it: launch the server as --launch says (before), then with the recommended flags appended
    /// (llama.cpp, vLLM) or variables set (Ollama) (after), benchmark both the same way and compare them.
    #[arg(long, requires = "launch", help_heading = "Verify")]
    pub verify: bool,
    /// The server command of --verify, as for `bench --launch` (`{port}` becomes a free port).
    #[arg(long, value_name = "CMD", requires = "verify", help_heading = "Verify")]
    pub launch: Option<String>,
    /// The scenario of --verify (a built-in name or a TOML file).
    #[arg(long, default_value = "standard", help_heading = "Verify")]
    pub scenario: String,
    /// Measured requests per step in --verify (the scenario's own counts when not given).
    #[arg(short = 'n', long, value_name = "N", help_heading = "Verify")]
    pub requests: Option<u64>,
    /// Concurrent requests in --verify (the scenario's own load when not given).
    #[arg(short = 'c', long, value_name = "N", help_heading = "Verify")]
    pub concurrency: Option<u32>,
    /// Where --verify keeps both results and server logs.
    #[arg(long, default_value = "velollm-verify", value_name = "DIR", help_heading = "Verify")]
    pub verify_dir: PathBuf,
}

/// Run `velollm optimize`.
pub async fn run(args: OptimizeArgs) -> Result<u8> {
    let engine: Engine = args.engine.parse().map_err(|e| InputError(anyhow!("--for: {e}")))?;
    let model = model(&args)?;
    let hw = velollm_engine::detect::detect();
    let advice = recommend(&hw, model.as_ref(), engine);
    if args.verify {
        print!("{}", render(&hw, model.as_ref(), &advice, args.model.as_deref()));
        return verify(&args, &advice).await;
    }
    match (&args.output, args.dry_run) {
        (Some(path), false) => {
            std::fs::write(path, script(&hw, model.as_ref(), &advice, args.model.as_deref()))
                .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "velollm: {} setting(s) written to {}; velollm changed nothing: run `. {}` before starting the server",
                advice.settings.len(),
                path.display(),
                path.display()
            );
        }
        _ => {
            if args.output.is_some() {
                eprintln!("velollm: --dry-run: nothing written");
            }
            print!("{}", render(&hw, model.as_ref(), &advice, args.model.as_deref()));
        }
    }
    Ok(0)
}

/// The model from `--model` or `--model-size`; input errors exit 2.
fn model(args: &OptimizeArgs) -> Result<Option<ModelInfo>, InputError> {
    if let Some(path) = &args.model {
        return read_gguf(path).map(Some);
    }
    let Some(size) = &args.model_size else { return Ok(None) };
    let params = parse_model_size(size).map_err(|e| InputError(anyhow!("--model-size: {e}")))?;
    ModelInfo::from_size(params, &args.quant).map(Some).map_err(|e| InputError(anyhow!("--quant: {e}")))
}

/// Read a GGUF file's header.
pub fn read_gguf(path: &Path) -> Result<ModelInfo, InputError> {
    let p = path.display();
    let file = std::fs::File::open(path).map_err(|e| InputError(anyhow!("cannot open --model {p}: {e}")))?;
    let len = file.metadata().map_err(|e| InputError(anyhow!("cannot read --model {p}: {e}")))?.len();
    let info = velollm_core::server::gguf::read(std::io::BufReader::new(file), len)
        .map_err(|e| InputError(anyhow!("--model {p}: {e}")))?;
    ModelInfo::from_gguf(&info, len).map_err(|e| InputError(anyhow!("--model {p}: {e}")))
}

/// One line with control characters removed (text from a model file goes into comments).
fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn model_line(model: Option<&ModelInfo>) -> String {
    model.map(|m| clean(&m.summary())).unwrap_or_else(|| "none given (--model FILE.gguf or --model-size 3b)".into())
}

fn assignment(r: &velollm_core::server::optimize::Recommendation) -> String {
    match (r.kind, r.value.is_empty()) {
        (SettingKind::Env, _) => format!("{}={}", r.setting, r.value),
        (SettingKind::Flag, true) => r.setting.clone(),
        (SettingKind::Flag, false) => format!("{} {}", r.setting, r.value),
    }
}

/// The flags as one command-line fragment.
fn flags(advice: &Advice) -> String {
    advice.settings.iter().filter(|r| r.kind == SettingKind::Flag).map(assignment).collect::<Vec<_>>().join(" ")
}

fn example(advice: &Advice, model_path: Option<&Path>, with_var: bool) -> Option<String> {
    let model = model_path.map(|p| clean(&p.display().to_string())).unwrap_or_else(|| "MODEL".into());
    let f = if with_var { None } else { Some(flags(advice)) };
    match advice.engine {
        Engine::Ollama => None,
        Engine::LlamaCpp => {
            Some(format!("llama-server -m {model} {}", f.unwrap_or_else(|| "$VELOLLM_LLAMA_SERVER_FLAGS".into())))
        }
        Engine::Vllm => Some(format!("vllm serve {model} {}", f.unwrap_or_else(|| "$VELOLLM_VLLM_FLAGS".into()))),
    }
}

/// The advice as text for people (`--dry-run`, and the default).
pub fn render(hw: &Hardware, model: Option<&ModelInfo>, advice: &Advice, model_path: Option<&Path>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "velollm optimize: {}", advice.engine);
    let _ = writeln!(s, "machine  {}", hw.summary());
    let _ = writeln!(s, "model    {}", model_line(model));
    let _ = writeln!(s);
    if advice.settings.is_empty() {
        let _ = writeln!(s, "no settings to recommend");
    }
    for r in &advice.settings {
        let _ = writeln!(s, "{}", assignment(r));
        let _ = writeln!(s, "    {}", r.reason);
    }
    if let Some(cmd) = example(advice, model_path, false).filter(|_| !advice.settings.is_empty()) {
        let _ = writeln!(s, "\ncommand  {}", cmd.trim_end());
    }
    if !advice.notes.is_empty() {
        let _ = writeln!(s, "\nnotes");
        for n in &advice.notes {
            let _ = writeln!(s, "  - {n}");
        }
    }
    let _ = writeln!(
        s,
        "\nvelollm changed nothing. To apply: velollm optimize --for {} -o velollm.sh && . ./velollm.sh, then restart \
         the server; measure before and after with velollm bench.",
        match advice.engine {
            Engine::Ollama => "ollama",
            Engine::LlamaCpp => "llama.cpp",
            Engine::Vllm => "vllm",
        }
    );
    s
}

/// Quote for sh: single quotes, with `'` written as `'\''`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The advice as a POSIX sh script: `export` lines, each under its reason as a comment.
pub fn script(hw: &Hardware, model: Option<&ModelInfo>, advice: &Advice, model_path: Option<&Path>) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let _ = writeln!(s, "# Written by velollm optimize for {}. velollm changed nothing itself:", advice.engine);
    let _ = writeln!(s, "# source this file (. ./FILE) in the shell that starts the server, then (re)start it.");
    let _ = writeln!(s, "# machine: {}", clean(&hw.summary()));
    let _ = writeln!(s, "# model:   {}", model_line(model));
    let comment = |s: &mut String, text: &str| {
        let _ = writeln!(s, "\n# {}", clean(text));
    };
    match advice.engine {
        Engine::Ollama => {
            for r in &advice.settings {
                comment(&mut s, &r.reason);
                let _ = writeln!(s, "export {}={}", r.setting, sh_quote(&r.value));
            }
        }
        Engine::LlamaCpp | Engine::Vllm => {
            for r in &advice.settings {
                comment(&mut s, &format!("{}: {}", assignment(r), r.reason));
            }
            let var =
                if advice.engine == Engine::LlamaCpp { "VELOLLM_LLAMA_SERVER_FLAGS" } else { "VELOLLM_VLLM_FLAGS" };
            let _ = writeln!(s, "export {var}={}", sh_quote(&flags(advice)));
            if let Some(cmd) = example(advice, model_path, true) {
                let _ = writeln!(s, "# example:\n#   {cmd}");
            }
        }
    }
    if !advice.notes.is_empty() {
        let _ = writeln!(s, "\n# notes:");
        for n in &advice.notes {
            let _ = writeln!(s, "# - {}", clean(n));
        }
    }
    s
}

/// The --verify command with the advice applied: flags appended, or variables set through `env`.
fn applied(command: &str, advice: &Advice) -> String {
    let vars: Vec<String> =
        advice.settings.iter().filter(|r| r.kind == SettingKind::Env).map(|r| sh_quote(&assignment(r))).collect();
    let flags = flags(advice);
    let mut out = String::new();
    if !vars.is_empty() {
        out = format!("env {} ", vars.join(" "));
    }
    out.push_str(command);
    if !flags.is_empty() {
        out = format!("{out} {flags}");
    }
    out
}

/// `--verify`: benchmark the server before and after the advice, the same way, and compare.
async fn verify(args: &OptimizeArgs, advice: &Advice) -> Result<u8> {
    let before = args.launch.clone().unwrap_or_default();
    let after = applied(&before, advice);
    if after == before {
        return Err(InputError(anyhow!("--verify: there is no setting to apply, so nothing to compare")).into());
    }
    std::fs::create_dir_all(&args.verify_dir)
        .map_err(|e| anyhow!("cannot create --verify-dir {}: {e}", args.verify_dir.display()))?;
    let mut results = Vec::new();
    for (name, command) in [("before", &before), ("after", &after)] {
        let out = args.verify_dir.join(format!("{name}.json"));
        eprintln!("\nvelollm optimize --verify: {name}: {command}");
        let bench = BenchArgs {
            workload: WorkloadArgs { scenario: args.scenario.clone(), ..WorkloadArgs::default() },
            load: LoadArgs { requests: args.requests, concurrency: args.concurrency, ..LoadArgs::default() },
            output: OutputArgs { output: Some(out.clone()), no_progress: true, ..OutputArgs::default() },
            server: ServerArgs { launch: Some(command.clone()), ..ServerArgs::default() },
            ..BenchArgs::default()
        };
        let plan = crate::plan::bench(&bench)?;
        let watch = server::watch_options(&bench.server, Some(&out))?;
        let code = execute::run(plan, None, watch).await?;
        if code == exit::INTERRUPTED {
            return Ok(code);
        }
        results.push((name.to_string(), read_result(&out)?));
    }
    let after_run = results.pop().expect("two runs");
    let before_run = results.pop().expect("two runs");
    println!();
    let d = decide((&before_run.0, &before_run.1), &[after_run], &[], &Default::default(), &Default::default(), true);
    eprintln!("velollm: both results are in {}", args.verify_dir.display());
    Ok(verdict_code(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::server::hardware::{CpuInfo, GpuInfo, GpuVendor, MemoryInfo};

    fn machine(cores: u32, threads: u32, ram_gib: u64, avail_gib: u64, gpu: Option<GpuInfo>) -> Hardware {
        Hardware {
            os: if gpu.as_ref().is_some_and(|g| g.vendor == GpuVendor::Apple) { "macos" } else { "linux" }.into(),
            arch: if gpu.as_ref().is_some_and(|g| g.vendor == GpuVendor::Apple) { "aarch64" } else { "x86_64" }.into(),
            cpu: CpuInfo { cores: Some(cores), threads, ..Default::default() },
            memory: MemoryInfo { total_bytes: ram_gib << 30, available_bytes: Some(avail_gib << 30) },
            gpus: gpu.into_iter().collect(),
            ..Default::default()
        }
    }

    fn nvidia(name: &str, mib: u64) -> GpuInfo {
        GpuInfo {
            vendor: GpuVendor::Nvidia,
            name: name.into(),
            memory_bytes: Some(mib << 20),
            driver: Some("550.54.14".into()),
            unified_memory: false,
            source: "nvidia-smi".into(),
        }
    }

    /// The hardware profiles of the snapshots.
    fn profiles() -> Vec<(&'static str, Hardware)> {
        let m2 = GpuInfo {
            vendor: GpuVendor::Apple,
            name: "Apple M2".into(),
            memory_bytes: Some(16 << 30),
            driver: None,
            unified_memory: true,
            source: "system_profiler".into(),
        };
        vec![
            ("cpu_2core_24gib", machine(2, 2, 24, 22, None)),
            ("laptop_8gib_nvidia", machine(8, 16, 32, 28, Some(nvidia("NVIDIA GeForce RTX 4060 Laptop GPU", 8188)))),
            ("rtx4090_24gib", machine(16, 32, 64, 60, Some(nvidia("NVIDIA GeForce RTX 4090", 24564)))),
            ("h100_80gib", machine(32, 64, 256, 240, Some(nvidia("NVIDIA H100 80GB HBM3", 81559)))),
            ("apple_m2_16gib", machine(8, 8, 16, 12, Some(m2))),
        ]
    }

    /// A 3B Q4_K_M model shaped like Llama 3.2 3B (its config.json: 28 layers, 8 KV heads, head dim 128,
    /// 131072 positions, 3.21 B parameters), weights estimated from the quantize table.
    fn llama_3b_q4() -> ModelInfo {
        ModelInfo {
            name: Some("Llama 3.2 3B Instruct".into()),
            context_length: Some(131072),
            layers: Some(28),
            kv_heads: Some(8),
            kv_dims: Some(256),
            ..ModelInfo::from_size(3_210_000_000, "Q4_K_M").expect("a known quantisation")
        }
    }

    #[test]
    fn optimize_snapshots() {
        for (name, hw) in profiles() {
            let mut out = String::new();
            for model in [Some(llama_3b_q4()), None] {
                for engine in [Engine::Ollama, Engine::LlamaCpp, Engine::Vllm] {
                    let advice = recommend(&hw, model.as_ref(), engine);
                    out.push_str(&render(&hw, model.as_ref(), &advice, None));
                    out.push_str("\n----------------------------------------\n\n");
                }
            }
            insta::assert_snapshot!(name, out);
        }
    }

    #[test]
    fn scripts_snapshot() {
        let (_, hw) = profiles().swap_remove(2);
        let model = llama_3b_q4();
        let mut out = String::new();
        for engine in [Engine::Ollama, Engine::LlamaCpp, Engine::Vllm] {
            let advice = recommend(&hw, Some(&model), engine);
            out.push_str(&script(&hw, Some(&model), &advice, Some(Path::new("models/llama-3.2-3b.Q4_K_M.gguf"))));
            out.push_str("\n# ----------------------------------------\n\n");
        }
        insta::assert_snapshot!("scripts_rtx4090", out);
    }

    #[test]
    fn shell_quoting_and_comments_are_safe() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(clean("x\ny\rz"), "x y z");
    }
}
