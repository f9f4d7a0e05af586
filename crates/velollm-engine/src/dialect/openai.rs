//! OpenAI-compatible `/v1/chat/completions` and `/v1/completions` (vLLM, SGLang, llama.cpp, TGI, LM Studio,
//! clouds): SSE, `stream_options.include_usage`, reasoning and tool-call deltas, and llama.cpp's `timings`
//! when the server adds them to its final chunk.

use super::{GenRequest, Parsed, error_message, json, llamacpp, text, uint};
use serde_json::{Map, Value, json};
use velollm_core::record::{Channel, Usage};

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

/// Parse one SSE data payload of either endpoint.
pub(super) fn parse(message: &[u8]) -> Result<Parsed, String> {
    if message.trim_ascii() == b"[DONE]" {
        return Ok(Parsed { done: true, ..Parsed::default() });
    }
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
