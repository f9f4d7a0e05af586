//! The metric registry: every metric velollm reports, declared once — its canonical name and the aliases users
//! write (`ttr` for `e2e`, `tok_s` for `tokens_per_s`), its label in reports, its unit, which direction is
//! better, and how to read it from a step result, from a step's per-request samples and from one request.
//! Thresholds, gates, `compare`, `ab`, analyses, the history database and every renderer read metrics
//! here, so a new metric is one entry in [`METRICS`].

use crate::aggregate::step::{StepMetrics, StepResult, StepSamples};
use crate::measure::metrics::RequestMetrics;
use crate::measure::names::{Better, Unit};
use crate::measure::record::RequestRecord;
use crate::stats::Summary;

/// One metric.
#[derive(Debug)]
pub struct Metric {
    /// The canonical name (`ttft`, `e2e`, `decode_tokens_per_s`, `success_rate`, …): the one stored in
    /// documents and the history.
    pub canonical: &'static str,
    /// Other names that mean it.
    pub aliases: &'static [&'static str],
    /// Its name in tables and charts (`TTFT`, `decode tok/s`, `success rate`).
    pub label: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// Which direction is better.
    pub better: Better,
    /// How it is read.
    pub read: Read,
}

/// Where a metric's values are.
#[derive(Debug)]
pub enum Read {
    /// A per-request distribution, summarised per step (it has percentiles).
    Distribution {
        /// Its summary in a step's metrics.
        step: fn(&StepMetrics) -> &Option<Summary>,
        /// Its column among a step's kept per-request samples, when the samples keep it.
        samples: Option<fn(&StepSamples) -> Vec<f64>>,
        /// Its value for one request, when it can be paired request by request (`ab`).
        request: Option<fn(&RequestRecord, &RequestMetrics) -> Option<f64>>,
    },
    /// One value per step.
    Scalar(fn(&StepResult) -> Option<f64>),
}

impl Metric {
    /// True for a per-request distribution (it has percentiles); false for a per-step scalar.
    pub fn is_distribution(&self) -> bool {
        matches!(self.read, Read::Distribution { .. })
    }

    /// Its summary in a step (distributions only).
    pub fn summary<'a>(&self, step: &'a StepResult) -> Option<&'a Summary> {
        match self.read {
            Read::Distribution { step: f, .. } => f(&step.metrics).as_ref(),
            Read::Scalar(_) => None,
        }
    }

    /// Its value in a step (scalars only).
    pub fn scalar(&self, step: &StepResult) -> Option<f64> {
        match self.read {
            Read::Scalar(f) => f(step),
            Read::Distribution { .. } => None,
        }
    }

    /// Its per-request values among a step's samples, missing values dropped; `None` when the samples do not
    /// keep it.
    pub fn samples(&self, samples: &StepSamples) -> Option<Vec<f64>> {
        match self.read {
            Read::Distribution { samples: Some(f), .. } => Some(f(samples)),
            _ => None,
        }
    }

    /// Its value for one successful request; `None` when missing, not finite, or not a paired metric.
    pub fn request(&self, r: &RequestRecord, m: &RequestMetrics) -> Option<f64> {
        match self.read {
            Read::Distribution { request: Some(f), .. } => f(r, m).filter(|x| x.is_finite()),
            _ => None,
        }
    }
}

/// The metric a name or alias means; `None` for an unknown name.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.canonical == name || m.aliases.contains(&name))
}

/// The per-request values of the metric `name` among a step's samples (see [`Metric::samples`]).
pub fn samples(samples: &StepSamples, name: &str) -> Option<Vec<f64>> {
    metric(name)?.samples(samples)
}

/// The label of a metric name (`TTFT`), or the name itself when it is not a registered metric.
pub fn label(name: &str) -> &str {
    metric(name).map_or(name, |m| m.label)
}

/// The canonical names of every distribution, in registry order.
pub fn distributions() -> impl Iterator<Item = &'static str> {
    METRICS.iter().filter(|m| m.is_distribution()).map(|m| m.canonical)
}

/// The canonical names of every per-step scalar, in registry order.
pub fn scalars() -> impl Iterator<Item = &'static str> {
    METRICS.iter().filter(|m| !m.is_distribution()).map(|m| m.canonical)
}

fn floats(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().flatten().copied().collect()
}

fn counts(v: &[Option<u64>]) -> Vec<f64> {
    v.iter().flatten().map(|&x| x as f64).collect()
}

use Better::{Higher, Lower, Neither};
use Unit::{Fraction, Ms, Percent, Plain};

/// Every metric. Distributions first, then per-step scalars.
pub static METRICS: &[Metric] = &[
    Metric {
        canonical: "ttft",
        aliases: &[],
        label: "TTFT",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.ttft_ms,
            samples: Some(|s| floats(&s.ttft_ms)),
            request: Some(|_, m| m.ttft_ms),
        },
    },
    Metric {
        canonical: "ttft_content",
        aliases: &[],
        label: "TTFT content",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.ttft_content_ms, samples: None, request: None },
    },
    Metric {
        canonical: "ttfb",
        aliases: &[],
        label: "TTFB",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.ttfb_ms, samples: None, request: Some(|_, m| m.ttfb_ms) },
    },
    Metric {
        canonical: "e2e",
        aliases: &["ttr", "latency"],
        label: "E2E",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.e2e_ms,
            samples: Some(|s| floats(&s.e2e_ms)),
            request: Some(|_, m| m.e2e_ms),
        },
    },
    Metric {
        canonical: "tpot",
        aliases: &[],
        label: "TPOT",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.tpot_ms,
            samples: Some(|s| floats(&s.tpot_ms)),
            request: Some(|_, m| m.tpot_ms),
        },
    },
    Metric {
        canonical: "itl_chunk",
        aliases: &["itl"],
        label: "ITL/chunk",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.itl_chunk_ms, samples: None, request: None },
    },
    Metric {
        canonical: "itl_token",
        aliases: &[],
        label: "itl_token",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.itl_token_ms, samples: None, request: None },
    },
    Metric {
        canonical: "queue_delay",
        aliases: &["queue"],
        label: "queue delay",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.queue_delay_ms,
            samples: Some(|s| floats(&s.queue_delay_ms)),
            request: None,
        },
    },
    Metric {
        canonical: "network_overhead",
        aliases: &["network"],
        label: "network overhead",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.network_overhead_ms,
            samples: Some(|s| floats(&s.network_overhead_ms)),
            request: Some(|_, m| m.network_overhead_ms),
        },
    },
    Metric {
        canonical: "reasoning",
        aliases: &[],
        label: "reasoning",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.reasoning_ms, samples: None, request: None },
    },
    Metric {
        canonical: "decode_tokens_per_s",
        aliases: &["decode"],
        label: "decode tok/s",
        unit: Plain,
        better: Higher,
        read: Read::Distribution {
            step: |m| &m.decode_tokens_per_s,
            samples: Some(|s| floats(&s.decode_tokens_per_s)),
            request: Some(|_, m| m.decode_tokens_per_s),
        },
    },
    Metric {
        canonical: "tokens_per_s",
        aliases: &["tok_s"],
        label: "tok/s (E2E)",
        unit: Plain,
        better: Higher,
        read: Read::Distribution {
            step: |m| &m.tokens_per_s,
            samples: Some(|s| floats(&s.tokens_per_s)),
            request: Some(|_, m| m.tokens_per_s),
        },
    },
    Metric {
        canonical: "output_tokens",
        aliases: &[],
        label: "output_tokens",
        unit: Plain,
        better: Neither,
        read: Read::Distribution {
            step: |m| &m.output_tokens,
            samples: Some(|s| s.output_tokens.iter().map(|&x| x as f64).collect()),
            request: None,
        },
    },
    Metric {
        canonical: "prompt_tokens",
        aliases: &[],
        label: "prompt_tokens",
        unit: Plain,
        better: Neither,
        read: Read::Distribution {
            step: |m| &m.prompt_tokens,
            samples: Some(|s| counts(&s.prompt_tokens)),
            request: None,
        },
    },
    Metric {
        canonical: "cached_tokens",
        aliases: &[],
        label: "cached_tokens",
        unit: Plain,
        better: Higher,
        read: Read::Distribution {
            step: |m| &m.cached_tokens,
            samples: Some(|s| counts(&s.cached_tokens)),
            request: None,
        },
    },
    Metric {
        canonical: "server_prefill",
        aliases: &[],
        label: "server prefill",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.server_prefill_ms,
            samples: Some(|s| floats(&s.server_prefill_ms)),
            request: Some(|r, _| r.native.as_ref().and_then(|n| n.prompt_ms)),
        },
    },
    Metric {
        canonical: "server_decode",
        aliases: &[],
        label: "server decode",
        unit: Ms,
        better: Lower,
        read: Read::Distribution {
            step: |m| &m.server_decode_ms,
            samples: Some(|s| floats(&s.server_decode_ms)),
            request: Some(|r, _| r.native.as_ref().and_then(|n| n.predicted_ms)),
        },
    },
    Metric {
        canonical: "server_load",
        aliases: &[],
        label: "server_load",
        unit: Ms,
        better: Lower,
        read: Read::Distribution { step: |m| &m.server_load_ms, samples: None, request: None },
    },
    Metric {
        canonical: "success_rate",
        aliases: &[],
        label: "success rate",
        unit: Fraction,
        better: Higher,
        read: Read::Scalar(|s| Some(s.success_rate)),
    },
    Metric {
        canonical: "requests",
        aliases: &[],
        label: "requests",
        unit: Plain,
        better: Neither,
        read: Read::Scalar(|s| Some(s.requests as f64)),
    },
    Metric {
        canonical: "failed",
        aliases: &["errors"],
        label: "failed",
        unit: Plain,
        better: Lower,
        read: Read::Scalar(|s| Some(s.failed as f64)),
    },
    Metric {
        canonical: "request_throughput",
        aliases: &["throughput"],
        label: "req/s (step)",
        unit: Plain,
        better: Higher,
        read: Read::Scalar(|s| Some(s.rates.request_throughput)),
    },
    Metric {
        canonical: "output_throughput",
        aliases: &[],
        label: "output tok/s (step)",
        unit: Plain,
        better: Higher,
        read: Read::Scalar(|s| Some(s.rates.output_token_throughput)),
    },
    Metric {
        canonical: "goodput",
        aliases: &[],
        label: "goodput",
        unit: Plain,
        better: Higher,
        read: Read::Scalar(|s| s.rates.goodput),
    },
    Metric {
        canonical: "good_fraction",
        aliases: &[],
        label: "good_fraction",
        unit: Fraction,
        better: Higher,
        read: Read::Scalar(|s| s.rates.good_fraction),
    },
    Metric {
        canonical: "score",
        aliases: &[],
        label: "score",
        unit: Percent,
        better: Higher,
        read: Read::Scalar(|s| s.quality.as_ref().map(|q| q.score * 100.0)),
    },
    Metric {
        canonical: "first_try",
        aliases: &[],
        label: "first_try",
        unit: Percent,
        better: Higher,
        read: Read::Scalar(|s| s.quality.as_ref().map(|q| q.first_try_rate * 100.0)),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_share_one_canonical_name() {
        assert_eq!(metric("ttr").unwrap().canonical, "e2e");
        assert_eq!(metric("tok_s").unwrap().better, Better::Higher);
        assert_eq!(metric("ttft").unwrap().unit, Unit::Ms);
        assert!(metric("nope").is_none());
        assert_eq!(label("decode"), "decode tok/s");
        assert_eq!(label("nope"), "nope");
    }

    #[test]
    fn every_name_and_alias_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in METRICS {
            for name in std::iter::once(&m.canonical).chain(m.aliases) {
                assert!(seen.insert(*name), "{name} is declared twice");
                assert!(!name.contains('.'), "{name}: a metric name has no dot (the statistic follows one)");
            }
        }
    }

    #[test]
    fn distributions_come_before_scalars() {
        let first_scalar = METRICS.iter().position(|m| !m.is_distribution()).unwrap();
        assert!(METRICS[first_scalar..].iter().all(|m| !m.is_distribution()));
    }
}
