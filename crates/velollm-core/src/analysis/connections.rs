//! The `connections` analysis: what a persistent connection (HTTP/1.1 keep-alive, one shared HTTP/2
//! connection, a WebSocket session per worker) saves against a new connection for every request, and what TLS session resumption saves
//! against a full handshake — judged against seed 000's phase 5 criteria (network overhead reduced by more
//! than 30 %, TTFT improved by more than 20 %).
//!
//! Per step (successful measured requests): connections opened and reused, the share of resumed TLS
//! handshakes, the DNS / TCP / TLS split (p50 over the requests that opened a connection), network overhead
//! per request (p50 and mean, the WebSocket upgrade included; 0 on a reused connection), TTFT p50, and TTFT including the connection setup
//! (network overhead + TTFT: what the client waits for when it has no connection yet).
//!
//! Figures, each persistent mode against the `new` step:
//!
//! * `network_overhead_reduction` (`h2_…` for HTTP/2, `ws_…` for WebSocket) = (mean overhead new − mean overhead mode) ÷ mean
//!   overhead new — the mean, because a persistent connection's overhead is 0 on every request but the first;
//! * `ttft_improvement` (`h2_…`, `ws_…`) = (p50 new − p50 mode) ÷ p50 new of TTFT including the connection setup;
//! * `tls_resumption_saving_ms` / `tls_resumption_saving` = p50 TLS time of full handshakes (the
//!   `full_tls` step, else the full handshakes of the `new` step) − p50 of resumed ones (in the `new` step).
//!
//! A server that closes every connection after its response (llama-server does, after a stream) leaves
//! nothing for keep-alive to reuse: the analysis says so and claims no reduction for that step.

use super::{AnalysisResult, StepData, Table, TableRow, fig, mean, median};
use crate::measure::metrics::Sample;
use crate::measure::names::Unit;
use crate::measure::record::HttpProtocol;
use std::collections::BTreeSet;

/// Seed 000 phase 5: network overhead reduced by more than 30 %.
const OVERHEAD_TARGET: f64 = 30.0;
/// Seed 000 phase 5: TTFT improved by more than 20 %.
const TTFT_TARGET: f64 = 20.0;

/// What one step's requests say about their connections.
#[derive(Default)]
struct Conns {
    requests: usize,
    opened: usize,
    reused: usize,
    connections: BTreeSet<u64>,
    h2: usize,
    h1: usize,
    ws: usize,
    tls_full: Vec<f64>,
    tls_resumed: Vec<f64>,
    dns: Vec<f64>,
    tcp: Vec<f64>,
    tls: Vec<f64>,
    upgrade: Vec<f64>,
    overhead: Vec<f64>,
    ttft: Vec<f64>,
    ttft_with_connect: Vec<f64>,
}

const NS_PER_MS: f64 = 1e6;

impl Conns {
    fn of(samples: &[Sample]) -> Conns {
        let mut c = Conns::default();
        for x in samples.iter().filter(|x| x.ok) {
            c.requests += 1;
            let overhead = x.metrics.network_overhead_ms;
            c.overhead.extend(overhead);
            if let Some(t) = x.metrics.ttft_ms {
                c.ttft.push(t);
                c.ttft_with_connect.push(t + overhead.unwrap_or(0.0));
            }
            let Some(info) = &x.connection else { continue };
            c.connections.insert(info.id);
            match info.protocol {
                Some(HttpProtocol::H2) => c.h2 += 1,
                Some(HttpProtocol::Http1) => c.h1 += 1,
                Some(HttpProtocol::WebSocket) => c.ws += 1,
                None => {}
            }
            if info.reused {
                c.reused += 1;
                continue;
            }
            c.opened += 1;
            c.dns.extend(info.dns_ns.map(|v| v as f64 / NS_PER_MS));
            c.tcp.extend(info.connect_ns.map(|v| v as f64 / NS_PER_MS));
            c.upgrade.extend(info.upgrade_ns.map(|v| v as f64 / NS_PER_MS));
            if let Some(tls) = info.tls_ns.map(|v| v as f64 / NS_PER_MS) {
                c.tls.push(tls);
                match info.tls_resumed {
                    Some(true) => c.tls_resumed.push(tls),
                    Some(false) => c.tls_full.push(tls),
                    None => {}
                }
            }
        }
        c
    }

    /// True when every request opened its own connection although the step could reuse them.
    fn server_closed_every_connection(&self) -> bool {
        self.requests > 1 && self.reused == 0 && self.opened == self.requests
    }

    fn handshakes(&self) -> usize {
        self.tls_full.len() + self.tls_resumed.len()
    }

    fn row(&self, label: &str) -> TableRow {
        let share = (self.handshakes() > 0).then(|| self.tls_resumed.len() as f64 / self.handshakes() as f64 * 100.0);
        TableRow {
            label: label.to_string(),
            values: vec![
                Some(self.requests as f64),
                Some(self.opened as f64),
                Some(self.reused as f64),
                share,
                median(&self.dns),
                median(&self.tcp),
                median(&self.tls),
                median(&self.upgrade),
                median(&self.overhead),
                mean(&self.overhead),
                median(&self.ttft),
                median(&self.ttft_with_connect),
            ],
        }
    }
}

/// `(reference − value) ÷ reference × 100`, for a positive reference.
fn reduction(reference: Option<f64>, value: Option<f64>) -> Option<f64> {
    match (reference, value) {
        (Some(r), Some(v)) if r > 0.0 => Some((r - v) / r * 100.0),
        _ => None,
    }
}

fn mark(value: f64, target: f64) -> &'static str {
    if value > target { "✅" } else { "❌" }
}

/// The steps with a persistent connection, each compared with the reference, when the scenario has them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Persistent<'a> {
    /// HTTP/1.1 keep-alive.
    pub keep_alive: Option<&'a str>,
    /// One HTTP/2 connection per step.
    pub http2: Option<&'a str>,
    /// A WebSocket session per worker.
    pub websocket: Option<&'a str>,
}

/// The analysis: `new` opens a connection per request (the reference); `persistent` and `full_tls` name the
/// other steps, when the scenario has them.
pub(super) fn connections(
    steps: &[StepData<'_>],
    new: &str,
    persistent: Persistent<'_>,
    full_tls: Option<&str>,
) -> AnalysisResult {
    let Persistent { keep_alive, http2, websocket } = persistent;
    let find = |name: &str| steps.iter().find(|s| s.name == name);
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    let reference = find(new).map(|s| Conns::of(s.samples));
    let named = [(keep_alive, ""), (http2, "h2_"), (websocket, "ws_")];
    for name in [Some(new), keep_alive, full_tls, http2, websocket].into_iter().flatten() {
        match find(name) {
            Some(s) => rows.push(Conns::of(s.samples).row(name)),
            None => notes.push(format!("step '{name}' did not run: its figures are missing")),
        }
    }
    let Some(reference) = reference else {
        return result(figures, rows, notes, new);
    };
    if reference.requests == 0 {
        notes.push(format!("step '{new}' has no successful request: nothing to compare against"));
        return result(figures, rows, notes, new);
    }
    let ref_overhead = mean(&reference.overhead);
    let ref_ttft = median(&reference.ttft_with_connect);
    for (name, prefix) in named {
        let Some((name, s)) = name.and_then(|n| find(n).map(|s| (n, s))) else { continue };
        let c = Conns::of(s.samples);
        if c.requests == 0 {
            notes.push(format!("step '{name}' has no successful request"));
            continue;
        }
        if prefix == "h2_" {
            if c.h2 == 0 && c.h1 > 0 {
                notes.push(format!(
                    "step '{name}': the server did not offer HTTP/2 (ALPN chose http/1.1): the step ran over \
                     HTTP/1.1 connections, one per worker"
                ));
            } else if c.h2 > 0 {
                notes.push(format!(
                    "step '{name}': {} requests over HTTP/2 on {} connection{}",
                    c.h2,
                    c.connections.len(),
                    if c.connections.len() == 1 { "" } else { "s" }
                ));
            }
        }
        if c.server_closed_every_connection() {
            notes.push(format!(
                "the server closed every connection: step '{name}' opened {} connections for {} requests, 0 \
                 reused — a persistent connection cannot help against this server (llama-server closes the \
                 connection after each streamed response), so no reduction is claimed for '{name}'",
                c.opened, c.requests
            ));
            continue;
        }
        if prefix == "ws_" {
            notes.push(format!(
                "step '{name}': {} requests over {} WebSocket session{}",
                c.ws,
                c.connections.len(),
                if c.connections.len() == 1 { "" } else { "s" }
            ));
        }
        let label = match prefix {
            "" => "keep-alive",
            "h2_" => "HTTP/2",
            _ => "WebSocket",
        };
        if let Some(r) = reduction(ref_overhead, mean(&c.overhead)) {
            figures.push(fig(
                &format!("{prefix}network_overhead_reduction"),
                r,
                Unit::Percent,
                &format!("mean network overhead (DNS + TCP + TLS + upgrade), {label} vs a new connection per request"),
            ));
            notes.push(format!(
                "{label}: network overhead {r:.1} % lower than a new connection per request (mean {:.3} → {:.3} \
                 ms; seed: > {OVERHEAD_TARGET} % {})",
                ref_overhead.unwrap_or(0.0),
                mean(&c.overhead).unwrap_or(0.0),
                mark(r, OVERHEAD_TARGET)
            ));
        }
        if let Some(r) = reduction(ref_ttft, median(&c.ttft_with_connect)) {
            figures.push(fig(
                &format!("{prefix}ttft_improvement"),
                r,
                Unit::Percent,
                &format!("p50 TTFT including the connection setup, {label} vs a new connection per request"),
            ));
            notes.push(format!(
                "{label}: TTFT (connection setup included) {r:.1} % lower (p50 {:.1} → {:.1} ms; seed: > \
                 {TTFT_TARGET} % {})",
                ref_ttft.unwrap_or(0.0),
                median(&c.ttft_with_connect).unwrap_or(0.0),
                mark(r, TTFT_TARGET)
            ));
        }
    }
    tls(&reference, new, full_tls.and_then(|n| find(n).map(|s| (n, Conns::of(s.samples)))), &mut figures, &mut notes);
    result(figures, rows, notes, new)
}

/// TLS figures: the resumed share of the `new` step's handshakes and the saving of resumption.
fn tls(
    reference: &Conns,
    new: &str,
    full: Option<(&str, Conns)>,
    figures: &mut Vec<super::Figure>,
    notes: &mut Vec<String>,
) {
    if let Some((name, c)) = &full {
        if c.tls.is_empty() && c.requests > 0 {
            notes.push(format!("step '{name}': the target is plain http: there is no TLS handshake to measure"));
        } else if !c.tls_resumed.is_empty() {
            notes.push(format!(
                "step '{name}': {} of {} handshakes resumed although resumption was off",
                c.tls_resumed.len(),
                c.handshakes()
            ));
        }
    }
    if reference.handshakes() == 0 {
        return;
    }
    let share = reference.tls_resumed.len() as f64 / reference.handshakes() as f64 * 100.0;
    figures.push(fig(
        "tls_resumed_share",
        share,
        Unit::Percent,
        &format!("TLS handshakes of '{new}' that resumed an earlier session"),
    ));
    // Full handshakes: the step with resumption off when it ran, else the new step's own full handshakes.
    let (full_from, full_times) = match &full {
        Some((name, c)) if !c.tls_full.is_empty() => (*name, c.tls_full.as_slice()),
        _ => (new, reference.tls_full.as_slice()),
    };
    match (median(full_times), median(&reference.tls_resumed)) {
        (Some(f), Some(r)) => {
            figures.push(fig("tls_resumption_saving_ms", f - r, Unit::Ms, "p50 TLS handshake time, full − resumed"));
            if f > 0.0 {
                figures.push(fig(
                    "tls_resumption_saving",
                    (f - r) / f * 100.0,
                    Unit::Percent,
                    "TLS handshake time saved by session resumption",
                ));
            }
            notes.push(format!(
                "TLS: a full handshake took {f:.3} ms (p50, '{full_from}', {} handshakes), a resumed one {r:.3} ms \
                 ('{new}', {} handshakes)",
                full_times.len(),
                reference.tls_resumed.len()
            ));
        }
        (_, None) => notes
            .push(format!("TLS: no handshake of '{new}' resumed a session (the server may not support resumption)")),
        (None, Some(_)) => {}
    }
}

fn result(figures: Vec<super::Figure>, rows: Vec<TableRow>, notes: Vec<String>, new: &str) -> AnalysisResult {
    AnalysisResult {
        kind: "connections".into(),
        title: format!("connections: persistent vs a new connection per request ('{new}')"),
        figures,
        table: Some(Table {
            columns: [
                "step",
                "requests",
                "opened",
                "reused",
                "TLS resumed %",
                "DNS p50 ms",
                "TCP p50 ms",
                "TLS p50 ms",
                "WebSocket upgrade p50 ms",
                "network overhead p50 ms",
                "network overhead mean ms",
                "TTFT p50 ms",
                "TTFT + connection p50 ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::step::StepResult;
    use crate::measure::record::{Channel, Chunk, ConnectionInfo, RequestRecord};
    use std::collections::BTreeMap;

    const MS: u64 = 1_000_000;

    /// A successful request with TTFT `ttft` ms on connection `id` (new when `new`, with a TLS handshake of
    /// `tls` ms when given).
    fn sample(id: u64, new: bool, tls: Option<(u64, bool)>, ttft: u64, protocol: HttpProtocol) -> Sample {
        let upgrade = protocol == HttpProtocol::WebSocket && new;
        let connection = ConnectionInfo {
            upgrade_ns: upgrade.then_some(MS / 2),
            id,
            reused: !new,
            dns_ns: new.then_some(MS / 10),
            connect_ns: new.then_some(MS / 5),
            tls_ns: tls.filter(|_| new).map(|t| t.0 * MS),
            tls_resumed: tls.filter(|_| new).map(|t| t.1),
            protocol: Some(protocol),
        };
        Sample::of(&RequestRecord {
            scheduled: 0,
            sent: Some(MS),
            done: Some((ttft + 2) * MS),
            chunks: vec![Chunk { t: (ttft + 1) * MS, channel: Channel::Content, events: 1, tokens: None, bytes: 2 }],
            connection: Some(connection),
            finish_reason: Some("stop".into()),
            ..Default::default()
        })
    }

    fn step<'a>(name: &'a str, result: &'a StepResult, samples: &'a [Sample]) -> StepData<'a> {
        static TAGS: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
        StepData { name, tags: TAGS.get_or_init(BTreeMap::new), result, samples, aborted: &[] }
    }

    fn figure(r: &AnalysisResult, name: &str) -> Option<f64> {
        r.figures.iter().find(|f| f.name == name).map(|f| f.value)
    }

    fn empty_result() -> StepResult {
        crate::fixtures::step("x", &[])
    }

    #[test]
    fn keep_alive_and_http2_against_new_connections_over_https() {
        use HttpProtocol::*;
        // New: 4 connections, the first a full handshake (4 ms), the others resumed (1 ms); TTFT 10 ms.
        let new: Vec<Sample> =
            (0..4).map(|i| sample(i, true, Some(if i == 0 { (4, false) } else { (1, true) }), 10, Http1)).collect();
        // Keep-alive: one connection, then reused.
        let keep: Vec<Sample> = (0..4).map(|i| sample(10, i == 0, Some((4, false)), 10, Http1)).collect();
        // Full TLS every time: 4 ms.
        let full: Vec<Sample> = (0..4).map(|i| sample(20 + i, true, Some((4, false)), 10, Http1)).collect();
        let h2: Vec<Sample> = (0..4).map(|i| sample(30, i == 0, Some((4, false)), 10, H2)).collect();
        let r = empty_result();
        let steps = [step("new", &r, &new), step("keep", &r, &keep), step("full", &r, &full), step("h2", &r, &h2)];
        let persistent = Persistent { keep_alive: Some("keep"), http2: Some("h2"), websocket: None };
        let a = connections(&steps, "new", persistent, Some("full"));
        // Network overhead per request: new = 0.3 + 1.75 ms mean; keep-alive = (0.3 + 4) / 4.
        let new_mean = 0.3 + (4.0 + 3.0) / 4.0;
        let keep_mean = 4.3 / 4.0;
        let want = (new_mean - keep_mean) / new_mean * 100.0;
        assert!((figure(&a, "network_overhead_reduction").unwrap() - want).abs() < 1e-6, "{a:#?}");
        assert!((figure(&a, "h2_network_overhead_reduction").unwrap() - want).abs() < 1e-6, "{a:#?}");
        // TTFT with the connection: new p50 = 10 + 1.3 (resumed), keep-alive p50 = 10.
        let ttft = figure(&a, "ttft_improvement").unwrap();
        assert!((ttft - 1.3 / 11.3 * 100.0).abs() < 1e-6, "{ttft}");
        assert_eq!(figure(&a, "tls_resumed_share"), Some(75.0));
        assert_eq!(figure(&a, "tls_resumption_saving_ms"), Some(3.0));
        assert_eq!(figure(&a, "tls_resumption_saving"), Some(75.0));
        let table = a.table.as_ref().unwrap();
        assert_eq!(table.rows.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["new", "keep", "full", "h2"]);
        // keep: 4 requests, 1 opened, 3 reused, handshakes 0 % resumed.
        assert_eq!(&table.rows[1].values[..4], &[Some(4.0), Some(1.0), Some(3.0), Some(0.0)]);
        assert!(a.notes.iter().any(|n| n.contains("4 requests over HTTP/2 on 1 connection")), "{:?}", a.notes);
    }

    #[test]
    fn a_server_that_closes_every_connection_gets_no_claim() {
        use HttpProtocol::*;
        let new: Vec<Sample> = (0..3).map(|i| sample(i, true, None, 10, Http1)).collect();
        let keep: Vec<Sample> = (0..3).map(|i| sample(10 + i, true, None, 10, Http1)).collect();
        let r = empty_result();
        let steps = [step("new_connection", &r, &new), step("keep_alive", &r, &keep)];
        let persistent = Persistent { keep_alive: Some("keep_alive"), http2: Some("http2"), websocket: None };
        let a = connections(&steps, "new_connection", persistent, Some("full"));
        assert!(figure(&a, "network_overhead_reduction").is_none() && figure(&a, "ttft_improvement").is_none());
        assert!(
            a.notes.iter().any(|n| n.contains("the server closed every connection")
                && n.contains("opened 3 connections for 3 requests, 0 reused")),
            "{:?}",
            a.notes
        );
        assert!(a.notes.iter().any(|n| n.contains("step 'http2' did not run")), "{:?}", a.notes);
        // Plain http: no TLS figure.
        assert!(figure(&a, "tls_resumed_share").is_none());
    }

    #[test]
    fn websocket_sessions_count_their_upgrade_as_connection_setup() {
        use HttpProtocol::*;
        // Plain http: new = 0.3 ms per request; one WebSocket session = 0.3 + 0.5 (upgrade) ms once for 4.
        let new: Vec<Sample> = (0..4).map(|i| sample(i, true, None, 10, Http1)).collect();
        let ws: Vec<Sample> = (0..4).map(|i| sample(40, i == 0, None, 10, WebSocket)).collect();
        let r = empty_result();
        let steps = [step("new", &r, &new), step("ws", &r, &ws)];
        let persistent = Persistent { websocket: Some("ws"), ..Persistent::default() };
        let a = connections(&steps, "new", persistent, None);
        let want = (0.3 - 0.8 / 4.0) / 0.3 * 100.0;
        assert!((figure(&a, "ws_network_overhead_reduction").unwrap() - want).abs() < 1e-6, "{a:#?}");
        assert!(figure(&a, "ws_ttft_improvement").is_some(), "{a:#?}");
        assert!(a.notes.iter().any(|n| n.contains("4 requests over 1 WebSocket session")), "{:?}", a.notes);
        let row = &a.table.as_ref().unwrap().rows[1];
        assert_eq!((row.label.as_str(), row.values[7]), ("ws", Some(0.5)), "the upgrade p50 column");
    }

    #[test]
    fn missing_reference_step_is_a_note() {
        let r = empty_result();
        let persistent = Persistent { keep_alive: Some("keep"), ..Persistent::default() };
        let a = connections(&[step("keep", &r, &[])], "new", persistent, None);
        assert!(a.figures.is_empty());
        assert!(a.notes.iter().any(|n| n.contains("step 'new' did not run")), "{:?}", a.notes);
    }
}
