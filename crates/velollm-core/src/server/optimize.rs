//! `velollm optimize`'s rules: from a machine's [`Hardware`] and, when known, the model's size and shape to
//! recommended Ollama, llama.cpp and vLLM settings, each with the reason and the numbers it came from.
//!
//! The rule set is small on purpose (docs/optimize.md lists each rule and its source). Memory is planned
//! with 90 % of the accelerator's memory (the share vLLM's default `--gpu-memory-utilization 0.9` takes);
//! weights are the GGUF file's size or, from `--model-size`, parameters × bits per weight ÷ 8 (an estimate);
//! the KV cache is 2 × layers × tokens × KV heads × head dim × bytes per element when the GGUF gives those.
//! A setting that cannot be reasoned about from these inputs is left out, never guessed.

use crate::server::gguf::GgufInfo;
use crate::server::hardware::{Accelerator, GIB, Hardware, gib};
use std::fmt;
use std::str::FromStr;

/// Share of the accelerator's memory velollm plans with (vLLM's default `--gpu-memory-utilization`).
pub const MEMORY_SHARE: f64 = 0.9;
/// Most parallel slots recommended: Ollama's former automatic choice was 4 or 1 by available memory.
pub const MAX_PARALLEL: u64 = 4;
/// Bytes per KV-cache element at f16 (the llama.cpp and Ollama default; vLLM's bf16/fp16 too).
pub const KV_F16: f64 = 2.0;
/// Bytes per KV-cache element at q8_0: ggml's `block_q8_0` stores 32 values in 34 bytes.
pub const KV_Q8_0: f64 = 34.0 / 32.0;
/// Bytes per KV-cache element at vLLM's fp8.
pub const KV_FP8: f64 = 1.0;
/// Parameters of Llama-3-8B, the model llama.cpp's quantize table (`tools/quantize/quantize.cpp`) sizes.
const LLAMA3_8B_PARAMS: f64 = 8.03e9;

/// An input `optimize` cannot use.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimizeError {
    /// `--for` names no supported engine.
    #[error("unknown engine '{0}': use ollama, llama.cpp or vllm")]
    Engine(String),
    /// `--model-size` is not a parameter count.
    #[error("model size '{0}' is not a parameter count: write it like 135m, 3b, 1.5b or 70b")]
    Size(String),
    /// A quantisation without a known bits-per-weight figure.
    #[error("unknown quantisation '{0}': use one of {1}")]
    Quantization(String, String),
    /// The GGUF file gives no parameter count.
    #[error("the GGUF file has neither general.parameter_count nor tensor infos: pass --model-size instead")]
    NoParameters,
}

/// The inference server the settings are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Ollama: `OLLAMA_*` environment variables of `ollama serve`.
    Ollama,
    /// llama.cpp's `llama-server` flags.
    LlamaCpp,
    /// vLLM's `vllm serve` flags.
    Vllm,
}

impl FromStr for Engine {
    type Err = OptimizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ollama" => Ok(Engine::Ollama),
            "llama.cpp" | "llamacpp" | "llama-cpp" | "llama-server" => Ok(Engine::LlamaCpp),
            "vllm" => Ok(Engine::Vllm),
            _ => Err(OptimizeError::Engine(s.to_string())),
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Ollama => "Ollama",
            Engine::LlamaCpp => "llama.cpp (llama-server)",
            Engine::Vllm => "vLLM",
        })
    }
}

/// Parse a parameter count such as `135m`, `3b`, `1.5B`, `70b` or `8000000`.
pub fn parse_model_size(text: &str) -> Result<u64, OptimizeError> {
    let t = text.trim().to_ascii_lowercase();
    let err = || OptimizeError::Size(text.to_string());
    let (num, scale) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1e3),
        Some((i, 'm')) => (&t[..i], 1e6),
        Some((i, 'b')) => (&t[..i], 1e9),
        Some((i, 't')) => (&t[..i], 1e12),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| err())?;
    let params = v * scale;
    if !(1.0..=1e15).contains(&params) {
        return Err(err());
    }
    Ok(params.round() as u64)
}

/// Bits per weight of a llama.cpp quantisation. K-quant and legacy mixes: the model sizes in llama.cpp's
/// quantize table (`tools/quantize/quantize.cpp`, GiB for Llama-3-8B, 8.03 B parameters) × 8 ÷ parameters;
/// IQ types: the bpw that table states; F16/BF16/F32: their width.
pub fn bits_per_weight(quant: &str) -> Option<f64> {
    let from_llama3 = |gib: f64| gib * GIB * 8.0 / LLAMA3_8B_PARAMS;
    Some(match quant.to_ascii_uppercase().as_str() {
        "F32" => 32.0,
        "F16" | "BF16" => 16.0,
        "Q8_0" => from_llama3(7.96),
        "Q6_K" => from_llama3(6.14),
        "Q5_K_M" | "Q5_K" => from_llama3(5.33),
        "Q5_K_S" => from_llama3(5.21),
        "Q5_1" => from_llama3(5.65),
        "Q5_0" => from_llama3(5.21),
        "Q4_K_M" | "Q4_K" => from_llama3(4.58),
        "Q4_K_S" => from_llama3(4.37),
        "Q4_1" => from_llama3(4.78),
        "Q4_0" => from_llama3(4.34),
        "Q3_K_L" => from_llama3(4.03),
        "Q3_K_M" | "Q3_K" => from_llama3(3.74),
        "Q3_K_S" => from_llama3(3.41),
        "Q2_K" | "Q2_K_S" => from_llama3(2.96),
        "IQ4_NL" => 4.50,
        "IQ4_XS" => 4.25,
        "IQ3_M" => 3.66,
        "IQ3_S" => 3.44,
        "IQ3_XS" => 3.3,
        "IQ3_XXS" => 3.06,
        "IQ2_M" => 2.7,
        "IQ2_S" => 2.5,
        "IQ2_XS" => 2.31,
        "IQ2_XXS" => 2.06,
        "IQ1_M" => 1.75,
        "IQ1_S" => 1.56,
        _ => return None,
    })
}

/// The quantisations [`bits_per_weight`] knows, for error messages.
pub const KNOWN_QUANTS: &str = "Q4_K_M, Q4_K_S, Q4_0, Q4_1, Q5_K_M, Q5_K_S, Q5_0, Q5_1, Q6_K, Q8_0, Q3_K_M, Q3_K_S, \
     Q3_K_L, Q2_K, IQ4_XS, IQ4_NL, IQ3_M, IQ3_S, IQ3_XS, IQ3_XXS, IQ2_M, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M, IQ1_S, F16, BF16, F32";

/// What optimize knows about the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Name (`general.name`), when known.
    pub name: Option<String>,
    /// Parameter count.
    pub parameters: u64,
    /// Quantisation name, when known.
    pub quantization: Option<String>,
    /// Bytes of weights.
    pub weights_bytes: u64,
    /// True when `weights_bytes` is a measured file size, false for parameters × bits per weight.
    pub weights_measured: bool,
    /// Context the model was trained for, when known.
    pub context_length: Option<u64>,
    /// Transformer layers, when known.
    pub layers: Option<u64>,
    /// KV heads, when known.
    pub kv_heads: Option<u64>,
    /// Key plus value head dimensions, when known.
    pub kv_dims: Option<u64>,
}

impl ModelInfo {
    /// A model known by its size only (`--model-size 3b --quant Q4_K_M`): weights estimated.
    pub fn from_size(parameters: u64, quant: &str) -> Result<Self, OptimizeError> {
        let bpw = bits_per_weight(quant)
            .ok_or_else(|| OptimizeError::Quantization(quant.to_string(), KNOWN_QUANTS.to_string()))?;
        Ok(ModelInfo {
            name: None,
            parameters,
            quantization: Some(quant.to_ascii_uppercase()),
            weights_bytes: (parameters as f64 * bpw / 8.0).round() as u64,
            weights_measured: false,
            context_length: None,
            layers: None,
            kv_heads: None,
            kv_dims: None,
        })
    }

    /// A model read from a GGUF file of `file_bytes` bytes (its weights: the file's size).
    pub fn from_gguf(g: &GgufInfo, file_bytes: u64) -> Result<Self, OptimizeError> {
        Ok(ModelInfo {
            name: g.name().map(str::to_string),
            parameters: g.parameter_count().ok_or(OptimizeError::NoParameters)?,
            quantization: g.quantization().map(str::to_string),
            weights_bytes: file_bytes,
            weights_measured: true,
            context_length: g.context_length().filter(|&c| c > 0),
            layers: g.block_count().filter(|&l| l > 0),
            kv_heads: g.head_count_kv().filter(|&h| h > 0),
            kv_dims: g.head_dims().map(|(k, v)| k + v).filter(|&d| d > 0),
        })
    }

    /// KV-cache bytes per token at `bytes_per_element`: layers × KV heads × (key + value dims) × bytes.
    pub fn kv_bytes_per_token(&self, bytes_per_element: f64) -> Option<f64> {
        Some((self.layers? * self.kv_heads? * self.kv_dims?) as f64 * bytes_per_element)
    }

    /// One line: name, parameters, quantisation, weights, context.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} parameters", params(self.parameters))];
        if let Some(q) = &self.quantization {
            parts.push(q.clone());
        }
        parts.push(format!(
            "{} weights{}",
            gib(self.weights_bytes),
            if self.weights_measured { " (file size)" } else { " (estimate)" }
        ));
        if let Some(c) = self.context_length {
            parts.push(format!("trained context {c}"));
        }
        match &self.name {
            Some(n) => format!("{n} ({})", parts.join(", ")),
            None => parts.join(", "),
        }
    }
}

/// A parameter count for people: `135M`, `3.2B`.
pub fn params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 { format!("{:.1}B", n / 1e9) } else { format!("{:.0}M", n / 1e6) }
}

/// How a recommendation is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    /// An environment variable of the server (`export NAME=value`).
    Env,
    /// A command-line flag (`--flag value`, or `--flag` alone when the value is empty).
    Flag,
}

/// One recommended setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Variable or flag name, e.g. `OLLAMA_NUM_PARALLEL` or `-np`.
    pub setting: String,
    /// Value (empty for a switch).
    pub value: String,
    /// Why, with the numbers it came from.
    pub reason: String,
    /// How it is applied.
    pub kind: SettingKind,
}

/// Everything `optimize` says for one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// The engine.
    pub engine: Engine,
    /// Recommended settings, in the order to apply them.
    pub settings: Vec<Recommendation>,
    /// What was left out and why, and caveats.
    pub notes: Vec<String>,
}

/// The memory plan shared by every engine's rules.
struct MemoryPlan {
    /// Where the model runs, in words.
    place: String,
    /// Bytes planned with (90 % of the accelerator's).
    budget: f64,
    /// Per-request context and whether it needs the q8_0/fp8 cache, when the model's shape is known.
    context: Option<ContextPlan>,
    /// Layers to put on the GPU, when the weights alone exceed the budget.
    partial_layers: Option<(u64, u64)>,
}

struct ContextPlan {
    tokens: u64,
    quantized_kv: bool,
    parallel: u64,
    reason: String,
    parallel_reason: String,
}

fn plan(hw: &Hardware, model: Option<&ModelInfo>, quantized_bytes: f64, quantized_name: &str) -> MemoryPlan {
    let total = hw.usable_accelerator_bytes() as f64;
    let budget = total * MEMORY_SHARE;
    let place = match hw.accelerator() {
        Accelerator::Dedicated { gpu, .. } => format!("{}'s {} of VRAM", gpu.name, gib(total as u64)),
        Accelerator::Unified { gpu } => {
            format!("{}'s unified memory ({} of RAM available)", gpu.name, gib(total as u64))
        }
        Accelerator::Cpu => format!("RAM ({} available)", gib(total as u64)),
    };
    let mut out = MemoryPlan { place, budget, context: None, partial_layers: None };
    let Some(m) = model else { return out };
    let weights = m.weights_bytes as f64;
    if weights > budget {
        if let (Some(layers), Accelerator::Dedicated { .. }) = (m.layers, hw.accelerator()) {
            out.partial_layers = Some(((layers as f64 * budget / weights).floor() as u64, layers));
        }
        return out;
    }
    let (Some(kv16), Some(trained)) = (m.kv_bytes_per_token(KV_F16), m.context_length) else { return out };
    let kvq = m.kv_bytes_per_token(quantized_bytes).unwrap_or(kv16);
    let room = budget - weights;
    let kv_gib = |tokens: u64, per: f64| gib((tokens as f64 * per) as u64);
    let (tokens, quantized_kv, reason) = if trained as f64 * kv16 <= room {
        let r = format!(
            "the model was trained for {trained} tokens; their KV cache at f16 ({}) fits beside the {} of weights in \
             90 % of {}",
            kv_gib(trained, kv16),
            gib(m.weights_bytes),
            out.place
        );
        (trained, false, r)
    } else if trained as f64 * kvq <= room {
        let r = format!(
            "the model was trained for {trained} tokens; their KV cache needs {} at f16 but {} at {quantized_name}, \
             which fits beside the {} of weights in 90 % of {}",
            kv_gib(trained, kv16),
            kv_gib(trained, kvq),
            gib(m.weights_bytes),
            out.place
        );
        (trained, true, r)
    } else {
        let fit = (room / kv16).floor() as u64;
        let tokens = if fit >= 1 { 1u64 << (63 - fit.leading_zeros()) } else { 0 };
        let r = format!(
            "the model's trained {trained} tokens need a {} KV cache at f16 ({} at {quantized_name}), more than the {} \
             left beside the weights in 90 % of {}; {tokens} (the largest power of two that fits at f16) does fit",
            kv_gib(trained, kv16),
            kv_gib(trained, kvq),
            gib(room as u64),
            out.place
        );
        (tokens, false, r)
    };
    if tokens == 0 {
        return out;
    }
    let per_slot = tokens as f64 * if quantized_kv { kvq } else { kv16 };
    let (parallel, parallel_reason) = match hw.accelerator() {
        Accelerator::Cpu => (
            1,
            format!(
                "{} CPU cores: parallel requests share them, so each one generates slower; one at a time keeps \
                 latency lowest",
                hw.cpu.compute_cores()
            ),
        ),
        _ => {
            let p = ((room / per_slot).floor() as u64).clamp(1, MAX_PARALLEL);
            (
                p,
                format!(
                    "each parallel slot needs its own {}-token KV cache ({}); there is room for {p} beside the weights in 90 % of \
                     {} (at most {MAX_PARALLEL}, Ollama's former automatic choice)",
                    tokens,
                    gib(per_slot as u64),
                    out.place
                ),
            )
        }
    };
    out.context = Some(ContextPlan { tokens, quantized_kv, parallel, reason, parallel_reason });
    out
}

fn env(setting: &str, value: impl ToString, reason: impl Into<String>) -> Recommendation {
    Recommendation { setting: setting.into(), value: value.to_string(), reason: reason.into(), kind: SettingKind::Env }
}

fn flag(setting: &str, value: impl ToString, reason: impl Into<String>) -> Recommendation {
    Recommendation { setting: setting.into(), value: value.to_string(), reason: reason.into(), kind: SettingKind::Flag }
}

/// Recommended settings for `engine` on `hw`, for `model` when given.
pub fn recommend(hw: &Hardware, model: Option<&ModelInfo>, engine: Engine) -> Advice {
    let (settings, notes) = match engine {
        Engine::Ollama => ollama(hw, model),
        Engine::LlamaCpp => llama_cpp(hw, model),
        Engine::Vllm => vllm(hw, model),
    };
    Advice { engine, settings, notes }
}

/// The note every engine gets when the model's shape (layers, heads, context) is unknown.
fn shape_notes(hw: &Hardware, model: Option<&ModelInfo>, p: &MemoryPlan, notes: &mut Vec<String>) {
    match model {
        None => notes.push(
            "no model given: the context length and parallel slots depend on its size; pass --model FILE.gguf \
             (or --model-size 3b)"
                .into(),
        ),
        Some(m) if (m.weights_bytes as f64) > p.budget => notes.push(format!(
            "the model's {} of weights exceed 90 % of {}: {}",
            gib(m.weights_bytes),
            p.place,
            match hw.accelerator() {
                Accelerator::Dedicated { .. } => "only part of it runs on the GPU; a smaller quantisation would fit",
                _ => "it would swap; choose a smaller quantisation or model",
            }
        )),
        Some(m) if m.kv_bytes_per_token(KV_F16).is_none() || m.context_length.is_none() => notes.push(
            "the model's layers, KV heads and trained context are unknown (--model-size gives only the parameter \
             count): pass --model FILE.gguf to size the context and parallel slots"
                .into(),
        ),
        Some(_) => {}
    }
}

fn ollama(hw: &Hardware, model: Option<&ModelInfo>) -> (Vec<Recommendation>, Vec<String>) {
    let p = plan(hw, model, KV_Q8_0, "q8_0");
    let mut s = Vec::new();
    let mut notes = Vec::new();
    let cpu = matches!(hw.accelerator(), Accelerator::Cpu);
    match (&p.context, cpu) {
        (Some(c), _) => s.push(env("OLLAMA_NUM_PARALLEL", c.parallel, &c.parallel_reason)),
        (None, true) => s.push(env(
            "OLLAMA_NUM_PARALLEL",
            1,
            format!(
                "{} CPU cores: parallel requests share them, so each one generates slower; one at a time keeps \
                 latency lowest",
                hw.cpu.compute_cores()
            ),
        )),
        (None, false) => {}
    }
    if let Some(c) = &p.context {
        s.push(env("OLLAMA_CONTEXT_LENGTH", c.tokens, &c.reason));
        if c.quantized_kv {
            s.push(env(
                "OLLAMA_FLASH_ATTENTION",
                1,
                "Ollama quantises the KV cache only with flash attention on (docs/faq: K/V cache quantization)",
            ));
            s.push(env(
                "OLLAMA_KV_CACHE_TYPE",
                "q8_0",
                "q8_0 uses about half the memory of f16 with a very small loss in precision (Ollama FAQ); it is what \
                 lets the trained context fit",
            ));
        }
    }
    if cpu {
        s.push(env(
            "OLLAMA_MAX_LOADED_MODELS",
            1,
            format!(
                "no GPU: models loaded together answer on the same {} CPU cores and {} of RAM; one model keeps them \
                 all for it (Ollama's default is 3 for CPU inference)",
                hw.cpu.compute_cores(),
                gib(hw.memory.total_bytes)
            ),
        ));
    }
    let held = match model {
        Some(m) => format!("its {} of weights stay in memory while idle", gib(m.weights_bytes)),
        None => "the model's memory stays in use while idle".to_string(),
    };
    s.push(env(
        "OLLAMA_KEEP_ALIVE",
        "-1",
        format!(
            "the default 5m unloads an idle model and the next request pays the whole load again; -1 keeps it loaded \
             ({held}; unload with `ollama stop MODEL`)"
        ),
    ));
    if let Some((on_gpu, layers)) = p.partial_layers {
        notes.push(format!(
            "about {on_gpu} of the model's {layers} layers fit on the GPU (an estimate); Ollama sizes this itself \
             (the per-model option num_gpu overrides it)"
        ));
    }
    shape_notes(hw, model, &p, &mut notes);
    notes.push(
        "OLLAMA_NUM_GPU, OLLAMA_NUM_BATCH and OLLAMA_NUM_CTX are not read by the Ollama server (envconfig/config.go): \
         the default context is OLLAMA_CONTEXT_LENGTH; num_gpu, num_batch and num_ctx are per-model options (a \
         Modelfile PARAMETER or the request's options), and their defaults (GPU layers sized by Ollama, batch 512) \
         are left alone"
            .into(),
    );
    (s, notes)
}

fn llama_cpp(hw: &Hardware, model: Option<&ModelInfo>) -> (Vec<Recommendation>, Vec<String>) {
    let p = plan(hw, model, KV_Q8_0, "q8_0");
    let mut s = Vec::new();
    let mut notes = Vec::new();
    let cores = hw.cpu.compute_cores();
    let cores_text = match hw.cpu.cores {
        Some(c) if c != hw.cpu.threads => format!("{c} physical cores ({} threads)", hw.cpu.threads),
        _ => format!("{cores} cores"),
    };
    s.push(flag(
        "-t",
        cores,
        format!(
            "{cores_text}: llama.cpp's performance guide says to use the number of physical cores, even with a GPU; \
             more threads than cores oversaturate the CPU and can be many times slower"
        ),
    ));
    let gpu = !matches!(hw.accelerator(), Accelerator::Cpu);
    match (model, p.partial_layers, gpu) {
        (Some(m), None, true) if (m.weights_bytes as f64) <= p.budget => {
            let kv = p
                .context
                .as_ref()
                .map(|c| format!(" with the KV cache of {} tokens", c.tokens * c.parallel))
                .unwrap_or_default();
            s.push(flag(
                "-ngl",
                999,
                format!(
                    "the {} of weights{kv} fit in 90 % of {}: offload every layer (999 = all; builds before \
                     '-ngl auto' keep everything on the CPU by default)",
                    gib(m.weights_bytes),
                    p.place
                ),
            ));
        }
        (Some(m), Some((on_gpu, layers)), true) => s.push(flag(
            "-ngl",
            on_gpu,
            format!(
                "the {} of weights exceed 90 % of {}: about {on_gpu} of {layers} layers fit (an estimate that leaves no \
                 room for the KV cache; lower it if loading fails)",
                gib(m.weights_bytes),
                p.place
            ),
        )),
        _ => {}
    }
    match &p.context {
        Some(c) => {
            s.push(flag("-np", c.parallel, &c.parallel_reason));
            s.push(flag(
                "-c",
                c.tokens * c.parallel,
                format!("{} per slot × {} slot(s) (llama-server divides -c among its slots): {}", c.tokens, c.parallel, c.reason),
            ));
            if c.quantized_kv {
                s.push(flag("-fa", "on", "llama.cpp needs flash attention for a quantised V cache"));
                s.push(flag(
                    "-ctk",
                    "q8_0",
                    "a q8_0 K cache takes 34 bytes per 32 values instead of 64 at f16: it is what lets the trained \
                     context fit",
                ));
                s.push(flag("-ctv", "q8_0", "the V cache likewise"));
            }
        }
        None if !gpu => s.push(flag(
            "-np",
            1,
            format!("{cores} CPU cores: parallel requests share them, so each one generates slower; one at a time keeps latency lowest"),
        )),
        None => {}
    }
    shape_notes(hw, model, &p, &mut notes);
    notes.push(
        "continuous batching (--cont-batching) is on by default; -b/-ub keep their defaults (2048/512): nothing here \
         says a different batch is faster — measure it with `velollm tune`"
            .into(),
    );
    (s, notes)
}

fn vllm(hw: &Hardware, model: Option<&ModelInfo>) -> (Vec<Recommendation>, Vec<String>) {
    let mut s = Vec::new();
    let mut notes = Vec::new();
    let (count, vendor) = match hw.accelerator() {
        Accelerator::Dedicated { gpu, count, .. } => (count as u64, gpu.vendor.label()),
        _ => {
            notes.push(
                "vLLM's GPU builds need an NVIDIA (CUDA) or AMD (ROCm) GPU, and none with known memory was detected: \
                 use --for llama.cpp or --for ollama on this machine"
                    .into(),
            );
            return (s, notes);
        }
    };
    let p = plan(hw, model, KV_FP8, "fp8");
    if let Some(m) = model
        && count > 1
        && m.weights_bytes as f64 > p.budget
    {
        s.push(flag(
            "--tensor-parallel-size",
            count,
            format!(
                "the {} of weights exceed 90 % of one GPU ({}); {count} {vendor} GPUs split them",
                gib(m.weights_bytes),
                p.place
            ),
        ));
    } else if count > 1 {
        notes.push(format!(
            "{count} {vendor} GPUs: a model that fits on one needs no --tensor-parallel-size (each GPU can serve its \
             own copy)"
        ));
    }
    if let Some(c) = &p.context {
        s.push(flag("--max-model-len", c.tokens, &c.reason));
        if c.quantized_kv {
            s.push(flag(
                "--kv-cache-dtype",
                "fp8",
                "an fp8 KV cache takes half the memory of the 16-bit default: it is what lets the trained context fit",
            ));
        }
    }
    s.push(flag(
        "--enable-prefix-caching",
        "",
        "requests that share a prefix (a system prompt, earlier chat turns) skip its prefill; on by default in vLLM's \
         V1 engine, explicit for older releases",
    ));
    shape_notes(hw, model, &p, &mut notes);
    if model.is_some_and(|m| m.weights_measured) {
        notes.push(
            "sizes come from the GGUF file; vLLM usually serves the Hugging Face checkpoint, whose 16-bit weights are \
             larger: re-run with --model-size and --quant F16 for that"
                .into(),
        );
    }
    notes.push(
        "--gpu-memory-utilization keeps its default 0.9, the share planned with here; --max-num-seqs keeps its default"
            .into(),
    );
    (s, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hardware::{CpuInfo, GpuInfo, GpuVendor, MemoryInfo};

    fn cpu_box() -> Hardware {
        Hardware {
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu: CpuInfo { cores: Some(2), threads: 2, ..Default::default() },
            memory: MemoryInfo { total_bytes: 24 << 30, available_bytes: Some(22 << 30) },
            ..Default::default()
        }
    }

    fn with_gpu(memory: u64) -> Hardware {
        let mut hw = cpu_box();
        hw.gpus.push(GpuInfo {
            vendor: GpuVendor::Nvidia,
            name: "GPU".into(),
            memory_bytes: Some(memory),
            driver: None,
            unified_memory: false,
            source: "test".into(),
        });
        hw
    }

    fn llama_3b() -> ModelInfo {
        ModelInfo {
            context_length: Some(131072),
            layers: Some(28),
            kv_heads: Some(8),
            kv_dims: Some(256),
            ..ModelInfo::from_size(3_210_000_000, "Q4_K_M").unwrap()
        }
    }

    fn value<'a>(a: &'a Advice, setting: &str) -> Option<&'a str> {
        a.settings.iter().find(|r| r.setting == setting).map(|r| r.value.as_str())
    }

    #[test]
    fn model_sizes_parse() {
        assert_eq!(parse_model_size("3b"), Ok(3_000_000_000));
        assert_eq!(parse_model_size("1.5B"), Ok(1_500_000_000));
        assert_eq!(parse_model_size("135m"), Ok(135_000_000));
        assert_eq!(parse_model_size("8000"), Ok(8000));
        for bad in ["", "b", "3x", "-1b", "nanb", "1e30b"] {
            assert!(parse_model_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bits_per_weight_follow_the_quantize_table() {
        let q4km = bits_per_weight("q4_k_m").unwrap();
        assert!((q4km - 4.90).abs() < 0.01, "{q4km}");
        assert!((bits_per_weight("Q8_0").unwrap() - 8.51).abs() < 0.01);
        assert_eq!(bits_per_weight("F16"), Some(16.0));
        assert_eq!(bits_per_weight("Q9_Z"), None);
        let m = ModelInfo::from_size(3_000_000_000, "Q4_K_M").unwrap();
        assert!((m.weights_bytes as f64 / 1e9 - 1.84).abs() < 0.01);
        assert!(matches!(ModelInfo::from_size(1, "Q9"), Err(OptimizeError::Quantization(..))));
    }

    #[test]
    fn engines_parse() {
        assert_eq!("llama.cpp".parse::<Engine>(), Ok(Engine::LlamaCpp));
        assert_eq!("Ollama".parse::<Engine>(), Ok(Engine::Ollama));
        assert!("tgi".parse::<Engine>().is_err());
    }

    #[test]
    fn kv_cache_per_token() {
        // Llama 3.2 3B: 28 layers × 8 KV heads × (128 + 128) × 2 bytes = 112 KiB per token.
        assert_eq!(llama_3b().kv_bytes_per_token(KV_F16), Some(114_688.0));
    }

    #[test]
    fn cpu_box_runs_one_request_at_a_time_on_every_core() {
        let a = recommend(&cpu_box(), None, Engine::LlamaCpp);
        assert_eq!(value(&a, "-t"), Some("2"));
        assert_eq!(value(&a, "-np"), Some("1"));
        assert_eq!(value(&a, "-ngl"), None, "no GPU: no offload flag");
        let o = recommend(&cpu_box(), None, Engine::Ollama);
        assert_eq!(value(&o, "OLLAMA_NUM_PARALLEL"), Some("1"));
        assert_eq!(value(&o, "OLLAMA_CONTEXT_LENGTH"), None, "no model: no context");
        assert!(recommend(&cpu_box(), None, Engine::Vllm).settings.is_empty());
    }

    #[test]
    fn the_trained_context_is_used_when_it_fits_and_quantised_when_that_makes_it_fit() {
        // 80 GiB: 14 GiB of KV per slot at f16 fits 4 times.
        let big = recommend(&with_gpu(80 << 30), Some(&llama_3b()), Engine::LlamaCpp);
        assert_eq!(value(&big, "-np"), Some("4"));
        assert_eq!(value(&big, "-c"), Some("524288"));
        assert_eq!(value(&big, "-ctk"), None);
        // 12 GiB: 14 GiB at f16 does not fit, 7.4 GiB at q8_0 does.
        let mid = recommend(&with_gpu(12 << 30), Some(&llama_3b()), Engine::Ollama);
        assert_eq!(value(&mid, "OLLAMA_CONTEXT_LENGTH"), Some("131072"));
        assert_eq!(value(&mid, "OLLAMA_KV_CACHE_TYPE"), Some("q8_0"));
        assert_eq!(value(&mid, "OLLAMA_FLASH_ATTENTION"), Some("1"));
        // 8 GiB: neither fits; the largest power of two at f16.
        let small = recommend(&with_gpu(8 << 30), Some(&llama_3b()), Engine::Ollama);
        assert_eq!(value(&small, "OLLAMA_CONTEXT_LENGTH"), Some("32768"));
        assert_eq!(value(&small, "OLLAMA_KV_CACHE_TYPE"), None);
    }

    #[test]
    fn weights_larger_than_the_gpu_are_split() {
        let mut m = llama_3b();
        m.weights_bytes = 40 << 30;
        let a = recommend(&with_gpu(24 << 30), Some(&m), Engine::LlamaCpp);
        // 28 layers × 21.6 GiB ÷ 40 GiB = 15.1.
        assert_eq!(value(&a, "-ngl"), Some("15"));
        assert_eq!(value(&a, "-c"), None);
    }
}
