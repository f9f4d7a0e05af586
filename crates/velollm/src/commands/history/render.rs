//! What `velollm history` shows: the run list as an aligned table, and a trend as a terminal summary, JSON, a
//! self-contained HTML page or Markdown with its chart as an SVG file.

use jiff::tz::TimeZone;
use std::fmt::Write;
use std::path::Path;
use velollm_core::measure::names::Unit;
use velollm_history::{Direction, Filter, Prices, RebuildReport, Roi, RoiOutcome, RunRow, Series, Trend, TrendPoint};
use velollm_report::Chart;
use velollm_report::document::{self, Block};
use velollm_report::markdown::MarkdownReport;
use velollm_report::svg::{self, Axis, Style, XyChart, XySeries};

use velollm_report::format::num;

/// The start of a run in time zone `tz` (the local one outside tests), `2026-01-31 12:00`; the recorded text
/// when it does not parse.
fn date(started_at: &str, tz: &TimeZone) -> String {
    match started_at.parse::<jiff::Timestamp>() {
        Ok(t) => t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
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
    let mut table = document::Table::new(header, usize::MAX);
    for &i in numeric.iter().filter(|&&i| i < header.len()) {
        table.numeric[i] = true;
    }
    table.rows = rows;
    table.terminal(indent)
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), num)
}

/// The run list, newest first, with start times in local time.
pub fn runs_table(runs: &[RunRow]) -> String {
    runs_table_in(runs, &TimeZone::system())
}

/// The run list with start times in `tz`.
fn runs_table_in(runs: &[RunRow], tz: &TimeZone) -> String {
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                date(&r.started_at, tz),
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
    /// The time zone dates are shown in.
    tz: TimeZone,
}

/// The id of the trend chart, so the Markdown report's chart file is `{stem}-trend.svg`.
const CHART_ID: &str = "trend";

impl<'a> TrendReport<'a> {
    /// Summaries and ROI of every series of `trend`; `filter` is described in the heading. Dates are shown in
    /// local time.
    pub fn new(trend: &'a Trend, prices: Option<&'a Prices>, filter: &Filter) -> TrendReport<'a> {
        Self::in_zone(trend, prices, filter, TimeZone::system())
    }

    /// As [`TrendReport::new`], with dates shown in `tz`.
    fn in_zone(trend: &'a Trend, prices: Option<&'a Prices>, filter: &Filter, tz: TimeZone) -> TrendReport<'a> {
        let series = trend.series();
        let rois = series.iter().map(|s| s.roi(&trend.metric, prices)).collect();
        let mut window = Vec::new();
        if let Some(t) = filter.since {
            window.push(format!("since {}", date(&t.to_string(), &tz)));
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
        TrendReport { trend, series, rois, prices, window: window.join(" · "), tz }
    }

    /// A run's start in the report's time zone.
    fn date(&self, started_at: &str) -> String {
        date(started_at, &self.tz)
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
            let _ = write!(h, " · {} → {}", self.date(&a.started_at), self.date(&b.started_at));
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
                    self.date(&p.started_at),
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
        let since = self.trend.points.first().map(|p| self.date(&p.started_at)).unwrap_or_default();
        svg::xy_chart(&XyChart {
            title: format!("{} over time", self.trend.metric.name()),
            notes: vec![format!("{} run(s) · the first started {since}", self.runs())],
            x: Axis::new(format!("{unit} since the first run")),
            y: Axis::new(self.label()).from_zero(),
            series,
        })
    }

    /// The chart as the reports show it: [`TrendReport::chart`] with the id `trend`.
    fn charts(&self) -> Vec<Chart> {
        vec![Chart { id: CHART_ID.into(), title: format!("{} over time", self.trend.metric.name()), svg: self.chart() }]
    }

    /// The report as format-neutral blocks: heading, chart, and per series its change, ROI and points.
    fn blocks(&self) -> Vec<Block> {
        let mut out =
            vec![Block::Heading(1, format!("Trend: {}", self.label())), Block::Text(self.heading()), Block::Chart(0)];
        let header = self.point_header();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        for (s, roi) in self.series.iter().zip(&self.rois) {
            out.push(Block::Heading(2, Self::series_title(s)));
            let (label, change) = self.change(s);
            let mut facts = vec![(label.to_string(), change)];
            if let Some(roi) = roi {
                facts.push(("ROI".to_string(), self.roi_line(roi)));
            }
            out.push(Block::Facts(facts));
            // The last column, the metric's value, is numeric.
            let mut table = document::Table::new(&header, header.len() - 1);
            table.rows = self.point_rows(s);
            out.push(Block::Table(table));
        }
        out
    }

    /// A self-contained HTML page: heading, chart, and per series its change, ROI and points.
    pub fn html(&self) -> String {
        let from = format!("the history database (velollm {})", env!("CARGO_PKG_VERSION"));
        velollm_report::html::page(&self.blocks(), &self.charts(), &from)
    }

    /// The same report as Markdown; its chart is a file named `{chart_stem}-trend.svg` (pass the Markdown file's
    /// name without its extension) for the caller to write beside it.
    pub fn markdown(&self, chart_stem: &str) -> MarkdownReport {
        velollm_report::markdown::render_blocks(&self.blocks(), self.charts(), chart_stem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use velollm_core::document::result::RunStatus;
    use velollm_history::MetricSpec;

    #[test]
    fn short_ids_and_hosts() {
        assert_eq!(short_id("20260131T120000Z-1a2b3c4d"), "1a2b3c4d");
        assert_eq!(short_id("my-run"), "my-run");
        assert_eq!(host("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(host("gpu:8000"), "gpu:8000");
    }

    /// Run `r` of three, started on 2026-01-01, 03 and 06 at 10:00 UTC; the second is partial, the third uses
    /// more output tokens. Prompt and output tokens and successes are over the whole run.
    fn point(r: usize, step: &str, value: f64) -> TrendPoint {
        TrendPoint {
            started_at: ["2026-01-01T10:00:00Z", "2026-01-03T10:00:00Z", "2026-01-06T10:00:00Z"][r].into(),
            run_id: ["20260101T100000Z-0a1b2c3d", "20260103T100000Z-4e5f6a7b", "20260106T100000Z-8c9d0e1f"][r].into(),
            step: step.into(),
            value,
            target_url: "http://gpu-a:8000/".into(),
            model: "llama3.2:3b".into(),
            scenario: "chat".into(),
            status: [RunStatus::Complete, RunStatus::Partial, RunStatus::Complete][r],
            run_succeeded: 40,
            run_prompt_tokens: Some(20_000.0),
            run_output_tokens: Some([8_000.0, 8_000.0, 9_000.0][r]),
            run_cost_usd: None,
        }
    }

    /// `ttft.p95` of three runs with two steps each: `short` got faster, `long` slower.
    fn trend() -> Trend {
        let (short, long) = ([200.0, 180.0, 150.5], [900.0, 950.0, 920.0]);
        Trend {
            metric: MetricSpec::parse("ttft.p95").unwrap(),
            points: (0..3).flat_map(|r| [point(r, "short", short[r]), point(r, "long", long[r])]).collect(),
        }
    }

    fn report<'a>(trend: &'a Trend, prices: Option<&'a Prices>) -> TrendReport<'a> {
        let filter = Filter { model: Some("llama3.2:3b".into()), ..Filter::default() };
        TrendReport::in_zone(trend, prices, &filter, TimeZone::UTC)
    }

    /// The HTML page with the version in its footer replaced, so a release does not change the snapshot.
    fn html(r: &TrendReport<'_>) -> String {
        r.html().replace(concat!("velollm ", env!("CARGO_PKG_VERSION"), ")"), "velollm [version])")
    }

    #[test]
    fn trend_without_prices() {
        let trend = trend();
        let r = report(&trend, None);
        assert_eq!(r.series.len(), 2);
        assert!(r.rois.iter().all(|roi| roi.is_some()), "a latency: every series has its ROI line");
        insta::assert_snapshot!("trend_terminal", r.terminal());
        insta::assert_snapshot!("trend_json", serde_json::to_string_pretty(&r.json()).unwrap());
        let md = r.markdown("trend");
        insta::assert_snapshot!("trend_markdown", md.text);
        assert_eq!(md.charts, vec![("trend-trend.svg".to_string(), r.chart())]);
        assert!(md.text.contains("![ttft.p95 over time](trend-trend.svg)"), "{}", md.text);
        insta::assert_snapshot!("trend_html", html(&r));
        insta::assert_snapshot!("trend_svg", r.chart());
    }

    #[test]
    fn trend_with_prices() {
        let trend = trend();
        let prices = Prices::new(0.15, 0.6).unwrap();
        let r = report(&trend, Some(&prices));
        insta::assert_snapshot!("trend_terminal_prices", r.terminal());
        insta::assert_snapshot!("trend_json_prices", serde_json::to_string_pretty(&r.json()).unwrap());
        insta::assert_snapshot!("trend_markdown_prices", r.markdown("my trend").text);
        insta::assert_snapshot!("trend_html_prices", html(&r));
        assert_eq!(r.chart(), report(&trend, None).chart(), "prices do not change the chart");
    }

    #[test]
    fn html_and_markdown_carry_the_same_blocks() {
        let trend = trend();
        let r = report(&trend, None);
        let (page, md) = (r.html(), r.markdown("t").text);
        for block in r.blocks() {
            if let Block::Heading(_, t) = block {
                assert!(page.contains(&svg::escape(&t)), "{t} not in the page");
                assert!(md.contains(&velollm_report::markdown::escape(&t)), "{t} not in the Markdown");
            }
        }
        assert!(page.contains("class=\"vl-chart\"") && page.contains("dataset.charts"), "the shared page shell");
    }

    #[test]
    fn a_series_of_one_run_has_nothing_to_compare() {
        let trend = Trend { metric: MetricSpec::parse("success_rate").unwrap(), points: vec![point(0, "only", 0.975)] };
        let r = report(&trend, None);
        assert_eq!(r.rois, vec![None], "no ROI for one run, nor for a metric that is not a latency");
        let md = r.markdown("t").text;
        assert!(md.contains("- **one run so far:** 97.5% (nothing to compare yet)"), "{md}");
        assert!(!md.contains("ROI"), "{md}");
    }

    #[test]
    fn run_list() {
        let row = |r: usize, status: RunStatus, steps: u64, ttft: Option<f64>| RunRow {
            run_id: ["20260101T100000Z-0a1b2c3d", "20260103T100000Z-4e5f6a7b", "my-run"][r].into(),
            started_at: ["2026-01-01T10:00:00Z", "2026-01-03T10:00:00.5Z", "not a date"][r].into(),
            finished_at: None,
            status,
            status_reason: None,
            tool_version: "0.1.0".into(),
            result_schema: "1".into(),
            target_url: ["http://gpu-a:8000/", "https://api.example.com/v1", "gpu-b:9000"][r].into(),
            model: "llama3.2:3b".into(),
            dialect: "openai-chat".into(),
            server: None,
            server_version: None,
            scenario: "chat".into(),
            host: "bench-1".into(),
            json_path: None,
            steps,
            requests: [40, 17, 0][r],
            succeeded: [40, 16, 0][r],
            prompt_tokens: None,
            output_tokens: None,
            ttft_p50_ms: ttft,
            ttft_p95_ms: ttft.map(|t| t * 1.5),
            e2e_p50_ms: ttft.map(|t| t * 4.0),
            cost_usd: None,
        };
        let runs = [
            row(1, RunStatus::Partial, 2, Some(123.456)),
            row(0, RunStatus::Complete, 1, Some(98.0)),
            row(2, RunStatus::Interrupted, 1, None),
        ];
        insta::assert_snapshot!("runs_table", runs_table_in(&runs, &TimeZone::UTC));
    }
}
