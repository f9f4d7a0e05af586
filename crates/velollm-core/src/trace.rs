//! Agent traces: recorded model calls replayed as they were sent.
//!
//! The *request per turn* format (JSON Lines) has one model call per line, as an agent sent it:
//!
//! ```json
//! {"session_id": "s1", "turn": 0, "timestamp_ms": 0, "messages": [{"role": "user", "content": "…"}],
//!  "tools": […], "output_tokens": 64, "max_tokens": 128, "delay_ms": 1500}
//! ```
//!
//! * `session_id` (string or number, required) groups the calls of one agent session; `turn` (optional) is
//!   its 0-based index, checked against the order of the lines;
//! * `messages` (required) is the whole history so far — system prompt, user turns, the assistant's turns with
//!   their tool calls, tool results — sent as recorded, never regenerated; each turn's history must extend
//!   the previous turn's (the previous messages, unchanged, then the new ones), or the server's prefix cache
//!   would be silently defeated;
//! * `tools` (optional) the tool definitions sent with the call;
//! * `output_tokens` (optional) the answer's recorded length, asked for exactly where the server allows it;
//!   `max_tokens` (optional) a cap;
//! * `delay_ms` (optional, default 0) the time the agent spent after this call's answer before its next call
//!   (tools running, thinking);
//! * `timestamp_ms` (optional, on a session's first line) when the session started, relative to the trace.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One recorded model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceTurn {
    /// The whole history sent with the call: the first `messages` of its session's [`TraceSession::history`]
    /// (each call's history extends the previous one's, so a session keeps only its longest: memory grows with
    /// the messages, not with their square).
    pub messages: usize,
    /// Tool definitions (OpenAI `tools` format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    /// The recorded answer's length in tokens: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u32>,
    /// The most tokens the call allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Tool or think time after the answer, before the session's next call (ms).
    #[serde(default)]
    pub delay_ms: f64,
    /// The 1-based line of the trace file it came from.
    pub line: usize,
}

/// One agent session: its calls in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceSession {
    /// The session's id in the trace.
    pub id: String,
    /// When the session started, relative to the trace's first session (ms).
    pub start_ms: f64,
    /// The history of its last call, which holds every earlier call's (OpenAI chat messages).
    pub history: Vec<Value>,
    /// Its calls, in order.
    pub turns: Vec<TraceTurn>,
}

impl TraceSession {
    /// The messages call `turn` sends.
    pub fn messages(&self, turn: &TraceTurn) -> &[Value] {
        &self.history[..turn.messages.min(self.history.len())]
    }
}

/// A trace and how to replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceReplay {
    /// The sessions, in the order they first appear in the file (shared, not copied, by the step's plan and
    /// its running sessions).
    pub sessions: std::sync::Arc<Vec<TraceSession>>,
    /// Every recorded time (session starts, pauses) is multiplied by this (`--time-scale`; 0 sends each call
    /// as soon as the previous answer ends).
    pub time_scale: f64,
    /// The longest single pause kept, after scaling (ms; `--max-delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_ms: Option<f64>,
    /// Start every session at once instead of at its recorded time.
    pub together: bool,
}

impl TraceReplay {
    /// A replay at recorded speed, sessions at their recorded starts.
    pub fn new(sessions: Vec<TraceSession>) -> TraceReplay {
        TraceReplay { sessions: std::sync::Arc::new(sessions), time_scale: 1.0, max_delay_ms: None, together: false }
    }

    /// When session `i` starts, after the step's start (ms).
    pub fn start_ms(&self, i: usize) -> f64 {
        if self.together || self.sessions.is_empty() {
            return 0.0;
        }
        self.sessions[i % self.sessions.len()].start_ms * self.time_scale
    }

    /// The pause after a call that recorded `delay_ms`, scaled and capped (ms).
    pub fn pause_ms(&self, delay_ms: f64) -> f64 {
        let scaled = delay_ms * self.time_scale;
        self.max_delay_ms.map_or(scaled, |cap| scaled.min(cap))
    }

    /// The calls of all sessions.
    pub fn calls(&self) -> usize {
        self.sessions.iter().map(|s| s.turns.len()).sum()
    }
}

impl TraceSession {
    /// The text of the first call's last user message (for display).
    pub fn first_user_text(&self) -> String {
        let Some(first) = self.turns.first() else { return String::new() };
        let user = self.messages(first).iter().rev().find(|m| m["role"] == "user");
        match user.map(|m| &m["content"]) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        }
    }
}

/// A trace line or session that cannot be replayed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}{}: {message}", session.as_ref().map(|s| format!(" (session '{s}')")).unwrap_or_default())]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// The session the line belongs to, when it names one.
    pub session: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Parse a request-per-turn trace: sessions in the order they first appear, start times made relative to the
/// earliest one. Every error names the line and the session.
pub fn parse(text: &str) -> Result<Vec<TraceSession>, TraceError> {
    let mut sessions: Vec<TraceSession> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err =
            |session: Option<&str>, message: String| TraceError { line, session: session.map(str::to_string), message };
        let v: Value = serde_json::from_str(raw).map_err(|e| err(None, format!("not JSON: {e}")))?;
        let id = match v.get("session_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(err(
                    None,
                    "no \"session_id\" (a string or a number naming the agent session of this call)".into(),
                ));
            }
        };
        let e = |message: String| err(Some(&id), message);
        let messages = match v.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => m.clone(),
            _ => {
                return Err(e(
                    "no \"messages\": each line is one call with its whole history, a non-empty array".into()
                ));
            }
        };
        if let Some(bad) = messages.iter().position(|m| m.get("role").and_then(Value::as_str).is_none()) {
            return Err(e(format!("message {} has no \"role\"", bad + 1)));
        }
        if messages.last().and_then(|m| m.get("role")).and_then(Value::as_str) == Some("assistant") {
            return Err(e("the last message is the assistant's: the call has nothing to answer".into()));
        }
        let number = |key: &str| -> Result<Option<f64>, TraceError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => match x.as_f64() {
                    Some(n) if n >= 0.0 && n.is_finite() => Ok(Some(n)),
                    _ => Err(e(format!("\"{key}\" must be a number ≥ 0, not {x}"))),
                },
            }
        };
        let count = |key: &str| -> Result<Option<u32>, TraceError> {
            match number(key)? {
                Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) => Ok(Some(n as u32)),
                Some(n) => Err(e(format!("\"{key}\" must be a whole number ≥ 1, not {n}"))),
                None => Ok(None),
            }
        };
        let turn = TraceTurn {
            tools: v.get("tools").filter(|t| !t.is_null()).cloned(),
            output_tokens: count("output_tokens")?,
            max_tokens: count("max_tokens")?,
            delay_ms: number("delay_ms")?.unwrap_or(0.0),
            messages: messages.len(),
            line,
        };
        let at = match index.get(&id) {
            Some(&at) => at,
            None => {
                index.insert(id.clone(), sessions.len());
                let start_ms = number("timestamp_ms")?.unwrap_or(0.0);
                sessions.push(TraceSession { id: id.clone(), start_ms, history: Vec::new(), turns: Vec::new() });
                sessions.len() - 1
            }
        };
        let session = &mut sessions[at];
        let expected = session.turns.len();
        match number("turn")? {
            Some(t) if t != expected as f64 => {
                return Err(e(format!(
                    "turn {t} out of order: the session's lines so far make this turn {expected} (lines of a \
                     session go in turn order)"
                )));
            }
            _ => {}
        }
        if let Some(prev) = session.turns.last() {
            let (n, before) = (prev.messages, &session.history);
            if messages.len() <= n || messages[..n] != before[..n] {
                let at = (0..n.min(messages.len())).find(|&k| messages[k] != before[k]).map_or_else(
                    || format!("it has {} messages, no more than line {}'s", messages.len(), prev.line),
                    |k| format!("message {} differs", k + 1),
                );
                return Err(e(format!(
                    "the history does not extend turn {} (line {}): {at}. Each call must send the previous \
                     call's messages unchanged, then the new ones; otherwise the replay would defeat the \
                     server's prefix cache where the agent did not",
                    expected - 1,
                    prev.line
                )));
            }
        }
        session.history = messages;
        session.turns.push(turn);
    }
    let first = sessions.iter().map(|s| s.start_ms).fold(f64::INFINITY, f64::min);
    for s in &mut sessions {
        s.start_ms -= if first.is_finite() { first } else { 0.0 };
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"session_id": "a", "timestamp_ms": 1000, "messages": [{"role": "user", "content": "list files"}], "delay_ms": 250}
{"session_id": 7, "timestamp_ms": 1500, "messages": [{"role": "user", "content": "hi"}]}
{"session_id": "a", "turn": 1, "output_tokens": 32, "messages": [{"role": "user", "content": "list files"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "a.txt"}]}
"#;

    #[test]
    fn sessions_group_their_turns_in_order() {
        let s = parse(TRACE).unwrap();
        assert_eq!(
            s.iter().map(|s| (s.id.as_str(), s.start_ms, s.turns.len())).collect::<Vec<_>>(),
            [("a", 0.0, 2), ("7", 500.0, 1)]
        );
        let a = &s[0].turns;
        assert_eq!((a[0].delay_ms, a[0].line, a[1].output_tokens, a[1].line), (250.0, 1, Some(32), 3));
        assert_eq!(s[0].messages(&a[1])[2]["role"], "tool");
        assert_eq!((s[0].messages(&a[0]).len(), s[0].history.len()), (1, 3), "one history per session");
    }

    #[test]
    fn bad_lines_name_the_line_the_session_and_the_fix() {
        let e = |text: &str| parse(text).unwrap_err().to_string();
        assert!(e("{nope").starts_with("line 1: not JSON"), "{}", e("{nope"));
        let no_id = e(r#"{"messages": [{"role": "user", "content": "x"}]}"#);
        assert!(no_id.contains("no \"session_id\""), "{no_id}");
        let order = e(&format!(
            "{}\n{}",
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "x"}]}"#,
            r#"{"session_id": "s", "turn": 2, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}, {"role": "user", "content": "z"}]}"#
        ));
        assert!(order.starts_with("line 2 (session 's'): turn 2 out of order"), "{order}");
        let rewritten = e(&format!(
            "{}\n{}",
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "x"}]}"#,
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "CHANGED"}, {"role": "user", "content": "z"}]}"#
        ));
        assert!(rewritten.contains("does not extend turn 0 (line 1): message 1 differs"), "{rewritten}");
        let shorter = e(&format!(
            "{}\n{}",
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "x"}]}"#,
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "x"}]}"#
        ));
        assert!(shorter.contains("no more than line 1's"), "{shorter}");
        let answered = e(
            r#"{"session_id": "s", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}"#,
        );
        assert!(answered.contains("nothing to answer"), "{answered}");
        let negative = e(r#"{"session_id": "s", "delay_ms": -1, "messages": [{"role": "user", "content": "x"}]}"#);
        assert!(negative.contains("\"delay_ms\" must be a number ≥ 0"), "{negative}");
    }
}
