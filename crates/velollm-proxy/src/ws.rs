//! Persistent sessions over WebSocket: a `GET` with `Upgrade: websocket` on a generation route (for example
//! `ws://HOST:PORT/v1/chat/completions`) opens a session on which the client sends the same request bodies as
//! over HTTP, one message each, and receives the same answers: one text message per stream event (the event's
//! `data`, or one NDJSON line for Ollama), or one message with the JSON answer. Many requests go over one
//! connection, one after the other; each takes the same way as over HTTP (normalize, cache, upstream), with the
//! upgrade request's headers (credentials, tenant) for all of them. Errors come back as one message in the
//! dialect's error shape.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};
use velollm_engine::wire::{Decoder, Framing};

use crate::dialect::Route;
use crate::handler::{State, error, exchange};
use crate::tee::ProxyBody;

/// Whether a request asks to open a WebSocket session.
pub fn is_upgrade(request: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        request
            .headers()
            .get_all(name)
            .iter()
            .any(|v| v.to_str().unwrap_or("").split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    request.method() == Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && request.headers().contains_key(header::SEC_WEBSOCKET_KEY)
}

/// Answers the upgrade (101) and runs the session on the upgraded connection.
pub fn upgrade(state: Arc<State>, route: Route, mut request: Request<Incoming>) -> Response<ProxyBody> {
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return error(route.dialect, 400, "a WebSocket upgrade needs Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgraded = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    tokio::spawn(async move {
        let Ok(io) = upgraded.await else { return };
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(state.config.limits.max_body_bytes);
        config.max_frame_size = Some(state.config.limits.max_body_bytes);
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config)).await;
        session(&state, route, &parts, ws).await;
    });
    let mut response = Response::new(ProxyBody::Full(None));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Requests one after the other until the client closes, or stays silent past the idle limit.
async fn session(state: &State, route: Route, parts: &hyper::http::request::Parts, mut ws: Ws) {
    let idle = state.config.limits.idle_timeout;
    let method = Method::POST;
    loop {
        let body = match tokio::time::timeout(idle, ws.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(Message::Text(text)))) => Bytes::from(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Binary(bytes)))) => bytes,
            Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => continue, // pings are answered by the protocol layer
        };
        let start = Instant::now();
        let response = exchange(state, route, &method, &parts.uri, &parts.headers, body, start).await;
        state.metrics.request(route.label, response.status().as_u16());
        if relay(response, &mut ws).await.is_err() {
            break;
        }
    }
    let _ = ws.close(None).await;
}

/// Sends an answer as messages: one per stream event (decoded by the engine's SSE and NDJSON decoders), or the
/// whole body as one.
async fn relay(response: Response<ProxyBody>, ws: &mut Ws) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let framing = framing(content_type);
    let mut body = response.into_body();
    let Some(framing) = framing else {
        let whole = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        return ws.send(Message::text(String::from_utf8_lossy(&whole).into_owned())).await;
    };
    let mut decoder = Decoder::new(framing);
    let mut messages = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else { break };
        let full = decoder.push(&data, &mut messages).is_err();
        for m in messages.drain(..) {
            ws.feed(Message::text(String::from_utf8_lossy(&m).into_owned())).await?;
        }
        ws.flush().await?;
        if full {
            break;
        }
    }
    if let Some(m) = decoder.finish() {
        ws.send(Message::text(String::from_utf8_lossy(&m).into_owned())).await?;
    }
    Ok(())
}

/// The stream framing of an answer, from its content type; `None` for a whole JSON answer.
fn framing(content_type: &str) -> Option<Framing> {
    if content_type.starts_with("text/event-stream") {
        Some(Framing::Sse)
    } else if content_type.contains("ndjson") {
        Some(Framing::Ndjson)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(content_type: &str, bytes: &[u8]) -> Vec<String> {
        let mut decoder = Decoder::new(framing(content_type).unwrap());
        let mut out = Vec::new();
        decoder.push(bytes, &mut out).unwrap();
        out.into_iter().map(|m| String::from_utf8(m).unwrap()).collect()
    }

    #[test]
    fn sse_events_become_their_data() {
        assert_eq!(messages("text/event-stream", b"data: {\"a\":1}\n\n"), ["{\"a\":1}"]);
        assert_eq!(messages("text/event-stream", b"event: message_stop\ndata: {}\n\n"), ["{}"]);
        assert!(messages("text/event-stream", b": keep-alive\n\n").is_empty());
        assert_eq!(messages("application/x-ndjson", b"{\"done\":true}\n"), ["{\"done\":true}"]);
        assert_eq!(framing("application/json"), None);
    }
}
