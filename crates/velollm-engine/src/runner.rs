//! The load runner: one step = a workload under a load profile within bounds → a stream of records.
//!
//! Closed-loop profiles (sequential, concurrency) run N workers that each own a connection and send their
//! next request when the previous one ends. The open-loop profile (rate) has a dispatcher that sleeps until
//! each scheduled instant and hands the request to a task; the record keeps the *scheduled* instant, so
//! latency from the schedule is measured even when the client had to wait (no coordinated omission).
//! Records flow over a channel to the collector, which feeds the [`Observer`].
//!
//! Every request carries its index in the step (`RequestRecord::index`), which seeds its prompt. A run
//! resumed after an interruption ([`Resume`]) skips the indices that already finished, so it sends exactly
//! the requests an uninterrupted run would have sent. A panic in a request task (a bug in velollm) stops the
//! step cleanly: the request is recorded as cancelled with the panic's message, the step is marked partial
//! and [`RunError::Internal`] says what happened — it is never counted as a server failure.

use crate::checks::run_checks;
use crate::dialect::{DialectKind, GenRequest};
use crate::exec::execute;
use crate::plan::StepPlan;
use crate::pool::{Slot, StepConnections};
use crate::prompts::PromptSource;
use crate::target::Target;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use velollm_core::aggregate::accumulator::StepAccumulator;
use velollm_core::aggregate::step::{StepConfig, StepResult};
use velollm_core::analysis::AnalysisResult;
use velollm_core::document::scenario::Workload;
use velollm_core::judge::threshold::Verdict;
use velollm_core::measure::record::{ErrorClass, Nanos, RequestError, RequestRecord};
use velollm_core::measure::slo::Slo;
use velollm_core::workload::load::{ArrivalSchedule, LoadProfile, ScheduleError, Warmup};

/// Receives what a run produces, as it happens.
pub trait Observer: Send {
    /// A step starts.
    fn step_started(&mut self, _index: usize, _step: &StepPlan) {}
    /// A request finished (successfully or not).
    fn record(&mut self, _record: &RequestRecord) {}
    /// The current step's aggregates so far (called about once a second).
    fn step_progress(&mut self, _index: usize, _partial: &StepResult) {}
    /// A step ended; `result.partial` says whether it was cut short.
    fn step_finished(&mut self, _index: usize, _result: &StepResult) {}
    /// The server's own metrics over a step, scraped just before and just after it (after `step_finished`).
    fn server_metrics(&mut self, _index: usize, _metrics: &velollm_core::measure::prom::ServerMetrics) {}
    /// The scenario's analyses and threshold verdicts, once every step has run.
    fn finished(&mut self, _analyses: &[AnalysisResult], _verdicts: &[Verdict]) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

impl<A: Observer, B: Observer> Observer for (A, B) {
    fn step_started(&mut self, i: usize, s: &StepPlan) {
        self.0.step_started(i, s);
        self.1.step_started(i, s);
    }
    fn record(&mut self, r: &RequestRecord) {
        self.0.record(r);
        self.1.record(r);
    }
    fn step_progress(&mut self, i: usize, p: &StepResult) {
        self.0.step_progress(i, p);
        self.1.step_progress(i, p);
    }
    fn step_finished(&mut self, i: usize, r: &StepResult) {
        self.0.step_finished(i, r);
        self.1.step_finished(i, r);
    }
    fn server_metrics(&mut self, i: usize, m: &velollm_core::measure::prom::ServerMetrics) {
        self.0.server_metrics(i, m);
        self.1.server_metrics(i, m);
    }
    fn finished(&mut self, a: &[AnalysisResult], v: &[Verdict]) {
        self.0.finished(a, v);
        self.1.finished(a, v);
    }
}

/// The user messages of session `i` with their labels: one prompt, or every turn of the conversation (for a
/// dataset: of record `i % len`) — as the load runner builds them.
pub(crate) fn session_turns(
    prompts: &PromptSource,
    step: &StepPlan,
    nonce: u64,
    i: u64,
    tokenizer: Option<&crate::tokenize::TokenCounter>,
) -> Vec<(String, Option<String>)> {
    let turns = match &step.workload {
        Workload::Conversation(turns) => turns.as_slice(),
        Workload::Sessions(_) => prompts.session(i),
        _ => return vec![prompts.labelled(i, tokenizer)],
    };
    if turns.is_empty() {
        return vec![(String::new(), None)];
    }
    turns
        .iter()
        .map(|t| {
            let user = if t.salt {
                format!("[session {:016x}] {}", nonce ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15), t.user)
            } else {
                t.user.clone()
            };
            (user, t.label.clone())
        })
        .collect()
}

/// The request of session `i` for one side, as the load runner builds it: a step with a reusable context
/// starts every request with a marker unique to the step (with `fresh_context`, to the request).
pub(crate) fn request(
    step: &StepPlan,
    context: &Option<String>,
    nonce: u64,
    i: u64,
    history: &[(String, String)],
    prompt: String,
    model: &str,
) -> GenRequest {
    let (mut system, mut context) = (step.system.clone(), context.clone());
    if context.is_some() || step.fresh_context {
        let marker = if step.fresh_context {
            format!("[session {:016x}]", nonce ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        } else {
            format!("[session {:016x}]", nonce)
        };
        match (&mut system, &mut context) {
            (Some(s), _) => *s = format!("{marker} {s}"),
            (None, Some(c)) => *c = format!("{marker} {c}"),
            (None, None) => context = Some(marker),
        }
    }
    GenRequest {
        model: model.to_string(),
        system,
        context,
        cache: step.cache.clone(),
        history: history.to_vec(),
        prompt,
        max_tokens: step.max_tokens,
        exact_output: step.exact_output,
        temperature: step.temperature,
        tools: step.tools.clone(),
        recorded: None,
    }
}

/// The step's reusable context: the given text, or a synthetic one generated once for the step from its nonce.
pub(crate) fn step_context(
    step: &StepPlan,
    nonce: u64,
    tokenizer: Option<&crate::tokenize::TokenCounter>,
) -> Option<String> {
    match step.context_tokens {
        Some(n) => Some(crate::prompts::synthetic(n, nonce, tokenizer)),
        None => step.context.clone(),
    }
}

/// What an interrupted run already measured, for `velollm bench --resume`: the steps that finished and the
/// records of the requests that finished. The runner does not run the finished steps again; in the
/// interrupted step it sends only the request indices that did not finish, with the prompts an uninterrupted
/// run would have sent (given the same seed and nonce), and its aggregates include the earlier requests.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Results of the steps that finished, in order.
    pub steps: Vec<StepResult>,
    /// The records kept (see [`Resume::new`]), in the order they were written.
    pub records: Vec<RequestRecord>,
}

impl Resume {
    /// From the results of the steps that finished, every record the interrupted run wrote, and the plan
    /// of the step it interrupted (none when it stopped between steps). Keeps the records of the finished
    /// steps and, in the interrupted step, those of the requests that finished: a request cancelled by the
    /// interruption is sent again, and so is every turn of a conversation that did not reach its end.
    /// Records of later steps are dropped. Fails when a record of the interrupted step has no index
    /// (written by a velollm without `--resume`).
    pub fn new(
        steps: Vec<StepResult>,
        records: Vec<RequestRecord>,
        interrupted: Option<&StepPlan>,
    ) -> Result<Resume, String> {
        let current = steps.len() as u32;
        let mut records: Vec<RequestRecord> = records.into_iter().filter(|r| r.step <= current).collect();
        if records.iter().any(|r| r.step == current && r.index.is_none()) {
            return Err("the records of the interrupted step carry no request index (written by an older velollm): \
                        run the benchmark again from the start"
                .to_string());
        }
        if let Some(plan) = interrupted {
            let mut turns: BTreeMap<u64, usize> = BTreeMap::new();
            let mut ended: BTreeSet<u64> = BTreeSet::new();
            let mut cancelled: BTreeSet<u64> = BTreeSet::new();
            for r in records.iter().filter(|r| r.step == current) {
                let i = r.index.unwrap_or_default();
                match r.error.as_ref().map(|e| e.class) {
                    Some(ErrorClass::Cancelled) => {
                        cancelled.insert(i);
                    }
                    // A failed turn ends its conversation: later turns would not carry a real answer.
                    Some(_) => {
                        ended.insert(i);
                    }
                    None => {}
                }
                if r.label.as_deref() != Some("correction") {
                    *turns.entry(i).or_default() += 1;
                }
            }
            let finished = |i: u64| {
                !cancelled.contains(&i)
                    && (ended.contains(&i) || turns.get(&i).copied().unwrap_or(0) >= planned_turns(plan, i))
            };
            records.retain(|r| r.step < current || finished(r.index.unwrap_or_default()));
        }
        Ok(Resume { steps, records })
    }

    /// The kept records of step `index`.
    pub fn step_records(&self, index: usize) -> impl Iterator<Item = &RequestRecord> {
        self.records.iter().filter(move |r| r.step as usize == index)
    }

    /// The latest instant on the interrupted run's clock (a resumed run's clock starts after it, so a
    /// step's rate counts the time it ran, not the pause).
    pub fn end(&self) -> Nanos {
        self.records.iter().map(|r| r.done.unwrap_or(r.scheduled).max(r.scheduled)).max().unwrap_or(0)
    }

    /// The first request id not used by the kept records.
    fn next_id(&self) -> u64 {
        self.records.iter().map(|r| r.id + 1).max().unwrap_or(0)
    }
}

/// The user turns session `i` of `step` sends when nothing fails (corrections aside).
fn planned_turns(step: &StepPlan, i: u64) -> usize {
    match &step.workload {
        Workload::Conversation(turns) => turns.len().max(1),
        Workload::Sessions(s) if !s.is_empty() => s[(i % s.len() as u64) as usize].len().max(1),
        Workload::Trace(t) => t.root(i as usize).map_or(1, |s| t.tree_calls(s)),
        _ => 1,
    }
}

/// Test-only: `VELOLLM_TEST_PANIC_AT=N` makes the task of request index N panic before it sends anything,
/// so the tests can check that a bug in velollm loses nothing. Read once; not a user option.
fn test_panic_at() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| std::env::var("VELOLLM_TEST_PANIC_AT").ok().and_then(|v| v.trim().parse().ok()))
}

/// A future that turns a panic while it is polled into an error carrying the panic's message.
struct CatchPanic<F: Future>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string()))),
        }
    }
}

/// Shared state of one running step.
struct StepCtx {
    target: Arc<Target>,
    index: u32,
    next_id: AtomicU64,
    nonce: u64,
    model: String,
    step: StepPlan,
    prompts: PromptSource,
    /// The step's reusable context (given, or synthetic and generated once for the step).
    context: Option<String>,
    start: Nanos,
    counter: AtomicU64,
    /// Set by the run's cancellation, or by [`StepCtx::stop`] (a panic in a request task).
    cancel: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    /// The first panic caught in a request task.
    panic: std::sync::Mutex<Option<String>>,
    /// Request indices that already finished (a resumed run): not sent again.
    skip: BTreeSet<u64>,
    connections: Arc<StepConnections>,
}

impl StepCtx {
    fn warmup_requests(&self) -> u64 {
        match self.step.bounds.warmup {
            Warmup::Requests(n) => n,
            _ => 0,
        }
    }

    fn warmup_ns(&self) -> Nanos {
        match self.step.bounds.warmup {
            Warmup::Seconds(s) => (s * 1e9) as Nanos,
            _ => 0,
        }
    }

    /// May request `i`, scheduled at `at`, be issued?
    fn admit(&self, i: u64, at: Nanos) -> bool {
        if *self.cancel.borrow() {
            return false;
        }
        let over_count = self.step.bounds.requests.is_some_and(|r| i >= self.warmup_requests() + r);
        let over_time = self
            .step
            .bounds
            .duration_s
            .is_some_and(|d| at.saturating_sub(self.start) >= self.warmup_ns() + (d * 1e9) as Nanos);
        !(over_count || over_time)
    }

    /// The next request index to send (closed loop): indices that already finished are skipped.
    fn next_index(&self) -> u64 {
        loop {
            let i = self.counter.fetch_add(1, Ordering::Relaxed);
            if !self.skip.contains(&i) {
                return i;
            }
        }
    }

    /// Run session `i`, catching a panic: the request is then recorded as cancelled by an internal error and
    /// the step stops. Returns false when the worker should stop.
    async fn run_guarded(&self, slot: &mut Slot, i: u64, scheduled: Nanos, tx: &mpsc::Sender<RequestRecord>) -> bool {
        match CatchPanic(Box::pin(self.run_session(slot, i, scheduled, tx))).await {
            Ok(go_on) => go_on,
            Err(message) => {
                self.panic.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| message.clone());
                let _ = self.stop.send(true);
                let mut record = self.record(i, scheduled);
                record.done = Some(self.target.clock.now());
                record.error = Some(RequestError {
                    class: ErrorClass::Cancelled,
                    message: format!("internal error (a bug in velollm, not a server failure): {message}"),
                    retry_after_s: None,
                });
                let _ = tx.send(record).await;
                false
            }
        }
    }

    fn is_warmup(&self, i: u64, at: Nanos) -> bool {
        i < self.warmup_requests() || at.saturating_sub(self.start) < self.warmup_ns()
    }

    /// The request of session `i` (see [`request`]).
    fn request(&self, i: u64, history: &[(String, String)], prompt: String) -> GenRequest {
        request(&self.step, &self.context, self.nonce, i, history, prompt, &self.model)
    }

    fn record(&self, i: u64, scheduled: Nanos) -> RequestRecord {
        RequestRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            step: self.index,
            index: Some(i),
            warmup: self.is_warmup(i, scheduled),
            scheduled,
            ..RequestRecord::default()
        }
    }

    /// The user messages of session `i` with their labels (see [`session_turns`]).
    fn session_turns(&self, i: u64) -> Vec<(String, Option<String>)> {
        session_turns(&self.prompts, &self.step, self.nonce, i, self.target.tokenizer.as_deref())
    }

    /// Send one request of session `i`, due at `at`, as `describe` labels its record: wait while a launched
    /// server restarts (the request then counts from its return), execute it, keep no key in its error, and
    /// retire a `new` step's connection.
    async fn send(
        &self,
        slot: &mut Slot,
        i: u64,
        mut at: Nanos,
        req: &GenRequest,
        describe: impl FnOnce(&mut RequestRecord),
    ) -> RequestRecord {
        if let Some(gate) = &self.target.gate
            && !*gate.borrow()
        {
            // The server is being restarted: wait for it; the request counts from its return.
            let mut gate = gate.clone();
            let mut cancel = self.cancel.clone();
            tokio::select! {
                _ = gate.wait_for(|open| *open) => {}
                _ = cancel.wait_for(|c| *c) => {}
            }
            at = self.target.clock.now();
        }
        let mut record = self.record(i, at);
        describe(&mut record);
        let mut record = execute(&self.target, slot, req, record, &self.cancel).await;
        // A server may echo the key (e.g. the request's headers in an error body): never keep it.
        if let (Some(key), Some(e)) = (&self.target.api_key, record.error.as_mut())
            && let std::borrow::Cow::Owned(m) = key.redact(&e.message)
        {
            e.message = m;
        }
        if self.target.gate.is_some()
            && record.error.as_ref().is_some_and(|e| e.class == velollm_core::measure::record::ErrorClass::Connect)
        {
            // A launched server that refuses connections is dying or restarting: give the monitor a
            // moment to close the gate instead of spinning through the step's requests.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.step.connection.is_new() {
            slot.discard();
        }
        record
    }

    /// Run session `i` (scheduled at `scheduled`): every turn in order, each carrying the real previous
    /// answers, plus correction turns after failed checks. Returns false when the collector is gone.
    async fn run_session(&self, slot: &mut Slot, i: u64, scheduled: Nanos, tx: &mpsc::Sender<RequestRecord>) -> bool {
        if test_panic_at() == Some(i) {
            panic!("VELOLLM_TEST_PANIC_AT={i}: a simulated bug in a request task");
        }
        if let Workload::Trace(trace) = &self.step.workload {
            return self.run_trace_session(slot, trace, i, scheduled, tx).await;
        }
        let conversation =
            matches!(self.step.workload, Workload::Conversation(_) | Workload::Sessions(_)) || self.step.retries > 0;
        let mut queue: VecDeque<(String, Option<String>)> = self.session_turns(i).into();
        let mut history: Vec<(String, String)> = Vec::new();
        let mut retries_left = self.step.retries;
        let mut at = scheduled;
        let mut turn = 0;
        while let Some((prompt, label)) = queue.pop_front() {
            let req = self.request(i, &history, prompt.clone());
            let mut record = self
                .send(slot, i, at, &req, |r| {
                    if conversation {
                        r.conversation = Some(i);
                        r.turn = Some(turn);
                    }
                    r.label = label;
                })
                .await;
            let ok = record.succeeded();
            if ok && !self.step.checks.is_empty() {
                run_checks(&self.step.checks, &mut record).await;
            }
            let failed: Vec<String> = record
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| if c.detail.is_empty() { c.name.clone() } else { format!("{} ({})", c.name, c.detail) })
                .collect();
            let answer = if self.target.keep_text { record.text.clone() } else { record.text.take() };
            if tx.send(record).await.is_err() {
                return false;
            }
            if !ok || *self.cancel.borrow() {
                break; // later turns would not carry a real answer
            }
            history.push((prompt, answer.unwrap_or_default()));
            turn += 1;
            if !failed.is_empty() && retries_left > 0 {
                retries_left -= 1;
                let fix =
                    format!("Your answer failed these checks: {}. Please answer again, corrected.", failed.join("; "));
                queue.push_front((fix, Some("correction".to_string())));
            }
            at = self.target.clock.now();
        }
        true
    }
}

impl StepCtx {
    /// Replay session `i` of a trace (scheduled at `scheduled`): the root session it maps to, with its
    /// sub-agents. Returns false when the collector is gone.
    async fn run_trace_session(
        &self,
        slot: &mut Slot,
        trace: &velollm_core::workload::trace::TraceReplay,
        i: u64,
        scheduled: Nanos,
        tx: &mpsc::Sender<RequestRecord>,
    ) -> bool {
        match trace.roots.get((i % trace.roots.len().max(1) as u64) as usize) {
            Some(&root) => self.run_trace_calls(slot, trace, root, i, scheduled, tx).await,
            None => true,
        }
    }

    /// Replay the trace's session `index` for replay session `i`: its recorded calls in order, each sent with
    /// its recorded history, each after the recorded pause that followed the previous one (scaled and capped).
    /// A call is scheduled at the end of that pause, so its queue delay is how late the replay sent it. The
    /// sub-agents a call starts run concurrently, each on its own connection, and the next call waits for them
    /// to end. Returns false when the collector is gone.
    fn run_trace_calls<'a>(
        &'a self,
        slot: &'a mut Slot,
        trace: &'a velollm_core::workload::trace::TraceReplay,
        index: usize,
        i: u64,
        scheduled: Nanos,
        tx: &'a mpsc::Sender<RequestRecord>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let session = &trace.sessions[index];
            let clock = self.target.clock;
            let mut at = scheduled;
            let mut cancel = self.cancel.clone();
            for (turn, call) in session.turns.iter().enumerate() {
                if turn > 0 {
                    tokio::select! {
                        _ = crate::timer::sleep_until(clock.instant(at)) => {}
                        _ = cancel.wait_for(|c| *c) => return true,
                    }
                }
                let req = self.trace_request(session, call);
                let mut record = self
                    .send(slot, i, at, &req, |r| {
                        r.conversation = Some(i);
                        r.turn = Some(turn as u32);
                        r.label = Some(format!("session {}", session.id));
                    })
                    .await;
                if !self.target.keep_text {
                    record.text = None;
                }
                if tx.send(record).await.is_err() {
                    return false;
                }
                if *self.cancel.borrow() {
                    break;
                }
                // Sub-agents started by this call, all at once; the session goes on when they have ended.
                let children: Vec<usize> =
                    session.forks.iter().filter(|(t, _)| *t == turn).map(|(_, child)| *child).collect();
                if !children.is_empty() {
                    let now = clock.now();
                    let runs = children.into_iter().map(|child| async move {
                        let mut own = self.connections.slot();
                        self.run_trace_calls(&mut own, trace, child, i, now, tx).await
                    });
                    if !futures_util::future::join_all(runs).await.into_iter().all(|go_on| go_on) {
                        return false;
                    }
                }
                // The recorded history goes on whatever this answer was: the next call is sent as recorded.
                at = clock.now() + (trace.pause_ms(call.delay_ms) * 1e6) as Nanos;
            }
            true
        })
    }

    /// The request of one recorded call: its history as recorded, or (Mooncake) a prompt synthesised from its
    /// blocks.
    fn trace_request(
        &self,
        session: &velollm_core::workload::trace::TraceSession,
        call: &velollm_core::workload::trace::TraceTurn,
    ) -> GenRequest {
        let (prompt, recorded) = match &call.blocks {
            Some(blocks) => (self.blocks_prompt(blocks), None),
            None => (String::new(), Some(session.messages(call).to_vec())),
        };
        GenRequest {
            model: self.model.clone(),
            system: None,
            context: None,
            cache: self.step.cache.clone(),
            history: Vec::new(),
            prompt,
            max_tokens: call.output_tokens.or(call.max_tokens).unwrap_or(self.step.max_tokens),
            exact_output: self.step.exact_output || call.output_tokens.is_some(),
            temperature: self.step.temperature,
            tools: call.tools.clone().or_else(|| self.step.tools.clone()),
            recorded,
        }
    }

    /// A Mooncake prompt: block `h` is the same text wherever it appears in the step (and new in every run),
    /// so equal leading ids give byte-identical prefixes block by block; the last block is cut to the length.
    fn blocks_prompt(&self, blocks: &velollm_core::workload::trace::Blocks) -> String {
        let size = velollm_core::workload::trace::MOONCAKE_BLOCK_TOKENS;
        let tokenizer = self.target.tokenizer.as_deref();
        let mut left = blocks.input_tokens;
        let mut parts = Vec::with_capacity(blocks.hash_ids.len());
        for h in &blocks.hash_ids {
            if left == 0 {
                break;
            }
            let n = left.min(size);
            left -= n;
            parts.push(crate::prompts::synthetic(n, self.nonce ^ h.wrapping_mul(0x9E37_79B9_7F4A_7C15), tokenizer));
        }
        parts.join(" ")
    }
}

/// Sessions of a trace, each started at its recorded time (or all at once), all running together: session
/// `i` replays the trace's session `i % len`, up to the step's request bound (its sessions).
async fn trace_loop(
    ctx: Arc<StepCtx>,
    trace: velollm_core::workload::trace::TraceReplay,
    tx: mpsc::Sender<RequestRecord>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut cancel = ctx.cancel.clone();
    for i in 0.. {
        if ctx.skip.contains(&i) {
            continue;
        }
        let at = ctx.start + (trace.start_ms(i as usize) * 1e6) as Nanos;
        if !ctx.admit(i, at) {
            break;
        }
        tokio::select! {
            _ = crate::timer::sleep_until(ctx.target.clock.instant(at)) => {}
            _ = cancel.wait_for(|c| *c) => break,
        }
        let (ctx, tx) = (ctx.clone(), tx.clone());
        tasks.spawn(async move {
            let mut slot = ctx.connections.slot();
            ctx.run_guarded(&mut slot, i, at, &tx).await;
        });
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
}

/// Runs the steps of a plan against one target.
pub struct Runner {
    target: Arc<Target>,
    model: String,
    seed: u64,
    slo: Option<Slo>,
    next_id: u64,
    nonce: u64,
    /// Token prices: step results carry their cost when the model is priced.
    pub prices: Option<Arc<velollm_core::measure::cost::PriceTable>>,
    resume: Option<Arc<Resume>>,
}

/// Why a step could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The arrival schedule is invalid.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The step has neither a request count nor a duration.
    #[error("step '{0}' is unbounded: give --requests N or --duration D")]
    Unbounded(String),
    /// A cold start was asked of a server velollm cannot unload.
    #[error(
        "step '{0}' needs a cold model, which velollm can only arrange on Ollama (keep_alive: 0); \
         for another server, restart it before the run or pick another scenario"
    )]
    ColdUnsupported(String),
    /// Unloading the model failed.
    #[error("step '{step}': could not unload the model before a cold start: {message}")]
    Unload {
        /// Step name.
        step: String,
        /// What the server said.
        message: String,
    },
    /// A trace's recorded histories are OpenAI chat messages: other dialects cannot carry them as recorded.
    #[error(
        "step '{0}' replays a trace, whose recorded histories (tool calls and results included) are OpenAI chat \
         messages: the target speaks '{1}'; use --backend openai-chat (llama-server, vLLM, SGLang, Ollama's /v1 \
         and most gateways serve it)"
    )]
    TraceDialect(String, &'static str),
    /// A request task panicked (a bug in velollm): the step stopped, what it measured is kept.
    #[error("internal error: {0} (a bug in velollm, not a server failure; please report it with the command line)")]
    Internal(String),
}

impl Runner {
    /// A runner for `model` on `target`, with every random choice derived from `seed`.
    pub fn new(target: Arc<Target>, model: String, seed: u64, slo: Option<Slo>) -> Runner {
        let wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Runner { target, model, seed, slo, next_id: 0, nonce: seed ^ wall.rotate_left(17), prices: None, resume: None }
    }

    /// Use `nonce` as the run's nonce (it makes synthetic prompts and cache markers new in every run; a resumed
    /// run must use the interrupted run's to send the same prompts) instead of one drawn from the clock.
    pub fn with_nonce(mut self, nonce: u64) -> Runner {
        self.nonce = nonce;
        self
    }

    /// Continue an interrupted run: request ids follow its records, and [`Runner::run_step`] skips the
    /// requests of the interrupted step that finished (use [`Runner::replay`] for the steps that finished).
    pub fn resume(&mut self, resume: Arc<Resume>) {
        self.next_id = self.next_id.max(resume.next_id());
        self.resume = Some(resume);
    }

    /// The accumulator of a step that finished before the interruption, rebuilt from its kept records (for
    /// the analyses, which need its samples).
    pub fn replay(&self, index: usize, step: &StepPlan) -> StepAccumulator {
        let mut acc = self.accumulator(step.name.clone(), step.config());
        for r in self.resume.iter().flat_map(|r| r.step_records(index)) {
            acc.push(r);
        }
        acc
    }

    /// Run one step; stops early (and marks the result partial) when `cancel` becomes true.
    pub async fn run_step(
        &mut self,
        index: usize,
        step: &StepPlan,
        observer: &mut dyn Observer,
        cancel: &watch::Receiver<bool>,
    ) -> Result<(StepResult, StepAccumulator), RunError> {
        if !step.bounds.is_bounded() {
            return Err(RunError::Unbounded(step.name.clone()));
        }
        if matches!(&step.workload, Workload::Trace(t) if t.has_histories())
            && self.target.dialect != DialectKind::OpenAiChat
        {
            return Err(RunError::TraceDialect(step.name.clone(), self.target.dialect.name()));
        }
        if step.cold {
            self.unload(step).await?;
        }
        let step_seed = self.seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9));
        let schedule = match step.load {
            LoadProfile::Rate { rate, arrival, .. } => Some(ArrivalSchedule::new(rate, arrival, step_seed)?),
            _ => None,
        };
        let mut prompts = PromptSource::new(step.workload.clone(), step_seed).with_run(self.seed, self.nonce);
        if prompts.is_synthetic() {
            // Probed once per run (cached per target), before the step's clock starts.
            prompts = prompts.with_server_lengths(crate::prompts::server_lengths(&self.target, &self.model).await);
        }
        observer.step_started(index, step);
        let step_nonce = self.nonce ^ (index as u64).rotate_left(32);
        let context = step_context(step, step_nonce, self.target.tokenizer.as_deref());
        let done: Vec<RequestRecord> = self.resume.iter().flat_map(|r| r.step_records(index)).cloned().collect();
        // The step's own cancellation: the run's, or a panic in one of its request tasks.
        let (stop, step_cancel) = watch::channel(*cancel.borrow());
        let forward = {
            let (stop, mut cancel) = (stop.clone(), cancel.clone());
            tokio::spawn(async move {
                if cancel.wait_for(|c| *c).await.is_ok() {
                    let _ = stop.send(true);
                }
            })
        };
        let ctx = Arc::new(StepCtx {
            target: self.target.clone(),
            index: index as u32,
            next_id: AtomicU64::new(self.next_id),
            nonce: step_nonce,
            model: self.model.clone(),
            step: step.clone(),
            prompts,
            context,
            start: self.target.clock.now(),
            counter: AtomicU64::new(0),
            cancel: step_cancel,
            stop,
            panic: std::sync::Mutex::new(None),
            skip: done.iter().filter_map(|r| r.index).collect(),
            connections: StepConnections::new(step.connection),
        });
        let (tx, mut rx) = mpsc::channel::<RequestRecord>(1024);
        let driver = match (schedule, &step.workload) {
            (_, Workload::Trace(trace)) => tokio::spawn(trace_loop(ctx.clone(), trace.clone(), tx)),
            (Some(s), _) => tokio::spawn(open_loop(ctx.clone(), s, step.load.workers(), tx)),
            (None, _) => {
                let workers = step.load.workers().unwrap_or(1).max(1);
                tokio::spawn(closed_loop(ctx.clone(), workers, tx))
            }
        };
        let mut config = step.config();
        if let Some(counting) = ctx.prompts.counting(self.target.tokenizer.is_some()) {
            config.prompt = format!("{}; {counting}", config.prompt);
        }
        let mut acc = self.accumulator(step.name.clone(), config);
        // A resumed step: the requests that finished before the interruption count as measured.
        for r in &done {
            acc.push(r);
        }
        // Progress snapshots summarise everything so far, which costs more as the step grows: space them so
        // they take at most ~5% of the collector's time (and at least a second apart).
        let mut next_progress = Instant::now() + Duration::from_secs(1);
        let mut sent = 0;
        while let Some(record) = rx.recv().await {
            sent += 1;
            observer.record(&record);
            acc.push(&record);
            if Instant::now() >= next_progress {
                let t0 = Instant::now();
                observer.step_progress(index, &acc.result(self.slo.as_ref(), true));
                next_progress = Instant::now() + Duration::from_secs(1).max(t0.elapsed() * 20);
            }
        }
        let _ = driver.await;
        forward.abort();
        self.next_id += sent;
        let result = acc.result(self.slo.as_ref(), *ctx.cancel.borrow());
        observer.step_finished(index, &result);
        if let Some(message) = ctx.panic.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Err(RunError::Internal(message));
        }
        Ok((result, acc))
    }

    /// An empty accumulator for a step, with the run's SLOs (exact goodput at any size) and the model's price.
    fn accumulator(&self, name: String, config: StepConfig) -> StepAccumulator {
        let mut acc = StepAccumulator::new(name, config);
        if let Some(slo) = &self.slo {
            acc = acc.with_slo(slo.clone());
        }
        if let Some(price) = self.prices.as_ref().and_then(|p| Some((p, p.get(&self.model)?))) {
            acc = acc.with_price(&price.0.currency, *price.1);
        }
        acc
    }

    /// Unload the model so the next request loads it (Ollama: a request with `keep_alive: 0`).
    async fn unload(&self, step: &StepPlan) -> Result<(), RunError> {
        if !self.target.dialect.is_ollama() {
            return Err(RunError::ColdUnsupported(step.name.clone()));
        }
        let (path, body) = crate::dialect::ollama::unload_request(&self.model);
        match crate::exec::send_json(&self.target, hyper::Method::POST, path, &body).await {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(RunError::Unload {
                step: step.name.clone(),
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            }),
            Err(e) => Err(RunError::Unload { step: step.name.clone(), message: e.message }),
        }
    }
}

async fn closed_loop(ctx: Arc<StepCtx>, workers: u32, tx: mpsc::Sender<RequestRecord>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let ctx = ctx.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let mut slot = ctx.connections.slot();
            loop {
                let i = ctx.next_index();
                let now = ctx.target.clock.now();
                if !ctx.admit(i, now) || !ctx.run_guarded(&mut slot, i, now, &tx).await {
                    break;
                }
            }
        });
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
}

async fn open_loop(
    ctx: Arc<StepCtx>,
    mut schedule: ArrivalSchedule,
    max_in_flight: Option<u32>,
    tx: mpsc::Sender<RequestRecord>,
) {
    let limit = max_in_flight.map(|n| Arc::new(Semaphore::new(n.max(1) as usize)));
    let idle_slots: Arc<Mutex<Vec<Slot>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut cancel = ctx.cancel.clone();
    // A resumed step skips the requests that finished; its schedule is shifted so the first one left is due
    // at once and the gaps between the others are those of an uninterrupted run.
    let mut shift = None;
    for i in 0.. {
        let offset = schedule.next_offset().as_nanos() as Nanos;
        if ctx.skip.contains(&i) {
            continue;
        }
        let shift = *shift.get_or_insert(if ctx.skip.is_empty() { 0 } else { offset });
        let at = ctx.start + offset - shift;
        if !ctx.admit(i, at) {
            break;
        }
        tokio::select! {
            _ = crate::timer::sleep_until(ctx.target.clock.instant(at)) => {}
            _ = cancel.wait_for(|c| *c) => break,
        }
        let (ctx, tx, limit, idle_slots) = (ctx.clone(), tx.clone(), limit.clone(), idle_slots.clone());
        tasks.spawn(async move {
            let _permit = match &limit {
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            let mut slot = idle_slots.lock().await.pop().unwrap_or_else(|| ctx.connections.slot());
            if ctx.run_guarded(&mut slot, i, at, &tx).await {
                idle_slots.lock().await.push(slot);
            }
        });
        // Reap finished tasks so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    drop(tx);
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::scenario::Turn;
    use velollm_core::workload::load::{Bounds, LoadProfile, Warmup};

    fn rec(step: u32, index: u64, class: Option<ErrorClass>) -> RequestRecord {
        RequestRecord {
            id: index,
            step,
            index: Some(index),
            scheduled: index * 10,
            done: Some(index * 10 + 5),
            error: class.map(|class| RequestError { class, message: String::new(), retry_after_s: None }),
            ..RequestRecord::default()
        }
    }

    fn plan(workload: Workload) -> StepPlan {
        let bounds = Bounds { requests: Some(10), duration_s: None, warmup: Warmup::None };
        StepPlan::simple("s", workload, 8, LoadProfile::Concurrency { concurrency: 2 }, bounds)
    }

    fn indices(r: &Resume, step: usize) -> Vec<u64> {
        r.step_records(step).filter_map(|r| r.index).collect()
    }

    #[test]
    fn resume_keeps_what_finished_and_sends_the_cancelled_again() {
        let records = vec![
            rec(0, 0, None),
            rec(0, 1, Some(ErrorClass::Http5xx)),
            rec(0, 2, Some(ErrorClass::Cancelled)),
            rec(0, 3, None),
            rec(1, 4, None),
        ];
        let r = Resume::new(Vec::new(), records, Some(&plan(Workload::Synthetic { prompt_tokens: 4 }))).unwrap();
        // A failed request finished (as a failure); the cancelled one did not; a later step is dropped.
        assert_eq!(indices(&r, 0), vec![0, 1, 3]);
        assert_eq!(indices(&r, 1), Vec::<u64>::new());
        assert_eq!((r.end(), r.next_id()), (35, 4));
    }

    #[test]
    fn resume_sends_again_every_turn_of_an_unfinished_conversation() {
        let turn = |user: &str| Turn { user: user.into(), label: None, salt: false };
        let plan = plan(Workload::Conversation(vec![turn("a"), turn("b"), turn("c")]));
        let t = |index: u64, class| RequestRecord { conversation: Some(index), ..rec(0, index, class) };
        let records = vec![
            // Conversation 0 ran its three turns; 1 stopped after two (no cancelled turn recorded); 2 failed
            // at its second turn (it ended there); 3 had its second turn cancelled.
            t(0, None),
            t(0, None),
            t(0, None),
            t(1, None),
            t(1, None),
            t(2, None),
            t(2, Some(ErrorClass::Timeout)),
            t(3, None),
            t(3, Some(ErrorClass::Cancelled)),
        ];
        let r = Resume::new(Vec::new(), records, Some(&plan)).unwrap();
        assert_eq!(indices(&r, 0), vec![0, 0, 0, 2, 2]);
    }

    #[test]
    fn resume_needs_request_indices() {
        let old = RequestRecord { index: None, ..rec(0, 0, None) };
        let e = Resume::new(Vec::new(), vec![old], None).unwrap_err();
        assert!(e.contains("no request index"), "{e}");
    }

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message() {
        let caught = CatchPanic(Box::pin(async {
            if test_panic_at().is_none() {
                panic!("boom {}", 7);
            }
            1
        }))
        .await;
        assert_eq!(caught, Err("boom 7".to_string()));
        assert_eq!(CatchPanic(Box::pin(async { 2 })).await, Ok(2));
    }
}
