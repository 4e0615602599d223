//! `kubectl-rollouts`: the same CLI under the name kubectl looks for, so that `kubectl rollouts
//! get rollout NAME` works once this binary is on the `PATH`.

use std::process::ExitCode;

/// The core builds and drops many small JSON maps and strings; mimalloc serves them
/// faster than the system allocator (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    rollouts_shell::cli::main()
}
