//! Statistics, computed one documented way: descriptive summaries, and the inference `velollm compare`
//! relies on (Mann-Whitney U rank test, percentile bootstrap, two-proportion z-test).
//!
//! Percentiles use linear interpolation between closest ranks (the default of numpy's `percentile`, also
//! called "type 7"): for sorted values `x[0..n]` and `q` in `[0, 1]`, the rank is `h = (n − 1)·q` and the
//! result is `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`. Standard deviation is the sample standard deviation
//! (divisor `n − 1`; 0 for a single value).

use hdrhistogram::Histogram;
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

/// Values a [`Distribution`] keeps exactly before it switches to its histogram.
pub const EXACT_CAP: usize = 100_000;

/// Histogram units per unit of the recorded value: 1000, so milliseconds are binned in microseconds.
pub const HISTOGRAM_SCALE: f64 = 1e3;

/// Significant decimal digits the histogram keeps.
const HISTOGRAM_DIGITS: u8 = 3;

/// Largest histogram value (in units); larger values are recorded as this.
const HISTOGRAM_MAX: u64 = 1 << 62;

/// The values of one metric over a step, in bounded memory.
///
/// Up to [`EXACT_CAP`] values are kept exactly and [`Distribution::summary`] is [`Summary::of`] of them. Past
/// the cap the values move into an HDR histogram (values × [`HISTOGRAM_SCALE`], rounded to integers, 3
/// significant digits; negative values in a second histogram of their magnitudes) and the exact values are
/// dropped. The count, mean, standard deviation (Welford's running update), minimum and maximum stay exact;
/// percentiles use the same definition as [`percentile_sorted`], each of the two ranks it interpolates between
/// read as the midpoint of its histogram bucket, the lowest and highest ranks as the exact minimum and maximum.
/// A percentile is then within 0.05 % + 0.0005 (half a unit) of the exact one. Non-finite values are ignored,
/// as [`Summary::of`] does.
#[derive(Debug, Clone)]
pub struct Distribution {
    cap: usize,
    exact: Vec<f64>,
    hist: Option<Hists>,
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

/// The histograms of a distribution past its cap: values ≥ 0, and the magnitudes of values < 0.
#[derive(Debug, Clone)]
struct Hists {
    pos: Histogram<u64>,
    neg: Option<Histogram<u64>>,
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing from 1 to 2: it grows with the largest value recorded (3 digits are always valid).
    Histogram::new(HISTOGRAM_DIGITS).expect("3 significant digits are in range")
}

impl Hists {
    fn record(&mut self, v: f64) {
        let units = (v.abs() * HISTOGRAM_SCALE).round().min(HISTOGRAM_MAX as f64) as u64;
        let h = if v < 0.0 { self.neg.get_or_insert_with(new_histogram) } else { &mut self.pos };
        if h.record(units).is_err() {
            h.saturating_record(units);
        }
    }

    /// The approximate values at the given ascending 0-based ranks of all recorded values.
    fn at_ranks(&self, ranks: &[u64]) -> Vec<f64> {
        let negatives = self.neg.as_ref().map_or(0, |h| h.len());
        let mut out = vec![0.0; ranks.len()];
        // Ranks below `negatives` fall among the negative values: rank r is the (negatives − 1 − r)-th
        // smallest magnitude.
        let split = ranks.iter().take_while(|&&r| r < negatives).count();
        if let Some(neg) = &self.neg {
            let mags: Vec<u64> = ranks[..split].iter().rev().map(|&r| negatives - 1 - r).collect();
            for (o, m) in out[..split].iter_mut().rev().zip(bucket_values(neg, &mags)) {
                *o = -m;
            }
        }
        let rest: Vec<u64> = ranks[split..].iter().map(|&r| r - negatives).collect();
        for (o, v) in out[split..].iter_mut().zip(bucket_values(&self.pos, &rest)) {
            *o = v;
        }
        out
    }
}

/// Add the counts of `src` to `dst`. Both auto-resize, so this cannot run out of range; should it ever, the
/// values are recorded one bucket at a time, saturating.
fn add_histogram(dst: &mut Histogram<u64>, src: &Histogram<u64>) {
    if dst.add(src).is_err() {
        for b in src.iter_recorded() {
            dst.saturating_record_n(b.value_iterated_to(), b.count_at_value());
        }
    }
}

/// The midpoints (in value units) of the buckets holding the given ascending 0-based ranks of `h`.
fn bucket_values(h: &Histogram<u64>, ranks: &[u64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(ranks.len());
    let mut seen = 0u64;
    let mut buckets = h.iter_recorded();
    let mut bucket = None;
    for &r in ranks {
        while seen <= r {
            match buckets.next() {
                Some(b) => {
                    seen += b.count_since_last_iteration();
                    bucket = Some(b.value_iterated_to());
                }
                None => break,
            }
        }
        out.push(bucket.map_or(0.0, |b| h.median_equivalent(b) as f64 / HISTOGRAM_SCALE));
    }
    out
}

impl Default for Distribution {
    fn default() -> Distribution {
        Distribution::new()
    }
}

impl Distribution {
    /// An empty distribution keeping up to [`EXACT_CAP`] values exactly.
    pub fn new() -> Distribution {
        Distribution::with_exact_cap(EXACT_CAP)
    }

    /// An empty distribution keeping up to `cap` values exactly (0: histogram from the first value).
    pub fn with_exact_cap(cap: usize) -> Distribution {
        Distribution {
            cap,
            exact: Vec::new(),
            hist: None,
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Record one value; non-finite values are ignored.
    pub fn record(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        let d = v - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        match &mut self.hist {
            Some(h) => h.record(v),
            None if self.exact.len() < self.cap => self.exact.push(v),
            None => {
                self.spill();
                if let Some(h) = &mut self.hist {
                    h.record(v);
                }
            }
        }
    }

    /// Move the exact values into the histograms and free them.
    fn spill(&mut self) {
        let mut h = Hists { pos: new_histogram(), neg: None };
        for &v in &self.exact {
            h.record(v);
        }
        self.exact = Vec::new();
        self.hist = Some(h);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when the values are still all kept exactly (the summary is then [`Summary::of`] of them).
    pub fn is_exact(&self) -> bool {
        self.hist.is_none()
    }

    /// Values kept exactly right now (0 once the distribution has switched to its histogram).
    pub fn exact_len(&self) -> usize {
        self.exact.len()
    }

    /// Add the values of `other`, as if they had been recorded here (distributions of shards merge).
    pub fn merge(&mut self, other: &Distribution) {
        if other.count == 0 {
            return;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let n = n1 + n2;
        let d = other.mean - self.mean;
        self.mean += d * n2 / n;
        self.m2 += other.m2 + d * d * n1 * n2 / n;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if self.hist.is_none() && other.hist.is_none() && self.exact.len() + other.exact.len() <= self.cap {
            self.exact.extend_from_slice(&other.exact);
            return;
        }
        if self.hist.is_none() {
            self.spill();
        }
        let Some(h) = &mut self.hist else { return };
        match &other.hist {
            None => other.exact.iter().for_each(|&v| h.record(v)),
            Some(o) => {
                add_histogram(&mut h.pos, &o.pos);
                if let Some(on) = &o.neg {
                    add_histogram(h.neg.get_or_insert_with(new_histogram), on);
                }
            }
        }
    }

    /// The summary of the values; `None` when none was recorded.
    pub fn summary(&self) -> Option<Summary> {
        let Some(h) = &self.hist else { return Summary::of(self.exact.iter().copied()) };
        if self.count == 0 {
            return None;
        }
        let n = self.count;
        let qs = [0.50, 0.90, 0.95, 0.99, 0.999];
        // The two ranks each percentile interpolates between, as in `percentile_sorted`.
        let spans: Vec<(u64, u64, f64)> = qs
            .iter()
            .map(|q| {
                let h = (n - 1) as f64 * q;
                let lo = h.floor() as u64;
                ((lo).min(n - 1), (lo + 1).min(n - 1), h - lo as f64)
            })
            .collect();
        let mut ranks: Vec<u64> = spans.iter().flat_map(|&(lo, hi, _)| [lo, hi]).collect();
        ranks.sort_unstable();
        ranks.dedup();
        let values = h.at_ranks(&ranks);
        let at = |r: u64| {
            if r == 0 {
                self.min
            } else if r == n - 1 {
                self.max
            } else {
                values[ranks.partition_point(|&x| x < r)].clamp(self.min, self.max)
            }
        };
        let p = |i: usize| {
            let (lo, hi, frac) = spans[i];
            let (a, b) = (at(lo), at(hi));
            (a + frac * (b - a)).clamp(self.min, self.max)
        };
        Some(Summary {
            count: n,
            mean: self.mean,
            stddev: if n > 1 { (self.m2.max(0.0) / (n - 1) as f64).sqrt() } else { 0.0 },
            min: self.min,
            p50: p(0),
            p90: p(1),
            p95: p(2),
            p99: p(3),
            p999: p(4),
            max: self.max,
        })
    }
}

/// Result of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankTest {
    /// U statistic of the first sample (number of pairs where it is larger, ties counting one half).
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// True when the exact null distribution was used (small samples without ties).
    pub exact: bool,
}

/// Two-sided Mann-Whitney U test of `x` against `y`, computed as scipy's `mannwhitneyu(x, y)` with its
/// defaults: the exact distribution when either sample has at most 8 values and there are no ties,
/// otherwise the normal approximation with tie and continuity corrections. `None` when a sample is empty.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<RankTest> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    // Ranks of the pooled sample, ties given their average rank.
    let mut pooled: Vec<(f64, bool)> = x.iter().map(|&v| (v, true)).chain(y.iter().map(|&v| (v, false))).collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = pooled.len();
    let (mut r1, mut tie_term, mut i) = (0.0, 0.0, 0);
    while i < n {
        let mut j = i;
        while j + 1 < n && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        r1 += rank * pooled[i..=j].iter().filter(|p| p.1).count() as f64;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u1 = r1 - f1 * (f1 + 1.0) / 2.0;
    let u = u1.max(f1 * f2 - u1);
    if n1.min(n2) <= 8 && tie_term == 0.0 {
        let p = (2.0 * exact_u_sf(n1, n2, u)).min(1.0);
        return Some(RankTest { u: u1, p, exact: true });
    }
    let nf = n as f64;
    let sigma = (f1 * f2 / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))).sqrt();
    let p = if sigma > 0.0 {
        let z = (u - f1 * f2 / 2.0 - 0.5) / sigma;
        (2.0 * normal_sf(z)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(RankTest { u: u1, p, exact: false })
}

/// P(U ≥ u) under the null for samples of sizes `m` and `n` without ties. The counts of U are the
/// coefficients of the Gaussian binomial ∏ᵢ₌₁..ₘ (1 − q^(n+i)) ÷ (1 − qⁱ), built one factor at a time.
fn exact_u_sf(m: usize, n: usize, u: f64) -> f64 {
    let (m, n) = (m.min(n), m.max(n));
    let max = m * n;
    let mut c = vec![0.0f64; max + 1];
    c[0] = 1.0;
    for i in 1..=m {
        // Multiply by (1 − q^(n+i)) …
        for k in (n + i..=max).rev() {
            c[k] -= c[k - n - i];
        }
        // … and divide by (1 − q^i).
        for k in i..=max {
            c[k] += c[k - i];
        }
    }
    let total: f64 = c.iter().sum();
    let from = u.ceil().max(0.0) as usize;
    c.iter().skip(from).sum::<f64>() / total
}

/// Upper tail of the standard normal distribution, P(Z > z).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Two-sided two-proportion z-test (pooled variance) of `k1/n1` against `k2/n2`; `None` when a sample is
/// empty. The p-value is 1 when both proportions are 0 or both are 1.
pub fn two_proportion_p(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let pooled = (k1 + k2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return Some(1.0);
    }
    Some((2.0 * normal_sf(((p1 - p2) / se).abs())).min(1.0))
}

/// The percentile (`q` in [0, 1], linear interpolation) of unsorted values, reordering them in place
/// in O(n) instead of sorting.
pub fn percentile_select(v: &mut [f64], q: f64) -> Option<f64> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let (_, &mut a, upper) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let b = if h > lo as f64 { upper.iter().copied().fold(f64::INFINITY, f64::min) } else { a };
    Some(a + (h - lo as f64) * (b - a))
}

/// A percentile bootstrap confidence interval of `stat(y) − stat(x)`, where `stat` is the `q` percentile:
/// both samples are resampled with replacement `resamples` times from a generator seeded with `seed`, and
/// the interval is the `(1 − level)/2` and `(1 + level)/2` percentiles of the resampled differences.
/// `None` when a sample is empty.
pub fn bootstrap_diff_ci(x: &[f64], y: &[f64], q: f64, level: f64, resamples: usize, seed: u64) -> Option<(f64, f64)> {
    bootstrap_diff_cis(x, y, &[q], level, resamples, seed)?.pop()
}

/// [`bootstrap_diff_ci`] for several percentiles at once, from the same resamples (each interval is the one
/// `bootstrap_diff_ci` gives alone with the same seed).
pub fn bootstrap_diff_cis(
    x: &[f64],
    y: &[f64],
    qs: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<Vec<(f64, f64)>> {
    use rand::{Rng, SeedableRng};
    if x.is_empty() || y.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut bx, mut by) = (vec![0.0; x.len()], vec![0.0; y.len()]);
    let mut diffs = vec![Vec::with_capacity(resamples); qs.len()];
    for _ in 0..resamples {
        for v in bx.iter_mut() {
            *v = x[rng.random_range(0..x.len())];
        }
        for v in by.iter_mut() {
            *v = y[rng.random_range(0..y.len())];
        }
        // Selecting reorders a resample but keeps its values, so every percentile reads the same resample.
        for (d, &q) in diffs.iter_mut().zip(qs) {
            d.push(percentile_select(&mut by, q)? - percentile_select(&mut bx, q)?);
        }
    }
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    diffs
        .into_iter()
        .map(|mut d| {
            d.sort_by(f64::total_cmp);
            Some((percentile_sorted(&d, tail)?, percentile_sorted(&d, 1.0 - tail)?))
        })
        .collect()
}

/// A least-squares line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
    /// Coefficient of determination (1 = perfect fit).
    pub r2: f64,
}

/// Fit `y = intercept + slope·x` by least squares; `None` for fewer than two distinct x values.
pub fn fit_line(points: &[(f64, f64)]) -> Option<Line> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    let ss_res: f64 = points.iter().map(|p| (p.1 - intercept - slope * p.0).powi(2)).sum();
    let r2 = if ss_tot <= f64::EPSILON { 1.0 } else { 1.0 - ss_res / ss_tot };
    Some(Line { slope, intercept, r2 })
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

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy 1.17 `mannwhitneyu(x, y)` (defaults: two-sided, method="auto", use_continuity=True).
        let cases: [(&[f64], &[f64], f64, f64); 6] = [
            (&[1., 2., 3., 4., 5.], &[6., 7., 8., 9., 10.], 0.0, 0.007936507936507936),
            (&[1.1, 3.4, 2.2, 5.9, 4.0, 7.7], &[2.5, 6.1, 8.8, 9.0, 7.2, 10.5, 3.3], 10.0, 0.13752913752913754),
            (&[1., 2., 2., 3., 4.], &[2., 3., 3., 5., 6., 7.], 6.0, 0.11390314458853068),
            (
                &[12.1, 15.3, 11.8, 14.2, 13.9, 16.5, 12.7, 15.1, 13.3, 14.8, 12.9, 15.7],
                &[14.9, 17.2, 16.1, 18.4, 15.6, 17.9, 16.8, 19.1, 15.2, 17.5, 16.3, 18.0, 17.1],
                11.0,
                0.0002978955914813989,
            ),
            (
                &[5., 5., 6., 7., 7., 7., 8., 9., 10., 10.],
                &[6., 7., 8., 8., 9., 9., 10., 11., 12., 12., 12.],
                26.0,
                0.04282560923089135,
            ),
            (&[3., 1., 2., 5., 4., 6., 8., 7., 9., 10.], &[3., 1., 2., 5., 4., 6., 8., 7., 9., 10.], 50.0, 1.0),
        ];
        for (x, y, u, p) in cases {
            let t = mann_whitney_u(x, y).unwrap();
            assert_eq!(t.u, u, "{x:?} {y:?}");
            assert!((t.p - p).abs() < 1e-9 * p.max(1e-3), "{x:?} {y:?}: {} != {p}", t.p);
        }
        assert!(mann_whitney_u(&[], &[1.0]).is_none());
    }

    #[test]
    fn two_proportions_and_normal_tail() {
        // scipy: 2 * norm.sf(|z|) for 95/100 against 85/100, pooled.
        assert!((two_proportion_p(95, 100, 85, 100).unwrap() - 0.018422125454099027).abs() < 1e-12);
        assert!((normal_sf(1.959963984540054) - 0.025).abs() < 1e-12);
        assert_eq!(two_proportion_p(10, 10, 5, 5), Some(1.0));
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_a_clear_shift() {
        let x: Vec<f64> = (0..200).map(|i| 100.0 + (i % 17) as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v + 50.0).collect();
        let a = bootstrap_diff_ci(&x, &y, 0.5, 0.95, 1000, 7).unwrap();
        assert_eq!(a, bootstrap_diff_ci(&x, &y, 0.5, 0.95, 1000, 7).unwrap());
        assert!(a.0 <= 50.0 && 50.0 <= a.1 && a.0 > 40.0, "{a:?}");
        let both = bootstrap_diff_cis(&x, &y, &[0.5, 0.95], 0.95, 1000, 7).unwrap();
        assert_eq!((both[0], both[1]), (a, bootstrap_diff_ci(&x, &y, 0.95, 0.95, 1000, 7).unwrap()));
    }

    #[test]
    fn distribution_is_exact_under_its_cap_then_spills() {
        let values: Vec<f64> = (0..1000).map(|i| (i * 37 % 1000) as f64 / 7.0).collect();
        let mut d = Distribution::with_exact_cap(1000);
        values.iter().for_each(|&v| d.record(v));
        d.record(f64::NAN);
        assert!(d.is_exact());
        assert_eq!(d.summary(), Summary::of(values.iter().copied()));
        assert_eq!(Distribution::new().summary(), None);
        d.record(1e3);
        assert!(!d.is_exact());
        assert_eq!((d.exact_len(), d.count()), (0, 1001));
        let s = d.summary().unwrap();
        assert_eq!((s.count, s.min, s.max), (1001, 0.0, 1e3));
        // One value, past the cap from the start.
        let mut one = Distribution::with_exact_cap(0);
        one.record(-2.5);
        let s = one.summary().unwrap();
        assert_eq!((s.count, s.mean, s.stddev, s.min, s.p50, s.p999, s.max), (1, -2.5, 0.0, -2.5, -2.5, -2.5, -2.5));
    }

    /// `got` is within 0.1 % of `want`, plus one histogram unit.
    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= 1e-3 * want.abs() + 1.0 / HISTOGRAM_SCALE
    }

    fn check_histogram_summary(got: &Summary, want: &Summary) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.count, want.count);
        prop_assert_eq!((got.min, got.max), (want.min, want.max));
        prop_assert!((got.mean - want.mean).abs() <= 1e-9 * want.mean.abs().max(1.0), "{got:?} {want:?}");
        prop_assert!((got.stddev - want.stddev).abs() <= 1e-6 * want.stddev.max(1.0), "{got:?} {want:?}");
        for (g, w) in [(got.p50, want.p50), (got.p90, want.p90), (got.p95, want.p95)]
            .into_iter()
            .chain([(got.p99, want.p99), (got.p999, want.p999)])
        {
            prop_assert!(close(g, w), "{g} vs {w}: {got:?} {want:?}");
        }
        Ok(())
    }

    /// Values spread over ten decades, all of one sign.
    fn spread() -> impl Strategy<Value = Vec<f64>> {
        (prop::collection::vec((-3f64..7.0, 0.5f64..1.0), 1..600), any::<bool>())
            .prop_map(|(v, neg)| v.into_iter().map(|(e, m)| if neg { -1.0 } else { 1.0 } * m * 10f64.powf(e)).collect())
    }

    proptest! {
        #[test]
        fn histogram_summary_is_close_to_the_exact_one(v in spread()) {
            let mut d = Distribution::with_exact_cap(0);
            v.iter().for_each(|&x| d.record(x));
            prop_assert!(!d.is_exact());
            check_histogram_summary(&d.summary().unwrap(), &Summary::of(v.iter().copied()).unwrap())?;
        }

        #[test]
        fn histogram_summary_of_tied_counts_is_close(v in prop::collection::vec(0u32..5000, 1..600)) {
            let mut d = Distribution::with_exact_cap(0);
            v.iter().for_each(|&x| d.record(f64::from(x)));
            check_histogram_summary(&d.summary().unwrap(), &Summary::of(v.iter().map(|&x| f64::from(x))).unwrap())?;
        }

        #[test]
        fn distributions_merge(v in spread(), split in 0usize..600, cap in 0usize..700) {
            let split = split.min(v.len());
            let (mut a, mut b) = (Distribution::with_exact_cap(cap), Distribution::with_exact_cap(cap));
            v[..split].iter().for_each(|&x| a.record(x));
            v[split..].iter().for_each(|&x| b.record(x));
            a.merge(&b);
            let want = Summary::of(v.iter().copied()).unwrap();
            if v.len() <= cap {
                prop_assert!(a.is_exact());
                prop_assert_eq!(a.summary().unwrap(), want);
            } else {
                check_histogram_summary(&a.summary().unwrap(), &want)?;
            }
        }

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
        fn rank_test_is_symmetric_and_bounded(
            x in prop::collection::vec(0f64..1e3, 1..40),
            y in prop::collection::vec(0f64..1e3, 1..40),
        ) {
            let a = mann_whitney_u(&x, &y).unwrap();
            let b = mann_whitney_u(&y, &x).unwrap();
            prop_assert!((0.0..=1.0).contains(&a.p));
            prop_assert!((a.p - b.p).abs() < 1e-9);
            prop_assert!((a.u + b.u - (x.len() * y.len()) as f64).abs() < 1e-9);
            // A sample against itself is never significant.
            prop_assert!(mann_whitney_u(&x, &x).unwrap().p > 0.9);
        }

        #[test]
        fn bootstrap_shifts_with_the_data(
            x in prop::collection::vec(0f64..1e3, 2..60),
            y in prop::collection::vec(0f64..1e3, 2..60),
            shift in -500f64..500.0,
            q in prop::sample::select(vec![0.5, 0.95]),
        ) {
            let (lo, hi) = bootstrap_diff_ci(&x, &y, q, 0.95, 200, 1).unwrap();
            prop_assert!(lo <= hi);
            let span = |v: &[f64]| (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let ((xmin, xmax), (ymin, ymax)) = (span(&x), span(&y));
            prop_assert!(lo >= ymin - xmax - 1e-9 && hi <= ymax - xmin + 1e-9);
            let shifted: Vec<f64> = y.iter().map(|v| v + shift).collect();
            let (lo2, hi2) = bootstrap_diff_ci(&x, &shifted, q, 0.95, 200, 1).unwrap();
            prop_assert!((lo2 - lo - shift).abs() < 1e-6 && (hi2 - hi - shift).abs() < 1e-6);
        }

        #[test]
        fn select_matches_sort(mut v in prop::collection::vec(-1e6f64..1e6, 1..200), q in 0f64..=1.0) {
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            prop_assert_eq!(percentile_select(&mut v, q), percentile_sorted(&sorted, q));
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
