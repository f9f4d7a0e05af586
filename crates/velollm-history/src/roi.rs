//! Return on investment between two runs: latency saved against cost (defined in the crate documentation).

use crate::HistoryError;
use crate::trend::TrendPoint;
use serde::Serialize;
use std::fmt;

/// Token prices, US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Price of a million prompt (input) tokens.
    pub input_usd_per_mtok: f64,
    /// Price of a million output tokens.
    pub output_usd_per_mtok: f64,
}

impl Prices {
    /// Prices, checked to be finite and not negative.
    pub fn new(input_usd_per_mtok: f64, output_usd_per_mtok: f64) -> Result<Prices, HistoryError> {
        for p in [input_usd_per_mtok, output_usd_per_mtok] {
            if !p.is_finite() || p < 0.0 {
                return Err(HistoryError::BadPrice(p));
            }
        }
        Ok(Prices { input_usd_per_mtok, output_usd_per_mtok })
    }

    /// What `prompt` and `output` tokens cost; a side priced above 0 needs its token count.
    fn cost(&self, prompt: Option<f64>, output: Option<f64>) -> Option<f64> {
        let side = |tokens: Option<f64>, price: f64| if price == 0.0 { Some(0.0) } else { Some(tokens? * price / 1e6) };
        Some(side(prompt, self.input_usd_per_mtok)? + side(output, self.output_usd_per_mtok)?)
    }
}

/// Where a cost comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// The runs' recorded `cost_usd`.
    Recorded,
    /// The measured token totals at the given [`Prices`].
    Prices,
}

/// Cost per successful request of the earlier and the later run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostChange {
    /// Where the costs come from.
    pub source: CostSource,
    /// Earlier run, US dollars per successful request.
    pub earlier_usd_per_request: f64,
    /// Later run, US dollars per successful request.
    pub later_usd_per_request: f64,
}

impl CostChange {
    /// Extra dollars per 1000 requests (negative when the later run is cheaper).
    pub fn extra_usd_per_1000(&self) -> f64 {
        (self.later_usd_per_request - self.earlier_usd_per_request) * 1000.0
    }
}

pub use velollm_core::measure::cost::RoiOutcome;

/// The return on investment between an earlier and a later run of the same target, scenario and step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roi {
    /// The earlier run.
    pub earlier_run: String,
    /// The later run.
    pub later_run: String,
    /// Earlier − later value of the latency, ms per request (negative when the later run is slower).
    pub latency_saved_ms: f64,
    /// Cost per request of both runs, when both are known.
    pub cost: Option<CostChange>,
    /// The verdict.
    #[serde(flatten)]
    pub outcome: RoiOutcome,
}

/// A run's cost per successful request, or why it is unknown.
fn cost_per_request(p: &TrendPoint, prices: Option<&Prices>) -> Result<f64, String> {
    let cost = match prices {
        Some(prices) => prices
            .cost(p.run_prompt_tokens, p.run_output_tokens)
            .ok_or_else(|| format!("run {} has no token counts to price", p.run_id))?,
        None => p.run_cost_usd.ok_or_else(|| "no cost data in these runs".to_string())?,
    };
    if p.run_succeeded == 0 {
        return Err(format!("run {} has no successful request to divide its cost by", p.run_id));
    }
    Ok(cost / p.run_succeeded as f64)
}

impl Roi {
    /// The ROI of going from `earlier` to `later` (two points of one latency series). Costs come from
    /// `prices` applied to the measured tokens when given, otherwise from the recorded `cost_usd`.
    pub fn between(earlier: &TrendPoint, later: &TrendPoint, prices: Option<&Prices>) -> Roi {
        let latency_saved_ms = earlier.value - later.value;
        let source = if prices.is_some() { CostSource::Prices } else { CostSource::Recorded };
        let cost = cost_per_request(earlier, prices).and_then(|e| {
            cost_per_request(later, prices).map(|l| CostChange {
                source,
                earlier_usd_per_request: e,
                later_usd_per_request: l,
            })
        });
        let (cost, outcome) = match cost {
            Err(why) => (None, RoiOutcome::NoCostData { why }),
            Ok(c) => {
                let outcome = RoiOutcome::of(latency_saved_ms, c.later_usd_per_request - c.earlier_usd_per_request);
                (Some(c), outcome)
            }
        };
        Roi { earlier_run: earlier.run_id.clone(), later_run: later.run_id.clone(), latency_saved_ms, cost, outcome }
    }

    /// Seconds saved per 1000 requests: ms saved per request × 1000 requests ÷ 1000 ms per second.
    pub fn seconds_saved_per_1000(&self) -> f64 {
        self.latency_saved_ms
    }
}

/// Dollars with a precision suited to small amounts.
fn usd(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("${a:.0}")
    } else if a >= 1.0 {
        format!("${a:.2}")
    } else {
        format!("${a:.4}")
    }
}

impl fmt::Display for Roi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds_saved_per_1000();
        if s >= 0.0 {
            write!(f, "{s:.2} s saved per 1000 requests")?;
        } else {
            write!(f, "{:.2} s lost per 1000 requests", -s)?;
        }
        if let Some(c) = &self.cost {
            let x = c.extra_usd_per_1000();
            match x {
                _ if x > 0.0 => write!(f, ", {} more per 1000 requests", usd(x))?,
                _ if x < 0.0 => write!(f, ", {} less per 1000 requests", usd(x))?,
                _ => write!(f, ", same cost")?,
            }
        }
        match &self.outcome {
            RoiOutcome::NoCostData { why } => write!(f, "; {why}"),
            RoiOutcome::SavesTimeAndMoney => write!(f, "; saves time and money"),
            RoiOutcome::SavesTimeAtSameCost => write!(f, "; saves time at no extra cost"),
            RoiOutcome::SecondsPerDollar { seconds_per_dollar } => {
                write!(f, "; ROI = {seconds_per_dollar:.1} s saved per extra dollar")
            }
            RoiOutcome::CheaperButSlower => write!(f, "; cheaper but slower"),
            RoiOutcome::NoReturn => write!(f, "; no return (not faster, not cheaper)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::point;

    fn costed(run: &str, value: f64, cost: f64) -> TrendPoint {
        TrendPoint { run_cost_usd: Some(cost), ..point(run, "s", value) }
    }

    #[test]
    fn no_cost_data_is_never_invented() {
        let r = Roi::between(&point("a", "s", 300.0), &point("b", "s", 200.0), None);
        assert_eq!(r.latency_saved_ms, 100.0);
        assert_eq!(r.cost, None);
        assert_eq!(r.outcome, RoiOutcome::NoCostData { why: "no cost data in these runs".into() });
        assert_eq!(r.to_string(), "100.00 s saved per 1000 requests; no cost data in these runs");
        let one_costed = Roi::between(&costed("a", 300.0, 1.0), &point("b", "s", 200.0), None);
        assert!(matches!(one_costed.outcome, RoiOutcome::NoCostData { .. }));
    }

    #[test]
    fn recorded_costs_give_seconds_per_dollar() {
        // 10 requests each: $0.01 → $0.02 per request = $10 more per 1000; 100 s saved per 1000.
        let r = Roi::between(&costed("a", 300.0, 0.1), &costed("b", 200.0, 0.2), None);
        let c = r.cost.unwrap();
        assert_eq!(c.source, CostSource::Recorded);
        assert!((c.extra_usd_per_1000() - 10.0).abs() < 1e-9);
        match r.outcome {
            RoiOutcome::SecondsPerDollar { seconds_per_dollar } => assert!((seconds_per_dollar - 10.0).abs() < 1e-9),
            o => panic!("{o:?}"),
        }
        assert!(r.to_string().contains("10.0 s saved per extra dollar"), "{r}");
        let cheaper = Roi::between(&costed("a", 300.0, 0.2), &costed("b", 200.0, 0.1), None);
        assert_eq!(cheaper.outcome, RoiOutcome::SavesTimeAndMoney);
        let slower_cheaper = Roi::between(&costed("a", 200.0, 0.2), &costed("b", 300.0, 0.1), None);
        assert_eq!(slower_cheaper.outcome, RoiOutcome::CheaperButSlower);
        assert!(slower_cheaper.to_string().starts_with("100.00 s lost"), "{slower_cheaper}");
        let worse = Roi::between(&costed("a", 200.0, 0.1), &costed("b", 300.0, 0.2), None);
        assert_eq!(worse.outcome, RoiOutcome::NoReturn);
    }

    #[test]
    fn prices_apply_to_measured_tokens() {
        let tokens = |run: &str, value: f64, output: f64| TrendPoint {
            run_prompt_tokens: Some(1000.0),
            run_output_tokens: Some(output),
            ..point(run, "s", value)
        };
        // $1/Mtok in, $2/Mtok out; 10 requests. a: (1000 + 2×1000)/1e6 = $0.003; b: (1000 + 2×3000)/1e6 = $0.007.
        let prices = Prices::new(1.0, 2.0).unwrap();
        let r = Roi::between(&tokens("a", 300.0, 1000.0), &tokens("b", 200.0, 3000.0), Some(&prices));
        let c = r.cost.unwrap();
        assert_eq!(c.source, CostSource::Prices);
        assert!((c.earlier_usd_per_request - 0.0003).abs() < 1e-12);
        assert!((c.extra_usd_per_1000() - 0.4).abs() < 1e-9);
        match r.outcome {
            RoiOutcome::SecondsPerDollar { seconds_per_dollar } => assert!((seconds_per_dollar - 250.0).abs() < 1e-6),
            o => panic!("{o:?}"),
        }
        // A free side needs no token count; a priced side does.
        let no_prompt = TrendPoint { run_prompt_tokens: None, ..tokens("a", 300.0, 1000.0) };
        let free_input = Prices::new(0.0, 2.0).unwrap();
        assert!(Roi::between(&no_prompt, &tokens("b", 200.0, 1000.0), Some(&free_input)).cost.is_some());
        let r = Roi::between(&no_prompt, &tokens("b", 200.0, 1000.0), Some(&prices));
        assert_eq!(r.outcome, RoiOutcome::NoCostData { why: "run a has no token counts to price".into() });
        assert!(Prices::new(-1.0, 1.0).is_err() && Prices::new(f64::NAN, 1.0).is_err());
    }
}
