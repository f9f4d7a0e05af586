//! The semantic layer's shared vector store on Milvus (Milvus Lite, or a Milvus server), so that proxy replicas
//! lend each other's answers. One collection (named after the index, `-` written `_`) with a row per question:
//! a primary key made of its context and its answer's key (a new answer replaces the row), its context (a
//! search only ever looks inside its own context), its answer's key, its text (for the lexical guard), its
//! expiry and its vector, under an HNSW index on cosine similarity.
//!
//! Searches ask for bounded consistency. Under strong consistency a Milvus server answers a search only once
//! its time tick (200 ms by default) has passed the request's timestamp: every search took 200 or 400 ms
//! (docs/semantic-cache.md). Bounded, a search is answered at once from what the server has applied, so a
//! question another replica stored (or removed) shows up a moment later, within the server's time tick; a
//! lookup in that moment is a miss, which costs an upstream call and serves nothing wrong.
//!
//! Milvus speaks gRPC. The calls here are unary, so each is one HTTP/2 request on a kept connection (made on
//! first use and again after it breaks): the message framed as gRPC frames it (a flag byte and a 4-byte
//! length), the answer's `grpc-status` read from its trailers. A store that is down makes a lookup a miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::sync::Mutex;

use super::index::Nearest;
use super::milvus_proto::{self as pb, FieldData, kv};
use crate::normalize::CacheKey;

/// Inserts between two sweeps of expired questions.
const SWEEP_EVERY: u64 = 256;
/// How long a collection may take to load before `ensure` gives up.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest text a row keeps (Milvus's VARCHAR limit, in bytes).
const MAX_TEXT: usize = 65_535;
/// The gRPC service every call goes to.
const SERVICE: &str = "milvus.proto.milvus.MilvusService";

/// Questions in a Milvus collection.
#[derive(Debug)]
pub struct MilvusVectors {
    addr: String,
    collection: String,
    ttl: Duration,
    timeout: Duration,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
    inserts: AtomicU64,
    /// A sweep of expired rows is running (in the background: one at a time).
    sweeping: Arc<AtomicBool>,
}

impl MilvusVectors {
    /// A store at `url` (`milvus://HOST:PORT`) in the collection `index`.
    pub fn new(url: &str, index: &str, ttl: Duration, timeout: Duration) -> Result<MilvusVectors, String> {
        super::store::check_index(index)?;
        let u = url::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "milvus" && u.host_str().is_some())
            .ok_or_else(|| format!("--semantic-store {url:?}: not a Milvus URL: give milvus://HOST:PORT"))?;
        let host = u.host_str().unwrap_or("localhost");
        Ok(MilvusVectors {
            addr: format!("{host}:{}", u.port().unwrap_or(19530)),
            collection: index.replace('-', "_"),
            ttl,
            timeout,
            conn: Mutex::new(None),
            inserts: AtomicU64::new(0),
            sweeping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// `HOST:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Creates the collection, its index and loads it for `dimension`-long vectors, or checks that the existing
    /// collection has that dimension (and loads it).
    pub async fn ensure(&self, dimension: usize) -> Result<(), String> {
        let name = pb::CollectionRequest { collection_name: self.collection.clone() };
        let has: pb::BoolResponse = self.call("HasCollection", &name).await?;
        check(has.status.as_ref())?;
        if has.value {
            let d: pb::DescribeCollectionResponse = self.call("DescribeCollection", &name).await?;
            check(d.status.as_ref())?;
            let existing = d
                .schema
                .iter()
                .flat_map(|s| &s.fields)
                .find(|f| f.name == "vec")
                .and_then(|f| f.type_params.iter().find(|p| p.key == "dim"))
                .and_then(|p| p.value.parse::<usize>().ok());
            if let Some(existing) = existing.filter(|&d| d != dimension) {
                return Err(format!(
                    "the vector store's collection {} at {} holds {existing}-dimension vectors and the embedder \
                     makes {dimension}: drop it or name another with [semantic] index",
                    self.collection, self.addr
                ));
            }
        } else {
            let string = |name: &str, max: usize, primary: bool| pb::FieldSchema {
                name: name.into(),
                is_primary_key: primary,
                data_type: pb::data_type::VARCHAR,
                type_params: vec![kv("max_length", max.to_string())],
            };
            let schema = pb::CollectionSchema {
                name: self.collection.clone(),
                fields: vec![
                    string("pk", 128, true),
                    string("ctx", 64, false),
                    string("answer", 64, false),
                    string("text", MAX_TEXT, false),
                    pb::FieldSchema {
                        name: "expires".into(),
                        is_primary_key: false,
                        data_type: pb::data_type::INT64,
                        type_params: vec![],
                    },
                    pb::FieldSchema {
                        name: "vec".into(),
                        is_primary_key: false,
                        data_type: pb::data_type::FLOAT_VECTOR,
                        type_params: vec![kv("dim", dimension.to_string())],
                    },
                ],
            };
            let create = pb::CreateCollectionRequest {
                collection_name: self.collection.clone(),
                schema: schema.encode_to_vec(),
                shards_num: 1,
                consistency_level: pb::CONSISTENCY_STRONG,
            };
            check(Some(&self.call::<_, pb::Status>("CreateCollection", &create).await?))?;
            let index = pb::CreateIndexRequest {
                collection_name: self.collection.clone(),
                field_name: "vec".into(),
                extra_params: vec![
                    kv("index_type", "HNSW"),
                    kv("metric_type", "COSINE"),
                    kv("params", r#"{"M": 16, "efConstruction": 64}"#),
                ],
                index_name: "vec_hnsw".into(),
            };
            check(Some(&self.call::<_, pb::Status>("CreateIndex", &index).await?))?;
        }
        check(Some(&self.call::<_, pb::Status>("LoadCollection", &name).await?))?;
        self.wait_loaded().await
    }

    /// Waits until the collection is searchable: a Milvus server loads it in the background, and answers a
    /// search before that with "collection not fully loaded" (Milvus Lite loads at once). A server without
    /// `GetLoadState` is taken as loaded.
    async fn wait_loaded(&self) -> Result<(), String> {
        let ask = pb::LoadStateRequest { collection_name: self.collection.clone() };
        let deadline = tokio::time::Instant::now() + LOAD_TIMEOUT;
        loop {
            let state: pb::LoadStateResponse = match self.call("GetLoadState", &ask).await {
                Ok(s) => s,
                // gRPC status 12: UNIMPLEMENTED.
                Err(e) if e.contains("gRPC status 12 ") => return Ok(()),
                Err(e) => return Err(e),
            };
            check(state.status.as_ref())?;
            if state.state == pb::LOAD_STATE_LOADED {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the Milvus collection {} at {} was not loaded after {LOAD_TIMEOUT:?} (load state {})",
                    self.collection, self.addr, state.state
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The question of `context` nearest to `query`.
    pub async fn nearest(&self, context: &CacheKey, query: &[f32]) -> Result<Option<Nearest>, String> {
        let bytes: Vec<u8> = query.iter().flat_map(|x| x.to_le_bytes()).collect();
        let group = pb::PlaceholderGroup {
            placeholders: vec![pb::PlaceholderValue {
                tag: "$0".into(),
                r#type: pb::PLACEHOLDER_FLOAT_VECTOR,
                values: vec![bytes],
            }],
        };
        let search = pb::SearchRequest {
            collection_name: self.collection.clone(),
            dsl: format!("ctx == \"{}\" and expires > {}", hex(&context.0), now_ms()),
            placeholder_group: group.encode_to_vec(),
            dsl_type: pb::DSL_BOOL_EXPR,
            output_fields: vec!["text".into(), "answer".into()],
            search_params: vec![
                kv("anns_field", "vec"),
                kv("topk", "1"),
                kv("metric_type", "COSINE"),
                kv("params", r#"{"ef": 64}"#),
            ],
            nq: 1,
            consistency_level: pb::CONSISTENCY_BOUNDED,
        };
        let found: pb::SearchResults = self.call("Search", &search).await?;
        check(found.status.as_ref())?;
        let Some(results) = found.results else { return Ok(None) };
        let Some(&score) = results.scores.first() else { return Ok(None) };
        let column = |name: &str| {
            results.fields_data.iter().find(|f| f.field_name == name).and_then(|f| f.string_values().first().cloned())
        };
        let (Some(text), Some(answer)) = (column("text"), column("answer")) else {
            return Err("a Milvus search hit came without its text or answer".into());
        };
        let answer = unhex(&answer).ok_or("a stored answer key is not 32 bytes of hex")?;
        Ok(Some(Nearest { score, text, answer: CacheKey(answer) }))
    }

    /// Stores a question whose answer is stored under `answer`.
    pub async fn insert(
        &self,
        context: &CacheKey,
        vector: &[f32],
        text: &str,
        answer: &CacheKey,
    ) -> Result<(), String> {
        let (ctx, key) = (hex(&context.0), hex(&answer.0));
        let expires = now_ms() + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let upsert = pb::UpsertRequest {
            collection_name: self.collection.clone(),
            fields_data: vec![
                FieldData::strings("pk", vec![format!("{ctx}{key}")]),
                FieldData::strings("ctx", vec![ctx]),
                FieldData::strings("answer", vec![key]),
                FieldData::strings("text", vec![truncated(text, MAX_TEXT).to_owned()]),
                FieldData::longs("expires", vec![expires]),
                FieldData::vector("vec", vector),
            ],
            num_rows: 1,
        };
        let done: pb::MutationResult = self.call("Upsert", &upsert).await?;
        check(done.status.as_ref())?;
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep().await;
        }
        Ok(())
    }

    /// Deletes the expired rows in the background, unless a sweep is still running. A delete by expression
    /// waits for the server to have applied every earlier write; a server that falls behind (a Milvus 2.3
    /// server under a long load did, for minutes) would otherwise hold the insert that asked for it.
    async fn sweep(&self) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(Ok(sender)) = tokio::time::timeout(self.timeout, self.sender()).await else {
            self.sweeping.store(false, Ordering::Release);
            return;
        };
        let delete =
            pb::DeleteRequest { collection_name: self.collection.clone(), expr: format!("expires < {}", now_ms()) };
        let (addr, timeout, sweeping) = (self.addr.clone(), self.timeout, Arc::clone(&self.sweeping));
        tokio::spawn(async move {
            let call = unary::<_, pb::MutationResult>(sender, &addr, "Delete", &delete);
            let _ = tokio::time::timeout(timeout, call).await;
            sweeping.store(false, Ordering::Release);
        });
    }

    /// Forgets a question whose answer is gone.
    pub async fn remove(&self, context: &CacheKey, answer: &CacheKey) -> Result<(), String> {
        self.delete(format!("pk == \"{}{}\"", hex(&context.0), hex(&answer.0))).await
    }

    /// The server's version, as it reports it (`GetVersion`).
    pub async fn server_version(&self) -> Result<String, String> {
        let v: pb::VersionResponse = self.call("GetVersion", &pb::VersionRequest {}).await?;
        check(v.status.as_ref())?;
        Ok(v.version)
    }

    /// Drops the collection (the benchmark cleans up after itself).
    pub async fn drop_collection(&self) -> Result<(), String> {
        let name = pb::CollectionRequest { collection_name: self.collection.clone() };
        check(Some(&self.call::<_, pb::Status>("DropCollection", &name).await?))
    }

    async fn delete(&self, expr: String) -> Result<(), String> {
        let delete = pb::DeleteRequest { collection_name: self.collection.clone(), expr };
        let done: pb::MutationResult = self.call("Delete", &delete).await?;
        check(done.status.as_ref())
    }

    /// One unary gRPC call within the store's deadline; a failed connection is dropped for the next call.
    async fn call<Q: Message, A: Message + Default>(&self, method: &str, request: &Q) -> Result<A, String> {
        match tokio::time::timeout(self.timeout, self.call_once(method, request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                *self.conn.lock().await = None;
                Err(format!("the vector store at {} did not answer within {:?}", self.addr, self.timeout))
            }
        }
    }

    async fn call_once<Q: Message, A: Message + Default>(&self, method: &str, request: &Q) -> Result<A, String> {
        let sender = self.sender().await?;
        match unary(sender, &self.addr, method, request).await {
            Ok(answer) => Ok(answer),
            Err(Unary { message, broken }) => {
                if broken {
                    *self.conn.lock().await = None;
                }
                Err(message)
            }
        }
    }

    /// The kept HTTP/2 connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        let failed = |e: &dyn std::fmt::Display| format!("the vector store at {}: {e}", self.addr);
        let tcp = tokio::net::TcpStream::connect(&self.addr).await.map_err(|e| failed(&e))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| failed(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// Why a unary call failed: its message, and whether the connection broke (to be made again).
struct Unary {
    message: String,
    broken: bool,
}

/// One unary gRPC call on `sender` to the server at `addr`.
async fn unary<Q: Message, A: Message + Default>(
    mut sender: SendRequest<Full<Bytes>>,
    addr: &str,
    method: &str,
    request: &Q,
) -> Result<A, Unary> {
    let failed =
        |e: &dyn std::fmt::Display| Unary { message: format!("the vector store at {addr}: {e}"), broken: false };
    let message = request.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(message.len()).map_err(|_| failed(&"a Milvus request over 4 GiB"))?);
    frame.put_slice(&message);
    let request = Request::post(format!("http://{addr}/{SERVICE}/{method}"))
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header(hyper::header::TE, "trailers")
        .body(Full::new(frame.freeze()))
        .map_err(|e| failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| Unary { broken: true, ..failed(&e) })?;
    let (head, body) = response.into_parts();
    if head.status != hyper::StatusCode::OK {
        return Err(failed(&format!("HTTP {} to {method}: is it a Milvus server?", head.status)));
    }
    let body = body.collect().await.map_err(|e| failed(&e))?;
    let trailer = |name: &str| {
        body.trailers()
            .and_then(|t| t.get(name))
            .or_else(|| head.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Some(code) = trailer("grpc-status").filter(|c| c != "0") {
        let message = trailer("grpc-message").unwrap_or_default();
        return Err(failed(&format!("{method}: gRPC status {code} {message}")));
    }
    // One frame: a flag byte (0: not compressed), its length (4 bytes, big-endian), the message.
    let bytes = body.to_bytes();
    let (Some(&0), Some(length)) = (bytes.first(), bytes.get(1..5)) else {
        return Err(failed(&format!("{method}: a compressed or empty gRPC answer")));
    };
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    let message = bytes.get(5..5 + length).ok_or_else(|| failed(&"a truncated gRPC answer"))?;
    A::decode(message).map_err(|e| failed(&format!("{method}: {e}")))
}

/// `Err(reason)` for a status that is not success; a missing status is success.
fn check(status: Option<&pb::Status>) -> Result<(), String> {
    status.map_or(Ok(()), pb::Status::ok)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Milliseconds since the Unix epoch: expiries are compared across replicas, so they are wall-clock times.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_keys_are_checked_and_written_the_store_s_way() {
        let s = MilvusVectors::new("milvus://db.example:19531", "velollm-semantic", Duration::ZERO, Duration::ZERO)
            .expect("a valid URL");
        assert_eq!((s.addr(), s.collection.as_str()), ("db.example:19531", "velollm_semantic"));
        assert_eq!(MilvusVectors::new("milvus://h", "i", Duration::ZERO, Duration::ZERO).unwrap().addr(), "h:19530");
        let e = MilvusVectors::new("http://h:1", "i", Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(e.contains("milvus://HOST:PORT"), "{e}");
        assert!(MilvusVectors::new("milvus://h:1", "bad name", Duration::ZERO, Duration::ZERO).is_err());
        let key = [0xab; 32];
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("abc"), None);
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("héllo", 3), "hé");
    }
}
