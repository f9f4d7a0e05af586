//! A small Redis client: commands as RESP arrays of bulk strings, replies read back (simple strings, errors,
//! integers, bulk strings, arrays), on a pool of kept-alive connections. Every call has a deadline; a connection
//! that fails or times out is dropped. The exact cache's shared store and the semantic layer's Redis Stack
//! vector store both speak through it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const POOL: usize = 16;

/// A server's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple string (`+OK`).
    Simple(String),
    /// A bulk string (`None`: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// An integer.
    Int(i64),
    /// An array (`None`: the null array).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for strings of either kind.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A Redis server and the connections kept open to it.
pub struct Client {
    addr: String,
    password: Option<String>,
    db: Option<u32>,
    timeout: Duration,
    idle: Mutex<Vec<BufReader<TcpStream>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of every log line.
        f.debug_struct("Client").field("addr", &self.addr).field("db", &self.db).finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `redis://[:PASSWORD@]HOST[:PORT][/DB]`; `flag` names the setting in error messages.
    pub fn new(url: &str, timeout: Duration, flag: &str) -> Result<Client, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{flag} {url:?} is not a URL: {e}"))?;
        if parsed.scheme() != "redis" {
            return Err(format!("{flag} takes redis://HOST:PORT[/DB], not {:?}", parsed.scheme()));
        }
        let host = parsed.host_str().ok_or(format!("{flag}: the redis:// URL has no host"))?;
        let addr = format!("{host}:{}", parsed.port().unwrap_or(6379));
        let password = parsed.password().map(str::to_owned);
        let db = match parsed.path().trim_start_matches('/') {
            "" => None,
            n => Some(n.parse().map_err(|_| format!("{flag}: the database {n:?} is not a number"))?),
        };
        Ok(Client { addr, password, db, timeout, idle: Mutex::new(Vec::new()) })
    }

    /// `HOST:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The database number, if the URL named one.
    pub fn db(&self) -> Option<u32> {
        self.db
    }

    /// Sends one command and reads its reply, within the deadline. A Redis error reply is an `Err`.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Reply, String> {
        let work = async {
            let mut conn = match self.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            let reply = command(&mut conn, args).await?;
            self.give_back(conn);
            Ok::<_, String>(reply)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("redis at {} did not answer within {:?}", self.addr, self.timeout))?
    }

    async fn connect(&self) -> Result<BufReader<TcpStream>, String> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("cannot connect to redis at {}: {e}", self.addr))?;
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

async fn command(conn: &mut BufReader<TcpStream>, args: &[&[u8]]) -> Result<Reply, String> {
    conn.get_mut().write_all(&encode(args)).await.map_err(|e| format!("redis: {e}"))?;
    read(conn).await
}

/// Reads one reply (arrays recursively).
fn read(conn: &mut BufReader<TcpStream>) -> std::pin::Pin<Box<dyn Future<Output = Result<Reply, String>> + Send + '_>> {
    Box::pin(async move {
        let io = |e: std::io::Error| format!("redis: {e}");
        let mut line = Vec::new();
        conn.read_until(b'\n', &mut line).await.map_err(io)?;
        let head = line.strip_suffix(b"\r\n").ok_or("redis closed the connection")?;
        let (kind, rest) = head.split_first().ok_or("redis sent an empty reply")?;
        let text = String::from_utf8_lossy(rest).into_owned();
        let len = || text.parse::<i64>().map_err(|_| format!("redis: bad length {text:?}"));
        match kind {
            b'+' => Ok(Reply::Simple(text.clone())),
            b'-' => Err(format!("redis: {text}")),
            b':' => text.parse().map(Reply::Int).map_err(|_| format!("redis: bad integer {text:?}")),
            b'$' => {
                let n = len()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut data = vec![0; n as usize + 2];
                conn.read_exact(&mut data).await.map_err(io)?;
                data.truncate(n as usize);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let n = len()?;
                if n < 0 {
                    return Ok(Reply::Array(None));
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read(conn).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(format!("redis: unexpected reply {:?}", String::from_utf8_lossy(head))),
        }
    })
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
        let s = Client::new("redis://:pw@127.0.0.1:6390/2", Duration::from_millis(10), "--cache").unwrap();
        assert_eq!((s.addr(), s.db()), ("127.0.0.1:6390", Some(2)));
        assert!(!format!("{s:?}").contains("pw"));
        assert!(Client::new("http://x", Duration::from_millis(10), "--cache").unwrap_err().contains("redis://"));
        assert!(Client::new("redis://h/x", Duration::from_millis(10), "--cache").unwrap_err().contains("database"));
    }

    #[tokio::test]
    async fn replies_of_every_kind_are_read_and_a_server_that_is_down_is_an_error_at_once() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            s.write_all(b"*3\r\n:2\r\n$3\r\nabc\r\n*2\r\n+OK\r\n$-1\r\n").await.unwrap();
        });
        let c = Client::new(&format!("redis://{addr}"), Duration::from_secs(2), "--x").unwrap();
        let reply = c.call(&[b"X"]).await.unwrap();
        let expected = Reply::Array(Some(vec![
            Reply::Int(2),
            Reply::Bulk(Some(b"abc".to_vec())),
            Reply::Array(Some(vec![Reply::Simple("OK".into()), Reply::Bulk(None)])),
        ]));
        assert_eq!(reply, expected);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let down = Client::new(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(2), "--x").unwrap();
        assert!(down.call(&[b"PING"]).await.unwrap_err().contains("cannot connect"));
    }
}
