//! The HTTP transport that owns timing.
//!
//! Each load worker owns its connection, so every request knows exactly whether it opened a connection —
//! and how long DNS, TCP connect and TLS took, and whether the TLS handshake resumed an earlier session — or
//! reused one. The TCP socket (under TLS too) is an [`RxSocket`], which keeps the kernel's arrival stamp of
//! every read ([`crate::rxstamp`]); headers and every piece of body are stamped with it by the reader in
//! [`crate::exec`].
//!
//! HTTP/1.1 is velollm's own client ([`crate::h1`]): the worker that sends a request reads its response
//! straight from the socket, so a piece of body is read, stamped and decoded in the same poll of the same
//! task, with no hand-over to another task (or thread) and no copy in between: less CPU per chunk, and no
//! scheduling delay inside the stamp. The instant a request is sent is read just before its first byte is
//! written. Between requests nothing reads the idle socket; a connection the server closed meanwhile is
//! found closed at its next use (and the request sent again on a fresh one, see [`HttpError`]).
//!
//! HTTP/2 ([`OpenOptions::http2`]: ALPN `h2` over https, prior knowledge over plain http) multiplexes the
//! requests of every worker of a step on one connection. Its frames are written by hyper's connection task,
//! interleaved across streams, so the first write of one request cannot be told from another's: over HTTP/2
//! `sent` is read on the client's clock just before the request is handed to the connection (an upper
//! bound of the true send instant by the hand-off, microseconds; TTFT can only read longer, never shorter).
//!
//! A WebSocket session ([`Connection::open_websocket`], [`crate::ws`]) is an HTTP/1.1 connection upgraded on
//! the generation route: each request one message, read by the worker that sent it, as over HTTP/1.1.

use crate::h1::{self, H1, Head};
use crate::rxstamp::{Arrivals, RxSocket};
use crate::wire::Framing;
use crate::ws::{UpgradeError, Ws};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use velollm_core::measure::record::{HttpProtocol, Nanos};

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
    tls: Option<Arc<TlsConfigs>>,
}

/// The TLS client settings of an https endpoint, one per kind of connection. Each keeps rustls's own
/// in-memory session store, so sessions resume within a kind, never across kinds.
struct TlsConfigs {
    /// HTTP/1.1 (ALPN `http/1.1`), sessions resumed.
    h1: Arc<rustls::ClientConfig>,
    /// HTTP/1.1 with resumption off: a full handshake every time.
    fresh: Arc<rustls::ClientConfig>,
    /// ALPN `h2`, then `http/1.1`, sessions resumed.
    h2: Arc<rustls::ClientConfig>,
}

impl TlsConfigs {
    /// The configurations trusting the public web roots plus `extra` (certificates from `--ca-cert`).
    fn new(extra: &[CertificateDer<'static>]) -> Result<TlsConfigs, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for cert in extra {
            roots.add(cert.clone()).map_err(|e| format!("the certificate cannot be used as a trust anchor: {e}"))?;
        }
        let roots = Arc::new(roots);
        let config = |alpn: &[&[u8]], resume: bool| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            if !resume {
                config.resumption = rustls::client::Resumption::disabled();
            }
            Arc::new(config)
        };
        Ok(TlsConfigs {
            h1: config(&[b"http/1.1"], true),
            fresh: config(&[b"http/1.1"], false),
            h2: config(&[b"h2", b"http/1.1"], true),
        })
    }

    fn pick(&self, opts: OpenOptions) -> Arc<rustls::ClientConfig> {
        match (opts.http2, opts.no_resume) {
            (true, _) => self.h2.clone(),
            (false, true) => self.fresh.clone(),
            (false, false) => self.h1.clone(),
        }
    }
}

/// Read the PEM certificates of `--ca-cert FILE`; the error names the file and what is wrong with it.
pub fn read_ca_cert(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("--ca-cert '{}': cannot read it: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--ca-cert '{}': not a valid PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--ca-cert '{}' holds no certificate (expected PEM blocks '-----BEGIN CERTIFICATE-----')",
            path.display()
        ));
    }
    Ok(certs)
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
        let tls = match https {
            true => Some(Arc::new(TlsConfigs::new(&[]).map_err(|e| err(&e))?)),
            false => None,
        };
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

    /// Trust `certs` (from [`read_ca_cert`]) besides the public web roots, e.g. a local server's self-signed
    /// certificate. Verification stays on. Nothing changes for plain http.
    pub fn trust(&mut self, certs: &[CertificateDer<'static>]) -> Result<(), String> {
        if self.https {
            self.tls = Some(Arc::new(TlsConfigs::new(certs).map_err(|e| format!("--ca-cert: {e}"))?));
        }
        Ok(())
    }

    /// `scheme://host:port`, the origin written into HTTP/2 requests (`:scheme` and `:authority`).
    fn origin(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.authority())
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

/// How to open a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Speak HTTP/2: offer ALPN `h2` (then `http/1.1`) over https; prior knowledge (h2c) over plain http.
    pub http2: bool,
    /// Over https: no TLS session resumption (a full handshake).
    pub no_resume: bool,
}

/// Phase timings of a new connection, and what was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    /// DNS resolution.
    pub dns_ns: u64,
    /// TCP connect.
    pub connect_ns: u64,
    /// TLS handshake (https only).
    pub tls_ns: Option<u64>,
    /// Whether the TLS handshake resumed an earlier session (https only).
    pub tls_resumed: Option<bool>,
    /// The WebSocket upgrade, request to `101` (WebSocket sessions only).
    pub upgrade_ns: Option<u64>,
    /// The HTTP version spoken.
    pub protocol: HttpProtocol,
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
    #[error("TLS handshake with {host} failed: {source}{hint}")]
    Tls {
        /// Host name.
        host: String,
        /// TLS error.
        source: io::Error,
        /// What to do about it, when known (an untrusted certificate: `--ca-cert`).
        hint: &'static str,
    },
    /// HTTP handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Http(#[from] hyper::Error),
    /// The WebSocket upgrade failed or was refused.
    #[error("WebSocket upgrade failed: {0}")]
    WebSocket(#[from] UpgradeError),
}

/// The request side of an open connection.
enum Inner {
    H1(Box<H1>),
    H2 {
        sender: http2::SendRequest<Full<Bytes>>,
        /// The body of the response being read, and its latest data frame.
        body: Option<Incoming>,
        frame: Bytes,
    },
    Ws(Box<Ws>),
}

/// Why a request failed on a connection.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Over HTTP/1.1.
    #[error(transparent)]
    H1(#[from] h1::Error),
    /// Over HTTP/2.
    #[error(transparent)]
    H2(#[from] hyper::Error),
}

impl HttpError {
    /// True when the server had closed the connection before the request reached it (a kept-alive
    /// connection closed while idle): the request can be sent again on a fresh connection.
    pub fn is_stale_connection(&self) -> bool {
        match self {
            HttpError::H1(h1::Error::Closed) => true,
            HttpError::H1(h1::Error::Io(e)) => {
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
                )
            }
            HttpError::H1(_) => false,
            HttpError::H2(e) => e.is_canceled() || e.is_incomplete_message() || e.is_closed(),
        }
    }
}

/// An open connection: HTTP/1.1 owned by one worker, or a handle on an HTTP/2 connection shared by a step.
pub struct Connection {
    /// Identifier within the run.
    pub id: u64,
    /// Requests sent on it so far (through this handle).
    pub uses: u64,
    inner: Inner,
    arrivals: Arc<Arrivals>,
    origin: String,
}

/// The certificate hint of a failed TLS handshake.
fn tls_hint(e: &io::Error) -> &'static str {
    match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => {
            " (a self-signed or private-CA certificate? trust it with --ca-cert FILE, its PEM certificate; \
             verification is never turned off)"
        }
        _ => "",
    }
}

impl Connection {
    /// Open an HTTP/1.1 connection with TLS session resumption, timing DNS, TCP connect and TLS.
    pub async fn open(endpoint: &Endpoint, clock: Clock, id: u64) -> Result<(Connection, Phases), ConnectError> {
        Connection::open_with(endpoint, clock, id, OpenOptions::default()).await
    }

    /// Open a connection as `opts` says, timing DNS, TCP connect and TLS.
    pub async fn open_with(
        endpoint: &Endpoint,
        clock: Clock,
        id: u64,
        opts: OpenOptions,
    ) -> Result<(Connection, Phases), ConnectError> {
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
        let addr = stream.peer_addr().map_or_else(|_| endpoint.host.clone(), |a| a.to_string());
        let stream = RxSocket::new(stream, clock).map_err(|source| ConnectError::Tcp { addr, source })?;
        let arrivals = stream.arrivals();
        let t2 = Instant::now();
        let mut phases = Phases {
            dns_ns: t1.duration_since(t0).as_nanos() as u64,
            connect_ns: t2.duration_since(t1).as_nanos() as u64,
            tls_ns: None,
            tls_resumed: None,
            upgrade_ns: None,
            protocol: HttpProtocol::Http1,
        };
        let inner = match &endpoint.tls {
            Some(configs) => {
                let tls_err = |source: io::Error| ConnectError::Tls {
                    host: endpoint.host.clone(),
                    hint: tls_hint(&source),
                    source,
                };
                let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                    .map_err(|e| tls_err(io::Error::other(e)))?;
                let tls = tokio_rustls::TlsConnector::from(configs.pick(opts))
                    .connect(name, stream)
                    .await
                    .map_err(tls_err)?;
                phases.tls_ns = Some(t2.elapsed().as_nanos() as u64);
                let session = tls.get_ref().1;
                phases.tls_resumed = Some(session.handshake_kind() == Some(rustls::HandshakeKind::Resumed));
                if session.alpn_protocol() == Some(b"h2") {
                    phases.protocol = HttpProtocol::H2;
                    handshake_h2(tls).await?
                } else {
                    Inner::H1(Box::new(H1::new(h1::Io::Tls(Box::new(tls)))))
                }
            }
            None if opts.http2 => {
                phases.protocol = HttpProtocol::H2;
                handshake_h2(stream).await?
            }
            None => Inner::H1(Box::new(H1::new(h1::Io::Plain(stream)))),
        };
        Ok((Connection { id, uses: 0, inner, arrivals, origin: endpoint.origin() }, phases))
    }

    /// Open an HTTP/1.1 connection and upgrade it to a WebSocket session with `upgrade` (a `GET` of the
    /// generation route with the target's headers), whose answers are re-framed as `framing`'s events.
    pub async fn open_websocket(
        endpoint: &Endpoint,
        clock: Clock,
        id: u64,
        upgrade: hyper::Request<Bytes>,
        framing: Framing,
    ) -> Result<(Connection, Phases), ConnectError> {
        let (conn, mut phases) = Connection::open_with(endpoint, clock, id, OpenOptions::default()).await?;
        let Connection { inner: Inner::H1(h1), arrivals, origin, .. } = conn else {
            unreachable!("an HTTP/1.1 connection was asked for");
        };
        let (ws, took) = Ws::connect(*h1, upgrade, framing, clock).await?;
        phases.upgrade_ns = Some(took);
        phases.protocol = HttpProtocol::WebSocket;
        Ok((Connection { id, uses: 0, inner: Inner::Ws(Box::new(ws)), arrivals, origin }, phases))
    }

    /// The HTTP version spoken.
    pub fn protocol(&self) -> HttpProtocol {
        match self.inner {
            Inner::H1(_) => HttpProtocol::Http1,
            Inner::H2 { .. } => HttpProtocol::H2,
            Inner::Ws(_) => HttpProtocol::WebSocket,
        }
    }

    /// The reader saw the end of the answer in its stream (the dialect's end marker). Over a WebSocket
    /// session, whose messages carry no end of body, the answer ends here and the session can carry the next
    /// request; over HTTP the body's own end is read instead.
    pub fn finish(&mut self) {
        if let Inner::Ws(ws) = &mut self.inner {
            ws.finish();
        }
    }

    /// Another handle on the same HTTP/2 connection (its requests are multiplexed with this one's); `None`
    /// for HTTP/1.1, which carries one request at a time.
    pub fn share(&self) -> Option<Connection> {
        match &self.inner {
            Inner::H2 { sender, .. } => Some(Connection {
                id: self.id,
                uses: 0,
                inner: Inner::H2 { sender: sender.clone(), body: None, frame: Bytes::new() },
                arrivals: self.arrivals.clone(),
                origin: self.origin.clone(),
            }),
            Inner::H1(_) | Inner::Ws(_) => None,
        }
    }

    /// True when the connection can carry another request (over HTTP/1.1: the previous response was read
    /// to its end and neither side asked to close).
    pub fn is_usable(&self) -> bool {
        match &self.inner {
            Inner::H1(c) => c.is_usable(),
            Inner::H2 { sender, .. } => !sender.is_closed(),
            Inner::Ws(ws) => ws.is_usable(),
        }
    }

    /// Wait until the connection can send.
    pub async fn ready(&mut self) -> Result<(), HttpError> {
        match &mut self.inner {
            Inner::H1(c) if c.is_usable() => Ok(()),
            Inner::H1(_) => Err(h1::Error::Busy.into()),
            Inner::Ws(ws) if ws.is_usable() => Ok(()),
            Inner::Ws(_) => Err(h1::Error::Busy.into()),
            Inner::H2 { sender, .. } => Ok(sender.ready().await?),
        }
    }

    /// The kernel arrival stamps of the connection's socket: a response's chunks are stamped with
    /// [`Arrivals::stamp`] (see [`crate::rxstamp`]).
    pub fn arrivals(&self) -> Arc<Arrivals> {
        self.arrivals.clone()
    }

    /// Send a request. Returns the response head and the instant the request's first byte was written
    /// (over HTTP/2: the instant it was handed to the connection, see the module documentation); the body
    /// is then read with [`data`](Self::data). Over a WebSocket session only the body is sent, and the head
    /// stands for the answer's first message (see [`crate::ws`]).
    pub async fn send(&mut self, mut req: hyper::Request<Bytes>, clock: Clock) -> Result<(Head, Nanos), HttpError> {
        self.uses += 1;
        match &mut self.inner {
            Inner::H1(c) => Ok(c.send(&h1::serialize(&req), clock).await?),
            Inner::Ws(ws) => Ok(ws.send(req.body(), clock).await?),
            Inner::H2 { sender, body, frame } => {
                *body = None;
                *frame = Bytes::new();
                // HTTP/2 carries the scheme and authority as pseudo-headers, taken from an absolute URI.
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                if let Ok(uri) = format!("{}{path}", self.origin).parse() {
                    *req.uri_mut() = uri;
                }
                req.headers_mut().remove(hyper::header::HOST);
                let sent = clock.now();
                let resp = sender.send_request(req.map(Full::new)).await?;
                let (parts, incoming) = resp.into_parts();
                *body = Some(incoming);
                Ok((Head { status: parts.status, headers: parts.headers }, sent))
            }
        }
    }

    /// The next piece of the response body, as it arrives; `None` once it has ended. Cancel-safe.
    pub async fn data(&mut self) -> Result<Option<&[u8]>, HttpError> {
        match &mut self.inner {
            Inner::H1(c) => Ok(c.data().await?),
            Inner::Ws(ws) => Ok(ws.data().await?),
            Inner::H2 { body, frame, .. } => {
                let Some(incoming) = body.as_mut() else {
                    return Ok(None);
                };
                loop {
                    match incoming.frame().await {
                        Some(Ok(f)) => {
                            if let Ok(d) = f.into_data() {
                                if d.is_empty() {
                                    continue;
                                }
                                *frame = d;
                                return Ok(Some(&frame[..]));
                            }
                        }
                        Some(Err(e)) => return Err(e.into()),
                        None => {
                            *body = None;
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}

async fn handshake_h2<S>(io: S) -> Result<Inner, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Inner::H2 { sender, body: None, frame: Bytes::new() })
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
    fn ca_cert_errors_name_the_flag_and_the_file() {
        let dir = std::env::temp_dir().join(format!("velollm-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = read_ca_cert(&dir.join("missing.pem")).unwrap_err();
        assert!(missing.starts_with("--ca-cert '") && missing.contains("cannot read it"), "{missing}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = read_ca_cert(&empty).unwrap_err();
        assert!(e.contains("holds no certificate") && e.contains("BEGIN CERTIFICATE"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Open a connection to the https fake and send one request on it, reading the whole response (TLS 1.3
    /// session tickets arrive after the handshake, with the response).
    async fn open_and_use(e: &Endpoint, opts: OpenOptions) -> (Phases, u16) {
        let clock = Clock::start();
        let (mut c, phases) = Connection::open_with(e, clock, 1, opts).await.unwrap();
        let req = hyper::Request::get(e.path("/v1/models"))
            .header(hyper::header::HOST, e.authority())
            .body(Bytes::new())
            .unwrap();
        let (head, _) = c.send(req, clock).await.unwrap();
        while c.data().await.unwrap().is_some() {}
        (phases, head.status.as_u16())
    }

    #[tokio::test]
    async fn alpn_resumption_and_trust() {
        use velollm_testkit::{FakeServer, Flavor, Script};
        let (server, pem) = FakeServer::start_tls(Flavor::OpenAi, Script::default()).await;
        let mut e = Endpoint::parse(&server.url()).unwrap();
        // The public roots do not know the fake's authority: the error says how to trust it.
        let err = Connection::open(&e, Clock::start(), 1).await.err().unwrap().to_string();
        assert!(err.contains("certificate") && err.contains("--ca-cert FILE"), "{err}");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().unwrap();
        e.trust(&certs).unwrap();

        let h1 = OpenOptions::default();
        let (first, status) = open_and_use(&e, h1).await;
        assert_eq!((first.protocol, first.tls_resumed, status), (HttpProtocol::Http1, Some(false), 200));
        assert!(first.tls_ns.is_some_and(|t| t > 0));
        let (second, _) = open_and_use(&e, h1).await;
        assert_eq!(second.tls_resumed, Some(true), "the second handshake resumes the first session");
        let fresh = OpenOptions { no_resume: true, ..h1 };
        let (full, _) = open_and_use(&e, fresh).await;
        assert_eq!(full.tls_resumed, Some(false), "resumption off: a full handshake");
        let h2 = OpenOptions { http2: true, ..h1 };
        let (phases, status) = open_and_use(&e, h2).await;
        assert_eq!((phases.protocol, status), (HttpProtocol::H2, 200));
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact_url("https://user:pw@host/x?api_key=abc&q=1"), "https://host/x?api_key=REDACTED&q=1");
    }
}
