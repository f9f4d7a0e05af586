//! # velollm-report — result documents rendered for people
//!
//! Renderers take `velollm-core` types and return text; they never touch the network or the clock, so
//! they are snapshot-tested. This crate holds the terminal summary; Markdown and HTML reports build on it.

pub mod comparison;
pub mod terminal;

pub use terminal::{render_run, render_step};
