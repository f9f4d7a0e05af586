//! The routing evaluation: labelled tasks by type, each with a deterministic checker, the answers of a small
//! and a large tier to every task, the router's vote for every task, and the figures: share routed to each
//! tier, calls saved against always-large, latency per tier (alone and under parallel load), accuracy of each
//! tier against the checkers and against the large tier, routing accuracy against the labels, and the
//! quality-versus-share curve as the confidence threshold is swept.
//!
//! Definitions (one place, used by the report and the criteria):
//! - **routed share** = tasks the router sends to the small tier ÷ tasks;
//! - **calls saved** = large-tier calls avoided ÷ tasks (against sending everything to the large tier);
//! - **accuracy of routed answers** = small-tier answers that pass their checker ÷ tasks routed small;
//! - **system accuracy** = tasks whose served answer (small if routed small, else large) passes ÷ tasks;
//! - **routing accuracy** = tasks routed to the tier their type belongs to ÷ tasks;
//! - a vote's **confidence** = the share of the nearest examples' weight held by the types that go to the voted
//!   type's tier;
//! - **agreement** = tasks where the small tier's answer passes iff the large tier's does ÷ tasks;
//! - **recovered quality** (RouteLLM's PGR) = (system accuracy − small-only accuracy) ÷ (large-only accuracy −
//!   small-only accuracy), at each point of the sweep.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::Summary;

/// The task types a label may name: the first four are the plan's small-model work (validation, formatting,
/// linting) and classification; the last two need the large model.
pub const TASK_TYPES: [&str; 6] = ["validation", "formatting", "linting", "classification", "reasoning", "codegen"];

/// The types whose tasks belong to the small tier in the labels.
pub const SMALL_TYPES: [&str; 4] = ["validation", "formatting", "linting", "classification"];

/// The tasks shipped with velollm (`scenarios/routing.jsonl`).
pub const BUILTIN_LABELS: &str = include_str!("../../../../scenarios/routing.jsonl");

/// The router's examples shipped with velollm (`scenarios/routing-examples.jsonl`): 15 per type, none of them
/// an evaluation task, so that the evaluation's tasks are held out.
pub const BUILTIN_EXAMPLES: &str = include_str!("../../../../scenarios/routing-examples.jsonl");

/// The checker the shipped code tasks' `command` runs (`scenarios/routing_check.py`).
pub const BUILTIN_CHECKER: &str = include_str!("../../../../scenarios/routing_check.py");

/// A known task type, or a message that lists them.
pub fn task_type(name: &str) -> Result<&'static str, String> {
    TASK_TYPES
        .iter()
        .find(|t| **t == name)
        .copied()
        .ok_or_else(|| format!("unknown task type {name:?}; the types are {}", TASK_TYPES.join(", ")))
}

/// What the nearest labelled examples say about a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Vote {
    /// The task type with the most weight.
    pub task: String,
    /// Its share of the weight, in [0, 1].
    pub confidence: f32,
    /// The nearest example's cosine similarity.
    pub nearest: f32,
    /// Every type with weight, and its share, the most first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<(String, f32)>,
}

impl Vote {
    /// The share of the weight held by the types `together` says go where the winner goes (its tier): a vote
    /// split between two small-model types is still a confident vote for the small model.
    pub fn share_with(&self, together: impl Fn(&str) -> bool) -> f32 {
        self.shares.iter().filter(|(t, _)| together(t)).map(|(_, s)| s).sum()
    }
}

/// What a vote decides under a confidence threshold and a least similarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Route to the voted type's tier.
    Task,
    /// Not confident enough: the large tier.
    Abstain,
    /// Far from every example: the large tier.
    Unfamiliar,
}

/// The one rule that turns a vote into a verdict (the proxy's router and this evaluation share it): the
/// voted type's tier, when the nearest example is at least `min_similarity` away and the types that go to
/// that tier (`same_tier`) hold at least `confidence` of the weight.
pub fn verdict(vote: &Vote, same_tier: impl Fn(&str) -> bool, confidence: f32, min_similarity: f32) -> Verdict {
    if vote.nearest < min_similarity {
        Verdict::Unfamiliar
    } else if vote.share_with(same_tier) < confidence {
        Verdict::Abstain
    } else {
        Verdict::Task
    }
}

/// How a task's answer is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The first of `choices` that occurs as a word must be `answer`.
    Choice {
        /// The words looked for.
        choices: Vec<String>,
        /// The right one.
        answer: String,
        /// Look at the last non-empty line only.
        last: bool,
    },
    /// One of these occurs (case-insensitive).
    Contains {
        /// Any of them.
        any: Vec<String>,
        /// Look at the last non-empty line only.
        last: bool,
    },
    /// The last number in the answer equals this one.
    Number(f64),
    /// The answer (out of a Markdown fence, if any) is JSON that follows this schema (type, required,
    /// properties, items, enum).
    Json(Value),
    /// A command that gets the answer on its standard input; exit 0 passes.
    Command(Vec<String>),
}

/// One labelled task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its line in the file.
    pub line: usize,
    /// Its id (unique).
    pub id: String,
    /// Its type, one of [`TASK_TYPES`].
    pub task: &'static str,
    /// What the user sends.
    pub prompt: String,
    /// How its answer is judged.
    pub check: Check,
}

/// A label file's error: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}:{line}: field {field:?}: {message}")]
pub struct LabelError {
    /// The file.
    pub source_name: String,
    /// The line.
    pub line: usize,
    /// The field.
    pub field: String,
    /// What is wrong, and the fix.
    pub message: String,
}

/// One labelled example: what the router's vote reads. A task is an example with a checker.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Its id (unique in its file).
    pub id: String,
    /// Its type, one of [`TASK_TYPES`].
    pub task: &'static str,
    /// What the user sends.
    pub prompt: String,
}

/// Reads JSON Lines examples: `{"id", "type", "prompt", …}` (other fields are ignored).
pub fn parse_examples(source: &str, text: &str) -> Result<Vec<Example>, LabelError> {
    read_lines(source, text, "examples", |example, _, _| Ok(example))
}

/// Reads JSON Lines tasks: `{"id", "type", "prompt", "check": {…}}`, where the check is one of
/// `{"choice": [..], "answer": "..", "last": bool}`, `{"contains": [..], "last": bool}`, `{"number": N}`,
/// `{"json": SCHEMA}`, `{"command": [PROGRAM, ARGS…]}`.
pub fn parse(source: &str, text: &str) -> Result<Vec<Task>, LabelError> {
    read_lines(source, text, "tasks", |Example { id, task, prompt }, v, line| {
        let check = check(v.get("check")).map_err(|(field, message)| LabelError {
            source_name: source.to_owned(),
            line,
            field: format!("check.{field}"),
            message,
        })?;
        Ok(Task { line, id, task, prompt, check })
    })
}

/// Reads the lines of a label file (blank lines and `//` comments skipped): each one's id (unique), type and
/// prompt, then `rest` with the line's JSON and number; an error names the file, the line and the field.
fn read_lines<T>(
    source: &str,
    text: &str,
    what: &str,
    rest: impl Fn(Example, &Value, usize) -> Result<T, LabelError>,
) -> Result<Vec<T>, LabelError> {
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let at = |field: &str, message: String| LabelError {
            source_name: source.to_owned(),
            line: i + 1,
            field: field.to_owned(),
            message,
        };
        if line.trim().is_empty() || line.trim_start().starts_with("//") {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| at("", format!("not JSON: {e}")))?;
        let text = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| at(name, "missing, or not a string".into()))
        };
        let id = text("id")?;
        if !ids.insert(id.clone()) {
            return Err(at("id", format!("{id:?} is used twice")));
        }
        let task = task_type(&text("type")?).map_err(|m| at("type", m))?;
        let prompt = text("prompt")?;
        out.push(rest(Example { id, task, prompt }, &v, i + 1)?);
    }
    if out.is_empty() {
        return Err(LabelError {
            source_name: source.into(),
            line: 0,
            field: String::new(),
            message: format!("no {what}"),
        });
    }
    Ok(out)
}

fn check(v: Option<&Value>) -> Result<Check, (&'static str, String)> {
    let v =
        v.and_then(Value::as_object).ok_or(("", "missing: give choice, contains, number, json or command".into()))?;
    let last = v.get("last").and_then(Value::as_bool).unwrap_or(false);
    let strings = |field: &'static str| -> Result<Vec<String>, (&'static str, String)> {
        let list = v.get(field).and_then(Value::as_array).ok_or((field, "give a list of strings".into()))?;
        let out: Option<Vec<String>> = list.iter().map(|s| s.as_str().map(str::to_owned)).collect();
        out.filter(|o| !o.is_empty()).ok_or((field, "give a non-empty list of strings".into()))
    };
    if v.contains_key("choice") {
        let choices = strings("choice")?;
        let answer = v.get("answer").and_then(Value::as_str).ok_or(("answer", "give the right choice".into()))?;
        if !choices.iter().any(|c| c == answer) {
            return Err(("answer", format!("{answer:?} is not one of the choices {choices:?}")));
        }
        return Ok(Check::Choice { choices, answer: answer.to_owned(), last });
    }
    if v.contains_key("contains") {
        return Ok(Check::Contains { any: strings("contains")?, last });
    }
    if let Some(n) = v.get("number") {
        return n.as_f64().map(Check::Number).ok_or(("number", "give a number".into()));
    }
    if let Some(schema) = v.get("json") {
        return Ok(Check::Json(schema.clone()));
    }
    if v.contains_key("command") {
        return Ok(Check::Command(strings("command")?));
    }
    Err(("", "give one of choice, contains, number, json or command".into()))
}

impl Check {
    /// Judges an answer; `None` for a command, which the caller runs.
    pub fn judge(&self, answer: &str) -> Option<bool> {
        let last_line = |last: bool| -> String {
            let text = if last { answer.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("") } else { answer };
            text.to_lowercase()
        };
        match self {
            Check::Choice { choices, answer: right, last } => {
                let text = last_line(*last);
                let first = choices
                    .iter()
                    .filter_map(|c| word_at(&text, &c.to_lowercase()).map(|at| (at, c)))
                    .min_by_key(|(at, _)| *at);
                Some(first.is_some_and(|(_, c)| c == right))
            }
            Check::Contains { any, last } => {
                let text = last_line(*last);
                Some(any.iter().any(|s| text.contains(&s.to_lowercase())))
            }
            Check::Number(n) => Some(last_number(answer).is_some_and(|x| (x - n).abs() <= 1e-6 * n.abs().max(1.0))),
            Check::Json(schema) => {
                Some(serde_json::from_str::<Value>(unfence(answer).trim()).is_ok_and(|v| follows(&v, schema)))
            }
            Check::Command(_) => None,
        }
    }
}

/// Where `word` first occurs in `text` between non-alphanumeric characters.
fn word_at(text: &str, word: &str) -> Option<usize> {
    let re = Regex::new(&format!(r"(?:^|[^\p{{L}}\p{{N}}_]){}(?:$|[^\p{{L}}\p{{N}}_])", regex::escape(word))).ok()?;
    re.find(text).map(|m| m.start())
}

/// The last number written in the text (`1,234.5`, `-3`, `0.05`).
fn last_number(text: &str) -> Option<f64> {
    let re = Regex::new(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+").ok()?;
    re.find_iter(text).filter_map(|m| m.as_str().replace(',', "").parse().ok()).last()
}

/// The code inside the first Markdown fence, or the text.
pub fn unfence(text: &str) -> &str {
    let Some(start) = text.find("```") else { return text };
    let after = &text[start + 3..];
    let body = after.find('\n').map_or(after, |nl| &after[nl + 1..]);
    body.find("```").map_or(body, |end| &body[..end])
}

/// Whether `v` follows `schema` (the keywords `type`, `required`, `properties`, `items`, `enum`).
fn follows(v: &Value, schema: &Value) -> bool {
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some("null") => v.is_null(),
        Some(_) => false,
    };
    let required_ok = schema
        .get("required")
        .and_then(Value::as_array)
        .is_none_or(|r| r.iter().filter_map(Value::as_str).all(|k| v.get(k).is_some()));
    let properties_ok = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(|props| props.iter().all(|(k, s)| v.get(k).is_none_or(|x| follows(x, s))));
    let items_ok = match (schema.get("items"), v.as_array()) {
        (Some(s), Some(items)) => items.iter().all(|x| follows(x, s)),
        _ => true,
    };
    let enum_ok = schema.get("enum").and_then(Value::as_array).is_none_or(|e| e.contains(v));
    type_ok && required_ok && properties_ok && items_ok && enum_ok
}

/// One tier's answers to every task (in task order) and its latencies.
#[derive(Debug, Clone, Default)]
pub struct TierRun {
    /// Its name.
    pub name: String,
    /// Its model.
    pub model: String,
    /// Whether each answer passed its checker (`None`: the request failed).
    pub correct: Vec<Option<bool>>,
    /// Each request's TTFT alone, in milliseconds.
    pub ttft_ms: Vec<Option<f64>>,
    /// Each request's end-to-end latency alone, in milliseconds.
    pub e2e_ms: Vec<Option<f64>>,
    /// End-to-end latencies with every task sent `parallel` at a time.
    pub load_e2e_ms: Vec<f64>,
    /// TTFTs under that load.
    pub load_ttft_ms: Vec<f64>,
    /// Requests that failed under that load.
    pub load_failed: usize,
    /// Wall time of the load phase, in seconds.
    pub load_wall_s: f64,
}

/// The evaluation's report.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RoutingReport {
    /// Tasks evaluated.
    pub tasks: usize,
    /// Requests in parallel in the load phase.
    pub parallel: usize,
    /// The confidence threshold of the operating point.
    pub confidence: f32,
    /// The least similarity of the nearest example.
    pub min_similarity: f32,
    /// The tiers, small then large.
    pub tiers: Vec<TierFigures>,
    /// Tasks where the small tier's answer passes iff the large tier's does ÷ tasks.
    pub agreement: f64,
    /// The operating point with the labels' task map (the four small types to the small tier).
    pub operating: Point,
    /// Per task type, at the operating point.
    pub by_type: Vec<TypeRow>,
    /// Routing decisions' time: rules alone, and rules plus embedding plus vote (milliseconds).
    pub decision_ms: DecisionTimes,
    /// The confidence sweep, with the labels' task map.
    pub sweep: Vec<Point>,
    /// Types whose small-tier accuracy reaches the target: the task map the evaluation recommends.
    pub learned_small_types: Vec<String>,
    /// The operating point with the learned task map (in-sample: learned and judged on the same tasks).
    pub learned: Point,
    /// The accuracy target the plan sets for routed answers.
    pub target_accuracy: f64,
    /// The plan's criteria, judged at the operating point.
    pub criteria: Vec<crate::analysis::semantic_eval::Criterion>,
    /// Every task's decision at the operating point.
    pub decisions: Vec<TaskDecision>,
}

/// One task's routing decision at the operating point.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TaskDecision {
    /// The task's id.
    pub id: String,
    /// Its labelled type.
    pub task: String,
    /// What the vote said (`None`: a rule decided).
    pub vote: Option<Vote>,
    /// Routed to the small tier.
    pub small: bool,
    /// The small tier's answer passed its checker.
    pub small_correct: Option<bool>,
    /// The large tier's answer passed its checker.
    pub large_correct: Option<bool>,
}

/// One tier's figures.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TierFigures {
    /// Its name.
    pub name: String,
    /// Its model.
    pub model: String,
    /// Answers that pass their checker ÷ tasks.
    pub accuracy: f64,
    /// Requests that failed.
    pub failed: usize,
    /// TTFT alone (ms).
    pub ttft_ms: Option<Summary>,
    /// End-to-end latency alone (ms).
    pub e2e_ms: Option<Summary>,
    /// End-to-end latency under parallel load (ms).
    pub load_e2e_ms: Option<Summary>,
    /// TTFT under parallel load (ms).
    pub load_ttft_ms: Option<Summary>,
    /// Requests that failed under load.
    pub load_failed: usize,
    /// Requests per second under load.
    pub load_req_per_s: f64,
}

/// The routed system at one confidence threshold.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Point {
    /// The threshold.
    pub confidence: f32,
    /// Tasks routed small ÷ tasks.
    pub routed_share: f64,
    /// Large-tier calls avoided ÷ tasks.
    pub calls_saved: f64,
    /// Small answers that pass ÷ tasks routed small (`None`: nothing routed small).
    pub routed_accuracy: Option<f64>,
    /// Served answers that pass ÷ tasks.
    pub system_accuracy: f64,
    /// Tasks routed to their type's tier ÷ tasks.
    pub routing_accuracy: f64,
    /// (system − small-only) ÷ (large-only − small-only) accuracy; `None` when the tiers are equally good.
    pub recovered_quality: Option<f64>,
}

/// One task type's figures at the operating point.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TypeRow {
    /// The type.
    pub task: String,
    /// Its tasks.
    pub tasks: usize,
    /// The tier its tasks belong to in the labels.
    pub labelled_tier: String,
    /// Routed small ÷ its tasks.
    pub routed_share: f64,
    /// Routed to the labelled tier ÷ its tasks.
    pub routing_accuracy: f64,
    /// The small tier's accuracy on its tasks.
    pub small_accuracy: f64,
    /// The large tier's accuracy on its tasks.
    pub large_accuracy: f64,
    /// The small tier's median end-to-end latency alone (ms).
    pub small_e2e_p50_ms: Option<f64>,
    /// The large tier's median end-to-end latency alone (ms).
    pub large_e2e_p50_ms: Option<f64>,
}

/// Decision times, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DecisionTimes {
    /// The rules alone.
    pub rules: Option<Summary>,
    /// Rules, embedding and vote.
    pub embedding: Option<Summary>,
}

/// Everything [`evaluate`] reads.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The tasks.
    pub tasks: &'a [Task],
    /// The small tier's run.
    pub small: &'a TierRun,
    /// The large tier's run.
    pub large: &'a TierRun,
    /// The vote for each task (`None`: a rule decided, or nothing voted), and whether a rule sent it large.
    pub votes: &'a [(Option<Vote>, bool)],
    /// The operating confidence.
    pub confidence: f32,
    /// The least similarity.
    pub min_similarity: f32,
    /// Rules-only decision times (ms).
    pub rules_ms: &'a [f64],
    /// Whole decision times (ms).
    pub decision_ms: &'a [f64],
    /// Requests in parallel in the load phase.
    pub parallel: usize,
    /// The accuracy target of routed answers (0.95).
    pub target: f64,
}

/// Whether each task goes small, under a threshold and a set of small types.
fn routes(i: &Inputs<'_>, confidence: f32, small_types: &[&str]) -> Vec<bool> {
    i.votes
        .iter()
        .map(|(vote, ruled)| {
            !ruled
                && vote.as_ref().is_some_and(|v| {
                    let small = |t: &str| small_types.contains(&t);
                    small(&v.task) && verdict(v, small, confidence, i.min_similarity) == Verdict::Task
                })
        })
        .collect()
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

fn accuracy(correct: &[Option<bool>], pick: impl Fn(usize) -> bool) -> f64 {
    let picked: Vec<bool> =
        correct.iter().enumerate().filter(|(k, _)| pick(*k)).map(|(_, c)| *c == Some(true)).collect();
    share(picked.iter().filter(|c| **c).count(), picked.len())
}

fn point(i: &Inputs<'_>, confidence: f32, small_types: &[&str]) -> Point {
    let small = routes(i, confidence, small_types);
    let n = i.tasks.len();
    let routed = small.iter().filter(|s| **s).count();
    let pass = |run: &TierRun, k: usize| run.correct.get(k).copied().flatten() == Some(true);
    let routed_pass = (0..n).filter(|&k| small[k] && pass(i.small, k)).count();
    let system_pass = (0..n).filter(|&k| if small[k] { pass(i.small, k) } else { pass(i.large, k) }).count();
    let right_tier = (0..n).filter(|&k| small[k] == SMALL_TYPES.contains(&i.tasks[k].task)).count();
    let (only_small, only_large) = (accuracy(&i.small.correct, |_| true), accuracy(&i.large.correct, |_| true));
    let system = share(system_pass, n);
    Point {
        confidence,
        routed_share: share(routed, n),
        calls_saved: share(routed, n),
        routed_accuracy: (routed > 0).then(|| share(routed_pass, routed)),
        system_accuracy: system,
        routing_accuracy: share(right_tier, n),
        recovered_quality: ((only_large - only_small).abs() > 1e-9)
            .then(|| (system - only_small) / (only_large - only_small)),
    }
}

fn tier(run: &TierRun, tasks: usize) -> TierFigures {
    TierFigures {
        name: run.name.clone(),
        model: run.model.clone(),
        accuracy: accuracy(&run.correct, |_| true),
        failed: run.correct.iter().filter(|c| c.is_none()).count(),
        ttft_ms: Summary::of(run.ttft_ms.iter().flatten().copied()),
        e2e_ms: Summary::of(run.e2e_ms.iter().flatten().copied()),
        load_e2e_ms: Summary::of(run.load_e2e_ms.iter().copied()),
        load_ttft_ms: Summary::of(run.load_ttft_ms.iter().copied()),
        load_failed: run.load_failed,
        load_req_per_s: if run.load_wall_s > 0.0 { tasks as f64 / run.load_wall_s } else { 0.0 },
    }
}

/// Computes the report.
pub fn evaluate(i: &Inputs<'_>) -> RoutingReport {
    let n = i.tasks.len();
    let operating = point(i, i.confidence, &SMALL_TYPES);
    let small_routes = routes(i, i.confidence, &SMALL_TYPES);
    let mut by_type = Vec::new();
    for t in TASK_TYPES {
        let ks: Vec<usize> = (0..n).filter(|&k| i.tasks[k].task == t).collect();
        if ks.is_empty() {
            continue;
        }
        let labelled_small = SMALL_TYPES.contains(&t);
        let p50 = |run: &TierRun| Summary::of(ks.iter().filter_map(|&k| run.e2e_ms[k])).map(|s| s.p50);
        by_type.push(TypeRow {
            task: t.to_owned(),
            tasks: ks.len(),
            labelled_tier: if labelled_small { &i.small.name } else { &i.large.name }.clone(),
            routed_share: share(ks.iter().filter(|&&k| small_routes[k]).count(), ks.len()),
            routing_accuracy: share(ks.iter().filter(|&&k| small_routes[k] == labelled_small).count(), ks.len()),
            small_accuracy: accuracy(&i.small.correct, |k| i.tasks[k].task == t),
            large_accuracy: accuracy(&i.large.correct, |k| i.tasks[k].task == t),
            small_e2e_p50_ms: p50(i.small),
            large_e2e_p50_ms: p50(i.large),
        });
    }
    let learned_small_types: Vec<String> = by_type
        .iter()
        .filter(|r| SMALL_TYPES.contains(&r.task.as_str()) && r.small_accuracy >= i.target)
        .map(|r| r.task.clone())
        .collect();
    let learned_refs: Vec<&str> = learned_small_types.iter().map(String::as_str).collect();
    let learned = point(i, i.confidence, &learned_refs);
    let sweep = (0..=20).map(|s| point(i, s as f32 * 0.05, &SMALL_TYPES)).collect();
    let agreement =
        share((0..n).filter(|&k| (i.small.correct[k] == Some(true)) == (i.large.correct[k] == Some(true))).count(), n);
    let small = tier(i.small, n);
    let small_p50 = small.e2e_ms.as_ref().map(|s| s.p50);
    let criterion = |name: &str, value: Option<f64>, pass: Option<bool>, target: &str| {
        crate::analysis::semantic_eval::Criterion { name: name.to_owned(), value, goal: target.to_owned(), pass }
    };
    let criteria = vec![
        criterion("routed share", Some(operating.routed_share), Some(operating.routed_share > 0.30), "> 30 %"),
        criterion("calls saved", Some(operating.calls_saved), Some(operating.calls_saved > 0.20), "> 20 %"),
        criterion(
            "small-tier latency (E2E p50, alone)",
            small_p50.map(|ms| ms / 1e3),
            small_p50.map(|ms| ms < 1000.0),
            "< 1 s",
        ),
        criterion(
            "accuracy of routed answers",
            operating.routed_accuracy,
            operating.routed_accuracy.map(|a| a > i.target),
            "> 95 %",
        ),
        criterion(
            "routing accuracy",
            Some(operating.routing_accuracy),
            Some(operating.routing_accuracy >= 0.95),
            ">= 95 %",
        ),
    ];
    RoutingReport {
        tasks: n,
        parallel: i.parallel,
        confidence: i.confidence,
        min_similarity: i.min_similarity,
        tiers: vec![small, tier(i.large, n)],
        agreement,
        operating,
        by_type,
        decision_ms: DecisionTimes {
            rules: Summary::of(i.rules_ms.iter().copied()),
            embedding: Summary::of(i.decision_ms.iter().copied()),
        },
        sweep,
        learned_small_types,
        learned,
        target_accuracy: i.target,
        criteria,
        decisions: (0..n)
            .map(|k| TaskDecision {
                id: i.tasks[k].id.clone(),
                task: i.tasks[k].task.to_owned(),
                vote: i.votes[k].0.clone(),
                small: small_routes[k],
                small_correct: i.small.correct[k],
                large_correct: i.large.correct[k],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_tasks_parse_and_bad_lines_name_the_field() {
        let tasks = parse("routing.jsonl", BUILTIN_LABELS).unwrap();
        assert_eq!(tasks.len(), 60);
        for t in TASK_TYPES {
            assert_eq!(tasks.iter().filter(|x| x.task == t).count(), 10, "{t}");
        }
        let e = parse("f", "{\"id\":\"a\",\"type\":\"poetry\",\"prompt\":\"p\",\"check\":{\"number\":1}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f:1: field \"type\": unknown task type \"poetry\"; the types are validation, formatting, linting, classification, reasoning, codegen"
        );
        let e = parse(
            "f",
            "{\"id\":\"a\",\"type\":\"linting\",\"prompt\":\"p\",\"check\":{\"choice\":[\"a\"],\"answer\":\"b\"}}",
        )
        .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("check.answer", 1));
        let e =
            parse("f", "{\"id\":\"a\",\"type\":\"linting\",\"prompt\":\"p\",\"check\":{\"regex\":\"x\"}}").unwrap_err();
        assert!(e.message.contains("give one of choice"), "{e}");
    }

    #[test]
    fn checkers_judge_answers() {
        let choice =
            |a: &str, last| Check::Choice { choices: vec!["valid".into(), "invalid".into()], answer: a.into(), last };
        assert_eq!(choice("invalid", false).judge("It is INVALID: the key is unquoted."), Some(true));
        assert_eq!(choice("valid", false).judge("Invalid."), Some(false), "'valid' is not a word of 'invalid'");
        assert_eq!(choice("valid", true).judge("Invalid? No.\nValid"), Some(true));
        let contains = Check::Contains { any: vec!["2:05 pm".into()], last: false };
        assert_eq!(contains.judge("It is 2:05 PM."), Some(true));
        assert_eq!(Check::Number(5050.0).judge("So 50 * 101 = 5,050"), Some(true));
        assert_eq!(Check::Number(0.05).judge("The ball costs $0.05."), Some(true));
        assert_eq!(Check::Number(3.0).judge("y = 4"), Some(false));
        let json = Check::Json(
            serde_json::json!({"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}),
        );
        assert_eq!(json.judge("```json\n{\"name\": \"Bob\", \"age\": 42}\n```"), Some(true));
        assert_eq!(json.judge("{\"name\": \"Bob\", \"age\": \"42\"}"), Some(false));
        assert_eq!(json.judge("name: Bob"), Some(false));
        assert_eq!(Check::Command(vec!["true".into()]).judge("x"), None);
    }

    #[test]
    fn figures_follow_their_definitions() {
        let tasks = parse(
            "t",
            concat!(
                "{\"id\":\"a\",\"type\":\"linting\",\"prompt\":\"p\",\"check\":{\"number\":1}}\n",
                "{\"id\":\"b\",\"type\":\"linting\",\"prompt\":\"p\",\"check\":{\"number\":1}}\n",
                "{\"id\":\"c\",\"type\":\"reasoning\",\"prompt\":\"p\",\"check\":{\"number\":1}}\n",
                "{\"id\":\"d\",\"type\":\"reasoning\",\"prompt\":\"p\",\"check\":{\"number\":1}}\n",
            ),
        )
        .unwrap();
        let run = |name: &str, correct: [bool; 4]| TierRun {
            name: name.into(),
            correct: correct.map(Some).to_vec(),
            e2e_ms: vec![Some(100.0); 4],
            ttft_ms: vec![Some(10.0); 4],
            ..TierRun::default()
        };
        let (small, large) = (run("small", [true, false, false, false]), run("large", [true, true, true, true]));
        let vote = |task: &str, confidence| {
            Some(Vote { task: task.into(), confidence, nearest: 0.8, shares: vec![(task.into(), confidence)] })
        };
        let votes = [
            (vote("linting", 0.9), false),
            (vote("linting", 0.5), false),
            (vote("linting", 0.9), false),
            (vote("reasoning", 0.9), false),
        ];
        let inputs = Inputs {
            tasks: &tasks,
            small: &small,
            large: &large,
            votes: &votes,
            confidence: 0.6,
            min_similarity: 0.3,
            rules_ms: &[0.001],
            decision_ms: &[5.0],
            parallel: 10,
            target: 0.95,
        };
        let r = evaluate(&inputs);
        // a and c go small (c wrongly); b abstains; d goes large.
        assert_eq!(r.operating.routed_share, 0.5);
        assert_eq!(r.operating.routed_accuracy, Some(0.5));
        assert_eq!(r.operating.system_accuracy, 0.75);
        assert_eq!(r.operating.routing_accuracy, 0.5);
        assert_eq!(r.operating.recovered_quality, Some((0.75 - 0.25) / (1.0 - 0.25)));
        assert_eq!(r.agreement, 0.25);
        assert_eq!(r.sweep.len(), 21);
        assert_eq!(r.sweep[0].routed_share, 0.75, "threshold 0: every linting vote routes");
        assert!(r.learned_small_types.is_empty(), "linting is 50 % right on the small tier");
        assert_eq!(r.learned.routed_share, 0.0);
        assert_eq!(r.criteria.iter().filter(|c| c.pass == Some(false)).count(), 2, "{:?}", r.criteria);
    }
}
