//! Descriptive statistics, computed one documented way.
//!
//! Percentiles use linear interpolation between closest ranks (the default of numpy's `percentile`, also
//! called "type 7"): for sorted values `x[0..n]` and `q` in `[0, 1]`, the rank is `h = (n − 1)·q` and the
//! result is `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`. Standard deviation is the sample standard deviation
//! (divisor `n − 1`; 0 for a single value).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The percentile of already **sorted** values, with linear interpolation; `None` for no values.
///
/// `q` is a fraction in `[0, 1]` (0.95 for p95); it is clamped into that range.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let h = (n - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = h - lo as f64;
    Some(sorted[lo] + frac * (sorted[hi] - sorted[lo]))
}

/// Count, mean, dispersion and percentiles of one metric over a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest value.
    pub max: f64,
}

impl Summary {
    /// Summarise the finite values of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let stddev =
            if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        let p = |q| percentile_sorted(&v, q).unwrap_or(f64::NAN);
        Some(Summary {
            count: v.len() as u64,
            mean,
            stddev,
            min: v[0],
            p50: p(0.50),
            p90: p(0.90),
            p95: p(0.95),
            p99: p(0.99),
            p999: p(0.999),
            max: v[v.len() - 1],
        })
    }

    /// The value of a named statistic: `mean`, `stddev`, `min`, `max`, `median`, or `pNN` (`p50`, `p95`,
    /// `p99`, `p999`).
    pub fn get(&self, stat: &str) -> Option<f64> {
        Some(match stat {
            "mean" | "avg" => self.mean,
            "stddev" | "std" => self.stddev,
            "min" => self.min,
            "max" => self.max,
            "median" | "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p999" | "p99.9" => self.p999,
            "count" => self.count as f64,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 90, 100]) == [1, 1.75, 2.5, 3.7, 4]
        let v = [1.0, 2.0, 3.0, 4.0];
        let got: Vec<f64> = [0.0, 0.25, 0.5, 0.9, 1.0].iter().map(|&q| percentile_sorted(&v, q).unwrap()).collect();
        let want = [1.0, 1.75, 2.5, 3.7, 4.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{g} != {w}");
        }
        assert_eq!(percentile_sorted(&[], 0.5), None);
        assert_eq!(percentile_sorted(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn summary_basics() {
        let s = Summary::of([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.count, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        assert!((s.stddev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.min, 2.0);
        assert_eq!(s.max, 9.0);
        assert_eq!(s.p50, 4.5);
        assert_eq!(Summary::of([f64::NAN]), None);
    }

    proptest! {
        #[test]
        fn percentiles_are_monotone_and_bounded(mut v in prop::collection::vec(-1e6f64..1e6, 1..200)) {
            v.sort_by(f64::total_cmp);
            let qs = [0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];
            let ps: Vec<f64> = qs.iter().map(|&q| percentile_sorted(&v, q).unwrap()).collect();
            for w in ps.windows(2) {
                prop_assert!(w[0] <= w[1]);
            }
            prop_assert_eq!(ps[0], v[0]);
            prop_assert_eq!(ps[ps.len() - 1], v[v.len() - 1]);
        }

        #[test]
        fn summary_orders_its_fields(v in prop::collection::vec(0f64..1e9, 1..300)) {
            let s = Summary::of(v.iter().copied()).unwrap();
            prop_assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p95);
            prop_assert!(s.p95 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
            prop_assert!(s.min <= s.mean + 1e-6 && s.mean <= s.max + 1e-6);
            prop_assert!(s.stddev >= 0.0);
        }
    }
}
