//! A comparison decided: each candidate against the baseline, the tables printed, gates and success criteria
//! evaluated, and the exit code (`compare`, `bench --compare-to`, `optimize --verify`).

use crate::args::GateArgs;
use crate::exit::{self, InputError};
use velollm_core::document::compare::{Change, CompareOptions, Comparison, compare};
use velollm_core::document::criteria::{CriterionOutcome, Outcome};
use velollm_core::document::result::RunResult;
use velollm_core::judge::gate::{Gate, GateOutcome};

/// Parse the gate expressions, checking the criteria presets, before anything runs.
pub fn gates(args: &GateArgs) -> Result<Vec<Gate>, InputError> {
    for c in &args.criteria {
        if !velollm_core::document::criteria::PRESETS.iter().any(|(n, _)| n == c) {
            return Err(InputError(velollm_core::document::criteria::UnknownPreset(c.clone()).into()));
        }
    }
    args.fail_if.iter().map(|g| g.parse::<Gate>().map_err(|e| InputError(e.into()))).collect()
}

/// What a comparison decided.
pub struct Decision {
    /// The comparisons, one per candidate.
    pub comparisons: Vec<Comparison>,
    /// Gate outcomes of every candidate.
    pub gates: Vec<GateOutcome>,
    /// Criteria outcomes of every candidate.
    pub criteria: Vec<CriterionOutcome>,
    /// Why the comparison fails, when it does.
    pub failures: Vec<String>,
}

/// Compare each candidate with the baseline, print the tables, evaluate gates and criteria.
pub fn decide(
    baseline: (&str, &RunResult),
    candidates: &[(String, RunResult)],
    gates: &[Gate],
    args: &GateArgs,
    options: &CompareOptions,
    print: bool,
) -> Decision {
    let mut d = Decision { comparisons: Vec::new(), gates: Vec::new(), criteria: Vec::new(), failures: Vec::new() };
    for (name, cand) in candidates {
        let c = compare(baseline.1, cand, (baseline.0, name), options);
        if print {
            println!("{}", velollm_report::comparison::render_comparison(&c));
        }
        let pairs = velollm_core::document::compare::match_steps(baseline.1, cand).0;
        let mut outcomes = Vec::new();
        for g in gates {
            for (a, b) in &pairs {
                outcomes.push(g.evaluate(&b.name, a, b));
            }
        }
        if print && !outcomes.is_empty() {
            println!("{}", velollm_report::comparison::render_gates(&outcomes));
        }
        for o in outcomes.iter().filter(|o| o.failed) {
            d.failures.push(format!("{name}: gate '{}' failed on step {}", o.gate, o.step));
        }
        let mut crit = Vec::new();
        for preset in &args.criteria {
            // Presets were checked by `GateArgs::parse`.
            crit.extend(
                velollm_core::document::criteria::evaluate(preset, baseline.1, cand, options.alpha).unwrap_or_default(),
            );
        }
        if print && !crit.is_empty() {
            println!("{}", velollm_report::comparison::render_criteria(&crit));
        }
        for o in crit.iter().filter(|o| o.outcome == Outcome::Fail) {
            d.failures.push(format!("{name}: criterion '{}' ({}) missed", o.criterion, o.preset));
        }
        if args.fail_on_regression {
            for (step, r) in c.rows_with(Change::Regressed) {
                d.failures.push(format!("{name}: {} {} regressed on step {step}", r.metric, r.stat));
            }
        }
        d.gates.extend(outcomes);
        d.criteria.extend(crit);
        d.comparisons.push(c);
    }
    d
}

/// The comparisons, gates and criteria as one JSON document.
pub fn json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "comparisons": d.comparisons,
        "gates": d.gates,
        "criteria": d.criteria,
        "failed": !d.failures.is_empty(),
        "failures": d.failures,
    })
}

/// Exit code of a decision, with the failures printed.
pub fn verdict_code(d: &Decision) -> u8 {
    if d.failures.is_empty() {
        return exit::OK;
    }
    for f in &d.failures {
        eprintln!("velollm: {f}");
    }
    exit::THRESHOLD
}
