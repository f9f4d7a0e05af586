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
