//! HTTP/1.1 client connections, read by the task that sends the request.
//!
//! A benchmark client's work per chunk is its own overhead, so the response is read straight from the
//! socket into one buffer per connection and handed to the stream decoder as a slice of it: no connection
//! task, no channel between the socket and the reader, no copy of the body. The head is parsed with
//! `httparse`; the body is framed by `Transfer-Encoding: chunked`, by `Content-Length` or by the end of the
//! connection (RFC 9112 §6.3), and handed over piece by piece as it arrives, so a 10 MB chunk never has to
//! fit in the buffer.
//!
//! A connection carries one request at a time. It can carry the next one when the previous response was
//! read to its end and neither side asked to close; a response left half read (an error, a timeout, a
//! stream stopped early) retires the connection.

use crate::rxstamp::RxSocket;
use crate::transport::Clock;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use velollm_core::measure::record::Nanos;

/// The read buffer's initial size; it doubles, up to [`MAX_BUF`], while reads fill it.
const INITIAL_BUF: usize = 8 << 10;
/// The largest read buffer, and so the largest response head accepted (body data is handed over as it
/// arrives, so only a head needs the whole buffer).
const MAX_BUF: usize = 64 << 10;
/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4 << 10;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 128;

/// The byte stream under a connection: TCP, or TLS over TCP.
pub enum Io {
    /// Plain TCP.
    Plain(RxSocket),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<RxSocket>>),
}

impl Io {
    fn poll_read_into(&mut self, cx: &mut Context<'_>, into: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Io::Plain(s) => s.poll_recv(cx, into),
            Io::Tls(s) => {
                let mut buf = ReadBuf::new(into);
                ready!(Pin::new(s).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Io::Plain(s) => Pin::new(s).poll_write(cx, data),
            Io::Tls(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
}

/// Why a request or its response failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket failed (e.g. reset by the peer).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before sending any byte of a response.
    #[error("connection closed before a response")]
    Closed,
    /// The server closed the connection in the middle of a response.
    #[error("connection closed before the message completed")]
    Incomplete,
    /// The response is not valid HTTP/1.1.
    #[error("invalid HTTP response: {0}")]
    Invalid(String),
    /// The connection cannot carry a request now (the previous response was not read to its end).
    #[error("the connection is busy with an unfinished response")]
    Busy,
}

/// How the rest of a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Read to its end (or there was none): the connection is free.
    Done,
    /// This many bytes are left (`Content-Length`).
    Length(u64),
    /// Until the server closes the connection.
    Close,
    /// `Transfer-Encoding: chunked`, at this point of the framing.
    Chunked(Chunk),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data are left.
    Data(u64),
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// What the buffer holds for the reader now.
enum Step {
    /// Body data at `buf[.0..1]`.
    Data(usize, usize),
    /// The body ended.
    End,
    /// More bytes must be read first.
    More,
}

/// A response's status line and header fields.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: hyper::StatusCode,
    /// The header fields (fields whose name or value HTTP does not allow are left out).
    pub headers: hyper::HeaderMap,
}

/// An HTTP/1.1 client connection.
pub struct H1 {
    io: Io,
    /// Bytes read but not yet consumed: `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The server closed its side (a read returned 0 bytes).
    eof: bool,
    body: Body,
    /// The server (or its HTTP version) lets the connection carry another request.
    keep_alive: bool,
    /// A request failed on it: never used again.
    broken: bool,
}

impl H1 {
    /// A connection over `io`, with nothing sent yet.
    pub fn new(io: Io) -> H1 {
        H1 { io, buf: Vec::new(), start: 0, end: 0, eof: false, body: Body::Done, keep_alive: true, broken: false }
    }

    /// True when the connection can carry another request.
    pub fn is_usable(&self) -> bool {
        self.body == Body::Done && self.keep_alive && !self.eof && !self.broken
    }

    /// Write `request` (a whole serialised request) and read the head of its response. Returns the head and
    /// the instant the first byte was written, read on `clock` just before that write: a wait for the socket
    /// to take it is not counted, and a pause between the write and the stamp can only make latency read
    /// longer than the truth.
    pub async fn send(&mut self, request: &[u8], clock: Clock) -> Result<(Head, Nanos), Error> {
        if !self.is_usable() {
            return Err(Error::Busy);
        }
        self.broken = true; // until the head is read
        let sent = self.write(request, clock).await?;
        let head = self.read_head().await?;
        self.broken = false;
        Ok((head, sent))
    }

    async fn write(&mut self, data: &[u8], clock: Clock) -> Result<Nanos, Error> {
        let mut sent = None;
        let mut off = 0;
        let io = &mut self.io;
        poll_fn(|cx| {
            while off < data.len() {
                let before = if sent.is_none() { clock.now() } else { 0 };
                match ready!(io.poll_write(cx, &data[off..]))? {
                    0 => return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero))),
                    n => {
                        sent.get_or_insert(before);
                        off += n;
                    }
                }
            }
            io.poll_flush(cx)
        })
        .await?;
        Ok(sent.unwrap_or_else(|| clock.now()))
    }

    /// Read a response head, skipping interim (1xx) responses, and set up the body's framing.
    async fn read_head(&mut self) -> Result<Head, Error> {
        loop {
            let parsed = {
                let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut fields);
                match resp.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => Some((n, head_of(&resp)?)),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(Error::Invalid(e.to_string())),
                }
            };
            match parsed {
                Some((n, (head, body, keep_alive))) => {
                    self.start += n;
                    if head.status.is_informational() && head.status != hyper::StatusCode::SWITCHING_PROTOCOLS {
                        continue;
                    }
                    self.body = body;
                    self.keep_alive = keep_alive && body != Body::Close;
                    return Ok(head);
                }
                None if self.end - self.start >= MAX_BUF => {
                    return Err(Error::Invalid(format!("a response head larger than {} KiB", MAX_BUF >> 10)));
                }
                None if self.eof && self.start == self.end => return Err(Error::Closed),
                None if self.eof => return Err(Error::Incomplete),
                None => self.fill().await?,
            }
        }
    }

    /// The next piece of the response body, as it arrives; `None` once the body has ended. Cancel-safe: a
    /// call dropped while waiting loses nothing.
    pub async fn data(&mut self) -> Result<Option<&[u8]>, Error> {
        loop {
            match self.step() {
                Ok(Step::Data(a, b)) => return Ok(Some(&self.buf[a..b])),
                Ok(Step::End) => return Ok(None),
                Ok(Step::More) => {
                    if let Err(e) = self.fill().await {
                        self.broken = true;
                        return Err(e);
                    }
                }
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
    }

    /// Decode what the buffer holds, as far as the body's framing allows.
    fn step(&mut self) -> Result<Step, Error> {
        loop {
            let avail = self.end - self.start;
            match self.body {
                Body::Done => return Ok(Step::End),
                Body::Length(0) => self.body = Body::Done,
                Body::Chunked(Chunk::Data(0)) => self.body = Body::Chunked(Chunk::DataEnd),
                Body::Length(left) | Body::Chunked(Chunk::Data(left)) => {
                    if avail == 0 {
                        return if self.eof { Err(Error::Incomplete) } else { Ok(Step::More) };
                    }
                    let take = left.min(avail as u64) as usize;
                    self.body = match self.body {
                        Body::Length(_) => Body::Length(left - take as u64),
                        _ => Body::Chunked(Chunk::Data(left - take as u64)),
                    };
                    return Ok(Step::Data(self.take(take), self.start));
                }
                Body::Close => {
                    if avail > 0 {
                        return Ok(Step::Data(self.take(avail), self.start));
                    }
                    if !self.eof {
                        return Ok(Step::More);
                    }
                    self.body = Body::Done;
                }
                Body::Chunked(chunk) => {
                    let Some(line) = self.line()? else {
                        return if self.eof { Err(Error::Incomplete) } else { Ok(Step::More) };
                    };
                    self.body = match chunk {
                        Chunk::Size => match chunk_size(line)? {
                            0 => Body::Chunked(Chunk::Trailers),
                            n => Body::Chunked(Chunk::Data(n)),
                        },
                        Chunk::DataEnd if line.is_empty() => Body::Chunked(Chunk::Size),
                        Chunk::DataEnd => return Err(Error::Invalid("chunk data longer than its size".into())),
                        Chunk::Trailers if line.is_empty() => Body::Done,
                        Chunk::Trailers => Body::Chunked(Chunk::Trailers),
                        Chunk::Data(_) => unreachable!("handled above"),
                    };
                }
            }
        }
    }

    /// Consume `n` buffered bytes; returns where they start.
    fn take(&mut self, n: usize) -> usize {
        let at = self.start;
        self.start += n;
        at
    }

    /// Consume the next whole line (without its CRLF or LF), if the buffer holds one.
    fn line(&mut self) -> Result<Option<&[u8]>, Error> {
        let pending = &self.buf[self.start..self.end];
        let Some(i) = memchr::memchr(b'\n', pending) else {
            if pending.len() > MAX_LINE {
                return Err(Error::Invalid(format!("a chunk line longer than {} KiB", MAX_LINE >> 10)));
            }
            return Ok(None);
        };
        let at = self.take(i + 1);
        let line = &self.buf[at..at + i];
        Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
    }

    /// The bytes read but not yet consumed (after a `101 Switching Protocols`: the upgraded protocol's).
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Consume `n` of the [`buffered`](Self::buffered) bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n.min(self.end - self.start);
    }

    /// Read more bytes into the buffer; false once the server has closed its side. Cancel-safe.
    pub(crate) async fn read_more(&mut self) -> Result<bool, Error> {
        self.fill().await?;
        Ok(!self.eof)
    }

    /// Write `data` whole (another protocol's bytes, after an upgrade); returns the instant its first byte
    /// was written, as [`send`](Self::send) does.
    pub(crate) async fn write_all(&mut self, data: &[u8], clock: Clock) -> Result<Nanos, Error> {
        self.write(data, clock).await
    }

    /// Read more bytes into the buffer (making room first, growing it up to [`MAX_BUF`]); sets `eof` when
    /// the server has closed its side.
    async fn fill(&mut self) -> Result<(), Error> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.is_empty() {
            self.buf.resize(INITIAL_BUF, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < MAX_BUF {
                self.buf.resize((self.buf.len() * 2).min(MAX_BUF), 0);
            }
        }
        let (io, into) = (&mut self.io, &mut self.buf[self.end..]);
        let free = into.len();
        if free == 0 {
            return Err(Error::Invalid("a response line longer than the read buffer".into()));
        }
        let n = poll_fn(|cx| io.poll_read_into(cx, into)).await?;
        if n == 0 {
            self.eof = true;
        }
        // A read that filled a whole buffer: the next one gets a bigger one.
        if n == free && self.start == 0 && self.end == 0 && self.buf.len() < MAX_BUF {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        self.end += n;
        Ok(())
    }
}

/// The head, body framing and keep-alive of a parsed response (RFC 9112 §6.3 and §9.3).
fn head_of(resp: &httparse::Response<'_, '_>) -> Result<(Head, Body, bool), Error> {
    let code = resp.code.unwrap_or_default();
    let status = hyper::StatusCode::from_u16(code).map_err(|_| Error::Invalid(format!("status code {code}")))?;
    let mut headers = hyper::HeaderMap::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        if let (Ok(name), Ok(value)) =
            (hyper::header::HeaderName::from_bytes(h.name.as_bytes()), hyper::header::HeaderValue::from_bytes(h.value))
        {
            headers.append(name, value);
        }
    }
    let has_token = |name: hyper::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    let keep_alive = if resp.version == Some(0) {
        has_token(hyper::header::CONNECTION, "keep-alive")
    } else {
        !has_token(hyper::header::CONNECTION, "close")
    };
    let body = if status.is_informational() || code == 204 || code == 304 {
        Body::Done
    } else if let Some(te) = headers.get_all(hyper::header::TRANSFER_ENCODING).iter().next_back() {
        // Chunked only when it is the last coding applied; any other ends with the connection.
        let last = te.to_str().ok().and_then(|v| v.rsplit(',').next()).map(str::trim);
        if last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) { Body::Chunked(Chunk::Size) } else { Body::Close }
    } else if let Some(len) = content_length(&headers)? {
        Body::Length(len)
    } else {
        Body::Close
    };
    Ok((Head { status, headers }, body, keep_alive))
}

/// The `Content-Length`, if there is one; differing values are an error.
fn content_length(headers: &hyper::HeaderMap) -> Result<Option<u64>, Error> {
    let mut len = None;
    for v in headers.get_all(hyper::header::CONTENT_LENGTH) {
        for part in v.to_str().unwrap_or("x").split(',') {
            let n: u64 = part.trim().parse().map_err(|_| Error::Invalid(format!("Content-Length {v:?}")))?;
            if len.is_some_and(|l| l != n) {
                return Err(Error::Invalid("differing Content-Length values".into()));
            }
            len = Some(n);
        }
    }
    Ok(len)
}

/// The size on a chunk-size line (hexadecimal, before any `;` extension).
fn chunk_size(line: &[u8]) -> Result<u64, Error> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    let invalid = || Error::Invalid(format!("chunk size {:?}", String::from_utf8_lossy(line)));
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid());
    }
    digits.iter().try_fold(0u64, |n, &b| Ok(n << 4 | u64::from((b as char).to_digit(16).ok_or_else(invalid)?)))
}

/// Serialise `req` as an HTTP/1.1 request: its path, its header fields, `Content-Length` and its body.
pub fn serialize(req: &hyper::Request<bytes::Bytes>) -> Vec<u8> {
    let body = req.body();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"FF ; name=value").unwrap(), 255);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"xyz").is_err());
        assert!(chunk_size(b"ffffffffffffffffff").is_err());
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// A server that answers each request on one connection with the next of `responses`, written
    /// `step` bytes at a time, then closes the connection.
    async fn serve(responses: Vec<&'static [u8]>, step: usize) -> (H1, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            for resp in responses {
                let mut req = Vec::new();
                while !req.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    req.push(b[0]);
                }
                for piece in resp.chunks(step) {
                    s.write_all(piece).await.unwrap();
                    if step < resp.len() {
                        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                    }
                }
            }
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let socket = RxSocket::new(stream, Clock::start()).unwrap();
        (H1::new(Io::Plain(socket)), server)
    }

    /// Send a request and read its whole body.
    async fn exchange(c: &mut H1) -> Result<(u16, Vec<u8>), Error> {
        let (head, _) = c.send(REQUEST, Clock::start()).await?;
        let mut body = Vec::new();
        while let Some(d) = c.data().await? {
            assert!(!d.is_empty());
            body.extend_from_slice(d);
        }
        Ok((head.status.as_u16(), body))
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n7;ext=1\r\n, world\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: 1\r\n\r\n";
    const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    #[tokio::test]
    async fn chunked_and_sized_bodies_keep_the_connection_even_split_at_every_byte() {
        for step in [1, 3, usize::MAX] {
            let (mut c, _server) = serve(vec![CHUNKED, LENGTH, CHUNKED], step.min(CHUNKED.len())).await;
            let (status, body) = exchange(&mut c).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"hello, world0123456789abcdef"[..]), "step {step}");
            assert!(c.is_usable());
            assert_eq!(exchange(&mut c).await.unwrap().1, b"hello", "step {step}");
            assert_eq!(exchange(&mut c).await.unwrap().1.len(), 28, "step {step}");
            // The server closed the connection after its last answer: the next request finds it closed.
            let e = exchange(&mut c).await.unwrap_err();
            assert!(matches!(e, Error::Closed) || matches!(&e, Error::Io(_)), "{e:?}");
        }
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_empty_statuses_have_no_body() {
        let resp: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let (mut c, _server) = serve(vec![resp, LENGTH], 1).await;
        assert_eq!(exchange(&mut c).await.unwrap(), (204, Vec::new()));
        assert_eq!(exchange(&mut c).await.unwrap(), (200, b"hello".to_vec()));
    }

    #[tokio::test]
    async fn a_body_without_length_ends_with_the_connection() {
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\n\r\ndata until the end";
        let (mut c, _server) = serve(vec![resp], 4).await;
        assert_eq!(exchange(&mut c).await.unwrap().1, b"data until the end");
        assert!(!c.is_usable());
        assert!(matches!(c.send(REQUEST, Clock::start()).await, Err(Error::Busy)));
    }

    #[tokio::test]
    async fn connection_close_retires_the_connection() {
        let resp: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
        let (mut c, _server) = serve(vec![resp], usize::MAX).await;
        assert_eq!(exchange(&mut c).await.unwrap().1, b"ok");
        assert!(!c.is_usable());
    }

    #[tokio::test]
    async fn broken_framing_is_an_error_and_retires_the_connection() {
        let cases: [(&'static [u8], &str); 4] = [
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n", "Invalid"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n", "Invalid"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nhel", "Incomplete"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhel", "Incomplete"),
        ];
        for (resp, want) in cases {
            let (mut c, _server) = serve(vec![resp], usize::MAX).await;
            let e = exchange(&mut c).await.unwrap_err();
            assert!(format!("{e:?}").starts_with(want), "{e:?}");
            assert!(!c.is_usable());
        }
        let (mut c, _server) = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-le"], usize::MAX).await;
        assert!(matches!(exchange(&mut c).await, Err(Error::Incomplete)));
        let (mut c, _server) = serve(vec![b"HTTP/9 what\r\n\r\n"], usize::MAX).await;
        assert!(matches!(exchange(&mut c).await, Err(Error::Invalid(_))));
    }

    #[tokio::test]
    async fn a_large_chunk_arrives_in_pieces_without_a_large_buffer() {
        let mut resp = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        let size = 1 << 20;
        resp.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        resp.extend(std::iter::repeat_n(b'x', size));
        resp.extend_from_slice(b"\r\n0\r\n\r\n");
        let (mut c, _server) = serve(vec![resp.leak()], usize::MAX).await;
        let (_, body) = exchange(&mut c).await.unwrap();
        assert_eq!(body.len(), size);
        assert!(c.buf.len() <= MAX_BUF);
    }

    #[test]
    fn requests_carry_their_length() {
        let req = hyper::Request::post("/v1/chat/completions")
            .header("host", "h:1")
            .body(bytes::Bytes::from_static(b"{}"))
            .unwrap();
        let text = String::from_utf8(serialize(&req)).unwrap();
        assert_eq!(text, "POST /v1/chat/completions HTTP/1.1\r\nhost: h:1\r\ncontent-length: 2\r\n\r\n{}");
    }
}
