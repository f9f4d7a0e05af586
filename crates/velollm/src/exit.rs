//! Exit codes, the input error (exit 2), and the code an error maps to. Every command returns its code from
//! here; `main` prints the error without any secret and exits with [`code_of`].

use velollm_engine::BenchError;
use velollm_engine::launch::LaunchError;

/// Success.
pub const OK: u8 = 0;
/// An error during the run.
pub const ERROR: u8 = 1;
/// Invalid input: a flag, a file, a value.
pub const INPUT: u8 = 2;
/// A threshold (`bench --check`) or a compare gate failed.
pub const THRESHOLD: u8 = 3;
/// The server is unreachable or unrecognised, or a launched server did not start.
pub const UNREACHABLE: u8 = 4;
/// Every measured request failed.
pub const ALL_FAILED: u8 = 5;
/// Interrupted by Ctrl-C or SIGTERM (the partial result is kept).
pub const INTERRUPTED: u8 = 130;

/// An input error: exit code 2.
#[derive(Debug)]
pub struct InputError(pub anyhow::Error);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for InputError {}

/// An input error with this message.
pub fn input(message: impl Into<String>) -> InputError {
    InputError(anyhow::anyhow!(message.into()))
}

/// The exit code of an error that ended a command.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<InputError>().is_some() {
        return INPUT;
    }
    if let Some(l) = e.downcast_ref::<LaunchError>() {
        return match l {
            LaunchError::Template(_) => INPUT,
            LaunchError::Io(_) => ERROR,
            _ => UNREACHABLE,
        };
    }
    match e.downcast_ref::<BenchError>() {
        Some(BenchError::Probe(_)) => UNREACHABLE,
        Some(
            BenchError::Model(_)
            | BenchError::Url(_)
            | BenchError::Tokenizer(_)
            | BenchError::CaCert(_)
            | BenchError::Header(_),
        ) => INPUT,
        Some(BenchError::Run(_)) | None => ERROR,
    }
}
