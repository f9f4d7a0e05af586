//! WebSocket client sessions (RFC 6455), the transport of a [`ConnectionMode::WebSocket`] step.
//!
//! A session is opened by an HTTP/1.1 upgrade (`GET` with `Upgrade: websocket`) on the dialect's generation
//! route — what `velollm proxy` accepts — and then carries many requests, one after the other: each request
//! body is one masked text message, each stream event comes back as one message (`velollm proxy`'s
//! protocol, see its `ws` module). A message carries an event's payload only, so each is handed to the
//! reader re-framed as the stream it came from (an SSE event `data: …` followed by a blank line, or an NDJSON
//! line): the dialect decoders read it as they read HTTP. A message has no end of body; the answer ends
//! where the dialect says so (`[DONE]`, `message_stop`, `"done": true`), which the reader reports with
//! [`Ws::finish`].
//!
//! Frames are read from the connection's own buffer by the task that sent the request, as over HTTP/1.1
//! ([`crate::h1`]), so the kernel arrival stamps of the socket apply unchanged. `send` returns once the
//! answer's first message has arrived (the counterpart of a response head), so a session the server closed
//! while idle is found there and the request can be sent again on a fresh one.
//!
//! [`ConnectionMode::WebSocket`]: velollm_core::document::scenario::ConnectionMode::WebSocket

use crate::h1::{self, H1, Head};
use crate::transport::Clock;
use crate::wire::{Framing, MAX_MESSAGE_BYTES};
use velollm_core::measure::record::Nanos;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The frame being read: its opcode, whether it ends its message, and the payload bytes still to come.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: u8,
    fin: bool,
    left: u64,
}

/// A WebSocket session over an upgraded HTTP/1.1 connection.
pub struct Ws {
    conn: H1,
    framing: Framing,
    /// The frame being read, once its header was.
    frame: Option<Frame>,
    /// The data message being assembled (its fragments so far) and its opcode.
    message: Vec<u8>,
    opcode: Option<u8>,
    /// The payload of the control frame being read.
    control: Vec<u8>,
    /// Pongs owed to the server's pings, sent before the next request.
    pongs: Vec<Vec<u8>>,
    /// The last message, re-framed for the reader.
    out: Vec<u8>,
    /// `out` holds the answer's first message, read by `send` and not yet handed over.
    first: bool,
    /// A request was sent and its answer has not ended.
    answering: bool,
    /// A message of the current answer has arrived.
    answered: bool,
    /// The server's Close frame was read.
    close_read: bool,
    /// A failure met after whole messages of the same read, reported at the next read.
    deferred: Option<h1::Error>,
    /// The server closed the session, or a failure left it in an unknown state.
    closed: bool,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The upgrade request or its response failed.
    #[error(transparent)]
    Http(#[from] h1::Error),
    /// The server answered, but did not open a session.
    #[error("{0}")]
    Refused(String),
}

impl Ws {
    /// Open a session on `conn` with `upgrade`, a `GET` of the generation route carrying the target's headers
    /// (credentials included); the upgrade's own headers are added here. Returns the session and the time from
    /// the upgrade request's first byte to the server's `101`.
    pub async fn connect(
        mut conn: H1,
        mut upgrade: hyper::Request<bytes::Bytes>,
        framing: Framing,
        clock: Clock,
    ) -> Result<(Ws, u64), UpgradeError> {
        let key = tungstenite::handshake::client::generate_key();
        let headers = upgrade.headers_mut();
        for (name, value) in [("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-version", "13")] {
            headers.insert(name, hyper::header::HeaderValue::from_static(value));
        }
        headers.insert("sec-websocket-key", key.parse().expect("a base64 key is a valid header value"));
        headers.remove(hyper::header::CONTENT_TYPE);
        let path = upgrade.uri().path().to_string();
        let (head, sent) = conn.send(&h1::serialize(&upgrade), clock).await?;
        let took = clock.now().saturating_sub(sent);
        if head.status != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let mut body = Vec::new();
            while let Ok(Some(d)) = conn.data().await {
                body.extend_from_slice(d);
                if body.len() > 512 {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
            return Err(UpgradeError::Refused(format!(
                "the server did not open a WebSocket session on {path} (HTTP {}{}{text}): --websocket needs a \
                 server that offers one on its generation routes, such as `velollm proxy`",
                head.status.as_u16(),
                if text.is_empty() { "" } else { ": " }
            )));
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if header(&head, "sec-websocket-accept") != Some(accept.as_str()) {
            return Err(UpgradeError::Refused(format!(
                "the server answered the WebSocket upgrade on {path} with a wrong Sec-WebSocket-Accept"
            )));
        }
        let ws = Ws {
            conn,
            framing,
            frame: None,
            message: Vec::new(),
            opcode: None,
            control: Vec::new(),
            pongs: Vec::new(),
            out: Vec::new(),
            first: false,
            answering: false,
            answered: false,
            close_read: false,
            deferred: None,
            closed: false,
        };
        Ok((ws, took))
    }

    /// True when the session can carry another request.
    pub fn is_usable(&self) -> bool {
        !self.closed && !self.answering
    }

    /// Send `body` as one message and wait for the answer's first message. Returns a head standing for the
    /// answer (status 200: a session has no status per request; errors come as messages in the dialect's
    /// shape) and the instant the message's first byte was written.
    pub async fn send(&mut self, body: &[u8], clock: Clock) -> Result<(Head, Nanos), h1::Error> {
        if !self.is_usable() {
            return Err(h1::Error::Busy);
        }
        // Until the first message is read, a failure leaves the session unusable.
        self.closed = true;
        let pongs: Vec<u8> = self.pongs.drain(..).flat_map(|p| frame(PONG, &p)).collect();
        if !pongs.is_empty() {
            self.conn.write_all(&pongs, clock).await?;
        }
        let sent = self.conn.write_all(&frame(TEXT, body), clock).await?;
        self.answering = true;
        self.answered = false;
        self.next_message().await?;
        self.first = true;
        self.closed = false;
        Ok((Head { status: hyper::StatusCode::OK, headers: hyper::HeaderMap::new() }, sent))
    }

    /// The answer's next message, re-framed as its stream's event; `None` once [`finish`](Self::finish) was
    /// called. Cancel-safe.
    pub async fn data(&mut self) -> Result<Option<&[u8]>, h1::Error> {
        if !self.answering {
            return Ok(None);
        }
        if !std::mem::take(&mut self.first)
            && let Err(e) = self.next_message().await
        {
            self.closed = true;
            return Err(e);
        }
        Ok(Some(&self.out))
    }

    /// The reader saw the answer's end (the dialect's end marker): the session can carry the next request.
    pub fn finish(&mut self) {
        self.answering = false;
        self.first = false;
    }

    /// Read until a whole data message is in `out`, with every other whole message the same read brought: the
    /// messages of one arrival are handed over together, as the events of one HTTP body piece are.
    async fn next_message(&mut self) -> Result<(), h1::Error> {
        self.out.clear();
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        loop {
            if self.step()? {
                loop {
                    match self.step() {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            self.deferred = Some(e);
                            break;
                        }
                    }
                }
                return Ok(());
            }
            if self.close_read || !self.conn.read_more().await? {
                return Err(self.ended());
            }
        }
    }

    /// The server ended the session: before any byte of the answer, the request never reached it and can be
    /// sent again ([`h1::Error::Closed`]); after, the answer is cut short.
    fn ended(&mut self) -> h1::Error {
        self.closed = true;
        let nothing_yet = !self.answered && self.opcode.is_none() && self.frame.is_none_or(|f| f.opcode >= CLOSE);
        if nothing_yet { h1::Error::Closed } else { h1::Error::Incomplete }
    }

    /// Decode what the buffer holds; true once a data message is complete (and re-framed into `out`), false
    /// when more bytes are needed or the server's Close frame was read.
    fn step(&mut self) -> Result<bool, h1::Error> {
        loop {
            if self.close_read {
                return Ok(false);
            }
            let Some(f) = self.frame else {
                let Some((f, len)) = parse_header(self.conn.buffered())? else {
                    return Ok(false);
                };
                self.conn.consume(len);
                self.begin(f)?;
                self.frame = Some(f);
                continue;
            };
            if f.left > 0 {
                let buffered = self.conn.buffered();
                if buffered.is_empty() {
                    return Ok(false);
                }
                let take = (f.left.min(buffered.len() as u64)) as usize;
                let into = if f.opcode >= CLOSE { &mut self.control } else { &mut self.message };
                into.extend_from_slice(&buffered[..take]);
                self.conn.consume(take);
                self.frame = Some(Frame { left: f.left - take as u64, ..f });
                continue;
            }
            self.frame = None;
            match f.opcode {
                CLOSE => {
                    self.close_read = true;
                    return Ok(false);
                }
                PING => self.pongs.push(std::mem::take(&mut self.control)),
                PONG => self.control.clear(),
                _ if f.fin => {
                    self.opcode = None;
                    self.answered = true;
                    self.reframe();
                    return Ok(true);
                }
                _ => {}
            }
        }
    }

    /// Check a frame header against the message state.
    fn begin(&mut self, f: Frame) -> Result<(), h1::Error> {
        let invalid = |why: &str| Err(h1::Error::Invalid(format!("WebSocket: {why}")));
        match f.opcode {
            TEXT | BINARY if self.opcode.is_some() => invalid("a new message inside a fragmented one"),
            TEXT | BINARY => {
                self.opcode = Some(f.opcode);
                self.message.clear();
                Ok(())
            }
            CONTINUATION if self.opcode.is_none() => invalid("a continuation frame outside a message"),
            CONTINUATION => Ok(()),
            CLOSE | PING | PONG if !f.fin || f.left > 125 => invalid("a fragmented or oversized control frame"),
            CLOSE | PING | PONG => {
                self.control.clear();
                Ok(())
            }
            other => invalid(&format!("unknown opcode {other:#x}")),
        }
        .and_then(|()| {
            if self.message.len() as u64 + f.left > MAX_MESSAGE_BYTES as u64 {
                return invalid(&format!("a message larger than {} MiB", MAX_MESSAGE_BYTES >> 20));
            }
            Ok(())
        })
    }

    /// Append the complete message to `out` as an event of the answer's stream.
    fn reframe(&mut self) {
        match self.framing {
            Framing::Sse => {
                for line in self.message.split(|&b| b == b'\n') {
                    self.out.extend_from_slice(b"data: ");
                    self.out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
                    self.out.push(b'\n');
                }
                self.out.push(b'\n');
            }
            Framing::Ndjson => {
                self.out.extend_from_slice(&self.message);
                self.out.push(b'\n');
            }
        }
        self.message.clear();
    }
}

/// A header's value, when it is text.
fn header<'a>(head: &'a Head, name: &str) -> Option<&'a str> {
    head.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Parse a server frame header from `buf`: the frame and the header's length, or `None` when more bytes are
/// needed. A server's frames are never masked (RFC 6455 §5.1).
fn parse_header(buf: &[u8]) -> Result<Option<(Frame, usize)>, h1::Error> {
    let [b0, b1, rest @ ..] = buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(h1::Error::Invalid("WebSocket: reserved bits set (no extension was negotiated)".into()));
    }
    if b1 & 0x80 != 0 {
        return Err(h1::Error::Invalid("WebSocket: a masked frame from the server".into()));
    }
    let (left, len) = match b1 & 0x7f {
        126 if rest.len() >= 2 => (u64::from(u16::from_be_bytes([rest[0], rest[1]])), 4),
        127 if rest.len() >= 8 => (u64::from_be_bytes(rest[..8].try_into().expect("8 bytes")), 10),
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    Ok(Some((Frame { opcode: b0 & 0x0f, fin: b0 & 0x80 != 0, left }, len)))
}

/// A whole client frame: final, masked with a fresh key (RFC 6455 §5.3).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_masked_and_sized() {
        for len in [0usize, 5, 125, 126, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let f = frame(TEXT, &payload);
            assert_eq!(f[0], 0x81);
            assert!(f[1] & 0x80 != 0, "masked");
            let (size, at) = match f[1] & 0x7f {
                126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 => (u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize, 10),
                n => (n as usize, 2),
            };
            assert_eq!(size, len);
            let mask = &f[at..at + 4];
            let unmasked: Vec<u8> = f[at + 4..].iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m).collect();
            assert_eq!(unmasked, payload);
        }
    }

    /// A server that accepts one session, answers each of `answers`' requests with its messages (unmasking and
    /// checking the request first), then closes the session with a Close frame.
    async fn one_session(answers: Vec<Vec<&'static str>>) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            while !buf.ends_with(b"\r\n\r\n") {
                buf.push(s.read_u8().await.unwrap());
            }
            let head = String::from_utf8(buf).unwrap();
            assert!(head.starts_with("GET /v1/chat/completions HTTP/1.1"), "{head}");
            let key = head.lines().find_map(|l| l.strip_prefix("sec-websocket-key: ")).unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                 sec-websocket-accept: {accept}\r\n\r\n"
            );
            s.write_all(reply.as_bytes()).await.unwrap();
            for messages in answers {
                let mut header = [0u8; 2];
                s.read_exact(&mut header).await.unwrap();
                assert_eq!((header[0], header[1] & 0x80), (0x81, 0x80), "a final, masked text frame");
                let mut mask = [0u8; 4];
                s.read_exact(&mut mask).await.unwrap();
                let mut body = vec![0u8; usize::from(header[1] & 0x7f)];
                s.read_exact(&mut body).await.unwrap();
                body.iter_mut().zip(mask.iter().cycle()).for_each(|(b, m)| *b ^= m);
                assert_eq!(body, b"{\"q\":1}");
                for m in messages {
                    s.write_all(&[0x81, m.len() as u8]).await.unwrap();
                    s.write_all(m.as_bytes()).await.unwrap();
                }
            }
            s.write_all(&[0x88, 0]).await.unwrap();
            let _ = s.read(&mut [0u8; 64]).await;
        });
        addr
    }

    async fn session(addr: std::net::SocketAddr) -> Ws {
        let clock = Clock::start();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = h1::Io::Plain(crate::rxstamp::RxSocket::new(tcp, clock).unwrap());
        let upgrade = hyper::Request::get("/v1/chat/completions")
            .header(hyper::header::HOST, addr.to_string())
            .body(bytes::Bytes::new())
            .unwrap();
        let (ws, took) = Ws::connect(H1::new(io), upgrade, Framing::Sse, clock).await.unwrap();
        assert!(took > 0);
        ws
    }

    #[tokio::test]
    async fn answers_are_reframed_and_a_closed_session_is_stale() {
        let addr = one_session(vec![vec!["{\"a\":1}", "[DONE]"]]).await;
        let mut ws = session(addr).await;
        let clock = Clock::start();
        let (head, _) = ws.send(b"{\"q\":1}", clock).await.unwrap();
        assert_eq!(head.status, 200);
        let mut stream = Vec::new();
        while stream.windows(6).all(|w| w != b"[DONE]") {
            stream.extend_from_slice(ws.data().await.unwrap().unwrap());
        }
        assert_eq!(String::from_utf8(stream).unwrap(), "data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert!(!ws.is_usable(), "the answer has not been finished by its reader");
        ws.finish();
        assert!(ws.data().await.unwrap().is_none());
        assert!(ws.is_usable());
        // The server closed the session meanwhile: the next request finds it closed before any answer, which
        // the transport reads as a stale connection (the request is sent again on a fresh one).
        let e = ws.send(b"{\"q\":1}", clock).await.unwrap_err();
        assert!(matches!(e, h1::Error::Closed), "{e:?}");
        assert!(!ws.is_usable());
    }

    #[tokio::test]
    async fn a_session_closed_mid_answer_is_incomplete() {
        let addr = one_session(vec![vec!["{\"a\":1}"]]).await;
        let mut ws = session(addr).await;
        ws.send(b"{\"q\":1}", Clock::start()).await.unwrap();
        assert!(ws.data().await.unwrap().is_some());
        let e = ws.data().await.unwrap_err();
        assert!(matches!(e, h1::Error::Incomplete), "{e:?}");
    }

    #[test]
    fn server_headers_parse_by_length_and_refuse_masks() {
        assert!(parse_header(&[0x81]).unwrap().is_none());
        let (f, n) = parse_header(&[0x81, 5]).unwrap().unwrap();
        assert_eq!((f.opcode, f.fin, f.left, n), (TEXT, true, 5, 2));
        assert!(parse_header(&[0x01, 126, 1]).unwrap().is_none(), "the extended length is incomplete");
        let (f, n) = parse_header(&[0x01, 126, 1, 0]).unwrap().unwrap();
        assert_eq!((f.fin, f.left, n), (false, 256, 4));
        let (f, n) = parse_header(&[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap().unwrap();
        assert_eq!((f.opcode, f.left, n), (BINARY, 1 << 32, 10));
        let e = parse_header(&[0x81, 0x85]).unwrap_err().to_string();
        assert!(e.contains("masked frame from the server"), "{e}");
    }
}
