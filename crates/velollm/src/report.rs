//! `velollm report`: a result document rendered as Markdown, self-contained HTML with SVG charts, and CSV.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `velollm report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The result document (JSON written by `velollm bench -o`).
    pub result: PathBuf,
}

/// Run `velollm report`.
pub fn run(args: ReportArgs) -> Result<u8> {
    let _ = args;
    anyhow::bail!("velollm report is not implemented yet")
}
