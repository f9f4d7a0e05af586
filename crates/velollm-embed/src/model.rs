//! A sentence-transformers model directory as one embedder: `tokenizer.json` (WordPiece), `config.json` (the
//! BERT shape) and `model.safetensors`; a text becomes the mean of its tokens' last-layer vectors, scaled to
//! unit length, so that a dot product of two embeddings is their cosine similarity.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::bert::{Bert, Config};
use crate::safetensors::{FormatError, SafeTensors};

/// Why a model cannot be loaded or a text embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file of the model directory cannot be read.
    #[error("cannot read {path}: {source} (fetch the model with scripts/embedder.sh install)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `config.json` lacks a field or is not JSON.
    #[error("{path}: {why}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The weights do not fit the configuration.
    #[error("{path}: {source}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// The tokenizer cannot be loaded or cannot encode the text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

/// A loaded sentence encoder.
#[derive(Debug)]
pub struct SentenceEncoder {
    name: String,
    tokenizer: Tokenizer,
    bert: Bert,
}

impl SentenceEncoder {
    /// Loads the model in `dir`; its name is the directory's name.
    pub fn load(dir: &Path) -> Result<SentenceEncoder, EmbedError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|source| EmbedError::Read { path, source })
        };
        let config_path = dir.join("config.json");
        let config =
            parse_config(&read("config.json")?).map_err(|why| EmbedError::Config { path: config_path, why })?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| EmbedError::Tokenizer(format!("{}: {e}", dir.join("tokenizer.json").display())))?;
        // The file pads every text to a fixed length; one text at a time needs no padding (and no mask).
        tokenizer.with_padding(None);
        let weights_path = dir.join("model.safetensors");
        let weights = SafeTensors::parse(read("model.safetensors")?)
            .and_then(|st| Bert::load(&st, config))
            .map_err(|source| EmbedError::Weights { path: weights_path, source })?;
        let name = dir.file_name().map_or_else(|| "embedder".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(SentenceEncoder { name, tokenizer, bert: weights })
    }

    /// The model's name (its directory's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of every embedding.
    pub fn dimension(&self) -> usize {
        self.bert.config().hidden
    }

    /// The unit-length embedding of `text` (truncated to the model's positions).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed_prefix(text, usize::MAX)
    }

    /// The unit-length embedding of the start of `text`: at most `max_tokens` tokens, the closing separator
    /// included (and never more than the model's positions). The encoder costs a fixed time per call plus a
    /// time per token, so a cap bounds it.
    pub fn embed_prefix(&self, text: &str, max_tokens: usize) -> Result<Vec<f32>, EmbedError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let max = self.bert.config().max_positions.min(max_tokens).max(2);
        let vocabulary = self.bert.vocabulary() as u32;
        let all = encoding.get_ids();
        let ids: Vec<u32> = match all.split_last() {
            // Keep the separator that closes the sequence, as the model saw in training.
            Some((last, rest)) if all.len() > max => rest[..max - 1].iter().chain([last]).copied().collect(),
            _ => all.to_vec(),
        };
        if let Some(id) = ids.iter().find(|&&id| id >= vocabulary) {
            return Err(EmbedError::Tokenizer(format!("token id {id} is outside the model's {vocabulary} tokens")));
        }
        if ids.is_empty() {
            return Err(EmbedError::Tokenizer("the text gave no tokens".into()));
        }
        let h = self.dimension();
        let states = self.bert.encode(&ids);
        let mut pooled = vec![0.0f32; h];
        for row in states.chunks_exact(h) {
            pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        pooled.iter_mut().for_each(|v| *v /= norm);
        Ok(pooled)
    }
}

/// The BERT shape from a Hugging Face `config.json`.
fn parse_config(bytes: &[u8]) -> Result<Config, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| v.get(name).and_then(Value::as_u64).map(|n| n as usize).ok_or(format!("no {name:?}"));
    let config = Config {
        hidden: field("hidden_size")?,
        heads: field("num_attention_heads")?,
        layers: field("num_hidden_layers")?,
        intermediate: field("intermediate_size")?,
        max_positions: field("max_position_embeddings")?,
        eps: v.get("layer_norm_eps").and_then(Value::as_f64).unwrap_or(1e-12) as f32,
    };
    if config.heads == 0 || !config.hidden.is_multiple_of(config.heads) {
        return Err(format!("hidden_size {} is not a multiple of num_attention_heads {}", config.hidden, config.heads));
    }
    if let Some(act) = v.get("hidden_act").and_then(Value::as_str).filter(|a| *a != "gelu") {
        return Err(format!("hidden_act {act:?}; only BERT's \"gelu\" is implemented"));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let ok = br#"{"hidden_size":384,"num_attention_heads":12,"num_hidden_layers":6,"intermediate_size":1536,"max_position_embeddings":512,"hidden_act":"gelu"}"#;
        assert_eq!(parse_config(ok).unwrap().heads, 12);
        assert!(parse_config(br#"{"hidden_size":384}"#).unwrap_err().contains("num_attention_heads"));
        let relu = br#"{"hidden_size":384,"num_attention_heads":12,"num_hidden_layers":6,"intermediate_size":1536,"max_position_embeddings":512,"hidden_act":"relu"}"#;
        assert!(parse_config(relu).unwrap_err().contains("relu"));
        let err = SentenceEncoder::load(Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(err.contains("scripts/embedder.sh"), "{err}");
    }
}
