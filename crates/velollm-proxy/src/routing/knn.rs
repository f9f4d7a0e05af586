//! The embedding half of a routing decision: labelled examples of each task type, embedded once at start,
//! and a vote of the `k` nearest ones to the request's last user turn, weighted by similarity. The vote says
//! each type's share of the weight (the router adds up the types that go to one tier); the nearest example's
//! similarity says whether the request looks like anything labelled at all.

use std::path::Path;

pub use velollm_core::analysis::routing_eval::{Example, TASK_TYPES, Vote, parse_examples, task_type};

/// Reads a JSON Lines file of examples (`{"id", "type", "prompt", …}`; other fields are the evaluation's).
/// Every error names the file, the line and the field.
pub fn load(path: &Path) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_examples(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

/// The first `words` whitespace-separated words of `text`: what the router embeds (the embedding's time grows
/// with the text; a request's kind shows in its first words).
pub fn head(text: &str, words: usize) -> String {
    text.split_whitespace().take(words).collect::<Vec<_>>().join(" ")
}

/// The embedded examples.
#[derive(Debug, Default)]
pub struct Classifier {
    examples: Vec<(Example, Vec<f32>)>,
    k: usize,
}

impl Classifier {
    /// Examples with their unit-length embeddings; `k` nearest vote.
    pub fn new(examples: Vec<(Example, Vec<f32>)>, k: usize) -> Classifier {
        Classifier { examples, k: k.max(1) }
    }

    /// The examples.
    pub fn examples(&self) -> impl Iterator<Item = &Example> {
        self.examples.iter().map(|(e, _)| e)
    }

    /// The vote of the `k` examples nearest to `query` (unit length), leaving out the example `exclude` (the
    /// evaluation's leave-one-out); `None` when there is no example to vote.
    pub fn vote(&self, query: &[f32], exclude: Option<&str>) -> Option<Vote> {
        let mut scored: Vec<(f32, &str)> = self
            .examples
            .iter()
            .filter(|(e, _)| exclude != Some(e.id.as_str()))
            .map(|(e, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum::<f32>(), e.task))
            .collect();
        if scored.is_empty() {
            return None;
        }
        let k = self.k.min(scored.len());
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let top = &scored[..k];
        let nearest = top.iter().map(|s| s.0).fold(f32::MIN, f32::max);
        let mut weights = [0f32; TASK_TYPES.len()];
        for (score, task) in top {
            let i = TASK_TYPES.iter().position(|t| t == task).unwrap_or(0);
            weights[i] += score.max(0.0);
        }
        let total: f32 = weights.iter().sum();
        let (best, weight) =
            weights.iter().enumerate().fold((0, f32::MIN), |acc, (i, &w)| if w > acc.1 { (i, w) } else { acc });
        let confidence = if total > 0.0 { weight / total } else { 0.0 };
        let mut shares: Vec<(String, f32)> = TASK_TYPES
            .iter()
            .zip(weights)
            .filter(|(_, w)| *w > 0.0)
            .map(|(t, w)| ((*t).to_owned(), w / total))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(Vote { task: TASK_TYPES[best].to_owned(), confidence, nearest, shares })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, task: &'static str, v: [f32; 2]) -> (Example, Vec<f32>) {
        (Example { id: id.into(), task, prompt: String::new() }, v.to_vec())
    }

    #[test]
    fn the_nearest_examples_vote_by_similarity() {
        let c = Classifier::new(
            vec![ex("a", "linting", [1.0, 0.0]), ex("b", "linting", [0.9, 0.436]), ex("c", "reasoning", [0.0, 1.0])],
            3,
        );
        let v = c.vote(&[1.0, 0.0], None).unwrap();
        assert_eq!(v.task, "linting");
        assert!((v.nearest - 1.0).abs() < 1e-6);
        assert!((v.confidence - 1.0).abs() < 1e-6, "{v:?}"); // c's similarity is 0: no weight
        let v = c.vote(&[0.0, 1.0], None).unwrap();
        assert_eq!(v.task, "reasoning");
        assert!(v.confidence < 0.8 && v.confidence > 0.6, "{v:?}");
        assert_eq!(c.vote(&[1.0, 0.0], Some("a")).unwrap().nearest, 0.9);
        assert!(Classifier::new(vec![ex("a", "linting", [1.0, 0.0])], 3).vote(&[1.0, 0.0], Some("a")).is_none());
    }

    #[test]
    fn label_files_name_the_line_and_field_of_an_error() {
        let dir = std::env::temp_dir().join(format!("velollm-knn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.jsonl");
        std::fs::write(&path, "{\"id\":\"1\",\"type\":\"linting\",\"prompt\":\"p\"}\n{\"id\":\"2\",\"type\":\"poetry\",\"prompt\":\"p\"}\n").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.contains("labels.jsonl:2: field \"type\": unknown task type \"poetry\""), "{e}");
        std::fs::write(&path, "{\"id\":\"1\",\"type\":\"linting\"}\n").unwrap();
        assert!(load(&path).unwrap_err().contains(":1: field \"prompt\": missing"));
        std::fs::write(&path, "{\"id\":\"1\",\"type\":\"linting\",\"prompt\":\"p\"}\n").unwrap();
        assert_eq!(load(&path).unwrap()[0].task, "linting");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
