//! The response body: frames go to the caller as they arrive from the upstream, never buffered, and a copy
//! goes to the cache writer, which stores the answer only when it ended normally. An upstream that fails or
//! falls silent mid-stream gives the caller one error event in its dialect and a closed stream (a JSON answer:
//! an aborted body), and nothing is stored.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::cache::flight::FlightGuard;
use crate::cache::{Cache, Entry, Store};
use crate::dialect::{Dialect, Generate};
use crate::metrics::Metrics;
use crate::normalize::CacheKey;
use crate::semantic::{Pending, Semantic};
use crate::upstream::UpstreamBody;

/// The error type of response bodies: the caller's connection is aborted.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body the proxy sends.
#[derive(Debug)]
pub enum ProxyBody {
    /// A body held whole: a cache hit, an error, `/metrics`.
    Full(Option<Bytes>),
    /// An upstream's body, passed through frame by frame.
    Tee(Box<TeeBody>),
}

impl ProxyBody {
    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Some(bytes.into()))
    }
}

/// Collects an answer for the cache while it streams to the caller.
#[derive(Debug)]
pub struct CacheWriter {
    /// Where it will be stored.
    pub cache: Arc<Cache>,
    /// Under which key.
    pub key: CacheKey,
    /// The route, which says how its answers end.
    pub route: Generate,
    /// The upstream's content type.
    pub content_type: String,
    /// The bytes so far.
    pub buf: Vec<u8>,
    /// The flight this answer leads, released once it is stored or given up.
    pub guard: Option<FlightGuard>,
    /// Whether the answer is stored; `false` (`Cache-Control: no-store`): it is read only so that the semantic
    /// layer learns from an explored entry, then dropped.
    pub store: bool,
    /// The question for the semantic layer's index, added once the answer is stored.
    pub semantic: Option<(Arc<Semantic>, Pending)>,
}

/// An upstream body on its way to the caller.
#[derive(Debug)]
pub struct TeeBody {
    inner: UpstreamBody,
    dialect: Dialect,
    stream: bool,
    upstream: Arc<str>,
    metrics: Arc<Metrics>,
    writer: Option<CacheWriter>,
    idle: Duration,
    last_frame: Instant,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl TeeBody {
    /// Passes `inner` through; `writer` (if any) receives a copy. The stream fails after `idle` without a frame.
    pub fn new(
        inner: UpstreamBody,
        dialect: Dialect,
        stream: bool,
        upstream: Arc<str>,
        metrics: Arc<Metrics>,
        writer: Option<CacheWriter>,
        idle: Duration,
    ) -> TeeBody {
        metrics.in_flight(1);
        let now = Instant::now();
        TeeBody {
            inner,
            dialect,
            stream,
            upstream,
            metrics,
            writer,
            idle,
            last_frame: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            done: false,
        }
    }

    /// The stream failed: nothing is stored; a stream gets one error event, a JSON body is aborted.
    fn fail(&mut self, reason: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.inner.abandon(); // half read: never reused
        self.writer = None;
        self.metrics.upstream_error(&self.upstream, "stream");
        if self.stream {
            let message = format!("upstream {:?} failed mid-stream: {reason}", &*self.upstream);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(self.dialect.stream_error_event(&message))))))
        } else {
            Poll::Ready(Some(Err(reason.into())))
        }
    }

    /// The upstream body ended: store the answer if it ended normally.
    fn finish(&mut self) {
        self.done = true;
        let Some(w) = self.writer.take() else { return };
        let complete = w.route.ended_normally(self.stream, &w.buf);
        if !w.store {
            // Not to be stored (no-store): a complete answer only teaches the entry the request explored.
            if complete && let Some((semantic, pending)) = w.semantic {
                semantic.answered(pending, None, Bytes::from(w.buf), &w.cache, &self.metrics);
            }
            return;
        }
        if !complete {
            self.metrics.write(w.cache.store.kind(), "incomplete");
            return;
        }
        let body = Bytes::from(w.buf);
        let entry = Entry { status: 200, content_type: w.content_type, body: body.clone() };
        if let Store::Memory(memory) = &w.cache.store {
            // In process: stored before the caller sees the end, so its next request hits.
            memory.put(w.key, entry, w.cache.ttl);
            self.metrics.write("memory", "stored");
            if let Some((semantic, pending)) = w.semantic {
                semantic.answered(pending, Some(w.key), body, &w.cache, &self.metrics);
            }
            return;
        }
        let metrics = Arc::clone(&self.metrics);
        tokio::spawn(async move {
            let outcome = match w.cache.store.put(w.key, entry, w.cache.ttl).await {
                Ok(()) => {
                    if let Some((semantic, pending)) = w.semantic {
                        semantic.answered(pending, Some(w.key), body, &w.cache, &metrics);
                    }
                    "stored"
                }
                Err(_) => "error",
            };
            metrics.write(w.cache.store.kind(), outcome);
            // The flight ends once the answer is in the store (or failed to get there).
            drop(w.guard);
        });
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        self.metrics.in_flight(-1);
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Tee(tee) => tee.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Tee(tee) => tee.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            // Never promised: a stream may get an error event appended, and a sized body must still be polled
            // to its end so that the cache writer sees the answer complete.
            ProxyBody::Tee(_) => SizeHint::default(),
        }
    }
}

impl TeeBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            let next = self.inner.poll_data(cx);
            match next {
                Poll::Ready(Some(Ok(data))) => {
                    self.last_frame = Instant::now();
                    if let Some(w) = self.writer.as_mut() {
                        if w.buf.len() + data.len() > w.cache.max_entry {
                            // Too large to store: pass it on, stop collecting.
                            self.writer = None;
                        } else {
                            w.buf.extend_from_slice(&data);
                        }
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(reason))) => return self.fail(reason),
                Poll::Ready(None) => {
                    self.inner.release();
                    self.finish();
                    return Poll::Ready(None);
                }
                Poll::Pending => {}
            }
            // Silent so far: the timer fires at the last frame's time plus the idle limit; one timer per
            // response, re-armed only when it fires early.
            ready!(self.timer.as_mut().poll(cx));
            let due = self.last_frame + self.idle;
            if Instant::now() >= due {
                let idle = self.idle;
                return self.fail(format!("no data for {idle:?}"));
            }
            self.timer.as_mut().reset(due);
        }
    }
}
