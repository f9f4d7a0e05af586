//! `velollm history`: every run indexed in an embedded SQLite database; list, filter, trends.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `velollm history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The history database [default: velollm/history.db under the user's data directory].
    #[arg(long, env = "VELOLLM_DB")]
    pub db: Option<PathBuf>,
}

/// Run `velollm history`.
pub fn run(args: HistoryArgs) -> Result<u8> {
    let _ = args;
    anyhow::bail!("velollm history is not implemented yet")
}
