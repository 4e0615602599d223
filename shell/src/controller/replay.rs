//! `rollouts replay FILE`: re-runs the core on a recorded trace.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Flags of `rollouts replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A trace written by `rollouts controller --record FILE`.
    pub trace: PathBuf,
}

/// Replays the trace.
pub fn run(_args: ReplayArgs) -> ExitCode {
    eprintln!("error: replay is not built yet");
    ExitCode::FAILURE
}
