//! A lexical guard over two texts that embed close together: what embeddings are known to blur — a negation,
//! an antonym ("enable" / "disable" score 0.82 on common models), a number, an identifier, a named entity, a
//! literal, two words swapped around a preposition ("miles in kilometers" / "kilometers in miles": 0.997 with
//! all-MiniLM-L6-v2) — must agree, or the hit is blocked. Cheap (a pass over each text), and only ever turns a hit into a miss.

use std::collections::BTreeSet;

/// Why two texts must not share an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// One is negated and the other is not.
    Negation,
    /// They use opposite words of a known pair.
    Antonym,
    /// Their numbers differ.
    Number,
    /// Their identifiers (`snake_case`, `camelCase`, `a.b`, quoted code) differ.
    Identifier,
    /// Each names an entity the other does not.
    Entity,
    /// Their literals (`{…}`, `[…]`, quoted text or code) differ.
    Literal,
    /// The same two words around a preposition, swapped ("Celsius to Fahrenheit" / "Fahrenheit to Celsius").
    Order,
}

impl Block {
    /// The reason as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Block::Negation => "negation",
            Block::Antonym => "antonym",
            Block::Number => "number",
            Block::Identifier => "identifier",
            Block::Entity => "entity",
            Block::Literal => "literal",
            Block::Order => "order",
        }
    }
}

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "without", "nor", "neither", "none", "nothing", "cannot", "dont", "doesnt", "didnt", "isnt",
    "arent", "wasnt", "werent", "cant", "couldnt", "wont", "wouldnt", "shouldnt", "hasnt", "havent", "avoid", "stop",
    "prevent",
];

const ANTONYMS: &[(&str, &str)] = &[
    ("enable", "disable"),
    ("enabled", "disabled"),
    ("on", "off"),
    ("increase", "decrease"),
    ("add", "remove"),
    ("before", "after"),
    ("min", "max"),
    ("minimum", "maximum"),
    ("true", "false"),
    ("allow", "deny"),
    ("allow", "block"),
    ("encrypt", "decrypt"),
    ("encode", "decode"),
    ("import", "export"),
    ("upload", "download"),
    ("start", "end"),
    ("open", "close"),
    ("first", "last"),
    ("largest", "smallest"),
    ("biggest", "smallest"),
    ("highest", "lowest"),
    ("ascending", "descending"),
    ("lock", "unlock"),
    ("install", "uninstall"),
    ("show", "hide"),
    ("include", "exclude"),
    ("buy", "sell"),
    ("push", "pull"),
    ("input", "output"),
    ("send", "receive"),
    ("compress", "decompress"),
    ("serialize", "deserialize"),
    ("left", "right"),
    ("above", "below"),
    ("more", "less"),
    ("faster", "slower"),
    ("advantages", "disadvantages"),
    ("pros", "cons"),
    ("hot", "cold"),
    ("celsius", "fahrenheit"),
    ("uppercase", "lowercase"),
];

/// Numbers written as words ("one" is left out: "which one" is not a count).
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("twenty", "20"),
    ("hundred", "100"),
    ("thousand", "1000"),
];

/// Prepositions whose two sides a swap reverses.
const PREPOSITIONS: &[&str] = &["to", "into", "from", "in", "per", "than", "vs", "versus"];

/// Words skipped when looking for a preposition's neighbours.
const FILLERS: &[&str] = &["a", "an", "the", "are", "is", "be", "there", "of", "many", "much", "what", "how"];

/// What the guard reads from one text. Words are split at spaces, hyphens and slashes.
#[derive(Debug, Default, PartialEq)]
struct Features {
    negated: bool,
    words: BTreeSet<String>,
    numbers: BTreeSet<String>,
    identifiers: BTreeSet<String>,
    entities: BTreeSet<String>,
    literals: BTreeSet<String>,
    /// (word before, word after) each preposition, fillers and numbers skipped.
    around: BTreeSet<(String, String)>,
}

/// Bracketed (`{…}`, `[…]`, nesting kept) and quoted (`"…"`, `` `…` ``) spans, verbatim but for spaces.
fn literals(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let end = match chars[i] {
            '{' | '[' => {
                let (open, close) = if chars[i] == '{' { ('{', '}') } else { ('[', ']') };
                let mut depth = 0;
                (i..chars.len()).find(|&j| {
                    if chars[j] == open {
                        depth += 1;
                    } else if chars[j] == close {
                        depth -= 1;
                    }
                    depth == 0
                })
            }
            '"' | '`' => (i + 1..chars.len()).find(|&j| chars[j] == chars[i]),
            _ => None,
        };
        match end {
            Some(end) => {
                let span: String = chars[i..=end].iter().filter(|c| !c.is_whitespace()).collect();
                out.insert(span);
                i = end + 1;
            }
            None => i += 1,
        }
    }
    out
}

/// The content words next to each preposition: ("celsius", "fahrenheit") in "convert Celsius to Fahrenheit".
fn around(words: &[String]) -> BTreeSet<(String, String)> {
    let content = |w: &&String| !FILLERS.contains(&w.as_str()) && !w.chars().all(|c| c.is_ascii_digit());
    let mut out = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        if !PREPOSITIONS.contains(&w.as_str()) {
            continue;
        }
        let before = words[..i].iter().rev().find(content);
        let after = words[i + 1..].iter().find(content);
        if let (Some(b), Some(a)) = (before, after) {
            out.insert((b.clone(), a.clone()));
        }
    }
    out
}

fn features(text: &str) -> Features {
    let mut f = Features { literals: literals(text), ..Features::default() };
    let mut sequence = Vec::new();
    let mut sentence_start = true;
    for raw in text.split(|c: char| c.is_whitespace() || c == '-' || c == '/') {
        let ends_sentence = raw.ends_with(['.', '?', '!', ':']);
        let token = raw.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
        if token.is_empty() {
            sentence_start |= ends_sentence;
            continue;
        }
        let lower: String = token.to_lowercase().chars().filter(|c| *c != '\'' && *c != '’').collect();
        let quoted = raw.contains('`');
        let has_digit = token.chars().any(|c| c.is_ascii_digit());
        let camel = token.chars().skip(1).any(char::is_uppercase) && token.chars().any(char::is_lowercase);
        if quoted || token.contains('_') || token.contains('.') || camel {
            f.identifiers.insert(token.to_owned());
        } else if has_digit {
            // `15`, `1,000`, and the digits of terms like `2FA` or `sha256`.
            let digits = token.replace(',', "");
            for run in digits.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()) {
                let n = run.trim_start_matches('0');
                f.numbers.insert(if n.is_empty() { "0".to_owned() } else { n.to_owned() });
            }
        } else if let Some((_, n)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
            f.numbers.insert((*n).to_owned());
        } else if !sentence_start && token.chars().next().is_some_and(char::is_uppercase) && token != "I" {
            f.entities.insert(lower.clone());
        }
        f.negated |= NEGATIONS.contains(&lower.as_str());
        sequence.push(lower.clone());
        f.words.insert(lower);
        sentence_start = ends_sentence;
    }
    f.around = around(&sequence);
    f
}

/// `Some(reason)` when `a` and `b` must not share an answer, however close their embeddings.
pub fn check(a: &str, b: &str) -> Option<Block> {
    let (fa, fb) = (features(a), features(b));
    if fa.negated != fb.negated {
        return Some(Block::Negation);
    }
    for (x, y) in ANTONYMS {
        let a_has = (fa.words.contains(*x), fa.words.contains(*y));
        let b_has = (fb.words.contains(*x), fb.words.contains(*y));
        if (a_has == (true, false) && b_has == (false, true)) || (a_has == (false, true) && b_has == (true, false)) {
            return Some(Block::Antonym);
        }
    }
    if fa.numbers != fb.numbers {
        return Some(Block::Number);
    }
    if fa.identifiers != fb.identifiers {
        return Some(Block::Identifier);
    }
    if fa.literals != fb.literals {
        return Some(Block::Literal);
    }
    if fa.around.iter().any(|(b, a)| fb.around.contains(&(a.clone(), b.clone())) && a != b) {
        return Some(Block::Order);
    }
    // An entity swap (each names one the other does not); a name moved to the start of a sentence is not.
    if fa.entities.difference(&fb.entities).next().is_some() && fb.entities.difference(&fa.entities).next().is_some() {
        return Some(Block::Entity);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            ("How do I reset my password?", "I forgot my password, how can I reset it?"),
            ("How do I turn on 2FA?", "How can I enable two-factor authentication?"),
            ("What is the capital of France?", "Which city is the capital of France?"),
            ("Paris: how many people live there?", "What is the population of Paris?"),
            ("Sort a list of 3 items in Python", "In Python, how do I sort a list with three items?"),
            ("Is this valid JSON: {\"a\": 1}?", "Is {\"a\": 1} valid JSON?"),
            ("How do I convert Celsius to Fahrenheit?", "What is the formula to convert Celsius to Fahrenheit?"),
        ] {
            assert_eq!(check(a, b), None, "{a} / {b}");
        }
    }

    #[test]
    fn near_misses_are_blocked_with_their_reason() {
        for (a, b, why) in [
            ("How do I enable 2FA?", "How do I disable 2FA?", Block::Antonym),
            ("Is Python slow?", "Isn't Python slow?", Block::Negation),
            ("Should I use a mutex here?", "Should I not use a mutex here?", Block::Negation),
            ("What is 15% of 80?", "What is 15% of 90?", Block::Number),
            ("Explain the function get_user", "Explain the function get_users", Block::Identifier),
            ("What does `parseInt` do?", "What does `parseFloat` do?", Block::Identifier),
            ("What is the capital of France?", "What is the capital of Germany?", Block::Entity),
            ("List the first five primes", "List the first six primes", Block::Number),
            ("Is this valid JSON: {\"a\": 1}?", "Is this valid JSON: {'a': 1}?", Block::Literal),
            ("Is this valid JSON: {\"a\": 1}?", "Is this valid JSON: {\"a\": 1,}?", Block::Literal),
            ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", Block::Order),
            ("How many kilometers are in 10 miles?", "How many miles are in 10 kilometers?", Block::Order),
        ] {
            assert_eq!(check(a, b), Some(why), "{a} / {b}");
        }
    }
}
