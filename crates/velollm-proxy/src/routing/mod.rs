//! Routing: a request for the routed model name (`auto` by default) goes to one of several named tiers, each
//! an upstream and the model it serves, ordered from small to large. The decision takes rules first
//! ([`rules`]: an explicit task header, tools, a JSON schema for the answer, a long prompt), then the vote of
//! the nearest labelled examples in embedding space ([`knn`]); below a confidence, or far from every example,
//! it abstains to the large tier. A tier that fails or times out falls back to the next one.
//!
//! | module | what it is for |
//! |---|---|
//! | [`rules`] | tools, schemas, long prompts: the large tier, without an embedding |
//! | [`knn`] | labelled examples, embedded once, and the vote of the nearest ones |

pub mod knn;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use velollm_core::analysis::routing_eval::{Verdict, verdict};

use crate::dialect::Generate;
use crate::semantic::Embedder;
pub use knn::{Classifier, Example, TASK_TYPES, Vote};

/// The header that names a request's task type explicitly (`x-velollm-task: formatting`).
pub const TASK_HEADER: &str = "x-velollm-task";
/// The header that says where a routed request went and why.
pub const ROUTE_HEADER: &str = "x-velollm-route";

/// One tier.
#[derive(Debug, Clone)]
pub struct Tier {
    /// Its name (`small`, `large`).
    pub name: Arc<str>,
    /// Its upstream (an index in the proxy's upstreams).
    pub upstream: usize,
    /// The model sent in its requests.
    pub model: String,
    /// Time to its response head; past it the next tier is tried.
    pub timeout: Duration,
}

/// Why a request went to its tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The task header named the type.
    Header,
    /// A rule.
    Rule(rules::Rule),
    /// The nearest examples' vote.
    Knn,
    /// The vote was not confident enough: the large tier.
    Abstain,
    /// No example is near: the large tier.
    Unfamiliar,
    /// No text to embed (the last turn is not plain text): the large tier.
    NoText,
    /// The embedder failed or was slow: the large tier.
    EmbedError,
}

impl Reason {
    /// The reason as a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Header => "header",
            Reason::Rule(r) => r.as_str(),
            Reason::Knn => "knn",
            Reason::Abstain => "abstain",
            Reason::Unfamiliar => "unfamiliar",
            Reason::NoText => "no_text",
            Reason::EmbedError => "embed_error",
        }
    }
}

/// One routing decision.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The tier (an index in the router's tiers).
    pub tier: usize,
    /// Why.
    pub reason: Reason,
    /// The task type, when the header or the vote named one.
    pub task: Option<&'static str>,
    /// The vote's confidence (the share of the weight of the voted tier's types), when there was a vote.
    pub confidence: Option<f32>,
    /// The decision's time.
    pub elapsed: Duration,
}

/// The router.
#[derive(Debug)]
pub struct Router {
    /// The model name that is routed.
    pub model: String,
    /// The tiers, small to large.
    pub tiers: Vec<Tier>,
    /// Task type → tier; a type not listed goes to the large tier.
    pub tasks: HashMap<&'static str, usize>,
    /// The examples, when some are configured.
    pub classifier: Option<Classifier>,
    /// Embeds the last user turn.
    pub embedder: Option<Arc<Embedder>>,
    /// The least vote share that routes by the vote.
    pub confidence: f32,
    /// The least similarity of the nearest example that routes by the vote.
    pub min_similarity: f32,
    /// Longest text the rules leave to the classifier.
    pub max_prompt_chars: usize,
    /// Words of the last user turn that are embedded.
    pub max_words: usize,
    /// Tokens of those words an in-process embedder reads at most.
    pub max_tokens: usize,
    /// The embedder's deadline.
    pub embed_timeout: Duration,
}

impl Router {
    /// The large tier: rules and abstentions go there.
    pub fn large(&self) -> usize {
        self.tiers.len() - 1
    }

    /// The tier of a task type.
    pub fn tier_of(&self, task: &str) -> usize {
        self.tasks.get(task).copied().unwrap_or_else(|| self.large())
    }

    /// Where a vote sends a request under `confidence` (and the router's least similarity), why, and the
    /// share of the weight held by the voted tier's types.
    pub fn by_vote(&self, vote: &Vote, confidence: f32) -> (usize, Reason, f32) {
        let tier = self.tier_of(&vote.task);
        let same_tier = |t: &str| self.tier_of(t) == tier;
        let share = vote.share_with(same_tier);
        match verdict(vote, same_tier, confidence, self.min_similarity) {
            Verdict::Unfamiliar => (self.large(), Reason::Unfamiliar, share),
            Verdict::Abstain => (self.large(), Reason::Abstain, share),
            Verdict::Task => (tier, Reason::Knn, share),
        }
    }

    /// Decides where a request goes: `task` is the task header's value, if any (an unknown type is the
    /// caller's error, returned with the list of types).
    pub async fn decide(&self, route: Generate, body: &Value, task: Option<&str>) -> Result<Decision, String> {
        let start = Instant::now();
        let done =
            |tier, reason, task, confidence| Decision { tier, reason, task, confidence, elapsed: start.elapsed() };
        if let Some(name) = task {
            let task = knn::task_type(name).map_err(|e| format!("{TASK_HEADER}: {e}"))?;
            return Ok(done(self.tier_of(task), Reason::Header, Some(task), None));
        }
        if let Some(rule) = rules::check(body, self.max_prompt_chars) {
            return Ok(done(self.large(), Reason::Rule(rule), None, None));
        }
        let (Some(classifier), Some(embedder)) = (&self.classifier, &self.embedder) else {
            return Ok(done(self.large(), Reason::Abstain, None, None));
        };
        let Ok(split) = crate::semantic::probe::split(route, body, usize::MAX, usize::MAX) else {
            return Ok(done(self.large(), Reason::NoText, None, None));
        };
        let head = knn::head(&split.text, self.max_words);
        let Ok(vector) = embedder.embed_prefix(&head, self.max_tokens, self.embed_timeout).await else {
            return Ok(done(self.large(), Reason::EmbedError, None, None));
        };
        let Some(vote) = classifier.vote(&vector, None) else {
            return Ok(done(self.large(), Reason::Abstain, None, None));
        };
        let (tier, reason, share) = self.by_vote(&vote, self.confidence);
        let task = TASK_TYPES.iter().find(|t| **t == vote.task).copied();
        Ok(done(tier, reason, task, Some(share)))
    }

    /// The `x-velollm-route` value: the tier that answered, the decision, and the tiers that failed first.
    pub fn header(&self, decision: &Decision, served: usize) -> String {
        let mut out = format!("tier={}; reason={}", self.tiers[served].name, decision.reason.as_str());
        if let Some(task) = decision.task {
            out.push_str(&format!("; task={task}"));
        }
        if let Some(c) = decision.confidence {
            out.push_str(&format!("; confidence={c:.3}"));
        }
        out.push_str(&format!("; ms={:.3}", decision.elapsed.as_secs_f64() * 1e3));
        if served != decision.tier {
            out.push_str(&format!("; fallback_from={}", self.tiers[decision.tier].name));
        }
        out
    }
}
