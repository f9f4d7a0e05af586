//! Hedged requests (Dean and Barroso, "The Tail at Scale"): a generation that has not produced its first token
//! after a delay — a fixed time, or the running p95 of the first token's arrival — is sent again, to the next
//! upstream of the hedge set (or the same one), up to a few branches. The first branch whose answer starts
//! wins; the others are cancelled at once (their connections closed, so the servers stop generating). A branch
//! that fails before it starts sends the next one at once. Extra requests and their bytes are counted, so the
//! cost of the cut tail is visible next to it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hyper::{Request, StatusCode};
use tokio::time::Instant;

use crate::dialect::Generate;
use crate::metrics::Metrics;
use crate::upstream::{Upstream, UpstreamError, UpstreamResponse};

/// First-data times kept for the running p95.
const WINDOW: usize = 1024;
/// Samples needed before the running p95 replaces the fixed delay.
const MIN_SAMPLES: usize = 20;

/// When a branch is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum After {
    /// After this long without data.
    Fixed(Duration),
    /// After the running p95 of the first data's arrival (this long until enough answers were seen).
    P95(Duration),
}

/// The hedging policy and the first-data times it learns from.
#[derive(Debug)]
pub struct Hedging {
    /// When the next branch is sent.
    pub after: After,
    /// Branches at most, the first included (2 or 3).
    pub branches: usize,
    /// Indices (in the proxy's upstreams) the extra branches go to, in turn; empty: the first branch's.
    pub upstreams: Vec<usize>,
    /// First-token times per first upstream (a route's own p95: tiers differ).
    samples: Mutex<HashMap<usize, Samples>>,
}

#[derive(Debug, Default)]
struct Samples {
    ring: Vec<f64>,
    next: usize,
}

/// The branch that won.
#[derive(Debug)]
pub struct Won {
    /// Its response, the first data read ahead into the body.
    pub response: UpstreamResponse,
    /// The upstream it went to (an index in the proxy's upstreams).
    pub upstream: usize,
    /// Which branch (0: the first).
    pub branch: usize,
    /// Branches sent.
    pub sent: usize,
    /// The delay used.
    pub after: Duration,
}

impl Won {
    /// The `x-velollm-hedge` value.
    pub fn header(&self) -> String {
        format!("branches={}; winner={}; after_ms={:.1}", self.sent, self.branch, self.after.as_secs_f64() * 1e3)
    }
}

type Branch<'a> = Pin<Box<dyn Future<Output = (usize, usize, Result<UpstreamResponse, UpstreamError>)> + Send + 'a>>;

impl Hedging {
    /// A policy.
    pub fn new(after: After, branches: usize, upstreams: Vec<usize>) -> Hedging {
        Hedging { after, branches, upstreams, samples: Mutex::default() }
    }

    /// The delay before the next branch now, for requests whose first branch goes to `upstream`.
    pub fn delay(&self, upstream: usize) -> Duration {
        match self.after {
            After::Fixed(d) => d,
            After::P95(initial) => {
                let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(s) = samples.get(&upstream).filter(|s| s.ring.len() >= MIN_SAMPLES) else {
                    return initial;
                };
                let mut v = s.ring.clone();
                drop(samples);
                let rank = ((v.len() as f64) * 0.95).ceil() as usize - 1;
                let (_, p95, _) = v.select_nth_unstable_by(rank, f64::total_cmp);
                Duration::from_secs_f64(*p95)
            }
        }
    }

    /// Records the time to the first token of a request whose first branch went to `upstream` (the winner's,
    /// from the request's start).
    pub fn record(&self, upstream: usize, d: Duration) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let s = samples.entry(upstream).or_default();
        if s.ring.len() < WINDOW {
            s.ring.push(d.as_secs_f64());
        } else {
            let i = s.next;
            s.ring[i] = d.as_secs_f64();
        }
        s.next = (s.next + 1) % WINDOW;
    }

    /// Races branches of one request: `first` is the first branch's upstream; `make` builds the request for
    /// an upstream; `route` says how its answers' first token looks. Returns the first branch whose answer
    /// starts (status 200 and its first token), or, when every branch failed, the first failure (an error, or
    /// a response that is not 200).
    pub async fn race<'a>(
        &self,
        upstreams: &'a [Upstream],
        first: usize,
        make: impl Fn(&Upstream) -> Option<Request<Bytes>>,
        route: Generate,
        timeout: Duration,
        metrics: &'a Metrics,
    ) -> Result<Won, UpstreamError> {
        let after = self.delay(first);
        let deadline = Instant::now() + timeout;
        let target = |branch: usize| match branch {
            0 => first,
            _ if self.upstreams.is_empty() => first,
            b => self.upstreams[(b - 1) % self.upstreams.len()],
        };
        let launch = |branch: usize| -> Option<Branch<'a>> {
            let index = target(branch);
            let upstream = &upstreams[index];
            let request = make(upstream)?;
            if branch > 0 {
                metrics.hedge_sent(&upstream.name, request.body().len());
            }
            Some(Box::pin(async move {
                let started = Instant::now();
                let first_token = upstream.send_until(request, timeout, |b| route.has_token(b));
                let result = tokio::time::timeout_at(deadline, first_token).await;
                let result =
                    result.unwrap_or(Err(UpstreamError::Timeout { name: upstream.name.clone(), after: timeout }));
                if let Ok(r) = &result
                    && r.status == StatusCode::OK
                {
                    metrics.upstream_latency(&upstream.name, started.elapsed());
                }
                (branch, index, result)
            }))
        };
        let mut pending: FuturesUnordered<Branch<'a>> = FuturesUnordered::new();
        let started = Instant::now();
        pending.extend(launch(0));
        let mut sent = 1;
        let mut failure: Option<Result<UpstreamResponse, UpstreamError>> = None;
        let timer = tokio::time::sleep(after);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                Some((branch, index, result)) = pending.next() => match result {
                    Ok(response) if response.status == StatusCode::OK => {
                        self.record(first, started.elapsed());
                        metrics.hedge_won(branch, pending.len());
                        return Ok(Won { response, upstream: index, branch, sent, after });
                    }
                    other => {
                        failure.get_or_insert(other);
                        if pending.is_empty() {
                            if sent >= self.branches {
                                break;
                            }
                            // The branch failed before it started: the next one goes now.
                            pending.extend(launch(sent));
                            sent += 1;
                        }
                    }
                },
                () = &mut timer, if sent < self.branches => {
                    pending.extend(launch(sent));
                    sent += 1;
                    timer.as_mut().reset(Instant::now() + after);
                }
                else => break,
            }
        }
        match failure {
            Some(Ok(response)) => Ok(Won { response, upstream: first, branch: 0, sent, after }),
            Some(Err(e)) => Err(e),
            None => Err(UpstreamError::Timeout { name: upstreams[first].name.clone(), after: timeout }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_fixed_or_the_running_p95_once_enough_answers_were_seen() {
        assert_eq!(Hedging::new(After::Fixed(Duration::from_millis(7)), 2, vec![]).delay(0), Duration::from_millis(7));
        let h = Hedging::new(After::P95(Duration::from_millis(500)), 2, vec![]);
        for ms in 1..=19 {
            h.record(0, Duration::from_millis(ms));
        }
        assert_eq!(h.delay(0), Duration::from_millis(500), "19 answers: still the initial delay");
        for ms in 20..=100 {
            h.record(0, Duration::from_millis(ms));
        }
        assert_eq!(h.delay(0), Duration::from_millis(95));
        assert_eq!(h.delay(1), Duration::from_millis(500), "each upstream has its own p95");
        // The window keeps the last 1024: old answers leave it.
        for _ in 0..WINDOW {
            h.record(0, Duration::from_millis(2));
        }
        assert_eq!(h.delay(0), Duration::from_millis(2));
    }
}
