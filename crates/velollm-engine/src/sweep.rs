//! Load sweeps: a capacity probe, then a ladder of rates or concurrency levels, stopping early when the
//! server is over-saturated.
//!
//! Step 0, `probe`, runs the base step as a closed loop at [`SweepPlan::probe_concurrency`] workers and
//! measures the highest request throughput `R`. Then up to [`SweepPlan::steps`] ladder steps run with the
//! same workload and bounds:
//! * rate mode: open-loop arrivals at `1.2 · R · i / K` requests/s rounded to 4 significant digits
//!   (`rate_0.40`, `rate_0.80`, … — the name gives the rate as a fraction of `R`), at most twice the probe's
//!   workers in flight;
//! * concurrency mode: closed loops at worker counts spread geometrically from 1 to the probe's
//!   (`conc_1`, `conc_4`, …).
//!
//! After each ladder step the over-saturation rule of [`velollm_core::analysis::sweep`] is applied; the sweep stops
//! after the first over-saturated step. The curve, the knee and the saturation verdict are computed by
//! [`velollm_core::analysis::sweep::analyse`] and handed to the observer's `finished` callback with the verdicts of
//! the thresholds.

use crate::bench::{BenchError, Session};
use crate::plan::StepPlan;
use crate::runner::{Observer, Runner};
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::analysis::AnalysisResult;
use velollm_core::analysis::sweep::{
    Sweep, SweepMode, SweepPoint, analyse, concurrency_levels, over_saturated, rate_fractions,
};
use velollm_core::judge::threshold::{Lookup, Threshold, Verdict};
use velollm_core::measure::slo::Slo;
use velollm_core::workload::load::{Arrival, LoadProfile};

/// A sweep to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    /// The step every sweep step derives from: its workload, bounds, tags and thresholds are kept, its load
    /// is replaced.
    pub base: StepPlan,
    /// Ladder steps after the probe (K).
    pub steps: u32,
    /// What the ladder varies.
    pub mode: SweepMode,
    /// Workers of the capacity probe; the top of a concurrency ladder; half the in-flight cap of a rate
    /// ladder.
    pub probe_concurrency: u32,
    /// Arrival process of a rate ladder.
    pub arrival: Arrival,
    /// Scenario thresholds: those naming a sweep figure (`knee_rate > 5`) apply to the sweep, the others to
    /// every step.
    pub thresholds: Vec<Threshold>,
}

impl SweepPlan {
    /// A sweep of `steps` ladder steps over `base` with a 32-worker probe and Poisson arrivals.
    pub fn new(base: StepPlan, steps: u32, mode: SweepMode) -> SweepPlan {
        SweepPlan { base, steps, mode, probe_concurrency: 32, arrival: Arrival::Poisson, thresholds: Vec::new() }
    }

    fn closed(&self, name: String, workers: u32) -> StepPlan {
        let load =
            if workers <= 1 { LoadProfile::Sequential } else { LoadProfile::Concurrency { concurrency: workers } };
        StepPlan { name, load, ..self.base.clone() }
    }

    /// The capacity probe: the base step as a closed loop at `probe_concurrency` workers.
    pub fn probe_step(&self) -> StepPlan {
        self.closed("probe".into(), self.probe_concurrency.max(1))
    }

    /// The ladder steps with their offered load (requests/s or workers), given the probe's request
    /// throughput (ignored in concurrency mode). Empty when a rate ladder has no positive throughput to
    /// anchor on.
    pub fn ladder(&self, probe_throughput: f64) -> Vec<(StepPlan, f64)> {
        match self.mode {
            SweepMode::Rate => {
                if !(probe_throughput.is_finite() && probe_throughput > 0.0) {
                    return Vec::new();
                }
                let cap = self.probe_concurrency.max(1).saturating_mul(2);
                rate_fractions(self.steps)
                    .into_iter()
                    .map(|f| {
                        let rate = round_significant(f * probe_throughput, 4);
                        let load = LoadProfile::Rate { rate, arrival: self.arrival, max_concurrency: Some(cap) };
                        (StepPlan { name: format!("rate_{f:.2}"), load, ..self.base.clone() }, rate)
                    })
                    .collect()
            }
            SweepMode::Concurrency => concurrency_levels(self.steps, self.probe_concurrency)
                .into_iter()
                .map(|c| (self.closed(format!("conc_{c}"), c), f64::from(c)))
                .collect(),
        }
    }
}

/// `x` rounded to `digits` significant digits, so rates read well in reports (`238.2/s`, not
/// `238.17528200251107/s`).
fn round_significant(x: f64, digits: i32) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.log10().floor() as i32);
    (x * scale).round() / scale
}

/// What a sweep produced.
#[derive(Debug, Clone)]
pub struct SweepOutput {
    /// Per-step aggregates, the probe first.
    pub steps: Vec<StepResult>,
    /// The sweep analysis (kind `sweep`): the curve, the knee, saturation.
    pub analysis: AnalysisResult,
    /// Threshold verdicts.
    pub verdicts: Vec<Verdict>,
    /// True when the sweep stopped after an over-saturated step.
    pub stopped_early: bool,
}

/// Run a sweep: the probe, then the ladder until it ends, a step is over-saturated, or `cancel` turns true.
/// The observer sees steps `0..` (the probe first) and, at the end, the sweep analysis and the verdicts.
pub async fn run_sweep(
    session: &Session,
    plan: &SweepPlan,
    seed: u64,
    slo: Option<Slo>,
    observer: &mut dyn Observer,
    cancel: &watch::Receiver<bool>,
) -> Result<SweepOutput, BenchError> {
    let mut runner = Runner::new(session.target.clone(), session.model.clone(), seed, slo);
    runner.prices = session.prices.clone();
    let probe_plan = plan.probe_step();
    let mut steps = Vec::new();
    let mut plans = Vec::new();
    let (probe, _) = runner.run_step(0, &probe_plan, observer, cancel).await?;
    let probe_offered = (plan.mode == SweepMode::Concurrency).then(|| f64::from(plan.probe_concurrency.max(1)));
    let mut sweep = Sweep {
        mode: plan.mode,
        probe_concurrency: plan.probe_concurrency.max(1),
        probe: Some(SweepPoint::from_step(&probe, probe_offered)),
        points: Vec::new(),
        skipped: 0,
    };
    let ladder = if probe.succeeded > 0 { plan.ladder(probe.rates.request_throughput) } else { Vec::new() };
    steps.push(probe);
    plans.push(probe_plan);
    let mut stopped_early = false;
    for (i, (step, offered)) in ladder.iter().enumerate() {
        if *cancel.borrow() {
            break;
        }
        let (result, _) = runner.run_step(i + 1, step, observer, cancel).await?;
        let point = SweepPoint::from_step(&result, Some(*offered));
        let saturated = over_saturated(plan.mode, sweep.points.last(), &point);
        sweep.points.push(point);
        steps.push(result);
        plans.push(step.clone());
        if saturated {
            sweep.skipped = ladder.len() - i - 1;
            stopped_early = sweep.skipped > 0;
            break;
        }
    }
    let mut analyses = vec![analyse(&sweep)];
    let mut verdicts = Vec::new();
    for (result, step) in steps.iter().zip(&plans) {
        verdicts.extend(step.thresholds.iter().map(|t| t.evaluate(&step.name, result)));
    }
    for t in &plan.thresholds {
        // A threshold naming a sweep figure applies to the sweep, else to every step.
        if analyses.lookup(&t.target).is_some() {
            verdicts.push(t.evaluate("sweep", &analyses));
        } else {
            verdicts.extend(steps.iter().map(|r| t.evaluate(&r.name, r)));
        }
    }
    observer.finished(&analyses, &verdicts);
    let analysis = analyses.swap_remove(0);
    Ok(SweepOutput { steps, analysis, verdicts, stopped_early })
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::scenario::Workload;
    use velollm_core::workload::load::Bounds;

    fn plan(mode: SweepMode) -> SweepPlan {
        let bounds = Bounds { requests: Some(20), ..Bounds::default() };
        let base =
            StepPlan::simple("prompts", Workload::Prompts(vec!["hi".into()]), 8, LoadProfile::Sequential, bounds);
        SweepPlan::new(base, 3, mode)
    }

    #[test]
    fn the_probe_is_a_closed_loop_with_the_base_bounds() {
        let p = plan(SweepMode::Rate);
        let probe = p.probe_step();
        assert_eq!(probe.name, "probe");
        assert_eq!(probe.load, LoadProfile::Concurrency { concurrency: 32 });
        assert_eq!(probe.bounds, p.base.bounds);
        assert_eq!(probe.workload, p.base.workload);
    }

    #[test]
    fn the_rate_ladder_is_anchored_on_the_probe() {
        let ladder = plan(SweepMode::Rate).ladder(100.0);
        let names: Vec<&str> = ladder.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(names, ["rate_0.40", "rate_0.80", "rate_1.20"]);
        for ((step, offered), want) in ladder.iter().zip([40.0, 80.0, 120.0]) {
            assert!((offered - want).abs() < 1e-9);
            match step.load {
                LoadProfile::Rate { rate, arrival, max_concurrency } => {
                    assert!((rate - want).abs() < 1e-9);
                    assert_eq!((arrival, max_concurrency), (Arrival::Poisson, Some(64)));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(step.bounds.requests, Some(20));
        }
        assert!(plan(SweepMode::Rate).ladder(0.0).is_empty());
        assert_eq!(round_significant(238.17528200251107, 4), 238.2);
        assert_eq!(round_significant(0.012345, 2), 0.012);
        assert!(plan(SweepMode::Rate).ladder(f64::NAN).is_empty());
    }

    #[test]
    fn the_concurrency_ladder_spreads_workers_geometrically() {
        let mut p = plan(SweepMode::Concurrency);
        p.steps = 4;
        p.probe_concurrency = 27;
        let ladder = p.ladder(0.0);
        let names: Vec<&str> = ladder.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(names, ["conc_1", "conc_3", "conc_9", "conc_27"]);
        assert_eq!(ladder[0].0.load, LoadProfile::Sequential);
        assert_eq!(ladder[3].0.load, LoadProfile::Concurrency { concurrency: 27 });
        assert_eq!(ladder[2].1, 9.0);
    }
}
