//! llama.cpp server native `/completion`: SSE events `{"content", "stop", …}`, the last one with `timings`
//! (`prompt_n`, `prompt_ms`, `predicted_n`, `predicted_ms`, `cache_n`, `draft_n`, `draft_n_accepted`).

use super::{GenRequest, Parsed, error_message, json, uint};
use serde_json::{Value, json};
use velollm_core::measure::record::{Channel, NativeTimings, Usage};

/// Body of a streaming `/completion` request (the system prompt, if any, is prepended).
pub(super) fn body(req: &GenRequest) -> Value {
    let mut b = json!({"prompt": req.flat_prompt(), "n_predict": req.max_tokens, "stream": true});
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if req.exact_output {
        b["ignore_eos"] = json!(true);
    }
    b
}

/// Engine-native timings from a llama.cpp `timings` object.
pub(super) fn timings(t: &Value) -> NativeTimings {
    let f = |k: &str| t.get(k).and_then(Value::as_f64);
    NativeTimings {
        source: "llama.cpp".into(),
        prompt_n: uint(t, "prompt_n"),
        prompt_ms: f("prompt_ms"),
        predicted_n: uint(t, "predicted_n"),
        predicted_ms: f("predicted_ms"),
        cache_n: uint(t, "cache_n"),
        load_ms: None,
        total_ms: None,
        draft_n: uint(t, "draft_n"),
        draft_accepted: uint(t, "draft_n_accepted"),
    }
}

/// Parse one SSE data payload.
pub(super) fn parse(message: &[u8]) -> Result<Parsed, String> {
    let v = json(message)?;
    let mut p = Parsed { error: error_message(&v), ..Parsed::default() };
    if let Some(c) = v.get("content").and_then(Value::as_str).filter(|c| !c.is_empty()) {
        p.pieces.push((Channel::Content, c.to_string()));
        p.tokens = v.get("tokens").and_then(Value::as_array).map(|t| t.len() as u32).filter(|n| *n > 0);
    }
    if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
        p.native = Some(timings(t));
    }
    if v.get("stop").and_then(Value::as_bool) == Some(true) {
        p.done = true;
        p.finish_reason = v.get("stop_type").and_then(Value::as_str).map(str::to_string);
        p.usage = Some(Usage {
            prompt_tokens: uint(&v, "tokens_evaluated"),
            completion_tokens: uint(&v, "tokens_predicted"),
            cached_tokens: v.get("timings").and_then(|t| uint(t, "cache_n")),
            cache_write_tokens: None,
            reasoning_tokens: None,
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_and_final() {
        let c = parse(br#"{"content":"Hi","stop":false,"tokens":[42]}"#).unwrap();
        assert_eq!((c.pieces.clone(), c.tokens), (vec![(Channel::Content, "Hi".into())], Some(1)));
        let f = parse(br#"{"content":"","stop":true,"stop_type":"limit","tokens_predicted":8,"tokens_evaluated":12,"timings":{"prompt_n":12,"prompt_ms":40.5,"predicted_n":8,"predicted_ms":70.1,"cache_n":3,"draft_n":10,"draft_n_accepted":7}}"#).unwrap();
        assert!(f.done && f.pieces.is_empty());
        assert_eq!(f.finish_reason.as_deref(), Some("limit"));
        let n = f.native.unwrap();
        assert_eq!((n.cache_n, n.draft_n, n.draft_accepted, n.prompt_ms), (Some(3), Some(10), Some(7), Some(40.5)));
        assert_eq!(f.usage.unwrap().completion_tokens, Some(8));
    }
}
