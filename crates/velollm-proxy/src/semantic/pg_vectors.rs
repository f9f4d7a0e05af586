//! The semantic layer's shared vector store on Postgres with pgvector, so that proxy replicas lend each other's
//! answers. One table (named after the index) with a row per question: its context (a search only ever looks
//! inside its own context), its answer's key, its text (for the lexical guard), its vector and its expiry. The
//! vectors carry an HNSW index on cosine distance; searches scan it iteratively (`hnsw.iterative_scan`), so a
//! context's filter does not starve the search of candidates. The connection is made on first use and again
//! after it breaks; a store that is down makes a lookup a miss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Statement};

use super::index::Nearest;
use crate::normalize::CacheKey;

/// Inserts between two sweeps of expired questions.
const SWEEP_EVERY: u64 = 256;

/// Questions in a Postgres table with a pgvector column.
#[derive(Debug)]
pub struct PgVectors {
    /// Boxed: it is large, and the store sits in an enum beside small ones.
    config: Box<tokio_postgres::Config>,
    addr: String,
    table: String,
    ttl: Duration,
    timeout: Duration,
    conn: Mutex<Option<Arc<Conn>>>,
    inserts: AtomicU64,
}

/// One connection with its prepared statements.
#[derive(Debug)]
struct Conn {
    client: Client,
    nearest: Statement,
    upsert: Statement,
    remove: Statement,
}

impl PgVectors {
    /// A store at `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`) in the table `index`.
    pub fn new(url: &str, index: &str, ttl: Duration, timeout: Duration) -> Result<PgVectors, String> {
        super::store::check_index(index)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("--semantic-store: not a Postgres URL ({e}): give postgres://USER@HOST:PORT/DB"))?;
        config.connect_timeout(timeout);
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".into());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(PgVectors {
            config: Box::new(config),
            addr: format!("{host}:{port}"),
            table: format!("\"{index}\""),
            ttl,
            timeout,
            conn: Mutex::new(None),
            inserts: AtomicU64::new(0),
        })
    }

    /// `HOST:PORT` (never the password).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Creates the table and its index for `dimension`-long vectors, or checks that the existing table has
    /// that dimension.
    pub async fn ensure(&self, dimension: usize) -> Result<(), String> {
        let client = self.connect_plain().await?;
        let existing = self.dimension_of(&client).await?;
        match existing {
            Some(d) if d == dimension => Ok(()),
            Some(d) => Err(format!(
                "the vector store's table {} at {} holds {d}-dimension vectors and the embedder makes \
                 {dimension}: drop it (DROP TABLE {}) or name another with [semantic] index",
                self.table, self.addr, self.table
            )),
            None => {
                let t = &self.table;
                let index = format!("\"{}_hnsw\"", t.trim_matches('"'));
                let sql = format!(
                    "CREATE EXTENSION IF NOT EXISTS vector;
                     CREATE TABLE IF NOT EXISTS {t} (ctx bytea NOT NULL, answer bytea NOT NULL, text text NOT \
                     NULL, vec vector({dimension}) NOT NULL, expires double precision NOT NULL, PRIMARY KEY \
                     (ctx, answer));
                     CREATE INDEX IF NOT EXISTS {index} ON {t} USING hnsw (vec vector_cosine_ops);"
                );
                self.deadline(client.batch_execute(&sql)).await.map_err(|e| {
                    if e.contains("vector") && (e.contains("not available") || e.contains("does not exist")) {
                        format!(
                            "the Postgres server at {} has no pgvector extension: install it, or use \
                             scripts/pgvector.sh start ({e})",
                            self.addr
                        )
                    } else {
                        e
                    }
                })
            }
        }
    }

    /// The question of `context` nearest to `query`.
    pub async fn nearest(&self, context: &CacheKey, query: &[f32]) -> Result<Option<Nearest>, String> {
        let conn = self.conn().await?;
        let rows = self
            .deadline(conn.client.query(&conn.nearest, &[&literal(query), &&context.0[..], &now()]))
            .await
            .inspect_err(|_| self.forget(&conn))?;
        let Some(row) = rows.first() else { return Ok(None) };
        let (text, answer, dist): (String, Vec<u8>, f64) = (row.get(0), row.get(1), row.get(2));
        let answer = <[u8; 32]>::try_from(answer.as_slice()).map_err(|_| "a stored answer key is not 32 bytes")?;
        Ok(Some(Nearest { score: (1.0 - dist) as f32, text, answer: CacheKey(answer) }))
    }

    /// Stores a question whose answer is stored under `answer`.
    pub async fn insert(
        &self,
        context: &CacheKey,
        vector: &[f32],
        text: &str,
        answer: &CacheKey,
    ) -> Result<(), String> {
        let conn = self.conn().await?;
        let expires = now() + self.ttl.as_secs_f64();
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&&context.0[..], &&answer.0[..], &text, &literal(vector), &expires];
        self.deadline(conn.client.execute(&conn.upsert, &args)).await.inspect_err(|_| self.forget(&conn))?;
        if self.inserts.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let sql = format!("DELETE FROM {} WHERE expires < $1", self.table);
            let _ = self.deadline(conn.client.execute(&sql, &[&now()])).await;
        }
        Ok(())
    }

    /// Forgets a question whose answer is gone.
    pub async fn remove(&self, context: &CacheKey, answer: &CacheKey) -> Result<(), String> {
        let conn = self.conn().await?;
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&&context.0[..], &&answer.0[..]];
        self.deadline(conn.client.execute(&conn.remove, &args)).await.map(drop).inspect_err(|_| self.forget(&conn))
    }

    /// The table's size on disk with its indexes (bytes), for the vector-store benchmark.
    pub async fn table_bytes(&self) -> Option<u64> {
        let conn = self.conn().await.ok()?;
        let sql = format!("SELECT pg_total_relation_size('{}')", self.table);
        let row = self.deadline(conn.client.query_one(&sql, &[])).await.ok()?;
        u64::try_from(row.get::<_, i64>(0)).ok()
    }

    /// Drops the table (the benchmark cleans up after itself).
    pub async fn drop_table(&self) -> Result<(), String> {
        let conn = self.conn().await?;
        self.deadline(conn.client.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))).await
    }

    /// The live connection, or a new one with its statements prepared (the table must exist).
    async fn conn(&self) -> Result<Arc<Conn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(conn));
        }
        let client = self.connect_plain().await?;
        let t = &self.table;
        self.deadline(client.batch_execute("SET hnsw.iterative_scan = strict_order")).await?;
        let nearest = format!(
            "SELECT text, answer, vec <=> $1::text::vector AS dist FROM {t} WHERE ctx = $2 AND expires > $3 \
             ORDER BY vec <=> $1::text::vector LIMIT 1"
        );
        let upsert = format!(
            "INSERT INTO {t} (ctx, answer, text, vec, expires) VALUES ($1, $2, $3, $4::text::vector, $5) ON \
             CONFLICT (ctx, answer) DO UPDATE SET text = EXCLUDED.text, vec = EXCLUDED.vec, expires = \
             EXCLUDED.expires"
        );
        let remove = format!("DELETE FROM {t} WHERE ctx = $1 AND answer = $2");
        let conn = Arc::new(Conn {
            nearest: self.deadline(client.prepare(&nearest)).await?,
            upsert: self.deadline(client.prepare(&upsert)).await?,
            remove: self.deadline(client.prepare(&remove)).await?,
            client,
        });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// A new connection, its driver running in the background.
    async fn connect_plain(&self) -> Result<Client, String> {
        let (client, connection) = self
            .deadline(self.config.connect(NoTls))
            .await
            .map_err(|e| format!("the vector store at {}: {e}", self.addr))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// The dimension of the table's vectors, or `None` when there is no table yet.
    async fn dimension_of(&self, client: &Client) -> Result<Option<usize>, String> {
        let sql = "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'vec'";
        let rows = self.deadline(client.query(sql, &[&self.table])).await?;
        Ok(rows.first().and_then(|r| usize::try_from(r.get::<_, i32>(0)).ok()))
    }

    /// Drops the connection after a failure, so the next call makes a new one.
    fn forget(&self, failed: &Arc<Conn>) {
        if let Ok(mut slot) = self.conn.try_lock()
            && slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed))
        {
            *slot = None;
        }
    }

    /// `call` within the store's deadline, its error as text.
    async fn deadline<T>(&self, call: impl Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            }),
            Err(_) => Err(format!("the vector store at {} did not answer within {:?}", self.addr, self.timeout)),
        }
    }
}

/// A vector in pgvector's text form, `[0.1,0.2,…]`.
fn literal(vector: &[f32]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(vector.len() * 12 + 2);
    out.push('[');
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
    out
}

/// Seconds since the Unix epoch: expiries are compared across replicas, so they are wall-clock times.
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_vectors_are_checked_and_written_the_store_s_way() {
        assert_eq!(literal(&[0.5, -1.0, 0.25]), "[0.5,-1,0.25]");
        assert_eq!(literal(&[]), "[]");
        let s = PgVectors::new("postgres://u:secret@db.example:6543/x", "i", Duration::ZERO, Duration::ZERO)
            .expect("a valid URL");
        assert_eq!(s.addr(), "db.example:6543");
        assert!(PgVectors::new("postgres://h/x", "bad name", Duration::ZERO, Duration::ZERO).is_err());
        let e = PgVectors::new("postgres://h:notaport/x", "i", Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(e.contains("not a Postgres URL"), "{e}");
    }
}
