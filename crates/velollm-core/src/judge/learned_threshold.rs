//! Thresholds learned per entry, with a bound δ on the rate of wrong answers served (after vCache, Schroeder
//! et al., 2025). One global threshold cannot separate meanings: some questions share their answer with
//! neighbours at a cosine of 0.8, others differ from theirs at 0.95. So each stored question keeps what was
//! observed when a later question came near it: the similarity, and whether the upstream's own answer to the
//! later question agreed with the stored one.
//!
//! From those observations, the chance that serving the stored answer at similarity `s` is wrong is estimated
//! under one assumption, that agreement does not become less likely as similarity grows:
//! - an agreement observed at a similarity at or below `s` counts as an agreement at `s`;
//! - a disagreement observed at or above `s` counts as a disagreement at `s`;
//! - the latest observations of all entries, counted the same way, give a pooled estimate
//!   `(disagreements + 1) / (counted + 2)` (Laplace's rule: one half before anything is known);
//! - an entry's estimate is its own counts with the pooled one as a prior weighing [`PRIOR_WEIGHT`]
//!   observations: `(disagreements + w × pooled) / (counted + w)`. A new entry starts from what every entry
//!   taught (vCache's entries learn alone, which on a workload with few candidates per entry serves almost
//!   nothing).
//!
//! The stored answer is then served with probability `min(1, δ / estimate)` and otherwise the request
//! *explores*: it goes upstream like a miss, and its answer, compared with the stored one, becomes a new
//! observation. Exploring never serves a wrong answer, so the expected rate of wrong answers among requests that
//! reach this decision stays at or under δ as long as the estimate does not understate the truth. The coin is
//! drawn from the request itself ([`coin`]), so a request's fate is reproducible.
//!
//! The proxy decides with it (`velollm proxy --semantic-delta`), and the semantic-cache evaluation replays it
//! on its labels, so that both use the one rule.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// Observations kept per entry (oldest out first).
pub const PER_ENTRY: usize = 64;
/// The most recent observations of all entries, which make every entry's prior.
pub const POOLED: usize = 4096;
/// How many observations of its own the pooled prior weighs in an entry's estimate.
pub const PRIOR_WEIGHT: f32 = 4.0;

/// One observation: a later question at `score` from the entry, and whether the answers agreed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The later question's similarity to the entry's.
    pub score: f32,
    /// Whether the two answers agreed.
    pub agreed: bool,
}

/// What to do with a candidate that passed the floor and the guard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Serve the stored answer; the estimated chance that it is wrong.
    Serve(f32),
    /// Go upstream and compare; the estimated chance that serving would have been wrong.
    Explore(f32),
}

/// The observations of every entry (identified by `K`), with the bound they serve.
#[derive(Debug)]
pub struct Learned<K> {
    /// The bound on the rate of wrong answers served, in (0, 1).
    pub delta: f32,
    /// Entries observed at most (the least recently observed out first).
    capacity: usize,
    entries: Mutex<Entries<K>>,
}

#[derive(Debug)]
struct Entries<K> {
    by_answer: HashMap<K, VecDeque<Observation>>,
    order: VecDeque<K>,
    /// The latest observations of every entry.
    pooled: VecDeque<Observation>,
}

/// The estimated chance of a wrong answer at `score` for an entry observed `own`: its counts, with the pooled
/// estimate as a prior weighing [`PRIOR_WEIGHT`] observations.
fn estimate<'a>(
    pooled: impl IntoIterator<Item = &'a Observation>,
    own: impl IntoIterator<Item = &'a Observation>,
    score: f32,
) -> f32 {
    let (all_agreed, all_disagreed) = counted(pooled, score);
    let prior = (all_disagreed + 1.0) / (all_agreed + all_disagreed + 2.0);
    let (agreed, disagreed) = counted(own, score);
    (disagreed + PRIOR_WEIGHT * prior) / (agreed + disagreed + PRIOR_WEIGHT)
}

/// Agreements at or below `score` and disagreements at or above it.
fn counted<'a>(observations: impl IntoIterator<Item = &'a Observation>, score: f32) -> (f32, f32) {
    let (mut agreed, mut disagreed) = (0u32, 0u32);
    for o in observations {
        match o.agreed {
            true if o.score <= score => agreed += 1,
            false if o.score >= score => disagreed += 1,
            _ => {}
        }
    }
    (agreed as f32, disagreed as f32)
}

impl<K: Eq + Hash + Clone> Learned<K> {
    /// No observations yet, for a bound `delta` and at most `capacity` entries observed.
    pub fn new(delta: f32, capacity: usize) -> Learned<K> {
        let entries = Entries { by_answer: HashMap::new(), order: VecDeque::new(), pooled: VecDeque::new() };
        Learned { delta, capacity: capacity.max(1), entries: Mutex::new(entries) }
    }

    /// The estimated chance that the answer stored under `answer` is wrong for a question at `score`: the
    /// entry's own counts, with the pooled estimate of every entry's as a prior weighing [`PRIOR_WEIGHT`]
    /// observations.
    pub fn error_at(&self, answer: &K, score: f32) -> f32 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        estimate(&entries.pooled, entries.by_answer.get(answer).into_iter().flatten(), score)
    }

    /// [`Learned::error_at`] for an entry whose observations are `own` (read from a store shared by
    /// replicas), with this process's pooled prior.
    pub fn error_with(&self, own: &[Observation], score: f32) -> f32 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        estimate(&entries.pooled, own, score)
    }

    /// Serve or explore, for the entry `answer` at `score`, with `coin` uniform in [0, 1).
    pub fn decide(&self, answer: &K, score: f32, coin: f32) -> Decision {
        self.choose(self.error_at(answer, score), coin)
    }

    /// [`Learned::decide`] for an entry whose observations are `own` ([`Learned::error_with`]).
    pub fn decide_with(&self, own: &[Observation], score: f32, coin: f32) -> Decision {
        self.choose(self.error_with(own, score), coin)
    }

    /// Serve with probability δ ÷ the estimated error (always when it is at most δ).
    fn choose(&self, error: f32, coin: f32) -> Decision {
        if coin < (self.delta / error).min(1.0) { Decision::Serve(error) } else { Decision::Explore(error) }
    }

    /// Replaces the pooled observations with `latest` (the newest first, as a shared store keeps them), so that
    /// every replica's prior is made of every replica's observations.
    pub fn set_pooled(&self, latest: &[Observation]) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.pooled = latest.iter().take(POOLED).rev().copied().collect();
    }

    /// Records what a request that explored found.
    pub fn record(&self, answer: K, score: f32, agreed: bool) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Entries { by_answer, order, pooled } = &mut *entries;
        if pooled.len() >= POOLED {
            pooled.pop_front();
        }
        pooled.push_back(Observation { score, agreed });
        if !by_answer.contains_key(&answer) {
            if by_answer.len() >= self.capacity
                && let Some(oldest) = order.pop_front()
            {
                by_answer.remove(&oldest);
            }
            order.push_back(answer.clone());
        }
        let seen = by_answer.entry(answer).or_default();
        if seen.len() >= PER_ENTRY {
            seen.pop_front();
        }
        seen.push_back(Observation { score, agreed });
    }

    /// Observations held for `answer` (for tests and the metrics).
    pub fn observations(&self, answer: &K) -> usize {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.by_answer.get(answer).map_or(0, VecDeque::len)
    }
}

/// A number in [0, 1) drawn from a request's hash (its first four bytes): the same request always draws the
/// same. Fewer than four bytes draw 0.
pub fn coin(hash: &[u8]) -> f32 {
    let Some(&[a, b, c, d]) = hash.first_chunk::<4>() else { return 0.0 };
    // 24 bits: every value is exact in an f32, and the largest stays under 1.
    let bits = u32::from_le_bytes([a, b, c, d]) >> 8;
    bits as f32 / (1u32 << 24) as f32
}

/// A 64-bit hash of `text` (FNV-1a, then MurmurHash3's finalizer so that every bit depends on every byte), for
/// [`coin`] where there is no cryptographic key (the evaluation's replay).
pub fn text_hash(text: &str) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 7;

    #[test]
    fn a_new_entry_starts_at_one_half_and_mostly_explores() {
        let l: Learned<u32> = Learned::new(0.02, 10);
        assert_eq!(l.error_at(&A, 0.95), 0.5);
        assert_eq!(l.decide(&A, 0.95, 0.5), Decision::Explore(0.5));
        assert_eq!(l.decide(&A, 0.95, 0.01), Decision::Serve(0.5), "serves with probability δ / ½ = 4 %");
    }

    /// The estimate for `agreed` and `disagreed` counts of an entry, with pooled counts `pa` and `pd`.
    fn expected(agreed: f32, disagreed: f32, pa: f32, pd: f32) -> f32 {
        let prior = (pd + 1.0) / (pa + pd + 2.0);
        (disagreed + PRIOR_WEIGHT * prior) / (agreed + disagreed + PRIOR_WEIGHT)
    }

    #[test]
    fn agreements_below_and_disagreements_above_count_monotonically() {
        let l = Learned::new(0.02, 10);
        for _ in 0..48 {
            l.record(A, 0.85, true);
        }
        // At 0.9, all 48 agreements at 0.85 count, the entry's own and the pooled ones: always served.
        assert!((l.error_at(&A, 0.9) - expected(48.0, 0.0, 48.0, 0.0)).abs() < 1e-6);
        assert!(l.error_at(&A, 0.9) < 0.02);
        assert!(matches!(l.decide(&A, 0.9, 0.999), Decision::Serve(_)));
        // At 0.8, below every observation, nothing is known.
        assert_eq!(l.error_at(&A, 0.8), 0.5);
        // A disagreement at 0.95 counts at 0.9 (and below), not above it.
        l.record(A, 0.95, false);
        assert!((l.error_at(&A, 0.9) - expected(48.0, 1.0, 48.0, 1.0)).abs() < 1e-6);
        assert!((l.error_at(&A, 0.97) - expected(48.0, 0.0, 48.0, 0.0)).abs() < 1e-6);
    }

    #[test]
    fn a_new_entry_starts_from_what_every_entry_taught() {
        let l = Learned::new(0.05, 100);
        for e in 0..40 {
            l.record(100 + e, 0.9, true);
        }
        // A new entry's estimate at 0.92 is the pooled one, (0 + 1) / (40 + 2): under δ, so served.
        assert!((l.error_at(&A, 0.92) - 1.0 / 42.0).abs() < 1e-6);
        assert!(matches!(l.decide(&A, 0.92, 0.999), Decision::Serve(_)));
        // Its own disagreement outweighs the prior: (1 + 4 × 2/43) / (1 + 4).
        l.record(A, 0.95, false);
        assert!((l.error_at(&A, 0.92) - expected(0.0, 1.0, 40.0, 1.0)).abs() < 1e-6);
        assert!(matches!(l.decide(&A, 0.92, 0.5), Decision::Explore(_)));
    }

    #[test]
    fn observations_read_from_a_shared_store_decide_as_local_ones() {
        let local = Learned::new(0.05, 10);
        let fresh: Learned<u32> = Learned::new(0.05, 10);
        let seen: Vec<Observation> = (0..12).map(|i| Observation { score: 0.9, agreed: i != 3 }).collect();
        for o in &seen {
            local.record(A, o.score, o.agreed);
        }
        // Another replica holds none of them: given the entry's alone, its prior is still one half; given the
        // pooled ones too, it estimates and decides as the replica that observed them.
        assert!(fresh.error_with(&seen, 0.92) > local.error_at(&A, 0.92));
        let newest_first: Vec<Observation> = seen.iter().rev().copied().collect();
        fresh.set_pooled(&newest_first);
        assert_eq!(fresh.error_with(&seen, 0.92), local.error_at(&A, 0.92));
        assert_eq!(fresh.decide_with(&seen, 0.92, 0.7), local.decide(&A, 0.92, 0.7));
        // The pooled observations kept are the newest.
        let many: Vec<Observation> = (0..POOLED + 10).map(|_| Observation { score: 0.9, agreed: true }).collect();
        fresh.set_pooled(&many);
        assert!((fresh.error_with(&[], 0.95) - 1.0 / (POOLED as f32 + 2.0)).abs() < 1e-9);
    }

    #[test]
    fn memory_is_bounded_per_entry_and_in_entries() {
        let l = Learned::new(0.1, 2);
        for i in 0..100 {
            l.record(A, 0.9, i % 2 == 0);
        }
        assert_eq!(l.observations(&A), PER_ENTRY);
        l.record(8, 0.9, true);
        l.record(9, 0.9, true);
        assert_eq!(l.observations(&A), 0, "the oldest entry went");
        assert_eq!(l.observations(&9), 1);
    }

    #[test]
    fn the_coin_is_uniform_enough_and_reproducible() {
        assert_eq!(coin(&[0; 32]), 0.0);
        assert!(coin(&[255; 32]) < 1.0);
        assert_eq!(coin(&[1, 2]), 0.0);
        assert_eq!(coin(&text_hash("a")), coin(&text_hash("a")));
        let mean = (0..1000).map(|i| coin(&text_hash(&i.to_string()))).sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
