//! `rollouts`: the command-line shell around the pure core.

use std::process::ExitCode;

/// The core builds and drops many small JSON maps and strings; mimalloc serves them
/// faster than the system allocator (see the README's benchmarks). The `system-allocator`
/// feature leaves it out, for heap profilers that hook `malloc`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    rollouts_shell::cli::main()
}

/// mimalloc reserves a 1 GiB arena and asks for transparent huge pages on it
/// (`madvise(MADV_HUGEPAGE)`, which THP's common `madvise` mode honours): every 2 MiB region
/// touched then counts in full, and a controller with 100 rollouts held 49 MiB of anonymous
/// memory instead of 21 (the cluster bench's RSS). Turned off for the whole process before
/// anything else runs (threads and children inherit it). A kernel that refuses (before
/// 3.15) leaves things as they were: a memory figure, never a behaviour, so nothing is said.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true).ok();
}
