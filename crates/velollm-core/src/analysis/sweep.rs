//! Load sweeps: from light load to saturation in K steps, the throughput/latency curve, its knee, and
//! over-saturation (DESIGN §4).
//!
//! A sweep is anchored on measured capacity, as inference-benchmarker's: a *probe* first runs a closed
//! loop at `C` workers and measures the highest request throughput `R`; then a *ladder* of K steps runs,
//! each with the same workload and bounds. Everything here is a pure function of per-step aggregates; the
//! engine (`velollm_engine::sweep`) runs the steps.
//!
//! | rule | definition |
//! |---|---|
//! | rate ladder | step `i` (1..=K) offers `1.2 · R · i / K` requests/s, open loop (see [`rate_fractions`]) |
//! | concurrency ladder | up to K levels spread geometrically from 1 to `C` workers, rounded, duplicates removed (see [`concurrency_levels`]) |
//! | offered rate | rate mode: the step's arrival rate. Concurrency mode: the previous step's throughput × (this level ÷ previous level), i.e. what the step would achieve if latency had not grown |
//! | over-saturation | achieved request throughput < 90 % of the offered rate **and** E2E p50 > 2 × the previous step's E2E p50 (a step where nothing succeeded counts as infinite latency). The sweep stops after such a step (see [`over_saturated`]) |
//! | knee | over the ladder in increasing load, `L0` = E2E p50 of the lowest load. The first point whose E2E p50 exceeds `1.5 · L0` while its throughput grew by less than 10 % over the previous point's is past the knee; the knee is the point just before it. No such point: no knee in the range swept (see [`knee`]) |
//!
//! [`analyse`] turns a sweep into an [`AnalysisResult`] of kind `sweep`: a table with one row per step
//! (the curve; the probe first) and the figures `max_throughput` (highest request throughput of any step,
//! probe included), `max_output_tokens_per_s`, `knee_rate` (request throughput achieved at the knee, req/s),
//! `knee_load` (offered load at the knee: req/s in rate mode, workers in concurrency mode) and `saturated`
//! (1 when a ladder step was over-saturated, else 0). `knee_rate` and `knee_load` are absent when there
//! is no knee.

use crate::aggregate::step::StepResult;
use crate::analysis::{AnalysisResult, Table, TableRow, fig};
use crate::judge::threshold::Unit;
use std::fmt;

/// Rate ladder ceiling, as a multiple of the probe's throughput.
pub const THROUGHPUT_BUDGET: f64 = 1.2;
/// Over-saturation: achieved ÷ offered request rate below this…
pub const SATURATION_THROUGHPUT_FRACTION: f64 = 0.9;
/// …and E2E p50 above this multiple of the previous step's.
pub const SATURATION_LATENCY_FACTOR: f64 = 2.0;
/// Knee: E2E p50 above this multiple of the lowest load's…
pub const KNEE_LATENCY_FACTOR: f64 = 1.5;
/// …while request throughput grew by less than this fraction over the previous point's.
pub const KNEE_THROUGHPUT_GROWTH: f64 = 0.10;

/// What the ladder varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SweepMode {
    /// Open-loop arrival rates, anchored on the probe's throughput.
    #[default]
    Rate,
    /// Closed-loop worker counts, from 1 to the probe's concurrency.
    Concurrency,
}

impl fmt::Display for SweepMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SweepMode::Rate => "rate",
            SweepMode::Concurrency => "concurrency",
        })
    }
}

/// One point of the curve: a step's load and what it achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    /// Step name.
    pub name: String,
    /// Offered load: requests/s in rate mode, workers in concurrency mode; `None` when not applicable
    /// (the probe of a rate sweep).
    pub offered: Option<f64>,
    /// Measured requests.
    pub requests: u64,
    /// Successful measured requests.
    pub succeeded: u64,
    /// Achieved request throughput, requests/s.
    pub throughput: f64,
    /// Achieved output token throughput, tokens/s.
    pub output_tokens_per_s: f64,
    /// TTFT median, ms.
    pub ttft_p50: Option<f64>,
    /// TTFT 95th percentile, ms.
    pub ttft_p95: Option<f64>,
    /// E2E median, ms.
    pub e2e_p50: Option<f64>,
    /// E2E 95th percentile, ms.
    pub e2e_p95: Option<f64>,
}

impl SweepPoint {
    /// The point of a finished step, with its offered load.
    pub fn from_step(step: &StepResult, offered: Option<f64>) -> SweepPoint {
        let m = &step.metrics;
        SweepPoint {
            name: step.name.clone(),
            offered,
            requests: step.requests,
            succeeded: step.succeeded,
            throughput: step.rates.request_throughput,
            output_tokens_per_s: step.rates.output_token_throughput,
            ttft_p50: m.ttft_ms.as_ref().map(|s| s.p50),
            ttft_p95: m.ttft_ms.as_ref().map(|s| s.p95),
            e2e_p50: m.e2e_ms.as_ref().map(|s| s.p50),
            e2e_p95: m.e2e_ms.as_ref().map(|s| s.p95),
        }
    }
}

/// A sweep as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// What the ladder varied.
    pub mode: SweepMode,
    /// Workers of the capacity probe.
    pub probe_concurrency: u32,
    /// The capacity probe, when it ran.
    pub probe: Option<SweepPoint>,
    /// The ladder steps that ran, in order of increasing load.
    pub points: Vec<SweepPoint>,
    /// Ladder steps not run because an earlier one was over-saturated.
    pub skipped: usize,
}

/// The offered rates of a rate ladder of `k` steps, as fractions of the probe's throughput:
/// `1.2 · i / k` for `i` in 1..=k.
pub fn rate_fractions(k: u32) -> Vec<f64> {
    (1..=k).map(|i| THROUGHPUT_BUDGET * f64::from(i) / f64::from(k)).collect()
}

/// Up to `k` worker counts spread geometrically from 1 to `max` (`max^(i/(k−1))` rounded), strictly
/// increasing; fewer than `k` when `max` is too small to give `k` distinct levels. One step runs `max`.
pub fn concurrency_levels(k: u32, max: u32) -> Vec<u32> {
    let max = max.max(1);
    if k <= 1 {
        return if k == 1 { vec![max] } else { Vec::new() };
    }
    let mut levels: Vec<u32> = (0..k)
        .map(|i| {
            let x = f64::from(max).powf(f64::from(i) / f64::from(k - 1)).round();
            (x as u32).clamp(1, max)
        })
        .collect();
    levels.dedup();
    levels
}

/// The request rate a ladder step was offered: its arrival rate (rate mode), or the previous step's
/// throughput scaled by the ratio of worker counts (concurrency mode; `None` for the first step).
pub fn offered_rate(mode: SweepMode, prev: Option<&SweepPoint>, cur: &SweepPoint) -> Option<f64> {
    match mode {
        SweepMode::Rate => cur.offered,
        SweepMode::Concurrency => {
            let prev = prev?;
            let (p, c) = (prev.offered?, cur.offered?);
            (p > 0.0).then(|| prev.throughput * c / p)
        }
    }
}

/// Is `cur` over-saturated: achieved request throughput below 90 % of the offered rate and E2E p50 more
/// than twice `prev`'s? Without a previous step (or its latency) nothing can be said: `false`.
pub fn over_saturated(mode: SweepMode, prev: Option<&SweepPoint>, cur: &SweepPoint) -> bool {
    let Some(offered) = offered_rate(mode, prev, cur) else { return false };
    let Some(prev_e2e) = prev.and_then(|p| p.e2e_p50) else { return false };
    let behind = cur.throughput < SATURATION_THROUGHPUT_FRACTION * offered;
    let slower = cur.e2e_p50.is_none_or(|e| e > SATURATION_LATENCY_FACTOR * prev_e2e);
    behind && slower
}

/// The index of the knee among ladder points in increasing load (see the module doc), or `None`.
pub fn knee(points: &[SweepPoint]) -> Option<usize> {
    let l0 = points.first()?.e2e_p50?;
    (1..points.len())
        .find(|&i| {
            let latency = points[i].e2e_p50.unwrap_or(f64::INFINITY);
            let grew = points[i].throughput >= points[i - 1].throughput * (1.0 + KNEE_THROUGHPUT_GROWTH);
            latency > KNEE_LATENCY_FACTOR * l0 && !grew
        })
        .map(|i| i - 1)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1} ms"))
}

/// The sweep's curve, knee and saturation as an analysis (kind `sweep`).
pub fn analyse(sweep: &Sweep) -> AnalysisResult {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let all: Vec<&SweepPoint> = sweep.probe.iter().chain(&sweep.points).collect();
    if let Some(max) = all.iter().map(|p| p.throughput).filter(|t| t.is_finite()).max_by(f64::total_cmp) {
        figures.push(fig("max_throughput", max, Unit::Plain, "highest request throughput of any step, req/s"));
    }
    if let Some(max) = all.iter().map(|p| p.output_tokens_per_s).filter(|t| t.is_finite()).max_by(f64::total_cmp) {
        figures.push(fig("max_output_tokens_per_s", max, Unit::Plain, "highest output token throughput, tok/s"));
    }
    let load_unit = match sweep.mode {
        SweepMode::Rate => "req/s offered",
        SweepMode::Concurrency => "workers",
    };
    match knee(&sweep.points) {
        Some(k) => {
            let p = &sweep.points[k];
            figures.push(fig("knee_rate", p.throughput, Unit::Plain, "request throughput at the knee, req/s"));
            if let Some(load) = p.offered {
                figures.push(fig("knee_load", load, Unit::Plain, &format!("load at the knee, {load_unit}")));
            }
            let l0 = sweep.points[0].e2e_p50.unwrap_or(f64::NAN);
            notes.push(format!(
                "knee at {}: past it, E2E p50 exceeded {KNEE_LATENCY_FACTOR}× the lowest load's ({l0:.1} ms) while \
                 throughput grew by less than {:.0}%",
                p.name,
                KNEE_THROUGHPUT_GROWTH * 100.0
            ));
        }
        None if sweep.points.len() >= 2 => notes.push(format!(
            "no knee in the range swept: E2E p50 stayed within {KNEE_LATENCY_FACTOR}× the lowest load's, or \
             throughput kept growing"
        )),
        None => {}
    }
    let saturated = (0..sweep.points.len()).find(|&i| {
        let prev = i.checked_sub(1).map(|j| &sweep.points[j]);
        over_saturated(sweep.mode, prev, &sweep.points[i])
    });
    figures.push(fig(
        "saturated",
        if saturated.is_some() { 1.0 } else { 0.0 },
        Unit::Plain,
        "1 when a step was over-saturated (latency grew without throughput)",
    ));
    if let Some(i) = saturated {
        let (p, c) = (&sweep.points[i - 1], &sweep.points[i]);
        let offered = offered_rate(sweep.mode, Some(p), c).unwrap_or(f64::NAN);
        let skipped = match sweep.skipped {
            0 => String::new(),
            n => format!("; the sweep stopped there ({n} step{} skipped)", if n == 1 { "" } else { "s" }),
        };
        notes.push(format!(
            "over-saturated at {}: {:.1} req/s achieved of {offered:.1} offered (< {:.0}%), E2E p50 {} > {}× {} at \
             {}{skipped}",
            c.name,
            c.throughput,
            SATURATION_THROUGHPUT_FRACTION * 100.0,
            ms(c.e2e_p50),
            SATURATION_LATENCY_FACTOR,
            ms(p.e2e_p50),
            p.name,
        ));
    }
    if let Some(probe) = &sweep.probe {
        if probe.succeeded == 0 || probe.throughput <= 0.0 {
            notes.push("the probe measured no throughput (no request succeeded): the ladder could not run".into());
        } else if probe.requests < u64::from(sweep.probe_concurrency) {
            notes.push(format!(
                "the probe measured {} requests with {} workers: fewer requests than workers, so its throughput \
                 underestimates capacity (raise --requests, use --duration, or lower --sweep-max-concurrency)",
                probe.requests, sweep.probe_concurrency
            ));
        }
    }
    let rows = all
        .iter()
        .map(|p| TableRow {
            label: p.name.clone(),
            values: vec![
                p.offered,
                Some(p.throughput),
                Some(p.output_tokens_per_s),
                p.ttft_p50,
                p.ttft_p95,
                p.e2e_p50,
                p.e2e_p95,
            ],
        })
        .collect();
    let offered_column = match sweep.mode {
        SweepMode::Rate => "offered req/s",
        SweepMode::Concurrency => "workers",
    };
    AnalysisResult {
        kind: "sweep".into(),
        title: format!(
            "{} sweep: throughput/latency curve ({} steps after a {}-worker capacity probe)",
            sweep.mode,
            sweep.points.len(),
            sweep.probe_concurrency
        ),
        figures,
        table: Some(Table {
            columns: vec![
                "step".into(),
                offered_column.into(),
                "req/s".into(),
                "output tok/s".into(),
                "TTFT p50 ms".into(),
                "TTFT p95 ms".into(),
                "E2E p50 ms".into(),
                "E2E p95 ms".into(),
            ],
            rows,
        }),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ladder point at `offered` req/s achieving `tp` req/s with E2E p50 `e2e` ms.
    fn pt(offered: f64, tp: f64, e2e: f64) -> SweepPoint {
        SweepPoint {
            name: format!("rate_{offered}"),
            offered: Some(offered),
            requests: 100,
            succeeded: 100,
            throughput: tp,
            output_tokens_per_s: tp * 10.0,
            ttft_p50: Some(e2e / 4.0),
            ttft_p95: Some(e2e / 2.0),
            e2e_p50: Some(e2e),
            e2e_p95: Some(e2e * 1.5),
        }
    }

    fn sweep(points: Vec<SweepPoint>) -> Sweep {
        let probe = SweepPoint { name: "probe".into(), offered: None, ..pt(0.0, 10.0, 300.0) };
        Sweep { mode: SweepMode::Rate, probe_concurrency: 32, probe: Some(probe), points, skipped: 0 }
    }

    fn figure(a: &AnalysisResult, name: &str) -> Option<f64> {
        a.figures.iter().find(|f| f.name == name).map(|f| f.value)
    }

    #[test]
    fn clean_knee() {
        // Throughput follows the offered rate up to 6 req/s, then flattens while latency climbs.
        let s = sweep(vec![
            pt(2.0, 2.0, 100.0),
            pt(4.0, 4.0, 105.0),
            pt(6.0, 6.0, 120.0),
            pt(8.0, 6.3, 200.0),
            pt(10.0, 9.2, 260.0),
        ]);
        assert_eq!(knee(&s.points), Some(2));
        let a = analyse(&s);
        assert_eq!(a.kind, "sweep");
        assert_eq!(figure(&a, "knee_rate"), Some(6.0));
        assert_eq!(figure(&a, "knee_load"), Some(6.0));
        assert_eq!(figure(&a, "max_throughput"), Some(10.0));
        assert_eq!(figure(&a, "saturated"), Some(0.0));
        assert_eq!(a.table.as_ref().unwrap().rows.len(), 6);
        assert_eq!(a.table.as_ref().unwrap().rows[0].label, "probe");
        assert!(a.notes.iter().any(|n| n.starts_with("knee at rate_6")), "{:?}", a.notes);
    }

    #[test]
    fn monotone_curve_has_no_knee() {
        let s = sweep((1..=5).map(|i| pt(f64::from(i) * 2.0, f64::from(i) * 2.0, 100.0 + f64::from(i))).collect());
        assert_eq!(knee(&s.points), None);
        let a = analyse(&s);
        assert_eq!(figure(&a, "knee_rate"), None);
        assert_eq!(figure(&a, "saturated"), Some(0.0));
        assert!(a.notes.iter().any(|n| n.starts_with("no knee")), "{:?}", a.notes);
    }

    #[test]
    fn latency_growing_with_throughput_is_not_a_knee() {
        // Latency doubles, but throughput keeps growing by more than 10 %: still scaling.
        let s = sweep(vec![pt(2.0, 2.0, 100.0), pt(4.0, 4.0, 180.0), pt(6.0, 6.0, 300.0)]);
        assert_eq!(knee(&s.points), None);
    }

    #[test]
    fn saturated_tail() {
        let mut s = sweep(vec![pt(3.0, 3.0, 100.0), pt(6.0, 6.0, 110.0), pt(9.0, 6.3, 400.0), pt(12.0, 6.8, 2500.0)]);
        s.skipped = 1;
        assert!(over_saturated(SweepMode::Rate, Some(&s.points[1]), &s.points[2]));
        assert!(over_saturated(SweepMode::Rate, Some(&s.points[2]), &s.points[3]));
        let a = analyse(&s);
        assert_eq!(figure(&a, "saturated"), Some(1.0));
        assert_eq!(figure(&a, "knee_rate"), Some(6.0));
        let note = a.notes.iter().find(|n| n.starts_with("over-saturated at rate_9")).expect("a saturation note");
        assert!(note.contains("1 step skipped"), "{note}");
    }

    #[test]
    fn a_slower_step_that_keeps_up_is_not_saturated() {
        // E2E tripled but the step achieved its offered rate: loaded, not over-saturated.
        assert!(!over_saturated(SweepMode::Rate, Some(&pt(3.0, 3.0, 100.0)), &pt(6.0, 5.9, 300.0)));
        // Behind the offered rate but latency barely moved (e.g. a short step): not over-saturated.
        assert!(!over_saturated(SweepMode::Rate, Some(&pt(3.0, 3.0, 100.0)), &pt(6.0, 4.0, 150.0)));
        // No previous step: nothing to compare with.
        assert!(!over_saturated(SweepMode::Rate, None, &pt(6.0, 1.0, 1000.0)));
        // Nothing succeeded: infinite latency.
        let dead = SweepPoint { e2e_p50: None, ..pt(6.0, 0.0, 0.0) };
        assert!(over_saturated(SweepMode::Rate, Some(&pt(3.0, 3.0, 100.0)), &dead));
    }

    #[test]
    fn concurrency_mode_offers_the_scaled_previous_throughput() {
        let c = |w: f64, tp: f64, e2e: f64| SweepPoint { offered: Some(w), ..pt(w, tp, e2e) };
        // 4 → 16 workers: expected 4 × 40 = 160 req/s if latency held; 60 req/s with 4× the latency.
        assert_eq!(
            offered_rate(SweepMode::Concurrency, Some(&c(4.0, 40.0, 100.0)), &c(16.0, 60.0, 400.0)),
            Some(160.0)
        );
        assert!(over_saturated(SweepMode::Concurrency, Some(&c(4.0, 40.0, 100.0)), &c(16.0, 60.0, 400.0)));
        assert!(!over_saturated(SweepMode::Concurrency, Some(&c(4.0, 40.0, 100.0)), &c(16.0, 150.0, 105.0)));
        assert_eq!(offered_rate(SweepMode::Concurrency, None, &c(1.0, 10.0, 100.0)), None);
    }

    #[test]
    fn ladders() {
        let r = rate_fractions(3);
        assert!(r.iter().zip([0.4, 0.8, 1.2]).all(|(a, b)| (a - b).abs() < 1e-12), "{r:?}");
        assert_eq!(concurrency_levels(5, 16), vec![1, 2, 4, 8, 16]);
        assert_eq!(concurrency_levels(1, 32), vec![32]);
        assert_eq!(concurrency_levels(6, 3), vec![1, 2, 3]);
        assert!(concurrency_levels(0, 8).is_empty());
    }

    #[test]
    fn a_failed_probe_is_explained() {
        let mut s = sweep(vec![]);
        if let Some(p) = s.probe.as_mut() {
            p.succeeded = 0;
            p.throughput = 0.0;
        }
        let a = analyse(&s);
        assert!(a.notes.iter().any(|n| n.contains("no throughput")), "{:?}", a.notes);
        assert_eq!(a.table.unwrap().rows.len(), 1);
    }

    fn arb_point() -> impl Strategy<Value = SweepPoint> {
        (0.0f64..1e4, 0.0f64..1e4, prop::option::of(0.0f64..1e5))
            .prop_map(|(o, t, e)| SweepPoint { e2e_p50: e, ..pt(o, t, e.unwrap_or(1.0)) })
    }

    proptest! {
        #[test]
        fn analysis_is_consistent(points in prop::collection::vec(arb_point(), 0..12), conc in any::<bool>()) {
            let mut s = sweep(points);
            if conc {
                s.mode = SweepMode::Concurrency;
            }
            let a = analyse(&s);
            prop_assert_eq!(a.table.as_ref().map(|t| t.rows.len()), Some(s.points.len() + 1));
            let max = figure(&a, "max_throughput").unwrap();
            prop_assert!(s.points.iter().all(|p| p.throughput <= max));
            if let Some(k) = figure(&a, "knee_rate") {
                prop_assert!(k <= max);
            }
            let sat = figure(&a, "saturated").unwrap();
            prop_assert!(sat == 0.0 || sat == 1.0);
        }

        #[test]
        fn a_server_that_keeps_up_has_no_knee_and_no_saturation(
            n in 1usize..12, step in 0.1f64..100.0, e2e in 1.0f64..1e4, jitter in 0.0f64..0.3,
        ) {
            // Throughput equals the offered rate; latency varies by at most 30 %.
            let points: Vec<SweepPoint> = (1..=n)
                .map(|i| {
                    let r = step * i as f64;
                    pt(r, r, e2e * (1.0 + jitter * ((i % 2) as f64)))
                })
                .collect();
            prop_assert_eq!(knee(&points), None);
            for i in 1..points.len() {
                prop_assert!(!over_saturated(SweepMode::Rate, Some(&points[i - 1]), &points[i]));
            }
        }

        #[test]
        fn the_knee_is_a_point_before_the_last(points in prop::collection::vec(arb_point(), 0..12)) {
            if let Some(k) = knee(&points) {
                prop_assert!(k + 1 < points.len());
            }
        }

        #[test]
        fn concurrency_levels_rise_from_one_to_max(k in 1u32..40, max in 1u32..1024) {
            let v = concurrency_levels(k, max);
            prop_assert!(!v.is_empty() && v.len() <= k as usize);
            prop_assert_eq!(*v.last().unwrap(), max);
            if k >= 2 {
                prop_assert_eq!(v[0], 1);
            }
            prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
        }

        #[test]
        fn rate_fractions_rise_to_the_budget(k in 1u32..100) {
            let v = rate_fractions(k);
            prop_assert_eq!(v.len(), k as usize);
            prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
            prop_assert!((v[v.len() - 1] - THROUGHPUT_BUDGET).abs() < 1e-12);
            prop_assert!(v[0] > 0.0);
        }
    }
}
