//! # velollm-report — result documents rendered for people
//!
//! Renderers take `velollm-core` types and return text; they never touch the network, the clock or the file
//! system, so they are snapshot-tested. The caller writes the files.
//!
//! * [`terminal`] — the end-of-run terminal summary.
//! * [`ab`](mod@ab) — the paired A/B report of `velollm ab` (terminal and Markdown).
//! * [`comparison`] — a comparison of runs (`velollm compare`) as text.
//! * [`compare_report`] — a comparison as Markdown or HTML, with before/after bars.
//! * [`document`] — the format-neutral document model ([`document::Block`], [`document::Table`]) that the
//!   Markdown and HTML reports are built from; other reports (such as `velollm history`'s trend) build their
//!   own blocks and render them with [`html::page`] and [`markdown::render_blocks`].
//! * [`markdown`] — the Markdown report, with its charts as SVG files to write beside it.
//! * [`html`] — one self-contained HTML report with inline SVG charts.
//! * [`csv`] — per-step aggregates and per-request rows as CSV.
//! * [`llmd`] — a step as an llm-d Benchmark Report (schema 0.2), for the tools that collect those.
//! * [`charts`] — the charts of one or several runs, and the before/after bars of a comparison.
//! * [`server`] — what velollm observed of the server (launch, cold start, resources, metrics, events) as
//!   the text every report shares.
//! * [`format`](mod@format) — numbers and units, written one way in every report.
//! * [`svg`] — the dependency-free SVG chart toolkit the charts are drawn with.
//! * [`target`] — the runs a report covers and their labels.
//! * [`selfcheck`] — the client's self-check and the run's trust verdict, as text.
//! * [`tune`] — the `velollm tune` report: every configuration's trade-offs and the best one.

pub mod ab;
pub mod charts;
pub mod compare_report;
pub mod comparison;
pub mod csv;
pub mod document;
pub mod format;
pub mod html;
pub mod llmd;
pub mod markdown;
pub mod selfcheck;
pub mod server;
pub mod svg;
pub mod target;
pub mod terminal;
pub mod tune;

pub use charts::{BeforeAfter, CandidateValue, Chart, MetricBars, before_after_bars, run_charts};
pub use html::render_html;
pub use markdown::{MarkdownReport, render_markdown};
pub use target::Target;
pub use terminal::{render_run, render_server, render_step};
