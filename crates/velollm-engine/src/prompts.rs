//! Prompt generation for a step: fixed prompts in turn, dataset conversations, or synthetic prompts of a
//! requested token length.
//!
//! **Synthetic prompts** are random sequences of common English words, different for every request *and every
//! run*: the words are seeded from the step's seed, the request index and the run's nonce, so neither an
//! earlier request nor an earlier run can have left them in the server's prefix cache. Lengths and group
//! choices depend on the seed only, so they are reproducible. A length is either fixed
//! (`prompt_tokens`) or drawn per request from a distribution (`prompt_tokens_dist`, see
//! [`velollm_core::document::scenario::LengthDist`]) with the step's seed.
//!
//! **Counting lengths.** The words are counted with the best tokenizer available, in this order:
//!
//! 1. *The server's own tokenizer* through `POST /tokenize` (llama.cpp: `{"content": …}` → `{"tokens": […]}`;
//!    vLLM: `{"prompt": …}`). It is probed once per run ([`server_lengths`]), and only for steps with
//!    synthetic prompts: one request tokenizes the whole word list (preceded by an anchor word), asking for
//!    the token pieces (llama.cpp `with_pieces`, vLLM `return_token_strs`). Aligning the pieces to the words
//!    gives the token cost of every word as it appears in a prompt (after a space). Word-level
//!    pre-tokenization means those costs add up, so the generator adds or drops words until the costs sum to
//!    exactly the target. When the server returns no pieces, the ratio of tokens to words over the word list
//!    scales the word count instead. Either way a second request tokenizes one 256-token sample prompt and
//!    the result is recorded, so the claim "within ±2 %" is measured, not assumed (the first word of a
//!    prompt, which has no space before it, can be off by one token).
//! 2. *A local `tokenizer.json`* (`--tokenizer`): the prompt is re-encoded and words added or dropped until
//!    it has exactly the target length.
//! 3. *Nothing*: common words are one token each in the usual BPE vocabularies, so *n* words ≈ *n* tokens.
//!
//! The method is written into the step's configuration ([`PromptSource::counting`]); the length the server
//! actually saw is recorded from its usage either way.
//!
//! **Shared prefixes** (`shared_prefix`): request *i* picks group *g* by Zipf popularity (seeded per request),
//! and its prompt is group *g*'s prefix of `prefix_tokens` tokens, a space, and a suffix of its own. Prefixes
//! are derived from the run's seed and the group only, so every step of a run (and every run with the same
//! seed) uses the same prefixes; with `salt = true` the words of each prefix are derived from a per-run nonce
//! as well (its first words encode the nonce), so no earlier run can have cached them. The record's `label`
//! is `group-<g>`.
//!
//! **Datasets** (`dataset`): session *i* replays the user turns of record `i % len`; the runner sends each
//! with the model's real previous answers.

use crate::exec::send_json;
use crate::target::Target;
use crate::tokenize::TokenCounter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use velollm_core::document::scenario::{LengthDist, Turn, Workload};

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "over",
    "new",
    "sound",
    "take",
    "only",
    "little",
    "work",
    "know",
    "place",
    "year",
    "live",
    "me",
    "back",
    "give",
    "most",
    "very",
    "after",
    "thing",
    "our",
    "just",
    "name",
    "good",
    "man",
    "think",
    "say",
    "great",
    "where",
    "help",
    "through",
    "much",
    "before",
    "line",
    "right",
    "too",
    "mean",
    "old",
    "any",
    "same",
    "tell",
    "boy",
    "follow",
    "came",
    "want",
    "show",
    "also",
    "around",
    "form",
    "three",
    "small",
    "set",
    "put",
    "end",
    "does",
    "another",
    "well",
    "large",
    "must",
    "big",
    "even",
    "such",
    "because",
    "turn",
    "here",
    "why",
    "ask",
    "went",
    "men",
    "read",
    "need",
    "land",
    "different",
    "home",
    "us",
    "move",
    "try",
    "kind",
    "hand",
    "picture",
    "again",
    "change",
    "off",
    "play",
    "spell",
    "air",
    "away",
    "animal",
    "house",
    "point",
    "page",
    "letter",
    "mother",
    "answer",
    "found",
    "study",
    "still",
    "learn",
    "should",
    "world",
    "high",
    "every",
    "near",
    "add",
    "food",
    "between",
    "own",
    "below",
    "country",
    "plant",
    "last",
    "school",
    "father",
    "keep",
    "tree",
    "never",
    "start",
    "city",
    "earth",
    "eye",
    "light",
];

/// Mixes a per-request seed (SplitMix64 finaliser), so that neighbouring indices give unrelated streams.
pub(crate) fn mix(seed: u64, i: u64, tag: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const TAG_LENGTH: u64 = 1;
const TAG_GROUP: u64 = 2;
const TAG_PREFIX: u64 = 3;
const TAG_SUFFIX: u64 = 4;
const TAG_WORDS: u64 = 5;
/// The draw that picks the requests the client aborts (`--cancel-share`).
pub(crate) const TAG_ABORT: u64 = 6;
/// Words at the start of a salted prefix that encode the nonce (226⁸ ≈ 2⁶² values).
const NONCE_WORDS: usize = 8;
/// Length of the sample prompt that checks the server calibration.
const CHECK_TOKENS: u32 = 256;

/// What the server's `/tokenize` taught about the synthetic words.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLengths {
    /// Token cost of each word of the vocabulary after a space, when the server returned token pieces.
    costs: Option<Vec<u32>>,
    /// Tokens per word over the whole vocabulary.
    ratio: f64,
    /// `(target, tokens the server counted)` for one sample prompt built with this calibration.
    pub check: Option<(u32, u64)>,
}

impl ServerLengths {
    /// Whether per-word costs (exact lengths) are known, rather than only a tokens-per-word ratio.
    pub fn exact(&self) -> bool {
        self.costs.is_some()
    }

    /// Tokens per word over the vocabulary.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The check's relative error (measured − target) / target, when the check ran.
    pub fn check_error(&self) -> Option<f64> {
        self.check.map(|(t, m)| (m as f64 - f64::from(t)) / f64::from(t))
    }
}

/// The server's `/tokenize` calibration, or why there is none.
pub type ServerCalibration = Result<Arc<ServerLengths>, String>;

/// Calibrations already made, one per target (a run has one target): a weak reference keeps the address
/// from being reused while the entry exists, and entries of dropped targets are pruned.
type CalibrationCache = Mutex<Vec<(Weak<Target>, ServerCalibration)>>;
static CALIBRATIONS: CalibrationCache = Mutex::new(Vec::new());

/// Calibrate synthetic lengths with the server's `POST /tokenize` (see the module documentation); probed
/// once per target, that is once per run, then answered from a cache.
pub async fn server_lengths(target: &Arc<Target>, model: &str) -> ServerCalibration {
    {
        let mut cache = CALIBRATIONS.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|(t, _)| t.strong_count() > 0);
        if let Some((_, c)) = cache.iter().find(|(t, _)| std::ptr::eq(t.as_ptr(), Arc::as_ptr(target))) {
            return c.clone();
        }
    }
    let result = calibrate(target, model).await.map(Arc::new);
    CALIBRATIONS.lock().unwrap_or_else(PoisonError::into_inner).push((Arc::downgrade(target), result.clone()));
    result
}

/// Token count and pieces of `text` according to the server.
async fn tokenize(target: &Target, model: &str, text: &str) -> Result<(usize, Option<Vec<String>>), String> {
    let body = serde_json::json!({
        "content": text, "with_pieces": true, "add_special": false,
        "prompt": text, "model": model, "return_token_strs": true, "add_special_tokens": false,
    });
    let (status, bytes) = send_json(target, hyper::Method::POST, "/tokenize", &body)
        .await
        .map_err(|e| format!("/tokenize: {}", e.message))?;
    if status != 200 {
        return Err(format!("/tokenize answered HTTP {status}"));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| "/tokenize did not answer JSON".to_string())?;
    let tokens = v.get("tokens").and_then(Value::as_array).ok_or("/tokenize answered no `tokens` list")?;
    let piece = |t: &Value| t.get("piece").and_then(Value::as_str).map(str::to_string);
    let pieces = match v.get("token_strs").and_then(Value::as_array) {
        Some(strs) => strs.iter().map(|s| s.as_str().map(str::to_string)).collect::<Option<Vec<_>>>(),
        None => tokens.iter().map(piece).collect::<Option<Vec<_>>>(),
    };
    Ok((tokens.len(), pieces.filter(|p| p.len() == tokens.len())))
}

async fn calibrate(target: &Target, model: &str) -> Result<ServerLengths, String> {
    // An anchor word first, so every vocabulary word is measured after a space, as in a prompt.
    let text = format!("{} {}", WORDS[0], WORDS.join(" "));
    let (count, pieces) = tokenize(target, model, &text).await?;
    if count == 0 {
        return Err("/tokenize counted no tokens".to_string());
    }
    let costs = pieces.and_then(|p| word_costs(&p, WORDS.len() + 1)).map(|mut c| c.split_off(1));
    let ratio = match &costs {
        Some(c) => c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len() as f64,
        None => count as f64 / (WORDS.len() + 1) as f64,
    };
    let mut lengths = ServerLengths { costs, ratio, check: None };
    let sample = synthetic_with(CHECK_TOKENS, &[], 0x5EED, &Count::Server(&lengths));
    if let Ok((n, _)) = tokenize(target, model, &sample).await {
        lengths.check = Some((CHECK_TOKENS, n as u64));
    }
    Ok(lengths)
}

/// Assign each token to the word it starts (or continues), given the token pieces of `words` words joined
/// by single spaces. `None` when the pieces do not line up with the words.
fn word_costs(pieces: &[String], words: usize) -> Option<Vec<u32>> {
    let mut costs = vec![0u32; words];
    let mut word: Option<usize> = None;
    let mut pending = 0;
    let mut after_space = true;
    for piece in pieces {
        // Byte-level BPE marks a space with 'Ġ' and SentencePiece with '▁' in raw token strings.
        let mut owner = None;
        let mut text = false;
        for c in piece.chars() {
            let space = c.is_whitespace() || c == 'Ġ' || c == '▁';
            if !space {
                text = true;
                if after_space {
                    let w = word.map_or(0, |w| w + 1);
                    word = Some(w);
                    owner.get_or_insert(w);
                }
            }
            after_space = space;
        }
        match (owner, word) {
            (Some(w), _) => {
                *costs.get_mut(w)? += 1 + pending;
                pending = 0;
            }
            (None, Some(w)) if text => *costs.get_mut(w)? += 1,
            _ => pending += 1,
        }
    }
    (word == Some(words - 1) && costs.iter().all(|&c| c > 0)).then_some(costs)
}

/// How a synthetic prompt's length is counted.
enum Count<'a> {
    /// One word per token.
    Words,
    /// A local tokenizer.
    Local(&'a TokenCounter),
    /// The server's calibration.
    Server(&'a ServerLengths),
}

fn text(words: &[usize]) -> String {
    words.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" ")
}

/// A prompt of `tokens` tokens as counted by `count`, starting with the words `lead`, the rest drawn with
/// `seed`.
fn synthetic_with(tokens: u32, lead: &[usize], seed: u64, count: &Count) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let pick = |rng: &mut StdRng| rng.random_range(0..WORDS.len());
    let target = tokens.max(1) as usize;
    let mut words: Vec<usize> = lead.to_vec();
    match count {
        Count::Words => {
            words.truncate(target);
            while words.len() < target {
                words.push(pick(&mut rng));
            }
        }
        Count::Server(ServerLengths { costs: None, ratio, .. }) => {
            let n = ((target as f64 / ratio.max(0.01)).round() as usize).max(1);
            words.truncate(n);
            while words.len() < n {
                words.push(pick(&mut rng));
            }
        }
        Count::Server(ServerLengths { costs: Some(costs), .. }) => {
            let cost = |w: usize| costs[w] as usize;
            let mut sum: usize = words.iter().map(|&w| cost(w)).sum();
            while sum > target && words.len() > 1 {
                sum -= cost(words.pop().expect("not empty"));
            }
            while sum < target {
                let left = target - sum;
                let mut w = pick(&mut rng);
                if cost(w) > left {
                    // Finish with a word that fits, when there is one.
                    let fits: Vec<usize> = (0..WORDS.len()).filter(|&x| cost(x) <= left).collect();
                    if fits.is_empty() {
                        break;
                    }
                    w = fits[rng.random_range(0..fits.len())];
                }
                words.push(w);
                sum += cost(w);
            }
        }
        Count::Local(tok) => {
            words.truncate(target);
            while words.len() < target {
                words.push(pick(&mut rng));
            }
            // Adjust the word count until the tokenizer agrees (each word is at least one token).
            for _ in 0..64 {
                let diff = target as i64 - tok.count(&text(&words)) as i64;
                if diff == 0 {
                    break;
                }
                if diff > 0 {
                    words.extend((0..diff).map(|_| pick(&mut rng)));
                } else {
                    let keep = (words.len() as i64 + diff).max(1) as usize;
                    if keep == words.len() {
                        break;
                    }
                    words.truncate(keep);
                }
            }
        }
    }
    text(&words)
}

/// A prompt of about `tokens` tokens (exactly, when a tokenizer is given).
pub fn synthetic(tokens: u32, seed: u64, tokenizer: Option<&TokenCounter>) -> String {
    synthetic_with(tokens, &[], seed, &tokenizer.map_or(Count::Words, Count::Local))
}

/// Produces the prompt of each request of a step.
pub struct PromptSource {
    workload: Workload,
    seed: u64,
    run_seed: u64,
    nonce: u64,
    server: Option<ServerCalibration>,
    prefixes: Mutex<HashMap<u32, Arc<str>>>,
}

impl PromptSource {
    /// Prompts for `workload`, with synthetic prompts derived from `seed` (the step's seed).
    pub fn new(workload: Workload, seed: u64) -> PromptSource {
        PromptSource { workload, seed, run_seed: seed, nonce: seed, server: None, prefixes: Mutex::new(HashMap::new()) }
    }

    /// The run's seed, from which shared prefixes are derived (so that every step of the run shares them),
    /// and the run's nonce, which salts them when asked (default: the step's seed for both).
    pub fn with_run(mut self, run_seed: u64, nonce: u64) -> PromptSource {
        self.run_seed = run_seed;
        self.nonce = nonce;
        self
    }

    /// Count synthetic lengths with the server's calibration, when it has one (see [`server_lengths`]).
    pub fn with_server_lengths(mut self, calibration: ServerCalibration) -> PromptSource {
        self.server = Some(calibration);
        self
    }

    /// Whether the step's prompts are synthetic (and so have lengths to count).
    pub fn is_synthetic(&self) -> bool {
        matches!(self.workload, Workload::Synthetic { .. } | Workload::SyntheticDist(_) | Workload::SharedPrefix { .. })
    }

    fn count<'a>(&'a self, tokenizer: Option<&'a TokenCounter>) -> Count<'a> {
        match (&self.server, tokenizer) {
            (Some(Ok(s)), _) => Count::Server(s),
            (_, Some(t)) => Count::Local(t),
            _ => Count::Words,
        }
    }

    /// How synthetic lengths are counted, for the step's configuration; `None` for other workloads.
    /// `local_tokenizer` says whether a local tokenizer is given to [`PromptSource::prompt`].
    pub fn counting(&self, local_tokenizer: bool) -> Option<String> {
        if !self.is_synthetic() {
            return None;
        }
        let server = match &self.server {
            Some(Ok(s)) => {
                let check = match (s.check, s.check_error()) {
                    (Some((t, m)), Some(e)) => format!(
                        "; a {t}-token sample measured {m} ({:+.1} %{})",
                        e * 100.0,
                        if e.abs() > 0.02 { ", outside ±2 %" } else { "" }
                    ),
                    _ => "; the sample check failed".to_string(),
                };
                return Some(if s.exact() {
                    format!("lengths counted with the server's /tokenize (per-word token costs{check})")
                } else {
                    format!(
                        "lengths scaled by the server's /tokenize ({:.3} tokens per word, no token pieces{check})",
                        s.ratio
                    )
                });
            }
            Some(Err(why)) => format!("no server tokenizer ({why})"),
            None => "server /tokenize not probed".to_string(),
        };
        Some(if local_tokenizer {
            format!("lengths counted with the local tokenizer (--tokenizer); {server}")
        } else {
            format!(
                "lengths approximate: one word ≈ one token ({server}, no --tokenizer); the server's usage records \
                 the real length"
            )
        })
    }

    /// The target length of the `i`-th request's synthetic prompt (for shared prefixes: of its suffix).
    pub fn length(&self, i: u64) -> Option<u32> {
        let dist: &LengthDist = match &self.workload {
            Workload::Synthetic { prompt_tokens } => return Some(*prompt_tokens),
            Workload::SyntheticDist(d) => d,
            Workload::SharedPrefix { suffix, .. } => suffix,
            _ => return None,
        };
        Some(dist.sample(&mut StdRng::seed_from_u64(mix(self.seed, i, TAG_LENGTH))))
    }

    /// The shared-prefix group of the `i`-th request.
    pub fn group(&self, i: u64) -> Option<u32> {
        match &self.workload {
            Workload::SharedPrefix { prefix, .. } => {
                Some(prefix.pick_group(&mut StdRng::seed_from_u64(mix(self.seed, i, TAG_GROUP))))
            }
            _ => None,
        }
    }

    /// The turns of session `i` of a dataset (empty for other workloads).
    pub fn session(&self, i: u64) -> &[Turn] {
        match &self.workload {
            Workload::Sessions(s) if !s.is_empty() => &s[(i % s.len() as u64) as usize],
            _ => &[],
        }
    }

    /// The prefix of group `g`, built once.
    fn prefix(&self, g: u32, prefix_tokens: u32, salt: bool, tokenizer: Option<&TokenCounter>) -> Arc<str> {
        if let Some(p) = self.prefixes.lock().unwrap_or_else(PoisonError::into_inner).get(&g) {
            return p.clone();
        }
        let mut seed = mix(self.run_seed, u64::from(g), TAG_PREFIX);
        let mut lead = Vec::new();
        if salt {
            // The nonce, per group, written in vocabulary words (base WORDS.len()).
            let mut n = mix(self.nonce, u64::from(g), TAG_PREFIX);
            seed ^= n;
            for _ in 0..NONCE_WORDS {
                lead.push((n % WORDS.len() as u64) as usize);
                n /= WORDS.len() as u64;
            }
        }
        let p: Arc<str> = synthetic_with(prefix_tokens, &lead, seed, &self.count(tokenizer)).into();
        self.prefixes.lock().unwrap_or_else(PoisonError::into_inner).insert(g, p.clone());
        p
    }

    /// The prompt of the `i`-th request of the step.
    pub fn prompt(&self, i: u64, tokenizer: Option<&TokenCounter>) -> String {
        self.labelled(i, tokenizer).0
    }

    /// The prompt of the `i`-th request and the label recorded with it (`group-<g>` for shared prefixes).
    /// For conversations and datasets, the first turn.
    pub fn labelled(&self, i: u64, tokenizer: Option<&TokenCounter>) -> (String, Option<String>) {
        // The nonce makes the words new in every run (a repeated run must not hit the prefix cache); each
        // request's words are then derived from that per-run base with its own tag.
        let run_words = self.seed ^ self.nonce.rotate_left(29);
        let words_seed = mix(run_words, i, TAG_WORDS);
        match &self.workload {
            Workload::Prompts(p) if p.is_empty() => (String::new(), None),
            Workload::Prompts(p) => (p[(i % p.len() as u64) as usize].clone(), None),
            Workload::Synthetic { prompt_tokens } => {
                (synthetic_with(*prompt_tokens, &[], words_seed, &self.count(tokenizer)), None)
            }
            Workload::SyntheticDist(_) => {
                let n = self.length(i).unwrap_or(1);
                (synthetic_with(n, &[], words_seed, &self.count(tokenizer)), None)
            }
            Workload::SharedPrefix { prefix, .. } => {
                let g = self.group(i).unwrap_or(0);
                let head = self.prefix(g, prefix.prefix_tokens, prefix.salt, tokenizer);
                let n = self.length(i).unwrap_or(1);
                let tail = synthetic_with(n, &[], mix(run_words, i, TAG_SUFFIX), &self.count(tokenizer));
                (format!("{head} {tail}"), Some(format!("group-{g}")))
            }
            Workload::Conversation(turns) => (turns.first().map(|t| t.user.clone()).unwrap_or_default(), None),
            Workload::Sessions(_) => (self.session(i).first().map(|t| t.user.clone()).unwrap_or_default(), None),
            Workload::Trace(t) => (t.root(i as usize).map(|s| s.first_user_text()).unwrap_or_default(), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::scenario::{DistKind, SharedPrefix};

    #[test]
    fn every_run_gets_new_words_and_every_request_its_own() {
        let run = |nonce| PromptSource::new(Workload::Synthetic { prompt_tokens: 32 }, 42).with_run(42, nonce);
        let (a, b) = (run(1), run(2));
        assert_ne!(a.prompt(0, None), b.prompt(0, None), "a repeated run must not repeat prompts");
        assert_eq!(a.prompt(0, None).split(' ').count(), b.prompt(0, None).split(' ').count());
        let prompts: std::collections::HashSet<String> = (0..50).map(|i| a.prompt(i, None)).collect();
        assert_eq!(prompts.len(), 50);
    }

    #[test]
    fn synthetic_prompts_are_seeded_and_distinct() {
        let src = PromptSource::new(Workload::Synthetic { prompt_tokens: 64 }, 42);
        assert_eq!(src.prompt(0, None), src.prompt(0, None));
        assert_ne!(src.prompt(0, None), src.prompt(1, None));
        assert_eq!(src.prompt(3, None).split(' ').count(), 64);
        let fixed = PromptSource::new(Workload::Prompts(vec!["a".into(), "b".into()]), 0);
        assert_eq!(
            (fixed.prompt(0, None), fixed.prompt(1, None), fixed.prompt(2, None)),
            ("a".into(), "b".into(), "a".into())
        );
    }

    #[test]
    fn distribution_lengths_are_sampled_per_request() {
        let d = LengthDist { kind: DistKind::Uniform, mean: None, stddev: None, min: Some(5), max: Some(40) };
        let src = PromptSource::new(Workload::SyntheticDist(d), 7);
        let lengths: Vec<u32> = (0..200).map(|i| src.length(i).unwrap()).collect();
        assert!(lengths.iter().all(|n| (5..=40).contains(n)));
        assert!(lengths.iter().collect::<std::collections::BTreeSet<_>>().len() > 20);
        for i in 0..20 {
            assert_eq!(src.prompt(i, None).split(' ').count() as u32, lengths[i as usize]);
        }
        let again = PromptSource::new(src.workload.clone(), 7);
        assert_eq!((0..200).map(|i| again.length(i).unwrap()).collect::<Vec<_>>(), lengths);
        assert!(src.counting(false).unwrap().contains("approximate"));
    }

    fn shared(salt: bool) -> Workload {
        Workload::SharedPrefix {
            prefix: SharedPrefix { groups: 4, prefix_tokens: 30, zipf: 1.0, salt },
            suffix: LengthDist::fixed(10),
        }
    }

    #[test]
    fn shared_prefixes_are_identical_within_a_group_and_suffixes_distinct() {
        let src = PromptSource::new(shared(false), 3);
        let mut by_group: HashMap<u32, Vec<String>> = HashMap::new();
        for i in 0..100 {
            let (p, label) = src.labelled(i, None);
            let g = src.group(i).unwrap();
            assert_eq!(label, Some(format!("group-{g}")));
            assert_eq!(p.split(' ').count(), 40);
            by_group.entry(g).or_default().push(p);
        }
        assert!(by_group[&0].len() > by_group[&3].len(), "Zipf: group 0 is the most popular");
        let prefix = |p: &str| p.split(' ').take(30).collect::<Vec<_>>().join(" ");
        let suffix = |p: &str| p.split(' ').skip(30).collect::<Vec<_>>().join(" ");
        let heads: Vec<String> = by_group.values().map(|v| prefix(&v[0])).collect();
        for (g, prompts) in &by_group {
            assert!(prompts.iter().all(|p| prefix(p) == prefix(&prompts[0])), "group {g}");
        }
        let distinct = |v: &[String]| v.iter().collect::<std::collections::BTreeSet<_>>().len() == v.len();
        assert!(distinct(&heads));
        let tails: Vec<String> = by_group.values().flatten().map(|p| suffix(p)).collect();
        assert!(distinct(&tails));
        // Prefixes depend on the run's seed, not the step's; the nonce changes them only when salted.
        let other_step = PromptSource::new(shared(false), 99).with_run(3, 1234);
        let g = other_step.group(0).unwrap();
        let i = (0..).find(|&i| src.group(i) == Some(g)).unwrap();
        assert_eq!(prefix(&other_step.prompt(0, None)), prefix(&src.prompt(i, None)));
        let salted = |nonce| PromptSource::new(shared(true), 3).with_run(3, nonce);
        let (a, b) = (salted(1), salted(2));
        let ga = a.group(0).unwrap();
        assert_eq!(a.prompt(0, None).split(' ').count(), 40);
        assert_eq!(prefix(&a.prompt(0, None)), prefix(&salted(1).prompt(0, None)));
        assert_ne!(
            a.prompt(0, None).split(' ').take(NONCE_WORDS).collect::<Vec<_>>(),
            b.prompt(0, None).split(' ').take(NONCE_WORDS).collect::<Vec<_>>()
        );
        assert_eq!(b.group(0), Some(ga), "the nonce does not change the group picks");
    }

    #[test]
    fn sessions_cycle_through_the_dataset() {
        let t = |u: &str| Turn { user: u.into(), label: None, salt: false };
        let src = PromptSource::new(Workload::Sessions(vec![vec![t("a1"), t("a2")], vec![t("b1")]]), 0);
        assert_eq!(src.session(0).len(), 2);
        assert_eq!(src.session(1)[0].user, "b1");
        assert_eq!(src.session(2)[1].user, "a2");
        assert_eq!(src.prompt(3, None), "b1");
        assert!(src.counting(false).is_none());
        assert!(PromptSource::new(Workload::Sessions(Vec::new()), 0).session(0).is_empty());
    }

    fn pieces(text: &str) -> Vec<String> {
        // Words longer than four letters are two tokens ("wor" + "d…"); spaces go with the next word.
        let mut out = Vec::new();
        for (k, w) in text.split(' ').enumerate() {
            let sp = if k == 0 { "" } else { " " };
            if w.len() > 4 {
                out.push(format!("{sp}{}", &w[..3]));
                out.push(w[3..].to_string());
            } else {
                out.push(format!("{sp}{w}"));
            }
        }
        out
    }

    #[test]
    fn token_pieces_give_exact_word_costs() {
        let text = format!("{} {}", WORDS[0], WORDS.join(" "));
        let costs = word_costs(&pieces(&text), WORDS.len() + 1).unwrap();
        for (k, w) in WORDS.iter().enumerate() {
            assert_eq!(costs[k + 1], if w.len() > 4 { 2 } else { 1 }, "{w}");
        }
        // Raw vocabulary strings ('Ġ' for a space) and separate space tokens line up too.
        let raw: Vec<String> = ["the", "Ġof", "Ġ", "and"].iter().map(|s| s.to_string()).collect();
        assert_eq!(word_costs(&raw, 3), Some(vec![1, 1, 2]));
        assert_eq!(word_costs(&raw, 4), None, "too few words");
        let lengths = ServerLengths { costs: Some(costs[1..].to_vec()), ratio: 1.2, check: None };
        for n in [1, 2, 3, 17, 256, 1000] {
            for seed in 0..5 {
                let p = synthetic_with(n, &[], seed, &Count::Server(&lengths));
                assert_eq!(pieces(&p).len(), n as usize, "{n}: {p}");
            }
        }
        // Without pieces, the ratio scales the word count.
        let ratio = ServerLengths { costs: None, ratio: 1.25, check: Some((256, 251)) };
        assert_eq!(synthetic_with(100, &[], 1, &Count::Server(&ratio)).split(' ').count(), 80);
        let src =
            PromptSource::new(Workload::Synthetic { prompt_tokens: 5 }, 0).with_server_lengths(Ok(Arc::new(ratio)));
        let note = src.counting(false).unwrap();
        assert!(
            note.contains("1.250 tokens per word") && note.contains("256-token sample measured 251 (-2.0 %)"),
            "{note}"
        );
    }
}
