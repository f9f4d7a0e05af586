//! One request model for the cache: the body with its model alias resolved and every sampling default made
//! explicit, hashed canonically (keys sorted, `1.0` and `1` the same number) inside a partition that hashes
//! the caller's credentials or tenant, the upstream and the route.
//!
//! Every field of the body is part of the key — system prompt, whole history, tool results, tools,
//! `tool_choice`, `response_format`, every sampling parameter — because leaving one out serves wrong
//! answers. Nothing outside the body is, except the partition, so unstable headers never defeat a hit.

use std::collections::HashMap;
use std::fmt::Write as _;

use ring::digest::{Context, SHA256};
use serde_json::{Map, Value};

use crate::dialect::Generate;

/// A cache key: SHA-256 of the partition and the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex, as stores name their entries.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// The partition an entry lives in: a request only ever reads entries written for the same credentials (or
/// tenant), the same upstream and the same route. The credentials enter only through their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition(pub [u8; 32]);

impl Partition {
    /// The partition of a caller (`tenant`: the `Authorization` or `x-api-key` value, or an explicit tenant
    /// header; empty when there is none), an upstream and a route.
    pub fn new(tenant: &[u8], upstream: &str, route: &str) -> Partition {
        let mut ctx = Context::new(&SHA256);
        for part in [tenant, upstream.as_bytes(), route.as_bytes()] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Partition(out)
    }
}

/// A generation request, normalized.
#[derive(Debug)]
pub struct Normalized {
    /// Whether the caller asked for a stream.
    pub stream: bool,
    /// Whether the answer is reproducible (temperature 0, or a fixed seed): only those are stored by default.
    pub deterministic: bool,
    /// The model after alias resolution, when the body names one.
    pub model: Option<String>,
    /// Set when an alias was resolved: the body to forward in place of the caller's.
    pub rewritten: Option<Vec<u8>>,
    /// The normalized body, hashed only when the cache is consulted ([`Normalized::key`]).
    value: Value,
    partition: Partition,
}

impl Normalized {
    /// The cache key: SHA-256 of the partition and the canonical body. Computed on demand, so that requests the
    /// cache will not look at (not deterministic, cache off) never pay for it.
    pub fn key(&self) -> CacheKey {
        self.key_of(b"", &self.value)
    }

    /// Moves the request to another partition (a routed request's answers belong to the routed name, not to
    /// one upstream).
    pub fn repartition(&mut self, partition: Partition) {
        self.partition = partition;
    }

    /// The normalized body.
    pub fn body(&self) -> &Value {
        &self.value
    }

    /// The key of `value` (a part of this request, such as the semantic layer's context) in this request's
    /// partition, under `salt` (which keeps one layer's keys apart from another's).
    pub fn key_of(&self, salt: &[u8], value: &Value) -> CacheKey {
        let mut canonical = Vec::with_capacity(256);
        write_canonical(value, &mut canonical);
        let mut ctx = Context::new(&SHA256);
        ctx.update(&self.partition.0);
        ctx.update(salt);
        ctx.update(&canonical);
        let mut key = [0; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        CacheKey(key)
    }
}

/// Why a body cannot be normalized; answered with 400 in the caller's dialect.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    /// Not JSON.
    #[error("the request body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("the request body must be a JSON object")]
    NotObject,
}

/// Normalizes a generation request's body; its key, inside `partition`, is [`Normalized::key`].
pub fn normalize(
    route: Generate,
    body: &[u8],
    aliases: &HashMap<String, String>,
    partition: Partition,
) -> Result<Normalized, NormalizeError> {
    let mut value: Value = serde_json::from_slice(body)?;
    let obj = value.as_object_mut().ok_or(NormalizeError::NotObject)?;
    let mut rewritten = None;
    let mut model = obj.get("model").and_then(Value::as_str).map(str::to_owned);
    if let Some(target) = model.as_deref().and_then(|m| aliases.get(m)) {
        obj.insert("model".into(), Value::String(target.clone()));
        model = Some(target.clone());
        rewritten = Some(serde_json::to_vec(&value)?);
    }
    let stream = route.is_stream(&value);
    let obj = value.as_object_mut().ok_or(NormalizeError::NotObject)?;
    obj.insert("stream".into(), Value::Bool(stream));
    let sampling = match route {
        Generate::OllamaChat | Generate::OllamaGenerate => {
            let options = obj.entry("options").or_insert_with(|| Value::Object(Map::new()));
            if !options.is_object() {
                *options = Value::Object(Map::new());
            }
            options.as_object_mut().ok_or(NormalizeError::NotObject)?
        }
        _ => obj,
    };
    for &(name, default) in route.defaults() {
        let slot = sampling.entry(name).or_insert(Value::Null);
        if slot.is_null() {
            *slot = serde_json::Number::from_f64(default).map_or(Value::Null, Value::Number);
        }
    }
    let deterministic = is_deterministic(route, &value);
    Ok(Normalized { stream, deterministic, model, rewritten, value, partition })
}

/// Temperature 0 after defaults, or a fixed seed (llama.cpp's `-1` means a random one).
fn is_deterministic(route: Generate, body: &Value) -> bool {
    let Some(sampling) = route.sampling(body) else { return false };
    let temperature = sampling.get("temperature").and_then(Value::as_f64);
    let seed = sampling.get("seed").and_then(Value::as_i64);
    temperature == Some(0.0) || seed.is_some_and(|s| s >= 0)
}

/// Writes JSON with object keys sorted and numbers in one form (an integral float is written as an integer).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            let text = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
                (_, _, Some(f)) => format!("{f:?}"),
                _ => n.to_string(),
            };
            out.extend_from_slice(text.as_bytes());
        }
        // serde_json's string escaping is canonical already.
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(&map[k], out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(route: Generate, body: Value) -> Normalized {
        normalize(route, body.to_string().as_bytes(), &HashMap::new(), Partition::new(b"", "up", "/r")).unwrap()
    }

    fn base() -> Value {
        json!({
            "model": "m", "temperature": 0,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        })
    }

    #[test]
    fn key_order_number_form_and_explicit_defaults_do_not_change_the_key() {
        let a = key(Generate::OpenaiChat, base());
        let b = key(
            Generate::OpenaiChat,
            json!({
                "messages": [{"content": "be brief", "role": "system"}, {"content": "hi", "role": "user"}],
                "temperature": 0.0, "model": "m", "top_p": 1, "stream": false, "n": 1,
            }),
        );
        assert_eq!(a.key(), b.key());
        assert!(a.deterministic);
    }

    #[test]
    fn every_field_that_changes_the_answer_changes_the_key() {
        let reference = key(Generate::OpenaiChat, base()).key();
        let changes: Vec<(&str, Value)> = vec![
            ("model", json!("other")),
            ("messages", json!([{"role": "system", "content": "be long"}, {"role": "user", "content": "hi"}])),
            ("messages", json!([{"role": "user", "content": "hi"}])),
            ("tools", json!([{"type": "function", "function": {"name": "f"}}])),
            ("tool_choice", json!("required")),
            ("response_format", json!({"type": "json_object"})),
            ("max_tokens", json!(5)),
            ("top_p", json!(0.5)),
            ("seed", json!(1)),
            ("stream", json!(true)),
            ("stop", json!(["\n"])),
        ];
        for (field, value) in changes {
            let mut body = base();
            body[field] = value.clone();
            assert_ne!(key(Generate::OpenaiChat, body).key(), reference, "{field} = {value}");
        }
    }

    #[test]
    fn partitions_keep_tenants_upstreams_and_routes_apart() {
        let body = base().to_string();
        let k = |p: Partition| normalize(Generate::OpenaiChat, body.as_bytes(), &HashMap::new(), p).unwrap().key();
        let a = k(Partition::new(b"Bearer a", "up", "/v1/chat/completions"));
        assert_ne!(a, k(Partition::new(b"Bearer b", "up", "/v1/chat/completions")));
        assert_ne!(a, k(Partition::new(b"Bearer a", "other", "/v1/chat/completions")));
        assert_ne!(a, k(Partition::new(b"Bearer a", "up", "/v1/completions")));
    }

    #[test]
    fn only_temperature_zero_or_a_seed_is_deterministic() {
        assert!(!key(Generate::OpenaiChat, json!({"model": "m", "messages": []})).deterministic);
        assert!(key(Generate::OpenaiChat, json!({"model": "m", "seed": 7})).deterministic);
        assert!(!key(Generate::LlamacppCompletion, json!({"prompt": "x", "seed": -1})).deterministic);
        assert!(key(Generate::OllamaChat, json!({"model": "m", "options": {"temperature": 0}})).deterministic);
        assert!(!key(Generate::OllamaChat, json!({"model": "m", "temperature": 0})).deterministic);
    }

    #[test]
    fn aliases_are_resolved_before_hashing_and_forwarded() {
        let aliases = HashMap::from([("fast".to_owned(), "smollm2".to_owned())]);
        let p = Partition::new(b"", "up", "/r");
        let mut body = base();
        body["model"] = json!("fast");
        let n = normalize(Generate::OpenaiChat, body.to_string().as_bytes(), &aliases, p).unwrap();
        let mut direct = base();
        direct["model"] = json!("smollm2");
        assert_eq!(n.key(), key(Generate::OpenaiChat, direct).key());
        let forwarded: Value = serde_json::from_slice(n.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(forwarded["model"], "smollm2");
        assert_eq!(n.model.as_deref(), Some("smollm2"));
    }

    #[test]
    fn bad_bodies_are_errors() {
        let p = Partition::new(b"", "up", "/r");
        assert!(normalize(Generate::OpenaiChat, b"{nope", &HashMap::new(), p).is_err());
        assert!(matches!(normalize(Generate::OpenaiChat, b"[1]", &HashMap::new(), p), Err(NormalizeError::NotObject)));
    }
}
