//! Runs every scenario in `fixtures/scenarios/*.yaml` through the simulator and checks its
//! `expect:` entries.
//!
//! A scenario fails this test when it does not parse, when the simulation cannot run, when it
//! has no `expect:` entries at all, or when any expectation does not hold. All scenarios are
//! run before the test fails, and the failure message names every failing file with the
//! expectations that did not hold.
#![allow(clippy::disallowed_methods)] // tests read their fixtures

use std::fs;
use std::path::{Path, PathBuf};

use rollouts_core::sim::{parse_scenario, simulate};

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("fixtures").join("scenarios")
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs one scenario file; `Err` lists what went wrong.
fn run(path: &Path) -> Result<(), Vec<String>> {
    let text = fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let scenario = parse_scenario(&text).map_err(|e| vec![format!("does not parse: {e}")])?;
    if scenario.expect.is_empty() {
        return Err(vec!["has no `expect:` entries".to_string()]);
    }
    let sim = simulate(&scenario).map_err(|e| vec![format!("simulation failed: {e}")])?;
    if sim.outcome.failed_expectations.is_empty() {
        Ok(())
    } else {
        Err(sim.outcome.failed_expectations.clone())
    }
}

#[test]
fn every_scenario_meets_its_expectations() {
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenarios found in {}", scenario_dir().display());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if let Err(problems) = run(path) {
            let mut report = format!("{name}: {} problem(s)", problems.len());
            for p in problems {
                report.push_str("\n    - ");
                report.push_str(&p);
            }
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenario(s) failed:\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
}

#[test]
fn a_scenario_without_expectations_is_reported() {
    // The harness itself must refuse a scenario that asserts nothing.
    let dir = std::env::temp_dir().join(format!("rollouts-fixtures-test-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("no-expectations.yaml");
    fs::write(&path, "name: nothing\nobjects: [{apiVersion: v1, kind: Service, metadata: {name: s}}]\n").expect("write");
    let result = run(&path);
    let _ = fs::remove_dir_all(&dir);
    let problems = result.expect_err("a scenario without expect: entries must fail");
    assert!(problems[0].contains("no `expect:` entries"), "{problems:?}");
}
