//! Text to vector: in process by default (all-MiniLM-L6-v2 through `velollm-embed`, on the blocking pool,
//! at most one sentence per core at a time), or any OpenAI-compatible `/v1/embeddings` (llama-server
//! `--embedding`, vLLM, TEI, Ollama). A failure or a timeout is an error the caller turns into a miss.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Request, header};
use serde_json::Value;
use tokio::sync::Semaphore;
use velollm_embed::SentenceEncoder;

use crate::config::UpstreamConfig;
use crate::upstream::Upstream;

/// An embedder.
#[derive(Debug)]
pub enum Embedder {
    /// A model run in this process.
    Local {
        /// The model.
        model: Arc<SentenceEncoder>,
        /// One sentence per core at a time: more would only share the cores.
        permits: Arc<Semaphore>,
    },
    /// An OpenAI-compatible embeddings endpoint.
    Remote {
        /// Its connection pool.
        upstream: Box<Upstream>,
        /// The `model` sent in each request.
        model: String,
        /// Learned from the first answer (or the check at start).
        dimension: OnceLock<usize>,
    },
}

impl Embedder {
    /// Loads a model directory (`scripts/embedder.sh path` prints the default one).
    pub fn local(dir: &Path) -> Result<Embedder, String> {
        let model = SentenceEncoder::load(dir).map_err(|e| format!("embedding model: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Embedder::Local { model: Arc::new(model), permits: Arc::new(Semaphore::new(cores)) })
    }

    /// An endpoint at `url` (its base, or the whole `…/v1/embeddings`), asked for `model`.
    pub fn remote(url: &str, model: &str, connect_timeout: Duration) -> Result<Embedder, String> {
        let base = url.trim_end_matches('/').trim_end_matches("/v1/embeddings").to_owned();
        let config = UpstreamConfig {
            name: "embedder".into(),
            url: base,
            dialects: Vec::new(),
            http2: false,
            ca_cert: None,
            api_key_env: None,
        };
        let upstream = Upstream::new(&config, connect_timeout).map_err(|e| format!("--embedder {url:?}: {e}"))?;
        Ok(Embedder::Remote { upstream: Box::new(upstream), model: model.to_owned(), dimension: OnceLock::new() })
    }

    /// The model's name, which (with each vector's length) names the vectors' space: entries from another
    /// model or dimension are never compared.
    pub fn name(&self) -> String {
        match self {
            Embedder::Local { model, .. } => format!("local:{}", model.name()),
            Embedder::Remote { upstream, model, .. } => format!("remote:{}:{model}", upstream.origin()),
        }
    }

    /// The vectors' length, once known.
    pub fn dimension(&self) -> Option<usize> {
        match self {
            Embedder::Local { model, .. } => Some(model.dimension()),
            Embedder::Remote { dimension, .. } => dimension.get().copied(),
        }
    }

    /// The unit-length embedding of `text`, within `timeout`.
    pub async fn embed(&self, text: &str, timeout: Duration) -> Result<Vec<f32>, String> {
        self.embed_prefix(text, usize::MAX, timeout).await
    }

    /// The unit-length embedding of the first `max_tokens` tokens of `text`, within `timeout`. A remote
    /// embedder gets the whole text: its tokens are its own.
    pub async fn embed_prefix(&self, text: &str, max_tokens: usize, timeout: Duration) -> Result<Vec<f32>, String> {
        match tokio::time::timeout(timeout, self.embed_inner(text, max_tokens, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(format!("the embedder did not answer within {timeout:?}")),
        }
    }

    async fn embed_inner(&self, text: &str, max_tokens: usize, timeout: Duration) -> Result<Vec<f32>, String> {
        match self {
            Embedder::Local { model, permits } => {
                let _permit = permits.acquire().await.map_err(|e| e.to_string())?;
                let (model, text) = (Arc::clone(model), text.to_owned());
                tokio::task::spawn_blocking(move || model.embed_prefix(&text, max_tokens))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Embedder::Remote { upstream, model, dimension } => {
                let body = serde_json::json!({ "model": model, "input": text }).to_string();
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(upstream.uri("/v1/embeddings"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Bytes::from(body))
                    .map_err(|e| e.to_string())?;
                let response = upstream.send(request, timeout).await.map_err(|e| e.to_string())?;
                let status = response.status;
                let bytes = response.body.collect(16 << 20).await?;
                if !status.is_success() {
                    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                    return Err(format!("the embedder answered {status}: {text}"));
                }
                let vector = parse_embedding(&bytes)?;
                let expected = *dimension.get_or_init(|| vector.len());
                if vector.len() != expected {
                    return Err(format!("the embedder returned {} dimensions, {expected} before", vector.len()));
                }
                Ok(vector)
            }
        }
    }
}

/// `data[0].embedding` of an OpenAI embeddings answer (llama-server without `/v1` answers a bare list of
/// `{embedding}` too), scaled to unit length.
fn parse_embedding(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("the embedder's answer is not JSON: {e}"))?;
    let first = v.get("data").and_then(|d| d.get(0)).or_else(|| v.get(0));
    let mut embedding =
        first.and_then(|d| d.get("embedding")).ok_or("the embedder's answer has no data[0].embedding")?;
    // llama-server's native answer nests one list per token position when pooling is off; take the first.
    if let Some(inner) = embedding.get(0).filter(|e| e.is_array()) {
        embedding = inner;
    }
    let vector: Vec<f32> = embedding
        .as_array()
        .ok_or("data[0].embedding is not a list")?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).ok_or("data[0].embedding holds a non-number"))
        .collect::<Result<_, _>>()?;
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if vector.is_empty() || norm == 0.0 || !norm.is_finite() {
        return Err("the embedder returned an empty or zero vector".into());
    }
    Ok(vector.into_iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_answers_are_read_and_scaled() {
        let v = parse_embedding(br#"{"object":"list","data":[{"embedding":[3,4],"index":0}]}"#).unwrap();
        assert_eq!(v, vec![0.6, 0.8]);
        assert_eq!(parse_embedding(br#"[{"embedding":[[0,2]]}]"#).unwrap(), vec![0.0, 1.0]);
        assert!(parse_embedding(br#"{"data":[]}"#).unwrap_err().contains("data[0].embedding"));
        assert!(parse_embedding(br#"{"data":[{"embedding":[0,0]}]}"#).unwrap_err().contains("zero"));
        assert!(parse_embedding(b"nope").is_err());
    }
}
