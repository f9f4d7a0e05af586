//! What a hedging proxy in front of the server said about a step's answers, from its response header
//! (`x-velollm-hedge: branches=2; winner=1; after_ms=100.0`): how many answers were raced, the extra requests
//! they cost, and the prompt tokens those extra requests carried — the cost to weigh against the cut tail.
//!
//! An extra branch is the same request sent again, so it carries the answer's prompt: its prompt tokens are
//! the answer's own (from the server's usage) once per extra branch. A branch that loses is cancelled when the
//! winner's first token arrives, before its own, so its output tokens are not counted: at most the few the
//! server generated before it saw the closed connection.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::measure::record::RequestRecord;

/// The branches a hedge header says were sent (`branches=N`); `None` for no header or no such field.
pub fn branches(value: &str) -> Option<u32> {
    value.split(';').find_map(|part| part.trim().strip_prefix("branches=")?.trim().parse().ok())
}

/// Which branch won (`winner=N`, 0 = the first); `None` when the header does not say.
pub fn winner(value: &str) -> Option<u32> {
    value.split(';').find_map(|part| part.trim().strip_prefix("winner=")?.trim().parse().ok())
}

/// A step's successful answers as a hedging proxy declared them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProxyHedgeStats {
    /// Answers that carried a hedge header.
    pub answers: u64,
    /// Answers raced over more than one branch.
    pub hedged: u64,
    /// Answers a later branch won (not the first).
    pub later_wins: u64,
    /// Requests sent beyond one per answer: Σ (branches − 1).
    pub extra_requests: u64,
    /// Prompt tokens of those extra requests: Σ (branches − 1) × the answer's prompt tokens; `None` when no
    /// hedged answer reported its usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_prompt_tokens: Option<u64>,
    /// Hedged answers whose prompt tokens were unknown (no usage), left out of `extra_prompt_tokens`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown_prompt: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Counts as answers arrive (constant memory).
#[derive(Debug, Clone, Default)]
pub struct ProxyHedgeAccumulator {
    stats: ProxyHedgeStats,
}

impl ProxyHedgeAccumulator {
    /// Adds a successful request.
    pub fn push(&mut self, r: &RequestRecord) {
        let Some(value) = r.proxy_hedge.as_deref() else { return };
        let s = &mut self.stats;
        s.answers += 1;
        let n = branches(value).unwrap_or(1).max(1);
        if n == 1 {
            return;
        }
        let extra = u64::from(n - 1);
        s.hedged += 1;
        s.extra_requests += extra;
        s.later_wins += u64::from(winner(value).is_some_and(|w| w > 0));
        match r.usage.as_ref().and_then(|u| u.prompt_tokens) {
            Some(p) => *s.extra_prompt_tokens.get_or_insert(0) += extra * p,
            None => s.unknown_prompt += 1,
        }
    }

    /// The step's figures; `None` when no answer carried a hedge header.
    pub fn stats(&self) -> Option<ProxyHedgeStats> {
        (self.stats.answers > 0).then(|| self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::record::Usage;

    fn rec(header: Option<&str>, prompt: Option<u64>) -> RequestRecord {
        RequestRecord {
            proxy_hedge: header.map(str::to_string),
            usage: prompt.map(|p| Usage { prompt_tokens: Some(p), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn the_header_reads_as_the_proxy_writes_it() {
        assert_eq!(branches("branches=3; winner=1; after_ms=100.0"), Some(3));
        assert_eq!(winner("branches=3; winner=1; after_ms=100.0"), Some(1));
        assert_eq!(branches(" winner=0 ;branches= 2"), Some(2));
        assert_eq!(branches("after_ms=5"), None);
        assert_eq!(branches("branches=x"), None);
    }

    #[test]
    fn extra_requests_and_their_prompt_tokens_are_counted() {
        let mut acc = ProxyHedgeAccumulator::default();
        acc.push(&rec(None, Some(10)));
        assert_eq!(acc.stats(), None, "no proxy header, no figures");
        acc.push(&rec(Some("branches=1; winner=0; after_ms=50.0"), Some(10)));
        acc.push(&rec(Some("branches=2; winner=1; after_ms=50.0"), Some(32)));
        acc.push(&rec(Some("branches=3; winner=0; after_ms=50.0"), Some(32)));
        acc.push(&rec(Some("branches=2; winner=1; after_ms=50.0"), None));
        let s = acc.stats().unwrap();
        assert_eq!((s.answers, s.hedged, s.later_wins, s.extra_requests), (4, 3, 2, 4));
        assert_eq!(s.extra_prompt_tokens, Some(32 + 2 * 32));
        assert_eq!(s.unknown_prompt, 1);
    }

    #[test]
    fn unknown_usage_leaves_the_tokens_unknown() {
        let mut acc = ProxyHedgeAccumulator::default();
        acc.push(&rec(Some("branches=2; winner=0; after_ms=1.0"), None));
        let s = acc.stats().unwrap();
        assert_eq!((s.extra_requests, s.extra_prompt_tokens, s.unknown_prompt), (1, None, 1));
    }
}
