//! The HTML report: one self-contained file (inline CSS, inline SVG charts, no external fetches of any kind),
//! readable in light and dark mode, with the same content as the Markdown report. [`page`] renders any
//! [`crate::document`] blocks as such a page.
//!
//! A small inline script sets `data-charts` on `<body>` to the number of charts the browser rendered with a
//! non-zero size and collects `window.onerror` messages into `data-errors`, so a headless browser can check the
//! page.

use crate::charts::{Chart, run_charts};
use crate::document::{Block, Table, build};
use crate::svg::escape;
use crate::target::Target;
use std::fmt::Write;

const CSS: &str = r#"
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --card: #f6f8fa;
  --border: #d0d7de; --accent: #0072b2; --warn-bg: #fff8c5; --warn-border: #d4a72c; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --card: #161b22; --border: #30363d;
    --accent: #56b4e9; --warn-bg: #3b2e00; --warn-border: #9e6a03; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 64px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.6em; }
h2 { font-size: 1.35em; margin: 1.6em 0 0.5em; padding-bottom: 0.25em; border-bottom: 1px solid var(--border); }
h3 { font-size: 1.15em; margin: 1.3em 0 0.4em; }
h4, h5, h6 { font-size: 1em; margin: 1.1em 0 0.3em; }
p, ul, dl { margin: 0.4em 0 0.9em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.notice { background: var(--warn-bg); border: 1px solid var(--warn-border); border-radius: 6px; padding: 10px 14px;
  font-weight: 600; }
.table { overflow-x: auto; margin: 0.4em 0 1em; }
table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--border); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--card); font-weight: 600; vertical-align: bottom; }
td { white-space: nowrap; }
td.n, th.n { text-align: right; }
td.wrap { white-space: normal; min-width: 16em; }
figure { margin: 1em 0 1.6em; background: var(--card); border: 1px solid var(--border); border-radius: 8px;
  padding: 8px; max-width: 778px; }
figure svg { display: block; width: 100%; height: auto; }
footer { margin-top: 3em; color: var(--muted); font-size: 0.85em; }
"#;

/// Set before anything else: collects script errors until the body exists.
const HEAD_SCRIPT: &str = r#"window.__velollmErrors = [];
window.onerror = function (message) {
  window.__velollmErrors.push(String(message));
  if (document.body) { document.body.dataset.errors = window.__velollmErrors.join(" | "); }
};"#;

/// Counts the charts the browser rendered with a size and publishes errors seen so far.
const BODY_SCRIPT: &str = r#"(function () {
  var rendered = 0;
  document.querySelectorAll("svg.vl-chart").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width > 0 && box.height > 0) { rendered += 1; }
  });
  document.body.dataset.charts = String(rendered);
  if (window.__velollmErrors.length) { document.body.dataset.errors = window.__velollmErrors.join(" | "); }
})();"#;

/// Render the report of `targets` as one self-contained HTML document.
pub fn render_html(targets: &[Target<'_>]) -> String {
    let charts = run_charts(targets);
    let blocks = build(targets, &charts);
    let generated = targets
        .iter()
        .map(|t| format!("{} (velollm {})", t.run.meta.run_id, t.run.meta.tool_version))
        .collect::<Vec<_>>()
        .join(", ");
    page(&blocks, &charts, &format!("run {generated}"))
}

/// One self-contained page of `blocks`, with the report CSS and the page script (see the module
/// documentation); [`Block::Chart`] `i` inlines `charts[i]`. The title is the first level-1 heading's text, the
/// footer says the page was generated from `generated_from` (`run 2026…`, `the history database`).
pub fn page(blocks: &[Block], charts: &[Chart], generated_from: &str) -> String {
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(1, t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "velollm report".into());
    let mut body = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, t) => {
                let l = (*level).clamp(1, 6);
                let _ = writeln!(body, "<h{l}>{}</h{l}>", escape(t));
            }
            Block::Text(t) => {
                let _ = writeln!(body, "<p>{}</p>", escape(t));
            }
            Block::Notice(t) => {
                let _ = writeln!(body, r#"<p class="notice" role="alert">{}</p>"#, escape(t));
            }
            Block::Facts(facts) => {
                body.push_str("<dl class=\"facts\">\n");
                for (k, v) in facts {
                    let _ = writeln!(body, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
                }
                body.push_str("</dl>\n");
            }
            Block::Table(t) => table(&mut body, t),
            Block::List(items) => {
                body.push_str("<ul>\n");
                for i in items {
                    let _ = writeln!(body, "<li>{}</li>", escape(i));
                }
                body.push_str("</ul>\n");
            }
            Block::Chart(i) => {
                if let Some(c) = charts.get(*i) {
                    let _ = write!(body, "<figure id=\"chart-{}\">\n{}</figure>\n", escape(&c.id), c.svg);
                }
            }
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n<script>\n{HEAD_SCRIPT}\n</script>\n</head>\n<body>\n<main>\n{body}\
         <footer>Generated by velollm from {}. This file is self-contained: it loads nothing from the \
         network.</footer>\n</main>\n<script>\n{BODY_SCRIPT}\n</script>\n</body>\n</html>\n",
        escape(&title),
        escape(generated_from)
    )
}

fn table(out: &mut String, t: &Table) {
    out.push_str("<div class=\"table\"><table>\n<thead><tr>");
    let class = |i: usize| if t.numeric.get(i).copied().unwrap_or(false) { " class=\"n\"" } else { "" };
    for (i, h) in t.head.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, cell) in r.iter().enumerate() {
            // Long texts (messages, meanings) wrap; short cells and numbers stay on one line.
            let class = if cell.chars().count() > 40 { " class=\"wrap\"" } else { class(i) };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
}
