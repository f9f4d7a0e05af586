//! velollm's built-in loopback server: an OpenAI-compatible streaming server that does no work.
//!
//! It answers `POST /v1/chat/completions` and `POST /v1/completions` (streaming or not) and `GET /v1/models`,
//! over HTTP/1.1 with keep-alive. Every output token is its own SSE event, written with its own `write()`
//! (unless [`LoopbackConfig::events_per_write`] groups those due together): the first after
//! [`LoopbackConfig::ttft`], then one every [`LoopbackConfig::itl`]. The last event carries
//! the finish reason and the usage, then `data: [DONE]`. The token count is the request's `max_tokens` (or
//! `max_completion_tokens`), else [`LoopbackConfig::tokens`].
//!
//! With [`LoopbackConfig::stamps`] set, the server writes its own ground truth into the generated text: the
//! first token is `r<receipt> w<write> ` and every later one `w<write> `, both in nanoseconds of the given
//! [`Clock`]. `receipt` is when the request's last byte arrived (the kernel's receive stamp, see
//! [`crate::rxstamp`]; else when it was read) and `write` is taken just before the event's
//! `write()`. A client sharing the clock (the self-check, in the same process) then knows exactly how late it
//! stamped each chunk; see [`crate::selfcheck`].
//!
//! It serves `velollm selfcheck` in-process on its own thread, and `velollm selfcheck --serve` as a
//! standalone server for measuring other clients against the same zero-cost server.

use crate::rxstamp::RxSocket;
use crate::transport::Clock;
use futures_util::FutureExt;
use serde_json::Value;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

/// Name of the in-process server's thread (Linux keeps 15 bytes of a thread name).
pub const THREAD_NAME: &str = "velollm-loopbk";

/// The largest request head or body the server reads (bytes).
const MAX_REQUEST: usize = 16 << 20;

/// What the loopback server sends.
#[derive(Debug, Clone, Default)]
pub struct LoopbackConfig {
    /// Delay from the request's arrival to the first token.
    pub ttft: Duration,
    /// Delay between tokens.
    pub itl: Duration,
    /// Tokens per response when the request sets no `max_tokens`.
    pub tokens: u32,
    /// Write each event's send instant on this clock into the generated text (see the module docs).
    pub stamps: Option<Clock>,
    /// Events sent with one `write()` when they are due together (0 or 1: every event its own write, as a
    /// token-by-token server streams; more: a server that is not the limit, whose events cost the client
    /// fewer reads). An event due later is never held back: what is pending is written before waiting.
    pub events_per_write: u32,
}

/// A loopback server running on its own thread (a single-threaded runtime), so that its CPU time can be
/// told apart from the client's.
pub struct Loopback {
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    cpu: mpsc::UnboundedSender<oneshot::Sender<Duration>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Start a server on `127.0.0.1` (a free port) on a thread of its own.
    pub fn start(config: LoopbackConfig) -> io::Result<Loopback> {
        // A deep accept queue: a level may open a thousand connections at once.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (cpu_tx, mut cpu_rx) = mpsc::unbounded_channel::<oneshot::Sender<Duration>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread = std::thread::Builder::new().name(THREAD_NAME.into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match socket.listen(4096) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // CPU time of this thread, on request: every task of this runtime runs on it.
                tokio::spawn(async move {
                    while let Some(reply) = cpu_rx.recv().await {
                        let _ = reply.send(thread_cpu());
                    }
                });
                serve(listener, config, stop_rx).await;
            });
        })?;
        ready_rx.recv().map_err(|_| io::Error::other("the loopback server thread ended at start"))??;
        Ok(Loopback { addr, stop: Some(stop_tx), cpu: cpu_tx, thread: Some(thread) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// CPU time the server's thread has used so far.
    pub async fn cpu_time(&self) -> Duration {
        let (tx, rx) = oneshot::channel();
        if self.cpu.send(tx).is_err() {
            return Duration::ZERO;
        }
        rx.await.unwrap_or_default()
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    cpu(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

/// CPU time (user + system) of the whole process.
pub fn process_cpu() -> Duration {
    cpu(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

fn cpu(who: nix::sys::resource::UsageWho) -> Duration {
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    nix::sys::resource::getrusage(who).map_or(Duration::ZERO, |u| tv(u.user_time()) + tv(u.system_time()))
}

/// Serve connections from `listener` until `stop` becomes true.
pub async fn serve(listener: TcpListener, config: LoopbackConfig, mut stop: watch::Receiver<bool>) {
    let config = std::sync::Arc::new(config);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let config = config.clone();
                    tokio::spawn(async move {
                        let _ = connection(stream, &config).await;
                    });
                }
                // Out of descriptors or a connection reset before accept: wait a little and go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            // The value read is dropped at once: it borrows the channel, is not `Send`, and this future may move
            // between workers.
            _ = stop.wait_for(|s| *s).map(drop) => return,
        }
    }
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Serve the requests of one keep-alive connection.
async fn connection(stream: TcpStream, config: &LoopbackConfig) -> io::Result<()> {
    stream.set_nodelay(true)?;
    // A request arrives when the kernel received its last bytes, not when this thread got round to them.
    let clock = config.stamps.unwrap_or_else(Clock::start);
    let mut stream = RxSocket::new(stream, clock)?;
    let arrivals = stream.arrivals();
    let mut buf = Vec::with_capacity(4096);
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let arrived = Instant::from_std(clock.instant(arrivals.stamp(clock.now())));
        respond(&mut stream, &request, arrived, config).await?;
        if request.close {
            return Ok(());
        }
    }
}

/// Read one request (head and `Content-Length` body); `None` when the client closed the connection.
async fn read_request(stream: &mut RxSocket, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return Err(io::Error::other("request head too large"));
        }
        if read_more(stream, buf).await? == 0 {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let (mut length, mut close) = (0usize, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| io::Error::other("bad content-length"))?;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(io::Error::other("chunked request bodies are not supported"));
        }
    }
    if length > MAX_REQUEST {
        return Err(io::Error::other("request body too large"));
    }
    while buf.len() < head_end + length {
        if read_more(stream, buf).await? == 0 {
            return Ok(None);
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Ok(Some(Request { method, path, body, close }))
}

async fn read_more(stream: &mut RxSocket, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(8192);
    stream.read_buf(buf).await
}

/// Which response shape a route gets.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Chat,
    Completion,
}

async fn respond(stream: &mut RxSocket, req: &Request, arrived: Instant, config: &LoopbackConfig) -> io::Result<()> {
    let shape = match (req.method.as_str(), req.path.split('?').next().unwrap_or_default()) {
        ("POST", "/v1/chat/completions") => Shape::Chat,
        ("POST", "/v1/completions") => Shape::Completion,
        ("GET", "/v1/models") => {
            let body = r#"{"object":"list","data":[{"id":"loopback","object":"model","owned_by":"velollm"}]}"#;
            return write_plain(stream, 200, body).await;
        }
        _ => return write_plain(stream, 404, r#"{"error":{"message":"not found"}}"#).await,
    };
    let receipt = config.stamps.as_ref().map(|c| c.at(arrived.into_std()));
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return write_plain(stream, 400, r#"{"error":{"message":"the body is not JSON"}}"#).await;
    };
    let tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .map_or(config.tokens, |n| n as u32);
    let prompt_tokens = prompt_words(&body);
    let usage = format!(
        r#"{{"prompt_tokens":{prompt_tokens},"completion_tokens":{tokens},"total_tokens":{}}}"#,
        prompt_tokens + u64::from(tokens)
    );
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let text = "tok ".repeat(tokens as usize);
        let json = match shape {
            Shape::Chat => format!(
                r#"{{"id":"lb","object":"chat.completion","model":"loopback","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"length"}}],"usage":{usage}}}"#
            ),
            Shape::Completion => format!(
                r#"{{"id":"lb","object":"text_completion","model":"loopback","choices":[{{"index":0,"text":"{text}","finish_reason":"length"}}],"usage":{usage}}}"#
            ),
        };
        sleep_until(arrived + config.ttft + config.itl * tokens.saturating_sub(1)).await;
        return write_plain(stream, 200, &json).await;
    }
    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              transfer-encoding: chunked\r\n\r\n";
    let per_write = config.events_per_write.max(1);
    // What is written next: the head goes alone when every event is written alone.
    let mut pending = HEAD.to_vec();
    if per_write == 1 {
        stream.write_all(&pending).await?;
        pending.clear();
    }
    let (prefix, suffix) = match shape {
        Shape::Chat => (
            r#"data: {"id":"lb","object":"chat.completion.chunk","model":"loopback","choices":[{"index":0,"delta":{"content":""#,
            r#""},"finish_reason":null}]}"#,
        ),
        Shape::Completion => (
            r#"data: {"id":"lb","object":"text_completion","model":"loopback","choices":[{"index":0,"text":""#,
            r#"","finish_reason":null}]}"#,
        ),
    };
    // Without stamps every token event is the same bytes: build it once.
    let plain = frame(&format!("{prefix}tok {suffix}\n\n"));
    let mut event = String::with_capacity(256);
    let mut held = 0;
    for i in 0..tokens {
        let due = arrived + config.ttft + config.itl * i;
        if due > Instant::now() {
            if !pending.is_empty() {
                stream.write_all(&pending).await?;
                pending.clear();
                held = 0;
            }
            sleep_until(due).await;
        }
        match &config.stamps {
            None => pending.extend_from_slice(&plain),
            Some(clock) => {
                event.clear();
                event.push_str(prefix);
                if let (0, Some(r)) = (i, receipt) {
                    let _ = write!(event, "r{r} ");
                }
                let _ = write!(event, "w{} {suffix}\n\n", clock.now());
                pending.extend_from_slice(&frame(&event));
            }
        }
        held += 1;
        if held == per_write {
            stream.write_all(&pending).await?;
            pending.clear();
            held = 0;
        }
    }
    let finish = match shape {
        Shape::Chat => format!(
            r#"data: {{"id":"lb","object":"chat.completion.chunk","model":"loopback","choices":[{{"index":0,"delta":{{}},"finish_reason":"length"}}],"usage":{usage}}}"#
        ),
        Shape::Completion => format!(
            r#"data: {{"id":"lb","object":"text_completion","model":"loopback","choices":[{{"index":0,"text":"","finish_reason":"length"}}],"usage":{usage}}}"#
        ),
    };
    pending.extend_from_slice(&frame(&format!("{finish}\n\ndata: [DONE]\n\n")));
    pending.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&pending).await
}

/// One HTTP/1.1 chunk carrying `data`.
fn frame(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 12);
    let _ = std::io::Write::write_fmt(&mut out, format_args!("{:x}\r\n", data.len()));
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

async fn write_plain(stream: &mut RxSocket, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).await
}

/// Prompt tokens as the whitespace-separated words of the request's text (a stand-in: no tokenizer).
fn prompt_words(body: &Value) -> u64 {
    let words = |v: &Value| v.as_str().map_or(0, |s| s.split_whitespace().count() as u64);
    match body.get("messages").and_then(Value::as_array) {
        Some(messages) => messages
            .iter()
            .map(|m| match m.get("content") {
                Some(Value::Array(parts)) => parts.iter().map(|p| p.get("text").map_or(0, words)).sum(),
                Some(c) => words(c),
                None => 0,
            })
            .sum(),
        None => body.get("prompt").map_or(0, words),
    }
}

/// The stamps a stamped response carries, read back from its text: `(receipt, writes)`, both in ns of the
/// server's clock. `None` when the text carries no stamps.
pub fn read_stamps(text: &str) -> Option<(u64, Vec<u64>)> {
    let mut receipt = None;
    let mut writes = Vec::new();
    for word in text.split_whitespace() {
        if let Some(r) = word.strip_prefix('r') {
            receipt = Some(r.parse().ok()?);
        } else if let Some(w) = word.strip_prefix('w') {
            writes.push(w.parse().ok()?);
        }
    }
    Some((receipt?, writes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back() {
        assert_eq!(read_stamps("r10 w20 w30 w45 "), Some((10, vec![20, 30, 45])));
        assert_eq!(read_stamps("tok tok "), None);
    }

    #[test]
    fn prompt_words_counts_chat_and_completion_text() {
        let chat = serde_json::json!({"messages": [{"role": "user", "content": "a b c"},
            {"role": "user", "content": [{"type": "text", "text": "d e"}]}]});
        assert_eq!(prompt_words(&chat), 5);
        assert_eq!(prompt_words(&serde_json::json!({"prompt": "x y"})), 2);
    }
}
