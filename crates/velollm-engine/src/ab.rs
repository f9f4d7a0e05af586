//! Paired A/B runs (`velollm ab`): every request of a step is built once and sent to both targets, one after
//! the other and never overlapping, the order alternating from pair to pair (A→B, B→A, A→B …) so that a
//! slow drift of the machine or the network weighs on both sides alike.
//!
//! Requests go through [`crate::exec::execute`], so each side's records are exactly `bench`'s. Multi-turn
//! steps are paired turn by turn: conversation *i* runs on both sides at once, each side carrying its own
//! real previous answers, and stops on both sides at the first turn either side fails. Correction turns
//! (`retries`) are not sent: a correction depends on one side's answer and has no counterpart on the other.
//!
//! Each side's Prometheus `/metrics` (when it has one) is scraped just before and just after every step.

use crate::bench::Session;
use crate::checks::run_checks;
use crate::dialect::GenRequest;
use crate::exec::execute;
use crate::plan::StepPlan;
use crate::pool::StepConnections;
use crate::prompts::PromptSource;
use crate::runner::{request, session_turns, step_context};
use crate::scrape::Scraper;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use tokio::sync::watch;
use velollm_core::aggregate::accumulator::StepAccumulator;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::ab::{AbRecord, PairCache, PairRecords, Side, same_cache_state};
use velollm_core::document::scenario::Workload;
use velollm_core::measure::prom::Scrape;
use velollm_core::measure::record::RequestRecord;
use velollm_core::workload::load::{Bounds, LoadProfile, Warmup};

/// One side of the experiment: a connected session and, when it exposes one, its metrics endpoint.
pub struct AbSide {
    /// Which side.
    pub side: Side,
    /// The connected target.
    pub session: Session,
    /// The side's Prometheus endpoint, scraped around every step.
    pub scraper: Option<Scraper>,
    next_id: u64,
}

impl AbSide {
    /// A side over a connected session.
    pub fn new(side: Side, session: Session, scraper: Option<Scraper>) -> AbSide {
        AbSide { side, session, scraper, next_id: 0 }
    }

    async fn scrape(&self) -> Option<Scrape> {
        self.scraper.as_ref()?.scrape().await.ok()
    }
}

/// Receives what a paired run produces, as it happens.
pub trait PairObserver: Send {
    /// A request of one side finished (successfully or not), warm-up included.
    fn record(&mut self, _line: &AbRecord) {}
    /// A measured pair finished: `done` of `total` in step `index`.
    fn pair_done(&mut self, _index: usize, _done: u64, _total: u64) {}
}

/// An observer that ignores everything.
pub struct NoPairObserver;
impl PairObserver for NoPairObserver {}

/// What one step of a paired run produced.
#[derive(Debug, Clone)]
pub struct PairedStep {
    /// A's aggregates (warm-up excluded), with its server metrics when scraped.
    pub a: StepResult,
    /// B's aggregates.
    pub b: StepResult,
    /// Every measured request pair that completed on both sides (successfully or not), in order.
    pub pairs: Vec<PairRecords>,
    /// The side sent first in each measured pair, one letter per pair.
    pub first: String,
    /// True when the step was cut short.
    pub partial: bool,
}

/// A paired run over several steps: the seed, the run's nonce and which requests were already sent.
pub struct PairedRun {
    seed: u64,
    nonce: u64,
    seen: HashSet<u64>,
    pair_cache: PairCache,
}

impl PairedRun {
    /// A run whose prompts derive from `seed` (and, for synthetic prompts, a per-run nonce, so no earlier run
    /// left them in a cache; both sides get the same ones).
    pub fn new(seed: u64) -> PairedRun {
        let wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        PairedRun { seed, nonce: seed ^ wall.rotate_left(17), seen: HashSet::new(), pair_cache: PairCache::AsIs }
    }

    /// Puts both sides of every pair in the same upstream cache state: each its own salted request (both miss)
    /// or the request sent once to each side before the pair (both hit).
    pub fn with_pair_cache(mut self, pair_cache: PairCache) -> PairedRun {
        self.pair_cache = pair_cache;
        self
    }

    /// Run step `index`: `warmup` unmeasured pairs, then `pairs` measured ones (conversations, for multi-turn
    /// steps). Stops early, marking the step partial, when `cancel` becomes true.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_step(
        &mut self,
        a: &mut AbSide,
        b: &mut AbSide,
        index: usize,
        step: &StepPlan,
        pairs: u64,
        warmup: u64,
        observer: &mut dyn PairObserver,
        cancel: &watch::Receiver<bool>,
    ) -> PairedStep {
        let step_seed = self.seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9));
        let step_nonce = self.nonce ^ (index as u64).rotate_left(32);
        let mut prompts = PromptSource::new(step.workload.clone(), step_seed).with_run(self.seed, self.nonce);
        if prompts.is_synthetic() {
            // Lengths counted with A's tokenizer: both sides get the very same words.
            let t = &a.session.target;
            prompts = prompts.with_server_lengths(crate::prompts::server_lengths(t, &a.session.model).await);
        }
        let tokenizer = a.session.target.tokenizer.clone();
        let context = step_context(step, step_nonce, tokenizer.as_deref());
        let mut config = step.config();
        config.load = LoadProfile::Sequential;
        config.bounds = Bounds { requests: Some(pairs), duration_s: None, warmup: Warmup::Requests(warmup) };
        if let Some(counting) = prompts.counting(tokenizer.is_some()) {
            config.prompt = format!("{}; {counting}", config.prompt);
        }
        let mut acc =
            [StepAccumulator::new(step.name.clone(), config.clone()), StepAccumulator::new(&step.name, config)];
        let before = [a.scrape().await, b.scrape().await];
        let connections = [StepConnections::new(step.connection), StepConnections::new(step.connection)];
        let mut slots = [connections[0].slot(), connections[1].slot()];
        let multi = matches!(step.workload, Workload::Conversation(_) | Workload::Sessions(_));
        let mut out = Vec::new();
        let mut first_letters = String::new();
        let (mut warm_k, mut measured_k) = (0u64, 0u64);
        let mut partial = false;
        'sessions: for i in 0..warmup + pairs {
            let warm = i < warmup;
            let mut history: [Vec<(String, String)>; 2] = [Vec::new(), Vec::new()];
            for (turn, (prompt, label)) in
                session_turns(&prompts, step, step_nonce, i, tokenizer.as_deref()).into_iter().enumerate()
            {
                if *cancel.borrow() {
                    partial = true;
                    break 'sessions;
                }
                let k = if warm { &mut warm_k } else { &mut measured_k };
                let first = Side::first_of_pair(*k);
                *k += 1;
                let req = |side: usize| {
                    request(
                        step,
                        &context,
                        step_nonce,
                        i,
                        &history[side],
                        prompt.clone(),
                        &[&a.session, &b.session][side].model,
                    )
                };
                let mut reqs = [req(0), req(1)];
                let mut key = std::collections::hash_map::DefaultHasher::new();
                (&reqs[0].system, &reqs[0].context, &reqs[0].history, &reqs[0].prompt).hash(&mut key);
                let first_time = self.seen.insert(key.finish());
                match self.pair_cache {
                    PairCache::AsIs => {}
                    PairCache::Miss => {
                        for (side, r) in [Side::A, Side::B].into_iter().zip(reqs.iter_mut()) {
                            salt(r, side, step_nonce, i);
                        }
                    }
                    PairCache::Hit => {
                        // Each side sees the request once, unmeasured and unrecorded, before the pair.
                        for side in [first, first.other()] {
                            let s = side as usize;
                            let who = if side == Side::A { &*a } else { &*b };
                            let record = RequestRecord { warmup: true, ..RequestRecord::default() };
                            let _ = execute(&who.session.target, &mut slots[s], &reqs[s], record, cancel).await;
                            if step.connection.is_new() {
                                slots[s].discard();
                            }
                        }
                    }
                }
                let mut records: [Option<RequestRecord>; 2] = [None, None];
                for side in [first, first.other()] {
                    let s = side as usize;
                    let who = if side == Side::A { &mut *a } else { &mut *b };
                    let target = &who.session.target;
                    let mut record = RequestRecord {
                        id: who.next_id,
                        step: index as u32,
                        warmup: warm,
                        scheduled: target.clock.now(),
                        label: label.clone(),
                        conversation: multi.then_some(i),
                        turn: multi.then_some(turn as u32),
                        ..RequestRecord::default()
                    };
                    who.next_id += 1;
                    record = execute(target, &mut slots[s], &reqs[s], record, cancel).await;
                    if step.connection.is_new() {
                        slots[s].discard();
                    }
                    if record.succeeded() && !step.checks.is_empty() {
                        run_checks(&step.checks, &mut record).await;
                    }
                    let answer = if target.keep_text { record.text.clone() } else { record.text.take() };
                    if record.succeeded() {
                        history[s].push((prompt.clone(), answer.unwrap_or_default()));
                    }
                    acc[s].push(&record);
                    let pair = if warm { i } else { i - warmup };
                    observer.record(&AbRecord {
                        side,
                        step_index: index as u32,
                        pair,
                        first: side == first,
                        record: record.clone(),
                    });
                    records[s] = Some(record);
                }
                let [Some(ra), Some(rb)] = records else { break 'sessions };
                let cancelled = [&ra, &rb].iter().any(|r| {
                    r.error.as_ref().is_some_and(|e| e.class == velollm_core::measure::record::ErrorClass::Cancelled)
                });
                let both_ok = ra.succeeded() && rb.succeeded();
                if !warm && !cancelled {
                    first_letters.push(first.letter());
                    let same_cache = same_cache_state(&ra, &rb);
                    out.push(PairRecords { a: ra, b: rb, first, first_time, same_cache });
                }
                if !both_ok {
                    break; // later turns would not be paired
                }
            }
            if !warm {
                observer.pair_done(index, i + 1 - warmup, pairs);
            }
        }
        let after = [a.scrape().await, b.scrape().await];
        let partial = partial || *cancel.borrow();
        let [acc_a, acc_b] = acc;
        let mut results = [acc_a.result(None, partial), acc_b.result(None, partial)];
        for (s, result) in results.iter_mut().enumerate() {
            if let (Some(x), Some(y)) = (&before[s], &after[s]) {
                result.server_metrics = Some(velollm_core::measure::prom::step_metrics(x, y, &[]));
            }
        }
        let [ra, rb] = results;
        PairedStep { a: ra, b: rb, pairs: out, first: first_letters, partial }
    }
}

/// Puts a side's own salt at the very start of its request (system prompt, else context, else the first user
/// message), so no cache can serve one side with what the other side filled. The two salts differ only in the
/// side's letter, so both requests keep the same length.
fn salt(r: &mut GenRequest, side: Side, nonce: u64, pair: u64) {
    let tag = format!("[{}{:08x} pair {pair}] ", side.letter().to_ascii_lowercase(), nonce as u32);
    let slot = match (&mut r.system, &mut r.context, r.history.first_mut()) {
        (Some(s), _, _) => s,
        (None, Some(c), _) => c,
        (None, None, Some((first, _))) => first,
        (None, None, None) => &mut r.prompt,
    };
    slot.insert_str(0, &tag);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::BenchOptions;
    use velollm_core::workload::load::Bounds;
    use velollm_testkit::{FakeServer, Flavor, Script};

    #[derive(Default)]
    struct Lines(Vec<AbRecord>, u64);
    impl PairObserver for Lines {
        fn record(&mut self, line: &AbRecord) {
            self.0.push(line.clone());
        }
        fn pair_done(&mut self, _: usize, done: u64, _: u64) {
            self.1 = done;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pairs_alternate_and_send_the_same_prompt_to_both_sides() {
        let script = Script {
            ttft: std::time::Duration::from_millis(2),
            itl: std::time::Duration::ZERO,
            tokens: 3,
            ..Script::default()
        };
        let (fa, fb) =
            (FakeServer::start(Flavor::OpenAi, script.clone()).await, FakeServer::start(Flavor::OpenAi, script).await);
        let origin = std::time::Instant::now();
        let side = |url: String| {
            let mut o = BenchOptions::new(url);
            o.origin = Some(origin);
            o
        };
        let a = Session::connect(&side(fa.url())).await.unwrap();
        let b = Session::connect(&side(fb.url())).await.unwrap();
        let (mut a, mut b) = (AbSide::new(Side::A, a, None), AbSide::new(Side::B, b, None));
        let step = StepPlan::simple(
            "s",
            Workload::Synthetic { prompt_tokens: 8 },
            3,
            LoadProfile::Sequential,
            Bounds::default(),
        );
        let (_tx, cancel) = watch::channel(false);
        let mut lines = Lines::default();
        let out = PairedRun::new(7).run_step(&mut a, &mut b, 0, &step, 4, 1, &mut lines, &cancel).await;
        assert_eq!((out.pairs.len(), out.first.as_str(), lines.1), (4, "ABAB", 4));
        assert_eq!((out.a.requests, out.a.warmup_requests, out.b.succeeded), (4, 1, 4));
        assert!(out.pairs.iter().all(|p| p.first_time && p.a.succeeded() && p.b.succeeded()));
        // Warm-up pair first (A then B), then the measured pairs A→B, B→A, A→B, B→A, by send time.
        let order: String = {
            let mut l = lines.0.clone();
            l.sort_by_key(|r| r.record.sent);
            l.iter().map(|r| r.side.letter()).collect()
        };
        assert_eq!(order, "ABABBAABBA");
        let prompts =
            |f: &FakeServer| -> Vec<String> { f.requests().iter().map(|(_, b)| b["messages"].to_string()).collect() };
        assert_eq!(prompts(&fa), prompts(&fb));
        assert_eq!(prompts(&fa).iter().collect::<HashSet<_>>().len(), 5);
    }
}
