//! Helpers shared by the proxy's integration tests: an in-process proxy and a client that stamps every body
//! frame's arrival.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use velollm_proxy::{Proxy, ProxyConfig};

/// A proxy running in this process.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics: std::sync::Arc<velollm_proxy::metrics::Metrics>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Starts draining; the task ends once streams in flight finish.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A configuration with one upstream, on a random port.
pub fn config(upstream: &str) -> ProxyConfig {
    let mut c = ProxyConfig { listen: "127.0.0.1:0".parse().unwrap(), ..ProxyConfig::default() };
    c.add_upstream_flag(&format!("up={upstream}")).unwrap();
    c
}

pub async fn start(config: ProxyConfig) -> Running {
    let proxy = Proxy::bind(config).await.expect("the proxy starts");
    let addr = proxy.local_addr();
    let metrics = proxy.metrics();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        proxy
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running { addr, metrics, stop: Some(tx), task }
}

/// A response as the caller saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    /// Every body frame with its arrival, from the request's send.
    pub frames: Vec<(Duration, Bytes)>,
    /// The body's error, when it ended with one (an aborted connection).
    pub error: Option<String>,
}

impl Reply {
    pub fn body(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body()).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request on a new connection and reads the whole response, frame by frame.
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("the proxy accepts");
    stream.set_nodelay(true).unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header("host", addr.to_string());
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let sent = Instant::now();
    let response = sender.send_request(request.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let mut error = None;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((sent.elapsed(), data));
                }
            }
            Some(Err(e)) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Reply { status, headers, frames, error }
}

pub async fn post(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    send(addr, "POST", path, &[], &body.to_string()).await
}
