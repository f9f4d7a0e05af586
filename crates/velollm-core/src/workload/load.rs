//! Load profiles and seeded arrival schedules.
//!
//! A profile says *how* requests are issued; [`Bounds`] say *how many* or *for how long*. They are
//! orthogonal values fed to one runner. Open-loop schedules are lists of intended send offsets computed
//! from a seed, so a run is reproducible and latency can be measured from the scheduled instant (no
//! coordinated omission).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Inter-arrival distribution of an open-loop profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Arrival {
    /// Evenly spaced: every `1/rate` seconds.
    Constant,
    /// Poisson process: exponential gaps with mean `1/rate`.
    Poisson,
    /// Gamma-distributed gaps with mean `1/rate` and shape `burstiness` (1 = Poisson; < 1 burstier; > 1
    /// more regular), as vLLM's `--burstiness`.
    Gamma {
        /// Shape parameter of the gamma distribution.
        burstiness: f64,
    },
}

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum LoadProfile {
    /// One request after another (closed loop with one worker).
    Sequential,
    /// `concurrency` closed-loop workers, each sending its next request when the previous one ends.
    Concurrency {
        /// Number of workers.
        concurrency: u32,
    },
    /// Open loop: requests are scheduled at `rate` per second regardless of how fast the server answers.
    Rate {
        /// Requests per second.
        rate: f64,
        /// Inter-arrival distribution.
        arrival: Arrival,
        /// At most this many requests in flight; later ones wait (their wait is reported as queue delay).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_concurrency: Option<u32>,
    },
}

impl LoadProfile {
    /// Closed-loop worker count, or the in-flight cap of an open-loop profile.
    pub fn workers(&self) -> Option<u32> {
        match *self {
            LoadProfile::Sequential => Some(1),
            LoadProfile::Concurrency { concurrency } => Some(concurrency),
            LoadProfile::Rate { max_concurrency, .. } => max_concurrency,
        }
    }

    /// A short description such as `sequential`, `concurrency 16` or `rate 20/s poisson`.
    pub fn describe(&self) -> String {
        match *self {
            LoadProfile::Sequential => "sequential".to_string(),
            LoadProfile::Concurrency { concurrency } => format!("concurrency {concurrency}"),
            LoadProfile::Rate { rate, arrival, max_concurrency } => {
                let a = match arrival {
                    Arrival::Constant => "constant".to_string(),
                    Arrival::Poisson => "poisson".to_string(),
                    Arrival::Gamma { burstiness } => format!("gamma(burstiness {burstiness})"),
                };
                let cap = max_concurrency.map(|c| format!(", max {c} in flight")).unwrap_or_default();
                format!("rate {rate}/s {a}{cap}")
            }
        }
    }
}

/// Warm-up before measurement: requests that are sent and recorded but excluded from aggregates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    /// No warm-up.
    #[default]
    None,
    /// The first N requests.
    Requests(u64),
    /// Requests scheduled during the first period of the step, in seconds.
    Seconds(f64),
}

/// When a step stops issuing requests. Warm-up comes on top of the bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Bounds {
    /// Measured requests to issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Seconds of measurement after warm-up; no request is scheduled after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Warm-up before measurement.
    #[serde(default)]
    pub warmup: Warmup,
}

impl Bounds {
    /// True when at least one of `requests` or `duration_s` limits the step.
    pub fn is_bounded(&self) -> bool {
        self.requests.is_some() || self.duration_s.is_some()
    }
}

/// A seeded generator of intended send offsets for an open-loop profile.
#[derive(Debug)]
pub struct ArrivalSchedule {
    rate: f64,
    gamma: Option<Gamma<f64>>,
    rng: StdRng,
    next: f64,
}

/// Why a schedule cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// The rate is not a positive finite number.
    #[error("--rate must be a positive number of requests per second, got {0}")]
    BadRate(f64),
    /// The burstiness is not a positive finite number.
    #[error("--burstiness must be a positive number (1 = Poisson), got {0}")]
    BadBurstiness(f64),
}

impl ArrivalSchedule {
    /// A schedule of `rate` requests per second with the given arrival process, reproducible from `seed`.
    /// The first request is scheduled at offset 0.
    pub fn new(rate: f64, arrival: Arrival, seed: u64) -> Result<ArrivalSchedule, ScheduleError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ScheduleError::BadRate(rate));
        }
        let shape = match arrival {
            Arrival::Constant => None,
            Arrival::Poisson => Some(1.0),
            Arrival::Gamma { burstiness } => Some(burstiness),
        };
        let gamma = match shape {
            // mean = shape × scale = 1/rate
            Some(k) => Some(Gamma::new(k, 1.0 / (rate * k)).map_err(|_| ScheduleError::BadBurstiness(k))?),
            None => None,
        };
        if let Some(k) = shape.filter(|k| !(k.is_finite() && *k > 0.0)) {
            return Err(ScheduleError::BadBurstiness(k));
        }
        Ok(ArrivalSchedule { rate, gamma, rng: StdRng::seed_from_u64(seed), next: 0.0 })
    }

    /// The next intended send offset from the start of the step.
    pub fn next_offset(&mut self) -> Duration {
        let now = self.next;
        let gap = match &self.gamma {
            Some(g) => g.sample(&mut self.rng),
            None => 1.0 / self.rate,
        };
        self.next += gap;
        Duration::from_secs_f64(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offsets(rate: f64, arrival: Arrival, seed: u64, n: usize) -> Vec<f64> {
        let mut s = ArrivalSchedule::new(rate, arrival, seed).unwrap();
        (0..n).map(|_| s.next_offset().as_secs_f64()).collect()
    }

    #[test]
    fn constant_is_evenly_spaced() {
        let v = offsets(4.0, Arrival::Constant, 0, 5);
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn same_seed_same_schedule() {
        assert_eq!(offsets(10.0, Arrival::Poisson, 7, 50), offsets(10.0, Arrival::Poisson, 7, 50));
        assert_ne!(offsets(10.0, Arrival::Poisson, 7, 50), offsets(10.0, Arrival::Poisson, 8, 50));
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(ArrivalSchedule::new(0.0, Arrival::Poisson, 1).is_err());
        assert!(ArrivalSchedule::new(f64::NAN, Arrival::Constant, 1).is_err());
        assert!(ArrivalSchedule::new(1.0, Arrival::Gamma { burstiness: 0.0 }, 1).is_err());
    }

    proptest! {
        #[test]
        fn mean_rate_is_close_to_requested(rate in 1.0f64..200.0, seed: u64, k in 0.5f64..4.0) {
            for arrival in [Arrival::Poisson, Arrival::Gamma { burstiness: k }] {
                let n = 4000;
                let v = offsets(rate, arrival, seed, n + 1);
                let observed = n as f64 / v[n];
                // 4000 gaps: the relative standard error is about 1/sqrt(4000·k) < 2.3 %; allow 5 sigma.
                prop_assert!((observed / rate - 1.0).abs() < 0.12, "rate {rate} observed {observed}");
                prop_assert!(v.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    }
}
