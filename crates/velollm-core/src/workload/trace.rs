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
//! * `timestamp_ms` (optional, on a session's first line) when the session started, relative to the trace;
//! * `parent_id` and `parent_turn` (optional, on a session's first line): a sub-agent, started when call
//!   `parent_turn` of session `parent_id` (defined on an earlier line) has answered; the parent's next call
//!   waits until every sub-agent it started has ended (and then for its own recorded pause).
//!
//! The *Mooncake* format (JSON Lines, as in Mooncake's published traces) has one independent request per
//! line: `{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, …]}` —
//! `timestamp` in ms, and one hash id per block of [`MOONCAKE_BLOCK_TOKENS`] prompt tokens. Its prompts are
//! synthesised when sent: block `h` is the same text wherever it appears (for one run), so requests that share
//! their first block ids share a byte-identical prefix block by block, and different ids never do. The format
//! is recognised by its first line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prompt tokens per hash id in a Mooncake trace (the block size of Mooncake's published traces).
pub const MOONCAKE_BLOCK_TOKENS: u32 = 512;

/// A prompt to synthesise instead of a recorded history: a Mooncake request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Blocks {
    /// One id per block of [`MOONCAKE_BLOCK_TOKENS`] tokens; equal ids are equal text.
    pub hash_ids: Vec<u64>,
    /// The prompt's length in tokens (the last block is cut to fit).
    pub input_tokens: u32,
}

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
    /// A prompt synthesised from blocks (Mooncake) instead of a recorded history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Blocks>,
}

/// Where a sub-agent forks from its parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fork {
    /// The parent session's id.
    pub id: String,
    /// The parent's call after whose answer the sub-agent starts.
    pub turn: usize,
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
    /// For a sub-agent: where it forks from its parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Fork>,
    /// The sub-agents it starts: (its call after which they start, their session index), set by
    /// [`TraceReplay::new`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forks: Vec<(usize, usize)>,
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
    /// The sessions that are not sub-agents: the replay's unit (`-n N` counts them).
    pub roots: std::sync::Arc<Vec<usize>>,
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
    /// A replay at recorded speed, sessions at their recorded starts, each sub-agent linked to its parent.
    pub fn new(mut sessions: Vec<TraceSession>) -> TraceReplay {
        let index: std::collections::HashMap<String, usize> =
            sessions.iter().enumerate().map(|(k, s)| (s.id.clone(), k)).collect();
        let links: Vec<(usize, usize, usize)> = sessions
            .iter()
            .enumerate()
            .filter_map(|(child, s)| s.parent.as_ref().and_then(|p| Some((index.get(&p.id).copied()?, p.turn, child))))
            .collect();
        for (parent, turn, child) in links {
            sessions[parent].forks.push((turn, child));
        }
        let roots = (0..sessions.len()).filter(|&k| sessions[k].parent.is_none()).collect();
        TraceReplay {
            sessions: std::sync::Arc::new(sessions),
            roots: std::sync::Arc::new(roots),
            time_scale: 1.0,
            max_delay_ms: None,
            together: false,
        }
    }

    /// The session that replay session `i` runs: the trace's root sessions, cycled.
    pub fn root(&self, i: usize) -> Option<&TraceSession> {
        let n = self.roots.len();
        (n > 0).then(|| &self.sessions[self.roots[i % n]])
    }

    /// When replay session `i` starts, after the step's start (ms). Beyond the trace's root sessions it is
    /// replayed again, each pass starting where the previous one started its last session.
    pub fn start_ms(&self, i: usize) -> f64 {
        let n = self.roots.len();
        if self.together || n == 0 {
            return 0.0;
        }
        let last = self.sessions[self.roots[n - 1]].start_ms;
        ((i / n) as f64 * last + self.sessions[self.roots[i % n]].start_ms) * self.time_scale
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

    /// The calls of `session` and of every sub-agent under it.
    pub fn tree_calls(&self, session: &TraceSession) -> usize {
        session.turns.len()
            + session.forks.iter().map(|(_, child)| self.tree_calls(&self.sessions[*child])).sum::<usize>()
    }

    /// True when some call carries a recorded history (which only the OpenAI chat dialect can send as it is).
    pub fn has_histories(&self) -> bool {
        self.sessions.iter().any(|s| s.turns.iter().any(|t| t.blocks.is_none()))
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
    let mut sessions = match format(text) {
        Some(Format::Mooncake) => parse_mooncake(text)?,
        // Anything else is read as request per turn, whose errors say what each line lacks.
        _ => parse_turns(text)?,
    };
    let earliest = sessions.iter().map(|s| s.start_ms).fold(f64::INFINITY, f64::min);
    for s in &mut sessions {
        s.start_ms -= if earliest.is_finite() { earliest } else { 0.0 };
    }
    // Sessions start in time order (a stable sort keeps the file's order among equal starts).
    sessions.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    Ok(sessions)
}

/// The trace formats.
enum Format {
    RequestPerTurn,
    Mooncake,
}

/// The format of a trace, judged by its first record; `None` when it is not one.
fn format(text: &str) -> Option<Format> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let v = serde_json::from_str::<Value>(first).ok()?;
    let has = |key: &str| v.get(key).is_some();
    if has("session_id") && has("messages") {
        Some(Format::RequestPerTurn)
    } else if has("hash_ids") && !has("session_id") {
        Some(Format::Mooncake)
    } else {
        None
    }
}

/// True when the text is a trace (request per turn or Mooncake), judged by its first record.
pub fn looks_like_trace(text: &str) -> bool {
    format(text).is_some()
}

/// A Mooncake trace: one session of one call per line.
fn parse_mooncake(text: &str) -> Result<Vec<TraceSession>, TraceError> {
    let mut sessions = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let err = |message: String| TraceError { line, session: None, message };
        let v: Value = serde_json::from_str(raw).map_err(|e| err(format!("not JSON: {e}")))?;
        let whole = |key: &str, min: u64| -> Result<u64, TraceError> {
            match v.get(key).and_then(Value::as_u64) {
                Some(n) if n >= min => Ok(n),
                _ => Err(err(format!(
                    "\"{key}\" must be a whole number ≥ {min} (Mooncake: timestamp, input_length, output_length, hash_ids)"
                ))),
            }
        };
        let timestamp = whole("timestamp", 0)?;
        let input = whole("input_length", 1)?;
        let output = whole("output_length", 1)?;
        let hash_ids: Vec<u64> = match v.get("hash_ids").and_then(Value::as_array) {
            Some(ids) if !ids.is_empty() => ids
                .iter()
                .map(|h| h.as_u64().ok_or_else(|| err(format!("hash id {h} is not a whole number ≥ 0"))))
                .collect::<Result<_, _>>()?,
            _ => return Err(err("\"hash_ids\" must be a non-empty array of block ids".into())),
        };
        let blocks = hash_ids.len() as u64;
        let block = u64::from(MOONCAKE_BLOCK_TOKENS);
        if input > blocks * block || input <= (blocks - 1) * block {
            return Err(err(format!(
                "input_length {input} does not fit {blocks} blocks of {block} tokens (it must be more than {} and \
                 at most {})",
                (blocks - 1) * block,
                blocks * block
            )));
        }
        let to_u32 = |n: u64| u32::try_from(n).map_err(|_| err(format!("{n} is too large")));
        sessions.push(TraceSession {
            id: format!("line {line}"),
            start_ms: timestamp as f64,
            parent: None,
            forks: Vec::new(),
            history: Vec::new(),
            turns: vec![TraceTurn {
                messages: 0,
                tools: None,
                output_tokens: Some(to_u32(output)?),
                max_tokens: None,
                delay_ms: 0.0,
                line,
                blocks: Some(Blocks { hash_ids, input_tokens: to_u32(input)? }),
            }],
        });
    }
    Ok(sessions)
}

/// A request-per-turn trace.
fn parse_turns(text: &str) -> Result<Vec<TraceSession>, TraceError> {
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
            blocks: None,
        };
        let at = match index.get(&id) {
            Some(&at) => at,
            None => {
                index.insert(id.clone(), sessions.len());
                let start_ms = number("timestamp_ms")?.unwrap_or(0.0);
                let parent = match v.get("parent_id") {
                    None | Some(Value::Null) => None,
                    Some(p) => {
                        let pid = p.as_str().map_or_else(|| p.to_string(), str::to_string);
                        if !index.contains_key(&pid) {
                            return Err(e(format!(
                                "parent_id '{pid}' names no session on an earlier line (a sub-agent comes after the \
                                 call that starts it)"
                            )));
                        }
                        let turn = number("parent_turn")?.ok_or_else(|| {
                            e("a sub-agent (parent_id) needs \"parent_turn\": the parent's call after which it starts".into())
                        })?;
                        Some(Fork { id: pid, turn: turn as usize })
                    }
                };
                sessions.push(TraceSession {
                    id: id.clone(),
                    start_ms,
                    history: Vec::new(),
                    turns: Vec::new(),
                    parent,
                    forks: Vec::new(),
                });
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
    for s in &sessions {
        if let Some(p) = &s.parent {
            let calls = sessions[index[&p.id]].turns.len();
            if p.turn >= calls {
                return Err(TraceError {
                    line: s.turns.first().map_or(0, |t| t.line),
                    session: Some(s.id.clone()),
                    message: format!("parent_turn {} is past the {calls} calls of session '{}'", p.turn, p.id),
                });
            }
        }
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
    fn mooncake_lines_are_sessions_of_one_synthesised_call_in_time_order() {
        let text = "{\"timestamp\": 50, \"input_length\": 600, \"output_length\": 8, \"hash_ids\": [1, 2]}\n\
                    {\"timestamp\": 20, \"input_length\": 512, \"output_length\": 4, \"hash_ids\": [1]}\n";
        assert!(looks_like_trace(text));
        let s = parse(text).unwrap();
        assert_eq!(
            s.iter().map(|s| (s.id.as_str(), s.start_ms)).collect::<Vec<_>>(),
            [("line 2", 0.0), ("line 1", 30.0)]
        );
        let b = s[1].turns[0].blocks.as_ref().unwrap();
        assert_eq!((b.hash_ids.as_slice(), b.input_tokens, s[1].turns[0].output_tokens), (&[1, 2][..], 600, Some(8)));
        let e =
            parse("{\"timestamp\": 0, \"input_length\": 2000, \"output_length\": 8, \"hash_ids\": [1]}").unwrap_err();
        assert!(e.to_string().contains("does not fit 1 blocks of 512 tokens"), "{e}");
        let e = parse("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 8, \"hash_ids\": []}").unwrap_err();
        assert!(e.to_string().starts_with("line 1: \"hash_ids\" must be a non-empty array"), "{e}");
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
