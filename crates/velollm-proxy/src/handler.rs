//! One request's way through the proxy: ingress (route and dialect) → body read under limits → normalize
//! (one request model, tenant partition) → exact cache (hit, or a miss that leads or follows a flight) →
//! upstream → the tee that streams to the caller and to the cache writer. Every response says what happened
//! (`x-velollm-cache`, `x-velollm-upstream`, `x-velollm-overhead-ms`) and is counted in `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cache::flight::Joined;
use crate::cache::{Cache, Entry};
use crate::config::ProxyConfig;
use crate::dialect::{Dialect, Generate, Route, RouteKind};
use crate::hedge::Hedging;
use crate::metrics::{Lookup, Metrics};
use crate::normalize::{CacheKey, Normalized, Partition, normalize};
use crate::routing::{ROUTE_HEADER, Router, TASK_HEADER};
use crate::semantic::{Found, Pending, Semantic};
use crate::tee::{CacheWriter, ProxyBody, TeeBody};
use crate::upstream::{Upstream, UpstreamError, UpstreamResponse};

/// `hit`, `miss` or `bypass`: what the caches did for this response; the semantic layer adds its details
/// (`hit; layer=semantic; score=0.93; embed_ms=…; search_ms=…`).
pub const CACHE_HEADER: &str = "x-velollm-cache";
/// The proxy's own time to the response head, minus the upstream's, in milliseconds.
pub const OVERHEAD_HEADER: &str = "x-velollm-overhead-ms";
/// The upstream that served the response (absent on hits and on the proxy's own errors).
pub const UPSTREAM_HEADER: &str = "x-velollm-upstream";
/// An explicit tenant, hashed into the cache partition with the caller's credentials.
pub const TENANT_HEADER: &str = "x-velollm-tenant";
/// How a hedged request went: `branches=2; winner=1; after_ms=…`.
pub const HEDGE_HEADER: &str = "x-velollm-hedge";

/// What every request shares.
#[derive(Debug)]
pub struct State {
    /// The validated configuration.
    pub config: ProxyConfig,
    /// The upstreams, in configuration order.
    pub upstreams: Vec<Upstream>,
    /// The exact cache, unless it is off.
    pub cache: Option<Arc<Cache>>,
    /// The semantic layer, when enabled.
    pub semantic: Option<Arc<Semantic>>,
    /// The router, when tiers are configured.
    pub router: Option<Arc<Router>>,
    /// The hedging policy, when enabled.
    pub hedging: Option<Arc<Hedging>>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Set on SIGTERM: `/ready` answers 503.
    pub draining: AtomicBool,
}

/// Serves one request; never fails (every error is a response in the caller's dialect).
pub async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let path = request.uri().path();
    if request.method() == Method::GET {
        match path {
            "/health" => return Ok(json(200, &serde_json::json!({ "status": "ok" }))),
            "/ready" => return Ok(ready(&state).await),
            "/metrics" => {
                let mut r = Response::new(ProxyBody::full(state.metrics.render()));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                return Ok(r);
            }
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/upstream/") {
            return Ok(upstream_get(&state, rest.to_owned(), request, start).await);
        }
    }
    if crate::ws::is_upgrade(&request)
        && let Some(route) = Route::find(&Method::POST, path).filter(|r| matches!(r.kind, RouteKind::Generate(_)))
    {
        return Ok(crate::ws::upgrade(state, route, request));
    }
    let Some(route) = Route::find(request.method(), path) else {
        let dialect = Route::dialect_of_path(path);
        let message = format!(
            "velollm proxy serves no route {} {path}; it serves POST /v1/chat/completions, /v1/completions, \
             /v1/embeddings, /v1/messages, /api/chat, /api/generate, /completion, /tokenize and GET /v1/models, \
             /api/tags, /api/version, /health, /ready, /metrics, /upstream/NAME/PATH",
            request.method()
        );
        return Ok(error(dialect, 404, &message));
    };
    let response = proxy(&state, route, request, start).await;
    state.metrics.request(route.label, response.status().as_u16());
    Ok(response)
}

/// A generation or pass-through route: the body read under the limits, then the exchange.
async fn proxy(state: &State, route: Route, request: Request<Incoming>, start: Instant) -> Response<ProxyBody> {
    let limits = &state.config.limits;
    let (parts, body) = request.into_parts();
    match read_body(body, &parts.headers, limits.max_body_bytes, limits.client_timeout).await {
        Ok(body) => exchange(state, route, &parts.method, &parts.uri, &parts.headers, body, start).await,
        Err((status, message)) => error(route.dialect, status, &message),
    }
}

/// One request whose body has been read (over HTTP, or one message of a WebSocket session): normalize, the
/// cache, the upstream, the tee.
pub async fn exchange(
    state: &State,
    route: Route,
    method: &Method,
    uri: &hyper::Uri,
    headers: &HeaderMap,
    body: Bytes,
    start: Instant,
) -> Response<ProxyBody> {
    let dialect = route.dialect;
    let Some(default) = state.upstreams.iter().position(|u| u.speaks(dialect)) else {
        let message = format!(
            "no upstream speaks the {} dialect: add one with --upstream URL, or list {:?} in an upstream's dialects",
            dialect.name(),
            dialect.name()
        );
        return error(dialect, 404, &message);
    };
    let limits = &state.config.limits;
    let mut forward = body.clone();
    let mut outcome = Lookup::Bypass;
    let mut writer = None;
    let mut stream = false;
    let mut cache_note: Option<String> = None;
    let mut decision = None;
    if let RouteKind::Generate(generate) = route.kind {
        let tenant = tenant(headers);
        let partition = Partition::new(&tenant, &state.upstreams[default].name, route.label);
        let mut normalized = match normalize(generate, &body, &state.config.aliases, partition) {
            Ok(n) => n,
            Err(e) => return error(dialect, 400, &e.to_string()),
        };
        let router = state.router.as_ref().filter(|r| normalized.model.as_deref() == Some(r.model.as_str()));
        if let Some(router) = router {
            // A routed request's answers are shared by every tier that may give them.
            normalized.repartition(Partition::new(&tenant, &format!("route:{}", router.model), route.label));
        }
        stream = normalized.stream;
        if let Some(rewritten) = normalized.rewritten.take() {
            forward = Bytes::from(rewritten);
        }
        let (no_cache, no_store) = cache_control(headers);
        match state.cache.as_ref().filter(|c| normalized.deterministic || c.nondeterministic) {
            None => state.metrics.lookup("exact", Lookup::Bypass),
            Some(cache) => {
                let key = normalized.key();
                let mut guard = None;
                let mut pending = None;
                if !no_cache {
                    match cache.store.get(&key).await {
                        Ok(Some(entry)) => return exact_hit(state, entry, start),
                        Ok(None) => {
                            outcome = Lookup::Miss;
                            match cache.flights.join(key) {
                                Joined::Leader(g) => guard = Some(g),
                                Joined::Follower(mut done) => {
                                    let _ = tokio::time::timeout(limits.upstream_timeout, done.changed()).await;
                                    if let Ok(Some(entry)) = cache.store.get(&key).await {
                                        return exact_hit(state, entry, start);
                                    }
                                }
                            }
                        }
                        Err(_) => outcome = Lookup::Error,
                    }
                }
                state.metrics.lookup("exact", outcome);
                if outcome == Lookup::Miss
                    && let Some(semantic) = &state.semantic
                {
                    match semantic_lookup(state, semantic, cache, generate, &normalized, key, no_store).await {
                        Semantically::Hit { entry, note } => return hit(state, entry, start, &note),
                        Semantically::Miss { note, pending: p } => {
                            pending = p.map(|p| (Arc::clone(semantic), p));
                            cache_note = Some(note);
                        }
                    }
                }
                // A no-store request that explored an entry is still read, so that its answer teaches the entry.
                let learns = pending.as_ref().is_some_and(|(_, p)| p.explores());
                if !no_store || learns {
                    writer = Some(CacheWriter {
                        cache: Arc::clone(cache),
                        key,
                        route: generate,
                        content_type: String::new(),
                        buf: Vec::new(),
                        // Nothing will be stored: the flight's followers need not wait for this answer.
                        guard: guard.filter(|_| !no_store),
                        store: !no_store,
                        semantic: pending,
                    });
                }
            }
        }
        if let Some(router) = router {
            let task = headers.get(TASK_HEADER).map(|v| v.to_str().unwrap_or("?"));
            match router.decide(generate, normalized.body(), task).await {
                Ok(d) => {
                    state.metrics.route(&router.tiers[d.tier].name, d.reason.as_str(), d.elapsed);
                    decision = Some((Arc::clone(router), d));
                }
                Err(message) => return error(dialect, 400, &message),
            }
        }
    }
    let path_and_query = uri.path_and_query().map_or(route.label, |p| p.as_str());
    let plan = match &decision {
        Some((router, d)) => {
            let tiers =
                (d.tier..router.tiers.len()).filter(|&i| state.upstreams[router.tiers[i].upstream].speaks(dialect));
            tiers
                .map(|i| {
                    let t = &router.tiers[i];
                    Attempt {
                        tier: Some(i),
                        upstream: t.upstream,
                        body: with_model(&forward, &t.model),
                        timeout: t.timeout,
                    }
                })
                .collect()
        }
        None => vec![Attempt { tier: None, upstream: default, body: forward, timeout: limits.upstream_timeout }],
    };
    let Some(last) = plan.len().checked_sub(1) else {
        return error(dialect, 404, &format!("no routing tier's upstream speaks the {} dialect", dialect.name()));
    };
    let sent = Instant::now();
    let mut served = None;
    for (n, attempt) in plan.iter().enumerate() {
        let make = |u: &Upstream| upstream_request(u, method, path_and_query, headers, dialect, attempt.body.clone());
        let result = send(state, route, attempt, make, n < last, sent).await;
        let failed = match &result {
            Err(e) => {
                state.metrics.upstream_error(&state.upstreams[attempt.upstream].name, e.kind());
                true
            }
            Ok((r, ..)) => r.status.is_server_error() || r.status == StatusCode::TOO_MANY_REQUESTS,
        };
        if failed && n < last {
            if let (Some((router, _)), Some(from), Some(to)) = (&decision, attempt.tier, plan[n + 1].tier) {
                state.metrics.route_fallback(&router.tiers[from].name, &router.tiers[to].name);
            }
            if let Ok((mut r, ..)) = result {
                r.body.abandon();
            }
            continue;
        }
        match result {
            Ok((response, upstream, hedge)) => served = Some((response, upstream, hedge, attempt.tier)),
            Err(e) => return error(dialect, e.status(), &e.to_string()),
        }
        break;
    }
    let Some((response, upstream, hedge, tier)) = served else {
        return error(dialect, 502, "every routing tier failed");
    };
    let upstream = &state.upstreams[upstream];
    let upstream_time = sent.elapsed();
    let UpstreamResponse { status, mut headers, body } = response;
    if status != StatusCode::OK {
        writer = None;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // What the upstream sent decides, whatever the request asked: some servers stream regardless.
    let stream = stream || content_type.starts_with("text/event-stream") || content_type.contains("ndjson");
    if let Some(w) = writer.as_mut() {
        w.content_type = content_type.to_owned();
    }
    strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    let body = TeeBody::new(
        body,
        dialect,
        stream,
        Arc::clone(&upstream.name),
        Arc::clone(&state.metrics),
        writer,
        limits.idle_timeout,
    );
    let mut response = Response::new(ProxyBody::Tee(Box::new(body)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let outcome = if outcome == Lookup::Error { Lookup::Miss } else { outcome };
    let cache = cache_note.as_deref().unwrap_or(outcome.as_str());
    say(&mut response, state, cache, Some(&upstream.name), start.elapsed().saturating_sub(upstream_time));
    let notes = [
        (ROUTE_HEADER, decision.as_ref().zip(tier).map(|((router, d), t)| router.header(d, t))),
        (HEDGE_HEADER, hedge),
    ];
    for (name, value) in notes {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    response
}

/// Sends one attempt: hedged when hedging is on (generations only), else once; a tier with another behind it
/// must start its answer (first token) within its time. The response, the upstream that gave it and the
/// `x-velollm-hedge` value.
async fn send(
    state: &State,
    route: Route,
    attempt: &Attempt,
    make: impl Fn(&Upstream) -> Option<Request<Bytes>>,
    before_another: bool,
    sent: Instant,
) -> Result<(UpstreamResponse, usize, Option<String>), UpstreamError> {
    let upstream = &state.upstreams[attempt.upstream];
    let timeout = attempt.timeout;
    if let (Some(hedging), RouteKind::Generate(generate)) = (&state.hedging, route.kind) {
        let won = hedging.race(&state.upstreams, attempt.upstream, make, generate, timeout, &state.metrics).await?;
        let note = won.header();
        return Ok((won.response, won.upstream, Some(note)));
    }
    let Some(request) = make(upstream) else {
        let reason = "the request's path or headers cannot be forwarded".to_owned();
        return Err(UpstreamError::Request { name: upstream.name.clone(), reason, stale: false });
    };
    let response = match route.kind {
        RouteKind::Generate(g) if before_another => {
            let started = upstream.send_until(request, timeout, |b| g.has_token(b));
            match tokio::time::timeout(timeout, started).await {
                Ok(r) => r?,
                Err(_) => return Err(UpstreamError::Timeout { name: upstream.name.clone(), after: timeout }),
            }
        }
        _ => upstream.send(request, timeout).await?,
    };
    state.metrics.upstream_latency(&upstream.name, sent.elapsed());
    Ok((response, attempt.upstream, None))
}

/// One upstream to try: a routing tier's (with its model in the body), or the route's only one.
struct Attempt {
    tier: Option<usize>,
    upstream: usize,
    body: Bytes,
    timeout: Duration,
}

/// The body with `model` in place of the caller's (unchanged when `model` is empty or the body is not an
/// object).
fn with_model(body: &Bytes, model: &str) -> Bytes {
    if model.is_empty() {
        return body.clone();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut o)) => {
            o.insert("model".into(), model.into());
            serde_json::to_vec(&o).map_or_else(|_| body.clone(), Bytes::from)
        }
        _ => body.clone(),
    }
}

/// The request to an upstream: the caller's method, path and headers (the upstream's key in place of the
/// caller's), and `body`.
fn upstream_request(
    upstream: &Upstream,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    dialect: Dialect,
    body: Bytes,
) -> Option<Request<Bytes>> {
    let mut builder = Request::builder().method(method.clone()).uri(upstream.uri(path_and_query));
    if let Some(to) = builder.headers_mut() {
        copy_headers(headers, to);
        if let Some(key) = &upstream.api_key {
            set_key(to, dialect, key);
        }
    }
    builder.body(body).ok()
}

/// What the semantic layer did after an exact miss.
enum Semantically {
    /// A neighbour's answer, to replay (already stored under this request's key), and the header value.
    Hit { entry: Entry, note: String },
    /// No answer: the `x-velollm-cache` value, and the question to index once its answer is stored.
    Miss { note: String, pending: Option<Pending> },
}

/// The semantic layer, after an exact miss on `key`.
async fn semantic_lookup(
    state: &State,
    semantic: &Semantic,
    cache: &Cache,
    route: Generate,
    normalized: &Normalized,
    key: CacheKey,
    no_store: bool,
) -> Semantically {
    let probe = match semantic.probe(route, normalized) {
        Ok(p) => p,
        Err(skip) => {
            state.metrics.semantic_skip(skip.as_str());
            state.metrics.lookup("semantic", Lookup::Bypass);
            return Semantically::Miss { note: format!("miss; layer=semantic; skip={}", skip.as_str()), pending: None };
        }
    };
    let found = semantic.lookup(probe, &key, &state.metrics).await;
    let note = found.header(&key);
    match found {
        Found::Hit { answer, context, .. } => match cache.store.get(&answer).await {
            Ok(Some(entry)) => {
                if !no_store {
                    // The next identical request is an exact hit, and the flight's followers find it.
                    let _ = cache.store.put(key, entry.clone(), cache.ttl).await;
                }
                Semantically::Hit { entry, note }
            }
            _ => {
                // The answer left the exact cache (evicted, expired): the question goes too.
                semantic.forget(&context, &answer).await;
                Semantically::Miss { note: "miss; layer=semantic; stale".to_owned(), pending: None }
            }
        },
        Found::Miss { pending, .. } => Semantically::Miss { note, pending: Some(pending) },
        Found::Failed(_) => Semantically::Miss { note, pending: None },
    }
}

/// An exact hit, counted and replayed.
fn exact_hit(state: &State, entry: Entry, start: Instant) -> Response<ProxyBody> {
    state.metrics.lookup("exact", Lookup::Hit);
    hit(state, entry, start, "hit")
}

/// A cached answer, replayed as it was stored; `note` is the `x-velollm-cache` value.
fn hit(state: &State, entry: Entry, start: Instant, note: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(entry.body));
    *response.status_mut() = StatusCode::from_u16(entry.status).unwrap_or(StatusCode::OK);
    if let Ok(ct) = HeaderValue::from_str(&entry.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    say(&mut response, state, note, None, start.elapsed());
    response
}

/// Adds what the proxy did to a response, and records its overhead.
fn say(response: &mut Response<ProxyBody>, state: &State, cache: &str, upstream: Option<&str>, overhead: Duration) {
    state.metrics.overhead(overhead);
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(cache) {
        headers.insert(HeaderName::from_static(CACHE_HEADER), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1e3)) {
        headers.insert(HeaderName::from_static(OVERHEAD_HEADER), v);
    }
    if let Some(v) = upstream.and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert(HeaderName::from_static(UPSTREAM_HEADER), v);
    }
}

/// `GET /upstream/NAME/PATH`: the upstream's own `/health`, `/metrics`, `/props`, … under a prefix.
async fn upstream_get(state: &State, rest: String, request: Request<Incoming>, start: Instant) -> Response<ProxyBody> {
    let (name, path) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
    let Some(upstream) = state.upstreams.iter().find(|u| &*u.name == name) else {
        let names: Vec<&str> = state.upstreams.iter().map(|u| &*u.name).collect();
        return error(Dialect::Openai, 404, &format!("no upstream named {name:?}; the upstreams are {names:?}"));
    };
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut builder = Request::builder().method(Method::GET).uri(upstream.uri(&format!("/{path}{query}")));
    if let Some(headers) = builder.headers_mut() {
        copy_headers(request.headers(), headers);
    }
    let Ok(forward) = builder.body(Bytes::new()) else {
        return error(Dialect::Openai, 400, "the path cannot be forwarded");
    };
    let sent = Instant::now();
    match upstream.send(forward, state.config.limits.upstream_timeout).await {
        Err(e) => {
            state.metrics.upstream_error(&upstream.name, e.kind());
            error(Dialect::Openai, e.status(), &e.to_string())
        }
        Ok(response) => {
            let upstream_time = sent.elapsed();
            let crate::upstream::UpstreamResponse { status, mut headers, body } = response;
            strip_hop_by_hop(&mut headers);
            headers.remove(header::CONTENT_LENGTH);
            let body = TeeBody::new(
                body,
                Dialect::Openai,
                false,
                Arc::clone(&upstream.name),
                Arc::clone(&state.metrics),
                None,
                state.config.limits.idle_timeout,
            );
            let mut response = Response::new(ProxyBody::Tee(Box::new(body)));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            say(&mut response, state, "bypass", Some(&upstream.name), start.elapsed().saturating_sub(upstream_time));
            response
        }
    }
}

/// `/ready`: 200 while not draining and every upstream accepts a connection; what each said.
async fn ready(state: &State) -> Response<ProxyBody> {
    let mut upstreams = serde_json::Map::new();
    let mut all_up = true;
    for u in &state.upstreams {
        let addr = u.origin().split_once("://").map_or(u.origin(), |(_, a)| a).to_owned();
        let status =
            match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr.as_str())).await {
                Ok(Ok(_)) => "up".to_owned(),
                Ok(Err(e)) => format!("down: {e}"),
                Err(_) => "down: no answer within 1s".to_owned(),
            };
        all_up &= status == "up";
        upstreams.insert(u.name.to_string(), status.into());
    }
    let draining = state.draining.load(Ordering::Relaxed);
    let ready = all_up && !draining;
    let body = serde_json::json!({ "ready": ready, "draining": draining, "upstreams": upstreams });
    json(if ready { 200 } else { 503 }, &body)
}

/// Reads a request body under the size limit and the client deadline; the error is a status and a message.
async fn read_body(body: Incoming, headers: &HeaderMap, max: usize, timeout: Duration) -> Result<Bytes, (u16, String)> {
    let too_large = || (413, format!("the request body is larger than the proxy's limit of {max} bytes"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_) => Err((408, format!("the request body did not arrive within {timeout:?}"))),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err((400, format!("the request body could not be read: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The caller's identity for the partition: its credentials and tenant header, hashed later, never stored.
fn tenant(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for name in [header::AUTHORIZATION.as_str(), "x-api-key", TENANT_HEADER] {
        for v in headers.get_all(name) {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
    }
    out
}

/// `Cache-Control` on the request: (`no-cache`: do not serve from the cache, `no-store`: do not store either).
fn cache_control(headers: &HeaderMap) -> (bool, bool) {
    let mut flags = (false, false);
    for v in headers.get_all(header::CACHE_CONTROL) {
        for directive in v.to_str().unwrap_or("").split(',') {
            match directive.trim().to_ascii_lowercase().as_str() {
                "no-cache" => flags.0 = true,
                "no-store" => flags.1 = true,
                _ => {}
            }
        }
    }
    flags
}

/// Headers that belong to one connection, not to the request or response (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || n == TENANT_HEADER
            || n == TASK_HEADER
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// The upstream's own key in place of the caller's, in the dialect's header.
fn set_key(headers: &mut HeaderMap, dialect: Dialect, key: &HeaderValue) {
    headers.remove(header::AUTHORIZATION);
    headers.remove("x-api-key");
    if dialect == Dialect::Anthropic {
        headers.insert("x-api-key", key.clone());
        if !headers.contains_key("anthropic-version") {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
    } else if let Ok(mut bearer) = HeaderValue::from_bytes(&[b"Bearer ", key.as_bytes()].concat()) {
        bearer.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, bearer);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn json(status: u16, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An error in the caller's dialect, saying the proxy made it.
pub fn error(dialect: Dialect, status: u16, message: &str) -> Response<ProxyBody> {
    let mut r = json(status, &dialect.error_body(status, message));
    r.headers_mut().insert(HeaderName::from_static(CACHE_HEADER), HeaderValue::from_static("bypass"));
    r
}
