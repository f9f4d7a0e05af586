//! The client's self-check and the run's trust verdict, as text (terminal and Markdown).

use crate::document::Table;
use crate::format::num;
use std::fmt::Write;
use velollm_core::judge::selfcheck::{SelfCheck, Trust};
use velollm_core::stats::Summary;

fn ms(s: Option<&Summary>, pick: fn(&Summary) -> f64) -> String {
    s.map_or("–".into(), |s| format!("{:.3}", pick(s)))
}

/// The self-check's table: one row per load level, then the ceiling.
pub fn render(check: &SelfCheck) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "self-check ({}): velollm's loopback server, {}-token prompts, {} tokens per response (one per chunk); \
         paced levels: first token after {} ms, then one every {} ms; ceiling: no delay",
        check.mode,
        check.prompt_tokens,
        check.tokens,
        num(check.ttft_ms),
        num(check.itl_ms)
    );
    let mut table = Table::new(
        &[
            "level",
            "requests",
            "req/s",
            "chunks/s",
            "CPU ms/req",
            "added/req p50",
            "p99",
            "added/chunk p50",
            "p99",
            "ITL error p99",
        ],
        0,
    );
    for l in &check.levels {
        let failed = if l.failed > 0 { format!(" ({} failed)", l.failed) } else { String::new() };
        table.rows.push(vec![
            format!("{} c{}", if l.ceiling { "ceiling" } else { "paced" }, l.concurrency),
            format!("{}{failed}", l.requests),
            num(l.request_rate),
            num(l.chunk_rate),
            l.cpu_ms_per_request.map_or("–".into(), |c| format!("{c:.3}")),
            ms(l.added_request_ms.as_ref(), |s| s.p50),
            ms(l.added_request_ms.as_ref(), |s| s.p99),
            ms(l.added_chunk_ms.as_ref(), |s| s.p50),
            ms(l.added_chunk_ms.as_ref(), |s| s.p99),
            ms(l.itl_error_ms.as_ref(), |s| s.p99),
        ]);
    }
    out.push_str(&table.terminal("  "));
    let _ = writeln!(
        out,
        "  in ms: added per request = measured TTFT − the server's own TTFT (the TTFT error); per chunk = arrival − \
         the server's write; ITL error = |measured gap − the server's gap|"
    );
    let _ = writeln!(
        out,
        "  ceiling: {} requests/s, {} chunks/s{} (the server shares the machine: a lower bound)",
        num(check.max_request_rate),
        num(check.max_chunk_rate),
        check.cpu_ms_per_request.map_or(String::new(), |c| format!("; client CPU {c:.3} ms per request")),
    );
    out
}

/// One line per step: the client's overhead against the step's latencies, and why a step is not trustworthy.
pub fn trust_lines(trust: &Trust) -> String {
    let mut out = String::new();
    for s in &trust.steps {
        let pct = |x: Option<f64>| x.map_or("–".into(), |x| format!("{:.1} %", x * 100.0));
        let verdict = if s.trustworthy { "negligible" } else { "NOT TRUSTWORTHY" };
        let _ = writeln!(
            out,
            "client overhead · {}: {} of TTFT p50, {} of ITL p50, {} of the client's ceiling — {verdict}",
            s.step,
            pct(s.ttft_share),
            pct(s.itl_share),
            pct(s.ceiling_share)
        );
        for r in &s.reasons {
            let _ = writeln!(out, "  ⚠ {r}");
        }
    }
    out
}
