//! `velollm compare`: runs compared per step and metric with confidence intervals and significance; gates.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// `velollm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Result documents: the baseline first, then one or more candidates.
    #[arg(required = true, num_args = 2..)]
    pub results: Vec<PathBuf>,
}

/// Run `velollm compare`.
pub fn run(args: CompareArgs) -> Result<u8> {
    let _ = args;
    anyhow::bail!("velollm compare is not implemented yet")
}
