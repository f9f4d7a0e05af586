//! Launching the server under test: a templated command started in its own process group, its output kept
//! in a log file, readiness probed, and a clean stop (SIGTERM to the group, then SIGKILL) — also when the
//! run fails or is interrupted.
//!
//! The command line is a template: `{port}` becomes a free local port, every other `{key}` a value given
//! by the caller (`--param key=value`, or a `tune` grid). `{{` and `}}` stand for literal braces. The filled
//! command runs under `sh -c 'exec …'`, so quoting, environment assignments and empty values (a grid value
//! that drops a flag) behave as in a shell.

use crate::exec::get;
use crate::target::Target;
use crate::transport::Endpoint;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Why a server could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The template is malformed or a placeholder has no value.
    #[error("{0}")]
    Template(String),
    /// The log file or the process could not be created.
    #[error("{0}")]
    Io(String),
    /// The server exited before it was ready.
    #[error("the server exited before it was ready ({status}); last lines of {log}:\n{tail}")]
    Exited {
        /// How it exited.
        status: String,
        /// The log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
    /// The user interrupted the launch (Ctrl-C) before the server was ready.
    #[error("interrupted while the server was starting; it was stopped")]
    Interrupted,
    /// The server did not become ready in time.
    #[error(
        "the server was not ready after {waited:?} ({last}); raise --launch-timeout if it loads slowly; last lines of {log}:\n{tail}"
    )]
    NotReady {
        /// How long velollm waited.
        waited: Duration,
        /// The last readiness answer seen.
        last: String,
        /// The log file.
        log: String,
        /// The log's last lines.
        tail: String,
    },
}

/// What to launch and how to wait for it.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The command template.
    pub template: String,
    /// Values of the template's placeholders other than `{port}`.
    pub params: BTreeMap<String, String>,
    /// The port to use; `None` picks a free one.
    pub port: Option<u16>,
    /// Where the server's stdout and stderr go (appended).
    pub log: PathBuf,
    /// How long to wait for readiness.
    pub ready_timeout: Duration,
}

/// The placeholders of a template, in order of first appearance.
pub fn placeholders(template: &str) -> Result<Vec<String>, LaunchError> {
    let mut keys = Vec::new();
    fill(template, &mut |k| {
        if !keys.iter().any(|x| x == k) {
            keys.push(k.to_string());
        }
        Some(String::new())
    })?;
    Ok(keys)
}

/// Fill a template: `{port}` with `port`, `{key}` with `params[key]`.
pub fn render(template: &str, params: &BTreeMap<String, String>, port: u16) -> Result<String, LaunchError> {
    let mut missing = Vec::new();
    let out = fill(template, &mut |k| {
        let v = if k == "port" { Some(port.to_string()) } else { params.get(k).cloned() };
        if v.is_none() {
            missing.push(k.to_string());
        }
        v
    })?;
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|k| format!("{{{k}}}")).collect();
        let hint: Vec<String> = missing.iter().map(|k| format!("--param {k}=VALUE")).collect();
        return Err(LaunchError::Template(format!(
            "the launch command uses {} but no value was given: add {}",
            list.join(", "),
            hint.join(" ")
        )));
    }
    if let Some(unused) = params.keys().find(|k| !template.contains(&format!("{{{k}}}"))) {
        return Err(LaunchError::Template(format!(
            "'{unused}' is given a value but the launch command has no {{{unused}}} placeholder"
        )));
    }
    Ok(out)
}

fn fill(template: &str, value: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, LaunchError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.starts_with(c as char) {
            out.push(c as char);
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(LaunchError::Template(format!(
                "unmatched '}}' in the launch command '{template}' (write '}}}}' for a literal brace)"
            )));
        }
        let Some(end) = after.find('}') else {
            return Err(LaunchError::Template(format!(
                "unclosed '{{' in the launch command '{template}' (write '{{{{' for a literal brace)"
            )));
        };
        let key = &after[..end];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(LaunchError::Template(format!(
                "'{{{key}}}' in the launch command is not a placeholder name (letters, digits, '_' and '-')"
            )));
        }
        out.push_str(&value(key).unwrap_or_default());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The routes that say a server is ready, in the order they are tried: llama-server's and vLLM's health,
/// any OpenAI-compatible server's model list, Ollama's version.
pub const READY_ROUTES: [&str; 3] = ["/health", "/v1/models", "/api/version"];

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Process groups velollm started and has not stopped yet, killed by [`kill_all`] on a forced exit.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn register(pgid: i32, add: bool) {
    if let Ok(mut g) = GROUPS.lock() {
        g.retain(|&p| p != pgid);
        if add {
            g.push(pgid);
        }
    }
}

/// Kill every launched server at once (SIGKILL to each group): for a forced exit (a second Ctrl-C).
pub fn kill_all() {
    let groups = GROUPS.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        signal_group(pgid, Sig::Kill);
    }
}

#[derive(Clone, Copy)]
enum Sig {
    Term,
    Kill,
}

#[cfg(unix)]
fn signal_group(pgid: i32, sig: Sig) {
    use nix::sys::signal::{Signal, killpg};
    let s = match sig {
        Sig::Term => Signal::SIGTERM,
        Sig::Kill => Signal::SIGKILL,
    };
    let _ = killpg(nix::unistd::Pid::from_raw(pgid), s);
}

#[cfg(not(unix))]
fn signal_group(_pgid: i32, _sig: Sig) {}

/// How readiness was established.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Spawn → the port accepted a connection.
    pub listening_after: Option<Duration>,
    /// Spawn → the readiness route answered 200.
    pub ready_after: Duration,
    /// The route that said ready (`/health`, `/v1/models`, `/api/version`).
    pub route: String,
}

/// A launched server. Dropping it kills its process group; [`Server::stop`] stops it gracefully.
pub struct Server {
    child: Child,
    pgid: i32,
    /// The filled command line.
    pub command: String,
    /// The port it listens on.
    pub port: u16,
    /// Its base URL.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    /// When the process was spawned.
    pub spawned: Instant,
    /// Wall-clock spawn time (RFC 3339).
    pub spawned_at: String,
    /// How it became ready.
    pub readiness: Readiness,
    stopped: bool,
}

/// How a server was stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct StopReport {
    /// Exit status, as text.
    pub status: String,
    /// Whether SIGTERM was sent (false when the server had already exited).
    pub terminated: bool,
    /// Whether SIGKILL was needed after the grace period.
    pub killed: bool,
    /// Time from SIGTERM to exit.
    pub took: Duration,
}

/// The last `lines` lines of a log file (at most 64 KiB read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return "(no log)".into() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.trim().is_empty() { "(the log is empty)".into() } else { tail }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string());
            return format!("killed by signal {}", name.unwrap_or_else(|_| sig.to_string()));
        }
    }
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => status.to_string(),
    }
}

impl Server {
    /// What the result records of this launch (before any restart or stop).
    pub fn launch_report(&self, template: &str) -> velollm_core::server::launch::LaunchReport {
        velollm_core::server::launch::LaunchReport {
            template: template.to_string(),
            command: self.command.clone(),
            port: self.port,
            log: self.log.display().to_string(),
            ready_route: self.readiness.route.clone(),
            spawned_at: self.spawned_at.clone(),
            restarts: 0,
            stop: None,
        }
    }

    /// Fill the template, start the command and wait until it is ready. On any failure the process group
    /// is killed before returning.
    pub async fn launch(spec: &LaunchSpec) -> Result<Server, LaunchError> {
        let mut server = Server::start(spec)?;
        server.wait_ready(spec.ready_timeout).await?;
        Ok(server)
    }

    /// Fill the template and start the command, without waiting: call [`Server::wait_ready`] next.
    pub fn start(spec: &LaunchSpec) -> Result<Server, LaunchError> {
        let port = match spec.port {
            Some(p) => p,
            None => free_port().map_err(|e| LaunchError::Io(format!("cannot find a free port: {e}")))?,
        };
        let command = render(&spec.template, &spec.params, port)?;
        Server::spawn(&command, port, &spec.log)
    }

    /// Start the same command again on the same port (after a death), and wait until it is ready.
    pub async fn relaunch(&self, ready_timeout: Duration) -> Result<Server, LaunchError> {
        let mut server = Server::spawn(&self.command, self.port, &self.log)?;
        server.wait_ready(ready_timeout).await?;
        Ok(server)
    }

    fn spawn(command: &str, port: u16, log: &Path) -> Result<Server, LaunchError> {
        let io_err = |what: &str, e: std::io::Error| LaunchError::Io(format!("{what} '{}': {e}", log.display()));
        if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create the directory of the server log", e))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| io_err("cannot open the server log", e))?;
        let err = out.try_clone().map_err(|e| io_err("cannot open the server log", e))?;
        let spawned_at = jiff::Timestamp::now().to_string();
        {
            use std::io::Write;
            let mut header = &out;
            let shown = crate::secrets::redact_secrets(command);
            let _ = writeln!(header, "# velollm: {spawned_at}: starting: {shown}");
        }
        let spawned = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("exec {command}"));
        cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| {
            LaunchError::Io(format!("cannot start `sh -c {}`: {e}", crate::secrets::redact_secrets(command)))
        })?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if pgid > 0 {
            register(pgid, true);
        }
        Ok(Server {
            child,
            pgid,
            command: command.to_string(),
            port,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
            spawned,
            spawned_at,
            readiness: Readiness { listening_after: None, ready_after: Duration::ZERO, route: String::new() },
            stopped: false,
        })
    }

    /// The root process id (the process group id).
    pub fn pid(&self) -> u32 {
        self.pgid.max(0) as u32
    }

    /// The exit status if the server has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            Ok(None) => None,
            Err(e) => Some(format!("unknown ({e})")),
        }
    }

    /// Wait until the server exits; its exit status as text.
    pub async fn wait_exit(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// The last lines of the server's log.
    pub fn tail(&self) -> String {
        log_tail(&self.log, 20)
    }

    /// Poll the readiness routes until one answers 200 (recorded in [`Server::readiness`]); the process
    /// group is killed when the server exits first or `timeout` (counted from the spawn) passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        self.readiness = self.poll_ready(timeout).await?;
        Ok(())
    }

    /// [`Server::wait_ready`], given up (and the group killed) as soon as `cancel` turns true.
    pub async fn wait_ready_or_cancel(
        &mut self,
        timeout: Duration,
        cancel: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), LaunchError> {
        let mut cancel = cancel.clone();
        let readiness = tokio::select! {
            r = self.poll_ready(timeout) => r?,
            // The value read is dropped at once: it borrows the channel, is not `Send`, and this future may move
            // between workers.
            _ = cancel.wait_for(|c| *c).map(drop) => {
                self.kill_now().await;
                return Err(LaunchError::Interrupted);
            }
        };
        self.readiness = readiness;
        Ok(())
    }

    async fn poll_ready(&mut self, timeout: Duration) -> Result<Readiness, LaunchError> {
        let endpoint = Endpoint::parse(&self.url).map_err(|e| LaunchError::Io(e.to_string()))?;
        let target = Target::control(endpoint);
        let deadline = self.spawned + timeout;
        let mut listening_after = None;
        let mut last = "the port never accepted a connection".to_string();
        loop {
            if let Some(status) = self.exited() {
                self.stopped = true;
                register(self.pgid, false);
                return Err(LaunchError::Exited { status, log: self.log.display().to_string(), tail: self.tail() });
            }
            for route in READY_ROUTES {
                // A probe never outlives the deadline (a wedged server accepts and never answers).
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
                let answer = match tokio::time::timeout(left, get(&target, route)).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        last = format!("{route}: no answer");
                        break;
                    }
                };
                match answer {
                    Ok((200, _)) => {
                        return Ok(Readiness {
                            listening_after: listening_after.or(Some(self.spawned.elapsed())),
                            ready_after: self.spawned.elapsed(),
                            route: route.to_string(),
                        });
                    }
                    Ok((status, body)) => {
                        listening_after.get_or_insert_with(|| self.spawned.elapsed());
                        let body = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
                        last = format!("{route} answered {status} {body}");
                        // 503 = still loading: keep polling this route, the others say nothing more.
                        if status == 503 {
                            break;
                        }
                    }
                    Err(e) => {
                        last = format!("{route}: {}", e.message);
                        break;
                    }
                }
            }
            if Instant::now() >= deadline {
                let tail = self.tail();
                self.kill_now().await;
                return Err(LaunchError::NotReady { waited: timeout, last, log: self.log.display().to_string(), tail });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn kill_now(&mut self) {
        signal_group(self.pgid, Sig::Kill);
        let _ = self.child.wait().await;
        self.stopped = true;
        register(self.pgid, false);
    }

    /// Stop the server: SIGTERM to its process group, up to `grace` to exit, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) -> StopReport {
        let start = Instant::now();
        if let Some(status) = self.exited() {
            self.stopped = true;
            register(self.pgid, false);
            return StopReport { status, terminated: false, killed: false, took: Duration::ZERO };
        }
        signal_group(self.pgid, Sig::Term);
        let (status, killed) = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(s)) => (describe(s), false),
            Ok(Err(e)) => (format!("unknown ({e})"), false),
            Err(_) => {
                signal_group(self.pgid, Sig::Kill);
                let s = self.child.wait().await.map(describe).unwrap_or_else(|e| format!("unknown ({e})"));
                (s, true)
            }
        };
        // Children that outlived the leader (workers) go with the group.
        signal_group(self.pgid, Sig::Kill);
        self.stopped = true;
        register(self.pgid, false);
        StopReport { status, terminated: true, killed, took: start.elapsed() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped && self.pgid > 0 {
            signal_group(self.pgid, Sig::Kill);
            register(self.pgid, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn templates_fill_port_and_params() {
        let t = "srv --port {port} -c {n_ctx} {cache} --json '{{\"a\":1}}'";
        assert_eq!(placeholders(t).unwrap(), ["port", "n_ctx", "cache"]);
        let out = render(t, &params(&[("n_ctx", "2048"), ("cache", "")]), 9000).unwrap();
        assert_eq!(out, "srv --port 9000 -c 2048  --json '{\"a\":1}'");
    }

    #[test]
    fn template_errors_name_the_fix() {
        let e = render("srv -c {n_ctx}", &params(&[]), 1).unwrap_err().to_string();
        assert!(e.contains("--param n_ctx=VALUE"), "{e}");
        let e = render("srv", &params(&[("x", "1")]), 1).unwrap_err().to_string();
        assert!(e.contains("no {x} placeholder"), "{e}");
        assert!(render("srv {a", &params(&[]), 1).unwrap_err().to_string().contains("unclosed"));
        assert!(render("srv a}", &params(&[]), 1).unwrap_err().to_string().contains("unmatched"));
        assert!(render("srv {a b}", &params(&[]), 1).unwrap_err().to_string().contains("not a placeholder"));
    }

    #[test]
    fn free_ports_are_usable() {
        let p = free_port().unwrap();
        assert!(p > 0);
        std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_server_that_exits_early_fails_with_its_log() {
        let dir = tempdir();
        let spec = LaunchSpec {
            template: "sh -c 'echo loading model; echo bad flag >&2; exit 3' --port {port}".into(),
            params: BTreeMap::new(),
            port: None,
            log: dir.join("server.log"),
            ready_timeout: Duration::from_secs(10),
        };
        let e = Server::launch(&spec).await.err().expect("fails");
        let msg = e.to_string();
        assert!(msg.contains("exit code 3") && msg.contains("bad flag") && msg.contains("loading model"), "{msg}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_server_that_never_listens_times_out_and_is_killed() {
        let dir = tempdir();
        let pidfile = dir.join("pid");
        let spec = LaunchSpec {
            template: format!("sh -c 'echo $$ > {}; sleep 30 & wait' # {{port}}", pidfile.display()),
            params: BTreeMap::new(),
            port: None,
            log: dir.join("server.log"),
            ready_timeout: Duration::from_millis(600),
        };
        let msg = Server::launch(&spec).await.err().expect("times out").to_string();
        assert!(msg.contains("not ready after") && msg.contains("--launch-timeout"), "{msg}");
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || !alive(&pid), "the server was left running");
    }

    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.split_whitespace().nth(2).is_none_or(|st| st != "Z"))
            .unwrap_or(false)
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("velollm-launch-{}-{}", std::process::id(), free_port().unwrap()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
