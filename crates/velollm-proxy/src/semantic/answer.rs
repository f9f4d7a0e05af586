//! The text of a stored answer, whatever its dialect and framing, and whether two answers agree: what a request
//! that explored ([`super::learned`]) compares.

use serde_json::Value;

/// The generated text of an answer body: a JSON body, or a stream of SSE events or JSON lines, in any of the
/// dialects the proxy caches (OpenAI chat and completions, Anthropic messages, Ollama, llama.cpp).
pub fn text(body: &[u8]) -> String {
    let mut out = String::new();
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        pieces(&value, &mut out);
        return out;
    }
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_prefix(b"data:").unwrap_or(line).trim_ascii();
        if line.first() != Some(&b'{') {
            continue; // `event:` lines, `[DONE]`, blank lines
        }
        if let Ok(value) = serde_json::from_slice::<Value>(line) {
            pieces(&value, &mut out);
        }
    }
    out
}

/// Appends the text pieces one message carries.
fn pieces(v: &Value, out: &mut String) {
    let mut push = |s: Option<&str>| {
        if let Some(s) = s {
            out.push_str(s);
        }
    };
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            push(c.pointer("/delta/content").and_then(Value::as_str));
            push(c.pointer("/message/content").and_then(Value::as_str));
            push(c.get("text").and_then(Value::as_str));
        }
        return;
    }
    // Anthropic: a streamed text delta, or a whole message's text blocks.
    push(v.pointer("/delta/text").and_then(Value::as_str));
    if let Some(blocks) = v.get("content").and_then(Value::as_array) {
        for b in blocks {
            push(b.get("text").and_then(Value::as_str));
        }
    }
    // Ollama chat and generate; llama.cpp's /completion.
    push(v.pointer("/message/content").and_then(Value::as_str));
    push(v.get("response").and_then(Value::as_str));
    push(v.get("content").and_then(Value::as_str));
}

/// Two answers' texts, compared with whitespace and case set aside.
pub fn same_text(a: &str, b: &str) -> bool {
    let words = |s: &str| s.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>();
    words(a) == words(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_s_text_is_read_streamed_or_whole() {
        let openai_stream = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"Hello \"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"world\"}}]}\n\ndata: [DONE]\n\n";
        assert_eq!(text(openai_stream), "Hello world");
        let openai = br#"{"choices":[{"message":{"role":"assistant","content":"Hi there"}}]}"#;
        assert_eq!(text(openai), "Hi there");
        let completion = br#"{"choices":[{"text":"one two"}]}"#;
        assert_eq!(text(completion), "one two");
        let anthropic_stream = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":\
            {\"type\":\"text_delta\",\"text\":\"Bon\"}}\n\nevent: content_block_delta\ndata: {\"type\":\
            \"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"jour\"}}\n\n";
        assert_eq!(text(anthropic_stream), "Bonjour");
        let anthropic = br#"{"content":[{"type":"text","text":"Yes."}]}"#;
        assert_eq!(text(anthropic), "Yes.");
        let ollama =
            b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"message\":{\"content\":\"b\"},\"done\":true}\n";
        assert_eq!(text(ollama), "ab");
        assert_eq!(text(br#"{"response":"gen","done":true}"#), "gen");
        assert_eq!(text(br#"{"content":"llama","stop":true}"#), "llama");
        assert_eq!(text(b"not json"), "");
    }

    #[test]
    fn answers_agree_whatever_their_spacing_and_case() {
        assert!(same_text("Open  Settings,\nthen Reset.", "open settings, then reset."));
        assert!(!same_text("Yes.", "No."));
    }
}
