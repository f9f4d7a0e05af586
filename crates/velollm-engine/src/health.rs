//! Watching the server during a run: its health, its Prometheus metrics, its process — and, for a server
//! velollm launched, restarting it after a death (`--restart-on-failure`).
//!
//! A background task wakes every `interval`:
//! * a launched server whose process exited is stamped `exited` on the timeline; with restarts allowed the
//!   load is paused (workers wait at the [`Target`] gate), the same command is started again on the same
//!   port, and the load resumes once it is ready (`relaunched`, with the gap); otherwise the run is
//!   cancelled and its partial result kept;
//! * the health route (the first of `/health`, `/v1/models`, `/api/version` that answered 200 at start) is
//!   polled: a failure is stamped `down`, the next 200 `up` with the gap;
//! * the metrics endpoint is scraped; a counter that went down means the server restarted on its own.
//!
//! Steps call [`Monitor::step_started`] and [`Monitor::step_finished`], which scrape at once, so every
//! step's server metrics are the difference between a scrape just before it and one just after it.

use crate::exec::get;
use crate::launch::Server;
use crate::scrape::Scraper;
use crate::target::Target;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use velollm_core::measure::prom::{Scrape, ServerMetrics};
use velollm_core::server::launch::{ServerEvent, ServerEventKind};

/// How to watch the server.
pub struct MonitorOptions {
    /// The launched server, if velollm launched it (the monitor owns it until [`Monitor::finish`]).
    pub server: Option<Server>,
    /// The server's base URL, for the health route.
    pub health: Option<Arc<Target>>,
    /// The metrics endpoint, if any.
    pub scraper: Option<Scraper>,
    /// How often to look.
    pub interval: Duration,
    /// Restart a launched server that dies, waiting this long for it to be ready again.
    pub restart: Option<Duration>,
    /// Set to false while the server is down and being restarted (the load waits), true otherwise.
    pub gate: Option<watch::Sender<bool>>,
    /// Set to true to stop the run when the server dies and is not restarted.
    pub cancel: Option<watch::Sender<bool>>,
    /// Where to put a relaunched server's process id (the resource sampler follows it).
    pub follow_pid: Option<Arc<std::sync::atomic::AtomicU32>>,
}

#[derive(Default)]
struct State {
    events: Vec<ServerEvent>,
    step: Option<String>,
    first: Option<Scrape>,
    before: Option<Scrape>,
    during: Vec<Scrape>,
    last: Option<Scrape>,
    /// Scrapes kept for the whole-run figures: every step's two sides and both sides of every reset, so
    /// that a restart in the middle of the run is counted like one inside a step.
    points: Vec<Scrape>,
    restarts: u32,
    dead: Option<String>,
}

/// The watcher of one run.
pub struct Monitor {
    state: Arc<Mutex<State>>,
    scraper: Option<Scraper>,
    clock: crate::transport::Clock,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<JoinHandle<Option<Server>>>>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Monitor {
    /// Start watching. `clock` is the run's clock (event times are seconds on it).
    pub async fn start(opts: MonitorOptions, clock: crate::transport::Clock) -> Monitor {
        let state = Arc::new(Mutex::new(State::default()));
        if let Some(s) = &opts.scraper
            && let Ok(first) = s.scrape().await
        {
            let mut st = lock(&state);
            st.last = Some(first.clone());
            st.first = Some(first);
        }
        let health_route = match &opts.health {
            Some(t) => health_route(t).await,
            None => None,
        };
        let (stop, stop_rx) = watch::channel(false);
        let task =
            tokio::spawn(watch_loop(opts.clone_parts(), opts.server, health_route, state.clone(), clock, stop_rx));
        Monitor { state, scraper: opts.scraper, clock, stop, task: tokio::sync::Mutex::new(Some(task)) }
    }

    fn now_s(&self) -> f64 {
        self.clock.now() as f64 / 1e9
    }

    async fn scrape_now(&self) -> Option<Scrape> {
        self.scraper.as_ref()?.scrape().await.ok()
    }

    /// A step starts: scrape the "before" side.
    pub async fn step_started(&self, name: &str) {
        let s = self.scrape_now().await;
        let mut st = lock(&self.state);
        st.step = Some(name.to_string());
        st.during.clear();
        if let Some(s) = s {
            st.first.get_or_insert_with(|| s.clone());
            st.last = Some(s.clone());
            st.points.push(s.clone());
            st.before = Some(s);
        }
    }

    /// A step ended: scrape the "after" side and return the step's server metrics.
    pub async fn step_finished(&self) -> Option<ServerMetrics> {
        let after = self.scrape_now().await;
        let mut st = lock(&self.state);
        st.step = None;
        let before = st.before.take()?;
        let after = after.or_else(|| st.last.clone())?;
        st.last = Some(after.clone());
        st.points.push(after.clone());
        let during = std::mem::take(&mut st.during);
        Some(velollm_core::measure::prom::step_metrics(&before, &after, &during))
    }

    /// Server metrics from the first scrape of the run to the last.
    pub fn run_metrics(&self) -> Option<ServerMetrics> {
        let st = lock(&self.state);
        Some(velollm_core::measure::prom::step_metrics(st.first.as_ref()?, st.last.as_ref()?, &st.points))
    }

    /// The events so far.
    pub fn events(&self) -> Vec<ServerEvent> {
        lock(&self.state).events.clone()
    }

    /// How many times the launched server was restarted.
    pub fn restarts(&self) -> u32 {
        lock(&self.state).restarts
    }

    /// Why the run had to stop, when the server died and was not restarted.
    pub fn death(&self) -> Option<String> {
        lock(&self.state).dead.clone()
    }

    /// Seconds on the run clock now.
    pub fn now(&self) -> f64 {
        self.now_s()
    }

    /// Stop watching; hands back the launched server (the one running now, after restarts) to be stopped.
    pub async fn finish(&self) -> Option<Server> {
        let _ = self.stop.send(true);
        let task = self.task.lock().await.take()?;
        task.await.ok().flatten()
    }
}

/// The parts of the options the background task needs besides the server.
struct LoopParts {
    health: Option<Arc<Target>>,
    scraper: Option<Scraper>,
    interval: Duration,
    restart: Option<Duration>,
    gate: Option<watch::Sender<bool>>,
    cancel: Option<watch::Sender<bool>>,
    follow_pid: Option<Arc<std::sync::atomic::AtomicU32>>,
}

impl MonitorOptions {
    fn clone_parts(&self) -> LoopParts {
        LoopParts {
            health: self.health.clone(),
            scraper: self.scraper.clone(),
            interval: self.interval,
            restart: self.restart,
            gate: self.gate.clone(),
            cancel: self.cancel.clone(),
            follow_pid: self.follow_pid.clone(),
        }
    }
}

async fn health_route(target: &Target) -> Option<&'static str> {
    for route in crate::launch::READY_ROUTES {
        if let Ok((200, _)) = get(target, route).await {
            return Some(route);
        }
    }
    None
}

async fn watch_loop(
    p: LoopParts,
    mut server: Option<Server>,
    health_route: Option<&'static str>,
    state: Arc<Mutex<State>>,
    clock: crate::transport::Clock,
    mut stop: watch::Receiver<bool>,
) -> Option<Server> {
    let now = || clock.now() as f64 / 1e9;
    let mut down_since: Option<f64> = None;
    let event = |kind, detail: String, gap_s: Option<f64>| {
        let mut st = lock(&state);
        let step = st.step.clone();
        st.events.push(ServerEvent { t_s: now(), kind, step, detail, gap_s });
    };
    loop {
        // A launched process that exits is seen at once, not at the next tick.
        let exit = async {
            match server.as_mut() {
                Some(s) => s.wait_exit().await,
                None => std::future::pending().await,
            }
        };
        let exited = tokio::select! {
            _ = tokio::time::sleep(p.interval) => None,
            status = exit => Some(status),
            _ = stop.wait_for(|s| *s) => {
                // The run ended: a server that died at its very end is still reported.
                match server.as_mut().and_then(Server::exited) {
                    Some(status) => Some(status),
                    None => return server,
                }
            }
        };
        if let (Some(status), Some(s)) = (exited, server.as_mut()) {
            let died = now();
            let detail = format!("{status}; last lines of {}:\n{}", s.log.display(), s.tail());
            event(ServerEventKind::Exited, detail.clone(), None);
            match p.restart {
                Some(ready) => {
                    if let Some(g) = &p.gate {
                        let _ = g.send(false);
                    }
                    let old = server.take()?;
                    match old.relaunch(ready).await {
                        Ok(new) => {
                            event(
                                ServerEventKind::Relaunched,
                                format!("ready via {}", new.readiness.route),
                                Some(now() - died),
                            );
                            lock(&state).restarts += 1;
                            if let Some(f) = &p.follow_pid {
                                f.store(new.pid(), std::sync::atomic::Ordering::Relaxed);
                            }
                            server = Some(new);
                            if let Some(g) = &p.gate {
                                let _ = g.send(true);
                            }
                        }
                        Err(e) => {
                            lock(&state).dead =
                                Some(format!("the server died ({status}) and could not be restarted: {e}"));
                            if let Some(c) = &p.cancel {
                                let _ = c.send(true);
                            }
                            if let Some(g) = &p.gate {
                                let _ = g.send(true);
                            }
                            return None;
                        }
                    }
                }
                None => {
                    lock(&state).dead = Some(format!(
                        "the server died during the run ({status}); add --restart-on-failure to restart it and go on; last lines of {}:\n{}",
                        s.log.display(),
                        s.tail()
                    ));
                    // Requests in flight fail on their own as the sockets close: let them, so they keep their
                    // real error class, before the run is stopped.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    if let Some(c) = &p.cancel {
                        let _ = c.send(true);
                    }
                    return server;
                }
            }
        }
        // Health.
        if let (Some(t), Some(route)) = (&p.health, health_route) {
            let answer = match get(t, route).await {
                Ok((200, _)) => None,
                Ok((status, body)) => Some(format!(
                    "{route} answered {status} {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                )),
                Err(e) => Some(format!("{route}: {}", e.message)),
            };
            match (answer, down_since) {
                (Some(why), None) => {
                    down_since = Some(now());
                    event(ServerEventKind::Down, why, None);
                }
                (None, Some(since)) => {
                    down_since = None;
                    event(ServerEventKind::Up, String::new(), Some(now() - since));
                }
                _ => {}
            }
        }
        // Metrics: a counter that went down means the server restarted by itself.
        if let Some(s) = &p.scraper
            && let Ok(scrape) = s.scrape().await
        {
            let (went_down, relaunched) = {
                let mut st = lock(&state);
                if st.step.is_some() {
                    st.during.push(mapped_only(&scrape));
                }
                let last = st.last.replace(scrape.clone());
                let went_down = last
                    .as_ref()
                    .is_some_and(|l| velollm_core::measure::prom::step_metrics(l, &scrape, &[]).counter_reset);
                if went_down {
                    st.points.extend(last);
                    st.points.push(scrape);
                }
                // After a relaunch by velollm the counters start again at 0: that restart is already stamped.
                (went_down, st.events.last().is_some_and(|e| e.kind == ServerEventKind::Relaunched))
            };
            if went_down && !relaunched {
                event(ServerEventKind::Restarted, "the server's metrics counters went back down".into(), None);
            }
        }
    }
}

/// A scrape reduced to the samples the mapping reads, so that a long step's scrapes stay small.
fn mapped_only(s: &Scrape) -> Scrape {
    let mut out = s.clone();
    out.samples.retain(|x| velollm_core::measure::prom::MAPPING.iter().any(|m| x.name.starts_with(m.source)));
    out.help.clear();
    out
}
