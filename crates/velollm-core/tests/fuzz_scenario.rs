//! Hostile input (issue 7, item 5): the scenario parser against mutated scenarios and TOML-ish text.
//!
//! Seeds: the committed corpus (`tests/corpus/scenario/*.toml`: every field, valid and invalid values, deep
//! nesting) and the built-in scenarios. Each case is mutated (bytes inserted, deleted, duplicated, spliced from
//! another seed), or assembled from scenario fragments with hostile values (NaN, infinities, huge and negative
//! numbers, empty and duplicate names). What must hold: `Scenario::parse` answers `Ok` or `Err`, never panics
//! and never hangs (each parse runs on a thread of velollm's smallest stack, 2 MiB, with a time limit), and a
//! scenario it accepts can be used: its workloads, length distributions, prefix groups and thresholds work.

use proptest::prelude::*;
use rand::SeedableRng;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use velollm_core::document::scenario::{BUILTINS, Scenario, Workload};
use velollm_core::judge::threshold::Threshold;

/// The corpus files, then the built-in scenarios.
fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/scenario");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seed in {}", dir.display());
    seeds.extend(BUILTINS.iter().map(|(_, text)| text.as_bytes().to_vec()));
    seeds
}

/// Parse `text` and use what it accepts, on a 2 MiB thread, within 10 s: panics propagate, a hang fails.
fn parse_and_use(text: String) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let outcome = Scenario::parse("fuzz.toml", &text).map(|s| exercise(&s)).map_err(|e| e.to_string());
            let _ = tx.send(outcome);
        })
        .unwrap();
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(outcome) => {
            worker.join().unwrap();
            outcome
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker always sends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("Scenario::parse took more than 10 s"),
    }
}

/// What the engine does with an accepted scenario, minus the network: every part must work.
fn exercise(s: &Scenario) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for t in &s.thresholds {
        t.parse::<Threshold>().expect("parse accepted the threshold");
    }
    for step in &s.steps {
        let workload = step.workload().expect("parse checked the workload");
        let (prefix, dist) = match &workload {
            Workload::SyntheticDist(d) => (None, Some(d)),
            Workload::SharedPrefix { prefix, suffix } => (Some(prefix), Some(suffix)),
            _ => (None, None),
        };
        if let Some(d) = dist {
            let (lo, hi) = d.bounds();
            for _ in 0..16 {
                let n = d.sample(&mut rng);
                assert!((lo..=hi).contains(&n), "{n} outside [{lo}, {hi}] for {d:?}");
            }
            let _ = (d.describe(), d.constant());
        }
        if let Some(p) = prefix {
            for _ in 0..16 {
                assert!(p.pick_group(&mut rng) < p.groups, "{p:?}");
            }
            let _ = p.describe();
        }
    }
}

/// One edit of a seed; positions are taken modulo the current length.
#[derive(Debug, Clone)]
enum Edit {
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Duplicate { at: usize, len: usize },
    Splice { at: usize, seed: usize, start: usize, len: usize },
    Flip { at: usize, byte: u8 },
}

/// Fragments of TOML and of scenario values, inserted by mutations.
const TOKENS: &[&str] = &[
    "\n",
    "\n[[steps]]\n",
    "\n[[analyses]]\n",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "=",
    ",",
    "#",
    "\\",
    "\\u{0}",
    "\\uD800",
    "nan",
    "-inf",
    "+inf",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "4294967295",
    "1979-05-27T07:32:00Z",
    "true",
    "name = \"a\"\n",
    "max_tokens = 0\n",
    "iterations = 0\n",
    "prompt_tokens_dist = { kind = \"lognormal\", mean = 1e308, stddev = 1e308 }\n",
    "shared_prefix = { groups = 4294967295, prefix_tokens = 1, zipf = 1e-300 }\n",
    "load = { rate = 0, concurrency = 0, duration = \"0s\" }\n",
    "\u{feff}",
    "é",
    "🎉",
];

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop_oneof![
        3 => prop::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        4 => (any::<usize>(), bytes).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
        2 => (any::<usize>(), 1usize..48).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => (any::<usize>(), 1usize..200).prop_map(|(at, len)| Edit::Duplicate { at, len }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..300)
            .prop_map(|(at, seed, start, len)| Edit::Splice { at, seed, start, len }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip { at, byte }),
    ]
}

fn mutate(seeds: &[Vec<u8>], pick: usize, edits: &[Edit]) -> String {
    let mut v = seeds[pick % seeds.len()].clone();
    for e in edits {
        let pos = |at: usize, v: &Vec<u8>| at % (v.len() + 1);
        match e {
            Edit::Insert { at, bytes } => {
                let i = pos(*at, &v);
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete { at, len } => {
                let i = pos(*at, &v);
                v.drain(i..(i + len).min(v.len()));
            }
            Edit::Duplicate { at, len } => {
                let i = pos(*at, &v);
                let part = v[i..(i + len).min(v.len())].to_vec();
                v.splice(i..i, part);
            }
            Edit::Splice { at, seed, start, len } => {
                let from = &seeds[seed % seeds.len()];
                let s = start % (from.len() + 1);
                let part = from[s..(s + len).min(from.len())].to_vec();
                let i = pos(*at, &v);
                v.splice(i..i, part);
            }
            Edit::Flip { at, byte } if !v.is_empty() => {
                let i = at % v.len();
                v[i] ^= byte | 1;
            }
            Edit::Flip { .. } => {}
        }
    }
    // A scenario file is read as UTF-8 text; invalid bytes never reach the parser.
    String::from_utf8_lossy(&v).into_owned()
}

/// A number as TOML writes it, hostile values included.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:?}")),
        prop::sample::select(&["nan", "-nan", "inf", "-inf", "0", "0.0", "-0.0", "1e308", "5e-324", "1"][..])
            .prop_map(str::to_owned),
    ]
}

/// A step line: a field of `Step` with a plausible or hostile value.
fn step_line() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(&["fixed", "uniform", "normal", "lognormal", "log-normal", "zipf"][..]);
    let mode = prop::sample::select(&["keep-alive", "new", "new-no-resume", "http2", "h3"][..]);
    prop_oneof![
        "[a-z]{0,3}".prop_map(|n| format!("name = \"{n}\"")),
        ".{0,20}".prop_map(|p| format!("prompt = {p:?}")),
        number().prop_map(|n| format!("max_tokens = {n}")),
        number().prop_map(|n| format!("iterations = {n}")),
        number().prop_map(|n| format!("prompt_tokens = {n}")),
        number().prop_map(|n| format!("context_tokens = {n}")),
        number().prop_map(|n| format!("temperature = {n}")),
        (kind.clone(), number(), number(), number(), number()).prop_map(|(k, mean, sd, lo, hi)| format!(
            "prompt_tokens_dist = {{ kind = \"{k}\", mean = {mean}, stddev = {sd}, min = {lo}, max = {hi} }}"
        )),
        (kind, number(), number())
            .prop_map(|(k, lo, hi)| format!("prompt_tokens_dist = {{ kind = \"{k}\", min = {lo}, max = {hi} }}")),
        (number(), number(), number())
            .prop_map(|(g, p, z)| format!("shared_prefix = {{ groups = {g}, prefix_tokens = {p}, zipf = {z} }}")),
        (number(), number(), number()).prop_map(|(c, r, b)| format!(
            "load = {{ concurrency = {c}, rate = {r}, burstiness = {b}, arrival = \"gamma\", duration = \"1s\" }}"
        )),
        ".{0,8}"
            .prop_map(|u| format!("turns = [{{ user = {u:?}, label = \"hit\" }}, {{ user = \"x\", salt = true }}]")),
        ".{0,12}".prop_map(|t| format!("thresholds = [{t:?}]")),
        ".{0,12}".prop_map(|r| format!("checks = [{{ regex = {r:?} }}, {{ number_equals = 1e999 }}]")),
        mode.prop_map(|m| format!("connection = \"{m}\"")),
        Just("cache = { breakpoints = [\"system\", \"prompt\"], ttl = \"5m\" }".to_owned()),
        Just("dataset = \"d.jsonl\"".to_owned()),
        Just("tools = [{ type = \"function\", function = { name = \"f\" } }]".to_owned()),
        Just("cold = true".to_owned()),
    ]
}

/// A scenario assembled from fragments: most are accepted or refused by validation, not by TOML syntax.
fn assembled() -> impl Strategy<Value = String> {
    let step = prop::collection::vec(step_line(), 0..8).prop_map(|lines| format!("[[steps]]\n{}\n", lines.join("\n")));
    let analysis = prop::sample::select(
        &[
            "[[analyses]]\nkind = \"fit\"\nx = \"prompt_tokens\"\ny = \"ttft\"\n",
            "[[analyses]]\nkind = \"turns\"\nstep = \"a\"\n",
            "[[analyses]]\nkind = \"compare\"\nbaseline = \"a\"\ncandidate = \"b\"\n",
            "[[analyses]]\nkind = \"prompt_cache\"\nbaseline = \"a\"\n",
            "",
        ][..],
    );
    (".{0,12}", prop::collection::vec(step, 0..4), analysis).prop_map(|(threshold, steps, analysis)| {
        format!("name = \"fuzz\"\nthresholds = [{threshold:?}]\n{analysis}{}", steps.concat())
    })
}

fn text() -> impl Strategy<Value = String> {
    let seeds = seeds();
    let n = seeds.len();
    prop_oneof![
        3 => (0..n, prop::collection::vec(edit(), 0..6)).prop_map(move |(pick, edits)| mutate(&seeds, pick, &edits)),
        2 => assembled(),
        1 => ".{0,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_scenario_text_is_accepted_or_refused_without_panic_or_hang(text in text()) {
        let _ = parse_and_use(text);
    }

    #[test]
    fn any_threshold_text_parses_or_errs(text in "[a-z_.0-9 <>=!%]{0,24}|.{0,24}") {
        let _ = text.parse::<Threshold>();
    }
}

#[test]
fn the_seed_corpus_parses_as_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/scenario");
    for (file, ok) in [
        ("minimal.toml", true),
        ("distributions.toml", true),
        ("conversation.toml", true),
        ("checks_and_tools.toml", true),
        ("dataset.toml", true),
        ("invalid.toml", false),
        ("deep_nesting.toml", false),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let got = parse_and_use(text);
        assert_eq!(got.is_ok(), ok, "{file}: {got:?}");
    }
    for (name, text) in BUILTINS {
        assert_eq!(parse_and_use(text.to_string()), Ok(()), "built-in {name}");
    }
}
