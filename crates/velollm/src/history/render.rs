//! What `velollm history` shows: the run list as an aligned table, and a trend as a terminal summary, JSON, a
//! self-contained HTML page or Markdown with its chart as an SVG file.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Table};
use std::fmt::Write;
use std::path::Path;
use velollm_core::names::Unit;
use velollm_history::{Direction, Filter, Prices, RebuildReport, Roi, RoiOutcome, RunRow, Series, Trend, TrendPoint};
use velollm_report::svg::{self, Axis, Style, XyChart, XySeries};

/// A value with a precision suited to its size.
fn num(v: f64) -> String {
    svg::num(v)
}

/// The start of a run in local time, `2026-01-31 12:00`; the recorded text when it does not parse.
fn date(started_at: &str) -> String {
    match started_at.parse::<jiff::Timestamp>() {
        Ok(t) => t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => started_at.to_string(),
    }
}

/// The distinctive part of a run id: the random suffix of `20260131T120000Z-1a2b3c4d`, else the id.
fn short_id(id: &str) -> &str {
    match id.rsplit_once('-') {
        Some((_, tail)) if tail.len() == 8 && tail.chars().all(|c| c.is_ascii_hexdigit()) => tail,
        _ => id,
    }
}

/// A target URL without its scheme.
fn host(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/')
}

/// Render a table in the house style: no borders, numbers right-aligned, lines indented by `indent`.
fn render_table(header: &[&str], rows: Vec<Vec<String>>, numeric: &[usize], indent: &str) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    table.set_header(header.to_vec());
    for r in rows {
        table.add_row(r.into_iter().map(Cell::new));
    }
    for &i in numeric {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = String::new();
    for line in table.to_string().lines() {
        // comfy-table pads every cell with one space; drop the first column's left padding.
        let _ = writeln!(out, "{indent}{}", line.strip_prefix(' ').unwrap_or(line).trim_end());
    }
    out
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), num)
}

/// The run list, newest first.
pub fn runs_table(runs: &[RunRow]) -> String {
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                date(&r.started_at),
                short_id(&r.run_id).to_string(),
                r.scenario.clone(),
                r.model.clone(),
                host(&r.target_url).to_string(),
                format!("{:?}", r.status).to_lowercase(),
                r.requests.to_string(),
                r.success_rate().map_or_else(|| "–".into(), |s| format!("{:.1}", s * 100.0)),
                opt(r.ttft_p50_ms),
                opt(r.ttft_p95_ms),
                opt(r.e2e_p50_ms),
            ]
        })
        .collect();
    let header = [
        "started",
        "run",
        "scenario",
        "model",
        "target",
        "status",
        "requests",
        "ok %",
        "TTFT p50 (ms)",
        "TTFT p95 (ms)",
        "E2E p50 (ms)",
    ];
    let mut out = render_table(&header, rows, &[6, 7, 8, 9, 10], "");
    if runs.iter().any(|r| r.steps > 1) {
        out.push_str("(latencies of multi-step runs are over the requests of every step)\n");
    }
    out
}

/// The outcome of `--rebuild`, for stderr.
pub fn rebuild_summary(r: &RebuildReport, dir: &Path, db: &Path) -> String {
    let mut out = format!(
        "velollm: indexed {} result(s) from {} into {} ({} .json file(s) found",
        r.indexed,
        dir.display(),
        db.display(),
        r.found
    );
    out.push_str(&match r.skipped.len() {
        0 => ")\n".to_string(),
        n => format!(", {n} skipped)\n"),
    });
    const SHOWN: usize = 10;
    for s in r.skipped.iter().take(SHOWN) {
        let _ = writeln!(out, "velollm: note: skipped {}: {}", s.path.display(), s.reason);
    }
    if r.skipped.len() > SHOWN {
        let _ = writeln!(out, "velollm: note: … and {} more skipped", r.skipped.len() - SHOWN);
    }
    out
}

/// A trend with its series summaries and ROI, ready to render in every format.
pub struct TrendReport<'a> {
    trend: &'a Trend,
    series: Vec<Series<'a>>,
    rois: Vec<Option<Roi>>,
    prices: Option<&'a Prices>,
    window: String,
}

impl<'a> TrendReport<'a> {
    /// Summaries and ROI of every series of `trend`; `filter` is described in the heading.
    pub fn new(trend: &'a Trend, prices: Option<&'a Prices>, filter: &Filter) -> TrendReport<'a> {
        let series = trend.series();
        let rois = series.iter().map(|s| s.roi(&trend.metric, prices)).collect();
        let mut window = Vec::new();
        if let Some(t) = filter.since {
            window.push(format!("since {}", date(&t.to_string())));
        }
        for (k, v) in [("target", &filter.target), ("model", &filter.model), ("scenario", &filter.scenario)] {
            if let Some(v) = v {
                window.push(format!("{k} {v}"));
            }
        }
        if let Some(s) = filter.status {
            window.push(format!("status {s:?}").to_lowercase());
        }
        if let Some(n) = filter.limit {
            window.push(format!("newest {n} runs"));
        }
        TrendReport { trend, series, rois, prices, window: window.join(" · ") }
    }

    fn unit(&self) -> Unit {
        self.trend.metric.unit
    }

    /// The metric with its unit, for headings.
    fn label(&self) -> String {
        let name = self.trend.metric.name();
        match self.unit() {
            Unit::Ms => format!("{name} (ms)"),
            Unit::Fraction | Unit::Percent => format!("{name} (%)"),
            Unit::Plain => name,
        }
    }

    /// A value in the unit of the heading (fractions as percentages).
    fn value(&self, v: f64) -> String {
        match self.unit() {
            Unit::Fraction => format!("{:.1}", v * 100.0),
            Unit::Percent => format!("{v:.1}"),
            _ => num(v),
        }
    }

    /// A value with its unit.
    fn value_unit(&self, v: f64) -> String {
        match self.unit() {
            Unit::Ms => format!("{} ms", num(v)),
            Unit::Fraction | Unit::Percent => format!("{}%", self.value(v)),
            Unit::Plain => num(v),
        }
    }

    fn runs(&self) -> usize {
        let mut ids: Vec<&str> = self.trend.points.iter().map(|p| p.run_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// `ttft.p95 (ms) · 3 runs · 2026-01-01 12:00 → 2026-01-30 09:12 · since …`.
    fn heading(&self) -> String {
        let p = &self.trend.points;
        let mut h = format!("{} · {} run(s)", self.label(), self.runs());
        if let (Some(a), Some(b)) = (p.first(), p.last()) {
            let _ = write!(h, " · {} → {}", date(&a.started_at), date(&b.started_at));
        }
        if !self.window.is_empty() {
            let _ = write!(h, " · {}", self.window);
        }
        h
    }

    fn series_title(s: &Series<'_>) -> String {
        format!("step {} · scenario {} · target {}", s.step, s.scenario, host(s.target_url))
    }

    /// The label and text of a series' change: `first → last`, `123.4 ms → 98.7 ms (-20.0%, better) over 3 runs`.
    fn change(&self, s: &Series<'_>) -> (&'static str, String) {
        let (a, b) = (s.first().value, s.last().value);
        if s.points.len() == 1 {
            return ("one run so far", format!("{} (nothing to compare yet)", self.value_unit(a)));
        }
        let pct = s.change_pct().map(|p| format!("{p:+.1}%"));
        let dir = match s.direction(&self.trend.metric) {
            Direction::Better => Some("better"),
            Direction::Worse => Some("worse"),
            Direction::Neutral => None,
        };
        let detail: Vec<String> = pct.into_iter().chain(dir.map(String::from)).collect();
        let detail = if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) };
        (
            "first → last",
            format!("{} → {}{detail} over {} runs", self.value_unit(a), self.value_unit(b), s.points.len()),
        )
    }

    /// The ROI line of a series, when the metric has one.
    fn roi_line(&self, roi: &Roi) -> String {
        let mut line = format!("{} → {}: {roi}", short_id(&roi.earlier_run), short_id(&roi.later_run));
        if matches!(roi.outcome, RoiOutcome::NoCostData { .. }) && self.prices.is_none() {
            line.push_str(" (give --price-in and --price-out, USD per million tokens, to price the measured tokens)");
        }
        line
    }

    fn point_rows(&self, s: &Series<'_>) -> Vec<Vec<String>> {
        s.points
            .iter()
            .map(|p: &&TrendPoint| {
                vec![
                    date(&p.started_at),
                    short_id(&p.run_id).to_string(),
                    p.model.clone(),
                    format!("{:?}", p.status).to_lowercase(),
                    self.value(p.value),
                ]
            })
            .collect()
    }

    fn point_header(&self) -> [String; 5] {
        ["started".into(), "run".into(), "model".into(), "status".into(), self.label()]
    }

    /// The terminal rendering: per series, its points, the first → last change and the ROI.
    pub fn terminal(&self) -> String {
        let mut out = format!("{}\n", self.heading());
        let header = self.point_header();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        for (s, roi) in self.series.iter().zip(&self.rois) {
            let _ = writeln!(out, "\n{}", Self::series_title(s));
            out.push_str(&render_table(&header, self.point_rows(s), &[4], "  "));
            let (label, change) = self.change(s);
            let _ = writeln!(out, "  {label}: {change}");
            if let Some(roi) = roi {
                let _ = writeln!(out, "  ROI {}", self.roi_line(roi));
            }
        }
        out
    }

    /// The machine-readable rendering.
    pub fn json(&self) -> serde_json::Value {
        let series: Vec<serde_json::Value> = self
            .series
            .iter()
            .zip(&self.rois)
            .map(|(s, roi)| {
                serde_json::json!({
                    "target_url": s.target_url,
                    "scenario": s.scenario,
                    "step": s.step,
                    "runs": s.points.len(),
                    "first": s.first().value,
                    "last": s.last().value,
                    "change_pct": s.change_pct(),
                    "direction": s.direction(&self.trend.metric),
                    "roi": roi,
                })
            })
            .collect();
        serde_json::json!({
            "metric": self.trend.metric.name(),
            "unit": self.unit(),
            "better": self.trend.metric.better,
            "prices": self.prices,
            "points": self.trend.points,
            "series": series,
        })
    }

    /// Legend names that keep only what tells the series apart (step, scenario, target).
    fn legend_names(&self) -> Vec<String> {
        let varies = |f: &dyn Fn(&Series<'a>) -> &'a str| self.series.iter().any(|s| f(s) != f(&self.series[0]));
        let (step, scenario, target) = (varies(&|s| s.step), varies(&|s| s.scenario), varies(&|s| s.target_url));
        self.series
            .iter()
            .map(|s| {
                let mut parts = Vec::new();
                if step || !(scenario || target) {
                    parts.push(s.step.to_string());
                }
                if scenario {
                    parts.push(s.scenario.to_string());
                }
                if target {
                    parts.push(host(s.target_url).to_string());
                }
                parts.join(" · ")
            })
            .collect()
    }

    /// The trend chart: one line per series, x in days (hours, minutes for short spans) since the first run.
    pub fn chart(&self) -> String {
        let ms = |p: &TrendPoint| p.started_at.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond());
        let t0 = self.trend.points.iter().filter_map(ms).min().unwrap_or(0);
        let span = self.trend.points.iter().filter_map(ms).max().unwrap_or(0) - t0;
        let (unit_ms, unit) = match span {
            s if s >= 2 * 86_400_000 => (86_400_000.0, "days"),
            s if s >= 2 * 3_600_000 => (3_600_000.0, "hours"),
            s if s >= 2 * 60_000 => (60_000.0, "minutes"),
            _ => (1000.0, "seconds"),
        };
        let x = |p: &TrendPoint| ms(p).map_or(f64::NAN, |t| (t - t0) as f64 / unit_ms);
        let scale = if self.unit() == Unit::Fraction { 100.0 } else { 1.0 };
        let names = self.legend_names();
        let series = self
            .series
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (s, name))| XySeries {
                name,
                colour: i,
                style: Style::LineMarkers,
                points: s.points.iter().map(|p| (x(p), p.value * scale)).collect(),
                legend: true,
            })
            .collect();
        let since = self.trend.points.first().map(|p| date(&p.started_at)).unwrap_or_default();
        svg::xy_chart(&XyChart {
            title: format!("{} over time", self.trend.metric.name()),
            notes: vec![format!("{} run(s) · the first started {since}", self.runs())],
            x: Axis::new(format!("{unit} since the first run")),
            y: Axis::new(self.label()).from_zero(),
            series,
        })
    }

    /// A self-contained HTML page: heading, chart, and per series its change, ROI and points.
    pub fn html(&self) -> String {
        let e = svg::escape;
        let mut body = format!("<h1>Trend: {}</h1>\n<p class=\"muted\">{}</p>\n", e(&self.label()), e(&self.heading()));
        let _ = writeln!(body, "<figure>{}</figure>", self.chart());
        for (s, roi) in self.series.iter().zip(&self.rois) {
            let _ = writeln!(body, "<h2>{}</h2>", e(&Self::series_title(s)));
            let (label, change) = self.change(s);
            let _ = writeln!(body, "<p><strong>{label}:</strong> {}</p>", e(&change));
            if let Some(roi) = roi {
                let _ = writeln!(body, "<p><strong>ROI</strong> {}</p>", e(&self.roi_line(roi)));
            }
            body.push_str("<table>\n<tr>");
            for (i, h) in self.point_header().iter().enumerate() {
                let _ = write!(body, "<th{}>{}</th>", if i == 4 { " class=\"n\"" } else { "" }, e(h));
            }
            body.push_str("</tr>\n");
            for row in self.point_rows(s) {
                body.push_str("<tr>");
                for (i, c) in row.iter().enumerate() {
                    let _ = write!(body, "<td{}>{}</td>", if i == 4 { " class=\"n\"" } else { "" }, e(c));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</table>\n");
        }
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>velollm trend: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\
             <footer>velollm {} · from the history database</footer>\n</main>\n</body>\n</html>\n",
            e(&self.trend.metric.name()),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Markdown that shows the chart from `chart_file` (written beside it).
    pub fn markdown(&self, chart_file: &str) -> String {
        let e = velollm_report::markdown::escape;
        let mut out = format!("# Trend: {}\n\n{}\n\n", e(&self.label()), e(&self.heading()));
        let _ = writeln!(out, "![{} over time](<{chart_file}>)\n", e(&self.trend.metric.name()));
        for (s, roi) in self.series.iter().zip(&self.rois) {
            let _ = writeln!(out, "## {}\n", e(&Self::series_title(s)));
            let (label, change) = self.change(s);
            let _ = writeln!(out, "- **{label}:** {}", e(&change));
            if let Some(roi) = roi {
                let _ = writeln!(out, "- **ROI** {}", e(&self.roi_line(roi)));
            }
            out.push('\n');
            let cells = |r: &[String]| format!("| {} |", r.iter().map(|c| e(c)).collect::<Vec<_>>().join(" | "));
            let _ = writeln!(out, "{}", cells(&self.point_header()));
            out.push_str("| --- | --- | --- | --- | ---: |\n");
            for row in self.point_rows(s) {
                let _ = writeln!(out, "{}", cells(&row));
            }
            out.push('\n');
        }
        out
    }
}

const CSS: &str = ":root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --card: #f6f8fa; \
--border: #d0d7de; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --card: #161b22; \
--border: #30363d; } }
body { margin: 0; background: var(--bg); color: var(--fg); \
font: 15px/1.5 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Helvetica Neue\", Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 64px; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.5em; padding-bottom: 0.25em; border-bottom: 1px solid var(--border); }
.muted, footer { color: var(--muted); }
footer { margin-top: 3em; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--border); padding: 4px 9px; text-align: left; }
th { background: var(--card); }
td.n, th.n { text-align: right; }
figure { margin: 1em 0 1.6em; background: var(--card); border: 1px solid var(--border); border-radius: 8px; \
padding: 8px; }
figure svg { display: block; width: 100%; max-width: 760px; height: auto; margin: 0 auto; }";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_and_hosts() {
        assert_eq!(short_id("20260131T120000Z-1a2b3c4d"), "1a2b3c4d");
        assert_eq!(short_id("my-run"), "my-run");
        assert_eq!(host("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(host("gpu:8000"), "gpu:8000");
    }
}
