//! Hostile input (issue 7, item 5): property tests of the SSE and NDJSON decoders and of every dialect's
//! chunk parser, started from the committed seed corpus (`tests/corpus/sse/*`, `tests/corpus/ndjson/*`: real
//! stream shapes of each server) and mutated, plus arbitrary bytes and arbitrary JSON values.
//!
//! What must hold: no input makes them panic; a decoder's output is bounded by its input and by its
//! message limit; the same input gives the same messages (and the same refusal) however it is split into
//! pushes. The case counts keep each test to a few seconds.

use proptest::prelude::*;
use serde_json::{Map, Value};
use std::path::Path;
use velollm_engine::dialect::DialectKind;
use velollm_engine::wire::ndjson::NdjsonDecoder;
use velollm_engine::wire::sse::{SseDecoder, SseEvent};
use velollm_engine::wire::{Decoder, Framing, MAX_MESSAGE_BYTES, TooLarge};

/// The seed files of `tests/corpus/<kind>/`, sorted by name.
fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seed in {}", dir.display());
    seeds
}

/// Fragments that matter to the decoders and parsers, inserted by mutations.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"data:",
    b"event: ",
    b": ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"[DONE]",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\"choices\":[{\"delta\":{\"content\":",
    b"\"type\":\"content_block_delta\"",
    b"\"done\":true",
    b"\"index\":4294967296",
    b"\"tool_calls\":[{\"index\":99999999999}]",
];

/// One edit of a seed; positions are taken modulo the current length.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Splice { at: usize, seed: usize, start: usize, len: usize },
    Truncate { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes =
        prop_oneof![prop::sample::select(TOKENS).prop_map(<[u8]>::to_vec), prop::collection::vec(any::<u8>(), 1..8),];
    prop_oneof![
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip { at, byte }),
        3 => (any::<usize>(), bytes).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..32).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Duplicate { at, len }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..128)
            .prop_map(|(at, seed, start, len)| Edit::Splice { at, seed, start, len }),
        1 => any::<usize>().prop_map(|at| Edit::Truncate { at }),
    ]
}

/// `seeds[pick]` with `edits` applied (other seeds provide the spliced bytes).
fn mutate(seeds: &[Vec<u8>], pick: usize, edits: &[Edit]) -> Vec<u8> {
    let mut v = seeds[pick % seeds.len()].clone();
    for e in edits {
        let pos = |at: usize, v: &Vec<u8>| at % (v.len() + 1);
        match e {
            Edit::Flip { at, byte } if !v.is_empty() => {
                let i = at % v.len();
                v[i] ^= byte | 1;
            }
            Edit::Flip { .. } => {}
            Edit::Insert { at, bytes } => {
                let i = pos(*at, &v);
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete { at, len } => {
                let i = pos(*at, &v);
                let end = (i + len).min(v.len());
                v.drain(i..end);
            }
            Edit::Duplicate { at, len } => {
                let i = pos(*at, &v);
                let part: Vec<u8> = v[i..(i + len).min(v.len())].to_vec();
                v.splice(i..i, part);
            }
            Edit::Splice { at, seed, start, len } => {
                let from = &seeds[seed % seeds.len()];
                let s = start % (from.len() + 1);
                let part = &from[s..(s + len).min(from.len())];
                let i = pos(*at, &v);
                v.splice(i..i, part.iter().copied());
            }
            Edit::Truncate { at } => {
                let i = pos(*at, &v);
                v.truncate(i);
            }
        }
    }
    v
}

/// A mutated seed of `kind` (three times in four) or arbitrary bytes.
fn input(kind: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(kind);
    let n = seeds.len();
    prop_oneof![
        3 => (0..n, prop::collection::vec(edit(), 0..6)).prop_map(move |(pick, edits)| mutate(&seeds, pick, &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// Cut points within an input of at most `len` bytes (sorted and clamped when used).
fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..24)
}

/// The push boundaries: `cuts` modulo the input length, sorted.
fn boundaries(cuts: &[usize], len: usize) -> Vec<usize> {
    let mut b: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    b.sort_unstable();
    b
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![Just(MAX_MESSAGE_BYTES), 1usize..200]
}

/// Decode `input` with an SSE decoder of `limit`, pushed in the pieces `cuts` delimits.
fn sse(input: &[u8], cuts: &[usize], limit: usize) -> (Vec<SseEvent>, Option<TooLarge>) {
    let mut d = SseDecoder::with_limit(limit);
    let mut out = Vec::new();
    let mut start = 0;
    for &c in boundaries(cuts, input.len()).iter().chain(std::iter::once(&input.len())) {
        if let Err(e) = d.push(&input[start..c], |e| out.push(e)) {
            return (out, Some(e));
        }
        start = c;
    }
    out.extend(d.finish());
    (out, None)
}

/// Decode `input` with an NDJSON decoder of `limit`, pushed in the pieces `cuts` delimits.
fn ndjson(input: &[u8], cuts: &[usize], limit: usize) -> (Vec<Vec<u8>>, Option<TooLarge>) {
    let mut d = NdjsonDecoder::with_limit(limit);
    let mut out = Vec::new();
    let mut start = 0;
    for &c in boundaries(cuts, input.len()).iter().chain(std::iter::once(&input.len())) {
        if let Err(e) = d.push(&input[start..c], |l| out.push(l.to_vec())) {
            return (out, Some(e));
        }
        start = c;
    }
    out.extend(d.finish());
    (out, None)
}

/// Every message the engine's decoder gets out of `input` (up to its refusal, if any).
fn messages(framing: Framing, input: &[u8]) -> Vec<Vec<u8>> {
    let mut d = Decoder::new(framing);
    let mut out = Vec::new();
    if d.push(input, &mut out).is_ok() {
        out.extend(d.finish());
    }
    out
}

/// Field names and values the dialect parsers look at, so arbitrary JSON reaches their deeper paths.
const KEYS: &[&str] = &[
    "choices",
    "delta",
    "content",
    "text",
    "role",
    "reasoning_content",
    "reasoning",
    "tool_calls",
    "index",
    "id",
    "function",
    "name",
    "arguments",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "prompt_tokens_details",
    "cached_tokens",
    "completion_tokens_details",
    "reasoning_tokens",
    "timings",
    "prompt_n",
    "prompt_ms",
    "predicted_n",
    "predicted_ms",
    "cache_n",
    "draft_n",
    "draft_n_accepted",
    "stop",
    "stop_type",
    "tokens",
    "tokens_predicted",
    "error",
    "message",
    "done",
    "done_reason",
    "response",
    "thinking",
    "eval_count",
    "eval_duration",
    "prompt_eval_count",
    "prompt_eval_cached_count",
    "prompt_eval_duration",
    "load_duration",
    "total_duration",
    "type",
    "content_block",
    "partial_json",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "signature",
    "input",
];

const WORDS: &[&str] = &[
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "text_delta",
    "thinking_delta",
    "input_json_delta",
    "signature_delta",
    "tool_use",
    "text",
    "thinking",
    "ping",
    "error",
    "assistant",
    "stop",
    "length",
    "tool_calls",
    "[DONE]",
    "",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        let key = prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "[a-z_]{1,10}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    #[test]
    fn sse_decoding_is_bounded_and_split_independent(input in input("sse"), cuts in cuts(), limit in limit()) {
        let whole = sse(&input, &[], limit);
        prop_assert_eq!(&sse(&input, &cuts, limit), &whole);
        let data: usize = whole.0.iter().map(|e| e.data.len()).sum();
        prop_assert!(data <= input.len(), "{} bytes of data out of {} in", data, input.len());
        prop_assert!(whole.0.iter().all(|e| e.data.len() <= limit));
    }

    #[test]
    fn ndjson_decoding_is_bounded_and_split_independent(input in input("ndjson"), cuts in cuts(), limit in limit()) {
        let whole = ndjson(&input, &[], limit);
        prop_assert_eq!(&ndjson(&input, &cuts, limit), &whole);
        let data: usize = whole.0.iter().map(Vec::len).sum();
        prop_assert!(data <= input.len());
        prop_assert!(whole.0.iter().all(|l| l.len() <= limit && !l.is_empty()));
    }

    /// Every dialect reads any decoded message (mutated real streams) without panicking.
    #[test]
    fn dialects_parse_any_decoded_message(sse_input in input("sse"), ndjson_input in input("ndjson")) {
        let all = messages(Framing::Sse, &sse_input).into_iter().chain(messages(Framing::Ndjson, &ndjson_input));
        for m in all {
            for d in DialectKind::ALL {
                let _ = d.parse(&m);
            }
        }
    }

    /// Every dialect reads any JSON value built from the fields they look at without panicking.
    #[test]
    fn dialects_parse_any_json_value(v in json_value()) {
        let text = v.to_string();
        for d in DialectKind::ALL {
            if let Ok(p) = d.parse(text.as_bytes()) {
                prop_assert!(p.pieces.iter().map(|(_, t)| t.len()).sum::<usize>() <= text.len());
            }
        }
    }
}

#[test]
fn the_seed_corpus_decodes_into_what_each_dialect_expects() {
    // The seeds are real shapes: each decodes and parses cleanly, so mutations start from valid streams.
    let cases = [
        ("sse/openai_chat.txt", DialectKind::OpenAiChat),
        ("sse/openai_completions_crlf.txt", DialectKind::OpenAiCompletions),
        ("sse/anthropic.txt", DialectKind::Anthropic),
        ("sse/llamacpp.txt", DialectKind::LlamaCpp),
        ("sse/fields_and_line_endings.txt", DialectKind::OpenAiChat),
        ("ndjson/ollama_chat.ndjson", DialectKind::OllamaChat),
        ("ndjson/ollama_generate_crlf.ndjson", DialectKind::OllamaGenerate),
    ];
    for (file, dialect) in cases {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(file)).unwrap();
        // Blank events (`data` alone) are keep-alives the engine skips.
        let decoded = messages(dialect.framing(), &bytes);
        let parsed: Vec<_> = decoded.iter().filter(|m| !m.trim_ascii().is_empty()).map(|m| dialect.parse(m)).collect();
        assert!(parsed.len() >= 3, "{file}");
        assert!(parsed.iter().all(Result::is_ok), "{file}: {parsed:?}");
        let parsed: Vec<_> = parsed.into_iter().map(Result::unwrap).collect();
        assert!(parsed.iter().any(|p| p.finish_reason.is_some() || p.done), "{file}: ends");
        assert!(parsed.iter().any(|p| !p.pieces.is_empty()), "{file}: has output");
    }
}
