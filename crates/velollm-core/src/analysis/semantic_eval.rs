//! The semantic cache's evaluation: labelled families of questions (a seed, paraphrases that must get the
//! seed's answer, near misses that must not: negation, antonym, number, entity, identifier, another task on the
//! same topic; and unrelated questions), what the endpoint did with each probe, and the figures: hit rate,
//! false-hit rate, recall, per kind; lookup latency; and, when the endpoint reports its similarity scores (as
//! `velollm proxy` does), the whole threshold sweep and the operating point for a false-hit target.
//!
//! Definitions (one place, used by the report and the criteria):
//! - **hit rate** = probes served from the cache ÷ probes (the share of requests the cache saves);
//! - **false-hit rate** = false hits ÷ hits, where a false hit is any hit except a paraphrase served its own
//!   family's answer (1 − precision);
//! - **recall** = paraphrases served their own family's answer ÷ paraphrases.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// What a labelled line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The question that fills the cache first.
    Seed,
    /// Same meaning as its family's seed: must hit.
    Paraphrase,
    /// The seed negated: must not hit.
    Negation,
    /// The seed with an opposite word (enable/disable): must not hit.
    Antonym,
    /// The seed with another number: must not hit.
    Number,
    /// The seed about another entity: must not hit.
    Entity,
    /// The seed with another identifier or literal: must not hit.
    Identifier,
    /// Another task on the same topic: must not hit.
    Task,
    /// A question no seed is about: must not hit.
    Unrelated,
}

impl Kind {
    const ALL: [(&'static str, Kind); 9] = [
        ("seed", Kind::Seed),
        ("paraphrase", Kind::Paraphrase),
        ("negation", Kind::Negation),
        ("antonym", Kind::Antonym),
        ("number", Kind::Number),
        ("entity", Kind::Entity),
        ("identifier", Kind::Identifier),
        ("task", Kind::Task),
        ("unrelated", Kind::Unrelated),
    ];

    /// The kind's name in label files.
    pub fn name(self) -> &'static str {
        Kind::ALL.iter().find(|(_, k)| *k == self).map_or("?", |(n, _)| n)
    }
}

/// One labelled question.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Its family (seeds and their probes share one; unrelated questions need no seed).
    pub family: String,
    /// What it is.
    pub kind: Kind,
    /// The question.
    pub text: String,
    /// Its line in the file (1-based).
    pub line: usize,
}

/// A label file, checked: one seed per family, probes of known families.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// The seeds, in file order.
    pub seeds: Vec<Label>,
    /// Everything else, in file order.
    pub probes: Vec<Label>,
}

/// What is wrong with a label file: the file, the line and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}:{line}: {field}: {message}")]
pub struct LabelError {
    /// The file (or `built-in semantic-cache`).
    pub source_name: String,
    /// The line (1-based).
    pub line: usize,
    /// The field at fault.
    pub field: String,
    /// What is wrong, and the fix.
    pub message: String,
}

/// The labels shipped with velollm (`scenarios/semantic-cache.jsonl`).
pub const BUILTIN_LABELS: &str = include_str!("../../../../scenarios/semantic-cache.jsonl");

impl Labels {
    /// Parses a JSONL label file: one `{"family": …, "kind": …, "text": …}` per line.
    pub fn parse(source_name: &str, text: &str) -> Result<Labels, LabelError> {
        let err = |line: usize, field: &str, message: String| LabelError {
            source_name: source_name.to_owned(),
            line,
            field: field.to_owned(),
            message,
        };
        let (mut seeds, mut probes) = (Vec::new(), Vec::new());
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(raw).map_err(|e| err(line, "line", format!("not JSON: {e}")))?;
            let field = |name: &str| -> Result<String, LabelError> {
                match v.get(name).and_then(serde_json::Value::as_str).map(str::trim) {
                    Some(s) if !s.is_empty() => Ok(s.to_owned()),
                    _ => Err(err(line, name, format!("missing or empty: every line needs a string {name:?}"))),
                }
            };
            let (family, kind_name, text) = (field("family")?, field("kind")?, field("text")?);
            let kind = Kind::ALL.iter().find(|(n, _)| *n == kind_name).map(|(_, k)| *k).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|(n, _)| *n).collect();
                err(line, "kind", format!("unknown kind {kind_name:?}; use one of {}", names.join(", ")))
            })?;
            let label = Label { family, kind, text, line };
            if kind == Kind::Seed {
                if let Some(first) = seeds.iter().find(|s: &&Label| s.family == label.family) {
                    return Err(err(
                        line,
                        "family",
                        format!("family {:?} already has a seed (line {}): one per family", label.family, first.line),
                    ));
                }
                seeds.push(label);
            } else {
                probes.push(label);
            }
        }
        for p in probes.iter().filter(|p| p.kind != Kind::Unrelated) {
            if !seeds.iter().any(|s| s.family == p.family) {
                return Err(err(
                    p.line,
                    "family",
                    format!("unknown family {:?}: no line has it as a seed (kind \"seed\")", p.family),
                ));
            }
        }
        if seeds.is_empty() || probes.is_empty() {
            return Err(err(0, "file", "needs at least one seed and one probe".into()));
        }
        Ok(Labels { seeds, probes })
    }

    /// The index of a family's seed.
    pub fn seed_of(&self, family: &str) -> Option<usize> {
        self.seeds.iter().position(|s| s.family == family)
    }
}

/// A cache's verdict as its response header said it. `velollm proxy` says more:
/// `hit; layer=semantic; score=0.93; entry=…; embed_ms=…; search_ms=…` or `miss; layer=semantic; key=…;
/// score=…; entry=…; guard=…; …`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Note {
    /// The cache answered.
    pub hit: bool,
    /// Similarity with the nearest stored question.
    pub score: Option<f64>,
    /// The nearest (or served) stored answer's entry id.
    pub entry: Option<String>,
    /// This request's own entry id (where its answer is stored).
    pub key: Option<String>,
    /// What the lexical guard said of the nearest question.
    pub guard: Option<String>,
    /// Time to embed the question, ms.
    pub embed_ms: Option<f64>,
    /// Time to search the index, ms.
    pub search_ms: Option<f64>,
}

impl Note {
    /// Reads a header value: a hit as [`crate::measure::proxy_cache::is_hit`] says; `key=value` fields after `;` are read.
    pub fn parse(value: &str) -> Note {
        let mut note = Note { hit: crate::measure::proxy_cache::is_hit(value), ..Note::default() };
        let parts = value.split(';').map(str::trim).skip(1);
        for part in parts {
            let Some((k, v)) = part.split_once('=') else { continue };
            match k {
                "score" => note.score = v.parse().ok(),
                "entry" => note.entry = Some(v.to_owned()),
                "key" => note.key = Some(v.to_owned()),
                "guard" => note.guard = Some(v.to_owned()),
                "embed_ms" => note.embed_ms = v.parse().ok(),
                "search_ms" => note.search_ms = v.parse().ok(),
                _ => {}
            }
        }
        note
    }
}

/// What the endpoint did with one probe, read by the client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The verdict, if the response said one (or the answer's identity gave one).
    pub note: Note,
    /// The seed whose answer was served (hit) or is nearest (velollm's `entry`), by index.
    pub served: Option<usize>,
    /// The seed nearest to the probe, when the endpoint reports it.
    pub nearest: Option<usize>,
    /// Time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// The request failed.
    pub failed: bool,
}

/// Hits, false hits and the rates at one threshold (or at the endpoint's own setting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Point {
    /// The similarity threshold (`None`: the endpoint's own decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Probes served from the cache.
    pub hits: u64,
    /// Hits that were wrong.
    pub false_hits: u64,
    /// Paraphrases served their own family's answer.
    pub true_hits: u64,
    /// hits ÷ probes.
    pub hit_rate: f64,
    /// false hits ÷ hits (0 without hits).
    pub false_hit_rate: f64,
    /// true hits ÷ paraphrases.
    pub recall: f64,
}

/// One kind's probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KindRow {
    /// The kind.
    pub kind: Kind,
    /// Its probes.
    pub probes: u64,
    /// Of which served from the cache.
    pub hits: u64,
    /// Of which wrong.
    pub false_hits: u64,
}

/// A criterion judged on the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Criterion {
    /// What is judged and whose goal it is.
    pub name: String,
    /// The measured value (`None`: the endpoint did not report what it needs).
    pub value: Option<f64>,
    /// The goal, as text.
    pub goal: String,
    /// Met or not (`None`: not judged).
    pub pass: Option<bool>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SemanticReport {
    /// Seeds sent first.
    pub seeds: u64,
    /// Probes sent after them.
    pub probes: u64,
    /// Probes that failed (not counted in the rates).
    pub failed: u64,
    /// Whether repeating a seed was a hit: an endpoint with no cache at all says no.
    pub exact_repeat_hit: bool,
    /// What the endpoint decided itself.
    pub at_endpoint: Point,
    /// By kind of probe.
    pub by_kind: Vec<KindRow>,
    /// The threshold sweep, when the endpoint reports scores for every probe.
    pub sweep: Vec<Point>,
    /// The false-hit rate the operating point keeps under.
    pub target_false_hit_rate: f64,
    /// The sweep's point with the most hits under that false-hit rate (of equal ones, the highest threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating: Option<Point>,
    /// Thresholds learned per entry ([`crate::judge::learned_threshold`]), replayed on the same scores with the labels
    /// as the verifier, one row per bound δ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<LearnedPoint>,
    /// Embedding time per lookup, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed_ms: Option<Summary>,
    /// Search time per lookup, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_ms: Option<Summary>,
    /// Embedding plus search, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_ms: Option<Summary>,
    /// TTFT of the probes served from the cache, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_hit_ms: Option<Summary>,
    /// TTFT of the seeds (misses that went to the model), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_miss_ms: Option<Summary>,
    /// The plan's criteria and velollm's.
    pub criteria: Vec<Criterion>,
    /// Every false hit at the endpoint's setting, to read what went wrong.
    pub false_hits: Vec<FalseHit>,
    /// What the reader should know (unidentified answers, no scores, …).
    pub notes: Vec<String>,
}

/// Thresholds learned per entry, replayed with one bound δ: candidates at or above `floor` (that the guard let
/// through) are served or explore, in the labels' order; an explored one teaches its nearest seed's entry whether
/// the labels say its answer would have been right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LearnedPoint {
    /// The bound on wrong answers served.
    pub delta: f64,
    /// Hits, false hits and rates; its `threshold` is the floor.
    pub point: Point,
    /// Candidates that went upstream to teach their entry instead of being served.
    pub explored: u64,
}

/// The floor of the learned-threshold replay: the lowest similarity considered at all.
pub const LEARNED_FLOOR: f64 = 0.7;
/// The bounds δ the replay tries.
pub const LEARNED_DELTAS: [f64; 3] = [0.02, 0.05, 0.10];

/// Replays learned thresholds with bound `delta` on the probes the endpoint scored.
fn replay_learned(labels: &Labels, answered: &[(usize, &Observation)], delta: f64) -> LearnedPoint {
    use crate::judge::learned_threshold::{Decision, Learned, coin, text_hash};
    let learned: Learned<usize> = Learned::new(delta as f32, usize::MAX);
    let mut explored = 0;
    let decided: Vec<(usize, bool, Option<usize>)> = answered
        .iter()
        .map(|&(i, o)| {
            let candidate = o.note.score.filter(|&s| s >= LEARNED_FLOOR - 1e-9 && o.note.guard.is_none());
            let (Some(score), Some(seed)) = (candidate, o.nearest) else { return (i, false, o.nearest) };
            match learned.decide(&seed, score as f32, coin(&text_hash(&labels.probes[i].text))) {
                Decision::Serve(_) => (i, true, Some(seed)),
                Decision::Explore(_) => {
                    explored += 1;
                    let (right, _) = judge(labels, i, true, Some(seed));
                    learned.record(seed, score as f32, right);
                    (i, false, Some(seed))
                }
            }
        })
        .collect();
    LearnedPoint { delta, point: point(labels, &decided, Some(LEARNED_FLOOR)), explored }
}

/// A probe the endpoint answered with an answer it should not have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FalseHit {
    /// The probe's kind.
    pub kind: Kind,
    /// Its family.
    pub family: String,
    /// The probe.
    pub text: String,
    /// The seed whose answer it got, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<String>,
    /// The similarity the endpoint reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// Whether probe `i`'s verdict is right, given whether it hit and which seed answered.
fn judge(labels: &Labels, i: usize, hit: bool, served: Option<usize>) -> (bool, bool) {
    let p = &labels.probes[i];
    if !hit {
        return (false, false);
    }
    let own = labels.seed_of(&p.family);
    let true_hit = p.kind == Kind::Paraphrase && (served.is_none() || served == own);
    (true_hit, !true_hit)
}

fn point(labels: &Labels, decided: &[(usize, bool, Option<usize>)], threshold: Option<f64>) -> Point {
    let paraphrases = labels.probes.iter().filter(|p| p.kind == Kind::Paraphrase).count() as f64;
    let (mut hits, mut true_hits, mut false_hits) = (0, 0, 0);
    for &(i, hit, served) in decided {
        let (t, f) = judge(labels, i, hit, served);
        hits += u64::from(hit);
        true_hits += u64::from(t);
        false_hits += u64::from(f);
    }
    let ratio = |a: u64, b: f64| if b > 0.0 { a as f64 / b } else { 0.0 };
    Point {
        threshold,
        hits,
        false_hits,
        true_hits,
        hit_rate: ratio(hits, decided.len() as f64),
        false_hit_rate: ratio(false_hits, hits as f64),
        recall: ratio(true_hits, paraphrases),
    }
}

/// Computes the report from the labels, one observation per probe (in the labels' order), the seeds' TTFTs
/// and whether a repeated seed hit.
pub fn evaluate(
    labels: &Labels,
    observations: &[Observation],
    seed_ttft_ms: &[f64],
    exact_repeat_hit: bool,
    target_false_hit_rate: f64,
) -> SemanticReport {
    let answered: Vec<(usize, &Observation)> = observations.iter().enumerate().filter(|(_, o)| !o.failed).collect();
    let decided: Vec<(usize, bool, Option<usize>)> = answered.iter().map(|&(i, o)| (i, o.note.hit, o.served)).collect();
    let at_endpoint = point(labels, &decided, None);
    let mut kinds: BTreeMap<Kind, KindRow> = BTreeMap::new();
    for &(i, hit, served) in &decided {
        let kind = labels.probes[i].kind;
        let row = kinds.entry(kind).or_insert(KindRow { kind, probes: 0, hits: 0, false_hits: 0 });
        row.probes += 1;
        row.hits += u64::from(hit);
        row.false_hits += u64::from(judge(labels, i, hit, served).1);
    }
    let mut notes = Vec::new();
    // The sweep needs the score of every probe that had a neighbour; velollm's proxy reports it.
    let scored = answered.iter().filter(|(_, o)| o.note.score.is_some()).count();
    let mut sweep = Vec::new();
    if scored > 0 && answered.iter().all(|(_, o)| o.note.score.is_some() || o.note.entry.is_none()) {
        for step in 50..=100 {
            let t = f64::from(step) / 100.0;
            let at: Vec<(usize, bool, Option<usize>)> = answered
                .iter()
                .map(|&(i, o)| {
                    let hit = o.note.score.is_some_and(|s| s >= t - 1e-9) && o.note.guard.is_none();
                    (i, hit, o.nearest)
                })
                .collect();
            sweep.push(point(labels, &at, Some(t)));
        }
    } else {
        notes.push(
            "the endpoint reports no similarity score per probe: no threshold sweep (velollm proxy reports one)"
                .to_owned(),
        );
    }
    let learned = if sweep.is_empty() {
        Vec::new()
    } else {
        LEARNED_DELTAS.iter().map(|&d| replay_learned(labels, &answered, d)).collect()
    };
    let operating = sweep
        .iter()
        .filter(|p| p.hits > 0 && p.false_hit_rate <= target_false_hit_rate)
        .max_by(|a, b| {
            a.hit_rate.total_cmp(&b.hit_rate).then(a.threshold.unwrap_or(0.0).total_cmp(&b.threshold.unwrap_or(0.0)))
        })
        .cloned();
    let unidentified = answered.iter().filter(|(_, o)| o.note.hit && o.served.is_none()).count();
    if unidentified > 0 {
        notes.push(format!(
            "{unidentified} hits served an answer no seed produced (a cache that outlived an earlier run?): a \
             paraphrase among them is counted as a true hit"
        ));
    }
    if !exact_repeat_hit {
        notes.push("repeating a seed word for word was not a hit: is there a cache in front of this server?".into());
    }
    let summary = |f: &dyn Fn(&Observation) -> Option<f64>| Summary::of(answered.iter().filter_map(|(_, o)| f(o)));
    let embed_ms = summary(&|o| o.note.embed_ms);
    let search_ms = summary(&|o| o.note.search_ms);
    let lookup_ms = summary(&|o| Some(o.note.embed_ms? + o.note.search_ms?));
    let ttft_hit_ms = summary(&|o| if o.note.hit { o.ttft_ms } else { None });
    let ttft_miss_ms = Summary::of(seed_ttft_ms.iter().copied());
    let judged = operating.as_ref().unwrap_or(&at_endpoint);
    let at = if operating.is_some() { "at the operating point" } else { "at the endpoint's setting" };
    let mut criteria = vec![
        Criterion {
            name: format!("semantic hit rate {at} (source plan)"),
            value: Some(judged.hit_rate * 100.0),
            goal: "> 40 %".into(),
            pass: Some(judged.hit_rate > 0.40),
        },
        Criterion {
            name: format!("false-hit rate {at} (velollm)"),
            value: Some(judged.false_hit_rate * 100.0),
            goal: "≤ 2 %".into(),
            pass: Some(judged.false_hit_rate <= 0.02),
        },
        Criterion {
            name: "lookup p99, embedding + search (source plan: search < 100 ms)".into(),
            value: lookup_ms.as_ref().map(|s| s.p99),
            goal: "< 100 ms".into(),
            pass: lookup_ms.as_ref().map(|s| s.p99 < 100.0),
        },
        Criterion {
            name: "TTFT p50 of a semantic hit (velollm)".into(),
            value: ttft_hit_ms.as_ref().map(|s| s.p50),
            goal: "< 25 ms".into(),
            pass: ttft_hit_ms.as_ref().map(|s| s.p50 < 25.0),
        },
    ];
    if operating.is_some() {
        criteria.push(Criterion {
            name: "false-hit rate at the endpoint's own threshold (velollm)".into(),
            value: Some(at_endpoint.false_hit_rate * 100.0),
            goal: "≤ 2 %".into(),
            pass: Some(at_endpoint.false_hit_rate <= 0.02),
        });
    }
    let false_hits = answered
        .iter()
        .filter(|&&(i, o)| judge(labels, i, o.note.hit, o.served).1)
        .map(|&(i, o)| FalseHit {
            kind: labels.probes[i].kind,
            family: labels.probes[i].family.clone(),
            text: labels.probes[i].text.clone(),
            served: o.served.map(|s| labels.seeds[s].text.clone()),
            score: o.note.score,
        })
        .collect();
    SemanticReport {
        seeds: labels.seeds.len() as u64,
        probes: labels.probes.len() as u64,
        failed: observations.iter().filter(|o| o.failed).count() as u64,
        exact_repeat_hit,
        at_endpoint,
        by_kind: kinds.into_values().collect(),
        sweep,
        target_false_hit_rate,
        operating,
        learned,
        embed_ms,
        search_ms,
        lookup_ms,
        ttft_hit_ms,
        ttft_miss_ms,
        criteria,
        false_hits,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABELS: &str = r#"{"family": "a", "kind": "seed", "text": "How do I reset my password?"}
{"family": "b", "kind": "seed", "text": "What is the capital of France?"}
{"family": "a", "kind": "paraphrase", "text": "I forgot my password, how can I reset it?"}
{"family": "b", "kind": "paraphrase", "text": "Which city is the capital of France?"}
{"family": "a", "kind": "negation", "text": "Why can I not reset my password?"}

{"family": "x", "kind": "unrelated", "text": "Why is the sky blue?"}
"#;

    #[test]
    fn label_files_are_checked_line_and_field() {
        let l = Labels::parse("l.jsonl", LABELS).unwrap();
        assert_eq!((l.seeds.len(), l.probes.len()), (2, 4));
        assert_eq!(l.probes[3].line, 7);
        let e = |text: &str| Labels::parse("l.jsonl", text).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"family": "a", "kind": "sed", "text": "q"}"#),
            "l.jsonl:1: kind: unknown kind \"sed\"; use one of seed, paraphrase, negation, antonym, number, entity, identifier, task, unrelated"
        );
        assert!(e(r#"{"family": "a", "kind": "seed"}"#).starts_with("l.jsonl:1: text: missing"));
        let unknown = format!("{LABELS}{{\"family\": \"zz\", \"kind\": \"paraphrase\", \"text\": \"q\"}}\n");
        assert!(e(&unknown).starts_with("l.jsonl:8: family: unknown family \"zz\""), "{}", e(&unknown));
        assert!(e("{nope").starts_with("l.jsonl:1: line: not JSON"));
        let twice = format!("{LABELS}{{\"family\": \"a\", \"kind\": \"seed\", \"text\": \"q\"}}\n");
        assert!(e(&twice).contains("already has a seed (line 1)"));
        assert!(Labels::parse("built-in", BUILTIN_LABELS).is_ok());
    }

    #[test]
    fn headers_are_read_in_every_shape() {
        let n = Note::parse("hit; layer=semantic; score=0.9368; entry=abc; embed_ms=20.4; search_ms=0.02");
        assert!(n.hit);
        assert_eq!(
            (n.score, n.entry.as_deref(), n.embed_ms, n.search_ms),
            (Some(0.9368), Some("abc"), Some(20.4), Some(0.02))
        );
        let m = Note::parse("miss; layer=semantic; key=k1; score=0.8; entry=e; guard=number");
        assert!(!m.hit && m.guard.as_deref() == Some("number") && m.key.as_deref() == Some("k1"));
        assert!(Note::parse("HIT").hit && Note::parse("TCP_HIT").hit && !Note::parse("MISS").hit);
        assert!(!Note::parse("bypass").hit);
    }

    #[test]
    fn rates_sweep_and_operating_point_follow_their_definitions() {
        let labels = Labels::parse("l", LABELS).unwrap();
        let obs = |hit: bool, served: Option<usize>, score: Option<f64>, guard: Option<&str>| Observation {
            note: Note {
                hit,
                score,
                entry: score.map(|_| "e".into()),
                guard: guard.map(str::to_owned),
                embed_ms: Some(10.0),
                search_ms: Some(0.1),
                ..Note::default()
            },
            served,
            nearest: served,
            ttft_ms: Some(if hit { 5.0 } else { 300.0 }),
            failed: false,
        };
        let observations = vec![
            obs(true, Some(0), Some(0.94), None), // paraphrase a → own seed: true hit
            obs(true, Some(0), Some(0.91), None), // paraphrase b → a's answer: false hit
            obs(false, Some(0), Some(0.95), Some("negation")), // blocked by the guard
            obs(false, Some(1), Some(0.30), None), // unrelated, far
        ];
        let r = evaluate(&labels, &observations, &[300.0, 320.0], true, 0.02);
        let at = &r.at_endpoint;
        assert_eq!((at.hits, at.true_hits, at.false_hits), (2, 1, 1));
        assert_eq!((at.hit_rate, at.false_hit_rate, at.recall), (0.5, 0.5, 0.5));
        // From 0.92 to 0.94 only the true hit remains; of equal hit rates the highest threshold is chosen.
        let op = r.operating.as_ref().unwrap();
        assert_eq!((op.threshold, op.hits, op.false_hits), (Some(0.94), 1, 0));
        let at_050 = &r.sweep[0];
        assert_eq!((at_050.hits, at_050.false_hits), (2, 1), "the guard's block holds at every threshold");
        assert_eq!(r.by_kind.iter().find(|k| k.kind == Kind::Paraphrase).unwrap().false_hits, 1);
        assert!((r.lookup_ms.as_ref().unwrap().p50 - 10.1).abs() < 1e-9);
        assert_eq!(r.ttft_hit_ms.as_ref().unwrap().p50, 5.0);
        let hit_rate = &r.criteria[0];
        assert_eq!((hit_rate.value, hit_rate.pass), (Some(25.0), Some(false)));
        // The learned replay: each entry is new, so every candidate (three at or above the floor, one blocked
        // by the guard) explores unless its coin falls under δ / ½; nothing it serves is counted twice.
        assert_eq!(r.learned.len(), LEARNED_DELTAS.len());
        for l in &r.learned {
            assert_eq!(l.point.threshold, Some(LEARNED_FLOOR));
            assert_eq!(l.explored + l.point.hits, 2, "two candidates pass the floor and the guard: {l:?}");
        }
    }

    #[test]
    fn the_learned_replay_serves_an_entry_once_its_paraphrases_agreed() {
        // One seed and 60 paraphrases at rising similarity: the first ones explore and agree, and from about
        // 1 / δ agreements on, every later one is served, and rightly.
        let mut text = String::from("{\"family\": \"a\", \"kind\": \"seed\", \"text\": \"q\"}\n");
        for i in 0..60 {
            text.push_str(&format!("{{\"family\": \"a\", \"kind\": \"paraphrase\", \"text\": \"q{i}\"}}\n"));
        }
        let labels = Labels::parse("l", &text).unwrap();
        let observations: Vec<Observation> = (0..60)
            .map(|i| Observation {
                note: Note { score: Some(0.8 + f64::from(i) * 0.001), entry: Some("e".into()), ..Note::default() },
                nearest: Some(0),
                ..Observation::default()
            })
            .collect();
        let r = evaluate(&labels, &observations, &[], true, 0.02);
        let at_10 = r.learned.iter().find(|l| l.delta == 0.10).unwrap();
        assert_eq!(at_10.point.false_hits, 0);
        assert!(at_10.explored >= 3 && at_10.explored <= 10, "{at_10:?}");
        assert_eq!(at_10.point.hits + at_10.explored, 60);
        let at_2 = r.learned.iter().find(|l| l.delta == 0.02).unwrap();
        assert!(at_2.explored > at_10.explored, "a tighter bound explores more: {at_2:?}");
    }
}
