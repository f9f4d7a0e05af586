//! The runs a report covers ("targets") and the labels that tell them apart in tables and chart legends.

use std::collections::BTreeSet;
use velollm_core::document::result::RunResult;

/// One run in a report, with the label its tables and chart series carry.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Label shown in legends and headings (see [`labels`]).
    pub label: &'a str,
    /// The result document.
    pub run: &'a RunResult,
}

/// Labels for runs loaded from the given file names: the model name when it tells the runs apart, else the
/// target URL, else `model @ url`, else the file name; a number is appended to whatever is still ambiguous.
pub fn labels(runs: &[(&RunResult, &str)]) -> Vec<String> {
    let distinct = |v: &[String]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
    let candidates: [Vec<String>; 4] = [
        runs.iter().map(|(r, _)| r.meta.target.model.clone()).collect(),
        runs.iter().map(|(r, _)| r.meta.target.url.clone()).collect(),
        runs.iter().map(|(r, _)| format!("{} @ {}", r.meta.target.model, r.meta.target.url)).collect(),
        runs.iter().map(|(_, f)| f.to_string()).collect(),
    ];
    let chosen = candidates.iter().find(|c| distinct(c)).unwrap_or(&candidates[3]);
    if distinct(chosen) {
        return chosen.clone();
    }
    chosen.iter().enumerate().map(|(i, l)| format!("{l} ({})", i + 1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, url: &str) -> RunResult {
        let mut r: RunResult = serde_json::from_value(serde_json::json!({
            "schema_version": "1.1", "status": "complete",
            "meta": {"tool": "velollm", "tool_version": "0.1.0", "run_id": "r", "command": [],
                     "started_at": "2026-01-01T00:00:00Z",
                     "target": {"url": url, "dialect": "openai-chat", "dialect_reason": "", "model": model},
                     "host": {"hostname": "", "os": "", "kernel": "", "cpu": "", "cpu_cores": 1, "memory_bytes": 0},
                     "scenario": "s", "seed": 1, "token_policy": ""},
            "steps": [], "benchmarks": []
        }))
        .unwrap();
        r.meta.target.model = model.into();
        r
    }

    #[test]
    fn labels_tell_runs_apart() {
        let (a, b) = (run("m1", "http://a"), run("m2", "http://a"));
        assert_eq!(labels(&[(&a, "a.json"), (&b, "b.json")]), ["m1", "m2"]);
        let (a, b) = (run("m", "http://a"), run("m", "http://b"));
        assert_eq!(labels(&[(&a, "a.json"), (&b, "b.json")]), ["http://a", "http://b"]);
        let (a, b) = (run("m", "http://a"), run("m", "http://a"));
        assert_eq!(labels(&[(&a, "before.json"), (&b, "after.json")]), ["before.json", "after.json"]);
        assert_eq!(labels(&[(&a, "x.json"), (&b, "x.json")]), ["x.json (1)", "x.json (2)"]);
    }
}
