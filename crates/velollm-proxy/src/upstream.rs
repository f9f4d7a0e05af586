//! The upstreams and their connection pools: kept-alive HTTP/1.1 (or HTTP/2 with prior knowledge),
//! `TCP_NODELAY`, a connect deadline. A connection the upstream closed (llama-server closes after every
//! streamed response) is not reused; a request that finds its pooled connection closed before it was sent is
//! sent again on a fresh one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;
use crate::dialect::Dialect;

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
    client: Client<HttpConnector, Full<Bytes>>,
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
    /// An upstream from its validated configuration.
    pub fn new(config: &UpstreamConfig, connect_timeout: Duration) -> Upstream {
        let url = url::Url::parse(&config.url).expect("validated upstream URL");
        let host = url.host_str().unwrap_or("localhost");
        let port = url.port_or_known_default().unwrap_or(80);
        let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_owned() };
        let origin = format!("{}://{host}:{port}", url.scheme());
        let prefix = url.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .http2_only(config.http2)
            .build(connector);
        let dialects = if config.dialects.is_empty() { Dialect::ALL.to_vec() } else { config.dialects.clone() };
        Upstream { name: Arc::from(config.name.as_str()), origin, prefix, dialects, client }
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

    /// Sends a request and waits for the response head (at most `timeout`).
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout { name: self.name.clone(), after: timeout }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect {
                name: self.name.clone(),
                origin: self.origin.clone(),
                reason: error_chain(&e),
            }),
            Ok(Err(e)) => Err(UpstreamError::Request { name: self.name.clone(), reason: error_chain(&e) }),
        }
    }
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
