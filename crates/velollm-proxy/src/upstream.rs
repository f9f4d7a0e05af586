//! The upstreams and their connection pools: kept-alive HTTP/1.1 on velollm's own client for plain-http
//! upstreams ([`crate::h1pool`]), hyper's client for https and HTTP/2 ones; `TCP_NODELAY`, a connect
//! deadline. A connection the upstream closed (llama-server closes after every streamed response) is not
//! reused; a request that finds its pooled connection closed under it is sent again on a fresh one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;
use crate::dialect::Dialect;
use crate::h1pool::{H1Pool, PoolError};
use crate::tls::Connector;

/// An upstream's response head and its body, still to be read.
#[derive(Debug)]
pub struct UpstreamResponse {
    /// The status.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: UpstreamBody,
}

/// A response body from either client.
pub enum UpstreamBody {
    /// From hyper's client (https, HTTP/2).
    Hyper(Incoming),
    /// From velollm's own HTTP/1.1 client: the connection, returned to its pool once read to the end.
    H1 {
        /// The connection (`None` once returned).
        conn: Option<velollm_engine::h1::H1>,
        /// Its pool.
        pool: Arc<H1Pool>,
    },
    /// A body whose first frame was read ahead (a hedged request waits for it before it picks a winner).
    Peeked {
        /// The frame read ahead, until it is passed on.
        first: Option<Bytes>,
        /// The rest.
        rest: Box<UpstreamBody>,
    },
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamBody::Hyper(_) => f.write_str("UpstreamBody::Hyper"),
            UpstreamBody::H1 { pool, .. } => write!(f, "UpstreamBody::H1({pool:?})"),
            UpstreamBody::Peeked { rest, .. } => write!(f, "UpstreamBody::Peeked({rest:?})"),
        }
    }
}

impl UpstreamBody {
    /// The next piece of data; `None` at the end (then [`UpstreamBody::release`] returns the connection).
    pub fn poll_data(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Bytes, String>>> {
        use std::task::Poll;
        loop {
            return match self {
                UpstreamBody::Hyper(body) => match std::pin::Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Poll::Ready(Some(Ok(data))),
                        Err(_) => continue, // trailers are not passed on
                    },
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(error_chain(&e)))),
                    Poll::Ready(None) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                },
                UpstreamBody::H1 { conn: Some(conn), .. } => crate::h1pool::poll_data(conn, cx),
                UpstreamBody::H1 { conn: None, .. } => Poll::Ready(None),
                UpstreamBody::Peeked { first, rest } => match first.take() {
                    Some(data) => Poll::Ready(Some(Ok(data))),
                    None => rest.poll_data(cx),
                },
            };
        }
    }

    /// The next piece of data, awaited.
    pub async fn data(&mut self) -> Option<Result<Bytes, String>> {
        std::future::poll_fn(|cx| self.poll_data(cx)).await
    }

    /// The body was read to its end: a kept-alive connection goes back to its pool.
    pub fn release(&mut self) {
        match self {
            UpstreamBody::H1 { conn, pool } => {
                if let Some(conn) = conn.take() {
                    pool.put_back(conn);
                }
            }
            UpstreamBody::Peeked { rest, .. } => rest.release(),
            UpstreamBody::Hyper(_) => {}
        }
    }

    /// The body will not be read to its end: its connection is closed, never reused.
    pub fn abandon(&mut self) {
        match self {
            UpstreamBody::H1 { conn, .. } => drop(conn.take()),
            UpstreamBody::Peeked { rest, .. } => rest.abandon(),
            UpstreamBody::Hyper(_) => {}
        }
    }

    /// Reads the whole body (at most `limit` bytes), for the proxy's own calls (the embedder); a kept-alive
    /// connection read to its end goes back to its pool.
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, String> {
        let mut out = Vec::new();
        while let Some(next) = self.data().await {
            let data = next?;
            if out.len() + data.len() > limit {
                return Err(format!("the response is larger than {limit} bytes"));
            }
            out.extend_from_slice(&data);
        }
        self.release();
        Ok(Bytes::from(out))
    }
}

/// One upstream server and its pool.
#[derive(Debug)]
pub struct Upstream {
    /// Its name, for metrics, headers and `/upstream/NAME/…`.
    pub name: Arc<str>,
    /// `scheme://host:port`.
    origin: String,
    /// The URL's path without its trailing slash, put before every forwarded path.
    prefix: String,
    /// The dialects it speaks.
    pub dialects: Vec<Dialect>,
    /// The key the proxy sends in place of the caller's (from `api_key_env`), marked sensitive.
    pub api_key: Option<HeaderValue>,
    /// `host:port`, sent as `Host`.
    host: HeaderValue,
    /// Plain-http HTTP/1.1 upstreams: velollm's own client.
    h1: Option<Arc<H1Pool>>,
    client: Client<Connector, Full<Bytes>>,
}

/// Why a request could not be forwarded; answered with 502 or 504 in the caller's dialect.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made.
    #[error("cannot connect to upstream {name:?} at {origin}: {reason}")]
    Connect {
        /// The upstream's name.
        name: Arc<str>,
        /// Where it was sought.
        origin: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The request failed after connecting.
    #[error("upstream {name:?} failed: {reason}")]
    Request {
        /// The upstream's name.
        name: Arc<str>,
        /// What went wrong.
        reason: String,
        /// The upstream had closed the connection before answering (worth one more try on a fresh one).
        stale: bool,
    },
    /// No response head within the deadline.
    #[error("upstream {name:?} sent no response within {after:?}")]
    Timeout {
        /// The upstream's name.
        name: Arc<str>,
        /// The deadline.
        after: Duration,
    },
}

impl UpstreamError {
    /// The status the caller gets: 504 for a deadline, 502 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            UpstreamError::Timeout { .. } => 504,
            _ => 502,
        }
    }

    /// The kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::Request { .. } => "request",
            UpstreamError::Timeout { .. } => "timeout",
        }
    }
}

impl Upstream {
    /// An upstream from its validated configuration; the error names what cannot be used (its CA file, its key).
    pub fn new(config: &UpstreamConfig, connect_timeout: Duration) -> Result<Upstream, String> {
        let url = url::Url::parse(&config.url).map_err(|e| format!("upstream {:?}: {e}", config.name))?;
        // `host_str` writes an IPv6 address between brackets already.
        let host = url.host_str().unwrap_or("localhost");
        let port = url.port_or_known_default().unwrap_or(80);
        let origin = format!("{}://{host}:{port}", url.scheme());
        let prefix = url.path().trim_end_matches('/').to_owned();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = Connector::new(http, config.ca_cert.as_deref(), config.http2)
            .map_err(|e| format!("upstream {:?}: {e}", config.name))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .http2_only(config.http2)
            .build(connector);
        let dialects = if config.dialects.is_empty() { Dialect::ALL.to_vec() } else { config.dialects.clone() };
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => {
                let key = std::env::var(var).map_err(|_| {
                    format!("upstream {:?}: api_key_env names {var}, which is not set: export {var}=…", config.name)
                })?;
                let mut value = HeaderValue::from_str(key.trim())
                    .map_err(|_| format!("upstream {:?}: the key in {var} is not a valid header value", config.name))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let authority = format!("{host}:{port}");
        let h1 = (url.scheme() == "http" && !config.http2)
            .then(|| Arc::new(H1Pool::new(authority.clone(), connect_timeout)));
        let host = HeaderValue::from_str(&authority).map_err(|_| format!("upstream {:?}: bad host", config.name))?;
        Ok(Upstream { name: Arc::from(config.name.as_str()), origin, prefix, dialects, api_key, host, h1, client })
    }

    /// Whether it speaks `dialect`.
    pub fn speaks(&self, dialect: Dialect) -> bool {
        self.dialects.contains(&dialect)
    }

    /// The absolute URI for a path and query on this upstream.
    pub fn uri(&self, path_and_query: &str) -> String {
        format!("{}{}{}", self.origin, self.prefix, path_and_query)
    }

    /// `scheme://host:port`, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sends a request and waits for the response head (at most `timeout`). A request that found its kept-alive
    /// connection closed by the upstream (llama-server closes after every stream, and the close can race the
    /// connection's return to the pool) is sent once more, on a fresh connection.
    pub async fn send(
        &self,
        mut request: Request<Bytes>,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(pool) = &self.h1 {
            request.headers_mut().insert(hyper::header::HOST, self.host.clone());
            let bytes = velollm_engine::h1::serialize(&request);
            return match tokio::time::timeout_at(deadline, pool.send(&bytes)).await {
                Err(_) => Err(UpstreamError::Timeout { name: self.name.clone(), after: timeout }),
                Ok(Ok((head, conn))) => Ok(UpstreamResponse {
                    status: head.status,
                    headers: head.headers,
                    body: UpstreamBody::H1 { conn: Some(conn), pool: Arc::clone(pool) },
                }),
                Ok(Err(PoolError::Connect(reason))) => {
                    Err(UpstreamError::Connect { name: self.name.clone(), origin: self.origin.clone(), reason })
                }
                Ok(Err(PoolError::Request { reason, stale })) => {
                    Err(UpstreamError::Request { name: self.name.clone(), reason, stale })
                }
            };
        }
        let request = request.map(Full::new);
        let retry = copy(&request);
        match self.send_once(request, deadline, timeout).await {
            Err(UpstreamError::Request { stale: true, .. }) => self.send_once(retry, deadline, timeout).await,
            other => other,
        }
    }

    /// Sends a request and, on a 200, reads its body until `started` says the bytes so far hold the answer's
    /// first token (or 64 KiB came, or the body ended); what was read is put back in front of the body.
    pub async fn send_until(
        &self,
        request: Request<Bytes>,
        timeout: Duration,
        started: impl Fn(&[u8]) -> bool,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let UpstreamResponse { status, headers, mut body } = self.send(request, timeout).await?;
        if status != StatusCode::OK {
            return Ok(UpstreamResponse { status, headers, body });
        }
        let mut read = Vec::new();
        while !started(&read) && read.len() < 64 << 10 {
            match body.data().await {
                Some(Ok(data)) => read.extend_from_slice(&data),
                Some(Err(reason)) => {
                    body.abandon();
                    return Err(UpstreamError::Request { name: self.name.clone(), reason, stale: false });
                }
                None => break,
            }
        }
        let first = (!read.is_empty()).then(|| Bytes::from(read));
        Ok(UpstreamResponse { status, headers, body: UpstreamBody::Peeked { first, rest: Box::new(body) } })
    }

    async fn send_once(
        &self,
        request: Request<Full<Bytes>>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<UpstreamResponse, UpstreamError> {
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout { name: self.name.clone(), after: timeout }),
            Ok(Ok(response)) => {
                let (head, body) = response.into_parts();
                Ok(UpstreamResponse { status: head.status, headers: head.headers, body: UpstreamBody::Hyper(body) })
            }
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect {
                name: self.name.clone(),
                origin: self.origin.clone(),
                reason: error_chain(&e),
            }),
            Ok(Err(e)) => {
                Err(UpstreamError::Request { name: self.name.clone(), reason: error_chain(&e), stale: is_stale(&e) })
            }
        }
    }
}

/// A copy of a request to send again (its extensions are not needed).
fn copy(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Whether an error says the connection was closed under the request before any answer: the upstream closed a
/// kept-alive connection.
fn is_stale(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_keep_the_base_path_and_bracket_ipv6_hosts() {
        let config = |url: &str| UpstreamConfig {
            name: "u".into(),
            url: url.into(),
            dialects: Vec::new(),
            http2: false,
            ca_cert: None,
            api_key_env: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _guard = rt.enter();
        let v6 = Upstream::new(&config("http://[::1]:8080/base/"), Duration::from_secs(1)).unwrap();
        assert_eq!(v6.uri("/v1/models"), "http://[::1]:8080/base/v1/models");
        let plain = Upstream::new(&config("http://localhost"), Duration::from_secs(1)).unwrap();
        assert_eq!(plain.uri("/health"), "http://localhost:80/health");
    }
}
