//! A hierarchical navigable small-world graph (Malkov and Yashunin, 2016) over unit vectors, for the contexts
//! that hold too many questions to scan: each node links to its nearest neighbours on its layers; a search
//! descends greedily from the top layer and widens to `ef` candidates on the bottom one. Nodes are numbered by
//! their slot in the caller's vector list; a removed node stays in the graph as a stepping stone and is only
//! skipped in results (the caller rebuilds once removals pile up).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use velollm_embed::bert::dot;

/// Links per node on the upper layers (twice as many on the bottom one).
const M: usize = 16;
/// Candidates kept while inserting.
const EF_CONSTRUCTION: usize = 100;

/// A similarity and a node, ordered by similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The graph.
#[derive(Debug, Clone, Default)]
pub struct Hnsw {
    /// Per node, its links on each of its layers (layer 0 first).
    links: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    top: usize,
    rng: u64,
}

impl Hnsw {
    /// An empty graph.
    pub fn new() -> Hnsw {
        Hnsw { rng: 0x9E37_79B9_7F4A_7C15, ..Hnsw::default() }
    }

    /// Nodes in the graph.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether it has no node.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// A layer for a new node: 0 with probability 1 − 1/M, and so on up (xorshift, reproducible).
    fn level(&mut self) -> usize {
        let mut level = 0;
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if !self.rng.is_multiple_of(M as u64) || level >= 16 {
                return level;
            }
            level += 1;
        }
    }

    /// Adds node `vectors.len() - 1` (the vector just pushed by the caller).
    pub fn insert(&mut self, vectors: &[Vec<f32>]) {
        let id = (vectors.len() - 1) as u32;
        debug_assert_eq!(id as usize, self.links.len(), "nodes are added in slot order");
        let level = self.level();
        self.links.push(vec![Vec::new(); level + 1]);
        let Some(mut entry) = self.entry else {
            self.entry = Some(id);
            self.top = level;
            return;
        };
        let q = &vectors[id as usize];
        for layer in (level + 1..=self.top).rev() {
            entry = self.greedy(q, entry, layer, vectors);
        }
        let mut entries = vec![entry];
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(q, &entries, EF_CONSTRUCTION, layer, vectors);
            let cap = if layer == 0 { 2 * M } else { M };
            let neighbours = select(&found, M, vectors);
            self.links[id as usize][layer] = neighbours.clone();
            for n in neighbours {
                let list = &mut self.links[n as usize][layer];
                list.push(id);
                if list.len() > cap {
                    let base = &vectors[n as usize];
                    let mut scored: Vec<Scored> =
                        list.iter().map(|&o| Scored(dot(base, &vectors[o as usize]), o)).collect();
                    scored.sort_unstable_by(|a, b| b.cmp(a));
                    *list = select(&scored, cap, vectors);
                }
            }
            entries = found.into_iter().map(|s| s.1).collect();
        }
        if level > self.top {
            self.top = level;
            self.entry = Some(id);
        }
    }

    /// The node most similar to `q` that `alive` accepts, and its similarity, looking at `ef` candidates.
    pub fn nearest(
        &self,
        q: &[f32],
        ef: usize,
        vectors: &[Vec<f32>],
        alive: impl Fn(u32) -> bool,
    ) -> Option<(u32, f32)> {
        let mut entry = self.entry?;
        for layer in (1..=self.top).rev() {
            entry = self.greedy(q, entry, layer, vectors);
        }
        let found = self.search_layer(q, &[entry], ef.max(1), 0, vectors);
        found.into_iter().find(|s| alive(s.1)).map(|s| (s.1, s.0))
    }

    /// One greedy walk on `layer` towards `q`.
    fn greedy(&self, q: &[f32], mut at: u32, layer: usize, vectors: &[Vec<f32>]) -> u32 {
        let mut best = dot(q, &vectors[at as usize]);
        loop {
            let mut moved = false;
            for &n in self.links[at as usize].get(layer).map_or(&[][..], Vec::as_slice) {
                let s = dot(q, &vectors[n as usize]);
                if s > best {
                    (best, at, moved) = (s, n, true);
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// The `ef` nodes nearest to `q` on `layer` reachable from `entries`, nearest first.
    fn search_layer(&self, q: &[f32], entries: &[u32], ef: usize, layer: usize, vectors: &[Vec<f32>]) -> Vec<Scored> {
        VISITED.with_borrow_mut(|visited| {
            visited.next_search(self.links.len());
            let mut candidates = BinaryHeap::new(); // nearest first
            let mut results: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new(); // farthest first
            for &e in entries {
                visited.first_time(e);
                let s = Scored(dot(q, &vectors[e as usize]), e);
                candidates.push(s);
                results.push(std::cmp::Reverse(s));
            }
            while let Some(c) = candidates.pop() {
                let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
                if c.0 < worst && results.len() >= ef {
                    break;
                }
                for &n in self.links[c.1 as usize].get(layer).map_or(&[][..], Vec::as_slice) {
                    if !visited.first_time(n) {
                        continue;
                    }
                    let s = Scored(dot(q, &vectors[n as usize]), n);
                    let worst = results.peek().map_or(f32::NEG_INFINITY, |r| r.0.0);
                    if results.len() < ef || s.0 > worst {
                        candidates.push(s);
                        results.push(std::cmp::Reverse(s));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
            out.sort_unstable_by(|a, b| b.cmp(a));
            out
        })
    }
}

/// The nodes one search has visited: a mark per node holding the number of the search that last visited it,
/// kept per thread, so that no search allocates or clears a set.
#[derive(Debug, Default)]
struct Visited {
    marks: Vec<u32>,
    search: u32,
}

impl Visited {
    fn next_search(&mut self, nodes: usize) {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        self.search = self.search.wrapping_add(1);
        if self.search == 0 {
            self.marks.fill(0);
            self.search = 1;
        }
    }

    /// Marks `n`; true the first time in this search.
    fn first_time(&mut self, n: u32) -> bool {
        let mark = &mut self.marks[n as usize];
        let first = *mark != self.search;
        *mark = self.search;
        first
    }
}

thread_local! {
    static VISITED: std::cell::RefCell<Visited> = std::cell::RefCell::new(Visited::default());
}

/// Up to `m` links among `candidates` (nearest first), by the paper's heuristic: a candidate is kept when it is
/// nearer to the node than to every link kept so far, so that links reach out in several directions instead of
/// all into the node's own cluster (which would leave clusters unreachable from one another); the rest fill
/// any room left, nearest first.
fn select(candidates: &[Scored], m: usize, vectors: &[Vec<f32>]) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(m);
    let mut pruned = Vec::new();
    for c in candidates {
        if kept.len() == m {
            break;
        }
        let v = &vectors[c.1 as usize];
        if kept.iter().all(|&k| dot(v, &vectors[k as usize]) < c.0) {
            kept.push(c.1);
        } else {
            pruned.push(c.1);
        }
    }
    kept.extend(pruned.into_iter().take(m - kept.len()));
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect()
    }

    #[test]
    fn finds_the_exact_nearest_of_near_duplicates_and_skips_removed_nodes() {
        let base = vectors(2000, 32, 7);
        let mut stored = Vec::new();
        let mut g = Hnsw::new();
        for v in &base {
            stored.push(v.clone());
            g.insert(&stored);
        }
        assert_eq!(g.len(), 2000);
        let noise = vectors(200, 32, 99);
        let mut found = 0;
        for (i, n) in noise.iter().enumerate() {
            // A query near stored vector i·10 (cosine about 0.95).
            let target = i * 10;
            let q: Vec<f32> = base[target].iter().zip(n).map(|(a, b)| a + 0.3 * b).collect();
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            let q: Vec<f32> = q.into_iter().map(|x| x / norm).collect();
            let (id, _) = g.nearest(&q, 64, &stored, |_| true).unwrap();
            found += usize::from(id as usize == target);
        }
        assert!(found >= 198, "recall@1 {found}/200");
        let (id, s) = g.nearest(&base[5], 64, &stored, |n| n != 5).unwrap();
        assert_ne!(id, 5);
        assert!(s < 1.0);
        assert!(Hnsw::new().nearest(&base[0], 8, &[], |_| true).is_none());
    }
}
