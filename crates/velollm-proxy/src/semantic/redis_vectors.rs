//! The semantic layer's shared vector store: Redis Stack's vector search (RediSearch `FT.CREATE … VECTOR HNSW`),
//! so that proxy replicas lend each other's answers. One hash per question, `INDEX:CONTEXT:ANSWER`, with the
//! context as a tag (a search only ever looks inside its own context), the vector as little-endian `f32`, the
//! question's text (for the lexical guard) and its answer's key; it expires with the answer.
//!
//! A search looks at [`ef_runtime_for`] the index's size candidates (`EF_RUNTIME`: 64 up to 100,000 questions,
//! 256 at 1,000,000), not RediSearch's default of 10, which finds the nearest stored question 89–93 % of the
//! time at 100,000 and 41 % at 1,000,000 (docs/semantic-cache.md). `[semantic] ef_search` fixes it. The size is
//! read from `FT.INFO` when the index is checked at start and again, at most once a minute, after an insert
//! (in the proxy, off the request's path): a lookup never waits for it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::index::{GrowingWidth, Nearest};
use crate::normalize::CacheKey;
use crate::resp::{Client, Reply};

/// How often the index's size is read again for [`ef_runtime_for`].
const SIZE_EVERY: Duration = Duration::from_secs(60);

/// Candidates a search looks at in an index of `questions`, unless `[semantic] ef_search` says otherwise: 64
/// up to 100,000, then ×4 for every ×10 (256 at 1,000,000), at most 1,024. Measured at 1,000,000 questions,
/// recall@1 is 0.91 at 64 and 1.000 at 256, for a p99 of 2.6 ms (docs/semantic-cache.md).
pub fn ef_runtime_for(questions: usize) -> usize {
    GrowingWidth { base: 64, from: 100_000, per_decade: 4.0, max: 1024 }.at(questions)
}

/// Questions in a Redis Stack server.
#[derive(Debug)]
pub struct RedisVectors {
    client: Client,
    index: String,
    ttl: Duration,
    /// A width fixed by the configuration.
    ef_runtime: Option<usize>,
    /// The index's size when last read, and when that was.
    size: AtomicUsize,
    size_read: Mutex<Option<Instant>>,
}

impl RedisVectors {
    /// A store at `url` (`redis://HOST:PORT`) under the index `index`.
    pub fn new(url: &str, index: &str, ttl: Duration, timeout: Duration) -> Result<RedisVectors, String> {
        super::store::check_index(index)?;
        Ok(RedisVectors {
            client: Client::new(url, timeout, "--semantic-store")?,
            index: index.to_owned(),
            ttl,
            ef_runtime: None,
            size: AtomicUsize::new(0),
            size_read: Mutex::new(None),
        })
    }

    /// Searches look at `ef` candidates (`None`: [`ef_runtime_for`] the index's size).
    pub fn with_ef_runtime(mut self, ef: Option<usize>) -> RedisVectors {
        self.ef_runtime = ef.map(|ef| ef.max(1));
        self
    }

    /// The width for the next search: the configured one, or the one for the index's size as last read.
    fn ef_runtime(&self) -> usize {
        self.ef_runtime.unwrap_or_else(|| ef_runtime_for(self.size.load(Ordering::Relaxed)))
    }

    /// Keeps the index's size from an `FT.INFO` reply, and when it was read.
    fn keep_size(&self, info: &Reply) {
        if let Some(n) = find_number(info, "num_docs") {
            self.size.store(n, Ordering::Relaxed);
        }
        *self.size_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// Reads the index's size again when the last reading is older than a minute: one insert claims the
    /// reading, the others going on at the same time do not repeat it (a failed reading keeps the last, and is
    /// tried again a minute later).
    async fn refresh_size(&self) {
        if self.ef_runtime.is_some() {
            return;
        }
        let stale = {
            let mut read = self.size_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let stale = read.is_none_or(|at| at.elapsed() >= SIZE_EVERY);
            if stale {
                *read = Some(Instant::now());
            }
            stale
        };
        if stale && let Ok(info) = self.client.call(&[b"FT.INFO", self.index.as_bytes()]).await {
            self.keep_size(&info);
        }
    }

    /// `HOST:PORT`.
    pub fn addr(&self) -> &str {
        self.client.addr()
    }

    /// Creates the index for `dimension`-long vectors, or checks that the existing one has that dimension.
    pub async fn ensure(&self, dimension: usize) -> Result<(), String> {
        match self.client.call(&[b"FT.INFO", self.index.as_bytes()]).await {
            Ok(info) => match find_number(&info, "dim") {
                Some(d) if d == dimension => {
                    self.keep_size(&info);
                    Ok(())
                }
                Some(d) => Err(format!(
                    "the vector store's index {:?} at {} holds {d}-dimension vectors and the embedder makes \
                     {dimension}: drop it (FT.DROPINDEX {} DD) or name another with [semantic] index",
                    self.index,
                    self.addr(),
                    self.index
                )),
                None => Err(format!("FT.INFO {} did not say the vectors' dimension", self.index)),
            },
            Err(e) if e.contains("Unknown index") || e.contains("no such index") => {
                let (prefix, dim) = (format!("{}:", self.index), dimension.to_string());
                let args: Vec<&[u8]> = vec![
                    b"FT.CREATE",
                    self.index.as_bytes(),
                    b"ON",
                    b"HASH",
                    b"PREFIX",
                    b"1",
                    prefix.as_bytes(),
                    b"SCHEMA",
                    b"ctx",
                    b"TAG",
                    b"vec",
                    b"VECTOR",
                    b"HNSW",
                    b"6",
                    b"TYPE",
                    b"FLOAT32",
                    b"DIM",
                    dim.as_bytes(),
                    b"DISTANCE_METRIC",
                    b"COSINE",
                ];
                self.client.call(&args).await.map(drop)
            }
            Err(e) if e.contains("unknown command") => Err(format!(
                "the server at {} has no vector search (FT.*): use Redis Stack (scripts/redis-stack.sh start)",
                self.addr()
            )),
            Err(e) => Err(e),
        }
    }

    fn key(&self, context: &CacheKey, answer: &CacheKey) -> String {
        format!("{}:{}:{}", self.index, context.hex(), answer.hex())
    }

    /// The question of `context` nearest to `query`.
    pub async fn nearest(&self, context: &CacheKey, query: &[f32]) -> Result<Option<Nearest>, String> {
        self.nearest_ef(context, query, self.ef_runtime()).await
    }

    /// The question of `context` nearest to `query`, looking at `ef` candidates.
    pub async fn nearest_ef(&self, context: &CacheKey, query: &[f32], ef: usize) -> Result<Option<Nearest>, String> {
        let q = format!("(@ctx:{{{}}})=>[KNN 1 @vec $B EF_RUNTIME {} AS dist]", context.hex(), ef.max(1));
        let bytes: Vec<u8> = query.iter().flat_map(|x| x.to_le_bytes()).collect();
        let args: Vec<&[u8]> = vec![
            b"FT.SEARCH",
            self.index.as_bytes(),
            q.as_bytes(),
            b"PARAMS",
            b"2",
            b"B",
            &bytes,
            b"RETURN",
            b"3",
            b"dist",
            b"text",
            b"answer",
            b"DIALECT",
            b"2",
        ];
        let reply = self.client.call(&args).await?;
        let Reply::Array(Some(items)) = reply else { return Err(format!("FT.SEARCH answered {reply:?}")) };
        // [total, key, [field, value, …], …]
        let Some(Reply::Array(Some(fields))) = items.get(2) else { return Ok(None) };
        let field = |name: &str| {
            fields.chunks(2).find(|kv| kv[0].text().as_deref() == Some(name)).and_then(|kv| kv.get(1)?.text())
        };
        let dist: f32 = field("dist").and_then(|d| d.parse().ok()).ok_or("FT.SEARCH gave no distance")?;
        let answer = field("answer").and_then(|a| parse_key(&a)).ok_or("FT.SEARCH gave no answer key")?;
        Ok(Some(Nearest { score: 1.0 - dist, text: field("text").unwrap_or_default(), answer }))
    }

    /// Stores a question whose answer is stored under `answer`.
    pub async fn insert(
        &self,
        context: &CacheKey,
        vector: &[f32],
        text: &str,
        answer: &CacheKey,
    ) -> Result<(), String> {
        let key = self.key(context, answer);
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let (ctx, ans) = (context.hex(), answer.hex());
        let args: Vec<&[u8]> = vec![
            b"HSET",
            key.as_bytes(),
            b"ctx",
            ctx.as_bytes(),
            b"vec",
            &bytes,
            b"text",
            text.as_bytes(),
            b"answer",
            ans.as_bytes(),
        ];
        self.client.call(&args).await?;
        let ms = self.ttl.as_millis().max(1).to_string();
        self.client.call(&[b"PEXPIRE", key.as_bytes(), ms.as_bytes()]).await?;
        self.refresh_size().await;
        Ok(())
    }

    /// Forgets a question whose answer is gone.
    pub async fn remove(&self, context: &CacheKey, answer: &CacheKey) -> Result<(), String> {
        self.client.call(&[b"DEL", self.key(context, answer).as_bytes()]).await.map(drop)
    }
}

impl RedisVectors {
    /// The server's `used_memory` (bytes), for the vector-store benchmark.
    pub async fn used_memory(&self) -> Option<u64> {
        let info = self.client.call(&[b"INFO", b"memory"]).await.ok()?.text()?;
        info.lines().find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
    }

    /// Drops the index and its questions (the benchmark cleans up after itself).
    pub async fn drop_index(&self) -> Result<(), String> {
        self.client.call(&[b"FT.DROPINDEX", self.index.as_bytes(), b"DD"]).await.map(drop)
    }
}

/// The number under `key` in an `FT.INFO` reply (at any depth: `dim` is in the attribute's own list).
fn find_number(info: &Reply, key: &str) -> Option<usize> {
    match info {
        Reply::Array(Some(items)) => {
            let mut it = items.iter();
            while let Some(item) = it.next() {
                if item.text().is_some_and(|t| t.eq_ignore_ascii_case(key))
                    && let Some(d) = it.next().and_then(|v| match v {
                        Reply::Int(i) => usize::try_from(*i).ok(),
                        other => other.text()?.parse::<f64>().ok().map(|x| x as usize),
                    })
                {
                    return Some(d);
                }
                if let Some(d) = find_number(item, key) {
                    return Some(d);
                }
            }
            None
        }
        _ => None,
    }
}

fn parse_key(hex: &str) -> Option<CacheKey> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(CacheKey(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_the_dimension_is_found_in_ft_info() {
        let k = CacheKey([0xab; 32]);
        assert_eq!(parse_key(&k.hex()), Some(k));
        assert_eq!(parse_key("zz"), None);
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        let info = Reply::Array(Some(vec![
            bulk("index_name"),
            bulk("i"),
            bulk("num_docs"),
            bulk("100000"),
            bulk("attributes"),
            Reply::Array(Some(vec![Reply::Array(Some(vec![
                bulk("identifier"),
                bulk("vec"),
                bulk("dim"),
                Reply::Int(384),
            ]))])),
        ]));
        assert_eq!(find_number(&info, "dim"), Some(384));
        assert_eq!(find_number(&info, "num_docs"), Some(100_000));
        assert_eq!(find_number(&info, "absent"), None);
        assert!(RedisVectors::new("redis://h:1", "bad name", Duration::ZERO, Duration::ZERO).is_err());
    }

    #[test]
    fn the_search_width_grows_with_the_index_as_measured() {
        assert_eq!(ef_runtime_for(0), 64);
        assert_eq!(ef_runtime_for(100_000), 64);
        assert_eq!(ef_runtime_for(316_228), 128);
        assert_eq!(ef_runtime_for(1_000_000), 256);
        assert_eq!(ef_runtime_for(100_000_000), 1024, "capped");
    }
}
