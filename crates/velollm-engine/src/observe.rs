//! Everything velollm watches of the server during one run, tied together: the launch, the cold first
//! request, the resource sampler, the metrics scraper and the health monitor.
//!
//! ```text
//! ServerWatch::launch(opts)     start the server if asked (before the session connects: its URL, clock zero)
//! watch.attach(&mut session)    cold first request, then sampling, scraping and health checks
//! … the run …                   steps are bracketed by scrapes (Session::run_scenario)
//! watch.finish(&mut session)    stop everything, stop the server, summarise → ServerReport
//! ```

use crate::bench::Session;
use crate::health::{Monitor, MonitorOptions};
use crate::launch::{LaunchError, LaunchSpec, Server};
use crate::plan::StepPlan;
use crate::resources::ResourceSampler;
use crate::scrape::Scraper;
use crate::target::Target;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use velollm_core::measure::record::RequestRecord;
use velollm_core::server::launch::{ColdStart, LaunchReport, ServerReport};

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Launch the server with this spec.
    pub launch: Option<LaunchSpec>,
    /// Restart a launched server that dies.
    pub restart_on_failure: bool,
    /// Send the cold first request of a launched server.
    pub cold_start: bool,
    /// Sample this (not launched) process tree.
    pub server_pid: Option<u32>,
    /// The metrics endpoint; `None` tries `URL/metrics`.
    pub metrics_url: Option<String>,
    /// Scrape metrics at all.
    pub metrics: bool,
    /// Sampling, scraping and health interval.
    pub interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> WatchOptions {
        WatchOptions {
            launch: None,
            restart_on_failure: false,
            cold_start: true,
            server_pid: None,
            metrics_url: None,
            metrics: true,
            interval: Duration::from_millis(500),
        }
    }
}

/// The watch over one run's server.
pub struct ServerWatch {
    opts: WatchOptions,
    server: Option<Server>,
    /// The launched server's URL.
    pub url: Option<String>,
    /// Zero of the run's clock (the spawn, when launched).
    pub origin: Instant,
    gate: watch::Sender<bool>,
    launch: Option<LaunchReport>,
    cold: Option<ColdStart>,
    first: Option<(f64, f64)>,
    sampler: Option<ResourceSampler>,
    monitor: Option<Arc<Monitor>>,
    metrics_url: Option<String>,
    notes: Vec<String>,
    rss_before_first: Option<u64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl ServerWatch {
    /// Launch the server when asked. Call before connecting the session: use [`ServerWatch::url`],
    /// [`ServerWatch::origin`] and [`ServerWatch::gate`] in its options.
    pub async fn launch(opts: WatchOptions, cancel: &watch::Receiver<bool>) -> Result<ServerWatch, LaunchError> {
        let (gate, _) = watch::channel(true);
        let mut sampler = None;
        let (server, origin, launch) = match &opts.launch {
            Some(spec) => {
                let mut s = Server::start(spec)?;
                // Sampled from the spawn on: loading shows in the first samples.
                sampler = Some(ResourceSampler::start(s.pid(), opts.interval, s.spawned));
                s.wait_ready_or_cancel(spec.ready_timeout, cancel).await?;
                let report = s.launch_report(&spec.template);
                let origin = s.spawned;
                (Some(s), origin, Some(report))
            }
            None => (None, Instant::now(), None),
        };
        let cold = server.as_ref().map(|s| ColdStart {
            spawn_to_listen_ms: s.readiness.listening_after.map(ms),
            spawn_to_ready_ms: ms(s.readiness.ready_after),
            spawn_to_first_token_ms: None,
            first_ttft_ms: None,
            first_e2e_ms: None,
            first_output_tokens: None,
            first_error: None,
        });
        Ok(ServerWatch {
            url: server.as_ref().map(|s| s.url.clone()),
            server,
            origin,
            gate,
            launch,
            cold,
            first: None,
            sampler,
            monitor: None,
            metrics_url: None,
            notes: Vec::new(),
            rss_before_first: None,
            opts,
        })
    }

    /// What requests wait on while a launched server is being restarted.
    pub fn gate(&self) -> Option<watch::Receiver<bool>> {
        self.server.as_ref().map(|_| self.gate.subscribe())
    }

    /// Start watching: sampling from now, then (for a launched server) the cold first request of
    /// `first_step`, then health and metrics. `cancel` is set when the server dies and is not restarted.
    pub async fn attach(
        &mut self,
        session: &mut Session,
        first_step: Option<&StepPlan>,
        seed: u64,
        cancel: watch::Sender<bool>,
    ) {
        let interrupted = cancel.subscribe();
        let clock = session.target.clock;
        if let (None, Some(pid)) = (&self.sampler, self.opts.server_pid) {
            self.sampler = Some(ResourceSampler::start(pid, self.opts.interval, self.origin));
        }
        if self.opts.cold_start
            && let (Some(step), Some(cold)) = (first_step, self.cold.as_mut())
        {
            let pid = self.server.as_ref().map(Server::pid);
            self.rss_before_first = pid.and_then(crate::resources::sample_once).map(|u| u.rss_bytes);
            let record = session.first_request(step, seed, &interrupted).await;
            cold.record_first(&record);
            if let (Some(sent), Some(done)) = (record.sent, record.done) {
                self.first = Some((sent as f64 / 1e9, done as f64 / 1e9));
            }
        }
        let scraper = if self.opts.metrics {
            let url = self
                .opts
                .metrics_url
                .clone()
                .unwrap_or_else(|| format!("{}/metrics", session.target.endpoint.display().trim_end_matches('/')));
            match Scraper::new(&url) {
                Ok(s) => match s.scrape().await {
                    Ok(_) => Some(s),
                    Err(e) => {
                        if self.opts.metrics_url.is_some() || self.server.is_some() {
                            self.notes.push(format!("no server metrics: {e}"));
                        }
                        None
                    }
                },
                Err(e) => {
                    self.notes.push(e);
                    None
                }
            }
        } else {
            None
        };
        self.metrics_url = scraper.as_ref().map(|s| s.url().to_string());
        // Health checks with short timeouts (a wedged server must not stall the watcher), same credentials.
        let mut health = Target::control(session.target.endpoint.clone());
        health.api_key = session.target.api_key.clone();
        let health = Some(Arc::new(health));
        let monitor = Monitor::start(
            MonitorOptions {
                server: self.server.take(),
                health,
                scraper,
                interval: self.opts.interval,
                restart: (self.opts.restart_on_failure)
                    .then(|| self.opts.launch.as_ref().map(|l| l.ready_timeout))
                    .flatten(),
                gate: Some(self.gate.clone()),
                cancel: Some(cancel),
                follow_pid: self.sampler.as_ref().map(ResourceSampler::root),
            },
            clock,
        )
        .await;
        let monitor = Arc::new(monitor);
        session.monitor = Some(monitor.clone());
        self.monitor = Some(monitor);
    }

    /// Notes for the user (metrics missing, …).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Why the run had to stop, when the server died and was not restarted.
    pub fn death(&self) -> Option<String> {
        self.monitor.as_ref().and_then(|m| m.death())
    }

    /// The report as it stands (for partial results).
    pub fn report(&self) -> ServerReport {
        let mut launch = self.launch.clone();
        if let (Some(l), Some(m)) = (launch.as_mut(), &self.monitor) {
            l.restarts = m.restarts();
        }
        ServerReport {
            launch,
            cold_start: self.cold.clone(),
            resources: None,
            metrics_url: self.metrics_url.clone(),
            metrics: self.monitor.as_ref().and_then(|m| m.run_metrics()),
            events: self.monitor.as_ref().map(|m| m.events()).unwrap_or_default(),
        }
    }

    /// Whether the server's resources are sampled (a launched server, or `--server-pid`): the resource
    /// report then needs the run's completion times ([`Completions`]).
    pub fn samples_resources(&self) -> bool {
        self.sampler.is_some()
    }

    /// Stop watching, stop a launched server (SIGTERM to its group, then SIGKILL), and summarise.
    /// `completions_s` are the run's request completion times in seconds on its clock.
    pub async fn finish(mut self, session: &mut Session, completions_s: &[f64]) -> ServerReport {
        session.monitor = None;
        let server = match &self.monitor {
            Some(m) => m.finish().await,
            None => self.server.take(),
        };
        let mut report = self.report();
        if let Some(s) = server {
            let stop = s.stop(Duration::from_secs(10)).await;
            if let Some(l) = report.launch.as_mut() {
                l.stop = Some(match (stop.terminated, stop.killed) {
                    (false, _) => format!("it had already exited: {}", stop.status),
                    (true, false) => format!("SIGTERM → {} after {:.1} s", stop.status, stop.took.as_secs_f64()),
                    (true, true) => format!("SIGTERM, then SIGKILL after the grace period → {}", stop.status),
                });
            }
        }
        if let Some(sampler) = self.sampler.take() {
            let sampler_notes = sampler.notes();
            let samples = sampler.stop();
            let mut r = velollm_core::server::resources::summarise(
                &samples,
                self.opts.interval.as_secs_f64(),
                self.first,
                completions_s,
            );
            if let Some(rss) = self.rss_before_first {
                r.set_rss_before_first_request(rss);
            }
            r.notes.extend(sampler_notes);
            r.notes.extend(self.notes.iter().cloned());
            report.resources = Some(r);
        }
        report
    }
}

/// Collects request completion times (seconds on the run clock) for the resource growth fit, only while
/// resources are sampled (so that a run without a watched server keeps nothing per request).
#[derive(Default)]
pub struct Completions {
    times_s: Vec<f64>,
    enabled: bool,
}

impl Completions {
    /// Collect when `enabled` (see [`ServerWatch::samples_resources`]).
    pub fn when(enabled: bool) -> Completions {
        Completions { times_s: Vec::new(), enabled }
    }

    /// The completion times collected, in seconds on the run clock.
    pub fn times_s(&self) -> &[f64] {
        &self.times_s
    }
}

impl crate::runner::Observer for Completions {
    fn record(&mut self, r: &RequestRecord) {
        if let Some(done) = r.done.filter(|_| self.enabled && r.succeeded()) {
            self.times_s.push(done as f64 / 1e9);
        }
    }
}
