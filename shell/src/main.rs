//! `rollouts`: the command-line shell around the pure core.

use std::process::ExitCode;

/// The core builds and drops many small JSON maps and strings; mimalloc serves them
/// faster than the system allocator (see the README's benchmarks). The `system-allocator`
/// feature leaves it out, for heap profilers that hook `malloc`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    rollouts_shell::cli::main()
}
