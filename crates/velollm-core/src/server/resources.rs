//! Resource use of the server under test: the sampled timeline and its summary (DESIGN §8).
//!
//! The engine samples the server's process tree (root process and all its descendants) every interval:
//! resident memory summed over the tree, CPU use over the interval just ended (100 = one core busy), and
//! NVIDIA GPU utilisation and memory when `nvidia-smi` exists. This module turns such a timeline into the
//! figures of the result document; every formula lives here and nowhere else:
//!
//! * **peak / mean RSS, mean / peak CPU** — over every raw sample (plain sample means: samples are evenly
//!   spaced);
//! * **per GPU** — peak memory used, mean and peak utilisation, total memory, over the samples that have a
//!   reading for that GPU (`[N/A]` readings are skipped, never counted as 0);
//! * **first-request growth** — RSS of the first sample taken *after* the first request finished minus RSS
//!   of the last sample taken *before* it was sent (the source document's "+433 MB on the first generation");
//! * **growth per request** — least-squares slope ([`crate::stats::fit_line`]) of RSS against the number
//!   of requests completed by the time of each sample, over the samples taken between the first and the last
//!   completion; computed only when at least [`MIN_GROWTH_SAMPLES`] samples span at least
//!   [`MIN_GROWTH_REQUESTS`] completed requests, otherwise `None` and a note says why. Samples before the
//!   first completion are left out so that a one-off first-request jump (model load, warm-up) does not pass
//!   for a steady leak;
//! * **timeline** — the samples, for charts, bounded to [`MAX_TIMELINE_POINTS`]: a longer run is
//!   downsampled by merging groups of `k = ⌈n / MAX_TIMELINE_POINTS⌉` neighbours into one point (time of
//!   the group's last sample, max RSS, mean CPU, max process count; per GPU mean utilisation and max
//!   memory). Summary figures always use the raw samples.
//!
//! [`window`] summarises the samples of one time window (a scenario step).

use crate::stats::fit_line;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most points kept in [`ResourceReport::samples`]; longer timelines are downsampled.
pub const MAX_TIMELINE_POINTS: usize = 2_000;
/// Fewest samples (between the first and last completion) for a growth-per-request slope.
pub const MIN_GROWTH_SAMPLES: usize = 10;
/// Fewest completed requests those samples must span for a growth-per-request slope.
pub const MIN_GROWTH_REQUESTS: usize = 10;

/// One reading of the server's process tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceSample {
    /// When the reading was taken, in seconds since the run started.
    pub t_s: f64,
    /// Resident memory summed over the root process and all its descendants, in bytes.
    pub rss_bytes: u64,
    /// CPU use of the tree over the interval that ended at `t_s` (100 = one core fully busy).
    pub cpu_percent: f64,
    /// Processes in the tree at `t_s`.
    pub processes: u32,
    /// One reading per NVIDIA GPU, when `nvidia-smi` is available; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpu: Vec<GpuSample>,
}

/// One GPU's reading (from `nvidia-smi`); a field the driver reports as `[N/A]` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuSample {
    /// GPU index, as `nvidia-smi` numbers them.
    pub index: u32,
    /// Utilisation over the driver's last sample period, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_percent: Option<f64>,
    /// Memory in use on the whole GPU (every process), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<u64>,
    /// Total memory of the GPU, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
}

/// Summary of one GPU over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GpuSummary {
    /// GPU index, as `nvidia-smi` numbers them.
    pub index: u32,
    /// Samples with a reading for this GPU.
    pub samples: u64,
    /// Highest memory in use, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// Total memory of the GPU, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// Mean utilisation, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_mean_percent: Option<f64>,
    /// Highest utilisation, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_peak_percent: Option<f64>,
}

/// Memory growth per completed request: the least-squares line of RSS against completed requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrowthFit {
    /// Slope: bytes of RSS gained per completed request (negative when memory shrinks).
    pub bytes_per_request: f64,
    /// Coefficient of determination of the line (1 = RSS grows exactly linearly).
    pub r2: f64,
    /// Samples the line was fitted on.
    pub samples: u64,
    /// Completed requests those samples span (most minus fewest completed).
    pub requests: u64,
}

/// Resource use of the server over a run, as written in the result document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceReport {
    /// Sampling interval, in seconds.
    pub interval_s: f64,
    /// Number of raw samples taken.
    pub sample_count: u64,
    /// Raw samples merged into each point of `samples` (1 = not downsampled).
    pub samples_per_point: u64,
    /// The timeline, at most [`MAX_TIMELINE_POINTS`] points (see the module documentation for merging).
    pub samples: Vec<ResourceSample>,
    /// Highest RSS of the process tree, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_peak_bytes: Option<u64>,
    /// Mean RSS of the process tree, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mean_bytes: Option<u64>,
    /// Mean CPU use (100 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mean_percent: Option<f64>,
    /// Highest CPU use over one interval (100 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_peak_percent: Option<f64>,
    /// Most processes seen in the tree at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes_peak: Option<u32>,
    /// One summary per GPU seen; empty without `nvidia-smi`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuSummary>,
    /// RSS of the last sample taken before the first request was sent, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_before_first_request_bytes: Option<u64>,
    /// RSS of the first sample taken after the first request finished, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_first_request_bytes: Option<u64>,
    /// `rss_after_first_request_bytes − rss_before_first_request_bytes` (negative when memory was freed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request_growth_bytes: Option<i64>,
    /// Memory growth per completed request, when enough samples span enough requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_per_request: Option<GrowthFit>,
    /// Why a figure is missing, and what the sampler could not read (e.g. no `nvidia-smi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Resource use within one time window (a scenario step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowSummary {
    /// Samples taken within the window.
    pub samples: u64,
    /// Highest RSS of the process tree, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_peak_bytes: Option<u64>,
    /// Mean CPU use (100 = one core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_mean_percent: Option<f64>,
    /// Highest GPU memory in use, summed over the GPUs of each sample, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory_peak_bytes: Option<u64>,
    /// Mean GPU utilisation over the samples and GPUs with a reading, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_utilization_mean_percent: Option<f64>,
}

/// Summarise a run's samples.
///
/// * `samples` — in time order, as the sampler produced them;
/// * `interval_s` — the sampling interval, recorded in the report;
/// * `first_request` — `(sent_s, done_s)` of the first request, in seconds since the run started;
/// * `completions_s` — when each request completed, in seconds since the run started (any order;
///   non-finite values are ignored).
pub fn summarise(
    samples: &[ResourceSample],
    interval_s: f64,
    first_request: Option<(f64, f64)>,
    completions_s: &[f64],
) -> ResourceReport {
    let mut notes = Vec::new();
    let (before, after) = match first_request {
        Some((sent, done)) => {
            let before = samples.iter().rev().find(|s| s.t_s <= sent).map(|s| s.rss_bytes);
            let after = samples.iter().find(|s| s.t_s >= done).map(|s| s.rss_bytes);
            if before.is_none() {
                notes.push("no resource sample before the first request was sent: first-request growth unknown".into());
            } else if after.is_none() {
                notes.push("no resource sample after the first request finished: first-request growth unknown".into());
            }
            (before, after)
        }
        None => (None, None),
    };
    let growth = growth_per_request(samples, completions_s, &mut notes);
    let (samples_per_point, timeline) = downsample(samples, MAX_TIMELINE_POINTS);
    ResourceReport {
        interval_s,
        sample_count: samples.len() as u64,
        samples_per_point: samples_per_point as u64,
        samples: timeline,
        rss_peak_bytes: samples.iter().map(|s| s.rss_bytes).max(),
        rss_mean_bytes: mean(samples.iter().map(|s| s.rss_bytes as f64)).map(|m| m.round() as u64),
        cpu_mean_percent: mean(samples.iter().map(|s| s.cpu_percent)),
        cpu_peak_percent: samples.iter().map(|s| s.cpu_percent).filter(|c| c.is_finite()).max_by(f64::total_cmp),
        processes_peak: samples.iter().map(|s| s.processes).max(),
        gpus: gpu_summaries(samples),
        rss_before_first_request_bytes: before,
        rss_after_first_request_bytes: after,
        first_request_growth_bytes: rss_growth(before, after),
        growth_per_request: growth,
        notes,
    }
}

/// RSS after − RSS before, when both are known.
fn rss_growth(before: Option<u64>, after: Option<u64>) -> Option<i64> {
    before.zip(after).map(|(b, a)| a as i64 - b as i64)
}

impl ResourceReport {
    /// Use an RSS reading taken just before the first request was sent when no periodic sample fell before
    /// it (a server that became ready within one sampling interval); the first-request growth follows.
    pub fn set_rss_before_first_request(&mut self, rss_bytes: u64) {
        if self.rss_before_first_request_bytes.is_none() {
            self.rss_before_first_request_bytes = Some(rss_bytes);
            self.first_request_growth_bytes = rss_growth(Some(rss_bytes), self.rss_after_first_request_bytes);
            self.notes.retain(|n| !n.starts_with("no resource sample before the first request"));
        }
    }
}

/// Summarise the samples taken within `[start_s, end_s]` (seconds since the run started). A window
/// shorter than the sampling interval may hold no sample: every figure is then `None`.
pub fn window(samples: &[ResourceSample], start_s: f64, end_s: f64) -> WindowSummary {
    let inside: Vec<&ResourceSample> = samples.iter().filter(|s| s.t_s >= start_s && s.t_s <= end_s).collect();
    let gpu_memory_peak_bytes = inside
        .iter()
        .filter_map(|s| {
            let used: Vec<u64> = s.gpu.iter().filter_map(|g| g.memory_used_bytes).collect();
            (!used.is_empty()).then(|| used.iter().sum::<u64>())
        })
        .max();
    WindowSummary {
        samples: inside.len() as u64,
        rss_peak_bytes: inside.iter().map(|s| s.rss_bytes).max(),
        cpu_mean_percent: mean(inside.iter().map(|s| s.cpu_percent)),
        gpu_memory_peak_bytes,
        gpu_utilization_mean_percent: mean(
            inside.iter().flat_map(|s| s.gpu.iter().filter_map(|g| g.utilization_percent)),
        ),
    }
}

/// Bound a timeline to at most `max_points` points by merging groups of `k = ⌈n / max_points⌉` neighbours:
/// time of the group's last sample, max RSS, mean CPU, max process count; per GPU mean utilisation and
/// max memory. Returns `k` (1 when nothing was merged) and the points.
pub fn downsample(samples: &[ResourceSample], max_points: usize) -> (usize, Vec<ResourceSample>) {
    let max_points = max_points.max(1);
    if samples.len() <= max_points {
        return (1, samples.to_vec());
    }
    let k = samples.len().div_ceil(max_points);
    (k, samples.chunks(k).filter_map(merge).collect())
}

/// One point standing for a group of neighbouring samples (see [`downsample`]).
fn merge(group: &[ResourceSample]) -> Option<ResourceSample> {
    let last = group.last()?;
    let mut by_gpu: BTreeMap<u32, Vec<&GpuSample>> = BTreeMap::new();
    for g in group.iter().flat_map(|s| &s.gpu) {
        by_gpu.entry(g.index).or_default().push(g);
    }
    let gpu = by_gpu
        .into_iter()
        .map(|(index, readings)| GpuSample {
            index,
            utilization_percent: mean(readings.iter().filter_map(|g| g.utilization_percent)),
            memory_used_bytes: readings.iter().filter_map(|g| g.memory_used_bytes).max(),
            memory_total_bytes: readings.iter().filter_map(|g| g.memory_total_bytes).max(),
        })
        .collect();
    Some(ResourceSample {
        t_s: last.t_s,
        rss_bytes: group.iter().map(|s| s.rss_bytes).max().unwrap_or(last.rss_bytes),
        cpu_percent: mean(group.iter().map(|s| s.cpu_percent)).unwrap_or(last.cpu_percent),
        processes: group.iter().map(|s| s.processes).max().unwrap_or(last.processes),
        gpu,
    })
}

/// Per-GPU summaries over every sample, by GPU index.
fn gpu_summaries(samples: &[ResourceSample]) -> Vec<GpuSummary> {
    let mut by_gpu: BTreeMap<u32, Vec<&GpuSample>> = BTreeMap::new();
    for g in samples.iter().flat_map(|s| &s.gpu) {
        by_gpu.entry(g.index).or_default().push(g);
    }
    by_gpu
        .into_iter()
        .map(|(index, readings)| GpuSummary {
            index,
            samples: readings.len() as u64,
            memory_peak_bytes: readings.iter().filter_map(|g| g.memory_used_bytes).max(),
            memory_total_bytes: readings.iter().filter_map(|g| g.memory_total_bytes).max(),
            utilization_mean_percent: mean(readings.iter().filter_map(|g| g.utilization_percent)),
            utilization_peak_percent: readings
                .iter()
                .filter_map(|g| g.utilization_percent)
                .filter(|u| u.is_finite())
                .max_by(f64::total_cmp),
        })
        .collect()
}

/// The growth-per-request line (see the module documentation), or `None` with a note.
fn growth_per_request(samples: &[ResourceSample], completions_s: &[f64], notes: &mut Vec<String>) -> Option<GrowthFit> {
    let mut done: Vec<f64> = completions_s.iter().copied().filter(|c| c.is_finite()).collect();
    done.sort_by(f64::total_cmp);
    let (first, last) = (*done.first()?, *done.last()?);
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.t_s >= first && s.t_s <= last)
        .map(|s| (done.partition_point(|c| *c <= s.t_s) as f64, s.rss_bytes as f64))
        .collect();
    let fewest = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let most = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let requests = if points.is_empty() { 0 } else { (most - fewest) as u64 };
    if points.len() < MIN_GROWTH_SAMPLES || requests < MIN_GROWTH_REQUESTS as u64 {
        notes.push(format!(
            "memory growth per request not computed: {} sample(s) span {requests} completed request(s) \
             (needs at least {MIN_GROWTH_SAMPLES} samples over {MIN_GROWTH_REQUESTS} requests; \
             sample more often or run more requests)",
            points.len()
        ));
        return None;
    }
    let line = fit_line(&points)?;
    Some(GrowthFit { bytes_per_request: line.slope, r2: line.r2, samples: points.len() as u64, requests })
}

/// Mean of the finite values; `None` for none.
fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.filter(|v| v.is_finite()).fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn sample(t_s: f64, rss_bytes: u64, cpu_percent: f64) -> ResourceSample {
        ResourceSample { t_s, rss_bytes, cpu_percent, processes: 1, gpu: vec![] }
    }

    fn gpu(index: u32, util: Option<f64>, used_mb: Option<u64>) -> GpuSample {
        GpuSample {
            index,
            utilization_percent: util,
            memory_used_bytes: used_mb.map(|m| m * MB),
            memory_total_bytes: Some(80_000 * MB),
        }
    }

    #[test]
    fn empty_input_gives_no_figures() {
        let r = summarise(&[], 1.0, Some((0.5, 1.5)), &[1.5]);
        assert_eq!(r.sample_count, 0);
        assert_eq!(r.samples_per_point, 1);
        assert!(r.samples.is_empty() && r.gpus.is_empty());
        assert_eq!((r.rss_peak_bytes, r.rss_mean_bytes, r.processes_peak), (None, None, None));
        assert_eq!((r.cpu_mean_percent, r.cpu_peak_percent), (None, None));
        assert_eq!((r.rss_before_first_request_bytes, r.first_request_growth_bytes), (None, None));
        assert!(r.growth_per_request.is_none());
        assert!(!r.notes.is_empty(), "missing figures are explained");
        let w = window(&[], 0.0, 10.0);
        assert_eq!((w.samples, w.rss_peak_bytes, w.cpu_mean_percent), (0, None, None));
        // Serializes and reads back.
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ResourceReport>(&json).unwrap(), r);
    }

    #[test]
    fn peaks_and_means() {
        let s = vec![sample(1.0, 100 * MB, 50.0), sample(2.0, 300 * MB, 150.0), sample(3.0, 200 * MB, 100.0)];
        let r = summarise(&s, 1.0, None, &[]);
        assert_eq!(r.rss_peak_bytes, Some(300 * MB));
        assert_eq!(r.rss_mean_bytes, Some(200 * MB));
        assert_eq!(r.cpu_mean_percent, Some(100.0));
        assert_eq!(r.cpu_peak_percent, Some(150.0));
        assert_eq!(r.samples, s);
        assert_eq!(r.first_request_growth_bytes, None);
    }

    #[test]
    fn first_request_growth_uses_last_sample_before_and_first_after() {
        // Model loads while the first request runs (sent at 2.5 s, done at 5.2 s): +433 MB.
        let s: Vec<ResourceSample> = (0..10)
            .map(|i| {
                let t = f64::from(i);
                sample(
                    t,
                    if t < 3.0 {
                        100 * MB
                    } else if t < 6.0 {
                        400 * MB
                    } else {
                        533 * MB
                    },
                    10.0,
                )
            })
            .collect();
        let r = summarise(&s, 1.0, Some((2.5, 5.2)), &[5.2]);
        assert_eq!(r.rss_before_first_request_bytes, Some(100 * MB));
        assert_eq!(r.rss_after_first_request_bytes, Some(533 * MB));
        assert_eq!(r.first_request_growth_bytes, Some(433 * MB as i64));
        // Memory freed gives a negative growth.
        let r = summarise(&s, 1.0, Some((7.0, 8.0)), &[8.0]);
        assert_eq!(r.first_request_growth_bytes, Some(0));
        let shrink = vec![sample(0.0, 500 * MB, 0.0), sample(2.0, 200 * MB, 0.0)];
        assert_eq!(summarise(&shrink, 1.0, Some((1.0, 1.5)), &[]).first_request_growth_bytes, Some(-300 * MB as i64));
        // Nothing sampled before the request was sent.
        let r = summarise(&s, 1.0, Some((-1.0, 0.5)), &[]);
        assert_eq!((r.rss_before_first_request_bytes, r.first_request_growth_bytes), (None, None));
        assert!(r.notes.iter().any(|n| n.contains("before the first request")));
    }

    #[test]
    fn growth_per_request_recovers_a_known_slope() {
        // One request completes every 0.5 s from t = 1; 2 MB leaked per request, plus a 400 MB jump
        // before the first completion that must not be folded into the slope.
        let completions: Vec<f64> = (0..40).map(|i| 1.0 + 0.5 * f64::from(i)).collect();
        let s: Vec<ResourceSample> = (0..50)
            .map(|i| {
                let t = 0.1 + 0.5 * f64::from(i);
                let done = completions.iter().filter(|c| **c <= t).count() as u64;
                let rss = if done == 0 { 100 * MB } else { 500 * MB + 2 * MB * done };
                sample(t, rss, 0.0)
            })
            .collect();
        let r = summarise(&s, 0.5, None, &completions);
        let g = r.growth_per_request.expect("enough samples over enough requests");
        assert!((g.bytes_per_request - 2.0 * MB as f64).abs() < 1.0, "{g:?}");
        assert!((g.r2 - 1.0).abs() < 1e-9);
        assert_eq!(g.samples, 39);
        assert_eq!(g.requests, 38);
        // The same with completions given out of order and a stray NaN.
        let mut shuffled = completions.clone();
        shuffled.reverse();
        shuffled.push(f64::NAN);
        assert_eq!(summarise(&s, 0.5, None, &shuffled).growth_per_request, Some(g));
    }

    #[test]
    fn growth_per_request_needs_enough_samples_and_requests() {
        // 20 samples but only 5 requests.
        let s: Vec<ResourceSample> = (0..20).map(|i| sample(f64::from(i), MB * u64::from(i as u8), 0.0)).collect();
        let r = summarise(&s, 1.0, None, &[0.0, 4.0, 8.0, 12.0, 19.0]);
        assert!(r.growth_per_request.is_none());
        assert!(r.notes.iter().any(|n| n.contains("growth per request")));
        // 30 requests but only 3 samples between the first and last completion.
        let completions: Vec<f64> = (0..30).map(|i| 1.0 + 0.1 * f64::from(i)).collect();
        assert!(summarise(&s, 1.0, None, &completions).growth_per_request.is_none());
        // No completions at all: no note needed beyond the one saying why.
        assert!(summarise(&s, 1.0, None, &[]).growth_per_request.is_none());
    }

    #[test]
    fn downsampling_is_bounded_and_merges_max_rss_mean_cpu() {
        for n in [0usize, 1, 1_999, 2_000, 2_001, 4_000, 4_001, 100_000] {
            let s: Vec<ResourceSample> = (0..n).map(|i| sample(i as f64, i as u64, (i % 2) as f64 * 100.0)).collect();
            let (k, points) = downsample(&s, MAX_TIMELINE_POINTS);
            assert!(points.len() <= MAX_TIMELINE_POINTS, "n = {n}: {} points", points.len());
            assert_eq!(points.len(), n.div_ceil(k.max(1)));
            if n <= MAX_TIMELINE_POINTS {
                assert_eq!((k, points.len()), (1, n));
            } else {
                assert!(points.len() > MAX_TIMELINE_POINTS / 2, "no more merging than needed");
            }
            // The peak survives merging.
            assert_eq!(points.iter().map(|p| p.rss_bytes).max(), s.iter().map(|p| p.rss_bytes).max());
        }
        let s = vec![
            ResourceSample {
                t_s: 1.0,
                rss_bytes: 5,
                cpu_percent: 100.0,
                processes: 2,
                gpu: vec![gpu(0, Some(10.0), Some(7))],
            },
            ResourceSample { t_s: 2.0, rss_bytes: 9, cpu_percent: 0.0, processes: 3, gpu: vec![gpu(0, None, Some(9))] },
            ResourceSample {
                t_s: 3.0,
                rss_bytes: 4,
                cpu_percent: 50.0,
                processes: 1,
                gpu: vec![gpu(0, Some(30.0), None)],
            },
        ];
        let (k, points) = downsample(&s, 1);
        assert_eq!(k, 3);
        let p = &points[0];
        assert_eq!((p.t_s, p.rss_bytes, p.cpu_percent, p.processes), (3.0, 9, 50.0, 3));
        assert_eq!(p.gpu, vec![GpuSample { utilization_percent: Some(20.0), ..gpu(0, None, Some(9)) }]);
        // The report keeps the raw figures and says how much was merged.
        let long: Vec<ResourceSample> = (0..5_000).map(|i| sample(f64::from(i), u64::from(i as u16), 10.0)).collect();
        let r = summarise(&long, 1.0, None, &[]);
        assert_eq!((r.sample_count, r.samples_per_point, r.samples.len()), (5_000, 3, 1_667));
        assert_eq!(r.rss_peak_bytes, Some(4_999));
    }

    #[test]
    fn gpu_summaries_skip_missing_readings() {
        let s = vec![
            ResourceSample { gpu: vec![gpu(0, Some(20.0), Some(1_000)), gpu(1, None, None)], ..sample(1.0, MB, 0.0) },
            ResourceSample {
                gpu: vec![gpu(0, Some(60.0), Some(3_000)), gpu(1, Some(5.0), Some(10))],
                ..sample(2.0, MB, 0.0)
            },
            sample(3.0, MB, 0.0),
        ];
        let r = summarise(&s, 1.0, None, &[]);
        assert_eq!(r.gpus.len(), 2);
        assert_eq!(r.gpus[0].index, 0);
        assert_eq!(r.gpus[0].samples, 2);
        assert_eq!(r.gpus[0].memory_peak_bytes, Some(3_000 * MB));
        assert_eq!(r.gpus[0].utilization_mean_percent, Some(40.0));
        assert_eq!(r.gpus[0].utilization_peak_percent, Some(60.0));
        assert_eq!(r.gpus[1].utilization_mean_percent, Some(5.0), "[N/A] is skipped, not counted as 0");
        assert_eq!(r.gpus[1].memory_total_bytes, Some(80_000 * MB));
        let w = window(&s, 0.0, 10.0);
        assert_eq!(w.gpu_memory_peak_bytes, Some(3_010 * MB));
        assert_eq!(w.gpu_utilization_mean_percent, Some(85.0 / 3.0));
    }

    #[test]
    fn window_keeps_only_samples_inside() {
        let s: Vec<ResourceSample> =
            (0..10).map(|i| sample(f64::from(i), MB * u64::from(10 - i as u8), f64::from(i) * 10.0)).collect();
        let w = window(&s, 2.0, 4.0);
        assert_eq!(w.samples, 3);
        assert_eq!(w.rss_peak_bytes, Some(8 * MB));
        assert_eq!(w.cpu_mean_percent, Some(30.0));
        assert_eq!((w.gpu_memory_peak_bytes, w.gpu_utilization_mean_percent), (None, None));
        assert_eq!(window(&s, 2.2, 2.8).samples, 0);
    }
}
