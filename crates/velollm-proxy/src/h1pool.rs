//! Kept-alive HTTP/1.1 connections to a plain-http upstream, on velollm's own client
//! (`velollm_engine::h1`): the task that serves the caller writes the request and reads the response straight
//! from the socket. hyper's client hands every body chunk from its connection task to the reader through a
//! channel, a task wake-up per chunk; here there is none, and chunks already in the buffer go to the caller
//! together.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use velollm_engine::h1::{H1, Head, Io};
use velollm_engine::rxstamp::RxSocket;
use velollm_engine::transport::{Clock, HttpError};

/// Idle connections kept per upstream.
const MAX_IDLE: usize = 1024;

/// The connections to one upstream.
pub struct H1Pool {
    addr: String,
    clock: Clock,
    connect_timeout: Duration,
    idle: Mutex<Vec<H1>>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Why a request failed on the pool.
#[derive(Debug)]
pub enum PoolError {
    /// No connection could be made.
    Connect(String),
    /// The request or its response head failed; `stale` when the upstream had closed the connection.
    Request {
        /// What went wrong.
        reason: String,
        /// The upstream closed a kept-alive connection under the request.
        stale: bool,
    },
}

impl H1Pool {
    /// A pool for `addr` (`host:port`).
    pub fn new(addr: String, connect_timeout: Duration) -> H1Pool {
        H1Pool { addr, clock: Clock::start(), connect_timeout, idle: Mutex::new(Vec::new()) }
    }

    /// Sends a serialised request on an idle connection (or a new one) and reads its response head. A request
    /// that found its idle connection closed by the upstream is sent once more on a fresh connection.
    pub async fn send(&self, request: &[u8]) -> Result<(Head, H1), PoolError> {
        let (mut conn, reused) = match self.take() {
            Some(c) => (c, true),
            None => (self.connect().await?, false),
        };
        let e = match conn.send(request, self.clock).await {
            Ok((head, _)) => return Ok((head, conn)),
            // The engine's own rule for a kept-alive connection the server had closed.
            Err(e) => HttpError::from(e),
        };
        if !(reused && e.is_stale_connection()) {
            return Err(failed(e));
        }
        let mut fresh = self.connect().await?;
        let (head, _) = fresh.send(request, self.clock).await.map_err(|e| failed(e.into()))?;
        Ok((head, fresh))
    }

    /// Takes back a connection whose response was read to its end, when it can carry another request.
    pub fn put_back(&self, conn: H1) {
        if conn.is_usable() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }

    fn take(&self) -> Option<H1> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(conn) = idle.pop() {
            if conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<H1, PoolError> {
        let connect = TcpStream::connect(&self.addr);
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Err(_) => return Err(PoolError::Connect(format!("no connection within {:?}", self.connect_timeout))),
            Ok(Err(e)) => return Err(PoolError::Connect(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let socket = RxSocket::new(stream, self.clock).map_err(|e| PoolError::Connect(e.to_string()))?;
        Ok(H1::new(Io::Plain(socket)))
    }
}

fn failed(e: HttpError) -> PoolError {
    PoolError::Request { reason: e.to_string(), stale: e.is_stale_connection() }
}

/// The body data the connection has now, coalesced (up to 64 KiB): `Pending` when none has arrived,
/// `Ready(None)` at the end of the body.
pub fn poll_data(conn: &mut H1, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Bytes, String>>> {
    use std::future::Future;
    use std::task::Poll;
    let mut out: Option<Vec<u8>> = None;
    loop {
        let mut next = std::pin::pin!(conn.data());
        match next.as_mut().poll(cx) {
            Poll::Ready(Ok(Some(piece))) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(piece.len().max(1024)));
                o.extend_from_slice(piece);
                if o.len() >= 64 << 10 {
                    break;
                }
            }
            Poll::Ready(Ok(None)) if out.is_none() => return Poll::Ready(None),
            Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.to_string()))),
            // What has arrived goes now; the end (or more data) comes with the next poll.
            Poll::Ready(Ok(None)) | Poll::Pending if out.is_some() => break,
            Poll::Ready(Ok(None)) | Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(out.map(|o| Ok(Bytes::from(o))))
}
