//! OpenAI-compatible `/v1/chat/completions` and `/v1/completions` (vLLM, SGLang, llama.cpp, TGI, LM Studio,
//! clouds): SSE, `stream_options.include_usage`, reasoning and tool-call deltas, and llama.cpp's `timings`
//! when the server adds them to its final chunk.

use super::{GenRequest, Parsed, error_message, json, llamacpp, text, uint};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use velollm_core::measure::record::{Channel, Usage};

fn common(req: &GenRequest, body: &mut Map<String, Value>) {
    body.insert("model".into(), json!(req.model));
    body.insert("max_tokens".into(), json!(req.max_tokens));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if req.exact_output {
        body.insert("ignore_eos".into(), json!(true));
        body.insert("min_tokens".into(), json!(req.max_tokens));
    }
}

/// Body of a streaming chat completion.
pub(super) fn chat_body(req: &GenRequest) -> Value {
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(req.messages()));
    common(req, &mut body);
    if let Some(tools) = &req.tools {
        body.insert("tools".into(), tools.clone());
    }
    Value::Object(body)
}

/// Body of a streaming text completion (the system prompt, if any, is prepended to the prompt).
pub(super) fn completions_body(req: &GenRequest) -> Value {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(req.flat_prompt()));
    common(req, &mut body);
    Value::Object(body)
}

fn usage(u: &Value) -> Usage {
    Usage {
        prompt_tokens: uint(u, "prompt_tokens"),
        completion_tokens: uint(u, "completion_tokens"),
        cached_tokens: u.get("prompt_tokens_details").and_then(|d| uint(d, "cached_tokens")),
        cache_write_tokens: None,
        reasoning_tokens: u.get("completion_tokens_details").and_then(|d| uint(d, "reasoning_tokens")),
    }
}

/// The common shape of a streamed chunk, read without building a JSON tree: text borrowed from the message
/// where it has no escapes. Anything else (usage, timings, an error, tool calls, an unexpected type) makes
/// [`fast`] give up, and the message is read as a [`Value`] instead.
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    timings: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    role: Present,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

/// Whether a field is there at all, `null` included.
#[derive(Default)]
struct Present(bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// The common chunk (text deltas, a finish reason) without a JSON tree; `None` when the message needs the
/// full reading of [`parse`]. Gives exactly what that reading gives.
fn fast(message: &[u8]) -> Option<Parsed> {
    let chunk: Chunk<'_> = serde_json::from_slice(message).ok()?;
    if chunk.usage.is_some() || chunk.timings.is_some() || chunk.error.is_some() {
        return None;
    }
    let mut p = Parsed::default();
    let Some(choice) = chunk.choices.and_then(|c| c.into_iter().next()) else { return Some(p) };
    let filled = |t: Option<Cow<'_, str>>| t.filter(|t| !t.is_empty()).map(Cow::into_owned);
    p.finish_reason = choice.finish_reason.map(Cow::into_owned);
    if let Some(t) = filled(choice.text) {
        p.pieces.push((Channel::Content, t));
    }
    if let Some(delta) = choice.delta {
        if delta.tool_calls.is_some() {
            return None;
        }
        if let Some(r) = filled(delta.reasoning_content).or_else(|| filled(delta.reasoning)) {
            p.pieces.push((Channel::Reasoning, r));
        }
        if let Some(c) = filled(delta.content) {
            p.pieces.push((Channel::Content, c));
        }
        if p.pieces.is_empty() && delta.role.0 {
            p.pieces.push((Channel::Role, String::new()));
        }
    }
    Some(p)
}

/// Parse one SSE data payload of either endpoint.
pub(super) fn parse(message: &[u8]) -> Result<Parsed, String> {
    if message.trim_ascii() == b"[DONE]" {
        return Ok(Parsed { done: true, ..Parsed::default() });
    }
    match fast(message) {
        Some(p) => Ok(p),
        None => full(message),
    }
}

/// Parse one SSE data payload through a JSON tree: every shape, and the error of invalid JSON.
fn full(message: &[u8]) -> Result<Parsed, String> {
    let v = json(message)?;
    let mut p = Parsed { error: error_message(&v), ..Parsed::default() };
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        p.usage = Some(usage(u));
    }
    if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
        p.native = Some(llamacpp::timings(t));
    }
    let Some(choice) = v.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
        return Ok(p);
    };
    p.finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    if let Some(t) = text(choice, "text") {
        p.pieces.push((Channel::Content, t.to_string()));
    }
    if let Some(delta) = choice.get("delta") {
        if let Some(r) = text(delta, "reasoning_content").or_else(|| text(delta, "reasoning")) {
            p.pieces.push((Channel::Reasoning, r.to_string()));
        }
        if let Some(c) = text(delta, "content") {
            p.pieces.push((Channel::Content, c.to_string()));
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            let mut args = String::new();
            for (i, c) in calls.iter().enumerate() {
                let index = c.get("index").and_then(Value::as_u64).map_or(i, |x| x as usize);
                let name = c.pointer("/function/name").and_then(Value::as_str).map(str::to_string);
                let fragment = c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("");
                args.push_str(fragment);
                p.tool_deltas.push((index, name, fragment.to_string()));
            }
            p.pieces.push((Channel::Tool, args));
        }
        if p.pieces.is_empty() && delta.get("role").is_some() {
            p.pieces.push((Channel::Role, String::new()));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_reading_gives_what_the_full_one_gives() {
        let messages = [
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"role":null}}]}"#,
            r#"{"choices":[{"delta":{"content":"héllo \"quoted\"\n"},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"think","content":"a"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":"r","reasoning_content":""}}]}"#,
            r#"{"choices":[{"text":"t","finish_reason":"length"}]}"#,
            r#"{"choices":[{"text":"","delta":{}}],"usage":null,"timings":null,"error":null}"#,
            r#"{"choices":[]}"#,
            r#"{"object":"x"}"#,
            r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}"#,
        ];
        for m in messages {
            let fast = fast(m.as_bytes()).unwrap_or_else(|| panic!("fast path for {m}"));
            assert_eq!(Ok(fast), full(m.as_bytes()), "{m}");
        }
        proptest::proptest!(proptest::prelude::ProptestConfig::with_cases(300), |(
            content in proptest::option::of(".{0,12}"),
            reasoning in proptest::option::of(".{0,6}"),
            text in proptest::option::of(".{0,6}"),
            finish in proptest::option::of("[a-z_]{0,8}"),
            role in proptest::bool::ANY,
        )| {
            let mut delta = serde_json::Map::new();
            if let Some(c) = &content { delta.insert("content".into(), json!(c)); }
            if let Some(r) = &reasoning { delta.insert("reasoning_content".into(), json!(r)); }
            if role { delta.insert("role".into(), json!("assistant")); }
            let m = json!({"choices": [{"delta": delta, "text": text, "finish_reason": finish}]}).to_string();
            proptest::prop_assert_eq!(fast(m.as_bytes()).map(Ok), Some(full(m.as_bytes())), "{}", m);
        });
        // Shapes the fast reading leaves to the full one.
        for m in [
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{"}}]}}]}"#,
            r#"{"error":{"message":"boom"}}"#,
            r#"{"choices":[{"finish_reason":7}]}"#,
            r#"{"choices":{"x":1}}"#,
            r#"{"choices":[{"delta":{"content":"a"}}],"timings":{"prompt_n":3}}"#,
            r#"not json"#,
        ] {
            assert!(fast(m.as_bytes()).is_none(), "{m}");
            assert!(parse(m.as_bytes()).is_ok() || m == "not json", "{m}");
        }
    }

    fn req() -> GenRequest {
        GenRequest {
            system: Some("be brief".into()),
            exact_output: true,
            temperature: Some(0.0),
            ..GenRequest::new("m", "hi", 8)
        }
    }

    #[test]
    fn chat_body_asks_for_usage_and_exact_length() {
        let b = chat_body(&req());
        assert_eq!(b["messages"][0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(b["messages"][1], json!({"role": "user", "content": "hi"}));
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        assert_eq!((b["ignore_eos"].clone(), b["min_tokens"].clone()), (json!(true), json!(8)));
        assert_eq!(completions_body(&req())["prompt"], json!("be brief\n\nhi"));
        let turn2 = GenRequest { history: vec![("hi".into(), "hello".into())], prompt: "more".into(), ..req() };
        let roles: Vec<_> =
            chat_body(&turn2)["messages"].as_array().unwrap().iter().map(|m| m["role"].clone()).collect();
        assert_eq!(roles, vec![json!("system"), json!("user"), json!("assistant"), json!("user")]);
        assert_eq!(
            completions_body(&turn2)["prompt"],
            json!("be brief\n\nUser: hi\nAssistant: hello\nUser: more\nAssistant:")
        );
    }

    #[test]
    fn role_only_reasoning_content_tool_and_usage() {
        let role = parse(br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#).unwrap();
        assert_eq!(role.pieces, vec![(Channel::Role, String::new())]);
        let r = parse(br#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#).unwrap();
        assert_eq!(r.pieces, vec![(Channel::Reasoning, "hmm".into())]);
        let r = parse(br#"{"choices":[{"delta":{"reasoning":"hmm"}}]}"#).unwrap();
        assert_eq!(r.pieces, vec![(Channel::Reasoning, "hmm".into())]);
        let t = parse(br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}}]}"#)
            .unwrap();
        assert_eq!(t.pieces, vec![(Channel::Tool, "{\"a\"".into())]);
        let u = parse(
            br#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":3}}}"#,
        )
        .unwrap();
        assert!(u.pieces.is_empty());
        assert_eq!(
            u.usage.unwrap(),
            Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(7),
                cached_tokens: Some(3),
                cache_write_tokens: None,
                reasoning_tokens: None
            }
        );
        assert!(parse(b"[DONE]").unwrap().done);
        let c = parse(br#"{"choices":[{"text":"abc","finish_reason":"length"}]}"#).unwrap();
        assert_eq!((c.pieces[0].1.as_str(), c.finish_reason.as_deref()), ("abc", Some("length")));
    }

    #[test]
    fn llamacpp_final_chunk_has_usage_and_timings() {
        let p = parse(br#"{"choices":[{"finish_reason":"length","delta":{}}],"usage":{"completion_tokens":4,"prompt_tokens":9},"timings":{"prompt_n":9,"prompt_ms":12.5,"predicted_n":4,"predicted_ms":30.0,"cache_n":0}}"#).unwrap();
        let n = p.native.unwrap();
        assert_eq!((n.prompt_ms, n.predicted_n), (Some(12.5), Some(4)));
        assert!(p.pieces.is_empty());
    }

    #[test]
    fn errors_and_garbage() {
        assert_eq!(parse(br#"{"error":{"message":"boom"}}"#).unwrap().error.as_deref(), Some("boom"));
        assert!(parse(br#"{"choices":[{"#).is_err());
        assert!(parse(b"{\"choices\":[{\"text\":\"\xff\xfe\"}]}").is_err());
    }
}
