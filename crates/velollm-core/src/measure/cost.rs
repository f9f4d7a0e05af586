//! The cost model: token prices per model, the cost of a request and of a step, and the return on investment of
//! an optimization. Every cost formula velollm uses is here (mirrored in `docs/metrics.md` §9).
//!
//! A request's prompt tokens split into three parts, each with its own price:
//!
//! | part | tokens | price |
//! |---|---|---|
//! | uncached input | prompt − cache read − cache write | `input` |
//! | cache write | `cache_write_tokens` (Anthropic `cache_creation_input_tokens`) | `cache_write` (default: `input`) |
//! | cache read | `cached_tokens` (OpenAI `cached_tokens`, Anthropic `cache_read_input_tokens`, llama.cpp `cache_n`) | `cache_read` (default: 0.1 × `input`) |
//!
//! - **cost of a request** = Σ part tokens × part price ÷ 10⁶ + output tokens × `output` ÷ 10⁶ (prices are per
//!   million tokens);
//! - **cost without the cache** = (prompt tokens × `input` + output tokens × `output`) ÷ 10⁶: the same request
//!   had nothing been cached or written;
//! - **cache saving** = 1 − cost ÷ cost without the cache (negative when cache writes cost more than reads save);
//! - **ROI** of going from a baseline to a candidate: latency saved per request (ms) and extra cost per request;
//!   seconds saved per 1000 requests ÷ extra money per 1000 requests when the candidate is faster and dearer
//!   ([`RoiOutcome`]).
//!
//! Only successful requests whose prompt and output token counts are known are priced; the others are counted
//! as unpriced, never guessed.

use crate::measure::metrics::Sample;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Cache reads cost this share of the input price unless the prices file says otherwise.
pub const DEFAULT_CACHE_READ_SHARE: f64 = 0.1;

/// Prices of one model, per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached prompt (input) tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Prompt tokens written to the cache (default: `input`; Anthropic charges 1.25 × input for a 5-minute
    /// entry and 2 × for a 1-hour one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Prompt tokens read from the cache (default: 0.1 × `input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
}

impl Price {
    /// The price of a cache write, per million tokens.
    pub fn cache_write(&self) -> f64 {
        self.cache_write.unwrap_or(self.input)
    }

    /// The price of a cache read, per million tokens.
    pub fn cache_read(&self) -> f64 {
        self.cache_read.unwrap_or(DEFAULT_CACHE_READ_SHARE * self.input)
    }

    fn check(&self, model: &str) -> Result<(), String> {
        let fields = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_write", self.cache_write),
            ("cache_read", self.cache_read),
        ];
        for (name, v) in fields {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(format!(
                    "model '{model}': {name} = {v} is not a price (use a number ≥ 0, per million tokens)"
                ));
            }
        }
        Ok(())
    }
}

/// A prices file: a currency and the prices of each model (`"*"` prices any other model).
///
/// ```toml
/// currency = "USD"                # optional, the default
/// [models."claude-sonnet-4-5"]    # per million tokens
/// input = 3.0
/// output = 15.0
/// cache_write = 3.75              # optional, default = input
/// cache_read = 0.30               # optional, default = 0.1 × input
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Currency of every price (`USD`).
    #[serde(default = "usd")]
    pub currency: String,
    /// Prices by model name.
    pub models: BTreeMap<String, Price>,
}

fn usd() -> String {
    "USD".into()
}

impl PriceTable {
    /// Parse a prices file; errors name the field and the fix.
    pub fn parse(text: &str) -> Result<PriceTable, String> {
        let t: PriceTable = toml::from_str(text).map_err(|e| e.to_string())?;
        if t.models.is_empty() {
            return Err("no [models.\"NAME\"] table: give each model's input and output price".into());
        }
        for (model, p) in &t.models {
            p.check(model)?;
        }
        Ok(t)
    }

    /// The prices of `model`: its own entry, else `"*"`.
    pub fn get(&self, model: &str) -> Option<&Price> {
        self.models.get(model).or_else(|| self.models.get("*"))
    }
}

/// Token counts by price class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tokens {
    /// Uncached prompt tokens.
    pub input: u64,
    /// Prompt tokens written to the cache.
    pub cache_write: u64,
    /// Prompt tokens read from the cache.
    pub cache_read: u64,
    /// Output tokens.
    pub output: u64,
}

impl Tokens {
    /// Split a request's counts: `prompt` includes the cached and written tokens.
    pub fn split(prompt: u64, cache_read: u64, cache_write: u64, output: u64) -> Tokens {
        Tokens { input: prompt.saturating_sub(cache_read + cache_write), cache_write, cache_read, output }
    }

    /// All prompt tokens.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_write + self.cache_read
    }

    /// What these tokens cost at `price`.
    pub fn cost(&self, price: &Price) -> f64 {
        (self.input as f64 * price.input
            + self.cache_write as f64 * price.cache_write()
            + self.cache_read as f64 * price.cache_read()
            + self.output as f64 * price.output)
            / 1e6
    }

    /// What these tokens would cost had nothing been read from or written to the cache.
    pub fn cost_without_cache(&self, price: &Price) -> f64 {
        (self.prompt() as f64 * price.input + self.output as f64 * price.output) / 1e6
    }

    fn add(&mut self, o: &Tokens) {
        self.input += o.input;
        self.cache_write += o.cache_write;
        self.cache_read += o.cache_read;
        self.output += o.output;
    }
}

/// A sample's tokens by price class, when its prompt count is known and it succeeded.
pub fn sample_tokens(s: &Sample) -> Option<Tokens> {
    let m = &s.metrics;
    let prompt = m.prompt_tokens.filter(|_| s.ok)?;
    Some(Tokens::split(prompt, m.cached_tokens.unwrap_or(0), m.cache_write_tokens.unwrap_or(0), m.output_tokens))
}

/// The cost of one step's measured requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepCost {
    /// Currency of every amount.
    pub currency: String,
    /// The prices applied.
    pub price: Price,
    /// Requests priced (successful, with token counts).
    pub priced_requests: u64,
    /// Measured requests that could not be priced (failed, or no prompt token count).
    pub unpriced_requests: u64,
    /// Tokens of the priced requests, by price class.
    pub tokens: Tokens,
    /// Total cost of the priced requests.
    pub total: f64,
    /// Mean cost per priced request.
    pub per_request: f64,
    /// What the priced requests would have cost without the cache.
    pub without_cache: f64,
    /// 1 − total ÷ without_cache (0 when nothing was priced).
    pub cache_saving: f64,
}

impl StepCost {
    /// Price a step's samples.
    pub fn of(samples: &[Sample], currency: &str, price: &Price) -> StepCost {
        let mut acc = CostAccumulator::default();
        for s in samples {
            acc.push(s);
        }
        acc.cost(currency, price)
    }
}

/// The running token sums behind [`StepCost`], fed one measured request at a time: memory does not grow with
/// the number of requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CostAccumulator {
    tokens: Tokens,
    priced: u64,
    measured: u64,
}

impl CostAccumulator {
    /// Add a measured request (priced when [`sample_tokens`] gives its tokens).
    pub fn push(&mut self, s: &Sample) {
        self.measured += 1;
        if let Some(t) = sample_tokens(s) {
            self.tokens.add(&t);
            self.priced += 1;
        }
    }

    /// The cost of the requests pushed so far at `price`, in `currency`.
    pub fn cost(&self, currency: &str, price: &Price) -> StepCost {
        let (tokens, priced) = (self.tokens, self.priced);
        let total = tokens.cost(price);
        let without_cache = tokens.cost_without_cache(price);
        StepCost {
            currency: currency.to_string(),
            price: *price,
            priced_requests: priced,
            unpriced_requests: self.measured - priced,
            tokens,
            total,
            per_request: if priced == 0 { 0.0 } else { total / priced as f64 },
            without_cache,
            cache_saving: if without_cache > 0.0 { 1.0 - total / without_cache } else { 0.0 },
        }
    }
}

/// What a change bought: latency saved against money spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RoiOutcome {
    /// A cost is missing for one side, so no ROI: never invented.
    NoCostData {
        /// Which cost is missing.
        why: String,
    },
    /// Faster and cheaper.
    SavesTimeAndMoney,
    /// Faster at the same cost.
    SavesTimeAtSameCost,
    /// Faster for more money: seconds saved per 1000 requests ÷ extra money per 1000 requests.
    SecondsPerDollar {
        /// The ROI, seconds saved per extra unit of money.
        seconds_per_dollar: f64,
    },
    /// Slower, but cheaper.
    CheaperButSlower,
    /// Neither faster nor cheaper.
    NoReturn,
}

impl RoiOutcome {
    /// The outcome of saving `latency_saved_ms` per request for `extra_per_request` more money per request.
    pub fn of(latency_saved_ms: f64, extra_per_request: f64) -> RoiOutcome {
        // ms saved per request × 1000 requests ÷ 1000 ms = seconds saved per 1000 requests.
        let extra_per_1000 = extra_per_request * 1000.0;
        match (latency_saved_ms > 0.0, extra_per_1000) {
            (true, x) if x < 0.0 => RoiOutcome::SavesTimeAndMoney,
            (true, 0.0) => RoiOutcome::SavesTimeAtSameCost,
            (true, x) => RoiOutcome::SecondsPerDollar { seconds_per_dollar: latency_saved_ms / x },
            (false, x) if x < 0.0 => RoiOutcome::CheaperButSlower,
            (false, _) => RoiOutcome::NoReturn,
        }
    }
}

impl fmt::Display for RoiOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoiOutcome::NoCostData { why } => write!(f, "{why}"),
            RoiOutcome::SavesTimeAndMoney => write!(f, "saves time and money"),
            RoiOutcome::SavesTimeAtSameCost => write!(f, "saves time at no extra cost"),
            RoiOutcome::SecondsPerDollar { seconds_per_dollar } => {
                write!(f, "ROI = {seconds_per_dollar:.1} s saved per extra dollar")
            }
            RoiOutcome::CheaperButSlower => write!(f, "cheaper but slower"),
            RoiOutcome::NoReturn => write!(f, "no return (not faster, not cheaper)"),
        }
    }
}

/// The return on investment of a candidate over a baseline, per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Roi {
    /// Baseline − candidate latency, ms per request (negative when the candidate is slower).
    pub latency_saved_ms: f64,
    /// Baseline cost per request.
    pub baseline_per_request: f64,
    /// Candidate cost per request.
    pub candidate_per_request: f64,
    /// Currency.
    pub currency: String,
    /// The verdict.
    #[serde(flatten)]
    pub outcome: RoiOutcome,
}

impl Roi {
    /// The ROI of going from `baseline` to `candidate`, given the latency each measured (same metric).
    pub fn between(baseline_ms: f64, candidate_ms: f64, baseline: &StepCost, candidate: &StepCost) -> Roi {
        let latency_saved_ms = baseline_ms - candidate_ms;
        let outcome = if baseline.priced_requests == 0 || candidate.priced_requests == 0 {
            RoiOutcome::NoCostData { why: "a side has no priced request".into() }
        } else {
            RoiOutcome::of(latency_saved_ms, candidate.per_request - baseline.per_request)
        };
        Roi {
            latency_saved_ms,
            baseline_per_request: baseline.per_request,
            candidate_per_request: candidate.per_request,
            currency: candidate.currency.clone(),
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> Price {
        Price { input: 3.0, output: 15.0, cache_write: Some(3.75), cache_read: None }
    }

    #[test]
    fn request_cost_prices_each_class() {
        let t = Tokens::split(10_000, 8_000, 1_000, 500);
        assert_eq!((t.input, t.cache_write, t.cache_read, t.output), (1_000, 1_000, 8_000, 500));
        // 1000×3 + 1000×3.75 + 8000×0.3 + 500×15 = 3000 + 3750 + 2400 + 7500 = 16650 per 1e6.
        assert!((t.cost(&price()) - 0.016_65).abs() < 1e-12);
        // Without the cache: 10000×3 + 500×15 = 37500 per 1e6.
        assert!((t.cost_without_cache(&price()) - 0.0375).abs() < 1e-12);
    }

    #[test]
    fn cache_reads_default_to_a_tenth_of_input() {
        let p = Price { input: 2.0, output: 8.0, cache_write: None, cache_read: None };
        assert_eq!((p.cache_read(), p.cache_write()), (0.2, 2.0));
    }

    #[test]
    fn prices_file_parses_and_rejects_bad_prices() {
        let t =
            PriceTable::parse("[models.m]\ninput = 1\noutput = 2\n[models.\"*\"]\ninput = 5\noutput = 6\n").unwrap();
        assert_eq!((t.currency.as_str(), t.get("m").unwrap().input, t.get("other").unwrap().input), ("USD", 1.0, 5.0));
        assert!(PriceTable::parse("[models.m]\ninput = -1\noutput = 2\n").unwrap_err().contains("input = -1"));
        assert!(PriceTable::parse("[models.m]\ninput = 1\n").unwrap_err().contains("output"));
        assert!(PriceTable::parse("currency = \"EUR\"\n").unwrap_err().contains("models"));
        assert!(
            PriceTable::parse("[models.m]\ninput = 1\noutput = 2\ncache_red = 1\n").unwrap_err().contains("cache_red")
        );
    }

    #[test]
    fn roi_outcomes() {
        assert_eq!(RoiOutcome::of(100.0, -0.001), RoiOutcome::SavesTimeAndMoney);
        assert_eq!(RoiOutcome::of(100.0, 0.0), RoiOutcome::SavesTimeAtSameCost);
        // 100 ms saved per request = 100 s per 1000 requests, for $1 more per 1000 requests.
        assert_eq!(RoiOutcome::of(100.0, 0.001), RoiOutcome::SecondsPerDollar { seconds_per_dollar: 100.0 });
        assert_eq!(RoiOutcome::of(-5.0, -0.001), RoiOutcome::CheaperButSlower);
        assert_eq!(RoiOutcome::of(-5.0, 0.001), RoiOutcome::NoReturn);
    }
}
