//! The server under test as a worker sees it: where requests go, in which dialect, with which key, under
//! which timeouts, and the requests the client aborts on purpose.

use crate::dialect::DialectKind;
use crate::secrets::Secret;
use crate::tokenize::TokenCounter;
use crate::transport::{Clock, Endpoint};
use crate::wire::MAX_MESSAGE_BYTES;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Request timeouts. Each one that fires fails the request with [`velollm_core::measure::record::ErrorClass::Timeout`] and a message naming
/// it and the option that changes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// Opening a connection (DNS + TCP + TLS + HTTP handshake): `--connect-timeout`.
    pub connect: Duration,
    /// From sending the request to its first output token (content, reasoning or tool call): the response
    /// headers and chunks without output (a role chunk, a ping) do not stop this clock, and no idle timeout
    /// applies before the first token, so a long prefill only needs this one raised: `--first-token-timeout`.
    pub first_token: Duration,
    /// After the first token, no data for this long between chunks: `--idle-timeout`.
    pub idle: Duration,
    /// The whole request, connection included: `--timeout`.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// The earlier of `deadline` and `d` from now (`deadline` when `d` is too large to add).
/// Everything a worker needs to send requests to one target.
pub struct Target {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// How they are written and read.
    pub dialect: DialectKind,
    /// API key, sent as `Authorization: Bearer …` (as `x-api-key` to Anthropic); never stored or printed.
    pub api_key: Option<Secret>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Local tokenizer for token counts when the server reports none.
    pub tokenizer: Option<Arc<TokenCounter>>,
    /// Keep the generated text in each record.
    pub keep_text: bool,
    /// The run's clock.
    pub clock: Clock,
    /// The longest stream message (SSE line or event, NDJSON line) accepted: a longer one fails the request
    /// as a parse error instead of being buffered without bound (default [`MAX_MESSAGE_BYTES`], 64 MiB).
    pub max_message_bytes: usize,
    /// While this is false the server is being restarted and no request is sent (see `health`).
    pub gate: Option<tokio::sync::watch::Receiver<bool>>,
    /// Abort a share of the requests mid-stream (`--cancel-share`).
    pub aborts: Option<Aborts>,
    /// Header fields added to every request (the semantic cache's evaluation probes with
    /// `Cache-Control: no-store`).
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// A response header that says whether a cache answered, read before the ones caching proxies use.
    pub cache_header: Option<hyper::header::HeaderName>,
    pub(crate) next_conn: AtomicU64,
}

/// Requests the client aborts mid-stream on purpose, as agents do (`--cancel-share`, `--cancel-after`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aborts {
    /// The share of requests aborted, in `(0, 1]`; which ones is drawn from `seed` and the request's id.
    pub share: f64,
    /// How long after sending a chosen request is aborted; `None`: as soon as its first token arrives.
    pub after: Option<Duration>,
    /// The run's seed.
    pub seed: u64,
}

impl Aborts {
    /// Whether request `id` is one of those aborted.
    pub fn chosen(&self, id: u64) -> bool {
        // A uniform draw in [0, 1) per request from the seed and the id: the same requests in every run.
        let z = crate::prompts::mix(self.seed, id, crate::prompts::TAG_ABORT);
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.share
    }
}

impl Target {
    /// A target with default options.
    pub fn new(endpoint: Endpoint, dialect: DialectKind, clock: Clock) -> Target {
        Target {
            endpoint,
            dialect,
            api_key: None,
            timeouts: Timeouts::default(),
            tokenizer: None,
            keep_text: false,
            clock,
            max_message_bytes: MAX_MESSAGE_BYTES,
            gate: None,
            aborts: None,
            headers: Vec::new(),
            cache_header: None,
            next_conn: AtomicU64::new(1),
        }
    }
}

impl Target {
    /// A target for control-plane requests (readiness, health, metrics): short timeouts, so a wedged server
    /// never holds up the watcher for long.
    pub fn control(endpoint: Endpoint) -> Target {
        let mut t = Target::new(endpoint, DialectKind::OpenAiChat, Clock::start());
        t.timeouts.connect = Duration::from_secs(2);
        t.timeouts.first_token = Duration::from_secs(5);
        t.timeouts.idle = Duration::from_secs(5);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_choose_their_share_of_requests_the_same_way_every_run() {
        let a = Aborts { share: 0.2, after: None, seed: 42 };
        let chosen: Vec<u64> = (0..10_000).filter(|&id| a.chosen(id)).collect();
        assert!((1_800..2_200).contains(&chosen.len()), "{}", chosen.len());
        assert_eq!(chosen, (0..10_000).filter(|&id| a.chosen(id)).collect::<Vec<_>>());
        assert!((0..1_000).all(|id| Aborts { share: 1.0, ..a }.chosen(id)));
        let other_seed = Aborts { seed: 7, ..a };
        assert_ne!(chosen, (0..10_000).filter(|&id| other_seed.chosen(id)).collect::<Vec<_>>());
    }
}
