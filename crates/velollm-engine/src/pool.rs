//! Connections: a worker's slot, reused while the server keeps the connection open; a step's shared HTTP/2
//! connection; WebSocket sessions; and what opening each one took.

use crate::request::http_request;
use crate::target::Target;
use crate::transport::{ConnectError, Connection, OpenOptions, Phases};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::{Instant, timeout_at};
use velollm_core::document::scenario::ConnectionMode;
use velollm_core::measure::record::{ConnectionInfo, ErrorClass, RequestError};

pub(crate) fn connect_error(e: &ConnectError) -> RequestError {
    RequestError::new(ErrorClass::Connect, e.to_string())
}

/// The connections of one step: its [`ConnectionMode`] and, for HTTP/2, the one connection every worker of
/// the step shares (a WebSocket session, like an HTTP/1.1 connection, belongs to one worker).
#[derive(Default)]
pub struct StepConnections {
    mode: ConnectionMode,
    shared: tokio::sync::Mutex<SharedH2>,
}

/// The step's HTTP/2 connection, once opened.
#[derive(Default)]
struct SharedH2 {
    conn: Option<Connection>,
    /// The server answered ALPN with `http/1.1`: every worker opens its own HTTP/1.1 connection instead.
    h1_only: bool,
}

impl StepConnections {
    /// The connections of a step in `mode`.
    pub fn new(mode: ConnectionMode) -> Arc<StepConnections> {
        Arc::new(StepConnections { mode, shared: Default::default() })
    }

    /// The step's mode.
    pub fn mode(&self) -> ConnectionMode {
        self.mode
    }

    /// A worker's slot in this step.
    pub fn slot(self: &Arc<Self>) -> Slot {
        Slot { conn: None, step: Some(self.clone()) }
    }

    fn open_options(&self) -> OpenOptions {
        OpenOptions { http2: self.mode == ConnectionMode::Http2, no_resume: self.mode == ConnectionMode::NewNoResume }
    }
}

/// A worker's connection slot: reused across requests while the server keeps it open (HTTP/1.1 keep-alive
/// by default; see [`StepConnections`] for the other modes).
#[derive(Default)]
pub struct Slot {
    conn: Option<Connection>,
    step: Option<Arc<StepConnections>>,
}

impl Slot {
    /// Get a usable connection, opening one if needed, and describe how it was obtained.
    pub(crate) async fn acquire(
        &mut self,
        target: &Target,
        deadline: Instant,
    ) -> Result<(&mut Connection, ConnectionInfo), RequestError> {
        if let Some(c) = self.conn.as_mut().filter(|c| c.is_usable()) {
            // A closed connection fails `ready` at once; an idle one becomes ready as soon as its connection
            // task has seen the end of the previous response, which can take a scheduler tick on a busy machine.
            if matches!(tokio::time::timeout(target.timeouts.connect, c.ready()).await, Ok(Ok(()))) {
                let info = reused_info(c);
                return Ok((self.conn.as_mut().expect("just checked"), info));
            }
        }
        self.conn = None;
        let connect_deadline = deadline.min(Instant::now() + target.timeouts.connect);
        let step = self.step.clone();
        let opts = step.as_ref().map(|s| s.open_options()).unwrap_or_default();
        if step.as_ref().is_some_and(|s| s.mode == ConnectionMode::WebSocket) {
            let (conn, info) = open_websocket(target, connect_deadline).await?;
            return Ok((self.conn.insert(conn), info));
        }
        if let Some(step) = step.filter(|_| opts.http2) {
            // One HTTP/2 connection for the whole step: the first worker opens it while the others wait.
            let Ok(mut shared) = timeout_at(connect_deadline, step.shared.lock()).await else {
                return Err(connect_timeout(target));
            };
            if !shared.h1_only {
                if let Some(c) = shared.conn.as_ref().filter(|c| c.is_usable()).and_then(Connection::share) {
                    let info = reused_info(&c);
                    return Ok((self.conn.insert(c), info));
                }
                let (conn, info) = open(target, connect_deadline, opts).await?;
                match conn.share() {
                    Some(handle) => shared.conn = Some(handle),
                    None => shared.h1_only = true,
                }
                return Ok((self.conn.insert(conn), info));
            }
        }
        let (conn, info) = open(target, connect_deadline, opts).await?;
        Ok((self.conn.insert(conn), info))
    }

    /// The slot's connection, once [`Slot::acquire`] opened or reused one.
    pub(crate) fn connection(&mut self) -> Option<&mut Connection> {
        self.conn.as_mut()
    }

    /// Drop the connection (after a failure that may leave it unusable).
    pub fn discard(&mut self) {
        self.conn = None;
    }
}

fn reused_info(c: &Connection) -> ConnectionInfo {
    ConnectionInfo { id: c.id, reused: true, protocol: Some(c.protocol()), ..Default::default() }
}

pub(crate) fn connect_timeout(target: &Target) -> RequestError {
    RequestError::new(
        ErrorClass::Timeout,
        format!(
            "connect timeout: no connection to {} within {:?} (--connect-timeout)",
            target.endpoint.display(),
            target.timeouts.connect
        ),
    )
}

/// Open a new connection for `target` before `deadline`.
async fn open(
    target: &Target,
    deadline: Instant,
    opts: OpenOptions,
) -> Result<(Connection, ConnectionInfo), RequestError> {
    let id = target.next_conn.fetch_add(1, Ordering::Relaxed);
    let opened = timeout_at(deadline, Connection::open_with(&target.endpoint, target.clock, id, opts)).await;
    connection_info(target, id, opened)
}

/// Open a WebSocket session for `target` before `deadline`, on its dialect's generation route.
async fn open_websocket(target: &Target, deadline: Instant) -> Result<(Connection, ConnectionInfo), RequestError> {
    let id = target.next_conn.fetch_add(1, Ordering::Relaxed);
    let upgrade = http_request(target, hyper::Method::GET, target.dialect.path(), None);
    let framing = target.dialect.framing();
    let opening = Connection::open_websocket(&target.endpoint, target.clock, id, upgrade, framing);
    connection_info(target, id, timeout_at(deadline, opening).await)
}

/// A connection just opened (or why not), with what its opening took.
fn connection_info(
    target: &Target,
    id: u64,
    opened: Result<Result<(Connection, Phases), ConnectError>, tokio::time::error::Elapsed>,
) -> Result<(Connection, ConnectionInfo), RequestError> {
    let (conn, phases) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(connect_error(&e)),
        Err(_) => return Err(connect_timeout(target)),
    };
    let info = ConnectionInfo {
        id,
        reused: false,
        dns_ns: Some(phases.dns_ns),
        connect_ns: Some(phases.connect_ns),
        tls_ns: phases.tls_ns,
        tls_resumed: phases.tls_resumed,
        upgrade_ns: phases.upgrade_ns,
        protocol: Some(phases.protocol),
    };
    Ok((conn, info))
}
