//! A Redis store shared by proxy replicas: `GET` and `SET … PX ttl` through [`crate::resp`]. Every call has a
//! deadline; the caller treats a failure as a miss.

use std::time::Duration;

use super::{Entry, StoreError};
use crate::normalize::CacheKey;
use crate::resp::{Client, Reply};

const PREFIX: &str = "velollm:exact:v1:";

/// Answers in a Redis server, under `velollm:exact:v1:KEY`.
#[derive(Debug)]
pub struct RedisStore {
    client: Client,
}

impl RedisStore {
    /// A store at `redis://[:PASSWORD@]HOST[:PORT][/DB]`; every call gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore { client: Client::new(url, timeout, "--cache")? })
    }

    /// `HOST:PORT`.
    pub fn addr(&self) -> &str {
        self.client.addr()
    }

    /// The live entry under `key`.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Entry>, StoreError> {
        let name = format!("{PREFIX}{}", key.hex());
        match self.client.call(&[b"GET", name.as_bytes()]).await.map_err(StoreError)? {
            Reply::Bulk(Some(bytes)) => Ok(Entry::decode(&bytes)),
            Reply::Bulk(None) => Ok(None),
            other => Err(StoreError(format!("redis GET answered {other:?}"))),
        }
    }

    /// Stores `entry` under `key` for `ttl`.
    pub async fn put(&self, key: &CacheKey, entry: &Entry, ttl: Duration) -> Result<(), StoreError> {
        let name = format!("{PREFIX}{}", key.hex());
        let ms = ttl.as_millis().max(1).to_string();
        match self.client.call(&[b"SET", name.as_bytes(), &entry.encode(), b"PX", ms.as_bytes()]).await {
            Ok(Reply::Simple(_)) => Ok(()),
            Ok(other) => Err(StoreError(format!("redis SET answered {other:?}"))),
            Err(e) => Err(StoreError(e)),
        }
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client.call(&[b"PING"]).await.map(drop).map_err(StoreError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_say_which_flag() {
        assert!(RedisStore::new("http://x", Duration::from_millis(10)).unwrap_err().contains("--cache"));
        assert_eq!(
            RedisStore::new("redis://127.0.0.1:6390/2", Duration::from_millis(10)).unwrap().addr(),
            "127.0.0.1:6390"
        );
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
