//! The in-process store: entries expire after their TTL, and past the byte budget the least recently used
//! ones go first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Entry;
use crate::normalize::CacheKey;

/// An LRU map of entries with a TTL each and a byte budget for all.
#[derive(Debug)]
pub struct MemoryStore {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<CacheKey, Slot>,
    /// Use order: tick → key; the smallest tick is the least recently used.
    order: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
}

#[derive(Debug)]
struct Slot {
    entry: Entry,
    expires: Instant,
    tick: u64,
}

impl MemoryStore {
    /// A store that holds at most `budget` bytes of entries.
    pub fn new(budget: usize) -> MemoryStore {
        MemoryStore { budget, inner: Mutex::new(Inner::default()) }
    }

    /// The live entry under `key` (now the most recently used), if any; an expired one is removed.
    pub fn get(&self, key: &CacheKey) -> Option<Entry> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let expired = inner.entries.get(key)?.expires <= now;
        if expired {
            inner.remove(key);
            return None;
        }
        inner.tick += 1;
        let tick = inner.tick;
        let slot = inner.entries.get_mut(key)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let entry = slot.entry.clone();
        inner.order.remove(&old);
        inner.order.insert(tick, *key);
        Some(entry)
    }

    /// Stores `entry` for `ttl`, evicting the least recently used entries past the budget. An entry larger
    /// than the whole budget is not stored.
    pub fn put(&self, key: CacheKey, entry: Entry, ttl: Duration) {
        if entry.weight() > self.budget {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.remove(&key);
        while inner.bytes + entry.weight() > self.budget {
            let Some((_, oldest)) = inner.order.pop_first() else { break };
            inner.remove(&oldest);
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.bytes += entry.weight();
        inner.order.insert(tick, key);
        inner.entries.insert(key, Slot { entry, expires: Instant::now() + ttl, tick });
    }

    /// Entries held and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.entries.len(), inner.bytes)
    }
}

impl Inner {
    fn remove(&mut self, key: &CacheKey) {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.tick);
            self.bytes -= slot.entry.weight();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(n: usize) -> Entry {
        Entry { status: 200, content_type: String::new(), body: Bytes::from(vec![b'x'; n]) }
    }

    fn key(i: u8) -> CacheKey {
        CacheKey([i; 32])
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let s = MemoryStore::new(1 << 20);
        s.put(key(1), entry(10), Duration::from_millis(30));
        assert!(s.get(&key(1)).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get(&key(1)).is_none());
        assert_eq!(s.usage(), (0, 0));
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_budget() {
        // Three entries of 164 bytes fit in 500; the fourth evicts the least recently used.
        let s = MemoryStore::new(500);
        let ttl = Duration::from_secs(60);
        for i in 1..=3 {
            s.put(key(i), entry(100), ttl);
        }
        assert!(s.get(&key(1)).is_some()); // 2 is now the least recently used
        s.put(key(4), entry(100), ttl);
        assert!(s.get(&key(2)).is_none());
        for i in [1, 3, 4] {
            assert!(s.get(&key(i)).is_some(), "{i}");
        }
        assert_eq!(s.usage(), (3, 492));
        s.put(key(5), entry(10_000), ttl); // larger than the budget: not stored, nothing evicted
        assert_eq!(s.usage().0, 3);
    }

    #[test]
    fn replacing_an_entry_counts_its_bytes_once() {
        let s = MemoryStore::new(10_000);
        s.put(key(1), entry(100), Duration::from_secs(60));
        s.put(key(1), entry(200), Duration::from_secs(60));
        assert_eq!(s.usage(), (1, 264));
    }
}
