//! The Server options of `bench` and `tune` turned into what the engine watches (`WatchOptions`).

use crate::args::{Dur, ServerArgs};
use crate::exit::InputError;
use anyhow::anyhow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use velollm_engine::launch::LaunchSpec;
use velollm_engine::observe::WatchOptions;

/// `--param key=value` pairs.
pub fn params(list: &[String]) -> Result<BTreeMap<String, String>, InputError> {
    let mut out = BTreeMap::new();
    for p in list {
        let Some((k, v)) = p.split_once('=') else {
            return Err(InputError(anyhow!("--param {p}: write KEY=VALUE (an empty value is allowed: KEY=)")));
        };
        if out.insert(k.trim().to_string(), v.to_string()).is_some() {
            return Err(InputError(anyhow!("--param {k} is given twice")));
        }
    }
    Ok(out)
}

/// A duration that must be longer than zero (`--launch-timeout`, `--sample-interval`).
pub fn positive(flag: &str, d: Dur) -> Result<Duration, InputError> {
    (!d.0.is_zero())
        .then_some(d.0)
        .ok_or_else(|| InputError(anyhow!("{flag} {d}: write a positive duration such as 500ms, 30s or 5m")))
}

/// The log file of a launched server: `--server-log`, else beside the result (`run.json` → `run.server.log`),
/// else in the temporary directory.
pub fn log_path(explicit: Option<&Path>, output: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    match output {
        Some(o) => o.with_extension("server.log"),
        None => std::env::temp_dir().join(format!("velollm-server-{}.log", std::process::id())),
    }
}

/// What to launch and watch for a run writing its result to `output`.
pub fn watch_options(args: &ServerArgs, output: Option<&Path>) -> Result<WatchOptions, InputError> {
    let launch = match &args.launch {
        Some(template) => {
            let params = params(&args.param)?;
            // Check the template now, before anything runs (port 0 stands for the free port).
            velollm_engine::launch::render(template, &params, 0).map_err(|e| InputError(anyhow!("--launch: {e}")))?;
            Some(LaunchSpec {
                template: template.clone(),
                params,
                port: None,
                log: log_path(args.server_log.as_deref(), output),
                ready_timeout: positive("--launch-timeout", args.launch_timeout)?,
            })
        }
        None => None,
    };
    Ok(WatchOptions {
        launch,
        restart_on_failure: args.restart_on_failure,
        cold_start: !args.no_cold_start,
        server_pid: args.server_pid,
        metrics_url: args.metrics_url.clone(),
        metrics: !args.no_metrics,
        interval: positive("--sample-interval", args.sample_interval)?,
    })
}
