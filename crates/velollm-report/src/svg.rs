//! A small, dependency-free SVG chart toolkit: line, scatter, step (CDF), histogram, bar panels with error bars,
//! horizontal stacked bars, and timelines (panels over one time axis, with event markers).
//!
//! Every chart is one standalone `<svg xmlns=… viewBox=… role="img"><title>…</title>…</svg>` that works inline in
//! HTML and as a `.svg` file referenced from Markdown. Its colours follow the reader's light or dark scheme through
//! an embedded `prefers-color-scheme` style; series use the Okabe–Ito colour-blind-safe palette.
//!
//! Layout rules, so that text never overlaps:
//! * text width is estimated as 0.6 × font size per character;
//! * axis ticks are "nice" numbers (1, 2 or 5 × 10^k) and tick labels are thinned (every 2nd, 3rd, … kept) when
//!   neighbours would collide;
//! * long titles, legend entries and category labels are shortened with an ellipsis to the room they have;
//! * the legend sits below the plot area, outside it, wrapping onto as many rows as it needs.
//!
//! Output is deterministic: coordinates are written with one decimal, so snapshots are stable.

use std::fmt::Write;

/// Width of every chart, in SVG user units (pixels when shown at natural size).
pub const WIDTH: f64 = 760.0;
/// Height of the plot area of an x/y chart or histogram.
const PLOT_HEIGHT: f64 = 260.0;
/// Outer padding.
const PAD: f64 = 14.0;
const TITLE_FS: f64 = 15.0;
const NOTE_FS: f64 = 11.0;
const LABEL_FS: f64 = 12.0;
const TICK_FS: f64 = 11.0;
const LEGEND_FS: f64 = 12.0;
const LEGEND_ROW: f64 = 18.0;
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

/// The Okabe–Ito palette (black replaced by grey so it reads on dark backgrounds; yellow last, as it is the
/// faintest on white).
pub const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999", "#F0E442"];

/// The palette colour of series `i` (cycling after eight).
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

const STYLE: &str = "<style>.vl-bg{fill:#ffffff}.vl-fg{fill:#1f2328}.vl-muted{fill:#59636e}\
.vl-grid{stroke:#d8dee4}.vl-axis{stroke:#59636e}\
@media (prefers-color-scheme: dark){.vl-bg{fill:#161b22}.vl-fg{fill:#e6edf3}.vl-muted{fill:#9198a1}\
.vl-grid{stroke:#30363d}.vl-axis{stroke:#9198a1}}</style>";

/// Escape text for XML content and attribute values; control characters XML cannot hold become spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Estimated rendered width of `s` at `font_size`: 0.6 × font size per character.
pub fn text_width(s: &str, font_size: f64) -> f64 {
    s.chars().count() as f64 * 0.6 * font_size
}

/// `s` shortened with a trailing `…` so that it fits in `max_width` at `font_size` (empty when not even one
/// character and the ellipsis fit).
pub fn ellipsize(s: &str, max_width: f64, font_size: f64) -> String {
    if text_width(s, font_size) <= max_width {
        return s.to_string();
    }
    let fit = (max_width / (0.6 * font_size)).floor() as usize;
    if fit < 2 {
        return String::new();
    }
    let mut out: String = s.chars().take(fit - 1).collect();
    out = out.trim_end().to_string();
    out.push('…');
    out
}

/// A coordinate with one decimal (never `-0.0`).
fn c(v: f64) -> String {
    let s = format!("{v:.1}");
    if s == "-0.0" { "0.0".into() } else { s }
}

pub use crate::format::num;

/// Axis ticks: evenly spaced "nice" values covering a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Lower end of the axis (the first tick).
    pub lo: f64,
    /// Upper end of the axis (the last tick).
    pub hi: f64,
    /// Distance between ticks: 1, 2 or 5 × 10^k.
    pub step: f64,
    /// The tick values, from `lo` to `hi`.
    pub values: Vec<f64>,
}

/// Nice ticks covering `[lo, hi]` with at most about `max_ticks` intervals; `integer` keeps the step ≥ 1.
/// A degenerate or non-finite range is widened so the axis is never empty.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize, integer: bool) -> Ticks {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        if lo >= 0.0 && lo - pad < 0.0 {
            hi = lo + pad;
            lo = 0.0_f64.min(lo);
        } else {
            lo -= pad;
            hi += pad;
        }
    }
    let raw = (hi - lo) / max_ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let mut step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    if integer && step < 1.0 {
        step = 1.0;
    }
    // Tolerate rounding noise: a bound within 1e-9 steps of a tick is that tick.
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil();
    let n = ((last - first).round() as usize).max(1);
    let decimals = decimals_of(step);
    let round = |v: f64| {
        let p = 10f64.powi(decimals as i32);
        let r = (v * p).round() / p;
        if r == 0.0 { 0.0 } else { r }
    };
    let values: Vec<f64> = (0..=n).map(|i| round((first + i as f64) * step)).collect();
    Ticks { lo: values[0], hi: values[n], step, values }
}

fn decimals_of(step: f64) -> usize {
    if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize }
}

impl Ticks {
    /// The label of tick value `v`: as many decimals as the step needs; thousands as `k` on large axes.
    pub fn label(&self, v: f64) -> String {
        let big = self.hi.abs().max(self.lo.abs()) >= 10_000.0 && self.step >= 1000.0;
        if big {
            let k = v / 1000.0;
            let d = decimals_of(self.step / 1000.0);
            let s = format!("{k:.d$}k");
            if s == "0k" { "0".into() } else { s }
        } else {
            let d = decimals_of(self.step);
            let s = format!("{v:.d$}");
            if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() { s[1..].to_string() } else { s }
        }
    }

    fn scale(&self, v: f64, from: f64, to: f64) -> f64 {
        let span = self.hi - self.lo;
        if span <= 0.0 { from } else { from + (v - self.lo) / span * (to - from) }
    }
}

/// How many ticks to skip so labels of `label_size` (px, along the axis) spaced `spacing` px apart never touch.
fn thin_every(label_size: f64, spacing: f64) -> usize {
    if spacing <= 0.0 { 1 } else { ((label_size + 6.0) / spacing).ceil().max(1.0) as usize }
}

/// An axis: its label (with the unit, e.g. `TTFT (ms)`) and how its range is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Label, with the unit in parentheses.
    pub label: String,
    /// Extend the range to include 0.
    pub from_zero: bool,
    /// Ticks at whole numbers only (turns, concurrency).
    pub integer: bool,
    /// A fixed range instead of the data's.
    pub range: Option<(f64, f64)>,
}

impl Axis {
    /// An axis fitted to the data.
    pub fn new(label: impl Into<String>) -> Axis {
        Axis { label: label.into(), from_zero: false, integer: false, range: None }
    }

    /// Include 0 in the range.
    pub fn from_zero(mut self) -> Axis {
        self.from_zero = true;
        self
    }

    /// Whole-number ticks.
    pub fn integer(mut self) -> Axis {
        self.integer = true;
        self
    }

    /// A fixed range.
    pub fn range(mut self, lo: f64, hi: f64) -> Axis {
        self.range = Some((lo, hi));
        self
    }

    fn ticks(&self, values: impl Iterator<Item = f64>, max_ticks: usize) -> Ticks {
        let (lo, hi) = match self.range {
            Some(r) => r,
            None => {
                let (mut lo, mut hi) = values
                    .filter(|v| v.is_finite())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
                if !lo.is_finite() {
                    (lo, hi) = (0.0, 1.0);
                }
                if self.from_zero { (lo.min(0.0), hi.max(0.0)) } else { (lo, hi) }
            }
        };
        nice_ticks(lo, hi, max_ticks, self.integer)
    }
}

/// How an x/y series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A solid line.
    Line,
    /// A solid line with a marker at each point.
    LineMarkers,
    /// A dashed line (fits, secondary statistics).
    Dashed,
    /// A dashed line with a marker at each point.
    DashedMarkers,
    /// Markers only, small and translucent (many points).
    Scatter,
    /// Markers only, large and opaque (a few points).
    Markers,
    /// A staircase through the points (empirical CDF): horizontal, then vertical.
    Step,
}

/// One series of an x/y chart.
#[derive(Debug, Clone, PartialEq)]
pub struct XySeries {
    /// Legend name.
    pub name: String,
    /// Palette index of its colour.
    pub colour: usize,
    /// How it is drawn.
    pub style: Style,
    /// Points, in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// Whether it gets a legend entry.
    pub legend: bool,
}

/// A chart of series over two numeric axes: lines, scatter, step (CDF).
#[derive(Debug, Clone, PartialEq)]
pub struct XyChart {
    /// Title.
    pub title: String,
    /// Lines under the title (fits, data notes).
    pub notes: Vec<String>,
    /// Horizontal axis.
    pub x: Axis,
    /// Vertical axis.
    pub y: Axis,
    /// Series.
    pub series: Vec<XySeries>,
}

/// A legend entry's swatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swatch {
    Line,
    Dashed,
    Marker,
    Block,
}

/// How a text is set: size, anchor (`start`, `middle`, `end`), colour class, weight.
#[derive(Debug, Clone, Copy)]
struct Txt {
    size: f64,
    anchor: &'static str,
    class: &'static str,
    bold: bool,
}

impl Txt {
    fn new(size: f64, anchor: &'static str, class: &'static str) -> Txt {
        Txt { size, anchor, class, bold: false }
    }

    fn bold(self) -> Txt {
        Txt { bold: true, ..self }
    }
}

/// The document being written.
struct Doc {
    body: String,
}

impl Doc {
    fn new() -> Doc {
        Doc { body: String::new() }
    }

    fn text(&mut self, x: f64, y: f64, t: Txt, s: &str) {
        let bold = if t.bold { r#" font-weight="600""# } else { "" };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{}" class="{}"{bold}>{}</text>"#,
            c(x),
            c(y),
            t.size,
            t.anchor,
            t.class,
            escape(s)
        );
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="{class}" stroke-width="1"/>"#,
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }

    fn finish(self, title: &str, height: f64) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="vl-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" font-family="{FONT}">"#,
            w = c(WIDTH),
            h = c(height),
        );
        let _ = write!(out, "\n<title>{}</title>\n{STYLE}\n", escape(title));
        let _ = writeln!(out, r#"<rect x="0" y="0" width="{}" height="{}" class="vl-bg"/>"#, c(WIDTH), c(height));
        out.push_str(&self.body);
        out.push_str("</svg>\n");
        out
    }
}

/// Title and notes at the top; returns the y where the plot area may start.
fn header(doc: &mut Doc, title: &str, notes: &[String]) -> f64 {
    let mut y = PAD + TITLE_FS;
    doc.text(PAD, y, Txt::new(TITLE_FS, "start", "vl-fg").bold(), &ellipsize(title, WIDTH - 2.0 * PAD, TITLE_FS));
    for n in notes {
        y += NOTE_FS + 5.0;
        doc.text(PAD, y, Txt::new(NOTE_FS, "start", "vl-muted"), &ellipsize(n, WIDTH - 2.0 * PAD, NOTE_FS));
    }
    y + 18.0
}

/// Lay out and draw legend entries from `top`; returns the y below the legend.
fn legend(doc: &mut Doc, entries: &[(String, &str, Swatch)], top: f64) -> f64 {
    if entries.is_empty() {
        return top;
    }
    let max_text = WIDTH - 2.0 * PAD - 30.0;
    let mut x = PAD;
    let mut row = 0.0;
    for (name, colour, swatch) in entries {
        let name = ellipsize(name, max_text.min(360.0), LEGEND_FS);
        let w = 24.0 + text_width(&name, LEGEND_FS) + 18.0;
        if x > PAD && x + w > WIDTH - PAD {
            x = PAD;
            row += 1.0;
        }
        let cy = top + row * LEGEND_ROW + LEGEND_ROW / 2.0;
        match swatch {
            Swatch::Line | Swatch::Dashed => {
                let dash = if *swatch == Swatch::Dashed { r#" stroke-dasharray="5 3""# } else { "" };
                let _ = writeln!(
                    doc.body,
                    r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="2.5"{dash}/>"#,
                    c(x),
                    c(cy),
                    c(x + 18.0),
                    c(cy)
                );
            }
            Swatch::Marker => {
                let _ = writeln!(doc.body, r#"<circle cx="{}" cy="{}" r="4" fill="{colour}"/>"#, c(x + 9.0), c(cy));
            }
            Swatch::Block => {
                let _ = writeln!(
                    doc.body,
                    r#"<rect x="{}" y="{}" width="14" height="12" fill="{colour}"/>"#,
                    c(x + 2.0),
                    c(cy - 6.0)
                );
            }
        }
        doc.text(x + 24.0, cy + 4.0, Txt::new(LEGEND_FS, "start", "vl-fg"), &name);
        x += w;
    }
    top + (row + 1.0) * LEGEND_ROW
}

/// A rectangular plot area with its two axes.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: Ticks,
    y: Ticks,
}

impl Frame {
    fn px(&self, v: f64) -> f64 {
        self.x.scale(v, self.left, self.right)
    }

    fn py(&self, v: f64) -> f64 {
        self.y.scale(v, self.bottom, self.top)
    }
}

/// Choose the plot area for the given ticks and draw grid, axes, tick labels and axis labels.
/// `x_tick_labels` false leaves the x axis unlabelled (categorical charts label it themselves).
fn frame(doc: &mut Doc, top: f64, x: Ticks, y: Ticks, x_label: &str, y_label: &str, x_ticks: bool) -> Frame {
    let y_labels: Vec<String> = y.values.iter().map(|v| y.label(*v)).collect();
    let y_w = y_labels.iter().map(|l| text_width(l, TICK_FS)).fold(0.0, f64::max);
    let left = PAD + LABEL_FS + 10.0 + y_w + 6.0;
    let x_labels: Vec<String> = x.values.iter().map(|v| x.label(*v)).collect();
    let last_w = x_labels.last().map_or(0.0, |l| text_width(l, TICK_FS));
    let right = WIDTH - PAD - (last_w / 2.0).max(6.0);
    let f = Frame { left, right, top, bottom: top + PLOT_HEIGHT, x, y };
    // Grid and y ticks.
    let spacing = if f.y.values.len() > 1 { PLOT_HEIGHT / (f.y.values.len() - 1) as f64 } else { PLOT_HEIGHT };
    let every = thin_every(TICK_FS, spacing);
    for (i, (v, l)) in f.y.values.iter().zip(&y_labels).enumerate() {
        let py = f.py(*v);
        doc.line(f.left, py, f.right, py, "vl-grid");
        if i % every == 0 {
            doc.text(f.left - 6.0, py + TICK_FS * 0.35, Txt::new(TICK_FS, "end", "vl-muted"), l);
        }
    }
    // x ticks.
    if x_ticks {
        let spacing =
            if f.x.values.len() > 1 { (f.right - f.left) / (f.x.values.len() - 1) as f64 } else { f.right - f.left };
        let widest = x_labels.iter().map(|l| text_width(l, TICK_FS)).fold(0.0, f64::max);
        let every = thin_every(widest, spacing);
        for (i, (v, l)) in f.x.values.iter().zip(&x_labels).enumerate() {
            let px = f.px(*v);
            doc.line(px, f.bottom, px, f.bottom + 4.0, "vl-axis");
            if i % every == 0 {
                doc.text(px, f.bottom + 16.0, Txt::new(TICK_FS, "middle", "vl-muted"), l);
            }
        }
    }
    doc.line(f.left, f.bottom, f.right, f.bottom, "vl-axis");
    doc.line(f.left, f.top, f.left, f.bottom, "vl-axis");
    // Axis labels.
    doc.text(
        (f.left + f.right) / 2.0,
        f.bottom + 36.0,
        Txt::new(LABEL_FS, "middle", "vl-fg"),
        &ellipsize(x_label, f.right - f.left, LABEL_FS),
    );
    let cy = (f.top + f.bottom) / 2.0;
    let _ = writeln!(
        doc.body,
        r#"<text transform="translate({},{}) rotate(-90)" font-size="{LABEL_FS}" text-anchor="middle" class="vl-fg">{}</text>"#,
        c(PAD + LABEL_FS - 2.0),
        c(cy),
        escape(&ellipsize(y_label, PLOT_HEIGHT, LABEL_FS))
    );
    f
}

fn points_attr(f: &Frame, pts: &[(f64, f64)]) -> String {
    let mut s = String::new();
    for (i, (x, y)) in pts.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{},{}", c(f.px(*x)), c(f.py(*y)));
    }
    s
}

/// Draw an x/y chart.
pub fn xy_chart(chart: &XyChart) -> String {
    let mut doc = Doc::new();
    let top = header(&mut doc, &chart.title, &chart.notes);
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = || chart.series.iter().flat_map(|s| s.points.iter().filter(finite));
    let x = chart.x.ticks(all().map(|p| p.0), 8);
    let y = chart.y.ticks(all().map(|p| p.1), 6);
    let f = frame(&mut doc, top, x, y, &chart.x.label, &chart.y.label, true);
    for s in &chart.series {
        draw_series(&mut doc, &f, s);
    }
    let entries = legend_entries(&chart.series);
    let bottom = legend(&mut doc, &entries, f.bottom + 48.0);
    doc.finish(&chart.title, bottom + PAD)
}

/// Draw one x/y series in a plot area, in its style; non-finite points are skipped.
fn draw_series(doc: &mut Doc, f: &Frame, s: &XySeries) {
    let pts: Vec<(f64, f64)> = s.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).copied().collect();
    let col = colour(s.colour);
    let line = |doc: &mut Doc, pts: &[(f64, f64)], dash: &str| {
        if pts.len() > 1 {
            let _ = writeln!(
                doc.body,
                r#"<polyline fill="none" stroke="{col}" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                points_attr(f, pts)
            );
        }
    };
    let markers = |doc: &mut Doc, r: f64, opacity: &str| {
        for (x, y) in &pts {
            let _ = writeln!(
                doc.body,
                r#"<circle cx="{}" cy="{}" r="{r}" fill="{col}"{opacity}/>"#,
                c(f.px(*x)),
                c(f.py(*y))
            );
        }
    };
    match s.style {
        Style::Line => line(doc, &pts, ""),
        Style::LineMarkers => {
            line(doc, &pts, "");
            markers(doc, 3.5, "");
        }
        Style::Dashed => line(doc, &pts, r#" stroke-dasharray="6 4""#),
        Style::DashedMarkers => {
            line(doc, &pts, r#" stroke-dasharray="6 4""#);
            markers(doc, 3.0, "");
        }
        Style::Scatter => markers(doc, 3.0, r#" fill-opacity="0.65""#),
        Style::Markers => markers(doc, 4.5, ""),
        Style::Step => {
            let mut stairs = Vec::with_capacity(pts.len() * 2);
            for (i, p) in pts.iter().enumerate() {
                if i > 0 {
                    stairs.push((p.0, pts[i - 1].1));
                }
                stairs.push(*p);
            }
            line(doc, &stairs, "");
        }
    }
}

/// The legend entries of the series that want one, with a swatch matching their style.
fn legend_entries(series: &[XySeries]) -> Vec<(String, &'static str, Swatch)> {
    series
        .iter()
        .filter(|s| s.legend)
        .map(|s| {
            let sw = match s.style {
                Style::Line | Style::LineMarkers | Style::Step => Swatch::Line,
                Style::Dashed | Style::DashedMarkers => Swatch::Dashed,
                Style::Scatter | Style::Markers => Swatch::Marker,
            };
            (s.name.clone(), colour(s.colour), sw)
        })
        .collect()
}

/// A vertical line across a [`Timeline`] at one instant (a server event), labelled above the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Where, on the horizontal axis.
    pub x: f64,
    /// A short label drawn above the plot (`exited`); left out when it would collide with another marker's.
    pub label: String,
    /// The longer description shown as the line's tooltip.
    pub detail: String,
}

/// One panel of a [`Timeline`]: its own value axis and series over the shared horizontal axis.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePanel {
    /// Value axis, its label with the unit (`RSS (MB)`).
    pub y: Axis,
    /// Series of this panel; those with `legend` set appear in the chart's one legend.
    pub series: Vec<XySeries>,
}

/// Panels stacked over one shared horizontal axis (time), with vertical markers crossing them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Title.
    pub title: String,
    /// Lines under the title.
    pub notes: Vec<String>,
    /// The shared horizontal axis, labelled under the last panel.
    pub x: Axis,
    /// Panels, top to bottom.
    pub panels: Vec<TimelinePanel>,
    /// Vertical markers (events), in any order.
    pub markers: Vec<Marker>,
}

/// Draw a [`Timeline`]: each panel with its own value axis, one time axis under the last, marker labels in a
/// band above the first panel (on up to two rows; a label that fits on neither is left out, its line and
/// tooltip stay).
pub fn timeline(chart: &Timeline) -> String {
    const PANEL_PLOT: f64 = 150.0;
    const PANEL_GAP: f64 = 26.0;
    const MARK_ROW: f64 = 15.0;
    const MARK_ROWS: usize = 2;
    let mut doc = Doc::new();
    let top = header(&mut doc, &chart.title, &chart.notes);
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let xs = chart
        .panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().filter(finite).map(|p| p.0)))
        .chain(chart.markers.iter().map(|m| m.x).filter(|x| x.is_finite()));
    let x = chart.x.ticks(xs, 8);
    let ys: Vec<Ticks> = chart
        .panels
        .iter()
        .map(|p| p.y.ticks(p.series.iter().flat_map(|s| s.points.iter().filter(finite).map(|p| p.1)), 4))
        .collect();
    let y_w = ys.iter().flat_map(|t| t.values.iter().map(|v| text_width(&t.label(*v), TICK_FS))).fold(0.0, f64::max);
    let left = PAD + LABEL_FS + 10.0 + y_w + 6.0;
    let x_labels: Vec<String> = x.values.iter().map(|v| x.label(*v)).collect();
    let last_w = x_labels.last().map_or(0.0, |l| text_width(l, TICK_FS));
    let right = WIDTH - PAD - (last_w / 2.0).max(6.0);
    let px = |v: f64| x.scale(v, left, right);

    // Marker labels: left to right, each on the first row where it clears the previous label.
    let mut order: Vec<&Marker> = chart.markers.iter().filter(|m| m.x.is_finite()).collect();
    order.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut row_end = [f64::NEG_INFINITY; MARK_ROWS];
    let mut placed: Vec<(usize, f64, String)> = Vec::new();
    for m in &order {
        let label = ellipsize(&m.label, right - left, NOTE_FS);
        if label.is_empty() {
            continue;
        }
        let w = text_width(&label, NOTE_FS);
        let x0 = (px(m.x) - w / 2.0).clamp(left, (right - w).max(left));
        if let Some(row) = (0..MARK_ROWS).find(|r| x0 >= row_end[*r] + 6.0) {
            row_end[row] = x0 + w;
            placed.push((row, x0, label));
        }
    }
    let rows = placed.iter().map(|p| p.0 + 1).max().unwrap_or(0);
    for (row, x0, label) in &placed {
        doc.text(*x0, top + (*row as f64 + 1.0) * MARK_ROW - 3.0, Txt::new(NOTE_FS, "start", "vl-muted"), label);
    }
    let first_top = top + rows as f64 * MARK_ROW + if rows > 0 { 8.0 } else { 0.0 };

    let mut frames = Vec::with_capacity(chart.panels.len());
    for (k, (p, y)) in chart.panels.iter().zip(ys).enumerate() {
        let ptop = first_top + k as f64 * (PANEL_PLOT + PANEL_GAP);
        let f = Frame { left, right, top: ptop, bottom: ptop + PANEL_PLOT, x: x.clone(), y };
        let spacing = PANEL_PLOT / (f.y.values.len().max(2) - 1) as f64;
        let every = thin_every(TICK_FS, spacing);
        for (i, v) in f.y.values.iter().enumerate() {
            let py = f.py(*v);
            doc.line(f.left, py, f.right, py, "vl-grid");
            if i % every == 0 {
                doc.text(f.left - 6.0, py + TICK_FS * 0.35, Txt::new(TICK_FS, "end", "vl-muted"), &f.y.label(*v));
            }
        }
        doc.line(f.left, f.bottom, f.right, f.bottom, "vl-axis");
        doc.line(f.left, f.top, f.left, f.bottom, "vl-axis");
        let _ = writeln!(
            doc.body,
            r#"<text transform="translate({},{}) rotate(-90)" font-size="{LABEL_FS}" text-anchor="middle" class="vl-fg">{}</text>"#,
            c(PAD + LABEL_FS - 2.0),
            c((f.top + f.bottom) / 2.0),
            escape(&ellipsize(&p.y.label, PANEL_PLOT, LABEL_FS))
        );
        for s in &p.series {
            draw_series(&mut doc, &f, s);
        }
        frames.push(f);
    }
    let bottom = frames.last().map_or(first_top, |f| f.bottom);
    for m in &order {
        let _ = writeln!(
            doc.body,
            r#"<line x1="{x}" y1="{}" x2="{x}" y2="{}" class="vl-axis" stroke-width="1.5" stroke-dasharray="4 3"><title>{}</title></line>"#,
            c(first_top),
            c(bottom),
            escape(&m.detail),
            x = c(px(m.x)),
        );
    }
    // The shared time axis.
    let spacing = (right - left) / (x.values.len().max(2) - 1) as f64;
    let widest = x_labels.iter().map(|l| text_width(l, TICK_FS)).fold(0.0, f64::max);
    let every = thin_every(widest, spacing);
    for (i, (v, l)) in x.values.iter().zip(&x_labels).enumerate() {
        doc.line(px(*v), bottom, px(*v), bottom + 4.0, "vl-axis");
        if i % every == 0 {
            doc.text(px(*v), bottom + 16.0, Txt::new(TICK_FS, "middle", "vl-muted"), l);
        }
    }
    doc.text(
        (left + right) / 2.0,
        bottom + 36.0,
        Txt::new(LABEL_FS, "middle", "vl-fg"),
        &ellipsize(&chart.x.label, right - left, LABEL_FS),
    );
    let series: Vec<XySeries> = chart.panels.iter().flat_map(|p| p.series.iter().cloned()).collect();
    let end = legend(&mut doc, &legend_entries(&series), bottom + 48.0);
    doc.finish(&chart.title, end + PAD)
}

/// A histogram of one or more series over shared bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Title.
    pub title: String,
    /// Lines under the title.
    pub notes: Vec<String>,
    /// Label of the value axis, with the unit (`TTFT (ms)`).
    pub x_label: String,
    /// Label of the count axis (`requests`).
    pub y_label: String,
    /// `(legend name, values)`; non-finite values are ignored.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Draw a histogram: bins of one nice width shared by every series; series side by side within a bin.
pub fn histogram(h: &Histogram) -> String {
    let mut doc = Doc::new();
    let top = header(&mut doc, &h.title, &h.notes);
    let values = || h.series.iter().flat_map(|s| s.1.iter().copied().filter(|v| v.is_finite()));
    let (lo, hi) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    // About √n bins (5 to 30), each a nice width.
    let n = values().count() as f64;
    let target = (n.sqrt().ceil() as usize).clamp(5, 30);
    let bins = if lo.is_finite() { nice_ticks(lo, hi, target, false) } else { nice_ticks(0.0, 1.0, target, false) };
    let n_bins = bins.values.len().saturating_sub(1).max(1);
    let counts: Vec<Vec<u64>> = h
        .series
        .iter()
        .map(|(_, vs)| {
            let mut c = vec![0u64; n_bins];
            for v in vs.iter().filter(|v| v.is_finite()) {
                let i = ((v - bins.lo) / bins.step).floor();
                let i = if i < 0.0 { 0 } else { (i as usize).min(n_bins - 1) };
                c[i] += 1;
            }
            c
        })
        .collect();
    let max_count = counts.iter().flatten().copied().max().unwrap_or(0) as f64;
    let x = nice_ticks(bins.lo, bins.hi, 8, false);
    let y = nice_ticks(0.0, max_count.max(1.0), 5, true);
    let f = frame(&mut doc, top, x, y, &h.x_label, &h.y_label, true);
    // One series: solid bars. Several: translucent bars under each series' outline, so overlapping
    // distributions stay readable.
    let several = h.series.len() > 1;
    let edge = |b: usize| bins.lo + b as f64 * bins.step;
    for (si, cs) in counts.iter().enumerate() {
        let col = colour(si);
        let opacity = if several { r#" fill-opacity="0.28""# } else { "" };
        for (b, n) in cs.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let (x0, x1) = (f.px(edge(b)), f.px(edge(b + 1)));
            let gap = if several { 0.0 } else { ((x1 - x0) * 0.08).min(2.0) };
            let by = f.py(*n as f64);
            let _ = writeln!(
                doc.body,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{col}"{opacity}><title>{}: {n}</title></rect>"#,
                c(x0 + gap / 2.0),
                c(by),
                c((x1 - x0 - gap).max(0.5)),
                c(f.bottom - by),
                escape(&format!("{}: {} to {}", h.series[si].0, num(edge(b)), num(edge(b + 1))))
            );
        }
        if several {
            let mut outline = vec![(edge(0), 0.0)];
            for (b, n) in cs.iter().enumerate() {
                outline.push((edge(b), *n as f64));
                outline.push((edge(b + 1), *n as f64));
            }
            outline.push((edge(cs.len()), 0.0));
            let _ = writeln!(
                doc.body,
                r#"<polyline fill="none" stroke="{col}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                points_attr(&f, &outline)
            );
        }
    }
    let entries: Vec<(String, &str, Swatch)> =
        h.series.iter().enumerate().map(|(i, s)| (s.0.clone(), colour(i), Swatch::Block)).collect();
    let bottom = legend(&mut doc, &entries, f.bottom + 48.0);
    doc.finish(&h.title, bottom + PAD)
}

/// One bar with an optional confidence interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Height of the bar.
    pub value: f64,
    /// Confidence interval `(low, high)` drawn as an error bar.
    pub ci: Option<(f64, f64)>,
    /// Texts for above the bar, longest first (e.g. value with change, change, value); the first that fits
    /// its slot is drawn, none when none fits.
    pub labels: Vec<String>,
}

/// One panel of a [`BarPanels`] chart: one metric, its own axis and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct BarPanel {
    /// Panel title (the metric).
    pub title: String,
    /// A line under the title (e.g. `lower is better`).
    pub subtitle: String,
    /// Label of the value axis, with the unit.
    pub y_label: String,
    /// Groups of bars side by side (e.g. one per step); a single group with an empty label puts the series
    /// names under the bars instead of a group label.
    pub groups: Vec<BarGroup>,
}

/// A group of bars in a [`BarPanel`]: one bar per series.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    /// Label under the group (ellipsized to its width).
    pub label: String,
    /// One bar per series, in series order; `None` where a series has no value.
    pub bars: Vec<Option<Bar>>,
}

/// Grouped bars with error bars, in panels so that each metric keeps its own unit.
#[derive(Debug, Clone, PartialEq)]
pub struct BarPanels {
    /// Title.
    pub title: String,
    /// Lines under the title.
    pub notes: Vec<String>,
    /// Series names (legend), one colour each.
    pub series: Vec<String>,
    /// Panels.
    pub panels: Vec<BarPanel>,
}

/// Draw bar panels, each with its own value axis: three per row for up to two series, two per row for more.
pub fn bar_panels(chart: &BarPanels) -> String {
    const GAP: f64 = 24.0;
    const PANEL_PLOT: f64 = 170.0;
    let per_row = if chart.series.len() > 2 { 2 } else { 3 };
    let mut doc = Doc::new();
    let mut top = header(&mut doc, &chart.title, &chart.notes);
    let cols = chart.panels.len().clamp(1, per_row);
    let pw = (WIDTH - 2.0 * PAD - GAP * (cols - 1) as f64) / cols as f64;
    for (row_i, row) in chart.panels.chunks(per_row).enumerate() {
        if row_i > 0 {
            top += 22.0;
        }
        for (ci, p) in row.iter().enumerate() {
            let x0 = PAD + ci as f64 * (pw + GAP);
            doc.text(x0, top + 12.0, Txt::new(LABEL_FS, "start", "vl-fg").bold(), &ellipsize(&p.title, pw, LABEL_FS));
            if !p.subtitle.is_empty() {
                doc.text(x0, top + 26.0, Txt::new(NOTE_FS, "start", "vl-muted"), &ellipsize(&p.subtitle, pw, NOTE_FS));
            }
            let plot_top = top + 40.0;
            let bottom = plot_top + PANEL_PLOT;
            let vals = p.groups.iter().flat_map(|g| g.bars.iter().flatten()).flat_map(|b| {
                let (l, h) = b.ci.unwrap_or((b.value, b.value));
                [b.value, l, h]
            });
            let (lo, hi) =
                vals.filter(|v| v.is_finite()).fold((0.0f64, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            let y = nice_ticks(lo, if hi.is_finite() { hi.max(0.0) } else { 1.0 }, 4, false);
            let labels: Vec<String> = y.values.iter().map(|v| y.label(*v)).collect();
            let yw = labels.iter().map(|l| text_width(l, TICK_FS)).fold(0.0, f64::max);
            let left = x0 + LABEL_FS + 8.0 + yw + 6.0;
            let right = x0 + pw;
            let py = |v: f64| y.scale(v, bottom, plot_top);
            let every = thin_every(TICK_FS, PANEL_PLOT / (y.values.len().max(2) - 1) as f64);
            for (i, (v, l)) in y.values.iter().zip(&labels).enumerate() {
                doc.line(left, py(*v), right, py(*v), "vl-grid");
                if i % every == 0 {
                    doc.text(left - 5.0, py(*v) + TICK_FS * 0.35, Txt::new(TICK_FS, "end", "vl-muted"), l);
                }
            }
            doc.line(left, py(0.0), right, py(0.0), "vl-axis");
            doc.line(left, plot_top, left, bottom, "vl-axis");
            let _ = writeln!(
                doc.body,
                r#"<text transform="translate({},{}) rotate(-90)" font-size="{LABEL_FS}" text-anchor="middle" class="vl-fg">{}</text>"#,
                c(x0 + LABEL_FS - 2.0),
                c((plot_top + bottom) / 2.0),
                escape(&ellipsize(&p.y_label, PANEL_PLOT, LABEL_FS))
            );
            let group_w = (right - left) / p.groups.len().max(1) as f64;
            let name_bars = matches!(p.groups.as_slice(), [g] if g.label.is_empty());
            for (gi, g) in p.groups.iter().enumerate() {
                let g_left = left + gi as f64 * group_w;
                let inner = if name_bars { group_w } else { group_w * 0.84 };
                let slot = inner / g.bars.len().max(1) as f64;
                let bw = (slot * if name_bars { 0.7 } else { 0.86 }).min(56.0);
                if !name_bars {
                    let label = ellipsize(&g.label, group_w - 4.0, NOTE_FS);
                    doc.text(g_left + group_w / 2.0, bottom + 14.0, Txt::new(NOTE_FS, "middle", "vl-muted"), &label);
                }
                for (si, bar) in g.bars.iter().enumerate() {
                    let cx = g_left + (group_w - inner) / 2.0 + slot * (si as f64 + 0.5);
                    if name_bars {
                        let name = chart.series.get(si).map_or("", String::as_str);
                        let short = ellipsize(name, slot - 4.0, NOTE_FS);
                        if short.chars().count() >= 4 || short == name {
                            doc.text(cx, bottom + 14.0, Txt::new(NOTE_FS, "middle", "vl-muted"), &short);
                        }
                    }
                    let Some(b) = bar.as_ref().filter(|b| b.value.is_finite()) else {
                        if text_width("no value", NOTE_FS) <= slot - 2.0 {
                            doc.text(cx, py(0.0) - 6.0, Txt::new(NOTE_FS, "middle", "vl-muted"), "no value");
                        }
                        continue;
                    };
                    let (y0, y1) = (py(0.0), py(b.value));
                    let _ = writeln!(
                        doc.body,
                        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>"#,
                        c(cx - bw / 2.0),
                        c(y0.min(y1)),
                        c(bw),
                        c((y0 - y1).abs()),
                        colour(si)
                    );
                    let mut label_y = y1.min(y0);
                    if let Some((l, h)) = b.ci.filter(|(l, h)| l.is_finite() && h.is_finite()) {
                        let (yl, yh) = (py(l), py(h));
                        let cap = (bw * 0.2).max(2.0);
                        let _ = writeln!(
                            doc.body,
                            r#"<path d="M{} {}V{}M{} {}H{}M{} {}H{}" fill="none" class="vl-axis" stroke-width="1.5"/>"#,
                            c(cx),
                            c(yl),
                            c(yh),
                            c(cx - cap),
                            c(yl),
                            c(cx + cap),
                            c(cx - cap),
                            c(yh),
                            c(cx + cap)
                        );
                        label_y = label_y.min(yh);
                    }
                    let fits = |l: &&String| !l.is_empty() && text_width(l, NOTE_FS) <= slot - 2.0;
                    if let Some(l) = b.labels.iter().find(fits) {
                        doc.text(cx, (label_y - 4.0).max(plot_top - 2.0), Txt::new(NOTE_FS, "middle", "vl-fg"), l);
                    }
                }
            }
        }
        top = top + 40.0 + PANEL_PLOT + 18.0;
    }
    let entries: Vec<(String, &str, Swatch)> =
        chart.series.iter().enumerate().map(|(i, s)| (s.clone(), colour(i), Swatch::Block)).collect();
    let bottom = legend(&mut doc, &entries, top + 8.0);
    doc.finish(&chart.title, bottom + PAD)
}

/// One row of a [`StackedBars`] chart.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedRow {
    /// Row label (left of the bar).
    pub label: String,
    /// One value per segment, in segment order; negative or non-finite values count as 0.
    pub values: Vec<f64>,
}

/// Horizontal stacked bars: one bar per row, split into named segments.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedBars {
    /// Title.
    pub title: String,
    /// Lines under the title.
    pub notes: Vec<String>,
    /// Label of the value axis, with the unit.
    pub x_label: String,
    /// Segment names (legend), one colour each.
    pub segments: Vec<String>,
    /// Rows, top to bottom.
    pub rows: Vec<StackedRow>,
}

/// Draw horizontal stacked bars, each row's total written at its end.
pub fn stacked_bars(chart: &StackedBars) -> String {
    const ROW: f64 = 22.0;
    const ROW_GAP: f64 = 10.0;
    let mut doc = Doc::new();
    let top = header(&mut doc, &chart.title, &chart.notes);
    let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let totals: Vec<f64> = chart.rows.iter().map(|r| r.values.iter().map(|v| clean(*v)).sum()).collect();
    let max_total = totals.iter().copied().fold(0.0, f64::max);
    let x = nice_ticks(0.0, if max_total > 0.0 { max_total } else { 1.0 }, 6, false);
    let max_label = WIDTH * 0.32;
    let labels: Vec<String> = chart.rows.iter().map(|r| ellipsize(&r.label, max_label, LABEL_FS)).collect();
    let label_w = labels.iter().map(|l| text_width(l, LABEL_FS)).fold(0.0, f64::max);
    let left = PAD + label_w + 10.0;
    let total_w = totals.iter().map(|t| text_width(&num(*t), NOTE_FS)).fold(0.0, f64::max);
    let right = WIDTH - PAD - total_w.max(text_width(&x.label(x.hi), TICK_FS) / 2.0) - 8.0;
    let height = chart.rows.len().max(1) as f64 * (ROW + ROW_GAP) + ROW_GAP;
    let bottom = top + height;
    let px = |v: f64| x.scale(v, left, right);
    let x_labels: Vec<String> = x.values.iter().map(|v| x.label(*v)).collect();
    let widest = x_labels.iter().map(|l| text_width(l, TICK_FS)).fold(0.0, f64::max);
    let every = thin_every(widest, (right - left) / (x.values.len().max(2) - 1) as f64);
    for (i, (v, l)) in x.values.iter().zip(&x_labels).enumerate() {
        doc.line(px(*v), top, px(*v), bottom, "vl-grid");
        if i % every == 0 {
            doc.text(px(*v), bottom + 16.0, Txt::new(TICK_FS, "middle", "vl-muted"), l);
        }
    }
    doc.line(left, bottom, right, bottom, "vl-axis");
    doc.line(left, top, left, bottom, "vl-axis");
    doc.text(
        (left + right) / 2.0,
        bottom + 36.0,
        Txt::new(LABEL_FS, "middle", "vl-fg"),
        &ellipsize(&chart.x_label, right - left, LABEL_FS),
    );
    for (ri, row) in chart.rows.iter().enumerate() {
        let y = top + ROW_GAP + ri as f64 * (ROW + ROW_GAP);
        doc.text(left - 8.0, y + ROW / 2.0 + LABEL_FS * 0.35, Txt::new(LABEL_FS, "end", "vl-fg"), &labels[ri]);
        let mut acc = 0.0;
        for (si, v) in row.values.iter().enumerate() {
            let v = clean(*v);
            if v <= 0.0 {
                continue;
            }
            let (x0, x1) = (px(acc), px(acc + v));
            let name = chart.segments.get(si).map_or("", String::as_str);
            let _ = writeln!(
                doc.body,
                r#"<rect x="{}" y="{}" width="{}" height="{ROW}" fill="{}"><title>{}</title></rect>"#,
                c(x0),
                c(y),
                c((x1 - x0).max(0.0)),
                colour(si),
                escape(&format!("{}: {name} {}", row.label, num(v)))
            );
            acc += v;
        }
        doc.text(
            px(acc) + 5.0,
            y + ROW / 2.0 + NOTE_FS * 0.35,
            Txt::new(NOTE_FS, "start", "vl-muted"),
            &num(totals[ri]),
        );
    }
    let entries: Vec<(String, &str, Swatch)> =
        chart.segments.iter().enumerate().map(|(i, s)| (s.clone(), colour(i), Swatch::Block)).collect();
    let end = legend(&mut doc, &entries, bottom + 48.0);
    doc.finish(&chart.title, end + PAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_use_1_2_5_steps() {
        let t = nice_ticks(0.0, 97.0, 5, false);
        assert_eq!(t.step, 20.0);
        assert_eq!(t.values, vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let t = nice_ticks(0.013, 0.048, 8, false);
        assert_eq!(t.step, 0.005);
        assert_eq!(t.label(t.values[1]), "0.015");
        let t = nice_ticks(21.3, 22.4, 6, false);
        assert!(t.lo <= 21.3 && t.hi >= 22.4 && t.step == 0.2, "{t:?}");
        let t = nice_ticks(1.0, 3.0, 8, true);
        assert_eq!(t.step, 1.0);
        let t = nice_ticks(5.0, 5.0, 5, false);
        assert!(t.lo < 5.0 || t.hi > 5.0);
        let t = nice_ticks(f64::NAN, 1.0, 5, false);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
        let t = nice_ticks(0.0, 45_000.0, 5, false);
        assert_eq!(t.label(20_000.0), "20k");
    }

    #[test]
    fn escape_and_ellipsize() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ");
        assert_eq!(ellipsize("short", 100.0, 10.0), "short");
        let e = ellipsize("a very long category label", 60.0, 10.0);
        assert!(e.ends_with('…') && text_width(&e, 10.0) <= 60.0, "{e}");
        assert_eq!(ellipsize("abc", 5.0, 10.0), "");
    }

    #[test]
    fn timeline_marker_labels_take_two_rows_then_give_way() {
        let series = |colour| XySeries {
            name: format!("s{colour}"),
            colour,
            style: Style::Line,
            points: vec![(0.0, 1.0), (10.0, 3.0)],
            legend: true,
        };
        let marker = |x: f64, label: &str| Marker { x, label: label.into(), detail: format!("{label} at {x}") };
        let svg = timeline(&Timeline {
            title: "t".into(),
            notes: vec![],
            x: Axis::new("time (s)").from_zero(),
            panels: vec![
                TimelinePanel { y: Axis::new("a"), series: vec![series(0)] },
                TimelinePanel { y: Axis::new("b"), series: vec![series(1)] },
            ],
            markers: vec![marker(5.0, "exited"), marker(5.1, "relaunched"), marker(5.2, "down"), marker(9.0, "up")],
        });
        assert_eq!(svg.matches("<title>").count(), 1 + 4, "the chart's title and one tooltip per marker");
        for shown in [">exited<", ">relaunched<", ">up<"] {
            assert!(svg.contains(shown), "{shown}");
        }
        assert!(!svg.contains(">down<"), "a third label at the same place is left out");
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn thinning_keeps_labels_apart() {
        assert_eq!(thin_every(30.0, 40.0), 1);
        assert_eq!(thin_every(30.0, 20.0), 2);
        assert_eq!(thin_every(50.0, 10.0), 6);
    }
}
