//! The Markdown report (GitHub-flavoured): run metadata, summary table, ✅/❌ thresholds, errors, per-step
//! tables, analyses, and the charts as SVG image files written beside the `.md` file. [`render_blocks`] renders
//! any [`crate::document`] blocks the same way.

use crate::charts::{Chart, run_charts};
use crate::document::{Block, Table, build};
use crate::target::Target;
use std::fmt::Write;

/// A rendered Markdown report and the chart files it references.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkdownReport {
    /// The Markdown text.
    pub text: String,
    /// `(file name, SVG text)` of every chart the text references, to be written in the same folder as the
    /// Markdown file (`report.md` → `report-ttft-cdf.svg`).
    pub charts: Vec<(String, String)>,
}

/// Render the report of `targets`; chart files are named `{chart_stem}-{chart id}.svg` (pass the Markdown
/// file's name without its extension).
pub fn render_markdown(targets: &[Target<'_>], chart_stem: &str) -> MarkdownReport {
    let charts = run_charts(targets);
    let blocks = build(targets, &charts);
    render_blocks(&blocks, charts, chart_stem)
}

/// Markdown of `blocks`, with `charts` as files named `{chart_stem}-{chart id}.svg` (pass the Markdown file's
/// name without its extension): [`Block::Chart`] `i` shows `charts[i]` as an image linking to its file, and
/// every chart is returned in [`MarkdownReport::charts`] for the caller to write beside the Markdown file.
pub fn render_blocks(blocks: &[Block], charts: Vec<Chart>, chart_stem: &str) -> MarkdownReport {
    let files: Vec<String> = charts.iter().map(|c| format!("{chart_stem}-{}.svg", c.id)).collect();
    let mut text = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, t) => {
                let _ = writeln!(text, "{} {}\n", "#".repeat(usize::from((*level).clamp(1, 6))), escape(t));
            }
            Block::Text(t) => {
                let _ = writeln!(text, "{}\n", escape(t));
            }
            Block::Notice(t) => {
                let _ = writeln!(text, "> **{}**\n", escape(t));
            }
            Block::Facts(facts) => {
                for (k, v) in facts {
                    let _ = writeln!(text, "- **{}:** {}", escape(k), escape(v));
                }
                text.push('\n');
            }
            Block::Table(t) => table(&mut text, t),
            Block::List(items) => {
                for i in items {
                    let _ = writeln!(text, "- {}", escape(i));
                }
                text.push('\n');
            }
            Block::Chart(i) => {
                if let (Some(c), Some(file)) = (charts.get(*i), files.get(*i)) {
                    let _ = writeln!(text, "![{}]({})\n", escape(&c.title), link(file));
                }
            }
        }
    }
    let text = text.trim_end().to_string() + "\n";
    MarkdownReport { text, charts: files.into_iter().zip(charts.into_iter().map(|c| c.svg)).collect() }
}

fn table(out: &mut String, t: &Table) {
    let row = |cells: &[String]| {
        let cells: Vec<String> =
            cells.iter().map(|c| if c.is_empty() { " ".to_string() } else { format!(" {} ", escape(c)) }).collect();
        format!("|{}|", cells.join("|"))
    };
    let _ = writeln!(out, "{}", row(&t.head));
    let align: Vec<&str> = t.numeric.iter().map(|n| if *n { "---:" } else { "---" }).collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for r in &t.rows {
        let _ = writeln!(out, "{}", row(r));
    }
    out.push('\n');
}

/// Escape text so Markdown shows it literally (and never as HTML); line breaks become spaces.
pub fn escape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' | '`' | '*' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            // An underscore between two letters or digits never starts emphasis (`short_completion`).
            '_' => {
                let word = |j: Option<&char>| j.is_some_and(|c| c.is_alphanumeric());
                if i > 0 && word(chars.get(i - 1)) && word(chars.get(i + 1)) {
                    out.push('_');
                } else {
                    out.push_str("\\_");
                }
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A relative link target with anything but unreserved characters percent-encoded.
fn link(file: &str) -> String {
    let mut out = String::new();
    for b in file.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markdown_and_html() {
        assert_eq!(escape("short_completion"), "short_completion");
        assert_eq!(escape("_x_ *y* a|b <b>"), "\\_x\\_ \\*y\\* a\\|b &lt;b&gt;");
        assert_eq!(escape("line\nbreak"), "line break");
        assert_eq!(link("my report-ttft.svg"), "my%20report-ttft.svg");
    }

    #[test]
    fn a_chart_index_without_a_chart_shows_nothing() {
        let blocks = [Block::Heading(1, "t".into()), Block::Chart(3)];
        assert_eq!(render_blocks(&blocks, vec![], "r").text, "# t\n");
        assert!(!crate::html::page(&blocks, &[], "x").contains("<figure"));
    }
}
