//! Building a request to the server: its path, headers (the bearer token, Anthropic's version and key
//! header) and JSON body.

use crate::dialect::DialectKind;
use crate::secrets::Secret;
use crate::target::Target;
use bytes::Bytes;

/// Build the HTTP request for a generation.
pub fn http_request(
    target: &Target,
    method: hyper::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> hyper::Request<Bytes> {
    let bytes = body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default())).unwrap_or_default();
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target.endpoint.path(path))
        .header(hyper::header::HOST, target.endpoint.authority())
        .header(hyper::header::USER_AGENT, concat!("velollm/", env!("CARGO_PKG_VERSION")))
        .header(hyper::header::ACCEPT, "*/*");
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if target.dialect == DialectKind::Anthropic {
        builder = builder.header("anthropic-version", crate::dialect::anthropic::API_VERSION);
    }
    match &target.api_key {
        // Anthropic takes the key in `x-api-key` only.
        Some(Secret(key)) if target.dialect == DialectKind::Anthropic => {
            builder = builder.header("x-api-key", key.as_str());
        }
        Some(Secret(key)) => {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
            if target.endpoint.is_https() || !key.is_empty() {
                builder = builder.header("x-api-key", key.as_str());
            }
        }
        None => {}
    }
    for (name, value) in &target.headers {
        builder = builder.header(name, value);
    }
    builder.body(bytes).expect("a valid request")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Clock, Endpoint};

    fn target(dialect: DialectKind) -> Target {
        let mut t = Target::new(Endpoint::parse("http://127.0.0.1:9").unwrap(), dialect, Clock::start());
        t.api_key = Some(Secret::new("k-123".into()));
        t
    }

    #[test]
    fn the_key_header_depends_on_the_dialect() {
        let r = http_request(&target(DialectKind::Anthropic), hyper::Method::POST, "/v1/messages", None);
        let h = r.headers();
        assert_eq!(h["x-api-key"].to_str().unwrap(), "k-123");
        assert_eq!(h["anthropic-version"].to_str().unwrap(), "2023-06-01");
        assert!(h.get(hyper::header::AUTHORIZATION).is_none());
        let r = http_request(&target(DialectKind::OpenAiChat), hyper::Method::POST, "/v1/chat/completions", None);
        assert_eq!(r.headers()[hyper::header::AUTHORIZATION].to_str().unwrap(), "Bearer k-123");
        assert!(r.headers().get("anthropic-version").is_none());
    }
}
