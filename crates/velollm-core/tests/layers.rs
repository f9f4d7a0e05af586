//! velollm-core's modules sit in folders by layer, and imports run one way: a layer names only the layers
//! below it, never one beside or above, and the modules inside a layer import each other without a cycle.
//! Tests and doc comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first; the layers in one entry sit side by side and do not import each other.
const LAYERS: &[&[&str]] =
    &[&["stats"], &["measure"], &["workload", "server"], &["aggregate"], &["judge"], &["analysis"], &["document"]];

fn rank(layer: &str) -> usize {
    LAYERS.iter().position(|l| l.contains(&layer)).unwrap_or_else(|| panic!("module {layer} is in no layer"))
}

/// A module's path inside the crate (`measure::record`), from its file's path (`measure/record.rs`, or a
/// file below `measure/prom/` for `measure::prom`).
fn module_of(relative: &Path) -> String {
    let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    parts.into_iter().take(2).collect::<Vec<_>>().join("::")
}

/// Each module (two levels deep at most) and the modules its non-test code names (`crate::x::y`).
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
        let module = module_of(path.strip_prefix(&src).unwrap());
        if module == "lib" || module == "fixtures" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let path: Vec<String> = line[at + 7..]
                    .split("::")
                    .take(2)
                    .map(|p| p.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect())
                    .collect();
                // `crate::stats::Summary` names the module `stats`; `crate::measure::record::X` names `measure::record`.
                let named = match path.as_slice() {
                    [layer, sub, ..] if !sub.is_empty() && has_module(&src, layer, sub) => format!("{layer}::{sub}"),
                    [layer, ..] => layer.clone(),
                    [] => continue,
                };
                if named != module && named != "fixtures" && !named.is_empty() {
                    deps.insert(named);
                }
            }
        }
    }
    graph
}

/// Whether `layer/sub.rs` (or `layer/sub/`) exists.
fn has_module(src: &Path, layer: &str, sub: &str) -> bool {
    src.join(layer).join(format!("{sub}.rs")).exists() || src.join(layer).join(sub).is_dir()
}

fn layer_of(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn every_import_points_down_the_layers() {
    let graph = imports();
    assert!(graph.len() > 30, "the modules were not found: {graph:?}");
    let mut wrong = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            let (from, to) = (layer_of(module), layer_of(dep));
            if from != to && rank(to) >= rank(from) {
                wrong.push(format!("{module} imports {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run up or across the layers ({LAYERS:?}):\n{}", wrong.join("\n"));
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let graph = imports();
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    // Peel off the modules whose imports are all already peeled; what is left is a cycle.
    let mut placed: BTreeSet<String> = BTreeSet::new();
    while placed.len() < known.len() {
        let next: Vec<String> = known
            .iter()
            .filter(|m| !placed.contains(*m))
            .filter(|m| graph[*m].iter().filter(|d| known.contains(*d)).all(|d| placed.contains(d)))
            .cloned()
            .collect();
        let left: Vec<_> = known.iter().filter(|m| !placed.contains(*m)).map(|m| (m, &graph[m])).collect();
        assert!(!next.is_empty(), "these modules import each other in a cycle: {left:#?}");
        placed.extend(next);
    }
}

#[test]
fn every_module_is_in_a_layer_folder() {
    for module in imports().keys() {
        rank(layer_of(module));
    }
}
