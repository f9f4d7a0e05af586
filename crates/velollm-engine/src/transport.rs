//! The HTTP transport that owns timing.
//!
//! Each load worker owns its connection (hyper's low-level `http1` client, as oha does), so every request
//! knows exactly whether it opened a connection — and how long DNS, TCP connect and TLS took — or reused
//! one. The socket is wrapped in [`TimedIo`], which stamps the instant the first byte of a request is
//! written; headers and every body frame are stamped by the reader in [`crate::exec`].

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use velollm_core::record::Nanos;

/// The run's monotonic clock: nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock { start: Instant::now() }
    }

    /// A clock whose zero is `start` (e.g. a launched server's spawn).
    pub fn since(start: Instant) -> Clock {
        Clock { start }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> Nanos {
        self.at(Instant::now())
    }

    /// An instant as nanoseconds since the start (0 before it).
    pub fn at(&self, t: Instant) -> Nanos {
        t.saturating_duration_since(self.start).as_nanos() as Nanos
    }

    /// The instant `ns` nanoseconds after the start.
    pub fn instant(&self, ns: Nanos) -> Instant {
        self.start + Duration::from_nanos(ns)
    }
}

/// Where requests go: scheme, host, port and base path, parsed once.
#[derive(Clone)]
pub struct Endpoint {
    https: bool,
    host: String,
    port: u16,
    base_path: String,
    display: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

/// Why an endpoint URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid --url '{url}': {reason}")]
pub struct UrlError {
    url: String,
    reason: String,
}

impl Endpoint {
    /// Parse a base URL such as `http://127.0.0.1:8080` or `https://api.example.com/v1`. A trailing `/v1` is
    /// kept as the base path only when it is not the OpenAI prefix the dialects add themselves.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let err = |reason: &str| UrlError { url: redact_url(url), reason: reason.to_string() };
        let with_scheme = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
        let u = url::Url::parse(&with_scheme).map_err(|e| err(&e.to_string()))?;
        let https = match u.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(err(&format!("scheme '{other}' is not supported (use http:// or https://)"))),
        };
        let host = u.host_str().ok_or_else(|| err("no host"))?.trim_matches(['[', ']']).to_string();
        let port = u.port_or_known_default().ok_or_else(|| err("no port"))?;
        let mut base_path = u.path().trim_end_matches('/').to_string();
        if base_path.ends_with("/v1") {
            base_path.truncate(base_path.len() - 3);
        }
        let tls = https.then(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        });
        let display =
            format!("{}://{}:{}{}", if https { "https" } else { "http" }, u.host_str().unwrap_or(""), port, base_path);
        Ok(Endpoint { https, host, port, base_path, display, tls })
    }

    /// The base URL without credentials, as shown and stored.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The full path for an API route.
    pub fn path(&self, route: &str) -> String {
        format!("{}{}", self.base_path, route)
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    /// True for https.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

/// Remove credentials (user info) and obvious key parameters from a URL before it is shown or stored.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = ["key", "token", "secret", "password", "auth"]
                            .iter()
                            .any(|s| k.to_ascii_lowercase().contains(s));
                        (k.into_owned(), if secret { "REDACTED".to_string() } else { v.into_owned() })
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Phase timings of a new connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// DNS resolution.
    pub dns_ns: u64,
    /// TCP connect.
    pub connect_ns: u64,
    /// TLS handshake (https only).
    pub tls_ns: Option<u64>,
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Name resolution failed.
    #[error("cannot resolve {host}: {source}")]
    Dns {
        /// Host name.
        host: String,
        /// Resolver error.
        source: io::Error,
    },
    /// TCP connect failed (e.g. refused).
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        /// Address tried last.
        addr: String,
        /// Socket error.
        source: io::Error,
    },
    /// TLS handshake failed.
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// Host name.
        host: String,
        /// TLS error.
        source: io::Error,
    },
    /// HTTP handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Http(#[from] hyper::Error),
}

/// Stamps the instant the first byte of each request is written.
#[derive(Debug, Default)]
pub struct WriteMark {
    armed: AtomicBool,
    at: AtomicU64,
}

impl WriteMark {
    /// Expect a new request: the next write is stamped.
    pub fn arm(&self) {
        self.at.store(0, Ordering::Release);
        self.armed.store(true, Ordering::Release);
    }

    /// The stamped instant since the last [`arm`](Self::arm), if a write happened.
    pub fn take(&self) -> Option<Nanos> {
        match self.at.swap(0, Ordering::AcqRel) {
            0 => None,
            t => Some(t - 1),
        }
    }
}

/// A socket wrapper that stamps the first write after the mark is armed.
pub struct TimedIo<S> {
    inner: S,
    mark: Arc<WriteMark>,
    clock: Clock,
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> TimedIo<S> {
    /// Record `before` (read just before the write) as the request's first byte, if this write is it. The
    /// clock is read before writing so that a pause between the write and the stamp can only make latency
    /// read longer than the truth, never shorter.
    fn stamp(&self, before: Nanos, wrote: &Poll<io::Result<usize>>) {
        if matches!(wrote, Poll::Ready(Ok(n)) if *n > 0) && self.mark.armed.swap(false, Ordering::AcqRel) {
            self.mark.at.store(before + 1, Ordering::Release);
        }
    }

    fn armed(&self) -> bool {
        self.mark.armed.load(Ordering::Acquire)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let before = if self.armed() { self.clock.now() } else { 0 };
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stamp(before, &r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let before = if self.armed() { self.clock.now() } else { 0 };
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stamp(before, &r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An open HTTP/1.1 connection owned by one worker.
pub struct Connection {
    /// Identifier within the run.
    pub id: u64,
    /// Requests sent on it so far.
    pub uses: u64,
    sender: http1::SendRequest<Full<Bytes>>,
    mark: Arc<WriteMark>,
}

impl Connection {
    /// Open a connection, timing DNS, TCP connect and TLS.
    pub async fn open(endpoint: &Endpoint, clock: Clock, id: u64) -> Result<(Connection, Phases), ConnectError> {
        let t0 = Instant::now();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|source| ConnectError::Dns { host: endpoint.host.clone(), source })?
            .collect();
        let t1 = Instant::now();
        let mut last = None;
        let mut stream = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some((addr.to_string(), e)),
            }
        }
        let stream = match stream {
            Some(s) => s,
            None => {
                let (addr, source) = last
                    .unwrap_or_else(|| (endpoint.host.clone(), io::Error::new(io::ErrorKind::NotFound, "no address")));
                return Err(ConnectError::Tcp { addr, source });
            }
        };
        let _ = stream.set_nodelay(true);
        let t2 = Instant::now();
        let mark = Arc::new(WriteMark::default());
        let mut phases = Phases {
            dns_ns: t1.duration_since(t0).as_nanos() as u64,
            connect_ns: t2.duration_since(t1).as_nanos() as u64,
            tls_ns: None,
        };
        let sender = match &endpoint.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| ConnectError::Tls { host: endpoint.host.clone(), source: io::Error::other(e) })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|source| ConnectError::Tls { host: endpoint.host.clone(), source })?;
                phases.tls_ns = Some(t2.elapsed().as_nanos() as u64);
                handshake(TimedIo { inner: tls, mark: mark.clone(), clock }).await?
            }
            None => handshake(TimedIo { inner: stream, mark: mark.clone(), clock }).await?,
        };
        Ok((Connection { id, uses: 0, sender, mark }, phases))
    }

    /// True when the connection can carry another request.
    pub fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Wait until the connection can send.
    pub async fn ready(&mut self) -> Result<(), hyper::Error> {
        self.sender.ready().await
    }

    /// Send a request. Returns the response (headers) and the instant its first byte was written.
    pub async fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
        clock: Clock,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Nanos), hyper::Error> {
        self.uses += 1;
        let before = clock.now();
        self.mark.arm();
        let resp = self.sender.send_request(req).await?;
        let sent = self.mark.take().unwrap_or(before);
        Ok((resp, sent))
    }
}

async fn handshake<S>(io: TimedIo<S>) -> Result<http1::SendRequest<Full<Bytes>>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((e.path("/v1/models"), e.authority()), ("/v1/models".to_string(), "127.0.0.1:8080".to_string()));
        let e = Endpoint::parse("https://api.example.com/v1/").unwrap();
        assert!(e.is_https());
        assert_eq!(
            (e.path("/v1/chat/completions"), e.authority()),
            ("/v1/chat/completions".into(), "api.example.com".into())
        );
        let e = Endpoint::parse("localhost:11434/ollama").unwrap();
        assert_eq!(e.path("/api/chat"), "/ollama/api/chat");
        assert!(Endpoint::parse("ftp://x").is_err());
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact_url("https://user:pw@host/x?api_key=abc&q=1"), "https://host/x?api_key=REDACTED&q=1");
    }
}
