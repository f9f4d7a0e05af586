//! A Redis store shared by proxy replicas: `GET` and `SET … PX ttl` over RESP, on a small pool of kept-alive
//! connections. Every call has a deadline; a connection that fails or times out is dropped, and the caller
//! treats the failure as a miss.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Entry, StoreError};
use crate::normalize::CacheKey;

/// Keys are `velollm:exact:v1:<hex key>`; the version changes when the entry format does.
const PREFIX: &str = "velollm:exact:v1:";
/// Connections kept for reuse.
const POOL: usize = 16;

/// A Redis server, by address (from a `redis://[:password@]host[:port][/db]` URL).
pub struct RedisStore {
    addr: String,
    password: Option<String>,
    db: Option<u32>,
    timeout: Duration,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of every log line.
        f.debug_struct("RedisStore").field("addr", &self.addr).field("db", &self.db).finish_non_exhaustive()
    }
}

/// A reply, as far as this client reads them.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ok,
    Bulk(Option<Vec<u8>>),
    Int(i64),
}

impl RedisStore {
    /// Parses a `redis://` URL; the server is not contacted until the first call.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--cache {url:?} is not a URL: {e}"))?;
        if parsed.scheme() != "redis" {
            return Err(format!("--cache takes memory or redis://HOST:PORT[/DB], not {:?}", parsed.scheme()));
        }
        let host = parsed.host_str().ok_or("--cache redis:// URL has no host")?;
        let addr = format!("{host}:{}", parsed.port().unwrap_or(6379));
        let password = parsed.password().map(str::to_owned);
        let db = match parsed.path().trim_start_matches('/') {
            "" => None,
            n => Some(n.parse().map_err(|_| format!("--cache: the database {n:?} is not a number"))?),
        };
        Ok(RedisStore { addr, password, db, timeout, idle: Mutex::new(Vec::new()) })
    }

    /// The server's address, for logs.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET`: the entry under `key`, if any and readable.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Entry>, StoreError> {
        let name = format!("{PREFIX}{}", key.hex());
        match self.call(&[b"GET", name.as_bytes()]).await? {
            Reply::Bulk(Some(bytes)) => Ok(Entry::decode(&bytes)),
            Reply::Bulk(None) => Ok(None),
            other => Err(StoreError(format!("redis GET answered {other:?}"))),
        }
    }

    /// `SET key value PX ttl`.
    pub async fn put(&self, key: &CacheKey, entry: &Entry, ttl: Duration) -> Result<(), StoreError> {
        let name = format!("{PREFIX}{}", key.hex());
        let ms = ttl.as_millis().max(1).to_string();
        match self.call(&[b"SET", name.as_bytes(), &entry.encode(), b"PX", ms.as_bytes()]).await? {
            Reply::Ok => Ok(()),
            other => Err(StoreError(format!("redis SET answered {other:?}"))),
        }
    }

    /// `PING`, to check the server at start.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(&[b"PING"]).await.map(drop)
    }

    async fn call(&self, args: &[&[u8]]) -> Result<Reply, StoreError> {
        let work = async {
            let mut conn = match self.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            let reply = command(&mut conn, args).await?;
            self.give_back(conn);
            Ok::<_, StoreError>(reply)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| StoreError(format!("redis at {} did not answer within {:?}", self.addr, self.timeout)))?
    }

    async fn connect(&self) -> Result<BufReader<TcpStream>, StoreError> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| StoreError(format!("cannot connect to redis at {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let mut conn = BufReader::new(stream);
        if let Some(password) = &self.password {
            command(&mut conn, &[b"AUTH", password.as_bytes()]).await?;
        }
        if let Some(db) = self.db {
            command(&mut conn, &[b"SELECT", db.to_string().as_bytes()]).await?;
        }
        Ok(conn)
    }

    fn take(&self) -> Option<BufReader<TcpStream>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    fn give_back(&self, conn: BufReader<TcpStream>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < POOL {
            idle.push(conn);
        }
    }
}

/// Sends one command and reads its reply.
async fn command(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> Result<Reply, StoreError> {
    let io = |e: std::io::Error| StoreError(format!("redis: {e}"));
    conn.get_mut().write_all(&encode(args)).await.map_err(io)?;
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).await.map_err(io)?;
    let head = line.strip_suffix(b"\r\n").ok_or_else(|| StoreError("redis closed the connection".into()))?;
    let (kind, rest) = head.split_first().ok_or_else(|| StoreError("redis sent an empty reply".into()))?;
    let text = String::from_utf8_lossy(rest);
    match kind {
        b'+' => Ok(Reply::Ok),
        b'-' => Err(StoreError(format!("redis: {text}"))),
        b':' => text.parse().map(Reply::Int).map_err(|_| StoreError(format!("redis: bad integer {text:?}"))),
        b'$' => {
            let len: i64 = text.parse().map_err(|_| StoreError(format!("redis: bad length {text:?}")))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut data = vec![0; len as usize + 2];
            conn.read_exact(&mut data).await.map_err(io)?;
            data.truncate(len as usize);
            Ok(Reply::Bulk(Some(data)))
        }
        _ => Err(StoreError(format!("redis: unexpected reply {:?}", String::from_utf8_lossy(head)))),
    }
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[test]
    fn urls_name_host_port_db_and_bad_ones_say_why() {
        let s = RedisStore::new("redis://:pw@127.0.0.1:6390/2", Duration::from_millis(10)).unwrap();
        assert_eq!(s.addr(), "127.0.0.1:6390");
        assert_eq!(s.db, Some(2));
        assert!(!format!("{s:?}").contains("pw"));
        assert!(RedisStore::new("http://x", Duration::from_millis(10)).unwrap_err().contains("redis://"));
        assert!(RedisStore::new("redis://h/x", Duration::from_millis(10)).unwrap_err().contains("database"));
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_an_error_at_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = RedisStore::new(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let err = s.get(&CacheKey([0; 32])).await.unwrap_err();
        assert!(err.0.contains("cannot connect"), "{err}");
    }
}
