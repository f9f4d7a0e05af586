//! The fake server over https and over HTTP/2.
//!
//! [`FakeServer::start_tls`] serves the same routes and scripts as [`FakeServer::start`] over TLS, with a
//! certificate for `127.0.0.1` and `localhost` issued at start by a throw-away certificate authority (made with
//! `rcgen`, nothing downloaded or stored): the CA's PEM is returned for the client to trust (`--ca-cert`).
//! ALPN offers `h2` then `http/1.1` (or `http/1.1` only, see [`TlsOptions`]), and TLS 1.3 sessions can be
//! resumed (rustls's server-side session cache). [`FakeServer::start_h2c`] serves plain http that also
//! accepts HTTP/2 by prior knowledge (h2c). Connections are kept alive in every protocol.

use super::{FakeServer, Flavor, Script, router};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How the https fake negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsOptions {
    /// Offer HTTP/2 by ALPN (`h2`, then `http/1.1`); when false, only `http/1.1` (a server that does not
    /// speak HTTP/2).
    pub h2: bool,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions { h2: true }
    }
}

impl FakeServer {
    /// An https fake on `127.0.0.1` (random port) offering ALPN `h2` and `http/1.1`. Returns the server
    /// (its [`url`](FakeServer::url) is `https://127.0.0.1:PORT`) and the PEM certificate of the authority
    /// that issued its certificate, for the client to trust.
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound or the certificate cannot be made.
    pub async fn start_tls(flavor: Flavor, script: Script) -> (FakeServer, String) {
        FakeServer::start_tls_with(flavor, script, TlsOptions::default()).await
    }

    /// Like [`FakeServer::start_tls`], negotiating as `options` says.
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound or the certificate cannot be made.
    pub async fn start_tls_with(flavor: Flavor, script: Script, options: TlsOptions) -> (FakeServer, String) {
        let (config, ca_pem) = server_config(options).expect("make the fake server's certificate");
        let server = serve(flavor, script, Some(TlsAcceptor::from(Arc::new(config))), "https")
            .await
            .expect("bind fake https server on 127.0.0.1:0");
        (server, ca_pem)
    }

    /// A plain-http fake on `127.0.0.1` (random port) that speaks HTTP/1.1 and HTTP/2 by prior knowledge (h2c).
    ///
    /// # Panics
    ///
    /// Panics if the listener cannot be bound.
    pub async fn start_h2c(flavor: Flavor, script: Script) -> FakeServer {
        serve(flavor, script, None, "http").await.expect("bind fake h2c server on 127.0.0.1:0")
    }
}

/// A fake whose routes and state are [`FakeServer::bind`]'s, served by hyper's protocol-detecting server
/// (HTTP/1.1 or HTTP/2) behind `tls` when given.
async fn serve(
    flavor: Flavor,
    script: Script,
    tls: Option<TlsAcceptor>,
    scheme: &'static str,
) -> io::Result<FakeServer> {
    // The plain server's state and routes, moved onto a listener of our own.
    let mut server = FakeServer::bind("127.0.0.1:0", flavor, script).await?;
    server.stop().await;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    server.addr = listener.local_addr()?;
    server.scheme = scheme;
    let app = router(flavor, server.shared.clone());
    server.task = tokio::spawn(accept(listener, app, tls));
    Ok(server)
}

async fn accept(listener: TcpListener, app: Router, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        // Best effort: a failure only costs latency accuracy.
        let _ = tcp.set_nodelay(true);
        let (app, tls) = (app.clone(), tls.clone());
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app);
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    // A client that rejects the certificate aborts the handshake: nothing to serve.
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// A server configuration with a certificate for `127.0.0.1` and `localhost`, and the PEM of its issuer.
fn server_config(options: TlsOptions) -> Result<(rustls::ServerConfig, String), Box<dyn std::error::Error>> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "velollm test CA");
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "velollm fake server");
    let leaf = leaf.signed_by(&key, &ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols =
        if options.h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok((config, ca.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issues_a_certificate_for_the_loopback_address() {
        let (server, pem) = FakeServer::start_tls(Flavor::OpenAi, Script::default()).await;
        assert!(server.url().starts_with("https://127.0.0.1:"), "{}", server.url());
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        let h2c = FakeServer::start_h2c(Flavor::OpenAi, Script::default()).await;
        assert!(h2c.url().starts_with("http://127.0.0.1:"), "{}", h2c.url());
    }
}
