//! The core may depend on data crates only: no async runtime, no Kubernetes client, no
//! HTTP client, no randomness, nothing that reads the clock (DESIGN.md, "Dependency rule").
#![allow(clippy::disallowed_methods)] // tests may read files and the environment

use std::process::Command;

/// Crates that do I/O, spawn tasks, draw random numbers or read the clock.
const FORBIDDEN: &[&str] = &[
    "tokio", "async-std", "smol", "mio", "kube", "kube-client", "kube-runtime", "hyper", "reqwest", "ureq",
    "h2", "rand", "rand_core", "getrandom", "fastrand", "chrono", "time", "tracing-subscriber",
];

#[test]
fn core_has_no_io_clock_or_randomness_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "rollouts-core", "-e", "normal", "--prefix", "none", "--format", "{p} {f}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let mut offenders = Vec::new();
    for line in tree.lines() {
        let mut parts = line.split_whitespace();
        let Some(name) = parts.next() else { continue };
        if FORBIDDEN.contains(&name) {
            offenders.push(line.to_string());
        }
        // jiff (used by k8s-openapi for timestamps) can read the clock only with `std`.
        if name == "jiff" && line.split(' ').next_back().is_some_and(|f| f.split(',').any(|f| f == "std")) {
            offenders.push(format!("{line} (jiff with `std` can read the clock)"));
        }
    }
    assert!(offenders.is_empty(), "rollouts-core depends on forbidden crates:\n{}", offenders.join("\n"));
    assert!(tree.lines().any(|l| l.starts_with("k8s-openapi")), "sanity: the tree lists k8s-openapi:\n{tree}");
}
