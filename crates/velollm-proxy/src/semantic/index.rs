//! The embedded vector index: entries grouped by context (a request only ever compares against entries whose
//! every other field matched exactly), searched by exact scan, each with its expiry. Unit vectors, so the
//! similarity is a dot product. The oldest entries go first past the capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::normalize::CacheKey;

/// One stored question.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its embedding (unit length).
    pub vector: Vec<f32>,
    /// Its text, for the lexical guard.
    pub text: String,
    /// The exact-cache key of its answer.
    pub answer: CacheKey,
    expires: Instant,
}

/// The nearest stored question to a query.
#[derive(Debug, Clone)]
pub struct Nearest {
    /// Cosine similarity.
    pub score: f32,
    /// The stored question.
    pub text: String,
    /// Where its answer is.
    pub answer: CacheKey,
}

/// Entries by context, in process.
#[derive(Debug)]
pub struct Index {
    groups: RwLock<Groups>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Groups {
    by_context: HashMap<CacheKey, Vec<Item>>,
    /// Insertion order, for eviction past the capacity.
    order: VecDeque<(CacheKey, CacheKey)>,
    len: usize,
}

impl Index {
    /// An empty index holding at most `capacity` entries, each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Index {
        Index { groups: RwLock::default(), capacity: capacity.max(1), ttl }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.groups.read().unwrap_or_else(PoisonError::into_inner).len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live entry of `context` most similar to `query`.
    pub fn nearest(&self, context: &CacheKey, query: &[f32]) -> Option<Nearest> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut best: Option<(f32, &Item)> = None;
        for item in groups.by_context.get(context)?.iter().filter(|i| i.expires > now) {
            let score = velollm_embed::bert::dot(query, &item.vector);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, item));
            }
        }
        best.map(|(score, item)| Nearest { score, text: item.text.clone(), answer: item.answer })
    }

    /// Adds an entry (replacing one of the same context and answer), evicting the oldest past the capacity.
    pub fn insert(&self, context: CacheKey, vector: Vec<f32>, text: String, answer: CacheKey) {
        let mut g = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        let expires = Instant::now() + self.ttl;
        let group = g.by_context.entry(context).or_default();
        if let Some(existing) = group.iter_mut().find(|i| i.answer == answer) {
            *existing = Item { vector, text, answer, expires };
            return;
        }
        group.push(Item { vector, text, answer, expires });
        g.order.push_back((context, answer));
        g.len += 1;
        while g.len > self.capacity {
            let Some((ctx, key)) = g.order.pop_front() else { break };
            g.remove(&ctx, &key);
        }
    }

    /// Forgets an entry whose answer is gone from the exact cache.
    pub fn remove(&self, context: &CacheKey, answer: &CacheKey) {
        let mut g = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if g.remove(context, answer) {
            g.order.retain(|(c, a)| !(c == context && a == answer));
        }
    }
}

impl Groups {
    fn remove(&mut self, context: &CacheKey, answer: &CacheKey) -> bool {
        let Some(group) = self.by_context.get_mut(context) else { return false };
        let before = group.len();
        group.retain(|i| i.answer != *answer);
        let removed = before != group.len();
        if group.is_empty() {
            self.by_context.remove(context);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn search_stays_inside_a_context_and_finds_the_nearest() {
        let index = Index::new(10, Duration::from_secs(60));
        let (c1, c2) = (CacheKey([1; 32]), CacheKey([2; 32]));
        index.insert(c1, unit(&[1.0, 0.0]), "a".into(), CacheKey([10; 32]));
        index.insert(c1, unit(&[1.0, 1.0]), "b".into(), CacheKey([11; 32]));
        index.insert(c2, unit(&[0.0, 1.0]), "c".into(), CacheKey([12; 32]));
        let n = index.nearest(&c1, &unit(&[0.2, 1.0])).unwrap();
        assert_eq!(n.text, "b");
        assert!(
            (n.score - unit(&[0.2, 1.0]).iter().zip(unit(&[1.0, 1.0])).map(|(a, b)| a * b).sum::<f32>()).abs() < 1e-6
        );
        assert!(index.nearest(&CacheKey([3; 32]), &unit(&[1.0, 0.0])).is_none());
        index.remove(&c1, &CacheKey([11; 32]));
        assert_eq!(index.nearest(&c1, &unit(&[0.2, 1.0])).unwrap().text, "a");
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn capacity_evicts_the_oldest_and_expired_entries_are_not_found() {
        let index = Index::new(2, Duration::from_secs(60));
        let c = CacheKey([1; 32]);
        for i in 0..3u8 {
            index.insert(c, unit(&[1.0, f32::from(i)]), format!("{i}"), CacheKey([i; 32]));
        }
        assert_eq!(index.len(), 2);
        assert_eq!(index.nearest(&c, &unit(&[1.0, 0.0])).unwrap().text, "1");
        let expired = Index::new(2, Duration::ZERO);
        expired.insert(c, unit(&[1.0, 0.0]), "x".into(), CacheKey([0; 32]));
        assert!(expired.nearest(&c, &unit(&[1.0, 0.0])).is_none());
    }
}
