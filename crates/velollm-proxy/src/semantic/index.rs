//! The embedded vector index: entries grouped by context (a request only ever compares against entries whose
//! every other field matched exactly), each with its expiry. Unit vectors, so the similarity is a dot product.
//! A group is scanned exactly while small; from [`GRAPH_FROM`] entries on it is searched through an HNSW graph
//! ([`super::hnsw`]). The oldest entries go first past the capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::hnsw::Hnsw;
use crate::normalize::CacheKey;

/// Entries of one context from which it is searched through a graph instead of scanned.
pub const GRAPH_FROM: usize = 1024;
/// Candidates a graph search looks at, by default, up to [`EF_GROWS_FROM`] entries (more: better recall, slower).
pub const EF_SEARCH: usize = 32;
/// Entries of one context beyond which the default search width grows with the graph ([`ef_for`]).
pub const EF_GROWS_FROM: usize = 100_000;
/// The widest default search.
pub const EF_MAX: usize = 512;

/// The default search width for a graph of `len` entries: [`EF_SEARCH`] up to [`EF_GROWS_FROM`] entries, then
/// growing so that recall@1 stays at its 100,000-entry level: ×16 per ×10 entries, [`EF_MAX`] at 1,000,000.
///
/// Measured on the vector-store benchmark (docs/semantic-cache.md): at 100,000 entries `ef` 32 finds the
/// nearest entry 99.3 % of the time (p99 0.8 ms); at 1,000,000 `ef` 32 finds it 72 % of the time, 128 93 %
/// and 512 99.5 % (p99 12.1 ms).
pub fn ef_for(len: usize) -> usize {
    GrowingWidth { base: EF_SEARCH, from: EF_GROWS_FROM, per_decade: 16.0, max: EF_MAX }.at(len)
}

/// A default search width that grows with a graph: `base` up to `from` entries, then ×`per_decade` for every
/// ×10 entries, at most `max` (the embedded index's [`ef_for`], Redis Stack's `EF_RUNTIME`).
#[derive(Debug, Clone, Copy)]
pub struct GrowingWidth {
    /// The width up to `from` entries.
    pub base: usize,
    /// Entries beyond which the width grows.
    pub from: usize,
    /// The factor for every ten times more entries.
    pub per_decade: f64,
    /// The widest.
    pub max: usize,
}

impl GrowingWidth {
    /// The width for a graph of `len` entries.
    pub fn at(self, len: usize) -> usize {
        if len <= self.from {
            return self.base;
        }
        let decades = (len as f64 / self.from as f64).log10();
        ((self.base as f64 * self.per_decade.powf(decades)).round() as usize).min(self.max)
    }
}

/// One stored question.
#[derive(Debug, Clone)]
struct Item {
    text: String,
    answer: CacheKey,
    expires: Instant,
    removed: bool,
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

/// One context's entries: slots never move (the graph numbers nodes by slot); removed ones are skipped until
/// they outnumber the live ones, then the group is rebuilt.
#[derive(Debug, Default)]
struct Group {
    items: Vec<Item>,
    vectors: Vec<Vec<f32>>,
    /// The slot of each live entry, by its answer's key: an insert that replaces one, and a removal, find it
    /// without scanning the group.
    slots: HashMap<CacheKey, usize>,
    removed: usize,
    graph: Option<Hnsw>,
}

impl Group {
    fn live(&self) -> usize {
        self.items.len() - self.removed
    }

    fn push(&mut self, vector: Vec<f32>, item: Item, graph_from: usize) {
        self.slots.insert(item.answer, self.items.len());
        self.items.push(item);
        self.vectors.push(vector);
        match &mut self.graph {
            Some(g) => g.insert(&self.vectors),
            None if self.items.len() >= graph_from => self.build_graph(),
            None => {}
        }
    }

    fn build_graph(&mut self) {
        let mut g = Hnsw::new();
        for n in 1..=self.vectors.len() {
            g.insert(&self.vectors[..n]);
        }
        self.graph = Some(g);
    }

    /// Marks the live entry of `answer` removed; true if there was one.
    fn remove(&mut self, answer: &CacheKey, graph_from: usize) -> bool {
        let Some(slot) = self.slots.remove(answer) else { return false };
        self.items[slot].removed = true;
        self.removed += 1;
        if self.removed > self.live() && self.items.len() > 64 {
            self.compact(graph_from);
        }
        true
    }

    /// Drops removed entries and rebuilds the graph.
    fn compact(&mut self, graph_from: usize) {
        let (items, vectors): (Vec<Item>, Vec<Vec<f32>>) = std::mem::take(&mut self.items)
            .into_iter()
            .zip(std::mem::take(&mut self.vectors))
            .filter(|(i, _)| !i.removed)
            .unzip();
        self.slots = items.iter().enumerate().map(|(slot, i)| (i.answer, slot)).collect();
        (self.items, self.vectors, self.removed, self.graph) = (items, vectors, 0, None);
        if self.items.len() >= graph_from {
            self.build_graph();
        }
    }

    fn nearest(&self, query: &[f32], now: Instant, ef: usize) -> Option<(f32, usize)> {
        let alive = |slot: usize| !self.items[slot].removed && self.items[slot].expires > now;
        if let Some(g) = &self.graph {
            return g.nearest(query, ef, &self.vectors, |n| alive(n as usize)).map(|(n, s)| (s, n as usize));
        }
        let mut best: Option<(f32, usize)> = None;
        for (slot, v) in self.vectors.iter().enumerate().filter(|(slot, _)| alive(*slot)) {
            let score = velollm_embed::bert::dot(query, v);
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, slot));
            }
        }
        best
    }
}

/// Entries by context, in process.
#[derive(Debug)]
pub struct Index {
    groups: RwLock<Groups>,
    capacity: usize,
    ttl: Duration,
    graph_from: usize,
    /// A fixed search width; `None`: [`ef_for`] the context's size.
    ef_search: Option<usize>,
}

#[derive(Debug, Default)]
struct Groups {
    by_context: HashMap<CacheKey, Group>,
    /// Insertion order, for eviction past the capacity.
    order: VecDeque<(CacheKey, CacheKey)>,
    len: usize,
}

impl Index {
    /// An empty index holding at most `capacity` entries, each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Index {
        Index::with_graph_from(capacity, ttl, GRAPH_FROM)
    }

    /// An empty index whose contexts switch from a scan to a graph at `graph_from` entries (`usize::MAX`:
    /// always scan, as the vector-store benchmark's exact baseline does).
    pub fn with_graph_from(capacity: usize, ttl: Duration, graph_from: usize) -> Index {
        Index { groups: RwLock::default(), capacity: capacity.max(1), ttl, graph_from, ef_search: None }
    }

    /// The same index whose graph searches look at `ef` candidates whatever their size (`None`: [`ef_for`]
    /// the context's size).
    pub fn with_ef_search(mut self, ef: Option<usize>) -> Index {
        self.ef_search = ef.map(|ef| ef.max(1));
        self
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
        self.nearest_ef(context, query, self.ef_search)
    }

    /// [`Index::nearest`], a graph search looking at `ef` candidates (`None`: [`ef_for`] the context's size).
    pub fn nearest_ef(&self, context: &CacheKey, query: &[f32], ef: Option<usize>) -> Option<Nearest> {
        let groups = self.groups.read().unwrap_or_else(PoisonError::into_inner);
        let group = groups.by_context.get(context)?;
        let ef = ef.unwrap_or_else(|| ef_for(group.vectors.len())).max(1);
        let (score, slot) = group.nearest(query, Instant::now(), ef)?;
        let item = &group.items[slot];
        Some(Nearest { score, text: item.text.clone(), answer: item.answer })
    }

    /// Adds an entry (replacing one of the same context and answer), evicting the oldest past the capacity.
    pub fn insert(&self, context: CacheKey, vector: Vec<f32>, text: String, answer: CacheKey) {
        let mut g = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        let expires = Instant::now() + self.ttl;
        let group = g.by_context.entry(context).or_default();
        let replaced = group.remove(&answer, self.graph_from);
        group.push(vector, Item { text, answer, expires, removed: false }, self.graph_from);
        if replaced {
            return;
        }
        g.order.push_back((context, answer));
        g.len += 1;
        while g.len > self.capacity {
            let Some((ctx, key)) = g.order.pop_front() else { break };
            g.remove(&ctx, &key, self.graph_from);
        }
    }

    /// Forgets an entry whose answer is gone from the exact cache.
    pub fn remove(&self, context: &CacheKey, answer: &CacheKey) {
        let mut g = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        if g.remove(context, answer, self.graph_from) {
            g.order.retain(|(c, a)| !(c == context && a == answer));
        }
    }
}

impl Groups {
    fn remove(&mut self, context: &CacheKey, answer: &CacheKey, graph_from: usize) -> bool {
        let Some(group) = self.by_context.get_mut(context) else { return false };
        let removed = group.remove(answer, graph_from);
        if group.live() == 0 {
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
    fn the_default_search_widens_with_the_graph() {
        assert_eq!([0, 1_024, 100_000].map(ef_for), [EF_SEARCH; 3]);
        // ×16 per ×10 entries: the widths measured to keep recall@1 at 0.99 at 100,000 and 1,000,000.
        assert_eq!(ef_for(1_000_000), 512);
        assert_eq!(ef_for(316_228), 128);
        assert_eq!(ef_for(10_000_000), EF_MAX);
        let widths: Vec<usize> = (1..=20).map(|k| ef_for(k * 50_000)).collect();
        assert!(widths.windows(2).all(|w| w[0] <= w[1]), "{widths:?}");
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
    fn large_contexts_are_searched_through_the_graph_with_the_scan_s_answers() {
        let index = Index::new(10_000, Duration::from_secs(60));
        let c = CacheKey([1; 32]);
        let mut state = 1u64;
        let mut rand = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let stored: Vec<Vec<f32>> =
            (0..GRAPH_FROM + 500).map(|_| unit(&(0..24).map(|_| rand()).collect::<Vec<_>>())).collect();
        for (i, v) in stored.iter().enumerate() {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            index.insert(c, v.clone(), format!("{i}"), CacheKey(key));
        }
        let groups = index.groups.read().unwrap();
        assert!(groups.by_context[&c].graph.is_some());
        drop(groups);
        let mut agree = 0;
        for i in (0..stored.len()).step_by(15) {
            let q = unit(&stored[i].iter().map(|x| x + 0.05 * rand()).collect::<Vec<_>>());
            agree += usize::from(index.nearest(&c, &q).unwrap().text == format!("{i}"));
        }
        assert!(agree * 100 >= 99 * stored.len().div_ceil(15), "{agree} of {}", stored.len().div_ceil(15));
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
