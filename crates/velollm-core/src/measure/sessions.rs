//! A step's sessions: the calls that share a conversation id (an agent trace's session with its sub-agents, a
//! multi-turn chat). How many there were, how many ended without a failed call, and per session its duration
//! (first call scheduled → last answer), calls, calls the client aborted, prompt and output tokens — the shape of
//! llm-d's `session_performance`.
//!
//! A session *failed* when one of its calls failed; a call the client aborted on purpose (`--cancel-share`, a
//! deadline) or cancelled (Ctrl-C) is counted as cancelled, not as a failure. Memory grows with the number of
//! sessions, not of calls.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::measure::record::Nanos;
use crate::stats::Summary;

/// A step's sessions, counted and summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStats {
    /// Sessions with at least one call in the step.
    pub total: u64,
    /// Sessions none of whose calls failed.
    pub succeeded: u64,
    /// Sessions with at least one failed call.
    pub failed: u64,
    /// Calls of every session.
    pub calls: u64,
    /// Calls that succeeded.
    pub calls_completed: u64,
    /// Calls the client aborted or cancelled.
    pub calls_cancelled: u64,
    /// Per session, from its first call's scheduled instant to its last answer, in seconds.
    pub duration_s: Summary,
    /// Calls per session.
    pub calls_per_session: Summary,
    /// Aborted or cancelled calls per session.
    pub cancelled_per_session: Summary,
    /// Prompt tokens per session (the calls whose server reported them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_per_session: Option<Summary>,
    /// Output tokens per session.
    pub output_tokens_per_session: Summary,
}

/// How one call of a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// An answer.
    Completed,
    /// An error.
    Failed,
    /// Aborted by the client on purpose, or cancelled.
    Cancelled,
}

/// One call, as [`SessionAccumulator::push`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// The session (the record's conversation id).
    pub session: u64,
    /// When it was scheduled.
    pub scheduled: Nanos,
    /// When it ended (`None`: it never did).
    pub done: Option<Nanos>,
    /// How it ended.
    pub end: CallEnd,
    /// Prompt tokens, when the server reported them.
    pub prompt_tokens: Option<u64>,
    /// Output tokens received.
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Default)]
struct Session {
    first: Nanos,
    last: Nanos,
    calls: u64,
    failed: u64,
    cancelled: u64,
    prompt: Option<u64>,
    output: u64,
}

/// Sessions as their calls arrive.
#[derive(Debug, Clone, Default)]
pub struct SessionAccumulator {
    sessions: BTreeMap<u64, Session>,
}

impl SessionAccumulator {
    /// Adds one call.
    pub fn push(&mut self, c: Call) {
        let s = self.sessions.entry(c.session).or_insert(Session { first: c.scheduled, ..Session::default() });
        s.first = s.first.min(c.scheduled);
        s.last = s.last.max(c.done.unwrap_or(c.scheduled));
        s.calls += 1;
        match c.end {
            CallEnd::Completed => {}
            CallEnd::Failed => s.failed += 1,
            CallEnd::Cancelled => s.cancelled += 1,
        }
        if let Some(p) = c.prompt_tokens {
            s.prompt = Some(s.prompt.unwrap_or(0) + p);
        }
        s.output += c.output_tokens;
    }

    /// The step's sessions; `None` when no call carried a session.
    pub fn stats(&self) -> Option<SessionStats> {
        let all: Vec<&Session> = self.sessions.values().collect();
        let summary = |f: &dyn Fn(&Session) -> f64| Summary::of(all.iter().map(|s| f(s)));
        let failed = all.iter().filter(|s| s.failed > 0).count() as u64;
        let calls: u64 = all.iter().map(|s| s.calls).sum();
        let cancelled: u64 = all.iter().map(|s| s.cancelled).sum();
        let failures: u64 = all.iter().map(|s| s.failed).sum();
        Some(SessionStats {
            total: all.len() as u64,
            succeeded: all.len() as u64 - failed,
            failed,
            calls,
            calls_completed: calls - cancelled - failures,
            calls_cancelled: cancelled,
            duration_s: summary(&|s| s.last.saturating_sub(s.first) as f64 / 1e9)?,
            calls_per_session: summary(&|s| s.calls as f64)?,
            cancelled_per_session: summary(&|s| s.cancelled as f64)?,
            prompt_tokens_per_session: Summary::of(all.iter().filter_map(|s| s.prompt).map(|p| p as f64)),
            output_tokens_per_session: summary(&|s| s.output as f64)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(session: u64, scheduled: Nanos, done: Nanos, end: CallEnd, output: u64) -> Call {
        Call { session, scheduled, done: Some(done), end, prompt_tokens: Some(10), output_tokens: output }
    }

    #[test]
    fn sessions_are_counted_with_their_calls_duration_and_tokens() {
        let mut acc = SessionAccumulator::default();
        assert_eq!(acc.stats(), None);
        // Session 1: two calls over 3 s. Session 2: a failed call, and one the client aborted.
        acc.push(call(1, 1_000_000_000, 2_000_000_000, CallEnd::Completed, 4));
        acc.push(call(1, 2_500_000_000, 4_000_000_000, CallEnd::Completed, 6));
        acc.push(call(2, 0, 500_000_000, CallEnd::Failed, 0));
        acc.push(call(2, 600_000_000, 1_000_000_000, CallEnd::Cancelled, 2));
        let s = acc.stats().unwrap();
        assert_eq!((s.total, s.succeeded, s.failed), (2, 1, 1));
        assert_eq!((s.calls, s.calls_completed, s.calls_cancelled), (4, 2, 1));
        assert_eq!((s.duration_s.min, s.duration_s.max), (1.0, 3.0));
        assert_eq!((s.output_tokens_per_session.min, s.output_tokens_per_session.max), (2.0, 10.0));
        assert_eq!(s.prompt_tokens_per_session.unwrap().max, 20.0);
        assert_eq!(s.cancelled_per_session.max, 1.0);
    }
}
