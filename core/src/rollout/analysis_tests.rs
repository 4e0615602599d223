//! Unit tests of what a rollout does to the AnalysisRuns it owns beyond creating them: the
//! events it records when a run's phase changes, and the `spec.terminate` patches it sends
//! to runs it no longer wants. Each simulates a fixture scenario, recording every change
//! the controllers made to the cluster.

// Picking one kind of action out of a list.
#![allow(clippy::wildcard_enum_match_arm)]

use crate::sim::{parse_scenario, simulate, simulate_with, SimOptions, Simulation, SIMULATION_EPOCH};
use crate::state::{Action, Event, Object};
use crate::time::Seconds;

/// Simulates `text`, recording the changes, and checks the scenario's own expectations.
fn simulated(text: &str) -> Simulation {
    let scenario = parse_scenario(text).expect("the scenario parses");
    let sim = simulate_with(&scenario, SimOptions { record_changes: true }).expect("the scenario simulates");
    assert_eq!(sim.outcome.failed_expectations, Vec::<String>::new());
    sim
}

/// The recorded changes that start with `prefix`, in order.
fn changes<'a>(sim: &'a Simulation, prefix: &str) -> Vec<&'a str> {
    sim.changes.iter().map(|c| c.what.as_str()).filter(|w| w.starts_with(prefix)).collect()
}

/// The runs told to terminate (`spec.terminate` patches), in order.
fn terminated(sim: &Simulation) -> Vec<&str> {
    changes(sim, "PatchAnalysisRun ")
        .into_iter()
        .filter_map(|w| w.strip_prefix("PatchAnalysisRun ")?.strip_suffix(r#" {"spec":{"terminate":true}}"#))
        .collect()
}

/// RAN-05: a step run that measures once and succeeds.
const STEP_RUN_PASSES: &str = include_str!("../../../fixtures/scenarios/analysis-seed-inline-step-passes.yaml");

/// PAU-07: a promote while a step run is still measuring terminates it; an abort and a full
/// promotion follow.
const PROMOTE_PAST_RUNNING_STEP_RUN: &str =
    include_str!("../../../fixtures/scenarios/analysis-pau07-promote-skips-running-step-analysis.yaml");

#[test]
fn each_phase_a_step_run_enters_is_recorded_once_with_the_previous_one() {
    let sim = simulated(STEP_RUN_PASSES);
    let run = "guestbook-79b749c69f-2-2";
    assert_eq!(
        changes(&sim, "Event Normal AnalysisRun"),
        [
            format!("Event Normal AnalysisRunRunning: Step Analysis Run '{run}' Status New: 'Running' Previous: 'NoPreviousStatus'"),
            format!("Event Normal AnalysisRunSuccessful: Step Analysis Run '{run}' Status New: 'Successful' Previous: 'Running'"),
        ]
    );
}

#[test]
fn a_finished_run_is_never_told_to_terminate() {
    // The run succeeded on its own; the rollout then moved past its step and completed.
    let sim = simulated(STEP_RUN_PASSES);
    assert_eq!(terminated(&sim), Vec::<&str>::new());
}

#[test]
fn a_run_still_measuring_is_told_to_terminate_once() {
    // Promoted past at 2m: terminated then. The abort at 3m and the full promotion at 4m
    // cancel every run again, but that one has finished by then (and was already told).
    let sim = simulated(PROMOTE_PAST_RUNNING_STEP_RUN);
    assert_eq!(terminated(&sim), ["foo-645dcbb94-2-1"]);
}

/// The runs measured by `actions`.
fn measured(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Measure { run, .. } => Some(run.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_is_measured_only_once_the_api_server_has_it() {
    // Stopped at 5m, in the 5 min pause (11s to 5m11s) before the analysis step.
    let paused = STEP_RUN_PASSES.split("expect:").next().expect("the scenario's head").to_string() + "until: 5m\n";
    let sim = simulate(&parse_scenario(&paused).expect("the scenario parses")).expect("the scenario simulates");
    // A controller restarted at 6m, the pause over, reaches the step and creates its run.
    let now = SIMULATION_EPOCH.plus(Seconds(6 * 60));
    let (state, actions) = crate::rollout::restarted(&sim.final_objects["guestbook"], now);
    let run = "guestbook-79b749c69f-2-2";
    assert!(actions.iter().any(|a| matches!(a, Action::CreateAnalysisRun { run: r } if r.metadata.name.as_deref() == Some(run))));
    assert_eq!(measured(&actions), Vec::<&str>::new());
    // Another event before the run's own: the run (no UID yet) is not measured.
    let (state, actions) = crate::step(state, Event::Tick, now);
    assert_eq!(measured(&actions), Vec::<&str>::new(), "{actions:#?}");
    // The API server's copy, with its UID: now it is.
    let mut created = serde_json::to_value(&state.analysis_runs[run]).expect("a run serializes");
    created["metadata"]["uid"] = "run-uid".into();
    let (_, actions) = crate::step(state, Event::Applied(Object::AnalysisRun(created)), now);
    assert_eq!(measured(&actions), [run]);
}

#[test]
fn a_job_measurement_runs_in_its_runs_namespace() {
    // PAU-07 at 1m30s: the step run measures with a Job that runs for 24 h.
    let running = PROMOTE_PAST_RUNNING_STEP_RUN.split("expect:").next().expect("the scenario's head").to_string() + "until: 90s\n";
    let sim = simulate(&parse_scenario(&running).expect("the scenario parses")).expect("the scenario simulates");
    let jobs: Vec<&str> = sim.objects.keys().map(String::as_str).filter(|k| k.starts_with("Job/")).collect();
    assert_eq!(jobs, ["Job/default/foo-645dcbb94-2-1.sleep-job.1"]);
    let job = &sim.objects[jobs[0]];
    let run = &sim.objects["AnalysisRun/default/foo-645dcbb94-2-1"];
    assert_eq!(job["metadata"]["namespace"], run["metadata"]["namespace"]);
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], run["metadata"]["uid"]);
}
