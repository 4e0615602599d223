//! `kubectl-rollouts`: the same CLI under the name kubectl looks for, so that `kubectl rollouts
//! get rollout NAME` works once this binary is on the `PATH`.

use std::process::ExitCode;

fn main() -> ExitCode {
    rollouts_shell::cli::main()
}
