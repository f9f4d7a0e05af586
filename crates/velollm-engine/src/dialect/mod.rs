//! API dialects: how a generation request is written and how each stream message is read.
//!
//! A dialect only builds request bodies and maps one stream message to [`Parsed`]; it never looks at the
//! clock. Timing is taken once, by the transport (see [`crate::exec`]). One file per dialect family.

pub(crate) mod anthropic;
mod llamacpp;
pub(crate) mod ollama;
mod openai;

use crate::wire::Framing;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use velollm_core::document::scenario::CacheHints;
use velollm_core::measure::record::{Channel, NativeTimings, Usage};

/// A generation request, independent of dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Model name.
    pub model: String,
    /// Optional system prompt.
    pub system: Option<String>,
    /// Stable context sent at the start of the current user message, before the prompt.
    pub context: Option<String>,
    /// Explicit prompt-cache hints (Anthropic `cache_control`); other dialects ignore them.
    pub cache: CacheHints,
    /// Earlier exchanges of the conversation, oldest first: (user message, the assistant's real answer).
    pub history: Vec<(String, String)>,
    /// The current user message.
    pub prompt: String,
    /// Maximum tokens to generate.
    pub max_tokens: u32,
    /// Ask for exactly `max_tokens` (`ignore_eos` / `min_tokens`) where the dialect supports it.
    pub exact_output: bool,
    /// Sampling temperature (server default when `None`).
    pub temperature: Option<f64>,
    /// Tool definitions (OpenAI `tools` format), for chat dialects.
    pub tools: Option<Value>,
    /// A recorded history (OpenAI chat messages, tool calls and results included) sent as it is, instead of
    /// the messages built from `system`, `history` and `prompt`: a trace's call ([`velollm_core::workload::trace`]).
    pub recorded: Option<Vec<Value>>,
}

impl GenRequest {
    /// A single-turn request with no system prompt, history or tools.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>, max_tokens: u32) -> GenRequest {
        GenRequest {
            model: model.into(),
            system: None,
            context: None,
            cache: CacheHints::default(),
            history: Vec::new(),
            prompt: prompt.into(),
            max_tokens,
            exact_output: false,
            temperature: None,
            tools: None,
            recorded: None,
        }
    }

    /// Chat messages: system, then each earlier exchange, then the current user message.
    fn messages(&self) -> Vec<Value> {
        if let Some(recorded) = &self.recorded {
            return recorded.clone();
        }
        let mut m = Vec::with_capacity(2 + 2 * self.history.len());
        if let Some(s) = &self.system {
            m.push(serde_json::json!({"role": "system", "content": s}));
        }
        for (user, assistant) in &self.history {
            m.push(serde_json::json!({"role": "user", "content": user}));
            m.push(serde_json::json!({"role": "assistant", "content": assistant}));
        }
        m.push(serde_json::json!({"role": "user", "content": self.user_message()}));
        m
    }

    /// The current user message: the stable context, then the prompt.
    pub(crate) fn user_message(&self) -> String {
        match &self.context {
            Some(c) => format!("{c}\n\n{}", self.prompt),
            None => self.prompt.clone(),
        }
    }

    /// One prompt text for completion dialects: the system prompt, then a plain transcript of earlier turns.
    fn flat_prompt(&self) -> String {
        let mut p = String::new();
        if let Some(s) = &self.system {
            p.push_str(s);
            p.push_str("\n\n");
        }
        if self.history.is_empty() {
            p.push_str(&self.user_message());
            return p;
        }
        for (user, assistant) in &self.history {
            p.push_str(&format!("User: {user}\nAssistant: {assistant}\n"));
        }
        p.push_str(&format!("User: {}\nAssistant:", self.user_message()));
        p
    }
}

/// What one stream message said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Output carried by the message, per channel, with its text (may hold several channels).
    pub pieces: Vec<(Channel, String)>,
    /// Tokens in the message when the server says (llama.cpp `tokens`).
    pub tokens: Option<u32>,
    /// Usage, when the message carries it.
    pub usage: Option<Usage>,
    /// Engine-native timings, when the message carries them.
    pub native: Option<NativeTimings>,
    /// Finish reason, when the message carries one.
    pub finish_reason: Option<String>,
    /// True when this message ends the stream (`[DONE]`, `done: true`, `stop: true`).
    pub done: bool,
    /// An error reported by the server inside the stream.
    pub error: Option<String>,
    /// Tool-call fragments: (call index, function name when given, arguments fragment).
    pub tool_deltas: Vec<(usize, Option<String>, String)>,
}

impl Parsed {
    /// The channel this message is recorded under when it carries no output: role-only or usage/empty.
    pub fn empty_channel(&self) -> Channel {
        if self.pieces.iter().any(|(c, _)| *c == Channel::Role) { Channel::Role } else { Channel::Usage }
    }
}

/// The supported API dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DialectKind {
    /// OpenAI-compatible `/v1/chat/completions` (SSE).
    OpenAiChat,
    /// OpenAI-compatible `/v1/completions` (SSE).
    OpenAiCompletions,
    /// Ollama native `/api/chat` (NDJSON).
    OllamaChat,
    /// Ollama native `/api/generate` (NDJSON).
    OllamaGenerate,
    /// llama.cpp server native `/completion` (SSE with `timings`).
    LlamaCpp,
    /// Anthropic Messages `/v1/messages` (SSE with named events, `cache_control` breakpoints).
    Anthropic,
}

impl DialectKind {
    /// Every dialect.
    pub const ALL: [DialectKind; 6] = [
        DialectKind::OpenAiChat,
        DialectKind::OpenAiCompletions,
        DialectKind::OllamaChat,
        DialectKind::OllamaGenerate,
        DialectKind::LlamaCpp,
        DialectKind::Anthropic,
    ];

    /// The dialect's name as used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            DialectKind::OpenAiChat => "openai-chat",
            DialectKind::OpenAiCompletions => "openai-completions",
            DialectKind::OllamaChat => "ollama-chat",
            DialectKind::OllamaGenerate => "ollama-generate",
            DialectKind::LlamaCpp => "llamacpp",
            DialectKind::Anthropic => "anthropic",
        }
    }

    /// The request path, relative to the target's base URL.
    pub fn path(self) -> &'static str {
        match self {
            DialectKind::OpenAiChat => "/v1/chat/completions",
            DialectKind::OpenAiCompletions => "/v1/completions",
            DialectKind::OllamaChat => "/api/chat",
            DialectKind::OllamaGenerate => "/api/generate",
            DialectKind::LlamaCpp => "/completion",
            DialectKind::Anthropic => "/v1/messages",
        }
    }

    /// The stream framing.
    pub fn framing(self) -> Framing {
        match self {
            DialectKind::OllamaChat | DialectKind::OllamaGenerate => Framing::Ndjson,
            _ => Framing::Sse,
        }
    }

    /// True for the Ollama native dialects.
    pub fn is_ollama(self) -> bool {
        matches!(self, DialectKind::OllamaChat | DialectKind::OllamaGenerate)
    }

    /// Whether `exact_output` can be requested (`ignore_eos`); Ollama and Anthropic have no such option.
    pub fn supports_exact_output(self) -> bool {
        !self.is_ollama() && self != DialectKind::Anthropic
    }

    /// The JSON body of a streaming request.
    pub fn body(self, req: &GenRequest) -> Value {
        match self {
            DialectKind::OpenAiChat => openai::chat_body(req),
            DialectKind::OpenAiCompletions => openai::completions_body(req),
            DialectKind::OllamaChat => ollama::chat_body(req),
            DialectKind::OllamaGenerate => ollama::generate_body(req),
            DialectKind::LlamaCpp => llamacpp::body(req),
            DialectKind::Anthropic => anthropic::body(req),
        }
    }

    /// Parse one stream message (an SSE `data` payload or an NDJSON line).
    pub fn parse(self, message: &[u8]) -> Result<Parsed, String> {
        match self {
            DialectKind::OpenAiChat | DialectKind::OpenAiCompletions => openai::parse(message),
            DialectKind::OllamaChat | DialectKind::OllamaGenerate => ollama::parse(message),
            DialectKind::LlamaCpp => llamacpp::parse(message),
            DialectKind::Anthropic => anthropic::parse(message),
        }
    }
}

impl fmt::Display for DialectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DialectKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "openai" | "openai-chat" | "chat" | "vllm" | "sglang" | "tgi" => DialectKind::OpenAiChat,
            "openai-completions" | "completions" => DialectKind::OpenAiCompletions,
            "ollama" | "ollama-chat" => DialectKind::OllamaChat,
            "ollama-generate" => DialectKind::OllamaGenerate,
            "llamacpp" | "llama.cpp" | "llama-cpp" | "llama-server" => DialectKind::LlamaCpp,
            "anthropic" | "claude" => DialectKind::Anthropic,
            other => {
                let names: Vec<_> = DialectKind::ALL.iter().map(|d| d.name()).collect();
                return Err(format!("unknown backend '{other}': use auto, {}", names.join(", ")));
            }
        })
    }
}

/// Parse JSON, with a message that says what was wrong.
fn json(message: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(message).map_err(|e| {
        let shown = String::from_utf8_lossy(&message[..message.len().min(120)]).into_owned();
        format!("invalid JSON in stream ({e}): {shown}")
    })
}

/// A non-negative integer field.
fn uint(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// A non-empty string field.
fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The message of an `error` field, which servers send as a string or as `{"message": …}`.
fn error_message(v: &Value) -> Option<String> {
    match v.get("error")? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        e => Some(e.get("message").and_then(Value::as_str).map_or_else(|| e.to_string(), str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No server response can make a dialect panic: any bytes give a parse result or an error.
        #[test]
        fn parsing_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            for d in DialectKind::ALL {
                let _ = d.parse(&bytes);
            }
        }

        #[test]
        fn parsing_json_of_any_shape_never_panics(v in any::<u32>(), s in ".{0,20}") {
            let shapes = [
                format!(r#"{{"choices":[{{"delta":{{"content":{v},"tool_calls":"{s}"}}}}],"usage":{v}}}"#),
                format!(r#"{{"choices":{v},"timings":{{"prompt_ms":"{s}"}}}}"#),
                format!(r#"{{"message":{{"content":[{v}]}},"done":true,"eval_count":-{v}}}"#),
                format!(r#"{{"content":{v},"stop":"{s}","tokens":{v}}}"#),
                format!(r#"{{"error":{{"message":{v}}}}}"#),
                format!(r#"{{"type":"content_block_delta","index":-{v},"delta":{{"type":"input_json_delta","partial_json":{v}}}}}"#),
                format!(r#"{{"type":"message_start","message":{{"usage":{{"input_tokens":{v},"cache_read_input_tokens":"{s}"}}}}}}"#),
                format!(r#"{{"type":"content_block_start","content_block":{{"type":"tool_use","name":{v}}}}}"#),
            ];
            for shape in &shapes {
                for d in DialectKind::ALL {
                    let _ = d.parse(shape.as_bytes());
                }
            }
        }
    }

    #[test]
    fn backend_names() {
        for d in DialectKind::ALL {
            assert_eq!(d.name().parse::<DialectKind>().unwrap(), d);
        }
        assert_eq!("ollama".parse::<DialectKind>().unwrap(), DialectKind::OllamaChat);
        assert_eq!("claude".parse::<DialectKind>().unwrap(), DialectKind::Anthropic);
        assert!("grpc".parse::<DialectKind>().unwrap_err().contains("use auto, openai-chat"));
    }
}
