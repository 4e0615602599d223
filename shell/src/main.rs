//! `rollouts`: the command-line shell around the pure core.

use std::process::ExitCode;

fn main() -> ExitCode {
    rollouts_shell::cli::main()
}
