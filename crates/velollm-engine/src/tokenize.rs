//! Local token counting with a Hugging Face `tokenizer.json`, used when the server reports no usage.

use std::path::Path;

/// A token counter loaded from a `tokenizer.json` file (offline; nothing is downloaded).
pub struct TokenCounter {
    tokenizer: tokenizers::Tokenizer,
}

impl TokenCounter {
    /// Load `tokenizer.json`; the error says which file and why.
    pub fn from_file(path: &Path) -> Result<TokenCounter, String> {
        tokenizers::Tokenizer::from_file(path).map(|tokenizer| TokenCounter { tokenizer }).map_err(|e| {
            format!("cannot load tokenizer '{}': {e} (expected a Hugging Face tokenizer.json)", path.display())
        })
    }

    /// Tokens in `text`, without special tokens.
    pub fn count(&self, text: &str) -> u64 {
        self.tokenizer.encode(text, false).map(|e| e.len() as u64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny word-level tokenizer.json written by hand (no download).
    pub(crate) fn word_level(dir: &Path) -> std::path::PathBuf {
        let words = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he"];
        let mut vocab = serde_json::Map::new();
        vocab.insert("[UNK]".into(), 0.into());
        for (i, w) in words.iter().enumerate() {
            vocab.insert((*w).into(), (i + 1).into());
        }
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        let path = dir.join(format!("velollm-tokenizer-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        path
    }

    #[test]
    fn counts_with_a_tokenizer_file_and_reports_a_bad_one() {
        let path = word_level(&std::env::temp_dir());
        let t = TokenCounter::from_file(&path).unwrap();
        assert_eq!(t.count("the of and zebra"), 4);
        // Synthetic prompts hit the requested length exactly when a tokenizer is given.
        for n in [1, 7, 64] {
            assert_eq!(t.count(&crate::prompts::synthetic(n, 3, Some(&t))), u64::from(n));
        }
        let e = TokenCounter::from_file(Path::new("/nonexistent/tokenizer.json")).err().unwrap();
        assert!(e.contains("/nonexistent/tokenizer.json"), "{e}");
        let _ = std::fs::remove_file(path);
    }
}
