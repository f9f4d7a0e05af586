//! Probing an endpoint: which API it speaks, what server it is, which models it serves.
//!
//! Order: a host under `anthropic.com` is Anthropic without asking; otherwise Ollama's `/api/version`
//! (Ollama also serves `/v1`, but its native API carries server durations), confirmed by its `/api/chat`
//! route existing (gateways answer `/api/version` and serve only the OpenAI routes), then `/v1/models`
//! (OpenAI-compatible, or Anthropic when the answer has Anthropic's shape: a model list of `"type": "model"`
//! objects, or an error `{"type": "error", "error": {"type", "message"}}`), then llama.cpp's `/props` and
//! vLLM's `/version` to name the server. A server that answers none of them is an error that says which flag
//! to pass.

use crate::dialect::DialectKind;
use crate::exec::{get, send_json};
use crate::target::Target;
use serde_json::Value;
use velollm_core::measure::record::ErrorClass;

/// What the probe learned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerInfo {
    /// The dialect auto-detection picked (when it could).
    pub dialect: Option<DialectKind>,
    /// Why it picked it.
    pub reason: String,
    /// Server software, when identified.
    pub server: Option<String>,
    /// Server-reported version.
    pub version: Option<String>,
    /// Models the server lists (empty when it lists none).
    pub models: Vec<String>,
}

/// Why probing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens at the URL.
    #[error(
        "cannot reach {url}: {detail}\n  Is the server running? Start one, or point --url at it:\n    \
         Ollama:     ollama serve                        (then --url http://127.0.0.1:11434)\n    \
         llama.cpp:  llama-server -m model.gguf --port 8080 (then --url http://127.0.0.1:8080)\n    \
         this repo:  scripts/llama-server.sh start       (SmolLM2 on http://127.0.0.1:8080)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The connection error.
        detail: String,
    },
    /// Something answers but speaks no known API.
    #[error(
        "{url} answers, but not like an LLM server ({detail}).\n  Pass the dialect explicitly with --backend \
         (openai-chat, openai-completions, ollama-chat, ollama-generate, llamacpp, anthropic), or check the URL \
         (base URL, without /chat/completions)."
    )]
    Unrecognised {
        /// The URL.
        url: String,
        /// What was tried.
        detail: String,
    },
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

fn ok_json(r: &Result<(u16, Vec<u8>), velollm_core::measure::record::RequestError>) -> Option<Value> {
    match r {
        Ok((200, body)) => json(body),
        _ => None,
    }
}

/// The host of an `authority` (`host`, `host:port`, `[v6]:port`), lower-cased.
fn host_of(authority: &str) -> String {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a response body has the shape only Anthropic's API gives: an error object with a top-level
/// `"type": "error"`, or a model list whose entries are `"type": "model"` objects (OpenAI's have `"object"`).
fn anthropic_shaped(body: &Value) -> bool {
    let error = body.get("type").and_then(Value::as_str) == Some("error")
        && body.pointer("/error/type").is_some_and(Value::is_string);
    let first = body.get("data").and_then(Value::as_array).and_then(|d| d.first());
    let models =
        first.is_some_and(|m| m.get("type").and_then(Value::as_str) == Some("model") && m.get("object").is_none());
    error || models
}

/// What the probe says about an Anthropic endpoint. Its model list is not used: it is paged and omits the
/// model aliases (`claude-sonnet-4-5`) the API accepts, so `--model` is taken as given.
fn anthropic(reason: String) -> ServerInfo {
    ServerInfo {
        dialect: Some(DialectKind::Anthropic),
        reason,
        server: Some("anthropic".into()),
        version: None,
        models: Vec::new(),
    }
}

/// Probe the target. `target.dialect` only decides the request headers; the result says what the endpoint
/// speaks.
pub async fn probe(target: &Target) -> Result<ServerInfo, ProbeError> {
    let url = target.endpoint.display().to_string();
    let host = host_of(&target.endpoint.authority());
    if host == "anthropic.com" || host.ends_with(".anthropic.com") {
        return Ok(anthropic(format!("auto: the host {host} is Anthropic's (Messages API)")));
    }
    let version = get(target, "/api/version").await;
    if let Err(e) = &version
        && (e.class == ErrorClass::Connect || e.class == ErrorClass::Timeout)
    {
        return Err(ProbeError::Unreachable { url, detail: e.message.clone() });
    }
    if let Some(v) = ok_json(&version).filter(|v| v.get("version").is_some()) {
        // Gateways answer /api/version like Ollama yet serve only the OpenAI routes: confirm the route.
        let Some(status) = route_missing(target, "/api/chat").await else {
            return Ok(ollama(target, &v).await);
        };
        let fallback = format!(
            "/api/version answered like Ollama, but POST /api/chat does not exist there (HTTP {status}), so the \
             next dialect was tried"
        );
        return match openai_or_anthropic(target, url, &version).await {
            Ok(mut info) => {
                info.reason = info.reason.replacen("auto: ", &format!("auto: {fallback}; "), 1);
                Ok(info)
            }
            Err(ProbeError::Unrecognised { url, detail }) => {
                Err(ProbeError::Unrecognised { url, detail: format!("{fallback}; {detail}") })
            }
            Err(e) => Err(e),
        };
    }
    openai_or_anthropic(target, url, &version).await
}

/// Ollama's native API, confirmed: its version and models.
async fn ollama(target: &Target, version: &Value) -> ServerInfo {
    let models = ok_json(&get(target, "/api/tags").await)
        .and_then(|t| t.get("models").cloned())
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    ServerInfo {
        dialect: Some(DialectKind::OllamaChat),
        reason: "auto: /api/version answered (Ollama native API)".into(),
        server: Some("ollama".into()),
        version: version.get("version").and_then(Value::as_str).map(str::to_string),
        models,
    }
}

/// The status when a route does not exist at the target: 404 or 405 without a JSON error of the API's own
/// (Ollama answers an unknown model with 404 and `{"error": …}`, which proves the route is there). An empty
/// request is sent, which every server refuses without generating.
async fn route_missing(target: &Target, path: &str) -> Option<u16> {
    match send_json(target, hyper::Method::POST, path, &serde_json::json!({})).await {
        Ok((status @ (404 | 405), body)) => {
            let own_error = json(&body).is_some_and(|b| b.get("error").is_some());
            (!own_error).then_some(status)
        }
        _ => None,
    }
}

/// The OpenAI-compatible or Anthropic API, from `/v1/models` (and `/api/version`'s answer), and the server
/// behind it from `/props` or `/version`.
async fn openai_or_anthropic(
    target: &Target,
    url: String,
    version: &Result<(u16, Vec<u8>), velollm_core::measure::record::RequestError>,
) -> Result<ServerInfo, ProbeError> {
    let models_resp = get(target, "/v1/models").await;
    let answered = |r: &Result<(u16, Vec<u8>), _>| match r {
        Ok((status, body)) => json(body).filter(anthropic_shaped).map(|_| *status),
        Err(_) => None,
    };
    if let Some(status) = answered(&models_resp) {
        return Ok(anthropic(format!("auto: /v1/models answered like Anthropic's API (HTTP {status})")));
    }
    if let Some(status) = answered(version) {
        return Ok(anthropic(format!("auto: /api/version answered with an Anthropic API error (HTTP {status})")));
    }
    let Some(models) = ok_json(&models_resp).filter(|m| m.get("data").is_some()) else {
        let detail = match (version, &models_resp) {
            (_, Ok((status, _))) => format!("GET /api/version and /v1/models gave HTTP {status}"),
            (_, Err(e)) => e.message.clone(),
        };
        return Err(ProbeError::Unrecognised { url, detail });
    };
    let data = models.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
    let ids: Vec<String> =
        data.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect();
    let owner = data.first().and_then(|m| m.get("owned_by")).and_then(Value::as_str).unwrap_or("");
    let mut info = ServerInfo {
        dialect: Some(DialectKind::OpenAiChat),
        reason: "auto: /v1/models answered (OpenAI-compatible API)".into(),
        server: None,
        version: None,
        models: ids,
    };
    if let Some(props) = ok_json(&get(target, "/props").await)
        .filter(|p| p.get("build_info").is_some() || p.get("total_slots").is_some())
    {
        info.server = Some("llama.cpp".into());
        info.version = props.get("build_info").and_then(Value::as_str).map(str::to_string);
        info.reason.push_str("; /props identifies llama.cpp server");
    } else if let Some(v) = ok_json(&get(target, "/version").await).and_then(|v| v.get("version").cloned()) {
        info.server = Some(if owner.is_empty() { "openai-compatible".into() } else { owner.to_string() });
        info.version = v.as_str().map(str::to_string);
    } else if !owner.is_empty() {
        info.server = Some(owner.to_string());
    }
    Ok(info)
}

/// Check the requested model against what the server lists. Returns the model to use.
///
/// With no model requested, a server that lists exactly one model gets that one. A requested model the
/// server does not list is an error that names the models it has (Ollama's implicit `:latest` tag is
/// accepted).
pub fn resolve_model(requested: Option<&str>, info: &ServerInfo, url: &str) -> Result<String, String> {
    let list = || {
        if info.models.is_empty() { "(none)".to_string() } else { info.models.join(", ") }
    };
    match requested {
        None => match info.models.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(format!("{url} lists no models; pass --model NAME")),
            _ => Err(format!("{url} serves several models; pick one with --model: {}", list())),
        },
        Some(m) if info.models.is_empty() => Ok(m.to_string()),
        Some(m) => {
            let latest = format!("{m}:latest");
            if info.models.iter().any(|x| x == m || *x == latest) {
                Ok(m.to_string())
            } else {
                let hint = if info.server.as_deref() == Some("ollama") {
                    format!("\n  To get it: ollama pull {m}")
                } else {
                    String::new()
                };
                Err(format!("model '{m}' is not served by {url}. It has: {}{hint}", list()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_shapes_and_hosts() {
        let error = serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "x"}});
        let models = serde_json::json!({"data": [{"type": "model", "id": "claude-x", "display_name": "X"}],
            "has_more": false, "first_id": "claude-x", "last_id": "claude-x"});
        let openai = serde_json::json!({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "o"}]});
        let openai_error = serde_json::json!({"error": {"message": "no", "type": "invalid_request_error"}});
        assert!(anthropic_shaped(&error) && anthropic_shaped(&models));
        assert!(!anthropic_shaped(&openai) && !anthropic_shaped(&openai_error));
        assert_eq!(host_of("api.anthropic.com"), "api.anthropic.com");
        assert_eq!(host_of("API.Anthropic.com:443"), "api.anthropic.com");
        assert_eq!(host_of("[::1]:8080"), "::1");
    }

    #[test]
    fn an_anthropic_host_needs_no_request() {
        let endpoint = crate::transport::Endpoint::parse("https://API.anthropic.com").unwrap();
        let target = Target::new(endpoint, DialectKind::OpenAiChat, crate::transport::Clock::start());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let info = rt.block_on(probe(&target)).unwrap();
        assert_eq!((info.dialect, info.server.as_deref()), (Some(DialectKind::Anthropic), Some("anthropic")));
        assert!(info.reason.contains("api.anthropic.com"), "{}", info.reason);
        assert!(info.models.is_empty());
    }

    #[test]
    fn model_resolution() {
        let info = ServerInfo {
            models: vec!["llama3.2:latest".into(), "qwen".into()],
            server: Some("ollama".into()),
            ..Default::default()
        };
        assert_eq!(resolve_model(Some("llama3.2"), &info, "u").unwrap(), "llama3.2");
        let e = resolve_model(Some("nope"), &info, "u").unwrap_err();
        assert!(e.contains("It has: llama3.2:latest, qwen") && e.contains("ollama pull nope"), "{e}");
        assert!(resolve_model(None, &info, "u").unwrap_err().contains("--model"));
        let one = ServerInfo { models: vec!["smollm2".into()], ..Default::default() };
        assert_eq!(resolve_model(None, &one, "u").unwrap(), "smollm2");
    }
}
