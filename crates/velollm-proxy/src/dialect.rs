//! The API dialects the proxy serves, and what each route means: which dialect it belongs to, whether it
//! generates (and so may be cached), how its streams end normally, and the shape of its errors.
//!
//! The proxy never translates between dialects: a route goes to an upstream that speaks it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An API dialect, as an upstream declares it speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenAI-compatible: `/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/v1/embeddings`.
    Openai,
    /// Anthropic Messages: `/v1/messages`.
    Anthropic,
    /// Ollama's native API: `/api/chat`, `/api/generate`, `/api/tags`.
    Ollama,
    /// llama.cpp's own routes: `/completion`, `/tokenize`.
    Llamacpp,
}

impl Dialect {
    /// Every dialect, in the order an upstream that names none is taken to speak them.
    pub const ALL: [Dialect; 4] = [Dialect::Openai, Dialect::Anthropic, Dialect::Ollama, Dialect::Llamacpp];

    /// The dialect's name, as in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Openai => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Ollama => "ollama",
            Dialect::Llamacpp => "llamacpp",
        }
    }

    /// An error body in this dialect's own shape, so the caller's SDK reads it as an API error.
    pub fn error_body(self, status: u16, message: &str) -> Value {
        match self {
            Dialect::Openai | Dialect::Llamacpp => json!({
                "error": { "message": message, "type": openai_error_type(status), "code": status }
            }),
            Dialect::Anthropic => json!({
                "type": "error",
                "error": { "type": anthropic_error_type(status), "message": message }
            }),
            Dialect::Ollama => json!({ "error": message }),
        }
    }

    /// One stream event that tells the caller the stream failed, in this dialect's framing.
    pub fn stream_error_event(self, message: &str) -> Vec<u8> {
        let body = self.error_body(502, message);
        match self {
            Dialect::Openai | Dialect::Llamacpp => format!("data: {body}\n\n").into_bytes(),
            Dialect::Anthropic => format!("event: error\ndata: {body}\n\n").into_bytes(),
            Dialect::Ollama => format!("{body}\n").into_bytes(),
        }
    }
}

fn openai_error_type(status: u16) -> &'static str {
    match status {
        400 | 404 | 405 | 413 | 422 => "invalid_request_error",
        401 | 403 => "authentication_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 405 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Generates an answer from a JSON body: normalized, cacheable when deterministic.
    Generate(Generate),
    /// Forwarded as it is, never cached (`/v1/models`, `/v1/embeddings`, `/api/tags`, `/tokenize`).
    PassThrough,
}

/// The generation routes; each knows its sampling defaults and how its answers end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generate {
    /// `POST /v1/chat/completions`.
    OpenaiChat,
    /// `POST /v1/completions`.
    OpenaiCompletions,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// `POST /api/chat`.
    OllamaChat,
    /// `POST /api/generate`.
    OllamaGenerate,
    /// `POST /completion` (llama.cpp).
    LlamacppCompletion,
}

/// A route the proxy serves: its dialect, its kind and a stable label for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The dialect an upstream must speak to serve it.
    pub dialect: Dialect,
    /// Generation or pass-through.
    pub kind: RouteKind,
    /// The path, as a metrics label.
    pub label: &'static str,
}

impl Route {
    /// The route for a method and path, or `None` when the proxy serves no such route.
    pub fn find(method: &hyper::Method, path: &str) -> Option<Route> {
        use Dialect::*;
        use Generate::*;
        let post = method == hyper::Method::POST;
        let get = method == hyper::Method::GET;
        let (dialect, kind, label) = match path {
            "/v1/chat/completions" if post => (Openai, RouteKind::Generate(OpenaiChat), "/v1/chat/completions"),
            "/v1/completions" if post => (Openai, RouteKind::Generate(OpenaiCompletions), "/v1/completions"),
            "/v1/embeddings" if post => (Openai, RouteKind::PassThrough, "/v1/embeddings"),
            "/v1/models" if get => (Openai, RouteKind::PassThrough, "/v1/models"),
            "/v1/messages" if post => (Anthropic, RouteKind::Generate(AnthropicMessages), "/v1/messages"),
            "/api/chat" if post => (Ollama, RouteKind::Generate(OllamaChat), "/api/chat"),
            "/api/generate" if post => (Ollama, RouteKind::Generate(OllamaGenerate), "/api/generate"),
            "/api/tags" if get => (Ollama, RouteKind::PassThrough, "/api/tags"),
            "/api/version" if get => (Ollama, RouteKind::PassThrough, "/api/version"),
            "/completion" if post => (Llamacpp, RouteKind::Generate(LlamacppCompletion), "/completion"),
            "/tokenize" if post => (Llamacpp, RouteKind::PassThrough, "/tokenize"),
            _ => return None,
        };
        Some(Route { dialect, kind, label })
    }

    /// The dialect a path most likely belongs to, for an error on a route the proxy does not serve.
    pub fn dialect_of_path(path: &str) -> Dialect {
        if path.starts_with("/api/") {
            Dialect::Ollama
        } else if path == "/v1/messages" {
            Dialect::Anthropic
        } else {
            Dialect::Openai
        }
    }
}

impl Generate {
    /// Whether the request asks for a stream, with the route's own default (Ollama streams unless told not to).
    pub fn is_stream(self, body: &Value) -> bool {
        let default = matches!(self, Generate::OllamaChat | Generate::OllamaGenerate);
        body.get("stream").and_then(Value::as_bool).unwrap_or(default)
    }

    /// The sampling parameters this route applies when the request names none, made explicit so that a
    /// request that leaves one out and one that states its default share a cache key. Ollama's live in
    /// `options`.
    pub fn defaults(self) -> &'static [(&'static str, f64)] {
        match self {
            Generate::OpenaiChat | Generate::OpenaiCompletions => &[
                ("temperature", 1.0),
                ("top_p", 1.0),
                ("n", 1.0),
                ("presence_penalty", 0.0),
                ("frequency_penalty", 0.0),
            ],
            Generate::AnthropicMessages => &[("temperature", 1.0)],
            Generate::OllamaChat | Generate::OllamaGenerate => {
                &[("temperature", 0.8), ("top_p", 0.9), ("top_k", 40.0), ("repeat_penalty", 1.1)]
            }
            Generate::LlamacppCompletion => {
                &[("temperature", 0.8), ("top_p", 0.95), ("top_k", 40.0), ("min_p", 0.05), ("n_predict", -1.0)]
            }
        }
    }

    /// Where the sampling parameters live in a body: the top level, or Ollama's `options` object.
    pub fn sampling(self, body: &Value) -> Option<&Value> {
        match self {
            Generate::OllamaChat | Generate::OllamaGenerate => body.get("options"),
            _ => Some(body),
        }
    }

    /// Whether a complete answer body ended normally: a stream that reached its end marker, or a JSON answer
    /// that finished. Only such answers are stored.
    pub fn ended_normally(self, stream: bool, body: &[u8]) -> bool {
        if !stream {
            return match serde_json::from_slice::<Value>(body) {
                Ok(v) => v.get("error").is_none() && !v.is_null(),
                Err(_) => false,
            };
        }
        let tail = &body[body.len().saturating_sub(4096)..];
        let has = |needle: &[u8]| tail.windows(needle.len()).any(|w| w == needle);
        match self {
            Generate::OpenaiChat | Generate::OpenaiCompletions => has(b"data: [DONE]"),
            Generate::AnthropicMessages => has(b"message_stop"),
            Generate::OllamaChat | Generate::OllamaGenerate => {
                last_json_line(body).and_then(|v| v.get("done").and_then(Value::as_bool)) == Some(true)
            }
            Generate::LlamacppCompletion => {
                last_sse_data(body).and_then(|v| v.get("stop").and_then(Value::as_bool)).unwrap_or(false)
            }
        }
    }
}

impl Generate {
    /// Whether the start of an answer (`body`, the bytes so far) holds its first token: text, reasoning or a
    /// tool call, or the end of the answer. A role-only first chunk (OpenAI) or a `message_start` (Anthropic)
    /// is not a token yet. A scan for the dialect's text fields, not a parse: it runs on every frame until
    /// the first token.
    pub fn has_token(self, body: &[u8]) -> bool {
        let fields: &[&[u8]] = match self {
            Generate::OpenaiChat => {
                &[b"\"content\"", b"\"reasoning_content\"", b"\"tool_calls\"", b"\"finish_reason\""]
            }
            Generate::OpenaiCompletions => &[b"\"text\"", b"\"finish_reason\""],
            Generate::AnthropicMessages => &[b"\"text\"", b"\"thinking\"", b"\"partial_json\"", b"\"stop_reason\""],
            Generate::OllamaChat => &[b"\"content\"", b"\"thinking\"", b"\"tool_calls\"", b"\"done\""],
            Generate::OllamaGenerate => &[b"\"response\"", b"\"thinking\"", b"\"done\""],
            Generate::LlamacppCompletion => &[b"\"content\"", b"\"stop\""],
        };
        fields.iter().any(|f| has_value(body, f))
    }
}

/// Whether `field` occurs in `body` with a value that says something: a non-empty string, `true`, a list or
/// an object, a number (`null`, `false` and `""` do not count).
fn has_value(body: &[u8], field: &[u8]) -> bool {
    let mut at = 0;
    while let Some(i) = body[at..].windows(field.len()).position(|w| w == field) {
        let mut rest = body[at + i + field.len()..].iter().copied().skip_while(u8::is_ascii_whitespace);
        if rest.next() == Some(b':') {
            let mut value = rest.skip_while(u8::is_ascii_whitespace);
            match value.next() {
                Some(b'"') => {
                    if value.next().is_some_and(|c| c != b'"') {
                        return true;
                    }
                }
                Some(b'n' | b'f') | None => {}
                Some(_) => return true,
            }
        }
        at += i + 1;
    }
    false
}

/// The last non-empty line of an NDJSON body, parsed.
fn last_json_line(body: &[u8]) -> Option<Value> {
    let line = body.split(|&b| b == b'\n').rev().find(|l| !l.iter().all(u8::is_ascii_whitespace))?;
    serde_json::from_slice(line).ok()
}

/// The payload of the last `data:` line of an SSE body, parsed.
fn last_sse_data(body: &[u8]) -> Option<Value> {
    let line = body.split(|&b| b == b'\n').rev().find(|l| l.starts_with(b"data:"))?;
    serde_json::from_slice(line[5..].trim_ascii()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_token_is_told_from_a_role_chunk() {
        let role =
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}]}\n\n";
        assert!(!Generate::OpenaiChat.has_token(role));
        let empty = b"data: {\"choices\":[{\"delta\":{\"content\": \"\"}}]}\n\n";
        assert!(!Generate::OpenaiChat.has_token(empty));
        let token = b"data: {\"choices\":[{\"delta\":{\"content\": \"Hi\"}}]}\n\n";
        assert!(Generate::OpenaiChat.has_token(&[&role[..], &token[..]].concat()));
        assert!(Generate::OpenaiChat.has_token(b"data: {\"choices\":[{\"finish_reason\":\"stop\"}]}"));
        let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[],\"stop_reason\":null}}\n\n";
        assert!(!Generate::AnthropicMessages.has_token(start));
        assert!(Generate::AnthropicMessages.has_token(b"data: {\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}"));
        assert!(
            !Generate::OllamaChat.has_token(b"{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}")
        );
        assert!(Generate::OllamaChat.has_token(b"{\"message\":{\"content\":\"\"},\"done\":true}"));
        assert!(Generate::LlamacppCompletion.has_token(b"data: {\"content\":\" x\",\"stop\":false}"));
    }

    #[test]
    fn routes_are_found_by_method_and_path() {
        let r = Route::find(&hyper::Method::POST, "/v1/chat/completions").unwrap();
        assert_eq!(r.dialect, Dialect::Openai);
        assert!(matches!(r.kind, RouteKind::Generate(Generate::OpenaiChat)));
        assert!(Route::find(&hyper::Method::GET, "/v1/chat/completions").is_none());
        assert_eq!(Route::find(&hyper::Method::GET, "/api/tags").unwrap().kind, RouteKind::PassThrough);
        assert!(Route::find(&hyper::Method::POST, "/nope").is_none());
    }

    #[test]
    fn streams_end_normally_only_with_their_end_marker() {
        let chat = Generate::OpenaiChat;
        assert!(chat.ended_normally(true, b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!chat.ended_normally(true, b"data: {}\n\n"));
        assert!(Generate::AnthropicMessages.ended_normally(true, b"event: message_stop\ndata: {}\n\n"));
        assert!(Generate::OllamaChat.ended_normally(true, b"{\"done\":false}\n{\"done\":true}\n"));
        assert!(!Generate::OllamaChat.ended_normally(true, b"{\"done\":false}\n"));
        assert!(
            Generate::LlamacppCompletion.ended_normally(true, b"data: {\"stop\":false}\n\ndata: {\"stop\":true}\n\n")
        );
        assert!(chat.ended_normally(false, br#"{"choices":[]}"#));
        assert!(!chat.ended_normally(false, br#"{"error":{"message":"x"}}"#));
        assert!(!chat.ended_normally(false, b"{\"choices\":"));
    }

    #[test]
    fn ollama_streams_by_default_openai_does_not() {
        assert!(Generate::OllamaChat.is_stream(&json!({})));
        assert!(!Generate::OllamaChat.is_stream(&json!({"stream": false})));
        assert!(!Generate::OpenaiChat.is_stream(&json!({})));
    }

    #[test]
    fn errors_take_each_dialects_shape() {
        assert_eq!(Dialect::Anthropic.error_body(400, "bad")["type"], "error");
        assert_eq!(Dialect::Anthropic.error_body(400, "bad")["error"]["type"], "invalid_request_error");
        assert_eq!(Dialect::Openai.error_body(502, "down")["error"]["message"], "down");
        assert_eq!(Dialect::Ollama.error_body(413, "big")["error"], "big");
    }
}
