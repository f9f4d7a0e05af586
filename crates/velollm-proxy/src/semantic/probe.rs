//! What the semantic layer compares: the last user turn's text, and everything else of the request (its
//! *context*: model, sampling parameters, tools, system prompt, earlier turns), which must match exactly.
//! Requests the layer should not answer from a neighbour are turned away here, with the reason.

use serde_json::Value;

use crate::dialect::Generate;

/// A request split for the semantic layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The last user turn (or the prompt): the part compared by meaning.
    pub text: String,
    /// The rest of the body, with that text taken out: compared exactly.
    pub context: Value,
}

/// Why a request bypasses the semantic layer (a metrics label and part of `x-velollm-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The history holds tool calls or tool results: answers depend on them byte for byte.
    Tools,
    /// More earlier turns than the configured limit.
    History,
    /// The last turn is not the user's, or is not plain text (images, documents).
    NotText,
    /// The last turn is empty.
    Empty,
    /// The last turn is longer than the configured limit.
    TooLong,
}

impl Skip {
    /// The reason as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Tools => "tools",
            Skip::History => "history",
            Skip::NotText => "not_text",
            Skip::Empty => "empty",
            Skip::TooLong => "too_long",
        }
    }
}

/// Splits a normalized body; `max_turns` earlier turns (system prompts not counted) and `max_chars` characters
/// of text are the most the layer takes.
pub fn split(route: Generate, body: &Value, max_turns: usize, max_chars: usize) -> Result<Split, Skip> {
    let mut context = body.clone();
    let text = match route {
        Generate::OpenaiChat | Generate::AnthropicMessages | Generate::OllamaChat => {
            let messages = context.get_mut("messages").and_then(Value::as_array_mut).ok_or(Skip::NotText)?;
            if messages.iter().any(has_tools) {
                return Err(Skip::Tools);
            }
            let last = messages.last_mut().ok_or(Skip::Empty)?;
            if last.get("role").and_then(Value::as_str) != Some("user") {
                return Err(Skip::NotText);
            }
            let text = text_of(last.get("content").ok_or(Skip::NotText)?).ok_or(Skip::NotText)?;
            last["content"] = Value::Null;
            let earlier = messages.iter().filter(|m| m.get("role").and_then(Value::as_str) != Some("system")).count();
            if earlier - 1 > max_turns {
                return Err(Skip::History);
            }
            text
        }
        Generate::OpenaiCompletions | Generate::OllamaGenerate | Generate::LlamacppCompletion => {
            if context.get("context").is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
                return Err(Skip::History); // Ollama's token context of an earlier exchange
            }
            let prompt = context.get_mut("prompt").ok_or(Skip::NotText)?;
            let text = prompt.as_str().ok_or(Skip::NotText)?.to_owned();
            *prompt = Value::Null;
            text
        }
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Skip::Empty);
    }
    if trimmed.chars().count() > max_chars {
        return Err(Skip::TooLong);
    }
    Ok(Split { text: trimmed.to_owned(), context })
}

/// A message with tool calls or tool results, in any dialect.
fn has_tools(message: &Value) -> bool {
    let role = message.get("role").and_then(Value::as_str).unwrap_or("");
    if matches!(role, "tool" | "function")
        || message.get("tool_calls").is_some()
        || message.get("function_call").is_some()
    {
        return true;
    }
    message.get("content").and_then(Value::as_array).is_some_and(|blocks| {
        blocks.iter().any(|b| matches!(b.get("type").and_then(Value::as_str), Some("tool_use" | "tool_result")))
    })
}

/// A message's content as text: a string, or parts that are all text (joined by newlines).
fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Option<Vec<&str>> = parts
                .iter()
                .map(|p| match p.get("type").and_then(Value::as_str) {
                    Some("text") => p.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect();
            texts.map(|t| t.join("\n"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(messages: Value) -> Result<Split, Skip> {
        split(Generate::OpenaiChat, &json!({"model": "m", "messages": messages}), 2, 100)
    }

    #[test]
    fn the_last_user_turn_is_compared_and_the_rest_must_match() {
        let s = chat(json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": " hi there "}]));
        let s = s.unwrap();
        assert_eq!(s.text, "hi there");
        assert_eq!(s.context["messages"][0]["content"], "be brief");
        assert_eq!(s.context["messages"][1]["content"], Value::Null);
        let parts =
            chat(json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]));
        assert_eq!(parts.unwrap().text, "a\nb");
        let p = split(Generate::LlamacppCompletion, &json!({"prompt": "Q", "n_predict": 4}), 0, 10).unwrap();
        assert_eq!((p.text.as_str(), &p.context["prompt"]), ("Q", &Value::Null));
    }

    #[test]
    fn tools_long_histories_and_odd_turns_bypass() {
        let tool = json!([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": []}, {"role": "tool", "content": "1"}, {"role": "user", "content": "y"}]);
        assert_eq!(chat(tool), Err(Skip::Tools));
        let anthropic = json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "1"}]}]});
        assert_eq!(split(Generate::AnthropicMessages, &anthropic, 9, 100), Err(Skip::Tools));
        let long = json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}]);
        assert_eq!(chat(long), Err(Skip::History));
        assert_eq!(chat(json!([{"role": "assistant", "content": "a"}])), Err(Skip::NotText));
        assert_eq!(chat(json!([{"role": "user", "content": [{"type": "image_url"}]}])), Err(Skip::NotText));
        assert_eq!(chat(json!([{"role": "user", "content": "   "}])), Err(Skip::Empty));
        assert_eq!(chat(json!([{"role": "user", "content": "x".repeat(101)}])), Err(Skip::TooLong));
        assert_eq!(chat(json!([])), Err(Skip::Empty));
        assert_eq!(split(Generate::OllamaGenerate, &json!({"prompt": "a", "context": [1]}), 9, 9), Err(Skip::History));
    }
}
