//! Prompt generation for a step: fixed prompts in turn, or synthetic prompts of a requested token length.
//!
//! Synthetic prompts are random sequences of common English words, seeded per request so each prompt is
//! different (no accidental prefix-cache hits) and a run is reproducible. Common words are one token each
//! in the usual BPE vocabularies, so *n* words ≈ *n* tokens; with a local tokenizer the length is adjusted
//! to exactly *n* tokens. The length the server actually saw is recorded from its usage.

use crate::tokenize::TokenCounter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use velollm_core::scenario::Workload;

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

/// Produces the prompt of each request of a step.
pub struct PromptSource {
    workload: Workload,
    seed: u64,
}

impl PromptSource {
    /// Prompts for `workload`, with synthetic prompts derived from `seed`.
    pub fn new(workload: Workload, seed: u64) -> PromptSource {
        PromptSource { workload, seed }
    }

    /// The prompt of the `i`-th request of the step.
    pub fn prompt(&self, i: u64, tokenizer: Option<&TokenCounter>) -> String {
        match &self.workload {
            Workload::Prompts(p) => p[(i % p.len() as u64) as usize].clone(),
            Workload::Synthetic { prompt_tokens } => {
                synthetic(*prompt_tokens, self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15), tokenizer)
            }
            Workload::Conversation(turns) => turns.first().map(|t| t.user.clone()).unwrap_or_default(),
        }
    }
}

/// A prompt of about `tokens` tokens (exactly, when a tokenizer is given).
pub fn synthetic(tokens: u32, seed: u64, tokenizer: Option<&TokenCounter>) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut words: Vec<&str> = (0..tokens.max(1)).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    let Some(tok) = tokenizer else { return words.join(" ") };
    // Adjust the word count until the tokenizer agrees (each word is at least one token).
    for _ in 0..64 {
        let n = tok.count(&words.join(" ")) as i64;
        let diff = i64::from(tokens) - n;
        if diff == 0 {
            break;
        }
        if diff > 0 {
            words.extend((0..diff).map(|_| WORDS[rng.random_range(0..WORDS.len())]));
        } else {
            let keep = (words.len() as i64 + diff).max(1) as usize;
            if keep == words.len() {
                break;
            }
            words.truncate(keep);
        }
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
