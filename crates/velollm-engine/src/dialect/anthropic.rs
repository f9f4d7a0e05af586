//! Anthropic Messages API `/v1/messages`: SSE with named events, each `data` object carrying its `type`.
//!
//! A stream is `message_start` (the message, with `usage`), then per content block `content_block_start`,
//! `content_block_delta`s (`text_delta`, `thinking_delta`, `input_json_delta`, `signature_delta`) and
//! `content_block_stop`, then `message_delta` (`delta.stop_reason`, cumulative `usage`) and `message_stop`.
//! `ping` events may come anywhere; an `error` event (`{"type":"error","error":{"type","message"}}`) ends
//! the stream with an error. The framing's `event:` line repeats the `type`, so only `data` is read.
//!
//! Requests carry `x-api-key` (not `Authorization: Bearer`) and `anthropic-version` (see
//! [`crate::request::http_request`]).
//!
//! Usage mapping. Anthropic's `input_tokens` counts only the prompt tokens after the last cache breakpoint,
//! so the prompt is the sum of the three input counts:
//!
//! | velollm `usage`        | Anthropic `usage`                                                             |
//! |------------------------|-------------------------------------------------------------------------------|
//! | `prompt_tokens`        | `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`         |
//! | `cached_tokens`        | `cache_read_input_tokens`                                                     |
//! | `cache_write_tokens`   | `cache_creation_input_tokens`                                                 |
//! | `completion_tokens`    | `output_tokens` (`message_start` has a first count, `message_delta` the final) |
//!
//! `message_start` and `message_delta` both carry usage; the engine merges them field by field (a later
//! value wins), so the input counts of `message_start` survive a `message_delta` that only has
//! `output_tokens`.

use super::{GenRequest, Parsed, error_message, json, text, uint};
use serde_json::{Map, Value, json};
use velollm_core::document::scenario::Breakpoint;
use velollm_core::measure::record::{Channel, Usage};

/// The `anthropic-version` header value the request and stream formats follow.
pub const API_VERSION: &str = "2023-06-01";

/// A text content block, with a cache breakpoint at its end when `cached`.
fn text_block(req: &GenRequest, text: &str, cached: bool) -> Value {
    let mut b = json!({"type": "text", "text": text});
    if cached {
        let mut control = json!({"type": "ephemeral"});
        if let Some(ttl) = &req.cache.ttl {
            control["ttl"] = json!(ttl);
        }
        b["cache_control"] = control;
    }
    b
}

/// Whether the request asks for a breakpoint at `b`.
fn marks(req: &GenRequest, b: Breakpoint) -> bool {
    req.cache.breakpoints.contains(&b)
}

/// Tools in Anthropic's form: OpenAI `{type: function, function: {name, description, parameters}}` becomes
/// `{name, description, input_schema}`; anything else is sent unchanged.
fn tools(tools: &Value) -> Value {
    let Some(list) = tools.as_array() else {
        return tools.clone();
    };
    let translated = list
        .iter()
        .map(|t| match t.get("function").filter(|f| f.is_object()) {
            Some(f) => {
                let mut out = Map::new();
                if let Some(name) = f.get("name") {
                    out.insert("name".into(), name.clone());
                }
                if let Some(d) = f.get("description") {
                    out.insert("description".into(), d.clone());
                }
                let schema =
                    f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
                out.insert("input_schema".into(), schema);
                Value::Object(out)
            }
            None => t.clone(),
        })
        .collect();
    Value::Array(translated)
}

/// Body of a streaming `/v1/messages` request.
pub(super) fn body(req: &GenRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    body.insert("stream".into(), json!(true));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(s) = &req.system {
        let system = if marks(req, Breakpoint::System) { json!([text_block(req, s, true)]) } else { json!(s) };
        body.insert("system".into(), system);
    }
    let mut messages = Vec::with_capacity(1 + 2 * req.history.len());
    for (user, assistant) in &req.history {
        messages.push(json!({"role": "user", "content": user}));
        messages.push(json!({"role": "assistant", "content": assistant}));
    }
    let mut content = Vec::with_capacity(2);
    if let Some(c) = req.context.as_deref().filter(|c| !c.is_empty()) {
        content.push(text_block(req, c, marks(req, Breakpoint::Context)));
    }
    content.push(text_block(req, &req.prompt, marks(req, Breakpoint::Prompt)));
    messages.push(json!({"role": "user", "content": content}));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = &req.tools {
        body.insert("tools".into(), tools(t));
    }
    Value::Object(body)
}

/// velollm usage from an Anthropic `usage` object (see the module documentation for the mapping). The
/// prompt total is only given when `input_tokens` is present.
fn usage(u: &Value) -> Usage {
    let written = uint(u, "cache_creation_input_tokens");
    let read = uint(u, "cache_read_input_tokens");
    Usage {
        prompt_tokens: uint(u, "input_tokens")
            .map(|i| i.saturating_add(written.unwrap_or(0)).saturating_add(read.unwrap_or(0))),
        completion_tokens: uint(u, "output_tokens"),
        cached_tokens: read,
        cache_write_tokens: written,
        reasoning_tokens: None,
    }
}

/// Parse one SSE data payload.
pub(super) fn parse(message: &[u8]) -> Result<Parsed, String> {
    let v = json(message)?;
    let mut p = Parsed { error: error_message(&v), ..Parsed::default() };
    let index = uint(&v, "index").map_or(0, |i| i as usize);
    match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "message_start" => {
            p.pieces.push((Channel::Role, String::new()));
            if let Some(u) = v.pointer("/message/usage").filter(|u| u.is_object()) {
                p.usage = Some(usage(u));
            }
        }
        "content_block_start" => {
            let block = v.get("content_block");
            if block.and_then(|b| b.get("type")).and_then(Value::as_str) == Some("tool_use") {
                let name = block.and_then(|b| text(b, "name")).map(str::to_string);
                p.tool_deltas.push((index, name, String::new()));
                p.pieces.push((Channel::Tool, String::new()));
            }
        }
        "content_block_delta" => {
            let delta = v.get("delta").unwrap_or(&Value::Null);
            match delta.get("type").and_then(Value::as_str).unwrap_or("") {
                "text_delta" => {
                    if let Some(t) = text(delta, "text") {
                        p.pieces.push((Channel::Content, t.to_string()));
                    }
                }
                "thinking_delta" => {
                    if let Some(t) = text(delta, "thinking") {
                        p.pieces.push((Channel::Reasoning, t.to_string()));
                    }
                }
                "input_json_delta" => {
                    let fragment = delta.get("partial_json").and_then(Value::as_str).unwrap_or("");
                    p.tool_deltas.push((index, None, fragment.to_string()));
                    p.pieces.push((Channel::Tool, fragment.to_string()));
                }
                _ => {}
            }
        }
        "message_delta" => {
            p.finish_reason = v.pointer("/delta/stop_reason").and_then(Value::as_str).map(str::to_string);
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                p.usage = Some(usage(u));
            }
        }
        "message_stop" => p.done = true,
        // `ping`, `content_block_stop` and event types added later carry nothing to record.
        _ => {}
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::scenario::CacheHints;

    fn events(stream: &str) -> Vec<Parsed> {
        let mut d = crate::wire::Decoder::new(crate::wire::Framing::Sse);
        let mut out = Vec::new();
        d.push(stream.as_bytes(), &mut out).unwrap();
        out.iter().map(|m| parse(m).unwrap()).collect()
    }

    #[test]
    fn body_plain() {
        let req = GenRequest { temperature: Some(0.5), ..GenRequest::new("claude-x", "hi", 16) };
        assert_eq!(
            body(&req),
            json!({"model": "claude-x", "max_tokens": 16, "stream": true, "temperature": 0.5,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        );
    }

    #[test]
    fn body_with_breakpoints_history_and_tools() {
        let req = GenRequest {
            system: Some("be brief".into()),
            context: Some("a long document".into()),
            cache: CacheHints { breakpoints: vec![Breakpoint::System, Breakpoint::Context], ttl: Some("1h".into()) },
            history: vec![("q1".into(), "a1".into())],
            tools: Some(json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])),
            ..GenRequest::new("m", "the question", 8)
        };
        let b = body(&req);
        let cc = json!({"type": "ephemeral", "ttl": "1h"});
        assert_eq!(b["system"], json!([{"type": "text", "text": "be brief", "cache_control": cc}]));
        let roles: Vec<_> = b["messages"].as_array().unwrap().iter().map(|m| m["role"].clone()).collect();
        assert_eq!(roles, vec![json!("user"), json!("assistant"), json!("user")]);
        assert_eq!(b["messages"][0]["content"], json!("q1"));
        assert_eq!(
            b["messages"][2]["content"],
            json!([{"type": "text", "text": "a long document", "cache_control": cc},
                   {"type": "text", "text": "the question"}])
        );
        assert_eq!(
            b["tools"],
            json!([{"name": "get_weather", "description": "Weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
        );
        assert!(b.get("temperature").is_none());

        // No system prompt: its breakpoint is skipped; the prompt breakpoint has no ttl unless asked.
        let req = GenRequest {
            cache: CacheHints { breakpoints: vec![Breakpoint::System, Breakpoint::Prompt], ttl: None },
            exact_output: true,
            ..GenRequest::new("m", "p", 8)
        };
        let b = body(&req);
        assert!(b.get("system").is_none());
        assert_eq!(
            b["messages"][0]["content"],
            json!([{"type": "text", "text": "p", "cache_control": {"type": "ephemeral"}}])
        );
        assert!(b.get("ignore_eos").is_none() && b.get("min_tokens").is_none());
        // A plain system prompt stays a string.
        let b = body(&GenRequest { system: Some("s".into()), ..GenRequest::new("m", "p", 8) });
        assert_eq!(b["system"], json!("s"));
    }

    /// The text stream of the API documentation ("Basic streaming request"), with cache counts added.
    const TEXT_STREAM: &str = "event: message_start\n\
data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-opus-4-1\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"cache_creation_input_tokens\": 1000, \"cache_read_input_tokens\": 2000, \"output_tokens\": 1}}}\n\n\
event: content_block_start\n\
data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"}}\n\n\
event: content_block_stop\n\
data: {\"type\": \"content_block_stop\", \"index\": 0}\n\n\
event: message_delta\n\
data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\n\
event: message_stop\n\
data: {\"type\": \"message_stop\"}\n\n";

    #[test]
    fn text_stream_events() {
        let e = events(TEXT_STREAM);
        assert_eq!(e.len(), 8);
        assert_eq!(e[0].pieces, vec![(Channel::Role, String::new())]);
        assert_eq!(
            e[0].usage,
            Some(Usage {
                prompt_tokens: Some(3025),
                completion_tokens: Some(1),
                cached_tokens: Some(2000),
                cache_write_tokens: Some(1000),
                reasoning_tokens: None
            })
        );
        assert!(e[1].pieces.is_empty() && e[2].pieces.is_empty());
        assert_eq!(e[3].pieces, vec![(Channel::Content, "Hello".into())]);
        assert_eq!(e[4].pieces, vec![(Channel::Content, "!".into())]);
        assert!(e[5].pieces.is_empty() && !e[5].done);
        assert_eq!(e[6].finish_reason.as_deref(), Some("end_turn"));
        assert_eq!(e[6].usage, Some(Usage { completion_tokens: Some(15), ..Usage::default() }));
        assert!(e[7].done);
        assert!(e.iter().all(|p| p.error.is_none()));
    }

    #[test]
    fn thinking_tool_use_and_repeated_usage() {
        let stream = "event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me think\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAh\"}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco\\\"}\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":40,\"output_tokens\":89}}\n\n";
        let e = events(stream);
        assert!(e[0].pieces.is_empty());
        assert_eq!(e[1].pieces, vec![(Channel::Reasoning, "Let me think".into())]);
        assert!(e[2].pieces.is_empty());
        assert_eq!(e[3].tool_deltas, vec![(1, Some("get_weather".into()), String::new())]);
        assert_eq!(e[4].tool_deltas, vec![(1, None, "{\"location\": \"San Fra".into())]);
        assert_eq!(e[5].pieces, vec![(Channel::Tool, "ncisco\"}".into())]);
        assert_eq!(e[6].finish_reason.as_deref(), Some("tool_use"));
        let u = e[6].usage.clone().unwrap();
        assert_eq!((u.prompt_tokens, u.cached_tokens, u.cache_write_tokens), (Some(50), Some(40), Some(0)));
    }

    #[test]
    fn error_event_and_garbage() {
        let e = events(
            "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        assert_eq!(e[0].error.as_deref(), Some("Overloaded"));
        assert!(parse(b"{\"type\":\"message_delta\",\"delta\":7,\"usage\":[]}").unwrap().usage.is_none());
        assert!(parse(b"{\"type\":").is_err());
    }
}
