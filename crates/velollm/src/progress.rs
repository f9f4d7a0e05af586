//! Live progress on the terminal: one bar per step (a spinner when the request count is not known in
//! advance), hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;
use velollm_core::aggregate::step::StepResult;
use velollm_core::measure::metrics::RequestMetrics;
use velollm_core::measure::record::RequestRecord;
use velollm_engine::plan::StepPlan;
use velollm_engine::runner::Observer;

/// Draws a progress bar per step.
pub struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
    ok: u64,
    failed: u64,
}

impl Progress {
    /// A progress display; `enabled` false draws nothing.
    pub fn new(enabled: bool) -> Progress {
        Progress { enabled, bar: None, ok: 0, failed: 0 }
    }
}

impl Observer for Progress {
    fn step_started(&mut self, _index: usize, step: &StepPlan) {
        if !self.enabled {
            return;
        }
        self.ok = 0;
        self.failed = 0;
        let bar = match step.expected_requests() {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{prefix:>18} {spinner} {pos} requests {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_prefix(step.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn record(&mut self, record: &RequestRecord) {
        let Some(bar) = &self.bar else { return };
        if record.succeeded() {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        let m = RequestMetrics::of(record);
        let ttft = m.ttft_ms.map_or("–".to_string(), |t| format!("{t:.0} ms"));
        bar.set_message(format!("ok {} · failed {} · last TTFT {ttft}", self.ok, self.failed));
        bar.inc(1);
    }

    fn step_finished(&mut self, _index: usize, _result: &StepResult) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
