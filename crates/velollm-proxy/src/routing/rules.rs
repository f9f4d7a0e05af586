//! The rules a routing decision starts with, before any embedding: what the request asks for that only the
//! large tier should answer (tools, a JSON schema for the answer, a long prompt). Each is a look at the body's
//! fields, a few microseconds.

use serde_json::Value;

/// Why a rule sends a request to the large tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Tools are offered, or the history holds tool calls or results.
    Tools,
    /// The answer must follow a JSON schema (`response_format.json_schema`, Ollama's `format` object,
    /// llama.cpp's `json_schema`).
    Schema,
    /// The request's text is longer than the limit.
    Long,
}

impl Rule {
    /// The rule as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Tools => "tools",
            Rule::Schema => "schema",
            Rule::Long => "long",
        }
    }
}

/// The first rule the body matches; `max_chars` is the longest text (every message and the prompt) that
/// the rules leave to the classifier.
pub fn check(body: &Value, max_chars: usize) -> Option<Rule> {
    let offered = |field: &str| body.get(field).is_some_and(|t| t.as_array().is_none_or(|a| !a.is_empty()));
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    if offered("tools") || offered("functions") || messages.iter().any(has_tools) {
        return Some(Rule::Tools);
    }
    let format = body.pointer("/response_format/type").and_then(Value::as_str);
    if format == Some("json_schema")
        || body.get("format").is_some_and(Value::is_object)
        || body.get("json_schema").is_some()
    {
        return Some(Rule::Schema);
    }
    let mut chars = body.get("prompt").and_then(Value::as_str).map_or(0, |p| p.chars().count());
    chars += body.get("system").map_or(0, text_chars);
    for m in messages {
        chars += m.get("content").map_or(0, text_chars);
    }
    (chars > max_chars).then_some(Rule::Long)
}

/// A message with tool calls or tool results, in any dialect.
fn has_tools(message: &Value) -> bool {
    let role = message.get("role").and_then(Value::as_str).unwrap_or("");
    matches!(role, "tool" | "function")
        || message.get("tool_calls").is_some()
        || message.get("function_call").is_some()
        || message.get("content").and_then(Value::as_array).is_some_and(|blocks| {
            blocks.iter().any(|b| matches!(b.get("type").and_then(Value::as_str), Some("tool_use" | "tool_result")))
        })
}

/// Characters of text in a content value (a string, or blocks with `text`).
fn text_chars(content: &Value) -> usize {
    match content {
        Value::String(s) => s.chars().count(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).map(|t| t.chars().count()).sum()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_schemas_and_long_prompts_go_large() {
        let chat = |extra: Value| {
            let mut b = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            check(&b, 100)
        };
        assert_eq!(chat(json!({})), None);
        assert_eq!(chat(json!({"tools": [{"type": "function"}]})), Some(Rule::Tools));
        assert_eq!(chat(json!({"tools": []})), None);
        assert_eq!(chat(json!({"response_format": {"type": "json_schema", "json_schema": {}}})), Some(Rule::Schema));
        assert_eq!(chat(json!({"response_format": {"type": "json_object"}})), None);
        assert_eq!(chat(json!({"format": {"type": "object"}})), Some(Rule::Schema));
        assert_eq!(chat(json!({"format": "json"})), None);
        assert_eq!(chat(json!({"system": "x".repeat(101)})), Some(Rule::Long));
        let history = json!({"messages": [{"role": "assistant", "tool_calls": []}, {"role": "user", "content": "y"}]});
        assert_eq!(check(&history, 100), Some(Rule::Tools));
        assert_eq!(check(&json!({"prompt": "x".repeat(101)}), 100), Some(Rule::Long));
        let blocks = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x".repeat(60)}, {"type": "text", "text": "x".repeat(60)}]}]});
        assert_eq!(check(&blocks, 100), Some(Rule::Long));
    }
}
