//! Ollama native `/api/chat` and `/api/generate`: NDJSON, and server durations in nanoseconds on the final
//! `done: true` line (`total_duration`, `load_duration`, `prompt_eval_count`, `prompt_eval_duration`,
//! `eval_count`, `eval_duration`).

use super::{GenRequest, Parsed, error_message, json, text, uint};
use serde_json::{Map, Value, json};
use velollm_core::measure::record::{Channel, NativeTimings, Usage};

/// The request that unloads `model` so that the next request loads it again (a cold start): a generation
/// with `keep_alive: 0`, sent as `POST` to the path returned.
pub fn unload_request(model: &str) -> (&'static str, Value) {
    ("/api/generate", json!({"model": model, "keep_alive": 0}))
}

fn options(req: &GenRequest) -> Value {
    let mut o = Map::new();
    o.insert("num_predict".into(), json!(req.max_tokens));
    if let Some(t) = req.temperature {
        o.insert("temperature".into(), json!(t));
    }
    Value::Object(o)
}

/// Body of a streaming `/api/chat` request.
pub(super) fn chat_body(req: &GenRequest) -> Value {
    let mut body = json!({"model": req.model, "messages": req.messages(), "stream": true, "options": options(req)});
    if let Some(tools) = &req.tools {
        body["tools"] = tools.clone();
    }
    body
}

/// Body of a streaming `/api/generate` request.
pub(super) fn generate_body(req: &GenRequest) -> Value {
    if !req.history.is_empty() {
        // /api/generate has no message list: earlier turns go into the prompt as a transcript.
        let flat = GenRequest { system: None, ..req.clone() }.flat_prompt();
        let mut body = json!({"model": req.model, "prompt": flat, "stream": true, "options": options(req)});
        if let Some(s) = &req.system {
            body["system"] = json!(s);
        }
        return body;
    }
    let mut body = json!({"model": req.model, "prompt": req.user_message(), "stream": true, "options": options(req)});
    if let Some(s) = &req.system {
        body["system"] = json!(s);
    }
    body
}

fn ns_to_ms(v: &Value, key: &str) -> Option<f64> {
    uint(v, key).map(|ns| ns as f64 / 1e6)
}

/// Parse one NDJSON line of either endpoint.
pub(super) fn parse(message: &[u8]) -> Result<Parsed, String> {
    let v = json(message)?;
    let mut p = Parsed { error: error_message(&v), ..Parsed::default() };
    let msg = v.get("message");
    let source = msg.unwrap_or(&v);
    if let Some(t) = text(source, "thinking") {
        p.pieces.push((Channel::Reasoning, t.to_string()));
    }
    if let Some(t) = text(&v, "response").or_else(|| msg.and_then(|m| text(m, "content"))) {
        p.pieces.push((Channel::Content, t.to_string()));
    }
    if let Some(calls) = msg.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).filter(|c| !c.is_empty()) {
        let mut all = String::new();
        for (i, c) in calls.iter().enumerate() {
            let name = c.pointer("/function/name").and_then(Value::as_str).map(str::to_string);
            let args = c.pointer("/function/arguments").map_or_else(String::new, |a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            all.push_str(&args);
            p.tool_deltas.push((i, name, args));
        }
        p.pieces.push((Channel::Tool, all));
    }
    if v.get("done").and_then(Value::as_bool) == Some(true) {
        p.done = true;
        p.finish_reason = v.get("done_reason").and_then(Value::as_str).map(str::to_string);
        p.usage = Some(Usage {
            prompt_tokens: uint(&v, "prompt_eval_count"),
            completion_tokens: uint(&v, "eval_count"),
            cached_tokens: uint(&v, "prompt_eval_cached_count"),
            cache_write_tokens: None,
            reasoning_tokens: None,
        });
        p.native = Some(NativeTimings {
            source: "ollama".into(),
            prompt_n: uint(&v, "prompt_eval_count"),
            prompt_ms: ns_to_ms(&v, "prompt_eval_duration"),
            predicted_n: uint(&v, "eval_count"),
            predicted_ms: ns_to_ms(&v, "eval_duration"),
            cache_n: uint(&v, "prompt_eval_cached_count"),
            load_ms: ns_to_ms(&v, "load_duration"),
            total_ms: ns_to_ms(&v, "total_duration"),
            draft_n: None,
            draft_accepted: None,
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        let req = GenRequest::new("llama3.2:3b", "hi", 50);
        assert_eq!(
            chat_body(&req),
            json!({"model":"llama3.2:3b","messages":[{"role":"user","content":"hi"}],"stream":true,"options":{"num_predict":50}})
        );
        assert_eq!(generate_body(&req)["prompt"], json!("hi"));
    }

    #[test]
    fn lines() {
        let c = parse(br#"{"model":"m","created_at":"x","message":{"role":"assistant","content":"Hel"},"done":false}"#)
            .unwrap();
        assert_eq!(c.pieces, vec![(Channel::Content, "Hel".into())]);
        let t = parse(br#"{"model":"m","message":{"role":"assistant","content":"","thinking":"hmm"},"done":false}"#)
            .unwrap();
        assert_eq!(t.pieces, vec![(Channel::Reasoning, "hmm".into())]);
        let g = parse(br#"{"model":"m","response":"lo","done":false}"#).unwrap();
        assert_eq!(g.pieces, vec![(Channel::Content, "lo".into())]);
        let d = parse(br#"{"model":"m","response":"","done":true,"done_reason":"stop","total_duration":5000000000,"load_duration":12270000000,"prompt_eval_count":26,"prompt_eval_duration":130079000,"eval_count":259,"eval_duration":4232710000}"#).unwrap();
        assert!(d.done && d.pieces.is_empty());
        let n = d.native.unwrap();
        assert_eq!((n.load_ms, n.prompt_ms, n.predicted_n), (Some(12270.0), Some(130.079), Some(259)));
        assert_eq!(d.usage.unwrap().completion_tokens, Some(259));
        assert_eq!(parse(br#"{"error":"model 'x' not found"}"#).unwrap().error.as_deref(), Some("model 'x' not found"));
    }
}
