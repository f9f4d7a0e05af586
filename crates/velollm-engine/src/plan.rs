//! What a run sends, step by step, decided before anything is sent: each step's workload, load, bounds and
//! connection mode ([`StepPlan`]), and the connection modes the target and the command line allow
//! ([`connection_plan`]).

use std::collections::BTreeMap;
use velollm_core::aggregate::step::StepConfig;
use velollm_core::document::scenario::{CacheHints, ConnectionMode, Workload};
use velollm_core::measure::check::Check;
use velollm_core::workload::load::{Bounds, LoadProfile, Warmup};

/// One step to run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    /// Step name.
    pub name: String,
    /// What to send.
    pub workload: Workload,
    /// Optional system prompt.
    pub system: Option<String>,
    /// Stable context sent before every prompt, in the same user message.
    pub context: Option<String>,
    /// A synthetic stable context of about this many tokens, generated per step (instead of `context`).
    pub context_tokens: Option<u32>,
    /// Start every request with a unique marker so nothing of it can be cached (an uncached baseline).
    pub fresh_context: bool,
    /// Explicit prompt-cache hints (Anthropic `cache_control`).
    pub cache: CacheHints,
    /// Maximum tokens to generate.
    pub max_tokens: u32,
    /// Ask for exactly `max_tokens`.
    pub exact_output: bool,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// How requests are issued.
    pub load: LoadProfile,
    /// How many, for how long, and the warm-up (for conversations: how many conversations).
    pub bounds: Bounds,
    /// Tool definitions sent with each request.
    pub tools: Option<serde_json::Value>,
    /// Checks applied to every answer.
    pub checks: Vec<Check>,
    /// Correction turns allowed after an answer fails a check.
    pub retries: u32,
    /// Connection reuse.
    pub connection: ConnectionMode,
    /// Unload the model first (Ollama), so the step starts cold.
    pub cold: bool,
    /// Tags (provider, task type).
    pub tags: BTreeMap<String, String>,
    /// Thresholds over the step's aggregates.
    pub thresholds: Vec<velollm_core::judge::threshold::Threshold>,
}

impl StepPlan {
    /// The step's configuration as recorded in the result.
    pub fn config(&self) -> StepConfig {
        let (prompt, prompt_tokens) = match &self.workload {
            Workload::Prompts(p) => (p.first().cloned().unwrap_or_default(), None),
            Workload::Synthetic { prompt_tokens } => {
                (format!("synthetic, {prompt_tokens} tokens, distinct per request"), Some(*prompt_tokens))
            }
            Workload::Conversation(turns) => (turns.first().map(|t| t.user.clone()).unwrap_or_default(), None),
            Workload::SyntheticDist(d) => (format!("synthetic, {}, distinct per request", d.describe()), d.constant()),
            Workload::SharedPrefix { prefix, suffix } => (
                format!("synthetic, {} + a distinct suffix of {}", prefix.describe(), suffix.describe()),
                suffix.constant().map(|n| n.saturating_add(prefix.prefix_tokens)),
            ),
            Workload::Sessions(sessions) => {
                let turns: usize = sessions.iter().map(Vec::len).sum();
                let first = sessions.first().and_then(|s| s.first()).map_or("", |t| t.user.as_str());
                (format!("dataset, {} conversations, {turns} user turns; first: {first}", sessions.len()), None)
            }
            Workload::Trace(t) => {
                let first = t.root(0).map(|s| s.first_user_text());
                let scale = if t.time_scale == 1.0 { String::new() } else { format!(", time × {}", t.time_scale) };
                let subagents = t.sessions.len() - t.roots.len();
                let forks = if subagents > 0 { format!(" (+ {subagents} sub-agents)") } else { String::new() };
                let text = format!(
                    "trace, {} sessions{forks}, {} calls{scale}; first: {}",
                    t.roots.len(),
                    t.calls(),
                    first.unwrap_or_default()
                );
                (text, None)
            }
        };
        StepConfig {
            prompt,
            prompt_tokens,
            max_tokens: self.max_tokens,
            exact_output: self.exact_output,
            load: self.load,
            bounds: self.bounds,
            turns: self.turns(),
            tags: self.tags.clone(),
        }
    }

    /// Turns per conversation, for multi-turn steps (for a dataset: when every conversation has as many).
    pub fn turns(&self) -> Option<u32> {
        match &self.workload {
            Workload::Conversation(t) => Some(t.len() as u32),
            Workload::Sessions(s) => {
                let n = s.first().map(Vec::len)?;
                s.iter().all(|t| t.len() == n).then_some(n as u32)
            }
            Workload::Trace(t) => {
                let n = t.root(0).map(|s| s.turns.len())?;
                let roots = || t.roots.iter().map(|&k| &t.sessions[k]);
                (t.sessions.len() == t.roots.len() && roots().all(|s| s.turns.len() == n)).then_some(n as u32)
            }
            _ => None,
        }
    }

    /// A single-turn step with default options.
    pub fn simple(
        name: impl Into<String>,
        workload: Workload,
        max_tokens: u32,
        load: LoadProfile,
        bounds: Bounds,
    ) -> StepPlan {
        StepPlan {
            name: name.into(),
            workload,
            system: None,
            context: None,
            context_tokens: None,
            fresh_context: false,
            cache: CacheHints::default(),
            max_tokens,
            exact_output: false,
            temperature: None,
            load,
            bounds,
            tools: None,
            checks: Vec::new(),
            retries: 0,
            connection: ConnectionMode::KeepAlive,
            cold: false,
            tags: BTreeMap::new(),
            thresholds: Vec::new(),
        }
    }

    /// Requests the step will send when that is known in advance (warm-up included).
    pub fn expected_requests(&self) -> Option<u64> {
        let warm = match self.bounds.warmup {
            Warmup::Requests(n) => n,
            Warmup::None => 0,
            Warmup::Seconds(_) => return None,
        };
        if self.retries > 0 {
            return None;
        }
        match (self.bounds.requests, self.bounds.duration_s) {
            (Some(r), None) => Some((r + warm) * u64::from(self.turns().unwrap_or(1))),
            _ => None,
        }
    }
}

/// The transports asked for on the command line: `--http2`, `--websocket`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transports {
    /// `--http2`.
    pub http2: bool,
    /// `--websocket`.
    pub websocket: bool,
}

/// Apply the target's scheme, `--http2` and `--websocket` to the steps' connection modes, before anything is
/// sent. Returns a note for every step skipped or changed:
///
/// * a scenario with `http2` steps runs them only with `--http2` (many servers, llama-server among them,
///   speak HTTP/1.1 only), the other steps keeping their modes; otherwise they are skipped;
/// * likewise `websocket` steps with `--websocket` (model servers offer no WebSocket session; `velollm proxy`
///   does);
/// * a scenario with neither runs every step over HTTP/2 with `--http2`, or over WebSocket sessions with
///   `--websocket` (both flags: WebSocket, and a note says `--http2` was not used);
/// * `new-no-resume` steps need https (plain http has no TLS handshake to repeat): skipped on http.
pub fn connection_plan(steps: &mut Vec<StepPlan>, https: bool, asked: Transports) -> Vec<String> {
    let mut notes = Vec::new();
    let has = |mode| steps.iter().any(|s| s.connection == mode);
    let (has_h2, has_ws) = (has(ConnectionMode::Http2), has(ConnectionMode::WebSocket));
    let every_step = if has_h2 || has_ws {
        None
    } else if asked.websocket {
        if asked.http2 {
            notes.push("--http2 not used: --websocket runs every step over WebSocket sessions".into());
        }
        Some((ConnectionMode::WebSocket, "--websocket: every step runs over one WebSocket session per worker"))
    } else if asked.http2 {
        Some((ConnectionMode::Http2, "--http2: every step shares one HTTP/2 connection among its workers"))
    } else {
        None
    };
    if let Some((mode, note)) = every_step {
        for s in steps.iter_mut() {
            s.connection = mode;
        }
        notes.push(note.into());
    }
    steps.retain(|s| {
        let why = match s.connection {
            ConnectionMode::Http2 if !asked.http2 => {
                "it needs HTTP/2, which many servers (llama-server among them) do not speak: add --http2 to run it"
            }
            ConnectionMode::WebSocket if !asked.websocket => {
                "it needs a server that offers WebSocket sessions (velollm proxy does; model servers do not): add \
                 --websocket to run it"
            }
            ConnectionMode::NewNoResume if !https => {
                "a full TLS handshake per request needs an https:// target (plain http has no TLS to resume or not)"
            }
            _ => return true,
        };
        notes.push(format!("step '{}' ({}) skipped: {why}", s.name, s.connection.as_str()));
        false
    });
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_plan_skips_and_switches_steps() {
        use velollm_core::workload::load::{Bounds, LoadProfile};
        let step = |name: &str, mode| {
            let w = velollm_core::document::scenario::Workload::Prompts(vec!["hi".into()]);
            let mut s = StepPlan::simple(name, w, 1, LoadProfile::Sequential, Bounds::default());
            s.connection = mode;
            s
        };
        let modes = |steps: &[StepPlan]| steps.iter().map(|s| (s.name.clone(), s.connection)).collect::<Vec<_>>();
        use ConnectionMode::*;
        let scenario = || {
            vec![step("k", KeepAlive), step("n", New), step("f", NewNoResume), step("h", Http2), step("w", WebSocket)]
        };
        let none = Transports::default();
        let h2 = Transports { http2: true, websocket: false };
        let ws = Transports { http2: false, websocket: true };
        // Plain http with neither flag: the full-TLS, HTTP/2 and WebSocket steps are skipped, each with its reason.
        let mut steps = scenario();
        let notes = connection_plan(&mut steps, false, none);
        assert_eq!(modes(&steps), [("k".into(), KeepAlive), ("n".into(), New)]);
        assert!(notes[0].contains("step 'f' (new-no-resume) skipped") && notes[0].contains("https://"), "{notes:?}");
        assert!(notes[1].contains("step 'h' (http2) skipped") && notes[1].contains("add --http2"), "{notes:?}");
        assert!(notes[2].contains("step 'w' (websocket) skipped") && notes[2].contains("add --websocket"), "{notes:?}");
        // https with both flags: everything runs, the modes as written.
        let mut steps = scenario();
        assert!(connection_plan(&mut steps, true, Transports { http2: true, websocket: true }).is_empty());
        assert_eq!(modes(&steps).len(), 5);
        // --http2 (or --websocket) on a scenario without such a step: every step over it.
        let mut steps = vec![step("a", KeepAlive), step("b", New)];
        let notes = connection_plan(&mut steps, false, h2);
        assert_eq!(modes(&steps), [("a".into(), Http2), ("b".into(), Http2)]);
        assert_eq!(notes.len(), 1);
        let mut steps = vec![step("a", KeepAlive)];
        let notes = connection_plan(&mut steps, false, ws);
        assert_eq!((modes(&steps), notes.len()), (vec![("a".into(), WebSocket)], 1));
        assert_eq!(notes.len(), 1);
    }
}
