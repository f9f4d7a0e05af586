//! velollm-core's modules import each other one way: no cycle, so that they can be read (and laid out) as
//! layers — statistics and records at the bottom, steps and judging above, the run document on top. Tests and
//! doc comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the other top-level modules its non-test code names (`crate::x`).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.iter().next().unwrap().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "fixtures" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn core_modules_import_each_other_without_a_cycle() {
    let mut graph = imports();
    assert!(graph.len() > 20, "the modules were not found: {graph:?}");
    for deps in graph.values_mut() {
        deps.retain(|d| d != "fixtures");
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    // Peel off, layer by layer, the modules whose imports are all already peeled.
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers: Vec<Vec<String>> = Vec::new();
    while placed.len() < known.len() {
        let layer: Vec<String> = known
            .iter()
            .filter(|m| !placed.contains(*m))
            .filter(|m| graph[*m].iter().filter(|d| known.contains(*d)).all(|d| placed.contains(d)))
            .cloned()
            .collect();
        let left: Vec<_> = known.iter().filter(|m| !placed.contains(*m)).map(|m| (m, &graph[m])).collect();
        assert!(!layer.is_empty(), "these modules import each other in a cycle: {left:#?}");
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    // The run document sits above what it holds.
    let depth = |m: &str| layers.iter().position(|l| l.iter().any(|x| x == m)).unwrap();
    for below in ["stats", "record", "metrics", "step", "threshold", "analysis"] {
        assert!(depth(below) < depth("result"), "{below} should sit below result: {layers:?}");
    }
}
